/* fuzz_pattern_meter.c: libFuzzer (or AFL++) target for the pattern meter
 * (core/lua_pattern_meter.c), held against Lua's own matcher. Input: a
 * mode byte (0 string.find, 1 string.gsub, 2 string.gmatch: the byte modulo
 * 3), then the pattern, a NUL, and the subject. The meter must stop where
 * Lua raises, find the match Lua finds or count the matches gsub and
 * gmatch see, within a step limit that a walk Lua can finish in a moment
 * never reaches. Built and run by tests/fuzz/run; its corpus is replayed by
 * make check. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_must.h"
#include "lua_pattern_meter.h"

#define TARGET "fuzz_pattern_meter"
#define FUZZ_STEP_LIMIT (1u << 22) /* Lua's matcher takes about as many: a few ms */

static lua_State *reference_lua(void)
{
    static lua_State *L;
    if (L)
        return L;
    L = luaL_newstate();
    luaL_openlibs(L);
    const char *src = "function find(s, p) local i, j = string.find(s, p) return i, j end\n"
                      "function gsub(s, p) return 0, select(2, string.gsub(s, p, '')) end\n"
                      "function gmatch_count(s, p) local n = 0 for _ in string.gmatch(s, p) do n = n + 1 end"
                      " return 0, n end\n";
    fuzz_must(luaL_dostring(L, src) == LUA_OK, TARGET, "the reference functions do not load");
    return L;
}

/* Lua's answer; false if it raised (unfinished: after its match, handing
 * over a capture never closed, which is no walk's business). */
static bool ask_lua(const char *fn, const char *s, size_t n, const char *p, size_t m, lua_Integer out[2],
                    bool *unfinished)
{
    lua_State *L = reference_lua();
    lua_getglobal(L, fn);
    lua_pushlstring(L, s, n);
    lua_pushlstring(L, p, m);
    *unfinished = false;
    if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
        *unfinished = strstr(lua_tostring(L, -1), "unfinished capture") != NULL;
        lua_pop(L, 1);
        return false;
    }
    out[0] = lua_isnil(L, -2) ? -1 : lua_tointeger(L, -2);
    out[1] = lua_isnil(L, -1) ? -1 : lua_tointeger(L, -1);
    lua_pop(L, 2);
    return true;
}

/* string.find takes a pattern without specials as plain text. */
static bool has_specials(const char *p, size_t m)
{
    for (size_t i = 0; i < m; i++)
        if (p[i] && strchr("^$*+?.([%-", p[i]))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 512)
        return 0; /* long subjects add time, not paths */
    int mode = data[0] % 3;
    const char *p = (const char *)data + 1;
    const char *nul = memchr(p, '\0', size - 1);
    if (!nul)
        return 0;
    size_t m = (size_t)(nul - p);
    const char *s = nul + 1;
    size_t n = size - 1 - m - 1;
    if (mode == 0 && !has_specials(p, m))
        return 0;
    /* Lua strings: NUL-terminated past their length, which the walk reads
     * where the matcher does (%f and %b at the subject's end) */
    char subject[512], pattern[512];
    memcpy(subject, s, n);
    subject[n] = '\0';
    memcpy(pattern, p, m);
    pattern[m] = '\0';
    lb_pattern_walk walk;
    lb_pattern_meter(subject, n, pattern, m, 0, mode != 0, mode != 2, FUZZ_STEP_LIMIT, &walk);
    if (walk.over)
        return 0; /* Lua would take as long: not asked */
    lua_Integer lua[2];
    bool unfinished;
    bool ok = ask_lua(mode == 0 ? "find" : mode == 1 ? "gsub" : "gmatch_count", subject, n, pattern, m, lua,
                      &unfinished);
    if (unfinished) {
        fuzz_must(!walk.halted && (mode == 0 ? walk.matched : walk.matches > 0), TARGET,
                  "Lua matched (then found a capture unfinished); the walk did not");
        return 0;
    }
    fuzz_must(walk.halted == !ok, TARGET,
              ok ? "the walk halted where Lua did not raise" : "Lua raised; the walk did not halt");
    if (!ok)
        return 0;
    if (mode == 0) {
        fuzz_must(walk.matched == (lua[0] >= 1), TARGET, "the walk and Lua disagree on whether it matches");
        fuzz_must(!walk.matched || ((lua_Integer)walk.start == lua[0] - 1 && (lua_Integer)walk.end == lua[1]), TARGET,
                  "the walk and Lua disagree on where it matches");
    } else {
        fuzz_must((lua_Integer)walk.matches == lua[1], TARGET, "the walk and Lua count other matches");
    }
    return 0;
}
