/* segmentation.c: the segmentation model (segmentation.h): reading a
 * declaration, writing it back, and the consistency checks. The hot path
 * (matching events, making jobs) is seg_engine.c's. */
#include "segmentation.h"

#include <listboss/plugin.h>

#include "json_get.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what one declaration may hold: far above any real segmentation,
 * low enough that a hostile file cannot make the checks quadratic in MBs. */
#define MAX_CONDITIONS 32
#define MAX_ACTIONS 32
#define MAX_PARAMS 32

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- reasons ---------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int reason(json_object *reasons, const char *code, const char *field,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lb_reason_vadd(reasons, code, field, fmt, ap);
    va_end(ap);
    return 1;
}

/* ---- free ------------------------------------------------------------------------ */

static void action_clear(lb_seg_action *a)
{
    for (size_t i = 0; i < a->n_params; i++) {
        free(a->keys[i]);
        free(a->values[i]);
    }
    free(a->keys);
    free(a->values);
    free(a->action);
    free(a->params_json);
}

void lb_segmentation_free(lb_segmentation *seg)
{
    if (!seg)
        return;
    free(seg->account);
    free(seg->name);
    free(seg->product);
    free(seg->trigger);
    json_object_put(seg->trigger_params);
    for (size_t i = 0; i < seg->n_conditions; i++) {
        free(seg->conditions[i]);
        json_object_put(seg->condition_params[i]);
    }
    free(seg->conditions);
    free(seg->condition_params);
    free(seg->custom_file);
    free(seg->custom_inline);
    free(seg->integration);
    for (size_t i = 0; i < seg->n_actions; i++)
        action_clear(&seg->actions[i]);
    free(seg->actions);
    json_object_put(seg->reasons);
    free(seg);
}

/* ---- parse: small typed readers -------------------------------------------------- */

static int oom(lb_error *err)
{
    return lb_fail(err, "", "out of memory");
}

/* A required or optional non-empty string of at most max bytes into *out (a copy). */
static int read_string(json_object *v, const char *field, bool required, size_t max, char **out, lb_error *err)
{
    const char *s = NULL;
    int rc = lb_jval_string(v, field, &s, err);
    if (rc < 0)
        return -1;
    if (rc == 0 || *s == '\0')
        return required ? lb_fail(err, field, "is required") : 0;
    if (strlen(s) > max)
        return lb_fail(err, field, "is too long (at most %zu bytes)", max);
    *out = strdup(s);
    return *out ? 0 : oom(err);
}

static bool id_chars(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

/* A params object (absent or null: {}) deep-copied for the rules host. */
static int read_rule_params(json_object *v, const char *field, json_object **out, lb_error *err)
{
    if (v && !json_object_is_type(v, json_type_object))
        return lb_fail(err, field, "must be an object");
    if (!v)
        *out = json_object_new_object();
    else if (json_object_deep_copy(v, out, NULL) != 0)
        *out = NULL;
    return *out ? 0 : oom(err);
}

/* Refuses keys of obj that are not in allowed (NULL-terminated) or ignored. */
static int only_keys(json_object *obj, const char *prefix, const char *const *allowed, const char *const *ignored,
                     lb_error *err)
{
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        for (size_t i = 0; ignored && ignored[i] && !ok; i++)
            ok = strcmp(key, ignored[i]) == 0;
        if (!ok) {
            char f[96];
            snprintf(f, sizeof f, "%s%s%.64s", prefix, *prefix ? "." : "", key);
            return lb_fail(err, f, "unknown field");
        }
    }
    return 0;
}

static json_object *member(json_object *obj, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(obj, key, &v);
    return v;
}

/* An optional array (absent or null: n = 0) of at most max elements. */
static int read_array(json_object *v, const char *field, size_t max, size_t *n, lb_error *err)
{
    *n = 0;
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_array))
        return lb_fail(err, field, "must be an array");
    *n = json_object_array_length(v);
    if (*n > max)
        return lb_fail(err, field, "has too many entries (at most %zu)", max);
    return 0;
}

/* ---- parse: parts ---------------------------------------------------------------------- */

static const char *const RULE_KEYS[] = {"id", "params", NULL};

static int parse_trigger(lb_segmentation *seg, json_object *v, lb_error *err)
{
    if (!v)
        return lb_fail(err, "trigger", "is required");
    if (!json_object_is_type(v, json_type_object))
        return lb_fail(err, "trigger", "must be an object");
    if (only_keys(v, "trigger", RULE_KEYS, NULL, err) != 0 ||
        read_string(member(v, "id"), "trigger.id", true, LB_SEG_NAME_MAX, &seg->trigger, err) != 0)
        return -1;
    return read_rule_params(member(v, "params"), "trigger.params", &seg->trigger_params, err);
}

static int parse_condition(lb_segmentation *seg, json_object *v, size_t i, lb_error *err)
{
    char f[96], fid[96], fparams[96];
    snprintf(f, sizeof f, "conditions[%zu]", i + 1);
    snprintf(fid, sizeof fid, "%s.id", f);
    snprintf(fparams, sizeof fparams, "%s.params", f);
    if (!v || !json_object_is_type(v, json_type_object))
        return lb_fail(err, f, "must be an object");
    if (only_keys(v, f, RULE_KEYS, NULL, err) != 0 ||
        read_string(member(v, "id"), fid, true, LB_SEG_NAME_MAX, &seg->conditions[i], err) != 0)
        return -1;
    return read_rule_params(member(v, "params"), fparams, &seg->condition_params[i], err);
}

static int parse_conditions(lb_segmentation *seg, json_object *v, lb_error *err)
{
    size_t n = 0;
    if (read_array(v, "conditions", MAX_CONDITIONS, &n, err) != 0)
        return -1;
    if (n == 0)
        return 0;
    seg->conditions = calloc(n, sizeof *seg->conditions);
    seg->condition_params = calloc(n, sizeof *seg->condition_params);
    if (!seg->conditions || !seg->condition_params)
        return oom(err);
    seg->n_conditions = n; /* before filling, so a failure frees what was read */
    for (size_t i = 0; i < n; i++)
        if (parse_condition(seg, json_object_array_get_idx(v, i), i, err) != 0)
            return -1;
    return 0;
}

static const char *const CUSTOM_KEYS[] = {"file", "inline", NULL};

static int parse_custom(lb_segmentation *seg, json_object *v, lb_error *err)
{
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_object))
        return lb_fail(err, "custom", "must be an object");
    if (only_keys(v, "custom", CUSTOM_KEYS, NULL, err) != 0 ||
        read_string(member(v, "file"), "custom.file", false, 255, &seg->custom_file, err) != 0 ||
        read_string(member(v, "inline"), "custom.inline", false, SIZE_MAX, &seg->custom_inline, err) != 0)
        return -1;
    if (seg->custom_file && seg->custom_inline)
        return lb_fail(err, "custom", "set file or inline, not both");
    if (!seg->custom_file && !seg->custom_inline)
        return lb_fail(err, "custom", "needs file or inline");
    return 0;
}

/* The shortest text that reads back as d (0.1 is "0.1", not
 * "0.10000000000000001"): the form a user wrote and expects to see sent. */
static void double_text(double d, char *buf, size_t cap)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* One action param value as text: a string as is; a finite number or a
 * boolean spelled as JSON spells it (the Lua configuration produces both). */
static int param_value(json_object *v, const char *field, char **out, lb_error *err)
{
    const char *s = NULL;
    char num[64];
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_boolean)) {
        snprintf(num, sizeof num, "%s", json_object_get_string(v));
        s = num;
    } else if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!isfinite(d))
            return lb_fail(err, field, "must be a finite number");
        double_text(d, num, sizeof num);
        s = num;
    } else if (json_object_is_type(v, json_type_string)) {
        if (lb_jval_string(v, field, &s, err) < 0)
            return -1;
    } else {
        return lb_fail(err, field, "must be a string, a number or a boolean (params are flat)");
    }
    *out = strdup(s);
    return *out ? 0 : oom(err);
}

/* {"tag":"buyer"}: the text each job carries, built once here so the hot
 * path only copies it. */
static char *params_to_json(const lb_seg_action *a)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    for (size_t i = 0; i < a->n_params; i++)
        json_object_object_add(o, a->keys[i], json_object_new_string(a->values[i]));
    char *s = dupstr(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

static int parse_action_params(lb_seg_action *a, json_object *v, const char *prefix, lb_error *err)
{
    char f[96];
    snprintf(f, sizeof f, "%s.params", prefix);
    if (!v)
        return (a->params_json = params_to_json(a)) ? 0 : oom(err);
    if (!json_object_is_type(v, json_type_object))
        return lb_fail(err, f, "must be an object");
    size_t n = (size_t)json_object_object_length(v);
    if (n > MAX_PARAMS)
        return lb_fail(err, f, "has too many entries (at most %d)", MAX_PARAMS);
    a->keys = calloc(n ? n : 1, sizeof *a->keys);
    a->values = calloc(n ? n : 1, sizeof *a->values);
    if (!a->keys || !a->values)
        return oom(err);
    json_object_object_foreach(v, key, val)
    {
        snprintf(f, sizeof f, "%s.params.%.64s", prefix, key);
        if (*key == '\0' || strlen(key) > LB_SEG_NAME_MAX)
            return lb_fail(err, f, "is not a valid parameter name");
        size_t i = a->n_params;
        a->keys[i] = strdup(key);
        a->n_params++;
        if (!a->keys[i])
            return oom(err);
        if (param_value(val, f, &a->values[i], err) != 0)
            return -1;
    }
    return (a->params_json = params_to_json(a)) ? 0 : oom(err);
}

static const char *const ACTION_KEYS[] = {"action", "params", NULL};

static int parse_action(lb_seg_action *a, json_object *v, size_t i, lb_error *err)
{
    char f[96], fa[96];
    snprintf(f, sizeof f, "actions[%zu]", i + 1);
    snprintf(fa, sizeof fa, "%s.action", f);
    if (!v || !json_object_is_type(v, json_type_object))
        return lb_fail(err, f, "must be an object");
    if (only_keys(v, f, ACTION_KEYS, NULL, err) != 0 ||
        read_string(member(v, "action"), fa, true, LB_SEG_NAME_MAX, &a->action, err) != 0)
        return -1;
    return parse_action_params(a, member(v, "params"), f, err);
}

static int parse_actions(lb_segmentation *seg, json_object *v, lb_error *err)
{
    size_t n = 0;
    if (!v)
        return lb_fail(err, "actions", "is required");
    if (read_array(v, "actions", MAX_ACTIONS, &n, err) != 0)
        return -1;
    if (n == 0)
        return lb_fail(err, "actions", "needs at least one action");
    seg->actions = calloc(n, sizeof *seg->actions);
    if (!seg->actions)
        return oom(err);
    seg->n_actions = n;
    for (size_t i = 0; i < n; i++)
        if (parse_action(&seg->actions[i], json_object_array_get_idx(v, i), i, err) != 0)
            return -1;
    return 0;
}

static const char *const OPTION_KEYS[] = {"send_billet_link", NULL};

static int parse_options(lb_segmentation *seg, json_object *v, lb_error *err)
{
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_object))
        return lb_fail(err, "options", "must be an object");
    if (only_keys(v, "options", OPTION_KEYS, NULL, err) != 0)
        return -1;
    return lb_jval_bool(member(v, "send_billet_link"), "options.send_billet_link", &seg->send_billet_link, err) < 0
               ? -1
               : 0;
}

static int parse_identity(lb_segmentation *seg, json_object *decl, lb_error *err)
{
    int64_t id = 0;
    int rc = lb_jval_int(member(decl, "id"), "id", &id, err);
    if (rc < 0)
        return -1;
    if (rc == 1 && id < 1)
        return lb_fail(err, "id", "must be a positive integer");
    seg->id = id;
    char product[LB_ID_MAX];
    rc = lb_jval_id(member(decl, "product"), "product", product, sizeof product, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return lb_fail(err, "product", "is required");
    if (!(seg->product = strdup(product)))
        return oom(err);
    if (read_string(member(decl, "name"), "name", true, LB_SEG_NAME_MAX, &seg->name, err) != 0 ||
        read_string(member(decl, "integration"), "integration", true, LB_SEG_NAME_MAX, &seg->integration, err) != 0)
        return -1;
    if (!id_chars(seg->integration))
        return lb_fail(err, "integration", "must be an integration id ([a-z0-9_-]+)");
    seg->enabled = true;
    return lb_jval_bool(member(decl, "enabled"), "enabled", &seg->enabled, err) < 0 ? -1 : 0;
}

static void build_spec(lb_segmentation *seg)
{
    lb_rule_spec *s = &seg->spec;
    s->trigger = seg->trigger;
    s->trigger_params = seg->trigger_params;
    s->n_conditions = seg->n_conditions;
    s->conditions = (const char **)seg->conditions; /* read-only to the rules host */
    s->condition_params = seg->condition_params;
    s->custom_file = seg->custom_file;
    s->custom_inline = seg->custom_inline;
}

static const char *const TOP_KEYS[] = {"id",      "name",    "product", "trigger", "conditions",
                                       "custom",  "integration", "actions", "options", "enabled", NULL};
/* what lb_segmentation_to_json adds: accepted back, never read */
static const char *const READ_ONLY_KEYS[] = {"account", "status", "reasons", NULL};

static int parse_into(lb_segmentation *seg, json_object *decl, lb_error *err)
{
    if (!decl || !json_object_is_type(decl, json_type_object))
        return lb_fail(err, "", "a segmentation must be a JSON object");
    if (only_keys(decl, "", TOP_KEYS, READ_ONLY_KEYS, err) != 0 || parse_identity(seg, decl, err) != 0 ||
        parse_trigger(seg, member(decl, "trigger"), err) != 0 ||
        parse_conditions(seg, member(decl, "conditions"), err) != 0 ||
        parse_custom(seg, member(decl, "custom"), err) != 0 || parse_actions(seg, member(decl, "actions"), err) != 0 ||
        parse_options(seg, member(decl, "options"), err) != 0)
        return -1;
    if (!(seg->reasons = json_object_new_array()))
        return oom(err);
    build_spec(seg);
    return 0;
}

lb_segmentation *lb_segmentation_parse(json_object *decl, const char *account, lb_error *err)
{
    lb_error_clear(err);
    lb_segmentation *seg = calloc(1, sizeof *seg);
    if (!seg) {
        oom(err);
        return NULL;
    }
    if (!account || !*account) {
        lb_fail(err, "account", "is required");
    } else if (!(seg->account = strdup(account))) {
        oom(err);
    } else if (parse_into(seg, decl, err) == 0) {
        seg->status = LB_SEG_OK;
        return seg;
    }
    lb_segmentation_free(seg);
    return NULL;
}

static json_object *parse_json_text(const char *text, lb_error *err)
{
    if (!text) {
        lb_fail(err, "", "no JSON text");
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        oom(err);
        return NULL;
    }
    size_t len = strlen(text);
    json_object *root = json_tokener_parse_ex(tok, text, (int)(len > INT32_MAX ? INT32_MAX : len));
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr != json_tokener_success || !root) {
        json_object_put(root);
        lb_fail(err, "", "invalid JSON: %s", json_tokener_error_desc(jerr));
        return NULL;
    }
    for (; used < len; used++)
        if (!strchr(" \t\r\n", text[used])) {
            json_object_put(root);
            lb_fail(err, "", "invalid JSON: trailing data");
            return NULL;
        }
    return root;
}

lb_segmentation *lb_segmentation_parse_text(const char *text, const char *account, lb_error *err)
{
    json_object *root = parse_json_text(text, err);
    if (!root)
        return NULL;
    lb_segmentation *seg = lb_segmentation_parse(root, account, err);
    json_object_put(root);
    return seg;
}

static void free_all(lb_segmentation **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lb_segmentation_free(v[i]);
    free(v);
}

int lb_segmentations_parse_array(const char *text, const char *account, lb_segmentation ***out, size_t *n,
                                 lb_error *err)
{
    *out = NULL;
    *n = 0;
    json_object *root = parse_json_text(text, err);
    if (!root)
        return -1;
    if (!json_object_is_type(root, json_type_array)) {
        json_object_put(root);
        return lb_fail(err, "", "must be a JSON array of segmentations");
    }
    size_t len = json_object_array_length(root);
    lb_segmentation **v = calloc(len ? len : 1, sizeof *v);
    if (!v) {
        json_object_put(root);
        return oom(err);
    }
    for (size_t i = 0; i < len; i++) {
        v[i] = lb_segmentation_parse(json_object_array_get_idx(root, i), account, err);
        if (!v[i]) {
            char f[96];
            snprintf(f, sizeof f, "[%zu]%s%.80s", i + 1, err && err->field[0] ? "." : "", err ? err->field : "");
            if (err)
                snprintf(err->field, sizeof err->field, "%s", f);
            free_all(v, i);
            json_object_put(root);
            return -1;
        }
    }
    json_object_put(root);
    *out = v;
    *n = len;
    return 0;
}

/* ---- serialize ------------------------------------------------------------------------------ */

const char *lb_segmentation_state_name(const lb_segmentation *seg)
{
    if (!seg->enabled)
        return "disabled";
    return seg->status == LB_SEG_OK ? "ok" : "needs_review";
}

static json_object *copy_of(json_object *o)
{
    json_object *c = NULL;
    if (!o || json_object_deep_copy(o, &c, NULL) != 0)
        return json_object_new_object();
    return c;
}

static json_object *rule_json(const char *id, json_object *params)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "params", copy_of(params));
    return o;
}

static json_object *actions_json(const lb_segmentation *seg)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < seg->n_actions; i++) {
        const lb_seg_action *a = &seg->actions[i];
        json_object *o = json_object_new_object(), *p = json_object_new_object();
        for (size_t k = 0; k < a->n_params; k++)
            json_object_object_add(p, a->keys[k], json_object_new_string(a->values[k]));
        json_object_object_add(o, "action", json_object_new_string(a->action));
        json_object_object_add(o, "params", p);
        json_object_array_add(arr, o);
    }
    return arr;
}

json_object *lb_segmentation_to_json(const lb_segmentation *seg)
{
    json_object *o = json_object_new_object();
    if (seg->id)
        json_object_object_add(o, "id", json_object_new_int64(seg->id));
    json_object_object_add(o, "account", json_object_new_string(seg->account));
    json_object_object_add(o, "name", json_object_new_string(seg->name));
    json_object_object_add(o, "product", json_object_new_string(seg->product));
    json_object_object_add(o, "trigger", rule_json(seg->trigger, seg->trigger_params));
    json_object *conds = json_object_new_array();
    for (size_t i = 0; i < seg->n_conditions; i++)
        json_object_array_add(conds, rule_json(seg->conditions[i], seg->condition_params[i]));
    json_object_object_add(o, "conditions", conds);
    if (seg->custom_file || seg->custom_inline) {
        json_object *c = json_object_new_object();
        json_object_object_add(c, seg->custom_file ? "file" : "inline",
                               json_object_new_string(seg->custom_file ? seg->custom_file : seg->custom_inline));
        json_object_object_add(o, "custom", c);
    }
    json_object_object_add(o, "integration", json_object_new_string(seg->integration));
    json_object_object_add(o, "actions", actions_json(seg));
    json_object *opts = json_object_new_object();
    json_object_object_add(opts, "send_billet_link", json_object_new_boolean(seg->send_billet_link));
    json_object_object_add(o, "options", opts);
    json_object_object_add(o, "enabled", json_object_new_boolean(seg->enabled));
    json_object_object_add(o, "status", json_object_new_string(lb_segmentation_state_name(seg)));
    json_object *reasons = NULL;
    if (!seg->reasons || json_object_deep_copy(seg->reasons, &reasons, NULL) != 0)
        reasons = json_object_new_array();
    json_object_object_add(o, "reasons", reasons);
    return o;
}

/* ---- consistency ------------------------------------------------------------------------------ */

typedef struct check_env {
    const lb_seg_ctx *ctx;
    lb_segmentation *const *sibs;
    size_t n_sibs;
    bool skip_same_id;      /* check(): a sibling with seg's id is the version being replaced */
    json_object *catalogue; /* fetched on first need (only billet checks read it); owned */
} check_env;

/* The rules host names the spec's parts, 0-based ("condition_params[0].in");
 * a segmentation's reasons name the declaration's fields, 1-based, so a
 * page can point at the input. Anything else passes unchanged. */
static void map_rule_field(const char *in, char *out, size_t cap)
{
    static const struct { const char *prefix, *to, *tail; } map[] = {
        {"condition_params[", "conditions[", "].params"},
        {"conditions[", "conditions[", "].id"},
    };
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
        size_t plen = strlen(map[k].prefix);
        if (strncmp(in, map[k].prefix, plen) != 0)
            continue;
        char *end = NULL;
        unsigned long idx = strtoul(in + plen, &end, 10);
        if (end != in + plen && *end == ']') {
            snprintf(out, cap, "%s%lu%s%s", map[k].to, idx + 1, map[k].tail, end + 1);
            return;
        }
    }
    if (strcmp(in, "trigger") == 0)
        snprintf(out, cap, "trigger.id");
    else if (strncmp(in, "trigger_params", 14) == 0)
        snprintf(out, cap, "trigger.params%s", in + 14);
    else if (strcmp(in, "custom_file") == 0)
        snprintf(out, cap, "custom.file");
    else if (strcmp(in, "custom_inline") == 0)
        snprintf(out, cap, "custom.inline");
    else
        snprintf(out, cap, "%s", in);
}

static int check_rules(const lb_segmentation *seg, check_env *env, json_object *reasons)
{
    if (!env->ctx->rules)
        return reason(reasons, "rules_unavailable", "trigger.id", "no rule set is loaded");
    size_t before = reasons ? json_object_array_length(reasons) : 0;
    int n = lb_rules_check(env->ctx->rules, &seg->spec, reasons);
    for (size_t i = before; reasons && i < json_object_array_length(reasons); i++) {
        json_object *r = json_object_array_get_idx(reasons, i);
        json_object *f = member(r, "field");
        char mapped[96];
        map_rule_field(f ? json_object_get_string(f) : "", mapped, sizeof mapped);
        json_object_object_add(r, "field", json_object_new_string(mapped));
    }
    return n;
}

static const lb_seg_integration *find_integration(const lb_seg_ctx *ctx, const char *account, const char *id)
{
    for (size_t i = 0; i < ctx->n_integrations; i++) {
        const lb_seg_integration *ig = &ctx->integrations[i];
        if (ig->account && ig->id && strcmp(ig->account, account) == 0 && strcmp(ig->id, id) == 0)
            return ig;
    }
    return NULL;
}

static const lb_action_decl *find_decl(const lb_plugin *p, const char *name)
{
    for (const lb_action_decl *d = p->actions; d && d->name; d++)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

static const char *find_param(const lb_seg_action *a, const char *name)
{
    for (size_t i = 0; i < a->n_params; i++)
        if (strcmp(a->keys[i], name) == 0)
            return a->values[i];
    return NULL;
}

static bool declared_param(const lb_action_decl *d, const char *name)
{
    for (const lb_param_decl *p = d->params; p && p->name; p++)
        if (strcmp(p->name, name) == 0)
            return true;
    return false;
}

static int check_action_params(const lb_seg_action *a, const lb_action_decl *d, size_t i, json_object *reasons)
{
    int n = 0;
    char f[96];
    for (const lb_param_decl *p = d->params; p && p->name; p++) {
        if (!(p->flags & LB_PARAM_REQUIRED))
            continue;
        const char *v = find_param(a, p->name);
        snprintf(f, sizeof f, "actions[%zu].params.%s", i + 1, p->name);
        if (!v)
            n += reason(reasons, "missing_param", f, "action '%s' needs parameter '%s'", a->action, p->name);
        else if (!*v)
            n += reason(reasons, "bad_param", f, "parameter '%s' must not be empty", p->name);
    }
    for (size_t k = 0; k < a->n_params; k++) {
        if (declared_param(d, a->keys[k]))
            continue;
        snprintf(f, sizeof f, "actions[%zu].params.%.64s", i + 1, a->keys[k]);
        n += reason(reasons, "unknown_param", f, "action '%s' has no parameter '%.64s'", a->action, a->keys[k]);
    }
    return n;
}

static const char *provider_name(const lb_seg_integration *ig)
{
    return ig->provider ? ig->provider : ig->plugin && ig->plugin->name ? ig->plugin->name : "?";
}

/* The integration, then every action against its provider's declarations. */
static int check_actions(const lb_segmentation *seg, check_env *env, json_object *reasons)
{
    const lb_seg_integration *ig = find_integration(env->ctx, seg->account, seg->integration);
    if (!ig)
        return reason(reasons, "unknown_integration", "integration", "account '%s' has no integration '%s'",
                      seg->account, seg->integration);
    if (!ig->plugin)
        return reason(reasons, "provider_not_loaded", "integration",
                      "the provider '%s' of integration '%s' is not loaded", provider_name(ig), seg->integration);
    int n = 0;
    for (size_t i = 0; i < seg->n_actions; i++) {
        const lb_seg_action *a = &seg->actions[i];
        const lb_action_decl *d = find_decl(ig->plugin, a->action);
        char f[96];
        snprintf(f, sizeof f, "actions[%zu].action", i + 1);
        if (!d)
            n += reason(reasons, "unknown_action", f, "provider '%s' has no action '%s'", provider_name(ig),
                        a->action);
        else
            n += check_action_params(a, d, i, reasons);
    }
    return n;
}

/* The trigger's "carries" from the catalogue, or NULL (unknown trigger:
 * already reported by the rules check). */
static json_object *trigger_carries(check_env *env, const char *trigger)
{
    if (!env->ctx->rules)
        return NULL;
    if (!env->catalogue)
        env->catalogue = lb_rules_catalogue(env->ctx->rules);
    json_object *triggers = member(env->catalogue, "triggers");
    size_t n = triggers ? json_object_array_length(triggers) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(triggers, i);
        const char *id = json_object_get_string(member(t, "id"));
        if (id && strcmp(id, trigger) == 0)
            return member(t, "carries");
    }
    return NULL;
}

static bool array_has(json_object *arr, const char *s)
{
    size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = json_object_get_string(json_object_array_get_idx(arr, i));
        if (v && strcmp(v, s) == 0)
            return true;
    }
    return false;
}

static int check_billet(const lb_segmentation *seg, check_env *env, json_object *reasons)
{
    if (!seg->send_billet_link)
        return 0;
    int n = 0;
    const lb_seg_integration *ig = find_integration(env->ctx, seg->account, seg->integration);
    if (ig && ig->plugin && !ig->plugin->can_send_billet)
        n += reason(reasons, "billet_not_supported", "options.send_billet_link",
                    "provider '%s' cannot send the bank-slip link", provider_name(ig));
    json_object *carries = trigger_carries(env, seg->trigger);
    if (carries && !array_has(carries, "billet"))
        n += reason(reasons, "billet_not_carried", "options.send_billet_link",
                    "trigger '%s' carries no bank slip, so there is no link to send", seg->trigger);
    return n;
}

/* Everything but prerequisites: what does not depend on the siblings. */
static int check_local(const lb_segmentation *seg, check_env *env, json_object *reasons)
{
    return check_rules(seg, env, reasons) + check_actions(seg, env, reasons) + check_billet(seg, env, reasons);
}

static bool has_action(const lb_segmentation *s, const char *action, const char *param, const char *value)
{
    for (size_t i = 0; i < s->n_actions; i++) {
        if (strcmp(s->actions[i].action, action) != 0)
            continue;
        const char *v = param ? find_param(&s->actions[i], param) : NULL;
        if (!param || (v && strcmp(v, value) == 0))
            return true;
    }
    return false;
}

/* A sibling provides only if it will run: enabled and consistent. */
static bool sibling_provides(const lb_segmentation *seg, const lb_segmentation *sib, const check_env *env,
                             const char *action, const char *param, const char *value)
{
    if (sib == seg || (env->skip_same_id && seg->id && sib->id == seg->id))
        return false;
    if (!sib->enabled || sib->status != LB_SEG_OK || strcmp(sib->account, seg->account) != 0 ||
        strcmp(sib->product, seg->product) != 0 || strcmp(sib->integration, seg->integration) != 0)
        return false;
    return has_action(sib, action, param, value);
}

static bool prerequisite_met(const lb_segmentation *seg, const check_env *env, const char *action,
                             const char *param, const char *value)
{
    if (has_action(seg, action, param, value))
        return true;
    for (size_t i = 0; i < env->n_sibs; i++)
        if (sibling_provides(seg, env->sibs[i], env, action, param, value))
            return true;
    return false;
}

static int check_prereqs(const lb_segmentation *seg, const check_env *env, json_object *reasons)
{
    const lb_seg_integration *ig = find_integration(env->ctx, seg->account, seg->integration);
    if (!ig || !ig->plugin)
        return 0; /* reported by check_actions */
    int n = 0;
    for (size_t i = 0; i < seg->n_actions; i++) {
        const lb_seg_action *a = &seg->actions[i];
        const lb_action_decl *d = find_decl(ig->plugin, a->action);
        if (!d || !d->requires_action)
            continue;
        const char *value = d->requires_param ? find_param(a, d->requires_param) : NULL;
        if (d->requires_param && (!value || !*value))
            continue; /* reported as a missing or empty param */
        if (prerequisite_met(seg, env, d->requires_action, d->requires_param, value))
            continue;
        char f[96];
        if (d->requires_param)
            snprintf(f, sizeof f, "actions[%zu].params.%s", i + 1, d->requires_param);
        else
            snprintf(f, sizeof f, "actions[%zu].action", i + 1);
        n += reason(reasons, "missing_prerequisite", f,
                    "'%s'%s%s%s%s needs a '%s' of the same %s in an enabled, consistent segmentation of product "
                    "'%s' on integration '%s'",
                    a->action, value ? " of " : "", value ? d->requires_param : "", value ? " " : "",
                    value ? value : "", d->requires_action, value ? d->requires_param : "lead", seg->product,
                    seg->integration);
    }
    return n;
}

int lb_segmentation_check(const lb_segmentation *seg, const lb_seg_ctx *ctx, json_object *reasons_out)
{
    check_env env = {ctx, ctx->siblings, ctx->n_siblings, true, NULL};
    int n = check_local(seg, &env, reasons_out) + check_prereqs(seg, &env, reasons_out);
    json_object_put(env.catalogue);
    return n;
}

/* ---- re-check ------------------------------------------------------------------------------------ */

typedef struct ranked {
    lb_segmentation *seg;
    size_t index; /* tie-break: qsort is not stable */
} ranked;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    int c = strcmp(x->seg->account, y->seg->account);
    if (!c)
        c = strcmp(x->seg->product, y->seg->product);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

static bool same_group(const lb_segmentation *a, const lb_segmentation *b)
{
    return strcmp(a->account, b->account) == 0 && strcmp(a->product, b->product) == 0;
}

/* One (account, product): local checks, then prerequisites to a fixpoint.
 * Statuses only go from OK to NEEDS_REVIEW inside the loop, so it ends
 * after at most m rounds. */
static int recheck_group(lb_segmentation **g, size_t m, check_env *env)
{
    json_object **local = calloc(m, sizeof *local);
    if (!local)
        return -1;
    int rc = 0;
    for (size_t k = 0; k < m && rc == 0; k++) {
        if (!(local[k] = json_object_new_array()))
            rc = -1;
        else
            g[k]->status = check_local(g[k], env, local[k]) ? LB_SEG_NEEDS_REVIEW : LB_SEG_OK;
    }
    env->sibs = g;
    env->n_sibs = m;
    for (bool changed = rc == 0; changed;) {
        changed = false;
        for (size_t k = 0; k < m; k++)
            if (g[k]->status == LB_SEG_OK && check_prereqs(g[k], env, NULL) > 0) {
                g[k]->status = LB_SEG_NEEDS_REVIEW;
                changed = true;
            }
    }
    for (size_t k = 0; k < m; k++) {
        if (rc == 0) {
            check_prereqs(g[k], env, local[k]);
            json_object_put(g[k]->reasons);
            g[k]->reasons = local[k];
            g[k]->status = json_object_array_length(local[k]) ? LB_SEG_NEEDS_REVIEW : LB_SEG_OK;
        } else {
            json_object_put(local[k]);
        }
    }
    free(local);
    return rc;
}

int lb_segmentations_recheck(lb_segmentation *const *all, size_t n, const lb_seg_ctx *ctx)
{
    ranked *r = calloc(n ? n : 1, sizeof *r);
    lb_segmentation **g = calloc(n ? n : 1, sizeof *g);
    lb_seg_status *before = calloc(n ? n : 1, sizeof *before);
    int rc = r && g && before ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        r[i] = (ranked){all[i], i};
        before[i] = all[i]->status;
    }
    if (rc == 0)
        qsort(r, n, sizeof *r, ranked_cmp);
    check_env env = {ctx, NULL, 0, false, NULL};
    for (size_t i = 0; i < n && rc == 0;) {
        size_t m = 0;
        do
            g[m] = r[i + m].seg;
        while (++m + i < n && same_group(r[i].seg, r[i + m].seg));
        rc = recheck_group(g, m, &env);
        i += m;
    }
    json_object_put(env.catalogue);
    int changed = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        changed += all[i]->status != before[i];
    free(r);
    free(g);
    free(before);
    return rc == 0 ? changed : -1;
}
