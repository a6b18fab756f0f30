/* json_flat.h: a JSON reader that builds no tree of objects.
 *
 * One parse fills a flat array of nodes and a text arena, both kept and
 * reused by the next parse, so a steady stream of deliveries parses without
 * allocating. json-c's tokener made about 150 allocations per Hotmart
 * delivery, and parsing plus freeing that tree was a quarter of the event
 * loop's time (docs/benchmarks.md). The Hotmart adapter reads deliveries
 * through this; paths are looked up with json_get.h's conventions
 * (lb_jnode_get and the lb_jnode_* typed checks).
 *
 * The grammar is RFC 8259's (numbers exactly so: not the "1." or "00" that
 * json-c takes), plus what json-c (which the rest of the server still uses)
 * also reads and Hotmart-side tools have been seen to send:
 * NaN, Infinity and -Infinity as numbers (the typed checks refuse them with
 * the field's name), and raw control characters inside strings. Duplicate
 * keys: the last one wins, as in json-c. Integers past the int64 range are
 * read as json-c reads them (clamped; see lb_jnode.big), and flagged when
 * clamped (lb_jnode.overflow): their spelling keeps the exact digits. */
#ifndef LB_JSON_FLAT_H
#define LB_JSON_FLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h> /* enum json_type, shared with json_get.h */

/* One value. Children and siblings are found by offsets relative to the
 * node itself, so a node pointer is all a lookup needs. Strings (keys,
 * string values, a number's spelling) are NUL-terminated in the arena and
 * may contain NUL themselves (escaped as \u0000); their length says. */
typedef struct lb_jnode {
    enum json_type type; /* json_type_null, _boolean, _int, _double, _string, _object, _array */
    int32_t first;       /* object/array: offset of the first child, 0 if empty */
    int32_t next;        /* offset of the next sibling, 0 if last */
    uint32_t count;      /* object/array: number of children */
    const char *key;     /* member of an object: its key, else NULL */
    uint32_t key_len;
    uint32_t str_len;
    const char *str;     /* string: its text; number: its spelling as sent */
    union {
        bool b;          /* boolean */
        int64_t i;       /* int: the value, clamped to int64 (see big) */
        double d;        /* double */
    } v;
    bool big;            /* int above INT64_MAX: json-c keeps it as uint64; u holds it */
    bool overflow;       /* int below INT64_MIN or above UINT64_MAX: i or u is clamped, str exact */
    uint64_t u;
} lb_jnode;

typedef struct lb_jflat lb_jflat;

lb_jflat *lb_jflat_new(void);
void lb_jflat_free(lb_jflat *f);

/* Parses text[0..len) (need not be NUL-terminated); whitespace may follow
 * the value, nothing else. Containers may nest max_depth deep. Returns the
 * root, valid until the next parse or free; or NULL with a reason (e.g.
 * "unexpected '}' at byte 17") in why. */
const lb_jnode *lb_jflat_parse(lb_jflat *f, const char *text, size_t len, size_t max_depth, char *why,
                               size_t why_cap);

/* Child access. member: the value of key in an object (the last, if the key
 * repeats), NULL if absent or not an object. at: the i-th element of an
 * array, NULL past its end or if not an array; it walks i siblings, so a
 * loop over an array walks lb_jnode_first/lb_jnode_next instead (by index
 * it is quadratic in the array's length). */
const lb_jnode *lb_jnode_member(const lb_jnode *obj, const char *key, size_t key_len);
const lb_jnode *lb_jnode_at(const lb_jnode *arr, size_t i);
/* Whether s[0..len) is a number as RFC 8259 spells it ("1.5e3", not "1.",
 * ".5", "01", "+1" nor NaN): what the reader takes as a number, less
 * json-c's NaN and Infinity. */
bool lb_json_number_valid(const char *s, size_t len);

static inline const lb_jnode *lb_jnode_first(const lb_jnode *n) { return n->first ? n + n->first : NULL; }
static inline const lb_jnode *lb_jnode_next(const lb_jnode *n) { return n->next ? n + n->next : NULL; }

#endif
