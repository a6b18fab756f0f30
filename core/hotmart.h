/* hotmart.h: the Hotmart source adapters (webhook 2.0.0 JSON, postback 1.0 form).
 * They turn one delivery into an lb_event; see docs/events.md for the mapping
 * and ../shared/spec/hotmart-webhooks.md (section 8) for the quirks handled. */
#ifndef LB_HOTMART_H
#define LB_HOTMART_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "error.h"
#include "event.h"
#include "json_flat.h"

/* Normalizes a parsed 2.0.0 delivery (json_flat.h). On success returns 0
 * and fills ev (ev->edoc is a new document, ev->doc is NULL until
 * lb_event_json; nothing of `root` is kept). On bad input returns -1 and
 * names the field in err (e.g. "data.buyer.email"). */
int lb_hotmart_normalize_flat(const lb_jnode *root, lb_event *ev, lb_error *err);
/* The same into `doc`, an empty document (new or reset): on success the
 * event owns it; on failure it stays the caller's, to reset and reuse. */
int lb_hotmart_normalize_flat_into(const lb_jnode *root, lb_edoc *doc, lb_event *ev, lb_error *err);
/* The same from a json-c document, written out and read back flat, with
 * ev->doc made: for the CLI and tests, not the hot path. */
int lb_hotmart_normalize(json_object *root, lb_event *ev, lb_error *err);

/* Whether a normalized document is a Hotmart "send test" delivery. */
bool lb_hotmart_is_send_test(json_object *doc);

/* The top-level body "hottok" string of a 2.0.0 delivery and its length in
 * *len, or NULL if there is none. The length counts any NUL inside (sent as
 * \u0000): compare it whole (lb_account_by_hottok), never with strlen. */
const char *lb_hotmart_body_hottok(const lb_jnode *root, size_t *len);
/* Whether the body has a "hottok" member that is not null: one of another
 * type (a number, say) was sent, and is a wrong hottok, not a missing one. */
bool lb_hotmart_body_sent_hottok(const lb_jnode *root);

/* Normalizes a 1.0 form-encoded postback (body as received, not NUL-terminated).
 * The "hottok" field is returned through *hottok_out (malloc'd, caller frees;
 * NULL if absent) and its length through *hottok_len, so the caller can
 * authenticate; the length counts any NUL inside (%00), as above.
 * hottok_out and hottok_len are both NULL or both not. */
int lb_hotmart_form_normalize(const char *body, size_t len, lb_event *ev,
                              char **hottok_out, size_t *hottok_len, lb_error *err);

#endif
