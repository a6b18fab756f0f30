/* hotmart.c: the Hotmart webhook 2.0.0 adapter (JSON body).
 *
 * The mapping is data: one row per value copied from the delivery into the
 * normalized document, grouped per event family, so docs/events.md and these
 * tables can be checked against each other line by line. Code exists only
 * for what a row cannot say: the lead's e-mail (required, validated), the
 * subscriber's split phone, the affiliate list and SWITCH_PLAN's plans[].
 *
 * Tolerance rules (spec section 8): every nested object is optional; ids may
 * be numbers or strings; dates may be epoch ms or ISO-8601; "" means "no
 * value". A value that is present with the wrong type is an error naming its
 * path, except in unknown events, whose data is never read (they must be
 * stored and answered 200 whatever their shape). */
#include "hotmart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json_get.h"

#define N_ELEMS(a) (sizeof (a) / sizeof (a)[0])
#define JPATH_LEN 96

enum kind {
    K_STR,     /* string, copied */
    K_UPPER,   /* string, upper-cased (payment method) */
    K_ID,      /* integer or string, stored as a string */
    K_INT,     /* integer */
    K_NUM,     /* number */
    K_BOOL,    /* boolean */
    K_TIME,    /* epoch ms or ISO-8601, stored as ms */
    K_COUNTRY, /* ISO alpha-2, upper-cased; anything else is skipped */
    K_PSTATUS, /* purchase status: normalized into dst, verbatim into dst_raw */
    K_SSTATUS, /* subscription status: likewise */
};

/* One value copied from the delivery (src path) into the doc (dst path).
 * Several rows may share a dst: the first source present wins, which is how
 * fallbacks are written. */
struct field_map {
    enum kind kind;
    const char *src;
    const char *dst;
};

/* The parent object of the last path looked up in the delivery, so rows
 * that share a prefix ("data.purchase.payment.*") walk it once, not once per
 * row. len is SIZE_MAX when nothing is cached. */
struct prefix_key {
    char prefix[JPATH_LEN];
    size_t len;
    int rc; /* of looking the prefix up: 1 found, 0 absent */
};

struct src_cache {
    struct prefix_key key;
    const lb_jnode *node; /* when rc == 1 */
};

/* One normalization: the delivery, its lookup cache (the delivery never
 * changes, so a parent found, or found absent, stays so), and the document
 * being built (event_doc.h). */
typedef struct nz {
    const lb_jnode *root;
    lb_edoc *doc;
    struct src_cache src;
} nz;

struct synonym {
    const char *raw;
    const char *norm;
};

/* Spec 6.1: the documented enum and the wire disagree; both spellings map to
 * one value. Matching ignores case. Unknown values are kept lower-cased. */
static const struct synonym purchase_statuses[] = {
    {"APPROVED", "approved"},
    {"COMPLETE", "completed"},
    {"COMPLETED", "completed"},
    {"CANCELED", "canceled"},
    {"CANCELLED", "canceled"},
    {"BILLET_PRINTED", "billet_printed"},
    {"PRINTED_BILLET", "billet_printed"},
    {"DISPUTE", "dispute"},
    {"REFUNDED", "refunded"},
    {"PARTIALLY_REFUNDED", "partially_refunded"},
    {"CHARGEBACK", "chargeback"},
    {"EXPIRED", "expired"},
    {"DELAYED", "delayed"},
    {"OVERDUE", "delayed"},
    {"PAST_DUE", "delayed"},
    {"STARTED", "started"},
    {"WAITING_PAYMENT", "waiting_payment"},
    {"UNDER_ANALISYS", "under_analysis"}, /* sic, as documented */
    {"UNDER_ANALYSIS", "under_analysis"},
    {"BLOCKED", "blocked"},
    {"NO_FUNDS", "no_funds"},
    {"PRE_ORDER", "pre_order"},
    {"PROCESSING_TRANSACTION", "processing_transaction"},
};

/* Spec 6.3: three documents, three spellings of the same states. */
static const struct synonym subscription_statuses[] = {
    {"ACTIVE", "active"},
    {"INACTIVE", "inactive"},
    {"OVERDUE", "overdue"},
    {"DELAYED", "overdue"},
    {"PAST_DUE", "overdue"},
    {"CANCELLED_BY_ADMIN", "canceled_by_admin"},
    {"CANCELED_BY_ADMIN", "canceled_by_admin"},
    {"CANCELLED_BY_CUSTOMER", "canceled_by_customer"},
    {"CANCELED_BY_CUSTOMER", "canceled_by_customer"},
    {"CANCELLED_BY_SELLER", "canceled_by_seller"},
    {"CANCELED_BY_SELLER", "canceled_by_seller"},
    {"CANCELLED_BY_VENDOR", "canceled_by_seller"},
    {"CANCELED_BY_VENDOR", "canceled_by_seller"},
    {"STARTED", "initiated"},
    {"EXPIRED", "expired"},
};

/* Relative to the event's product object ("data.product" or, for two
 * subscription events, "data.subscription.product"). */
static const struct field_map product_fields[] = {
    {K_ID, "id", "product.id"},
    {K_STR, "ucode", "product.ucode"},
    {K_STR, "name", "product.name"},
};

/* Relative to the event's lead object (buyer, subscriber, subscription.user,
 * user). The e-mail and the phone object are handled in code. */
static const struct field_map lead_fields[] = {
    {K_STR, "name", "lead.name"},
    {K_STR, "first_name", "lead.first_name"},
    {K_STR, "last_name", "lead.last_name"},
    {K_STR, "checkout_phone", "lead.phone"}, /* purchase buyers; preferred over .phone */
};

/* The lead's country, in order of preference (docs/events.md). */
static const struct field_map country_fields[] = {
    {K_COUNTRY, "data.buyer.address.country_iso", "lead.country"},
    {K_COUNTRY, "data.purchase.checkout_country.iso", "lead.country"},
    {K_COUNTRY, "data.checkout_country.iso", "lead.country"}, /* cart abandonment */
};

/* The nine PURCHASE_* events and the cart abandonment (whose few fields sit
 * at other paths, listed last). */
static const struct field_map purchase_fields[] = {
    {K_STR, "data.purchase.transaction", "purchase.transaction"},
    {K_PSTATUS, "data.purchase.status", "purchase.status"},
    {K_UPPER, "data.purchase.payment.type", "purchase.payment_method"},
    {K_INT, "data.purchase.payment.installments_number", "purchase.installments"},
    {K_STR, "data.purchase.price.currency_value", "purchase.currency"},
    {K_STR, "data.purchase.full_price.currency_value", "purchase.currency"},
    {K_NUM, "data.purchase.price.value", "purchase.price"},
    {K_NUM, "data.purchase.full_price.value", "purchase.full_price"},
    {K_STR, "data.purchase.offer.code", "purchase.offer"},
    {K_STR, "data.purchase.offer.coupon_code", "purchase.coupon"},
    {K_INT, "data.purchase.recurrence_number", "purchase.recurrence"},
    {K_BOOL, "data.purchase.order_bump.is_order_bump", "purchase.is_order_bump"},
    {K_TIME, "data.purchase.order_date", "purchase.ordered_at"},
    {K_TIME, "data.purchase.approved_date", "purchase.approved_at"},
    {K_TIME, "data.purchase.date_next_charge", "purchase.next_charge_at"},
    {K_STR, "data.purchase.payment.billet_url", "purchase.billet_url"},
    {K_STR, "data.purchase.payment.billet_barcode", "purchase.billet_barcode"},
    {K_STR, "data.purchase.payment.pix_code", "purchase.pix_code"},
    {K_STR, "data.purchase.payment.pix_qrcode", "purchase.pix_qrcode"},
    {K_TIME, "data.purchase.payment.pix_expiration_date", "purchase.pix_expires_at"},
    {K_STR, "data.purchase.payment.refusal_reason", "purchase.refusal_reason"},
    {K_SSTATUS, "data.subscription.status", "subscription.status"},
    {K_ID, "data.subscription.id", "subscription.id"},
    {K_ID, "data.subscription.plan.id", "subscription.plan_id"},
    {K_STR, "data.subscription.plan.name", "subscription.plan_name"},
    {K_STR, "data.subscription.subscriber.code", "subscription.subscriber_code"},
    {K_STR, "data.offer.code", "purchase.offer"},      /* cart */
    {K_BOOL, "data.affiliate", "purchase.affiliate"}, /* cart */
};

static const struct field_map cancellation_fields[] = {
    {K_ID, "data.subscription.id", "subscription.id"},
    {K_SSTATUS, "data.subscription.status", "subscription.status"}, /* not documented; may come */
    {K_ID, "data.subscription.plan.id", "subscription.plan_id"},
    {K_STR, "data.subscription.plan.name", "subscription.plan_name"},
    {K_STR, "data.subscriber.code", "subscription.subscriber_code"},
    {K_TIME, "data.date_next_charge", "subscription.next_charge_at"},
    {K_TIME, "data.cancellation_date", "subscription.canceled_at"},
    {K_NUM, "data.actual_recurrence_value", "subscription.recurrence_value"},
};

static const struct field_map switch_plan_fields[] = {
    {K_ID, "data.subscription.id", "subscription.id"},
    {K_SSTATUS, "data.subscription.status", "subscription.status"},
    {K_STR, "data.subscription.subscriber_code", "subscription.subscriber_code"},
    {K_TIME, "data.subscription.date_next_charge", "subscription.next_charge_at"},
    {K_TIME, "data.switch_plan_date", "subscription.switched_at"},
};

/* Relative to the plans[] entry with current = true (the new plan). */
static const struct field_map plan_fields[] = {
    {K_ID, "id", "subscription.plan_id"},
    {K_STR, "name", "subscription.plan_name"},
    {K_STR, "offer.key", "subscription.offer"},
};

static const struct field_map charge_date_fields[] = {
    {K_ID, "data.subscription.id", "subscription.id"},
    {K_SSTATUS, "data.subscription.status", "subscription.status"},
    {K_STR, "data.subscriber.code", "subscription.subscriber_code"},
    {K_INT, "data.subscription.old_charge_day", "subscription.old_charge_day"},
    {K_INT, "data.subscription.new_charge_day", "subscription.new_charge_day"},
    {K_TIME, "data.subscription.date_next_charge", "subscription.next_charge_at"},
    {K_ID, "data.plan.id", "subscription.plan_id"},
    {K_STR, "data.plan.name", "subscription.plan_name"},
    {K_STR, "data.plan.offer.code", "subscription.offer"},
};

static const struct field_map club_fields[] = {
    {K_ID, "data.module.id", "club.module_id"},
    {K_STR, "data.module.name", "club.module_name"},
};

static int map_purchase_extra(nz *z, lb_error *err);
static int map_current_plan(nz *z, lb_error *err);

struct event_map {
    const char *name;    /* Hotmart's `event` */
    const char *type;    /* normalized type */
    const char *product; /* object holding the product */
    const char *lead;    /* object holding the lead */
    const struct field_map *fields;
    size_t n_fields;
    int (*extra)(nz *z, lb_error *err); /* or NULL */
};

#define PURCHASE_EVENT(name, type)                                                          \
    {name, type, "data.product", "data.buyer", purchase_fields, N_ELEMS(purchase_fields), \
     map_purchase_extra}

static const struct event_map events[] = {
    PURCHASE_EVENT("PURCHASE_OUT_OF_SHOPPING_CART", "cart.abandoned"),
    PURCHASE_EVENT("PURCHASE_BILLET_PRINTED", "purchase.billet_printed"), /* boleto and Pix */
    PURCHASE_EVENT("PURCHASE_APPROVED", "purchase.approved"),
    PURCHASE_EVENT("PURCHASE_COMPLETE", "purchase.complete"),
    PURCHASE_EVENT("PURCHASE_CANCELED", "purchase.canceled"),
    PURCHASE_EVENT("PURCHASE_PROTEST", "purchase.protest"),
    PURCHASE_EVENT("PURCHASE_REFUNDED", "purchase.refunded"),
    PURCHASE_EVENT("PURCHASE_CHARGEBACK", "purchase.chargeback"),
    PURCHASE_EVENT("PURCHASE_EXPIRED", "purchase.expired"),
    PURCHASE_EVENT("PURCHASE_DELAYED", "purchase.delayed"),
    {"SUBSCRIPTION_CANCELLATION", "subscription.canceled", "data.product", "data.subscriber",
     cancellation_fields, N_ELEMS(cancellation_fields), NULL},
    {"SWITCH_PLAN", "subscription.plan_switched", "data.subscription.product", "data.subscription.user",
     switch_plan_fields, N_ELEMS(switch_plan_fields), map_current_plan},
    {"UPDATE_SUBSCRIPTION_CHARGE_DATE", "subscription.charge_date_updated", "data.subscription.product",
     "data.subscriber", charge_date_fields, N_ELEMS(charge_date_fields), NULL},
    {"CLUB_FIRST_ACCESS", "club.first_access", "data.product", "data.user", club_fields,
     N_ELEMS(club_fields), NULL},
    {"CLUB_MODULE_COMPLETED", "club.module_completed", "data.product", "data.user", club_fields,
     N_ELEMS(club_fields), NULL},
};

/* ---- small helpers ---------------------------------------------------- */

/* A string value (C string semantics: it ends at its first NUL, as the
 * json-c documents this adapter used to build did). */
static void string_value(lb_evalue *out, const char *s, lb_evalue_case how)
{
    *out = (lb_evalue){.type = LB_EV_STR, .str_case = how, .s = s, .len = strlen(s)};
}

static void normalize_status(const struct synonym *tab, size_t n, const char *raw, lb_evalue *out)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(raw, tab[i].raw) == 0) {
            string_value(out, tab[i].norm, LB_EV_ASIS);
            return;
        }
    string_value(out, raw, LB_EV_LOWER); /* a new spelling: kept, in the same case as the rest */
}

/* String kinds. Returns 1 with *out set, 0 if there is nothing to store.
 * out->s may point into cc, which must live until out is stored. */
static int convert_string(const struct field_map *f, const lb_jnode *v, lb_evalue *out, char cc[3], lb_error *err)
{
    const char *s = "";
    if (lb_jnval_string(v, f->src, &s, err) < 0)
        return -1;
    if (*s == '\0')
        return 0; /* Hotmart sends "" for "no value" (affiliates, subscriber.phone) */
    switch (f->kind) {
    case K_UPPER:
        string_value(out, s, LB_EV_UPPER);
        break;
    case K_COUNTRY:
        /* A country name where a code belongs: skip it so the next source is tried. */
        if (!lb_country_normalize(s, cc))
            return 0;
        string_value(out, cc, LB_EV_ASIS);
        break;
    case K_PSTATUS:
        normalize_status(purchase_statuses, N_ELEMS(purchase_statuses), s, out);
        break;
    case K_SSTATUS:
        normalize_status(subscription_statuses, N_ELEMS(subscription_statuses), s, out);
        break;
    default:
        string_value(out, s, LB_EV_ASIS);
    }
    return 1;
}

/* A number's text as json-c would write it back: a double as it was sent,
 * an integer in its canonical decimal form. */
static const char *number_text(const lb_jnode *v, char buf[24])
{
    if (v->type == json_type_double)
        return v->str;
    if (v->big)
        snprintf(buf, 24, "%llu", (unsigned long long)v->u);
    else
        snprintf(buf, 24, "%lld", (long long)v->v.i);
    return buf;
}

/* Scratch space a converted value's string may point into until it is stored. */
struct value_buf {
    char id[LB_ID_MAX];
    char num[24];
    char cc[3];
};

/* Reads v (present, not null) as f->kind into *out. */
static int convert(const struct field_map *f, const lb_jnode *v, lb_evalue *out, struct value_buf *buf,
                   lb_error *err)
{
    int rc;
    switch (f->kind) {
    case K_ID:
        if ((rc = lb_jnval_id(v, f->src, buf->id, sizeof buf->id, err)) == 1)
            string_value(out, buf->id, LB_EV_ASIS);
        return rc;
    case K_INT:
    case K_TIME:
        *out = (lb_evalue){.type = LB_EV_INT};
        return f->kind == K_INT ? lb_jnval_int(v, f->src, &out->i, err) : lb_jnval_time(v, f->src, &out->i, err);
    case K_NUM:
        /* Keep the sender's spelling (49.9, not 49.899999999999999). */
        *out = (lb_evalue){.type = LB_EV_NUM};
        if ((rc = lb_jnval_double(v, f->src, &out->d, err)) == 1) {
            out->s = number_text(v, buf->num);
            out->len = strlen(out->s);
        }
        return rc;
    case K_BOOL:
        *out = (lb_evalue){.type = LB_EV_BOOL};
        return lb_jnval_bool(v, f->src, &out->b, err);
    default:
        return convert_string(f, v, out, buf->cc, err);
    }
}

/* Whether path's prefix (up to its last '.', *len bytes) is the one the
 * cache holds; if not, the cache takes it (looked up by the caller). */
static bool prefix_cached(struct prefix_key *k, const char *path, size_t *len)
{
    const char *dot = strrchr(path, '.');
    *len = (size_t)(dot - path);
    if (k->len == *len && memcmp(k->prefix, path, *len) == 0)
        return true;
    memcpy(k->prefix, path, *len);
    k->prefix[*len] = '\0';
    return false;
}

static bool cacheable(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && (size_t)(dot - path) < JPATH_LEN;
}

/* Looks `path` up in the delivery through the cache: the prefix is resolved
 * once for consecutive paths that share it (an absent one too: the delivery
 * never changes). Errors name the same offending prefix as a walk of the
 * whole path would. */
static int cached_src(struct src_cache *c, const lb_jnode *root, const char *path, const lb_jnode **out,
                      lb_error *err)
{
    size_t len;
    *out = NULL;
    if (!cacheable(path))
        return lb_jnget_node(root, path, out, err);
    if (!prefix_cached(&c->key, path, &len)) {
        c->key.rc = lb_jnget_node(root, c->key.prefix, &c->node, err);
        c->key.len = c->key.rc < 0 ? SIZE_MAX : len;
        if (c->key.rc < 0)
            return -1;
    }
    if (c->key.rc == 0)
        return 0;
    return lb_jnget_node_at(c->node, path, len + 1, out, err);
}

/* The result of a set into the document; the error names the path. */
static int stored(int rc, const char *path, lb_error *err)
{
    return rc == 0 ? 0 : lb_fail(err, path, "cannot be stored");
}

static int put(nz *z, const char *path, const lb_evalue *v, lb_error *err)
{
    return stored(lb_edoc_set(z->doc, path, v), path, err);
}

static int put_str(nz *z, const char *path, const char *s, lb_error *err)
{
    return stored(lb_edoc_set_str(z->doc, path, s), path, err);
}

static int put_bool(nz *z, const char *path, bool b, lb_error *err)
{
    return stored(lb_edoc_set_bool(z->doc, path, b), path, err);
}

static int put_int(nz *z, const char *path, int64_t i, lb_error *err)
{
    return stored(lb_edoc_set_int(z->doc, path, i), path, err);
}

/* Stores v (present, not null) as row f says. */
static int map_value(nz *z, const struct field_map *f, const lb_jnode *v, lb_error *err)
{
    lb_evalue out;
    struct value_buf buf;
    int rc = convert(f, v, &out, &buf, err);
    if (rc <= 0)
        return rc;
    if (put(z, f->dst, &out, err) < 0)
        return -1;
    if (f->kind != K_PSTATUS && f->kind != K_SSTATUS)
        return 0;
    char raw[JPATH_LEN];
    snprintf(raw, sizeof raw, "%s_raw", f->dst);
    lb_evalue verbatim = {.type = LB_EV_STR, .s = v->str, .len = v->str_len};
    return put(z, raw, &verbatim, err);
}

/* Row f, its src looked up from the root (or from `at`, the node at the
 * first at_len bytes of f->src, when there is one). */
static int map_field_at(nz *z, const struct field_map *f, const lb_jnode *at, size_t at_len, lb_error *err)
{
    const lb_jnode *v;
    if (lb_edoc_has(z->doc, f->dst))
        return 0; /* an earlier, preferred source filled it */
    int rc = at ? lb_jnget_node_at(at, f->src, at_len + 1, &v, err) : cached_src(&z->src, z->root, f->src, &v, err);
    return rc <= 0 ? rc : map_value(z, f, v, err);
}

static int map_field(nz *z, const struct field_map *f, lb_error *err)
{
    return map_field_at(z, f, NULL, 0, err);
}

static int map_fields(nz *z, const struct field_map *rows, size_t n,
                      lb_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (map_field(z, &rows[i], err) < 0)
            return -1;
    return 0;
}

/* Rows whose src is relative to the object at `base`: looked up from the
 * root, or from `at` when the caller holds the node at base (an array
 * element, which a lookup from the root would reach by walking the array
 * again). */
static int map_under_at(nz *z, const char *base, const lb_jnode *at,
                        const struct field_map *rows, size_t n, lb_error *err)
{
    char src[JPATH_LEN];
    size_t base_len = strlen(base);
    if (base_len + 1 >= sizeof src)
        return lb_fail(err, base, "is not a valid path");
    memcpy(src, base, base_len);
    src[base_len] = '.';
    for (size_t i = 0; i < n; i++) {
        size_t rel = strlen(rows[i].src);
        if (base_len + 1 + rel >= sizeof src)
            return lb_fail(err, base, "is not a valid path");
        memcpy(src + base_len + 1, rows[i].src, rel + 1);
        struct field_map f = {rows[i].kind, src, rows[i].dst};
        if (map_field_at(z, &f, at, base_len, err) < 0)
            return -1;
    }
    return 0;
}

static int map_under(nz *z, const char *base, const struct field_map *rows, size_t n, lb_error *err)
{
    return map_under_at(z, base, NULL, rows, n, err);
}

/* ---- the parts a row cannot express ----------------------------------- */

/* doc[path] = a + b */
static int put_concat(nz *z, const char *path, const char *a, const char *b, lb_error *err)
{
    size_t la = strlen(a), lb = strlen(b);
    char *t = malloc(la + lb + 1);
    if (t == NULL)
        return lb_fail(err, path, "cannot be stored");
    memcpy(t, a, la);
    memcpy(t + la, b, lb + 1);
    int rc = put_str(z, path, t, err);
    free(t);
    return rc;
}

/* subscriber.phone is {dddCell, cell, dddPhone, phone}: the mobile first,
 * the landline if there is no mobile; area code and number joined. */
static int join_phone(nz *z, const char *base, lb_error *err)
{
    static const char *const pairs[][2] = {{"dddCell", "cell"}, {"dddPhone", "phone"}};
    for (size_t i = 0; i < N_ELEMS(pairs); i++) {
        char area_path[JPATH_LEN + 16], num_path[JPATH_LEN + 16];
        const char *area = "", *num = "";
        snprintf(area_path, sizeof area_path, "%s.%s", base, pairs[i][0]);
        snprintf(num_path, sizeof num_path, "%s.%s", base, pairs[i][1]);
        if (lb_jnget_string(z->root, area_path, &area, err) < 0 ||
            lb_jnget_string(z->root, num_path, &num, err) < 0)
            return -1;
        if (*num != '\0')
            return put_concat(z, "lead.phone", area, num, err);
    }
    return 0;
}

/* lead.phone, unless checkout_phone gave it: <lead>.phone is a string for
 * the cart buyer and an object for a subscriber. */
static int map_phone(nz *z, const char *base, lb_error *err)
{
    char path[JPATH_LEN];
    const lb_jnode *v;
    if (lb_edoc_has(z->doc, "lead.phone"))
        return 0;
    snprintf(path, sizeof path, "%s.phone", base);
    int rc = lb_jnget_node(z->root, path, &v, err);
    if (rc <= 0)
        return rc;
    if (v->type == json_type_object)
        return join_phone(z, path, err);
    struct field_map f = {K_STR, path, "lead.phone"};
    return map_field(z, &f, err);
}

/* The lead: its e-mail is the key everything downstream hangs on. */
static int map_lead(nz *z, const char *base, lb_error *err)
{
    char path[JPATH_LEN], email[LB_EMAIL_MAX + 1];
    snprintf(path, sizeof path, "%s.email", base);
    int rc = lb_jnget_email(z->root, path, email, sizeof email, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return lb_fail(err, path, "is required");
    if (put_str(z, "lead.email", email, err) < 0 ||
        map_under(z, base, lead_fields, N_ELEMS(lead_fields), err) < 0)
        return -1;
    return map_phone(z, base, err);
}

/* One element of an array the adapter reads whole; `path` names it
 * ("data.plans[3]") for errors. Returns -1 (error), 0 (go on) or 1 (stop). */
typedef int element_fn(nz *z, const lb_jnode *el, const char *path, lb_error *err);

/* Calls fn on each element of the array at `path`, in order, until it
 * stops. Returns -1 (an error), 0 (no array: absent or null) or 1. The
 * elements are walked sibling to sibling: looking each one up by index walks
 * the list from its start every time, and 80,000 elements (within max_body)
 * took 10 s of the event loop. */
static int each_element(nz *z, const char *path, element_fn *fn, lb_error *err)
{
    const lb_jnode *list;
    int rc = lb_jnget_node(z->root, path, &list, err);
    if (rc <= 0)
        return rc;
    if (list->type != json_type_array)
        return lb_fail(err, path, "must be an array");
    size_t i = 0;
    for (const lb_jnode *el = lb_jnode_first(list); el; el = lb_jnode_next(el), i++) {
        char el_path[JPATH_LEN];
        snprintf(el_path, sizeof el_path, "%s[%zu]", path, i);
        if ((rc = fn(z, el, el_path, err)) != 0)
            return rc < 0 ? -1 : 1;
    }
    return 1;
}

/* A member of an element, by its path under the element, with the typed
 * check's conventions (null or absent: 0) and errors naming the full path. */
static int element_member(const lb_jnode *el, const char *el_path, const char *key, char path[JPATH_LEN],
                          const lb_jnode **v, lb_error *err)
{
    size_t off = strlen(el_path) + 1;
    snprintf(path, JPATH_LEN, "%s.%s", el_path, key);
    return lb_jnget_node_at(el, path, off, v, err);
}

/* The first affiliates[] element with a non-empty affiliate_code. */
static int affiliate_found(nz *z, const lb_jnode *el, const char *el_path, lb_error *err)
{
    char path[JPATH_LEN];
    const lb_jnode *v;
    const char *code = "";
    if (element_member(el, el_path, "affiliate_code", path, &v, err) < 0 ||
        lb_jnval_string(v, path, &code, err) < 0)
        return -1;
    if (*code == '\0')
        return 0;
    return put_str(z, "purchase.affiliate_code", code, err) < 0 ? -1 : 1;
}

/* purchase.affiliate: whether data.affiliates[] names an affiliate. Hotmart
 * often sends one element with empty strings when there is none. */
static int map_affiliates(nz *z, lb_error *err)
{
    int rc = each_element(z, "data.affiliates", affiliate_found, err);
    if (rc <= 0)
        return rc;
    return put_bool(z, "purchase.affiliate", lb_edoc_has(z->doc, "purchase.affiliate_code"), err);
}

/* Rules about a subscription look under subscription.*, whatever the
 * event; a purchase's next charge belongs there too when it is one. */
static int map_purchase_extra(nz *z, lb_error *err)
{
    if (map_affiliates(z, err) < 0)
        return -1;
    if (!lb_edoc_has(z->doc, "purchase.next_charge_at") || !lb_edoc_has(z->doc, "subscription"))
        return 0;
    return put_int(z, "subscription.next_charge_at", lb_edoc_int(z->doc, "purchase.next_charge_at", 0), err);
}

/* The plans[] element with current = true, whose fields are read from it. */
static int plan_if_current(nz *z, const lb_jnode *el, const char *el_path, lb_error *err)
{
    char path[JPATH_LEN];
    const lb_jnode *v;
    bool current = false;
    if (element_member(el, el_path, "current", path, &v, err) < 0 || lb_jnval_bool(v, path, &current, err) < 0)
        return -1;
    if (!current)
        return 0;
    return map_under_at(z, el_path, el, plan_fields, N_ELEMS(plan_fields), err) < 0 ? -1 : 1;
}

/* SWITCH_PLAN lists the old and the new plan; current = true marks the new. */
static int map_current_plan(nz *z, lb_error *err)
{
    return each_element(z, "data.plans", plan_if_current, err) < 0 ? -1 : 0;
}

/* Hotmart's "send test" button: canned product ids and name (spec 2); 1439
 * is the 1.0 postback's test product. */
static bool is_test_product(const char *id, const char *name)
{
    static const char *const test_ids[] = {"0", "123456", "1439"};
    static const char test_name[] = "Produto test postback2";
    for (size_t i = 0; id != NULL && i < N_ELEMS(test_ids); i++)
        if (strcmp(id, test_ids[i]) == 0)
            return true;
    return name != NULL && strncmp(name, test_name, sizeof test_name - 1) == 0;
}

bool lb_hotmart_is_send_test(json_object *doc)
{
    return is_test_product(lb_jstr(doc, "product.id"), lb_jstr(doc, "product.name"));
}

/* ---- the envelope and the whole ----------------------------------------- */

static const struct event_map *find_event(const char *name)
{
    for (size_t i = 0; i < N_ELEMS(events); i++)
        if (strcmp(name, events[i].name) == 0)
            return &events[i];
    return NULL;
}

/* id, event and the creation date; the latter is camelCase in
 * CLUB_FIRST_ACCESS deliveries (spec 5.1). */
static int map_envelope(nz *z, const char **event, lb_error *err)
{
    static const char *const date_keys[] = {"creation_date", "creationDate"};
    char id[LB_ID_MAX];
    const char *name = NULL;
    int rc = lb_jnget_id(z->root, "id", id, sizeof id, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return lb_fail(err, "id", "is required");
    if ((rc = lb_jnget_string(z->root, "event", &name, err)) < 0)
        return -1;
    if (rc == 0 || *name == '\0')
        return lb_fail(err, "event", "is required");
    if (put_str(z, "id", id, err) < 0 || put_str(z, "source", "hotmart", err) < 0 ||
        put_str(z, "source_type", name, err) < 0)
        return -1;
    *event = name;
    for (size_t i = 0; i < N_ELEMS(date_keys); i++) {
        int64_t ms;
        if ((rc = lb_jnget_time(z->root, date_keys[i], &ms, err)) < 0)
            return -1;
        if (rc == 1)
            return put_int(z, "occurred_at", ms, err);
    }
    return 0; /* no date: occurred_at is omitted, never invented */
}

static int map_data(nz *z, const struct event_map *m, lb_error *err)
{
    const lb_jnode *data = NULL;
    if (lb_jnget_node(z->root, "data", &data, NULL) != 1 || data->type != json_type_object)
        return lb_fail(err, "data", "must be an object");
    if (map_under(z, m->product, product_fields, N_ELEMS(product_fields), err) < 0 ||
        map_lead(z, m->lead, err) < 0 ||
        map_fields(z, country_fields, N_ELEMS(country_fields), err) < 0 ||
        map_fields(z, m->fields, m->n_fields, err) < 0 ||
        (m->extra != NULL && m->extra(z, err) < 0))
        return -1;
    return 0;
}

static int build(nz *z, const struct event_map **mapped, lb_error *err)
{
    const char *name = NULL;
    if (map_envelope(z, &name, err) < 0)
        return -1;
    const struct event_map *m = find_event(name);
    *mapped = m;
    if (put_str(z, "type", m ? m->type : "unknown", err) < 0 || put_bool(z, "ignored", m == NULL, err) < 0)
        return -1;
    /* Unknown events (ORDER_FULFILLMENT, misspellings): their data has no
     * known shape, so nothing in it is read or can fail (spec 8.10). */
    if (m != NULL && map_data(z, m, err) < 0)
        return -1;
    bool test = m != NULL && is_test_product(lb_edoc_str(z->doc, "product.id"), lb_edoc_str(z->doc, "product.name"));
    return put_bool(z, "test", test, err);
}

int lb_hotmart_normalize_flat_into(const lb_jnode *root, lb_edoc *doc, lb_event *ev, lb_error *err)
{
    const struct event_map *m = NULL;
    memset(ev, 0, sizeof *ev);
    if (!root || root->type != json_type_object)
        return lb_fail(err, "", "the body must be a JSON object");
    nz z = {.root = root, .doc = doc, .src.key.len = SIZE_MAX};
    if (build(&z, &m, err) < 0)
        return -1;
    lb_event_bind_edoc(ev, doc, "hotmart", m ? m->type : "unknown");
    return 0;
}

int lb_hotmart_normalize_flat(const lb_jnode *root, lb_event *ev, lb_error *err)
{
    lb_edoc *doc = lb_edoc_new();
    if (doc == NULL) {
        memset(ev, 0, sizeof *ev);
        return lb_fail(err, "", "out of memory");
    }
    int rc = lb_hotmart_normalize_flat_into(root, doc, ev, err);
    if (rc < 0)
        lb_edoc_free(doc);
    return rc;
}

/* From JSON text, nested to any depth (json-c's own documents may be). */
static int normalize_text(const char *text, size_t len, lb_event *ev, lb_error *err)
{
    char why[160];
    memset(ev, 0, sizeof *ev);
    lb_jflat *f = lb_jflat_new();
    if (!f)
        return lb_fail(err, "", "out of memory");
    const lb_jnode *root = lb_jflat_parse(f, text, len, SIZE_MAX, why, sizeof why);
    int rc = root ? lb_hotmart_normalize_flat(root, ev, err) : lb_fail(err, "", "not valid JSON: %s", why);
    lb_jflat_free(f);
    return rc;
}

int lb_hotmart_normalize(json_object *root, lb_event *ev, lb_error *err)
{
    size_t len;
    memset(ev, 0, sizeof *ev);
    if (!json_object_is_type(root, json_type_object))
        return lb_fail(err, "", "the body must be a JSON object");
    const char *text = json_object_to_json_string_length(root, JSON_C_TO_STRING_PLAIN, &len);
    if (!text)
        return lb_fail(err, "", "out of memory");
    if (normalize_text(text, len, ev, err) < 0)
        return -1;
    if (!lb_event_json(ev)) { /* its callers read ev->doc */
        lb_event_clear(ev);
        return lb_fail(err, "", "out of memory");
    }
    return 0;
}

bool lb_hotmart_body_sent_hottok(const lb_jnode *root)
{
    const lb_jnode *n = lb_jnode_member(root, "hottok", 6);
    return n != NULL && n->type != json_type_null;
}

const char *lb_hotmart_body_hottok(const lb_jnode *root, size_t *len)
{
    const lb_jnode *n = lb_jnode_member(root, "hottok", 6);
    if (n == NULL || n->type != json_type_string)
        return NULL;
    /* All of it, a NUL (\u0000) included: compared with this length, such a
     * token is a wrong one, not its prefix. */
    *len = n->str_len;
    return n->str;
}
