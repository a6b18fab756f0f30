/* test_canonical.c: POST /v1/events bodies (the normalized shape) validated
 * and copied into an lb_event. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonical.h"
#include "json_get.h"
#include "tap.h"

static json_object *parse(const char *text)
{
    json_object *v = json_tokener_parse(text);
    ck_assert_msg(v != NULL, "bad test JSON: %s", text);
    return v;
}

/* A valid minimal event of `type`, as a document to modify. */
static json_object *minimal(const char *type)
{
    json_object *root = parse("{\"id\":\"evt-1\",\"lead\":{\"email\":\"ana@example.com\"}}");
    json_object_object_add(root, "type", json_object_new_string(type));
    return root;
}

static void set(json_object *root, const char *path, const char *json)
{
    ck_assert_int_eq(lb_jset(root, path, parse(json), NULL), 0);
}

/* Normalizes and releases root: the event must own a copy. */
static void normalize_ok(json_object *root, lb_event *ev)
{
    lb_error err = {{0}, {0}};
    int rc = lb_canonical_normalize(root, ev, &err);
    json_object_put(root);
    ck_assert_msg(rc == 0, "refused: %s: %s", err.field, err.message);
    ck_assert_str_eq(ev->source, "api");
}

static void normalize_fails(json_object *root, const char *field)
{
    lb_event ev, zero;
    lb_error err = {{0}, {0}};
    memset(&ev, 0x5a, sizeof ev);
    memset(&zero, 0, sizeof zero);
    int rc = lb_canonical_normalize(root, &ev, &err);
    json_object_put(root);
    ck_assert_int_eq(rc, -1);
    ck_assert_str_eq(err.field, field);
    ck_assert(err.message[0] != '\0');
    ck_assert_msg(memcmp(&ev, &zero, sizeof ev) == 0, "event not cleared after an error");
}

#define STR(ev, path, want) ck_assert_pstr_eq(lb_jstr((ev)->doc, path), want)
#define ABSENT(ev, path) ck_assert_msg(lb_jget((ev)->doc, path) == NULL, "%s should be absent", path)

static int64_t int_at(const lb_event *ev, const char *path)
{
    json_object *v = lb_jget(ev->doc, path);
    ck_assert_msg(json_object_is_type(v, json_type_int), "%s is not an integer", path);
    return json_object_get_int64(v);
}

static bool bool_at(const lb_event *ev, const char *path)
{
    json_object *v = lb_jget(ev->doc, path);
    ck_assert_msg(json_object_is_type(v, json_type_boolean), "%s is not a boolean", path);
    return json_object_get_boolean(v);
}

/* ---- accepted --------------------------------------------------------------- */

START_TEST(minimal_event)
{
    lb_event ev;
    normalize_ok(minimal("purchase.approved"), &ev);
    ck_assert_str_eq(ev.type, "purchase.approved");
    ck_assert_str_eq(ev.source_event_id, "evt-1");
    ck_assert_str_eq(ev.source_type, "purchase.approved"); /* defaults to the type */
    ck_assert_str_eq(ev.lead_email, "ana@example.com");
    ck_assert_ptr_null(ev.product_id);
    ck_assert_int_eq(ev.occurred_at_ms, 0);
    ck_assert(!ev.ignored);
    ck_assert(!ev.test);
    STR(&ev, "source", "api");
    ck_assert(!bool_at(&ev, "ignored"));
    ck_assert(!bool_at(&ev, "test"));
    ABSENT(&ev, "occurred_at");
    lb_event_clear(&ev);
}
END_TEST

static const struct {
    const char *type;
    const char *field; /* what the type is about, NULL if nothing */
    const char *value;
} api_types[] = {
    {"purchase.started", NULL, NULL},
    {"product.rated", "rating", "{\"score\":4.5,\"comment\":\"Ótimo\"}"},
    {"smart_installment.status_changed", "smart_installment", "{\"status\":\"overdue\"}"},
    {"file.downloaded", "file", "{\"name\":\"ebook.pdf\"}"},
    {"club.registered", NULL, NULL},
    {"club.progress", "club", "{\"progress\":50}"},
    {"club.last_access", "club", "{\"last_access_at\":\"2026-02-20T12:00:00Z\"}"},
    {"subscription.status_changed", "subscription", "{\"status\":\"CANCELED_BY_CUSTOMER\"}"},
};

START_TEST(api_only_types)
{
    lb_event ev;
    json_object *root = minimal(api_types[_i].type);
    if (api_types[_i].field != NULL)
        set(root, api_types[_i].field, api_types[_i].value);
    normalize_ok(root, &ev);
    ck_assert_str_eq(ev.type, api_types[_i].type);
    STR(&ev, "type", api_types[_i].type);
    lb_event_clear(&ev);

    /* Without the field the type is about, the event is refused. */
    static const char *const required[] = {
        NULL, "rating.score", "smart_installment.status", NULL, NULL, "club.progress",
        "club.last_access_at", "subscription.status",
    };
    if (required[_i] != NULL)
        normalize_fails(minimal(api_types[_i].type), required[_i]);
}
END_TEST

START_TEST(api_only_values)
{
    lb_event ev;
    json_object *root = minimal("product.rated");
    set(root, "rating", "{\"score\":4.5,\"comment\":\"\\u00d3timo\"}");
    normalize_ok(root, &ev);
    ck_assert_double_eq_tol(json_object_get_double(lb_jget(ev.doc, "rating.score")), 4.5, 1e-9);
    STR(&ev, "rating.comment", "\xc3\x93timo");
    lb_event_clear(&ev);

    root = minimal("club.last_access");
    set(root, "club", "{\"last_access_at\":\"2026-02-20T12:00:00Z\",\"progress\":12.5}");
    normalize_ok(root, &ev);
    ck_assert_int_eq(int_at(&ev, "club.last_access_at"), 1771588800000LL); /* ISO to ms */
    lb_event_clear(&ev);

    root = minimal("subscription.status_changed");
    set(root, "subscription", "{\"status\":\"CANCELED_BY_CUSTOMER\"}");
    normalize_ok(root, &ev);
    STR(&ev, "subscription.status", "canceled_by_customer"); /* lower-cased */
    lb_event_clear(&ev);
}
END_TEST

static const char *const hotmart_types[] = {
    "cart.abandoned", "purchase.billet_printed", "purchase.approved", "purchase.complete",
    "purchase.canceled", "purchase.protest", "purchase.refunded", "purchase.chargeback",
    "purchase.expired", "purchase.delayed", "subscription.canceled", "subscription.plan_switched",
    "subscription.charge_date_updated", "club.first_access", "club.module_completed",
};

START_TEST(hotmart_types_accepted)
{
    lb_event ev;
    normalize_ok(minimal(hotmart_types[_i]), &ev);
    ck_assert_str_eq(ev.type, hotmart_types[_i]);
    lb_event_clear(&ev);
}
END_TEST

START_TEST(full_event_normalized)
{
    lb_event ev;
    normalize_ok(parse("{\"id\":\"evt-9\",\"type\":\"purchase.approved\",\"source_type\":\"order.paid\","
                       "\"occurred_at\":\"2026-02-20T09:00:00-03:00\",\"test\":true,"
                       "\"product\":{\"id\":4123456,\"name\":\"Curso\",\"ucode\":\"u-1\"},"
                       "\"lead\":{\"email\":\" Ana@Example.COM \",\"name\":\"Ana\",\"first_name\":\"Ana\","
                       "\"last_name\":\"T\",\"phone\":\"5511987654321\",\"country\":\"br\",\"language\":\"pt-BR\"},"
                       "\"purchase\":{\"transaction\":\"T1\",\"status\":\"APPROVED\",\"payment_method\":\"pix\","
                       "\"installments\":3,\"currency\":\"brl\",\"price\":197,\"full_price\":210.5,"
                       "\"offer\":\"o1\",\"coupon\":\"C\",\"recurrence\":2,\"is_order_bump\":false,"
                       "\"ordered_at\":1768482131000,\"approved_at\":1768482340000.0,"
                       "\"pix_code\":\"000201\",\"affiliate\":true},"
                       "\"subscription\":{\"id\":5512345,\"plan_id\":\"987654\",\"status\":\"active\","
                       "\"old_charge_day\":15,\"new_charge_day\":20,\"recurrence_value\":49.9},"
                       "\"club\":{\"module_id\":\"m1\",\"module_name\":\"Intro\"},"
                       "\"extra\":{\"utm\":\"x\"}}"),
                 &ev);
    ck_assert_str_eq(ev.source_type, "order.paid");
    ck_assert_int_eq(ev.occurred_at_ms, 1771588800000LL);
    ck_assert(ev.test);
    ck_assert_str_eq(ev.product_id, "4123456"); /* number to string */
    ck_assert_str_eq(ev.lead_email, "ana@example.com");
    STR(&ev, "lead.country", "BR");
    STR(&ev, "lead.language", "pt-BR");
    STR(&ev, "purchase.status", "approved");
    STR(&ev, "purchase.payment_method", "PIX");
    STR(&ev, "purchase.currency", "BRL");
    ck_assert_int_eq(int_at(&ev, "purchase.approved_at"), 1768482340000LL); /* integral double */
    ck_assert_int_eq(int_at(&ev, "purchase.installments"), 3);
    STR(&ev, "subscription.id", "5512345");
    STR(&ev, "club.module_name", "Intro");
    STR(&ev, "extra.utm", "x"); /* undocumented keys are kept */
    lb_event_clear(&ev);
}
END_TEST

START_TEST(server_fields_forced)
{
    lb_event ev;
    json_object *root = minimal("purchase.approved");
    set(root, "source", "\"hotmart\"");
    set(root, "ignored", "true");
    set(root, "account", "\"someone-else\"");
    normalize_ok(root, &ev);
    ck_assert_str_eq(ev.source, "api");
    STR(&ev, "source", "api");
    ck_assert(!ev.ignored);
    ck_assert(!bool_at(&ev, "ignored"));
    ABSENT(&ev, "account");
    lb_event_clear(&ev);

    root = minimal("purchase.approved");
    set(root, "source", "[1]"); /* overwritten, whatever it was */
    normalize_ok(root, &ev);
    STR(&ev, "source", "api");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(nulls_dropped)
{
    lb_event ev;
    json_object *root = parse("{\"id\":\"e\",\"type\":\"purchase.approved\",\"product\":null,"
                              "\"lead\":{\"email\":\"a@b.c\",\"name\":null,\"country\":null},"
                              "\"purchase\":{\"price\":null},\"occurred_at\":null,\"x\":[1,null]}");
    normalize_ok(root, &ev);
    ABSENT(&ev, "product");
    ABSENT(&ev, "lead.name");
    ABSENT(&ev, "lead.country");
    ABSENT(&ev, "occurred_at");
    ck_assert_int_eq((int)json_object_array_length(lb_jget(ev.doc, "x")), 2);
    ck_assert_ptr_nonnull(lb_jget(ev.doc, "purchase"));
    ck_assert_ptr_null(lb_jget(ev.doc, "purchase.price"));
    lb_event_clear(&ev);
}
END_TEST

START_TEST(event_owns_a_copy)
{
    lb_event ev;
    lb_error err = {{0}, {0}};
    json_object *root = minimal("purchase.approved");
    ck_assert_int_eq(lb_canonical_normalize(root, &ev, &err), 0);
    json_object_object_add(root, "id", json_object_new_string("changed"));
    ck_assert_str_eq(ev.source_event_id, "evt-1");
    json_object_put(root);
    ck_assert_str_eq(ev.source_event_id, "evt-1");
    ck_assert_str_eq(ev.lead_email, "ana@example.com");
    lb_event_clear(&ev);
}
END_TEST

/* ---- refused ---------------------------------------------------------------- */

START_TEST(required_fields)
{
    json_object *root = minimal("purchase.approved");
    json_object_object_del(root, "type");
    normalize_fails(root, "type");

    root = minimal("purchase.approved");
    json_object_object_del(root, "id");
    normalize_fails(root, "id");

    root = minimal("purchase.approved");
    set(root, "id", "\"\"");
    normalize_fails(root, "id");

    root = minimal("purchase.approved");
    json_object_object_del(root, "lead");
    normalize_fails(root, "lead.email");

    root = minimal("purchase.approved");
    set(root, "lead", "{\"name\":\"Ana\"}");
    normalize_fails(root, "lead.email");

    root = minimal("purchase.approved");
    set(root, "lead.email", "\"  \"");
    normalize_fails(root, "lead.email");

    root = minimal("purchase.approved");
    set(root, "type", "\"\"");
    normalize_fails(root, "type");
}
END_TEST

START_TEST(unknown_types_refused)
{
    static const char *const types[] = {"unknown", "purchase.approve", "PURCHASE_APPROVED", "Purchase.Approved", "x"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        normalize_fails(minimal(types[i]), "type");
}
END_TEST

static const struct {
    const char *path;
    const char *value;
    const char *field; /* NULL: path */
} wrong[] = {
    {"id", "42", NULL},
    {"type", "7", NULL},
    {"type", "[\"purchase.approved\"]", NULL},
    {"lead", "\"ana@example.com\"", NULL},
    {"lead.email", "42", NULL},
    {"lead.email", "\"ana.example.com\"", NULL},
    {"lead.email", "\"ana@ex ample.com\"", NULL},
    {"lead.name", "{}", NULL},
    {"lead.country", "\"Brasil\"", NULL},
    {"lead.country", "76", NULL},
    {"source_type", "1", NULL},
    {"occurred_at", "true", NULL},
    {"occurred_at", "\"yesterday\"", NULL},
    {"test", "\"yes\"", NULL},
    {"product", "[]", NULL},
    {"product.id", "1.5", NULL},
    {"product.id", "\"\"", NULL},
    {"product.id", "false", NULL},
    {"purchase", "\"approved\"", NULL},
    {"purchase.price", "\"197\"", NULL},
    {"purchase.installments", "\"3\"", NULL},
    {"purchase.installments", "2.5", NULL},
    {"purchase.is_order_bump", "0", NULL},
    {"purchase.status", "1", NULL},
    {"purchase.approved_at", "{}", NULL},
    {"subscription.old_charge_day", "\"15\"", NULL},
    {"subscription.recurrence_value", "\"49.9\"", NULL},
    {"club", "1", NULL},
    {"club.progress", "\"50%\"", NULL},
    {"club.progress", "150", NULL},
    {"club.progress", "-1", NULL},
    {"rating.score", "\"5\"", NULL},
    {"smart_installment.status", "true", NULL},
    {"file", "\"ebook.pdf\"", NULL},
};

START_TEST(wrong_types_refused)
{
    json_object *root = minimal("purchase.approved");
    set(root, wrong[_i].path, wrong[_i].value);
    normalize_fails(root, wrong[_i].field ? wrong[_i].field : wrong[_i].path);
}
END_TEST

/* Integers past their type are refused, not clamped. json-c clamps without
 * saying so and drops the digits, so an id there must come as a string. */
static const struct {
    const char *path;
    const char *value;
} out_of_range[] = {
    {"occurred_at", "99999999999999999999"},
    {"occurred_at", "9223372036854775808"},
    {"purchase.installments", "99999999999999999999"},
    {"purchase.installments", "-99999999999999999999"},
    {"purchase.installments", "18446744073709551615"},
    {"purchase.installments", "1e19"},
    {"purchase.price", "99999999999999999999"},
    {"subscription.old_charge_day", "18446744073709551616"},
    {"club.progress", "-99999999999999999999"},
    {"product.id", "99999999999999999999"},
    {"subscription.id", "-99999999999999999999"},
    /* keys the shape does not document are kept as sent, so what json-c
     * clamped cannot be kept: refused too */
    {"extra", "99999999999999999999"},
    {"extra", "18446744073709551615"},
    {"extra", "-99999999999999999999"},
    {"extra.deeper", "-9223372036854775808"},
};

START_TEST(out_of_range_refused)
{
    lb_event ev;
    lb_error err = {{0}, {0}};
    json_object *root = minimal("purchase.approved");
    set(root, out_of_range[_i].path, out_of_range[_i].value);
    ck_assert_int_eq(lb_canonical_normalize(root, &ev, &err), -1);
    json_object_put(root);
    ck_assert_str_eq(err.field, out_of_range[_i].path);
    ck_assert_msg(strstr(err.message, "out of range") != NULL, "%s", err.message);
}
END_TEST

START_TEST(integers_in_range_kept)
{
    lb_event ev;
    json_object *root = minimal("purchase.approved");
    set(root, "purchase.installments", "9223372036854775807");
    set(root, "product.id", "18446744073709551614");
    set(root, "purchase.price", "18446744073709551614");
    set(root, "extra.big", "18446744073709551614");
    set(root, "extra.small", "-9223372036854775807");
    normalize_ok(root, &ev);
    ck_assert_int_eq(int_at(&ev, "purchase.installments"), INT64_MAX);
    STR(&ev, "product.id", "18446744073709551614");
    ck_assert_str_eq(json_object_to_json_string(lb_jget(ev.doc, "purchase.price")), "18446744073709551614");
    ck_assert_str_eq(json_object_to_json_string_ext(lb_jget(ev.doc, "extra"), JSON_C_TO_STRING_PLAIN),
                     "{\"big\":18446744073709551614,\"small\":-9223372036854775807}");
    lb_event_clear(&ev);
}
END_TEST

/* In an array of an undocumented key too, named by its index. */
START_TEST(clamped_integer_in_an_array_refused)
{
    json_object *root = minimal("purchase.approved");
    set(root, "extra", "{\"list\":[1,99999999999999999999]}");
    normalize_fails(root, "extra.list[1]");
}
END_TEST

/* json-c reads numbers JSON does not have and writes them back as spelled:
 * they are refused wherever they are, or the stored text would not be JSON. */
static const char *const odd_numbers[] = {"1.", "-1.", "-.5", "00.5", "01.5", "1.e5", "-0.E1"};

START_TEST(odd_number_spellings_refused)
{
    static const char *const paths[] = {"purchase.price", "rating.score", "extra", "extra.deeper"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        char body[256];
        lb_event ev;
        lb_error err = {{0}, {0}};
        json_object *root = minimal("purchase.approved");
        snprintf(body, sizeof body, "{\"v\":%s}", odd_numbers[_i]);
        json_object *holder = parse(body), *v = NULL;
        ck_assert_msg(json_object_object_get_ex(holder, "v", &v) && json_object_is_type(v, json_type_double),
                      "json-c no longer reads %s", odd_numbers[_i]);
        ck_assert_int_eq(lb_jset(root, paths[i], json_object_get(v), NULL), 0);
        json_object_put(holder);
        ck_assert_int_eq(lb_canonical_normalize(root, &ev, &err), -1);
        json_object_put(root);
        ck_assert_str_eq(err.field, paths[i]);
        ck_assert_msg(strstr(err.message, "RFC 8259") != NULL, "%s", err.message);
    }
}
END_TEST

START_TEST(number_spellings_kept)
{
    lb_event ev;
    json_object *root = parse("{\"id\":\"n\",\"type\":\"purchase.approved\",\"lead\":{\"email\":\"a@b.c\"},"
                              "\"purchase\":{\"price\":49.90,\"full_price\":1E+2},\"extra\":[-0.0,2.5e-3]}");
    normalize_ok(root, &ev);
    ck_assert_str_eq(json_object_to_json_string_ext(lb_jget(ev.doc, "purchase"), JSON_C_TO_STRING_PLAIN),
                     "{\"price\":49.90,\"full_price\":1E+2}");
    ck_assert_str_eq(json_object_to_json_string_ext(lb_jget(ev.doc, "extra"), JSON_C_TO_STRING_PLAIN), "[-0.0,2.5e-3]");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(hostile_bodies)
{
    normalize_fails(parse("[]"), "");
    normalize_fails(parse("\"event\""), "");

    json_object *root = minimal("purchase.approved");
    json_object_object_add(root, "extra", json_tokener_parse("NaN"));
    normalize_fails(root, "extra");

    root = minimal("purchase.approved");
    set(root, "extra", "{\"a\":[1,2,{\"b\":1}]}");
    json_object_array_add(lb_jget(root, "extra.a"), json_tokener_parse("-Infinity"));
    normalize_fails(root, "extra.a[3]");

    root = minimal("purchase.approved");
    json_object_object_add(lb_jget(root, "lead"), "email", json_object_new_string_len("a@b.c\0x", 7));
    normalize_fails(root, "lead.email");

    char long_id[200];
    memset(long_id, 'i', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    root = minimal("purchase.approved");
    json_object_object_add(root, "id", json_object_new_string(long_id));
    normalize_fails(root, "id");
}
END_TEST

START_TEST(deep_nesting_refused)
{
    json_tokener *tok = json_tokener_new_ex(1000);
    size_t depth = 500;
    char *text = malloc(depth * 8 + 256);
    ck_assert_ptr_nonnull(text);
    char *p = text + sprintf(text, "{\"id\":\"e\",\"type\":\"purchase.approved\",\"lead\":{\"email\":\"a@b.c\"},\"x\":");
    for (size_t i = 0; i < depth; i++)
        p += sprintf(p, "{\"a\":");
    p += sprintf(p, "1");
    for (size_t i = 0; i < depth; i++)
        *p++ = '}';
    strcpy(p, "}");
    json_object *root = json_tokener_parse_ex(tok, text, (int)strlen(text));
    json_tokener_free(tok);
    free(text);
    ck_assert_ptr_nonnull(root);
    lb_event ev;
    lb_error err = {{0}, {0}};
    ck_assert_int_eq(lb_canonical_normalize(root, &ev, &err), -1);
    ck_assert_msg(strncmp(err.field, "x.a.a.a", 7) == 0, "field %s", err.field);
    ck_assert_ptr_null(ev.doc);
    json_object_put(root);

    /* Moderate nesting in an extra key is fine. */
    lb_event ok;
    normalize_ok(parse("{\"id\":\"e\",\"type\":\"purchase.approved\",\"lead\":{\"email\":\"a@b.c\"},"
                       "\"x\":{\"a\":{\"b\":{\"c\":[[[1]]]}}}}"),
                 &ok);
    ck_assert(json_object_is_type(lb_jget(ok.doc, "x.a.b.c[0]"), json_type_array));
    lb_event_clear(&ok);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("canonical");
    TCase *ok = tcase_create("accepted");
    tcase_add_test(ok, minimal_event);
    tcase_add_loop_test(ok, api_only_types, 0, (int)(sizeof api_types / sizeof api_types[0]));
    tcase_add_test(ok, api_only_values);
    tcase_add_loop_test(ok, hotmart_types_accepted, 0, (int)(sizeof hotmart_types / sizeof hotmart_types[0]));
    tcase_add_test(ok, full_event_normalized);
    tcase_add_test(ok, server_fields_forced);
    tcase_add_test(ok, nulls_dropped);
    tcase_add_test(ok, event_owns_a_copy);
    tcase_add_test(ok, integers_in_range_kept);
    tcase_add_test(ok, number_spellings_kept);
    suite_add_tcase(s, ok);

    TCase *bad = tcase_create("refused");
    tcase_add_test(bad, required_fields);
    tcase_add_test(bad, unknown_types_refused);
    tcase_add_loop_test(bad, wrong_types_refused, 0, (int)(sizeof wrong / sizeof wrong[0]));
    tcase_add_loop_test(bad, out_of_range_refused, 0, (int)(sizeof out_of_range / sizeof out_of_range[0]));
    tcase_add_loop_test(bad, odd_number_spellings_refused, 0, (int)(sizeof odd_numbers / sizeof *odd_numbers));
    tcase_add_test(bad, clamped_integer_in_an_array_refused);
    tcase_add_test(bad, hostile_bodies);
    tcase_add_test(bad, deep_nesting_refused);
    suite_add_tcase(s, bad);
    return s;
}

int main(void)
{
    return lb_run_suite_tap(make_suite());
}
