/* fuzz_replay.h: feeding saved fuzz inputs to a target's
 * LLVMFuzzerTestOneInput in a Check test (test_fuzz_corpus,
 * test_fuzz_plugins). */
#ifndef LB_FUZZ_REPLAY_H
#define LB_FUZZ_REPLAY_H

#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
