/* plugin_api.h: the parts of lb_core_api that do not need the event loop,
 * as plain functions shared by the daemon and the plugin test host (lbplug).
 *
 * The daemon and lbplug each fill an lb_core_api with lb_core_api_fill() and
 * then add the members that depend on their HTTP client and loop:
 * http_request, http_cancel, http_header, http_classify, complete and
 * resource_add. A client that keeps response headers in an lb_header_list
 * (pointed to by lb_http_resp.priv) can use lb_http_header and
 * lb_http_classify as they are; another one (core/http_client.c) passes its
 * own header lookup to lb_http_classify_with. */
#ifndef LB_PLUGIN_API_H
#define LB_PLUGIN_API_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <listboss/plugin.h>

#include "error.h"

/* ---- lb_core_api members (the plugin-facing contract is in plugin.h) ------ */

void lb_api_vlog(const lb_settings *s, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void lb_api_log(const lb_settings *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *lb_api_setting(const lb_settings *s, const char *key);
int lb_api_secret(const lb_settings *s, const char *key, char *buf, size_t len);

/* JSON helpers. All three write a NUL-terminated string and return its length,
 * or -1 with out = "" (when outlen > 0) if the result does not fit: a
 * truncated id or token is worse than none. */
int lb_json_get(const char *json, size_t len, const char *path, char *out, size_t outlen);
/* NULL is written as the JSON literal null, so optional fields stay one call. */
int lb_json_quote(const char *s, char *out, size_t outlen);
/* RFC 3986: unreserved characters (ALPHA DIGIT - . _ ~) kept, the rest %XX. */
int lb_url_encode(const char *s, char *out, size_t outlen);
void lb_md5_hex(const char *s, char out[33]);

typedef const char *(*lb_header_fn)(const lb_http_resp *resp, const char *name);

/* The header lookup and classification for responses whose priv is an
 * lb_header_list. */
const char *lb_http_header(const lb_http_resp *resp, const char *name);
lb_status lb_http_classify(const lb_http_resp *resp, uint32_t *retry_after_ms);
/* The default mapping (see plugin.h), reading Retry-After through `header`:
 * 2xx OK; 401/403 AUTH; 408, 429, 5xx, a transport error or a status outside
 * 100-599 RETRY; any other 4xx and 3xx (redirects are never followed) FAIL. */
lb_status lb_http_classify_with(const lb_http_resp *resp, uint32_t *retry_after_ms, lb_header_fn header);
/* A Retry-After value (delta-seconds or HTTP-date) as milliseconds after
 * `now`; a date in the past gives 0. Returns 0, or -1 if unparseable. */
int lb_retry_after_parse(const char *value, time_t now, uint32_t *ms);

/* Fills struct_size, the ABI version, log, setting, secret, json_get,
 * json_quote, url_encode and md5_hex; see the top of this file for the rest. */
void lb_core_api_fill(lb_core_api *api);

/* ---- response headers ------------------------------------------------------ */

typedef struct lb_header_list {
    char **lines; /* "Name: value", CR/LF stripped */
    size_t count, cap;
} lb_header_list;

/* Adds one raw header line as libcurl's header callback delivers it. A status
 * line ("HTTP/...") starts a new response (after a 100 Continue or a
 * redirect), so it clears the list; blank lines are ignored. 0 or -1 (OOM). */
int lb_header_list_add(lb_header_list *h, const char *data, size_t len);
void lb_header_list_clear(lb_header_list *h);

/* ---- settings ------------------------------------------------------------- */

/* lb_settings is one integration's key/value list. Each key carries a secret
 * flag (from the plugin's LB_CFG_SECRET); the plugin reads secret values only
 * through api->secret, into its own buffer. Values are copied in and wiped
 * when replaced or freed. */
lb_settings *lb_settings_new(const char *label);
void lb_settings_free(lb_settings *s);
/* Sets (or replaces) key. Returns 0, or -1 when out of memory. */
int lb_settings_set(lb_settings *s, const char *key, const char *value, bool secret);
/* The core's own view: any value, secret or not, or NULL. */
const char *lb_settings_raw(const lb_settings *s, const char *key);
bool lb_settings_is_secret(const lb_settings *s, const char *key);
size_t lb_settings_count(const lb_settings *s);
const char *lb_settings_key(const lb_settings *s, size_t i);
/* The name log lines carry ("plugin=example"). */
const char *lb_settings_label(const lb_settings *s);
/* The same keys with the same values and secret flags, in any order. Compares
 * resolved values (a rotated secret differs) without copying or logging them. */
bool lb_settings_equal(const lb_settings *a, const lb_settings *b);

/* Checks s against the plugin's declarations: refuses unknown keys and missing
 * or empty required keys, fills defaults, and sets each key's secret flag.
 * Returns 0, or -1 with err naming the key. */
int lb_plugin_validate_settings(const lb_plugin *p, lb_settings *s, lb_error *err);
/* Replaces each secret value, taken as a reference (env:NAME, file:PATH or a
 * literal, see secret.h), by what it refers to. Run after validation. */
int lb_settings_resolve_secrets(lb_settings *s, lb_error *err);

/* Copies `in` to `out` with every secret value of s, and the rest of any line
 * after "Authorization:", replaced by "[REDACTED]": for log lines and for
 * reasons written by plugins. s may be NULL. Always NUL-terminates. */
void lb_redact(const lb_settings *s, const char *in, char *out, size_t cap);

#endif
