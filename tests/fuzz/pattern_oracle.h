/* pattern_oracle.h: what Lua 5.4's own string functions answer, for the
 * tests that hold the pattern meter (core/lua_pattern_meter.c) against
 * them: fuzz_pattern_meter.c and tests/unit/test_pattern_meter.c. One Lua
 * state, made on first use and kept. */
#ifndef LB_PATTERN_ORACLE_H
#define LB_PATTERN_ORACLE_H

#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Lua's answer to string.find (mode 0: the first match, [start, end) as
 * 0-based offsets), string.gsub (1) or a string.gmatch loop (2: the count
 * of matches). error: it raised; unfinished: it raised after a match, when
 * handing over a capture never closed (the matcher's work was done then:
 * no walk halts there). */
typedef struct pattern_answer {
    bool error, unfinished, matched;
    size_t start, end, matches;
} pattern_answer;

static lua_State *pattern_oracle_state(void)
{
    static lua_State *L;
    if (L)
        return L;
    L = luaL_newstate();
    if (!L)
        abort();
    luaL_openlibs(L);
    /* find's first two results (a pattern without specials goes to Lua's
     * plain search, whose answer is the matcher's) and the match counts */
    const char *src = "function find(s, p) local i, j = string.find(s, p) return i, j end\n"
                      "function gsub(s, p) return 0, select(2, string.gsub(s, p, '')) end\n"
                      "function gmatch_count(s, p) local n = 0 for _ in string.gmatch(s, p) do n = n + 1 end"
                      " return 0, n end\n";
    if (luaL_dostring(L, src) != LUA_OK)
        abort();
    return L;
}

static pattern_answer pattern_oracle_ask(int mode, const char *s, size_t n, const char *p, size_t m)
{
    static const char *const functions[] = {"find", "gsub", "gmatch_count"};
    lua_State *L = pattern_oracle_state();
    pattern_answer a = {0};
    lua_getglobal(L, functions[mode]);
    lua_pushlstring(L, s, n);
    lua_pushlstring(L, p, m);
    if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
        a.unfinished = strstr(lua_tostring(L, -1), "unfinished capture") != NULL;
        a.error = !a.unfinished;
        lua_pop(L, 1);
        return a;
    }
    if (mode != 0) {
        a.matches = (size_t)lua_tointeger(L, -1);
    } else if (!lua_isnil(L, -2)) {
        a.matched = true;
        a.start = (size_t)lua_tointeger(L, -2) - 1;
        a.end = (size_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 2);
    return a;
}

#endif
