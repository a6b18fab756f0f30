/* test_http_parse.c: the request-head parser, on good and hostile input. */
#include <string.h>

#include "http_parse.h"
#include "tap.h"

#define MAX_HEAD 1024

static long parse(const char *s, lb_http_head *h, int *status)
{
    return lb_http_parse_head(s, strlen(s), MAX_HEAD, h, status);
}

START_TEST(simple_post)
{
    const char *req = "POST /webhooks/hotmart?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                      "Content-Length: 12\r\nX-HOTMART-HOTTOK:  tok \r\n\r\n{\"a\":1}";
    lb_http_head h;
    int status = 0;
    long n = parse(req, &h, &status);
    ck_assert_int_eq(n, (long)(strstr(req, "\r\n\r\n") - req) + 4);
    ck_assert_int_eq((int)h.method_len, 4);
    ck_assert(memcmp(h.method, "POST", 4) == 0);
    ck_assert_int_eq((int)h.path_len, (int)strlen("/webhooks/hotmart"));
    ck_assert_int_eq((int)h.target_len, (int)strlen("/webhooks/hotmart?x=1"));
    ck_assert_int_eq(h.content_length, 12);
    ck_assert(h.keep_alive);
    size_t len;
    const char *v = lb_http_head_get(&h, "x-hotmart-hottok", &len);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq((int)len, 3);
    ck_assert(memcmp(v, "tok", 3) == 0);
    ck_assert_ptr_null(lb_http_head_get(&h, "Authorization", NULL));
}
END_TEST

START_TEST(incomplete_head_waits)
{
    lb_http_head h;
    int status = 0;
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nHost: a\r\n", &h, &status), 0);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nHost: a\r\n\r", &h, &status), 0);
    ck_assert_int_eq(parse("", &h, &status), 0);
}
END_TEST

START_TEST(http10_closes_by_default)
{
    lb_http_head h;
    int status = 0;
    ck_assert_int_gt(parse("GET /healthz HTTP/1.0\r\n\r\n", &h, &status), 0);
    ck_assert(!h.keep_alive);
    ck_assert_int_gt(parse("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h, &status), 0);
    ck_assert(h.keep_alive);
    ck_assert_int_gt(parse("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", &h, &status), 0);
    ck_assert(!h.keep_alive);
}
END_TEST

START_TEST(content_length_rules)
{
    lb_http_head h;
    int status = 0;
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &h, &status), 0);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(status, 400);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &status),
                     -1);
    ck_assert_int_eq(status, 400);
}
END_TEST

START_TEST(chunked_and_other_codings)
{
    lb_http_head h;
    int status = 0;
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &status), 0);
    ck_assert(h.chunked);
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n", &h, &status), 0);
    ck_assert(h.chunked);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(status, 501);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(status, 501);
    /* chunked twice is no framing we can read; HTTP/1.0 has no chunked */
    ck_assert_int_eq(
        parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &status),
        -1);
    ck_assert_int_eq(status, 400);
    ck_assert_int_eq(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(status, 400);
}
END_TEST

START_TEST(expectations)
{
    lb_http_head h;
    int status = 0;
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", &h, &status), 0);
    ck_assert(!h.expect_continue);
    ck_assert_int_gt(parse("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", &h, &status), 0);
    ck_assert(h.expect_continue);
    /* RFC 9110 section 10.1.1: an HTTP/1.0 client's is ignored */
    ck_assert_int_gt(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &h, &status), 0);
    ck_assert(!h.expect_continue);
    ck_assert_int_eq(parse("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(status, 417);
}
END_TEST

START_TEST(malformed_request_lines)
{
    static const char *const bad[] = {
        "POST\r\n\r\n",
        "POST /\r\n\r\n",
        " / HTTP/1.1\r\n\r\n",
        "POST nopath HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1 extra\r\n\r\n",
        "PO(ST / HTTP/1.1\r\n\r\n",
        "POST /a\x01 HTTP/1.1\r\n\r\n",
        "POST / FTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lb_http_head h;
        int status = 0;
        ck_assert_msg(parse(bad[i], &h, &status) == -1, "accepted: %s", bad[i]);
        ck_assert_int_eq(status, 400);
    }
}
END_TEST

START_TEST(unsupported_versions)
{
    lb_http_head h;
    int status = 0;
    ck_assert_int_eq(parse("GET / HTTP/2.0\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(status, 505);
    ck_assert_int_eq(parse("GET / HTTP/1.9\r\n\r\n", &h, &status), -1);
    ck_assert_int_eq(status, 505);
}
END_TEST

START_TEST(malformed_headers)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET / HTTP/1.1\nA: b\n\n",
        "GET / HTTP/1.1\r\nA: b\nB: c\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lb_http_head h;
        int status = 0;
        ck_assert_msg(parse(bad[i], &h, &status) == -1, "accepted case %zu", i);
        ck_assert_int_eq(status, 400);
    }
}
END_TEST

START_TEST(head_too_large)
{
    char big[MAX_HEAD + 64];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    lb_http_head h;
    int status = 0;
    ck_assert_int_eq(lb_http_parse_head(big, sizeof big, MAX_HEAD, &h, &status), -1);
    ck_assert_int_eq(status, 431);
}
END_TEST

START_TEST(too_many_headers)
{
    char req[4096] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < LB_HTTP_MAX_HEADERS + 1; i++)
        strcat(req, "A: b\r\n");
    strcat(req, "\r\n");
    lb_http_head h;
    int status = 0;
    ck_assert_int_eq(lb_http_parse_head(req, strlen(req), sizeof req, &h, &status), -1);
    ck_assert_int_eq(status, 431);
}
END_TEST

START_TEST(leading_empty_line_ignored)
{
    lb_http_head h;
    int status = 0;
    ck_assert_int_gt(parse("\r\nGET /healthz HTTP/1.1\r\n\r\n", &h, &status), 0);
    ck_assert_int_eq((int)h.path_len, 8);
}
END_TEST

START_TEST(every_prefix_of_a_valid_head_waits)
{
    const char *req = "POST /v1/events HTTP/1.1\r\nAuthorization: Bearer x\r\nContent-Length: 2\r\n\r\n";
    size_t full = strlen(req);
    for (size_t n = 0; n < full; n++) {
        lb_http_head h;
        int status = 0;
        ck_assert_msg(lb_http_parse_head(req, n, MAX_HEAD, &h, &status) == 0, "prefix %zu", n);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("http_parse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, simple_post);
    tcase_add_test(tc, incomplete_head_waits);
    tcase_add_test(tc, http10_closes_by_default);
    tcase_add_test(tc, content_length_rules);
    tcase_add_test(tc, chunked_and_other_codings);
    tcase_add_test(tc, expectations);
    tcase_add_test(tc, malformed_request_lines);
    tcase_add_test(tc, unsupported_versions);
    tcase_add_test(tc, malformed_headers);
    tcase_add_test(tc, head_too_large);
    tcase_add_test(tc, too_many_headers);
    tcase_add_test(tc, leading_empty_line_ignored);
    tcase_add_test(tc, every_prefix_of_a_valid_head_waits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lb_run_suite_tap(make_suite()); }
