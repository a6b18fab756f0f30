/* http_parse.h: a strict, allocation-free HTTP/1.x request-head parser.
 * Pure function over a byte buffer, so it is unit-tested and fuzzed apart
 * from the network code. */
#ifndef LB_HTTP_PARSE_H
#define LB_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LB_HTTP_MAX_HEADERS 48

typedef struct lb_http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading/trailing blanks trimmed */
    size_t value_len;
} lb_http_header;

typedef struct lb_http_head {
    const char *method;
    size_t method_len;
    const char *target; /* path plus query, as sent */
    size_t target_len;
    size_t path_len;    /* length of target up to '?' */
    int minor_version;  /* HTTP/1.0 or HTTP/1.1 */
    lb_http_header headers[LB_HTTP_MAX_HEADERS];
    size_t n_headers;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool expect_continue;   /* Expect: 100-continue, from an HTTP/1.1 client */
    bool keep_alive;        /* after Connection and the version's default */
} lb_http_head;

/* Parses the head at the start of buf (which need not be NUL-terminated).
 * Returns the head's length including the blank line (> 0), 0 if the head is
 * not complete yet, or -1 if it is malformed; then *status is the HTTP status
 * to answer with (400, 417 an expectation other than 100-continue, 431 header
 * too large, 501 unsupported, 505 version). */
long lb_http_parse_head(const char *buf, size_t len, size_t max_head, lb_http_head *out, int *status);

/* One field line, "name: value" (RFC 9112 section 5), as a head's and a
 * chunked trailer's lines are: a token for name, the value's surrounding
 * blanks trimmed, no control characters but HTAB, no obsolete folding.
 * 0 with *out pointing into line, or -1. */
int lb_http_split_field(const char *line, size_t len, lb_http_header *out);

/* Case-insensitive header lookup; returns the value (not NUL-terminated) or NULL. */
const char *lb_http_head_get(const lb_http_head *head, const char *name, size_t *value_len);

#endif
