/* event.h: the normalized event, the one shape every source is turned into.
 *
 * The full event is a document whose layout is documented field by field in
 * docs/events.md. A source adapter builds it either as a json-c tree (`doc`)
 * or, on the ingest hot path, as an lb_edoc (`edoc`, event_doc.h), whose
 * json-c tree is made only if something asks for it (lb_event_json). The
 * scalar members below are the few values the core indexes and routes on;
 * their strings point into the document (or are static), so they live
 * exactly as long as the event. */
#ifndef LB_EVENT_H
#define LB_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "event_doc.h"

typedef struct lb_event {
    const char *source;          /* "hotmart" (2.0 JSON), "hotmart1" (1.0 form), "api" */
    const char *source_event_id; /* dedupe key within (account, source) */
    const char *type;            /* normalized type, e.g. "purchase.approved"; "unknown" if not known */
    const char *source_type;     /* the event name as the source spelled it, e.g. "PURCHASE_APPROVED" */
    int64_t occurred_at_ms;      /* when it happened, ms since the epoch; 0 if the source gave none */
    const char *product_id;      /* product key as a string; NULL if none */
    const char *lead_email;      /* lower-cased lead e-mail; never NULL for a valid event */
    bool ignored;                /* unknown event name: stored and answered 200, not acted on */
    bool test;                   /* a Hotmart "send test" delivery (documented markers) */
    json_object *doc;            /* owned: the document as json-c; NULL until lb_event_json for an edoc event */
    lb_edoc *edoc;               /* owned: the document as built without json-c, or NULL */
    bool edoc_stale;             /* doc was handed out for change: it is the document now, and
                                  * edoc only backs the strings above */
} lb_event;

/* Binds an event to an edoc document (taken over) and reads the scalars from it. */
void lb_event_bind_edoc(lb_event *ev, lb_edoc *edoc, const char *source, const char *type);
/* The document as json-c, made from the edoc on first use; NULL if memory
 * ran out. The caller only reads it (the segmentation engine). */
json_object *lb_event_json(lb_event *ev);
/* The same, for a caller that changes it (Club state adds members): from
 * then on the event's text is written from the json-c document. */
json_object *lb_event_json_for_change(lb_event *ev);
/* The document as compact JSON text, owned by the event and valid until it
 * changes; NULL if memory ran out. */
const char *lb_event_text(lb_event *ev, size_t *len);
/* Sets doc["account"] = account_id (the ingest layer knows it, sources do
 * not). Returns 0, or -1 if memory ran out. */
int lb_event_set_account(lb_event *ev, const char *account_id);
/* Marks the event ignored (doc["ignored"] = true). Returns 0 or -1. */
int lb_event_set_ignored(lb_event *ev);
/* Releases the document and zeroes the struct. Safe on a zeroed event. */
void lb_event_clear(lb_event *ev);
/* The same, but the edoc (or NULL) is handed to the caller, not freed. */
void lb_event_clear_keep_edoc(lb_event *ev, lb_edoc **edoc);

#endif
