/* lua_clib.c: the library functions whose work a script controls and a
 * count hook cannot interrupt (see lua_clib.h). Each is bounded before it
 * starts:
 *
 * - table.move copies e - f + 1 elements whatever the tables hold (nil
 *   into an empty table costs nothing but time): the count is charged to
 *   the sandbox's budget, so a move of math.maxinteger elements fails at
 *   once.
 * - table.sort: n * log2(n) comparisons are charged.
 * - string.find, match, gmatch and gsub: Lua's matcher backtracks, so a few
 *   quantifiers on a long subject take for ever (".-.-.-.-b" on 3000
 *   bytes), and a plain find compares up to n * m bytes. A call whose worst
 *   case (pattern_cost) is at most LB_PATTERN_WALK_FROM runs, charged to
 *   the sandbox's pattern budget if it keeps one. Past it, the call is
 *   walked first (lua_pattern_meter.c), charged what the walk and the call
 *   cost, and runs only if the walk ends within LB_PATTERN_STEPS: the worst
 *   case of the trim idiom on 130 bytes is past 5 million steps, though the
 *   walk takes a few thousand. A plain find whose worst case passes
 *   LB_PATTERN_STEPS is refused.
 * - string.rep of an empty string (and separator) loops n times copying
 *   nothing, so no memory cap stops string.rep("", math.maxinteger): the
 *   empty result is returned without the loop. Any other result's size is
 *   offered to the sandbox before it is allocated.
 *
 * The rest of the libraries do work in proportion to a string or table the
 * script already holds, so the sandbox's memory cap bounds each call; and
 * neither sandbox lets scripts set metatables, so no __index or __len of
 * their making stretches a C loop. */
#include "lua_clib.h"
#include "lua_pattern_meter.h"

#include <lauxlib.h>
#include <lualib.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The wrappers are closures over the original function (upvalue 1) and
 * the sandbox's lb_clib_budget (upvalue 2, a light userdata). */
static const lb_clib_budget *budget_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(2));
}

/* Calls the original (upvalue 1) with the arguments as given. */
static int call_original(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* ---- table ------------------------------------------------------------------- */

static int bounded_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Unsigned d = (lua_Unsigned)e - (lua_Unsigned)f; /* e - f fits, unsigned */
    if (e >= f)
        budget_of(L)->loop(L, "table.move", d + (d < (lua_Unsigned)-1)); /* e - f + 1, saturated */
    return call_original(L);
}

static int bounded_sort(lua_State *L)
{
    int t = lua_type(L, 1);
    lua_Unsigned n = t == LUA_TTABLE || t == LUA_TUSERDATA ? (lua_Unsigned)luaL_len(L, 1) : 0;
    lua_Unsigned bits = 0;
    for (lua_Unsigned x = n; x; x >>= 1)
        bits++;
    budget_of(L)->loop(L, "table.sort",
                       n <= (lua_Unsigned)LUA_MAXINTEGER / 64 ? n * bits : (lua_Unsigned)LUA_MAXINTEGER);
    return call_original(L);
}

/* ---- string patterns ------------------------------------------------------------- */

/* Index just past the single-character class at p[i] (lstrlib's classEnd:
 * %x, a [set] whose first character may be ']', or one character). A
 * malformed pattern ends the scan; the original then reports it. */
static size_t class_end(const char *p, size_t m, size_t i)
{
    if (p[i] == '%')
        return i + 2;
    if (p[i] != '[')
        return i + 1;
    i++;
    if (i < m && p[i] == '^')
        i++;
    do {
        if (i >= m)
            return m;
        if (p[i++] == '%' && i < m)
            i++;
    } while (i < m && p[i] != ']');
    return i + 1;
}

/* Whether only capture closes follow p[i]: a quantifier there is the last
 * item, so its first try matches and it never backtracks. */
static bool last_item(const char *p, size_t m, size_t i)
{
    while (++i < m)
        if (p[i] != ')')
            return false;
    return true;
}

/* The items of a pattern that let the matcher try more than one way, or
 * scan the subject: a single-character class followed by * + - or ? (unless
 * it is the last item), a %b balance and a %0-%9 back-reference. Captures
 * and %f do neither. */
static int pattern_choices(const char *p, size_t m, size_t i)
{
    int q = 0;
    while (i < m) {
        if (p[i] == '(' || p[i] == ')') {
            i++;
            continue;
        }
        if (p[i] == '%' && i + 1 < m) {
            char d = p[i + 1];
            if (d == 'b' || (d >= '0' && d <= '9')) {
                q++;
                i += d == 'b' ? 4 : 2;
                continue;
            }
            if (d == 'f') {
                i = class_end(p, m, i + 2);
                continue;
            }
        }
        i = class_end(p, m, i);
        if (i < m && memchr("*+-?", p[i], 4)) {
            q += !last_item(p, m, i);
            i++;
        }
    }
    return q;
}

/* An upper bound on the matcher's steps for one call on n bytes with an
 * m-byte pattern of q choice items. The matcher backtracks only at those
 * items: a state of one attempt is the number of subject bytes each choice
 * passed so far took, and these add up to at most n, so an attempt has at
 * most C(n + 1 + q, q) states; each costs at most about m steps (a %b or a
 * back-reference scans, which counting it as a choice covers). An attempt
 * starts at each of the n + 1 positions unless the pattern is anchored with
 * '^', one more choice: C(n + 2 + q, q + 1) in all (the sum over start
 * positions). A last greedy item scans the rest of the subject once: + n.
 * Each factor of the product is at least 1, so it stops once past the limit. */
static double pattern_cost(size_t n, size_t m, int q, bool anchored)
{
    int k = anchored ? q : q + 1;
    double cost = (double)m + 1;
    for (int i = 1; i <= k && cost <= LB_PATTERN_STEPS; i++)
        cost = cost * ((double)n + 1 + i) / i;
    return cost + (double)n;
}

/* What a pattern function's wrapper tells check_pattern. */
typedef struct pattern_call {
    const char *what; /* the function, for the sandbox's messages */
    bool anchors;     /* a leading '^' anchors (not for gmatch) */
    bool all;         /* every match (gsub, gmatch), not the first */
    int init_arg;     /* the argument giving the start (find, match, gmatch), or 0 */
    bool plain;       /* string.find: plain text if its 4th argument is true or p has no specials */
} pattern_call;

#define PAST_THE_END ((size_t)-1)

/* The 0-based start the call's init argument gives (lstrlib's posrelatI),
 * or PAST_THE_END for a start beyond the subject's end, where find and
 * match answer nil and gmatch finds nothing without running the matcher.
 * One that is not an integer is the original's error to report. */
static size_t start_of(lua_State *L, int arg, size_t n)
{
    int is_int = 0;
    lua_Integer i = arg ? lua_tointegerx(L, arg, &is_int) : 1;
    if (!is_int || i == 0 || (i < 0 && (lua_Unsigned)-(i + 1) >= n))
        return 0;
    if (i < 0)
        return n - (size_t)-(i + 1) - 1;
    return (lua_Unsigned)i - 1 > n ? PAST_THE_END : (size_t)i - 1;
}

static void charge_pattern(lua_State *L, const char *what, lua_Unsigned steps)
{
    const lb_clib_budget *b = budget_of(L);
    if (b->pattern)
        b->pattern(L, what, steps);
}

/* Walks a call past the static bound: true if it may run (its steps and
 * the call's charged), false if the walk did not end within the limit
 * (its steps charged); *limit: the limit it had. */
static bool walk_fits(lua_State *L, const pattern_call *c, const char *s, size_t n, const char *p, size_t m,
                      uint64_t *limit)
{
    const lb_clib_budget *b = budget_of(L);
    uint64_t room = b->walk_room ? b->walk_room(L) / 2 : (uint64_t)LB_PATTERN_STEPS;
    *limit = room < (uint64_t)LB_PATTERN_STEPS ? room : (uint64_t)LB_PATTERN_STEPS;
    size_t start = start_of(L, c->init_arg, n);
    if (start == PAST_THE_END)
        return true; /* the call does no matching */
    lb_pattern_walk walk;
    lb_pattern_meter(s, n, p, m, start, c->all, c->anchors, *limit, &walk);
    if (b->walked)
        b->walked(L, c->what, walk.over ? walk.steps : 2 * walk.steps);
    return !walk.over;
}

/* Lets the call run if its worst case is at most LB_PATTERN_WALK_FROM
 * (LB_PATTERN_STEPS for a plain find), charged to the sandbox's pattern
 * budget if it keeps one; or, past that, if a walk of the call itself ends
 * within LB_PATTERN_STEPS (walk_fits); refuses it otherwise. */
static void check_pattern(lua_State *L, const pattern_call *c)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &m);
    bool plain = c->plain && (lua_toboolean(L, 4) || !lb_pattern_has_specials(p, m));
    bool anchored = !plain && c->anchors && m > 0 && p[0] == '^';
    int q = plain ? 0 : pattern_choices(p, m, anchored ? 1 : 0);
    double cost = pattern_cost(n, m, q, anchored);
    if (cost <= (plain ? LB_PATTERN_STEPS : LB_PATTERN_WALK_FROM)) {
        charge_pattern(L, c->what, (lua_Unsigned)cost);
        return;
    }
    char msg[160]; /* lua_pushfstring has no %g */
    uint64_t limit = 0;
    if (plain)
        snprintf(msg, sizeof msg, "pattern too complex for a %zu-byte subject (a plain find of %zu bytes, limit %.3g)",
                 n, m, LB_PATTERN_STEPS);
    else if (walk_fits(L, c, s, n, p, m, &limit))
        return;
    else
        snprintf(msg, sizeof msg,
                 "pattern too complex for a %zu-byte subject (more than %.3g steps; quantified items: %d)", n,
                 (double)limit, q);
    luaL_error(L, "%s", msg);
}

static int bounded_find(lua_State *L)
{
    static const pattern_call call = {"string.find", .anchors = true, .init_arg = 3, .plain = true};
    check_pattern(L, &call);
    return call_original(L);
}

static int bounded_match(lua_State *L)
{
    static const pattern_call call = {"string.match", .anchors = true, .init_arg = 3};
    check_pattern(L, &call);
    return call_original(L);
}

/* gsub tries each start position at most once, as find does; a function
 * replacement is Lua code the hook sees, a string or table one costs what
 * it copies (bounded by the memory cap). */
static int bounded_gsub(lua_State *L)
{
    static const pattern_call call = {"string.gsub", .anchors = true, .all = true};
    check_pattern(L, &call);
    return call_original(L);
}

/* gmatch: each call of the iterator runs the matcher from where the last
 * one stopped, so the whole loop tries each start position at most once
 * and the bound of one find covers it (the hook runs between steps); a
 * walk covers the whole loop, paid when the loop is made. */
static int bounded_gmatch(lua_State *L)
{
    static const pattern_call call = {"string.gmatch", .all = true, .init_arg = 3};
    check_pattern(L, &call);
    return call_original(L);
}

/* ---- string.rep ------------------------------------------------------------------ */

/* An empty string and separator: the original would loop n times (up to
 * 2^63) copying nothing, which no memory cap notices. */
static int bounded_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    const lb_clib_budget *b = budget_of(L);
    lua_Unsigned step = (lua_Unsigned)l + lsep;
    lua_Unsigned bytes = (lua_Unsigned)n > (lua_Unsigned)-1 / step ? (lua_Unsigned)-1 : (lua_Unsigned)n * step;
    if (b->rep_bytes)
        b->rep_bytes(L, "string.rep", bytes);
    return call_original(L);
}

/* Replaces t[name] (t on top of the stack) by a closure of f over it and
 * the budget. */
static void wrap(lua_State *L, const char *name, lua_CFunction f, const lb_clib_budget *budget)
{
    lua_getfield(L, -1, name);
    lua_pushlightuserdata(L, (void *)budget); /* only ever read back as const */
    lua_pushcclosure(L, f, 2);
    lua_setfield(L, -2, name);
}

void lb_clib_bound(lua_State *L, const char *name, const lb_clib_budget *budget)
{
    if (strcmp(name, LUA_TABLIBNAME) == 0) {
        wrap(L, "move", bounded_move, budget);
        wrap(L, "sort", bounded_sort, budget);
    } else if (strcmp(name, LUA_STRLIBNAME) == 0) {
        wrap(L, "find", bounded_find, budget);
        wrap(L, "match", bounded_match, budget);
        wrap(L, "gmatch", bounded_gmatch, budget);
        wrap(L, "gsub", bounded_gsub, budget);
        wrap(L, "rep", bounded_rep, budget);
    }
}
