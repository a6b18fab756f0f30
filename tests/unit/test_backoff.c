/* test_backoff.c: the jitter window, the floor, the caps, with an injected
 * random source. */
#include "backoff.h"
#include "tap.h"

/* A "random" source returning what the test put in its state. */
static uint64_t fixed_rand(void *state) { return *(const uint64_t *)state; }

START_TEST(window_doubles_to_the_cap)
{
    lb_backoff b = {.base_ms = 1000, .cap_ms = 3600 * 1000};
    ck_assert_int_eq(lb_backoff_window_ms(&b, 0), 1000);
    ck_assert_int_eq(lb_backoff_window_ms(&b, 1), 2000);
    ck_assert_int_eq(lb_backoff_window_ms(&b, 2), 4000);
    ck_assert_int_eq(lb_backoff_window_ms(&b, 11), 2048000);
    ck_assert_int_eq(lb_backoff_window_ms(&b, 12), 3600000);
    ck_assert_int_eq(lb_backoff_window_ms(&b, 4000000000u), 3600000); /* no overflow */
}
END_TEST

START_TEST(delay_spans_base_to_window)
{
    uint64_t r = 0;
    lb_backoff b = {.base_ms = 1000, .cap_ms = 60000, .rand = fixed_rand, .rand_state = &r};
    ck_assert_int_eq(lb_backoff_delay_ms(&b, 3, 0), 1000); /* the low end is the base */
    r = 7000;                                               /* window after 3 attempts: 8000 */
    ck_assert_int_eq(lb_backoff_delay_ms(&b, 3, 0), 8000);  /* the top is reachable */
    r = 7001;
    ck_assert_int_eq(lb_backoff_delay_ms(&b, 3, 0), 1000);  /* and wraps, never beyond */
    r = UINT64_MAX;
    for (uint32_t n = 1; n < 40; n++) {
        int64_t dl = lb_backoff_delay_ms(&b, n, 0);
        ck_assert_int_ge(dl, 1000);
        ck_assert_int_le(dl, lb_backoff_window_ms(&b, n));
    }
}
END_TEST

START_TEST(delay_respects_the_floor_beyond_the_cap)
{
    uint64_t r = 0;
    lb_backoff b = {.base_ms = 1000, .cap_ms = 5000, .rand = fixed_rand, .rand_state = &r};
    ck_assert_int_eq(lb_backoff_delay_ms(&b, 1, 30000), 30000); /* Retry-After 30 s wins */
    r = 1000;
    ck_assert_int_eq(lb_backoff_delay_ms(&b, 1, 1500), 2000);   /* jitter above the floor stays */
    ck_assert_int_eq(lb_backoff_delay_ms(&b, 20, 3600000), 3600000);
}
END_TEST

START_TEST(no_random_source_gives_the_base)
{
    lb_backoff b = {.base_ms = 250, .cap_ms = 10000};
    ck_assert_int_eq(lb_backoff_delay_ms(&b, 5, 0), 250);
    lb_backoff tiny = {.base_ms = 500, .cap_ms = 100}; /* a cap below the base wins */
    ck_assert_int_eq(lb_backoff_delay_ms(&tiny, 5, 0), 100);
}
END_TEST

START_TEST(splitmix_spreads)
{
    uint64_t s = 42;
    lb_backoff b = {.base_ms = 1000, .cap_ms = 1000000, .rand = lb_rand_splitmix, .rand_state = &s};
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t dl = lb_backoff_delay_ms(&b, 8, 0); /* window 256000 */
        lo = dl < lo ? dl : lo;
        hi = dl > hi ? dl : hi;
    }
    ck_assert_int_lt(lo, 20000); /* full jitter: the whole window is used */
    ck_assert_int_gt(hi, 230000);
    ck_assert(lb_rand_seed() != lb_rand_seed() || lb_rand_seed() != lb_rand_seed());
}
END_TEST

START_TEST(caps_attempts_and_age)
{
    lb_retry_caps c = {.max_attempts = 8, .max_age_ms = 72LL * 3600 * 1000};
    ck_assert(!lb_retry_exhausted(&c, 7, 0, 1000));
    ck_assert(lb_retry_exhausted(&c, 8, 0, 1000));
    ck_assert(!lb_retry_exhausted(&c, 1, 0, c.max_age_ms - 1));
    ck_assert(lb_retry_exhausted(&c, 1, 0, c.max_age_ms)); /* would run too old: give up now */
    lb_retry_caps none = {0, 0};
    ck_assert(!lb_retry_exhausted(&none, 1000000, 0, INT64_MAX / 2));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, window_doubles_to_the_cap);
    tcase_add_test(tc, delay_spans_base_to_window);
    tcase_add_test(tc, delay_respects_the_floor_beyond_the_cap);
    tcase_add_test(tc, no_random_source_gives_the_base);
    tcase_add_test(tc, splitmix_spreads);
    tcase_add_test(tc, caps_attempts_and_age);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lb_run_suite_tap(make_suite()); }
