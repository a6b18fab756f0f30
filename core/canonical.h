/* canonical.h: the server's own event API (POST /v1/events).
 * The body is an event already in the normalized shape of docs/events.md;
 * this validates it and fills an lb_event, so it is stored exactly like a
 * normalized Hotmart delivery. */
#ifndef LB_CANONICAL_H
#define LB_CANONICAL_H

#include <json-c/json.h>

#include "error.h"
#include "event.h"

/* Validates `root` (types, required id/type/lead.email) and takes a deep copy
 * into ev->doc with source = "api". Returns 0, or -1 with the field named. */
int lb_canonical_normalize(json_object *root, lb_event *ev, lb_error *err);

#endif
