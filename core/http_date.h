/* http_date.h: the Date field of an answer (RFC 9110 §6.6.1: an origin
 * server with a clock must send one in every 2xx, 3xx and 4xx answer). */
#ifndef LB_HTTP_DATE_H
#define LB_HTTP_DATE_H

#include <time.h>

/* IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT": always this many bytes. */
#define LB_HTTP_DATE_LEN 29

/* Writes t (seconds since the epoch, UTC) as IMF-fixdate and a NUL. A year
 * outside 0000–9999 is clamped to the nearest end of that range, which the
 * format's four digits can say. */
void lb_http_date_format(time_t t, char out[LB_HTTP_DATE_LEN + 1]);

/* The text of the current second, formatted once per second: answers of
 * the same second share it. Zero-initialise before the first use. */
typedef struct lb_http_date_cache {
    time_t second;
    char text[LB_HTTP_DATE_LEN + 1];
} lb_http_date_cache;

const char *lb_http_date_at(lb_http_date_cache *cache, time_t now);

#endif
