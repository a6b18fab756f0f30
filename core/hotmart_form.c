/* hotmart_form.c: the Hotmart postback 1.0 adapter (form-encoded body).
 *
 * The body is first decoded into a JSON object of string fields, so the path
 * getters of json_get.h serve here too and errors name the form field
 * ("email"). 1.0 values are untyped text whose formats we only know from
 * consumer code (spec 3.2), so a number or date that does not parse is left
 * out rather than refused: losing a price is better than losing the lead.
 * What the server keys on (status, transaction, the lead's e-mail) is
 * checked strictly. */
#include "hotmart.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "json_get.h"

#define N_ELEMS(a) (sizeof (a) / sizeof (a)[0])
#define FORM_MAX_FIELDS 1024 /* Hotmart sends ~60; more is abuse */
#define FORM_KEY_MAX 64      /* longer names cannot be fields we read: skipped */
#define STATUS_MAX 32
#define TRANSACTION_MAX 64   /* "HP" + 10-14 digits in practice */

/* A 1.0 status, the event type it becomes (NULL: not a ListBoss trigger,
 * stored as ignored) and the normalized purchase.status. */
struct status_map {
    const char *status;
    const char *type;
    const char *norm;
};

static const struct status_map statuses[] = {
    {"started", "purchase.started", "started"}, /* "Order started - PayPal": 1.0 only */
    {"approved", "purchase.approved", "approved"},
    {"completed", "purchase.complete", "completed"},
    {"canceled", "purchase.canceled", "canceled"},
    {"billet_printed", "purchase.billet_printed", "billet_printed"},
    {"refunded", "purchase.refunded", "refunded"},
    {"dispute", "purchase.protest", "dispute"},
    {"chargeback", "purchase.chargeback", "chargeback"},
    {"delayed", "purchase.delayed", "delayed"},
    {"expired", "purchase.expired", "expired"},
    {"wayting_payment", NULL, "waiting_payment"}, /* sic: Hotmart's spelling */
    {"waiting_payment", NULL, "waiting_payment"},
    {"pending_analysis", NULL, "under_analysis"},
    {"blocked", NULL, "blocked"},
};

enum form_kind { F_STR, F_UPPER, F_NUM, F_INT, F_TIME, F_COUNTRY };

struct form_field {
    enum form_kind kind;
    const char *field; /* form field name */
    const char *dst;   /* path in the normalized doc */
};

/* Straight copies; first row present wins for a shared dst. */
static const struct form_field form_fields[] = {
    {F_STR, "prod", "product.id"},
    {F_STR, "prod_name", "product.name"},
    {F_STR, "name", "lead.name"},
    {F_STR, "first_name", "lead.first_name"},
    {F_STR, "last_name", "lead.last_name"},
    {F_COUNTRY, "address_country", "lead.country"},
    {F_STR, "transaction", "purchase.transaction"},
    {F_UPPER, "payment_type", "purchase.payment_method"},
    {F_UPPER, "currency", "purchase.currency"},
    {F_NUM, "price", "purchase.price"},
    {F_NUM, "full_price", "purchase.full_price"},
    {F_STR, "off", "purchase.offer"},
    {F_STR, "coupon_code", "purchase.coupon"},
    {F_INT, "recurrency", "purchase.recurrence"},
    {F_TIME, "purchase_date", "purchase.ordered_at"},
    {F_TIME, "confirmation_purchase_date", "purchase.approved_at"},
    {F_STR, "billet_url", "purchase.billet_url"},
    {F_STR, "billet_barcode", "purchase.billet_barcode"},
    {F_STR, "refusal_reason", "purchase.refusal_reason"},
    {F_STR, "aff", "purchase.affiliate_code"},
    {F_STR, "name_subscription_plan", "subscription.plan_name"},
    {F_STR, "subscriber_code", "subscription.subscriber_code"},
};

/* ---- decoding the body -------------------------------------------------- */

/* application/x-www-form-urlencoded: '+' is a space, %XX a byte. A '%' not
 * followed by two hex digits is kept as is (as browsers and PHP do). The
 * result is NUL-terminated; *out_len counts any decoded NUL bytes. */
static char *url_decode(const char *s, size_t n, size_t *out_len)
{
    char *out = malloc(n + 1);
    size_t j = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[j++] = ' ';
        } else if (s[i] == '%' && n - i > 2 && lb_hex_digit(s[i + 1]) >= 0 && lb_hex_digit(s[i + 2]) >= 0) {
            out[j++] = (char)(lb_hex_digit(s[i + 1]) * 16 + lb_hex_digit(s[i + 2]));
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    *out_len = j;
    return out;
}

/* Whether a decoded key is kept: one we could read (no NUL, short), the
 * one asked for if any, and new. The first occurrence of a key wins, so a
 * second "hottok" or "email" appended to a body cannot override it. */
static bool key_wanted(json_object *form, const char *key, size_t kdec, const char *only)
{
    return kdec > 0 && kdec < FORM_KEY_MAX && strlen(key) == kdec && (only == NULL || strcmp(key, only) == 0) &&
           !json_object_object_get_ex(form, key, NULL);
}

/* Adds one "key=value" pair; with `only` set, only if the key is that one. */
static int add_pair(json_object *form, const char *p, size_t n, const char *only, lb_error *err)
{
    const char *eq = memchr(p, '=', n);
    size_t klen = eq ? (size_t)(eq - p) : n;
    size_t kdec = 0, vdec = 0;
    if (only != NULL && (klen < strlen(only) || klen > 3 * strlen(only)))
        return 0; /* cannot decode to it (a byte is 1 to 3 encoded): not worth decoding */
    char *key = url_decode(p, klen, &kdec);
    if (key == NULL)
        return lb_fail(err, "", "out of memory");
    if (!key_wanted(form, key, kdec, only)) {
        free(key);
        return 0;
    }
    char *val = url_decode(eq ? eq + 1 : p + n, eq ? n - klen - 1 : 0, &vdec);
    int rc = 0;
    if (val == NULL)
        rc = lb_fail(err, "", "out of memory");
    else if (vdec <= INT_MAX)
        json_object_object_add(form, key, json_object_new_string_len(val, (int)vdec));
    free(key);
    free(val);
    return rc;
}

/* Decodes the body into *out. Past FORM_MAX_FIELDS only the hottok is still
 * read, and *too_many is set: the caller authenticates first, and must not
 * tell the account holder its hottok is missing when its form is too big. */
static int parse_form(const char *body, size_t len, json_object **out, bool *too_many, lb_error *err)
{
    json_object *form = json_object_new_object();
    size_t fields = 0;
    if (form == NULL)
        return lb_fail(err, "", "out of memory");
    for (size_t i = 0; i < len;) {
        const char *p = body + i;
        const char *amp = memchr(p, '&', len - i);
        size_t n = amp ? (size_t)(amp - p) : len - i;
        const char *only = n > 0 && ++fields > FORM_MAX_FIELDS ? "hottok" : NULL;
        if (n > 0 && add_pair(form, p, n, only, err) < 0) {
            json_object_put(form);
            return -1;
        }
        i += n + 1;
    }
    *too_many = fields > FORM_MAX_FIELDS;
    *out = form;
    return 0;
}

/* ---- values -------------------------------------------------------------- */

static bool is_decimal(const char *s, size_t n)
{
    return n > 0 && strspn(s, "0123456789") == n;
}

/* Digits, then optionally a point and digits: nothing else that strtod
 * would also read ("0x10" as 16, "inf", "nan", "1e999", " 1", "+1"). */
static bool plain_decimal(const char *s)
{
    const char *point = strchr(s, '.');
    if (point == NULL)
        return is_decimal(s, strlen(s));
    return is_decimal(s, (size_t)(point - s)) && is_decimal(point + 1, strlen(point + 1));
}

/* "197.00", also "197,00" (a Brazilian decimal comma when there is no dot). */
static json_object *parse_number(const char *s)
{
    char buf[64], *end;
    if (strlen(s) >= sizeof buf)
        return NULL;
    strcpy(buf, s);
    char *comma = strchr(buf, ',');
    if (comma != NULL && strchr(buf, '.') == NULL)
        *comma = '.';
    if (!plain_decimal(buf))
        return NULL;
    errno = 0;
    double d = strtod(buf, &end);
    if (end == buf || *end != '\0' || errno != 0 || !isfinite(d))
        return NULL;
    return json_object_new_double(d);
}

/* "3": digits only, as plain_decimal asks of a price, and within 64 bits;
 * strtoll alone would also read " 3", "+3" and "-3". */
static json_object *parse_int(const char *s)
{
    if (!is_decimal(s, strlen(s)))
        return NULL;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    return errno == 0 ? json_object_new_int64(v) : NULL;
}

/* The value for one row, or NULL when there is none worth storing. */
static json_object *convert(enum form_kind kind, const char *s)
{
    int64_t ms;
    char cc[3];
    switch (kind) {
    case F_UPPER:
        return lb_jstring_case(s, true);
    case F_NUM:
        return parse_number(s);
    case F_INT:
        return parse_int(s);
    case F_TIME:
        return lb_time_parse(s, &ms) == 0 ? json_object_new_int64(ms) : NULL;
    case F_COUNTRY:
        return lb_country_normalize(s, cc) ? json_object_new_string(cc) : NULL;
    default:
        return json_object_new_string(s);
    }
}

static int map_fields(json_object *form, json_object *doc, lb_error *err)
{
    for (size_t i = 0; i < N_ELEMS(form_fields); i++) {
        const struct form_field *f = &form_fields[i];
        const char *s = NULL;
        if (lb_jget_string(form, f->field, &s, err) < 0)
            return -1;
        if (s == NULL || *s == '\0' || lb_jget(doc, f->dst) != NULL)
            continue;
        json_object *v = convert(f->kind, s);
        if (v != NULL && lb_jset(doc, f->dst, v, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- the parts a row cannot express -------------------------------------- */

/* Area code and number come split; the checkout phone is preferred. */
static int map_phone(json_object *form, json_object *doc, lb_error *err)
{
    static const char *const pairs[][2] = {
        {"phone_checkout_local_code", "phone_checkout_number"},
        {"phone_local_code", "phone_number"},
    };
    for (size_t i = 0; i < N_ELEMS(pairs); i++) {
        const char *area = "", *num = "";
        if (lb_jget_string(form, pairs[i][0], &area, err) < 0 ||
            lb_jget_string(form, pairs[i][1], &num, err) < 0)
            return -1;
        if (*num == '\0')
            continue;
        size_t la = strlen(area), ln = strlen(num);
        char *t = malloc(la + ln + 1);
        if (t == NULL)
            return lb_fail(err, "lead.phone", "out of memory");
        memcpy(t, area, la);
        memcpy(t + la, num, ln + 1);
        json_object *v = json_object_new_string(t);
        free(t);
        return lb_jset(doc, "lead.phone", v, err);
    }
    return 0;
}

/* The lead's e-mail is required for events that act; an ignored status is
 * stored whatever its e-mail looks like, so a bad one is just left out. */
static int map_email(json_object *form, json_object *doc, bool ignored, lb_error *err)
{
    char email[LB_EMAIL_MAX + 1];
    int rc = lb_jget_email(form, "email", email, sizeof email, ignored ? NULL : err);
    if (rc == 1)
        return lb_jset(doc, "lead.email", json_object_new_string(email), err);
    if (ignored)
        return 0;
    return rc < 0 ? -1 : lb_fail(err, "email", "is required");
}

static int map_subscription_status(json_object *form, json_object *doc, lb_error *err)
{
    const char *s = NULL;
    if (lb_jget_string(form, "subscription_status", &s, err) < 0)
        return -1;
    if (s == NULL || *s == '\0')
        return 0;
    /* 1.0 subscription statuses are not documented anywhere we found:
     * lower-cased, not mapped (docs/events.md). */
    if (lb_jset(doc, "subscription.status", lb_jstring_case(s, false), err) < 0)
        return -1;
    return lb_jset(doc, "subscription.status_raw", json_object_new_string(s), err);
}


/* ---- the envelope and the whole ------------------------------------------- */

/* A required, short, non-empty text field. */
static int required_text(json_object *form, const char *field, size_t max, const char **out,
                         lb_error *err)
{
    int rc = lb_jget_string(form, field, out, err);
    if (rc < 0)
        return -1;
    if (rc == 0 || **out == '\0')
        return lb_fail(err, field, "is required");
    if (strlen(*out) > max)
        return lb_fail(err, field, "is too long (at most %zu bytes)", max);
    return 0;
}

static const struct status_map *find_status(const char *status)
{
    for (size_t i = 0; i < N_ELEMS(statuses); i++)
        if (strcmp(status, statuses[i].status) == 0)
            return &statuses[i];
    return NULL;
}

/* id ("<transaction>:<status>": 1.0 has no event id, and one transaction
 * goes through several statuses), source, source_type, type, status. */
static int map_envelope(json_object *form, json_object *doc, const struct status_map **st,
                        lb_error *err)
{
    const char *raw, *txn;
    char status[STATUS_MAX + 1], id[TRANSACTION_MAX + STATUS_MAX + 2];
    if (required_text(form, "status", STATUS_MAX, &raw, err) < 0 ||
        required_text(form, "transaction", TRANSACTION_MAX, &txn, err) < 0)
        return -1;
    size_t n = strlen(raw); /* <= STATUS_MAX, checked above */
    for (size_t i = 0; i <= n; i++)
        status[i] = (char)(raw[i] >= 'A' && raw[i] <= 'Z' ? raw[i] + ('a' - 'A') : raw[i]);
    snprintf(id, sizeof id, "%s:%s", txn, status);
    *st = find_status(status);
    const char *type = *st ? (*st)->type : NULL;
    if (lb_jset(doc, "id", json_object_new_string(id), err) < 0 ||
        lb_jset(doc, "source", json_object_new_string("hotmart1"), err) < 0 ||
        lb_jset(doc, "source_type", json_object_new_string(status), err) < 0 ||
        lb_jset(doc, "type", json_object_new_string(type ? type : "unknown"), err) < 0 ||
        lb_jset(doc, "ignored", json_object_new_boolean(type == NULL), err) < 0 ||
        lb_jset(doc, "purchase.status", json_object_new_string(*st ? (*st)->norm : status), err) < 0)
        return -1;
    return lb_jset(doc, "purchase.status_raw", json_object_new_string(raw), err);
}

static int build(json_object *form, json_object *doc, const char **type, lb_error *err)
{
    const struct status_map *st = NULL;
    if (map_envelope(form, doc, &st, err) < 0)
        return -1;
    bool ignored = st == NULL || st->type == NULL;
    *type = ignored ? "unknown" : st->type;
    const char *aff = NULL;
    if (map_email(form, doc, ignored, err) < 0 || map_fields(form, doc, err) < 0 ||
        map_phone(form, doc, err) < 0 || map_subscription_status(form, doc, err) < 0 ||
        lb_jget_string(form, "aff", &aff, err) < 0)
        return -1;
    if (aff != NULL &&
        lb_jset(doc, "purchase.affiliate", json_object_new_boolean(*aff != '\0'), err) < 0)
        return -1;
    json_object *ordered = lb_jget(doc, "purchase.ordered_at");
    if (ordered != NULL &&
        lb_jset(doc, "occurred_at", json_object_new_int64(json_object_get_int64(ordered)), err) < 0)
        return -1;
    return lb_jset(doc, "test", json_object_new_boolean(lb_hotmart_is_send_test(doc)), err);
}

/* The form's hottok, copied out before anything is validated: the caller
 * authenticates first, so a bad event from a stranger is a 401, not a 400.
 * All of it, a NUL (%00) included: compared with its length, such a token is
 * a wrong one, not its prefix. */
static int take_hottok(json_object *form, char **hottok_out, size_t *hottok_len, lb_error *err)
{
    json_object *v;
    if (hottok_out == NULL || !json_object_object_get_ex(form, "hottok", &v))
        return 0; /* every value of the form is a string (add_pair) */
    size_t n = (size_t)json_object_get_string_len(v);
    if ((*hottok_out = malloc(n + 1)) == NULL)
        return lb_fail(err, "hottok", "out of memory");
    memcpy(*hottok_out, json_object_get_string(v), n + 1);
    *hottok_len = n;
    return 0;
}

int lb_hotmart_form_normalize(const char *body, size_t len, lb_event *ev, char **hottok_out, size_t *hottok_len,
                              lb_error *err)
{
    json_object *form = NULL, *doc = NULL;
    const char *type = "unknown";
    memset(ev, 0, sizeof *ev);
    bool too_many = false;
    if (hottok_out != NULL)
        *hottok_out = NULL;
    if (parse_form(body, len, &form, &too_many, err) < 0)
        return -1;
    int rc = take_hottok(form, hottok_out, hottok_len, err);
    if (rc == 0 && too_many)
        rc = lb_fail(err, "", "the form has more than %d fields", FORM_MAX_FIELDS);
    if (rc == 0 && (doc = json_object_new_object()) == NULL)
        rc = lb_fail(err, "", "out of memory");
    if (rc == 0)
        rc = build(form, doc, &type, err);
    json_object_put(form);
    if (rc < 0) {
        json_object_put(doc); /* *hottok_out stays set: the caller frees it either way */
        return -1;
    }
    lb_event_bind(ev, doc, "hotmart1", type);
    return 0;
}
