/* test_http_server.c: the connection's read path when answers come later
 * (http_server.c). A handler that answers after a commit leaves the
 * connection with a full input buffer; the answer and the socket's next
 * readable event can come in either order in one loop turn. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "http_server.h"
#include "metrics.h"
#include "tap.h"

/* The server reads at most max_head + max_body + 1 bytes ahead of the
 * request it has handed out. */
#define MAX_HEAD 1024
#define MAX_BODY 1024
#define READ_AHEAD (MAX_HEAD + MAX_BODY + 1)

typedef struct world {
    struct event_base *base;
    lb_metrics metrics;
    lb_http_server *srv;
    lb_http_request *held; /* the one request waiting for its answer */
    size_t handled;
    int client;            /* blocking, connected to srv */
    int trigger[2];        /* a byte on [1] answers the held request */
    struct event *on_trigger;
    const char *want_body; /* when set, every request handed out carries it */
} world;

/* Holds each request, as the ingest does until its commit. */
static void hold(lb_http_request *req, void *ctx)
{
    world *w = ctx;
    ck_assert_msg(w->held == NULL, "a second request was handed out while one waits");
    if (w->want_body) {
        size_t len;
        const char *body = lb_http_request_body(req, &len);
        ck_assert_uint_eq(len, strlen(w->want_body));
        ck_assert_msg(memcmp(body, w->want_body, len) == 0, "body %.*s", (int)len, body);
    }
    w->held = req;
    w->handled++;
}

static void answer_held(world *w)
{
    ck_assert_ptr_nonnull(w->held);
    lb_http_request *req = w->held;
    w->held = NULL;
    lb_http_reply(req, 200, "application/json", "{}", 2, NULL);
}

static void on_trigger(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    char byte;
    ck_assert_int_eq(read(fd, &byte, 1), 1);
    answer_held(arg);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* Runs the loop until it has nothing left to do now. */
static void settle(world *w)
{
    for (int i = 0; i < 50; i++)
        event_base_loop(w->base, EVLOOP_NONBLOCK);
}

static void world_open(world *w)
{
    memset(w, 0, sizeof *w);
    w->base = event_base_new();
    ck_assert_ptr_nonnull(w->base);
    lb_metrics_init(&w->metrics);
    int port = free_port();
    char addr[32], err[256] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    lb_http_limits limits = {.max_head = MAX_HEAD, .max_body = MAX_BODY, .idle_timeout_s = 60};
    lb_http_route route = {.path = "/hold", .method = "POST", .handler = hold, .ctx = w};
    w->srv = lb_http_server_new(w->base, addr, &limits, &route, 1, &w->metrics, err, sizeof err);
    ck_assert_msg(w->srv != NULL, "%s", err);
    ck_assert_int_eq(pipe(w->trigger), 0);
    w->on_trigger = event_new(w->base, w->trigger[0], EV_READ | EV_PERSIST, on_trigger, w);
    event_add(w->on_trigger, NULL);
    w->client = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(w->client, (struct sockaddr *)&a, sizeof a), 0);
    settle(w); /* accepted */
}

static void world_close(world *w)
{
    close(w->client);
    settle(w);
    if (w->held)
        answer_held(w);
    lb_http_server_free(w->srv);
    event_free(w->on_trigger);
    close(w->trigger[0]);
    close(w->trigger[1]);
    event_base_free(w->base);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        ck_assert_msg(k > 0, "send: %s", strerror(errno));
        p += k;
        n -= (size_t)k;
    }
}

/* What the client has been sent so far, without waiting, NUL-terminated;
 * *eof tells whether the server then closed. A reset fails the test. */
static size_t client_read(world *w, char *buf, size_t cap, bool *eof)
{
    size_t got = 0;
    *eof = false;
    for (;;) {
        ssize_t n = recv(w->client, buf + got, cap - 1 - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        ck_assert_msg(n == 0 || errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s", strerror(errno));
        *eof = n == 0;
        buf[got] = '\0';
        return got;
    }
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The pipelined stream: `n` copies of one small request. */
static char *pipeline(size_t n, size_t *one, size_t *len)
{
    static const char body[] = "{\"pad\":\"................................\"}";
    char req[256];
    int k = snprintf(req, sizeof req,
                     "POST /hold HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     sizeof body - 1, body);
    ck_assert(k > 0 && (size_t)k < sizeof req);
    *one = (size_t)k;
    *len = n * *one;
    char *all = malloc(*len);
    ck_assert_ptr_nonnull(all);
    for (size_t i = 0; i < n; i++)
        memcpy(all + i * *one, req, *one);
    return all;
}

/* One round as the ingest runs: the loop's turn, then the held request (if
 * any) answered on a turn of its own, through the trigger as the writer's
 * pipe wakes the ingest; returns what the client got meanwhile. */
static size_t serve_round(world *w, char *buf, size_t cap, bool *eof)
{
    settle(w);
    if (w->held) {
        ck_assert_int_eq(write(w->trigger[1], "x", 1), 1);
        settle(w);
    }
    return client_read(w, buf, cap, eof);
}

/* Answers each request the server hands out, on a loop turn of its own
 * (through the trigger, as the writer's pipe wakes the ingest), until the
 * client has `n` answers; returns how many it got. */
static size_t answer_the_rest(world *w, size_t answers, size_t n)
{
    char buf[65536];
    for (int turn = 0; turn < 10000 && answers < n; turn++) {
        bool eof;
        serve_round(w, buf, sizeof buf, &eof);
        ck_assert_msg(!eof, "the server dropped the connection after %zu answers", answers);
        answers += count(buf, "HTTP/1.1 200 OK");
    }
    return answers;
}

/* The input buffer is exactly full when the answer comes, and in the same
 * loop turn the socket is readable again, after the answer's own event: the
 * buffered requests are served, not taken for bytes no request can use. */
START_TEST(an_answer_just_before_a_readable_event_on_a_full_buffer_keeps_the_connection)
{
    world w;
    world_open(&w);
    size_t one, len, n = 60;
    char *all = pipeline(n, &one, &len);
    ck_assert_uint_gt(len, one + READ_AHEAD + 1);
    /* the first request is handed out; the server then reads ahead to its
     * limit, and the socket holds nothing more */
    size_t sent = one + READ_AHEAD;
    send_all(w.client, all, sent);
    settle(&w);
    ck_assert_ptr_nonnull(w.held);
    ck_assert_uint_eq(w.handled, 1);
    /* the answer's event becomes ready first, then the socket's */
    ck_assert_int_eq(write(w.trigger[1], "x", 1), 1);
    send_all(w.client, all + sent, 1);
    sent++;
    event_base_loop(w.base, EVLOOP_ONCE);
    char buf[65536];
    bool eof;
    client_read(&w, buf, sizeof buf, &eof);
    ck_assert_msg(!eof, "the server dropped the connection");
    size_t answers = count(buf, "HTTP/1.1 200 OK");
    ck_assert_uint_eq(answers, 1);
    /* the rest of the pipeline, every request answered in turn */
    send_all(w.client, all + sent, len - sent);
    ck_assert_uint_eq(answer_the_rest(&w, answers, n), n);
    ck_assert_uint_eq(w.handled, n);
    free(all);
    world_close(&w);
}
END_TEST

/* The same stream with each answer given on a turn of its own: reading
 * pauses at the limit and resumes after each answer. */
START_TEST(a_long_pipeline_is_served_in_order_with_reading_paused_and_resumed)
{
    world w;
    world_open(&w);
    size_t one, len, n = 200;
    char *all = pipeline(n, &one, &len);
    ck_assert_uint_gt(len, 4 * READ_AHEAD);
    send_all(w.client, all, len); /* the socket buffers take it all */
    ck_assert_uint_eq(answer_the_rest(&w, 0, n), n);
    ck_assert_uint_eq(w.handled, n);
    free(all);
    world_close(&w);
}
END_TEST

/* A client that pipelines its requests and then half-closes (it has
 * nothing more to send) gets every answer, in order, and then the
 * connection closes: the requests behind the pending one were sent before
 * the FIN, so they are the client's as much as the first. With 3 requests
 * the FIN is read while the first waits; with 40 (more than the server reads
 * ahead) only once reading has paused and resumed. */
START_TEST(a_pipeline_then_a_half_close_gets_every_answer_then_the_close)
{
    world w;
    world_open(&w);
    size_t one, len, n = _i == 0 ? 3 : 40;
    char *all = pipeline(n, &one, &len);
    send_all(w.client, all, len);
    ck_assert_int_eq(shutdown(w.client, SHUT_WR), 0);
    static char got[65536];
    size_t have = 0;
    bool eof = false;
    for (int turn = 0; turn < 10000 && !eof; turn++)
        have += serve_round(&w, got + have, sizeof got - have, &eof);
    ck_assert_msg(eof, "the server kept the connection open after the last answer");
    ck_assert_uint_eq(count(got, "HTTP/1.1 200 OK"), n);
    ck_assert_uint_eq(w.handled, n);
    settle(&w);
    ck_assert_uint_eq(w.metrics.connections_open, 0);
    free(all);
    world_close(&w);
}
END_TEST

/* `body` as 1-byte chunks (6 bytes of framing per byte) behind a head
 * padded to `head_len` bytes, then `trailer` bytes of trailer lines. */
static size_t chunked_request(char *out, size_t cap, size_t head_len, const char *body, size_t trailer)
{
    int k = snprintf(out, cap, "POST /hold HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Pad: ");
    size_t n = (size_t)k;
    while (n < head_len - 4)
        out[n++] = 'h';
    memcpy(out + n, "\r\n\r\n", 4);
    n += 4;
    for (const char *b = body; *b; b++)
        n += (size_t)snprintf(out + n, cap - n, "1\r\n%c\r\n", *b);
    n += (size_t)snprintf(out + n, cap - n, "0\r\n");
    for (size_t t = 0; t < trailer; t += 100) /* lines of 100 bytes */
        n += (size_t)snprintf(out + n, cap - n, "X-T: %093d\r\n", 0);
    n += (size_t)snprintf(out + n, cap - n, "\r\n");
    ck_assert_uint_lt(n, cap);
    return n;
}

/* The largest head and the largest body, chunked, with a trailer that
 * arrives in two parts: the server has read past its read-ahead for
 * requests (head and body limits) when the first part is in, and must still
 * read the rest, or the connection would wait for bytes it never reads. */
START_TEST(a_chunked_body_at_both_limits_with_a_trailer_is_read_whole)
{
    world w;
    world_open(&w);
    static char body[MAX_BODY + 1], req[16 * MAX_BODY];
    memset(body, 'b', MAX_BODY);
    w.want_body = body;
    size_t n = chunked_request(req, sizeof req, MAX_HEAD, body, 4000);
    size_t first = (size_t)(strstr(req, "X-T: ") - req) + 50; /* inside the first trailer line */
    send_all(w.client, req, first);
    settle(&w);
    ck_assert_ptr_null(w.held);
    send_all(w.client, req + first, n - first);
    ck_assert_uint_eq(answer_the_rest(&w, 0, 1), 1);
    world_close(&w);
}
END_TEST

/* Chunked requests pipelined behind one that waits: their framing fills
 * the read-ahead while reading is paused, and is decoded once it resumes. */
START_TEST(pipelined_chunked_requests_are_decoded_after_reading_resumes)
{
    world w;
    world_open(&w);
    static char req[2048], all[100 * 2048];
    const char *body = "{\"pad\":\"................................\"}";
    w.want_body = body;
    size_t one = chunked_request(req, sizeof req, 64, body, 0), n = 100;
    for (size_t i = 0; i < n; i++)
        memcpy(all + i * one, req, one);
    ck_assert_uint_gt(n * one, 4 * READ_AHEAD);
    send_all(w.client, all, n * one);
    ck_assert_uint_eq(answer_the_rest(&w, 0, n), n);
    ck_assert_uint_eq(w.handled, n);
    world_close(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_server");
    TCase *tc = tcase_create("read_path");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, an_answer_just_before_a_readable_event_on_a_full_buffer_keeps_the_connection);
    tcase_add_test(tc, a_long_pipeline_is_served_in_order_with_reading_paused_and_resumed);
    tcase_add_loop_test(tc, a_pipeline_then_a_half_close_gets_every_answer_then_the_close, 0, 2);
    tcase_add_test(tc, a_chunked_body_at_both_limits_with_a_trailer_is_read_whole);
    tcase_add_test(tc, pipelined_chunked_requests_are_decoded_after_reading_resumes);
    suite_add_tcase(s, tc);
    return lb_run_suite_tap(s);
}
