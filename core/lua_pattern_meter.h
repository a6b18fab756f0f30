/* lua_pattern_meter.h: how much work Lua 5.4's pattern matcher will do for
 * one call, found by walking the path it walks, with a step limit.
 *
 * lua_clib.c refuses a pattern call whose worst case is too long before the
 * matcher starts, because nothing can stop the matcher once it runs. The
 * worst case is a bound on the pattern's shape, far above what ordinary
 * subjects cost: the trim idiom "^%s*(.-)%s*$" has a cubic bound and was
 * refused on 130 bytes, though it ends in a few thousand steps on any name
 * or address. When the bound is too high, the meter walks the call instead,
 * making the same choices as the matcher (lstrlib.c's match, max_expand,
 * min_expand, captures, %b, %f and back-references, with its depth and
 * capture limits) and counting them, and gives up once past the limit. It
 * only counts: the call itself still runs Lua's own function, so what a
 * rule gets is Lua's answer even if the meter and the matcher ever part
 * ways; the count would then be off, not the result.
 *
 * A step is one pattern item tried at one subject position (and 8 bytes of
 * a set read to try it), one call of the matcher, or one byte a %b scans
 * (16 a back-reference compares). */
#ifndef LB_LUA_PATTERN_METER_H
#define LB_LUA_PATTERN_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lb_pattern_walk {
    uint64_t steps; /* counted; a little past the limit when over */
    bool over;      /* the walk passed the limit and stopped */
    bool halted;    /* the matcher raises an error where the walk stopped */
    /* find mode: whether (and where) the first match is, as string.find's
     * byte offsets: [start, end) */
    bool matched;
    size_t start, end;
    size_t matches; /* all mode: the matches gsub would replace */
} lb_pattern_walk;

/* Walks the call on subject s (n bytes) with pattern p (m bytes), both
 * NUL-terminated past their length as Lua strings are. init: the 0-based
 * start, at most n (string.find's third argument, made 0-based). all:
 * false for string.find and string.match (up to the first match), true for
 * string.gsub and string.gmatch (every match, one after another; gsub's
 * count limit is not taken into account, so the count is an upper bound).
 * anchors: a leading '^' anchors (not for gmatch, which matches it as a
 * character). */
void lb_pattern_meter(const char *s, size_t n, const char *p, size_t m, size_t init, bool all, bool anchors,
                      uint64_t limit, lb_pattern_walk *out);

/* Whether p (m bytes) holds a character that makes it a pattern; without
 * one string.find searches for it as plain text, and no matcher runs
 * (lstrlib's nospecials). */
bool lb_pattern_has_specials(const char *p, size_t m);

#endif
