/* lua_pattern_meter.c: walks a pattern call as Lua 5.4's matcher would,
 * counting its steps (see lua_pattern_meter.h). Where the matcher raises
 * an error (a malformed pattern, too deep a recursion, a bad capture), the
 * walk stops there: the call then fails at the same point, having done the
 * work counted so far. */
#include "lua_pattern_meter.h"

#include <ctype.h>
#include <string.h>

/* lstrlib.c's limits, which decide where the matcher gives up */
#define METER_MAX_CAPTURES 32 /* LUA_MAXCAPTURES */
#define METER_MAX_DEPTH 200   /* MAXCCALLS */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

typedef struct walker {
    const char *src, *src_end, *p_end;
    int depth_left;
    int level; /* captures open or closed so far */
    struct {
        const char *init;
        ptrdiff_t len; /* or CAP_UNFINISHED, CAP_POSITION */
    } cap[METER_MAX_CAPTURES];
    uint64_t steps, limit;
    bool stop; /* over the limit, or at a point where the matcher raises */
    bool over, halted;
} walker;

/* Adds k steps; false once past the limit (the walk then unwinds). */
static bool charge(walker *w, uint64_t k)
{
    w->steps += k;
    if (w->steps > w->limit)
        w->over = w->stop = true;
    return !w->stop;
}

/* The matcher raises here. */
static const char *halt(walker *w)
{
    w->halted = w->stop = true;
    return NULL;
}

/* %a, %d, ... for byte c; an upper-case class letter is the complement,
 * any other character stands for itself. */
static bool in_class(int c, int letter)
{
    bool in;
    switch (tolower(letter)) {
    case 'a': in = isalpha(c); break;
    case 'c': in = iscntrl(c); break;
    case 'd': in = isdigit(c); break;
    case 'g': in = isgraph(c); break;
    case 'l': in = islower(c); break;
    case 'p': in = ispunct(c); break;
    case 's': in = isspace(c); break;
    case 'u': in = isupper(c); break;
    case 'w': in = isalnum(c); break;
    case 'x': in = isxdigit(c); break;
    case 'z': in = c == 0; break; /* deprecated in Lua, still there */
    default: return letter == c;
    }
    return isupper(letter) ? !in : in;
}

/* Whether byte c is in the set that opens at p ('[') and whose ']' is at
 * close. */
static bool in_set(int c, const char *p, const char *close)
{
    bool want = true;
    if (p[1] == '^') {
        want = false;
        p++;
    }
    for (p++; p < close; p++) {
        if (*p == '%') {
            p++;
            if (in_class(c, (unsigned char)*p))
                return want;
        } else if (p[1] == '-' && p + 2 < close) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return want;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return want;
        }
    }
    return !want;
}

/* Just past the single-character class at p: %x, a [set], or one byte;
 * NULL (halted) if the pattern is malformed there. */
static const char *class_end(walker *w, const char *p)
{
    char first = *p++;
    if (first == '%')
        return p == w->p_end ? halt(w) : p + 1;
    if (first != '[')
        return p;
    if (*p == '^')
        p++;
    do { /* the first byte is in the set even if it is ']' */
        if (p == w->p_end)
            return halt(w);
        if (*p++ == '%' && p < w->p_end)
            p++;
    } while (*p != ']');
    return p + 1;
}

/* What scanning the class [p, ep) costs: a step, and one more for every 8
 * bytes of a long set, which the matcher reads through each time it tries
 * the item (and its end again before that): a set of 20,000 bytes counted
 * as one step let a walk of a few million steps run for seconds. */
static uint64_t scan_cost(const char *p, const char *ep)
{
    return 1 + (uint64_t)(ep - p) / 8;
}

/* Whether the class [p, ep) takes the subject byte at s. */
static bool single(walker *w, const char *s, const char *p, const char *ep)
{
    w->steps += scan_cost(p, ep);
    if (s >= w->src_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return true;
    case '%': return in_class(c, (unsigned char)p[1]);
    case '[': return in_set(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *walk(walker *w, const char *s, const char *p);

/* %bxy at p (the x): a balanced run from s, or NULL. */
static const char *balanced(walker *w, const char *s, const char *p)
{
    if (p >= w->p_end - 1)
        return halt(w); /* "missing arguments to %b" */
    if (*s != *p)
        return NULL;
    int open = 1;
    while (++s < w->src_end) {
        if (!charge(w, 1))
            return NULL;
        if (*s == p[1]) {
            if (--open == 0)
                return s + 1;
        } else if (*s == *p) {
            open++;
        }
    }
    return NULL;
}

/* %1-%9: the capture's text again at s, or NULL. */
static const char *back_reference(walker *w, const char *s, int digit)
{
    int l = digit - '1';
    if (l < 0 || l >= w->level || w->cap[l].len == CAP_UNFINISHED)
        return halt(w); /* "invalid capture index" */
    size_t len = (size_t)w->cap[l].len; /* a position capture's is huge: no match, as in lstrlib */
    if ((size_t)(w->src_end - s) < len || !charge(w, 1 + len / 16))
        return NULL;
    return memcmp(w->cap[l].init, s, len) == 0 ? s + len : NULL;
}

static const char *open_capture(walker *w, const char *s, const char *p, ptrdiff_t what)
{
    if (w->level >= METER_MAX_CAPTURES)
        return halt(w); /* "too many captures" */
    w->cap[w->level].init = s;
    w->cap[w->level].len = what;
    w->level++;
    const char *r = walk(w, s, p);
    if (!r)
        w->level--;
    return r;
}

static const char *close_capture(walker *w, const char *s, const char *p)
{
    int l = w->level - 1;
    while (l >= 0 && w->cap[l].len != CAP_UNFINISHED)
        l--;
    if (l < 0)
        return halt(w); /* "invalid pattern capture" */
    w->cap[l].len = s - w->cap[l].init;
    const char *r = walk(w, s, p);
    if (!r)
        w->cap[l].len = CAP_UNFINISHED;
    return r;
}

/* x* and x+: take as many as the class allows, then give them back one by
 * one until the rest of the pattern matches. */
static const char *greedy(walker *w, const char *s, const char *p, const char *ep)
{
    ptrdiff_t taken = 0;
    while (single(w, s + taken, p, ep)) {
        taken++;
        if (!charge(w, 0))
            return NULL;
    }
    for (; taken >= 0; taken--) {
        const char *r = walk(w, s + taken, ep + 1);
        if (r || w->stop)
            return r;
    }
    return NULL;
}

/* x-: try the rest of the pattern first, and take one more only when it
 * fails. */
static const char *lazy(walker *w, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = walk(w, s, ep + 1);
        if (r || w->stop)
            return r;
        if (!single(w, s, p, ep))
            return NULL;
        s++;
    }
}

/* %f[set] at p (the '['): whether s is at the set's frontier; NULL if not,
 * else just past the set. */
static const char *frontier(walker *w, const char *s, const char *p)
{
    if (*p != '[')
        return halt(w); /* "missing '[' after '%f'" */
    const char *ep = class_end(w, p);
    if (!ep || !charge(w, 3 * scan_cost(p, ep))) /* its end found, then two scans */
        return NULL;
    int before = s == w->src ? 0 : (unsigned char)s[-1];
    int at = (unsigned char)*s; /* the NUL past the subject at its end, as in lstrlib */
    return !in_set(before, p, ep - 1) && in_set(at, p, ep - 1) ? ep : NULL;
}

/* The items from p on against the subject from s: where the match ends,
 * or NULL. Items that cannot backtrack loop here; those that can recurse. */
static const char *walk_items(walker *w, const char *s, const char *p)
{
    for (;;) {
        if (!charge(w, 0))
            return NULL;
        if (p == w->p_end)
            return s;
        if (*p == '(')
            return p[1] == ')' ? open_capture(w, s, p + 2, CAP_POSITION) : open_capture(w, s, p + 1, CAP_UNFINISHED);
        if (*p == ')')
            return close_capture(w, s, p + 1);
        if (*p == '$' && p + 1 == w->p_end)
            return s == w->src_end ? s : NULL;
        if (*p == '%' && p[1] == 'b') {
            if (!(s = balanced(w, s, p + 2)))
                return NULL;
            p += 4;
            continue;
        }
        if (*p == '%' && p[1] == 'f') {
            if (!(p = frontier(w, s, p + 2)))
                return NULL;
            continue;
        }
        if (*p == '%' && isdigit((unsigned char)p[1])) {
            if (!(s = back_reference(w, s, (unsigned char)p[1])))
                return NULL;
            p += 2;
            continue;
        }
        const char *ep = class_end(w, p);
        if (!ep || !charge(w, scan_cost(p, ep) - 1)) /* finding its end read it too */
            return NULL;
        bool hit = single(w, s, p, ep);
        char quantifier = *ep; /* the NUL past the pattern at its end */
        if (!hit) {
            if (quantifier == '*' || quantifier == '?' || quantifier == '-') {
                p = ep + 1;
                continue;
            }
            return NULL;
        }
        switch (quantifier) {
        case '?': {
            const char *r = walk(w, s + 1, ep + 1);
            if (r || w->stop)
                return r;
            p = ep + 1;
            continue;
        }
        case '+': return greedy(w, s + 1, p, ep);
        case '*': return greedy(w, s, p, ep);
        case '-': return lazy(w, s, p, ep);
        default:
            s++;
            p = ep;
        }
    }
}

/* One call of the matcher (lstrlib's match), with its depth limit. */
static const char *walk(walker *w, const char *s, const char *p)
{
    if (w->depth_left-- == 0)
        return halt(w); /* "pattern too complex" */
    const char *r = charge(w, 1) ? walk_items(w, s, p) : NULL;
    w->depth_left++;
    return r;
}

/* A new attempt from one start position. */
static void restart(walker *w)
{
    w->level = 0;
    w->depth_left = METER_MAX_DEPTH;
}

/* string.find / string.match: each start position until the first match. */
static void walk_first(walker *w, const char *from, const char *p, bool anchored, lb_pattern_walk *out)
{
    const char *s = from;
    do {
        restart(w);
        const char *e = walk(w, s, p);
        if (e) {
            out->matched = true;
            out->start = (size_t)(s - w->src);
            out->end = (size_t)(e - w->src);
            return;
        }
    } while (!w->stop && s++ < w->src_end && !anchored);
}

/* string.gsub / string.gmatch: a match, then on from its end; an empty
 * match at the end of the last one does not count and moves one on. */
static void walk_all(walker *w, const char *from, const char *p, bool anchored, lb_pattern_walk *out)
{
    const char *s = from, *last = NULL;
    for (;;) {
        restart(w);
        const char *e = walk(w, s, p);
        if (w->stop)
            return;
        if (e && e != last) {
            out->matches++;
            s = last = e;
        } else if (s < w->src_end)
            s++;
        else
            return;
        if (anchored)
            return;
    }
}

void lb_pattern_meter(const char *s, size_t n, const char *p, size_t m, size_t init, bool all, bool anchors,
                      uint64_t limit, lb_pattern_walk *out)
{
    walker w = {.src = s, .src_end = s + n, .p_end = p + m, .limit = limit};
    *out = (lb_pattern_walk){0};
    bool anchored = anchors && m > 0 && *p == '^';
    if (anchored)
        p++;
    if (init > n)
        init = n;
    if (all)
        walk_all(&w, s + init, p, anchored, out);
    else
        walk_first(&w, s + init, p, anchored, out);
    out->steps = w.steps;
    out->over = w.over;
    out->halted = w.halted;
}

bool lb_pattern_has_specials(const char *p, size_t m)
{
    for (size_t i = 0; i < m; i++)
        if (p[i] && strchr("^$*+?.([%-", p[i]))
            return true;
    return false;
}
