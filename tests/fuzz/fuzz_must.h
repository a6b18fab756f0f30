/* fuzz_must.h: how every fuzz target fails a check: a line naming the
 * target and the check, then abort(), which libFuzzer records as a crash
 * with its input and a Check test as a failure. */
#ifndef LB_FUZZ_MUST_H
#define LB_FUZZ_MUST_H

#include <stdio.h>
#include <stdlib.h>

static void fuzz_must(int ok, const char *target, const char *what)
{
    if (!ok) {
        fprintf(stderr, "%s: %s\n", target, what);
        abort();
    }
}

#endif
