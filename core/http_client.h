/* http_client.h: the core's one HTTP client, for provider plugins.
 *
 * One libcurl multi handle driven by libevent socket and timer callbacks (the
 * hiperfifo pattern: never polling), with keep-alive connection reuse,
 * TCP_NODELAY, per-request timeouts, a response-size cap and TLS verification
 * always on. It logs no header and no query string, so no credential can
 * reach a log through it. */
#ifndef LB_HTTP_CLIENT_H
#define LB_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>
#include <listboss/plugin.h>

typedef struct lb_http_client lb_http_client;
typedef struct lb_http_exchange lb_http_exchange;

typedef struct lb_http_client_options {
    long connect_timeout_ms;   /* default 5000 */
    long default_timeout_ms;   /* whole exchange, when the request gives none; default 15000 */
    size_t max_response_bytes; /* larger answers fail as transport errors; default 1 MiB */
    long max_connections;      /* total open connections; default 256 */
} lb_http_client_options;

lb_http_client *lb_http_client_new(struct event_base *base, const lb_http_client_options *opts);
/* Drops every exchange in flight without calling their callbacks. */
void lb_http_client_free(lb_http_client *c);

/* GET, POST, PUT, PATCH, DELETE and HEAD: the methods the plugin ABI names.
 * A request with any other is refused (lb_http_client_request is NULL). */
bool lb_http_method_supported(const char *method);

/* Starts an exchange; `done` runs exactly once from the event loop (never from
 * inside this call), unless the exchange is cancelled first. NULL if the
 * request could not even be started (then done never runs). */
lb_http_exchange *lb_http_client_request(lb_http_client *c, const lb_http_req *req, lb_http_done done, void *ud);
/* Aborts an exchange in flight; its done never runs. */
void lb_http_client_cancel(lb_http_exchange *x);
/* A header of the response being delivered to `done` (case-insensitive), or NULL. */
const char *lb_http_client_header(const lb_http_resp *resp, const char *name);
/* Exchanges in flight (for metrics and tests). */
size_t lb_http_client_in_flight(const lb_http_client *c);

#endif
