/* rules_clib.c: the library functions whose work a rule controls and the
 * CPU hook cannot interrupt. The hook runs between VM instructions, never
 * inside a C function, so each of these is bounded before it starts:
 *
 * - table.move copies e - f + 1 elements whatever the tables hold (nil
 *   into an empty table costs nothing but time): the count is charged to
 *   the instruction budget, so a move of math.maxinteger elements is a
 *   timeout at once.
 * - table.sort: n * log2(n) comparisons are charged.
 * - string.find, match, gmatch and gsub: Lua's matcher backtracks, so a few
 *   quantifiers on a long subject take for ever (".-.-.-.-b" on 3000
 *   bytes), and a plain find compares up to n * m bytes. A call whose worst
 *   case (pattern_cost) passes LB_PATTERN_STEPS is refused with an error
 *   before the matcher runs. Hostile patterns come close to the bound;
 *   ordinary ones on event fields stay far below it.
 *
 * lb.contains charges its length (rules_view.c). The rest of the libraries
 * do work in proportion to a string or table the rule already holds, so
 * the memory caps bound them; and rules cannot set metatables, so no
 * __index or __len of their making stretches a C loop. */
#include "rules_int.h"

#include <lauxlib.h>
#include <lualib.h>

#include <stdio.h>
#include <string.h>

/* Steps one pattern call may need in its worst case. Measured on the
 * matcher's worst cases (".-.-.-.-b", "a*a*a*b", "^%s*(.-)%s*$" on runs of
 * the repeated byte) a step takes 1-3 ns on a current x86 core, so this is
 * about the default 10 ms CPU budget. */
#define LB_PATTERN_STEPS 5e6

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
        lb_sb_charge(L, d + (d < (lua_Unsigned)-1)); /* e - f + 1, saturated */
    return call_original(L);
}

static int bounded_sort(lua_State *L)
{
    int t = lua_type(L, 1);
    lua_Unsigned n = t == LUA_TTABLE || t == LUA_TUSERDATA ? (lua_Unsigned)luaL_len(L, 1) : 0;
    lua_Unsigned bits = 0;
    for (lua_Unsigned x = n; x; x >>= 1)
        bits++;
    lb_sb_charge(L, n <= (lua_Unsigned)LUA_MAXINTEGER / 64 ? n * bits : (lua_Unsigned)LUA_MAXINTEGER);
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

/* Refuses the call if its worst case is past LB_PATTERN_STEPS. anchors: a
 * leading '^' anchors (not for gmatch); plain: string.find's 4th argument. */
static void check_pattern(lua_State *L, bool anchors, bool plain)
{
    size_t n, m;
    luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &m);
    bool anchored = !plain && anchors && m > 0 && p[0] == '^';
    int q = plain ? 0 : pattern_choices(p, m, anchored ? 1 : 0);
    double cost = pattern_cost(n, m, q, anchored);
    if (cost <= LB_PATTERN_STEPS)
        return;
    char msg[160]; /* lua_pushfstring has no %g */
    snprintf(msg, sizeof msg,
             "pattern too complex for a %zu-byte subject (worst case %.3g steps, limit %.3g; quantified items: %d)", n,
             cost, LB_PATTERN_STEPS, q);
    luaL_error(L, "%s", msg);
}

static int bounded_find(lua_State *L)
{
    check_pattern(L, true, lua_toboolean(L, 4));
    return call_original(L);
}

/* match, and gsub: it tries at most n + 1 positions as find does; a
 * function replacement is Lua code the hook sees, a string or table one
 * costs what it copies (bounded by the memory cap). */
static int bounded_match(lua_State *L)
{
    check_pattern(L, true, false);
    return call_original(L);
}

/* gmatch: each call of the iterator runs the matcher from where the last
 * one stopped, so the bound of one find covers each step of the loop (the
 * hook runs between steps). */
static int bounded_gmatch(lua_State *L)
{
    check_pattern(L, false, false);
    return call_original(L);
}

/* Replaces t[name] (t on top of the stack) by a closure of f over it. */
static void wrap(lua_State *L, const char *name, lua_CFunction f)
{
    lua_getfield(L, -1, name);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, name);
}

void lb_clib_bound(lua_State *L, const char *name)
{
    if (strcmp(name, LUA_TABLIBNAME) == 0) {
        wrap(L, "move", bounded_move);
        wrap(L, "sort", bounded_sort);
    } else if (strcmp(name, LUA_STRLIBNAME) == 0) {
        wrap(L, "find", bounded_find);
        wrap(L, "match", bounded_match);
        wrap(L, "gmatch", bounded_gmatch);
        wrap(L, "gsub", bounded_match);
    }
}
