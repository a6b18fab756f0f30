/* test_log.c: the logfmt writer, read back from stderr. Every line it writes,
 * cut short or not, must be one valid logfmt line: no NUL, one newline at
 * the end, every quoted value closed, valid UTF-8. */
#include "log.h"

#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048

/* ---- helpers ------------------------------------------------------------ */

/* stderr goes into a pipe for each test: a line is one write of at most
 * LINE_MAX_BYTES, so it arrives whole and alone. */
static int pipe_r = -1, saved_stderr = -1;

static void capture_start(void)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(fds[1], STDERR_FILENO), 0);
    close(fds[1]);
    pipe_r = fds[0];
}

static void capture_stop(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(pipe_r);
}

/* What lb_log(LB_LOG_WARN, "m", key, val, "after", "x", NULL) writes; *len
 * is its length (a NUL byte inside would make strlen lie). */
static char *log_line(const char *key, const char *val, size_t *len)
{
    static char buf[2 * LINE_MAX_BYTES];
    lb_log(LB_LOG_WARN, "m", key, val, "after", "x", NULL);
    fflush(stderr);
    ssize_t n = read(pipe_r, buf, sizeof buf - 1);
    ck_assert_int_gt(n, 0);
    *len = (size_t)n;
    buf[n] = '\0';
    return buf;
}

/* The length of the UTF-8 sequence at s, or 0 if it is not valid there. */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    size_t n = *s < 0x80 ? 1 : *s >= 0xF0 ? 4 : *s >= 0xE0 ? 3 : *s >= 0xC0 ? 2 : 0;
    if (n == 0 || (size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* A quoted value from p (at its opening quote): returns past the closing
 * one, or NULL if it is not closed or has an escape logfmt does not know. */
static const char *skip_quoted(const char *p, const char *end)
{
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\' && (++p == end || (*p != '"' && *p != '\\' && *p != 'n')))
            return NULL;
    return p < end ? p + 1 : NULL;
}

static bool valid_utf8(const char *buf, size_t len)
{
    for (const unsigned char *u = (const unsigned char *)buf, *end = u + len; u < end;) {
        size_t n = utf8_len(u, end);
        if (n == 0)
            return false;
        u += n;
    }
    return true;
}

/* Why the pairs of buf[0, len) (the line without its newline) are not
 * logfmt, `key=value` split by single spaces; NULL if they are. */
static const char *pairs_problem(const char *p, const char *end)
{
    while (p < end) {
        const char *eq = p;
        while (eq < end && *eq != '=' && *eq != ' ' && *eq != '"')
            eq++;
        if (eq == p || eq == end || *eq != '=')
            return "no key=value";
        p = eq + 1;
        if (p < end && *p == '"') {
            if (!(p = skip_quoted(p, end)))
                return "an unclosed quoted value";
        } else {
            while (p < end && *p != ' ' && *p != '"')
                p++;
        }
        if (p < end && (*p != ' ' || ++p == end))
            return "a bad separator";
    }
    return NULL;
}

/* Why buf[0, len) is not one valid logfmt line, or NULL if it is. (One
 * assertion per line, not per byte: each costs Check a message.) */
static const char *line_problem(const char *buf, size_t len)
{
    if (len == 0 || len > LINE_MAX_BYTES)
        return "no line, or one too long";
    if (memchr(buf, '\0', len))
        return "a NUL byte";
    if (buf[len - 1] != '\n' || memchr(buf, '\n', len - 1))
        return "not exactly one line";
    if (!valid_utf8(buf, len))
        return "invalid UTF-8";
    return pairs_problem(buf, buf + len - 1);
}

static void assert_logfmt(const char *buf, size_t len)
{
    const char *problem = line_problem(buf, len);
    ck_assert_msg(problem == NULL, "%s in a line of %zu bytes: %.*s", problem, len, (int)len, buf);
}

static bool ends_with(const char *buf, size_t len, const char *tail)
{
    size_t n = strlen(tail);
    return len >= n && memcmp(buf + len - n, tail, n) == 0;
}

/* ---- tests ---------------------------------------------------------------- */

START_TEST(short_line_whole_and_unmarked)
{
    size_t len;
    const char *line = log_line("k", "a b\"c\\d\ne", &len);
    assert_logfmt(line, len);
    ck_assert_msg(ends_with(line, len, " level=warn msg=m k=\"a b\\\"c\\\\d\\ne\" after=x\n"), "%s", line);
}
END_TEST

/* Values of every length around the cut, plain, quoted, escaped and
 * multi-byte, each cut at a different byte. */
static const char *const fills[] = {"a", "a b", "\"", "\\\n", "\xC3\xA7\xC3\xA3", "\xE2\x82\xAC", "\xE2\x82\xAC ",
                                    "\xF0\x9F\x98\x80"};

START_TEST(long_values_cut_into_valid_marked_lines)
{
    static char val[LINE_MAX_BYTES + 200];
    const char *fill = fills[_i];
    size_t flen = strlen(fill), whole = 0, cut = 0;
    /* from half the line: an escaped byte takes two */
    for (size_t want = LINE_MAX_BYTES / 2 - 120; want < LINE_MAX_BYTES + 100; want++) {
        size_t n = 0;
        while (n + flen <= want) {
            memcpy(val + n, fill, flen);
            n += flen;
        }
        val[n] = '\0';
        size_t len;
        const char *line = log_line("k", val, &len);
        assert_logfmt(line, len);
        bool marked = ends_with(line, len, " truncated=true\n");
        ck_assert_msg(marked != ends_with(line, len, " after=x\n"), "neither whole nor marked: %s", line);
        marked ? cut++ : whole++;
    }
    ck_assert(whole > 0 && cut > 0);
}
END_TEST

START_TEST(long_key_cut_at_the_pair)
{
    static char key[LINE_MAX_BYTES + 100];
    memset(key, 'k', sizeof key - 1);
    size_t len;
    const char *line = log_line(key, "v", &len);
    assert_logfmt(line, len);
    ck_assert_msg(ends_with(line, len, " msg=m truncated=true\n"), "%s", line);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("lines");
    tcase_add_checked_fixture(tc, capture_start, capture_stop);
    tcase_add_test(tc, short_line_whole_and_unmarked);
    tcase_add_loop_test(tc, long_values_cut_into_valid_marked_lines, 0, sizeof fills / sizeof *fills);
    tcase_add_test(tc, long_key_cut_at_the_pair);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lb_run_suite_tap(make_suite()); }
