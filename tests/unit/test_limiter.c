/* test_limiter.c: token bucket, concurrency gate and provider pause, with
 * the time passed in. */
#include "limiter.h"
#include "tap.h"

#include <float.h>

START_TEST(bucket_unlimited)
{
    lb_token_bucket b;
    lb_bucket_init(&b, 0, 0, 0);
    for (int i = 0; i < 10000; i++)
        ck_assert(lb_bucket_take(&b, 0));
    ck_assert_int_eq(lb_bucket_wait_ms(&b, 0), 0);
}
END_TEST

START_TEST(bucket_burst_then_rate)
{
    lb_token_bucket b;
    lb_bucket_init(&b, 10, 3, 1000); /* 10/s: one token per 100 ms; 3 at once */
    for (int i = 0; i < 3; i++)
        ck_assert(lb_bucket_take(&b, 1000));
    ck_assert(!lb_bucket_take(&b, 1000));
    ck_assert_int_eq(lb_bucket_wait_ms(&b, 1000), 100);
    ck_assert_int_eq(lb_bucket_wait_ms(&b, 1040), 60);
    ck_assert(!lb_bucket_take(&b, 1099));
    ck_assert(lb_bucket_take(&b, 1100));
    ck_assert(!lb_bucket_take(&b, 1100));
    /* refill stops at the burst */
    for (int i = 0; i < 3; i++)
        ck_assert(lb_bucket_take(&b, 60000));
    ck_assert(!lb_bucket_take(&b, 60000));
}
END_TEST

START_TEST(bucket_default_burst_and_slow_rates)
{
    lb_token_bucket b;
    lb_bucket_init(&b, 4.5, 0, 0); /* burst defaults to ceil(rate) */
    int n = 0;
    while (lb_bucket_take(&b, 0))
        n++;
    ck_assert_int_eq(n, 5);
    lb_bucket_init(&b, 0.5, 0, 0); /* one every two seconds, burst 1 */
    ck_assert(lb_bucket_take(&b, 0));
    ck_assert_int_eq(lb_bucket_wait_ms(&b, 1000), 1000);
    ck_assert(!lb_bucket_take(&b, 1999));
    ck_assert(lb_bucket_take(&b, 2000));
}
END_TEST

/* A rate far above 1000 * burst per second: fractions of a millisecond
 * refill it, so it is not capped at `burst` per millisecond tick. */
START_TEST(bucket_high_rate_refills_within_a_millisecond)
{
    lb_token_bucket b;
    lb_bucket_init(&b, 1e6, 10, 1000); /* 1000 tokens per ms, 10 at once */
    int n = 0;
    for (int i = 0; i < 100; i++)
        n += lb_bucket_take(&b, 1000.0 + i * 0.002); /* one attempt every 2 us */
    ck_assert_int_eq(n, 100);
    while (lb_bucket_take(&b, 1000.5))
        ;
    ck_assert(!lb_bucket_take(&b, 1000.5));
    ck_assert_int_eq(lb_bucket_wait_ms(&b, 1000.5), 1); /* a microsecond away: rounded up */
    ck_assert(lb_bucket_take(&b, 1000.502));
}
END_TEST

/* Rates so small that the milliseconds to the next token pass INT64_MAX
 * (1e-17/s: 1e20 ms; the conversion was undefined), or that rate / 1000
 * underflows to 0 (the smallest double, which made the bucket unlimited):
 * the wait saturates at LB_BUCKET_WAIT_MAX_MS, which a caller can add to
 * its clock, and the bucket stays shut. */
static const double tiny_rates[] = {1e-17, 1e-300, DBL_TRUE_MIN};

START_TEST(bucket_tiny_rate_saturates)
{
    lb_token_bucket b;
    lb_bucket_init(&b, tiny_rates[_i], 1, 0);
    ck_assert(lb_bucket_take(&b, 0));
    ck_assert(!lb_bucket_take(&b, 1e9)); /* none 11 days later */
    ck_assert_int_eq(lb_bucket_wait_ms(&b, 1e9), LB_BUCKET_WAIT_MAX_MS);
    lb_limiter l;
    int64_t wait;
    lb_limiter_init(&l, tiny_rates[_i], 1, 0, 0);
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_GO);
    lb_limiter_release(&l);
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_WAIT);
    ck_assert_int_eq(wait, LB_BUCKET_WAIT_MAX_MS);
}
END_TEST

/* A wait up to a day is exact; a longer one is cut to a day, and the caller
 * that wakes then finds no token and is told to wait again. */
START_TEST(bucket_wait_capped_at_a_day)
{
    lb_token_bucket b;
    lb_bucket_init(&b, 1.0 / 3600, 1, 0); /* one an hour */
    ck_assert(lb_bucket_take(&b, 0));
    ck_assert_int_ge(lb_bucket_wait_ms(&b, 0), 3600000);
    ck_assert_int_le(lb_bucket_wait_ms(&b, 0), 3600001);
    lb_bucket_init(&b, 1.0 / (7 * 86400), 1, 0); /* one a week */
    ck_assert(lb_bucket_take(&b, 0));
    ck_assert_int_eq(lb_bucket_wait_ms(&b, 0), LB_BUCKET_WAIT_MAX_MS);
    ck_assert(!lb_bucket_take(&b, LB_BUCKET_WAIT_MAX_MS));
    ck_assert_int_eq(lb_bucket_wait_ms(&b, LB_BUCKET_WAIT_MAX_MS), LB_BUCKET_WAIT_MAX_MS);
    ck_assert(lb_bucket_take(&b, 7 * 86400000.0 + 1));
}
END_TEST

START_TEST(bucket_clock_backwards_gives_nothing)
{
    lb_token_bucket b;
    lb_bucket_init(&b, 1, 1, 5000);
    ck_assert(lb_bucket_take(&b, 5000));
    ck_assert(!lb_bucket_take(&b, 1000)); /* stepped back: no credit, no crash */
    ck_assert(lb_bucket_take(&b, 6000));
}
END_TEST

START_TEST(gate_limits_and_unlimited)
{
    lb_gate g = {.limit = 2};
    ck_assert(lb_gate_enter(&g));
    ck_assert(lb_gate_enter(&g));
    ck_assert(!lb_gate_enter(&g));
    lb_gate_leave(&g);
    ck_assert(lb_gate_enter(&g));
    lb_gate_leave(&g);
    lb_gate_leave(&g);
    lb_gate_leave(&g); /* an extra leave does not underflow */
    ck_assert_uint_eq(g.in_use, 0);
    lb_gate u = {.limit = 0};
    for (int i = 0; i < 1000; i++)
        ck_assert(lb_gate_enter(&u));
}
END_TEST

START_TEST(limiter_full_spends_no_token)
{
    lb_limiter l;
    int64_t wait;
    lb_limiter_init(&l, 10, 2, 1, 0);
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_GO);
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_FULL);
    lb_limiter_release(&l);
    /* the refused call kept the second token */
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_GO);
    lb_limiter_release(&l);
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_WAIT);
    ck_assert_int_eq(wait, 100);
}
END_TEST

START_TEST(limiter_pause)
{
    lb_limiter l;
    int64_t wait;
    lb_limiter_init(&l, 0, 0, 0, 0);
    lb_limiter_pause_until(&l, 5000);
    lb_limiter_pause_until(&l, 3000); /* the later pause stays */
    ck_assert_int_eq(lb_limiter_acquire(&l, 1000, &wait), LB_LIMIT_WAIT);
    ck_assert_int_eq(wait, 4000);
    ck_assert_int_eq(lb_limiter_acquire(&l, 5000, &wait), LB_LIMIT_GO);
}
END_TEST

START_TEST(limiter_reconfigure_keeps_state)
{
    lb_limiter l;
    int64_t wait;
    lb_limiter_init(&l, 1, 5, 3, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_GO);
    lb_limiter_configure(&l, 1, 10, 2, 0);
    ck_assert_uint_eq(l.gate.in_use, 3); /* calls in flight survive a reload */
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_FULL);
    lb_limiter_release(&l);
    lb_limiter_release(&l);
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_GO);
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_FULL);
    lb_limiter_release(&l);
    /* no fresh burst from the reload: the 2 tokens left were all it had */
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_GO);
    lb_limiter_release(&l);
    ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_WAIT);
}
END_TEST

/* A reload half a second after the bucket was emptied keeps the 5 tokens
 * that came back meanwhile (10 per second): neither a fresh burst nor the
 * stale count of 0. */
START_TEST(limiter_reconfigure_credits_the_refill_since_the_last_call)
{
    lb_limiter l;
    int64_t wait;
    lb_limiter_init(&l, 10, 10, 0, 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(lb_limiter_acquire(&l, 0, &wait), LB_LIMIT_GO);
    lb_limiter_configure(&l, 10, 10, 0, 500);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(lb_limiter_acquire(&l, 500, &wait), LB_LIMIT_GO);
    ck_assert_int_eq(lb_limiter_acquire(&l, 500, &wait), LB_LIMIT_WAIT);
    ck_assert_int_eq(wait, 100);
}
END_TEST

START_TEST(bucket_carry_over_a_reload)
{
    lb_token_bucket old, b;
    lb_bucket_init(&old, 10, 3, 0); /* one token per 100 ms */
    for (int i = 0; i < 3; i++)
        ck_assert(lb_bucket_take(&old, 0));
    /* same limits: goes on exactly as the old one, credit since then included */
    lb_bucket_init(&b, 10, 3, 20);
    lb_bucket_carry(&b, &old, 50);
    ck_assert(!lb_bucket_take(&b, 50));
    ck_assert_int_eq(lb_bucket_wait_ms(&b, 50), 50);
    ck_assert(lb_bucket_take(&b, 100));
    ck_assert(!lb_bucket_take(&b, 150)); /* the time before the carry is not credited twice */
    /* a smaller burst caps what is carried; a larger one grants nothing more */
    lb_bucket_init(&old, 10, 5, 0);
    lb_bucket_init(&b, 10, 2, 0);
    lb_bucket_carry(&b, &old, 0);
    ck_assert(lb_bucket_take(&b, 0) && lb_bucket_take(&b, 0) && !lb_bucket_take(&b, 0));
    lb_bucket_init(&old, 10, 1, 0);
    ck_assert(lb_bucket_take(&old, 0));
    lb_bucket_init(&b, 10, 8, 0);
    lb_bucket_carry(&b, &old, 0);
    ck_assert(!lb_bucket_take(&b, 0));
    /* an unlimited bucket has nothing to carry: the new one starts full */
    lb_bucket_init(&old, 0, 0, 0);
    lb_bucket_init(&b, 10, 2, 0);
    lb_bucket_carry(&b, &old, 0);
    ck_assert(lb_bucket_take(&b, 0) && lb_bucket_take(&b, 0));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("limiter");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, bucket_unlimited);
    tcase_add_test(tc, bucket_burst_then_rate);
    tcase_add_test(tc, bucket_default_burst_and_slow_rates);
    tcase_add_test(tc, bucket_high_rate_refills_within_a_millisecond);
    tcase_add_loop_test(tc, bucket_tiny_rate_saturates, 0, (int)(sizeof tiny_rates / sizeof tiny_rates[0]));
    tcase_add_test(tc, bucket_wait_capped_at_a_day);
    tcase_add_test(tc, bucket_clock_backwards_gives_nothing);
    tcase_add_test(tc, gate_limits_and_unlimited);
    tcase_add_test(tc, limiter_full_spends_no_token);
    tcase_add_test(tc, limiter_pause);
    tcase_add_test(tc, limiter_reconfigure_keeps_state);
    tcase_add_test(tc, limiter_reconfigure_credits_the_refill_since_the_last_call);
    tcase_add_test(tc, bucket_carry_over_a_reload);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lb_run_suite_tap(make_suite()); }
