/* http_parse.c: request line and headers, per RFC 9112, strictly: anything
 * ambiguous (bare LF inside, obsolete line folding, conflicting lengths) is
 * refused, because a lenient parser in front of a durable store is how
 * request smuggling starts. */
#include "http_parse.h"

#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool token_equals(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/* Offset of the "\r\n" that ends the line at p; -1 if not in view yet,
 * -2 if a CR is followed by anything but LF. */
static long find_crlf(const char *p, size_t len)
{
    const char *cr = memchr(p, '\r', len);
    if (!cr || (size_t)(cr - p) + 1 >= len)
        return -1;
    return cr[1] == '\n' ? cr - p : -2;
}

static int parse_request_line(const char *line, size_t len, lb_http_head *out)
{
    const char *sp1 = memchr(line, ' ', len);
    if (!sp1 || sp1 == line)
        return 400;
    for (const char *c = line; c < sp1; c++)
        if (!is_tchar((unsigned char)*c))
            return 400;
    const char *rest = sp1 + 1;
    size_t rest_len = len - (size_t)(rest - line);
    const char *sp2 = memchr(rest, ' ', rest_len);
    if (!sp2 || sp2 == rest || *rest != '/')
        return 400;
    for (const char *c = rest; c < sp2; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return 400;
    const char *ver = sp2 + 1;
    size_t ver_len = len - (size_t)(ver - line);
    bool well_formed = ver_len == 8 && memcmp(ver, "HTTP/", 5) == 0 && ver[5] >= '0' && ver[5] <= '9' &&
                       ver[6] == '.' && ver[7] >= '0' && ver[7] <= '9';
    if (!well_formed)
        return 400;
    if (ver[5] != '1' || (ver[7] != '0' && ver[7] != '1'))
        return 505;
    out->method = line;
    out->method_len = (size_t)(sp1 - line);
    out->target = rest;
    out->target_len = (size_t)(sp2 - rest);
    const char *q = memchr(rest, '?', out->target_len);
    out->path_len = q ? (size_t)(q - rest) : out->target_len;
    out->minor_version = ver[7] - '0';
    return 0;
}

static int parse_content_length(const char *v, size_t len, int64_t *out)
{
    if (len == 0 || len > 15)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    *out = n;
    return 0;
}

/* Applies what the core needs to know from one header. */
static int note_header(lb_http_head *out, const lb_http_header *h)
{
    if (token_equals(h->name, h->name_len, "Content-Length")) {
        int64_t n;
        if (parse_content_length(h->value, h->value_len, &n) != 0)
            return 400;
        if (out->content_length >= 0 && out->content_length != n)
            return 400;
        out->content_length = n;
    } else if (token_equals(h->name, h->name_len, "Transfer-Encoding")) {
        if (!token_equals(h->value, h->value_len, "chunked"))
            return 501;
        if (out->chunked)
            return 400; /* chunked twice is no framing this server can read */
        out->chunked = true;
    } else if (token_equals(h->name, h->name_len, "Expect")) {
        if (!token_equals(h->value, h->value_len, "100-continue"))
            return 417;
        out->expect_continue = true;
    } else if (token_equals(h->name, h->name_len, "Connection")) {
        if (token_equals(h->value, h->value_len, "close"))
            out->keep_alive = false;
        else if (token_equals(h->value, h->value_len, "keep-alive"))
            out->keep_alive = true;
    }
    return 0;
}

int lb_http_split_field(const char *line, size_t len, lb_http_header *out)
{
    if (len == 0 || line[0] == ' ' || line[0] == '\t')
        return -1; /* obsolete line folding */
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return -1;
    for (const char *c = line; c < colon; c++)
        if (!is_tchar((unsigned char)*c))
            return -1;
    const char *v = colon + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (const char *c = v; c < end; c++)
        if ((unsigned char)*c < 0x20 && *c != '\t')
            return -1;
    *out = (lb_http_header){.name = line, .name_len = (size_t)(colon - line), .value = v,
                            .value_len = (size_t)(end - v)};
    return 0;
}

static int parse_header_line(const char *line, size_t len, lb_http_head *out)
{
    lb_http_header field;
    if (lb_http_split_field(line, len, &field))
        return 400;
    if (out->n_headers == LB_HTTP_MAX_HEADERS)
        return 431;
    out->headers[out->n_headers] = field;
    return note_header(out, &out->headers[out->n_headers++]);
}

long lb_http_parse_head(const char *buf, size_t len, size_t max_head, lb_http_head *out, int *status)
{
    memset(out, 0, sizeof *out);
    out->content_length = -1;
    size_t scan = len < max_head ? len : max_head;
    size_t pos = 0;
    bool first = true;
    for (;;) {
        long eol = find_crlf(buf + pos, scan - pos);
        if (eol == -2 || (eol == -1 && memchr(buf + pos, '\n', scan - pos))) {
            *status = 400;
            return -1;
        }
        if (eol == -1) {
            if (len >= max_head) {
                *status = 431;
                return -1;
            }
            return 0;
        }
        const char *line = buf + pos;
        size_t line_len = (size_t)eol;
        pos += line_len + 2;
        if (line_len == 0) {
            if (first)
                continue; /* RFC 9112 2.2: ignore a leading empty line */
            break;
        }
        int rc = first ? parse_request_line(line, line_len, out) : parse_header_line(line, line_len, out);
        if (rc) {
            *status = rc;
            return -1;
        }
        first = false;
    }
    if (out->chunked && (out->content_length >= 0 || out->minor_version == 0)) {
        /* both framings, or chunked from HTTP/1.0, which has none: refuse
         * rather than guess (RFC 9112 section 6.1) */
        *status = 400;
        return -1;
    }
    if (out->minor_version == 0)
        out->expect_continue = false; /* RFC 9110 section 10.1.1: ignored from HTTP/1.0 */
    if (out->minor_version == 0 && !lb_http_head_get(out, "Connection", NULL))
        out->keep_alive = false;
    else if (out->minor_version == 1) {
        size_t n;
        const char *c = lb_http_head_get(out, "Connection", &n);
        out->keep_alive = !(c && token_equals(c, n, "close"));
    }
    return (long)pos;
}

const char *lb_http_head_get(const lb_http_head *head, const char *name, size_t *value_len)
{
    for (size_t i = 0; i < head->n_headers; i++) {
        const lb_http_header *h = &head->headers[i];
        if (token_equals(h->name, h->name_len, name)) {
            if (value_len)
                *value_len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}
