/* http_server.c: connections, framing and replies over bufferevents.
 *
 * One request per connection is in the hands of a handler at a time; the
 * connection stops reading until it is answered, then resumes with whatever
 * the client pipelined meanwhile. Requests are copied out of the socket buffer
 * into one allocation (head + body) so a handler may keep them across loop
 * turns, which the group commit does. */
#include "http_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "log.h"

typedef struct lb_http_conn lb_http_conn;

struct lb_http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    lb_http_limits limits;
    lb_http_route *routes;
    size_t n_routes;
    lb_metrics *metrics;
    lb_http_conn *conns;
    bool draining;
    void (*drained)(void *arg);
    void *drained_arg;
};

struct lb_http_conn {
    lb_http_server *srv;
    struct bufferevent *bev;
    lb_http_request *pending; /* handed to a handler, not answered yet */
    bool close_after_write;
    bool lingering;     /* answered and half-closed: discarding what the client still sends */
    size_t discarded;
    lb_http_conn *prev, *next;
};

struct lb_http_request {
    lb_http_conn *conn; /* NULL once the client has gone away */
    lb_http_head head;
    char *data;         /* head bytes, body bytes, NUL */
    size_t head_len, body_len;
    const char *route;  /* metrics label */
    bool keep_alive;
};

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- connection lifetime ------------------------------------------------ */

static void server_check_drained(lb_http_server *srv)
{
    if (srv->draining && !srv->conns && srv->drained) {
        void (*cb)(void *) = srv->drained;
        srv->drained = NULL;
        cb(srv->drained_arg);
    }
}

static void conn_free(lb_http_conn *c)
{
    lb_http_server *srv = c->srv;
    if (c->pending)
        c->pending->conn = NULL; /* the handler still owns it and will answer into the void */
    bufferevent_free(c->bev);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->metrics->connections_open--;
    free(c);
    server_check_drained(srv);
}

/* ---- replies ------------------------------------------------------------- */

static void conn_write_reply(lb_http_conn *c, int status, const char *content_type, const char *body,
                             size_t body_len, const char *extra_headers, bool close)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                        status, reason_phrase(status), content_type, body_len,
                        close ? "Connection: close\r\n" : "", extra_headers ? extra_headers : "");
    evbuffer_add(out, body, body_len);
    if (close) {
        c->close_after_write = true;
        bufferevent_disable(c->bev, EV_READ);
    }
}

void lb_http_reply(lb_http_request *req, int status, const char *content_type, const char *body,
                   size_t body_len, const char *extra_headers)
{
    lb_http_conn *c = req->conn;
    if (c) {
        char code[8];
        snprintf(code, sizeof code, "%d", status);
        lb_counter_inc(&c->srv->metrics->requests, req->route, code);
        bool close = !req->keep_alive || c->srv->draining || c->close_after_write;
        conn_write_reply(c, status, content_type, body, body_len, extra_headers, close);
        c->pending = NULL;
        /* pipelined bytes may already be buffered: look at them on a later turn */
        if (!close && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
            bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    }
    free(req->data);
    free(req);
}

static void json_escape_into(struct evbuffer *out, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(out, "\\%c", ch);
        else if (ch < 0x20)
            evbuffer_add_printf(out, "\\u%04x", ch);
        else
            evbuffer_add(out, s, 1);
    }
}

void lb_http_reply_error(lb_http_request *req, int status, const char *code, const char *message,
                         const char *field, const char *extra_headers)
{
    struct evbuffer *body = evbuffer_new();
    evbuffer_add_printf(body, "{\"error\":\"%s\",\"message\":\"", code);
    json_escape_into(body, message);
    if (field && *field) {
        evbuffer_add(body, "\",\"field\":\"", 11);
        json_escape_into(body, field);
    }
    evbuffer_add(body, "\"}", 2);
    size_t len = evbuffer_get_length(body);
    lb_http_reply(req, status, "application/json", (const char *)evbuffer_pullup(body, -1), len, extra_headers);
    evbuffer_free(body);
}

/* ---- requests ------------------------------------------------------------ */

const lb_http_head *lb_http_request_head(const lb_http_request *req) { return &req->head; }

const char *lb_http_request_body(const lb_http_request *req, size_t *len)
{
    *len = req->body_len;
    return req->data ? req->data + req->head_len : "";
}

const char *lb_http_request_header(const lb_http_request *req, const char *name, size_t *len)
{
    return lb_http_head_get(&req->head, name, len);
}

static lb_http_request *request_new(lb_http_conn *c)
{
    lb_http_request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->conn = c;
    req->route = "other";
    return req;
}

/* Answers a request that never reached a handler (bad framing, limits) and
 * closes: after a framing error the byte stream cannot be trusted. */
static void conn_refuse(lb_http_conn *c, int status, const char *code, const char *message)
{
    lb_http_request *req = request_new(c);
    if (!req) {
        conn_free(c);
        return;
    }
    c->close_after_write = true;
    c->pending = req;
    lb_http_reply_error(req, status, code, message, NULL, NULL);
}

static void dispatch(lb_http_conn *c, lb_http_request *req)
{
    const lb_http_head *h = &req->head;
    lb_http_server *srv = c->srv;
    for (size_t i = 0; i < srv->n_routes; i++) {
        const lb_http_route *r = &srv->routes[i];
        if (strlen(r->path) != h->path_len || memcmp(r->path, h->target, h->path_len) != 0)
            continue;
        req->route = r->path;
        if (strlen(r->method) != h->method_len || memcmp(r->method, h->method, h->method_len) != 0) {
            char allow[64];
            snprintf(allow, sizeof allow, "Allow: %s\r\n", r->method);
            lb_http_reply_error(req, 405, "method_not_allowed", "method not allowed on this path", NULL,
                                allow);
            return;
        }
        r->handler(req, r->ctx);
        return;
    }
    lb_http_reply_error(req, 404, "not_found", "no such path", NULL, NULL);
}

/* Takes one complete request off the input buffer if there is one.
 * Returns 1 if a request was dispatched, 0 to wait for more bytes, -1 if the
 * connection was refused. */
static int conn_take_request(lb_http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return 0;
    size_t max_head = c->srv->limits.max_head;
    size_t view = avail < max_head ? avail : max_head;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)view);
    lb_http_head head;
    int status = 400;
    long head_len = lb_http_parse_head(p, view, max_head, &head, &status);
    if (head_len == 0)
        return 0;
    if (head_len < 0) {
        conn_refuse(c, status, status == 431 ? "header_too_large" : "bad_request",
                    status == 431 ? "request head too large" : "malformed HTTP request");
        return -1;
    }
    if (head.chunked) {
        conn_refuse(c, 411, "length_required", "send the body with a Content-Length");
        return -1;
    }
    size_t body_len = head.content_length > 0 ? (size_t)head.content_length : 0;
    if (body_len > c->srv->limits.max_body) {
        char msg[96];
        snprintf(msg, sizeof msg, "body is larger than the limit of %zu bytes", c->srv->limits.max_body);
        conn_refuse(c, 413, "body_too_large", msg);
        return -1;
    }
    size_t total = (size_t)head_len + body_len;
    if (avail < total)
        return 0;
    lb_http_request *req = request_new(c);
    char *data = req ? malloc(total + 1) : NULL;
    if (!data) {
        free(req);
        conn_refuse(c, 503, "out_of_memory", "server is out of memory");
        return -1;
    }
    evbuffer_remove(in, data, total);
    data[total] = '\0';
    req->data = data;
    req->head_len = (size_t)head_len;
    req->body_len = body_len;
    int ignored;
    lb_http_parse_head(data, (size_t)head_len, max_head, &req->head, &ignored); /* re-point into our copy */
    req->keep_alive = req->head.keep_alive && !c->srv->draining;
    c->pending = req;
    dispatch(c, req);
    return 1;
}

#define LB_LINGER_SECONDS 2
#define LB_LINGER_MAX_BYTES (1024 * 1024)

/* After the last answer, close our side for writing and read (and drop) what
 * the client still sends until it closes too. Closing a socket with unread
 * input makes the kernel send a reset, which can destroy the answer (a 413 or
 * 431 to a client still sending) before the client reads it. */
static void conn_linger(lb_http_conn *c)
{
    c->lingering = true;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
    struct timeval t = {LB_LINGER_SECONDS, 0};
    bufferevent_set_timeouts(c->bev, &t, NULL);
    bufferevent_enable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    lb_http_conn *c = arg;
    if (c->lingering) {
        struct evbuffer *in = bufferevent_get_input(bev);
        c->discarded += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->discarded > LB_LINGER_MAX_BYTES)
            conn_free(c);
        return;
    }
    while (!c->pending && !c->close_after_write) {
        if (conn_take_request(c) <= 0)
            return;
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    lb_http_conn *c = arg;
    if (c->close_after_write && !c->lingering && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_linger(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    lb_http_conn *c = arg;
    bool unsent = evbuffer_get_length(bufferevent_get_output(bev)) > 0;
    if (!c->lingering && (what & BEV_EVENT_EOF) && (c->pending || unsent)) {
        /* a client that half-closed after its request still gets the answer */
        c->close_after_write = true;
        bufferevent_disable(bev, EV_READ);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        conn_free(c);
}

/* ---- accepting ------------------------------------------------------------ */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    lb_http_server *srv = arg;
    (void)l;
    (void)sa;
    (void)salen;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    lb_http_conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->srv = srv;
    c->bev = bev;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->metrics->connections_open++;
    struct timeval idle = {srv->limits.idle_timeout_s, 0};
    bufferevent_set_timeouts(bev, &idle, &idle);
    /* while a request waits for its answer the connection keeps reading (no
     * epoll_ctl per request), up to one more full request, then pauses */
    bufferevent_setwatermark(bev, EV_READ, 0, srv->limits.max_head + srv->limits.max_body);
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)arg;
    (void)l;
    /* EMFILE and friends: keep serving the connections we have */
    lb_log(LB_LOG_WARN, "accept failed", "error", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), NULL);
}

static void log_bound_address(struct evconnlistener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[64] = "?", addr[80];
    if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &len) != 0)
        return;
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(addr, sizeof addr, "%s:%d", host, port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(addr, sizeof addr, "[%s]:%d", host, port);
    }
    lb_log(LB_LOG_INFO, "listening", "addr", addr, NULL);
}

lb_http_server *lb_http_server_new(struct event_base *base, const char *addr, const lb_http_limits *limits,
                                   const lb_http_route *routes, size_t n_routes, lb_metrics *metrics,
                                   char *errbuf, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
        snprintf(errbuf, errlen, "cannot parse listen address %s (use IP:PORT)", addr);
        return NULL;
    }
    lb_http_server *srv = calloc(1, sizeof *srv);
    lb_http_route *copy = calloc(n_routes ? n_routes : 1, sizeof *copy);
    if (!srv || !copy) {
        free(srv);
        free(copy);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    memcpy(copy, routes, n_routes * sizeof *routes);
    srv->base = base;
    srv->limits = *limits;
    srv->routes = copy;
    srv->n_routes = n_routes;
    srv->metrics = metrics;
    srv->listener = evconnlistener_new_bind(base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                            1024, (struct sockaddr *)&ss, sslen);
    if (!srv->listener) {
        snprintf(errbuf, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        free(copy);
        free(srv);
        return NULL;
    }
    evconnlistener_set_error_cb(srv->listener, on_accept_error);
    log_bound_address(srv->listener);
    return srv;
}

void lb_http_server_set_max_body(lb_http_server *srv, size_t max_body) { srv->limits.max_body = max_body; }

void lb_http_server_drain(lb_http_server *srv, void (*drained)(void *arg), void *arg)
{
    srv->draining = true;
    srv->drained = drained;
    srv->drained_arg = arg;
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    lb_http_conn *c = srv->conns;
    while (c) {
        lb_http_conn *next = c->next;
        /* a pending or half-received request is answered (with Connection: close);
         * an answer still being written is flushed; anything else goes now */
        bool busy = c->pending || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
        if (!busy && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
            c->close_after_write = true;
        else if (!busy)
            conn_free(c); /* may call drained: nothing after this touches c */
        c = next;
    }
    server_check_drained(srv);
}

void lb_http_server_free(lb_http_server *srv)
{
    if (!srv)
        return;
    srv->drained = NULL;
    while (srv->conns)
        conn_free(srv->conns);
    if (srv->listener)
        evconnlistener_free(srv->listener);
    free(srv->routes);
    free(srv);
}
