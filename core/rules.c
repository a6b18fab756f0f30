/* rules.c: the public rules API (rules.h): load, catalogue, check, prepare,
 * match, stats. The sandbox lives in rules_sandbox.c, the event view in
 * rules_view.c, validation in rules_schema.c, file reading in rules_load.c. */
#include "rules_int.h"

#include "log.h"

#include <lauxlib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lb_rules_limits_default(lb_rules_limits *l)
{
    l->mem_total = (size_t)32 * 1024 * 1024;
    l->mem_per_eval = (size_t)4 * 1024 * 1024;
    l->mem_per_module = l->mem_total / 8;
    l->cpu_budget_us = 10000;
    /* A real rule runs tens of instructions; this is ~20-50 ms of VM time,
     * a backstop for when the CPU clock is coarse. */
    l->insn_budget = 5000000;
    l->max_errors = 5;
    l->max_source = (size_t)256 * 1024;
    l->max_custom = 1024;
}

static void limits_fill(lb_rules_limits *out, const lb_rules_limits *in)
{
    lb_rules_limits_default(out);
    if (!in)
        return;
    if (in->mem_total)
        out->mem_total = in->mem_total;
    if (in->mem_per_eval)
        out->mem_per_eval = in->mem_per_eval;
    /* an eighth of the set unless given: one module may not starve seven */
    out->mem_per_module = in->mem_per_module ? in->mem_per_module : out->mem_total / 8;
    if (in->cpu_budget_us)
        out->cpu_budget_us = in->cpu_budget_us;
    if (in->insn_budget)
        out->insn_budget = in->insn_budget;
    if (in->max_errors)
        out->max_errors = in->max_errors;
    if (in->max_source)
        out->max_source = in->max_source;
    if (in->max_custom)
        out->max_custom = in->max_custom;
}

lb_rules *lb_rules_load(const char *rules_dir, const char *custom_dir, const lb_rules_limits *limits, lb_error *err)
{
    lb_error local;
    lb_error *e = err ? err : &local;
    lb_error_clear(e);
    lb_rules *r = calloc(1, sizeof *r);
    if (!r) {
        lb_fail(e, "", "out of memory");
        return NULL;
    }
    limits_fill(&r->lim, limits);
    if ((custom_dir && !(r->custom_dir = strdup(custom_dir))) || lb_sb_open(&r->sb, &r->lim, e) != 0 ||
        lb_rules_load_dir(r, rules_dir, LB_MOD_TRIGGER, e) != 0 ||
        lb_rules_load_dir(r, rules_dir, LB_MOD_CONDITION, e) != 0) {
        if (!e->message[0])
            lb_fail(e, "", "out of memory");
        lb_rules_free(r);
        return NULL;
    }
    return r;
}

static void prepared_free(lb_rule_prepared *h)
{
    json_object_put(h->trigger_params);
    for (size_t i = 0; i < h->n; i++)
        json_object_put(h->cond_params[i]);
    free(h->cond_params);
    free(h->conds);
    json_object_put(h->empty_params);
    free(h);
}

void lb_rules_free(lb_rules *r)
{
    if (!r)
        return;
    while (r->prepared)
        lb_rules_unprepare(r, r->prepared);
    /* Closing the state first drops every registry ref at once. */
    lb_sb_close(&r->sb);
    for (size_t i = 0; i < r->n_triggers; i++)
        lb_module_clear(NULL, &r->triggers[i]);
    for (size_t i = 0; i < r->n_conditions; i++)
        lb_module_clear(NULL, &r->conditions[i]);
    for (size_t i = 0; i < r->n_customs; i++) {
        lb_module_clear(NULL, r->customs[i]);
        free(r->customs[i]);
    }
    free(r->triggers);
    free(r->conditions);
    free(r->customs);
    free(r->custom_dir);
    free(r);
}

/* ---- catalogue and stats -------------------------------------------------------- */

static json_object *infos(const lb_module *arr, size_t n)
{
    json_object *a = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++) {
        json_object *copy = NULL;
        json_object_deep_copy(arr[i].info, &copy, NULL);
        json_object_array_add(a, copy);
    }
    return a;
}

json_object *lb_rules_catalogue(lb_rules *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "triggers", infos(r->triggers, r->n_triggers));
    json_object_object_add(o, "conditions", infos(r->conditions, r->n_conditions));
    return o;
}

static const char *kind_name(lb_mod_kind k)
{
    return k == LB_MOD_TRIGGER ? "trigger" : k == LB_MOD_CONDITION ? "condition" : "custom";
}

static json_object *module_stats(const lb_module *m)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string(kind_name(m->kind)));
    json_object_object_add(o, "id", json_object_new_string(m->id));
    json_object_object_add(o, "evaluations", json_object_new_int64((int64_t)m->evals));
    json_object_object_add(o, "errors", json_object_new_int64((int64_t)m->errors));
    json_object_object_add(o, "consecutive_errors", json_object_new_int64(m->consecutive));
    json_object_object_add(o, "disabled", json_object_new_boolean(m->disabled));
    json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)m->mem));
    if (m->last_error[0])
        json_object_object_add(o, "last_error", json_object_new_string(m->last_error));
    return o;
}

/* Calls fn(m, acc) for every module, customs last. */
static void each_module(lb_rules *r, void (*fn)(const lb_module *, json_object *), json_object *acc)
{
    for (size_t i = 0; i < r->n_triggers; i++)
        fn(&r->triggers[i], acc);
    for (size_t i = 0; i < r->n_conditions; i++)
        fn(&r->conditions[i], acc);
    for (size_t i = 0; i < r->n_customs; i++)
        fn(r->customs[i], acc);
}

static void add_stats(const lb_module *m, json_object *arr)
{
    json_object_array_add(arr, module_stats(m));
}

static void add_disabled(const lb_module *m, json_object *arr)
{
    if (!m->disabled)
        return;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string(kind_name(m->kind)));
    json_object_object_add(o, "id", json_object_new_string(m->id));
    json_object_object_add(o, "last_error", json_object_new_string(m->last_error));
    json_object_array_add(arr, o);
}

json_object *lb_rules_stats(lb_rules *r)
{
    json_object *o = json_object_new_object();
    json_object *mods = json_object_new_array();
    json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)r->sb.used));
    json_object_object_add(o, "modules", mods);
    each_module(r, add_stats, mods);
    return o;
}

json_object *lb_rules_disabled(lb_rules *r)
{
    json_object *a = json_object_new_array();
    each_module(r, add_disabled, a);
    return a;
}

/* ---- running one module ------------------------------------------------------------ */

struct call_ctx {
    lb_module *m;
    json_object *event;   /* NULL for a check call */
    json_object *params;
    int result;           /* match/test: 0/1 */
    char why[240];        /* check: the module's complaint, "" if none */
};

/* Protected and budgeted (lb_sb_pcall): builds the views and calls. */
static int eval_tramp(lua_State *L)
{
    struct call_ctx *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->m->fn_ref);
    lb_view_push(L, c->event);
    lb_view_push_params(L, c->params);
    lua_call(L, 2, 1);
    int t = lua_type(L, -1);
    if (t != LUA_TBOOLEAN && t != LUA_TNIL)
        return luaL_error(L, "%s returned a %s; it must return true or false",
                          c->m->kind == LB_MOD_TRIGGER ? "match" : "test", luaL_typename(L, -1));
    c->result = lua_toboolean(L, -1);
    return 0;
}

static int check_tramp(lua_State *L)
{
    struct call_ctx *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->m->check_ref);
    lb_view_push_params(L, c->params);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) == LUA_TSTRING)
        snprintf(c->why, sizeof c->why, "%s", lua_tostring(L, -1));
    else if (!lua_isnil(L, -1))
        return luaL_error(L, "check returned a %s; it must return nil or a message", luaL_typename(L, -1));
    return 0;
}

/* Switches m off until the next load, once. */
static void disable(lb_module *m, const char *why)
{
    if (m->disabled)
        return;
    m->disabled = true;
    lb_log(LB_LOG_WARN, why, "kind", kind_name(m->kind), "id", m->id, "last_error", m->last_error, NULL);
}

/* Memory a module keeps is its own: every block its code allocates counts
 * against it until freed (sb_alloc), whichever module's evaluation the GC
 * frees it in. Past mem_per_module, counted after a full collection so that
 * garbage does not count, the module is disabled at once and its functions
 * are released, so what it kept goes back to the set instead of starving
 * the other modules until they fail in its place. The collection runs only
 * when the count passes the bound, which garbage alone rarely makes it do. */
static lb_outcome check_kept(lb_rules *r, lb_module *m, lb_outcome out, char *msg, size_t cap)
{
    if (m->mem <= r->lim.mem_per_module)
        return out;
    lua_gc(r->sb.L, LUA_GCCOLLECT);
    if (m->mem <= r->lim.mem_per_module)
        return out;
    snprintf(msg, cap, "keeps %zu KiB allocated between evaluations, more than mem_per_module (%zu KiB)",
             (m->mem + 1023) / 1024, r->lim.mem_per_module / 1024);
    snprintf(m->last_error, sizeof m->last_error, "nomem: %.180s", msg);
    disable(m, "rule disabled for the memory it keeps");
    luaL_unref(r->sb.L, LUA_REGISTRYINDEX, m->fn_ref);
    luaL_unref(r->sb.L, LUA_REGISTRYINDEX, m->check_ref);
    m->fn_ref = m->check_ref = LUA_NOREF;
    lua_gc(r->sb.L, LUA_GCCOLLECT);
    return LB_OUT_NOMEM;
}

/* Runs tramp under the budgets with what it allocates counted against c->m,
 * then checks what c->m keeps. */
static lb_outcome run(lb_rules *r, lua_CFunction tramp, struct call_ctx *c, char *msg, size_t cap)
{
    lb_sb_begin(&r->sb);
    r->sb.owner = &c->m->mem;
    lua_pushcfunction(r->sb.L, tramp);
    lua_pushlightuserdata(r->sb.L, c);
    lb_outcome out = lb_sb_pcall(&r->sb, 1, 0, msg, cap);
    r->sb.owner = NULL;
    return check_kept(r, c->m, out, msg, cap);
}

/* Counts the outcome against the module; disables it after max_errors
 * consecutive failures (until the next load). A nomem the set's total
 * refused while the module's own mem_per_eval had room is counted but is
 * not the module's fault: the state was full before it ran (check_kept
 * finds who keeps the memory), so it does not add to the streak. */
static void account(lb_rules *r, lb_module *m, lb_outcome out, const char *msg)
{
    m->evals++;
    if (out == LB_OUT_OK) {
        m->consecutive = 0;
        return;
    }
    m->errors++;
    if (!(out == LB_OUT_NOMEM && r->sb.mem_full))
        m->consecutive++;
    snprintf(m->last_error, sizeof m->last_error, "%s: %.180s", lb_outcome_name(out), msg);
    if (m->consecutive >= r->lim.max_errors)
        disable(m, "rule disabled after consecutive errors");
}

static int eval_module(lb_rules *r, lb_module *m, json_object *event, json_object *params, lb_error *err)
{
    char field[96]; /* made only for an error: a snprintf per module run was 4 % of an evaluation */
    if (m->disabled) {
        snprintf(field, sizeof field, "rule:%s", m->id);
        return lb_fail(err, field, "disabled: switched off until the next load (last %s)", m->last_error);
    }
    struct call_ctx c = {m, event, params, 0, ""};
    char msg[240];
    lb_outcome out = run(r, eval_tramp, &c, msg, sizeof msg);
    account(r, m, out, msg);
    if (out != LB_OUT_OK) {
        snprintf(field, sizeof field, "rule:%s", m->id);
        return lb_fail(err, field, "%s: %s", lb_outcome_name(out), msg);
    }
    return c.result;
}

/* A module's own cross-param check; 1 reason if it complains or fails. */
static int run_check(lb_rules *r, lb_module *m, json_object *params, const char *where, json_object *reasons)
{
    if (m->check_ref == LUA_NOREF)
        return 0;
    struct call_ctx c = {m, NULL, params, 0, ""};
    char msg[240];
    lb_outcome out = run(r, check_tramp, &c, msg, sizeof msg);
    if (out != LB_OUT_OK)
        return lb_reason_add(reasons, "bad_params", where, "%s: check failed: %s: %s", m->id, lb_outcome_name(out), msg);
    if (c.why[0])
        return lb_reason_add(reasons, "bad_params", where, "%s: %s", m->id, c.why);
    return 0;
}

/* ---- check and prepare ---------------------------------------------------------------- */

static int prepare_module_params(lb_rules *r, lb_module *m, json_object *in, const char *where, json_object **out,
                                 json_object *reasons)
{
    int n = lb_params_normalize(m, in, where, out, reasons);
    return n ? n : run_check(r, m, *out, where, reasons);
}

static int prepare_trigger(lb_rules *r, const lb_rule_spec *spec, lb_rule_prepared *h, json_object *reasons)
{
    h->trigger = lb_rules_find(r, LB_MOD_TRIGGER, spec->trigger);
    if (!h->trigger)
        return lb_reason_add(reasons, "unknown_trigger", "trigger", spec->trigger ? "unknown trigger '%.64s'" : "%s",
                             spec->trigger ? spec->trigger : "a trigger is required");
    return prepare_module_params(r, h->trigger, spec->trigger_params, "trigger_params", &h->trigger_params, reasons);
}

static int prepare_condition(lb_rules *r, const lb_rule_spec *spec, size_t i, lb_rule_prepared *h,
                             json_object *reasons)
{
    char field[64], where[64];
    snprintf(field, sizeof field, "conditions[%zu]", i);
    snprintf(where, sizeof where, "condition_params[%zu]", i);
    const char *id = spec->conditions ? spec->conditions[i] : NULL;
    lb_module *m = lb_rules_find(r, LB_MOD_CONDITION, id);
    if (!m)
        return lb_reason_add(reasons, "unknown_condition", field, "unknown condition '%.64s'", id ? id : "(null)");
    h->conds[i] = m;
    int n = 0;
    if (h->trigger && !lb_tags_subset(m->tags, h->trigger->tags))
        n += lb_reason_add(reasons, "condition_not_applicable", field,
                           "condition '%s' does not apply to trigger '%s': its events carry no data it needs", m->id,
                           h->trigger->id);
    json_object *in = spec->condition_params ? spec->condition_params[i] : NULL;
    return n + prepare_module_params(r, m, in, where, &h->cond_params[i], reasons);
}

static int prepare_custom(lb_rules *r, const lb_rule_spec *spec, lb_rule_prepared *h, json_object *reasons)
{
    if (spec->custom_file && spec->custom_inline)
        return lb_reason_add(reasons, "custom_conflict", "custom_inline",
                             "set custom_file or custom_inline, not both");
    if (!spec->custom_file && !spec->custom_inline)
        return 0;
    const char *field = spec->custom_inline ? "custom_inline" : "custom_file";
    h->custom = lb_custom_get(r, spec->custom_file, spec->custom_inline, reasons);
    if (!h->custom)
        return 1;
    if (h->trigger && !lb_tags_subset(h->custom->tags, h->trigger->tags))
        return lb_reason_add(reasons, "custom_not_applicable", field,
                             "the custom rule needs data that trigger '%s' does not carry", h->trigger->id);
    return 0;
}

/* The one path behind check and prepare: resolves and validates everything,
 * appending reasons; *count = how many. The handle is complete only when
 * *count is 0. */
static lb_rule_prepared *prepare(lb_rules *r, const lb_rule_spec *spec, json_object *reasons, int *count)
{
    lb_rule_prepared *h = calloc(1, sizeof *h);
    size_t nc = spec->n_conditions;
    if (h) {
        h->n = nc;
        h->conds = calloc(nc ? nc : 1, sizeof *h->conds);
        h->cond_params = calloc(nc ? nc : 1, sizeof *h->cond_params);
        h->empty_params = json_object_new_object();
    }
    if (!h || !h->conds || !h->cond_params || !h->empty_params) {
        if (h)
            prepared_free(h);
        *count = lb_reason_add(reasons, "internal", "", "out of memory");
        return NULL;
    }
    int n = prepare_trigger(r, spec, h, reasons);
    for (size_t i = 0; i < nc; i++)
        n += prepare_condition(r, spec, i, h, reasons);
    n += prepare_custom(r, spec, h, reasons);
    *count = n;
    return h;
}

int lb_rules_check(lb_rules *r, const lb_rule_spec *spec, json_object *reasons_out)
{
    int n = 0;
    lb_rule_prepared *h = prepare(r, spec, reasons_out, &n);
    if (h)
        prepared_free(h);
    return n;
}

lb_rule_prepared *lb_rules_prepare(lb_rules *r, const lb_rule_spec *spec, lb_error *err)
{
    json_object *reasons = json_object_new_array();
    int n = 0;
    lb_rule_prepared *h = prepare(r, spec, reasons, &n);
    if (n > 0) {
        json_object *first = json_object_array_get_idx(reasons, 0);
        json_object *f = NULL, *m = NULL;
        json_object_object_get_ex(first, "field", &f);
        json_object_object_get_ex(first, "message", &m);
        lb_fail(err, json_object_get_string(f), "%s", m ? json_object_get_string(m) : "out of memory");
        if (h)
            prepared_free(h);
        h = NULL;
    }
    json_object_put(reasons);
    if (h) {
        h->next = r->prepared;
        if (r->prepared)
            r->prepared->prev = h;
        r->prepared = h;
    }
    return h;
}

void lb_rules_unprepare(lb_rules *r, lb_rule_prepared *h)
{
    if (!h)
        return;
    if (h->prev)
        h->prev->next = h->next;
    else
        r->prepared = h->next;
    if (h->next)
        h->next->prev = h->prev;
    prepared_free(h);
}

/* ---- match ----------------------------------------------------------------------------- */

static bool type_listed(char *const *events, const char *type)
{
    for (size_t i = 0; events[i]; i++)
        if (strcmp(events[i], type) == 0)
            return true;
    return false;
}

bool lb_rules_prepared_wants_type(const lb_rule_prepared *h, const char *type)
{
    return type && type_listed(h->trigger->events, type);
}

int lb_rules_match_prepared(lb_rules *r, lb_rule_prepared *h, json_object *event, lb_error *err)
{
    json_object *t = NULL;
    const char *type = json_object_object_get_ex(event, "type", &t) && json_object_is_type(t, json_type_string)
                           ? json_object_get_string(t)
                           : NULL;
    return lb_rules_match_prepared_as(r, h, event, type, err);
}

int lb_rules_match_prepared_as(lb_rules *r, lb_rule_prepared *h, json_object *event, const char *type, lb_error *err)
{
    if (!lb_rules_prepared_wants_type(h, type))
        return 0; /* the cheap skip: no Lua runs for events of other types */
    int rc = eval_module(r, h->trigger, event, h->trigger_params, err);
    for (size_t i = 0; rc == 1 && i < h->n; i++)
        rc = eval_module(r, h->conds[i], event, h->cond_params[i], err);
    if (rc == 1 && h->custom)
        rc = eval_module(r, h->custom, event, h->empty_params, err);
    return rc;
}

int lb_rules_match(lb_rules *r, const lb_rule_spec *spec, json_object *event, lb_error *err)
{
    lb_rule_prepared *h = lb_rules_prepare(r, spec, err);
    if (!h)
        return -1;
    int rc = lb_rules_match_prepared(r, h, event, err);
    lb_rules_unprepare(r, h);
    return rc;
}
