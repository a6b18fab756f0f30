/* test_fuzz_corpus.c: every fuzz target of tests/fuzz, run over its seeds
 * (the Hotmart fixtures for the JSON bodies, tests/fuzz/corpus/<target>/ for
 * all), so the targets keep building with the core, their invariants hold on
 * known inputs under the sanitizers, and an input that once crashed a
 * target stays fixed once it is added to the corpus. The fuzzing itself is
 * tests/fuzz/run. */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#define LLVMFuzzerTestOneInput fuzz_http_server_one
#include "../fuzz/fuzz_http_server.c"
#undef LLVMFuzzerTestOneInput

typedef int (*fuzz_one)(const uint8_t *data, size_t size);

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        size_t n = fread(buf + *len, 1, cap - *len, f);
        if (n == 0)
            break;
        *len += n;
    }
    fclose(f);
    return buf;
}

/* Feeds every file of dir to one; returns how many there were. */
static size_t replay_dir(const char *dir, fuzz_one one)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *data = read_all(path, &len);
        /* an exact-size copy, so the sanitizers see a read past the end */
        uint8_t *exact = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(exact);
        memcpy(exact, data, len);
        free(data);
        one(exact, len);
        free(exact);
        count++;
    }
    closedir(d);
    return count;
}

static size_t replay_corpus(const char *target, fuzz_one one)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", LB_TEST_FUZZ_CORPUS, target);
    return replay_dir(dir, one);
}

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

START_TEST(http_server_seeds)
{
    ck_assert_uint_ge(replay_corpus("fuzz_http_server", fuzz_http_server_one), 6);
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
    tcase_add_test(tc, http_server_seeds);
    tcase_add_test_raise_signal(tc, a_target_aborts_on_a_broken_invariant, SIGABRT);
    suite_add_tcase(s, tc);
    return lb_run_suite_tap(s);
}
