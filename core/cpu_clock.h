/* cpu_clock.h: the CPU time the calling thread has used since a start
 * point, for the count hooks of the Lua sandboxes (the rule set's, the
 * config's). Their instruction budgets count a library call as one
 * instruction however long it runs (s:upper() on megabytes,
 * table.insert(t, 1, x) on a big table), so each also bounds CPU time.
 * The thread's CPU clock, not the wall clock: other work on the machine
 * does not eat a script's budget, and waiting for a core does not count.
 * Reading it is a system call (about a microsecond), so hooks read it
 * every so many instructions, not at each one. */
#ifndef LB_CPU_CLOCK_H
#define LB_CPU_CLOCK_H

#include <time.h>

static inline void lb_cpu_clock_start(struct timespec *start)
{
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, start);
}

/* Microseconds of this thread's CPU time since *start. */
static inline long lb_cpu_elapsed_us(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (long)(now.tv_sec - start->tv_sec) * 1000000L + (now.tv_nsec - start->tv_nsec) / 1000;
}

#endif
