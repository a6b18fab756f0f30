/* test_http_chunked.c: the chunked-body decoder (http_chunked.c), fed as
 * the connection feeds it: at once, and a piece at a time with each piece
 * appended behind what the decoder left. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_chunked.h"
#include "tap.h"

typedef struct outcome {
    lb_chunked_result rc;
    char buf[4096];
    size_t len, decoded;
    const char *why;
} outcome;

/* Feeds `in` in pieces of `piece` bytes (0: all at once) until an answer
 * other than MORE; on DONE appends the bytes not fed, as the connection's
 * buffer holds them. */
static outcome decode(const char *in, size_t n, size_t piece, size_t max_body)
{
    outcome o = {.rc = LB_CHUNKED_MORE, .why = ""};
    ck_assert_uint_lt(n, sizeof o.buf);
    lb_chunked_decoder d;
    lb_chunked_init(&d);
    size_t fed = 0;
    do {
        size_t k = piece == 0 || n - fed < piece ? n - fed : piece;
        memcpy(o.buf + o.len, in + fed, k);
        o.len += k;
        fed += k;
        o.rc = lb_chunked_decode(&d, o.buf, &o.len, max_body, &o.why);
    } while (o.rc == LB_CHUNKED_MORE && fed < n);
    if (o.rc == LB_CHUNKED_DONE) {
        memcpy(o.buf + o.len, in + fed, n - fed);
        o.len += n - fed;
    }
    o.decoded = d.decoded;
    return o;
}

/* The same framing at once and in every piece size up to its length gives
 * `want` and, on DONE, `body` followed by `rest`. */
static void expect_all_ways(const char *in, size_t max_body, lb_chunked_result want, const char *body,
                            const char *rest)
{
    size_t n = strlen(in);
    for (size_t piece = 0; piece <= n; piece++) {
        outcome o = decode(in, n, piece, max_body);
        ck_assert_msg(o.rc == want, "piece %zu: result %d, want %d (%s)", piece, o.rc, want, o.why);
        if (want != LB_CHUNKED_DONE)
            continue;
        ck_assert_uint_eq(o.decoded, strlen(body));
        ck_assert_msg(memcmp(o.buf, body, o.decoded) == 0, "piece %zu: body %.*s", piece, (int)o.decoded, o.buf);
        ck_assert_uint_eq(o.len - o.decoded, strlen(rest));
        ck_assert_msg(memcmp(o.buf + o.decoded, rest, strlen(rest)) == 0, "piece %zu: rest", piece);
    }
}

START_TEST(chunks_are_joined_and_what_follows_is_kept)
{
    expect_all_ways("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 100, LB_CHUNKED_DONE, "hello world", "");
    expect_all_ways("3\r\nabc\r\n0\r\n\r\nPOST / HTTP/1.1\r\n", 100, LB_CHUNKED_DONE, "abc", "POST / HTTP/1.1\r\n");
    expect_all_ways("0\r\n\r\n", 100, LB_CHUNKED_DONE, "", "");
    /* upper and lower case hex, leading zeros */
    expect_all_ways("000A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", 100, LB_CHUNKED_DONE,
                    "0123456789abcdefghij", "");
}
END_TEST

START_TEST(extensions_and_trailers_are_read_and_dropped)
{
    expect_all_ways("4;name=value;flag\r\nabcd\r\n2 ; q=\"a b\"\r\nef\r\n0;last\r\n\r\n", 100, LB_CHUNKED_DONE,
                    "abcdef", "");
    expect_all_ways("2\r\nok\r\n0\r\nX-Checksum: 12\r\nX-Empty:\r\n\r\nnext", 100, LB_CHUNKED_DONE, "ok", "next");
}
END_TEST

START_TEST(the_limit_counts_the_body_not_the_framing)
{
    /* ten 1-byte chunks: 60 bytes of framing for a body of 10 */
    const char *tiny = "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n1\r\nd\r\n1\r\ne\r\n1\r\nf\r\n1\r\ng\r\n1\r\nh\r\n"
                       "1\r\ni\r\n1\r\nj\r\n0\r\n\r\n";
    expect_all_ways(tiny, 10, LB_CHUNKED_DONE, "abcdefghij", "");
    expect_all_ways(tiny, 9, LB_CHUNKED_TOO_LARGE, NULL, NULL);
    /* refused from the size line, before the data comes */
    outcome o = decode("64\r\n", 4, 0, 99);
    ck_assert_int_eq(o.rc, LB_CHUNKED_TOO_LARGE);
    /* a size past 64 bits saturates: too large, not wrapped to a small one */
    expect_all_ways("10000000000000000000005\r\nhello\r\n0\r\n\r\n", 1000, LB_CHUNKED_TOO_LARGE, NULL, NULL);
    expect_all_ways("FFFFFFFFFFFFFFFF\r\n", 1000, LB_CHUNKED_TOO_LARGE, NULL, NULL);
}
END_TEST

START_TEST(malformed_framing_is_refused_with_a_reason)
{
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"\r\nabc", "not a hex number"},
        {"x\r\n", "not a hex number"},
        {"0x5\r\nhello\r\n0\r\n\r\n", "not a hex number"},
        {"-5\r\n", "not a hex number"},
        {" 5\r\nhello\r\n0\r\n\r\n", "not a hex number"},
        {"5 x\r\nhello\r\n0\r\n\r\n", "not a hex number"},
        {"5;a\x01\r\nhello\r\n0\r\n\r\n", "not a hex number"},
        {"5\nhello\r\n0\r\n\r\n", "size line"},
        {"5\r\nhello\n0\r\n\r\n", "not followed by CRLF"},
        {"5\r\nhelloXY0\r\n\r\n", "not followed by CRLF"},
        {"0\r\nno colon\r\n\r\n", "malformed trailer"},
        {"0\r\n: no name\r\n\r\n", "malformed trailer"},
        {"0\r\nBad Name: x\r\n\r\n", "malformed trailer"},
        {"0\r\nX: a\rb\r\n\r\n", "malformed trailer"},
        {"0\r\nX: 1\r\n folded\r\n\r\n", "malformed trailer"}, /* the head's grammar: no obsolete folding */
        {"0\r\nX: 1\n\r\n", "trailer line"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i].in);
        for (size_t piece = 0; piece <= n; piece++) {
            outcome o = decode(bad[i].in, n, piece, 100);
            ck_assert_msg(o.rc == LB_CHUNKED_BAD, "%zu piece %zu: result %d", i, piece, o.rc);
            ck_assert_msg(strstr(o.why, bad[i].why), "%zu: reason '%s', want '%s'", i, o.why, bad[i].why);
        }
    }
}
END_TEST

/* A 1-byte chunk whose size line ("1;eee...") is `n` bytes long, and the end. */
static outcome with_size_line_of(size_t n)
{
    static char in[LB_CHUNKED_LINE_MAX + 64];
    ck_assert_uint_lt(n + 12, sizeof in);
    memcpy(in, "1;", 2);
    memset(in + 2, 'e', n - 2);
    strcpy(in + n, "\r\nx\r\n0\r\n\r\n");
    return decode(in, strlen(in), 0, 100);
}

START_TEST(lines_have_a_length_limit)
{
    ck_assert_int_eq(with_size_line_of(LB_CHUNKED_LINE_MAX).rc, LB_CHUNKED_DONE);
    ck_assert_int_eq(with_size_line_of(LB_CHUNKED_LINE_MAX + 1).rc, LB_CHUNKED_BAD);
    /* nor does it wait for a line end that cannot come in time */
    static char in[LB_CHUNKED_LINE_MAX + 3];
    memset(in, 'a', LB_CHUNKED_LINE_MAX + 2);
    ck_assert_int_eq(decode(in, LB_CHUNKED_LINE_MAX + 2, 0, 100).rc, LB_CHUNKED_BAD);
    ck_assert_int_eq(decode(in, LB_CHUNKED_LINE_MAX + 1, 0, 100).rc, LB_CHUNKED_MORE);
}
END_TEST

/* "0\r\n", `lines` trailer lines of 100 bytes each, the blank line. */
static char *trailer_of(size_t lines, size_t *len)
{
    char *in = malloc(3 + lines * 100 + 3);
    ck_assert_ptr_nonnull(in);
    strcpy(in, "0\r\n");
    for (size_t i = 0; i < lines; i++) {
        char *line = in + 3 + i * 100;
        memcpy(line, "X-Pad: ", 7);
        memset(line + 7, 'p', 91);
        memcpy(line + 98, "\r\n", 2);
    }
    strcpy(in + 3 + lines * 100, "\r\n");
    *len = strlen(in);
    return in;
}

START_TEST(the_trailer_has_a_size_limit)
{
    size_t fit = LB_CHUNKED_TRAILER_MAX / 100, len;
    const char *why = "";
    lb_chunked_decoder d;
    char *in = trailer_of(fit, &len);
    lb_chunked_init(&d);
    ck_assert_int_eq(lb_chunked_decode(&d, in, &len, 100, &why), LB_CHUNKED_DONE);
    free(in);
    in = trailer_of(fit + 1, &len);
    lb_chunked_init(&d);
    ck_assert_int_eq(lb_chunked_decode(&d, in, &len, 100, &why), LB_CHUNKED_BAD);
    ck_assert_ptr_nonnull(strstr(why, "trailer is too large"));
    free(in);
}
END_TEST

START_TEST(undecoded_bytes_move_down_behind_the_body)
{
    /* each step appends bytes as a read would; after it the buffer holds
     * the body so far, then only the framing not decoded yet */
    static const struct {
        const char *append;
        lb_chunked_result rc;
        size_t decoded;
        const char *buffer;
    } steps[] = {
        {"3\r\nabc\r\n5\r\nde", LB_CHUNKED_MORE, 5, "abcde"},   /* a chunk's data so far is body */
        {"fgh\r\n1", LB_CHUNKED_MORE, 8, "abcdefgh1"},              /* a partial size line waits whole */
        {"\r\ni\r\n0\r\n\r\n", LB_CHUNKED_DONE, 9, "abcdefghi"},
    };
    char buf[64];
    size_t len = 0;
    lb_chunked_decoder d;
    lb_chunked_init(&d);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        memcpy(buf + len, steps[i].append, strlen(steps[i].append));
        len += strlen(steps[i].append);
        const char *why = "";
        ck_assert_int_eq(lb_chunked_decode(&d, buf, &len, 100, &why), steps[i].rc);
        ck_assert_uint_eq(d.decoded, steps[i].decoded);
        ck_assert_uint_eq(len, strlen(steps[i].buffer));
        ck_assert_msg(memcmp(buf, steps[i].buffer, len) == 0, "step %zu: %.*s", i, (int)len, buf);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_chunked");
    TCase *tc = tcase_create("decode");
    tcase_add_test(tc, chunks_are_joined_and_what_follows_is_kept);
    tcase_add_test(tc, extensions_and_trailers_are_read_and_dropped);
    tcase_add_test(tc, the_limit_counts_the_body_not_the_framing);
    tcase_add_test(tc, malformed_framing_is_refused_with_a_reason);
    tcase_add_test(tc, lines_have_a_length_limit);
    tcase_add_test(tc, the_trailer_has_a_size_limit);
    tcase_add_test(tc, undecoded_bytes_move_down_behind_the_body);
    suite_add_tcase(s, tc);
    return lb_run_suite_tap(s);
}
