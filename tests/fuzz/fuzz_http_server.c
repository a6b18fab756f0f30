/* fuzz_http_server.c: libFuzzer (or AFL++) target for the connection code
 * (http_server.c) as a client drives it: one real loopback connection per
 * input, the input's bytes sent in pieces with the loop run in between, and
 * the requests the server hands out answered at once, on a later turn, or
 * only once the client has half-closed, as the ingest answers after its
 * commit.
 *
 * Input: byte 0 chooses the sizes of the pieces and when requests are
 * answered, byte 1 how the client ends (close, or reset); the rest is the
 * byte stream.
 *
 * Checks, besides "no crash, no leak, no undefined behaviour":
 *   - the server never hands out a second request on a connection while
 *     one waits for its answer;
 *   - what the client reads is a sequence of whole HTTP/1.1 responses, each
 *     with a Content-Length, a Date and a JSON object for body (none for
 *     HEAD), and with a status the server documents, or interim "100
 *     Continue" lines;
 *     after a refusal that closes (400, 413, 417, 431, 501, 505) nothing
 *     more;
 *   - every request handed out is answered with its own 200, in order; the
 *     200 to a HEAD has the head of the answer a GET gets and no body;
 *   - after the client half-closes, the server answers what it has and
 *     closes; once the client is gone the server holds no connection.
 * Built and run by tests/fuzz/run; its corpus is replayed by make check. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "fuzz_must.h"
#include "http_server.h"
#include "metrics.h"

#define SRV_MAX_HEAD 1024
#define SRV_MAX_BODY 1024
#define SRV_TRACKED 8192 /* requests per input whose method is remembered */

typedef struct srv_world {
    struct event_base *base;
    lb_metrics metrics;
    lb_http_server *srv;
    int port;
    lb_http_request *held; /* the request waiting for its answer */
    unsigned answer_at_once;
    size_t handed_out, answered;
    bool head_only[SRV_TRACKED]; /* by the order requests were handed out */
} srv_world;

static srv_world *srv_w;

static void srv_must(int ok, const char *what) { fuzz_must(ok, "fuzz_http_server", what); }

/* The body of the n-th 200: the client checks the answers come in order. */
static void srv_answer(srv_world *w, lb_http_request *req)
{
    char body[48];
    int n = snprintf(body, sizeof body, "{\"n\":%zu}", w->answered++);
    lb_http_reply(req, 200, "application/json", body, (size_t)n, NULL);
}

static void srv_handler(lb_http_request *req, void *ctx)
{
    srv_world *w = ctx;
    srv_must(w->held == NULL, "a second request was handed out while one waits");
    const lb_http_head *h = lb_http_request_head(req);
    if (w->handed_out < SRV_TRACKED)
        w->head_only[w->handed_out] = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
    w->handed_out++;
    if (w->answer_at_once)
        srv_answer(w, req);
    else
        w->held = req;
}

static void srv_answer_held(srv_world *w)
{
    lb_http_request *req = w->held;
    if (!req)
        return;
    w->held = NULL;
    srv_answer(w, req);
}

static void srv_settle(srv_world *w)
{
    for (int i = 0; i < 6; i++)
        event_base_loop(w->base, EVLOOP_NONBLOCK);
}

static int srv_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    srv_must(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0, "bind");
    srv_must(getsockname(s, (struct sockaddr *)&a, &len) == 0, "getsockname");
    close(s);
    return ntohs(a.sin_port);
}

/* One server for the whole run: a route that holds, one that answers 404s
 * by being absent, and one method per path so 405 shows too. */
static srv_world *srv_world_get(void)
{
    if (srv_w)
        return srv_w;
    static srv_world w;
    w.base = event_base_new();
    srv_must(w.base != NULL, "event_base_new");
    lb_metrics_init(&w.metrics);
    w.port = srv_free_port();
    char addr[32], err[256] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", w.port);
    lb_http_limits limits = {.max_head = SRV_MAX_HEAD, .max_body = SRV_MAX_BODY, .idle_timeout_s = 60};
    lb_http_route routes[] = {
        {.path = "/webhooks/hotmart", .method = "POST", .handler = srv_handler, .ctx = &w},
        {.path = "/healthz", .method = "GET", .handler = srv_handler, .ctx = &w},
    };
    w.srv = lb_http_server_new(w.base, addr, &limits, routes, 2, &w.metrics, err, sizeof err);
    srv_must(w.srv != NULL, err);
    srv_w = &w;
    return srv_w;
}

static int srv_connect(srv_world *w)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    srv_must(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect");
    srv_settle(w); /* accepted */
    return fd;
}

typedef struct srv_reply {
    char *data;
    size_t len, cap;
    int eof; /* the server closed or reset */
} srv_reply;

/* Reads what the client has, without waiting. */
static void srv_read(int fd, srv_reply *r)
{
    while (!r->eof) {
        if (r->cap - r->len < 4096) {
            r->cap = r->cap ? r->cap * 2 : 16384;
            r->data = realloc(r->data, r->cap);
            srv_must(r->data != NULL, "out of memory");
        }
        ssize_t n = recv(fd, r->data + r->len, r->cap - r->len - 1, MSG_DONTWAIT);
        if (n > 0)
            r->len += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            r->eof = 1;
        else
            return;
    }
}

static int srv_closing_status(int status)
{
    return status == 400 || status == 413 || status == 417 || status == 431 || status == 501 || status == 505;
}

/* The answer to a HEAD ends with its head: what follows is the next
 * response or nothing. Bodies are JSON objects, so they never start so. */
static bool srv_bodiless(const char *body, size_t left)
{
    return left == 0 || (left >= 9 && memcmp(body, "HTTP/1.1 ", 9) == 0);
}

static void srv_check_json_body(const char *body, size_t body_len, size_t oks, int status)
{
    json_tokener *tok = json_tokener_new();
    json_object *doc = json_tokener_parse_ex(tok, body, (int)body_len);
    srv_must(doc != NULL && json_object_is_type(doc, json_type_object) && json_tokener_get_parse_end(tok) == body_len,
             "a response body that is not one JSON object");
    if (status == 200) {
        json_object *n;
        srv_must(json_object_object_get_ex(doc, "n", &n) && json_object_get_int64(n) == (int64_t)oks,
                 "answers out of order");
    }
    json_object_put(doc);
    json_tokener_free(tok);
}

/* Walks the responses; returns how many 200s there were. */
static size_t srv_check_replies(const srv_world *w, const srv_reply *r)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    size_t pos = 0, oks = 0;
    int closed = 0;
    while (pos < r->len) {
        srv_must(!closed, "bytes after a response that closes the connection");
        const char *p = r->data + pos;
        size_t left = r->len - pos;
        if (left >= sizeof cont - 1 && memcmp(p, cont, sizeof cont - 1) == 0) {
            pos += sizeof cont - 1;
            continue;
        }
        const char *end = memmem(p, left, "\r\n\r\n", 4);
        srv_must(end != NULL, "a response head cut short");
        srv_must(left > 13 && memcmp(p, "HTTP/1.1 ", 9) == 0, "not an HTTP/1.1 status line");
        int status = atoi(p + 9);
        srv_must(status == 200 || status == 404 || status == 405 || srv_closing_status(status),
                 "an undocumented status");
        const char *cl = memmem(p, (size_t)(end - p), "\r\nContent-Length: ", 18);
        srv_must(cl != NULL, "a response without Content-Length");
        const char *date = memmem(p, (size_t)(end - p), "\r\nDate: ", 8);
        srv_must(date != NULL && end - date >= 8 + 29 && memcmp(date + 8 + 25, " GMT", 4) == 0,
                 "a response without a Date of IMF-fixdate's length");
        size_t body_len = strtoul(cl + 18, NULL, 10);
        const char *body = end + 4;
        size_t after_head = left - (size_t)(body - p);
        /* a 200 says whether its request was a HEAD; a refusal does not,
         * but a body, if any, starts with '{' */
        bool head_only = status == 200 ? oks < SRV_TRACKED && w->head_only[oks] : srv_bodiless(body, after_head);
        if (head_only) {
            srv_must(srv_bodiless(body, after_head), "a body in the answer to a HEAD");
            if (status == 200) {
                char would_be[48];
                srv_must((size_t)snprintf(would_be, sizeof would_be, "{\"n\":%zu}", oks) == body_len,
                         "the answer to a HEAD says another length than its GET's body");
            }
            body_len = 0;
        } else {
            srv_must(body_len <= after_head, "a response body cut short");
            srv_check_json_body(body, body_len, oks, status);
        }
        if (status == 200)
            oks++;
        closed = srv_closing_status(status);
        pos = (size_t)(body - r->data) + body_len;
    }
    return oks;
}

static void srv_send(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k <= 0)
            return; /* the server closed, or stopped reading (backpressure): the rest stays unsent */
        p += k;
        n -= (size_t)k;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 65536)
        return 0;
    srv_world *w = srv_world_get();
    unsigned plan = data[0], ending = data[1];
    data += 2;
    size -= 2;
    w->answer_at_once = plan & 1;
    w->handed_out = w->answered = 0;
    size_t piece = 1 + ((plan >> 1) & 0x3f) * 17; /* 1 to 1072 bytes */
    int fd = srv_connect(w);
    srv_reply r = {0};
    for (size_t off = 0; off < size; off += piece) {
        srv_send(fd, data + off, size - off < piece ? size - off : piece);
        srv_settle(w);
        if (plan & 0x80) /* answer on a later turn, as after a commit */
            srv_answer_held(w);
        srv_settle(w);
        srv_read(fd, &r);
    }
    /* The client half-closes: the request pending and those buffered behind
     * it still get their answers, one per answer as before; then the
     * server closes. */
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 4 || (w->held && i < 10000); i++) {
        srv_settle(w);
        srv_answer_held(w);
        srv_settle(w);
        srv_read(fd, &r);
    }
    srv_must(w->held == NULL, "a request handed out after the client half-closed and all was answered");
    srv_must(r.eof, "the connection stayed open after the client half-closed and all was answered");
    size_t oks = srv_check_replies(w, &r);
    srv_must(oks == w->handed_out, "a request answered but its answer never arrived");
    if (ending & 1) { /* reset instead of a clean close */
        struct linger hard = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    }
    close(fd);
    srv_settle(w);
    srv_settle(w);
    srv_must(w->metrics.connections_open == 0, "the server kept a connection the client closed");
    free(r.data);
    return 0;
}
