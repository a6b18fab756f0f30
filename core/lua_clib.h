/* lua_clib.h: bounds on the Lua library functions that loop in C, for every
 * sandbox that runs untrusted or careless Lua (the rule set's, the config's).
 *
 * A count hook runs between VM instructions, never inside a C function, so
 * a budget kept by the hook cannot stop string.find backtracking for ever or
 * table.move walking 2^63 indexes. lb_clib_bound replaces those functions by
 * versions that weigh the call before it starts: a pattern call whose worst
 * case is high is walked first and refused if the walk passes
 * LB_PATTERN_STEPS, and the rest of the work is handed to the sandbox
 * (lb_clib_budget), which adds it to its own budget and raises its own
 * error when it does not fit. */
#ifndef LB_LUA_CLIB_H
#define LB_LUA_CLIB_H

#include <lua.h>

/* Steps one pattern call may need in its worst case. Measured on the
 * matcher's worst cases (".-.-.-.-b", "a*a*a*b", "^%s*(.-)%s*$" on runs of
 * the repeated byte) a step takes 1-3 ns on a current x86 core, so this is
 * about 10 ms. A call past LB_PATTERN_WALK_FROM is walked, and runs if
 * the walk ends within this many of the meter's steps. */
#define LB_PATTERN_STEPS 5e6
/* A pattern call whose worst case passes this is walked before it runs,
 * so that what it really costs is charged (walked, below): a loop of such
 * calls under pcall then ends with the sandbox's budget, not at the CPU
 * clock's next check. Below it (about 2 ms), a call runs at once; ordinary
 * ones (an e-mail check on a field) stay far below. */
#define LB_PATTERN_WALK_FROM 1e6

/* Takes `units` of work that the library function `what` ("table.move") is
 * about to do into the sandbox's budget, or raises a Lua error (and does
 * not return) if they do not fit. */
typedef void lb_clib_charge_fn(lua_State *L, const char *what, lua_Unsigned units);

/* What a sandbox does with the work of the bounded functions. */
typedef struct lb_clib_budget {
    /* table.move: elements moved; table.sort: n * log2(n) comparisons.
     * About one VM instruction each. Required. */
    lb_clib_charge_fn *loop;
    /* A pattern call's worst-case steps (at most LB_PATTERN_WALK_FROM, or
     * LB_PATTERN_STEPS for a plain find: a costlier call is walked or
     * refused instead). NULL: the per-call bound is all,
     * for a sandbox whose CPU clock catches a loop of such calls. */
    lb_clib_charge_fn *pattern;
    /* string.rep: n * (l + lsep) bytes, the result's size (plus one
     * separator), before it is allocated. NULL: the allocator's cap alone
     * refuses a result too large. */
    lb_clib_charge_fn *rep_bytes;
    /* A pattern call whose worst case passes LB_PATTERN_WALK_FROM is walked
     * first (lua_pattern_meter.c), and runs if the walk ends within
     * LB_PATTERN_STEPS.
     * walk_room: the steps the sandbox can still give the walk and the call
     * together, half each (NULL: no bound but LB_PATTERN_STEPS for the
     * walk). walked: takes the walk's steps, and as many again for the call
     * when it runs (NULL: not charged). */
    lua_Unsigned (*walk_room)(lua_State *L);
    lb_clib_charge_fn *walked;
} lb_clib_budget;

/* Replaces, in the library table `name` on top of the stack, the functions
 * whose work the script controls by bounded versions charging `budget`,
 * which must outlive the state. Libraries without such functions are left
 * as they are. */
void lb_clib_bound(lua_State *L, const char *name, const lb_clib_budget *budget);

#endif
