/* canonical.c: POST /v1/events, the server's own event API.
 *
 * The body is already an event in the shape of docs/events.md. It is copied
 * (dropping JSON nulls, which the shape never contains, and refusing NaN and
 * absurd nesting), every documented field is type-checked and brought to its
 * canonical form (ids as strings, dates as ms, e-mail lower-cased, country
 * upper-cased), and what only the server may say is forced: source = "api",
 * ignored = false, no "account". Keys the shape does not document are kept
 * as sent: rules may read them, and the raw body is kept anyway. */
#include "canonical.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json_get.h"

#define N_ELEMS(a) (sizeof (a) / sizeof (a)[0])
#define MAX_DEPTH 16 /* the shape needs 2; this bounds the recursion of the copy */

enum rule_kind {
    R_OBJ,     /* object */
    R_STR,     /* string */
    R_LOWER,   /* string, lower-cased (statuses) */
    R_UPPER,   /* string, upper-cased (payment method, currency) */
    R_ID,      /* integer or string, stored as a string */
    R_INT,     /* integer */
    R_NUM,     /* number */
    R_PERCENT, /* number in [0, 100] */
    R_BOOL,    /* boolean */
    R_TIME,    /* epoch ms or ISO-8601, stored as ms */
    R_EMAIL,   /* e-mail, trimmed and lower-cased */
    R_COUNTRY, /* ISO 3166 alpha-2, upper-cased */
};

struct rule {
    const char *path;
    enum rule_kind kind;
};

/* Every documented field (docs/events.md) and its type. */
static const struct rule rules[] = {
    {"id", R_STR},
    {"type", R_STR},
    {"source_type", R_STR},
    {"occurred_at", R_TIME},
    {"test", R_BOOL},
    {"product", R_OBJ},
    {"product.id", R_ID},
    {"product.ucode", R_STR},
    {"product.name", R_STR},
    {"lead", R_OBJ},
    {"lead.email", R_EMAIL},
    {"lead.name", R_STR},
    {"lead.first_name", R_STR},
    {"lead.last_name", R_STR},
    {"lead.phone", R_STR},
    {"lead.country", R_COUNTRY},
    {"lead.language", R_STR},
    {"purchase", R_OBJ},
    {"purchase.transaction", R_STR},
    {"purchase.status", R_LOWER},
    {"purchase.status_raw", R_STR},
    {"purchase.payment_method", R_UPPER},
    {"purchase.installments", R_INT},
    {"purchase.currency", R_UPPER},
    {"purchase.price", R_NUM},
    {"purchase.full_price", R_NUM},
    {"purchase.offer", R_STR},
    {"purchase.coupon", R_STR},
    {"purchase.recurrence", R_INT},
    {"purchase.is_order_bump", R_BOOL},
    {"purchase.ordered_at", R_TIME},
    {"purchase.approved_at", R_TIME},
    {"purchase.next_charge_at", R_TIME},
    {"purchase.billet_url", R_STR},
    {"purchase.billet_barcode", R_STR},
    {"purchase.pix_code", R_STR},
    {"purchase.pix_qrcode", R_STR},
    {"purchase.pix_expires_at", R_TIME},
    {"purchase.refusal_reason", R_STR},
    {"purchase.affiliate", R_BOOL},
    {"purchase.affiliate_code", R_STR},
    {"subscription", R_OBJ},
    {"subscription.id", R_ID},
    {"subscription.status", R_LOWER},
    {"subscription.status_raw", R_STR},
    {"subscription.plan_id", R_ID},
    {"subscription.plan_name", R_STR},
    {"subscription.subscriber_code", R_STR},
    {"subscription.next_charge_at", R_TIME},
    {"subscription.canceled_at", R_TIME},
    {"subscription.old_charge_day", R_INT},
    {"subscription.new_charge_day", R_INT},
    {"subscription.switched_at", R_TIME},
    {"subscription.recurrence_value", R_NUM},
    {"subscription.offer", R_STR},
    {"club", R_OBJ},
    {"club.module_id", R_ID},
    {"club.module_name", R_STR},
    {"club.progress", R_PERCENT},
    {"club.last_access_at", R_TIME},
    {"rating", R_OBJ},
    {"rating.score", R_NUM},
    {"rating.comment", R_STR},
    {"smart_installment", R_OBJ},
    {"smart_installment.status", R_STR},
    {"file", R_OBJ},
    {"file.name", R_STR},
};

/* The types the API accepts: every Hotmart type, plus those no public
 * webhook carries. "unknown" is not one: the API has no reason to send it. */
static const char *const known_types[] = {
    "cart.abandoned", "purchase.billet_printed", "purchase.approved", "purchase.complete",
    "purchase.canceled", "purchase.protest", "purchase.refunded", "purchase.chargeback",
    "purchase.expired", "purchase.delayed", "subscription.canceled", "subscription.plan_switched",
    "subscription.charge_date_updated", "club.first_access", "club.module_completed",
    /* API only */
    "purchase.started", "product.rated", "smart_installment.status_changed", "file.downloaded",
    "club.registered", "club.progress", "club.last_access", "subscription.status_changed",
};

/* The one field an API-only type is about: without it no trigger could
 * test the event (a progress threshold needs the progress). */
static const struct {
    const char *type;
    const char *path;
} type_requires[] = {
    {"club.progress", "club.progress"},
    {"club.last_access", "club.last_access_at"},
    {"product.rated", "rating.score"},
    {"smart_installment.status_changed", "smart_installment.status"},
    {"subscription.status_changed", "subscription.status"},
};

/* ---- the copy ------------------------------------------------------------ */

static int copy_value(json_object *v, const char *path, int depth, json_object **out, lb_error *err);

static void child_path(char *buf, size_t cap, const char *parent, const char *key)
{
    snprintf(buf, cap, "%s%s%s", parent, *parent ? "." : "", key);
}

static int copy_object(json_object *v, const char *path, int depth, json_object **out, lb_error *err)
{
    json_object *obj = json_object_new_object();
    if (obj == NULL)
        return lb_fail(err, path, "out of memory");
    json_object_object_foreach(v, key, val)
    {
        char sub[sizeof err->field];
        json_object *c = NULL;
        if (val == NULL)
            continue; /* null means "no value"; the shape never stores it */
        child_path(sub, sizeof sub, path, key);
        if (copy_value(val, sub, depth + 1, &c, err) < 0) {
            json_object_put(obj);
            return -1;
        }
        if (json_object_object_add(obj, key, c) != 0) {
            json_object_put(c);
            json_object_put(obj);
            return lb_fail(err, sub, "out of memory");
        }
    }
    *out = obj;
    return 0;
}

static int copy_array(json_object *v, const char *path, int depth, json_object **out, lb_error *err)
{
    json_object *arr = json_object_new_array();
    if (arr == NULL)
        return lb_fail(err, path, "out of memory");
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        char sub[sizeof err->field];
        json_object *c = NULL, *el = json_object_array_get_idx(v, i);
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if (el != NULL && copy_value(el, sub, depth + 1, &c, err) < 0) {
            json_object_put(arr);
            return -1;
        }
        json_object_array_add(arr, c); /* a null element stays null: arrays keep positions */
    }
    *out = arr;
    return 0;
}

/* json-c accepts NaN and Infinity, which nothing downstream would, and
 * numbers JSON does not have ("1.", "-.5", "00.5", "1.e5"), whose spelling
 * it keeps to write them back: stored, the document would not be JSON. */
static int copy_double(json_object *v, const char *path, json_object **out, lb_error *err)
{
    if (!isfinite(json_object_get_double(v)))
        return lb_fail(err, path, "must be a finite number");
    size_t len;
    const char *text = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &len);
    if (text == NULL)
        return lb_fail(err, path, "out of memory");
    if (!lb_json_number_valid(text, len))
        return lb_fail(err, path, "is not a number as JSON writes it (RFC 8259): %.32s", text);
    return json_object_deep_copy(v, out, NULL) == 0 ? 0 : lb_fail(err, path, "out of memory");
}

static bool documented(const char *path)
{
    for (size_t i = 0; i < N_ELEMS(rules); i++)
        if (strcmp(path, rules[i].path) == 0)
            return true;
    return false;
}

/* json-c clamps an integer past 64 bits without saying so. A key the shape
 * does not document is kept as sent, which a clamped value is not, and its
 * digits are lost: it is refused, as a documented field's is (by its rule,
 * whose message says what that field takes). */
static int copy_int(json_object *v, const char *path, json_object **out, lb_error *err)
{
    if (lb_jval_int_clamped(v) && !documented(path)) /* the cheap test first: it is almost always false */
        return lb_fail(err, path, "is out of range (past 64 bits: send such a number as a string)");
    return json_object_deep_copy(v, out, NULL) == 0 ? 0 : lb_fail(err, path, "out of memory");
}

static int copy_value(json_object *v, const char *path, int depth, json_object **out, lb_error *err)
{
    if (depth > MAX_DEPTH)
        return lb_fail(err, path, "nests deeper than %d levels", MAX_DEPTH);
    switch (json_object_get_type(v)) {
    case json_type_object:
        return copy_object(v, path, depth, out, err);
    case json_type_array:
        return copy_array(v, path, depth, out, err);
    case json_type_double:
        return copy_double(v, path, out, err);
    case json_type_int:
        return copy_int(v, path, out, err);
    default:
        break;
    }
    return json_object_deep_copy(v, out, NULL) == 0 ? 0 : lb_fail(err, path, "out of memory");
}

/* ---- validation ----------------------------------------------------------- */

/* Checks v against r; *repl is set when the stored form differs (returns 1). */
static int check_scalar(json_object *v, const struct rule *r, json_object **repl, lb_error *err)
{
    char buf[LB_EMAIL_MAX + 1];
    const char *s = "";
    int64_t i;
    double d;
    bool b;
    int rc;
    switch (r->kind) {
    case R_ID:
        if ((rc = lb_jval_id(v, r->path, buf, LB_ID_MAX, err)) == 0)
            return lb_fail(err, r->path, "must not be empty");
        if (rc == 1)
            *repl = json_object_new_string(buf);
        return rc;
    case R_INT:
    case R_TIME:
        rc = r->kind == R_INT ? lb_jval_int(v, r->path, &i, err) : lb_jval_time(v, r->path, &i, err);
        if (rc == 1)
            *repl = json_object_new_int64(i);
        return rc;
    case R_NUM:
        return lb_jval_double(v, r->path, &d, err) < 0 ? -1 : 0;
    case R_PERCENT:
        if (lb_jval_double(v, r->path, &d, err) < 0)
            return -1;
        return d >= 0 && d <= 100 ? 0 : lb_fail(err, r->path, "must be between 0 and 100");
    case R_BOOL:
        return lb_jval_bool(v, r->path, &b, err) < 0 ? -1 : 0;
    case R_EMAIL:
        if ((rc = lb_jval_email(v, r->path, buf, sizeof buf, err)) == 1)
            *repl = json_object_new_string(buf);
        return rc;
    default:
        break;
    }
    if (lb_jval_string(v, r->path, &s, err) < 0)
        return -1;
    if (r->kind == R_LOWER || r->kind == R_UPPER) {
        *repl = lb_jstring_case(s, r->kind == R_UPPER);
        return 1;
    }
    if (r->kind == R_COUNTRY) {
        if (!lb_country_normalize(s, buf))
            return lb_fail(err, r->path, "must be an ISO 3166 alpha-2 code");
        *repl = json_object_new_string(buf);
        return 1;
    }
    return 0;
}

static int check_rule(json_object *doc, const struct rule *r, lb_error *err)
{
    json_object *v, *repl = NULL;
    int rc = lb_jget_node(doc, r->path, &v, err);
    if (rc <= 0)
        return rc;
    if (r->kind == R_OBJ)
        return json_object_is_type(v, json_type_object) ? 0 : lb_fail(err, r->path, "must be an object");
    rc = check_scalar(v, r, &repl, err);
    return rc == 1 ? lb_jset(doc, r->path, repl, err) : rc;
}

static const char *known_type(const char *type)
{
    for (size_t i = 0; i < N_ELEMS(known_types); i++)
        if (strcmp(type, known_types[i]) == 0)
            return known_types[i];
    return NULL;
}

/* id, type and lead.email, present and sane; and what the type is about. */
static int check_required(json_object *doc, const char **type, lb_error *err)
{
    char email[LB_EMAIL_MAX + 1];
    const char *id = lb_jstr(doc, "id"), *t = lb_jstr(doc, "type");
    if (id == NULL || *id == '\0')
        return lb_fail(err, "id", "is required");
    if (strlen(id) >= LB_ID_MAX)
        return lb_fail(err, "id", "is too long (at most %d bytes)", LB_ID_MAX - 1);
    if (t == NULL || *t == '\0')
        return lb_fail(err, "type", "is required");
    if ((*type = known_type(t)) == NULL)
        return lb_fail(err, "type", "is not a known event type");
    if (lb_jget_email(doc, "lead.email", email, sizeof email, NULL) != 1)
        return lb_fail(err, "lead.email", "is required");
    for (size_t i = 0; i < N_ELEMS(type_requires); i++)
        if (strcmp(*type, type_requires[i].type) == 0 && lb_jget(doc, type_requires[i].path) == NULL)
            return lb_fail(err, type_requires[i].path, "is required for type %s", *type);
    return 0;
}

/* What only the server may say about an event. */
static int force_server_fields(json_object *doc, const char *type, lb_error *err)
{
    json_object_object_del(doc, "account"); /* the ingest layer sets it from the token */
    if (lb_jset(doc, "source", json_object_new_string("api"), err) < 0 ||
        lb_jset(doc, "ignored", json_object_new_boolean(0), err) < 0)
        return -1;
    if (lb_jget(doc, "test") == NULL && lb_jset(doc, "test", json_object_new_boolean(0), err) < 0)
        return -1;
    const char *source_type = lb_jstr(doc, "source_type");
    if ((source_type == NULL || *source_type == '\0') &&
        lb_jset(doc, "source_type", json_object_new_string(type), err) < 0)
        return -1;
    return 0;
}

int lb_canonical_normalize(json_object *root, lb_event *ev, lb_error *err)
{
    json_object *doc = NULL;
    const char *type = NULL;
    memset(ev, 0, sizeof *ev);
    if (!json_object_is_type(root, json_type_object))
        return lb_fail(err, "", "the body must be a JSON object");
    if (copy_value(root, "", 0, &doc, err) < 0)
        return -1;
    for (size_t i = 0; i < N_ELEMS(rules); i++)
        if (check_rule(doc, &rules[i], err) < 0)
            goto fail;
    if (check_required(doc, &type, err) < 0 || force_server_fields(doc, type, err) < 0)
        goto fail;
    lb_event_bind(ev, doc, "api", type);
    return 0;
fail:
    json_object_put(doc);
    return -1;
}
