/* http_server.h: the HTTP/1.1 front door on the libevent loop.
 *
 * It owns connections, framing, limits (head size, body size, idle timeouts)
 * and replies; it knows nothing of webhooks. A route's handler receives a
 * complete request and answers it now or later (the ingest answers after the
 * group commit) with lb_http_reply(), exactly once. While a request waits for
 * its answer the connection reads nothing more, which is the backpressure. */
#ifndef LB_HTTP_SERVER_H
#define LB_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>

#include "http_parse.h"
#include "metrics.h"

typedef struct lb_http_server lb_http_server;
typedef struct lb_http_request lb_http_request;

typedef void (*lb_http_handler)(lb_http_request *req, void *ctx);

typedef struct lb_http_route {
    const char *path;   /* exact match on the path, query ignored */
    const char *method; /* the one method allowed; others get 405 */
    lb_http_handler handler;
    void *ctx;
} lb_http_route;

#define LB_HTTP_DEFAULT_MAX_CONNECTIONS 10000

typedef struct lb_http_limits {
    size_t max_head;      /* request line + headers, bytes */
    size_t max_body;      /* bytes; larger bodies get 413 */
    int idle_timeout_s;   /* keep-alive idle and slow-client timeout */
    size_t max_connections; /* open at once; past it new ones wait in the listen backlog; 0 = 10000 */
} lb_http_limits;

/* Binds addr ("HOST:PORT") and starts accepting. Routes are copied. */
lb_http_server *lb_http_server_new(struct event_base *base, const char *addr, const lb_http_limits *limits,
                                   const lb_http_route *routes, size_t n_routes, lb_metrics *metrics,
                                   char *errbuf, size_t errlen);
void lb_http_server_set_max_body(lb_http_server *srv, size_t max_body);
/* Stops accepting and closes idle connections; `drained` runs once the last
 * connection is gone (in-flight requests are answered first). */
void lb_http_server_drain(lb_http_server *srv, void (*drained)(void *arg), void *arg);
void lb_http_server_free(lb_http_server *srv);

/* Request accessors, valid until the request is answered. */
const lb_http_head *lb_http_request_head(const lb_http_request *req);
const char *lb_http_request_body(const lb_http_request *req, size_t *len);
const char *lb_http_request_header(const lb_http_request *req, const char *name, size_t *len);

/* Answers the request (exactly once) and frees it. `extra_headers` is NULL or
 * one or more "Name: value\r\n" lines. Safe after the client went away. */
void lb_http_reply(lb_http_request *req, int status, const char *content_type, const char *body,
                   size_t body_len, const char *extra_headers);
/* Answers with {"error": code, "message": message[, "field": field]}. */
void lb_http_reply_error(lb_http_request *req, int status, const char *code, const char *message,
                         const char *field, const char *extra_headers);

#endif
