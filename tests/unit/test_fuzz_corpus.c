/* test_fuzz_corpus.c: every fuzz target of tests/fuzz, run over its seeds
 * (the Hotmart fixtures for the JSON bodies, tests/fuzz/corpus/<target>/ for
 * all), so the targets keep building with the core, their invariants hold on
 * known inputs under the sanitizers, and an input that once crashed a
 * target stays fixed once it is added to the corpus. The fuzzing itself is
 * tests/fuzz/run. The plugin target is test_fuzz_plugins: its header and
 * the HTTP parser's both name something lb_http_header. */
#include <signal.h>

#include "fuzz_replay.h"
#include "tap.h"

/* Each target defines LLVMFuzzerTestOneInput: one name per target here. */
#define LLVMFuzzerTestOneInput fuzz_hotmart_json_one
#include "../fuzz/fuzz_hotmart_json.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_hotmart_form_one
#include "../fuzz/fuzz_hotmart_form.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_canonical_one
#include "../fuzz/fuzz_canonical.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_http_head_one
#include "../fuzz/fuzz_http_head.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_http_chunked_one
#include "../fuzz/fuzz_http_chunked.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_http_server_one
#include "../fuzz/fuzz_http_server.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_pattern_meter_one
#include "../fuzz/fuzz_pattern_meter.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_rules_one
#define LLVMFuzzerInitialize fuzz_rules_initialize /* reads LB_RULES_DIR; here fuzz_rules_load instead */
#include "../fuzz/fuzz_rules.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

START_TEST(hotmart_json_seeds)
{
    size_t n = replay_dir(LB_TEST_FIXTURES, fuzz_hotmart_json_one) +
               replay_corpus("fuzz_hotmart_json", fuzz_hotmart_json_one);
    ck_assert_uint_ge(n, 15);
}
END_TEST

START_TEST(hotmart_form_seeds)
{
    ck_assert_uint_ge(replay_corpus("fuzz_hotmart_form", fuzz_hotmart_form_one), 4);
}
END_TEST

START_TEST(canonical_seeds)
{
    size_t n = replay_dir(LB_TEST_FIXTURES, fuzz_canonical_one) + replay_corpus("fuzz_canonical", fuzz_canonical_one);
    ck_assert_uint_ge(n, 19);
}
END_TEST

START_TEST(http_head_seeds)
{
    ck_assert_uint_ge(replay_corpus("fuzz_http_head", fuzz_http_head_one), 6);
}
END_TEST

START_TEST(http_chunked_seeds)
{
    ck_assert_uint_ge(replay_corpus("fuzz_http_chunked", fuzz_http_chunked_one), 7);
}
END_TEST

START_TEST(http_server_seeds)
{
    ck_assert_uint_ge(replay_corpus("fuzz_http_server", fuzz_http_server_one), 6);
}
END_TEST

/* The rule catalogue of rules/ over the saved events; the fixtures as
 * Hotmart webhooks are among them (tests/fuzz/run seeds them so). */
START_TEST(rules_seeds)
{
    ck_assert_uint_ge(fuzz_rules_load(LB_TEST_RULES_DIR), 20);
    ck_assert_uint_ge(catalogue.n_specs, 60);
    ck_assert_uint_ge(replay_corpus("fuzz_rules", fuzz_rules_one), 15);
    lb_rules_free(catalogue.rules);
    catalogue.rules = NULL;
}
END_TEST

START_TEST(pattern_meter_seeds)
{
    ck_assert_uint_ge(replay_corpus("fuzz_pattern_meter", fuzz_pattern_meter_one), 12);
}
END_TEST

/* The replays pass only because no check fired: this one makes sure a
 * failed check does end the test (aborts), rather than print and go on. */
START_TEST(a_target_aborts_on_a_broken_invariant)
{
    fuzz_must(0, "test_fuzz_corpus", "the check of the checker");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuzz_corpus");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hotmart_json_seeds);
    tcase_add_test(tc, hotmart_form_seeds);
    tcase_add_test(tc, canonical_seeds);
    tcase_add_test(tc, http_head_seeds);
    tcase_add_test(tc, http_chunked_seeds);
    tcase_add_test(tc, http_server_seeds);
    tcase_add_test(tc, rules_seeds);
    tcase_add_test(tc, pattern_meter_seeds);
    tcase_add_test_raise_signal(tc, a_target_aborts_on_a_broken_invariant, SIGABRT);
    suite_add_tcase(s, tc);
    return lb_run_suite_tap(s);
}
