/* event.h: the normalized event, the one shape every source is turned into.
 *
 * The full event is a json-c document (`doc`) whose layout is documented
 * field by field in docs/events.md. The scalar members below are the few
 * values the core indexes and routes on; their strings point into `doc` (or
 * are static), so they live exactly as long as the event. */
#ifndef LB_EVENT_H
#define LB_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

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
    json_object *doc;            /* owned: the normalized document */
} lb_event;

/* Sets doc["account"] = account_id (the ingest layer knows it, sources do not). */
void lb_event_set_account(lb_event *ev, const char *account_id);
/* Releases doc and zeroes the struct. Safe on a zeroed event. */
void lb_event_clear(lb_event *ev);

#endif
