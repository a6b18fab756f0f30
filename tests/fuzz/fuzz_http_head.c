/* fuzz_http_head.c: libFuzzer (or AFL++) target for the request-head parser,
 * the first code a peer's bytes reach.
 *
 * Beyond "no crash, no undefined behaviour", it checks what the connection
 * code relies on:
 *   - an answer is a complete head (its length, within the input and the
 *     limit, ending in a blank line), incomplete (0), or refused (-1) with
 *     one of the documented statuses;
 *   - every pointer of a parsed head points into the head itself;
 *   - the parser is incremental: the daemon parses again as bytes arrive,
 *     so no prefix of a complete head may be refused or taken for a whole
 *     head, and bytes after the head (the body, a pipelined request) change
 *     nothing about it.
 * Built and run by tests/fuzz/run; its corpus is replayed by make check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_must.h"
#include "http_parse.h"

#define MAX_HEAD 2048

static void head_must(int ok, const char *what) { fuzz_must(ok, "fuzz_http_head", what); }

static int inside(const char *p, size_t n, const char *buf, long head_len)
{
    return p >= buf && n <= (size_t)head_len && (size_t)(p - buf) <= (size_t)head_len - n;
}

static void check_head(const char *buf, long n, const lb_http_head *h)
{
    head_must(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0, "a head that does not end in a blank line");
    head_must(h->method_len > 0 && inside(h->method, h->method_len, buf, n), "method outside the head");
    head_must(h->target_len > 0 && inside(h->target, h->target_len, buf, n), "target outside the head");
    head_must(h->target[0] == '/', "a target that is not a path");
    head_must(h->path_len <= h->target_len, "path longer than the target");
    head_must(h->minor_version == 0 || h->minor_version == 1, "a version other than 1.0 or 1.1");
    head_must(h->n_headers <= LB_HTTP_MAX_HEADERS, "too many headers");
    for (size_t i = 0; i < h->n_headers; i++) {
        const lb_http_header *f = &h->headers[i];
        head_must(f->name_len > 0 && inside(f->name, f->name_len, buf, n), "a header name outside the head");
        head_must(inside(f->value, f->value_len, buf, n), "a header value outside the head");
        head_must(memchr(f->value, '\r', f->value_len) == NULL && memchr(f->value, '\n', f->value_len) == NULL,
             "a line break inside a header value");
        char name[MAX_HEAD + 1];
        memcpy(name, f->name, f->name_len);
        name[f->name_len] = '\0';
        head_must(lb_http_head_get(h, name, NULL) != NULL, "a parsed header that lookup does not find");
    }
    head_must(h->content_length >= -1, "a negative content length");
    head_must(!(h->chunked && h->content_length >= 0), "both framings accepted");
    head_must(!(h->chunked && h->minor_version == 0), "a chunked body from HTTP/1.0 accepted");
    head_must(!(h->expect_continue && h->minor_version == 0), "an HTTP/1.0 client's 100-continue kept");
}

static int same_head(const lb_http_head *a, const lb_http_head *b)
{
    return a->method == b->method && a->method_len == b->method_len && a->target == b->target &&
           a->target_len == b->target_len && a->path_len == b->path_len && a->minor_version == b->minor_version &&
           a->n_headers == b->n_headers && a->content_length == b->content_length && a->chunked == b->chunked &&
           a->expect_continue == b->expect_continue && a->keep_alive == b->keep_alive;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    lb_http_head head, again;
    int status = 0;
    long n = lb_http_parse_head(buf, size, MAX_HEAD, &head, &status);
    if (n < 0) {
        head_must(status == 400 || status == 417 || status == 431 || status == 501 || status == 505, "an undocumented status");
        return 0;
    }
    if (n == 0) {
        head_must(size < MAX_HEAD, "an incomplete head past the limit");
        return 0;
    }
    head_must((size_t)n <= size && n <= MAX_HEAD, "a head longer than the input or the limit");
    check_head(buf, n, &head);
    /* what follows the head does not change it */
    head_must(lb_http_parse_head(buf, (size_t)n, MAX_HEAD, &again, &status) == n, "the head alone parses differently");
    head_must(same_head(&head, &again), "the head alone gives other fields");
    /* every prefix is still incomplete (all of them for short heads, a
     * sample for long ones to keep the run fast) */
    size_t step = n <= 256 ? 1 : (size_t)n / 97 + 1;
    for (size_t k = 0; k < (size_t)n; k += step)
        head_must(lb_http_parse_head(buf, k, MAX_HEAD, &again, &status) == 0, "a prefix of a head is not incomplete");
    head_must(lb_http_parse_head(buf, (size_t)n - 1, MAX_HEAD, &again, &status) == 0, "a head minus its last byte");
    return 0;
}
