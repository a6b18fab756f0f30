/* limiter.c: token bucket, concurrency gate and pause; see limiter.h. */
#include "limiter.h"

#include <float.h>
#include <math.h>

/* ---- token bucket ---------------------------------------------------------- */

double lb_clock_ms_fine(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000) / 1000.0;
}

void lb_bucket_init(lb_token_bucket *b, double rate_per_s, uint32_t burst, double now_ms)
{
    /* A positive rate stays positive: below ~5e-321 per second the division
     * underflows to 0, which means unlimited. */
    b->rate_per_ms = rate_per_s > 0 ? fmax(rate_per_s / 1000.0, DBL_TRUE_MIN) : 0;
    if (burst > 0)
        b->burst = burst;
    else
        b->burst = rate_per_s >= 1 ? ceil(rate_per_s) : 1;
    b->tokens = b->burst; /* a fresh integration may send its burst at once */
    b->last_ms = now_ms;
}

static void refill(lb_token_bucket *b, double now_ms)
{
    if (now_ms <= b->last_ms)
        return; /* same instant, or the clock stepped back: no credit */
    b->tokens += (now_ms - b->last_ms) * b->rate_per_ms;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    b->last_ms = now_ms;
}

bool lb_bucket_take(lb_token_bucket *b, double now_ms)
{
    if (b->rate_per_ms <= 0)
        return true;
    refill(b, now_ms);
    /* A little slack absorbs floating-point dust (0.9999999 after a refill
     * that should have made exactly one token). */
    if (b->tokens < 1.0 - 1e-9)
        return false;
    b->tokens -= 1.0;
    if (b->tokens < 0)
        b->tokens = 0;
    return true;
}

int64_t lb_bucket_wait_ms(const lb_token_bucket *b, double now_ms)
{
    if (b->rate_per_ms <= 0)
        return 0;
    lb_token_bucket probe = *b; /* refilling must not change the real bucket */
    refill(&probe, now_ms);
    if (probe.tokens >= 1.0 - 1e-9)
        return 0;
    /* Round up: waking a millisecond early would find no token and re-arm.
     * Saturated in double, before the conversion: a rate near 0 makes the
     * quotient pass INT64_MAX (undefined as an int64_t), and a caller adds
     * the wait to its clock. */
    double wait = ceil((1.0 - probe.tokens) / probe.rate_per_ms);
    return wait < (double)LB_BUCKET_WAIT_MAX_MS ? (int64_t)wait : LB_BUCKET_WAIT_MAX_MS;
}

void lb_bucket_carry(lb_token_bucket *b, const lb_token_bucket *old, double now_ms)
{
    if (old->rate_per_ms <= 0)
        return; /* unlimited: its tokens were never spent, so they say nothing */
    lb_token_bucket was = *old;
    refill(&was, now_ms);
    if (was.tokens < b->tokens) {
        b->tokens = was.tokens;
        b->last_ms = was.last_ms; /* credited up to then: no second refill for the same time */
    }
}

/* ---- concurrency gate ------------------------------------------------------ */

bool lb_gate_enter(lb_gate *g)
{
    if (g->limit > 0 && g->in_use >= g->limit)
        return false;
    g->in_use++;
    return true;
}

void lb_gate_leave(lb_gate *g)
{
    if (g->in_use > 0)
        g->in_use--;
}

/* ---- both, plus the provider's pause ---------------------------------------- */

void lb_limiter_init(lb_limiter *l, double rate_per_s, uint32_t burst, uint32_t concurrency, double now_ms)
{
    lb_bucket_init(&l->bucket, rate_per_s, burst, now_ms);
    l->gate.limit = concurrency;
    l->gate.in_use = 0;
    l->paused_until_ms = 0;
}

void lb_limiter_configure(lb_limiter *l, double rate_per_s, uint32_t burst, uint32_t concurrency, double now_ms)
{
    lb_token_bucket old = l->bucket;
    lb_bucket_init(&l->bucket, rate_per_s, burst, now_ms);
    /* Keep what was left, brought up to now, rather than granting a fresh
     * burst on every reload, or forgetting the refill since the last call. */
    lb_bucket_carry(&l->bucket, &old, now_ms);
    l->gate.limit = concurrency;
}

lb_limit_verdict lb_limiter_acquire(lb_limiter *l, double now_ms, int64_t *wait_ms)
{
    *wait_ms = 0;
    if (l->paused_until_ms > now_ms) {
        *wait_ms = (int64_t)ceil((double)l->paused_until_ms - now_ms); /* up: waking early finds it shut */
        return LB_LIMIT_WAIT;
    }
    if (l->gate.limit > 0 && l->gate.in_use >= l->gate.limit)
        return LB_LIMIT_FULL;
    if (!lb_bucket_take(&l->bucket, now_ms)) {
        *wait_ms = lb_bucket_wait_ms(&l->bucket, now_ms);
        if (*wait_ms < 1)
            *wait_ms = 1;
        return LB_LIMIT_WAIT;
    }
    lb_gate_enter(&l->gate);
    return LB_LIMIT_GO;
}

void lb_limiter_release(lb_limiter *l) { lb_gate_leave(&l->gate); }

void lb_limiter_pause_until(lb_limiter *l, int64_t until_ms)
{
    if (until_ms > l->paused_until_ms)
        l->paused_until_ms = until_ms;
}
