/* rules_int.h: what the rules_*.c files share and nobody else sees.
 *
 *   rules_sandbox.c  the lua_State: allocator, hook, frozen globals, loading
 *   rules_view.c     read-only views of json-c documents, the `lb` helpers
 *   rules_schema.c   module and param validation, the vocabularies
 *   rules_load.c     reading the rules/ directories, custom rules
 *   rules.c          the public API: catalogue, check, prepare, match, stats */
#ifndef LB_RULES_INT_H
#define LB_RULES_INT_H

#include "rules.h"

#include <lua.h>

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* ---- the sandbox ---------------------------------------------------------- */

typedef struct lb_sandbox {
    lua_State *L;
    /* memory, counted by the allocator */
    size_t used, cap_total, cap_eval, eval_base;
    bool mem_hit;        /* a request was refused during this evaluation */
    bool mem_full;       /* ... by mem_total, with room left in mem_per_eval */
    size_t *owner;       /* what blocks allocated now count against, or NULL */
    /* CPU, counted by the hook */
    long insn, insn_budget, cpu_budget_us;
    struct timespec cpu_start;
    bool clock_started, timed_out;
    /* evaluation window: views carry the generation they were made in and
     * die when it ends, so a view a rule stashed in an upvalue is inert */
    bool in_eval;
    uint64_t gen;
} lb_sandbox;

typedef enum { LB_OUT_OK, LB_OUT_ERROR, LB_OUT_TIMEOUT, LB_OUT_NOMEM } lb_outcome;

int lb_sb_open(lb_sandbox *sb, const lb_rules_limits *lim, lb_error *err);
void lb_sb_close(lb_sandbox *sb);
/* Compiles a text chunk, gives it a fresh strict _ENV and runs it; on success
 * its single result is left on the stack. err->field = chunkname. */
int lb_sb_run_chunk(lb_sandbox *sb, const char *src, size_t len, const char *chunkname, lb_error *err);
/* Opens an evaluation window: views pushed from now on are valid until the
 * window closes. */
void lb_sb_begin(lb_sandbox *sb);
/* Calls the function below nargs arguments with the CPU and memory budgets
 * armed, then closes the window. On LB_OUT_OK nres results are on the
 * stack; otherwise nothing is, and msg holds the reason. */
lb_outcome lb_sb_pcall(lb_sandbox *sb, int nargs, int nres, char *msg, size_t cap);
const char *lb_outcome_name(lb_outcome o);
/* Charges work a C function is about to do for the rule (units of about one
 * VM instruction) to the instruction budget, and raises the budget breach,
 * as the hook does, if it does not fit: the hook cannot stop a C loop. */
void lb_sb_charge(lua_State *L, lua_Unsigned units);
/* Calls f(ud, args...) protected, without budgets: for C code that builds
 * Lua values (any allocation may raise once the state is near its cap).
 * The nargs values on top are consumed. On error fills err (with field). */
int lb_sb_protect(lb_sandbox *sb, lua_CFunction f, void *ud, int nargs, const char *field, lb_error *err);

/* rules_view.c */
void lb_view_open(lua_State *L);            /* registers the metatable */
void lb_view_push(lua_State *L, json_object *obj); /* a view, or a scalar */
void lb_view_push_params(lua_State *L, json_object *obj); /* "params are read-only" */
void lb_helpers_push(lua_State *L);         /* the `lb` helper table */

static inline lb_sandbox *lb_sb_of(lua_State *L)
{
    return *(lb_sandbox **)lua_getextraspace(L);
}

/* ---- modules --------------------------------------------------------------- */

typedef enum { LB_PT_NUMBER, LB_PT_INTEGER, LB_PT_STRING, LB_PT_LIST, LB_PT_BOOLEAN, LB_PT_ENUM } lb_ptype;
typedef enum { LB_CASE_KEEP, LB_CASE_UPPER, LB_CASE_LOWER } lb_case;

typedef struct lb_param {
    char *name;
    lb_ptype type;
    bool required;
    bool has_min, has_max;
    double min, max;
    char **values; /* NULL-terminated whitelist (list, enum) or NULL */
    lb_case fold;  /* applied to string values before the whitelist */
    json_object *def; /* normalized default, or NULL */
} lb_param;

typedef enum { LB_MOD_TRIGGER, LB_MOD_CONDITION, LB_MOD_CUSTOM } lb_mod_kind;

typedef struct lb_module {
    lb_mod_kind kind;
    char *id;
    char *file;         /* for messages: "triggers/x.lua", "custom/x.lua", "inline" */
    char **events;      /* triggers: normalized types matched; NULL-terminated */
    char **tags;        /* carries (trigger) or needs (condition, custom) */
    lb_param *params;
    size_t n_params;
    int fn_ref;         /* match / test, in the registry */
    int check_ref;      /* optional cross-param check, or LUA_NOREF */
    json_object *info;  /* catalogue entry */
    char *key;          /* custom rules: cache key ("file:x.lua" or the source) */
    size_t mem;         /* bytes its code allocated that are still allocated
                           (what it keeps, plus garbage not yet collected) */
    unsigned long evals, errors;
    unsigned consecutive;
    bool disabled;
    char last_error[200];
} lb_module;

/* rules_schema.c */
/* Validates the chunk result on top of the stack (consumed) and fills m:
 * a module table, or for LB_MOD_CUSTOM a function or a table with test and
 * optional needs/label/description. err->field = file. */
int lb_module_build(lb_sandbox *sb, lb_mod_kind kind, const char *file, lb_module *m, lb_error *err);
void lb_module_clear(lua_State *L, lb_module *m);
bool lb_tags_subset(char *const *needs, char *const *carries);
/* Validates `in` (object or NULL) against m's params, applies defaults and
 * case folding; *out is a new object. Appends reasons under field prefix
 * `where` ("trigger_params"); returns how many. */
int lb_params_normalize(const lb_module *m, json_object *in, const char *where, json_object **out,
                        json_object *reasons);

/* ---- the rule set ----------------------------------------------------------- */

struct lb_rule_prepared {
    lb_module *trigger;
    json_object *trigger_params;
    size_t n;
    lb_module **conds;
    json_object **cond_params;
    lb_module *custom;
    json_object *empty_params;
    struct lb_rule_prepared *prev, *next;
};

struct lb_rules {
    lb_sandbox sb;
    lb_rules_limits lim;
    char *custom_dir;
    lb_module *triggers, *conditions;
    size_t n_triggers, n_conditions;
    lb_module **customs; /* stable pointers: prepared handles keep them */
    size_t n_customs;
    lb_rule_prepared *prepared;
};

/* rules_load.c */
int lb_rules_load_dir(lb_rules *r, const char *rules_dir, lb_mod_kind kind, lb_error *err);
/* Finds or compiles the custom rule of spec; NULL with a reason appended. */
lb_module *lb_custom_get(lb_rules *r, const char *file, const char *inline_src, json_object *reasons);
lb_module *lb_rules_find(lb_rules *r, lb_mod_kind kind, const char *id);

#endif
