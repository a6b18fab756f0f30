/* http_chunked.c: a chunked request body, decoded in place (see the header).
 *
 * Strict where a lax reading could frame the message differently from a
 * proxy in front of us (request smuggling): lines end in CRLF only, a chunk
 * size is hex digits only, chunk data must be followed by CRLF. Chunk
 * extensions and trailer fields are read for their syntax and dropped, as
 * RFC 9112 allows: nothing here needs them. */
#include "http_chunked.h"
#include "hex.h"
#include "http_parse.h" /* lb_http_split_field */

#include <string.h>

enum { SIZE_LINE, DATA, DATA_END, TRAILER, FINISHED };

void lb_chunked_init(lb_chunked_decoder *d) { memset(d, 0, sizeof *d); }

/* The length of the CRLF-ended line at p (without the CRLF), -1 when no
 * whole line is there yet, -2 when the line breaks the rules: a bare LF, or
 * longer than LB_CHUNKED_LINE_MAX. */
static long find_line(const char *p, size_t avail)
{
    size_t scan = avail < LB_CHUNKED_LINE_MAX + 2 ? avail : LB_CHUNKED_LINE_MAX + 2;
    const char *lf = memchr(p, '\n', scan);
    if (!lf)
        return avail >= LB_CHUNKED_LINE_MAX + 2 ? -2 : -1;
    if (lf == p || lf[-1] != '\r')
        return -2;
    return (long)(lf - p) - 1;
}

/* No control characters but HTAB: what a chunk extension may hold. */
static int plain_text(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* chunk-size [ chunk-ext ]: hex digits, then optional blanks and `;...`.
 * A size past any body limit saturates instead of wrapping. */
static int parse_size_line(const char *p, size_t n, uint64_t *size)
{
    size_t i = 0;
    uint64_t v = 0;
    for (; i < n && lb_hex_digit(p[i]) >= 0; i++)
        v = v > (UINT64_MAX >> 4) ? UINT64_MAX : (v << 4) | (uint64_t)lb_hex_digit(p[i]);
    if (i == 0)
        return -1;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i < n && (p[i] != ';' || !plain_text(p + i, n - i)))
        return -1;
    *size = v;
    return 0;
}

static lb_chunked_result fail(const char **reason, const char *why, lb_chunked_result rc)
{
    *reason = why;
    return rc;
}

lb_chunked_result lb_chunked_decode(lb_chunked_decoder *d, char *buf, size_t *len, size_t max_body,
                                    const char **reason)
{
    size_t pos = d->decoded, end = *len;
    while (d->state != FINISHED) {
        size_t avail = end - pos;
        if (d->state == DATA) {
            size_t n = avail < d->left ? avail : (size_t)d->left;
            if (n == 0)
                break;
            memmove(buf + d->decoded, buf + pos, n);
            d->decoded += n;
            pos += n;
            d->left -= n;
            if (d->left == 0)
                d->state = DATA_END;
            continue;
        }
        if (d->state == DATA_END) {
            if (avail < 2)
                break;
            if (buf[pos] != '\r' || buf[pos + 1] != '\n')
                return fail(reason, "chunk data is not followed by CRLF", LB_CHUNKED_BAD);
            pos += 2;
            d->state = SIZE_LINE;
            continue;
        }
        long line = find_line(buf + pos, avail);
        if (line == -1)
            break;
        if (line == -2)
            return fail(reason,
                        d->state == SIZE_LINE ? "chunk size line is too long or not ended by CRLF"
                                              : "trailer line is too long or not ended by CRLF",
                        LB_CHUNKED_BAD);
        const char *p = buf + pos;
        pos += (size_t)line + 2;
        if (d->state == SIZE_LINE) {
            uint64_t size;
            if (parse_size_line(p, (size_t)line, &size))
                return fail(reason, "chunk size is not a hex number", LB_CHUNKED_BAD);
            if (size > max_body - d->decoded)
                return fail(reason, "chunked body is larger than the limit", LB_CHUNKED_TOO_LARGE);
            d->left = size;
            d->state = size ? DATA : TRAILER;
        } else if (line == 0) {
            d->state = FINISHED;
        } else {
            d->trailer += (size_t)line + 2;
            if (d->trailer > LB_CHUNKED_TRAILER_MAX)
                return fail(reason, "chunked trailer is too large", LB_CHUNKED_BAD);
            lb_http_header field;
            if (lb_http_split_field(p, (size_t)line, &field))
                return fail(reason, "malformed trailer field", LB_CHUNKED_BAD);
        }
    }
    /* what is not decoded yet moves down behind the body */
    memmove(buf + d->decoded, buf + pos, end - pos);
    *len = d->decoded + (end - pos);
    return d->state == FINISHED ? LB_CHUNKED_DONE : LB_CHUNKED_MORE;
}
