/* plugin_api.c: the event-loop-free half of lb_core_api: JSON and URL
 * helpers, MD5, response headers and classification, settings and secrets.
 * Everything here takes input written by plugins or sent by providers, so
 * every output buffer is bounded and every failure is a return value. */
#include "plugin_api.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "log.h"
#include "secret.h"

/* Copies n bytes plus a NUL if they fit; otherwise out = "" and -1. */
static int put_bounded(const char *src, size_t n, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return -1;
    if (n >= outlen || n > INT_MAX) {
        out[0] = '\0';
        return -1;
    }
    memcpy(out, src, n);
    out[n] = '\0';
    return (int)n;
}

/* ---- json_get ------------------------------------------------------------- */

/* Steps from cur through one path segment: an object key, or an array index
 * when cur is an array and the segment is all digits. NULL if absent. */
static json_object *json_step(json_object *cur, const char *seg, size_t n)
{
    char key[256];
    if (n == 0 || n >= sizeof key)
        return NULL;
    memcpy(key, seg, n);
    key[n] = '\0';
    if (json_object_is_type(cur, json_type_object)) {
        json_object *v = NULL;
        return json_object_object_get_ex(cur, key, &v) ? v : NULL;
    }
    if (!json_object_is_type(cur, json_type_array) || strspn(key, "0123456789") != n || n > 9)
        return NULL;
    size_t idx = (size_t)strtoul(key, NULL, 10);
    return idx < json_object_array_length(cur) ? json_object_array_get_idx(cur, idx) : NULL;
}

static json_object *json_walk(json_object *root, const char *path)
{
    json_object *cur = root;
    while (cur != NULL && *path != '\0') {
        size_t n = strcspn(path, ".");
        cur = json_step(cur, path, n);
        path += n;
        if (*path == '.' && *++path == '\0')
            return NULL; /* a trailing dot is a malformed path, not the parent */
    }
    return cur;
}

/* Writes v as text: strings raw, scalars as their JSON spelling, containers
 * as compact JSON. JSON null counts as absent (json-c gives NULL for it). */
static int json_value_text(json_object *v, char *out, size_t outlen)
{
    if (v == NULL)
        return -1;
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v);
        if (memchr(s, '\0', n) != NULL) /* C callers would see it cut short */
            return -1;
        return put_bounded(s, n, out, outlen);
    }
    const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return put_bounded(text, strlen(text), out, outlen);
}

int lb_json_get(const char *json, size_t len, const char *path, char *out, size_t outlen)
{
    if (out != NULL && outlen > 0)
        out[0] = '\0';
    if (json == NULL || path == NULL || len == 0 || len > INT_MAX)
        return -1;
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return -1;
    json_object *root = json_tokener_parse_ex(tok, json, (int)len);
    int rc = -1;
    if (root != NULL && json_tokener_get_error(tok) == json_tokener_success)
        rc = json_value_text(json_walk(root, path), out, outlen);
    else if (out != NULL && outlen > 0)
        out[0] = '\0';
    json_object_put(root);
    json_tokener_free(tok);
    return rc;
}

/* ---- json_quote, url_encode ---------------------------------------------- */

/* The escape for byte c inside a JSON string, or NULL to copy it as is. */
static const char *json_escape(unsigned char c, char tmp[8])
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\b': return "\\b";
    case '\f': return "\\f";
    default:
        if (c >= 0x20)
            return NULL;
        snprintf(tmp, 8, "\\u%04x", c);
        return tmp;
    }
}

/* Appends n bytes at out[*pos], keeping room for the NUL; false if full. */
static bool append(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
    if (*pos + n >= outlen)
        return false;
    memcpy(out + *pos, s, n);
    *pos += n;
    return true;
}

int lb_json_quote(const char *s, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return -1;
    if (s == NULL)
        return put_bounded("null", 4, out, outlen);
    size_t pos = 0;
    bool ok = append(out, outlen, &pos, "\"", 1);
    for (; ok && *s; s++) {
        char tmp[8];
        const char *esc = json_escape((unsigned char)*s, tmp);
        ok = esc ? append(out, outlen, &pos, esc, strlen(esc)) : append(out, outlen, &pos, s, 1);
    }
    if (!ok || !append(out, outlen, &pos, "\"", 1) || pos > INT_MAX) {
        out[0] = '\0';
        return -1;
    }
    out[pos] = '\0';
    return (int)pos;
}

int lb_url_encode(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    if (out == NULL || outlen == 0)
        return -1;
    out[0] = '\0';
    if (s == NULL)
        return -1;
    size_t pos = 0;
    bool ok = true;
    for (; ok && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            ok = append(out, outlen, &pos, (const char *)&c, 1);
        } else {
            char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
            ok = append(out, outlen, &pos, enc, 3);
        }
    }
    if (!ok || pos > INT_MAX) {
        out[0] = '\0';
        return -1;
    }
    out[pos] = '\0';
    return (int)pos;
}

/* ---- MD5 (RFC 1321) --------------------------------------------------------
 * Only for Mailchimp's member key (md5 of the lower-case e-mail): not used for
 * anything that needs collision resistance, so a small local copy beats
 * linking a crypto library into the core for one call. */

static const uint32_t md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const unsigned char md5_r[16] = {7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21};

static uint32_t rotl32(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }

/* The round function and message-word index of step i. */
static uint32_t md5_f(unsigned i, uint32_t b, uint32_t c, uint32_t d, unsigned *g)
{
    switch (i / 16) {
    case 0: *g = i; return (b & c) | (~b & d);
    case 1: *g = (5 * i + 1) % 16; return (d & b) | (~d & c);
    case 2: *g = (3 * i + 5) % 16; return b ^ c ^ d;
    default: *g = (7 * i) % 16; return c ^ (b | ~d);
    }
}

static void md5_block(uint32_t h[4], const unsigned char *p)
{
    uint32_t w[16];
    for (unsigned i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (unsigned i = 0; i < 64; i++) {
        unsigned g;
        uint32_t f = md5_f(i, b, c, d, &g);
        uint32_t t = d;
        d = c;
        c = b;
        b += rotl32(a + f + md5_k[i] + w[g], md5_r[(i / 16) * 4 + i % 4]);
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

void lb_md5_hex(const char *s, char out[33])
{
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    size_t len = s ? strlen(s) : 0;
    size_t off = 0;
    for (; len - off >= 64; off += 64)
        md5_block(h, (const unsigned char *)s + off);
    /* The tail, the 0x80 marker and the bit length fill one or two blocks. */
    unsigned char tail[128] = {0};
    size_t rest = len - off;
    if (rest)
        memcpy(tail, s + off, rest);
    tail[rest] = 0x80;
    size_t blocks = rest < 56 ? 1 : 2;
    uint64_t bits = (uint64_t)len * 8;
    for (unsigned i = 0; i < 8; i++)
        tail[blocks * 64 - 8 + i] = (unsigned char)(bits >> (8 * i));
    for (size_t b = 0; b < blocks; b++)
        md5_block(h, tail + 64 * b);
    for (unsigned i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", (unsigned)(h[i / 4] >> (8 * (i % 4))) & 0xffu);
}

/* ---- response headers and classification ---------------------------------- */

int lb_header_list_add(lb_header_list *h, const char *data, size_t len)
{
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        lb_header_list_clear(h);
        return 0;
    }
    if (len == 0 || memchr(data, ':', len) == NULL)
        return 0;
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        char **lines = realloc(h->lines, cap * sizeof *lines);
        if (lines == NULL)
            return -1;
        h->lines = lines;
        h->cap = cap;
    }
    char *line = strndup(data, len);
    if (line == NULL)
        return -1;
    h->lines[h->count++] = line;
    return 0;
}

void lb_header_list_clear(lb_header_list *h)
{
    for (size_t i = 0; i < h->count; i++)
        free(h->lines[i]);
    free(h->lines);
    h->lines = NULL;
    h->count = h->cap = 0;
}

const char *lb_http_header(const lb_http_resp *resp, const char *name)
{
    if (resp == NULL || resp->priv == NULL || name == NULL)
        return NULL;
    const lb_header_list *h = resp->priv;
    size_t n = strlen(name);
    for (size_t i = h->count; i-- > 0;) { /* the last occurrence wins, as in http_client.c */
        const char *line = h->lines[i];
        if (strncasecmp(line, name, n) != 0 || line[n] != ':')
            continue;
        line += n + 1;
        while (*line == ' ' || *line == '\t')
            line++;
        return line;
    }
    return NULL;
}

/* Seconds, saturated so a huge hint cannot wrap to a tiny one. */
static uint32_t seconds_to_ms(unsigned long long s)
{
    return s >= UINT32_MAX / 1000 ? UINT32_MAX : (uint32_t)(s * 1000);
}

/* The three date forms RFC 9110 §5.6.7 says a recipient must accept. */
static int parse_http_date(const char *v, time_t *t)
{
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                        "%a %b %e %H:%M:%S %Y"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(v, forms[i], &tm);
        if (end != NULL && end[strspn(end, " \t")] == '\0') {
            *t = timegm(&tm);
            return 0;
        }
    }
    return -1;
}

int lb_retry_after_parse(const char *value, time_t now, uint32_t *ms)
{
    if (value == NULL)
        return -1;
    value += strspn(value, " \t");
    size_t digits = strspn(value, "0123456789");
    if (digits > 0 && value[digits + strspn(value + digits, " \t")] == '\0') {
        /* Leading zeros (RFC 9110 allows them) carry no value: counted, they
         * would saturate "0000000000001" to 49 days. All zeros leave none: 0. */
        size_t zeros = strspn(value, "0");
        *ms = digits - zeros > 12 ? UINT32_MAX : seconds_to_ms(strtoull(value + zeros, NULL, 10));
        return 0;
    }
    time_t when;
    if (parse_http_date(value, &when) != 0)
        return -1;
    *ms = when <= now ? 0 : seconds_to_ms((unsigned long long)(when - now));
    return 0;
}

/* 2xx OK; 401/403 AUTH; 408, 429, 5xx and no answer RETRY; any other 4xx FAIL.
 * A 3xx is FAIL too: we never follow redirects, so a redirect means a wrong
 * base URL, which retrying cannot fix. A status outside 100-599 is a broken
 * proxy or server, which might recover: RETRY. */
static lb_status classify_status(const lb_http_resp *resp)
{
    long st = resp->status;
    if (resp->transport_error || st < 100 || st > 599)
        return LB_RETRY;
    if (st >= 200 && st <= 299)
        return LB_OK;
    if (st == 401 || st == 403)
        return LB_AUTH;
    if (st == 408 || st == 429 || st >= 500)
        return LB_RETRY;
    return LB_FAIL;
}

lb_status lb_http_classify_with(const lb_http_resp *resp, uint32_t *retry_after_ms, lb_header_fn header)
{
    if (retry_after_ms != NULL)
        *retry_after_ms = 0;
    if (resp == NULL)
        return LB_RETRY;
    lb_status st = classify_status(resp);
    if (st == LB_RETRY && retry_after_ms != NULL && header != NULL &&
        lb_retry_after_parse(header(resp, "Retry-After"), time(NULL), retry_after_ms) != 0)
        *retry_after_ms = 0;
    return st;
}

lb_status lb_http_classify(const lb_http_resp *resp, uint32_t *retry_after_ms)
{
    return lb_http_classify_with(resp, retry_after_ms, lb_http_header);
}

/* ---- settings ------------------------------------------------------------- */

struct lb_setting {
    char *key;
    char *value;
    bool secret;
};

struct lb_settings {
    struct lb_setting *items;
    size_t count, cap;
    char *label;
};

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

lb_settings *lb_settings_new(const char *label)
{
    lb_settings *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->label = strdup(label ? label : "");
    if (s->label == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void lb_settings_free(lb_settings *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++) {
        free(s->items[i].key);
        wipe_free(s->items[i].value); /* any value may have been a secret once */
    }
    free(s->items);
    free(s->label);
    free(s);
}

static struct lb_setting *find_setting(const lb_settings *s, const char *key)
{
    for (size_t i = 0; s != NULL && key != NULL && i < s->count; i++)
        if (strcmp(s->items[i].key, key) == 0)
            return &s->items[i];
    return NULL;
}

static struct lb_setting *add_setting(lb_settings *s, const char *key)
{
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct lb_setting *items = realloc(s->items, cap * sizeof *items);
        if (items == NULL)
            return NULL;
        s->items = items;
        s->cap = cap;
    }
    struct lb_setting *it = &s->items[s->count];
    it->key = strdup(key);
    if (it->key == NULL)
        return NULL;
    it->value = NULL;
    it->secret = false;
    s->count++;
    return it;
}

/* Keys are unique within a list (lb_settings_set replaces), so equal counts
 * and every key of a found in b with its value make the lists equal. */
bool lb_settings_equal(const lb_settings *a, const lb_settings *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        const struct lb_setting *x = &a->items[i], *y = find_setting(b, x->key);
        if (y == NULL || x->secret != y->secret || strcmp(x->value, y->value) != 0)
            return false;
    }
    return true;
}

int lb_settings_set(lb_settings *s, const char *key, const char *value, bool secret)
{
    char *copy = strdup(value ? value : "");
    if (copy == NULL)
        return -1;
    struct lb_setting *it = find_setting(s, key);
    if (it == NULL)
        it = add_setting(s, key);
    if (it == NULL) {
        wipe_free(copy);
        return -1;
    }
    wipe_free(it->value);
    it->value = copy;
    it->secret = secret;
    return 0;
}

const char *lb_settings_raw(const lb_settings *s, const char *key)
{
    const struct lb_setting *it = find_setting(s, key);
    return it ? it->value : NULL;
}

bool lb_settings_is_secret(const lb_settings *s, const char *key)
{
    const struct lb_setting *it = find_setting(s, key);
    return it != NULL && it->secret;
}

size_t lb_settings_count(const lb_settings *s) { return s ? s->count : 0; }

const char *lb_settings_key(const lb_settings *s, size_t i)
{
    return s != NULL && i < s->count ? s->items[i].key : NULL;
}

const char *lb_settings_label(const lb_settings *s) { return s ? s->label : ""; }

const char *lb_api_setting(const lb_settings *s, const char *key)
{
    const struct lb_setting *it = find_setting(s, key);
    return it != NULL && !it->secret ? it->value : NULL;
}

/* Any key works (a non-secret one is no leak); -1 if absent or if buf is too
 * small, since a cut-short token would only fail later and more obscurely. */
int lb_api_secret(const lb_settings *s, const char *key, char *buf, size_t len)
{
    const struct lb_setting *it = find_setting(s, key);
    if (it == NULL) {
        if (buf != NULL && len > 0)
            buf[0] = '\0';
        return -1;
    }
    return put_bounded(it->value, strlen(it->value), buf, len);
}

static const lb_config_decl *find_decl(const lb_plugin *p, const char *key)
{
    for (const lb_config_decl *d = p->config; d != NULL && d->key != NULL; d++)
        if (strcmp(d->key, key) == 0)
            return d;
    return NULL;
}

/* "a, b, c": the keys a plugin knows, so an error says what would work. */
static void known_keys(const lb_plugin *p, char *buf, size_t cap)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (const lb_config_decl *d = p->config; d != NULL && d->key != NULL && pos < cap; d++)
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s%s", pos ? ", " : "", d->key);
    if (buf[0] == '\0')
        snprintf(buf, cap, "none");
}

static int check_given_keys(const lb_plugin *p, lb_settings *s, lb_error *err)
{
    for (size_t i = 0; i < s->count; i++) {
        const lb_config_decl *d = find_decl(p, s->items[i].key);
        if (d == NULL) {
            char known[200];
            known_keys(p, known, sizeof known);
            return lb_fail(err, s->items[i].key, "is not a setting of plugin %s (known: %s)", p->name, known);
        }
        s->items[i].secret = (d->flags & LB_CFG_SECRET) != 0;
    }
    return 0;
}

static int check_declared_keys(const lb_plugin *p, lb_settings *s, lb_error *err)
{
    for (const lb_config_decl *d = p->config; d != NULL && d->key != NULL; d++) {
        const char *v = lb_settings_raw(s, d->key);
        bool secret = (d->flags & LB_CFG_SECRET) != 0;
        if ((v == NULL || *v == '\0') && d->default_value != NULL) {
            if (lb_settings_set(s, d->key, d->default_value, secret) != 0)
                return lb_fail(err, d->key, "out of memory");
            continue;
        }
        if ((d->flags & LB_CFG_REQUIRED) && v == NULL)
            return lb_fail(err, d->key, "is required by plugin %s%s%s", p->name, d->help ? ": " : "",
                           d->help ? d->help : "");
        if ((d->flags & LB_CFG_REQUIRED) && *v == '\0')
            return lb_fail(err, d->key, "is required by plugin %s and must not be empty", p->name);
    }
    return 0;
}

int lb_plugin_validate_settings(const lb_plugin *p, lb_settings *s, lb_error *err)
{
    if (check_given_keys(p, s, err) != 0)
        return -1;
    return check_declared_keys(p, s, err);
}

int lb_settings_resolve_secrets(lb_settings *s, lb_error *err)
{
    for (size_t i = 0; i < s->count; i++) {
        struct lb_setting *it = &s->items[i];
        if (!it->secret)
            continue;
        char *value = lb_secret_resolve(it->value, it->key, err);
        if (value == NULL)
            return -1;
        wipe_free(it->value);
        it->value = value;
    }
    return 0;
}

/* ---- logging and redaction ------------------------------------------------ */

/* Length of the secret value of s that starts at p, or 0. Values shorter than
 * 4 bytes are left alone: redacting every "1" would make logs unreadable and
 * such a value guards nothing. */
static size_t secret_at(const lb_settings *s, const char *p)
{
    for (size_t i = 0; s != NULL && i < s->count; i++) {
        const struct lb_setting *it = &s->items[i];
        size_t n = strlen(it->value);
        if (it->secret && n >= 4 && strncmp(p, it->value, n) == 0)
            return n;
    }
    return 0;
}

/* Length of an "Authorization:" header value starting at p (the rest of the
 * line), or 0; *skip gets the length of the name, which is kept. */
static size_t auth_at(const char *p, size_t *skip)
{
    static const char auth[] = "authorization:";
    if (strncasecmp(p, auth, sizeof auth - 1) != 0)
        return 0;
    *skip = sizeof auth - 1 + strspn(p + sizeof auth - 1, " \t");
    return strcspn(p + *skip, "\r\n");
}

void lb_redact(const lb_settings *s, const char *in, char *out, size_t cap)
{
    static const char mark[] = "[REDACTED]";
    if (out == NULL || cap == 0)
        return;
    size_t pos = 0;
    while (*in != '\0' && pos + 1 < cap) {
        size_t skip = 0, n = secret_at(s, in);
        if (n == 0)
            n = auth_at(in, &skip);
        if (n == 0) {
            out[pos++] = *in++;
            continue;
        }
        /* The header name is kept, it is never a secret; a full buffer ends
         * the copy rather than let a cut-off mark expose what follows. */
        if (!append(out, cap, &pos, in, skip) || !append(out, cap, &pos, mark, sizeof mark - 1))
            break;
        in += skip + n;
    }
    out[pos] = '\0';
}

void lb_api_log(const lb_settings *s, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lb_api_vlog(s, level, fmt, ap);
    va_end(ap);
}

void lb_api_vlog(const lb_settings *s, int level, const char *fmt, va_list ap)
{
    char msg[1024], clean[1280];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* A plugin may format a token into a message by mistake; redaction
     * catches every secret setting and any Authorization header text. */
    lb_redact(s, msg, clean, sizeof clean);
    if (level < LB_LEVEL_DEBUG)
        level = LB_LEVEL_DEBUG;
    if (level > LB_LEVEL_ERROR)
        level = LB_LEVEL_ERROR;
    lb_log((enum lb_log_level)level, clean, "integration", lb_settings_label(s), NULL);
}

void lb_core_api_fill(lb_core_api *api)
{
    memset(api, 0, sizeof *api);
    api->struct_size = sizeof *api;
    api->abi_major = LB_ABI_MAJOR;
    api->abi_minor = LB_ABI_MINOR;
    api->log = lb_api_log;
    api->setting = lb_api_setting;
    api->secret = lb_api_secret;
    api->json_get = lb_json_get;
    api->json_quote = lb_json_quote;
    api->url_encode = lb_url_encode;
    api->md5_hex = lb_md5_hex;
}
