/* rules_schema.c: what a trigger or condition module must look like, what a
 * param spec must look like, and the check of a segmentation's param values
 * against it. Format and vocabularies: docs/rules.md.
 *
 * Modules are read once at load with raw access (a module's table cannot
 * fake fields through metatables) and copied into C: after loading, only the
 * match/test/check functions are ever taken from Lua again, so a module that
 * later mutates its own table changes nothing. */
#include "rules_int.h"

#include <lauxlib.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LB_ID_LEN 64
#define LB_LABEL_LEN 128
#define LB_DESC_LEN 2000
#define LB_VALUE_LEN 256      /* one string param, or one list item */
#define LB_LIST_MAX 1000      /* items in a list param */
#define LB_WHITELIST_MAX 500  /* entries in a values whitelist */

/* Normalized event types a trigger may name (docs/events.md section 3, plus
 * club.inactive, which the Club scheduler synthesizes; see docs/rules.md). */
static const char *const lb_event_types[] = {
    "cart.abandoned",         "purchase.started",           "purchase.billet_printed",
    "purchase.approved",      "purchase.complete",          "purchase.canceled",
    "purchase.protest",       "purchase.refunded",          "purchase.chargeback",
    "purchase.expired",       "purchase.delayed",           "subscription.canceled",
    "subscription.plan_switched", "subscription.charge_date_updated", "subscription.status_changed",
    "club.first_access",      "club.module_completed",      "club.registered",
    "club.progress",          "club.last_access",           "club.inactive",
    "product.rated",          "smart_installment.status_changed", "file.downloaded",
    NULL,
};

/* What an event can carry (trigger `carries`) and a condition can need. */
static const char *const lb_tags[] = {
    "purchase", "payment", "installments", "currency", "offer",  "country",  "language",
    "billet",   "pix",     "recurrence",   "subscription", "smart_installment", "club", "progress",
    "rating",   "file",    NULL,
};

static const char *const lb_ptype_names[] = {"number", "integer", "string", "list", "boolean", "enum", NULL};
static const char *const lb_case_names[] = {"keep", "upper", "lower", NULL};

static const char *const lb_trigger_keys[] = {"id", "label", "group", "description", "events", "carries",
                                              "params", "match", "check", NULL};
static const char *const lb_condition_keys[] = {"id", "label", "description", "needs", "params", "test", "check", NULL};
static const char *const lb_custom_keys[] = {"label", "description", "needs", "test", NULL};
static const char *const lb_param_keys[] = {"name", "type", "label", "description", "required", "default",
                                            "min", "max", "values", "case", NULL};

static int in_list(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return i;
    return -1;
}

static bool known_event(const char *s) { return in_list(lb_event_types, s) >= 0; }
static bool known_tag(const char *s) { return in_list(lb_tags, s) >= 0; }

/* Lower-case identifier: [a-z][a-z0-9_]*, at most LB_ID_LEN bytes. */
static bool valid_ident(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LB_ID_LEN || !islower((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

int lb_reason_add(json_object *reasons, const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lb_reason_vadd(reasons, code, field, fmt, ap);
    va_end(ap);
    return 1;
}

int lb_reason_vadd(json_object *reasons, const char *code, const char *field, const char *fmt, va_list ap)
{
    if (!reasons)
        return 1;
    char msg[320];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "code", json_object_new_string(code));
    json_object_object_add(o, "message", json_object_new_string(msg));
    json_object_object_add(o, "field", json_object_new_string(field));
    json_object_array_add(reasons, o);
    return 1;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

bool lb_tags_subset(char *const *needs, char *const *carries)
{
    for (size_t i = 0; needs && needs[i]; i++) {
        bool found = false;
        for (size_t j = 0; carries && carries[j] && !found; j++)
            found = strcmp(needs[i], carries[j]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static json_object *strv_json(char *const *v)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; v && v[i]; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

/* ---- param values (shared by defaults at load and by segmentations) ------- */

static void fold(char *s, lb_case c)
{
    for (; *s; s++)
        *s = (char)(c == LB_CASE_UPPER ? toupper((unsigned char)*s)
                    : c == LB_CASE_LOWER ? tolower((unsigned char)*s) : *s);
}

/* A string value: 1..LB_VALUE_LEN bytes, no NUL, folded, whitelisted. */
static json_object *norm_string(const lb_param *p, json_object *v, char *why, size_t cap)
{
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(why, cap, "must be a string");
        return NULL;
    }
    size_t len = (size_t)json_object_get_string_len(v);
    const char *s = json_object_get_string(v);
    if (len == 0 || len > LB_VALUE_LEN || strlen(s) != len) {
        snprintf(why, cap, "must be 1-%d bytes without NUL", LB_VALUE_LEN);
        return NULL;
    }
    char buf[LB_VALUE_LEN + 1];
    memcpy(buf, s, len + 1);
    fold(buf, p->fold);
    if (p->values && in_list((const char *const *)p->values, buf) < 0) {
        snprintf(why, cap, "'%.64s' is not one of the allowed values", buf);
        return NULL;
    }
    return json_object_new_string(buf);
}

static json_object *norm_list(const lb_param *p, json_object *v, char *why, size_t cap)
{
    if (!json_object_is_type(v, json_type_array)) {
        snprintf(why, cap, "must be a list of strings");
        return NULL;
    }
    size_t n = json_object_array_length(v);
    if (n == 0 || n > LB_LIST_MAX) {
        snprintf(why, cap, "must hold 1-%d items", LB_LIST_MAX);
        return NULL;
    }
    json_object *out = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++) {
        char item_why[200];
        json_object *s = norm_string(p, json_object_array_get_idx(v, i), item_why, sizeof item_why);
        if (!s) {
            snprintf(why, cap, "item %zu: %s", i + 1, item_why);
            json_object_put(out);
            return NULL;
        }
        json_object_array_add(out, s);
    }
    return out;
}

static bool in_range(const lb_param *p, double d, char *why, size_t cap)
{
    if ((p->has_min && d < p->min) || (p->has_max && d > p->max)) {
        if (p->has_min && p->has_max)
            snprintf(why, cap, "must be between %g and %g", p->min, p->max);
        else if (p->has_min)
            snprintf(why, cap, "must be at least %g", p->min);
        else
            snprintf(why, cap, "must be at most %g", p->max);
        return false;
    }
    return true;
}

#define LB_PARAM_INT_MAX (INT64_C(1) << 53) /* every integer up to it is exact as a double */

static json_object *norm_number(const lb_param *p, json_object *v, char *why, size_t cap)
{
    json_type t = json_object_get_type(v);
    if (t != json_type_int && t != json_type_double) {
        snprintf(why, cap, "must be a number");
        return NULL;
    }
    double d = json_object_get_double(v);
    if (!isfinite(d)) {
        snprintf(why, cap, "must be finite");
        return NULL;
    }
    if (p->type == LB_PT_INTEGER) {
        if (d != floor(d)) {
            snprintf(why, cap, "must be an integer");
            return NULL;
        }
        /* Read as a double, 2^53 + 1 would become 2^53: an integer is
         * checked as the integer it is. Past 2^53 a rule comparing it with
         * a number of the event (a double) could not tell neighbours apart. */
        int64_t i = t == json_type_int ? json_object_get_int64(v) : (int64_t)fmax(fmin(d, 0x1p62), -0x1p62);
        if (i > LB_PARAM_INT_MAX || i < -LB_PARAM_INT_MAX) {
            snprintf(why, cap, "must be an integer between -2^53 and 2^53");
            return NULL;
        }
        return in_range(p, (double)i, why, cap) ? json_object_new_int64(i) : NULL;
    }
    return in_range(p, d, why, cap) ? json_object_new_double(d) : NULL;
}

/* Returns the normalized value (new reference) or NULL with why filled. */
static json_object *norm_value(const lb_param *p, json_object *v, char *why, size_t cap)
{
    switch (p->type) {
    case LB_PT_NUMBER:
    case LB_PT_INTEGER:
        return norm_number(p, v, why, cap);
    case LB_PT_BOOLEAN:
        if (json_object_is_type(v, json_type_boolean))
            return json_object_new_boolean(json_object_get_boolean(v));
        snprintf(why, cap, "must be true or false");
        return NULL;
    case LB_PT_STRING:
    case LB_PT_ENUM:
        return norm_string(p, v, why, cap);
    case LB_PT_LIST:
        return norm_list(p, v, why, cap);
    }
    return NULL;
}

static const lb_param *find_param(const lb_module *m, const char *name)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return &m->params[i];
    return NULL;
}

int lb_params_normalize(const lb_module *m, json_object *in, const char *where, json_object **out,
                        json_object *reasons)
{
    int n = 0;
    char field[160];
    if (in && !json_object_is_type(in, json_type_object)) {
        n += lb_reason_add(reasons, "bad_param", where, "params must be an object");
        in = NULL;
    }
    if (in) {
        json_object_object_foreach(in, key, val) {
            (void)val;
            if (!find_param(m, key)) {
                snprintf(field, sizeof field, "%s.%.64s", where, key);
                n += lb_reason_add(reasons, "unknown_param", field, "%s has no parameter '%.64s'", m->id, key);
            }
        }
    }
    json_object *res = json_object_new_object();
    for (size_t i = 0; i < m->n_params; i++) {
        const lb_param *p = &m->params[i];
        json_object *v = NULL;
        snprintf(field, sizeof field, "%s.%s", where, p->name);
        if (!in || !json_object_object_get_ex(in, p->name, &v) || v == NULL) {
            if (p->required)
                n += lb_reason_add(reasons, "missing_param", field, "%s needs parameter '%s'", m->id, p->name);
            else if (p->def)
                json_object_object_add(res, p->name, json_object_get(p->def));
            continue;
        }
        char why[240];
        json_object *norm = norm_value(p, v, why, sizeof why);
        if (!norm)
            n += lb_reason_add(reasons, "bad_param", field, "%s: %s", p->name, why);
        else
            json_object_object_add(res, p->name, norm);
    }
    *out = res;
    return n;
}

/* ---- reading a module table (raw access; top of stack = the table) -------- */

typedef struct reader {
    lua_State *L;
    int t;            /* absolute index of the table being read */
    const char *file;
    lb_error *err;
} reader;

static int rawfield(const reader *r, const char *key)
{
    lua_pushstring(r->L, key);
    return lua_rawget(r->L, r->t);
}

/* Optional string field. Pops what it pushed. */
static int read_str(const reader *r, const char *key, bool required, size_t max, char **out)
{
    int type = rawfield(r, key);
    size_t len = 0;
    const char *s = type == LUA_TSTRING ? lua_tolstring(r->L, -1, &len) : NULL;
    int rc = 0;
    if (type == LUA_TNIL && !required)
        *out = NULL;
    else if (!s || len == 0 || len > max || strlen(s) != len)
        rc = lb_fail(r->err, r->file, "%s: '%s' must be a string of 1-%zu bytes", r->file, key, max);
    else if (!(*out = strdup(s)))
        rc = lb_fail(r->err, r->file, "out of memory");
    lua_pop(r->L, 1);
    return rc;
}

/* The table on top must be a sequence (keys 1..#t, nothing else). */
static bool is_sequence(lua_State *L, int t, size_t *n)
{
    *n = (size_t)lua_rawlen(L, t);
    size_t keys = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        keys++;
    }
    return keys == *n;
}

/* A list of strings, each checked by known() when given. Pops. */
static int read_strv(const reader *r, const char *key, bool nonempty, bool (*known)(const char *), char ***out)
{
    *out = NULL;
    size_t n = 0;
    int rc = 0;
    if (rawfield(r, key) != LUA_TTABLE || !is_sequence(r->L, lua_gettop(r->L), &n) || (nonempty && n == 0)) {
        lua_pop(r->L, 1);
        return lb_fail(r->err, r->file, "%s: '%s' must be a %slist of strings", r->file, key,
                       nonempty ? "non-empty " : "");
    }
    char **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v && i < n && rc == 0; i++) {
        lua_rawgeti(r->L, -1, (lua_Integer)i + 1);
        size_t len = 0;
        const char *s = lua_type(r->L, -1) == LUA_TSTRING ? lua_tolstring(r->L, -1, &len) : NULL;
        if (!s || len == 0 || len > LB_VALUE_LEN || strlen(s) != len)
            rc = lb_fail(r->err, r->file, "%s: '%s' item %zu must be a non-empty string", r->file, key, i + 1);
        else if (known && !known(s))
            rc = lb_fail(r->err, r->file, "%s: '%s' item '%s' is not in the documented vocabulary", r->file, key, s);
        else if (!(v[i] = strdup(s)))
            rc = lb_fail(r->err, r->file, "out of memory");
        lua_pop(r->L, 1);
    }
    lua_pop(r->L, 1);
    if (!v)
        return lb_fail(r->err, r->file, "out of memory");
    if (rc != 0)
        free_strv(v);
    else
        *out = v;
    return rc;
}

static int read_fn(const reader *r, const char *key, bool required, int *ref)
{
    int type = rawfield(r, key);
    *ref = LUA_NOREF;
    if (type == LUA_TFUNCTION) {
        *ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
        return 0;
    }
    lua_pop(r->L, 1);
    if (type == LUA_TNIL && !required)
        return 0;
    return lb_fail(r->err, r->file, "%s: '%s' must be a function", r->file, key);
}

/* Every key must be one of `allowed`: a typo ("event" for "events") is an
 * error at load rather than a silently ignored field. */
static int check_keys(const reader *r, const char *const *allowed)
{
    lua_pushnil(r->L);
    while (lua_next(r->L, r->t)) {
        lua_pop(r->L, 1);
        if (lua_type(r->L, -1) != LUA_TSTRING || in_list(allowed, lua_tostring(r->L, -1)) < 0) {
            const char *k = lua_type(r->L, -1) == LUA_TSTRING ? lua_tostring(r->L, -1) : "(non-string)";
            int rc = lb_fail(r->err, r->file, "%s: unknown field '%.64s'", r->file, k);
            lua_pop(r->L, 1);
            return rc;
        }
    }
    return 0;
}

/* ---- param specs ---------------------------------------------------------------- */

/* The Lua value on top as JSON (scalars and lists of strings: what a default
 * can be); NULL if it is neither. Pops nothing. */
static json_object *lua_to_json(lua_State *L)
{
    switch (lua_type(L, -1)) {
    case LUA_TBOOLEAN:
        return json_object_new_boolean(lua_toboolean(L, -1));
    case LUA_TNUMBER:
        return lua_isinteger(L, -1) ? json_object_new_int64(lua_tointeger(L, -1))
                                    : json_object_new_double(lua_tonumber(L, -1));
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        return json_object_new_string_len(s, (int)len);
    }
    case LUA_TTABLE: {
        json_object *a = json_object_new_array();
        size_t n = (size_t)lua_rawlen(L, -1);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i);
            json_object *item = lua_type(L, -1) == LUA_TSTRING ? lua_to_json(L) : json_object_new_int(0);
            lua_pop(L, 1);
            json_object_array_add(a, item); /* a non-string item fails validation */
        }
        return a;
    }
    default:
        return NULL;
    }
}

static int read_bound(const reader *r, const char *key, bool *has, double *out)
{
    int type = rawfield(r, key);
    *has = type == LUA_TNUMBER;
    if (*has)
        *out = lua_tonumber(r->L, -1);
    lua_pop(r->L, 1);
    if (type != LUA_TNIL && (type != LUA_TNUMBER || !isfinite(*out)))
        return lb_fail(r->err, r->file, "%s: param '%s' must be a finite number", r->file, key);
    return 0;
}

static int read_enum(const reader *r, const char *key, const char *const *names, int def, int *out)
{
    char *s = NULL;
    if (read_str(r, key, false, 32, &s) != 0)
        return -1;
    *out = s ? in_list(names, s) : def;
    free(s);
    if (*out < 0)
        return lb_fail(r->err, r->file, "%s: param field '%s' is missing or has an unknown value", r->file, key);
    return 0;
}

/* The shape rules that tie a param's fields together. */
static int check_param_shape(const reader *r, const lb_param *p, bool has_values)
{
    bool numeric = p->type == LB_PT_NUMBER || p->type == LB_PT_INTEGER;
    bool textual = p->type == LB_PT_STRING || p->type == LB_PT_LIST || p->type == LB_PT_ENUM;
    if ((p->has_min || p->has_max) && !numeric)
        return lb_fail(r->err, r->file, "%s: param '%s': min/max only apply to numbers", r->file, p->name);
    if (p->has_min && p->has_max && p->min > p->max)
        return lb_fail(r->err, r->file, "%s: param '%s': min is above max", r->file, p->name);
    if (has_values && p->type != LB_PT_LIST && p->type != LB_PT_ENUM)
        return lb_fail(r->err, r->file, "%s: param '%s': values only apply to list and enum", r->file, p->name);
    if (p->type == LB_PT_ENUM && !has_values)
        return lb_fail(r->err, r->file, "%s: param '%s': an enum needs values", r->file, p->name);
    if (p->fold != LB_CASE_KEEP && !textual)
        return lb_fail(r->err, r->file, "%s: param '%s': case only applies to text", r->file, p->name);
    return 0;
}

/* The default, validated by the same code as a segmentation's values. */
static int read_default(const reader *r, lb_param *p)
{
    if (rawfield(r, "default") == LUA_TNIL) {
        lua_pop(r->L, 1);
        return 0;
    }
    json_object *raw = lua_to_json(r->L);
    lua_pop(r->L, 1);
    if (p->required) {
        json_object_put(raw);
        return lb_fail(r->err, r->file, "%s: param '%s' is required and cannot have a default", r->file, p->name);
    }
    char why[200] = "unsupported type";
    p->def = raw ? norm_value(p, raw, why, sizeof why) : NULL;
    json_object_put(raw);
    if (!p->def)
        return lb_fail(r->err, r->file, "%s: param '%s': bad default: %s", r->file, p->name, why);
    return 0;
}

static int read_whitelist(const reader *r, lb_param *p, bool *has_values)
{
    *has_values = false;
    if (rawfield(r, "values") == LUA_TNIL) {
        lua_pop(r->L, 1);
        return 0;
    }
    lua_pop(r->L, 1);
    if (read_strv(r, "values", true, NULL, &p->values) != 0)
        return -1;
    size_t n = 0;
    while (p->values[n])
        fold(p->values[n++], p->fold);
    *has_values = true;
    return n > LB_WHITELIST_MAX ? lb_fail(r->err, r->file, "%s: param '%s': too many values", r->file, p->name) : 0;
}

/* One param spec: the table on top of the stack. */
static int read_param(const reader *outer, lb_param *p)
{
    reader r = {outer->L, lua_gettop(outer->L), outer->file, outer->err};
    int type = 0, fold_c = 0;
    char *label = NULL;
    bool has_values;
    if (check_keys(&r, lb_param_keys) != 0 || read_str(&r, "name", true, LB_ID_LEN, &p->name) != 0)
        return -1;
    if (!valid_ident(p->name))
        return lb_fail(r.err, r.file, "%s: param name '%s' must match [a-z][a-z0-9_]*", r.file, p->name);
    if (read_enum(&r, "type", lb_ptype_names, -1, &type) != 0 || read_enum(&r, "case", lb_case_names, 0, &fold_c) != 0)
        return -1;
    p->type = (lb_ptype)type;
    p->fold = (lb_case)fold_c;
    int req = rawfield(&r, "required");
    p->required = req == LUA_TBOOLEAN && lua_toboolean(r.L, -1);
    lua_pop(r.L, 1);
    if (req != LUA_TNIL && req != LUA_TBOOLEAN)
        return lb_fail(r.err, r.file, "%s: param '%s': required must be a boolean", r.file, p->name);
    if (read_str(&r, "label", false, LB_LABEL_LEN, &label) != 0)
        return -1;
    free(label); /* checked here; the catalogue reads it again */
    if (read_str(&r, "description", false, LB_DESC_LEN, &label) != 0)
        return -1;
    free(label);
    if (read_bound(&r, "min", &p->has_min, &p->min) != 0 || read_bound(&r, "max", &p->has_max, &p->max) != 0 ||
        read_whitelist(&r, p, &has_values) != 0 || check_param_shape(&r, p, has_values) != 0)
        return -1;
    return read_default(&r, p);
}

static json_object *param_info(lua_State *L, const lb_param *p)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(p->name));
    json_object_object_add(o, "type", json_object_new_string(lb_ptype_names[p->type]));
    json_object_object_add(o, "required", json_object_new_boolean(p->required));
    static const char *const texts[] = {"label", "description", NULL};
    for (int i = 0; texts[i]; i++) {
        lua_pushstring(L, texts[i]);
        if (lua_rawget(L, -2) == LUA_TSTRING)
            json_object_object_add(o, texts[i], json_object_new_string(lua_tostring(L, -1)));
        lua_pop(L, 1);
    }
    if (p->def)
        json_object_object_add(o, "default", json_object_get(p->def));
    if (p->has_min)
        json_object_object_add(o, "min", p->type == LB_PT_INTEGER ? json_object_new_int64((int64_t)p->min)
                                                                   : json_object_new_double(p->min));
    if (p->has_max)
        json_object_object_add(o, "max", p->type == LB_PT_INTEGER ? json_object_new_int64((int64_t)p->max)
                                                                   : json_object_new_double(p->max));
    if (p->values)
        json_object_object_add(o, "values", strv_json(p->values));
    return o;
}

static int read_params(const reader *r, lb_module *m, json_object *info)
{
    json_object *arr = json_object_new_array();
    json_object_object_add(info, "params", arr);
    int type = rawfield(r, "params");
    size_t n = 0;
    if (type == LUA_TNIL) {
        lua_pop(r->L, 1);
        return 0;
    }
    if (type != LUA_TTABLE || !is_sequence(r->L, lua_gettop(r->L), &n)) {
        lua_pop(r->L, 1);
        return lb_fail(r->err, r->file, "%s: 'params' must be a list of param tables", r->file);
    }
    m->params = calloc(n ? n : 1, sizeof *m->params);
    int rc = m->params ? 0 : lb_fail(r->err, r->file, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (lua_rawgeti(r->L, -1, (lua_Integer)i + 1) != LUA_TTABLE)
            rc = lb_fail(r->err, r->file, "%s: params[%zu] must be a table", r->file, i + 1);
        else if ((rc = read_param(r, &m->params[i])) == 0 && find_param(m, m->params[i].name))
            rc = lb_fail(r->err, r->file, "%s: param '%s' is declared twice", r->file, m->params[i].name);
        m->n_params = i + 1; /* so lb_module_clear frees what was read */
        if (rc == 0)
            json_object_array_add(arr, param_info(r->L, &m->params[i]));
        lua_pop(r->L, 1);
    }
    lua_pop(r->L, 1);
    return rc;
}

/* ---- modules ----------------------------------------------------------------------- */

static int read_text_fields(const reader *r, lb_module *m, json_object *info)
{
    static const struct {
        const char *key;
        size_t max;
        bool trigger_only;
    } fields[] = {{"label", LB_LABEL_LEN, false}, {"group", LB_LABEL_LEN, true}, {"description", LB_DESC_LEN, false}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].trigger_only && m->kind != LB_MOD_TRIGGER)
            continue;
        char *s = NULL;
        if (read_str(r, fields[i].key, m->kind != LB_MOD_CUSTOM, fields[i].max, &s) != 0)
            return -1;
        if (s)
            json_object_object_add(info, fields[i].key, json_object_new_string(s));
        free(s);
    }
    return 0;
}

static int read_module(const reader *r, lb_module *m)
{
    bool trig = m->kind == LB_MOD_TRIGGER;
    const char *const *keys = trig ? lb_trigger_keys : m->kind == LB_MOD_CONDITION ? lb_condition_keys : lb_custom_keys;
    json_object *info = json_object_new_object();
    m->info = info;
    if (check_keys(r, keys) != 0)
        return -1;
    if (m->kind != LB_MOD_CUSTOM) {
        if (read_str(r, "id", true, LB_ID_LEN, &m->id) != 0)
            return -1;
        if (!valid_ident(m->id))
            return lb_fail(r->err, r->file, "%s: id '%s' must match [a-z][a-z0-9_]*", r->file, m->id);
        json_object_object_add(info, "id", json_object_new_string(m->id));
    }
    if (read_text_fields(r, m, info) != 0)
        return -1;
    if (trig) {
        if (read_strv(r, "events", true, known_event, &m->events) != 0 ||
            read_strv(r, "carries", false, known_tag, &m->tags) != 0)
            return -1;
        json_object_object_add(info, "events", strv_json(m->events));
        json_object_object_add(info, "carries", strv_json(m->tags));
    } else if (m->kind == LB_MOD_CONDITION || rawfield(r, "needs") != LUA_TNIL) {
        if (m->kind == LB_MOD_CUSTOM)
            lua_pop(r->L, 1);
        if (read_strv(r, "needs", false, known_tag, &m->tags) != 0)
            return -1;
        json_object_object_add(info, "needs", strv_json(m->tags));
    } else {
        lua_pop(r->L, 1);
    }
    if (m->kind != LB_MOD_CUSTOM && read_params(r, m, info) != 0)
        return -1;
    if (read_fn(r, trig ? "match" : "test", true, &m->fn_ref) != 0)
        return -1;
    return m->kind == LB_MOD_CUSTOM ? 0 : read_fn(r, "check", false, &m->check_ref);
}

struct build_ctx {
    lb_mod_kind kind;
    const char *file;
    lb_module *m;
    lb_error *err;
    int rc;
};

/* Runs protected (lb_sb_protect): args are ctx and the chunk's result. */
static int build_tramp(lua_State *L)
{
    struct build_ctx *c = lua_touserdata(L, 1);
    lb_module *m = c->m;
    if (c->kind == LB_MOD_CUSTOM && lua_type(L, 2) == LUA_TFUNCTION) {
        lua_pushvalue(L, 2); /* a bare function is the test */
        m->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        m->info = json_object_new_object();
        c->rc = 0;
        return 0;
    }
    if (lua_type(L, 2) != LUA_TTABLE) {
        c->rc = lb_fail(c->err, c->file, "%s: must return a %s, not a %s", c->file,
                        c->kind == LB_MOD_CUSTOM ? "function or a table" : "table", luaL_typename(L, 2));
        return 0;
    }
    reader r = {L, 2, c->file, c->err};
    c->rc = read_module(&r, m);
    return 0;
}

int lb_module_build(lb_sandbox *sb, lb_mod_kind kind, const char *file, lb_module *m, lb_error *err)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->fn_ref = m->check_ref = LUA_NOREF;
    m->file = strdup(file);
    struct build_ctx c = {kind, file, m, err, -1};
    if (!m->file) {
        lua_pop(sb->L, 1);
        return lb_fail(err, file, "out of memory");
    }
    if (lb_sb_protect(sb, build_tramp, &c, 1, file, err) != 0 || c.rc != 0) {
        lb_module_clear(sb->L, m);
        return -1;
    }
    return 0;
}

void lb_module_clear(lua_State *L, lb_module *m)
{
    if (L) {
        luaL_unref(L, LUA_REGISTRYINDEX, m->fn_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, m->check_ref);
    }
    for (size_t i = 0; i < m->n_params; i++) {
        free(m->params[i].name);
        free_strv(m->params[i].values);
        json_object_put(m->params[i].def);
    }
    free(m->params);
    free_strv(m->events);
    free_strv(m->tags);
    json_object_put(m->info);
    free(m->id);
    free(m->file);
    free(m->key);
    memset(m, 0, sizeof *m);
    m->fn_ref = m->check_ref = LUA_NOREF;
}
