/* backoff.c: retry delays and caps; see backoff.h. */
#include "backoff.h"

#include <time.h>
#include <unistd.h>

uint64_t lb_rand_splitmix(void *state)
{
    uint64_t *s = state;
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t lb_rand_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    return lb_rand_splitmix(&seed);
}

int64_t lb_backoff_window_ms(const lb_backoff *b, uint32_t attempt)
{
    int64_t w = b->base_ms;
    /* Doubling stops at the cap, so neither the shift nor the product overflows. */
    for (uint32_t i = 0; i < attempt && w < b->cap_ms; i++)
        w = w > b->cap_ms / 2 ? b->cap_ms : w * 2;
    return w < b->cap_ms ? w : b->cap_ms;
}

int64_t lb_backoff_delay_ms(const lb_backoff *b, uint32_t attempt, int64_t floor_ms)
{
    int64_t hi = lb_backoff_window_ms(b, attempt);
    int64_t lo = b->base_ms < hi ? b->base_ms : hi;
    int64_t delay = lo;
    if (hi > lo && b->rand != NULL)
        delay = lo + (int64_t)(b->rand(b->rand_state) % (uint64_t)(hi - lo + 1));
    return delay > floor_ms ? delay : floor_ms;
}

bool lb_retry_exhausted(const lb_retry_caps *caps, int attempts, int64_t created_at_ms, int64_t next_attempt_at_ms)
{
    if (caps->max_attempts > 0 && attempts >= caps->max_attempts)
        return true;
    return caps->max_age_ms > 0 && next_attempt_at_ms - created_at_ms >= caps->max_age_ms;
}
