/* test_fuzz_plugins.c: tests/fuzz/fuzz_plugin.c's target, once for each
 * provider plugin this build made (plugins/built/<name>.so), over the jobs
 * and provider answers saved for it in tests/fuzz/corpus/fuzz_plugin_<name>/:
 * the hostile answers that once broke a plugin stay fixed, and the harness's
 * checks (clean URLs, headers and JSON bodies; one completion; no stall)
 * hold on them under the sanitizers. The fuzzing itself is tests/fuzz/run. */
#include <signal.h>

#include "fuzz_replay.h"
#include "tap.h"

#define LLVMFuzzerTestOneInput fuzz_plugin_one
#define LLVMFuzzerInitialize fuzz_plugin_initialize /* reads LB_FUZZ_PLUGIN; here fuzz_plugin_load instead */
#include "../fuzz/fuzz_plugin.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

static const char *const plugins[] = {"activecampaign", "convertkit", "mailchimp", "example"};

START_TEST(saved_inputs_pass)
{
    const char *dir = getenv("LB_PLUGIN_DIR");
    char so[4096], target[128];
    snprintf(so, sizeof so, "%s/%s.so", dir ? dir : LB_TEST_PLUGIN_DIR, plugins[_i]);
    snprintf(target, sizeof target, "fuzz_plugin_%s", plugins[_i]);
    fuzz_plugin_load(so);
    ck_assert_uint_ge(replay_corpus(target, fuzz_plugin_one), 3);
}
END_TEST

static void never_called(const lb_http_resp *resp, void *ud)
{
    (void)resp;
    (void)ud;
}

/* The replays pass only because no check fired: a plugin that breaks the
 * contract (here, a request on a call it already completed) must end the
 * run, not be let through. */
START_TEST(a_request_after_completing_aborts)
{
    run r = {0};
    lb_call call = {.run = &r, .finished = true};
    lb_http_req req = {.method = "GET", .url = "https://provider.example/api"};
    fake_http_request(&call, &req, never_called, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuzz_plugins");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, saved_inputs_pass, 0, (int)(sizeof plugins / sizeof plugins[0]));
    tcase_add_test_raise_signal(tc, a_request_after_completing_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return lb_run_suite_tap(s);
}
