/* test_json_flat.c: the flat JSON reader (core/json_flat.c), on its own and
 * against json-c: every document it accepts, json-c reads to the same
 * values, over thousands of mutations of the Hotmart fixtures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_flat.h"
#include "tap.h"

static lb_jflat *flat;
static char why[160];

static void setup(void) { flat = lb_jflat_new(); }
static void teardown(void) { lb_jflat_free(flat); }

static const lb_jnode *parse(const char *text)
{
    return lb_jflat_parse(flat, text, strlen(text), 64, why, sizeof why);
}

static const lb_jnode *must_parse(const char *text)
{
    const lb_jnode *n = parse(text);
    ck_assert_msg(n != NULL, "%s: %s", text, why);
    return n;
}

static const lb_jnode *member(const lb_jnode *obj, const char *key)
{
    return lb_jnode_member(obj, key, strlen(key));
}

START_TEST(scalars_and_containers)
{
    const lb_jnode *r = must_parse(" {\"s\":\"x\", \"i\":-12, \"d\":49.90, \"t\":true, \"f\":false, \"n\":null,"
                                   " \"o\":{}, \"a\":[1,[2],{\"k\":3}]} \n");
    ck_assert_int_eq(r->type, json_type_object);
    ck_assert_uint_eq(r->count, 8);
    ck_assert_str_eq(member(r, "s")->str, "x");
    ck_assert_int_eq(member(r, "i")->v.i, -12);
    ck_assert_int_eq(member(r, "d")->type, json_type_double);
    ck_assert_double_eq(member(r, "d")->v.d, 49.9);
    ck_assert_str_eq(member(r, "d")->str, "49.90"); /* the spelling, for writing it back */
    ck_assert(member(r, "t")->v.b);
    ck_assert(!member(r, "f")->v.b);
    ck_assert_int_eq(member(r, "n")->type, json_type_null);
    ck_assert_uint_eq(member(r, "o")->count, 0);
    ck_assert_ptr_null(lb_jnode_first(member(r, "o")));
    const lb_jnode *a = member(r, "a");
    ck_assert_uint_eq(a->count, 3);
    ck_assert_int_eq(lb_jnode_at(a, 0)->v.i, 1);
    ck_assert_int_eq(lb_jnode_at(lb_jnode_at(a, 1), 0)->v.i, 2);
    ck_assert_int_eq(member(lb_jnode_at(a, 2), "k")->v.i, 3);
    ck_assert_ptr_null(lb_jnode_at(a, 3));
    ck_assert_ptr_null(member(r, "missing"));
    ck_assert_ptr_null(member(a, "k")); /* not an object */
    ck_assert_ptr_null(lb_jnode_at(r, 0)); /* not an array */
    ck_assert_int_eq(must_parse("7")->v.i, 7); /* any value may be the root */
    ck_assert_str_eq(must_parse("\"\"")->str, "");
}
END_TEST

START_TEST(escapes_decode_to_utf8)
{
    const lb_jnode *r = must_parse("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\", \"\\ud83d\\ude00\","
                                   " \"\\ud83dx\", \"\\ude00\", \"a\\u0000b\", \"M\xc3\xb3" "dulo\"]");
    ck_assert_str_eq(lb_jnode_at(r, 0)->str, "a\"b\\c/d\b\f\n\r\t");
    ck_assert_str_eq(lb_jnode_at(r, 1)->str, "\xc3\xa9\xe2\x82\xac");
    ck_assert_str_eq(lb_jnode_at(r, 2)->str, "\xf0\x9f\x98\x80");
    ck_assert_str_eq(lb_jnode_at(r, 3)->str, "\xef\xbf\xbdx"); /* a lone surrogate: U+FFFD */
    ck_assert_str_eq(lb_jnode_at(r, 4)->str, "\xef\xbf\xbd");
    ck_assert_uint_eq(lb_jnode_at(r, 5)->str_len, 3); /* NUL kept; the length tells */
    ck_assert_int_eq(memcmp(lb_jnode_at(r, 5)->str, "a\0b", 3), 0);
    ck_assert_str_eq(lb_jnode_at(r, 6)->str, "M\xc3\xb3" "dulo");
    r = must_parse("{\"tab\":\"a\tb\"}"); /* a raw control character, as json-c takes it */
    ck_assert_str_eq(member(r, "tab")->str, "a\tb");
}
END_TEST

START_TEST(numbers_as_json_c_reads_them)
{
    const lb_jnode *r = must_parse("[0, -0, 9223372036854775807, 9223372036854775808, 99999999999999999999,"
                                   " -99999999999999999999, 1e3, 1.5E-2, -0.0, 2.0, NaN, Infinity, -Infinity,"
                                   " -9223372036854775808, 18446744073709551615, 18446744073709551616]");
    ck_assert_int_eq(lb_jnode_at(r, 0)->v.i, 0);
    ck_assert_int_eq(lb_jnode_at(r, 1)->v.i, 0);
    ck_assert_int_eq(lb_jnode_at(r, 2)->v.i, INT64_MAX);
    ck_assert(!lb_jnode_at(r, 2)->big);
    ck_assert(lb_jnode_at(r, 3)->big);
    ck_assert_uint_eq(lb_jnode_at(r, 3)->u, 9223372036854775808ULL);
    ck_assert_int_eq(lb_jnode_at(r, 3)->v.i, INT64_MAX);
    ck_assert_uint_eq(lb_jnode_at(r, 4)->u, UINT64_MAX); /* clamped */
    ck_assert_int_eq(lb_jnode_at(r, 5)->v.i, INT64_MIN);
    ck_assert_int_eq(lb_jnode_at(r, 6)->type, json_type_double);
    ck_assert_double_eq(lb_jnode_at(r, 6)->v.d, 1000);
    ck_assert_double_eq_tol(lb_jnode_at(r, 7)->v.d, 0.015, 1e-12);
    ck_assert_int_eq(lb_jnode_at(r, 8)->type, json_type_double);
    ck_assert_double_eq(lb_jnode_at(r, 9)->v.d, 2);
    ck_assert(isnan(lb_jnode_at(r, 10)->v.d));
    ck_assert(isinf(lb_jnode_at(r, 11)->v.d) && lb_jnode_at(r, 11)->v.d > 0);
    ck_assert(isinf(lb_jnode_at(r, 12)->v.d) && lb_jnode_at(r, 12)->v.d < 0);
    /* clamped, as json-c does, but flagged, with the digits kept */
    static const struct {
        size_t at;
        bool overflow;
    } clamped[] = {{0, false}, {2, false}, {3, false}, {4, true}, {5, true}, {13, false}, {14, false}, {15, true}};
    for (size_t i = 0; i < sizeof clamped / sizeof *clamped; i++)
        ck_assert_msg(lb_jnode_at(r, clamped[i].at)->overflow == clamped[i].overflow, "element %zu", clamped[i].at);
    ck_assert_int_eq(lb_jnode_at(r, 13)->v.i, INT64_MIN);
    ck_assert_uint_eq(lb_jnode_at(r, 14)->u, UINT64_MAX);
    ck_assert_uint_eq(lb_jnode_at(r, 15)->u, UINT64_MAX);
    ck_assert_str_eq(lb_jnode_at(r, 4)->str, "99999999999999999999");
    ck_assert_str_eq(lb_jnode_at(r, 5)->str, "-99999999999999999999");
}
END_TEST

/* RFC 8259's number grammar, through the reader and lb_json_number_valid. */
static const struct {
    const char *text;
    bool valid;
} numbers[] = {
    {"0", true}, {"-0", true}, {"7", true}, {"-12", true}, {"0.5", true}, {"-0.0", true}, {"10.25", true},
    {"1e5", true}, {"1E+5", true}, {"1e-05", true}, {"0e0", true}, {"2.5E10", true},
    {"99999999999999999999", true}, {"1.", false}, {"-1.", false}, {".5", false}, {"-.5", false},
    {"01", false}, {"-01", false}, {"00", false}, {"00.5", false}, {"+1", false}, {"1.e5", false},
    {"1e", false}, {"1e+", false}, {"--1", false}, {"1..2", false}, {"0x10", false}, {"1 ", false},
    {"", false}, {"-", false}, {"NaN", false}, {"Infinity", false}, {"-Infinity", false},
};

START_TEST(number_grammar)
{
    const char *t = numbers[_i].text;
    ck_assert_msg(lb_json_number_valid(t, strlen(t)) == numbers[_i].valid, "lb_json_number_valid(%s)", t);
    char doc[64];
    snprintf(doc, sizeof doc, "[%s]", t);
    const lb_jnode *r = parse(doc);
    if (numbers[_i].valid)
        ck_assert_msg(r != NULL && lb_jnode_at(r, 0)->str_len == strlen(t), "%s: %s", doc, why);
    else if (*t != '\0' && !strchr(t, ' ') && !strchr(t, 'N') && !strchr(t, 'I')) /* "[]", "[1 ]", NaN: fine */
        ck_assert_msg(r == NULL, "%s accepted", doc);
}
END_TEST

START_TEST(repeated_keys_last_wins)
{
    const lb_jnode *r = must_parse("{\"a\":1,\"b\":2,\"a\":3}");
    ck_assert_int_eq(member(r, "a")->v.i, 3);
    ck_assert_uint_eq(r->count, 3);
}
END_TEST

static const struct {
    const char *text;
    const char *why;
} bad[] = {
    {"", "end of input"},
    {"   ", "end of input"},
    {"{", "end of input"},
    {"{\"a\"}", "':'"},
    {"{\"a\":}", "a value"},
    {"{\"a\":1,}", "member name"},
    {"[1,]", "a value"},
    {"{,}", "member name"},
    {"[1 2]", "',' or ']'"},
    {"{\"a\":1 \"b\":2}", "',' or '}'"},
    {"{'a':1}", "member name"},
    {"/* c */ {}", "a value"},
    /* numbers: RFC 8259's grammar exactly, though json-c reads some of these */
    {"01", "leading zero"},
    {"-01", "leading zero"},
    {"[00]", "leading zero"},
    {"{\"a\":007}", "leading zero"},
    {"1.", "after the decimal point"},
    {"[1.]", "after the decimal point"},
    {"{\"price\":{\"value\":1.}}", "after the decimal point"},
    {"1.x", "after the decimal point"},
    {"1.e5", "after the decimal point"},
    {"-.5", "a digit"},
    {"1e", "exponent"},
    {"1e+", "exponent"},
    {"[1E-]", "exponent"},
    {"-", "a digit"},
    {"- 1", "a digit"},
    {"+1", "a value"},
    {".5", "a value"},
    {"[.5]", "a value"},
    {"0x10", "trailing data"},
    {"tru", "a value"},
    {"nul", "a value"},
    {"TRUE", "a value"},
    {"\"abc", "closing quote"},
    {"\"\\x\"", "valid escape"},
    {"\"\\u12g4\"", "hex digits"},
    {"\"\\u12", "hex digits"},
    {"{} x", "trailing data"},
    {"{}{}", "trailing data"},
    {"[\x01]", "byte 0x01"},
};

START_TEST(raw_nul_is_refused)
{
    /* json-c stops reading at a NUL byte; so must we, even inside a string */
    static const char text[] = "{\"a\":\"x\0y\"}";
    ck_assert_ptr_null(lb_jflat_parse(flat, text, sizeof text - 1, 64, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "byte 0x00"));
}
END_TEST

START_TEST(bad_input_says_why)
{
    ck_assert_ptr_null(parse(bad[_i].text));
    ck_assert_msg(strstr(why, bad[_i].why) != NULL, "%s: got \"%s\", want \"%s\"", bad[_i].text, why,
                  bad[_i].why);
}
END_TEST

START_TEST(nesting_is_capped_and_costs_no_stack)
{
    size_t depth = 100000;
    char *text = malloc(2 * depth + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    text[2 * depth] = '\0';
    ck_assert_ptr_null(lb_jflat_parse(flat, text, 2 * depth, 64, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "nesting deeper than 64"));
    ck_assert_ptr_nonnull(lb_jflat_parse(flat, text, 2 * depth, depth, why, sizeof why));
    free(text);
}
END_TEST

START_TEST(text_need_not_be_terminated)
{
    const char text[] = "{\"a\":12345}garbage";
    const lb_jnode *r = lb_jflat_parse(flat, text, 11, 64, why, sizeof why);
    ck_assert_msg(r != NULL, "%s", why);
    ck_assert_int_eq(member(r, "a")->v.i, 12345);
    ck_assert_ptr_null(lb_jflat_parse(flat, text, 10, 64, why, sizeof why)); /* cut inside */
    ck_assert_ptr_null(lb_jflat_parse(flat, "{\"a\":\"xy\"}", 7, 64, why, sizeof why));
}
END_TEST

/* ---- against json-c ---------------------------------------------------------- */

/* Whether json-c's value j and node n are the same JSON value. */
static bool same(json_object *j, const lb_jnode *n)
{
    enum json_type t = j ? json_object_get_type(j) : json_type_null;
    if (t != n->type)
        return false;
    switch (t) {
    case json_type_null:
        return true;
    case json_type_boolean:
        return json_object_get_boolean(j) == n->v.b;
    case json_type_int:
        return json_object_get_int64(j) == n->v.i && (!n->big || json_object_get_uint64(j) == n->u);
    case json_type_double: {
        double a = json_object_get_double(j), b = n->v.d;
        return (isnan(a) && isnan(b)) || a == b;
    }
    case json_type_string:
        return (size_t)json_object_get_string_len(j) == n->str_len &&
               memcmp(json_object_get_string(j), n->str, n->str_len) == 0;
    case json_type_array:
        if (json_object_array_length(j) != n->count)
            return false;
        for (size_t i = 0; i < n->count; i++)
            if (!same(json_object_array_get_idx(j, i), lb_jnode_at(n, i)))
                return false;
        return true;
    case json_type_object: {
        size_t keys = 0;
        json_object_object_foreach(j, k, v)
        {
            const lb_jnode *m = lb_jnode_member(n, k, strlen(k));
            if (!m || !same(v, m))
                return false;
            keys++;
        }
        return keys <= n->count; /* repeated keys: json-c keeps one */
    }
    }
    return false;
}

static json_object *json_c_parse(const char *text, size_t len, int flags)
{
    json_tokener *tok = json_tokener_new_ex(64);
    json_tokener_set_flags(tok, flags);
    json_object *j = json_tokener_parse_ex(tok, text, (int)len);
    bool whole = json_tokener_get_error(tok) == json_tokener_success;
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (whole && end < len && strchr(" \t\r\n", text[end]))
        end++;
    if (!whole || end != len) {
        json_object_put(j);
        return NULL;
    }
    return j;
}

static const char *const fixtures[] = {"PURCHASE_APPROVED", "PURCHASE_BILLET_PRINTED", "SWITCH_PLAN",
                                       "CLUB_MODULE_COMPLETED", "SUBSCRIPTION_CANCELLATION"};

static char *read_fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", LB_TEST_FIXTURES, name);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char *buf = malloc(1 << 16);
    ck_assert_ptr_nonnull(buf);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    return buf;
}

/* One random edit: a byte replaced, deleted or inserted, chosen from the
 * characters that move a JSON parser between states. */
static size_t mutate(char *buf, size_t len, unsigned *seed)
{
    static const char alphabet[] = "{}[]\",:\\u0123456789.eE+-tfnrl aNI\x01\xc3";
    size_t at = len ? (size_t)rand_r(seed) % len : 0;
    char c = alphabet[(size_t)rand_r(seed) % (sizeof alphabet - 1)];
    switch (rand_r(seed) % 3) {
    case 0:
        if (len)
            buf[at] = c;
        return len;
    case 1:
        if (len)
            memmove(buf + at, buf + at + 1, len - at - 1);
        return len ? len - 1 : 0;
    default:
        memmove(buf + at + 1, buf + at, len - at);
        buf[at] = c;
        return len + 1;
    }
}

START_TEST(agrees_with_json_c_on_mutated_fixtures)
{
    size_t len;
    char *orig = read_fixture(fixtures[_i], &len);
    char *buf = malloc(1 << 16);
    ck_assert_ptr_nonnull(buf);
    unsigned seed = 1234u + (unsigned)_i;
    unsigned accepted = 0, strict_accepted = 0;
    for (int round = 0; round < 3000; round++) {
        size_t n = len;
        memcpy(buf, orig, len);
        for (int edits = 1 + rand_r(&seed) % 3; edits > 0 && n < (1 << 16) - 8; edits--)
            n = mutate(buf, n, &seed);
        const lb_jnode *mine = lb_jflat_parse(flat, buf, n, 64, why, sizeof why);
        json_object *lenient = json_c_parse(buf, n, 0);
        json_object *strict = json_c_parse(buf, n, JSON_TOKENER_STRICT);
        if (mine) { /* all we accept, json-c accepts, to the same values */
            accepted++;
            ck_assert_msg(lenient != NULL, "json-c refuses what we accept: %.*s", (int)n, buf);
            ck_assert_msg(same(lenient, mine), "values differ: %.*s", (int)n, buf);
        }
        if (strict) { /* and all strict JSON (json-c's strict mode) we accept, but
                       * for the numbers it takes and RFC 8259 does not ("1.") */
            strict_accepted++;
            ck_assert_msg(mine != NULL || strstr(why, "after the decimal point") || strstr(why, "leading zero"),
                          "we refuse strict JSON (%s): %.*s", why, (int)n, buf);
        }
        json_object_put(lenient);
        json_object_put(strict);
    }
    ck_assert_uint_gt(accepted, 100); /* the test did compare documents */
    ck_assert_uint_gt(strict_accepted, 100);
    free(buf);
    free(orig);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("json_flat");
    TCase *tc = tcase_create("reader");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, scalars_and_containers);
    tcase_add_test(tc, escapes_decode_to_utf8);
    tcase_add_test(tc, numbers_as_json_c_reads_them);
    tcase_add_loop_test(tc, number_grammar, 0, sizeof numbers / sizeof *numbers);
    tcase_add_test(tc, repeated_keys_last_wins);
    tcase_add_loop_test(tc, bad_input_says_why, 0, sizeof bad / sizeof *bad);
    tcase_add_test(tc, raw_nul_is_refused);
    tcase_add_test(tc, nesting_is_capped_and_costs_no_stack);
    tcase_add_test(tc, text_need_not_be_terminated);
    tcase_add_loop_test(tc, agrees_with_json_c_on_mutated_fixtures, 0, sizeof fixtures / sizeof *fixtures);
    suite_add_tcase(suite, tc);
    return lb_run_suite_tap(suite);
}
