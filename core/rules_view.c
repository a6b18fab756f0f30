/* rules_view.c: read-only views of json-c documents, and the `lb` helpers.
 *
 * A rule reads the event (and its params) through a userdata that points at
 * the json-c node: __index returns scalars or nested views, __newindex
 * raises, __len and __pairs work. Nothing is copied and nothing can be
 * changed, so one rule cannot alter what the next one sees. Each view carries
 * the generation of the evaluation it was made in and refuses to work after
 * it, because the document it points at may be freed once the evaluation
 * returns (a rule could keep the view in an upvalue). */
#include "rules_int.h"

#include <lauxlib.h>

#include <string.h>

#define LB_VIEW_MT "lb.view"
#define LB_PATH_MAX 256

typedef struct lb_view {
    json_object *obj;
    uint64_t gen;
    const char *what; /* "event" or "params": names the view in errors */
} lb_view;

static lb_view *check_view(lua_State *L, int idx)
{
    lb_view *v = luaL_checkudata(L, idx, LB_VIEW_MT);
    lb_sandbox *sb = lb_sb_of(L);
    if (!sb->in_eval || v->gen != sb->gen)
        luaL_error(L, "%s view used outside its evaluation", v->what);
    return v;
}

static void push_node(lua_State *L, json_object *obj, const char *what)
{
    switch (json_object_get_type(obj)) {
    case json_type_boolean:
        lua_pushboolean(L, json_object_get_boolean(obj));
        break;
    case json_type_int:
        lua_pushinteger(L, (lua_Integer)json_object_get_int64(obj));
        break;
    case json_type_double:
        lua_pushnumber(L, json_object_get_double(obj));
        break;
    case json_type_string:
        lua_pushlstring(L, json_object_get_string(obj), (size_t)json_object_get_string_len(obj));
        break;
    case json_type_object:
    case json_type_array: {
        lb_view *v = lua_newuserdatauv(L, sizeof *v, 0);
        v->obj = obj;
        v->gen = lb_sb_of(L)->gen;
        v->what = what;
        luaL_setmetatable(L, LB_VIEW_MT);
        break;
    }
    default:
        lua_pushnil(L);
    }
}

void lb_view_push(lua_State *L, json_object *obj)
{
    push_node(L, obj, "event");
}

/* Params get their own word in errors ("params are read-only"). */
void lb_view_push_params(lua_State *L, json_object *obj)
{
    push_node(L, obj, "params");
}

static int view_index(lua_State *L)
{
    lb_view *v = check_view(L, 1);
    json_object *child = NULL;
    if (json_object_is_type(v->obj, json_type_object)) {
        size_t len;
        const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
        /* json-c keys are C strings: a key with a NUL cannot be present */
        if (key && strlen(key) == len)
            json_object_object_get_ex(v->obj, key, &child);
    } else {
        int isint;
        lua_Integer i = lua_tointegerx(L, 2, &isint);
        if (isint && i >= 1 && (size_t)i <= json_object_array_length(v->obj))
            child = json_object_array_get_idx(v->obj, (size_t)i - 1);
    }
    if (!child) {
        lua_pushnil(L);
        return 1;
    }
    push_node(L, child, v->what);
    return 1;
}

static int view_newindex(lua_State *L)
{
    lb_view *v = luaL_checkudata(L, 1, LB_VIEW_MT);
    return luaL_error(L, strcmp(v->what, "event") == 0 ? "event is read-only" : "params are read-only");
}

/* Like a Lua table: the sequence length of an array, 0 for an object. */
static int view_len(lua_State *L)
{
    lb_view *v = check_view(L, 1);
    lua_Integer n = json_object_is_type(v->obj, json_type_array) ? (lua_Integer)json_object_array_length(v->obj) : 0;
    lua_pushinteger(L, n);
    return 1;
}

/* The iterator of __pairs. Upvalue 1: the view; upvalue 2: the position (an
 * array index, or json-c's opaque object iterator as a light userdata). The
 * document cannot change during the evaluation, so the position stays valid. */
static int view_next(lua_State *L)
{
    lb_view *v = check_view(L, lua_upvalueindex(1));
    if (json_object_is_type(v->obj, json_type_array)) {
        lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
        if ((size_t)i >= json_object_array_length(v->obj))
            return 0;
        lua_pushinteger(L, i + 1);
        lua_copy(L, -1, lua_upvalueindex(2));
        push_node(L, json_object_array_get_idx(v->obj, (size_t)i), v->what);
        return 2;
    }
    struct json_object_iterator it = {lua_touserdata(L, lua_upvalueindex(2))};
    struct json_object_iterator end = json_object_iter_end(v->obj);
    if (json_object_iter_equal(&it, &end))
        return 0;
    lua_pushstring(L, json_object_iter_peek_name(&it));
    push_node(L, json_object_iter_peek_value(&it), v->what);
    json_object_iter_next(&it);
    lua_pushlightuserdata(L, (void *)it.opaque_);
    lua_replace(L, lua_upvalueindex(2));
    return 2;
}

static int view_pairs(lua_State *L)
{
    lb_view *v = check_view(L, 1);
    lua_pushvalue(L, 1);
    if (json_object_is_type(v->obj, json_type_array)) {
        lua_pushinteger(L, 0);
    } else {
        struct json_object_iterator it = json_object_iter_begin(v->obj);
        lua_pushlightuserdata(L, (void *)it.opaque_);
    }
    lua_pushcclosure(L, view_next, 2);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int view_tostring(lua_State *L)
{
    lb_view *v = luaL_checkudata(L, 1, LB_VIEW_MT);
    lua_pushfstring(L, "read-only %s", v->what);
    return 1;
}

void lb_view_open(lua_State *L)
{
    static const luaL_Reg meta[] = {
        {"__index", view_index}, {"__newindex", view_newindex}, {"__len", view_len},
        {"__pairs", view_pairs}, {"__tostring", view_tostring}, {NULL, NULL},
    };
    luaL_newmetatable(L, LB_VIEW_MT);
    luaL_setfuncs(L, meta, 0);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable"); /* getmetatable(ev) is false */
    lua_pop(L, 1);
}

/* ---- the lb helper table ------------------------------------------------------- */

static bool indexable(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t == LUA_TTABLE || (t == LUA_TUSERDATA && luaL_testudata(L, idx, LB_VIEW_MT));
}

/* lb.get(v, "purchase.payment_method"): walks a dotted path through views
 * or tables; nil as soon as a step is missing or not indexable. */
static int helper_get(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, len > 0 && len < LB_PATH_MAX, 2, "path must be 1-255 bytes");
    char buf[LB_PATH_MAX];
    memcpy(buf, path, len + 1);
    lua_settop(L, 1);
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        if (!indexable(L, -1)) {
            lua_pushnil(L);
            return 1;
        }
        lua_getfield(L, -1, seg);
        lua_remove(L, -2);
    }
    return 1;
}

/* Pushes element i (1-based) of a table, raw, or of a view. */
static void push_element(lua_State *L, const lb_view *v, lua_Integer i)
{
    if (v)
        push_node(L, json_object_array_get_idx(v->obj, (size_t)i - 1), v->what);
    else
        lua_rawgeti(L, 1, i);
}

/* lb.contains(list, value): whether the array (table or view) holds value
 * (compared with rawequal: same type and value) before its first nil, as
 * ipairs sees it. The loop runs in C, where the CPU hook cannot stop it, so
 * it reads raw and no further than the array's real length (a table's
 * rawlen, a JSON array's size), and charges that length first. */
static int helper_contains(lua_State *L)
{
    luaL_argexpected(L, indexable(L, 1), 1, "table or view");
    luaL_checkany(L, 2);
    const lb_view *v = lua_type(L, 1) == LUA_TUSERDATA ? check_view(L, 1) : NULL;
    lua_Integer n = !v ? (lua_Integer)lua_rawlen(L, 1)
                    : json_object_is_type(v->obj, json_type_array) ? (lua_Integer)json_object_array_length(v->obj)
                                                                    : 0;
    lb_sb_charge(L, (lua_Unsigned)n);
    for (lua_Integer i = 1; i <= n; i++) {
        push_element(L, v, i);
        if (lua_isnil(L, -1))
            break;
        bool eq = lua_rawequal(L, -1, 2);
        lua_pop(L, 1);
        if (eq) {
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

void lb_helpers_push(lua_State *L)
{
    static const luaL_Reg helpers[] = {{"get", helper_get}, {"contains", helper_contains}, {NULL, NULL}};
    luaL_newlib(L, helpers);
}
