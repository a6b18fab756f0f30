/* The pattern meter (core/lua_pattern_meter.c) walks a call as Lua's own
 * matcher does. Its count is only right if it takes the matcher's path, so
 * these tests hold its answers against Lua's on thousands of generated
 * patterns and subjects: where string.find's first match is and how many
 * matches string.gsub replaces, and that it stops where the matcher raises.
 * Then the counts themselves: small for the idioms rules use, past the
 * limit (and stopped there) for the backtracking bombs. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua_clib.h"
#include "lua_pattern_meter.h"
#include "../fuzz/pattern_oracle.h"
#include "tap.h"

/* A pattern of up to 6 items drawn from those that steer the matcher. */
static void random_pattern(char *out, size_t cap, unsigned *seed)
{
    static const char *items[] = {"a",    "b",      ".",  "%s", "%a", "[ab]", "[^a]", "[a-c]", "(",     ")",
                                  "()",   "%b()",   "%z", "%Z", "%1", "x",    " ",    "$",     "%d",    "[%s)]",
                                  "%%",   "%f[%a]"};
    static const char *quantifiers[] = {"", "", "", "*", "+", "-", "?"};
    size_t len = 0;
    out[0] = '\0';
    if (rand_r(seed) % 4 == 0)
        out[len++] = '^';
    int n = 1 + rand_r(seed) % 6;
    for (int i = 0; i < n; i++) {
        const char *item = items[rand_r(seed) % (sizeof items / sizeof *items)];
        const char *q = quantifiers[rand_r(seed) % (sizeof quantifiers / sizeof *quantifiers)];
        bool single = item[0] != '(' && item[0] != ')' && strncmp(item, "%b", 2) && strncmp(item, "%f", 2) &&
                      strcmp(item, "%1") && strcmp(item, "$");
        len += (size_t)snprintf(out + len, cap - len, "%s%s", item, single ? q : "");
    }
}

static void random_subject(char *out, size_t cap, unsigned *seed)
{
    static const char alphabet[] = "aab (x)c1 ";
    size_t n = (size_t)rand_r(seed) % (cap - 1);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rand_r(seed) % (sizeof alphabet - 1)];
    out[n] = '\0';
}

static void agree(const char *s, const char *p, bool all, bool anchors)
{
    if (!all && !lb_pattern_has_specials(p, strlen(p)))
        return; /* string.find searches for it as plain text: no matcher to follow */
    pattern_answer want = pattern_oracle_ask(all ? (anchors ? 1 : 2) : 0, s, strlen(s), p, strlen(p));
    lb_pattern_walk got;
    lb_pattern_meter(s, strlen(s), p, strlen(p), 0, all, anchors, 1u << 30, &got);
    ck_assert_msg(!got.over, "subject \"%s\" pattern \"%s\": over the limit", s, p);
    ck_assert_msg(got.halted == want.error, "subject \"%s\" pattern \"%s\": Lua %s, the meter %s", s, p,
                  want.error ? "raised" : "did not raise", got.halted ? "halted" : "did not halt");
    if (want.error)
        return;
    if (want.unfinished) {
        ck_assert_msg(all ? got.matches > 0 : got.matched, "subject \"%s\" pattern \"%s\": Lua matched", s, p);
        return;
    }
    if (all) {
        ck_assert_msg(got.matches == want.matches, "subject \"%s\" pattern \"%s\": %zu matches, Lua %zu", s, p,
                      got.matches, want.matches);
        return;
    }
    ck_assert_msg(got.matched == want.matched && (!want.matched || (got.start == want.start && got.end == want.end)),
                  "subject \"%s\" pattern \"%s\": meter %d [%zu, %zu), Lua %d [%zu, %zu)", s, p, got.matched,
                  got.start, got.end, want.matched, want.start, want.end);
}

/* _i: 0 find, 1 gsub, 2 gmatch */
START_TEST(the_meter_takes_the_matchers_path)
{
    unsigned seed = 20261129u + (unsigned)_i;
    char p[128], s[24];
    for (int i = 0; i < 20000; i++) {
        random_pattern(p, sizeof p, &seed);
        random_subject(s, sizeof s, &seed);
        agree(s, p, _i != 0, _i != 2);
    }
}
END_TEST

/* Hand-picked: each construct, and the errors the matcher raises. */
START_TEST(each_construct_and_each_error_as_lua_has_them)
{
    static const char *rows[][2] = {
        {"  hello world  ", "^%s*(.-)%s*$"}, {"f(a(b)c)d", "%b()"},   {"THE (quick) fox", "%f[%a]%a+"},
        {"abcabc", "(abc)%1"},               {"abcabd", "(ab.)%1"},   {"key = value", "(%w+)%s*=%s*(%w+)"},
        {"aaa", "a-b"},                      {"aaab", "a-b"},         {"x", "()"},
        {"abc", "(()b)"},                    {"a]b", "[]]"},          {"a-b", "[a%-]+"},
        {"a", "%"},                          {"a", "[a"},             {"a", "(a"},
        {"a", "a)"},                         {"a", "%1"},             {"a", "%ba"},
        {"a", "%f"},                         {"a", "%fa"},
        /* 33 captures: one past the matcher's 32 */
        {"a", "(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))"},
        {"ab", "a$b"},                       {"a$", "a$"},            {"", ""},
        {"", ".-"},                          {"abc", "^"},            {"abc", "$"},
        {"aaa", "a?a?a?aaa"},                {"one two  three", "%s*"}, {"(()", "%b()"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        for (int mode = 0; mode < 3; mode++)
            agree(rows[i][0], rows[i][1], mode != 0, mode != 2);
    /* deeper than the matcher's 200 calls: it raises "pattern too complex" */
    char deep[1024] = "", subject[256];
    for (int i = 0; i < 210; i++)
        strcat(deep, "a?");
    memset(subject, 'a', 210);
    subject[210] = '\0';
    agree(subject, deep, false, true);
}
END_TEST

static lb_pattern_walk meter(const char *s, const char *p, bool all)
{
    lb_pattern_walk w;
    lb_pattern_meter(s, strlen(s), p, strlen(p), 0, all, true, (uint64_t)LB_PATTERN_STEPS, &w);
    return w;
}

static char *repeat(const char *unit, size_t times, const char *tail)
{
    size_t u = strlen(unit), t = strlen(tail);
    char *s = malloc(u * times + t + 1);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * u, unit, u);
    memcpy(s + u * times, tail, t + 1);
    return s;
}

/* The trim idiom's bound is cubic (refused past ~120 bytes before the
 * meter); on a 10 KB address it walks in a few ten thousand steps. */
START_TEST(the_idioms_rules_use_walk_in_few_steps)
{
    char *address = repeat("Rua das Flores 123 ", 500, "   ");
    char *padded = repeat(" ", 4000, address);
    lb_pattern_walk w = meter(padded, "^%s*(.-)%s*$", false);
    ck_assert(!w.over && w.matched);
    ck_assert_uint_lt(w.steps, 200000);
    w = meter(address, "%a+", true);
    ck_assert(!w.over);
    ck_assert_uint_eq(w.matches, 1500);
    free(address);
    free(padded);
}
END_TEST

/* The bombs pass the limit, and the walk stops there: a fraction of a
 * second, however long the matcher itself would take. */
START_TEST(backtracking_bombs_pass_the_limit_and_the_walk_stops)
{
    char *as = repeat("a", 3000, "");
    static const char *bombs[] = {".-.-.-.-b", "(.-)(.-)(.-)(.-)b", "a*a*a*a*b", "^.-.-.-.-b"};
    for (size_t i = 0; i < sizeof bombs / sizeof *bombs; i++) {
        for (int all = 0; all < 2; all++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            lb_pattern_walk w = meter(as, bombs[i], all);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
            ck_assert_msg(w.over, "%s: %llu steps", bombs[i], (unsigned long long)w.steps);
            ck_assert_uint_le(w.steps, (uint64_t)LB_PATTERN_STEPS + 4000);
            ck_assert_msg(ms < 2000, "%s: the walk took %.0f ms", bombs[i], ms);
        }
    }
    free(as);
}
END_TEST

/* The matcher reads a set through each time it tries it: a long set's
 * bytes count, or a walk of a few million steps over a 20,000-byte set
 * ran for seconds (and the call after it as long again). */
START_TEST(a_long_set_counts_what_reading_it_costs)
{
    char *set = repeat("b", 20000, "a]");
    char *pattern = malloc(strlen(set) + 2);
    ck_assert_ptr_nonnull(pattern);
    pattern[0] = '[';
    strcpy(pattern + 1, set);
    lb_pattern_walk w = meter("a", pattern, false);
    ck_assert(w.matched && !w.over);
    ck_assert_uint_ge(w.steps, 2 * 20000 / 8); /* its end found, then the byte tried */
    /* the reviewer's case: two lazy items over such a set on 3,000 bytes */
    char *lazy = malloc(2 * (strlen(pattern) + 1) + 2);
    ck_assert_ptr_nonnull(lazy);
    sprintf(lazy, "%s-%s-c", pattern, pattern);
    char *as = repeat("a", 3000, "");
    w = meter(as, lazy, false);
    ck_assert(w.over);
    ck_assert_uint_le(w.steps, (uint64_t)LB_PATTERN_STEPS + 3 * (1 + strlen(pattern) / 8));
    free(set);
    free(pattern);
    free(lazy);
    free(as);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("pattern_meter");
    TCase *tc = tcase_create("meter");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, the_meter_takes_the_matchers_path, 0, 3);
    tcase_add_test(tc, each_construct_and_each_error_as_lua_has_them);
    tcase_add_test(tc, the_idioms_rules_use_walk_in_few_steps);
    tcase_add_test(tc, backtracking_bombs_pass_the_limit_and_the_walk_stops);
    tcase_add_test(tc, a_long_set_counts_what_reading_it_costs);
    suite_add_tcase(suite, tc);
    return lb_run_suite_tap(suite);
}
