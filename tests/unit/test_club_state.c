/* test_club_state.c: the Club state's changes and their take-back
 * (club_state.c), which the ingest uses when an event's commit fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "club_state.h"
#include "tap.h"

#define DAY_MS ((int64_t)24 * 60 * 60 * 1000)

static json_object *progress_event(double progress)
{
    char text[256];
    snprintf(text, sizeof text,
             "{\"type\":\"club.progress\",\"account\":\"a\",\"occurred_at\":1000,"
             "\"product\":{\"id\":\"77\"},\"lead\":{\"email\":\"s@example.com\"},\"club\":{\"progress\":%g}}",
             progress);
    json_object *doc = json_tokener_parse(text);
    ck_assert_ptr_nonnull(doc);
    return doc;
}

/* Observes a progress event; returns the previous progress it was given (-1: none). */
static double observe(lb_club_state *s, double progress, lb_club_change *change, int want_dirty)
{
    json_object *doc = progress_event(progress), *club, *prev;
    lb_club_activity changed;
    ck_assert_int_eq(lb_club_state_observe(s, doc, &changed, change), want_dirty);
    ck_assert(json_object_object_get_ex(doc, "club", &club));
    double previous = json_object_object_get_ex(club, "previous_progress", &prev) ? json_object_get_double(prev) : -1;
    json_object_put(doc);
    return previous;
}

START_TEST(a_change_taken_back_leaves_the_state_as_it_was)
{
    lb_club_state *s = lb_club_state_new();
    lb_club_change first, second;
    ck_assert(observe(s, 40, &first, 1) == -1);
    ck_assert(observe(s, 60, &second, 1) == 40);
    ck_assert(lb_club_change_undo(&second));
    /* the retry of the 60 sees the 40 again, and changes the state again */
    ck_assert(observe(s, 60, &second, 1) == 40);
    lb_club_state_free(s);
}
END_TEST

START_TEST(a_change_another_built_on_waits_for_that_one)
{
    lb_club_state *s = lb_club_state_new();
    lb_club_change base, first, second;
    observe(s, 10, &base, 1);
    observe(s, 40, &first, 1);
    observe(s, 60, &second, 1);
    ck_assert(!lb_club_change_undo(&first)); /* the 60 built on it */
    ck_assert(lb_club_change_undo(&second));
    ck_assert(lb_club_change_undo(&first));
    ck_assert(!lb_club_change_undo(&first)); /* once only */
    ck_assert(observe(s, 50, &first, 1) == 10);
    lb_club_state_free(s);
}
END_TEST

START_TEST(an_event_that_changes_nothing_has_no_change)
{
    lb_club_state *s = lb_club_state_new();
    lb_club_change c;
    observe(s, 70, &c, 1);
    ck_assert(observe(s, 50, &c, 0) == 70);
    ck_assert_ptr_null(c.entry);
    ck_assert(!lb_club_change_undo(&c));
    lb_club_state_free(s);
}
END_TEST

typedef struct scan_seen {
    int calls, days;
    lb_club_change change;
} scan_seen;

static void record(void *ud, const lb_club_activity *a, int days, const lb_club_change *change)
{
    scan_seen *seen = ud;
    (void)a;
    seen->calls++;
    seen->days = days;
    seen->change = *change;
}

START_TEST(an_inactivity_mark_taken_back_is_made_again_by_the_next_scan)
{
    lb_club_state *s = lb_club_state_new();
    lb_club_activity row = {.account = "a", .product_id = "77", .lead_email = "s@example.com",
                            .last_access_ms = DAY_MS, .max_progress = -1};
    ck_assert_int_eq(lb_club_state_restore(s, &row), 0);
    scan_seen seen = {0};
    lb_club_state_scan(s, 17 * DAY_MS, record, &seen);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_int_eq(seen.days, 16);
    lb_club_state_scan(s, 17 * DAY_MS, record, &seen);
    ck_assert_int_eq(seen.calls, 1); /* marked: once per period */
    ck_assert(lb_club_change_undo(&seen.change));
    lb_club_state_scan(s, 17 * DAY_MS, record, &seen);
    ck_assert_int_eq(seen.calls, 2);
    lb_club_state_free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("club_state");
    TCase *tc = tcase_create("changes");
    tcase_add_test(tc, a_change_taken_back_leaves_the_state_as_it_was);
    tcase_add_test(tc, a_change_another_built_on_waits_for_that_one);
    tcase_add_test(tc, an_event_that_changes_nothing_has_no_change);
    tcase_add_test(tc, an_inactivity_mark_taken_back_is_made_again_by_the_next_scan);
    suite_add_tcase(s, tc);
    return lb_run_suite_tap(s);
}
