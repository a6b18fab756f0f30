/* json_get.c: path lookup, typed getters and value normalizers over json-c
 * documents and flat ones (json_flat.h), with one set of typed rules for
 * both. Every function here must survive any input document: wrong types at
 * any level, JSON null, embedded NULs, huge strings, NaN (both readers take
 * it). */
#include "json_get.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEG_MAX 64 /* longest key in one path segment; ours are short */

struct segment {
    const char *key; /* in the path: not NUL-terminated */
    size_t key_len;
    long index; /* -1: no [index] */
    size_t key_end; /* offset in the path just past the key (before '[') */
};

/* Parses one segment starting at path + off. Returns the offset of the next
 * segment (or of the terminating NUL), or -1 if the path is malformed. */
static long next_segment(const char *path, size_t off, struct segment *seg)
{
    const char *p = path + off;
    size_t n = strcspn(p, ".[");
    if (n == 0 || n >= SEG_MAX)
        return -1;
    seg->key = p;
    seg->key_len = n;
    seg->key_end = off + n;
    seg->index = -1;
    p += n;
    if (*p == '[') {
        char *end;
        long i = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end != ']' || i < 0)
            return -1;
        seg->index = i;
        p = end + 1;
    }
    if (*p == '.' && p[1] != '\0')
        return (long)(p + 1 - path);
    return *p == '\0' ? (long)(p - path) : -1;
}

/* Fails naming the first `len` bytes of path, i.e. the offending prefix. */
static int fail_prefix(lb_error *err, const char *path, size_t len, const char *why)
{
    char name[sizeof ((lb_error *)0)->field];
    snprintf(name, sizeof name, "%.*s", (int)len, path);
    return lb_fail(err, name, "%s", why);
}

/* Steps from `cur` through one segment; same return convention as getters. */
static int step(json_object *cur, const char *path, size_t off, const struct segment *seg,
                json_object **out, lb_error *err)
{
    if (!json_object_is_type(cur, json_type_object))
        return fail_prefix(err, path, off ? off - 1 : 0,
                           off ? "must be an object" : "must be a JSON object");
    char key[SEG_MAX];
    memcpy(key, seg->key, seg->key_len);
    key[seg->key_len] = '\0';
    json_object *v = NULL;
    if (!json_object_object_get_ex(cur, key, &v) || v == NULL)
        return 0; /* absent, or JSON null (json-c represents it as NULL) */
    if (seg->index >= 0) {
        if (!json_object_is_type(v, json_type_array))
            return fail_prefix(err, path, seg->key_end, "must be an array");
        if ((size_t)seg->index >= json_object_array_length(v))
            return 0;
        v = json_object_array_get_idx(v, (size_t)seg->index);
        if (v == NULL)
            return 0;
    }
    *out = v;
    return 1;
}

int lb_jget_node(json_object *root, const char *path, json_object **out, lb_error *err)
{
    return lb_jget_node_at(root, path, 0, out, err);
}

/* The last segment, when it is a plain key: looked up in place (it is
 * NUL-terminated where the path ends), with step()'s answers and errors but
 * without copying it out. Returns 2 if the segment is not of that kind. */
static int step_plain_leaf(json_object *cur, const char *path, size_t off, json_object **out, lb_error *err)
{
    const char *key = path + off;
    size_t n = strcspn(key, ".[");
    if (key[n] != '\0' || n == 0 || n >= SEG_MAX)
        return 2;
    if (!json_object_is_type(cur, json_type_object))
        return fail_prefix(err, path, off ? off - 1 : 0, off ? "must be an object" : "must be a JSON object");
    json_object *v = NULL;
    if (!json_object_object_get_ex(cur, key, &v) || v == NULL)
        return 0;
    *out = v;
    return 1;
}

int lb_jget_node_at(json_object *start, const char *path, size_t off, json_object **out, lb_error *err)
{
    json_object *cur = start;
    *out = NULL;
    while (path[off] != '\0') {
        int leaf = step_plain_leaf(cur, path, off, out, err);
        if (leaf != 2)
            return leaf;
        struct segment seg;
        long next = next_segment(path, off, &seg);
        if (next < 0)
            return lb_fail(err, path, "is not a valid path");
        json_object *v = NULL;
        int rc = step(cur, path, off, &seg, &v, err);
        if (rc <= 0)
            return rc;
        cur = v;
        off = (size_t)next;
    }
    *out = cur;
    return cur ? 1 : 0;
}

json_object *lb_jget(json_object *root, const char *path)
{
    json_object *v;
    return lb_jget_node(root, path, &v, NULL) == 1 ? v : NULL;
}

const char *lb_jstr(json_object *root, const char *path)
{
    json_object *v = lb_jget(root, path);
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* ---- the same walk over a flat document (json_flat.h) -------------------- */

/* step() for flat nodes (whose lookups take the key in place): JSON null
 * counts as absent, as json-c's NULL does. */
static int flat_step(const lb_jnode *cur, const char *path, size_t off, const struct segment *seg,
                     const lb_jnode **out, lb_error *err)
{
    if (cur->type != json_type_object)
        return fail_prefix(err, path, off ? off - 1 : 0, off ? "must be an object" : "must be a JSON object");
    const lb_jnode *v = lb_jnode_member(cur, seg->key, seg->key_len);
    if (!v || v->type == json_type_null)
        return 0;
    if (seg->index >= 0) {
        if (v->type != json_type_array)
            return fail_prefix(err, path, seg->key_end, "must be an array");
        v = lb_jnode_at(v, (size_t)seg->index);
        if (!v || v->type == json_type_null)
            return 0;
    }
    *out = v;
    return 1;
}

int lb_jnget_node_at(const lb_jnode *start, const char *path, size_t off, const lb_jnode **out, lb_error *err)
{
    const lb_jnode *cur = start;
    *out = NULL;
    if (!cur || cur->type == json_type_null)
        return 0;
    while (path[off] != '\0') {
        struct segment seg;
        long next = next_segment(path, off, &seg);
        if (next < 0)
            return lb_fail(err, path, "is not a valid path");
        int rc = flat_step(cur, path, off, &seg, &cur, err);
        if (rc <= 0)
            return rc;
        off = (size_t)next;
    }
    *out = cur;
    return 1;
}

int lb_jnget_node(const lb_jnode *root, const char *path, const lb_jnode **out, lb_error *err)
{
    return lb_jnget_node_at(root, path, 0, out, err);
}

/* ---- typed checks of one value ---------------------------------------- */

/* A value as the typed checks see it, whichever reader produced it: the
 * rules live once, in the check_* functions, for json-c values (lb_jval_*)
 * and flat nodes (lb_jnval_*) alike. */
typedef struct scalar {
    enum json_type type; /* json_type_null when absent */
    const char *s;       /* string: the text */
    size_t len;
    int64_t i;           /* int: the int64 view */
    double d;            /* int or double */
    bool b;
    bool big;            /* int above INT64_MAX, kept as u */
    bool clamped;        /* int: i or u is not what was sent (past int64 below, uint64 above) */
    uint64_t u;
} scalar;

static scalar from_json(json_object *v)
{
    scalar sc = {.type = v ? json_object_get_type(v) : json_type_null};
    switch (sc.type) {
    case json_type_string:
        sc.s = json_object_get_string(v);
        sc.len = (size_t)json_object_get_string_len(v);
        break;
    case json_type_int:
        sc.i = json_object_get_int64(v);
        sc.d = json_object_get_double(v);
        sc.u = json_object_get_uint64(v);
        sc.big = sc.i == INT64_MAX && sc.u > (uint64_t)INT64_MAX;
        /* json-c clamps without saying so: a value at either end of its
         * range may be one that was past it, so it counts as clamped */
        sc.clamped = sc.i == INT64_MIN || (sc.big && sc.u == UINT64_MAX);
        break;
    case json_type_double:
        sc.d = json_object_get_double(v);
        break;
    case json_type_boolean:
        sc.b = json_object_get_boolean(v);
        break;
    default:
        break;
    }
    return sc;
}

static scalar from_node(const lb_jnode *n)
{
    scalar sc = {.type = n ? n->type : json_type_null};
    switch (sc.type) {
    case json_type_string:
        sc.s = n->str;
        sc.len = n->str_len;
        break;
    case json_type_int:
        sc.s = n->str; /* the digits as sent */
        sc.len = n->str_len;
        sc.i = n->v.i;
        sc.big = n->big;
        sc.clamped = n->overflow;
        sc.u = n->u;
        sc.d = n->big ? (double)n->u : (double)n->v.i;
        break;
    case json_type_double:
        sc.d = n->v.d;
        break;
    case json_type_boolean:
        sc.b = n->v.b;
        break;
    default:
        break;
    }
    return sc;
}

static int check_string(const scalar *v, const char *name, const char **out, lb_error *err)
{
    if (v->type == json_type_null)
        return 0;
    if (v->type != json_type_string)
        return lb_fail(err, name, "must be a string");
    if (strlen(v->s) != v->len)
        return lb_fail(err, name, "must not contain NUL characters");
    *out = v->s;
    return 1;
}

/* An integer id as a string. An id names, it does not count: one past the
 * 64-bit range keeps the digits sent, or two ids would share the clamped
 * value (and the second be taken for a duplicate). json-c does not keep
 * them: such an id must then come as a string. */
static int check_int_id(const scalar *v, const char *name, char *buf, size_t cap, lb_error *err)
{
    if (v->clamped && v->s == NULL)
        return lb_fail(err, name, "is out of range (send an id this long as a string)");
    if (v->clamped) {
        if (v->len >= cap)
            return lb_fail(err, name, "is too long (at most %zu bytes)", cap - 1);
        memcpy(buf, v->s, v->len + 1);
    } else if (v->big) {
        snprintf(buf, cap, "%llu", (unsigned long long)v->u);
    } else {
        snprintf(buf, cap, "%lld", (long long)v->i);
    }
    return 1;
}

static int check_id(const scalar *v, const char *name, char *buf, size_t cap, lb_error *err)
{
    if (v->type == json_type_null)
        return 0;
    if (v->type == json_type_int)
        return check_int_id(v, name, buf, cap, err);
    if (v->type != json_type_string)
        return lb_fail(err, name, "must be an integer or a string");
    const char *s = "";
    if (check_string(v, name, &s, err) < 0)
        return -1;
    if (*s == '\0')
        return 0;
    if (strlen(s) >= cap)
        return lb_fail(err, name, "is too long (at most %zu bytes)", cap - 1);
    memcpy(buf, s, strlen(s) + 1);
    return 1;
}

enum int_view { INT_OK, INT_NOT_INTEGER, INT_OUT_OF_RANGE };

/* v as an int64: an integer, or an integral double, as JSON writers that
 * only have doubles (JavaScript) may send 1768482362000 as 1.768482362e12.
 * Past the int64 range it is refused, never clamped: a clamped value is one
 * nobody sent. */
static enum int_view int_view(const scalar *v, int64_t *out)
{
    static const double two_63 = 9223372036854775808.0; /* 2^63, exact */
    if (v->type == json_type_int) {
        if (v->clamped || v->big)
            return INT_OUT_OF_RANGE;
        *out = v->i;
        return INT_OK;
    }
    if (v->type != json_type_double || !isfinite(v->d) || v->d != trunc(v->d))
        return INT_NOT_INTEGER;
    if (v->d < -two_63 || v->d >= two_63)
        return INT_OUT_OF_RANGE;
    *out = (int64_t)v->d;
    return INT_OK;
}

static const char out_of_range[] = "is out of range (a 64-bit integer)";

static int check_int(const scalar *v, const char *name, int64_t *out, lb_error *err)
{
    if (v->type == json_type_null)
        return 0;
    switch (int_view(v, out)) {
    case INT_OK:
        return 1;
    case INT_OUT_OF_RANGE:
        return lb_fail(err, name, "%s", out_of_range);
    default:
        return lb_fail(err, name, "must be an integer");
    }
}

static int check_double(const scalar *v, const char *name, double *out, lb_error *err)
{
    if (v->type == json_type_null)
        return 0;
    if (v->type != json_type_int && v->type != json_type_double)
        return lb_fail(err, name, "must be a number");
    if (v->clamped) /* 99999999999999999999 would be stored as UINT64_MAX */
        return lb_fail(err, name, "is out of range");
    if (!isfinite(v->d))
        return lb_fail(err, name, "must be a finite number");
    *out = v->d;
    return 1;
}

static int check_bool(const scalar *v, const char *name, bool *out, lb_error *err)
{
    if (v->type == json_type_null)
        return 0;
    if (v->type != json_type_boolean)
        return lb_fail(err, name, "must be a boolean");
    *out = v->b;
    return 1;
}

static int check_time(const scalar *v, const char *name, int64_t *out, lb_error *err)
{
    static const char why[] = "must be epoch milliseconds or an ISO-8601 date";
    if (v->type == json_type_null)
        return 0;
    if (v->type == json_type_int || v->type == json_type_double) {
        enum int_view r = int_view(v, out);
        return r == INT_OK ? 1 : lb_fail(err, name, "%s", r == INT_OUT_OF_RANGE ? out_of_range : why);
    }
    const char *s = NULL;
    if (v->type != json_type_string || check_string(v, name, &s, NULL) < 0 || lb_time_parse(s, out) < 0)
        return lb_fail(err, name, "%s", why);
    return 1;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static int check_email(const scalar *v, const char *name, char *buf, size_t cap, lb_error *err)
{
    const char *s = "";
    int rc = check_string(v, name, &s, err);
    if (rc <= 0)
        return rc;
    while (is_space(*s))
        s++;
    if (*s == '\0')
        return 0; /* "" is how some senders say "not given" */
    if (lb_email_normalize(s, buf, cap) < 0)
        return lb_fail(err, name, "must be an e-mail address");
    return 1;
}

/* Each typed check and getter exists for both readers; the kinds, their
 * output parameters and the arguments that pass those on are listed once. */
#define KIND_ARGS_string out
#define KIND_ARGS_id buf, cap
#define KIND_ARGS_time out
#define KIND_ARGS_int out
#define KIND_ARGS_double out
#define KIND_ARGS_bool out
#define KIND_ARGS_email buf, cap
#define FOR_EACH_KIND(X, ...)                                                                       \
    X(__VA_ARGS__, string, const char **out)                                                        \
    X(__VA_ARGS__, id, char *buf, size_t cap)                                                       \
    X(__VA_ARGS__, time, int64_t *out)                                                              \
    X(__VA_ARGS__, int, int64_t *out)                                                               \
    X(__VA_ARGS__, double, double *out)                                                             \
    X(__VA_ARGS__, bool, bool *out)                                                                 \
    X(__VA_ARGS__, email, char *buf, size_t cap)

/* A check of one value: build the view, run the rule. */
#define DEFINE_CHECK(prefix, value_t, view, kind, ...)                                             \
    int prefix##kind(value_t v, const char *name, __VA_ARGS__, lb_error *err)                      \
    {                                                                                               \
        scalar sc = view(v);                                                                        \
        return check_##kind(&sc, name, KIND_ARGS_##kind, err);                                      \
    }
#define DEFINE_CHECKS(prefix, value_t, view) FOR_EACH_KIND(DEFINE_CHECK, prefix, value_t, view)

DEFINE_CHECKS(lb_jval_, json_object *, from_json)

bool lb_jval_int_clamped(json_object *v)
{
    return json_object_is_type(v, json_type_int) && from_json(v).clamped;
}
DEFINE_CHECKS(lb_jnval_, const lb_jnode *, from_node)

/* ---- getters by path: lookup, then the typed check --------------------- */

/* A getter by path: look it up, then check the value, named by its path. */
#define DEFINE_PATH_GETTER(get, val, node_t, lookup, kind, ...)                                    \
    int get##kind(node_t root, const char *path, __VA_ARGS__, lb_error *err)                       \
    {                                                                                               \
        node_t v;                                                                                   \
        int rc = lookup(root, path, &v, err);                                                       \
        return rc <= 0 ? rc : val##kind(v, path, KIND_ARGS_##kind, err);                            \
    }
#define DEFINE_PATH_GETTERS(get, val, node_t, lookup) FOR_EACH_KIND(DEFINE_PATH_GETTER, get, val, node_t, lookup)

DEFINE_PATH_GETTERS(lb_jget_, lb_jval_, json_object *, lb_jget_node)
DEFINE_PATH_GETTERS(lb_jnget_, lb_jnval_, const lb_jnode *, lb_jnget_node)

static void key_copy(char k[SEG_MAX], const char *key, size_t n)
{
    memcpy(k, key, n);
    k[n] = '\0';
}

/* The object at obj[key], created when absent; NULL if it cannot be. */
static json_object *child_object(json_object *obj, const char *key, size_t n)
{
    char k[SEG_MAX];
    if (n == 0 || n >= SEG_MAX || !json_object_is_type(obj, json_type_object))
        return NULL;
    key_copy(k, key, n);
    json_object *next = NULL;
    if (json_object_object_get_ex(obj, k, &next) && next != NULL)
        return json_object_is_type(next, json_type_object) ? next : NULL;
    next = json_object_new_object();
    if (next == NULL || json_object_object_add(obj, k, next) != 0) {
        json_object_put(next);
        return NULL;
    }
    return next;
}

int lb_jset(json_object *root, const char *path, json_object *val, lb_error *err)
{
    json_object *cur = root;
    const char *p = path;
    const char *dot;
    while (cur != NULL && (dot = strchr(p, '.')) != NULL) {
        cur = child_object(cur, p, (size_t)(dot - p));
        p = dot + 1;
    }
    char k[SEG_MAX];
    size_t n = strlen(p);
    if (val == NULL || cur == NULL || n == 0 || n >= SEG_MAX ||
        !json_object_is_type(cur, json_type_object)) {
        json_object_put(val);
        return lb_fail(err, path, "cannot be stored");
    }
    key_copy(k, p, n);
    if (json_object_object_add(cur, k, val) != 0) {
        json_object_put(val);
        return lb_fail(err, path, "cannot be stored");
    }
    return 0;
}

json_object *lb_jstring_case(const char *s, bool upper)
{
    char *t = strdup(s);
    if (t == NULL)
        return NULL;
    for (char *c = t; *c; c++) {
        if (upper && *c >= 'a' && *c <= 'z')
            *c = (char)(*c - ('a' - 'A'));
        else if (!upper && *c >= 'A' && *c <= 'Z')
            *c = (char)(*c + ('a' - 'A'));
    }
    json_object *o = json_object_new_string(t);
    free(t);
    return o;
}

/* ---- value normalizers ------------------------------------------------ */

/* Reads exactly n decimal digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so no dependence on timegm or the process's TZ. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int mp = m > 2 ? m - 3 : m + 9;
    int doy = (153 * mp + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Fraction of a second after '.': up to three digits count, more are
 * dropped (ISO allows any precision). */
static bool fraction_ms(const char **p, int *ms)
{
    int scale = 100, v = 0, n = 0;
    while (**p >= '0' && **p <= '9') {
        if (n < 3)
            v += (**p - '0') * scale;
        scale /= 10;
        n++;
        (*p)++;
    }
    *ms = v;
    return n > 0;
}

/* "Z", "+hh:mm", "-hhmm", "+hh" or nothing (UTC). Offset in minutes east. */
static bool zone(const char **p, int *minutes)
{
    *minutes = 0;
    if (expect(p, 'Z') || expect(p, 'z') || **p == '\0')
        return true;
    int sign = **p == '+' ? 1 : **p == '-' ? -1 : 0;
    int hh, mm = 0;
    if (sign == 0)
        return false;
    (*p)++;
    if (!digits(p, 2, &hh) || hh > 23)
        return false;
    bool colon = expect(p, ':');
    if ((colon || **p != '\0') && (!digits(p, 2, &mm) || mm > 59))
        return false;
    *minutes = sign * (hh * 60 + mm);
    return true;
}

int lb_time_parse(const char *s, int64_t *ms)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
    if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') ||
        !digits(&p, 2, &d))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || !expect(&p, ':') || !digits(&p, 2, &mi))
            return -1;
        if (expect(&p, ':')) {
            if (!digits(&p, 2, &sec))
                return -1;
            if ((expect(&p, '.') || expect(&p, ',')) && !fraction_ms(&p, &frac))
                return -1;
        }
        if (!zone(&p, &off))
            return -1;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 60)
        return -1;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off * 60;
    *ms = t * 1000 + frac;
    return 0;
}

int lb_email_normalize(const char *in, char *out, size_t cap)
{
    while (is_space(*in))
        in++;
    size_t n = strlen(in);
    while (n > 0 && is_space(in[n - 1]))
        n--;
    if (n == 0 || n > LB_EMAIL_MAX || n >= cap)
        return -1;
    const char *at = memchr(in, '@', n);
    if (at == NULL || at == in || at == in + n - 1 || memchr(at + 1, '@', n - (size_t)(at - in) - 1))
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)in[i] <= 0x20 || in[i] == 0x7f)
            return -1; /* spaces and control characters: not an address, maybe an injection */
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + ('a' - 'A') : in[i]);
    out[n] = '\0';
    return 0;
}

static bool ascii_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool lb_country_normalize(const char *in, char out[3])
{
    if (in == NULL || !ascii_alpha(in[0]) || !ascii_alpha(in[1]) || in[2] != '\0')
        return false;
    for (int i = 0; i < 2; i++)
        out[i] = (char)(in[i] >= 'a' ? in[i] - ('a' - 'A') : in[i]);
    out[2] = '\0';
    return true;
}

void lb_event_bind(lb_event *ev, json_object *doc, const char *source, const char *type)
{
    ev->doc = doc;
    ev->source = source;
    ev->type = type;
    ev->source_event_id = lb_jstr(doc, "id");
    ev->source_type = lb_jstr(doc, "source_type");
    ev->occurred_at_ms = json_object_get_int64(lb_jget(doc, "occurred_at"));
    ev->product_id = lb_jstr(doc, "product.id");
    ev->lead_email = lb_jstr(doc, "lead.email");
    ev->test = json_object_get_boolean(lb_jget(doc, "test"));
    ev->ignored = json_object_get_boolean(lb_jget(doc, "ignored"));
}
