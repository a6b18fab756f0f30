/* config.c: evaluates the Lua config in a sandbox and validates what it set.
 *
 * The sandbox: a fresh lua_State per load whose allocator refuses to go past
 * LB_CONFIG_MEM_LIMIT, an instruction-count hook that stops runaway loops, a
 * text-only loader (no precompiled bytecode, which can crash the VM), and a
 * chunk _ENV that is an empty table falling back (__index) to a table of pure
 * helpers. Nothing reachable from the chunk touches files, the process or the
 * loader, and whatever the chunk assigns at top level lands in that empty
 * table: its entries are exactly the keys the config set. */
#include "config.h"

#include "secret.h"

#include <json-c/json.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LB_CONFIG_MEM_LIMIT ((size_t)16 * 1024 * 1024)
/* A real config runs a few thousand instructions; 10 million is ~0.1 s. */
#define LB_CONFIG_INSN_LIMIT 10000000L
#define LB_CONFIG_HOOK_EVERY 1000
/* A config is a page of text; a bigger file is a mistake (wrong -c argument). */
#define LB_CONFIG_FILE_MAX ((size_t)1024 * 1024)

#define LB_MAX_BODY_MIN ((uint64_t)1024)
#define LB_MAX_BODY_MAX ((uint64_t)64 * 1024 * 1024)
#define LB_ACCOUNT_ID_MAX 64
#define LB_ID_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_-"
#define LB_PROVIDER_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_"
#define LB_SEG_NAME_MAX 100
#define LB_SEG_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.-"
#define LB_CONCURRENCY_MAX 1024u
/* Params and options are small documents; deeper nesting is a mistake (or a
 * table that contains itself), and the limit bounds the recursion. */
#define LB_PARAMS_MAX_DEPTH 8
/* The capacity of lb_error.field, for buffers that build field names. */
#define LB_FIELD_CAP sizeof(((lb_error *)NULL)->field)

#define LB_DEFAULT_LISTEN "127.0.0.1:8080"
#define LB_DEFAULT_DATABASE "var/listboss.db"
#define LB_DEFAULT_MAX_BODY ((size_t)256 * 1024)
#define LB_DEFAULT_LOG_LEVEL "info"
/* The build passes the installed folders; an ad-hoc build runs from the
 * source tree, where these relative paths hold the same files. */
#ifdef LB_PLUGINDIR
#define LB_DEFAULT_PLUGIN_DIR LB_PLUGINDIR
#else
#define LB_DEFAULT_PLUGIN_DIR "plugins"
#endif
#ifdef LB_RULESDIR
#define LB_DEFAULT_RULES_DIR LB_RULESDIR
#else
#define LB_DEFAULT_RULES_DIR "rules"
#endif

static const char *const lb_top_keys[] = {
    "listen",      "database",  "max_body",         "log_level", "ignore_test_events",
    "synchronous", "plugin_dir", "rules_dir", "custom_rules_dir", "accounts",
    NULL,
};
static const char *const lb_account_keys[] = {"id", "hottok", "api_token", "integrations", "segmentations", NULL};
static const char *const lb_integration_keys[] = {"id", "provider", "settings", "rate", "burst", "concurrency", NULL};
static const char *const lb_segmentation_keys[] = {
    "name", "product", "trigger", "conditions", "custom", "integration", "actions", "options", "enabled", NULL,
};
/* A rule reference (trigger, condition) and an action: the name key first. */
static const char *const lb_ref_keys[] = {"id", "params", NULL};
static const char *const lb_action_keys[] = {"action", "params", NULL};
static const char *const lb_custom_keys[] = {"file", "inline", NULL};
static const char *const lb_log_levels[] = {"debug", "info", "warn", "error", NULL};

/* The helpers a config may call: pure functions over values. Deliberately
 * absent: io, os, require, load*, dofile, package, debug, coroutine,
 * collectgarbage, print, and the raw/metatable functions. */
static const char *const lb_safe_base[] = {
    "tostring", "tonumber", "pairs", "ipairs", "type", "select", "error", "assert", "pcall", NULL,
};
static const struct {
    const char *name;
    lua_CFunction open;
} lb_safe_libs[] = {
    {LUA_STRLIBNAME, luaopen_string},
    {LUA_TABLIBNAME, luaopen_table},
    {LUA_MATHLIBNAME, luaopen_math},
    {LUA_UTF8LIBNAME, luaopen_utf8},
};

/* One load in progress; reachable from the Lua state through its extra space
 * (the hook) and its allocator userdata, so no global state is needed. */
struct lb_load {
    const char *chunk;
    size_t len;
    char chunkname[128];
    size_t mem_used;
    long hook_calls;
    bool budget_exceeded;
    lb_config *cfg; /* owned; everything allocated hangs off it at once */
    lb_error *err;
    int rc;         /* 0 once validation succeeded */
    /* The JSON being built for one account's segmentations. A Lua error
     * (out of memory) can unwind past the code building it, so it is
     * anchored here and run_sandbox frees it. */
    json_object *json_pending;
};

/* ---- the sandboxed Lua state ------------------------------------------ */

/* Frees a Lua block after wiping it: the Lua heap held the config text and
 * any literal secret strings, which must not outlive the load. */
static void wipe_free(void *ptr, size_t size)
{
    if (!ptr)
        return;
    explicit_bzero(ptr, size);
    free(ptr);
}

/* lua_Alloc with a byte budget. Reallocation always moves (malloc, copy, wipe
 * old) because realloc() could leave an unwiped copy behind. */
static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lb_load *ld = ud;
    size_t old = ptr ? osize : 0; /* for a new block, osize is a type tag */
    if (nsize == 0) {
        wipe_free(ptr, old);
        ld->mem_used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > LB_CONFIG_MEM_LIMIT - ld->mem_used)
        return NULL; /* Lua turns this into a "not enough memory" error */
    void *block = malloc(nsize);
    if (!block)
        return NULL;
    if (ptr) {
        memcpy(block, ptr, old < nsize ? old : nsize);
        wipe_free(ptr, old);
    }
    ld->mem_used = ld->mem_used - old + nsize;
    return block;
}

static struct lb_load *load_of(lua_State *L)
{
    return *(struct lb_load **)lua_getextraspace(L);
}

/* Count hook: past the budget, raise an error. It then re-arms itself to fire
 * on every instruction, so a config that swallows the error with pcall gets
 * it again at its next instruction and unwinds all the way out. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct lb_load *ld = load_of(L);
    if (++ld->hook_calls <= LB_CONFIG_INSN_LIMIT / LB_CONFIG_HOOK_EVERY)
        return;
    ld->budget_exceeded = true;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "instruction budget exhausted");
}

/* Pushes the helpers table. The libraries are opened into this throwaway
 * state only; the real globals table (which holds load, dofile...) is never
 * made reachable from the chunk. */
static void push_helpers(lua_State *L)
{
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    lua_pop(L, 1);
    lua_newtable(L);
    for (size_t i = 0; lb_safe_base[i]; i++) {
        lua_getglobal(L, lb_safe_base[i]);
        lua_setfield(L, -2, lb_safe_base[i]);
    }
    for (size_t i = 0; i < sizeof lb_safe_libs / sizeof lb_safe_libs[0]; i++) {
        luaL_requiref(L, lb_safe_libs[i].name, lb_safe_libs[i].open, 0);
        lua_setfield(L, -2, lb_safe_libs[i].name);
    }
    /* string.dump yields bytecode; nothing here can load it, nor needs it. */
    lua_getfield(L, -1, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
}

/* Pushes the chunk's _ENV: an empty table whose misses fall back to the
 * helpers. The chunk has no reference to the helpers table itself (no
 * getmetatable), so it is read-only by being unreachable. */
static void push_sandbox_env(lua_State *L)
{
    push_helpers(L);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

/* ---- Lua error messages -------------------------------------------------- */

/* Lua quotes source text in two messages: syntax errors end with
 * `near '"token"'` and runtime errors on constants with `(constant 'x')`.
 * Either may be a secret written inline, so the quoted tail is replaced. */
static void scrub_quoted(char *msg, size_t cap)
{
    static const struct {
        const char *marker;
        const char *replacement;
    } rules[] = {
        {" near '\"", " near a string literal"}, {" near ''", " near a string literal"},
        {" near '[[", " near a string literal"}, {" near '[=", " near a string literal"},
        {" (constant '", " (a constant)"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        char *at = strstr(msg, rules[i].marker);
        if (at)
            snprintf(at, cap - (size_t)(at - msg), "%s", rules[i].replacement);
    }
}

/* Turns the error object on top of the stack into err (field ""). */
static void record_lua_error(lua_State *L, struct lb_load *ld, int status)
{
    if (ld->budget_exceeded) {
        lb_fail(ld->err, "", "config stopped after %ld million Lua instructions; does it loop forever?",
                LB_CONFIG_INSN_LIMIT / 1000000);
    } else if (status == LUA_ERRMEM) {
        lb_fail(ld->err, "", "config stopped: it used more than %zu MiB of memory",
                LB_CONFIG_MEM_LIMIT / (1024 * 1024));
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        lb_fail(ld->err, "", "%s", lua_tostring(L, -1));
        scrub_quoted(ld->err->message, sizeof ld->err->message);
    } else {
        lb_fail(ld->err, "", "config raised an error value of type %s; use error(\"message\")",
                luaL_typename(L, -1));
    }
}

/* ---- typed access to the tables the config built ------------------------ */

/* Pushes t[key], bypassing metatables so a helper never passes for a key. */
static int raw_field(lua_State *L, int t, const char *key)
{
    lua_pushstring(L, key);
    return lua_rawget(L, t);
}

static int fail_type(lua_State *L, const char *field, const char *expected, lb_error *err)
{
    return lb_fail(err, field, "expected %s, got %s", expected, luaL_typename(L, -1));
}

/* The string on top of the stack; NULL (with err) if it has an embedded NUL,
 * which C would silently truncate. Valid while the value stays in its table. */
static const char *top_cstring(lua_State *L, const char *field, lb_error *err)
{
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len) {
        lb_fail(err, field, "must not contain NUL bytes");
        return NULL;
    }
    return s;
}

static int dup_into(const char *s, const char *field, char **out, lb_error *err)
{
    *out = strdup(s);
    return *out ? 0 : lb_fail(err, field, "out of memory");
}

/* Reads an optional string key into *out (malloc'd), `def` if absent. */
static int opt_string(lua_State *L, int t, const char *key, const char *def, char **out, lb_error *err)
{
    int rc;
    int type = raw_field(L, t, key);
    if (type == LUA_TNIL) {
        rc = dup_into(def, key, out, err);
    } else if (type != LUA_TSTRING) {
        rc = fail_type(L, key, "a string", err);
    } else {
        const char *s = top_cstring(L, key, err);
        rc = s ? dup_into(s, key, out, err) : -1;
    }
    lua_pop(L, 1);
    return rc;
}

/* Checks that every key of table t is a string listed in `allowed`. Reports
 * the alphabetically first offender so the error does not depend on Lua's
 * table order. `owner` is "" for the top level, "accounts[2]" for an account. */
static int check_keys(lua_State *L, int t, const char *const *allowed, const char *owner, lb_error *err)
{
    const char *unknown = NULL;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            const char *type = luaL_typename(L, -1);
            lua_pop(L, 1);
            return lb_fail(err, owner, "keys must be names, found a %s key", type);
        }
        const char *key = lua_tostring(L, -1);
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0)
            i++;
        if (!allowed[i] && (!unknown || strcmp(key, unknown) < 0))
            unknown = key; /* stays alive: the table still holds it */
    }
    if (!unknown)
        return 0;
    char field[sizeof err->field];
    snprintf(field, sizeof field, "%s%s%s", owner, *owner ? "." : "", unknown);
    return lb_fail(err, field, "unknown key");
}

/* ---- scalar keys ------------------------------------------------------- */

/* "ADDR:PORT" with a non-empty address and a decimal port 1..65535; an IPv6
 * address needs brackets or its last colon would be taken for the port's. */
static int check_listen(const char *listen, lb_error *err)
{
    const char *colon = strrchr(listen, ':');
    const char *port = colon ? colon + 1 : "";
    size_t digits = strspn(port, "0123456789");
    long value = digits > 0 && digits <= 5 && port[digits] == '\0' ? strtol(port, NULL, 10) : 0;
    if (!colon || colon == listen || value < 1 || value > 65535)
        return lb_fail(err, "listen", "expected \"ADDR:PORT\" with a port from 1 to 65535, got \"%.64s\"",
                       listen);
    if (memchr(listen, ':', (size_t)(colon - listen)) && listen[0] != '[')
        return lb_fail(err, "listen", "write an IPv6 address in brackets, e.g. \"[::1]:8080\"");
    return 0;
}

/* Parses "262144", "256k" or "1m" (suffix case-insensitive). Returns 0, or -1
 * for a malformed string; an absurdly long number saturates (then fails the
 * range check) instead of overflowing. */
static int parse_size(const char *s, uint64_t *out)
{
    size_t digits = strspn(s, "0123456789");
    if (digits == 0)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < digits; i++)
        n = n > LB_MAX_BODY_MAX ? n : n * 10 + (uint64_t)(s[i] - '0');
    const char *suffix = s + digits;
    uint64_t unit = 1;
    if (*suffix == 'k' || *suffix == 'K')
        unit = 1024, suffix++;
    else if (*suffix == 'm' || *suffix == 'M')
        unit = 1024 * 1024, suffix++;
    if (*suffix != '\0')
        return -1;
    *out = n * unit;
    return 0;
}

static int read_max_body(lua_State *L, int t, size_t *out, lb_error *err)
{
    int type = raw_field(L, t, "max_body");
    int rc = 0;
    int exact = 0;
    uint64_t bytes = LB_DEFAULT_MAX_BODY;
    if (type == LUA_TNUMBER) {
        lua_Integer n = lua_tointegerx(L, -1, &exact);
        if (!exact)
            rc = lb_fail(err, "max_body", "expected a whole number of bytes");
        bytes = n < 0 ? 0 : (uint64_t)n;
    } else if (type == LUA_TSTRING) {
        const char *s = top_cstring(L, "max_body", err);
        if (!s)
            rc = -1;
        else if (parse_size(s, &bytes) != 0)
            rc = lb_fail(err, "max_body", "expected a byte count such as 262144, \"256k\" or \"1m\"");
    } else if (type != LUA_TNIL) {
        rc = fail_type(L, "max_body", "a number or a string such as \"256k\"", err);
    }
    lua_pop(L, 1);
    if (rc == 0 && (bytes < LB_MAX_BODY_MIN || bytes > LB_MAX_BODY_MAX))
        rc = lb_fail(err, "max_body", "must be between 1k (1024) and 64m (67108864) bytes");
    *out = (size_t)bytes;
    return rc;
}

/* Reads an optional string key that must be one of `choices`; *index gets
 * the position of the match (`def` when absent). */
static int read_choice(lua_State *L, int t, const char *key, const char *const *choices, size_t def,
                       size_t *index, lb_error *err)
{
    char *value = NULL;
    if (opt_string(L, t, key, choices[def], &value, err) != 0)
        return -1;
    size_t i = 0;
    while (choices[i] && strcmp(choices[i], value) != 0)
        i++;
    free(value);
    if (!choices[i]) {
        char list[96] = "";
        for (size_t j = 0; choices[j]; j++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", j ? ", " : "", choices[j]);
        return lb_fail(err, key, "expected one of %s", list);
    }
    *index = i;
    return 0;
}

static int read_bool(lua_State *L, int t, const char *key, bool def, bool *out, lb_error *err)
{
    int type = raw_field(L, t, key);
    int rc = 0;
    *out = def;
    if (type == LUA_TBOOLEAN)
        *out = lua_toboolean(L, -1);
    else if (type != LUA_TNIL)
        rc = fail_type(L, key, "a boolean (true or false)", err);
    lua_pop(L, 1);
    return rc;
}

static int read_scalars(lua_State *L, int env, lb_config *cfg, lb_error *err)
{
    static const char *const sync_modes[] = {"full", "normal", NULL};
    size_t level = 0, sync = 0;
    if (opt_string(L, env, "listen", LB_DEFAULT_LISTEN, &cfg->listen, err) != 0 ||
        check_listen(cfg->listen, err) != 0)
        return -1;
    if (opt_string(L, env, "database", LB_DEFAULT_DATABASE, &cfg->database, err) != 0)
        return -1;
    if (cfg->database[0] == '\0')
        return lb_fail(err, "database", "must not be empty");
    if (read_max_body(L, env, &cfg->max_body, err) != 0)
        return -1;
    if (read_choice(L, env, "log_level", lb_log_levels, 1, &level, err) != 0 ||
        dup_into(lb_log_levels[level], "log_level", &cfg->log_level, err) != 0)
        return -1;
    if (read_bool(L, env, "ignore_test_events", false, &cfg->ignore_test_events, err) != 0)
        return -1;
    if (read_choice(L, env, "synchronous", sync_modes, 0, &sync, err) != 0)
        return -1;
    cfg->sync_full = sync == 0;
    return 0;
}

/* ---- accounts ------------------------------------------------------------ */

static bool valid_account_id(const char *id)
{
    size_t len = strlen(id);
    return len >= 1 && len <= LB_ACCOUNT_ID_MAX &&
           strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

/* Reads required string key `key` of account table t (1-based number `n`);
 * returns the Lua-owned string or NULL with err. */
static const char *account_string(lua_State *L, int t, size_t n, const char *key, lb_error *err)
{
    char field[sizeof err->field];
    snprintf(field, sizeof field, "accounts[%zu].%s", n, key);
    int type = raw_field(L, t, key);
    const char *s = NULL;
    if (type == LUA_TNIL)
        lb_fail(err, field, "is required");
    else if (type != LUA_TSTRING)
        fail_type(L, field, "a string", err);
    else
        s = top_cstring(L, field, err);
    lua_pop(L, 1); /* s stays valid: table t still references the string */
    return s;
}

static int resolve_account_secret(lua_State *L, int t, size_t n, const char *key, char **out, lb_error *err)
{
    const char *ref = account_string(L, t, n, key, err);
    if (!ref)
        return -1;
    char field[sizeof err->field];
    snprintf(field, sizeof field, "accounts[%zu].%s", n, key);
    *out = lb_secret_resolve(ref, field, err);
    return *out ? 0 : -1;
}

/* Fills acc from the table on top of the stack (account number n, 1-based). */
static int read_account(lua_State *L, size_t n, lb_account *acc, lb_error *err)
{
    int t = lua_gettop(L);
    char owner[sizeof err->field], field[sizeof err->field];
    snprintf(owner, sizeof owner, "accounts[%zu]", n);
    snprintf(field, sizeof field, "accounts[%zu].id", n);
    if (!lua_istable(L, t))
        return fail_type(L, owner, "a table { id = ..., hottok = ..., api_token = ... }", err);
    if (check_keys(L, t, lb_account_keys, owner, err) != 0)
        return -1;
    const char *id = account_string(L, t, n, "id", err);
    if (!id)
        return -1;
    if (!valid_account_id(id))
        return lb_fail(err, field, "must be 1 to %d characters from a-z, 0-9, '_' and '-'", LB_ACCOUNT_ID_MAX);
    if (dup_into(id, field, &acc->id, err) != 0)
        return -1;
    if (resolve_account_secret(L, t, n, "hottok", &acc->hottok, err) != 0)
        return -1;
    return resolve_account_secret(L, t, n, "api_token", &acc->api_token, err);
}

static int fail_same(lb_error *err, size_t n, const char *key, size_t other, const char *other_key,
                     const char *why)
{
    char field[sizeof err->field];
    snprintf(field, sizeof field, "accounts[%zu].%s", n, key);
    return lb_fail(err, field, "same value as accounts[%zu].%s; %s", other, other_key, why);
}

/* Compares account j (0-based) with every earlier one. A shared hottok would
 * make webhook routing ambiguous; a shared API token would make the caller
 * ambiguous; an API token equal to any hottok would hand admin access to
 * whoever can read the Hotmart webhook settings. */
static int check_distinct(const lb_config *cfg, size_t j, lb_error *err)
{
    const lb_account *b = &cfg->accounts[j];
    if (strcmp(b->hottok, b->api_token) == 0)
        return fail_same(err, j + 1, "api_token", j + 1, "hottok", "the API token must differ from every hottok");
    for (size_t i = 0; i < j; i++) {
        const lb_account *a = &cfg->accounts[i];
        if (strcmp(a->id, b->id) == 0) {
            char field[sizeof err->field];
            snprintf(field, sizeof field, "accounts[%zu].id", j + 1);
            return lb_fail(err, field, "duplicate account id \"%s\" (also accounts[%zu])", b->id, i + 1);
        }
        if (strcmp(a->hottok, b->hottok) == 0)
            return fail_same(err, j + 1, "hottok", i + 1, "hottok", "each account needs its own hottok");
        if (strcmp(a->api_token, b->api_token) == 0)
            return fail_same(err, j + 1, "api_token", i + 1, "api_token", "each account needs its own API token");
        if (strcmp(a->hottok, b->api_token) == 0)
            return fail_same(err, j + 1, "api_token", i + 1, "hottok", "the API token must differ from every hottok");
        if (strcmp(a->api_token, b->hottok) == 0)
            return fail_same(err, j + 1, "hottok", i + 1, "api_token", "the API token must differ from every hottok");
    }
    return 0;
}

/* An array has exactly the keys 1..n: a named key or a hole is a typo that
 * would otherwise drop an account silently. */
static int check_array(lua_State *L, int t, size_t n, lb_error *err)
{
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        count++;
        if (k < 1 || (lua_Unsigned)k > n) {
            lua_pop(L, 1);
            return lb_fail(err, "accounts", "must be a list { {...}, {...} } without named keys or gaps");
        }
    }
    return count == n ? 0 : lb_fail(err, "accounts", "must be a list { {...}, {...} } without named keys or gaps");
}

static int read_accounts(lua_State *L, int env, lb_config *cfg, lb_error *err)
{
    int type = raw_field(L, env, "accounts");
    int t = lua_gettop(L);
    if (type == LUA_TNIL)
        return lb_fail(err, "accounts", "is required: list at least one account");
    if (type != LUA_TTABLE)
        return fail_type(L, "accounts", "a list of account tables", err);
    size_t n = (size_t)lua_rawlen(L, t);
    if (check_array(L, t, n, err) != 0)
        return -1;
    if (n == 0)
        return lb_fail(err, "accounts", "must list at least one account");
    cfg->accounts = calloc(n, sizeof *cfg->accounts);
    if (!cfg->accounts)
        return lb_fail(err, "accounts", "out of memory");
    cfg->n_accounts = n; /* set now so lb_config_free sees partial accounts */
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, t, (lua_Integer)i + 1);
        int rc = read_account(L, i + 1, &cfg->accounts[i], err);
        lua_settop(L, t);
        if (rc != 0 || check_distinct(cfg, i, err) != 0)
            return -1;
    }
    lua_pop(L, 1);
    return 0;
}

/* ---- loading ------------------------------------------------------------- */

static int validate(lua_State *L, int env, struct lb_load *ld)
{
    if (check_keys(L, env, lb_top_keys, "", ld->err) != 0)
        return -1;
    if (read_scalars(L, env, ld->cfg, ld->err) != 0)
        return -1;
    return read_accounts(L, env, ld->cfg, ld->err);
}

/* Runs under lua_pcall, so a memory error raised by any API call below
 * (including during validation) unwinds to lb_config_load_string instead
 * of aborting the process. */
static int load_protected(lua_State *L)
{
    struct lb_load *ld = lua_touserdata(L, 1);
    push_sandbox_env(L);
    int env = lua_gettop(L);
    int status = luaL_loadbufferx(L, ld->chunk, ld->len, ld->chunkname, "t");
    if (status == LUA_OK) {
        lua_pushvalue(L, env);
        lua_setupvalue(L, -2, 1); /* a main chunk's one upvalue is its _ENV */
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, LB_CONFIG_HOOK_EVERY);
        status = lua_pcall(L, 0, 0, 0);
        lua_sethook(L, NULL, 0, 0);
    }
    if (status != LUA_OK) {
        record_lua_error(L, ld, status);
        return 0;
    }
    ld->rc = validate(L, env, ld);
    return 0;
}

static int run_sandbox(struct lb_load *ld)
{
    lua_State *L = lua_newstate(sandbox_alloc, ld);
    if (!L)
        return lb_fail(ld->err, "", "cannot create a Lua state: out of memory");
    *(struct lb_load **)lua_getextraspace(L) = ld;
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, ld);
    int status = lua_pcall(L, 1, 0, 0);
    if (status != LUA_OK) {
        ld->rc = -1;
        record_lua_error(L, ld, status);
    }
    lua_close(L);
    return ld->rc;
}

lb_config *lb_config_load_string(const char *chunk, const char *chunkname, lb_error *err)
{
    lb_error scratch;
    if (!err)
        err = &scratch;
    lb_error_clear(err);
    struct lb_load ld = {.chunk = chunk, .len = strlen(chunk), .err = err, .rc = -1};
    /* "@name" makes Lua print `name:LINE:` rather than `[string "name"]:LINE:` */
    snprintf(ld.chunkname, sizeof ld.chunkname, "@%s", chunkname ? chunkname : "config");
    ld.cfg = calloc(1, sizeof *ld.cfg);
    if (!ld.cfg) {
        lb_fail(err, "", "out of memory");
        return NULL;
    }
    if (run_sandbox(&ld) != 0) {
        lb_config_free(ld.cfg);
        return NULL;
    }
    return ld.cfg;
}

/* Why a config file's content is unusable, or NULL if it is fine. */
static const char *file_problem(const char *buf, size_t len, bool read_error)
{
    if (read_error)
        return "cannot read config file";
    if (len > LB_CONFIG_FILE_MAX)
        return "config file is larger than 1 MiB";
    if (memchr(buf, '\0', len))
        return "config file contains a NUL byte";
    return NULL;
}

/* Reads a whole file into a NUL-terminated buffer (wipe it after use: it may
 * hold literal secrets). NULL with err naming the path. */
static char *read_config_file(const char *path, lb_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        lb_fail(err, path, "cannot open config file: %s", strerror(errno));
        return NULL;
    }
    char *buf = malloc(LB_CONFIG_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        lb_fail(err, path, "out of memory");
        return NULL;
    }
    size_t len = fread(buf, 1, LB_CONFIG_FILE_MAX + 1, f);
    const char *problem = file_problem(buf, len, ferror(f) != 0);
    fclose(f);
    if (problem) {
        lb_fail(err, path, "%s", problem);
        wipe_free(buf, len);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

lb_config *lb_config_load_file(const char *path, lb_error *err)
{
    lb_error scratch;
    if (!err)
        err = &scratch;
    lb_error_clear(err);
    char *text = read_config_file(path, err);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    lb_config *cfg = lb_config_load_string(text, path, err);
    wipe_free(text, len);
    return cfg;
}

void lb_config_free(lb_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        free(cfg->accounts[i].id);
        lb_secret_free(cfg->accounts[i].hottok);
        lb_secret_free(cfg->accounts[i].api_token);
    }
    free(cfg->accounts);
    free(cfg->listen);
    free(cfg->database);
    free(cfg->log_level);
    free(cfg);
}
