/* http_server.c: connections, framing and replies on plain socket events.
 *
 * One request per connection is in the hands of a handler at a time; the
 * connection keeps reading meanwhile (up to one more full request, then it
 * pauses), and the bytes the client pipelined are looked at once the answer
 * is out. Requests are copied out of the connection's input buffer into one
 * allocation (head + body) so a handler may keep them across loop turns,
 * which the group commit does.
 *
 * Why not bufferevents: per request they cost an ioctl(FIONREAD) before each
 * read, two epoll_ctl calls to arm and disarm the write event, and a loop turn
 * before the answer is written. Here an answer is written at once with one
 * sendmsg(); the write event is armed only when the socket cannot take it all,
 * so a keep-alive request costs one read and one write. */
#include "http_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "http_chunked.h"
#include "http_date.h"
#include "log.h"

#define LB_LINGER_SECONDS 2
#define LB_LINGER_MAX_BYTES (1024 * 1024)
#define LB_READ_CHUNK (16 * 1024) /* room kept free in the input buffer for one read */
/* Answered requests kept for reuse: a request is a few KiB (the parsed head
 * and a copy of the bytes), and allocating that much per request makes glibc
 * consolidate its small-chunk bins every time. */
#define LB_REQUEST_POOL_MAX 256
#define LB_REQUEST_POOL_DATA_MAX (64 * 1024)

typedef struct lb_http_conn lb_http_conn;

struct lb_http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    lb_http_limits limits;
    lb_http_route *routes;
    size_t n_routes;
    lb_metrics *metrics;
    lb_http_date_cache date; /* the Date of this second's answers */
    lb_http_conn *conns; /* as many as metrics->connections_open */
    struct event *accept_retry; /* resumes accepting after a failed accept */
    bool accept_paused;         /* the listener is off: at the limit, or after a failed accept */
    bool accept_failing;        /* accept failed, and has not succeeded since */
    time_t limit_logged;        /* when "connection limit reached" was last logged */
    lb_http_request *pool; /* answered requests, linked by next_free */
    size_t pool_n;
    size_t live_requests; /* taken, not yet answered */
    bool freed;           /* lb_http_server_free ran while requests were live */
    bool draining;
    void (*drained)(void *arg);
    void *drained_arg;
};

/* Bytes of one direction of a connection: data[off, len) is what is left. */
typedef struct byte_buffer {
    char *data;
    size_t off, len, cap;
} byte_buffer;

struct lb_http_conn {
    lb_http_server *srv;
    evutil_socket_t fd;
    struct event *readable; /* persistent; its timeout is the idle timeout */
    struct event *writable; /* armed only while an answer waits for socket room */
    struct event *resume;   /* a later turn: pipelined bytes, or the free after a failed write */
    byte_buffer in, out;
    lb_http_request *pending; /* handed to a handler, not answered yet */
    bool close_after_write;
    bool reading_paused; /* input full while a request is pending */
    bool lingering;      /* answered and half-closed: discarding what the client still sends */
    bool peer_closed;    /* the client half-closed: what it sent before is still answered */
    bool failed;         /* a write failed: freed on the next turn, never inside a reply */
    size_t discarded;
    /* the request at the front of the input buffer, while its body comes */
    lb_chunked_decoder chunk; /* a chunked body, decoded in place */
    bool chunk_started;
    bool continue_sent;       /* "100 Continue" went out for it */
    lb_http_conn *prev, *next;
};

struct lb_http_request {
    lb_http_server *srv;
    lb_http_conn *conn; /* NULL once the client has gone away */
    lb_http_head head;
    char *data;         /* head bytes, body bytes, NUL */
    size_t data_cap;
    size_t head_len, body_len;
    lb_http_request *next_free;
    const char *route;  /* metrics label */
    bool keep_alive;
    bool head_only;     /* HEAD: the answer's head without its body */
};

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- byte buffers ---------------------------------------------------------- */

static size_t buffer_pending(const byte_buffer *b) { return b->len - b->off; }

/* Moves what is left to the front and makes room for `room` more bytes. */
static int buffer_reserve(byte_buffer *b, size_t room)
{
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->cap - b->len >= room)
        return 0;
    size_t cap = b->cap ? b->cap : LB_READ_CHUNK;
    while (cap - b->len < room)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buffer_append(byte_buffer *b, const char *p, size_t n)
{
    if (buffer_reserve(b, n))
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* An emptied buffer that grew for a large request gives its memory back. */
static void buffer_consume(byte_buffer *b, size_t n)
{
    b->off += n;
    if (b->off < b->len)
        return;
    b->off = b->len = 0;
    if (b->cap > 4 * LB_READ_CHUNK) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

/* ---- accepting, paused and resumed -------------------------------------- */

/* Past the connection limit, or when accept fails (no descriptor left:
 * EMFILE, ENFILE; no memory), the listener is switched off: the listening
 * socket would stay readable and the loop would spin on failing accepts.
 * Connections that arrive meanwhile wait in the kernel's listen backlog. */
static void accept_pause(lb_http_server *srv)
{
    if (srv->accept_paused || !srv->listener)
        return;
    evconnlistener_disable(srv->listener);
    srv->accept_paused = true;
}

static void accept_resume(lb_http_server *srv)
{
    if (!srv->accept_paused || !srv->listener || srv->draining ||
        srv->metrics->connections_open >= srv->limits.max_connections)
        return;
    evconnlistener_enable(srv->listener);
    srv->accept_paused = false;
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    accept_resume(arg);
}

/* Logged at most once a minute: at the limit, the listener goes off and on
 * with every connection that closes. */
static void log_connection_limit(lb_http_server *srv)
{
    time_t now = time(NULL);
    if (now - srv->limit_logged < 60)
        return;
    srv->limit_logged = now;
    char max[24];
    snprintf(max, sizeof max, "%zu", srv->limits.max_connections);
    lb_log(LB_LOG_WARN, "connection limit reached: new connections wait in the listen backlog", "max_connections",
           max, NULL);
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
    event_free(c->readable);
    event_free(c->writable);
    event_free(c->resume);
    evutil_closesocket(c->fd);
    free(c->in.data);
    free(c->out.data);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->metrics->connections_open--;
    free(c);
    accept_resume(srv); /* a slot, and a descriptor, are free again */
    server_check_drained(srv);
}

static void conn_add_readable(lb_http_conn *c, int seconds)
{
    struct timeval t = {seconds, 0};
    event_add(c->readable, &t);
}

/* A reply may be written from inside a handler that the connection's own
 * read path called, so a failed write must not free the connection there:
 * it is freed on the next turn. */
static void conn_fail_later(lb_http_conn *c)
{
    c->failed = true;
    event_del(c->readable);
    event_del(c->writable);
    event_active(c->resume, EV_TIMEOUT, 1);
}

/* After the last answer, close our side for writing and read (and drop) what
 * the client still sends until it closes too. Closing a socket with unread
 * input makes the kernel send a reset, which can destroy the answer (a 413 or
 * 431 to a client still sending) before the client reads it. */
static void conn_linger(lb_http_conn *c)
{
    c->lingering = true;
    shutdown(c->fd, SHUT_WR);
    buffer_consume(&c->in, buffer_pending(&c->in));
    c->reading_paused = false;
    conn_add_readable(c, LB_LINGER_SECONDS);
}

/* ---- writing ------------------------------------------------------------- */

/* Writes what the output buffer holds; arms or disarms the write event. */
static void conn_flush(lb_http_conn *c)
{
    while (buffer_pending(&c->out) > 0) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, buffer_pending(&c->out), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct timeval t = {c->srv->limits.idle_timeout_s, 0};
            event_add(c->writable, &t);
            return;
        }
        if (n < 0) {
            conn_fail_later(c);
            return;
        }
        buffer_consume(&c->out, (size_t)n);
    }
    event_del(c->writable);
    if (c->close_after_write && !c->lingering)
        conn_linger(c);
}

/* Sends head and body with one system call when nothing is queued before
 * them; whatever the socket does not take is queued for the write event. */
static void conn_send(lb_http_conn *c, const char *head, size_t head_len, const char *body, size_t body_len)
{
    if (c->failed)
        return;
    size_t done = 0;
    if (buffer_pending(&c->out) == 0) {
        struct iovec iov[2] = {{(void *)head, head_len}, {(void *)body, body_len}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = body_len ? 2 : 1};
        ssize_t n;
        do
            n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_fail_later(c);
            return;
        }
        done = n > 0 ? (size_t)n : 0;
    }
    size_t body_done = done > head_len ? done - head_len : 0;
    if ((done < head_len && buffer_append(&c->out, head + done, head_len - done)) ||
        (body_done < body_len && buffer_append(&c->out, body + body_done, body_len - body_done))) {
        conn_fail_later(c);
        return;
    }
    conn_flush(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    lb_http_conn *c = arg;
    (void)fd;
    if (what & EV_TIMEOUT) {
        conn_free(c); /* the client stopped reading */
        return;
    }
    conn_flush(c);
    if (c->failed)
        conn_free(c);
}

/* ---- request objects ------------------------------------------------------ */

static void server_release(lb_http_server *srv);

/* A request with room for `size` bytes of data, from the pool if it can. */
static lb_http_request *request_new(lb_http_conn *c, size_t size)
{
    lb_http_server *srv = c->srv;
    lb_http_request *req = srv->pool;
    if (req) {
        srv->pool = req->next_free;
        srv->pool_n--;
    } else if (!(req = calloc(1, sizeof *req))) {
        return NULL;
    }
    if (req->data_cap < size) {
        char *data = realloc(req->data, size);
        if (!data) {
            free(req->data);
            free(req);
            return NULL;
        }
        req->data = data;
        req->data_cap = size;
    }
    req->srv = srv;
    req->conn = c;
    req->route = "other";
    req->head_len = req->body_len = 0;
    req->head_only = false;
    req->next_free = NULL;
    srv->live_requests++;
    return req;
}

static void request_release(lb_http_request *req)
{
    lb_http_server *srv = req->srv;
    srv->live_requests--;
    if (srv->freed || srv->pool_n >= LB_REQUEST_POOL_MAX || req->data_cap > LB_REQUEST_POOL_DATA_MAX) {
        free(req->data);
        free(req);
    } else {
        req->next_free = srv->pool;
        srv->pool = req;
        srv->pool_n++;
    }
    if (srv->freed && srv->live_requests == 0)
        server_release(srv);
}

/* ---- replies ------------------------------------------------------------- */

/* Appends n bytes at *at when they fit in cap; *at counts them either way,
 * so a first pass into a small buffer learns the size a second one needs. */
static void put_bytes(char *buf, size_t cap, size_t *at, const char *s, size_t n)
{
    if (*at + n <= cap)
        memcpy(buf + *at, s, n);
    *at += n;
}

static void put_str(char *buf, size_t cap, size_t *at, const char *s) { put_bytes(buf, cap, at, s, strlen(s)); }

static void put_decimal(char *buf, size_t cap, size_t *at, size_t v)
{
    char digits[24];
    size_t i = sizeof digits;
    do
        digits[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put_bytes(buf, cap, at, digits + i, sizeof digits - i);
}

/* The answer's head; returns its length, written only if it fits in cap.
 * By hand rather than snprintf: it runs once per answer. */
static size_t format_head(char *buf, size_t cap, lb_http_server *srv, int status, const char *content_type,
                          size_t body_len, bool close, const char *extra_headers)
{
    size_t at = 0;
    put_str(buf, cap, &at, "HTTP/1.1 ");
    put_decimal(buf, cap, &at, (size_t)status);
    put_str(buf, cap, &at, " ");
    put_str(buf, cap, &at, reason_phrase(status));
    put_str(buf, cap, &at, "\r\nContent-Type: ");
    put_str(buf, cap, &at, content_type);
    put_str(buf, cap, &at, "\r\nContent-Length: ");
    put_decimal(buf, cap, &at, body_len);
    put_str(buf, cap, &at, "\r\nDate: ");
    put_bytes(buf, cap, &at, lb_http_date_at(&srv->date, time(NULL)), LB_HTTP_DATE_LEN);
    put_str(buf, cap, &at, close ? "\r\nConnection: close\r\n" : "\r\n");
    put_str(buf, cap, &at, extra_headers ? extra_headers : "");
    put_str(buf, cap, &at, "\r\n");
    return at;
}

/* The head says the body's length; with_body false leaves the body out (HEAD). */
static void conn_write_reply(lb_http_conn *c, int status, const char *content_type, const char *body,
                             size_t body_len, bool with_body, const char *extra_headers, bool close)
{
    char small[512];
    char *head = small;
    size_t n = format_head(small, sizeof small, c->srv, status, content_type, body_len, close, extra_headers);
    if (n > sizeof small) {
        head = malloc(n);
        if (!head) {
            conn_fail_later(c);
            return;
        }
        format_head(head, n, c->srv, status, content_type, body_len, close, extra_headers);
    }
    if (close) {
        c->close_after_write = true;
        event_del(c->readable);
    }
    conn_send(c, head, n, body, with_body ? body_len : 0);
    if (head != small)
        free(head);
}

void lb_http_reply(lb_http_request *req, int status, const char *content_type, const char *body,
                   size_t body_len, const char *extra_headers)
{
    lb_http_conn *c = req->conn;
    if (c) {
        char code[4] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10), (char)('0' + status % 10)};
        lb_counter_inc(&c->srv->metrics->requests, req->route, code);
        bool close = !req->keep_alive || c->srv->draining || c->close_after_write;
        c->pending = NULL;
        /* a client that half-closed sends nothing more: a later turn serves
         * what it sent before, or closes */
        bool more = !close && (buffer_pending(&c->in) > 0 || c->peer_closed);
        if (!close && c->reading_paused && !c->failed && !c->peer_closed) {
            c->reading_paused = false;
            conn_add_readable(c, c->srv->limits.idle_timeout_s);
        }
        conn_write_reply(c, status, content_type, body, body_len, !req->head_only, extra_headers, close);
        /* pipelined bytes may already be buffered: look at them on a later
         * turn, not now, which could recurse through a handler that answers
         * at once */
        if (more)
            event_active(c->resume, EV_TIMEOUT, 1);
    }
    request_release(req);
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


/* The parsed head points into the input buffer; make it point at the same
 * bytes in the request's own copy. */
static const char *rebase(const char *p, const char *from, char *to) { return p ? to + (p - from) : NULL; }

static void head_rebase(lb_http_head *h, const char *from, char *to)
{
    h->method = rebase(h->method, from, to);
    h->target = rebase(h->target, from, to);
    for (size_t i = 0; i < h->n_headers; i++) {
        h->headers[i].name = rebase(h->headers[i].name, from, to);
        h->headers[i].value = rebase(h->headers[i].value, from, to);
    }
}

/* Answers a request that never reached a handler (bad framing, limits) and
 * closes: after a framing error the byte stream cannot be trusted. */
static void conn_refuse(lb_http_conn *c, int status, const char *code, const char *message)
{
    lb_http_request *req = request_new(c, 1);
    if (!req) {
        conn_free(c);
        return;
    }
    req->data[0] = '\0';
    c->close_after_write = true;
    c->pending = req;
    lb_http_reply_error(req, status, code, message, NULL, NULL);
}

static bool method_is(const lb_http_head *h, const char *method)
{
    return strlen(method) == h->method_len && memcmp(method, h->method, h->method_len) == 0;
}

/* A GET route answers HEAD too, as RFC 9110 section 9.3.2 asks of every
 * server (monitors probe /healthz so): the same head, no body. */
static void dispatch(lb_http_conn *c, lb_http_request *req)
{
    const lb_http_head *h = &req->head;
    lb_http_server *srv = c->srv;
    for (size_t i = 0; i < srv->n_routes; i++) {
        const lb_http_route *r = &srv->routes[i];
        if (strlen(r->path) != h->path_len || memcmp(r->path, h->target, h->path_len) != 0)
            continue;
        req->route = r->path;
        bool get = strcmp(r->method, "GET") == 0;
        if (!method_is(h, r->method) && !(get && req->head_only)) {
            char allow[64];
            snprintf(allow, sizeof allow, "Allow: %s%s\r\n", r->method, get ? ", HEAD" : "");
            lb_http_reply_error(req, 405, "method_not_allowed", "method not allowed on this path", NULL,
                                allow);
            return;
        }
        r->handler(req, r->ctx);
        return;
    }
    lb_http_reply_error(req, 404, "not_found", "no such path", NULL, NULL);
}

/* The error code and message of a head the parser refused with `status`. */
static void head_refusal(int status, const char **code, const char **message)
{
    switch (status) {
    case 417:
        *code = "expectation_failed";
        *message = "the only expectation supported is 100-continue";
        break;
    case 431:
        *code = "header_too_large";
        *message = "request head too large";
        break;
    case 501:
        *code = "not_implemented";
        *message = "the only transfer coding supported is chunked";
        break;
    case 505:
        *code = "version_not_supported";
        *message = "HTTP/1.0 or HTTP/1.1 only";
        break;
    default:
        *code = "bad_request";
        *message = "malformed HTTP request";
    }
}

static void refuse_too_large(lb_http_conn *c)
{
    char msg[96];
    snprintf(msg, sizeof msg, "body is larger than the limit of %zu bytes", c->srv->limits.max_body);
    conn_refuse(c, 413, "body_too_large", msg);
}

/* Decodes what has come of a chunked body, in place in the input buffer.
 * 1 when it is all in (*body_len set), 0 not yet, -1 refused. */
static int chunked_body_ready(lb_http_conn *c, size_t head_len, size_t *body_len)
{
    if (!c->chunk_started) {
        lb_chunked_init(&c->chunk);
        c->chunk_started = true;
    }
    size_t len = buffer_pending(&c->in) - head_len;
    const char *why = "";
    lb_chunked_result rc =
        lb_chunked_decode(&c->chunk, c->in.data + c->in.off + head_len, &len, c->srv->limits.max_body, &why);
    c->in.len = c->in.off + head_len + len;
    if (rc == LB_CHUNKED_TOO_LARGE) {
        refuse_too_large(c);
        return -1;
    }
    if (rc == LB_CHUNKED_BAD) {
        char msg[128];
        snprintf(msg, sizeof msg, "malformed chunked body: %s", why);
        conn_refuse(c, 400, "bad_request", msg);
        return -1;
    }
    *body_len = c->chunk.decoded;
    return rc == LB_CHUNKED_DONE;
}

/* 1 when the body of the request at the front of the input buffer is all
 * in (*body_len set), 0 not yet, -1 refused. */
static int body_ready(lb_http_conn *c, const lb_http_head *head, size_t head_len, size_t *body_len)
{
    if (head->chunked)
        return chunked_body_ready(c, head_len, body_len);
    *body_len = head->content_length > 0 ? (size_t)head->content_length : 0;
    if (*body_len > c->srv->limits.max_body) {
        refuse_too_large(c);
        return -1;
    }
    return buffer_pending(&c->in) - head_len >= *body_len;
}

/* A client that asked to hear that its head is acceptable before it sends
 * the body waits for this (curl for a second, others until a timeout). */
static void send_continue_once(lb_http_conn *c, const lb_http_head *head)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (head->expect_continue && !c->continue_sent) {
        c->continue_sent = true;
        conn_send(c, line, sizeof line - 1, NULL, 0);
    }
}

/* Takes one complete request off the input buffer if there is one.
 * Returns 1 if a request was dispatched, 0 to wait for more bytes, -1 if the
 * connection was refused (and may be gone). */
static int conn_take_request(lb_http_conn *c)
{
    size_t avail = buffer_pending(&c->in);
    if (avail == 0)
        return 0;
    size_t max_head = c->srv->limits.max_head;
    lb_http_head head;
    int status = 400;
    long head_len =
        lb_http_parse_head(c->in.data + c->in.off, avail < max_head ? avail : max_head, max_head, &head, &status);
    if (head_len == 0)
        return 0;
    if (head_len < 0) {
        const char *code, *message;
        head_refusal(status, &code, &message);
        conn_refuse(c, status, code, message);
        return -1;
    }
    size_t body_len;
    int ready = body_ready(c, &head, (size_t)head_len, &body_len);
    if (ready == 0)
        send_continue_once(c, &head);
    if (ready <= 0)
        return ready;
    c->chunk_started = c->continue_sent = false;
    size_t total = (size_t)head_len + body_len;
    lb_http_request *req = request_new(c, total + 1);
    if (!req) {
        conn_refuse(c, 503, "out_of_memory", "server is out of memory");
        return -1;
    }
    const char *p = c->in.data + c->in.off; /* the chunked decoder may have moved bytes, never the buffer */
    char *data = req->data;
    memcpy(data, p, total);
    data[total] = '\0';
    head_rebase(&head, p, data);
    buffer_consume(&c->in, total);
    req->head = head;
    req->head_len = (size_t)head_len;
    req->body_len = body_len;
    req->keep_alive = req->head.keep_alive && !c->srv->draining;
    req->head_only = method_is(&req->head, "HEAD");
    c->pending = req;
    dispatch(c, req);
    return 1;
}

/* Hands complete requests to handlers while none is pending. Once the
 * client has half-closed and none is left, the connection closes after the
 * last answer. */
static void conn_process(lb_http_conn *c)
{
    while (!c->pending && !c->close_after_write && !c->failed) {
        int taken = conn_take_request(c);
        if (taken < 0)
            return; /* refused, and maybe freed */
        if (taken == 0) {
            if (c->peer_closed) {
                c->close_after_write = true;
                conn_flush(c);
            }
            return;
        }
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    lb_http_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->failed)
        conn_free(c);
    else
        conn_process(c);
}

/* Reads and drops: the connection is lingering after its last answer. */
static void conn_discard_input(lb_http_conn *c)
{
    char sink[4096];
    ssize_t n = recv(c->fd, sink, sizeof sink, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    c->discarded += n > 0 ? (size_t)n : 0;
    if (n <= 0 || c->discarded > LB_LINGER_MAX_BYTES)
        conn_free(c);
}

/* The client closed its side. One that half-closed after its requests
 * still gets their answers, the one pending and those buffered behind it
 * (pipelined), in order; then the connection closes. With none pending,
 * nothing buffered can be a whole request (it would have been handed out):
 * only an answer still being sent keeps the connection. */
static void conn_peer_closed(lb_http_conn *c)
{
    event_del(c->readable);
    if (c->pending) {
        c->peer_closed = true;
        c->reading_paused = false;
    } else if (buffer_pending(&c->out) > 0) {
        c->close_after_write = true;
    } else {
        conn_free(c);
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    lb_http_conn *c = arg;
    (void)fd;
    if (what & EV_TIMEOUT) {
        if (!c->pending || c->lingering)
            conn_free(c); /* idle, or the lingering client never closed */
        return;           /* a slow commit is not the client's idleness */
    }
    if (c->lingering) {
        conn_discard_input(c);
        return;
    }
    /* room for one more full request while one is pending, then pause */
    size_t limit = c->srv->limits.max_head + c->srv->limits.max_body + 1;
    if (c->chunk_started)
        limit += LB_CHUNKED_SLACK; /* a size line or the trailer can follow a body at the limit */
    size_t room = LB_READ_CHUNK;
    if (buffer_pending(&c->in) + room > limit)
        room = limit > buffer_pending(&c->in) ? limit - buffer_pending(&c->in) : 0;
    if (room == 0 && !c->pending) {
        /* the answer came in this loop turn, before this event and before its
         * resume: the full buffer holds the next request (or one the limits
         * refuse), so serve it now instead of reading */
        conn_process(c);
        return;
    }
    if (room == 0) { /* one more full request is buffered: wait for the answer */
        c->reading_paused = true;
        event_del(c->readable);
        return;
    }
    if (buffer_reserve(&c->in, room)) {
        conn_free(c); /* out of memory */
        return;
    }
    /* room, not the buffer's capacity: the capacity grows by doubling, and
     * the bound is what one pending request may have buffered behind it */
    ssize_t n = recv(c->fd, c->in.data + c->in.len, room, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        conn_free(c);
        return;
    }
    if (n == 0) {
        conn_peer_closed(c);
        return;
    }
    c->in.len += (size_t)n;
    conn_process(c);
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
    if (c) {
        c->readable = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_readable, c);
        c->writable = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
        c->resume = event_new(srv->base, -1, 0, on_resume, c);
    }
    if (!c || !c->readable || !c->writable || !c->resume) {
        if (c) {
            struct event *all[] = {c->readable, c->writable, c->resume};
            for (size_t i = 0; i < 3; i++)
                if (all[i])
                    event_free(all[i]);
        }
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    if (srv->accept_failing) {
        srv->accept_failing = false;
        lb_log(LB_LOG_INFO, "accepting connections again", NULL);
    }
    if (++srv->metrics->connections_open >= srv->limits.max_connections) {
        accept_pause(srv);
        log_connection_limit(srv);
    }
    conn_add_readable(c, srv->limits.idle_timeout_s);
}

/* EMFILE and friends: keep serving the connections we have, and try again
 * once one closes or after a short wait (the descriptors may belong to the
 * store or to provider calls). One log line until an accept succeeds. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    lb_http_server *srv = arg;
    int e = EVUTIL_SOCKET_ERROR();
    accept_pause(srv);
    struct timeval wait = {0, 250 * 1000};
    evtimer_add(srv->accept_retry, &wait);
    if (srv->accept_failing)
        return;
    srv->accept_failing = true;
    lb_log(LB_LOG_WARN, "accept failed; trying again every 250 ms and whenever a connection closes", "error",
           evutil_socket_error_to_string(e), NULL);
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
    if (srv->limits.max_connections == 0)
        srv->limits.max_connections = LB_HTTP_DEFAULT_MAX_CONNECTIONS;
    srv->accept_retry = evtimer_new(base, on_accept_retry, srv);
    srv->routes = copy;
    srv->n_routes = n_routes;
    srv->metrics = metrics;
    srv->listener = evconnlistener_new_bind(base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                            1024, (struct sockaddr *)&ss, sslen);
    if (!srv->listener || !srv->accept_retry) {
        snprintf(errbuf, errlen, "cannot listen on %s: %s", addr, srv->listener ? "out of memory" : strerror(errno));
        if (srv->listener)
            evconnlistener_free(srv->listener);
        if (srv->accept_retry)
            event_free(srv->accept_retry);
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
        bool busy = c->pending || buffer_pending(&c->in) > 0;
        if (!busy && buffer_pending(&c->out) > 0)
            c->close_after_write = true;
        else if (!busy)
            conn_free(c); /* may call drained: nothing after this touches c */
        c = next;
    }
    server_check_drained(srv);
}

static void server_release(lb_http_server *srv)
{
    while (srv->pool) {
        lb_http_request *next = srv->pool->next_free;
        free(srv->pool->data);
        free(srv->pool);
        srv->pool = next;
    }
    free(srv->routes);
    if (srv->accept_retry)
        event_free(srv->accept_retry);
    free(srv);
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
    srv->listener = NULL;
    /* the loop may be freed before the last live request: nothing of the
     * server may stay armed in it */
    event_free(srv->accept_retry);
    srv->accept_retry = NULL;
    /* a request whose client went away may still be in a handler's hands;
     * the server's memory goes with the last of them */
    srv->freed = true;
    if (srv->live_requests == 0)
        server_release(srv);
}
