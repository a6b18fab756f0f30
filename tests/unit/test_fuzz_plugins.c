/* test_fuzz_plugins.c: tests/fuzz/fuzz_plugin.c's target, once for each
 * plugin with a saved corpus, against the .so this build made of it
 * (plugins/built/<name>.so), over the jobs
 * and provider answers saved for it in tests/fuzz/corpus/fuzz_plugin_<name>/:
 * the hostile answers that once broke a plugin stay fixed, and the harness's
 * checks (clean URLs, headers and JSON bodies; one completion; no stall)
 * hold on them under the sanitizers; and the named inputs, each made for
 * one fix, end with the outcome that fix gives. The fuzzing itself is
 * tests/fuzz/run. */
#include <signal.h>

#include "fuzz_replay.h"
#include "tap.h"

#define LLVMFuzzerTestOneInput fuzz_plugin_one
#define LLVMFuzzerInitialize fuzz_plugin_initialize /* reads LB_FUZZ_PLUGIN; here fuzz_plugin_load instead */
#include "../fuzz/fuzz_plugin.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#define CORPUS_PREFIX "fuzz_plugin_"

/* The plugins with a saved corpus, found by its folder's name
 * (tests/fuzz/corpus/fuzz_plugin_NAME), as tests/fuzz/run names its
 * targets: a new plugin's corpus is replayed without a list to extend. */
static char plugins[32][64];
static int n_plugins;

static void find_plugins(void)
{
    DIR *d = opendir(LB_TEST_FUZZ_CORPUS);
    if (d == NULL)
        return; /* the test that needs them fails on the count */
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n_plugins < (int)(sizeof plugins / sizeof plugins[0]))
        if (strncmp(e->d_name, CORPUS_PREFIX, strlen(CORPUS_PREFIX)) == 0)
            snprintf(plugins[n_plugins++], sizeof plugins[0], "%s", e->d_name + strlen(CORPUS_PREFIX));
    closedir(d);
}

/* The plugin's .so as this build made it, loaded for the calls that follow. */
static void load_plugin(const char *name)
{
    const char *dir = getenv("LB_PLUGIN_DIR");
    char so[4096];
    snprintf(so, sizeof so, "%s/%s.so", dir ? dir : LB_TEST_PLUGIN_DIR, name);
    fuzz_plugin_load(so);
}

START_TEST(every_bundled_plugin_has_a_corpus)
{
    ck_assert_int_ge(n_plugins, 4); /* activecampaign, convertkit, example, mailchimp */
}
END_TEST

START_TEST(saved_inputs_pass)
{
    char target[128];
    snprintf(target, sizeof target, CORPUS_PREFIX "%s", plugins[_i]);
    load_plugin(plugins[_i]);
    ck_assert_uint_ge(replay_corpus(target, fuzz_plugin_one), 3);
}
END_TEST

/* What a named input must end with: a malformed id in an answer is the
 * provider's passing fault (RETRY), in the job's params the job's (FAIL), and
 * never something the plugin reports back as the contact's id. */
static const struct expected_outcome {
    const char *plugin, *input;
    lb_status status;
    unsigned requests;
    const char *reason;       /* a part of it */
    const char *provider_ref; /* exactly */
} outcomes[] = {
    {"activecampaign", "association_id_with_a_space", LB_RETRY, 2, "invalid association id", ""},
    {"activecampaign", "contact_id_that_would_close_the_body", LB_RETRY, 1, "without a valid contact.id", ""},
    {"activecampaign", "tag_id_with_a_quote", LB_RETRY, 1, "tag lookup: answer with an invalid tag id", ""},
    {"activecampaign", "list_id_with_a_leading_zero", LB_FAIL, 0, "not \"01\"", ""},
    {"activecampaign", "upsert_with_quotes_and_newlines_in_the_name", LB_OK, 1, "contact synced", "12"},
    {"mailchimp", "audiences_that_never_end", LB_OK, 50, "50 lists", ""},
    {"mailchimp", "dot_as_an_audience_id", LB_FAIL, 0, "are not Mailchimp audience ids", NULL},
    {"mailchimp", "member_never_found_after_creating_it", LB_RETRY, 3, "still not found after creating it", NULL},
    {"convertkit", "dot_as_a_subscriber_id", LB_RETRY, 1, "subscriber upsert: no answer", ""},
    {"convertkit", "upsert_answer_with_a_dot_subscriber_id", LB_RETRY, 1, "without a valid subscriber.id", ""},
    {"convertkit", "tag_create_answer_with_a_dot_tag_id", LB_RETRY, 1, "without a valid tag.id", "5"},
    {"convertkit", "tag_lookup_answer_with_a_dot_dot_tag_id", LB_RETRY, 1, "answer with an invalid tag id", "5"},
    {"convertkit", "member_answer_with_a_dot_subscriber_id", LB_OK, 1, "added to form", "5"},
};

START_TEST(named_inputs_end_as_their_fix_says)
{
    const struct expected_outcome *want = &outcomes[_i];
    char path[4096];
    snprintf(path, sizeof path, "%s/" CORPUS_PREFIX "%s/%s", LB_TEST_FUZZ_CORPUS, want->plugin, want->input);
    load_plugin(want->plugin);
    size_t len;
    char *data = read_all(path, &len);
    lb_call call = fuzz_plugin_call((const uint8_t *)data, len);
    free(data);
    ck_assert_msg(call.completed, "%s: not completed", want->input);
    ck_assert_msg(call.result.status == want->status, "%s: status %d, want %d (%s)", want->input,
                  (int)call.result.status, (int)want->status, call.result.reason);
    ck_assert_msg(call.requests == want->requests, "%s: %u requests, want %u", want->input, call.requests,
                  want->requests);
    ck_assert_msg(strstr(call.result.reason, want->reason) != NULL, "%s: reason \"%s\"", want->input,
                  call.result.reason);
    if (want->provider_ref) /* NULL: Mailchimp's is the e-mail's hash, whatever happened */
        ck_assert_str_eq(call.result.provider_ref, want->provider_ref);
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
    find_plugins();
    tcase_add_test(tc, every_bundled_plugin_has_a_corpus);
    tcase_add_loop_test(tc, saved_inputs_pass, 0, n_plugins);
    tcase_add_loop_test(tc, named_inputs_end_as_their_fix_says, 0, (int)(sizeof outcomes / sizeof outcomes[0]));
    tcase_add_test_raise_signal(tc, a_request_after_completing_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return lb_run_suite_tap(s);
}
