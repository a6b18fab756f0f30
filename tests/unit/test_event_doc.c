/* test_event_doc.c: the normalized event's document built without json-c
 * (event_doc.c), its two forms on an lb_event (event.c), and the Hotmart
 * adapter's documents in both forms. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "event_doc.h"
#include "hotmart.h"
#include "json_flat.h"
#include "tap.h"

static void assert_text(lb_edoc *d, const char *want)
{
    size_t len = 0;
    const char *text = lb_edoc_text(d, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, want);
    ck_assert_uint_eq(len, strlen(want));
}

/* Two documents are the same JSON: compared as texts read back, because a
 * number sent as 19 is a double in json-c's tree (it keeps the sender's
 * spelling) and an integer once its text is read. */
static void assert_same_json(const char *text, json_object *tree)
{
    json_object *a = json_tokener_parse(text);
    json_object *b = json_tokener_parse(json_object_to_json_string_ext(tree, JSON_C_TO_STRING_PLAIN));
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(json_object_equal(a, b), "text %s, json-c %s", text, json_object_to_json_string(tree));
    json_object_put(a);
    json_object_put(b);
}

/* The text and the document's json-c form are the same JSON. */
static void assert_forms_agree(lb_edoc *d)
{
    json_object *made = lb_edoc_to_json(d);
    ck_assert_ptr_nonnull(made);
    assert_same_json(lb_edoc_text(d, NULL), made);
    json_object_put(made);
}

START_TEST(members_keep_insertion_order_within_groups)
{
    lb_edoc *d = lb_edoc_new();
    ck_assert_int_eq(lb_edoc_set_str(d, "id", "e-1"), 0);
    ck_assert_int_eq(lb_edoc_set_str(d, "product.id", "42"), 0);
    ck_assert_int_eq(lb_edoc_set_str(d, "lead.email", "a@b.c"), 0);
    ck_assert_int_eq(lb_edoc_set_str(d, "product.name", "Curso"), 0);
    ck_assert_int_eq(lb_edoc_set_int(d, "occurred_at", 1768482362000), 0);
    assert_text(d, "{\"id\":\"e-1\",\"product\":{\"id\":\"42\",\"name\":\"Curso\"},\"lead\":{\"email\":\"a@b.c\"},"
                   "\"occurred_at\":1768482362000}");
    assert_forms_agree(d);
    lb_edoc_free(d);
}
END_TEST

START_TEST(a_set_replaces_in_place)
{
    lb_edoc *d = lb_edoc_new();
    lb_edoc_set_int(d, "a", 1);
    lb_edoc_set_bool(d, "g.x", false);
    lb_edoc_set_int(d, "g.y", 2);
    lb_edoc_set_int(d, "b", 3);
    assert_text(d, "{\"a\":1,\"g\":{\"x\":false,\"y\":2},\"b\":3}"); /* the text is cached ... */
    lb_edoc_set_str(d, "a", "one");
    lb_edoc_set_bool(d, "g.x", true);
    assert_text(d, "{\"a\":\"one\",\"g\":{\"x\":true,\"y\":2},\"b\":3}"); /* ... and a set drops it */
    lb_edoc_free(d);
}
END_TEST

START_TEST(values_of_every_kind_are_written_as_json)
{
    lb_edoc *d = lb_edoc_new();
    lb_evalue price = {.type = LB_EV_NUM, .s = "49.90", .len = 5, .d = 49.9};
    lb_evalue nul = {.type = LB_EV_STR, .s = "a\0b", .len = 3};
    lb_evalue whole = {.type = LB_EV_NUM, .s = "19", .len = 2, .d = 19}; /* a price sent without decimals */
    ck_assert_int_eq(lb_edoc_set(d, "price", &price), 0);
    lb_edoc_set_int(d, "min", INT64_MIN);
    lb_edoc_set_int(d, "max", INT64_MAX);
    lb_edoc_set_int(d, "zero", 0);
    lb_edoc_set_bool(d, "yes", true);
    lb_edoc_set_str(d, "esc", "q\" b\\ n\n r\r t\t b\b f\f c\x01 d\x1f del\x7f /");
    lb_edoc_set_str(d, "utf8", "Inglês ✓");
    lb_edoc_set(d, "nul", &nul);
    lb_edoc_set_str(d, "empty", "");
    lb_edoc_set(d, "whole", &whole);
    assert_text(d, "{\"price\":49.90,\"min\":-9223372036854775808,\"max\":9223372036854775807,\"zero\":0,"
                   "\"yes\":true,\"esc\":\"q\\\" b\\\\ n\\n r\\r t\\t b\\b f\\f c\\u0001 d\\u001f del\x7f /\","
                   "\"utf8\":\"Inglês ✓\",\"nul\":\"a\\u0000b\",\"empty\":\"\",\"whole\":19}");
    assert_forms_agree(d);
    json_object *j = lb_edoc_to_json(d);
    json_object *v = json_object_object_get(j, "price");
    ck_assert_str_eq(json_object_to_json_string(v), "49.90"); /* the sender's spelling, in json-c too */
    ck_assert_double_eq(json_object_get_double(v), 49.9);
    ck_assert_int_eq(json_object_get_string_len(json_object_object_get(j, "nul")), 3);
    json_object_put(j);
    lb_edoc_free(d);
}
END_TEST

START_TEST(strings_are_copied_in_the_case_asked)
{
    lb_edoc *d = lb_edoc_new();
    char src[] = "Cartão_credit-1";
    lb_evalue up = {.type = LB_EV_STR, .str_case = LB_EV_UPPER, .s = src, .len = strlen(src)};
    lb_evalue low = {.type = LB_EV_STR, .str_case = LB_EV_LOWER, .s = src, .len = strlen(src)};
    lb_edoc_set(d, "up", &up);
    lb_edoc_set(d, "low", &low);
    memset(src, 'x', sizeof src - 1); /* copied, not referenced */
    ck_assert_str_eq(lb_edoc_str(d, "up"), "CARTãO_CREDIT-1");
    ck_assert_str_eq(lb_edoc_str(d, "low"), "cartão_credit-1");
    lb_edoc_free(d);
}
END_TEST

START_TEST(bad_paths_and_shape_conflicts_are_refused)
{
    lb_edoc *d = lb_edoc_new();
    lb_edoc_set_int(d, "s", 1);
    lb_edoc_set_int(d, "g.x", 2);
    const char *bad[] = {"", ".a", "a.", "a.b.c", "g..x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(lb_edoc_set_int(d, bad[i], 9) == -1, "path \"%s\" was taken", bad[i]);
    ck_assert_int_eq(lb_edoc_set_int(d, "g", 9), -1);   /* a group is not replaced by a scalar */
    ck_assert_int_eq(lb_edoc_set_int(d, "s.x", 9), -1); /* nor a scalar by a group */
    assert_text(d, "{\"s\":1,\"g\":{\"x\":2}}");
    lb_edoc_free(d);
}
END_TEST

START_TEST(reads_say_what_is_there)
{
    lb_edoc *d = lb_edoc_new();
    lb_edoc_set_str(d, "lead.email", "a@b.c");
    lb_edoc_set_int(d, "n", 7);
    lb_edoc_set_bool(d, "t", true);
    ck_assert(lb_edoc_has(d, "lead"));
    ck_assert(lb_edoc_has(d, "lead.email"));
    ck_assert(!lb_edoc_has(d, "lead.name"));
    ck_assert(!lb_edoc_has(d, "n.x"));
    ck_assert(!lb_edoc_has(d, "lea"));
    ck_assert_str_eq(lb_edoc_str(d, "lead.email"), "a@b.c");
    ck_assert_ptr_null(lb_edoc_str(d, "n"));    /* not a string */
    ck_assert_ptr_null(lb_edoc_str(d, "lead")); /* a group */
    ck_assert_int_eq(lb_edoc_int(d, "n", -1), 7);
    ck_assert_int_eq(lb_edoc_int(d, "t", -1), -1);
    ck_assert_int_eq(lb_edoc_int(d, "missing", -1), -1);
    ck_assert(lb_edoc_bool(d, "t", false));
    ck_assert(lb_edoc_bool(d, "n", true)); /* the fallback */
    lb_edoc_free(d);
}
END_TEST

/* More members than fit inline and strings longer than an arena block:
 * strings handed out earlier stay where they were. */
START_TEST(growth_keeps_earlier_strings_in_place)
{
    lb_edoc *d = lb_edoc_new();
    lb_edoc_set_str(d, "first", "kept");
    const char *first = lb_edoc_str(d, "first");
    char big[5000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 300; i++) {
        char path[32];
        snprintf(path, sizeof path, "g%d.k%d", i % 7, i);
        if (i % 50 == 0)
            ck_assert_int_eq(lb_edoc_set_str(d, path, big), 0);
        else
            ck_assert_int_eq(lb_edoc_set_int(d, path, i), 0);
    }
    ck_assert_ptr_eq(lb_edoc_str(d, "first"), first);
    ck_assert_str_eq(first, "kept");
    ck_assert_str_eq(lb_edoc_str(d, "g0.k0"), big);
    ck_assert_int_eq(lb_edoc_int(d, "g5.k299", -1), 299);
    assert_forms_agree(d);
    lb_edoc_free(d);
}
END_TEST

/* A reset document is empty and builds the next one as a new one would,
 * whatever the last one grew to. */
START_TEST(a_reset_document_builds_the_next_one_afresh)
{
    lb_edoc *d = lb_edoc_new();
    char big[3000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 100; i++) { /* past the inline members and arena */
        char path[16];
        snprintf(path, sizeof path, "g.k%d", i);
        ck_assert_int_eq(lb_edoc_set_str(d, path, big), 0);
    }
    ck_assert_ptr_nonnull(lb_edoc_text(d, NULL));
    lb_edoc_reset(d);
    ck_assert(!lb_edoc_has(d, "g"));
    assert_text(d, "{}");
    lb_edoc_set_str(d, "id", "e-2");
    lb_edoc_set_int(d, "lead.n", 1);
    assert_text(d, "{\"id\":\"e-2\",\"lead\":{\"n\":1}}");
    assert_forms_agree(d);
    lb_edoc_free(d);
}
END_TEST

/* ---- the event's two forms ---------------------------------------------- */

static void normalize_fixture(const char *name, lb_event *ev)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", LB_TEST_FIXTURES, name);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char body[1 << 16];
    size_t len = fread(body, 1, sizeof body, f);
    fclose(f);
    char why[160];
    lb_jflat *flat = lb_jflat_new();
    const lb_jnode *root = lb_jflat_parse(flat, body, len, 64, why, sizeof why);
    ck_assert_msg(root != NULL, "%s: %s", name, why);
    lb_error err;
    ck_assert_msg(lb_hotmart_normalize_flat(root, ev, &err) == 0, "%s: %s: %s", name, err.field, err.message);
    lb_jflat_free(flat);
    ck_assert_ptr_nonnull(ev->edoc);
    ck_assert_ptr_null(ev->doc);
}

static char *text_copy(lb_event *ev)
{
    size_t len;
    const char *t = lb_event_text(ev, &len);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(strlen(t), len);
    return strdup(t);
}

/* Every fixture: the text written from the edoc and the json-c document made
 * from it are the same document, and the same as the json-c path's
 * (lb_hotmart_normalize) document. */
START_TEST(every_fixture_has_one_document_in_both_forms)
{
    DIR *dir = opendir(LB_TEST_FIXTURES);
    ck_assert_ptr_nonnull(dir);
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(dir)) != NULL) {
        if (!strstr(e->d_name, ".json"))
            continue;
        lb_event ev;
        normalize_fixture(e->d_name, &ev);
        ck_assert_int_eq(lb_event_set_account(&ev, "acct"), 0);
        char *text = text_copy(&ev);
        json_object *read_back = json_tokener_parse(text);
        ck_assert_msg(read_back != NULL, "%s: %s", e->d_name, text);
        assert_same_json(text, lb_event_json(&ev));

        char path[4096];
        snprintf(path, sizeof path, "%s/%s", LB_TEST_FIXTURES, e->d_name);
        json_object *body = json_object_from_file(path);
        lb_event old;
        lb_error err;
        ck_assert_int_eq(lb_hotmart_normalize(body, &old, &err), 0);
        lb_event_set_account(&old, "acct");
        assert_same_json(text, old.doc);
        ck_assert_str_eq(ev.type, old.type);
        ck_assert_str_eq(ev.source_event_id, old.source_event_id);
        ck_assert_str_eq(ev.lead_email, old.lead_email);
        ck_assert_int_eq(ev.occurred_at_ms, old.occurred_at_ms);
        ck_assert(ev.test == old.test && ev.ignored == old.ignored);
        lb_event_clear(&old);
        json_object_put(body);
        json_object_put(read_back);
        free(text);
        lb_event_clear(&ev);
        seen++;
    }
    closedir(dir);
    ck_assert_int_ge(seen, 15);
}
END_TEST

/* Changes made through the event reach both forms, before and after the
 * json-c form exists. */
START_TEST(event_changes_reach_both_forms)
{
    lb_event ev;
    normalize_fixture("PURCHASE_APPROVED.json", &ev);
    ck_assert_int_eq(lb_event_set_account(&ev, "first"), 0);
    json_object *doc = lb_event_json(&ev);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(doc, "account")), "first");
    ck_assert_int_eq(lb_event_set_account(&ev, "second"), 0);
    ck_assert_int_eq(lb_event_set_ignored(&ev), 0);
    ck_assert(ev.ignored);
    char *text = text_copy(&ev);
    ck_assert_ptr_nonnull(strstr(text, "\"account\":\"second\""));
    ck_assert_ptr_nonnull(strstr(text, "\"ignored\":true"));
    assert_same_json(text, doc);
    free(text);
    lb_event_clear(&ev);
    ck_assert_ptr_null(ev.doc);
    ck_assert_ptr_null(ev.edoc);

    /* clearing may hand the edoc back instead of freeing it */
    normalize_fixture("PURCHASE_APPROVED.json", &ev);
    lb_edoc *kept = ev.edoc, *got = NULL;
    lb_event_json(&ev);
    lb_event_clear_keep_edoc(&ev, &got);
    ck_assert_ptr_eq(got, kept);
    ck_assert_ptr_null(ev.edoc);
    ck_assert_ptr_null(ev.doc);
    lb_edoc_reset(got);
    assert_text(got, "{}");
    lb_edoc_free(got);
}
END_TEST

/* Whichever form is the document, the stored text is the same bytes: the
 * same members in the same order, and "/" unescaped by both (a Hotmart 2.0
 * delivery stored through either path reads the same in the database). */
START_TEST(both_forms_write_the_same_text)
{
    DIR *dir = opendir(LB_TEST_FIXTURES);
    ck_assert_ptr_nonnull(dir);
    struct dirent *e;
    int with_slash = 0;
    while ((e = readdir(dir)) != NULL) {
        if (!strstr(e->d_name, ".json"))
            continue;
        lb_event ev;
        normalize_fixture(e->d_name, &ev);
        char *from_edoc = text_copy(&ev);
        lb_event_json_for_change(&ev); /* from here the json-c form is the document */
        char *from_json_c = text_copy(&ev);
        ck_assert_str_eq(from_json_c, from_edoc);
        ck_assert_msg(strstr(from_json_c, "\\/") == NULL, "%s: %s", e->d_name, from_json_c);
        with_slash += strchr(from_json_c, '/') != NULL;
        free(from_edoc);
        free(from_json_c);
        lb_event_clear(&ev);
    }
    closedir(dir);
    ck_assert_int_ge(with_slash, 1); /* a fixture with a URL in it, so the check can fail */
}
END_TEST

/* Once the json-c form is handed out for change, the text follows it. */
START_TEST(a_changed_json_form_becomes_the_document)
{
    lb_event ev;
    normalize_fixture("CLUB_MODULE_COMPLETED.json", &ev);
    const char *email = ev.lead_email;
    json_object *doc = lb_event_json_for_change(&ev);
    json_object_object_add(doc, "extra", json_object_new_int(5));
    ck_assert_int_eq(lb_event_set_account(&ev, "acct"), 0);
    char *text = text_copy(&ev);
    ck_assert_ptr_nonnull(strstr(text, "\"extra\":5"));
    ck_assert_ptr_nonnull(strstr(text, "\"account\":\"acct\""));
    ck_assert_ptr_eq(ev.lead_email, email); /* the scalars stay valid */
    free(text);
    lb_event_clear(&ev);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("event_doc");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, members_keep_insertion_order_within_groups);
    tcase_add_test(tc, a_set_replaces_in_place);
    tcase_add_test(tc, values_of_every_kind_are_written_as_json);
    tcase_add_test(tc, strings_are_copied_in_the_case_asked);
    tcase_add_test(tc, bad_paths_and_shape_conflicts_are_refused);
    tcase_add_test(tc, reads_say_what_is_there);
    tcase_add_test(tc, growth_keeps_earlier_strings_in_place);
    tcase_add_test(tc, a_reset_document_builds_the_next_one_afresh);
    tcase_add_test(tc, every_fixture_has_one_document_in_both_forms);
    tcase_add_test(tc, event_changes_reach_both_forms);
    tcase_add_test(tc, both_forms_write_the_same_text);
    tcase_add_test(tc, a_changed_json_form_becomes_the_document);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lb_run_suite_tap(suite());
}
