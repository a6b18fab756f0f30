/* event_doc.c: the normalized event's document (event_doc.h).
 *
 * Members live in one array and are chained in insertion order (top level,
 * and within each group), so the text comes out in the order json-c would
 * write the same sets in. Strings are copied into an arena of blocks that
 * never move: a pointer handed out by lb_edoc_str stays valid while later
 * sets add blocks. Each string's escaped length is counted while it is
 * copied, so the text's length is known before it is written and the writer
 * checks no bounds. */
#include "event_doc.h"

#include <stdlib.h>
#include <string.h>

#define NONE (-1)
#define KIND_GROUP 0xff
#define MEMBERS_INLINE 48
#define ARENA_INLINE 2048

typedef struct member {
    const char *key; /* in the arena, NUL-terminated */
    size_t key_len;
    int32_t next;        /* the next member at the same level, or NONE */
    int32_t first, last; /* a group's members */
    uint8_t kind;        /* lb_evalue_type, or KIND_GROUP */
    bool b;
    int64_t i;
    double d;
    const char *s;  /* LB_EV_STR: the string; LB_EV_NUM: its text (arena, NUL-terminated) */
    size_t len;
    size_t esc_len; /* s's length once escaped for JSON, quotes not counted */
} member;

typedef struct block {
    struct block *next;
    char *data;
    size_t used, cap;
} block;

struct lb_edoc {
    member *m;
    size_t n, cap;
    int32_t first, last; /* the top level */
    int32_t last_top;    /* the top-level member found last: rows that share a group ("purchase.*")
                          * come one after the other, so most lookups start there */
    block *arena;        /* the newest block first */
    char *text;
    size_t text_len, text_cap;
    bool text_valid;
    member inline_members[MEMBERS_INLINE];
    block inline_block;
    char inline_data[ARENA_INLINE];
};

lb_edoc *lb_edoc_new(void)
{
    lb_edoc *d = malloc(sizeof *d);
    if (!d)
        return NULL;
    d->m = d->inline_members;
    d->n = 0;
    d->cap = MEMBERS_INLINE;
    d->first = d->last = d->last_top = NONE;
    d->inline_block = (block){NULL, d->inline_data, 0, ARENA_INLINE};
    d->arena = &d->inline_block;
    d->text = NULL;
    d->text_len = d->text_cap = 0;
    d->text_valid = false;
    return d;
}

static void free_blocks(lb_edoc *d)
{
    while (d->arena != &d->inline_block) {
        block *b = d->arena;
        d->arena = b->next;
        free(b);
    }
}

void lb_edoc_free(lb_edoc *d)
{
    if (!d)
        return;
    free_blocks(d);
    if (d->m != d->inline_members)
        free(d->m);
    free(d->text);
    free(d);
}

void lb_edoc_reset(lb_edoc *d)
{
    free_blocks(d);
    d->inline_block.used = 0;
    d->n = 0; /* a grown member array is kept: the next document may need it too */
    d->first = d->last = d->last_top = NONE;
    d->text_valid = false;
}

/* ---- storage ----------------------------------------------------------- */

static char *arena_alloc(lb_edoc *d, size_t n)
{
    block *b = d->arena;
    if (b->cap - b->used < n) {
        size_t cap = n > ARENA_INLINE ? n : ARENA_INLINE;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        *b = (block){d->arena, (char *)(b + 1), 0, cap};
        d->arena = b;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

static size_t escaped_len(unsigned char c)
{
    if (c == '"' || c == '\\')
        return 2;
    if (c >= 0x20)
        return 1;
    return c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t' ? 2 : 6;
}

static char apply_case(char c, lb_evalue_case how)
{
    if (how == LB_EV_UPPER && c >= 'a' && c <= 'z')
        return (char)(c - ('a' - 'A'));
    if (how == LB_EV_LOWER && c >= 'A' && c <= 'Z')
        return (char)(c + ('a' - 'A'));
    return c;
}

/* Copies s[0..len) into the arena (NUL-terminated), in the case asked, and
 * counts its escaped length. */
static const char *copy_string(lb_edoc *d, const char *s, size_t len, lb_evalue_case how, size_t *esc_len)
{
    char *t = arena_alloc(d, len + 1);
    if (!t)
        return NULL;
    size_t esc = 0;
    for (size_t k = 0; k < len; k++) {
        t[k] = apply_case(s[k], how);
        esc += escaped_len((unsigned char)t[k]);
    }
    t[len] = '\0';
    *esc_len = esc;
    return t;
}

static bool key_is(const member *m, const char *key, size_t key_len)
{
    return m->key_len == key_len && memcmp(m->key, key, key_len) == 0;
}

static int32_t find(const lb_edoc *d, int32_t first, const char *key, size_t key_len)
{
    for (int32_t k = first; k != NONE; k = d->m[k].next)
        if (key_is(&d->m[k], key, key_len))
            return k;
    return NONE;
}

/* The top-level member named key[0..key_len), or NONE. */
static int32_t find_top(lb_edoc *d, const char *key, size_t key_len)
{
    if (d->last_top != NONE && key_is(&d->m[d->last_top], key, key_len))
        return d->last_top;
    int32_t at = find(d, d->first, key, key_len);
    if (at != NONE)
        d->last_top = at;
    return at;
}

static int grow_members(lb_edoc *d)
{
    size_t cap = d->cap * 2;
    member *m = d->m == d->inline_members ? malloc(cap * sizeof *m) : realloc(d->m, cap * sizeof *m);
    if (!m)
        return -1;
    if (d->m == d->inline_members)
        memcpy(m, d->inline_members, d->n * sizeof *m);
    d->m = m;
    d->cap = cap;
    return 0;
}

/* Appends a member named key to the chain first..last; its index, or NONE. */
static int32_t append(lb_edoc *d, int32_t *first, int32_t *last, const char *key, size_t key_len, uint8_t kind)
{
    if (d->n == d->cap && grow_members(d) < 0)
        return NONE;
    size_t esc;
    const char *k = copy_string(d, key, key_len, LB_EV_ASIS, &esc);
    if (!k)
        return NONE;
    int32_t at = (int32_t)d->n++;
    d->m[at] = (member){.key = k, .key_len = key_len, .next = NONE, .first = NONE, .last = NONE, .kind = kind};
    if (*last != NONE)
        d->m[*last].next = at;
    else
        *first = at;
    *last = at;
    return at;
}

static int store_value(lb_edoc *d, member *m, const lb_evalue *v)
{
    m->kind = (uint8_t)v->type;
    m->b = v->b;
    m->i = v->i;
    m->d = v->d;
    m->s = NULL;
    m->len = m->esc_len = 0;
    if (v->type != LB_EV_STR && v->type != LB_EV_NUM)
        return 0;
    m->s = copy_string(d, v->s, v->len, v->type == LB_EV_STR ? v->str_case : LB_EV_ASIS, &m->esc_len);
    m->len = v->len;
    return m->s ? 0 : -1;
}

/* The segments of "a" or "a.b"; -1 for anything else. */
static int split(const char *path, size_t *top_len, const char **leaf, size_t *leaf_len)
{
    size_t n = strlen(path);
    const char *dot = memchr(path, '.', n);
    *top_len = dot ? (size_t)(dot - path) : n;
    *leaf = dot ? dot + 1 : NULL;
    *leaf_len = dot ? n - *top_len - 1 : 0;
    if (*top_len == 0 || (dot && (*leaf_len == 0 || memchr(*leaf, '.', *leaf_len))))
        return -1;
    return 0;
}

int lb_edoc_set(lb_edoc *d, const char *path, const lb_evalue *v)
{
    size_t top_len, leaf_len;
    const char *leaf;
    if (split(path, &top_len, &leaf, &leaf_len) < 0)
        return -1;
    d->text_valid = false;
    int32_t at = find_top(d, path, top_len);
    if (!leaf) {
        if (at == NONE)
            at = append(d, &d->first, &d->last, path, top_len, (uint8_t)v->type);
        if (at == NONE || d->m[at].kind == KIND_GROUP)
            return -1;
        return store_value(d, &d->m[at], v);
    }
    if (at == NONE)
        at = append(d, &d->first, &d->last, path, top_len, KIND_GROUP);
    if (at == NONE || d->m[at].kind != KIND_GROUP)
        return -1;
    int32_t child = find(d, d->m[at].first, leaf, leaf_len);
    if (child == NONE) {
        int32_t first = d->m[at].first, last = d->m[at].last; /* append may move d->m */
        child = append(d, &first, &last, leaf, leaf_len, (uint8_t)v->type);
        if (child == NONE)
            return -1;
        d->m[at].first = first;
        d->m[at].last = last;
    }
    return store_value(d, &d->m[child], v);
}

int lb_edoc_set_str(lb_edoc *d, const char *path, const char *s)
{
    lb_evalue v = {.type = LB_EV_STR, .s = s, .len = strlen(s)};
    return lb_edoc_set(d, path, &v);
}

int lb_edoc_set_int(lb_edoc *d, const char *path, int64_t i)
{
    lb_evalue v = {.type = LB_EV_INT, .i = i};
    return lb_edoc_set(d, path, &v);
}

int lb_edoc_set_bool(lb_edoc *d, const char *path, bool b)
{
    lb_evalue v = {.type = LB_EV_BOOL, .b = b};
    return lb_edoc_set(d, path, &v);
}

/* ---- reading ------------------------------------------------------------ */

static const member *lookup(lb_edoc *d, const char *path)
{
    size_t top_len, leaf_len;
    const char *leaf;
    if (split(path, &top_len, &leaf, &leaf_len) < 0)
        return NULL;
    int32_t at = find_top(d, path, top_len);
    if (at != NONE && leaf)
        at = d->m[at].kind == KIND_GROUP ? find(d, d->m[at].first, leaf, leaf_len) : NONE;
    return at == NONE ? NULL : &d->m[at];
}

bool lb_edoc_has(lb_edoc *d, const char *path)
{
    return lookup(d, path) != NULL;
}

const char *lb_edoc_str(lb_edoc *d, const char *path)
{
    const member *m = lookup(d, path);
    return m && m->kind == LB_EV_STR ? m->s : NULL;
}

int64_t lb_edoc_int(lb_edoc *d, const char *path, int64_t fallback)
{
    const member *m = lookup(d, path);
    return m && m->kind == LB_EV_INT ? m->i : fallback;
}

bool lb_edoc_bool(lb_edoc *d, const char *path, bool fallback)
{
    const member *m = lookup(d, path);
    return m && m->kind == LB_EV_BOOL ? m->b : fallback;
}

/* ---- JSON text ------------------------------------------------------------ */

/* An integer's decimal text (no snprintf: a dozen per event add up). */
static size_t int_text(int64_t v, char buf[24])
{
    char rev[20];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0, k = 0;
    do
        rev[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        buf[k++] = '-';
    while (n > 0)
        buf[k++] = rev[--n];
    return k;
}

static size_t value_len(const lb_edoc *d, const member *m);

static size_t chain_len(const lb_edoc *d, int32_t first)
{
    size_t n = 2; /* {} */
    for (int32_t k = first; k != NONE; k = d->m[k].next)
        n += (k != first) + d->m[k].key_len + 3 + value_len(d, &d->m[k]); /* , "key": */
    return n;
}

static size_t value_len(const lb_edoc *d, const member *m)
{
    char num[24];
    switch (m->kind) {
    case KIND_GROUP:
        return chain_len(d, m->first);
    case LB_EV_STR:
        return m->esc_len + 2;
    case LB_EV_NUM:
        return m->len;
    case LB_EV_INT:
        return int_text(m->i, num);
    default:
        return m->b ? 4 : 5;
    }
}

static char *put_escaped(char *o, const char *s, size_t len, size_t esc_len)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    if (esc_len == len) {
        memcpy(o, s, len);
        o += len;
    } else {
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)s[k];
            if (escaped_len(c) == 1) {
                *o++ = (char)c;
                continue;
            }
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                memcpy(o, "u00", 3);
                o[3] = hex[c >> 4];
                o[4] = hex[c & 15];
                o += 5;
            }
        }
    }
    *o++ = '"';
    return o;
}

static char *put_value(char *o, const lb_edoc *d, const member *m);

static char *put_chain(char *o, const lb_edoc *d, int32_t first)
{
    *o++ = '{';
    for (int32_t k = first; k != NONE; k = d->m[k].next) {
        if (k != first)
            *o++ = ',';
        o = put_escaped(o, d->m[k].key, d->m[k].key_len, d->m[k].key_len); /* keys are the code's: nothing to escape */
        *o++ = ':';
        o = put_value(o, d, &d->m[k]);
    }
    *o++ = '}';
    return o;
}

static char *put_value(char *o, const lb_edoc *d, const member *m)
{
    switch (m->kind) {
    case KIND_GROUP:
        return put_chain(o, d, m->first);
    case LB_EV_STR:
        return put_escaped(o, m->s, m->len, m->esc_len);
    case LB_EV_NUM:
        memcpy(o, m->s, m->len);
        return o + m->len;
    case LB_EV_INT: {
        char num[24];
        size_t n = int_text(m->i, num);
        memcpy(o, num, n);
        return o + n;
    }
    default:
        memcpy(o, m->b ? "true" : "false", m->b ? 4 : 5);
        return o + (m->b ? 4 : 5);
    }
}

const char *lb_edoc_text(lb_edoc *d, size_t *len)
{
    if (!d->text_valid) {
        size_t need = chain_len(d, d->first) + 1;
        if (need > d->text_cap) {
            char *t = realloc(d->text, need);
            if (!t)
                return NULL;
            d->text = t;
            d->text_cap = need;
        }
        char *end = put_chain(d->text, d, d->first);
        *end = '\0';
        d->text_len = (size_t)(end - d->text);
        d->text_valid = true;
    }
    if (len)
        *len = d->text_len;
    return d->text;
}

/* ---- json-c ---------------------------------------------------------------- */

static json_object *chain_to_json(const lb_edoc *d, int32_t first);

static json_object *member_to_json(const lb_edoc *d, const member *m)
{
    switch (m->kind) {
    case KIND_GROUP:
        return chain_to_json(d, m->first);
    case LB_EV_STR:
        return json_object_new_string_len(m->s, (int)m->len);
    case LB_EV_NUM:
        return json_object_new_double_s(m->d, m->s);
    case LB_EV_INT:
        return json_object_new_int64(m->i);
    default:
        return json_object_new_boolean(m->b);
    }
}

static json_object *chain_to_json(const lb_edoc *d, int32_t first)
{
    json_object *o = json_object_new_object();
    for (int32_t k = first; o && k != NONE; k = d->m[k].next) {
        json_object *v = member_to_json(d, &d->m[k]);
        if (!v || json_object_object_add_ex(o, d->m[k].key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW) != 0) {
            json_object_put(v);
            json_object_put(o);
            o = NULL;
        }
    }
    return o;
}

json_object *lb_edoc_to_json(const lb_edoc *d)
{
    return chain_to_json(d, d->first);
}
