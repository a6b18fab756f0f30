/* test_http_date.c: the Date field's text (http_date.c), against dates
 * worked out by hand and against glibc's own formatter in the C locale. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_date.h"
#include "tap.h"

static void expect_date(long long t, const char *want)
{
    char out[LB_HTTP_DATE_LEN + 1];
    memset(out, 'x', sizeof out);
    lb_http_date_format((time_t)t, out);
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(strlen(out), LB_HTTP_DATE_LEN);
}

START_TEST(known_dates)
{
    expect_date(0, "Thu, 01 Jan 1970 00:00:00 GMT");
    expect_date(784111777, "Sun, 06 Nov 1994 08:49:37 GMT"); /* RFC 9110's example */
    expect_date(951782400, "Tue, 29 Feb 2000 00:00:00 GMT"); /* a leap day of a leap century */
    expect_date(2147483647, "Tue, 19 Jan 2038 03:14:07 GMT");
    expect_date(2147483648LL, "Tue, 19 Jan 2038 03:14:08 GMT"); /* past 32 bits */
    expect_date(4107542400LL, "Mon, 01 Mar 2100 00:00:00 GMT"); /* 2100 has no 29 Feb */
    expect_date(-1, "Wed, 31 Dec 1969 23:59:59 GMT");
    expect_date(1795910399LL, "Sat, 28 Nov 2026 23:59:59 GMT");
}
END_TEST

START_TEST(years_past_four_digits_are_clamped)
{
    expect_date(253402300799LL, "Fri, 31 Dec 9999 23:59:59 GMT");
    expect_date(253402300800LL, "Fri, 31 Dec 9999 23:59:59 GMT");
    expect_date(-62167219200LL, "Sat, 01 Jan 0000 00:00:00 GMT");
    expect_date(-62167219201LL, "Sat, 01 Jan 0000 00:00:00 GMT");
}
END_TEST

/* A time every 12 hours and 7 seconds from 1969 to 2104 (so every day of
 * the week and month, at drifting times of day), against strftime in the
 * C locale, whose names are the English ones HTTP uses. */
START_TEST(agrees_with_strftime_in_the_c_locale)
{
    setlocale(LC_TIME, "C");
    for (long long t = -86400LL * 365; t < 4260000000LL; t += 43200 + 7) {
        time_t tt = (time_t)t;
        struct tm tm;
        char want[64], got[LB_HTTP_DATE_LEN + 1];
        ck_assert_ptr_nonnull(gmtime_r(&tt, &tm));
        strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        lb_http_date_format(tt, got);
        ck_assert_msg(strcmp(got, want) == 0, "t=%lld: %s, want %s", t, got, want);
    }
}
END_TEST

START_TEST(the_cache_formats_once_per_second)
{
    lb_http_date_cache cache = {0};
    const char *a = lb_http_date_at(&cache, 0);
    ck_assert_str_eq(a, "Thu, 01 Jan 1970 00:00:00 GMT");
    /* the epoch is the zeroed cache's own second: still formatted, not "" */
    cache.text[5] = '9';
    ck_assert_str_eq(lb_http_date_at(&cache, 0), "Thu, 91 Jan 1970 00:00:00 GMT"); /* kept, not redone */
    ck_assert_str_eq(lb_http_date_at(&cache, 784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    ck_assert_str_eq(lb_http_date_at(&cache, 784111778), "Sun, 06 Nov 1994 08:49:38 GMT");
    ck_assert_ptr_eq(lb_http_date_at(&cache, 784111778), cache.text);
}
END_TEST

static Suite *http_date_suite(void)
{
    Suite *s = suite_create("http_date");
    TCase *tc = tcase_create("format");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, known_dates);
    tcase_add_test(tc, years_past_four_digits_are_clamped);
    tcase_add_test(tc, agrees_with_strftime_in_the_c_locale);
    tcase_add_test(tc, the_cache_formats_once_per_second);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lb_run_suite_tap(http_date_suite()); }
