/* json_flat.c: the flat JSON reader (see json_flat.h).
 *
 * An iterative parser: containers being filled sit on an explicit stack, so
 * nesting costs memory, not C stack, and max_depth is a policy, not a limit
 * of the implementation. Nodes are addressed by index while parsing (the
 * array may move as it grows) and link to each other by relative offsets.
 *
 * The arena is sized before parsing to len + 1 bytes, which every input
 * fits: a string's decoded bytes plus its NUL never exceed its quoted
 * length minus one (an escape is never shorter than what it decodes to),
 * and a number's spelling plus NUL exceeds its length by one, which the
 * byte after it (or the budget's + 1, for a lone top-level number) pays. */
#include "json_flat.h"
#include "hex.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum fill { FILL_OPENED, FILL_AFTER_CHILD, FILL_AFTER_COMMA };

struct open_container {
    uint32_t node; /* index of the container */
    uint32_t last; /* index of its last child; 0 if none (the root, 0, is nobody's child) */
    enum fill state;
};

struct lb_jflat {
    lb_jnode *nodes;
    size_t n_nodes, cap_nodes;
    char *arena;
    size_t arena_used, arena_cap;
    struct open_container *stack;
    size_t depth, cap_stack;
};

typedef struct parser {
    lb_jflat *f;
    const char *start, *p, *end;
    size_t max_depth;
    char *why;
    size_t why_cap;
} parser;

lb_jflat *lb_jflat_new(void) { return calloc(1, sizeof(lb_jflat)); }

void lb_jflat_free(lb_jflat *f)
{
    if (!f)
        return;
    free(f->nodes);
    free(f->arena);
    free(f->stack);
    free(f);
}

/* ---- errors ---------------------------------------------------------------- */

static int fail_at(parser *P, const char *what)
{
    size_t at = (size_t)(P->p - P->start);
    if (P->p >= P->end)
        snprintf(P->why, P->why_cap, "unexpected end of input at byte %zu (%s)", at, what);
    else if (*P->p > 0x20 && *P->p < 0x7f)
        snprintf(P->why, P->why_cap, "unexpected '%c' at byte %zu (%s)", *P->p, at, what);
    else
        snprintf(P->why, P->why_cap, "unexpected byte 0x%02x at byte %zu (%s)", (unsigned char)*P->p, at, what);
    return -1;
}

static int fail_oom(parser *P)
{
    snprintf(P->why, P->why_cap, "out of memory");
    return -1;
}

/* ---- storage --------------------------------------------------------------- */

/* v with room for `need` elements of `size` (capacity *cap, updated), or
 * NULL (v untouched) if it cannot grow. */
static void *grown(void *v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return v;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *bigger = realloc(v, n * size);
    if (bigger)
        *cap = n;
    return bigger;
}

/* A new node of `type`, linked as the next child of the innermost open
 * container. Returns its index, or -1. */
static long add_node(parser *P, enum json_type type, const char *key, uint32_t key_len)
{
    lb_jflat *f = P->f;
    lb_jnode *nodes = grown(f->nodes, &f->cap_nodes, f->n_nodes + 1, sizeof *f->nodes);
    if (!nodes)
        return fail_oom(P);
    f->nodes = nodes;
    uint32_t idx = (uint32_t)f->n_nodes++;
    lb_jnode *n = &f->nodes[idx];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->key = key;
    n->key_len = key_len;
    if (f->depth > 0) {
        struct open_container *parent = &f->stack[f->depth - 1];
        if (parent->last == 0)
            f->nodes[parent->node].first = (int32_t)(idx - parent->node);
        else
            f->nodes[parent->last].next = (int32_t)(idx - parent->last);
        parent->last = idx;
        f->nodes[parent->node].count++;
    }
    return idx;
}

static int open_container(parser *P, uint32_t idx)
{
    lb_jflat *f = P->f;
    if (f->depth >= P->max_depth) {
        snprintf(P->why, P->why_cap, "nesting deeper than %zu at byte %zu", P->max_depth,
                 (size_t)(P->p - P->start));
        return -1;
    }
    struct open_container *stack = grown(f->stack, &f->cap_stack, f->depth + 1, sizeof *f->stack);
    if (!stack)
        return fail_oom(P);
    f->stack = stack;
    f->stack[f->depth++] = (struct open_container){.node = idx, .last = 0, .state = FILL_OPENED};
    return 0;
}

/* ---- scalars ------------------------------------------------------------- */

static void skip_space(parser *P)
{
    while (P->p < P->end && (*P->p == ' ' || *P->p == '\n' || *P->p == '\r' || *P->p == '\t'))
        P->p++;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int digit = lb_hex_digit(s[i]);
        if (digit < 0)
            return -1;
        v = v << 4 | (unsigned)digit;
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xc0 | (cp >> 6));
        *d++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xe0 | (cp >> 12));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *d++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *d++ = (char)(0xf0 | (cp >> 18));
        *d++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *d++ = (char)(0x80 | (cp & 0x3f));
    }
    return d;
}

/* \uXXXX at P->p (just past the 'u'), with its low surrogate if it is a high
 * one. A surrogate without its partner becomes U+FFFD, as in json-c. */
static int unicode_escape(parser *P, char **d)
{
    unsigned cp, low;
    if (P->end - P->p < 4 || hex4(P->p, &cp))
        return fail_at(P, "four hex digits after \\u");
    P->p += 4;
    if (cp >= 0xd800 && cp <= 0xdbff && P->end - P->p >= 6 && P->p[0] == '\\' && P->p[1] == 'u' &&
        hex4(P->p + 2, &low) == 0 && low >= 0xdc00 && low <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        P->p += 6;
    } else if (cp >= 0xd800 && cp <= 0xdfff) {
        cp = 0xfffd;
    }
    *d = put_utf8(*d, cp);
    return 0;
}

static int escape(parser *P, char **d)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (P->p >= P->end)
        return fail_at(P, "an escape");
    char c = *P->p++;
    if (c == 'u')
        return unicode_escape(P, d);
    const char *k = memchr(from, c, sizeof from - 1);
    if (!k) {
        P->p--;
        return fail_at(P, "a valid escape");
    }
    *(*d)++ = to[k - from];
    return 0;
}

/* The string starting at P->p (its opening quote), decoded into the arena.
 * Raw control characters are kept: json-c takes them, and refusing a
 * delivery for a stray tab in a name would lose it. A raw NUL byte is
 * refused, as json-c does (it ends its input there). */
static int read_string(parser *P, const char **out, uint32_t *out_len)
{
    lb_jflat *f = P->f;
    char *d = f->arena + f->arena_used, *begin = d;
    P->p++;
    for (;;) {
        const char *run = P->p;
        while (P->p < P->end && *P->p != '"' && *P->p != '\\' && *P->p != '\0')
            P->p++;
        memcpy(d, run, (size_t)(P->p - run));
        d += P->p - run;
        if (P->p >= P->end || *P->p == '\0')
            return fail_at(P, "a closing quote");
        if (*P->p++ == '"')
            break;
        if (escape(P, &d))
            return -1;
    }
    *d++ = '\0';
    *out = begin;
    *out_len = (uint32_t)(d - begin - 1);
    f->arena_used += (size_t)(d - begin);
    return 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool literal(parser *P, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(P->end - P->p) < n || memcmp(P->p, word, n) != 0)
        return false;
    P->p += n;
    return true;
}

/* Skips one or more digits, or fails expecting `what`. */
static int scan_digits(parser *P, const char *what)
{
    if (P->p >= P->end || !is_digit(*P->p))
        return fail_at(P, what);
    while (P->p < P->end && is_digit(*P->p))
        P->p++;
    return 0;
}

/* Skips a number's integer, fraction and exponent parts exactly as RFC 8259
 * spells them; sets *is_double if it had a fraction or exponent. json-c also
 * reads "1.", "1.e5" and "00" (even in its strict mode) and writes a
 * double back as it was spelled, so taking them would let text that is not
 * JSON into the stored document. */
static int scan_number(parser *P, bool *is_double)
{
    if (P->p < P->end && *P->p == '-')
        P->p++;
    if (P->p < P->end && *P->p == '0') {
        P->p++;
        if (P->p < P->end && is_digit(*P->p))
            return fail_at(P, "no digit after a leading zero");
    } else if (scan_digits(P, "a digit")) {
        return -1;
    }
    if (P->p < P->end && *P->p == '.') {
        P->p++;
        if (scan_digits(P, "a digit after the decimal point"))
            return -1;
        *is_double = true;
    }
    if (P->p < P->end && (*P->p == 'e' || *P->p == 'E')) {
        P->p++;
        if (P->p < P->end && (*P->p == '+' || *P->p == '-'))
            P->p++;
        if (scan_digits(P, "a digit in the exponent"))
            return -1;
        *is_double = true;
    }
    return 0;
}

/* Integers as json-c reads them: int64, clamped at INT64_MIN below; above
 * INT64_MAX json-c keeps a uint64 (clamped at UINT64_MAX) whose int64 view
 * is INT64_MAX. Unlike json-c, a clamped value says so (overflow), so the
 * typed checks refuse it rather than take a value that was never sent. */
static void set_integer(lb_jnode *n)
{
    errno = 0;
    if (n->str[0] == '-') {
        n->v.i = strtoll(n->str, NULL, 10);
        n->overflow = errno == ERANGE;
        return;
    }
    unsigned long long u = strtoull(n->str, NULL, 10);
    n->overflow = errno == ERANGE;
    if (u <= (unsigned long long)INT64_MAX) {
        n->v.i = (int64_t)u;
        return;
    }
    n->big = true;
    n->u = u;
    n->v.i = INT64_MAX;
}

bool lb_json_number_valid(const char *s, size_t len)
{
    char why[1];
    bool is_double = false;
    parser P = {.start = s, .p = s, .end = s + len, .why = why, .why_cap = sizeof why};
    return len > 0 && scan_number(&P, &is_double) == 0 && P.p == P.end;
}

/* A number, or one of json-c's NaN, Infinity and -Infinity. */
static int read_number(parser *P, lb_jnode *n)
{
    static const char *const specials[] = {"NaN", "Infinity", "-Infinity"};
    static const double special_values[] = {NAN, INFINITY, -INFINITY};
    const char *begin = P->p;
    bool is_double = false;
    int special = -1;
    for (int i = 0; i < 3 && special < 0; i++)
        if (literal(P, specials[i]))
            special = i;
    if (special < 0 && scan_number(P, &is_double))
        return -1;
    size_t len = (size_t)(P->p - begin);
    char *s = P->f->arena + P->f->arena_used;
    memcpy(s, begin, len);
    s[len] = '\0';
    P->f->arena_used += len + 1;
    n->str = s;
    n->str_len = (uint32_t)len;
    if (special >= 0 || is_double) {
        n->type = json_type_double;
        n->v.d = special >= 0 ? special_values[special] : strtod(s, NULL);
    } else {
        n->type = json_type_int;
        set_integer(n);
    }
    return 0;
}

/* ---- values and containers -------------------------------------------- */

/* One value at P->p: scalars whole; a container is opened (the main loop
 * fills it). */
static int read_value(parser *P, const char *key, uint32_t key_len)
{
    if (P->p >= P->end)
        return fail_at(P, "a value");
    char c = *P->p;
    enum json_type type = c == '{' ? json_type_object : c == '[' ? json_type_array
                          : c == '"' ? json_type_string : c == 't' || c == 'f' ? json_type_boolean
                          : c == 'n' ? json_type_null : json_type_int;
    long idx = add_node(P, type, key, key_len);
    if (idx < 0)
        return -1;
    lb_jnode *n = &P->f->nodes[idx];
    switch (type) {
    case json_type_object:
    case json_type_array:
        P->p++;
        return open_container(P, (uint32_t)idx);
    case json_type_string:
        return read_string(P, &n->str, &n->str_len);
    case json_type_boolean:
        n->v.b = c == 't';
        return literal(P, c == 't' ? "true" : "false") ? 0 : fail_at(P, "a value");
    case json_type_null:
        return literal(P, "null") ? 0 : fail_at(P, "a value");
    default:
        if (c == '-' || is_digit(c) || c == 'N' || c == 'I')
            return read_number(P, n);
        return fail_at(P, "a value");
    }
}

/* The next step inside the innermost open container: a member or element,
 * a comma, or its end. */
static int fill_step(parser *P)
{
    lb_jflat *f = P->f;
    struct open_container *top = &f->stack[f->depth - 1];
    bool is_object = f->nodes[top->node].type == json_type_object;
    char close = is_object ? '}' : ']';
    skip_space(P);
    if (P->p < P->end && top->state == FILL_AFTER_CHILD && *P->p == ',') {
        P->p++;
        top->state = FILL_AFTER_COMMA;
        return 0;
    }
    if (P->p < P->end && top->state != FILL_AFTER_COMMA && *P->p == close) {
        P->p++;
        f->depth--;
        return 0;
    }
    if (top->state == FILL_AFTER_CHILD)
        return fail_at(P, is_object ? "',' or '}'" : "',' or ']'");
    top->state = FILL_AFTER_CHILD; /* before read_value, which may move the stack */
    if (!is_object)
        return read_value(P, NULL, 0);
    const char *key;
    uint32_t key_len;
    if (P->p >= P->end || *P->p != '"')
        return fail_at(P, "a member name");
    if (read_string(P, &key, &key_len))
        return -1;
    skip_space(P);
    if (P->p >= P->end || *P->p != ':')
        return fail_at(P, "':'");
    P->p++;
    skip_space(P);
    return read_value(P, key, key_len);
}

const lb_jnode *lb_jflat_parse(lb_jflat *f, const char *text, size_t len, size_t max_depth, char *why,
                               size_t why_cap)
{
    parser P = {.f = f, .start = text, .p = text, .end = text + len, .max_depth = max_depth, .why = why,
                .why_cap = why_cap};
    f->n_nodes = f->arena_used = f->depth = 0;
    if (len >= INT32_MAX) {
        snprintf(why, why_cap, "too large");
        return NULL;
    }
    char *arena = grown(f->arena, &f->arena_cap, len + 1, 1);
    if (!arena) {
        fail_oom(&P);
        return NULL;
    }
    f->arena = arena;
    skip_space(&P);
    if (read_value(&P, NULL, 0))
        return NULL;
    while (f->depth > 0)
        if (fill_step(&P))
            return NULL;
    skip_space(&P);
    if (P.p != P.end) {
        snprintf(why, why_cap, "trailing data after the value at byte %zu", (size_t)(P.p - P.start));
        return NULL;
    }
    return &f->nodes[0];
}

/* ---- access ----------------------------------------------------------------- */

const lb_jnode *lb_jnode_member(const lb_jnode *obj, const char *key, size_t key_len)
{
    if (!obj || obj->type != json_type_object)
        return NULL;
    const lb_jnode *found = NULL;
    for (const lb_jnode *c = lb_jnode_first(obj); c; c = lb_jnode_next(c))
        if (c->key_len == key_len && memcmp(c->key, key, key_len) == 0)
            found = c; /* keep looking: the last of repeated keys wins */
    return found;
}

const lb_jnode *lb_jnode_at(const lb_jnode *arr, size_t i)
{
    if (!arr || arr->type != json_type_array || i >= arr->count)
        return NULL;
    const lb_jnode *c = lb_jnode_first(arr);
    while (i-- > 0)
        c = lb_jnode_next(c);
    return c;
}
