/* backoff.h: when to try a job again, and when to stop trying.
 *
 * Delay after the n-th counted attempt (n >= 1), "full jitter" in Fluent
 * Bit's form (never below the base, so a failing provider is not hammered):
 *
 *     window = min(cap, base * 2^n)
 *     delay  = uniform integer in [min(base, cap), window]
 *     delay  = max(delay, floor)      floor = max(Retry-After, provider signal)
 *
 * The floor is not clamped by the cap: a provider that says "not before"
 * is obeyed even past the cap (the age cap then decides whether to wait).
 *
 * The random source is injectable so tests get deterministic delays. */
#ifndef LB_BACKOFF_H
#define LB_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

/* Returns 64 uniformly random bits; `state` is the caller's. */
typedef uint64_t (*lb_rand_fn)(void *state);

/* splitmix64 over a uint64_t state: fast, good enough for jitter (not for secrets). */
uint64_t lb_rand_splitmix(void *state);
/* A seed from the clock and the pid, so two daemons restarted together
 * do not retry in lockstep. */
uint64_t lb_rand_seed(void);

typedef struct lb_backoff {
    int64_t base_ms;  /* > 0 */
    int64_t cap_ms;   /* >= base_ms */
    lb_rand_fn rand;
    void *rand_state;
} lb_backoff;

/* The upper end of the jitter window after attempt n: min(cap, base * 2^n). */
int64_t lb_backoff_window_ms(const lb_backoff *b, uint32_t attempt);
/* The delay after attempt n (1-based), at least floor_ms. */
int64_t lb_backoff_delay_ms(const lb_backoff *b, uint32_t attempt, int64_t floor_ms);

typedef struct lb_retry_caps {
    int max_attempts;   /* counted attempts; 0 = no cap */
    int64_t max_age_ms; /* since the job was created; 0 = no cap */
} lb_retry_caps;

/* True when a job that has made `attempts` counted attempts should not run
 * again at `next_attempt_at_ms`: the attempts are used up, or it would by
 * then be older than the age cap (waiting only to be too old is pointless). */
bool lb_retry_exhausted(const lb_retry_caps *caps, int attempts, int64_t created_at_ms, int64_t next_attempt_at_ms);

#endif
