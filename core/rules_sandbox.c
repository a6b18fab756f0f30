/* rules_sandbox.c: the one lua_State of a rule set and the fences around it.
 *
 * - Memory: a counting allocator refuses to let the state pass mem_total,
 *   and during an evaluation to grow more than mem_per_eval past where the
 *   evaluation started (Lua runs an emergency collection before it gives
 *   up, so garbage does not count for long). Every block also records the
 *   module whose code allocated it (sb->owner), so rules.c knows what each
 *   module keeps and which one to blame when the state fills up.
 * - CPU: a count hook every LB_HOOK_EVERY instructions compares the
 *   evaluation's instruction count and thread CPU time with the budgets. On
 *   a breach it raises and re-arms itself with count 1, so a rule that
 *   catches the error with pcall gets it again at its next instruction and
 *   unwinds all the way out (the Redis / HAProxy technique). The hook never
 *   runs inside a C function, so the library loops a rule can stretch are
 *   bounded before they start (lua_clib.c, lb_sb_charge).
 * - Globals: modules never see the real globals table. Each chunk gets its
 *   own empty _ENV whose reads fall back to one frozen sandbox table and
 *   whose writes raise; so do reads of names the sandbox lacks (typos in a
 *   rule fail loudly instead of reading nil). The library tables are reached
 *   through read-only proxies, so no module can patch string.find for the
 *   others: pairs() over a proxy iterates the library without returning it,
 *   and the string metatable is protected so getmetatable("") does not hand
 *   out the real string table either.
 * - Code: text chunks only (binary chunks can crash the VM); no load,
 *   loadfile, dofile, require, collectgarbage, print, rawset, setmetatable,
 *   io, os, package, debug or coroutine. Without setmetatable the only
 *   metatables are the sandbox's own (views, proxies, strings): no rule can
 *   make a C function such as `type` an __index or __len that a library loop
 *   in C follows for ever, nor a finalizer that runs outside any budget. */
#include "rules_int.h"

#include "cpu_clock.h"
#include "lua_clib.h"

#include <lauxlib.h>
#include <lualib.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LB_HOOK_EVERY 1000

/* Each block starts with its owner (the counter of the module whose code
 * allocated it, or NULL for the set's own memory: module loads, views made
 * by C), padded so that what Lua gets keeps malloc's alignment. */
#define LB_BLOCK_HEAD (((sizeof(size_t *) - 1) / _Alignof(max_align_t) + 1) * _Alignof(max_align_t))

/* Base functions a rule may use. Left out on purpose: load, loadfile,
 * dofile, require (code loading), collectgarbage (GC control is ours), print
 * (no I/O), rawset (would write through a proxy's __newindex into the
 * shared library tables), and setmetatable (see the header comment; no
 * shipped rule uses it). */
static const char *const lb_safe_base[] = {
    "assert", "error",   "getmetatable", "ipairs", "next",     "pairs",    "pcall",  "rawequal",
    "rawget", "rawlen",  "select",       "tonumber", "tostring", "type",    "xpcall", "_VERSION", NULL,
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

#define LB_REG_SANDBOX "lb.sandbox"
#define LB_REG_ENVMETA "lb.envmeta"

/* ---- budgets --------------------------------------------------------------- */

/* Whether the state may grow by `grow` bytes. A refusal during an
 * evaluation is noted, and so is whether the set's total was the limit that
 * refused it although the evaluation's own allowance had room: then the
 * state was full before the evaluation could use its mem_per_eval. */
static bool sb_room(lb_sandbox *sb, size_t grow)
{
    size_t own = sb->in_eval ? sb->eval_base + sb->cap_eval : SIZE_MAX;
    size_t limit = own < sb->cap_total ? own : sb->cap_total;
    if (sb->used < limit && grow <= limit - sb->used)
        return true;
    if (sb->in_eval) {
        sb->mem_hit = true;
        sb->mem_full = sb->mem_full || (sb->used < own && grow <= own - sb->used);
    }
    return false; /* Lua collects, retries once, then raises LUA_ERRMEM */
}

static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lb_sandbox *sb = ud;
    size_t old = ptr ? osize : 0; /* for a new block, osize is a type tag */
    char *head = ptr ? (char *)ptr - LB_BLOCK_HEAD : NULL;
    size_t *owner = head ? *(size_t **)head : NULL;
    if (nsize == 0) {
        if (owner)
            *owner -= old;
        free(head);
        sb->used -= old;
        return NULL;
    }
    if (nsize > old && !sb_room(sb, nsize - old))
        return NULL;
    char *block = realloc(head, LB_BLOCK_HEAD + nsize);
    if (!block)
        return NULL; /* shrinking never reaches here with NULL on glibc */
    /* A block belongs to the module that made it or last grew it; one that
     * shrinks (the GC trims stacks and the string table) keeps its owner. */
    if (owner)
        *owner -= old;
    if (nsize > old)
        owner = sb->owner;
    if (owner)
        *owner += nsize;
    *(size_t **)block = owner;
    sb->used = sb->used - old + nsize;
    return block + LB_BLOCK_HEAD;
}

static void sb_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lb_sandbox *sb = lb_sb_of(L);
    if (!sb->timed_out) {
        sb->insn += LB_HOOK_EVERY;
        if (!sb->clock_started) {
            /* The clock starts at the first hook, not at lb_sb_begin: reading
             * the thread CPU clock is a system call, and the typical rule
             * finishes in far fewer than LB_HOOK_EVERY instructions, so it
             * never pays for it. What goes unmeasured is bounded by the
             * instruction budget (and is microseconds). */
            lb_cpu_clock_start(&sb->cpu_start);
            sb->clock_started = true;
            if (sb->insn <= sb->insn_budget)
                return;
        } else if (sb->insn <= sb->insn_budget && lb_cpu_elapsed_us(&sb->cpu_start) <= sb->cpu_budget_us) {
            return;
        }
        sb->timed_out = true;
    }
    /* Re-arm at every instruction: a pcall in the rule catches this error,
     * and the very next instruction it runs raises again. */
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "rule CPU budget exceeded");
}

/* Instructions the evaluation may still run: 0 once it timed out. */
static lua_Unsigned insn_left(const lb_sandbox *sb)
{
    return sb->timed_out || sb->insn >= sb->insn_budget ? 0 : (lua_Unsigned)(sb->insn_budget - sb->insn);
}

void lb_sb_charge(lua_State *L, lua_Unsigned units)
{
    lb_sandbox *sb = lb_sb_of(L);
    if (!sb->timed_out && units <= insn_left(sb)) {
        sb->insn += (long)units;
        return;
    }
    /* The same breach as the hook's: the hook re-armed at count 1 keeps a
     * pcall in the rule from carrying on. */
    sb->timed_out = true;
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "rule CPU budget exceeded");
}

void lb_sb_begin(lb_sandbox *sb)
{
    sb->gen++;
    sb->in_eval = true;
    sb->eval_base = sb->used;
    sb->mem_hit = sb->mem_full = false;
    sb->timed_out = false;
    sb->clock_started = false;
    sb->insn = 0;
}

const char *lb_outcome_name(lb_outcome o)
{
    static const char *const names[] = {"ok", "error", "timeout", "nomem"};
    return names[o];
}

/* The error value on top as text. Only strings are shown: calling
 * __tostring on a rule's error object would run rule code unbudgeted. */
static void error_text(lua_State *L, char *msg, size_t cap)
{
    if (lua_type(L, -1) == LUA_TSTRING)
        snprintf(msg, cap, "%s", lua_tostring(L, -1));
    else
        snprintf(msg, cap, "error object is a %s value", luaL_typename(L, -1));
}

lb_outcome lb_sb_pcall(lb_sandbox *sb, int nargs, int nres, char *msg, size_t cap)
{
    lua_State *L = sb->L;
    if (!sb->in_eval)
        lb_sb_begin(sb);
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, LB_HOOK_EVERY);
    int status = lua_pcall(L, nargs, nres, 0);
    lua_sethook(L, NULL, 0, 0);
    sb->in_eval = false;
    sb->gen++; /* every view made during the call is dead from here on */

    /* The flags win over the status: a rule may have caught the error. */
    lb_outcome out = sb->timed_out ? LB_OUT_TIMEOUT
                     : (sb->mem_hit || status == LUA_ERRMEM) ? LB_OUT_NOMEM
                     : status != LUA_OK ? LB_OUT_ERROR
                                        : LB_OUT_OK;
    msg[0] = '\0';
    if (status != LUA_OK) {
        error_text(L, msg, cap);
        lua_pop(L, 1);
    } else if (out != LB_OUT_OK) {
        lua_pop(L, nres);
    }
    if (out == LB_OUT_TIMEOUT)
        snprintf(msg, cap, "CPU budget exceeded (%ld ms or %ld instructions)", sb->cpu_budget_us / 1000,
                 sb->insn_budget);
    else if (out == LB_OUT_NOMEM && sb->mem_full)
        snprintf(msg, cap, "the rule set's %zu KiB were full before this rule could use its %zu KiB per evaluation",
                 sb->cap_total / 1024, sb->cap_eval / 1024);
    else if (out == LB_OUT_NOMEM)
        snprintf(msg, cap, "memory budget exceeded (%zu KiB per evaluation, %zu KiB per rule set)",
                 sb->cap_eval / 1024, sb->cap_total / 1024);
    if (out == LB_OUT_NOMEM)
        lua_gc(L, LUA_GCCOLLECT); /* hand the garbage back now, not at the next cap */
    return out;
}

/* ---- the frozen globals ----------------------------------------------------- */

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify a read-only table");
}

/* The iterator of a proxy's pairs: next over the real table (upvalue 1).
 * The state argument (the proxy) is ignored and the real table is never
 * returned: whoever holds it can rewrite the library for every rule, and
 * through the string metatable for every string. */
static int proxy_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1)) == 0) {
        lua_pushnil(L);
        return 1;
    }
    return 2;
}

/* __pairs of a proxy: the iterator above (upvalue 1), the proxy, nil. */
static int proxy_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Replaces the table on top by a read-only proxy of it. */
static void make_proxy(lua_State *L)
{
    lua_newtable(L);          /* real proxy */
    lua_createtable(L, 0, 4); /* real proxy meta */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, proxy_next, 1);
    lua_pushcclosure(L, proxy_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

/* The library loops (lua_clib.c) pay into the instruction budget. A pattern
 * call has only its per-call bound: its worst case is often far above the
 * real work (the trim idiom on 100 bytes counts 2.4 million steps), so two
 * ordinary calls would eat the budget; the CPU clock stops a loop of costly
 * calls instead. */
static void charge_loop(lua_State *L, const char *what, lua_Unsigned units)
{
    lb_sb_charge(L, units);
}

/* string.rep's size is checked before it allocates, so a huge count fails
 * at once (as a memory-budget breach) instead of asking malloc for
 * gigabytes. */
static void charge_rep(lua_State *L, const char *what, lua_Unsigned bytes)
{
    lb_sandbox *sb = lb_sb_of(L);
    if (bytes <= sb->cap_eval)
        return;
    if (sb->in_eval)
        sb->mem_hit = true;
    luaL_error(L, "string.rep result too large");
}

/* A pattern call walked past the static bound (lua_clib.c) may use what
 * the evaluation's instruction budget has left, a step for an instruction
 * (charge_loop takes them): the walk of a refused call counts too, so a
 * loop of refused calls under pcall runs out of budget after the first
 * ones instead of paying a whole walk each until the clock's next check. */
static lua_Unsigned walk_room(lua_State *L)
{
    return insn_left(lb_sb_of(L));
}

static const lb_clib_budget lb_rule_work = {
    .loop = charge_loop, .pattern = NULL, .rep_bytes = charge_rep, .walk_room = walk_room, .walked = charge_loop};

/* Opens a library into the registry, hardens it, and stores a proxy of it in
 * the sandbox table at the top of the stack. */
static void add_lib(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_requiref(L, name, open, 0);
    if (strcmp(name, LUA_STRLIBNAME) == 0) {
        lua_pushnil(L);
        lua_setfield(L, -2, "dump"); /* bytecode: nothing here may load it */
    }
    /* in the real table: strings reach it as their metatable's __index */
    lb_clib_bound(L, name, &lb_rule_work);
    make_proxy(L);
    lua_setfield(L, -2, name);
}

/* Hides the real string table behind getmetatable(""). */
static void protect_string_meta(lua_State *L)
{
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

static int env_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TNIL)
        return luaL_error(L, "undefined global '%s'", lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
    return 1;
}

static int env_newindex(lua_State *L)
{
    return luaL_error(L, "assignment to global '%s': rules may not define globals (use local)",
                      lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

/* Builds the sandbox table and the metatable every chunk _ENV shares. */
static void build_sandbox(lua_State *L)
{
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    lua_pop(L, 1);
    lua_newtable(L);
    for (size_t i = 0; lb_safe_base[i]; i++) {
        lua_getglobal(L, lb_safe_base[i]);
        lua_setfield(L, -2, lb_safe_base[i]);
    }
    for (size_t i = 0; i < sizeof lb_safe_libs / sizeof lb_safe_libs[0]; i++)
        add_lib(L, lb_safe_libs[i].name, lb_safe_libs[i].open);
    lb_helpers_push(L);
    make_proxy(L);
    lua_setfield(L, -2, "lb");
    protect_string_meta(L);

    lua_createtable(L, 0, 3); /* sandbox envmeta */
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, env_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setfield(L, LUA_REGISTRYINDEX, LB_REG_ENVMETA);
    lua_setfield(L, LUA_REGISTRYINDEX, LB_REG_SANDBOX);

    /* Unreachable from rules anyway; removed so no future path leaks them. */
    static const char *const unsafe[] = {"load", "loadfile", "dofile", "require", "collectgarbage", "print", NULL};
    for (size_t i = 0; unsafe[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, unsafe[i]);
    }
}

/* lua_atpanic: an error outside any pcall. Every entry from C into Lua here
 * is protected, so reaching this is a bug; fail loudly rather than longjmp
 * into nowhere. */
static int sb_panic(lua_State *L)
{
    fprintf(stderr, "listboss rules: unprotected Lua error: %s\n",
            lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    abort();
}

static int open_protected(lua_State *L)
{
    lb_view_open(L);
    build_sandbox(L);
    return 0;
}

int lb_sb_open(lb_sandbox *sb, const lb_rules_limits *lim, lb_error *err)
{
    memset(sb, 0, sizeof *sb);
    sb->cap_total = lim->mem_total;
    sb->cap_eval = lim->mem_per_eval;
    sb->insn_budget = lim->insn_budget;
    sb->cpu_budget_us = lim->cpu_budget_us;
    sb->L = lua_newstate(sb_alloc, sb);
    if (!sb->L)
        return lb_fail(err, "", "cannot create a Lua state (memory cap %zu bytes)", sb->cap_total);
    lua_atpanic(sb->L, sb_panic);
    *(lb_sandbox **)lua_getextraspace(sb->L) = sb;
    lua_pushcfunction(sb->L, open_protected);
    if (lua_pcall(sb->L, 0, 0, 0) != LUA_OK) {
        lb_fail(err, "", "cannot set up the Lua sandbox: %s", lua_tostring(sb->L, -1));
        lb_sb_close(sb);
        return -1;
    }
    return 0;
}

void lb_sb_close(lb_sandbox *sb)
{
    if (sb->L)
        lua_close(sb->L);
    sb->L = NULL;
}

/* Runs the chunk at index 1 with a fresh strict _ENV (its first upvalue).
 * Called through lua_pcall: creating the table may raise "not enough
 * memory", which must not happen outside a protected call. */
static int chunk_tramp(lua_State *L)
{
    lua_newtable(L);
    lua_getfield(L, LUA_REGISTRYINDEX, LB_REG_ENVMETA);
    lua_setmetatable(L, -2);
    lua_setupvalue(L, 1, 1);
    lua_call(L, 0, 1);
    return 1;
}

int lb_sb_run_chunk(lb_sandbox *sb, const char *src, size_t len, const char *chunkname, lb_error *err)
{
    lua_State *L = sb->L;
    char name[160];
    char msg[240];
    snprintf(name, sizeof name, "=%s", chunkname); /* '=': messages say "triggers/x.lua:3:" */
    /* lua_load runs the parser protected: failures come back as a status */
    if (luaL_loadbufferx(L, src, len, name, "t") != LUA_OK) {
        error_text(L, msg, sizeof msg);
        lua_pop(L, 1);
        return lb_fail(err, chunkname, "%s", msg);
    }
    lua_pushcfunction(L, chunk_tramp); /* a light C function: no allocation */
    lua_insert(L, -2);
    lb_sb_begin(sb);
    lb_outcome out = lb_sb_pcall(sb, 1, 1, msg, sizeof msg);
    if (out != LB_OUT_OK)
        return lb_fail(err, chunkname, "%s: %s", lb_outcome_name(out), msg);
    return 0;
}

int lb_sb_protect(lb_sandbox *sb, lua_CFunction f, void *ud, int nargs, const char *field, lb_error *err)
{
    lua_State *L = sb->L;
    lua_pushcfunction(L, f);
    lua_pushlightuserdata(L, ud);
    lua_rotate(L, -(nargs + 2), 2); /* f ud args... */
    if (lua_pcall(L, nargs + 1, 0, 0) == LUA_OK)
        return 0;
    char msg[240];
    error_text(L, msg, sizeof msg);
    lua_pop(L, 1);
    return lb_fail(err, field, "%s", msg);
}
