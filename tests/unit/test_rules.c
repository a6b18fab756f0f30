/* test_rules.c: the rules host (core/rules*.c) and the catalogue in rules/.
 * Every trigger and condition on the Hotmart fixtures and on hand-made
 * normalized events, both ways; every consistency reason; sandbox escapes;
 * budgets; disabling; reload failures. Table-driven cases are Check loop
 * tests, so each row is its own TAP line and can fail on its own. */
#include "hotmart.h"
#include "rules.h"
#include "tap.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The rule set under test and a custom-rules directory, per test (fixture). */
static lb_rules *rules;
static char custom_dir[64];

/* ---- helpers ------------------------------------------------------------------- */

static json_object *parse(const char *text)
{
    json_object *v = json_tokener_parse(text);
    ck_assert_msg(v != NULL, "bad test JSON: %s", text);
    return v;
}

/* A fixture normalized by the real adapter: what rules see in production. */
static json_object *fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", LB_TEST_FIXTURES, name);
    json_object *root = json_object_from_file(path);
    ck_assert_msg(root != NULL, "cannot read %s", path);
    lb_event ev = {0};
    lb_error err;
    ck_assert_msg(lb_hotmart_normalize(root, &ev, &err) == 0, "%s: %s", err.field, err.message);
    json_object *doc = json_object_get(ev.doc);
    lb_event_clear(&ev);
    json_object_put(root);
    return doc;
}

/* A JSON text ("{...}") is a hand-made event; anything else a fixture name. */
static json_object *event_of(const char *src)
{
    return src[0] == '{' ? parse(src) : fixture(src);
}

static json_object *maybe(const char *text)
{
    return text ? parse(text) : NULL;
}

/* Evaluates trigger (+ one condition, + inline custom rule) on an event. */
static int eval(const char *trigger, const char *tparams, const char *cond, const char *cparams, const char *custom,
                const char *event, lb_error *err)
{
    json_object *tp = maybe(tparams), *cp = maybe(cparams), *ev = event_of(event);
    const char *conds[1] = {cond};
    json_object *cps[1] = {cp};
    lb_rule_spec spec = {trigger, tp, cond ? 1 : 0, conds, cps, NULL, custom};
    int rc = lb_rules_match(rules, &spec, ev, err);
    json_object_put(tp);
    json_object_put(cp);
    json_object_put(ev);
    return rc;
}

static int check(const char *trigger, const char *tparams, const char *cond, const char *cparams,
                 json_object *reasons)
{
    json_object *tp = maybe(tparams), *cp = maybe(cparams);
    const char *conds[1] = {cond};
    json_object *cps[1] = {cp};
    lb_rule_spec spec = {trigger, tp, cond ? 1 : 0, conds, cps, NULL, NULL};
    int n = lb_rules_check(rules, &spec, reasons);
    json_object_put(tp);
    json_object_put(cp);
    return n;
}

static const char *reason_str(json_object *reasons, size_t i, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(json_object_array_get_idx(reasons, i), key, &v);
    return v ? json_object_get_string(v) : "";
}

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(content, f);
    fclose(f);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    strcpy(custom_dir, "/tmp/lb_rules_customXXXXXX");
    ck_assert(mkdtemp(custom_dir) != NULL);
    write_file(custom_dir, "vip.lua", "return { needs = { 'offer' }, test = function(ev, p)\n"
                                      "  return lb.get(ev, 'purchase.offer') == 'k7x9q2ab' end }\n");
    write_file(custom_dir, "broken.lua", "return {");
    lb_error err;
    rules = lb_rules_load(LB_TEST_RULES_DIR, custom_dir, NULL, &err);
    ck_assert_msg(rules != NULL, "%s: %s", err.field, err.message);
}

static void teardown(void)
{
    lb_rules_free(rules);
    rules = NULL;
    rm_tree(custom_dir);
}

/* A minimal valid rules dir (one trigger t1, one condition c1) plus one
 * extra file; dir must hold 64 bytes. */
static const char *const valid_trigger =
    "return { id = 't1', label = 'T', group = 'G', description = 'd', events = { 'purchase.approved' },\n"
    "  carries = { 'payment' }, match = function(ev, p) return true end }\n";
static const char *const valid_condition =
    "return { id = 'c1', label = 'C', description = 'd', needs = { 'payment' },\n"
    "  test = function(ev, p) return true end }\n";

static void make_rules_dir(char *dir, const char *sub, const char *file, const char *src)
{
    strcpy(dir, "/tmp/lb_rules_dirXXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/triggers", dir);
    ck_assert(mkdir(path, 0700) == 0);
    write_file(path, "t1.lua", valid_trigger);
    snprintf(path, sizeof path, "%s/conditions", dir);
    ck_assert(mkdir(path, 0700) == 0);
    write_file(path, "c1.lua", valid_condition);
    if (sub) {
        snprintf(path, sizeof path, "%s/%s", dir, sub);
        write_file(path, file, src);
    }
}

/* ---- the catalogue ---------------------------------------------------------------- */

/* design.md section 1, plus purchase_complete (hotmart-webhooks.md 4). */
static const struct {
    const char *id, *group;
} design_triggers[] = {
    {"cart_abandonment", "Purchase status"},       {"bank_slip_issued", "Purchase status"},
    {"purchase_approved", "Purchase status"},      {"purchase_overdue", "Purchase status"},
    {"purchase_canceled", "Purchase status"},      {"purchase_chargeback", "Purchase status"},
    {"purchase_expired", "Purchase status"},       {"order_started", "Purchase status"},
    {"purchase_protested", "Purchase status"},     {"purchase_refunded", "Purchase status"},
    {"purchase_complete", "Purchase status"},      {"file_downloaded", "Form of access"},
    {"club_free_registration", "Hotmart Club"},    {"club_progress", "Hotmart Club"},
    {"club_inactive_15", "Hotmart Club"},          {"club_inactive_30", "Hotmart Club"},
    {"product_rated", "Product rate"},             {"smart_installment_status", "Smart installments"},
    {"subscription_active", "Subscription status"}, {"subscription_overdue", "Subscription status"},
    {"subscription_canceled_admin", "Subscription status"}, {"subscription_canceled_customer", "Subscription status"},
    {"subscription_canceled_seller", "Subscription status"}, {"subscription_inactive", "Subscription status"},
    {"subscription_initiated", "Subscription status"},
};
static const char *const design_conditions[] = {
    "payment_method", "buyer_language", "purchase_currency", "installments", "offer", "buyer_country",
    "smart_installment_recurrence",
};

static json_object *find_by_id(json_object *arr, const char *id)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *e = json_object_array_get_idx(arr, i), *v = NULL;
        if (json_object_object_get_ex(e, "id", &v) && strcmp(json_object_get_string(v), id) == 0)
            return e;
    }
    return NULL;
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

START_TEST(catalogue_has_design_trigger)
{
    json_object *cat = lb_rules_catalogue(rules), *trs = NULL;
    ck_assert(json_object_object_get_ex(cat, "triggers", &trs));
    json_object *t = find_by_id(trs, design_triggers[_i].id);
    ck_assert_msg(t != NULL, "missing trigger %s", design_triggers[_i].id);
    ck_assert_str_eq(str_of(t, "group"), design_triggers[_i].group);
    ck_assert(str_of(t, "label") && str_of(t, "description") && strlen(str_of(t, "description")) > 20);
    json_object *ev = NULL, *car = NULL, *par = NULL;
    ck_assert(json_object_object_get_ex(t, "events", &ev) && json_object_array_length(ev) > 0);
    ck_assert(json_object_object_get_ex(t, "carries", &car) && json_object_is_type(car, json_type_array));
    ck_assert(json_object_object_get_ex(t, "params", &par) && json_object_is_type(par, json_type_array));
    json_object_put(cat);
}
END_TEST

START_TEST(catalogue_has_design_condition)
{
    json_object *cat = lb_rules_catalogue(rules), *cs = NULL;
    ck_assert(json_object_object_get_ex(cat, "conditions", &cs));
    json_object *c = find_by_id(cs, design_conditions[_i]);
    ck_assert_msg(c != NULL, "missing condition %s", design_conditions[_i]);
    json_object *needs = NULL, *params = NULL;
    ck_assert(json_object_object_get_ex(c, "needs", &needs) && json_object_array_length(needs) > 0);
    ck_assert(json_object_object_get_ex(c, "params", &params) && json_object_array_length(params) > 0);
    ck_assert(str_of(c, "label") && str_of(c, "description"));
    ck_assert(!json_object_object_get_ex(c, "group", NULL));
    json_object_put(cat);
}
END_TEST

START_TEST(catalogue_counts_and_param_shape)
{
    json_object *cat = lb_rules_catalogue(rules), *trs = NULL, *cs = NULL;
    json_object_object_get_ex(cat, "triggers", &trs);
    json_object_object_get_ex(cat, "conditions", &cs);
    ck_assert_int_eq(json_object_array_length(trs), N(design_triggers));
    ck_assert_int_eq(json_object_array_length(cs), N(design_conditions));
    json_object *inst = find_by_id(cs, "installments"), *params = NULL;
    json_object_object_get_ex(inst, "params", &params);
    json_object *op = json_object_array_get_idx(params, 0), *values = NULL, *req = NULL;
    ck_assert_str_eq(str_of(op, "name"), "op");
    ck_assert_str_eq(str_of(op, "type"), "enum");
    ck_assert(json_object_object_get_ex(op, "values", &values) && json_object_array_length(values) == 4);
    ck_assert(json_object_object_get_ex(op, "required", &req) && json_object_get_boolean(req));
    json_object *value = json_object_array_get_idx(params, 1), *mn = NULL;
    ck_assert(json_object_object_get_ex(value, "min", &mn) && json_object_is_type(mn, json_type_int));
    json_object *slip = find_by_id(trs, "bank_slip_issued"), *sp = NULL, *def = NULL;
    json_object_object_get_ex(slip, "params", &sp);
    ck_assert(json_object_object_get_ex(json_object_array_get_idx(sp, 0), "default", &def));
    ck_assert(json_object_is_type(def, json_type_boolean) && !json_object_get_boolean(def));
    json_object_put(cat);
}
END_TEST

START_TEST(catalogue_is_a_copy)
{
    json_object *a = lb_rules_catalogue(rules);
    json_object_object_del(a, "triggers");
    json_object *b = lb_rules_catalogue(rules);
    ck_assert(json_object_object_get_ex(b, "triggers", NULL));
    json_object_put(a);
    json_object_put(b);
}
END_TEST

/* ---- triggers -------------------------------------------------------------------------- */

static const struct {
    const char *trigger, *params, *event;
    int want;
} trigger_rows[] = {
    /* on the fixtures, through lb_hotmart_normalize */
    {"cart_abandonment", NULL, "PURCHASE_OUT_OF_SHOPPING_CART", 1},
    {"cart_abandonment", NULL, "PURCHASE_APPROVED", 0},
    {"bank_slip_issued", NULL, "PURCHASE_BILLET_PRINTED", 1},
    {"bank_slip_issued", "{\"count_pix\":true}", "PURCHASE_BILLET_PRINTED", 1},
    {"bank_slip_issued", NULL, "PURCHASE_EXPIRED", 0},
    {"purchase_approved", NULL, "PURCHASE_APPROVED", 1},
    {"purchase_approved", "{\"first_purchase_only\":true}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", NULL, "PURCHASE_COMPLETE", 0},
    {"purchase_overdue", NULL, "PURCHASE_DELAYED", 1},
    {"purchase_overdue", NULL, "PURCHASE_CANCELED", 0},
    {"purchase_canceled", NULL, "PURCHASE_CANCELED", 1},
    {"purchase_canceled", NULL, "PURCHASE_REFUNDED", 0},
    {"purchase_chargeback", NULL, "PURCHASE_CHARGEBACK", 1},
    {"purchase_chargeback", NULL, "PURCHASE_REFUNDED", 0},
    {"purchase_expired", NULL, "PURCHASE_EXPIRED", 1},
    {"purchase_expired", NULL, "PURCHASE_BILLET_PRINTED", 0},
    {"purchase_protested", NULL, "PURCHASE_PROTEST", 1},
    {"purchase_protested", NULL, "PURCHASE_REFUNDED", 0},
    {"purchase_refunded", NULL, "PURCHASE_REFUNDED", 1},
    {"purchase_refunded", NULL, "PURCHASE_PROTEST", 0},
    {"purchase_complete", NULL, "PURCHASE_COMPLETE", 1},
    {"purchase_complete", NULL, "PURCHASE_APPROVED", 0},
    {"order_started", NULL, "PURCHASE_APPROVED", 0},
    {"file_downloaded", NULL, "PURCHASE_APPROVED", 0},
    {"club_free_registration", NULL, "CLUB_FIRST_ACCESS", 0},
    {"club_progress", "{\"percent\":10}", "CLUB_MODULE_COMPLETED", 0},
    {"club_inactive_15", NULL, "CLUB_FIRST_ACCESS", 0},
    {"club_inactive_30", NULL, "CLUB_FIRST_ACCESS", 0},
    {"product_rated", NULL, "PURCHASE_APPROVED", 0},
    {"smart_installment_status", NULL, "PURCHASE_APPROVED", 0},
    {"subscription_active", NULL, "PURCHASE_APPROVED", 1},
    {"subscription_active", NULL, "PURCHASE_COMPLETE", 1},
    {"subscription_active", NULL, "SWITCH_PLAN", 1},
    {"subscription_active", NULL, "UPDATE_SUBSCRIPTION_CHARGE_DATE", 1},
    {"subscription_active", NULL, "PURCHASE_CANCELED", 0},
    {"subscription_active", NULL, "PURCHASE_REFUNDED", 0},
    {"subscription_active", NULL, "PURCHASE_OUT_OF_SHOPPING_CART", 0},
    {"subscription_overdue", NULL, "PURCHASE_DELAYED", 1},
    {"subscription_overdue", NULL, "PURCHASE_APPROVED", 0},
    {"subscription_canceled_admin", NULL, "SUBSCRIPTION_CANCELLATION", 0},
    {"subscription_canceled_customer", NULL, "SUBSCRIPTION_CANCELLATION", 1},
    {"subscription_canceled_customer", "{\"cancellation_counts_as_customer\":false}", "SUBSCRIPTION_CANCELLATION", 0},
    {"subscription_canceled_customer", NULL, "PURCHASE_APPROVED", 0},
    {"subscription_canceled_seller", NULL, "SUBSCRIPTION_CANCELLATION", 0},
    {"subscription_inactive", NULL, "PURCHASE_CANCELED", 1},
    {"subscription_inactive", NULL, "PURCHASE_APPROVED", 0},
    {"subscription_initiated", NULL, "PURCHASE_BILLET_PRINTED", 0},
    /* hand-made normalized events */
    {"bank_slip_issued", NULL, "{\"type\":\"purchase.billet_printed\",\"purchase\":{\"payment_method\":\"PIX\",\"pix_code\":\"0002\"}}", 0},
    {"bank_slip_issued", "{\"count_pix\":true}", "{\"type\":\"purchase.billet_printed\",\"purchase\":{\"payment_method\":\"PIX\"}}", 1},
    {"bank_slip_issued", "{\"count_pix\":false}", "{\"type\":\"purchase.billet_printed\",\"purchase\":{\"payment_method\":\"PIX\"}}", 0},
    {"bank_slip_issued", NULL, "{\"type\":\"purchase.billet_printed\"}", 1},
    {"bank_slip_issued", NULL, "{\"type\":\"purchase.billet_printed\",\"purchase\":{\"pix_code\":\"0002\"}}", 0},
    {"bank_slip_issued", NULL, "{\"type\":\"purchase.billet_printed\",\"purchase\":{\"payment_method\":\"FINANCED_BILLET\"}}", 1},
    {"purchase_approved", NULL, "{\"type\":\"purchase.approved\",\"purchase\":{\"recurrence\":3}}", 1},
    {"purchase_approved", "{\"first_purchase_only\":true}", "{\"type\":\"purchase.approved\",\"purchase\":{\"recurrence\":3}}", 0},
    {"purchase_approved", "{\"first_purchase_only\":true}", "{\"type\":\"purchase.approved\"}", 1},
    {"order_started", NULL, "{\"type\":\"purchase.started\"}", 1},
    {"order_started", "{\"paypal_only\":true}", "{\"type\":\"purchase.started\",\"purchase\":{\"payment_method\":\"PAYPAL\"}}", 1},
    {"order_started", "{\"paypal_only\":true}", "{\"type\":\"purchase.started\",\"purchase\":{\"payment_method\":\"PAYPAL_INTERNACIONAL\"}}", 1},
    {"order_started", "{\"paypal_only\":true}", "{\"type\":\"purchase.started\",\"purchase\":{\"payment_method\":\"CREDIT_CARD\"}}", 0},
    {"order_started", "{\"paypal_only\":true}", "{\"type\":\"purchase.started\"}", 0},
    {"file_downloaded", NULL, "{\"type\":\"file.downloaded\",\"file\":{\"name\":\"ebook.pdf\"}}", 1},
    {"file_downloaded", "{\"file\":\"ebook.pdf\"}", "{\"type\":\"file.downloaded\",\"file\":{\"name\":\"ebook.pdf\"}}", 1},
    {"file_downloaded", "{\"file\":\"other.pdf\"}", "{\"type\":\"file.downloaded\",\"file\":{\"name\":\"ebook.pdf\"}}", 0},
    {"club_free_registration", NULL, "{\"type\":\"club.registered\"}", 1},
    {"club_progress", "{\"percent\":50}", "{\"type\":\"club.progress\",\"club\":{\"progress\":50}}", 1},
    {"club_progress", "{\"percent\":50}", "{\"type\":\"club.progress\",\"club\":{\"progress\":49.5}}", 0},
    {"club_progress", "{\"percent\":50}", "{\"type\":\"club.progress\",\"club\":{\"progress\":100}}", 1},
    {"club_progress", "{\"percent\":50}", "{\"type\":\"club.progress\"}", 0},
    {"club_inactive_15", NULL, "{\"type\":\"club.inactive\",\"club\":{\"inactive_days\":15}}", 1},
    {"club_inactive_15", NULL, "{\"type\":\"club.inactive\",\"club\":{\"inactive_days\":29}}", 1},
    {"club_inactive_15", NULL, "{\"type\":\"club.inactive\",\"club\":{\"inactive_days\":14}}", 0},
    {"club_inactive_15", NULL, "{\"type\":\"club.inactive\",\"club\":{\"inactive_days\":30}}", 0},
    {"club_inactive_15", NULL, "{\"type\":\"club.last_access\",\"club\":{\"last_access_at\":1}}", 0},
    {"club_inactive_30", NULL, "{\"type\":\"club.inactive\",\"club\":{\"inactive_days\":30}}", 1},
    {"club_inactive_30", NULL, "{\"type\":\"club.inactive\",\"club\":{\"inactive_days\":45}}", 1},
    {"club_inactive_30", NULL, "{\"type\":\"club.inactive\",\"club\":{\"inactive_days\":29}}", 0},
    {"club_inactive_30", NULL, "{\"type\":\"club.inactive\"}", 0},
    {"product_rated", NULL, "{\"type\":\"product.rated\",\"rating\":{\"score\":1}}", 1},
    {"product_rated", "{\"min_score\":4}", "{\"type\":\"product.rated\",\"rating\":{\"score\":5}}", 1},
    {"product_rated", "{\"min_score\":4}", "{\"type\":\"product.rated\",\"rating\":{\"score\":4}}", 1},
    {"product_rated", "{\"min_score\":4}", "{\"type\":\"product.rated\",\"rating\":{\"score\":3}}", 0},
    {"smart_installment_status", NULL, "{\"type\":\"smart_installment.status_changed\",\"smart_installment\":{\"status\":\"OVERDUE\"}}", 1},
    {"smart_installment_status", "{\"status\":\"Overdue\"}", "{\"type\":\"smart_installment.status_changed\",\"smart_installment\":{\"status\":\"OVERDUE\"}}", 1},
    {"smart_installment_status", "{\"status\":\"active\"}", "{\"type\":\"smart_installment.status_changed\",\"smart_installment\":{\"status\":\"OVERDUE\"}}", 0},
    {"subscription_active", NULL, "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"active\"}}", 1},
    {"subscription_overdue", NULL, "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"past_due\"}}", 1},
    {"subscription_overdue", NULL, "{\"type\":\"purchase.delayed\",\"subscription\":{\"plan_id\":\"1\"}}", 1},
    {"subscription_overdue", NULL, "{\"type\":\"purchase.delayed\"}", 0},
    {"subscription_overdue", NULL, "{\"type\":\"purchase.delayed\",\"subscription\":{\"status\":\"active\"}}", 0},
    {"subscription_canceled_admin", NULL, "{\"type\":\"purchase.canceled\",\"subscription\":{\"status\":\"canceled_by_admin\"}}", 1},
    {"subscription_canceled_admin", NULL, "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"cancelled_by_admin\"}}", 1},
    {"subscription_canceled_customer", NULL, "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"cancelled_by_customer\"}}", 1},
    {"subscription_canceled_customer", "{\"cancellation_counts_as_customer\":false}", "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"canceled_by_customer\"}}", 1},
    {"subscription_canceled_customer", NULL, "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"canceled_by_seller\"}}", 0},
    {"subscription_canceled_customer", NULL, "{\"type\":\"subscription.canceled\",\"subscription\":{\"status\":\"canceled_by_seller\"}}", 0},
    {"subscription_canceled_seller", NULL, "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"canceled_by_vendor\"}}", 1},
    {"subscription_canceled_seller", NULL, "{\"type\":\"purchase.canceled\",\"subscription\":{\"status\":\"canceled_by_seller\"}}", 1},
    {"subscription_canceled_seller", NULL, "{\"type\":\"subscription.canceled\"}", 0},
    {"subscription_inactive", NULL, "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"inactive\"}}", 1},
    {"subscription_initiated", NULL, "{\"type\":\"purchase.billet_printed\",\"subscription\":{\"status\":\"initiated\"}}", 1},
    {"subscription_initiated", NULL, "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"started\"}}", 1},
    {"subscription_initiated", NULL, "{\"type\":\"subscription.status_changed\",\"subscription\":{\"status\":\"active\"}}", 0},
    {"cart_abandonment", NULL, "{\"type\":\"unknown\",\"ignored\":true}", 0},
    {"purchase_approved", NULL, "{\"lead\":{\"email\":\"a@b.c\"}}", 0},
    {"purchase_approved", NULL, "{\"type\":7}", 0},
};

START_TEST(trigger_matches)
{
    lb_error err = {{0}, {0}};
    int got = eval(trigger_rows[_i].trigger, trigger_rows[_i].params, NULL, NULL, NULL, trigger_rows[_i].event, &err);
    ck_assert_msg(got == trigger_rows[_i].want, "%s %s on %s: got %d (%s %s)", trigger_rows[_i].trigger,
                  trigger_rows[_i].params ? trigger_rows[_i].params : "", trigger_rows[_i].event, got, err.field,
                  err.message);
}
END_TEST

/* The 1.0 postback: status=started is the "order started" trigger. */
START_TEST(order_started_from_postback_1_0)
{
    const char *body = "status=started&transaction=HP123&email=ana%40example.com&payment_type=paypal&prod=1";
    lb_event ev = {0};
    char *hottok = NULL;
    lb_error err;
    size_t hottok_len = 0;
    ck_assert_int_eq(lb_hotmart_form_normalize(body, strlen(body), &ev, &hottok, &hottok_len, &err), 0);
    lb_rule_spec spec = {"order_started", parse("{\"paypal_only\":true}"), 0, NULL, NULL, NULL, NULL};
    ck_assert_int_eq(lb_rules_match(rules, &spec, ev.doc, &err), 1);
    json_object_put(spec.trigger_params);
    spec.trigger = "purchase_approved";
    spec.trigger_params = NULL;
    ck_assert_int_eq(lb_rules_match(rules, &spec, ev.doc, &err), 0);
    lb_event_clear(&ev);
    free(hottok);
}
END_TEST

/* ---- conditions --------------------------------------------------------------------------- */

#define EV_APPROVED(extra) "{\"type\":\"purchase.approved\"" extra "}"
#define EV_LEAD(json) EV_APPROVED(",\"lead\":" json)

static const struct {
    const char *trigger, *cond, *params, *event;
    int want;
} condition_rows[] = {
    {"purchase_approved", "payment_method", "{\"in\":[\"CREDIT_CARD\"]}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "payment_method", "{\"in\":[\"PIX\",\"BILLET\"]}", "PURCHASE_APPROVED", 0},
    {"purchase_approved", "payment_method", "{\"in\":[\"credit_card\"]}", "PURCHASE_APPROVED", 1},
    {"bank_slip_issued", "payment_method", "{\"in\":[\"BILLET\"]}", "PURCHASE_BILLET_PRINTED", 1},
    {"purchase_approved", "payment_method", "{\"in\":[\"PIX\"]}", EV_APPROVED(",\"purchase\":{\"payment_method\":\"PIX\"}"), 1},
    {"purchase_approved", "payment_method", "{\"in\":[\"PIX\"]}", EV_APPROVED(""), 0},
    {"purchase_approved", "buyer_language", "{\"in\":[\"pt\"]}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"PT\"]}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"es\"]}", "PURCHASE_APPROVED", 0},
    {"purchase_approved", "buyer_language", "{\"in\":[\"pt\"]}", EV_LEAD("{\"country\":\"PT\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"pt\"]}", EV_LEAD("{\"country\":\"AO\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"pt\"]}", EV_LEAD("{\"country\":\"MZ\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"es\"]}", EV_LEAD("{\"country\":\"ES\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"es\"]}", EV_LEAD("{\"country\":\"MX\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"es\"]}", EV_LEAD("{\"country\":\"AR\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"es\"]}", EV_LEAD("{\"country\":\"CO\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"en\"]}", EV_LEAD("{\"country\":\"US\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"en\"]}", EV_LEAD("{\"country\":\"GB\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"en\"]}", EV_LEAD("{\"country\":\"CA\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"en\"]}", EV_LEAD("{\"country\":\"AU\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"fr\"]}", EV_LEAD("{\"country\":\"FR\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"de\"]}", EV_LEAD("{\"country\":\"DE\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"de\"]}", EV_LEAD("{\"country\":\"AT\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"it\"]}", EV_LEAD("{\"country\":\"IT\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"fr\"]}", EV_LEAD("{\"country\":\"DE\"}"), 0},
    {"purchase_approved", "buyer_language", "{\"in\":[\"en\"]}", EV_LEAD("{\"country\":\"BR\",\"language\":\"en-US\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"pt\"]}", EV_LEAD("{\"country\":\"BR\",\"language\":\"en-US\"}"), 0},
    {"purchase_approved", "buyer_language", "{\"in\":[\"pt\"]}", EV_LEAD("{\"language\":\"pt_BR\"}"), 1},
    {"purchase_approved", "buyer_language", "{\"in\":[\"en\",\"es\"]}", EV_LEAD("{\"country\":\"IN\"}"), 0},
    {"purchase_approved", "buyer_language", "{\"in\":[\"pt\"]}", EV_APPROVED(""), 0},
    {"subscription_canceled_customer", "buyer_language", "{\"in\":[\"pt\"]}", "SUBSCRIPTION_CANCELLATION", 0},
    {"purchase_approved", "purchase_currency", "{\"in\":[\"BRL\"]}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "purchase_currency", "{\"in\":[\"usd\",\"eur\"]}", "PURCHASE_APPROVED", 0},
    {"purchase_approved", "purchase_currency", "{\"in\":[\"usd\"]}", EV_APPROVED(",\"purchase\":{\"currency\":\"USD\"}"), 1},
    {"purchase_approved", "purchase_currency", "{\"in\":[\"BRL\"]}", EV_APPROVED(""), 0},
    {"purchase_approved", "installments", "{\"op\":\"eq\",\"value\":12}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "installments", "{\"op\":\"EQ\",\"value\":12}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "installments", "{\"op\":\"eq\",\"value\":1}", "PURCHASE_APPROVED", 0},
    {"purchase_approved", "installments", "{\"op\":\"lt\",\"value\":13}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "installments", "{\"op\":\"lt\",\"value\":12}", "PURCHASE_APPROVED", 0},
    {"purchase_approved", "installments", "{\"op\":\"gt\",\"value\":11}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "installments", "{\"op\":\"gt\",\"value\":12}", "PURCHASE_APPROVED", 0},
    {"purchase_approved", "installments", "{\"op\":\"between\",\"value\":10,\"value2\":12}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "installments", "{\"op\":\"between\",\"value\":12,\"value2\":12}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "installments", "{\"op\":\"between\",\"value\":1,\"value2\":11}", "PURCHASE_APPROVED", 0},
    {"purchase_approved", "installments", "{\"op\":\"eq\",\"value\":12.0}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "installments", "{\"op\":\"eq\",\"value\":1}", EV_APPROVED(""), 0},
    {"purchase_refunded", "installments", "{\"op\":\"eq\",\"value\":3}", "PURCHASE_REFUNDED", 1},
    {"purchase_approved", "offer", "{\"in\":[\"k7x9q2ab\"]}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "offer", "{\"in\":[\"other\"]}", "PURCHASE_APPROVED", 0},
    {"purchase_approved", "offer", "{\"in\":[\"K7X9Q2AB\"]}", "PURCHASE_APPROVED", 0},
    {"cart_abandonment", "offer", "{\"in\":[\"x\",\"k7x9q2ab\"]}", "PURCHASE_OUT_OF_SHOPPING_CART", 1},
    {"purchase_approved", "buyer_country", "{\"in\":[\"BR\"]}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "buyer_country", "{\"in\":[\"pt\",\"br\"]}", "PURCHASE_APPROVED", 1},
    {"purchase_approved", "buyer_country", "{\"in\":[\"PT\"]}", "PURCHASE_APPROVED", 0},
    {"cart_abandonment", "buyer_country", "{\"in\":[\"BR\"]}", "PURCHASE_OUT_OF_SHOPPING_CART", 1},
    {"subscription_canceled_customer", "buyer_country", "{\"in\":[\"BR\"]}", "SUBSCRIPTION_CANCELLATION", 0},
    {"smart_installment_status", "smart_installment_recurrence", "{\"in\":[\"active\"]}",
     "{\"type\":\"smart_installment.status_changed\",\"smart_installment\":{\"status\":\"ACTIVE\"}}", 1},
    {"smart_installment_status", "smart_installment_recurrence", "{\"in\":[\"overdue\",\"canceled\"]}",
     "{\"type\":\"smart_installment.status_changed\",\"smart_installment\":{\"status\":\"ACTIVE\"}}", 0},
    {"smart_installment_status", "smart_installment_recurrence", "{\"in\":[\"active\"]}",
     "{\"type\":\"smart_installment.status_changed\"}", 0},
};

START_TEST(condition_filters)
{
    lb_error err = {{0}, {0}};
    int got = eval(condition_rows[_i].trigger, NULL, condition_rows[_i].cond, condition_rows[_i].params, NULL,
                   condition_rows[_i].event, &err);
    ck_assert_msg(got == condition_rows[_i].want, "%s %s on %s: got %d (%s %s)", condition_rows[_i].cond,
                  condition_rows[_i].params, condition_rows[_i].event, got, err.field, err.message);
}
END_TEST

/* Conditions are ANDed, in order; the first false one stops. */
START_TEST(conditions_are_anded)
{
    const char *conds[2] = {"payment_method", "purchase_currency"};
    json_object *cps[2] = {parse("{\"in\":[\"CREDIT_CARD\"]}"), parse("{\"in\":[\"BRL\"]}")};
    lb_rule_spec spec = {"purchase_approved", NULL, 2, conds, cps, NULL, NULL};
    json_object *ev = fixture("PURCHASE_APPROVED");
    lb_error err;
    ck_assert_int_eq(lb_rules_match(rules, &spec, ev, &err), 1);
    json_object_put(cps[1]);
    cps[1] = parse("{\"in\":[\"USD\"]}");
    ck_assert_int_eq(lb_rules_match(rules, &spec, ev, &err), 0);
    json_object_put(cps[0]);
    json_object_put(cps[1]);
    json_object_put(ev);
}
END_TEST

/* ---- consistency (lb_rules_check) ---------------------------------------------------- */

static const struct {
    const char *trigger, *tparams, *cond, *cparams, *code, *field;
} bad_specs[] = {
    {NULL, NULL, NULL, NULL, "unknown_trigger", "trigger"},
    {"nope", NULL, NULL, NULL, "unknown_trigger", "trigger"},
    {"purchase_approved", NULL, "nope", NULL, "unknown_condition", "conditions[0]"},
    {"cart_abandonment", NULL, "installments", "{\"op\":\"eq\",\"value\":1}", "condition_not_applicable", "conditions[0]"},
    {"cart_abandonment", NULL, "payment_method", "{\"in\":[\"PIX\"]}", "condition_not_applicable", "conditions[0]"},
    {"cart_abandonment", NULL, "purchase_currency", "{\"in\":[\"BRL\"]}", "condition_not_applicable", "conditions[0]"},
    {"club_progress", "{\"percent\":5}", "payment_method", "{\"in\":[\"PIX\"]}", "condition_not_applicable", "conditions[0]"},
    {"product_rated", NULL, "installments", "{\"op\":\"eq\",\"value\":1}", "condition_not_applicable", "conditions[0]"},
    {"purchase_approved", NULL, "smart_installment_recurrence", "{\"in\":[\"x\"]}", "condition_not_applicable", "conditions[0]"},
    {"smart_installment_status", NULL, "payment_method", "{\"in\":[\"PIX\"]}", "condition_not_applicable", "conditions[0]"},
    {"file_downloaded", NULL, "offer", "{\"in\":[\"x\"]}", "condition_not_applicable", "conditions[0]"},
    {"club_progress", NULL, NULL, NULL, "missing_param", "trigger_params.percent"},
    {"club_progress", "{\"percent\":0}", NULL, NULL, "bad_param", "trigger_params.percent"},
    {"club_progress", "{\"percent\":101}", NULL, NULL, "bad_param", "trigger_params.percent"},
    {"club_progress", "{\"percent\":\"50\"}", NULL, NULL, "bad_param", "trigger_params.percent"},
    {"club_progress", "{\"percent\":50,\"x\":1}", NULL, NULL, "unknown_param", "trigger_params.x"},
    {"purchase_approved", "{\"first_purchase_only\":\"yes\"}", NULL, NULL, "bad_param", "trigger_params.first_purchase_only"},
    {"purchase_approved", "[1]", NULL, NULL, "bad_param", "trigger_params"},
    {"product_rated", "{\"min_score\":11}", NULL, NULL, "bad_param", "trigger_params.min_score"},
    {"smart_installment_status", "{\"status\":\"\"}", NULL, NULL, "bad_param", "trigger_params.status"},
    {"purchase_approved", NULL, "payment_method", NULL, "missing_param", "condition_params[0].in"},
    {"purchase_approved", NULL, "payment_method", "{\"in\":[]}", "bad_param", "condition_params[0].in"},
    {"purchase_approved", NULL, "payment_method", "{\"in\":\"PIX\"}", "bad_param", "condition_params[0].in"},
    {"purchase_approved", NULL, "payment_method", "{\"in\":[\"BITCOIN\"]}", "bad_param", "condition_params[0].in"},
    {"purchase_approved", NULL, "payment_method", "{\"in\":[\"PIX\",3]}", "bad_param", "condition_params[0].in"},
    {"purchase_approved", NULL, "installments", "{\"op\":\"between\",\"value\":2}", "bad_params", "condition_params[0]"},
    {"purchase_approved", NULL, "installments", "{\"op\":\"between\",\"value\":5,\"value2\":2}", "bad_params", "condition_params[0]"},
    {"purchase_approved", NULL, "installments", "{\"op\":\"eq\",\"value\":2,\"value2\":3}", "bad_params", "condition_params[0]"},
    {"purchase_approved", NULL, "installments", "{\"op\":\"ge\",\"value\":2}", "bad_param", "condition_params[0].op"},
    {"purchase_approved", NULL, "installments", "{\"op\":\"eq\",\"value\":1.5}", "bad_param", "condition_params[0].value"},
    {"purchase_approved", NULL, "installments", "{\"op\":\"eq\",\"value\":0}", "bad_param", "condition_params[0].value"},
    {"purchase_approved", NULL, "installments", "{\"op\":\"eq\"}", "missing_param", "condition_params[0].value"},
    {"purchase_approved", NULL, "buyer_country", "{\"in\":[\"BRA\"]}", "bad_params", "condition_params[0]"},
    {"purchase_approved", NULL, "buyer_language", "{\"in\":[\"xx\"]}", "bad_param", "condition_params[0].in"},
};

START_TEST(inconsistent_spec_refused)
{
    json_object *reasons = json_object_new_array();
    int n = check(bad_specs[_i].trigger, bad_specs[_i].tparams, bad_specs[_i].cond, bad_specs[_i].cparams, reasons);
    ck_assert_msg(n == 1, "row %d: %d reasons: %s", _i, n, json_object_to_json_string(reasons));
    ck_assert_int_eq(json_object_array_length(reasons), 1);
    ck_assert_str_eq(reason_str(reasons, 0, "code"), bad_specs[_i].code);
    ck_assert_str_eq(reason_str(reasons, 0, "field"), bad_specs[_i].field);
    ck_assert(strlen(reason_str(reasons, 0, "message")) > 5);
    json_object_put(reasons);
}
END_TEST

static const struct {
    const char *trigger, *tparams, *cond, *cparams;
} good_specs[] = {
    {"cart_abandonment", NULL, "offer", "{\"in\":[\"a\"]}"},
    {"cart_abandonment", NULL, "buyer_country", "{\"in\":[\"BR\"]}"},
    {"cart_abandonment", NULL, "buyer_language", "{\"in\":[\"pt\"]}"},
    {"club_progress", "{\"percent\":50}", "buyer_country", "{\"in\":[\"BR\"]}"},
    {"purchase_approved", "{}", "installments", "{\"op\":\"between\",\"value\":1,\"value2\":12}"},
    {"subscription_canceled_customer", NULL, "payment_method", "{\"in\":[\"PIX\"]}"},
    {"smart_installment_status", NULL, "smart_installment_recurrence", "{\"in\":[\"active\"]}"},
    {"bank_slip_issued", "{\"count_pix\":true}", NULL, NULL},
    {"club_progress", "{\"percent\":99.5}", NULL, NULL},
    {"product_rated", "{\"min_score\":0}", NULL, NULL},
};

START_TEST(consistent_spec_accepted)
{
    json_object *reasons = json_object_new_array();
    int n = check(good_specs[_i].trigger, good_specs[_i].tparams, good_specs[_i].cond, good_specs[_i].cparams, reasons);
    ck_assert_msg(n == 0, "row %d: %s", _i, json_object_to_json_string(reasons));
    json_object_put(reasons);
}
END_TEST

START_TEST(check_reports_every_reason)
{
    const char *conds[3] = {"installments", "nope", "payment_method"};
    json_object *cps[3] = {parse("{\"op\":\"eq\",\"value\":1}"), NULL, parse("{\"in\":[\"BITCOIN\"]}")};
    lb_rule_spec spec = {"cart_abandonment", parse("{\"zzz\":1}"), 3, conds, cps, NULL, NULL};
    json_object *reasons = json_object_new_array();
    /* unknown param; installments not applicable; unknown condition;
     * payment_method not applicable + its bad value */
    ck_assert_int_eq(lb_rules_check(rules, &spec, reasons), 5);
    ck_assert_int_eq(json_object_array_length(reasons), 5);
    ck_assert_str_eq(reason_str(reasons, 0, "field"), "trigger_params.zzz");
    ck_assert_str_eq(reason_str(reasons, 1, "code"), "condition_not_applicable");
    ck_assert_str_eq(reason_str(reasons, 2, "field"), "conditions[1]");
    ck_assert_int_eq(lb_rules_check(rules, &spec, NULL), 5); /* counting works without an array */
    json_object_put(reasons);
    json_object_put(spec.trigger_params);
    json_object_put(cps[0]);
    json_object_put(cps[2]);
}
END_TEST

START_TEST(check_without_condition_params_array)
{
    const char *conds[1] = {"offer"};
    lb_rule_spec spec = {"purchase_approved", NULL, 1, conds, NULL, NULL, NULL};
    json_object *reasons = json_object_new_array();
    ck_assert_int_eq(lb_rules_check(rules, &spec, reasons), 1);
    ck_assert_str_eq(reason_str(reasons, 0, "code"), "missing_param");
    json_object_put(reasons);
}
END_TEST

START_TEST(prepare_refuses_inconsistent_with_first_reason)
{
    const char *conds[1] = {"installments"};
    json_object *cps[1] = {parse("{\"op\":\"eq\",\"value\":1}")};
    lb_rule_spec spec = {"cart_abandonment", NULL, 1, conds, cps, NULL, NULL};
    lb_error err;
    ck_assert_ptr_null(lb_rules_prepare(rules, &spec, &err));
    ck_assert_str_eq(err.field, "conditions[0]");
    ck_assert_ptr_nonnull(strstr(err.message, "does not apply"));
    json_object *ev = fixture("PURCHASE_OUT_OF_SHOPPING_CART");
    ck_assert_int_eq(lb_rules_match(rules, &spec, ev, &err), -1);
    json_object_put(ev);
    json_object_put(cps[0]);
}
END_TEST

/* A prepared handle is reused; other event types never enter Lua. */
static long evaluations_of(const char *id)
{
    json_object *stats = lb_rules_stats(rules), *mods = NULL;
    json_object_object_get_ex(stats, "modules", &mods);
    long n = -1;
    json_object *m = find_by_id(mods, id), *v = NULL;
    if (m && json_object_object_get_ex(m, "evaluations", &v))
        n = (long)json_object_get_int64(v);
    json_object_put(stats);
    return n;
}

START_TEST(prepared_skips_other_types_before_lua)
{
    lb_rule_spec spec = {"purchase_refunded", NULL, 0, NULL, NULL, NULL, NULL};
    lb_error err;
    lb_rule_prepared *h = lb_rules_prepare(rules, &spec, &err);
    ck_assert_ptr_nonnull(h);
    json_object *approved = fixture("PURCHASE_APPROVED"), *refunded = fixture("PURCHASE_REFUNDED");
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(lb_rules_match_prepared(rules, h, approved, &err), 0);
    ck_assert_int_eq(evaluations_of("purchase_refunded"), 0);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(lb_rules_match_prepared(rules, h, refunded, &err), 1);
    ck_assert_int_eq(evaluations_of("purchase_refunded"), 1000);
    lb_rules_unprepare(rules, h);
    /* a handle left open is freed with the set (ASan checks) */
    ck_assert_ptr_nonnull(lb_rules_prepare(rules, &spec, &err));
    json_object_put(approved);
    json_object_put(refunded);
}
END_TEST

/* ---- custom rules ------------------------------------------------------------------------- */

START_TEST(custom_inline_bare_function)
{
    lb_error err;
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, "return function(ev, p) return ev.lead.country == 'BR' end",
                          "PURCHASE_APPROVED", &err), 1);
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, "return function(ev, p) return ev.lead.country == 'PT' end",
                          "PURCHASE_APPROVED", &err), 0);
}
END_TEST

START_TEST(custom_inline_table_and_unknown_api_keys)
{
    lb_error err;
    const char *src = "return { label = 'VIP', needs = { 'purchase' }, test = function(ev, p)\n"
                      "  return lb.get(ev, 'extra.vip') == true end }";
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, src, EV_APPROVED(",\"extra\":{\"vip\":true}"), &err), 1);
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, src, EV_APPROVED(",\"extra\":{\"vip\":false}"), &err), 0);
}
END_TEST

START_TEST(custom_file_from_custom_dir)
{
    lb_rule_spec spec = {"purchase_approved", NULL, 0, NULL, NULL, "vip.lua", NULL};
    json_object *ev = fixture("PURCHASE_APPROVED");
    lb_error err;
    ck_assert_int_eq(lb_rules_match(rules, &spec, ev, &err), 1);
    json_object_put(ev);
    ev = parse(EV_APPROVED(",\"purchase\":{\"offer\":\"other\"}"));
    ck_assert_int_eq(lb_rules_match(rules, &spec, ev, &err), 0);
    json_object_put(ev);
    /* its needs are checked against the trigger */
    spec.trigger = "club_free_registration";
    json_object *reasons = json_object_new_array();
    ck_assert_int_eq(lb_rules_check(rules, &spec, reasons), 1);
    ck_assert_str_eq(reason_str(reasons, 0, "code"), "custom_not_applicable");
    json_object_put(reasons);
}
END_TEST

START_TEST(custom_compiled_once)
{
    lb_rule_spec spec = {"purchase_approved", NULL, 0, NULL, NULL, NULL, "return function() return true end"};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(lb_rules_check(rules, &spec, NULL), 0);
    spec.custom_inline = NULL;
    spec.custom_file = "vip.lua";
    ck_assert_int_eq(lb_rules_check(rules, &spec, NULL), 0);
    ck_assert_int_eq(lb_rules_check(rules, &spec, NULL), 0);
    json_object *stats = lb_rules_stats(rules), *mods = NULL;
    json_object_object_get_ex(stats, "modules", &mods);
    int customs = 0;
    for (size_t i = 0; i < json_object_array_length(mods); i++)
        customs += strcmp(str_of(json_object_array_get_idx(mods, i), "kind"), "custom") == 0;
    ck_assert_int_eq(customs, 2);
    json_object_put(stats);
}
END_TEST

static const struct {
    const char *file, *inline_src, *code, *msg;
} bad_customs[] = {
    {"vip.lua", "return function() return true end", "custom_conflict", "not both"},
    {"../etc/passwd", NULL, "custom_invalid", "plain file name"},
    {"sub/x.lua", NULL, "custom_invalid", "plain file name"},
    {".hidden.lua", NULL, "custom_invalid", "plain file name"},
    {"missing.lua", NULL, "custom_invalid", "cannot open"},
    {"broken.lua", NULL, "custom_invalid", "custom/broken.lua:1:"},
    {NULL, "return 42", "custom_invalid", "function or a table"},
    {NULL, "return {}", "custom_invalid", "'test' must be a function"},
    {NULL, "return { test = function() end, extra = 1 }", "custom_invalid", "unknown field 'extra'"},
    {NULL, "return { test = function() end, needs = { 'bogus' } }", "custom_invalid", "vocabulary"},
    {NULL, "this is not lua", "custom_invalid", "inline:"},
    {NULL, "\x1bLua\x54\x00", "custom_invalid", "binary"},
    {NULL, "while true do end", "custom_invalid", "timeout"},
    {NULL, "local x = io return function() return true end", "custom_invalid", "undefined global 'io'"},
    {NULL, "x = 1 return function() return true end", "custom_invalid", "may not define globals"},
    {NULL, "", "custom_invalid", "1-"},
    {NULL, "return { needs = { 'installments' }, test = function() return true end }", "custom_not_applicable", "carry"},
};

START_TEST(custom_refused)
{
    lb_rule_spec spec = {"cart_abandonment", NULL, 0, NULL, NULL, bad_customs[_i].file, bad_customs[_i].inline_src};
    json_object *reasons = json_object_new_array();
    ck_assert_int_eq(lb_rules_check(rules, &spec, reasons), 1);
    ck_assert_str_eq(reason_str(reasons, 0, "code"), bad_customs[_i].code);
    ck_assert_msg(strstr(reason_str(reasons, 0, "message"), bad_customs[_i].msg) != NULL, "row %d: %s", _i,
                  reason_str(reasons, 0, "message"));
    json_object_put(reasons);
}
END_TEST

START_TEST(custom_file_needs_custom_dir)
{
    lb_error err;
    lb_rules *r = lb_rules_load(LB_TEST_RULES_DIR, NULL, NULL, &err);
    ck_assert_ptr_nonnull(r);
    lb_rule_spec spec = {"purchase_approved", NULL, 0, NULL, NULL, "vip.lua", NULL};
    json_object *reasons = json_object_new_array();
    ck_assert_int_eq(lb_rules_check(r, &spec, reasons), 1);
    ck_assert_ptr_nonnull(strstr(reason_str(reasons, 0, "message"), "no custom rules directory"));
    json_object_put(reasons);
    lb_rules_free(r);
}
END_TEST

START_TEST(custom_count_is_capped)
{
    lb_rules_limits lim = {0};
    lim.max_custom = 1;
    lb_error err;
    lb_rules *r = lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err);
    ck_assert_ptr_nonnull(r);
    lb_rule_spec spec = {"purchase_approved", NULL, 0, NULL, NULL, NULL, "return function() return true end"};
    ck_assert_int_eq(lb_rules_check(r, &spec, NULL), 0);
    ck_assert_int_eq(lb_rules_check(r, &spec, NULL), 0); /* the same one: cached */
    spec.custom_inline = "return function() return false end";
    json_object *reasons = json_object_new_array();
    ck_assert_int_eq(lb_rules_check(r, &spec, reasons), 1);
    ck_assert_str_eq(reason_str(reasons, 0, "code"), "too_many_custom");
    json_object_put(reasons);
    lb_rules_free(r);
}
END_TEST

/* ---- the sandbox ----------------------------------------------------------------------------- */

/* Custom rules are where user code runs, so escapes are tried there. want:
 * 1/0 = evaluation result, -1 = error whose message contains `msg`. */
static const struct {
    const char *src, *event;
    int want;
    const char *msg;
} sandbox_rows[] = {
    {"return function() return io ~= nil end", NULL, -1, "undefined global 'io'"},
    {"return function() return os.time() end", NULL, -1, "undefined global 'os'"},
    {"return function() return require('os') end", NULL, -1, "undefined global 'require'"},
    {"return function() return load('return 1') end", NULL, -1, "undefined global 'load'"},
    {"return function() return loadstring('return 1') end", NULL, -1, "undefined global 'loadstring'"},
    {"return function() return dofile('/etc/passwd') end", NULL, -1, "undefined global 'dofile'"},
    {"return function() return loadfile('/etc/passwd') end", NULL, -1, "undefined global 'loadfile'"},
    {"return function() return package.loaded end", NULL, -1, "undefined global 'package'"},
    {"return function() return debug.getinfo(1) end", NULL, -1, "undefined global 'debug'"},
    {"return function() return collectgarbage('count') end", NULL, -1, "undefined global 'collectgarbage'"},
    {"return function() print('x') return true end", NULL, -1, "undefined global 'print'"},
    {"return function() rawset(string, 'upper', nil) return true end", NULL, -1, "undefined global 'rawset'"},
    {"return function() return coroutine.create(print) end", NULL, -1, "undefined global 'coroutine'"},
    {"return function() return _G.io end", NULL, -1, "undefined global '_G'"},
    {"return function() return string.dump == nil end", NULL, 1, NULL},
    {"return function() return getmetatable('') == false end", NULL, 1, NULL},
    {"return function() return getmetatable('').__index.upper end", NULL, -1, "index a boolean"},
    {"return function() return getmetatable(string) == false end", NULL, 1, NULL},
    {"return function() return rawget(string, 'upper') == nil and string.upper('a') == 'A' end", NULL, 1, NULL},
    {"return function() string.upper = nil return true end", NULL, -1, "read-only"},
    {"return function() lb.get = nil return true end", NULL, -1, "read-only"},
    {"return function() local f, s, k = pairs(string) return s == string and k == nil end", NULL, 1, NULL},
    {"return function() local n = 0 for k, v in pairs(lb) do if lb[k] ~= v then return false end n = n + 1 end"
     " for k, v in pairs(string) do if string[k] ~= v then return false end n = n + 1 end return n > 10 end",
     NULL, 1, NULL},
    /* no metatables of a rule's making: a C __index or __len would stretch a
     * library loop in C, which the CPU hook cannot stop (see c_loops_bounded) */
    {"return function() setmetatable(string, {}) return true end", NULL, -1, "undefined global 'setmetatable'"},
    {"return function() setmetatable({}, { __gc = function() end }) return true end", NULL, -1,
     "undefined global 'setmetatable'"},
    {"return function() local s = string.rep('x', 1 << 30) return true end", NULL, -1, "nomem:"},
    {"return function() local s = ('x'):rep(1 << 30) return true end", NULL, -1, "nomem:"},
    {"return function() local s = 'x' while true do s = s .. s end end", NULL, -1, "nomem:"},
    /* table growth: the per-evaluation memory cap or the CPU budget, whichever
     * comes first (see table_growth_bomb_hits_memory_cap for the memory one) */
    {"return function() local t = {} for i = 1, 1e9 do t[i] = i end return true end", NULL, -1, ": "},
    {"return function() local t = {} for i = 1, 1e9 do t[#t + 1] = { i } end return true end", NULL, -1, ": "},
    {"return function() local ok = pcall(string.rep, 'x', 1 << 30) return true end", NULL, -1, "nomem:"},
    {"return function() while true do end end", NULL, -1, "timeout:"},
    {"return function() while true do pcall(function() while true do end end) end end", NULL, -1, "timeout:"},
    {"return function() pcall(function() while true do end end) return true end", NULL, -1, "timeout:"},
    {"return function() for i = 1, math.huge do pcall(error, 'x') end end", NULL, -1, "timeout:"},
    {"return function() xpcall(function() while true do end end, function(m) return m end) return true end", NULL, -1, "timeout:"},
    {"return function() local function f(n) return 1 + f(n + 1) end return f(1) > 0 end", NULL, -1, ""},
    /* pcall catches "stack overflow" at the deepest level: contained, true */
    {"return function() local function f() return pcall(f) end f() return true end", NULL, 1, NULL},
    {"return function(ev) ev.type = 'x' return true end", NULL, -1, "event is read-only"},
    {"return function(ev) ev.purchase.status = 'x' return true end", NULL, -1, "event is read-only"},
    {"return function(ev) ev.lead.new_key = 1 return true end", NULL, -1, "event is read-only"},
    {"return function(ev, p) p.x = 1 return true end", NULL, -1, "params are read-only"},
    {"return function(ev) x = 1 return true end", NULL, -1, "may not define globals"},
    {"return function(ev) return undefined_name == nil end", NULL, -1, "undefined global 'undefined_name'"},
    {"return function(ev) return getmetatable(ev) == false end", NULL, 1, NULL},
    {"return function(ev) return setmetatable(ev, {}) end", NULL, -1, "undefined global 'setmetatable'"},
    {"return function(ev) return tostring(ev) == 'read-only event' end", NULL, 1, NULL},
    {"return function(ev) local n = 0 for k, v in pairs(ev) do n = n + 1 end return n == 3 end",
     "{\"type\":\"purchase.approved\",\"a\":1,\"b\":{\"c\":2}}", 1, NULL},
    {"return function(ev) local s = 0 for k, v in pairs(ev.list) do s = s + k * v end return s == 140 end",
     "{\"type\":\"purchase.approved\",\"list\":[10,20,30]}", 1, NULL},
    {"return function(ev) local s = 0 for _, v in ipairs(ev.list) do s = s + v end return s == 60 end",
     "{\"type\":\"purchase.approved\",\"list\":[10,20,30]}", 1, NULL},
    {"return function(ev) return #ev.list == 3 and ev.list[2] == 20 and ev.list[4] == nil and ev.list[0] == nil end",
     "{\"type\":\"purchase.approved\",\"list\":[10,20,30]}", 1, NULL},
    {"return function(ev) return #ev == 0 and ev[1] == nil end", NULL, 1, NULL},
    {"return function(ev) return lb.contains(ev.list, 20) and not lb.contains(ev.list, 40) end",
     "{\"type\":\"purchase.approved\",\"list\":[10,20,30]}", 1, NULL},
    {"return function(ev) return ev.purchase.installments == 12 and math.type(ev.purchase.installments) == 'integer'"
     " and ev.purchase.price == 197.0 and ev.test == false and ev.nope == nil end",
     NULL, 1, NULL},
    {"return function(ev) return lb.get(ev, 'purchase.nope.deeper') == nil and lb.get(ev, 'lead.email') == "
     "'ana.teste@example.com' and lb.get(ev, 'lead.email.len') == nil end",
     NULL, 1, NULL},
    {"return function() return 1 end", NULL, -1, "must return true or false"},
    {"return function() error({}) end", NULL, -1, "error object is a table"},
    {"return function() error('boom') end", NULL, -1, "error: inline:"},
};

/* Loops in C that a rule could stretch: the CPU hook runs only between VM
 * instructions, so each must end at once with a clear reason. The first
 * four are the reviewer's triggers (each hung past 15 s on a 10 ms
 * budget). */
static const struct {
    const char *src;
    int want;
    const char *msg;
} c_loop_rows[] = {
    {"return function() return lb.contains(setmetatable({}, { __index = type }), 1) end", -1,
     "undefined global 'setmetatable'"},
    {"return function() table.move(setmetatable({}, { __index = type }), 1, math.maxinteger - 1, 1,"
     " setmetatable({}, { __newindex = rawequal })) return true end", -1, "undefined global 'setmetatable'"},
    {"return function() local t = setmetatable({}, { __len = function() return 2^31 - 2 end, __index = type,"
     " __newindex = rawequal }) table.sort(t) return true end", -1, "undefined global 'setmetatable'"},
    {"return function() return string.find(string.rep('a', 3000), '.-.-.-.-b') == nil end", -1, "pattern too complex"},
    /* the same loops without metatables */
    {"return function() table.move({}, 1, math.maxinteger - 1, 1, {}) return true end", -1, "timeout:"},
    {"return function() table.move(string, 1, math.maxinteger - 1, 1, {}) return true end", -1, "timeout:"},
    {"return function(ev) table.move(ev, -1, math.maxinteger - 2, 1, {}) return true end", -1, "timeout:"},
    {"return function() pcall(table.move, {}, 1, math.maxinteger - 1, 1, {}) return true end", -1, "timeout:"},
    {"return function() local t = {} for i = 1, 1000 do t[i] = i end"
     " for i = 1, 10000 do table.sort(t, rawequal) end return true end", -1, "timeout:"},
    {"return function() local t = {} for i = 1, 1000 do t[i] = i end"
     " for i = 1, 10000 do lb.contains(t, 0) end return true end", -1, "timeout:"},
    /* patterns: through the string metatable too, and every matcher entry */
    {"return function() return ('a'):rep(3000):find('.-.-.-.-b') end", -1, "pattern too complex"},
    {"return function() return ('a'):rep(3000):match('(.-)(.-)(.-)(.-)b') end", -1, "pattern too complex"},
    {"return function() for w in ('a'):rep(3000):gmatch('a*a*a*a*b') do end return true end", -1,
     "pattern too complex"},
    {"return function() return ('a'):rep(3000):gsub('^.-.-.-.-b', '') == '' end", -1, "pattern too complex"},
    {"return function() return ('a'):rep(3000):find('[%w_]*[^%s]-%a+?%d?()%f[%w]%b()%1x') end", -1,
     "pattern too complex"},
    {"return function() local s = ('a'):rep(1 << 20) return s:find(('a'):rep(1 << 19) .. 'b', 1, true) end", -1,
     "pattern too complex"},
    {"return function() local s = ('a'):rep(3000) for i = 1, 1e9 do pcall(s.find, s, '.-.-.-b') end end", -1,
     "timeout:"},
    /* a long set: each try reads it through, which the walk counts (it ran
     * 10 s and passed when a set counted as one step) */
    {"return function() local s = ('a'):rep(3000) local p = ('[' .. ('b'):rep(20000) .. 'a]-'):rep(2) .. 'c'"
     " return s:find(p) == nil end", -1, "pattern too complex"},
    /* what rules do with patterns still works */
    {"return function(ev) return string.match(lb.get(ev, 'lead.email'), '^[%w._%-]+@[%w.%-]+%.%a+$') ~= nil end", 1,
     NULL},
    {"return function() local s = '  ' .. ('x y '):rep(25) .. ' ' return s:match('^%s*(.-)%s*$') == s:sub(3, -3)"
     " and select(2, s:gsub('%a+', '')) == 50 and select(2, ('7 '):rep(5000):gsub('%d+', '')) == 5000 end", 1, NULL},
    /* past the trim idiom's static bound (~120 bytes): walked, and run; a
     * find from an init past the subject's middle, and gmatch from one */
    {"return function() local s = '  ' .. ('Rua das Flores 123 '):rep(100) .. '  '"
     " return s:match('^%s*(.-)%s*$') == s:sub(3, -4) and s:find('(%w+)%s*$', -40) == #s - 5"
     " and select(2, s:gsub('^%s*(.-)%s*$', '%1')) == 1 end", 1, NULL},
    {"return function() local n = 0 for w in ('word '):rep(200):gmatch('%a+') do n = n + 1 end"
     " return n == 200 and ('a.b'):find('.', 1, true) == 2 and ('x'):rep(100000):find('y') == nil end", 1, NULL},
    /* string.rep of "" loops n times copying nothing: no memory cap notices */
    {"return function() return string.rep('', math.maxinteger) == '' and ('ab'):rep(3, ',') == 'ab,ab,ab' end", 1,
     NULL},
    {"return function() local t = { 3, 1, 2 } table.sort(t) table.move(t, 1, 3, 2) return t[1] == 1 and t[4] == 3"
     " and lb.contains(t, 2) and not lb.contains(t, 4) and not lb.contains({ 1, nil, 3 }, 3)"
     " and lb.contains(string, 'upper') == false end", 1, NULL},
};

START_TEST(c_loops_bounded)
{
    lb_error err = {{0}, {0}};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int got = eval("purchase_approved", NULL, NULL, NULL, c_loop_rows[_i].src, "PURCHASE_APPROVED", &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_msg(got == c_loop_rows[_i].want, "row %d: got %d (%s)", _i, got, err.message);
    if (got == -1)
        ck_assert_msg(strstr(err.message, c_loop_rows[_i].msg) != NULL, "row %d: \"%s\" lacks \"%s\"", _i,
                      err.message, c_loop_rows[_i].msg);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(s < 2.0, "row %d took %.3f s", _i, s); /* wall clock, sanitizers included */
}
END_TEST

START_TEST(sandbox_contains)
{
    lb_error err = {{0}, {0}};
    const char *event = sandbox_rows[_i].event ? sandbox_rows[_i].event : "PURCHASE_APPROVED";
    int got = eval("purchase_approved", NULL, NULL, NULL, sandbox_rows[_i].src, event, &err);
    ck_assert_msg(got == sandbox_rows[_i].want, "row %d: got %d (%s)", _i, got, err.message);
    if (got == -1) {
        ck_assert_msg(strstr(err.message, sandbox_rows[_i].msg) != NULL, "row %d: \"%s\" lacks \"%s\"", _i,
                      err.message, sandbox_rows[_i].msg);
        ck_assert_ptr_nonnull(strstr(err.field, "rule:inline:"));
    }
    /* whatever the rule did, the set still works and memory went back */
    ck_assert_int_eq(eval("purchase_approved", NULL, "payment_method", "{\"in\":[\"CREDIT_CARD\"]}", NULL,
                          "PURCHASE_APPROVED", &err), 1);
}
END_TEST

/* A rule cannot change what the next rule (or the caller) sees. */
START_TEST(event_unchanged_after_write_attempts)
{
    json_object *ev = fixture("PURCHASE_APPROVED");
    char *before = strdup(json_object_to_json_string(ev));
    const char *srcs[] = {"return function(ev) ev.type = 'x' end", "return function(ev) ev.purchase.offer = 'x' end",
                          "return function(ev) pcall(function() ev.lead.email = 'x' end) return true end"};
    for (int i = 0; i < N(srcs); i++) {
        lb_rule_spec spec = {"purchase_approved", NULL, 0, NULL, NULL, NULL, srcs[i]};
        lb_error err;
        lb_rules_match(rules, &spec, ev, &err);
    }
    ck_assert_str_eq(json_object_to_json_string(ev), before);
    free(before);
    json_object_put(ev);
}
END_TEST

/* A view kept in an upvalue is dead once its evaluation ends (the document
 * behind it may be freed). */
START_TEST(stale_view_refused)
{
    const char *src = "local saved\nreturn function(ev)\n"
                      "  if saved then return saved.type == 'purchase.approved' end\n"
                      "  saved = ev return true end";
    lb_error err;
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, src, "PURCHASE_APPROVED", &err), 1);
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, src, "PURCHASE_APPROVED", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "outside its evaluation"));
}
END_TEST

/* A module file, even one no segmentation uses, cannot rewrite a library for
 * the other rules: pairs() over a library proxy must not hand out the real
 * table (which is also the string metatable's __index). */
START_TEST(library_tables_cannot_be_rewritten)
{
    const char *evil =
        "local patch = { [string] = 'upper', [lb] = 'contains', [math] = 'max', [table] = 'concat', [utf8] = 'char' }\n"
        "for lib, name in pairs(patch) do\n"
        "  pcall(function() local _, real = pairs(lib) real[name] = function() return 'XX' end end)\n"
        "end\n"
        "return { id = 'zz_evil', label = 'E', group = 'G', description = 'd', events = { 'purchase.approved' },\n"
        "  carries = { 'payment' }, match = function() return true end }\n";
    char dir[64];
    make_rules_dir(dir, "triggers", "zz_evil.lua", evil);
    lb_error err;
    lb_rules *r = lb_rules_load(dir, NULL, NULL, &err);
    ck_assert_msg(r != NULL, "%s: %s", err.field, err.message);
    const char *probe = "return function() return string.upper('a') == 'A' and ('a'):upper() == 'A'"
                        " and lb.contains({ 1 }, 1) == true and math.max(1, 2) == 2"
                        " and table.concat({ 'a', 'b' }) == 'ab' and utf8.char(65) == 'A' end";
    lb_rule_spec spec = {"t1", NULL, 0, NULL, NULL, NULL, probe};
    json_object *ev = event_of("PURCHASE_APPROVED");
    ck_assert_msg(lb_rules_match(r, &spec, ev, &err) == 1, "a library was rewritten: %s", err.message);
    json_object_put(ev);
    lb_rules_free(r);
    rm_tree(dir);
}
END_TEST

/* A module-level table is the rule's own: it cannot reach other rules. */
START_TEST(rules_do_not_share_globals)
{
    lb_error err;
    const char *a = "return function() return pcall(function() shared = 1 end) == false end";
    const char *b = "return function() return pcall(function() return shared end) == false end";
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, a, "PURCHASE_APPROVED", &err), 1);
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, b, "PURCHASE_APPROVED", &err), 1);
}
END_TEST

static int match_custom(lb_rules *r, const char *src, const char *event, lb_error *err)
{
    lb_rule_spec spec = {"purchase_approved", NULL, 0, NULL, NULL, NULL, src};
    json_object *ev = event_of(event);
    int rc = lb_rules_match(r, &spec, ev, err);
    json_object_put(ev);
    return rc;
}

START_TEST(failing_rule_disabled_after_n)
{
    const char *src = "return function(ev) if ev.purchase.offer == 'boom' then error('boom') end return true end";
    const char *bad = EV_APPROVED(",\"purchase\":{\"offer\":\"boom\"}");
    lb_error err;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(match_custom(rules, src, bad, &err), -1);
    ck_assert_int_eq(match_custom(rules, src, "PURCHASE_APPROVED", &err), 1); /* resets the streak */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(match_custom(rules, src, bad, &err), -1);
    json_object *dis = lb_rules_disabled(rules);
    ck_assert_int_eq(json_object_array_length(dis), 0);
    json_object_put(dis);
    ck_assert_int_eq(match_custom(rules, src, bad, &err), -1); /* the 5th in a row */
    ck_assert_ptr_nonnull(strstr(err.message, "error:"));
    ck_assert_int_eq(match_custom(rules, src, "PURCHASE_APPROVED", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "disabled:"));
    dis = lb_rules_disabled(rules);
    ck_assert_int_eq(json_object_array_length(dis), 1);
    ck_assert_str_eq(str_of(json_object_array_get_idx(dis, 0), "kind"), "custom");
    ck_assert_ptr_nonnull(strstr(str_of(json_object_array_get_idx(dis, 0), "last_error"), "boom"));
    json_object_put(dis);
    json_object *stats = lb_rules_stats(rules), *mods = NULL, *v = NULL;
    json_object_object_get_ex(stats, "modules", &mods);
    json_object *m = json_object_array_get_idx(mods, json_object_array_length(mods) - 1);
    ck_assert(json_object_object_get_ex(m, "errors", &v) && json_object_get_int64(v) == 9);
    ck_assert(json_object_object_get_ex(m, "evaluations", &v) && json_object_get_int64(v) == 10);
    ck_assert(json_object_object_get_ex(m, "consecutive_errors", &v) && json_object_get_int64(v) == 5);
    ck_assert(json_object_object_get_ex(m, "disabled", &v) && json_object_get_boolean(v));
    json_object_put(stats);
    /* the others keep working */
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, NULL, "PURCHASE_APPROVED", &err), 1);
}
END_TEST

START_TEST(max_errors_limit_honoured)
{
    lb_rules_limits lim = {0};
    lim.max_errors = 2;
    lb_error err;
    lb_rules *r = lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err);
    ck_assert_ptr_nonnull(r);
    const char *src = "return function() while true do end end";
    ck_assert_int_eq(match_custom(r, src, "PURCHASE_APPROVED", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "timeout:"));
    ck_assert_int_eq(match_custom(r, src, "PURCHASE_APPROVED", &err), -1);
    ck_assert_int_eq(match_custom(r, src, "PURCHASE_APPROVED", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "disabled:"));
    lb_rules_free(r);
}
END_TEST

START_TEST(instruction_budget_honoured)
{
    const char *src = "return function() local n = 0 for i = 1, 20000 do n = n + i end return n > 0 end";
    lb_error err;
    ck_assert_int_eq(match_custom(rules, src, "PURCHASE_APPROVED", &err), 1);
    lb_rules_limits lim = {0};
    lim.insn_budget = 10000;
    lb_rules *r = lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(match_custom(r, src, "PURCHASE_APPROVED", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "timeout:"));
    lb_rules_free(r);
}
END_TEST

START_TEST(per_evaluation_memory_budget_honoured)
{
    const char *src = "return function() local t = {} for i = 1, 20000 do t[i] = i end return #t == 20000 end";
    lb_error err;
    /* memory is what is tested: 20,000 inserts under the sanitizers on a
     * busy machine can pass the default 10 ms of CPU, so CPU is no limit here */
    lb_rules_limits lim = {0};
    lim.cpu_budget_us = 2 * 1000 * 1000;
    lb_rules *r = lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(match_custom(r, src, "PURCHASE_APPROVED", &err), 1);
    lb_rules_free(r);
    lim.mem_per_eval = 64 * 1024;
    r = lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(match_custom(r, src, "PURCHASE_APPROVED", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "nomem:"));
    lb_rules_free(r);
}
END_TEST

/* A loop of pattern calls each under the per-call bound but costly (the
 * worst case of '.-.-b' on 150 bytes is 3.5 million steps): walked, each
 * is charged what it costs, so the instruction budget ends the loop after
 * a few calls. With the CPU clock out of the way (an hour), nothing else
 * could: before the walk, these calls cost the budget nothing and the loop
 * ran on for its 10^9 rounds. */
START_TEST(costly_pattern_calls_count_against_the_instruction_budget)
{
    lb_rules_limits lim = {0};
    lim.cpu_budget_us = 3600L * 1000 * 1000;
    lb_error err;
    lb_rules *r = lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err);
    ck_assert_ptr_nonnull(r);
    const char *src = "return function() local s = ('a'):rep(150) local n = 0"
                      " for i = 1, 1e9 do pcall(s.find, s, '.-.-b') n = n + 1 end return n > 0 end";
    ck_assert_int_eq(match_custom(r, src, "PURCHASE_APPROVED", &err), -1);
    ck_assert_msg(strstr(err.message, "timeout:") != NULL, "%s", err.message);
    lb_rules_free(r);
}
END_TEST

START_TEST(table_growth_bomb_hits_memory_cap)
{
    lb_rules_limits lim = {0};
    lim.cpu_budget_us = 5 * 1000 * 1000; /* generous: the memory cap must stop it */
    lim.insn_budget = 1000L * 1000 * 1000;
    lb_error err;
    lb_rules *r = lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err);
    ck_assert_ptr_nonnull(r);
    const char *srcs[] = {"return function() local t = {} for i = 1, 1e9 do t[i] = i end return true end",
                          "return function() local t = {} for i = 1, 1e9 do t[#t + 1] = { i } end return true end",
                          "return function() local t = {} for i = 1, 1e9 do t['k' .. i] = i end return true end"};
    for (int i = 0; i < N(srcs); i++) {
        ck_assert_int_eq(match_custom(r, srcs[i], "PURCHASE_APPROVED", &err), -1);
        ck_assert_msg(strstr(err.message, "nomem:") != NULL, "%d: %s", i, err.message);
    }
    lb_rules_free(r);
}
END_TEST

/* Memory a rule keeps between evaluations counts against the set's cap (the
 * module's own bound is lifted here: kept_memory_* test that one). */
START_TEST(total_memory_cap_honoured)
{
    lb_rules_limits lim = {0};
    lim.mem_total = 16 * 1024;
    lb_error err;
    ck_assert_ptr_null(lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err));
    ck_assert_ptr_nonnull(strstr(err.message, "memory"));
    lim.mem_total = 4 * 1024 * 1024;
    lim.mem_per_module = lim.mem_total;
    lb_rules *r = lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err);
    ck_assert_msg(r != NULL, "%s", err.message);
    const char *hoard = "local keep = {}\nreturn function()\n"
                        "  keep[#keep + 1] = string.rep('x', 512 * 1024) .. #keep return true end";
    int rc = 1;
    for (int i = 0; i < 16 && rc == 1; i++)
        rc = match_custom(r, hoard, "PURCHASE_APPROVED", &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_nonnull(strstr(err.message, "nomem:"));
    json_object *stats = lb_rules_stats(r), *mem = NULL;
    ck_assert(json_object_object_get_ex(stats, "memory_bytes", &mem));
    ck_assert_int_le(json_object_get_int64(mem), 4 * 1024 * 1024);
    json_object_put(stats);
    lb_rules_free(r);
}
END_TEST

/* The reviewer's hoarder: a custom rule that keeps strings in an upvalue and
 * halves their size after each failure (it halves first, in case the
 * evaluation fails), so it fills the set to the byte. */
static const char *const hoarder = "local keep, size = {}, 1 << 20\n"
                                   "return function()\n"
                                   "  local want = size\n"
                                   "  size = want // 2\n"
                                   "  if want >= 8 then keep[#keep + 1] = string.rep('x', want) end\n"
                                   "  size = want\n"
                                   "  return true end";

static json_object *module_of(lb_rules *r, const char *id_prefix)
{
    json_object *stats = lb_rules_stats(r), *mods = NULL, *found = NULL;
    json_object_object_get_ex(stats, "modules", &mods);
    for (size_t i = 0; i < json_object_array_length(mods) && !found; i++) {
        json_object *m = json_object_array_get_idx(mods, i);
        if (strncmp(str_of(m, "id"), id_prefix, strlen(id_prefix)) == 0)
            found = json_object_get(m);
    }
    json_object_put(stats);
    ck_assert_msg(found != NULL, "no module %s", id_prefix);
    return found;
}

static int64_t int_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s", key);
    return json_object_get_int64(v);
}

/* Runs the hoarder, then an innocent trigger + condition, `rounds` times;
 * returns how many innocent evaluations failed (the last error in err). */
static int hoard_rounds(lb_rules *r, int rounds, lb_error *err)
{
    const char *conds[1] = {"payment_method"};
    json_object *cps[1] = {parse("{\"in\":[\"CREDIT_CARD\"]}")};
    lb_rule_spec innocent = {"purchase_approved", NULL, 1, conds, cps, NULL, NULL};
    json_object *ev = fixture("PURCHASE_APPROVED");
    int failed = 0;
    for (int i = 0; i < rounds; i++) {
        lb_error ignored;
        match_custom(r, hoarder, "PURCHASE_APPROVED", &ignored);
        failed += lb_rules_match(r, &innocent, ev, err) != 1;
    }
    json_object_put(ev);
    json_object_put(cps[0]);
    return failed;
}

/* What a module keeps counts against it: past mem_per_module (an eighth of
 * the set by default) it is disabled and what it kept is released, and the
 * modules that run after it never notice. */
START_TEST(kept_memory_disables_the_keeper)
{
    lb_error err = {{0}, {0}};
    ck_assert_msg(hoard_rounds(rules, 80, &err) == 0, "an innocent evaluation failed: %s", err.message);
    json_object *disabled = lb_rules_disabled(rules);
    ck_assert_int_eq(json_object_array_length(disabled), 1);
    json_object *d = json_object_array_get_idx(disabled, 0);
    ck_assert_str_eq(str_of(d, "kind"), "custom");
    ck_assert_ptr_nonnull(strstr(str_of(d, "last_error"), "nomem: keeps"));
    json_object_put(disabled);
    json_object *keeper = module_of(rules, "inline:");
    ck_assert_int_lt(int_of(keeper, "memory_bytes"), 64 * 1024); /* released */
    json_object_put(keeper);
    json_object *trig = module_of(rules, "purchase_approved");
    ck_assert_int_eq(int_of(trig, "errors"), 0);
    json_object_put(trig);
    json_object *stats = lb_rules_stats(rules);
    ck_assert_int_lt(int_of(stats, "memory_bytes"), 8 * 1024 * 1024);
    json_object_put(stats);
}
END_TEST

/* With the module bound lifted the hoarder fills the set: the modules that
 * then fail for want of memory are not charged for it (the state was full
 * before they ran), so none is disabled in the keeper's place. */
START_TEST(full_state_nomem_not_charged)
{
    lb_rules_limits lim = {0};
    lim.mem_per_module = 64 * 1024 * 1024;
    lb_error err = {{0}, {0}};
    lb_rules *r = lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err);
    ck_assert_ptr_nonnull(r);
    int failed = hoard_rounds(r, 80, &err);
    ck_assert_msg(failed > 5, "the set never filled up (%d failures)", failed);
    ck_assert_ptr_nonnull(strstr(err.message, "nomem:"));
    json_object *disabled = lb_rules_disabled(r);
    ck_assert_msg(json_object_array_length(disabled) == 0, "%s", json_object_to_json_string(disabled));
    json_object_put(disabled);
    json_object *trig = module_of(r, "purchase_approved");
    ck_assert_int_ge(int_of(trig, "errors"), 1);
    ck_assert_int_eq(int_of(trig, "consecutive_errors"), 0);
    json_object_put(trig);
    lb_rules_free(r);
}
END_TEST

/* ---- loading and reload ----------------------------------------------------------------------- */

START_TEST(temp_rules_dir_loads)
{
    char dir[64];
    make_rules_dir(dir, NULL, NULL, NULL);
    lb_error err;
    lb_rules *r = lb_rules_load(dir, NULL, NULL, &err);
    ck_assert_msg(r != NULL, "%s: %s", err.field, err.message);
    json_object *cat = lb_rules_catalogue(r);
    ck_assert_str_eq(json_object_to_json_string(cat),
                     "{ \"triggers\": [ { \"id\": \"t1\", \"label\": \"T\", \"group\": \"G\", \"description\": \"d\", "
                     "\"events\": [ \"purchase.approved\" ], \"carries\": [ \"payment\" ], \"params\": [ ] } ], "
                     "\"conditions\": [ { \"id\": \"c1\", \"label\": \"C\", \"description\": \"d\", \"needs\": [ "
                     "\"payment\" ], \"params\": [ ] } ] }");
    json_object_put(cat);
    lb_rules_free(r);
    rm_tree(dir);
}
END_TEST

#define TRIG(fields) "return { id = 't2', label = 'T', group = 'G', description = 'd', events = { 'purchase.approved' }, " \
                     "carries = { 'payment' }, match = function() return true end, " fields " }"
#define PARAM(spec) TRIG("params = { " spec " }")

static const struct {
    const char *sub, *file, *src, *msg;
} broken_modules[] = {
    {"triggers", "bad.lua", "return {", "triggers/bad.lua:1:"},
    {"triggers", "nomatch.lua",
     "return { id = 't2', label = 'T', group = 'G', description = 'd', events = { 'purchase.approved' }, carries = {} }",
     "'match' must be a function"},
    {"triggers", "zdup.lua", TRIG("") "", NULL},
    {"triggers", "nodesc.lua",
     "return { id = 't2', label = 'T', group = 'G', events = { 'purchase.approved' }, carries = {}, match = function() end }",
     "'description'"},
    {"triggers", "typo.lua", TRIG("event = 'x'"), "unknown field 'event'"},
    {"triggers", "badevent.lua",
     "return { id = 't2', label = 'T', group = 'G', description = 'd', events = { 'purchase.aproved' }, carries = {}, "
     "match = function() end }",
     "'purchase.aproved' is not in the documented vocabulary"},
    {"triggers", "noevents.lua",
     "return { id = 't2', label = 'T', group = 'G', description = 'd', events = {}, carries = {}, match = function() end }",
     "'events' must be a non-empty list"},
    {"triggers", "badcarry.lua",
     "return { id = 't2', label = 'T', group = 'G', description = 'd', events = { 'cart.abandoned' }, "
     "carries = { 'money' }, match = function() end }",
     "'money' is not in the documented vocabulary"},
    {"triggers", "nogroup.lua",
     "return { id = 't2', label = 'T', description = 'd', events = { 'cart.abandoned' }, carries = {}, match = function() end }",
     "'group'"},
    {"triggers", "badid.lua",
     "return { id = 'Bad-Id', label = 'T', group = 'G', description = 'd', events = { 'cart.abandoned' }, carries = {}, "
     "match = function() end }",
     "id 'Bad-Id'"},
    {"triggers", "ptype.lua", PARAM("{ name = 'x', type = 'float' }"), "'type'"},
    {"triggers", "reqdef.lua", PARAM("{ name = 'x', type = 'number', required = true, default = 1 }"), "cannot have a default"},
    {"triggers", "enumnov.lua", PARAM("{ name = 'x', type = 'enum' }"), "an enum needs values"},
    {"triggers", "defrange.lua", PARAM("{ name = 'x', type = 'number', min = 1, max = 10, default = 20 }"), "bad default"},
    {"triggers", "deftype.lua", PARAM("{ name = 'x', type = 'boolean', default = 'yes' }"), "bad default"},
    {"triggers", "defenum.lua", PARAM("{ name = 'x', type = 'enum', values = { 'a' }, default = 'b' }"), "bad default"},
    {"triggers", "pname.lua", PARAM("{ name = 'Percent', type = 'number' }"), "param name 'Percent'"},
    {"triggers", "pdup.lua", PARAM("{ name = 'x', type = 'number' }, { name = 'x', type = 'string' }"), "declared twice"},
    {"triggers", "pminstr.lua", PARAM("{ name = 'x', type = 'string', min = 1 }"), "min/max only apply to numbers"},
    {"triggers", "pminmax.lua", PARAM("{ name = 'x', type = 'number', min = 5, max = 1 }"), "min is above max"},
    {"triggers", "pvals.lua", PARAM("{ name = 'x', type = 'number', values = { 'a' } }"), "values only apply"},
    {"triggers", "pcase.lua", PARAM("{ name = 'x', type = 'number', case = 'upper' }"), "case only applies"},
    {"triggers", "pkey.lua", PARAM("{ name = 'x', type = 'number', requird = true }"), "unknown field 'requird'"},
    {"triggers", "preq.lua", PARAM("{ name = 'x', type = 'number', required = 'yes' }"), "required must be a boolean"},
    {"triggers", "pnotable.lua", PARAM("'x'"), "params[1] must be a table"},
    {"triggers", "checkfn.lua", TRIG("check = 1"), "'check' must be a function"},
    {"triggers", "notable.lua", "return 1", "must return a table, not a number"},
    {"triggers", "toperr.lua", "error('boom')", "boom"},
    {"triggers", "loop.lua", "while true do end", "timeout"},
    {"triggers", "bomb.lua", "local s = 'x' while true do s = s .. s end", "nomem"},
    {"triggers", "global.lua", "x = 1 " TRIG(""), "may not define globals"},
    {"triggers", "binary.lua", "\x1bLua\x54", "binary"},
    {"conditions", "badneeds.lua",
     "return { id = 'c2', label = 'C', description = 'd', needs = { 'cash' }, test = function() end }",
     "'cash' is not in the documented vocabulary"},
    {"conditions", "notest.lua", "return { id = 'c2', label = 'C', description = 'd', needs = {} }", "'test' must be a function"},
    {"conditions", "group.lua",
     "return { id = 'c2', label = 'C', group = 'G', description = 'd', needs = {}, test = function() end }",
     "unknown field 'group'"},
    {"conditions", "noneeds.lua", "return { id = 'c2', label = 'C', description = 'd', test = function() end }", "'needs'"},
    {"conditions", "dupc.lua", "return { id = 'c1', label = 'C', description = 'd', needs = {}, test = function() end }",
     "already used"},
};

/* An integer param without bounds takes any integer a double holds exactly,
 * and refuses the next one instead of rounding it to its neighbour. */
START_TEST(integer_param_past_2_53_refused_not_rounded)
{
    char dir[64];
    make_rules_dir(dir, "triggers", "t2.lua", PARAM("{ name = 'n', type = 'integer' }"));
    lb_error err;
    lb_rules *r = lb_rules_load(dir, NULL, NULL, &err);
    ck_assert_msg(r != NULL, "%s: %s", err.field, err.message);
    static const struct {
        const char *params;
        int reasons;
    } cases[] = {
        {"{\"n\":9007199254740992}", 0},  {"{\"n\":-9007199254740992}", 0}, {"{\"n\":9007199254740993}", 1},
        {"{\"n\":-9007199254740993}", 1}, {"{\"n\":99999999999999999999}", 1}, {"{\"n\":1e300}", 1},
        {"{\"n\":12}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *tp = parse(cases[i].params), *reasons = json_object_new_array();
        lb_rule_spec spec = {"t2", tp, 0, NULL, NULL, NULL, NULL};
        int n = lb_rules_check(r, &spec, reasons);
        ck_assert_msg(n == cases[i].reasons, "%s: %s", cases[i].params, json_object_to_json_string(reasons));
        if (n)
            ck_assert_str_eq(reason_str(reasons, 0, "field"), "trigger_params.n");
        json_object_put(reasons);
        json_object_put(tp);
    }
    lb_rules_free(r);
    rm_tree(dir);
}
END_TEST

START_TEST(broken_module_fails_load)
{
    char dir[64];
    const char *src = broken_modules[_i].src;
    /* zdup.lua reuses t1's id: it sorts after t1.lua, so it is the one named */
    char dup[400];
    if (strcmp(broken_modules[_i].file, "zdup.lua") == 0) {
        snprintf(dup, sizeof dup, "%s", valid_trigger);
        src = dup;
    }
    make_rules_dir(dir, broken_modules[_i].sub, broken_modules[_i].file, src);
    lb_error err;
    lb_rules *r = lb_rules_load(dir, NULL, NULL, &err);
    ck_assert_msg(r == NULL, "row %d loaded", _i);
    char field[96];
    snprintf(field, sizeof field, "%s/%s", broken_modules[_i].sub, broken_modules[_i].file);
    ck_assert_str_eq(err.field, field);
    const char *msg = broken_modules[_i].msg ? broken_modules[_i].msg : "already used by triggers/t1.lua";
    ck_assert_msg(strstr(err.message, msg) != NULL, "row %d: \"%s\" lacks \"%s\"", _i, err.message, msg);
    rm_tree(dir);
}
END_TEST

START_TEST(missing_directories_fail_load)
{
    char dir[64];
    make_rules_dir(dir, NULL, NULL, NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/conditions/c1.lua", dir);
    ck_assert_int_eq(remove(path), 0);
    snprintf(path, sizeof path, "%s/conditions", dir);
    ck_assert_int_eq(rmdir(path), 0);
    lb_error err;
    ck_assert_ptr_null(lb_rules_load(dir, NULL, NULL, &err));
    ck_assert_str_eq(err.field, "conditions");
    ck_assert_ptr_null(lb_rules_load("/nonexistent/rules", NULL, NULL, &err));
    ck_assert_str_eq(err.field, "triggers");
    rm_tree(dir);
}
END_TEST

START_TEST(oversized_module_fails_load)
{
    lb_rules_limits lim = {0};
    lim.max_source = 64;
    lb_error err;
    ck_assert_ptr_null(lb_rules_load(LB_TEST_RULES_DIR, NULL, &lim, &err));
    ck_assert_ptr_nonnull(strstr(err.message, "larger than 64 bytes"));
}
END_TEST

/* The reload contract: a failed load leaves the caller's set untouched. */
START_TEST(failed_reload_keeps_old_set)
{
    char dir[64];
    make_rules_dir(dir, "triggers", "bad.lua", "return {");
    lb_error err;
    lb_rules *next = lb_rules_load(dir, NULL, NULL, &err);
    ck_assert_ptr_null(next);
    ck_assert_int_eq(eval("purchase_approved", NULL, NULL, NULL, NULL, "PURCHASE_APPROVED", &err), 1);
    rm_tree(dir);
}
END_TEST

START_TEST(null_err_is_allowed)
{
    ck_assert_ptr_null(lb_rules_load("/nonexistent/rules", NULL, NULL, NULL));
    lb_rule_spec spec = {"nope", NULL, 0, NULL, NULL, NULL, NULL};
    ck_assert_ptr_null(lb_rules_prepare(rules, &spec, NULL));
    lb_rules_free(NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, catalogue_has_design_trigger, 0, N(design_triggers));
    tcase_add_loop_test(tc, catalogue_has_design_condition, 0, N(design_conditions));
    tcase_add_test(tc, catalogue_counts_and_param_shape);
    tcase_add_test(tc, catalogue_is_a_copy);
    tcase_add_loop_test(tc, trigger_matches, 0, N(trigger_rows));
    tcase_add_test(tc, order_started_from_postback_1_0);
    tcase_add_loop_test(tc, condition_filters, 0, N(condition_rows));
    tcase_add_test(tc, conditions_are_anded);
    tcase_add_loop_test(tc, inconsistent_spec_refused, 0, N(bad_specs));
    tcase_add_loop_test(tc, consistent_spec_accepted, 0, N(good_specs));
    tcase_add_test(tc, check_reports_every_reason);
    tcase_add_test(tc, check_without_condition_params_array);
    tcase_add_test(tc, prepare_refuses_inconsistent_with_first_reason);
    tcase_add_test(tc, prepared_skips_other_types_before_lua);
    tcase_add_test(tc, custom_inline_bare_function);
    tcase_add_test(tc, custom_inline_table_and_unknown_api_keys);
    tcase_add_test(tc, custom_file_from_custom_dir);
    tcase_add_test(tc, custom_compiled_once);
    tcase_add_loop_test(tc, custom_refused, 0, N(bad_customs));
    tcase_add_test(tc, custom_file_needs_custom_dir);
    tcase_add_test(tc, custom_count_is_capped);
    tcase_add_loop_test(tc, sandbox_contains, 0, N(sandbox_rows));
    tcase_add_loop_test(tc, c_loops_bounded, 0, N(c_loop_rows));
    tcase_add_test(tc, event_unchanged_after_write_attempts);
    tcase_add_test(tc, stale_view_refused);
    tcase_add_test(tc, library_tables_cannot_be_rewritten);
    tcase_add_test(tc, rules_do_not_share_globals);
    tcase_add_test(tc, failing_rule_disabled_after_n);
    tcase_add_test(tc, max_errors_limit_honoured);
    tcase_add_test(tc, instruction_budget_honoured);
    tcase_add_test(tc, per_evaluation_memory_budget_honoured);
    tcase_add_test(tc, total_memory_cap_honoured);
    tcase_add_test(tc, kept_memory_disables_the_keeper);
    tcase_add_test(tc, full_state_nomem_not_charged);
    tcase_add_test(tc, costly_pattern_calls_count_against_the_instruction_budget);
    tcase_add_test(tc, table_growth_bomb_hits_memory_cap);
    tcase_add_test(tc, temp_rules_dir_loads);
    tcase_add_test(tc, integer_param_past_2_53_refused_not_rounded);
    tcase_add_loop_test(tc, broken_module_fails_load, 0, N(broken_modules));
    tcase_add_test(tc, missing_directories_fail_load);
    tcase_add_test(tc, oversized_module_fails_load);
    tcase_add_test(tc, failed_reload_keeps_old_set);
    tcase_add_test(tc, null_err_is_allowed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lb_run_suite_tap(make_suite());
}
