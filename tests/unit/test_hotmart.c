/* test_hotmart.c: the Hotmart adapters (2.0.0 JSON and 1.0 form) and the
 * json_get accessors under them: every fixture field by field, a variant for
 * each quirk of spec section 8, and bad or hostile input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hotmart.h"
#include "json_get.h"
#include "tap.h"

#define OCCURRED 1768482362000LL /* creation_date of every fixture */

/* ---- helpers ---------------------------------------------------------------- */

static json_object *fixture(const char *event)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", LB_TEST_FIXTURES, event);
    json_object *root = json_object_from_file(path);
    ck_assert_msg(root != NULL, "cannot read %s", path);
    return root;
}

static json_object *parse(const char *text)
{
    json_object *v = json_tokener_parse(text);
    ck_assert_msg(v != NULL, "bad test JSON: %s", text);
    return v;
}

/* root[path] = value (JSON text). */
static void set(json_object *root, const char *path, const char *json)
{
    ck_assert_int_eq(lb_jset(root, path, parse(json), NULL), 0);
}

/* The object holding path's last key, and that key. */
static json_object *parent_of(json_object *root, const char *path, const char **key)
{
    const char *dot = strrchr(path, '.');
    char parent[128];
    snprintf(parent, sizeof parent, "%.*s", dot ? (int)(dot - path) : 0, path);
    json_object *obj = dot ? lb_jget(root, parent) : root;
    ck_assert_msg(json_object_is_type(obj, json_type_object), "no parent object for %s", path);
    *key = dot ? dot + 1 : path;
    return obj;
}

static void set_null(json_object *root, const char *path)
{
    const char *key = NULL;
    json_object *parent = parent_of(root, path, &key);
    json_object_object_add(parent, key, NULL);
}

static void del(json_object *root, const char *path)
{
    const char *key = NULL;
    json_object *parent = parent_of(root, path, &key);
    json_object_object_del(parent, key);
}

/* Normalizes and releases root, so every check below also proves that the
 * event does not point into the delivery. */
static void normalize_ok(json_object *root, lb_event *ev)
{
    lb_error err = {{0}, {0}};
    int rc = lb_hotmart_normalize(root, ev, &err);
    json_object_put(root);
    ck_assert_msg(rc == 0, "normalize failed: %s: %s", err.field, err.message);
    ck_assert_ptr_nonnull(ev->doc);
}

static void assert_cleared(const lb_event *ev)
{
    lb_event zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_msg(memcmp(ev, &zero, sizeof zero) == 0, "event not cleared after an error");
}

static void normalize_fails(json_object *root, const char *field)
{
    lb_event ev;
    lb_error err = {{0}, {0}};
    memset(&ev, 0x5a, sizeof ev); /* garbage in: must come out cleared */
    int rc = lb_hotmart_normalize(root, &ev, &err);
    json_object_put(root);
    ck_assert_int_eq(rc, -1);
    ck_assert_str_eq(err.field, field);
    ck_assert_msg(err.message[0] != '\0', "no message for %s", field);
    assert_cleared(&ev);
}

/* The fixture `event` as text with the value at path written as `raw` (JSON
 * text json-c would not keep as written: 99999999999999999999, 1.). */
static char *fixture_text_with(const char *event, const char *path, const char *raw)
{
    static const char mark[] = "\"@raw@\"";
    json_object *root = fixture(event);
    set(root, path, mark);
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    const char *at = strstr(text, mark);
    ck_assert_ptr_nonnull(at);
    size_t head = (size_t)(at - text), tail = strlen(at + strlen(mark));
    char *out = malloc(head + strlen(raw) + tail + 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, text, head);
    strcpy(out + head, raw);
    strcat(out, at + strlen(mark));
    json_object_put(root);
    return out;
}

/* Normalizes text as the daemon does (the flat reader, no json-c tree in
 * between); returns normalize's result, with ev and err filled. */
static int normalize_flat_text(const char *text, lb_event *ev, lb_error *err)
{
    char why[160];
    lb_jflat *f = lb_jflat_new();
    ck_assert_ptr_nonnull(f);
    const lb_jnode *root = lb_jflat_parse(f, text, strlen(text), 64, why, sizeof why);
    ck_assert_msg(root != NULL, "%s: %s", why, text);
    int rc = lb_hotmart_normalize_flat(root, ev, err);
    if (rc == 0)
        ck_assert_ptr_nonnull(lb_event_json(ev));
    lb_jflat_free(f);
    return rc;
}

/* The fixture with path = raw, through the flat reader: must normalize. */
static void raw_ok(const char *event, const char *path, const char *raw, lb_event *ev)
{
    lb_error err = {{0}, {0}};
    char *text = fixture_text_with(event, path, raw);
    int rc = normalize_flat_text(text, ev, &err);
    ck_assert_msg(rc == 0, "%s = %s refused: %s: %s", path, raw, err.field, err.message);
    free(text);
}

/* ... must be refused, naming `field`, with a message containing `why`. */
static void raw_fails(const char *event, const char *path, const char *raw, const char *field, const char *why)
{
    lb_event ev;
    lb_error err = {{0}, {0}};
    char *text = fixture_text_with(event, path, raw);
    ck_assert_msg(normalize_flat_text(text, &ev, &err) == -1, "%s = %s accepted", path, raw);
    ck_assert_str_eq(err.field, field);
    ck_assert_msg(strstr(err.message, why) != NULL, "%s = %s: \"%s\" does not say %s", path, raw, err.message, why);
    free(text);
}

/* Asserts the body hottok of root as the daemon reads it: from the text,
 * through the flat reader. want NULL: none; else its want_len bytes. */
static void body_hottok_is(json_object *root, const char *want, size_t want_len)
{
    const char *text = json_object_to_json_string(root);
    char why[120];
    lb_jflat *f = lb_jflat_new();
    ck_assert_ptr_nonnull(f);
    const lb_jnode *n = lb_jflat_parse(f, text, strlen(text), 64, why, sizeof why);
    ck_assert_msg(n != NULL, "%s", why);
    size_t len = 0;
    const char *tok = lb_hotmart_body_hottok(n, &len);
    if (want == NULL) {
        ck_assert_ptr_null(tok);
    } else {
        ck_assert_ptr_nonnull(tok);
        ck_assert_uint_eq(len, want_len);
        ck_assert(memcmp(tok, want, len) == 0);
    }
    lb_jflat_free(f);
}

#define STR(ev, path, want) ck_assert_pstr_eq(lb_jstr((ev)->doc, path), want)
#define ABSENT(ev, path) ck_assert_msg(lb_jget((ev)->doc, path) == NULL, "%s should be absent", path)

static int64_t int_at(const lb_event *ev, const char *path)
{
    json_object *v = lb_jget(ev->doc, path);
    ck_assert_msg(json_object_is_type(v, json_type_int), "%s is not an integer", path);
    return json_object_get_int64(v);
}

static double num_at(const lb_event *ev, const char *path)
{
    json_object *v = lb_jget(ev->doc, path);
    ck_assert_msg(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int),
                  "%s is not a number", path);
    return json_object_get_double(v);
}

static bool bool_at(const lb_event *ev, const char *path)
{
    json_object *v = lb_jget(ev->doc, path);
    ck_assert_msg(json_object_is_type(v, json_type_boolean), "%s is not a boolean", path);
    return json_object_get_boolean(v);
}

#define INT(ev, path, want) ck_assert_int_eq(int_at(ev, path), want)
#define NUM(ev, path, want) ck_assert_double_eq_tol(num_at(ev, path), want, 1e-9)
#define BOOL(ev, path, want) ck_assert_int_eq(bool_at(ev, path), want)

/* The normalized shape never holds null nor a token. */
static void assert_clean(json_object *v)
{
    ck_assert_ptr_nonnull(v);
    if (json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, key, val)
        {
            ck_assert_msg(strcmp(key, "hottok") != 0, "hottok copied into the event");
            assert_clean(val);
        }
    }
}

static void assert_envelope(const lb_event *ev, const char *id, const char *source_type,
                            const char *type)
{
    ck_assert_str_eq(ev->source, "hotmart");
    STR(ev, "source", "hotmart");
    ck_assert_pstr_eq(ev->source_event_id, id);
    STR(ev, "id", id);
    ck_assert_pstr_eq(ev->source_type, source_type);
    STR(ev, "source_type", source_type);
    ck_assert_str_eq(ev->type, type);
    STR(ev, "type", type);
    ck_assert(!ev->ignored);
    BOOL(ev, "ignored", false);
    ck_assert(!ev->test);
    BOOL(ev, "test", false);
    ck_assert_int_eq(ev->occurred_at_ms, OCCURRED);
    INT(ev, "occurred_at", OCCURRED);
    ck_assert_pstr_eq(ev->product_id, "4123456");
    STR(ev, "product.id", "4123456");
    STR(ev, "product.name", "Curso Teste de Inglês");
    ck_assert_ptr_nonnull(ev->lead_email);
    STR(ev, "lead.email", ev->lead_email);
    ABSENT(ev, "lead.language"); /* Hotmart never sends one */
    assert_clean(ev->doc);
}

/* The buyer of the nine PURCHASE_* fixtures. */
static void assert_buyer(const lb_event *ev)
{
    STR(ev, "lead.email", "ana.teste@example.com");
    STR(ev, "lead.name", "Ana Teste");
    STR(ev, "lead.first_name", "Ana");
    STR(ev, "lead.last_name", "Teste");
    STR(ev, "lead.phone", "11987654321");
    STR(ev, "lead.country", "BR");
    STR(ev, "product.ucode", "7c706b05-9600-45e3-8de5-3ca7f9f2662c");
}

/* What the nine PURCHASE_* fixtures share in purchase.*. */
static void assert_purchase_common(const lb_event *ev)
{
    STR(ev, "purchase.transaction", "HP17715690036014");
    STR(ev, "purchase.currency", "BRL");
    NUM(ev, "purchase.price", 197.0);
    NUM(ev, "purchase.full_price", 197.0);
    STR(ev, "purchase.offer", "k7x9q2ab");
    BOOL(ev, "purchase.is_order_bump", false);
    BOOL(ev, "purchase.affiliate", true);
    STR(ev, "purchase.affiliate_code", "Q12345678A");
    ABSENT(ev, "club");
}

static void assert_subscription_active_plan(const lb_event *ev, const char *status, const char *raw)
{
    STR(ev, "subscription.status", status);
    STR(ev, "subscription.status_raw", raw);
    STR(ev, "subscription.plan_id", "987654");
    STR(ev, "subscription.plan_name", "Plano Mensal Teste");
    STR(ev, "subscription.subscriber_code", "AB12CD34");
    INT(ev, "subscription.next_charge_at", 1771156800000LL);
}

/* ---- every fixture: the envelope ------------------------------------------- */

static const struct {
    const char *event;
    const char *type;
    const char *email;
} fixtures[] = {
    {"PURCHASE_OUT_OF_SHOPPING_CART", "cart.abandoned", "bruno.teste@example.com"},
    {"PURCHASE_BILLET_PRINTED", "purchase.billet_printed", "ana.teste@example.com"},
    {"PURCHASE_APPROVED", "purchase.approved", "ana.teste@example.com"},
    {"PURCHASE_COMPLETE", "purchase.complete", "ana.teste@example.com"},
    {"PURCHASE_CANCELED", "purchase.canceled", "ana.teste@example.com"},
    {"PURCHASE_PROTEST", "purchase.protest", "ana.teste@example.com"},
    {"PURCHASE_REFUNDED", "purchase.refunded", "ana.teste@example.com"},
    {"PURCHASE_CHARGEBACK", "purchase.chargeback", "ana.teste@example.com"},
    {"PURCHASE_EXPIRED", "purchase.expired", "ana.teste@example.com"},
    {"PURCHASE_DELAYED", "purchase.delayed", "ana.teste@example.com"},
    {"SUBSCRIPTION_CANCELLATION", "subscription.canceled", "carla.teste@example.com"},
    {"SWITCH_PLAN", "subscription.plan_switched", "carla.teste@example.com"},
    {"UPDATE_SUBSCRIPTION_CHARGE_DATE", "subscription.charge_date_updated", "carla.teste@example.com"},
    {"CLUB_FIRST_ACCESS", "club.first_access", "ana.teste@example.com"},
    {"CLUB_MODULE_COMPLETED", "club.module_completed", "ana.teste@example.com"},
};

START_TEST(every_fixture_envelope)
{
    json_object *root = fixture(fixtures[_i].event);
    char id[64];
    snprintf(id, sizeof id, "%s", lb_jstr(root, "id"));
    lb_event ev;
    normalize_ok(root, &ev);
    assert_envelope(&ev, id, fixtures[_i].event, fixtures[_i].type);
    ck_assert_pstr_eq(ev.lead_email, fixtures[_i].email);
    lb_event_clear(&ev);
    assert_cleared(&ev);
}
END_TEST

/* ---- every fixture: field by field ----------------------------------------- */

START_TEST(fixture_purchase_approved)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_APPROVED"), &ev);
    assert_envelope(&ev, "0d3eb9b4-2c15-4484-9399-5642c3f61942", "PURCHASE_APPROVED", "purchase.approved");
    assert_buyer(&ev);
    assert_purchase_common(&ev);
    STR(&ev, "purchase.status", "approved");
    STR(&ev, "purchase.status_raw", "APPROVED");
    STR(&ev, "purchase.payment_method", "CREDIT_CARD");
    INT(&ev, "purchase.installments", 12);
    STR(&ev, "purchase.coupon", "TESTE10");
    INT(&ev, "purchase.recurrence", 1);
    INT(&ev, "purchase.ordered_at", 1768482131000LL);
    INT(&ev, "purchase.approved_at", 1768482340000LL);
    INT(&ev, "purchase.next_charge_at", 1771156800000LL);
    ABSENT(&ev, "purchase.billet_url");
    ABSENT(&ev, "purchase.pix_code");
    ABSENT(&ev, "purchase.refusal_reason");
    assert_subscription_active_plan(&ev, "active", "ACTIVE");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_purchase_billet_printed)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_BILLET_PRINTED"), &ev);
    assert_buyer(&ev);
    assert_purchase_common(&ev);
    STR(&ev, "purchase.status", "billet_printed");
    STR(&ev, "purchase.status_raw", "BILLET_PRINTED");
    STR(&ev, "purchase.payment_method", "BILLET");
    INT(&ev, "purchase.installments", 1);
    STR(&ev, "purchase.billet_url", "https://hotm.art/bHP17715690036014");
    STR(&ev, "purchase.billet_barcode", "34191090080123456789012345678901234567890019700");
    INT(&ev, "purchase.ordered_at", 1768482131000LL);
    ABSENT(&ev, "purchase.approved_at");
    ABSENT(&ev, "purchase.pix_code");
    ABSENT(&ev, "purchase.coupon");
    ABSENT(&ev, "purchase.recurrence");
    ABSENT(&ev, "subscription");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_purchase_canceled)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_CANCELED"), &ev);
    assert_buyer(&ev);
    assert_purchase_common(&ev);
    STR(&ev, "purchase.status", "canceled");
    STR(&ev, "purchase.status_raw", "CANCELED");
    STR(&ev, "purchase.refusal_reason", "Transaction refused");
    INT(&ev, "purchase.recurrence", 1);
    ABSENT(&ev, "purchase.approved_at");
    assert_subscription_active_plan(&ev, "inactive", "INACTIVE");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_purchase_chargeback)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_CHARGEBACK"), &ev);
    assert_buyer(&ev);
    assert_purchase_common(&ev);
    STR(&ev, "purchase.status", "chargeback");
    STR(&ev, "purchase.status_raw", "CHARGEBACK");
    STR(&ev, "purchase.payment_method", "CREDIT_CARD");
    INT(&ev, "purchase.installments", 6);
    INT(&ev, "purchase.approved_at", 1768482340000LL);
    ABSENT(&ev, "purchase.next_charge_at");
    ABSENT(&ev, "subscription");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_purchase_complete)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_COMPLETE"), &ev);
    assert_buyer(&ev);
    assert_purchase_common(&ev);
    STR(&ev, "purchase.status", "completed");
    STR(&ev, "purchase.status_raw", "COMPLETED");
    INT(&ev, "purchase.approved_at", 1768482340000LL);
    assert_subscription_active_plan(&ev, "active", "ACTIVE");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_purchase_delayed)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_DELAYED"), &ev);
    assert_buyer(&ev);
    assert_purchase_common(&ev);
    STR(&ev, "purchase.status", "delayed");
    STR(&ev, "purchase.status_raw", "DELAYED");
    STR(&ev, "purchase.refusal_reason", "UNKNOWN");
    INT(&ev, "purchase.recurrence", 3);
    INT(&ev, "purchase.ordered_at", 1768726800000LL);
    assert_subscription_active_plan(&ev, "overdue", "DELAYED");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_purchase_expired)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_EXPIRED"), &ev);
    assert_buyer(&ev);
    assert_purchase_common(&ev);
    STR(&ev, "purchase.status", "expired");
    STR(&ev, "purchase.status_raw", "EXPIRED");
    STR(&ev, "purchase.payment_method", "BILLET");
    STR(&ev, "purchase.billet_url", "https://hotm.art/bHP17715690036014");
    ABSENT(&ev, "subscription");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_purchase_protest)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_PROTEST"), &ev);
    assert_buyer(&ev);
    assert_purchase_common(&ev);
    STR(&ev, "purchase.status", "dispute");
    STR(&ev, "purchase.status_raw", "DISPUTE");
    assert_subscription_active_plan(&ev, "active", "ACTIVE");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_purchase_refunded)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_REFUNDED"), &ev);
    assert_buyer(&ev);
    assert_purchase_common(&ev);
    STR(&ev, "purchase.status", "refunded");
    STR(&ev, "purchase.status_raw", "REFUNDED");
    INT(&ev, "purchase.installments", 3);
    ABSENT(&ev, "subscription");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_cart_abandoned)
{
    lb_event ev;
    normalize_ok(fixture("PURCHASE_OUT_OF_SHOPPING_CART"), &ev);
    STR(&ev, "lead.email", "bruno.teste@example.com");
    STR(&ev, "lead.name", "Bruno Teste");
    STR(&ev, "lead.phone", "11912345678"); /* buyer.phone, not checkout_phone */
    STR(&ev, "lead.country", "BR");        /* data.checkout_country.iso */
    ABSENT(&ev, "lead.first_name");
    ABSENT(&ev, "product.ucode");
    STR(&ev, "purchase.offer", "k7x9q2ab");
    BOOL(&ev, "purchase.affiliate", false);
    ABSENT(&ev, "purchase.status");
    ABSENT(&ev, "purchase.transaction");
    ABSENT(&ev, "subscription");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_subscription_cancellation)
{
    lb_event ev;
    normalize_ok(fixture("SUBSCRIPTION_CANCELLATION"), &ev);
    STR(&ev, "lead.email", "carla.teste@example.com");
    STR(&ev, "lead.name", "Carla Teste");
    STR(&ev, "lead.phone", "11987650000"); /* dddCell + cell */
    ABSENT(&ev, "lead.country");
    STR(&ev, "subscription.id", "5512345");
    STR(&ev, "subscription.plan_id", "987654");
    STR(&ev, "subscription.plan_name", "Plano Mensal Teste");
    STR(&ev, "subscription.subscriber_code", "AB12CD34");
    INT(&ev, "subscription.next_charge_at", 1771156800000LL);
    INT(&ev, "subscription.canceled_at", 1768482362000LL);
    NUM(&ev, "subscription.recurrence_value", 49.9);
    ABSENT(&ev, "subscription.status"); /* the payload does not say who canceled */
    ABSENT(&ev, "purchase");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_switch_plan)
{
    lb_event ev;
    normalize_ok(fixture("SWITCH_PLAN"), &ev);
    STR(&ev, "lead.email", "carla.teste@example.com");
    ABSENT(&ev, "lead.name"); /* subscription.user carries only the e-mail */
    STR(&ev, "product.id", "4123456"); /* from data.subscription.product */
    STR(&ev, "subscription.plan_id", "987655"); /* the plans[] entry with current = true */
    STR(&ev, "subscription.plan_name", "Plano Anual Teste");
    STR(&ev, "subscription.offer", "p4n8w1zz");
    STR(&ev, "subscription.status", "active");
    STR(&ev, "subscription.status_raw", "ACTIVE");
    STR(&ev, "subscription.subscriber_code", "AB12CD34");
    INT(&ev, "subscription.next_charge_at", 1771156800000LL);
    INT(&ev, "subscription.switched_at", 1768482300000LL);
    ABSENT(&ev, "purchase");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_update_charge_date)
{
    json_object *root = fixture("UPDATE_SUBSCRIPTION_CHARGE_DATE");
    body_hottok_is(root, "TESTHOTTOK0000000000000000000000000000000", 41);
    lb_event ev;
    normalize_ok(root, &ev);
    STR(&ev, "lead.email", "carla.teste@example.com");
    STR(&ev, "lead.name", "Carla Teste");
    ABSENT(&ev, "lead.phone");
    STR(&ev, "product.id", "4123456");
    INT(&ev, "subscription.old_charge_day", 15);
    INT(&ev, "subscription.new_charge_day", 20);
    INT(&ev, "subscription.next_charge_at", 1771588800000LL); /* "2026-02-20T12:00:00.000Z" */
    STR(&ev, "subscription.plan_id", "987654");
    STR(&ev, "subscription.plan_name", "Plano Mensal Teste");
    STR(&ev, "subscription.offer", "k7x9q2ab");
    STR(&ev, "subscription.status", "active");
    STR(&ev, "subscription.subscriber_code", "AB12CD34");
    ABSENT(&ev, "hottok");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_club_first_access)
{
    lb_event ev;
    normalize_ok(fixture("CLUB_FIRST_ACCESS"), &ev);
    INT(&ev, "occurred_at", OCCURRED); /* from creationDate */
    STR(&ev, "lead.email", "ana.teste@example.com");
    STR(&ev, "lead.name", "Ana Teste");
    ABSENT(&ev, "club");
    ABSENT(&ev, "purchase");
    ABSENT(&ev, "subscription");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(fixture_club_module_completed)
{
    lb_event ev;
    normalize_ok(fixture("CLUB_MODULE_COMPLETED"), &ev);
    STR(&ev, "product.id", "4123456"); /* sent as a string */
    STR(&ev, "lead.name", "Ana Teste");
    STR(&ev, "club.module_id", "aB3dE5gH7j");
    STR(&ev, "club.module_name", "Módulo 1 - Boas-vindas");
    ABSENT(&ev, "club.progress");
    lb_event_clear(&ev);
}
END_TEST

/* ---- quirks (spec section 8) ------------------------------------------------ */

START_TEST(body_hottok_accessor)
{
    json_object *root = fixture("PURCHASE_APPROVED");
    body_hottok_is(root, NULL, 0); /* most deliveries carry none */
    set(root, "hottok", "\"abc\"");
    body_hottok_is(root, "abc", 3);
    set(root, "hottok", "42");
    body_hottok_is(root, NULL, 0);
    /* whole, NUL and all: compared as "ab" it could match a hottok "ab"; as
     * these 5 bytes it is wrong, and the sender is told so */
    json_object_object_add(root, "hottok", json_object_new_string_len("ab\0cd", 5));
    body_hottok_is(root, "ab\0cd", 5);
    json_object_put(root);
    root = parse("[\"hottok\"]");
    body_hottok_is(root, NULL, 0);
    json_object_put(root);
    size_t len = 0;
    ck_assert_ptr_null(lb_hotmart_body_hottok(NULL, &len));
}
END_TEST

START_TEST(creation_date_spellings)
{
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    del(root, "creation_date");
    set(root, "creationDate", "1768482000000");
    normalize_ok(root, &ev);
    ck_assert_int_eq(ev.occurred_at_ms, 1768482000000LL);
    lb_event_clear(&ev);

    root = fixture("CLUB_FIRST_ACCESS");
    set(root, "creation_date", "1768481000000"); /* both: the documented one wins */
    normalize_ok(root, &ev);
    ck_assert_int_eq(ev.occurred_at_ms, 1768481000000LL);
    lb_event_clear(&ev);

    root = fixture("CLUB_FIRST_ACCESS");
    del(root, "creationDate"); /* neither: omitted, not invented */
    normalize_ok(root, &ev);
    ck_assert_int_eq(ev.occurred_at_ms, 0);
    ABSENT(&ev, "occurred_at");
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "creation_date", "\"2026-02-20T12:00:00.000Z\"");
    normalize_ok(root, &ev);
    ck_assert_int_eq(ev.occurred_at_ms, 1771588800000LL);
    lb_event_clear(&ev);
}
END_TEST

START_TEST(product_id_string_or_number)
{
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    set(root, "data.product.id", "\"4123456\"");
    normalize_ok(root, &ev);
    ck_assert_pstr_eq(ev.product_id, "4123456");
    lb_event_clear(&ev);

    root = fixture("CLUB_MODULE_COMPLETED");
    set(root, "data.product.id", "4123456");
    normalize_ok(root, &ev);
    ck_assert_pstr_eq(ev.product_id, "4123456");
    lb_event_clear(&ev);

    root = fixture("UPDATE_SUBSCRIPTION_CHARGE_DATE");
    set(root, "data.subscription.product.id", "\"777\"");
    set(root, "data.product", "{\"id\": 999}"); /* not where this event keeps it */
    normalize_ok(root, &ev);
    ck_assert_pstr_eq(ev.product_id, "777");
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "data.product.id", "18446744073709551615"); /* past INT64_MAX */
    normalize_ok(root, &ev);
    ck_assert_pstr_eq(ev.product_id, "18446744073709551615");
    lb_event_clear(&ev);

    root = fixture("SUBSCRIPTION_CANCELLATION");
    del(root, "data.product"); /* a product is optional */
    normalize_ok(root, &ev);
    ck_assert_ptr_null(ev.product_id);
    ABSENT(&ev, "product");
    lb_event_clear(&ev);

    normalize_fails(parse("{\"id\":\"x\",\"event\":\"PURCHASE_APPROVED\",\"data\":{\"product\":{\"id\":1.5},"
                          "\"buyer\":{\"email\":\"a@b.c\"}}}"),
                    "data.product.id");
}
END_TEST

START_TEST(date_next_charge_ms_or_iso)
{
    lb_event ev;
    json_object *root = fixture("UPDATE_SUBSCRIPTION_CHARGE_DATE");
    set(root, "data.subscription.date_next_charge", "1771588800000");
    normalize_ok(root, &ev);
    INT(&ev, "subscription.next_charge_at", 1771588800000LL);
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "data.purchase.date_next_charge", "\"2026-02-20T12:00:00Z\"");
    normalize_ok(root, &ev);
    INT(&ev, "purchase.next_charge_at", 1771588800000LL);
    INT(&ev, "subscription.next_charge_at", 1771588800000LL);
    lb_event_clear(&ev);

    root = fixture("SWITCH_PLAN");
    set(root, "data.subscription.date_next_charge", "\"2026-02-20T09:00:00-03:00\"");
    normalize_ok(root, &ev);
    INT(&ev, "subscription.next_charge_at", 1771588800000LL);
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "data.purchase.date_next_charge", "1.7711568E12"); /* a double, integral */
    normalize_ok(root, &ev);
    INT(&ev, "purchase.next_charge_at", 1771156800000LL);
    lb_event_clear(&ev);
}
END_TEST

START_TEST(iso8601_parser)
{
    static const struct {
        const char *text;
        long long ms;
    } good[] = {
        {"2026-02-20T12:00:00.000Z", 1771588800000LL},
        {"2026-02-20T12:00:00Z", 1771588800000LL},
        {"2026-02-20t12:00:00z", 1771588800000LL},
        {"2026-02-20T12:00:00.123Z", 1771588800123LL},
        {"2026-02-20T12:00:00.1234567Z", 1771588800123LL},
        {"2026-02-20T12:00:00.5Z", 1771588800500LL},
        {"2026-02-20T09:00:00-03:00", 1771588800000LL},
        {"2026-02-20T17:30:00+0530", 1771588800000LL},
        {"2026-02-20T14:00:00+02", 1771588800000LL},
        {"2026-02-20T12:00Z", 1771588800000LL},
        {"2026-02-20 12:00:00", 1771588800000LL}, /* no zone: UTC */
        {"2026-02-20", 1771545600000LL},
        {"2024-02-29T00:00:00Z", 1709164800000LL},
        {"2000-03-01T00:00:00Z", 951868800000LL},
        {"2000-02-29T00:00:00Z", 951782400000LL}, /* divisible by 400: leap */
        {"1969-12-31T23:59:59Z", -1000LL},
    };
    static const char *const bad[] = {
        "", "2026", "2026-02-2", "2026-02-20T", "2026-02-20T12", "2026-02-20T12:00:00.Z",
        "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29", "2100-02-29T00:00:00Z", "2026-02-20T24:00:00Z",
        "2026-02-20T12:60:00Z", "2026-02-20T12:00:61Z", "2026-02-20T12:00:00+24:00",
        "2026-02-20T12:00:00+03:60", "2026-02-20T12:00:00Zjunk", "2026-02-20T12:00:00 Z",
        "20260220T120000Z", "yesterday", "2026-02-20T12:00:00+3",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = 0;
        ck_assert_msg(lb_time_parse(good[i].text, &ms) == 0, "refused %s", good[i].text);
        ck_assert_msg(ms == good[i].ms, "%s: %lld", good[i].text, (long long)ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 0;
        ck_assert_msg(lb_time_parse(bad[i], &ms) == -1, "accepted %s", bad[i]);
    }
}
END_TEST

static const struct {
    const char *raw;
    const char *norm;
} purchase_synonyms[] = {
    {"COMPLETE", "completed"},    {"COMPLETED", "completed"},
    {"CANCELLED", "canceled"},    {"CANCELED", "canceled"},
    {"PRINTED_BILLET", "billet_printed"}, {"BILLET_PRINTED", "billet_printed"},
    {"OVERDUE", "delayed"},       {"DELAYED", "delayed"},
    {"PAST_DUE", "delayed"},      {"UNDER_ANALISYS", "under_analysis"},
    {"WAITING_PAYMENT", "waiting_payment"}, {"STARTED", "started"},
    {"approved", "approved"},     {"Brand_New", "brand_new"}, /* unknown: kept, lower-cased */
};

START_TEST(purchase_status_synonyms)
{
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    json_object_object_add(lb_jget(root, "data.purchase"), "status",
                           json_object_new_string(purchase_synonyms[_i].raw));
    normalize_ok(root, &ev);
    STR(&ev, "purchase.status", purchase_synonyms[_i].norm);
    STR(&ev, "purchase.status_raw", purchase_synonyms[_i].raw);
    ck_assert_str_eq(ev.type, "purchase.approved"); /* the event routes, not the status */
    lb_event_clear(&ev);
}
END_TEST

static const struct {
    const char *raw;
    const char *norm;
} subscription_synonyms[] = {
    {"ACTIVE", "active"},
    {"INACTIVE", "inactive"},
    {"OVERDUE", "overdue"},
    {"DELAYED", "overdue"},
    {"PAST_DUE", "overdue"},
    {"CANCELLED_BY_CUSTOMER", "canceled_by_customer"},
    {"CANCELED_BY_CUSTOMER", "canceled_by_customer"},
    {"CANCELLED_BY_SELLER", "canceled_by_seller"},
    {"CANCELED_BY_SELLER", "canceled_by_seller"},
    {"CANCELLED_BY_VENDOR", "canceled_by_seller"},
    {"CANCELED_BY_VENDOR", "canceled_by_seller"},
    {"CANCELLED_BY_ADMIN", "canceled_by_admin"},
    {"CANCELED_BY_ADMIN", "canceled_by_admin"},
    {"STARTED", "initiated"},
    {"EXPIRED", "expired"},
};

START_TEST(subscription_status_synonyms)
{
    static const char *const events[][2] = {
        {"PURCHASE_APPROVED", "data.subscription"},
        {"SWITCH_PLAN", "data.subscription"},
        {"UPDATE_SUBSCRIPTION_CHARGE_DATE", "data.subscription"},
    };
    for (size_t e = 0; e < 3; e++) {
        lb_event ev;
        json_object *root = fixture(events[e][0]);
        json_object_object_add(lb_jget(root, events[e][1]), "status",
                               json_object_new_string(subscription_synonyms[_i].raw));
        normalize_ok(root, &ev);
        STR(&ev, "subscription.status", subscription_synonyms[_i].norm);
        STR(&ev, "subscription.status_raw", subscription_synonyms[_i].raw);
        lb_event_clear(&ev);
    }
}
END_TEST

START_TEST(pix_inside_billet_printed)
{
    lb_event ev;
    json_object *root = fixture("PURCHASE_BILLET_PRINTED");
    set(root, "data.purchase.payment",
        "{\"type\":\"PIX\",\"installments_number\":1,\"pix_code\":\"00020126580014br.gov.bcb.pix\","
        "\"pix_qrcode\":\"https://example.com/qr.png\",\"pix_expiration_date\":1768655140000}");
    normalize_ok(root, &ev);
    ck_assert_str_eq(ev.type, "purchase.billet_printed"); /* same trigger; payment_method tells */
    STR(&ev, "purchase.payment_method", "PIX");
    STR(&ev, "purchase.pix_code", "00020126580014br.gov.bcb.pix");
    STR(&ev, "purchase.pix_qrcode", "https://example.com/qr.png");
    INT(&ev, "purchase.pix_expires_at", 1768655140000LL);
    ABSENT(&ev, "purchase.billet_url");
    ABSENT(&ev, "purchase.billet_barcode");
    lb_event_clear(&ev);

    root = fixture("PURCHASE_BILLET_PRINTED");
    set(root, "data.purchase.payment.type", "\"pix\""); /* upper-cased */
    normalize_ok(root, &ev);
    STR(&ev, "purchase.payment_method", "PIX");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(missing_optional_objects)
{
    static const char *const optional[] = {
        "data.subscription", "data.affiliates", "data.purchase.payment", "data.purchase.offer",
        "data.purchase.origin", "data.buyer.address", "data.product", "data.producer",
        "data.commissions", "data.purchase.order_bump", "data.purchase.price", "data.purchase.full_price",
    };
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++)
        del(root, optional[i]);
    normalize_ok(root, &ev);
    ck_assert_ptr_null(ev.product_id);
    ABSENT(&ev, "product");
    ABSENT(&ev, "subscription");
    ABSENT(&ev, "purchase.payment_method");
    ABSENT(&ev, "purchase.affiliate");
    ABSENT(&ev, "purchase.currency");
    STR(&ev, "lead.country", "BR"); /* falls back to purchase.checkout_country.iso */
    STR(&ev, "purchase.status", "approved");
    lb_event_clear(&ev);

    /* The least a purchase event can be: an e-mail. */
    normalize_ok(parse("{\"id\":\"m1\",\"event\":\"PURCHASE_APPROVED\",\"data\":{\"buyer\":{\"email\":\"a@b.c\"}}}"),
                 &ev);
    ck_assert_str_eq(ev.lead_email, "a@b.c");
    ck_assert_ptr_null(ev.product_id);
    ck_assert_int_eq(ev.occurred_at_ms, 0);
    ABSENT(&ev, "purchase");
    ABSENT(&ev, "lead.name");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(json_null_is_absent)
{
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    set_null(root, "data.purchase.approved_date");
    set_null(root, "data.subscription");
    set_null(root, "data.buyer.address");
    set_null(root, "data.buyer.first_name");
    normalize_ok(root, &ev);
    ABSENT(&ev, "purchase.approved_at");
    ABSENT(&ev, "subscription");
    ABSENT(&ev, "lead.first_name");
    STR(&ev, "lead.country", "BR");
    assert_clean(ev.doc);
    lb_event_clear(&ev);
}
END_TEST

START_TEST(country_fallbacks)
{
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    set(root, "data.buyer.address.country_iso", "\"pt\"");
    normalize_ok(root, &ev);
    STR(&ev, "lead.country", "PT"); /* upper-cased */
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "data.buyer.address.country_iso", "\"Brasil\""); /* a name, not a code: skipped */
    set(root, "data.purchase.checkout_country.iso", "\"MX\"");
    normalize_ok(root, &ev);
    STR(&ev, "lead.country", "MX");
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "data.buyer.address.country_iso", "\"\"");
    del(root, "data.purchase.checkout_country");
    set(root, "data.checkout_country", "{\"iso\":\"ar\"}");
    normalize_ok(root, &ev);
    STR(&ev, "lead.country", "AR");
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    del(root, "data.buyer.address");
    del(root, "data.purchase.checkout_country");
    normalize_ok(root, &ev);
    ABSENT(&ev, "lead.country");
    lb_event_clear(&ev);
}
END_TEST

/* Which object holds the lead, per event family; a buyer planted in a
 * non-purchase event must not be picked up. */
static const struct {
    const char *event;
    const char *email_path;
} lead_paths[] = {
    {"PURCHASE_APPROVED", "data.buyer.email"},
    {"PURCHASE_OUT_OF_SHOPPING_CART", "data.buyer.email"},
    {"SUBSCRIPTION_CANCELLATION", "data.subscriber.email"},
    {"UPDATE_SUBSCRIPTION_CHARGE_DATE", "data.subscriber.email"},
    {"SWITCH_PLAN", "data.subscription.user.email"},
    {"CLUB_FIRST_ACCESS", "data.user.email"},
    {"CLUB_MODULE_COMPLETED", "data.user.email"},
};

START_TEST(lead_identity_per_family)
{
    lb_event ev;
    json_object *root = fixture(lead_paths[_i].event);
    set(root, lead_paths[_i].email_path, "\"Lead.Here@Example.COM\"");
    if (strcmp(lead_paths[_i].email_path, "data.buyer.email") != 0)
        set(root, "data.buyer", "{\"email\":\"decoy@example.com\"}");
    else
        set(root, "data.user", "{\"email\":\"decoy@example.com\"}");
    normalize_ok(root, &ev);
    ck_assert_str_eq(ev.lead_email, "lead.here@example.com");
    lb_event_clear(&ev);

    root = fixture(lead_paths[_i].event);
    del(root, lead_paths[_i].email_path);
    normalize_fails(root, lead_paths[_i].email_path);
}
END_TEST

START_TEST(email_trimmed_and_lowercased)
{
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    set(root, "data.buyer.email", "\"  Ana.TESTE@Example.COM\\t\\n\"");
    normalize_ok(root, &ev);
    ck_assert_str_eq(ev.lead_email, "ana.teste@example.com");
    STR(&ev, "lead.email", "ana.teste@example.com");
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "data.buyer.email", "\"jos\xc3\xa9+tag@exemplo.com.br\""); /* UTF-8 left alone */
    normalize_ok(root, &ev);
    ck_assert_str_eq(ev.lead_email, "jos\xc3\xa9+tag@exemplo.com.br");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(phone_sources)
{
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    set(root, "data.buyer.phone", "\"5511000000000\"");
    normalize_ok(root, &ev);
    STR(&ev, "lead.phone", "11987654321"); /* checkout_phone wins */
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    del(root, "data.buyer.checkout_phone");
    set(root, "data.buyer.phone", "\"+55 11 91234-5678\"");
    normalize_ok(root, &ev);
    STR(&ev, "lead.phone", "+55 11 91234-5678"); /* as given */
    lb_event_clear(&ev);

    root = fixture("SUBSCRIPTION_CANCELLATION");
    set(root, "data.subscriber.phone", "{\"dddCell\":\"\",\"cell\":\"\",\"dddPhone\":\"21\",\"phone\":\"33334444\"}");
    normalize_ok(root, &ev);
    STR(&ev, "lead.phone", "2133334444"); /* no mobile: the landline */
    lb_event_clear(&ev);

    root = fixture("SUBSCRIPTION_CANCELLATION");
    set(root, "data.subscriber.phone", "{\"dddCell\":\"\",\"cell\":\"\"}");
    normalize_ok(root, &ev);
    ABSENT(&ev, "lead.phone");
    lb_event_clear(&ev);

    root = fixture("SUBSCRIPTION_CANCELLATION");
    set(root, "data.subscriber.phone", "\"11987650000\"");
    normalize_ok(root, &ev);
    STR(&ev, "lead.phone", "11987650000");
    lb_event_clear(&ev);

    root = fixture("SUBSCRIPTION_CANCELLATION");
    set(root, "data.subscriber.phone", "{\"cell\":\"987650000\"}"); /* no area code */
    normalize_ok(root, &ev);
    STR(&ev, "lead.phone", "987650000");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(unknown_events_are_ignored)
{
    static const char *const bodies[] = {
        "{\"id\":\"u1\",\"event\":\"ORDER_FULFILLMENT\",\"creation_date\":1768482362000,\"data\":{\"order\":{\"id\":1}}}",
        "{\"id\":\"u2\",\"event\":\"PURCHASE_CANCELLED\",\"data\":\"garbage\"}",
        "{\"id\":\"u3\",\"event\":\"SUBSCRIPTION_PLAN_CHANGE\"}",
        "{\"id\":\"u4\",\"event\":\"purchase_approved\",\"data\":{\"buyer\":{\"email\":42}}}",
    };
    lb_event ev;
    normalize_ok(parse(bodies[_i]), &ev);
    ck_assert(ev.ignored);
    BOOL(&ev, "ignored", true);
    ck_assert_str_eq(ev.type, "unknown");
    STR(&ev, "type", "unknown");
    ck_assert_ptr_null(ev.lead_email);
    ck_assert_ptr_null(ev.product_id);
    ck_assert(!ev.test);
    ck_assert_ptr_nonnull(ev.source_event_id);
    ck_assert_str_eq(ev.source_event_id, lb_jstr(ev.doc, "id"));
    ck_assert_ptr_nonnull(ev.source_type);
    ABSENT(&ev, "lead");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(unknown_event_keeps_envelope)
{
    lb_event ev;
    normalize_ok(parse("{\"id\":\"u1\",\"event\":\"ORDER_FULFILLMENT\",\"creation_date\":1768482362000}"), &ev);
    ck_assert_str_eq(ev.source_type, "ORDER_FULFILLMENT");
    ck_assert_int_eq(ev.occurred_at_ms, OCCURRED);
    ck_assert_str_eq(ev.source, "hotmart");
    lb_event_clear(&ev);
    /* The envelope is still checked: without an id there is nothing to dedupe on. */
    normalize_fails(parse("{\"event\":\"ORDER_FULFILLMENT\"}"), "id");
}
END_TEST

START_TEST(send_test_detection)
{
    static const struct {
        const char *path;
        const char *value;
        bool test;
    } cases[] = {
        {"data.product.id", "0", true},
        {"data.product.id", "123456", true},
        {"data.product.id", "\"123456\"", true},
        {"data.product.id", "1439", true},
        {"data.product.name", "\"Produto test postback2 com \\u00e7 e \\u00e1\"", true},
        {"data.product.name", "\"Produto test postback2\"", true},
        {"data.product.id", "1234567", false},
        {"data.product.name", "\"Produto test\"", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lb_event ev;
        json_object *root = fixture("PURCHASE_OUT_OF_SHOPPING_CART");
        set(root, cases[i].path, cases[i].value);
        normalize_ok(root, &ev);
        ck_assert_msg(ev.test == cases[i].test, "%s = %s", cases[i].path, cases[i].value);
        BOOL(&ev, "test", cases[i].test);
        ck_assert(!ev.ignored); /* flagged only: ignoring is the configuration's call */
        lb_event_clear(&ev);
    }
}
END_TEST

START_TEST(affiliates)
{
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    set(root, "data.affiliates", "[{\"affiliate_code\":\"\",\"name\":\"\"}]");
    normalize_ok(root, &ev);
    BOOL(&ev, "purchase.affiliate", false);
    ABSENT(&ev, "purchase.affiliate_code");
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "data.affiliates", "[null, {\"name\":\"x\"}, {\"affiliate_code\":\"B2\"}]");
    normalize_ok(root, &ev);
    BOOL(&ev, "purchase.affiliate", true);
    STR(&ev, "purchase.affiliate_code", "B2");
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "data.affiliates", "[]");
    normalize_ok(root, &ev);
    BOOL(&ev, "purchase.affiliate", false);
    lb_event_clear(&ev);

    root = fixture("PURCHASE_APPROVED");
    set(root, "data.affiliates", "[\"Q1\"]");
    normalize_fails(root, "data.affiliates[0]");
}
END_TEST

START_TEST(switch_plan_current_plan)
{
    lb_event ev;
    json_object *root = fixture("SWITCH_PLAN");
    set(root, "data.plans", "[{\"id\":1,\"name\":\"Old\",\"current\":false},{\"id\":\"2\",\"name\":\"New\","
                            "\"offer\":{\"key\":\"nk\"},\"current\":true}]");
    normalize_ok(root, &ev);
    STR(&ev, "subscription.plan_id", "2");
    STR(&ev, "subscription.plan_name", "New");
    STR(&ev, "subscription.offer", "nk");
    lb_event_clear(&ev);

    root = fixture("SWITCH_PLAN");
    set(root, "data.plans", "[{\"id\":1,\"current\":false}]"); /* no current plan */
    normalize_ok(root, &ev);
    ABSENT(&ev, "subscription.plan_id");
    lb_event_clear(&ev);

    root = fixture("SWITCH_PLAN");
    del(root, "data.plans");
    normalize_ok(root, &ev);
    ABSENT(&ev, "subscription.plan_name");
    lb_event_clear(&ev);

    root = fixture("SWITCH_PLAN");
    set(root, "data.plans", "[{\"id\":1,\"current\":\"yes\"}]");
    normalize_fails(root, "data.plans[0].current");

    root = fixture("SWITCH_PLAN");
    set(root, "data.plans", "[{\"id\":1,\"current\":true,\"offer\":\"k\"}]");
    normalize_fails(root, "data.plans[0].offer");
}
END_TEST

/* ---- arrays of any length ------------------------------------------------------- */

/* A delivery of `event` whose data.<list> holds n - 1 copies of `filler` and
 * then `last`, normalized as the daemon does (text, flat reader). */
static void normalize_long_list(lb_event *ev, const char *event, const char *list, const char *filler,
                                const char *last, size_t n)
{
    size_t cap = n * (strlen(filler) + 1) + strlen(last) + 256;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    char *p = text + sprintf(text, "{\"id\":\"long-%s\",\"event\":\"%s\",\"data\":{\"buyer\":{\"email\":\"a@b.c\"},"
                                   "\"subscription\":{\"user\":{\"email\":\"a@b.c\"}},\"%s\":[",
                             list, event, list);
    for (size_t i = 0; i + 1 < n; i++)
        p += sprintf(p, "%s,", filler);
    p += sprintf(p, "%s]}}", last);
    char why[160];
    lb_error err = {{0}, {0}};
    lb_jflat *f = lb_jflat_new();
    ck_assert_ptr_nonnull(f);
    const lb_jnode *root = lb_jflat_parse(f, text, (size_t)(p - text), 64, why, sizeof why);
    ck_assert_msg(root != NULL, "%s", why);
    ck_assert_uint_eq(lb_jnode_member(lb_jnode_member(root, "data", 4), list, strlen(list))->count, n);
    int rc = lb_hotmart_normalize_flat(root, ev, &err);
    ck_assert_msg(rc == 0, "normalize failed: %s: %s", err.field, err.message);
    ck_assert_ptr_nonnull(lb_event_json(ev));
    lb_jflat_free(f);
    free(text);
}

/* 400,000 elements, the one that counts last. The list must be walked once:
 * looking element i up by index walks i siblings, 8e10 steps in all here,
 * minutes of CPU, so the quadratic walk fails by the tcase's timeout, while
 * the linear one takes milliseconds even under the sanitizers or valgrind.
 * (The daemon's max_body lets in about 80,000, which took 9.7 s.) */
#define LONG_LIST 400000

START_TEST(long_affiliates_list)
{
    lb_event ev;
    normalize_long_list(&ev, "PURCHASE_APPROVED", "affiliates", "{}", "{\"affiliate_code\":\"LAST\"}", LONG_LIST);
    BOOL(&ev, "purchase.affiliate", true);
    STR(&ev, "purchase.affiliate_code", "LAST");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(long_plans_list)
{
    lb_event ev;
    normalize_long_list(&ev, "SWITCH_PLAN", "plans", "{\"current\":false}",
                        "{\"id\":7,\"name\":\"New\",\"offer\":{\"key\":\"nk\"},\"current\":true}", LONG_LIST);
    STR(&ev, "subscription.plan_id", "7");
    STR(&ev, "subscription.plan_name", "New");
    STR(&ev, "subscription.offer", "nk");
    lb_event_clear(&ev);
}
END_TEST

/* ---- bad input ----------------------------------------------------------------- */

START_TEST(envelope_errors)
{
    json_object *root = fixture("PURCHASE_APPROVED");
    del(root, "id");
    normalize_fails(root, "id");

    root = fixture("PURCHASE_APPROVED");
    set(root, "id", "\"\"");
    normalize_fails(root, "id");

    root = fixture("PURCHASE_APPROVED");
    set(root, "id", "{}");
    normalize_fails(root, "id");

    root = fixture("PURCHASE_APPROVED");
    char long_id[300];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    json_object_object_add(root, "id", json_object_new_string(long_id));
    normalize_fails(root, "id");

    root = fixture("PURCHASE_APPROVED");
    set(root, "event", "42");
    normalize_fails(root, "event");

    root = fixture("PURCHASE_APPROVED");
    set(root, "event", "[\"PURCHASE_APPROVED\"]");
    normalize_fails(root, "event");

    root = fixture("PURCHASE_APPROVED");
    del(root, "event");
    normalize_fails(root, "event");

    root = fixture("PURCHASE_APPROVED");
    set(root, "event", "\"\"");
    normalize_fails(root, "event");

    normalize_fails(parse("[1,2,3]"), "");
    normalize_fails(parse("\"PURCHASE_APPROVED\""), "");
}
END_TEST

START_TEST(integer_id_accepted)
{
    /* S4 types the envelope id as an integer; accept it. */
    lb_event ev;
    json_object *root = fixture("PURCHASE_APPROVED");
    set(root, "id", "1234567890");
    normalize_ok(root, &ev);
    ck_assert_str_eq(ev.source_event_id, "1234567890");
    lb_event_clear(&ev);
}
END_TEST

/* An id is a name: one past 64 bits keeps its digits, so two such ids are
 * two events (json-c, and this reader before, clamped both to UINT64_MAX). */
START_TEST(integer_ids_keep_their_digits)
{
    static const char *const ids[] = {
        "99999999999999999999", "18446744073709551616", "18446744073709551615", "9223372036854775808",
        "-9223372036854775809", "-9223372036854775808", "123456789012345678901234567890123456789012345678901234567890",
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        lb_event ev;
        raw_ok("PURCHASE_APPROVED", "id", ids[i], &ev);
        ck_assert_str_eq(ev.source_event_id, ids[i]);
        lb_event_clear(&ev);
        raw_ok("PURCHASE_APPROVED", "data.product.id", ids[i], &ev);
        ck_assert_pstr_eq(ev.product_id, ids[i]);
        lb_event_clear(&ev);
    }
    char long_id[LB_ID_MAX + 1]; /* the length limit of string ids holds for digits too */
    memset(long_id, '9', LB_ID_MAX);
    long_id[LB_ID_MAX] = '\0';
    raw_fails("PURCHASE_APPROVED", "id", long_id, "id", "too long");
    long_id[LB_ID_MAX - 1] = '\0';
    lb_event ev;
    raw_ok("PURCHASE_APPROVED", "id", long_id, &ev);
    ck_assert_str_eq(ev.source_event_id, long_id);
    lb_event_clear(&ev);
}
END_TEST

/* Other integers past their type are refused, not clamped into a value
 * nobody sent. */
static const struct {
    const char *event;
    const char *path;
    const char *raw;
} out_of_range[] = {
    {"PURCHASE_APPROVED", "creation_date", "99999999999999999999"},
    {"PURCHASE_APPROVED", "creation_date", "9223372036854775808"},
    {"PURCHASE_APPROVED", "creation_date", "-9223372036854775809"},
    {"PURCHASE_APPROVED", "creation_date", "1e19"},
    {"CLUB_FIRST_ACCESS", "creationDate", "18446744073709551616"},
    {"PURCHASE_APPROVED", "data.purchase.payment.installments_number", "9223372036854775808"},
    {"PURCHASE_APPROVED", "data.purchase.payment.installments_number", "-99999999999999999999"},
    {"PURCHASE_APPROVED", "data.purchase.payment.installments_number", "1e300"},
    {"PURCHASE_APPROVED", "data.purchase.recurrence_number", "18446744073709551615"},
    {"PURCHASE_APPROVED", "data.purchase.price.value", "99999999999999999999"},
    {"PURCHASE_APPROVED", "data.purchase.full_price.value", "-99999999999999999999"},
    {"PURCHASE_APPROVED", "data.purchase.approved_date", "99999999999999999999"},
    {"SUBSCRIPTION_CANCELLATION", "data.actual_recurrence_value", "18446744073709551616"},
    {"UPDATE_SUBSCRIPTION_CHARGE_DATE", "data.subscription.new_charge_day", "99999999999999999999"},
};

START_TEST(out_of_range_integers_refused)
{
    raw_fails(out_of_range[_i].event, out_of_range[_i].path, out_of_range[_i].raw, out_of_range[_i].path,
              "out of range");
}
END_TEST

START_TEST(integers_at_the_ends_of_their_range)
{
    lb_event ev;
    raw_ok("PURCHASE_APPROVED", "creation_date", "9223372036854775807", &ev);
    ck_assert_int_eq(ev.occurred_at_ms, INT64_MAX);
    lb_event_clear(&ev);
    raw_ok("PURCHASE_APPROVED", "data.purchase.payment.installments_number", "-9223372036854775808", &ev);
    ck_assert_int_eq(int_at(&ev, "purchase.installments"), INT64_MIN);
    lb_event_clear(&ev);
    raw_ok("PURCHASE_APPROVED", "data.purchase.price.value", "18446744073709551615", &ev); /* a double's worth */
    ck_assert_str_eq(json_object_to_json_string(lb_jget(ev.doc, "purchase.price")), "18446744073709551615");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(data_not_an_object)
{
    static const char *const values[] = {"\"x\"", "[]", "42", "true"};
    for (size_t i = 0; i < 4; i++) {
        json_object *root = fixture("PURCHASE_APPROVED");
        set(root, "data", values[i]);
        normalize_fails(root, "data");
    }
    json_object *root = fixture("CLUB_FIRST_ACCESS");
    del(root, "data");
    normalize_fails(root, "data");
}
END_TEST

START_TEST(bad_emails)
{
    static const char *const values[] = {
        "42", "true", "{}", "[\"a@b.c\"]", "\"ana.example.com\"", "\"@example.com\"", "\"ana@\"",
        "\"ana teste@example.com\"", "\"a@b@c\"", "\"ana@exa\\u0001mple.com\"",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        json_object *root = fixture("PURCHASE_APPROVED");
        set(root, "data.buyer.email", values[i]);
        normalize_fails(root, "data.buyer.email");
    }
    json_object *root = fixture("PURCHASE_APPROVED");
    set(root, "data.buyer.email", "\"   \""); /* blank is missing */
    normalize_fails(root, "data.buyer.email");

    root = fixture("PURCHASE_APPROVED");
    json_object_object_add(lb_jget(root, "data.buyer"), "email",
                           json_object_new_string_len("a@b.c\0@evil.com", 15));
    normalize_fails(root, "data.buyer.email");

    root = fixture("CLUB_FIRST_ACCESS");
    set(root, "data.user.email", "\"no-at-sign\"");
    normalize_fails(root, "data.user.email");
}
END_TEST

START_TEST(huge_email_refused)
{
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'a', n);
    big[n] = '\0';
    big[n / 2] = '@';
    json_object *root = fixture("PURCHASE_APPROVED");
    json_object_object_add(lb_jget(root, "data.buyer"), "email", json_object_new_string(big));
    normalize_fails(root, "data.buyer.email");

    /* A huge name is just a name. */
    lb_event ev;
    root = fixture("PURCHASE_APPROVED");
    json_object_object_add(lb_jget(root, "data.buyer"), "name", json_object_new_string(big));
    normalize_ok(root, &ev);
    ck_assert_uint_eq(strlen(lb_jstr(ev.doc, "lead.name")), n);
    lb_event_clear(&ev);
    free(big);
}
END_TEST

/* A wrong type anywhere we read is refused, naming the path. */
static const struct {
    const char *event;
    const char *path;
    const char *value;
    const char *field; /* NULL: same as path */
} wrong_types[] = {
    {"PURCHASE_APPROVED", "data.buyer.name", "[]", NULL},
    {"PURCHASE_APPROVED", "data.buyer.first_name", "7", NULL},
    {"PURCHASE_APPROVED", "data.buyer.checkout_phone", "11987654321", NULL},
    {"PURCHASE_APPROVED", "data.buyer", "\"ana@example.com\"", NULL},
    {"PURCHASE_APPROVED", "data.product.id", "true", NULL},
    {"PURCHASE_APPROVED", "data.product.id", "{}", NULL},
    {"PURCHASE_APPROVED", "data.product.name", "{}", NULL},
    {"PURCHASE_APPROVED", "data.product.ucode", "1", NULL},
    {"PURCHASE_APPROVED", "data.purchase.price.value", "\"197\"", NULL},
    {"PURCHASE_APPROVED", "data.purchase.full_price", "197", NULL},
    {"PURCHASE_APPROVED", "data.purchase.payment.installments_number", "\"12\"", NULL},
    {"PURCHASE_APPROVED", "data.purchase.payment.installments_number", "1.5", NULL},
    {"PURCHASE_APPROVED", "data.purchase.order_bump.is_order_bump", "\"false\"", NULL},
    {"PURCHASE_APPROVED", "data.purchase.approved_date", "true", NULL},
    {"PURCHASE_APPROVED", "data.purchase.approved_date", "\"yesterday\"", NULL},
    {"PURCHASE_APPROVED", "data.purchase.status", "1", NULL},
    {"PURCHASE_APPROVED", "data.purchase.transaction", "12345", NULL},
    {"PURCHASE_APPROVED", "data.purchase.payment", "\"CREDIT_CARD\"", NULL},
    {"PURCHASE_APPROVED", "data.purchase", "[]", NULL},
    {"PURCHASE_APPROVED", "data.subscription", "\"203.0.113.7\"", NULL},
    {"PURCHASE_APPROVED", "data.subscription.plan.id", "[1]", NULL},
    {"PURCHASE_APPROVED", "data.buyer.address.country_iso", "76", NULL},
    {"PURCHASE_APPROVED", "data.affiliates", "{}", NULL},
    {"PURCHASE_APPROVED", "creation_date", "false", NULL},
    {"PURCHASE_APPROVED", "creation_date", "\"15/01/2026\"", NULL},
    {"PURCHASE_BILLET_PRINTED", "data.purchase.payment.pix_expiration_date", "\"soon\"", NULL},
    {"PURCHASE_BILLET_PRINTED", "data.purchase.payment.billet_url", "false", NULL},
    {"SUBSCRIPTION_CANCELLATION", "data.subscriber.phone.cell", "987650000", NULL},
    {"SUBSCRIPTION_CANCELLATION", "data.subscriber.phone", "11", NULL},
    {"SUBSCRIPTION_CANCELLATION", "data.actual_recurrence_value", "\"49.9\"", NULL},
    {"SUBSCRIPTION_CANCELLATION", "data.cancellation_date", "[]", NULL},
    {"SUBSCRIPTION_CANCELLATION", "data.subscription.id", "1.25", NULL},
    {"SWITCH_PLAN", "data.plans", "{}", NULL},
    {"SWITCH_PLAN", "data.switch_plan_date", "{}", NULL},
    {"SWITCH_PLAN", "data.subscription.user", "[]", NULL},
    {"UPDATE_SUBSCRIPTION_CHARGE_DATE", "data.subscription.new_charge_day", "\"20\"", NULL},
    {"UPDATE_SUBSCRIPTION_CHARGE_DATE", "data.subscription.date_next_charge", "\"25/10/2022\"", NULL},
    {"UPDATE_SUBSCRIPTION_CHARGE_DATE", "data.plan.offer", "\"k7x9q2ab\"", NULL},
    {"CLUB_MODULE_COMPLETED", "data.module", "[]", NULL},
    {"CLUB_MODULE_COMPLETED", "data.module.name", "false", NULL},
    {"CLUB_FIRST_ACCESS", "creationDate", "\"soon\"", NULL},
    {"CLUB_FIRST_ACCESS", "data.user.name", "{}", NULL},
    {"PURCHASE_OUT_OF_SHOPPING_CART", "data.affiliate", "\"no\"", NULL},
    {"PURCHASE_OUT_OF_SHOPPING_CART", "data.buyer.phone", "[1]", NULL},
    {"PURCHASE_OUT_OF_SHOPPING_CART", "data.offer.code", "1", NULL},
    {"PURCHASE_OUT_OF_SHOPPING_CART", "data.checkout_country", "\"BR\"", NULL},
};

START_TEST(wrong_types_anywhere)
{
    json_object *root = fixture(wrong_types[_i].event);
    set(root, wrong_types[_i].path, wrong_types[_i].value);
    normalize_fails(root, wrong_types[_i].field ? wrong_types[_i].field : wrong_types[_i].path);
}
END_TEST

START_TEST(non_finite_numbers_refused)
{
    /* json-c parses NaN and Infinity; they must not reach the document. */
    static const char *const values[] = {"NaN", "Infinity", "-Infinity"};
    for (size_t i = 0; i < 3; i++) {
        json_object *root = fixture("PURCHASE_APPROVED");
        json_object *v = json_tokener_parse(values[i]);
        ck_assert_ptr_nonnull(v);
        json_object_object_add(lb_jget(root, "data.purchase.price"), "value", v);
        normalize_fails(root, "data.purchase.price.value");
    }
}
END_TEST

START_TEST(deeply_nested_input)
{
    /* Nesting where nothing is read costs nothing; where we read, it is a wrong type. */
    json_tokener *tok = json_tokener_new_ex(2000);
    size_t depth = 1500;
    char *text = malloc(depth * 2 + 256);
    ck_assert_ptr_nonnull(text);
    char *p = text + sprintf(text, "{\"id\":\"d\",\"event\":\"PURCHASE_APPROVED\",\"data\":{\"buyer\":{\"email\":\"a@b.c\","
                                   "\"name\":");
    for (size_t i = 0; i < depth; i++)
        *p++ = '[';
    for (size_t i = 0; i < depth; i++)
        *p++ = ']';
    strcpy(p, "}}}");
    json_object *root = json_tokener_parse_ex(tok, text, (int)strlen(text));
    json_tokener_free(tok);
    free(text);
    ck_assert_ptr_nonnull(root);
    normalize_fails(root, "data.buyer.name");
}
END_TEST

START_TEST(json_get_paths)
{
    json_object *root = parse("{\"a\":{\"b\":[{\"c\":1},null,\"s\"],\"n\":null,\"x\":\"str\"}}");
    json_object *v = NULL;
    lb_error err = {{0}, {0}};
    int64_t i = 0;
    ck_assert_int_eq(lb_jget_int(root, "a.b[0].c", &i, &err), 1);
    ck_assert_int_eq(i, 1);
    ck_assert_int_eq(lb_jget_node(root, "a.b[1].c", &v, &err), 0);  /* null element */
    ck_assert_int_eq(lb_jget_node(root, "a.b[9].c", &v, &err), 0);  /* out of range */
    ck_assert_int_eq(lb_jget_node(root, "a.n.c", &v, &err), 0);     /* through null */
    ck_assert_int_eq(lb_jget_node(root, "a.zz.c", &v, &err), 0);    /* through absent */
    ck_assert_int_eq(lb_jget_node(root, "a.b[2].c", &v, &err), -1); /* through a string */
    ck_assert_str_eq(err.field, "a.b[2]");
    ck_assert_int_eq(lb_jget_node(root, "a.x[0]", &v, &err), -1);
    ck_assert_str_eq(err.field, "a.x");
    ck_assert_int_eq(lb_jget_node(root, "a.x.y", &v, &err), -1);
    ck_assert_str_eq(err.field, "a.x");
    ck_assert_ptr_null(lb_jget(root, "a.x.y")); /* the lenient form */
    ck_assert_ptr_null(lb_jget(root, "a..x"));
    ck_assert_ptr_null(lb_jget(root, "a.b[-1]"));
    ck_assert_ptr_null(lb_jget(root, "a."));
    ck_assert_pstr_eq(lb_jstr(root, "a.x"), "str");
    ck_assert_ptr_null(lb_jstr(root, "a.b[0].c")); /* not a string */
    json_object_put(root);
}
END_TEST

/* ---- postback 1.0 (form) ----------------------------------------------------------- */

static void form_ok(const char *body, lb_event *ev, char **hottok)
{
    lb_error err = {{0}, {0}};
    size_t len = 0;
    int rc = lb_hotmart_form_normalize(body, strlen(body), ev, hottok, hottok ? &len : NULL, &err);
    ck_assert(hottok == NULL || *hottok == NULL || strlen(*hottok) == len); /* these tokens hold no NUL */
    ck_assert_msg(rc == 0, "form refused: %s: %s", err.field, err.message);
    ck_assert_str_eq(ev->source, "hotmart1");
    STR(ev, "source", "hotmart1");
    assert_clean(ev->doc);
}

/* Fails naming field; returns the hottok the caller got (to free), which
 * is set even on failure so that the caller can authenticate first, and
 * its length in *len. */
static char *form_fails_tok(const char *body, const char *field, size_t *len)
{
    lb_event ev;
    lb_error err = {{0}, {0}};
    char *hottok = (char *)"garbage";
    memset(&ev, 0x5a, sizeof ev);
    ck_assert_int_eq(lb_hotmart_form_normalize(body, strlen(body), &ev, &hottok, len, &err), -1);
    ck_assert_str_eq(err.field, field);
    ck_assert(err.message[0] != '\0');
    assert_cleared(&ev);
    return hottok;
}

static void form_fails(const char *body, const char *field)
{
    size_t len;
    char *hottok = form_fails_tok(body, field, &len);
    ck_assert_ptr_null(hottok);
}

static const char approved_form[] =
    "hottok=TOKEN123&prod=4123456&prod_name=Curso+Teste&off=k7x9q2ab&price=197.00&full_price=210.50"
    "&aff=Q12345678A&email=Ana.Teste%40Example.com&name=Ana+Teste&first_name=Ana&last_name=Teste"
    "&phone_checkout_local_code=11&phone_checkout_number=987654321&phone_local_code=21&phone_number=1"
    "&address_country=br&transaction=HP123&status=approved&payment_type=credit_card&currency=brl"
    "&purchase_date=2026-01-15T12%3A22%3A11Z&confirmation_purchase_date=2026-01-15+12%3A25%3A40"
    "&coupon_code=TESTE10&recurrency=2&name_subscription_plan=Plano+Mensal&subscriber_code=AB12CD34"
    "&subscription_status=ACTIVE&refusal_reason=&doc=12345678909";

START_TEST(form_approved_all_fields)
{
    lb_event ev;
    char *hottok = NULL;
    form_ok(approved_form, &ev, &hottok);
    ck_assert_pstr_eq(hottok, "TOKEN123");
    free(hottok);
    ck_assert_str_eq(ev.source_event_id, "HP123:approved");
    ck_assert_str_eq(ev.source_type, "approved");
    ck_assert_str_eq(ev.type, "purchase.approved");
    ck_assert(!ev.ignored);
    ck_assert(!ev.test);
    ck_assert_str_eq(ev.product_id, "4123456");
    ck_assert_str_eq(ev.lead_email, "ana.teste@example.com");
    ck_assert_int_eq(ev.occurred_at_ms, 1768479731000LL); /* purchase_date */
    STR(&ev, "product.name", "Curso Teste");
    STR(&ev, "lead.name", "Ana Teste");
    STR(&ev, "lead.first_name", "Ana");
    STR(&ev, "lead.last_name", "Teste");
    STR(&ev, "lead.phone", "11987654321"); /* the checkout phone wins */
    STR(&ev, "lead.country", "BR");
    STR(&ev, "purchase.transaction", "HP123");
    STR(&ev, "purchase.status", "approved");
    STR(&ev, "purchase.status_raw", "approved");
    STR(&ev, "purchase.payment_method", "CREDIT_CARD");
    STR(&ev, "purchase.currency", "BRL");
    NUM(&ev, "purchase.price", 197.0);
    NUM(&ev, "purchase.full_price", 210.5);
    STR(&ev, "purchase.offer", "k7x9q2ab");
    STR(&ev, "purchase.coupon", "TESTE10");
    INT(&ev, "purchase.recurrence", 2);
    BOOL(&ev, "purchase.affiliate", true);
    STR(&ev, "purchase.affiliate_code", "Q12345678A");
    INT(&ev, "purchase.ordered_at", 1768479731000LL);
    INT(&ev, "purchase.approved_at", 1768479940000LL);
    ABSENT(&ev, "purchase.refusal_reason"); /* sent empty */
    STR(&ev, "subscription.plan_name", "Plano Mensal");
    STR(&ev, "subscription.subscriber_code", "AB12CD34");
    STR(&ev, "subscription.status", "active");
    STR(&ev, "subscription.status_raw", "ACTIVE");
    ABSENT(&ev, "hottok");
    ABSENT(&ev, "doc");
    lb_event_clear(&ev);
}
END_TEST

static const struct {
    const char *status;
    const char *type; /* "unknown": ignored */
    const char *norm;
} form_statuses[] = {
    {"started", "purchase.started", "started"},
    {"approved", "purchase.approved", "approved"},
    {"completed", "purchase.complete", "completed"},
    {"canceled", "purchase.canceled", "canceled"},
    {"billet_printed", "purchase.billet_printed", "billet_printed"},
    {"refunded", "purchase.refunded", "refunded"},
    {"dispute", "purchase.protest", "dispute"},
    {"chargeback", "purchase.chargeback", "chargeback"},
    {"delayed", "purchase.delayed", "delayed"},
    {"expired", "purchase.expired", "expired"},
    {"wayting_payment", "unknown", "waiting_payment"},
    {"pending_analysis", "unknown", "under_analysis"},
    {"blocked", "unknown", "blocked"},
    {"some_new_status", "unknown", "some_new_status"},
};

START_TEST(form_status_table)
{
    char body[256];
    lb_event ev;
    snprintf(body, sizeof body, "status=%s&transaction=HP9&email=a%%40b.c", form_statuses[_i].status);
    form_ok(body, &ev, NULL);
    ck_assert_str_eq(ev.type, form_statuses[_i].type);
    ck_assert(ev.ignored == (strcmp(form_statuses[_i].type, "unknown") == 0));
    STR(&ev, "purchase.status", form_statuses[_i].norm);
    STR(&ev, "purchase.status_raw", form_statuses[_i].status);
    char id[64];
    snprintf(id, sizeof id, "HP9:%s", form_statuses[_i].status);
    ck_assert_str_eq(ev.source_event_id, id);
    lb_event_clear(&ev);
}
END_TEST

START_TEST(form_started_and_dispute)
{
    lb_event ev;
    form_ok("status=started&transaction=HP1&email=pp%40example.com&payment_type=paypal", &ev, NULL);
    ck_assert_str_eq(ev.type, "purchase.started"); /* "Order started - PayPal" */
    STR(&ev, "purchase.payment_method", "PAYPAL");
    lb_event_clear(&ev);

    form_ok("status=dispute&transaction=HP1&email=pp%40example.com", &ev, NULL);
    ck_assert_str_eq(ev.type, "purchase.protest");
    STR(&ev, "purchase.status", "dispute");
    ck_assert_str_eq(ev.source_event_id, "HP1:dispute"); /* differs from the approval's id */
    lb_event_clear(&ev);

    form_ok("status=APPROVED&transaction=HP1&email=pp%40example.com", &ev, NULL);
    ck_assert_str_eq(ev.source_event_id, "HP1:approved"); /* one dedupe key whatever the case */
    STR(&ev, "purchase.status_raw", "APPROVED");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(form_unknown_status_needs_no_email)
{
    lb_event ev;
    form_ok("status=wayting_payment&transaction=HP2", &ev, NULL);
    ck_assert(ev.ignored);
    ck_assert_str_eq(ev.type, "unknown");
    ck_assert_ptr_null(ev.lead_email);
    lb_event_clear(&ev);

    form_ok("status=blocked&transaction=HP2&email=not-an-email", &ev, NULL);
    ck_assert(ev.ignored);
    ck_assert_ptr_null(ev.lead_email); /* stored regardless; the bad e-mail is left out */
    lb_event_clear(&ev);
}
END_TEST

START_TEST(form_percent_and_plus)
{
    lb_event ev;
    form_ok("status=approved&transaction=HP3&email=ana%2Btag%40example.com"
            "&name=Jo%C3%A3o+da+Silva%20Jr&prod_name=100%25+off%zz%4&off=a%2fb",
            &ev, NULL);
    ck_assert_str_eq(ev.lead_email, "ana+tag@example.com"); /* %2B is a plus, + a space */
    STR(&ev, "lead.name", "Jo\xc3\xa3o da Silva Jr");
    STR(&ev, "product.name", "100% off%zz%4"); /* malformed escapes stay literal */
    STR(&ev, "purchase.offer", "a/b");
    lb_event_clear(&ev);
}
END_TEST

START_TEST(form_required_fields)
{
    form_fails("status=approved&transaction=HP4&name=Ana", "email");
    form_fails("status=approved&transaction=HP4&email=", "email");
    form_fails("status=approved&transaction=HP4&email=ana.example.com", "email");
    form_fails("status=approved&email=a%40b.c", "transaction");
    form_fails("status=approved&transaction=&email=a%40b.c", "transaction");
    form_fails("transaction=HP4&email=a%40b.c", "status");
    form_fails("", "status");
    form_fails("status=approved&transaction=HP4&email=a%40b.c%00x", "email");

    /* A bad event still hands back its token, so the caller can answer 401
     * to a stranger and 400 only to the account holder. */
    size_t len;
    char *tok = form_fails_tok("hottok=abc", "status", &len);
    ck_assert_pstr_eq(tok, "abc");
    ck_assert_uint_eq(len, 3);
    free(tok);
    tok = form_fails_tok("status=approved&transaction=HP4&hottok=t%2B1", "email", &len);
    ck_assert_pstr_eq(tok, "t+1");
    free(tok);
    /* a NUL in the token: handed back whole, so it is a wrong token (not its
     * prefix "ab", and not a missing one) */
    tok = form_fails_tok("hottok=ab%00cd", "status", &len);
    ck_assert_uint_eq(len, 5);
    ck_assert(memcmp(tok, "ab\0cd", 6) == 0);
    free(tok);
}
END_TEST

/* A form over the field limit is refused, but its token is still handed
 * back, wherever it is: the caller answers 401 to a stranger and, to the
 * account holder, that the form is too big (not that its token is missing). */
static char *many_fields(const char *before, int n, const char *after)
{
    char *body = malloc(strlen(before) + (size_t)n * 4 + strlen(after) + 1);
    ck_assert_ptr_nonnull(body);
    char *p = body + sprintf(body, "%s", before);
    for (int i = 0; i < n; i++)
        p += sprintf(p, "&k=v");
    strcpy(p, after);
    return body;
}

static void too_many_gives_token(const char *before, const char *after, const char *want)
{
    char *body = many_fields(before, 1100, after);
    size_t len;
    char *tok = form_fails_tok(body, "", &len);
    ck_assert_pstr_eq(tok, want);
    free(tok);
    free(body);
}

START_TEST(form_too_many_fields_keeps_the_token)
{
    too_many_gives_token("hottok=abc", "", "abc");
    too_many_gives_token("status=approved", "&hottok=late", "late");
    too_many_gives_token("status=approved", "&hott%6Fk=enc%2B1&x=y", "enc+1");
    too_many_gives_token("hottok=first", "&hottok=second", "first"); /* the first still wins */
    too_many_gives_token("status=approved", "&hottok=one&hottok=two", "one");
    too_many_gives_token("status=approved", "&hottokx=no&xhottok=no&hottok", ""); /* a bare key: empty */
    char *body = many_fields("status=approved", 1100, "");
    size_t len;
    ck_assert_ptr_null(form_fails_tok(body, "", &len));
    free(body);
    body = many_fields("status=approved", 1100, "&hottok=a%00b");
    char *tok = form_fails_tok(body, "", &len); /* a NUL: the whole token, as within the limit */
    ck_assert_uint_eq(len, 3);
    ck_assert(memcmp(tok, "a\0b", 4) == 0);
    free(tok);
    free(body);

    lb_error err = {{0}, {0}};
    lb_event ev;
    body = many_fields("hottok=abc", 1100, "");
    ck_assert_int_eq(lb_hotmart_form_normalize(body, strlen(body), &ev, NULL, NULL, &err), -1);
    ck_assert_msg(strstr(err.message, "1024") != NULL, "%s", err.message); /* names the limit */
    free(body);
}
END_TEST

START_TEST(form_lenient_values)
{
    lb_event ev;
    form_ok("status=approved&transaction=HP5&email=a%40b.c&price=abc&full_price=197%2C50"
            "&recurrency=2x&purchase_date=15%2F01%2F2026&address_country=Brasil&prod=1439",
            &ev, NULL);
    ABSENT(&ev, "purchase.price");         /* not a number: left out */
    NUM(&ev, "purchase.full_price", 197.5); /* decimal comma */
    ABSENT(&ev, "purchase.recurrence");
    ABSENT(&ev, "purchase.ordered_at"); /* not a date we can read */
    ck_assert_int_eq(ev.occurred_at_ms, 0);
    ABSENT(&ev, "occurred_at");
    ABSENT(&ev, "lead.country");
    ck_assert(ev.test); /* 1439: the 1.0 test product */
    lb_event_clear(&ev);
}
END_TEST

/* A price is a plain decimal (a comma for the point is read too); anything
 * else strtod would take is left out, not read as hex, infinity or NaN. */
static const struct {
    const char *value; /* form-encoded */
    double want;       /* < 0: left out */
} form_prices[] = {
    {"197.00", 197}, {"197%2C50", 197.5}, {"0", 0}, {"10", 10}, {"0.5", 0.5}, {"007.25", 7.25},
    {"0x10", -1}, {"0X1p4", -1}, {"inf", -1}, {"INF", -1}, {"infinity", -1}, {"nan", -1}, {"NAN(1)", -1},
    {"1e999", -1}, {"1e3", -1}, {"1E2", -1}, {"%201", -1}, {"1%20", -1}, {"%2B1", -1}, {"-1", -1},
    {".5", -1}, {"5.", -1}, {"1.2.3", -1}, {"1.234%2C56", -1}, {"1%2C2%2C3", -1}, {"12abc", -1}, {"%C2%BD", -1},
};

START_TEST(form_prices_are_plain_decimals)
{
    char body[160];
    lb_event ev;
    snprintf(body, sizeof body, "status=approved&transaction=HP9&email=a%%40b.c&price=%s&full_price=%s",
             form_prices[_i].value, form_prices[_i].value);
    form_ok(body, &ev, NULL);
    if (form_prices[_i].want < 0) {
        ABSENT(&ev, "purchase.price");
        ABSENT(&ev, "purchase.full_price");
    } else {
        NUM(&ev, "purchase.price", form_prices[_i].want);
        NUM(&ev, "purchase.full_price", form_prices[_i].want);
    }
    lb_event_clear(&ev);
}
END_TEST

/* An integer (recurrency) is digits only, as a price's whole part is:
 * what strtoll would also take (a sign, leading white space) is left out. */
static const struct {
    const char *value; /* form-encoded */
    int64_t want;      /* < 0: left out */
} form_integers[] = {
    {"3", 3}, {"03", 3}, {"12", 12}, {"0", 0}, {"9223372036854775807", INT64_MAX},
    {"%2B3", -1}, {"-3", -1}, {"%203", -1}, {"%093", -1}, {"%0A3", -1}, {"3%20", -1}, {"0x3", -1},
    {"3.0", -1}, {"3%2C0", -1}, {"1e2", -1}, {"9223372036854775808", -1}, {"99999999999999999999", -1},
    {"%EF%BC%93", -1}, /* a fullwidth 3 */
};

START_TEST(form_integers_are_plain_digits)
{
    char body[160];
    lb_event ev;
    snprintf(body, sizeof body, "status=approved&transaction=HP9&email=a%%40b.c&recurrency=%s",
             form_integers[_i].value);
    form_ok(body, &ev, NULL);
    if (form_integers[_i].want < 0)
        ABSENT(&ev, "purchase.recurrence");
    else
        INT(&ev, "purchase.recurrence", form_integers[_i].want);
    lb_event_clear(&ev);
}
END_TEST

START_TEST(form_parsing_edges)
{
    lb_event ev;
    char *hottok = NULL;
    /* First occurrence wins; empty pairs and bare keys are harmless. */
    form_ok("&&status=approved&&transaction=HP6&email=first%40b.c&email=second%40b.c&flag&=x"
            "&hottok=one&hottok=two&phone_local_code=21&phone_number=33334444",
            &ev, &hottok);
    ck_assert_str_eq(ev.lead_email, "first@b.c");
    ck_assert_pstr_eq(hottok, "one");
    STR(&ev, "lead.phone", "2133334444"); /* no checkout phone: the other one */
    free(hottok);
    lb_event_clear(&ev);

    /* The body is a buffer, not a C string: nothing past len is read. */
    const char buf[] = "status=approved&transaction=HP7&email=a%40b.cXXXX";
    lb_error err = {{0}, {0}};
    ck_assert_int_eq(lb_hotmart_form_normalize(buf, strlen(buf) - 4, &ev, NULL, NULL, &err), 0);
    ck_assert_str_eq(ev.lead_email, "a@b.c");
    lb_event_clear(&ev);
    ck_assert_int_eq(lb_hotmart_form_normalize(NULL, 0, &ev, NULL, NULL, &err), -1);
    ck_assert_str_eq(err.field, "status");
}
END_TEST

START_TEST(form_too_many_fields)
{
    size_t n = 2000;
    char *body = malloc(n * 8 + 64);
    ck_assert_ptr_nonnull(body);
    char *p = body + sprintf(body, "status=approved&transaction=HP8&email=a%%40b.c");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "&k%zu=v", i);
    form_fails(body, "");
    free(body);
}
END_TEST

START_TEST(form_long_values)
{
    size_t n = 100000;
    char *body = malloc(n + 128);
    ck_assert_ptr_nonnull(body);
    strcpy(body, "status=approved&email=a%40b.c&transaction=");
    size_t len = strlen(body);
    memset(body + len, '9', n);
    body[len + n] = '\0';
    form_fails(body, "transaction");

    lb_event ev;
    strcpy(body, "status=approved&transaction=HP1&email=a%40b.c&name=");
    len = strlen(body);
    memset(body + len, 'x', n);
    body[len + n] = '\0';
    form_ok(body, &ev, NULL);
    ck_assert_uint_eq(strlen(lb_jstr(ev.doc, "lead.name")), n);
    lb_event_clear(&ev);
    free(body);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("hotmart");
    TCase *fx = tcase_create("fixtures");
    tcase_add_loop_test(fx, every_fixture_envelope, 0, (int)(sizeof fixtures / sizeof fixtures[0]));
    tcase_add_test(fx, fixture_purchase_approved);
    tcase_add_test(fx, fixture_purchase_billet_printed);
    tcase_add_test(fx, fixture_purchase_canceled);
    tcase_add_test(fx, fixture_purchase_chargeback);
    tcase_add_test(fx, fixture_purchase_complete);
    tcase_add_test(fx, fixture_purchase_delayed);
    tcase_add_test(fx, fixture_purchase_expired);
    tcase_add_test(fx, fixture_purchase_protest);
    tcase_add_test(fx, fixture_purchase_refunded);
    tcase_add_test(fx, fixture_cart_abandoned);
    tcase_add_test(fx, fixture_subscription_cancellation);
    tcase_add_test(fx, fixture_switch_plan);
    tcase_add_test(fx, fixture_update_charge_date);
    tcase_add_test(fx, fixture_club_first_access);
    tcase_add_test(fx, fixture_club_module_completed);
    suite_add_tcase(s, fx);

    TCase *q = tcase_create("quirks");
    tcase_add_test(q, body_hottok_accessor);
    tcase_add_test(q, creation_date_spellings);
    tcase_add_test(q, product_id_string_or_number);
    tcase_add_test(q, date_next_charge_ms_or_iso);
    tcase_add_test(q, iso8601_parser);
    tcase_add_loop_test(q, purchase_status_synonyms, 0,
                        (int)(sizeof purchase_synonyms / sizeof purchase_synonyms[0]));
    tcase_add_loop_test(q, subscription_status_synonyms, 0,
                        (int)(sizeof subscription_synonyms / sizeof subscription_synonyms[0]));
    tcase_add_test(q, pix_inside_billet_printed);
    tcase_add_test(q, missing_optional_objects);
    tcase_add_test(q, json_null_is_absent);
    tcase_add_test(q, country_fallbacks);
    tcase_add_loop_test(q, lead_identity_per_family, 0, (int)(sizeof lead_paths / sizeof lead_paths[0]));
    tcase_add_test(q, email_trimmed_and_lowercased);
    tcase_add_test(q, phone_sources);
    tcase_add_loop_test(q, unknown_events_are_ignored, 0, 4);
    tcase_add_test(q, unknown_event_keeps_envelope);
    tcase_add_test(q, send_test_detection);
    tcase_add_test(q, affiliates);
    tcase_add_test(q, switch_plan_current_plan);
    suite_add_tcase(s, q);

    TCase *scale = tcase_create("long_lists");
    tcase_set_timeout(scale, 20); /* see LONG_LIST */
    tcase_add_test(scale, long_affiliates_list);
    tcase_add_test(scale, long_plans_list);
    suite_add_tcase(s, scale);

    TCase *bad = tcase_create("bad_input");
    tcase_add_test(bad, envelope_errors);
    tcase_add_test(bad, integer_id_accepted);
    tcase_add_test(bad, integer_ids_keep_their_digits);
    tcase_add_loop_test(bad, out_of_range_integers_refused, 0, (int)(sizeof out_of_range / sizeof out_of_range[0]));
    tcase_add_test(bad, integers_at_the_ends_of_their_range);
    tcase_add_test(bad, data_not_an_object);
    tcase_add_test(bad, bad_emails);
    tcase_add_test(bad, huge_email_refused);
    tcase_add_loop_test(bad, wrong_types_anywhere, 0, (int)(sizeof wrong_types / sizeof wrong_types[0]));
    tcase_add_test(bad, non_finite_numbers_refused);
    tcase_add_test(bad, deeply_nested_input);
    tcase_add_test(bad, json_get_paths);
    suite_add_tcase(s, bad);

    TCase *form = tcase_create("form_1_0");
    tcase_add_test(form, form_approved_all_fields);
    tcase_add_loop_test(form, form_status_table, 0, (int)(sizeof form_statuses / sizeof form_statuses[0]));
    tcase_add_test(form, form_started_and_dispute);
    tcase_add_test(form, form_unknown_status_needs_no_email);
    tcase_add_test(form, form_percent_and_plus);
    tcase_add_test(form, form_required_fields);
    tcase_add_test(form, form_lenient_values);
    tcase_add_loop_test(form, form_prices_are_plain_decimals, 0, (int)(sizeof form_prices / sizeof form_prices[0]));
    tcase_add_loop_test(form, form_integers_are_plain_digits, 0,
                        (int)(sizeof form_integers / sizeof form_integers[0]));
    tcase_add_test(form, form_parsing_edges);
    tcase_add_test(form, form_too_many_fields);
    tcase_add_test(form, form_too_many_fields_keeps_the_token);
    tcase_add_test(form, form_long_values);
    suite_add_tcase(s, form);
    return s;
}

int main(void)
{
    return lb_run_suite_tap(make_suite());
}
