/* http_date.c: IMF-fixdate from a count of seconds. The numbers come from
 * gmtime_r; the day and month names are ours, since strftime's follow the
 * locale and HTTP's are English. */
#include "http_date.h"

#include <string.h>

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years four digits hold */
#define FIRST_SECOND (-62167219200LL)
#define LAST_SECOND 253402300799LL

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

void lb_http_date_format(time_t t, char out[LB_HTTP_DATE_LEN + 1])
{
    static const char weekdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    long long s = (long long)t;
    if (s < FIRST_SECOND)
        s = FIRST_SECOND;
    if (s > LAST_SECOND)
        s = LAST_SECOND;
    time_t clamped = (time_t)s;
    struct tm tm;
    memcpy(out, "Thu, 01 Jan 1970 00:00:00 GMT", LB_HTTP_DATE_LEN + 1);
    if (!gmtime_r(&clamped, &tm))
        return; /* cannot happen for years 0–9999; the epoch is a valid date */
    int year = tm.tm_year + 1900;
    memcpy(out, weekdays[tm.tm_wday], 3);
    put2(out + 5, tm.tm_mday);
    memcpy(out + 8, months[tm.tm_mon], 3);
    put2(out + 12, year / 100);
    put2(out + 14, year % 100);
    put2(out + 17, tm.tm_hour);
    put2(out + 20, tm.tm_min);
    put2(out + 23, tm.tm_sec);
}

const char *lb_http_date_at(lb_http_date_cache *cache, time_t now)
{
    if (cache->text[0] == '\0' || cache->second != now) {
        lb_http_date_format(now, cache->text);
        cache->second = now;
    }
    return cache->text;
}
