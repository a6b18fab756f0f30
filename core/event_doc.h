/* event_doc.h: the normalized event's document, built without json-c.
 *
 * A normalized event is at most two levels deep: top-level members, some of
 * which are groups ("purchase", "lead", ...) of scalar members. On the ingest
 * hot path the Hotmart adapter builds it here: one allocation, strings copied
 * into an arena, members kept in insertion order, and the JSON text written
 * straight from that. json-c's tree of the same document (about a hundred
 * allocations, a hash table per object) is made only when something needs
 * it: the segmentation engine, Club state, the CLI and tests (lb_edoc_to_json).
 *
 * Paths are "key" or "group.key". Setting a path that is already there
 * replaces its value in place; setting "group.key" creates the group. */
#ifndef LB_EVENT_DOC_H
#define LB_EVENT_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

typedef struct lb_edoc lb_edoc;

typedef enum { LB_EV_STR, LB_EV_INT, LB_EV_NUM, LB_EV_BOOL } lb_evalue_type;

/* How a string is copied: as it is, or with ASCII letters upper- or lower-cased. */
typedef enum { LB_EV_ASIS, LB_EV_UPPER, LB_EV_LOWER } lb_evalue_case;

/* A value to store. A string is s[0..len) and may hold NUL bytes; a number
 * keeps the sender's spelling in s[0..len) (49.9 stays 49.9) and its value
 * in d. Strings are copied: s need not outlive the call. */
typedef struct lb_evalue {
    lb_evalue_type type;
    lb_evalue_case str_case; /* LB_EV_STR only */
    const char *s;
    size_t len;
    int64_t i;
    double d;
    bool b;
} lb_evalue;

lb_edoc *lb_edoc_new(void);
void lb_edoc_free(lb_edoc *d);
/* Empties d for another document, keeping its memory (a document is a few
 * KiB: allocating one per request got slow once the heap was busy). */
void lb_edoc_reset(lb_edoc *d);

/* Returns 0, or -1 if path is malformed, names a group where a scalar is
 * (or the other way round), or memory runs out. */
int lb_edoc_set(lb_edoc *d, const char *path, const lb_evalue *v);
int lb_edoc_set_str(lb_edoc *d, const char *path, const char *s);
int lb_edoc_set_int(lb_edoc *d, const char *path, int64_t i);
int lb_edoc_set_bool(lb_edoc *d, const char *path, bool b);

/* Whether path is present (a group counts). */
bool lb_edoc_has(lb_edoc *d, const char *path);
/* The stored string at path (NUL-terminated; lives as long as the document),
 * or NULL if absent or not a string. */
const char *lb_edoc_str(lb_edoc *d, const char *path);
/* The integer / boolean at path; `fallback` if absent or of another type. */
int64_t lb_edoc_int(lb_edoc *d, const char *path, int64_t fallback);
bool lb_edoc_bool(lb_edoc *d, const char *path, bool fallback);

/* The document as compact JSON text, owned by d and valid until the next
 * set; NULL if memory runs out. */
const char *lb_edoc_text(lb_edoc *d, size_t *len);
/* The same document as a new json-c tree (caller puts it), or NULL. */
json_object *lb_edoc_to_json(const lb_edoc *d);

#endif
