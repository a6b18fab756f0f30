/* test_http_client.c: what the core's HTTP client puts on the wire for each
 * method the plugin ABI names, against a loopback evhttp server. */
#include "http_client.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"

typedef struct seen {
    char method[16];
    long content_length; /* -1: no header */
    size_t body_len;
} seen;

typedef struct tctx {
    struct event_base *base;
    struct evhttp *http;
    lb_http_client *client;
    char url[64];
    seen seen;
    long status;
    int transport_error;
    bool done;
} tctx;

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_HEAD: return "HEAD";
    default: return "OTHER";
    }
}

/* Records the request and answers a 5-byte body (a HEAD gets its length). */
static void on_request(struct evhttp_request *req, void *arg)
{
    tctx *t = arg;
    snprintf(t->seen.method, sizeof t->seen.method, "%s", method_name(evhttp_request_get_command(req)));
    const char *cl = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Length");
    t->seen.content_length = cl ? atol(cl) : -1;
    t->seen.body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, "hello", 5);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void setup(tctx *t)
{
    memset(t, 0, sizeof *t);
    t->base = event_base_new();
    t->http = evhttp_new(t->base);
    evhttp_set_allowed_methods(t->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(t->http, on_request, t);
    struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(t->http, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(sock);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sin, &len), 0);
    snprintf(t->url, sizeof t->url, "http://127.0.0.1:%d/x", ntohs(sin.sin_port));
    t->client = lb_http_client_new(t->base, NULL);
    ck_assert_ptr_nonnull(t->client);
}

static void teardown(tctx *t)
{
    lb_http_client_free(t->client);
    evhttp_free(t->http);
    event_base_free(t->base);
}

static void on_done(const lb_http_resp *resp, void *ud)
{
    tctx *t = ud;
    t->status = resp->status;
    t->transport_error = resp->transport_error;
    t->done = true;
    event_base_loopbreak(t->base);
}

/* Sends one request and runs the loop until its answer (or the 3 s timeout). */
static void exchange(tctx *t, const char *method, const char *body)
{
    memset(&t->seen, 0, sizeof t->seen);
    t->done = false;
    lb_http_req req = {.method = method, .url = t->url, .body = body, .body_len = body ? strlen(body) : 0,
                       .timeout_ms = 3000};
    ck_assert_ptr_nonnull(lb_http_client_request(t->client, &req, on_done, t));
    while (!t->done)
        event_base_dispatch(t->base);
}

START_TEST(each_method_goes_out_as_the_plugin_asked)
{
    static const struct {
        const char *method, *body;
        long content_length;
    } cases[] = {
        {"GET", NULL, -1},    {"POST", NULL, 0},      {"POST", "{\"a\":1}", 7}, {"PUT", NULL, 0},
        {"PATCH", NULL, 0},   {"PATCH", "{}", 2},     {"DELETE", NULL, -1},     {"DELETE", "{}", 2},
        {"HEAD", NULL, -1},   {"POST", NULL, 0}, /* a handle HEAD used, reused */
    };
    tctx t;
    setup(&t);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        exchange(&t, cases[i].method, cases[i].body);
        /* a HEAD whose answer says 5 bytes, which never come, must not wait for them */
        ck_assert_msg(t.transport_error == 0 && t.status == 200, "%s: status %ld, transport error %d",
                      cases[i].method, t.status, t.transport_error);
        ck_assert_str_eq(t.seen.method, cases[i].method);
        ck_assert_msg(t.seen.content_length == cases[i].content_length, "%s %s: Content-Length %ld", cases[i].method,
                      cases[i].body ? cases[i].body : "(none)", t.seen.content_length);
        ck_assert_uint_eq(t.seen.body_len, cases[i].body ? strlen(cases[i].body) : 0);
    }
    teardown(&t);
}
END_TEST

/* The method goes into the request line as given: anything the ABI does not
 * name is refused before a byte is sent. */
START_TEST(unknown_methods_and_head_with_a_body_are_refused)
{
    static const char *const bad[] = {"TRACE", "get", "CONNECT", "GET /y HTTP/1.1\r\nX-Injected: 1", ""};
    tctx t;
    setup(&t);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lb_http_req req = {.method = bad[i], .url = t.url};
        ck_assert_msg(lb_http_client_request(t.client, &req, on_done, &t) == NULL, "%s accepted", bad[i]);
        ck_assert(!lb_http_method_supported(bad[i]));
    }
    lb_http_req head = {.method = "HEAD", .url = t.url, .body = "{}", .body_len = 2};
    ck_assert_ptr_null(lb_http_client_request(t.client, &head, on_done, &t));
    ck_assert_uint_eq(lb_http_client_in_flight(t.client), 0);
    teardown(&t);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("http_client");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, each_method_goes_out_as_the_plugin_asked);
    tcase_add_test(tc, unknown_methods_and_head_with_a_body_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lb_run_suite_tap(make_suite()); }
