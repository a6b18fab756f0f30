/* test_db_lock.c: one listbossd per database (db_lock.c), its refusals and
 * the errors of every step. The e2e lifecycle test covers two daemons; this
 * covers what two processes cannot easily be made to hit. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db_lock.h"
#include "tap.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/lb-test-db-lock.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void path_in_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void read_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

START_TEST(the_lock_names_its_holder_and_is_released)
{
    make_dir();
    char db[128], lock[160], text[64], want[64];
    path_in_dir(db, sizeof db, "sub/store.db"); /* the folder is made */
    snprintf(lock, sizeof lock, "%s-listbossd.lock", db);
    lb_error err = {{0}, {0}};
    int fd = lb_db_lock(db, &err);
    ck_assert_msg(fd >= 0, "%s", err.message);
    read_file(lock, text, sizeof text);
    snprintf(want, sizeof want, "%d\n", (int)getpid());
    ck_assert_str_eq(text, want);

    /* a second holder (another open file description) is refused by name */
    ck_assert_int_eq(lb_db_lock(db, &err), -1);
    ck_assert_str_eq(err.field, "database");
    snprintf(want, sizeof want, "is in use by listbossd (pid %d)", (int)getpid());
    ck_assert_msg(strstr(err.message, want) != NULL, "%s", err.message);

    /* the holder's id unreadable: still refused, without a pid */
    int w = open(lock, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(w, 0);
    ck_assert_int_eq(write(w, "x\n", 2), 2);
    close(w);
    ck_assert_int_eq(lb_db_lock(db, &err), -1);
    ck_assert_msg(strstr(err.message, "is in use by another process") != NULL, "%s", err.message);

    lb_db_unlock(fd);
    int again = lb_db_lock(db, &err);
    ck_assert_msg(again >= 0, "%s", err.message);
    lb_db_unlock(again);
    lb_db_unlock(-1); /* a no-op */
    remove_dir();
}
END_TEST

START_TEST(a_folder_that_cannot_be_made_is_named)
{
    make_dir();
    char db[128];
    path_in_dir(db, sizeof db, "missing/twice/store.db"); /* one level is made, not two */
    lb_error err = {{0}, {0}};
    ck_assert_int_eq(lb_db_lock(db, &err), -1);
    ck_assert_str_eq(err.field, "database");
    ck_assert_msg(strstr(err.message, "cannot create directory") && strstr(err.message, "missing/twice"), "%s",
                  err.message);
    remove_dir();
}
END_TEST

START_TEST(a_lock_file_that_cannot_be_opened_is_named)
{
    make_dir();
    char db[128], lock[160], file[128];
    lb_error err = {{0}, {0}};
    /* the lock's name is taken by a folder */
    path_in_dir(db, sizeof db, "store.db");
    snprintf(lock, sizeof lock, "%s-listbossd.lock", db);
    ck_assert_int_eq(mkdir(lock, 0700), 0);
    ck_assert_int_eq(lb_db_lock(db, &err), -1);
    ck_assert_msg(strstr(err.message, "cannot open") && strstr(err.message, "Is a directory"), "%s", err.message);
    /* the database's folder is a file */
    path_in_dir(file, sizeof file, "plain");
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(db, sizeof db, "%s/store.db", file);
    ck_assert_int_eq(lb_db_lock(db, &err), -1);
    ck_assert_msg(strstr(err.message, "Not a directory") != NULL, "%s", err.message);
    remove_dir();
}
END_TEST

START_TEST(a_path_too_long_is_refused)
{
    char db[4100];
    memset(db, 'a', sizeof db - 1);
    db[sizeof db - 1] = '\0';
    lb_error err = {{0}, {0}};
    ck_assert_int_eq(lb_db_lock(db, &err), -1);
    ck_assert_str_eq(err.message, "path too long");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("db_lock");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, the_lock_names_its_holder_and_is_released);
    tcase_add_test(tc, a_folder_that_cannot_be_made_is_named);
    tcase_add_test(tc, a_lock_file_that_cannot_be_opened_is_named);
    tcase_add_test(tc, a_path_too_long_is_refused);
    suite_add_tcase(s, tc);
    return lb_run_suite_tap(s);
}
