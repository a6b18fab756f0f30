/* bench/key_map.c: how long one put into the dedupe map can take (the
 * writer thread waits for it inside a commit). Fills the map with N random
 * hashes, times every put, and prints each put over 2 ms, the worst one, and
 * how many passed 0.5 / 1 / 2 ms.
 *
 *   cc -O2 -Icore -o /tmp/key_map bench/key_map.c core/key_map.c && /tmp/key_map 7000000
 *
 * The map's API has not changed since it was added, so another version can
 * be measured the same way, e.g. the one that rehashed all at once:
 *
 *   mkdir -p /tmp/km_old && for f in key_map.c key_map.h; do git show b90d162:core/$f > /tmp/km_old/$f; done
 *   cc -O2 -I/tmp/km_old -o /tmp/key_map_old bench/key_map.c /tmp/km_old/key_map.c && /tmp/key_map_old 7000000
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "key_map.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 7000000;
    lb_key_map m = {0};
    uint64_t x = 88172645463325252ULL; /* xorshift64: random hashes, as SipHash gives */
    size_t over[3] = {0}, worst_at = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double t0 = now_s();
        if (lb_key_map_put(&m, x, (int64_t)i)) {
            fprintf(stderr, "key_map: out of memory at %zu\n", i);
            return 1;
        }
        double d = now_s() - t0;
        over[0] += d > 0.0005;
        over[1] += d > 0.001;
        over[2] += d > 0.002;
        if (d > 0.002)
            printf("put %zu took %.1f ms (capacity %zu)\n", i, d * 1e3, m.cap);
        if (d > worst) {
            worst = d;
            worst_at = i;
        }
    }
    printf("%zu puts: worst %.1f ms (put %zu); over 0.5 ms %zu, over 1 ms %zu, over 2 ms %zu\n", n, worst * 1e3,
           worst_at, over[0], over[1], over[2]);
    lb_key_map_free(&m);
    return 0;
}
