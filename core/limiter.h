/* limiter.h: per-integration admission control for provider calls.
 *
 * Two independent limits, both pure (the caller passes the time in, so tests
 * need no clock):
 * - a token bucket: `rate` tokens per second refill up to `burst`; a call
 *   takes one token. Rate 0 means unlimited.
 * - a concurrency gate: at most `limit` calls in flight. Limit 0 means
 *   unlimited.
 * plus a pause: the provider's own rate-limit signal (a 429 with
 * Retry-After) closes the bucket until a given time, for every lead of the
 * integration, since providers count requests per account, not per lead.
 *
 * Times are milliseconds on any clock that only moves forward within one
 * limiter's life; a clock step backwards is treated as "no time passed".
 * The bucket takes fractional milliseconds: read in whole milliseconds, a
 * bucket refills at most `burst` tokens per tick, so a rate above
 * 1000 * burst per second would be capped at that. */
#ifndef LB_LIMITER_H
#define LB_LIMITER_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct lb_token_bucket {
    double rate_per_ms; /* 0 = unlimited */
    double burst;       /* capacity, >= 1 when limited */
    double tokens;
    double last_ms;     /* when tokens was last brought up to date */
} lb_token_bucket;

/* `clock` now, in milliseconds to the microsecond: the time a bucket wants
 * (whole milliseconds would refill it at most `burst` tokens per tick,
 * capping a high rate at 1000 * burst per second). */
double lb_clock_ms_fine(clockid_t clock);

/* The limits a configured rate or concurrency may name, the config's and a
 * plugin descriptor's default alike (a default may also be 0: unlimited).
 * One request a day: a slower integration is a typo (a rate in requests per
 * day or month written as per second), and a rate near 0 once made the
 * wait overflow. */
#define LB_RATE_MIN (1.0 / 86400)
#define LB_CONCURRENCY_MAX 1024u

/* Whether rate_per_s is a usable limit: finite and at least LB_RATE_MIN
 * (NaN, infinities, negatives and 0 are not). Inline: the plugin loader,
 * also built on its own by tests, needs nothing else from here. */
static inline bool lb_rate_in_range(double rate_per_s)
{
    return isfinite(rate_per_s) && rate_per_s >= LB_RATE_MIN;
}

/* burst 0 picks max(1, ceil(rate)): one second's worth. The bucket starts full. */
void lb_bucket_init(lb_token_bucket *b, double rate_per_s, uint32_t burst, double now_ms);
/* Takes one token if there is one. */
bool lb_bucket_take(lb_token_bucket *b, double now_ms);
/* The longest wait lb_bucket_wait_ms reports: a day. */
#define LB_BUCKET_WAIT_MAX_MS ((int64_t)86400000)

/* Milliseconds until a token will be there (0 = now), rounded up, at most
 * LB_BUCKET_WAIT_MAX_MS: a slower bucket's caller wakes after a day, finds
 * no token and is told to wait again. */
int64_t lb_bucket_wait_ms(const lb_token_bucket *b, double now_ms);
/* `b`, just initialised for a reload, takes over `old`'s state (brought up
 * to now, same clock): what `old` has left, at most b's burst, instead of a
 * fresh burst. With the same limits `b` goes on exactly as `old` would. */
void lb_bucket_carry(lb_token_bucket *b, const lb_token_bucket *old, double now_ms);

typedef struct lb_gate {
    uint32_t limit; /* 0 = unlimited */
    uint32_t in_use;
} lb_gate;

bool lb_gate_enter(lb_gate *g);
void lb_gate_leave(lb_gate *g);

typedef enum lb_limit_verdict {
    LB_LIMIT_GO = 0, /* admitted: a token and a gate slot were taken */
    LB_LIMIT_WAIT,   /* no token (or paused): try again after *wait_ms */
    LB_LIMIT_FULL,   /* concurrency limit reached: try again after a release */
} lb_limit_verdict;

typedef struct lb_limiter {
    lb_token_bucket bucket;
    lb_gate gate;
    int64_t paused_until_ms; /* the provider's rate-limit signal; 0 = none */
} lb_limiter;

void lb_limiter_init(lb_limiter *l, double rate_per_s, uint32_t burst, uint32_t concurrency, double now_ms);
/* New limits (a config reload) keep the calls in flight and the pause. */
void lb_limiter_configure(lb_limiter *l, double rate_per_s, uint32_t burst, uint32_t concurrency, double now_ms);
/* Admits one call, or says how long to wait. The gate is checked first so a
 * call that cannot run never spends a token. */
lb_limit_verdict lb_limiter_acquire(lb_limiter *l, double now_ms, int64_t *wait_ms);
/* One admitted call finished. */
void lb_limiter_release(lb_limiter *l);
/* Admits nothing before `until_ms` (keeps the later of two pauses). */
void lb_limiter_pause_until(lb_limiter *l, int64_t until_ms);

#endif
