/* json_get.h: typed, tolerant reads of json-c documents by path, and the few
 * value normalizers that every source adapter (hotmart.c, hotmart_form.c,
 * canonical.c) shares.
 *
 * A path is keys joined by '.', each optionally followed by one array index:
 * "data.buyer.email", "data.plans[1].offer.key". Keys cannot contain '.' or
 * '['. Paths come from our code, never from input.
 *
 * Getter convention (lb_jget_* and lb_jval_*):
 *   1  present and well-typed: the output is filled;
 *   0  absent, or JSON null (senders use null for "no value"): output untouched;
 *  -1  present with the wrong type, or an intermediate that is not an
 *      object/array: err names the full path ("data.buyer.email") and says why.
 * lb_jval_* check a value already in hand and name it `name` in errors; the
 * lb_jget_* forms look `path` up under `root` first. */
#ifndef LB_JSON_GET_H
#define LB_JSON_GET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "error.h"
#include "event.h"
#include "json_flat.h"

#define LB_EMAIL_MAX 254 /* RFC 5321 path limit; a longer "address" is not one */
#define LB_ID_MAX 128    /* ids and dedupe keys; Hotmart's are 36-char UUIDs */

/* Lookup. lb_jget is lenient (NULL for absent, null or unreachable);
 * lb_jget_node is strict about intermediates, per the convention above. */
json_object *lb_jget(json_object *root, const char *path);
int lb_jget_node(json_object *root, const char *path, json_object **out, lb_error *err);
/* The same walk, from `start`, which the caller found at the segments of
 * path before offset `off` (which starts a segment); errors name the path as
 * a walk from the root would. */
int lb_jget_node_at(json_object *start, const char *path, size_t off, json_object **out, lb_error *err);
/* The string at path, or NULL if absent or not a string. */
const char *lb_jstr(json_object *root, const char *path);

/* Typed checks of one value. Strings containing NUL are refused (json-c
 * would hand them to C code truncated), numbers must be finite. */
int lb_jval_string(json_object *v, const char *name, const char **out, lb_error *err);
/* An id: an integer or a string (Hotmart sends product.id both ways), written
 * as a string into buf. "" counts as absent. */
int lb_jval_id(json_object *v, const char *name, char *buf, size_t cap, lb_error *err);
/* A timestamp: integer ms since the epoch, or an ISO-8601 string (see
 * lb_time_parse). */
int lb_jval_time(json_object *v, const char *name, int64_t *out, lb_error *err);
/* An integer; an integral double (12.0) is accepted too. */
int lb_jval_int(json_object *v, const char *name, int64_t *out, lb_error *err);
int lb_jval_double(json_object *v, const char *name, double *out, lb_error *err);
int lb_jval_bool(json_object *v, const char *name, bool *out, lb_error *err);
/* A lead e-mail, trimmed and lower-cased into buf (cap >= LB_EMAIL_MAX + 1);
 * a present value that is not a plausible address is an error. */
int lb_jval_email(json_object *v, const char *name, char *buf, size_t cap, lb_error *err);
/* Whether v is an integer json-c may have clamped. It clamps one past its
 * range to the range's end without saying so, so an end (-2^63, 2^64 - 1)
 * counts as past it: what was sent is not known. */
bool lb_jval_int_clamped(json_object *v);

int lb_jget_string(json_object *root, const char *path, const char **out, lb_error *err);
int lb_jget_id(json_object *root, const char *path, char *buf, size_t cap, lb_error *err);
int lb_jget_time(json_object *root, const char *path, int64_t *out, lb_error *err);
int lb_jget_int(json_object *root, const char *path, int64_t *out, lb_error *err);
int lb_jget_double(json_object *root, const char *path, double *out, lb_error *err);
int lb_jget_bool(json_object *root, const char *path, bool *out, lb_error *err);
int lb_jget_email(json_object *root, const char *path, char *buf, size_t cap, lb_error *err);

/* The same lookups and checks over a flat document (json_flat.h), with the
 * same conventions and error texts; JSON null counts as absent. */
int lb_jnget_node(const lb_jnode *root, const char *path, const lb_jnode **out, lb_error *err);
int lb_jnget_node_at(const lb_jnode *start, const char *path, size_t off, const lb_jnode **out, lb_error *err);
int lb_jnval_string(const lb_jnode *v, const char *name, const char **out, lb_error *err);
int lb_jnval_id(const lb_jnode *v, const char *name, char *buf, size_t cap, lb_error *err);
int lb_jnval_time(const lb_jnode *v, const char *name, int64_t *out, lb_error *err);
int lb_jnval_int(const lb_jnode *v, const char *name, int64_t *out, lb_error *err);
int lb_jnval_double(const lb_jnode *v, const char *name, double *out, lb_error *err);
int lb_jnval_bool(const lb_jnode *v, const char *name, bool *out, lb_error *err);
int lb_jnval_email(const lb_jnode *v, const char *name, char *buf, size_t cap, lb_error *err);
int lb_jnget_string(const lb_jnode *root, const char *path, const char **out, lb_error *err);
int lb_jnget_id(const lb_jnode *root, const char *path, char *buf, size_t cap, lb_error *err);
int lb_jnget_time(const lb_jnode *root, const char *path, int64_t *out, lb_error *err);
int lb_jnget_int(const lb_jnode *root, const char *path, int64_t *out, lb_error *err);
int lb_jnget_double(const lb_jnode *root, const char *path, double *out, lb_error *err);
int lb_jnget_bool(const lb_jnode *root, const char *path, bool *out, lb_error *err);
int lb_jnget_email(const lb_jnode *root, const char *path, char *buf, size_t cap, lb_error *err);

/* Sets root[path] = val, creating intermediate objects (no array indexes).
 * Takes ownership of val, also on failure. Returns 0, or -1 with err naming
 * path if val is NULL (a failed allocation) or an intermediate exists and is
 * not an object. */
int lb_jset(json_object *root, const char *path, json_object *val, lb_error *err);
/* A new JSON string: s with its ASCII letters upper- or lower-cased. */
json_object *lb_jstring_case(const char *s, bool upper);

/* "2026-02-20T12:00:00.000Z", "...:00Z", "...:00-03:00", "...:00-0300",
 * "2026-02-20 12:00:00" and "2026-02-20". A missing zone means UTC. Digits
 * past milliseconds are truncated. Returns 0 and ms since the epoch, or -1. */
int lb_time_parse(const char *s, int64_t *ms);
/* Trims ASCII space, lower-cases ASCII; requires one '@' with text on both
 * sides, no spaces or control characters, at most LB_EMAIL_MAX bytes.
 * Returns 0, or -1 (out untouched). */
int lb_email_normalize(const char *in, char *out, size_t cap);
/* An ISO 3166 alpha-2 code in any case ("br") upper-cased into out; false if
 * `in` is not two ASCII letters (e.g. a country name). */
bool lb_country_normalize(const char *in, char out[3]);

/* Points ev's scalar members into doc (which ev now owns) after an adapter
 * built it: source and type must be static strings; the rest are read from
 * doc ("id", "source_type", "occurred_at", "product.id", "lead.email",
 * "test", "ignored"). Shared by the adapters; it would sit in event.c too. */
void lb_event_bind(lb_event *ev, json_object *doc, const char *source, const char *type);

#endif
