/* config.c: evaluates the Lua config in a sandbox and validates what it set.
 *
 * The sandbox: a fresh lua_State per load whose allocator refuses to go past
 * LB_CONFIG_MEM_LIMIT, a count hook that stops runaway loops (by instructions
 * run and by thread CPU time, as the rule sandbox's does), a
 * text-only loader (no precompiled bytecode, which can crash the VM), and a
 * chunk _ENV that is an empty table falling back (__index) to a table of pure
 * helpers. Nothing reachable from the chunk touches files, the process or the
 * loader, and whatever the chunk assigns at top level lands in that empty
 * table: its entries are exactly the keys the config set.
 *
 * The hook never runs inside a C function, so the library functions that
 * loop in C for as long as the config asks (string patterns, table.move,
 * table.sort, string.rep of "") are the bounded versions of lua_clib.c: a
 * pattern call with a high worst case is walked first and refused if the
 * walk runs too long, and the work of the others is charged before it
 * starts, loops to the instruction budget and patterns (worst cases, or
 * walks and the calls after them) to a budget of their own. The remaining library calls do work in
 * proportion to a string or table the config holds while counting as one
 * instruction; the CPU budget stops a loop of them. */
#include "config.h"

#include "cpu_clock.h"
#include "limiter.h"
#include "lua_clib.h"
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
/* A real config runs a few thousand instructions; 10 million is ~0.1 s
 * (~0.2 s with the CPU clock reads of the hook, below). */
#define LB_CONFIG_INSN_LIMIT 10000000L
/* The instruction budget counts a library call as one instruction, yet one
 * call can work through all the 16 MiB the config may hold: s:upper() on a
 * 4 MB string, or table.insert(t, 1, x) with table.remove(t, 1) on 200,000
 * elements, takes milliseconds, so a loop of them would run for about an
 * hour inside 10 million instructions. A config loads in milliseconds; 5 s
 * of CPU time is far above any real one (a slow machine, a sanitizer build)
 * and still short enough for `listbossd -t`, start-up and reload. */
#define LB_CONFIG_CPU_LIMIT_S 5
/* The hook's period, and so how often it reads the CPU clock. Reading it is
 * a system call (~2 us), so a load that runs the whole instruction budget
 * pays 100,000 of them, ~0.2 s; a real config, a few dozen. A period of 1000
 * holds 250 calls of `for ... do u(s) end`, 0.6 s of s:upper() on 4 MB
 * (seconds under sanitizers), all of which could run past the budget. */
#define LB_CONFIG_HOOK_EVERY 100
/* The worst cases of all the pattern calls of one load together: 20 calls at
 * the per-call bound, well under a second of matching. A config matches a
 * few short strings, if any; without this sum a loop of calls each just
 * under the per-call bound would run for hours inside 10 million
 * instructions. */
#define LB_CONFIG_PATTERN_STEPS ((lua_Unsigned)(20 * LB_PATTERN_STEPS))
/* A config is a page of text; a bigger file is a mistake (wrong -c argument). */
#define LB_CONFIG_FILE_MAX ((size_t)1024 * 1024)

#define LB_MAX_BODY_MIN ((uint64_t)1024)
#define LB_MAX_BODY_MAX ((uint64_t)64 * 1024 * 1024)
#define LB_ACCOUNT_ID_MAX 64
#define LB_ID_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_-"
#define LB_PROVIDER_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_"
#define LB_SEG_NAME_MAX 100
#define LB_SEG_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.-"
/* Params and options are small documents; deeper nesting is a mistake (or a
 * table that contains itself), and the limit bounds the recursion. */
#define LB_PARAMS_MAX_DEPTH 8
/* Depth does not bound size: a table used under many keys at every level is
 * converted each time it appears, exponentially, in json-c memory the
 * sandbox's allocator does not count and after the instruction hook is gone.
 * So all the params and options of a load share this budget: each value
 * costs LB_PARAMS_VALUE_COST plus the bytes of its key and of its string. */
#define LB_PARAMS_MAX_BYTES ((size_t)1024 * 1024)
#define LB_PARAMS_VALUE_COST 16
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
    "synchronous", "plugin_dir", "rules_dir", "custom_rules_dir", "club_scan_interval", "max_connections",
    "accounts",    NULL,
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

/* Which budget stopped a load, for the message. */
enum lb_stop {
    LB_STOP_NONE,
    LB_STOP_INSN,     /* the hook: the config ran too many instructions */
    LB_STOP_CPU,      /* the hook: the config used too much CPU time */
    LB_STOP_LOOP,     /* a library loop would have: stopped_in names it */
    LB_STOP_PATTERNS, /* the pattern calls together: stopped_in names the last */
};

/* One load in progress; reachable from the Lua state through its extra space
 * (the hook) and its allocator userdata, so no global state is needed. */
struct lb_load {
    const char *chunk;
    size_t len;
    char chunkname[128];
    size_t mem_used;
    long insn;                  /* run, plus library loop work charged */
    struct timespec cpu_start;  /* this thread's CPU clock when the chunk started */
    lua_Unsigned pattern_steps; /* charged, of LB_CONFIG_PATTERN_STEPS */
    enum lb_stop stopped;       /* the first budget breach, once there is one */
    const char *stopped_in;     /* the library function that breached, if one did */
    lb_config *cfg; /* owned; everything allocated hangs off it at once */
    lb_error *err;
    int rc;         /* 0 once validation succeeded */
    /* The JSON being built for one account's segmentations. A Lua error
     * (out of memory) can unwind past the code building it, so it is
     * anchored here and run_sandbox frees it. */
    json_object *json_pending;
    size_t params_left; /* of LB_PARAMS_MAX_BYTES */
    bool params_over;   /* a conversion ran out of it */
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

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Raises the budget breach, noting the first one's reason. The hook then
 * re-arms itself to fire on every instruction, so a config that swallows the
 * error with pcall gets it again at its next instruction and unwinds all the
 * way out. */
static void stop_load(lua_State *L, struct lb_load *ld, enum lb_stop why, const char *what)
{
    if (ld->stopped == LB_STOP_NONE) {
        ld->stopped = why;
        ld->stopped_in = what;
    }
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "config budget exhausted");
}

/* Count hook: past the instruction budget or the CPU budget, stop. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct lb_load *ld = load_of(L);
    enum lb_stop why = ld->stopped;
    if (why == LB_STOP_NONE) {
        ld->insn += LB_CONFIG_HOOK_EVERY;
        if (ld->insn > LB_CONFIG_INSN_LIMIT)
            why = LB_STOP_INSN;
        else if (lb_cpu_elapsed_us(&ld->cpu_start) > LB_CONFIG_CPU_LIMIT_S * 1000000L)
            why = LB_STOP_CPU;
        else
            return;
    }
    stop_load(L, ld, why, NULL);
}

/* lua_clib.c's library loops: their work counts as instructions, charged
 * before the loop starts since the hook cannot stop it. */
static void charge_loop(lua_State *L, const char *what, lua_Unsigned units)
{
    struct lb_load *ld = load_of(L);
    if (ld->stopped == LB_STOP_NONE && units <= (lua_Unsigned)(LB_CONFIG_INSN_LIMIT - ld->insn)) {
        ld->insn += (long)units;
        return;
    }
    stop_load(L, ld, LB_STOP_LOOP, what);
}

/* lua_clib.c's pattern calls: each one's worst case, or its walk and the
 * call after it, into their own sum. */
static void charge_pattern(lua_State *L, const char *what, lua_Unsigned steps)
{
    struct lb_load *ld = load_of(L);
    if (ld->stopped == LB_STOP_NONE && steps <= LB_CONFIG_PATTERN_STEPS - ld->pattern_steps) {
        ld->pattern_steps += steps;
        return;
    }
    stop_load(L, ld, LB_STOP_PATTERNS, what);
}

/* string.rep needs no check of its own: Lua asks the allocator for the
 * whole result at once, and LB_CONFIG_MEM_LIMIT refuses it. */
static const lb_clib_budget lb_config_work = {
    .loop = charge_loop, .pattern = charge_pattern, .rep_bytes = NULL, .walk_room = NULL, .walked = charge_pattern};

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
        /* the string table is also the strings' __index: s:find is bounded too */
        lb_clib_bound(L, lb_safe_libs[i].name, &lb_config_work);
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

/* The message of a budget breach, which wins over the error object: the
 * config may have caught the first error and raised another. */
static void record_budget_error(struct lb_load *ld)
{
    if (ld->stopped == LB_STOP_INSN)
        lb_fail(ld->err, "", "config stopped after %ld million Lua instructions; does it loop forever?",
                LB_CONFIG_INSN_LIMIT / 1000000);
    else if (ld->stopped == LB_STOP_CPU)
        lb_fail(ld->err, "",
                "config stopped after %d s of CPU time; does it loop over a large string or table?",
                LB_CONFIG_CPU_LIMIT_S);
    else if (ld->stopped == LB_STOP_LOOP)
        lb_fail(ld->err, "", "config stopped: a %s call would run past the budget of %ld million Lua instructions",
                ld->stopped_in, LB_CONFIG_INSN_LIMIT / 1000000);
    else
        lb_fail(ld->err, "",
                "config stopped at a %s call: its pattern calls together could take more than %llu million "
                "matching steps; match fewer or shorter strings, or with fewer quantifiers",
                ld->stopped_in, (unsigned long long)(LB_CONFIG_PATTERN_STEPS / 1000000));
}

/* Turns the error object on top of the stack into err (field ""). */
static void record_lua_error(lua_State *L, struct lb_load *ld, int status)
{
    if (ld->stopped != LB_STOP_NONE) {
        record_budget_error(ld);
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

/* field = "owner.key", or "key" alone at the top level (owner ""). */
static void field_join(char *field, size_t cap, const char *owner, const char *key)
{
    snprintf(field, cap, "%s%s%s", owner, *owner ? "." : "", key);
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

/* Reads required string key `key` of table t; returns the Lua-owned string
 * (valid while t holds it) or NULL with err naming "owner.key". */
static const char *req_string(lua_State *L, int t, const char *owner, const char *key, lb_error *err)
{
    char field[sizeof err->field];
    field_join(field, sizeof field, owner, key);
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

/* Same, refusing "": for names and ids, where empty is always a mistake. */
static const char *req_nonempty(lua_State *L, int t, const char *owner, const char *key, lb_error *err)
{
    const char *s = req_string(L, t, owner, key, err);
    if (s && !*s) {
        char field[sizeof err->field];
        field_join(field, sizeof field, owner, key);
        lb_fail(err, field, "must not be empty");
        return NULL;
    }
    return s;
}

/* 1 to `max` characters, all from `chars`. */
static bool valid_name(const char *s, size_t max, const char *chars)
{
    size_t len = strlen(s);
    return len >= 1 && len <= max && strspn(s, chars) == len;
}

/* An array has exactly the keys 1..n: a named key or a hole is a typo that
 * would otherwise drop an entry silently. */
static int check_array(lua_State *L, int t, size_t n, const char *field, lb_error *err)
{
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        count++;
        if (k < 1 || (lua_Unsigned)k > n) {
            lua_pop(L, 1);
            return lb_fail(err, field, "must be a list { {...}, {...} } without named keys or gaps");
        }
    }
    return count == n ? 0 : lb_fail(err, field, "must be a list { {...}, {...} } without named keys or gaps");
}

/* Pushes optional list key `key` of table t (nil when absent, then *n = 0)
 * after checking it is a list; on error nothing stays pushed. */
static int push_list(lua_State *L, int t, const char *key, const char *field, size_t *n, lb_error *err)
{
    int type = raw_field(L, t, key);
    *n = 0;
    if (type == LUA_TNIL)
        return 0;
    int rc = type == LUA_TTABLE ? 0 : fail_type(L, field, "a list { {...}, {...} }", err);
    if (rc == 0) {
        *n = (size_t)lua_rawlen(L, -1);
        rc = check_array(L, lua_gettop(L), *n, field, err);
    }
    if (rc != 0)
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
    field_join(field, sizeof field, owner, unknown);
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

/* An optional whole number in [lo, hi]; the errors name its unit, if any. */
typedef struct int_key {
    const char *key;
    const char *of_unit, *unit; /* " of seconds", " seconds"; or "", "" */
    lua_Integer def, lo, hi;
} int_key;

/* club_scan_interval: seconds between inactivity scans. */
static const int_key lb_scan_interval_key = {"club_scan_interval", " of seconds", " seconds", 60, 1, 86400};
/* max_connections: client connections open at once. */
static const int_key lb_max_connections_key = {"max_connections", "", "", 10000, 16, 1000000};

static int read_int_key(lua_State *L, int env, const int_key *k, lua_Integer *out, lb_error *err)
{
    int type = raw_field(L, env, k->key);
    *out = k->def;
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (type != LUA_TNUMBER || !isint)
        return lb_fail(err, k->key, "must be a whole number%s", k->of_unit);
    if (v < k->lo || v > k->hi)
        return lb_fail(err, k->key, "must be between %lld and %lld%s", (long long)k->lo, (long long)k->hi, k->unit);
    *out = v;
    return 0;
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
    lua_Integer scan, conns;
    if (read_int_key(L, env, &lb_scan_interval_key, &scan, err) ||
        read_int_key(L, env, &lb_max_connections_key, &conns, err))
        return -1;
    cfg->club_scan_interval_s = (unsigned)scan;
    cfg->max_connections = (size_t)conns;
    return 0;
}

/* Reads optional folder key `key` into *out: `def` when absent (NULL def:
 * stays NULL). An empty path would silently mean the working directory. */
static int read_dir(lua_State *L, int env, const char *key, const char *def, char **out, lb_error *err)
{
    int type = raw_field(L, env, key);
    lua_pop(L, 1);
    if (type == LUA_TNIL && !def)
        return 0;
    if (opt_string(L, env, key, def, out, err) != 0)
        return -1;
    return **out ? 0 : lb_fail(err, key, "must not be empty");
}

static int read_dirs(lua_State *L, int env, lb_config *cfg, lb_error *err)
{
    /* The environment can move the defaults (never an explicit setting), so a
     * build tree runs without being installed: tools/run-demo and the tests. */
    const char *plugin_default = getenv("LISTBOSS_PLUGIN_DIR");
    const char *rules_default = getenv("LISTBOSS_RULES_DIR");
    if (read_dir(L, env, "plugin_dir", plugin_default && *plugin_default ? plugin_default : LB_DEFAULT_PLUGIN_DIR,
                 &cfg->plugin_dir, err) != 0 ||
        read_dir(L, env, "rules_dir", rules_default && *rules_default ? rules_default : LB_DEFAULT_RULES_DIR,
                 &cfg->rules_dir, err) != 0)
        return -1;
    return read_dir(L, env, "custom_rules_dir", NULL, &cfg->custom_rules_dir, err);
}

/* ---- numbers and keys shared by settings and params ---------------------- */

/* The shortest "%g" text that reads back as d, so 0.1 is "0.1" rather than
 * its 17-digit expansion. */
static void format_double(double d, char *buf, size_t cap)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* Whether the float d is a whole number that int64 holds exactly. */
static bool float_is_int64(double d, int64_t *out)
{
    if (!(d >= -0x1p63 && d < 0x1p63)) /* also false for NaN */
        return false;
    *out = (int64_t)d;
    return (double)*out == d;
}

/* The text of the number at idx: whole numbers without a decimal point
 * ("10", even when computed as 10.0), others in shortest form ("0.5"). */
static int number_text(lua_State *L, int idx, const char *field, char *buf, size_t cap, lb_error *err)
{
    int64_t whole;
    if (lua_isinteger(L, idx)) {
        snprintf(buf, cap, "%lld", (long long)lua_tointeger(L, idx));
        return 0;
    }
    double d = lua_tonumber(L, idx);
    if (!isfinite(d))
        return lb_fail(err, field, "must be a finite number");
    if (float_is_int64(d, &whole))
        snprintf(buf, cap, "%lld", (long long)whole);
    else
        format_double(d, buf, cap);
    return 0;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Pushes t's keys, sorted, as a userdata array of Lua-owned strings (valid
 * while t holds them): sorted so that what the core sees never depends on
 * Lua's hash order, a userdata so that a Lua error cannot leak it. Fails,
 * with nothing pushed, on a key that is not a string or holds a NUL byte. */
static const char **push_sorted_keys(lua_State *L, int t, const char *field, size_t *n, lb_error *err)
{
    size_t count = 0, len;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        const char *type = luaL_typename(L, -1);
        bool is_string = lua_type(L, -1) == LUA_TSTRING;
        if (!is_string || strlen(lua_tolstring(L, -1, &len)) != len) {
            lua_pop(L, 1);
            if (is_string)
                lb_fail(err, field, "keys must not contain NUL bytes");
            else
                lb_fail(err, field, "keys must be names, found a %s key", type);
            return NULL;
        }
        count++;
    }
    const char **keys = lua_newuserdatauv(L, (count ? count : 1) * sizeof *keys, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        keys[i++] = lua_tostring(L, -1);
    }
    qsort(keys, count, sizeof *keys, compare_keys);
    *n = count;
    return keys;
}

/* Copies required key `key` of t into *out: 1 to LB_ACCOUNT_ID_MAX
 * characters from `chars`, described to the user as `what`. */
static int read_ident(lua_State *L, int t, const char *owner, const char *key, const char *chars,
                      const char *what, char **out, lb_error *err)
{
    char field[sizeof err->field];
    field_join(field, sizeof field, owner, key);
    const char *s = req_string(L, t, owner, key, err);
    if (!s)
        return -1;
    if (!valid_name(s, LB_ACCOUNT_ID_MAX, chars))
        return lb_fail(err, field, "must be 1 to %d characters from %s", LB_ACCOUNT_ID_MAX, what);
    return dup_into(s, field, out, err);
}

/* ---- integrations ---------------------------------------------------------- */

/* The readers taking a table index t from here on are called with t on top
 * of the stack, and leave the stack as they found it. */

/* The text a setting is stored as: a string as written (a secret reference
 * stays a reference: only the plugin knows which keys are secret), numbers
 * and booleans as their text. The value is never quoted in an error: it may
 * be a literal secret. */
static int setting_text(lua_State *L, const char *field, char **out, lb_error *err)
{
    char num[64];
    const char *text = NULL;
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        text = top_cstring(L, field, err);
        break;
    case LUA_TNUMBER:
        text = number_text(L, -1, field, num, sizeof num, err) == 0 ? num : NULL;
        break;
    case LUA_TBOOLEAN:
        text = lua_toboolean(L, -1) ? "true" : "false";
        break;
    default:
        return fail_type(L, field, "a string, number or boolean", err);
    }
    return text ? dup_into(text, field, out, err) : -1;
}

/* Fills ic's settings, sorted by name, from the table at index s. */
static int fill_settings(lua_State *L, int s, const char *field, lb_integration_config *ic, lb_error *err)
{
    size_t n;
    const char **keys = push_sorted_keys(L, s, field, &n, err);
    if (!keys || n == 0)
        return keys ? 0 : -1;
    if (!*keys[0]) /* sorted: an empty name comes first */
        return lb_fail(err, field, "a setting name must not be empty");
    ic->keys = calloc(n, sizeof *ic->keys);
    ic->values = calloc(n, sizeof *ic->values);
    if (!ic->keys || !ic->values)
        return lb_fail(err, field, "out of memory");
    ic->n_settings = n; /* now, so lb_config_free sees partial settings */
    for (size_t i = 0; i < n; i++) {
        char item[sizeof err->field];
        field_join(item, sizeof item, field, keys[i]);
        lua_pushstring(L, keys[i]);
        lua_rawget(L, s);
        int rc = setting_text(L, item, &ic->values[i], err);
        lua_pop(L, 1);
        if (rc != 0 || dup_into(keys[i], item, &ic->keys[i], err) != 0)
            return -1;
    }
    return 0;
}

static int read_settings(lua_State *L, int t, const char *owner, lb_integration_config *ic, lb_error *err)
{
    char field[sizeof err->field];
    field_join(field, sizeof field, owner, "settings");
    int type = raw_field(L, t, "settings");
    int rc = 0;
    if (type == LUA_TTABLE)
        rc = fill_settings(L, lua_gettop(L), field, ic, err);
    else if (type != LUA_TNIL)
        rc = fail_type(L, field, "a table of names to strings, numbers or booleans", err);
    lua_settop(L, t);
    return rc;
}

/* Optional key `key` of t, a whole number from min to max; 0 when absent
 * (the provider's default). */
static int opt_uint(lua_State *L, int t, const char *owner, const char *key, unsigned min, unsigned max,
                    unsigned *out, lb_error *err)
{
    char field[sizeof err->field];
    field_join(field, sizeof field, owner, key);
    int type = raw_field(L, t, key);
    int exact = 0, rc = 0;
    lua_Integer v = type == LUA_TNUMBER ? lua_tointegerx(L, -1, &exact) : 0;
    if (type == LUA_TNUMBER && (!exact || v < (lua_Integer)min || v > (lua_Integer)max))
        rc = lb_fail(err, field, "must be a whole number from %u to %u", min, max);
    else if (type != LUA_TNUMBER && type != LUA_TNIL)
        rc = fail_type(L, field, "a whole number", err);
    lua_pop(L, 1);
    *out = rc == 0 ? (unsigned)v : 0;
    return rc;
}

/* Optional requests per second, finite and at least LB_RATE_MIN (limiter.h);
 * 0 when absent (the provider's default). */
static int opt_rate(lua_State *L, int t, const char *owner, double *out, lb_error *err)
{
    char field[sizeof err->field];
    field_join(field, sizeof field, owner, "rate");
    int type = raw_field(L, t, "rate");
    double d = type == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
    int rc = 0;
    if (type == LUA_TNUMBER && !lb_rate_in_range(d))
        rc = lb_fail(err, field, "must be a finite number of requests per second, at least 1/86400 (one a day)");
    else if (type != LUA_TNUMBER && type != LUA_TNIL)
        rc = fail_type(L, field, "a number (requests per second)", err);
    lua_pop(L, 1);
    *out = rc == 0 ? d : 0;
    return rc;
}

/* Fills ic from the table on top of the stack, named `owner`. */
static int read_integration(lua_State *L, const char *owner, lb_integration_config *ic, lb_error *err)
{
    int t = lua_gettop(L);
    if (!lua_istable(L, t))
        return fail_type(L, owner, "a table { id = ..., provider = ... }", err);
    if (check_keys(L, t, lb_integration_keys, owner, err) != 0 ||
        read_ident(L, t, owner, "id", LB_ID_CHARS, "a-z, 0-9, '_' and '-'", &ic->id, err) != 0 ||
        read_ident(L, t, owner, "provider", LB_PROVIDER_CHARS, "a-z, 0-9 and '_'", &ic->provider, err) != 0 ||
        read_settings(L, t, owner, ic, err) != 0 || opt_rate(L, t, owner, &ic->rate_per_s, err) != 0 ||
        opt_uint(L, t, owner, "burst", 1, UINT_MAX, &ic->burst, err) != 0)
        return -1;
    return opt_uint(L, t, owner, "concurrency", 1, LB_CONCURRENCY_MAX, &ic->concurrency, err);
}

/* Segmentations name their integration by id, so ids are unique per account.
 * `list` is the field of the account's list, "accounts[1].integrations". */
static int check_integration_unique(const lb_account *acc, size_t j, const char *list, lb_error *err)
{
    for (size_t i = 0; i < j; i++) {
        if (strcmp(acc->integrations[i].id, acc->integrations[j].id) == 0) {
            char field[sizeof err->field];
            snprintf(field, sizeof field, "%s[%zu].id", list, j + 1);
            return lb_fail(err, field, "duplicate integration id \"%s\" (also %s[%zu])", acc->integrations[j].id,
                           list, i + 1);
        }
    }
    return 0;
}

static int read_integrations(lua_State *L, int t, const char *owner, lb_account *acc, lb_error *err)
{
    char field[sizeof err->field], item[sizeof err->field];
    field_join(field, sizeof field, owner, "integrations");
    size_t n;
    if (push_list(L, t, "integrations", field, &n, err) != 0)
        return -1;
    int list = lua_gettop(L), rc = 0;
    if (n > 0) {
        acc->integrations = calloc(n, sizeof *acc->integrations);
        rc = acc->integrations ? 0 : lb_fail(err, field, "out of memory");
        acc->n_integrations = acc->integrations ? n : 0; /* now: lb_config_free sees partial entries */
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        snprintf(item, sizeof item, "%s[%zu]", field, i + 1);
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        rc = read_integration(L, item, &acc->integrations[i], err);
        lua_settop(L, list);
        if (rc == 0)
            rc = check_integration_unique(acc, i, field, err);
    }
    lua_settop(L, t);
    return rc;
}

/* ---- params and options: Lua tables to JSON ------------------------------ */

/* Each JSON container is attached to its parent before it is filled, so
 * everything built so far hangs off the account's array (which
 * lb_load.json_pending anchors) whatever fails next. */

/* Adds child to parent under key (an object) or at its end (an array, key
 * NULL); owns child either way. child NULL means json-c ran out of memory. */
static int json_attach(json_object *parent, const char *key, json_object *child, const char *field,
                       lb_error *err)
{
    if (child && (key ? json_object_object_add(parent, key, child) : json_object_array_add(parent, child)) == 0)
        return 0;
    json_object_put(child);
    return lb_fail(err, field, "out of memory");
}

/* Appends ".key" (or "[index]" when key is NULL) to path, a field name of
 * LB_FIELD_CAP bytes; returns the old length, to cut back to. */
static size_t path_push(char *path, const char *key, size_t index)
{
    size_t len = strlen(path);
    if (key)
        snprintf(path + len, LB_FIELD_CAP - len, ".%s", key);
    else
        snprintf(path + len, LB_FIELD_CAP - len, "[%zu]", index);
    return len;
}

/* Whether table t is a non-empty list: its keys are exactly 1..n. */
static bool table_is_list(lua_State *L, int t, size_t *n)
{
    size_t count = 0;
    lua_Integer max = 0;
    bool list = true;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        count++;
        lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        list = list && k >= 1;
        max = k > max ? k : max;
    }
    *n = count;
    /* count distinct keys, all in 1..max, and max == count: exactly 1..n */
    return list && count > 0 && (lua_Unsigned)max == count;
}

static int params_value(lua_State *L, char *path, json_object *parent, const char *key, int depth,
                        lb_error *err);

/* Takes the cost of the value on top (named key) from the load's budget;
 * read_params words the error, at the params table's own field. */
static int params_charge(lua_State *L, const char *key)
{
    struct lb_load *ld = load_of(L);
    size_t cost = LB_PARAMS_VALUE_COST + (key ? strlen(key) : 0) +
                  (lua_type(L, -1) == LUA_TSTRING ? lua_rawlen(L, -1) : 0);
    if (cost > ld->params_left) {
        ld->params_over = true;
        return -1;
    }
    ld->params_left -= cost;
    return 0;
}

static int params_list(lua_State *L, int t, size_t n, char *path, json_object *arr, int depth, lb_error *err)
{
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, t, (lua_Integer)i);
        size_t mark = path_push(path, NULL, i);
        int rc = params_value(L, path, arr, NULL, depth, err);
        path[mark] = '\0';
        lua_settop(L, t);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int params_object(lua_State *L, int t, char *path, json_object *obj, int depth, lb_error *err)
{
    size_t n;
    const char **keys = push_sorted_keys(L, t, path, &n, err);
    int rc = keys ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        lua_pushstring(L, keys[i]);
        lua_rawget(L, t);
        size_t mark = path_push(path, keys[i], 0);
        rc = params_value(L, path, obj, keys[i], depth, err);
        path[mark] = '\0';
        lua_pop(L, 1);
    }
    lua_settop(L, t);
    return rc;
}

/* The table on top, `depth` levels deep (a params table itself is 1). The
 * depth limit also stops a table that contains itself. An empty table is an
 * object: Lua cannot tell {} from an empty list. */
static int params_table(lua_State *L, char *path, json_object *parent, const char *key, int depth,
                        lb_error *err)
{
    int t = lua_gettop(L);
    size_t n;
    if (depth > LB_PARAMS_MAX_DEPTH)
        return lb_fail(err, path, "tables nested deeper than %d levels", LB_PARAMS_MAX_DEPTH);
    bool list = table_is_list(L, t, &n);
    json_object *child = list ? json_object_new_array() : json_object_new_object();
    if (json_attach(parent, key, child, path, err) != 0)
        return -1;
    if (list)
        return params_list(L, t, n, path, child, depth + 1, err);
    return params_object(L, t, path, child, depth + 1, err);
}

/* A finite number: a JSON integer when whole, else a double in its
 * shortest text. */
static json_object *json_number(lua_State *L, int idx)
{
    int64_t whole;
    if (lua_isinteger(L, idx))
        return json_object_new_int64(lua_tointeger(L, idx));
    double d = lua_tonumber(L, idx);
    if (float_is_int64(d, &whole))
        return json_object_new_int64(whole);
    char text[32];
    format_double(d, text, sizeof text);
    return json_object_new_double_s(d, text);
}

/* Converts the value on top of the stack (field `path`) and adds it to parent. */
static int params_value(lua_State *L, char *path, json_object *parent, const char *key, int depth,
                        lb_error *err)
{
    const char *s;
    if (params_charge(L, key))
        return -1;
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        s = top_cstring(L, path, err);
        return s ? json_attach(parent, key, json_object_new_string(s), path, err) : -1;
    case LUA_TNUMBER:
        if (!lua_isinteger(L, -1) && !isfinite(lua_tonumber(L, -1)))
            return lb_fail(err, path, "must be a finite number");
        return json_attach(parent, key, json_number(L, -1), path, err);
    case LUA_TBOOLEAN:
        return json_attach(parent, key, json_object_new_boolean(lua_toboolean(L, -1)), path, err);
    case LUA_TTABLE:
        return params_table(L, path, parent, key, depth, err);
    default:
        return fail_type(L, path, "a string, number, boolean or table", err);
    }
}

/* Converts optional key `key` of t (a params or options table) into a JSON
 * object of the same name in obj; absent is {}. Named values only: the core
 * looks parameters up by name, so a list here is a mistake. */
static int read_params(lua_State *L, int t, const char *owner, const char *key, json_object *obj, lb_error *err)
{
    char path[LB_FIELD_CAP];
    field_join(path, sizeof path, owner, key);
    int type = raw_field(L, t, key);
    size_t n;
    int rc;
    if (params_charge(L, key))
        rc = -1;
    else if (type == LUA_TNIL)
        rc = json_attach(obj, key, json_object_new_object(), path, err);
    else if (type != LUA_TTABLE)
        rc = fail_type(L, path, "a table of named values", err);
    else if (table_is_list(L, lua_gettop(L), &n))
        rc = lb_fail(err, path, "expected a table of named values, got a list");
    else
        rc = params_table(L, path, obj, key, 1, err);
    lua_settop(L, t);
    if (rc && load_of(L)->params_over)
        rc = lb_fail(err, path, "too large: params and options may hold %zu KiB in all the configuration "
                     "(a table counts each time it is used)", LB_PARAMS_MAX_BYTES / 1024);
    return rc;
}

/* ---- segmentations ----------------------------------------------------------- */

/* One segmentation being read. The loader checks its shape only; whether the
 * trigger, conditions and actions exist is the core's business, against the
 * rules and the plugins. */
struct lb_seg {
    lua_State *L;
    int t;                    /* its table, on top of the stack */
    char owner[LB_FIELD_CAP]; /* "accounts[1].segmentations[2]" */
    const char *account;      /* "accounts[1]" */
    const lb_account *acc;    /* its integrations are already read */
    json_object *all;         /* the account's array, this entry included */
    size_t index;             /* 0-based position in `all` */
    json_object *obj;         /* this entry */
    lb_error *err;
};

/* The string on top, refusing "" (field named). */
static const char *top_nonempty(lua_State *L, const char *field, lb_error *err)
{
    const char *s = top_cstring(L, field, err);
    if (s && !*s) {
        lb_fail(err, field, "must not be empty");
        return NULL;
    }
    return s;
}

static int seg_name(struct lb_seg *s)
{
    char field[LB_FIELD_CAP];
    field_join(field, sizeof field, s->owner, "name");
    const char *name = req_string(s->L, s->t, s->owner, "name", s->err);
    if (!name)
        return -1;
    if (!valid_name(name, LB_SEG_NAME_MAX, LB_SEG_NAME_CHARS))
        return lb_fail(s->err, field, "must be 1 to %d characters from A-Z, a-z, 0-9, space, '_', '.' and '-'",
                       LB_SEG_NAME_MAX);
    for (size_t i = 0; i < s->index; i++) {
        json_object *prev = json_object_object_get(json_object_array_get_idx(s->all, i), "name");
        if (strcmp(json_object_get_string(prev), name) == 0)
            return lb_fail(s->err, field, "duplicate segmentation name \"%.64s\" (also %s.segmentations[%zu])", name,
                           s->account, i + 1);
    }
    return json_attach(s->obj, "name", json_object_new_string(name), field, s->err);
}

/* Hotmart product ids are numbers but arrive as text in some payloads, so
 * the core compares text: an integer is stored as its decimal digits. */
static int seg_product(struct lb_seg *s)
{
    char field[LB_FIELD_CAP], digits[32];
    field_join(field, sizeof field, s->owner, "product");
    int type = raw_field(s->L, s->t, "product");
    const char *product = digits;
    int exact = 0;
    if (type == LUA_TNIL)
        return lb_fail(s->err, field, "is required");
    if (type == LUA_TSTRING) {
        product = top_nonempty(s->L, field, s->err);
    } else if (type == LUA_TNUMBER) {
        lua_Integer id = lua_tointegerx(s->L, -1, &exact);
        if (!exact || id < 1)
            return lb_fail(s->err, field, "expected a positive whole number or a string");
        snprintf(digits, sizeof digits, "%lld", (long long)id);
    } else {
        return fail_type(s->L, field, "a product id (a string or a whole number)", s->err);
    }
    return product ? json_attach(s->obj, "product", json_object_new_string(product), field, s->err) : -1;
}

/* Reads the table on top, { <keys[0]> = "...", params = {...} } where
 * keys[0] is "id" (a trigger or a condition) or "action", into obj. */
static int read_ref(lua_State *L, const char *owner, const char *const *keys, json_object *obj, lb_error *err)
{
    int t = lua_gettop(L);
    char field[LB_FIELD_CAP];
    field_join(field, sizeof field, owner, keys[0]);
    if (!lua_istable(L, t))
        return lb_fail(err, owner, "expected a table { %s = ..., params = {...} }, got %s", keys[0],
                       luaL_typename(L, t));
    if (check_keys(L, t, keys, owner, err) != 0)
        return -1;
    const char *name = req_nonempty(L, t, owner, keys[0], err);
    if (!name || json_attach(obj, keys[0], json_object_new_string(name), field, err) != 0)
        return -1;
    return read_params(L, t, owner, "params", obj, err);
}

/* "purchase_approved" is short for { id = "purchase_approved" }; the JSON
 * always has the long form so the core reads one shape. */
static int seg_trigger(struct lb_seg *s)
{
    char field[LB_FIELD_CAP];
    field_join(field, sizeof field, s->owner, "trigger");
    int type = raw_field(s->L, s->t, "trigger");
    if (type == LUA_TNIL)
        return lb_fail(s->err, field, "is required");
    if (type != LUA_TSTRING && type != LUA_TTABLE)
        return fail_type(s->L, field, "a trigger id or a table { id = ..., params = {...} }", s->err);
    json_object *trigger = json_object_new_object();
    if (json_attach(s->obj, "trigger", trigger, field, s->err) != 0)
        return -1;
    if (type == LUA_TTABLE)
        return read_ref(s->L, field, lb_ref_keys, trigger, s->err);
    const char *id = top_nonempty(s->L, field, s->err);
    if (!id || json_attach(trigger, "id", json_object_new_string(id), field, s->err) != 0)
        return -1;
    return json_attach(trigger, "params", json_object_new_object(), field, s->err);
}

/* List key `key` of entries read_ref understands, into a JSON array; absent
 * is [] unless `required`. */
static int seg_refs(struct lb_seg *s, const char *key, const char *const *keys, bool required)
{
    char field[LB_FIELD_CAP], item[LB_FIELD_CAP];
    field_join(field, sizeof field, s->owner, key);
    size_t n;
    if (push_list(s->L, s->t, key, field, &n, s->err) != 0)
        return -1;
    int list = lua_gettop(s->L);
    if (required && lua_isnil(s->L, list))
        return lb_fail(s->err, field, "is required");
    if (required && n == 0)
        return lb_fail(s->err, field, "must list at least one %s", keys[0]);
    json_object *arr = json_object_new_array();
    if (json_attach(s->obj, key, arr, field, s->err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        snprintf(item, sizeof item, "%s[%zu]", field, i + 1);
        lua_rawgeti(s->L, list, (lua_Integer)i + 1);
        json_object *entry = json_object_new_object();
        int rc = json_attach(arr, NULL, entry, item, s->err);
        if (rc == 0)
            rc = read_ref(s->L, item, keys, entry, s->err);
        lua_settop(s->L, list);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int seg_conditions(struct lb_seg *s)
{
    return seg_refs(s, "conditions", lb_ref_keys, false);
}

/* { file = "vip.lua" } or { inline = "..." }; the rules host checks the
 * file name and compiles the source. Absent: no "custom" member. */
static int seg_custom(struct lb_seg *s)
{
    char field[LB_FIELD_CAP], value_field[LB_FIELD_CAP];
    field_join(field, sizeof field, s->owner, "custom");
    int type = raw_field(s->L, s->t, "custom");
    int c = lua_gettop(s->L);
    if (type == LUA_TNIL)
        return 0;
    if (type != LUA_TTABLE)
        return fail_type(s->L, field, "a table { file = ... } or { inline = ... }", s->err);
    if (check_keys(s->L, c, lb_custom_keys, field, s->err) != 0)
        return -1;
    bool has_file = raw_field(s->L, c, "file") != LUA_TNIL;
    bool has_inline = raw_field(s->L, c, "inline") != LUA_TNIL;
    if (has_file == has_inline)
        return lb_fail(s->err, field, "set exactly one of file or inline");
    const char *key = has_file ? "file" : "inline";
    field_join(value_field, sizeof value_field, field, key);
    const char *value = req_nonempty(s->L, c, field, key, s->err);
    json_object *custom = value ? json_object_new_object() : NULL;
    if (!value || json_attach(s->obj, "custom", custom, field, s->err) != 0)
        return -1;
    return json_attach(custom, key, json_object_new_string(value), value_field, s->err);
}

static int seg_integration(struct lb_seg *s)
{
    char field[LB_FIELD_CAP];
    field_join(field, sizeof field, s->owner, "integration");
    const char *id = req_nonempty(s->L, s->t, s->owner, "integration", s->err);
    if (!id)
        return -1;
    for (size_t i = 0; i < s->acc->n_integrations; i++)
        if (strcmp(s->acc->integrations[i].id, id) == 0)
            return json_attach(s->obj, "integration", json_object_new_string(id), field, s->err);
    if (s->acc->n_integrations == 0)
        return lb_fail(s->err, field, "names \"%.64s\" but %s declares no integrations", id, s->account);
    return lb_fail(s->err, field, "no integration with id \"%.64s\" in %s.integrations", id, s->account);
}

static int seg_actions(struct lb_seg *s)
{
    return seg_refs(s, "actions", lb_action_keys, true);
}

static int seg_options(struct lb_seg *s)
{
    return read_params(s->L, s->t, s->owner, "options", s->obj, s->err);
}

static int seg_enabled(struct lb_seg *s)
{
    char field[LB_FIELD_CAP];
    field_join(field, sizeof field, s->owner, "enabled");
    int type = raw_field(s->L, s->t, "enabled");
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        return fail_type(s->L, field, "a boolean (true or false)", s->err);
    bool on = type == LUA_TNIL || lua_toboolean(s->L, -1);
    return json_attach(s->obj, "enabled", json_object_new_boolean(on), field, s->err);
}

/* In the order of the JSON members: json-c keeps insertion order. */
static int (*const lb_seg_steps[])(struct lb_seg *) = {
    seg_name, seg_product, seg_trigger, seg_conditions, seg_custom, seg_integration, seg_actions, seg_options,
    seg_enabled,
};

static int read_segmentation(struct lb_seg *s)
{
    if (!lua_istable(s->L, s->t))
        return fail_type(s->L, s->owner, "a table { name = ..., product = ..., trigger = ..., actions = ... }",
                         s->err);
    if (check_keys(s->L, s->t, lb_segmentation_keys, s->owner, s->err) != 0)
        return -1;
    s->obj = json_object_new_object();
    if (json_attach(s->all, NULL, s->obj, s->owner, s->err) != 0)
        return -1;
    for (size_t i = 0; i < sizeof lb_seg_steps / sizeof lb_seg_steps[0]; i++) {
        int rc = lb_seg_steps[i](s);
        lua_settop(s->L, s->t);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int fill_segmentations(lua_State *L, int list, size_t n, const char *owner, const lb_account *acc,
                              json_object *all, lb_error *err)
{
    struct lb_seg s = {.L = L, .account = owner, .acc = acc, .all = all, .err = err};
    for (size_t i = 0; i < n; i++) {
        snprintf(s.owner, sizeof s.owner, "%s.segmentations[%zu]", owner, i + 1);
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        s.t = lua_gettop(L);
        s.index = i;
        int rc = read_segmentation(&s);
        lua_settop(L, list);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Builds acc->segmentations_json from the non-empty list at index `list`. */
static int build_segmentations_json(lua_State *L, int list, size_t n, const char *owner, lb_account *acc,
                                    const char *field, lb_error *err)
{
    struct lb_load *ld = load_of(L);
    json_object *all = json_object_new_array();
    if (!all)
        return lb_fail(err, field, "out of memory");
    ld->json_pending = all;
    int rc = fill_segmentations(L, list, n, owner, acc, all, err);
    if (rc == 0) {
        const char *text =
            json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        rc = text ? dup_into(text, field, &acc->segmentations_json, err) : lb_fail(err, field, "out of memory");
    }
    ld->json_pending = NULL;
    json_object_put(all);
    return rc;
}

/* An absent or empty list leaves segmentations_json NULL: none declared. */
static int read_segmentations(lua_State *L, int t, const char *owner, lb_account *acc, lb_error *err)
{
    char field[sizeof err->field];
    field_join(field, sizeof field, owner, "segmentations");
    size_t n;
    if (push_list(L, t, "segmentations", field, &n, err) != 0)
        return -1;
    int rc = n == 0 ? 0 : build_segmentations_json(L, lua_gettop(L), n, owner, acc, field, err);
    lua_settop(L, t);
    return rc;
}

/* ---- accounts ------------------------------------------------------------ */

static int resolve_account_secret(lua_State *L, int t, const char *owner, const char *key, char **out,
                                  lb_error *err)
{
    const char *ref = req_string(L, t, owner, key, err);
    if (!ref)
        return -1;
    char field[sizeof err->field];
    field_join(field, sizeof field, owner, key);
    *out = lb_secret_resolve(ref, field, err);
    return *out ? 0 : -1;
}

/* Fills acc from the table on top of the stack (account number n, 1-based). */
static int read_account(lua_State *L, size_t n, lb_account *acc, lb_error *err)
{
    int t = lua_gettop(L);
    char owner[sizeof err->field];
    snprintf(owner, sizeof owner, "accounts[%zu]", n);
    if (!lua_istable(L, t))
        return fail_type(L, owner, "a table { id = ..., hottok = ..., api_token = ... }", err);
    if (check_keys(L, t, lb_account_keys, owner, err) != 0 ||
        read_ident(L, t, owner, "id", LB_ID_CHARS, "a-z, 0-9, '_' and '-'", &acc->id, err) != 0)
        return -1;
    if (resolve_account_secret(L, t, owner, "hottok", &acc->hottok, err) != 0 ||
        resolve_account_secret(L, t, owner, "api_token", &acc->api_token, err) != 0)
        return -1;
    /* integrations first: segmentations refer to them by id */
    if (read_integrations(L, t, owner, acc, err) != 0)
        return -1;
    return read_segmentations(L, t, owner, acc, err);
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

static int read_accounts(lua_State *L, int env, lb_config *cfg, lb_error *err)
{
    int type = raw_field(L, env, "accounts");
    int t = lua_gettop(L);
    if (type == LUA_TNIL)
        return lb_fail(err, "accounts", "is required: list at least one account");
    if (type != LUA_TTABLE)
        return fail_type(L, "accounts", "a list of account tables", err);
    size_t n = (size_t)lua_rawlen(L, t);
    if (check_array(L, t, n, "accounts", err) != 0)
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
    if (read_scalars(L, env, ld->cfg, ld->err) != 0 || read_dirs(L, env, ld->cfg, ld->err) != 0)
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
        lb_cpu_clock_start(&ld->cpu_start);
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
    json_object_put(ld->json_pending); /* non-NULL only if a Lua error unwound past its owner */
    ld->json_pending = NULL;
    return ld->rc;
}

lb_config *lb_config_load_string(const char *chunk, const char *chunkname, lb_error *err)
{
    lb_error scratch;
    if (!err)
        err = &scratch;
    lb_error_clear(err);
    struct lb_load ld = {
        .chunk = chunk, .len = strlen(chunk), .err = err, .rc = -1, .params_left = LB_PARAMS_MAX_BYTES};
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

/* Setting values may be literal secrets, so they are wiped like secrets. */
static void free_integration(lb_integration_config *ic)
{
    for (size_t i = 0; i < ic->n_settings; i++) {
        free(ic->keys[i]);
        lb_secret_free(ic->values[i]);
    }
    free(ic->keys);
    free(ic->values);
    free(ic->id);
    free(ic->provider);
}

static void free_account(lb_account *acc)
{
    free(acc->id);
    lb_secret_free(acc->hottok);
    lb_secret_free(acc->api_token);
    for (size_t i = 0; i < acc->n_integrations; i++)
        free_integration(&acc->integrations[i]);
    free(acc->integrations);
    free(acc->segmentations_json);
}

void lb_config_free(lb_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_accounts; i++)
        free_account(&cfg->accounts[i]);
    free(cfg->accounts);
    free(cfg->listen);
    free(cfg->database);
    free(cfg->log_level);
    free(cfg->plugin_dir);
    free(cfg->rules_dir);
    free(cfg->custom_rules_dir);
    free(cfg);
}
