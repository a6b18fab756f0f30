/* wrk_script_cost.c: what bench/ingest.lua's request() costs wrk per call.
 *
 * wrk and the daemon share this machine's two cores, so the client's CPU
 * per request is taken from the daemon. This loads the script into the
 * LuaJIT that wrk links (Debian's wrk has no headers for it to build
 * against, so the few functions used are declared here), runs its init()
 * and calls request() a million times.
 *
 * Build and run from the top of the tree:
 *   cc -O2 -o build/wrk_script_cost bench/wrk_script_cost.c /usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2
 *   build/wrk_script_cost "$PWD"
 */
#include <stdio.h>

typedef struct lua_State lua_State;
lua_State *luaL_newstate(void);
void luaL_openlibs(lua_State *L);
int luaL_loadstring(lua_State *L, const char *s);
int lua_pcall(lua_State *L, int nargs, int nresults, int errfunc);
void lua_pushstring(lua_State *L, const char *s);
void lua_setfield(lua_State *L, int index, const char *k);
const char *lua_tolstring(lua_State *L, int index, size_t *len);
#define LUA_GLOBALSINDEX (-10002)

/* What wrk gives the script (its Host header, the environment the bench
 * sets), then the timed calls. */
static const char driver[] =
    "wrk = { headers = { Host = '127.0.0.1:8080' } }\n"
    "local env = { LB_FIXTURES = top .. '/tests/fixtures/hotmart', LB_BENCH_HOTTOK = 'h-0123456789abcdef' }\n"
    "os.getenv = function(k) return env[k] end\n"
    "local f = assert(io.open(top .. '/bench/ingest.lua'))\n"
    "assert(loadstring(f:read('*a')))()\n"
    "f:close()\n"
    "thread_no, id_prefix, lead_prefix = 1, 'x', 't1-'\n"
    "init({})\n"
    "local n, bytes = 1000000, 0\n"
    "local t0 = os.clock()\n"
    "for i = 1, n do bytes = bytes + #request() end\n"
    "print(string.format('%.2f us per request() call, %d bytes per request', (os.clock() - t0) / n * 1e6, bytes / n))\n";

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s TOP_OF_THE_TREE\n", argv[0]);
        return 2;
    }
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushstring(L, argv[1]);
    lua_setfield(L, LUA_GLOBALSINDEX, "top");
    if (luaL_loadstring(L, driver) || lua_pcall(L, 0, 0, 0)) {
        fprintf(stderr, "%s\n", lua_tolstring(L, -1, NULL));
        return 1;
    }
    return 0;
}
