/* rules.h: the rules host. Triggers and conditions are Lua modules under
 * rules/ (docs/rules.md describes their format and the catalogue); this API
 * loads them into one sandboxed lua_State per rule set, lists them, checks a
 * segmentation's rule part for consistency and evaluates it on normalized
 * events (docs/events.md).
 *
 * Threading: a rule set is not thread-safe; use it from the event loop thread
 * (or one thread at a time). Two rule sets are independent, which is how a
 * reload builds a new one beside the old one and the caller swaps on success.
 *
 * Errors: functions that can fail take an lb_error. For a module that does
 * not load, err->field is the file relative to the rules directory
 * ("triggers/purchase_approved.lua"). For an evaluation, err->field is
 * "rule:<id>" and err->message starts with the outcome, one of
 * "error:", "timeout:", "nomem:", "disabled:" (an audit code for the caller). */
#ifndef LB_RULES_H
#define LB_RULES_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "error.h"

typedef struct lb_rules lb_rules;

/* Limits of a rule set. A zero field means "use the default" (in brackets). */
typedef struct lb_rules_limits {
    size_t mem_total;        /* bytes the whole Lua state may hold [32 MiB] */
    size_t mem_per_eval;     /* growth allowed during one evaluation [4 MiB] */
    size_t mem_per_module;   /* memory a module's code may keep allocated between
                                evaluations; past it the module is disabled
                                [mem_total / 8: 4 MiB] */
    long cpu_budget_us;      /* thread CPU time per evaluation [10000 = 10 ms] */
    long insn_budget;        /* Lua VM instructions per evaluation [5,000,000] */
    unsigned max_errors;     /* consecutive errors that disable a module [5] */
    size_t max_source;       /* bytes of one module file or inline rule [256 KiB] */
    unsigned max_custom;     /* distinct custom rules compiled per set [1024] */
} lb_rules_limits;

/* Fills *l with the defaults above. */
void lb_rules_limits_default(lb_rules_limits *l);

/* Loads rules_dir/triggers/ *.lua and rules_dir/conditions/ *.lua (both
 * directories must exist; files are read in name order) and validates every
 * module: required fields and their types, unique ids, well-formed params,
 * match/test present, events/carries/needs within the documented
 * vocabularies. custom_dir (may be NULL: no file-backed custom rules) is
 * where lb_rule_spec.custom_file names are looked up, lazily.
 * limits may be NULL (defaults). Returns NULL and names the file and reason
 * in err if ANY module fails, so a reload keeps the old set. */
lb_rules *lb_rules_load(const char *rules_dir, const char *custom_dir, const lb_rules_limits *limits,
                        lb_error *err);

/* Frees the set, its Lua state and every prepared handle still open. NULL ok. */
void lb_rules_free(lb_rules *r);

/* The catalogue for the API and the page (a new reference; caller puts it):
 * {"triggers":[{id,label,group,description,events,carries,params}],
 *  "conditions":[{id,label,description,needs,params}]}, in file-name order.
 * Each param: {name,type,required[,label,description,default,min,max,values]}. */
json_object *lb_rules_catalogue(lb_rules *r);

/* A segmentation's rule part. Strings and json objects are borrowed for the
 * duration of the call. trigger_params / condition_params[i] may be NULL (no
 * params). At most one of custom_file (a file name inside custom_dir, e.g.
 * "vip.lua") and custom_inline (Lua source) is set; see docs/rules.md. */
typedef struct lb_rule_spec {
    const char *trigger;
    json_object *trigger_params;
    size_t n_conditions;
    const char **conditions;
    json_object **condition_params;
    const char *custom_file;
    const char *custom_inline;
} lb_rule_spec;

/* Checks spec for consistency. Appends one {"code","message","field"} object
 * per problem to reasons_out (a json array; may be NULL to only count) and
 * returns how many. Codes: unknown_trigger, unknown_condition,
 * condition_not_applicable, missing_param, unknown_param, bad_param,
 * bad_params (cross-field check of a module), custom_invalid,
 * custom_not_applicable, custom_conflict, too_many_custom. Fields name the
 * spec part: "trigger", "trigger_params.percent", "conditions[1]",
 * "condition_params[1].in", "custom_file", "custom_inline".
 * A custom rule is compiled here (once; cached in the set). */
int lb_rules_check(lb_rules *r, const lb_rule_spec *spec, json_object *reasons_out);

/* A checked spec with its params validated, defaults applied and modules
 * resolved: what the hot path evaluates. Owned by the rule set (freed with
 * it); release it earlier with lb_rules_unprepare. */
typedef struct lb_rule_prepared lb_rule_prepared;

/* Returns NULL if the spec is inconsistent (err holds the first reason; its
 * field is the reason's field) or on out of memory. */
lb_rule_prepared *lb_rules_prepare(lb_rules *r, const lb_rule_spec *spec, lb_error *err);
void lb_rules_unprepare(lb_rules *r, lb_rule_prepared *h);

/* Evaluates a prepared spec on a normalized event document: 1 match, 0 no
 * match, -1 error (a module raised, ran out of CPU or memory budget, returned
 * a non-boolean, or is disabled; see the header comment for err). The event
 * type is compared with the trigger's events before any Lua runs. The trigger
 * runs first, then the conditions in order, then the custom rule; the first
 * false answer stops the evaluation. Each run updates that module's
 * counters; max_errors consecutive errors disable it until the next load. */
int lb_rules_match_prepared(lb_rules *r, lb_rule_prepared *h, json_object *event, lb_error *err);
/* The same for a caller that read the event's type already (the engine does
 * once per event, not once per segmentation: a json-c lookup is not free). */
int lb_rules_match_prepared_as(lb_rules *r, lb_rule_prepared *h, json_object *event, const char *type,
                               lb_error *err);

/* Whether the spec's trigger lists this normalized event type: when it does
 * not, lb_rules_match_prepared answers 0 without reading the event. */
bool lb_rules_prepared_wants_type(const lb_rule_prepared *h, const char *type);

/* Convenience for one-off evaluations (tests, "send test"): prepare, match,
 * release. A spec that does not check is -1 with the first reason in err. */
int lb_rules_match(lb_rules *r, const lb_rule_spec *spec, json_object *event, lb_error *err);

/* Per-module counters (a new reference):
 * {"memory_bytes":N, "modules":[{"kind":"trigger"|"condition"|"custom","id",
 *   "evaluations","errors","consecutive_errors","disabled","memory_bytes",
 *   "last_error"?}]}; a module's memory_bytes is what its code allocated and
 * is still allocated (what it keeps, plus garbage not yet collected). */
json_object *lb_rules_stats(lb_rules *r);

/* The disabled modules (a new reference): [{"kind","id","last_error"}]. */
json_object *lb_rules_disabled(lb_rules *r);

/* Appends one {"code","message","field"} reason to `reasons` (an array; NULL
 * only counts) and returns 1, so checks can sum what they append. Shared by
 * the rule checks and the segmentation checks so both speak one shape. */
int lb_reason_add(json_object *reasons, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int lb_reason_vadd(json_object *reasons, const char *code, const char *field, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
