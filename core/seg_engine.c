/* seg_engine.c: the (account, product) index of segmentations and the
 * evaluation that turns a normalized event into jobs (seg_engine.h).
 *
 * This runs on the event loop for every webhook, so the index is one sorted
 * array searched with bsearch, entries of one product sit side by side, and
 * nothing is allocated until a segmentation matches. */
#include "seg_engine.h"

#include "json_get.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct seg_entry {
    lb_segmentation *seg;
    lb_rule_prepared *h; /* NULL: disabled or needs review; never evaluated */
} seg_entry;

typedef struct bucket {
    const char *account, *product; /* point into the first entry's segmentation */
    seg_entry *v;
    size_t n;
} bucket;

struct lb_seg_engine {
    lb_rules *rules;
    seg_entry *entries; /* sorted by (account, product, input order) */
    size_t n_entries;
    bucket *buckets;
    size_t n_buckets;
    size_t n_active;
};

/* ---- build -------------------------------------------------------------------- */

typedef struct ranked {
    lb_segmentation *seg;
    size_t index;
} ranked;

static int key_cmp(const char *a1, const char *p1, const char *a2, const char *p2)
{
    int c = strcmp(a1, a2);
    return c ? c : strcmp(p1, p2);
}

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    int c = key_cmp(x->seg->account, x->seg->product, y->seg->account, y->seg->product);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* A segmentation that passed its checks but does not prepare (out of memory,
 * or the rules host disagreeing with itself) must not run silently. */
static void flag_unprepared(lb_segmentation *seg, const lb_error *perr)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "code", json_object_new_string("prepare_failed"));
    json_object_object_add(r, "message", json_object_new_string(perr->message));
    json_object_object_add(r, "field", json_object_new_string(perr->field));
    json_object_array_add(seg->reasons, r);
    seg->status = LB_SEG_NEEDS_REVIEW;
    lb_log(LB_LOG_WARN, "segmentation does not prepare", "account", seg->account, "segmentation", seg->name,
           "field", perr->field, "error", perr->message, NULL);
}

static void prepare_entries(lb_seg_engine *e)
{
    for (size_t i = 0; i < e->n_entries; i++) {
        lb_segmentation *seg = e->entries[i].seg;
        if (!seg->enabled || seg->status != LB_SEG_OK)
            continue;
        lb_error perr = {{0}, {0}};
        e->entries[i].h = lb_rules_prepare(e->rules, &seg->spec, &perr);
        if (e->entries[i].h)
            e->n_active++;
        else
            flag_unprepared(seg, &perr);
    }
}

static int build_buckets(lb_seg_engine *e)
{
    e->buckets = calloc(e->n_entries ? e->n_entries : 1, sizeof *e->buckets);
    if (!e->buckets)
        return -1;
    for (size_t i = 0; i < e->n_entries; i++) {
        const lb_segmentation *s = e->entries[i].seg;
        bucket *last = e->n_buckets ? &e->buckets[e->n_buckets - 1] : NULL;
        if (last && key_cmp(last->account, last->product, s->account, s->product) == 0) {
            last->n++;
            continue;
        }
        e->buckets[e->n_buckets++] = (bucket){s->account, s->product, &e->entries[i], 1};
    }
    return 0;
}

static int sort_entries(lb_seg_engine *e, lb_segmentation *const *segs, size_t n)
{
    ranked *r = calloc(n ? n : 1, sizeof *r);
    e->entries = calloc(n ? n : 1, sizeof *e->entries);
    if (!r || !e->entries) {
        free(r);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        r[i] = (ranked){segs[i], i};
    qsort(r, n, sizeof *r, ranked_cmp);
    for (size_t i = 0; i < n; i++)
        e->entries[i].seg = r[i].seg;
    e->n_entries = n;
    free(r);
    return 0;
}

lb_seg_engine *lb_seg_engine_new(lb_segmentation *const *segs, size_t n, const lb_seg_ctx *ctx, lb_error *err)
{
    lb_error_clear(err);
    if (!ctx || !ctx->rules) {
        lb_fail(err, "", "a rule set is required");
        return NULL;
    }
    lb_seg_engine *e = calloc(1, sizeof *e);
    if (!e || lb_segmentations_recheck(segs, n, ctx) < 0 || sort_entries(e, segs, n) != 0 ||
        build_buckets(e) != 0) {
        lb_fail(err, "", "out of memory");
        lb_seg_engine_free(e);
        return NULL;
    }
    e->rules = ctx->rules;
    prepare_entries(e);
    return e;
}

void lb_seg_engine_free(lb_seg_engine *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_entries; i++)
        lb_rules_unprepare(e->rules, e->entries[i].h);
    free(e->entries);
    free(e->buckets);
    free(e);
}

size_t lb_seg_engine_active(const lb_seg_engine *e)
{
    return e ? e->n_active : 0;
}

/* ---- lookup --------------------------------------------------------------------- */

typedef struct bucket_key {
    const char *account, *product;
} bucket_key;

static int bucket_cmp(const void *k, const void *b)
{
    const bucket_key *x = k;
    const bucket *y = b;
    return key_cmp(x->account, x->product, y->account, y->product);
}

static const bucket *find_bucket(const lb_seg_engine *e, const char *account, const char *product)
{
    bucket_key k = {account, product};
    return bsearch(&k, e->buckets, e->n_buckets, sizeof *e->buckets, bucket_cmp);
}

static bool event_ignored(json_object *event)
{
    json_object *v = NULL;
    return json_object_object_get_ex(event, "ignored", &v) && json_object_get_boolean(v);
}

/* The lead e-mail and product of an event that can act, or a reason why not. */
static const char *event_gate(json_object *event, const char **email, const char **product)
{
    *email = lb_jstr(event, "lead.email");
    *product = lb_jstr(event, "product.id");
    if (event_ignored(event))
        return "the event is ignored (an unknown event or a status that is not a trigger)";
    if (!*email || !**email)
        return "the event has no lead e-mail";
    if (!*product || !**product)
        return "the event has no product id";
    return NULL;
}

/* ---- jobs ------------------------------------------------------------------------ */

static void copy_string(json_object *to, json_object *from, const char *key)
{
    json_object *v = NULL;
    if (from && json_object_object_get_ex(from, key, &v) && json_object_is_type(v, json_type_string))
        json_object_object_add(to, key, json_object_new_string(json_object_get_string(v)));
}

/* {"name","first_name","last_name","phone"[,"billet_url"]}, the ones present. */
static json_object *lead_object(json_object *event, bool with_billet)
{
    static const char *const fields[] = {"name", "first_name", "last_name", "phone"};
    json_object *o = json_object_new_object(), *lead = NULL, *purchase = NULL;
    if (!o)
        return NULL;
    json_object_object_get_ex(event, "lead", &lead);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        copy_string(o, lead, fields[i]);
    if (with_billet && json_object_object_get_ex(event, "purchase", &purchase))
        copy_string(o, purchase, "billet_url");
    return o;
}

static char *lead_text(json_object *event, bool with_billet)
{
    json_object *o = lead_object(event, with_billet);
    char *s = o ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) : NULL;
    json_object_put(o);
    return s;
}

typedef struct job_src {
    const char *account, *email;
    int64_t event_id;
    json_object *event;
    char *lead[2]; /* lead_json without / with billet_url, made on first need */
} job_src;

static lb_outbox_job *make_job(job_src *src, const lb_segmentation *seg, size_t i)
{
    int b = seg->send_billet_link ? 1 : 0;
    if (!src->lead[b] && !(src->lead[b] = lead_text(src->event, b)))
        return NULL;
    char idem[80];
    snprintf(idem, sizeof idem, "%" PRId64 ":%" PRId64 ":%zu", src->event_id, seg->id, i);
    lb_outbox_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->account = strdup(src->account);
    j->integration = strdup(seg->integration);
    j->lead_email = strdup(src->email);
    j->action = strdup(seg->actions[i].action);
    j->params_json = strdup(seg->actions[i].params_json);
    j->lead_json = strdup(src->lead[b]);
    j->idempotency_key = strdup(idem);
    j->event_id = src->event_id;
    j->segmentation_id = seg->id;
    j->action_index = (int)i;
    j->state = LB_JOB_READY;
    if (!j->account || !j->integration || !j->lead_email || !j->action || !j->params_json || !j->lead_json ||
        !j->idempotency_key) {
        lb_job_free(j);
        return NULL;
    }
    return j;
}

static void report_rule_error(const lb_seg_sink *sink, const lb_segmentation *seg, const lb_error *err)
{
    /* a disabled module fails every event; the rules host logged it once */
    if (strncmp(err->message, "disabled:", 9) != 0)
        lb_log(LB_LOG_WARN, "segmentation rule failed", "account", seg->account, "segmentation", seg->name, "rule",
               err->field, "error", err->message, NULL);
    if (sink && sink->rule_error)
        sink->rule_error(sink->ud, seg, err);
}

static int emit_jobs(job_src *src, const lb_segmentation *seg, const lb_seg_sink *sink)
{
    for (size_t i = 0; i < seg->n_actions; i++) {
        lb_outbox_job *j = make_job(src, seg, i);
        if (!j) {
            lb_log(LB_LOG_ERROR, "out of memory making a job", "segmentation", seg->name, NULL);
            return -1;
        }
        if (sink->job(sink->ud, j) != 0)
            return -1;
    }
    return (int)seg->n_actions;
}

bool lb_seg_engine_covers(const lb_seg_engine *e, const char *account, const char *product, const char *type)
{
    const bucket *b = e && account && product && *product ? find_bucket(e, account, product) : NULL;
    for (size_t k = 0; b && k < b->n; k++)
        if (b->v[k].h && lb_rules_prepared_wants_type(b->v[k].h, type))
            return true;
    return false;
}

int lb_seg_engine_evaluate(lb_seg_engine *e, const char *account, json_object *event, int64_t event_id,
                           const lb_seg_sink *sink)
{
    const char *email, *product;
    if (!e || !account || !event || !sink || !sink->job || event_gate(event, &email, &product))
        return 0;
    const bucket *b = find_bucket(e, account, product);
    if (!b)
        return 0;
    job_src src = {account, email, event_id, event, {NULL, NULL}};
    const char *type = lb_jstr(event, "type"); /* once, for every segmentation */
    int made = 0;
    for (size_t k = 0; k < b->n && made >= 0; k++) {
        if (!b->v[k].h)
            continue;
        lb_error err = {{0}, {0}};
        int rc = lb_rules_match_prepared_as(e->rules, b->v[k].h, event, type, &err);
        if (rc < 0)
            report_rule_error(sink, b->v[k].seg, &err);
        if (rc != 1)
            continue;
        int n = emit_jobs(&src, b->v[k].seg, sink);
        made = n < 0 ? -1 : made + n;
    }
    free(src.lead[0]);
    free(src.lead[1]);
    return made;
}

/* ---- job list --------------------------------------------------------------------- */

int lb_job_list_add(void *list, lb_outbox_job *job)
{
    lb_job_list *l = list;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        lb_outbox_job **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            lb_job_free(job);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = job;
    return 0;
}

void lb_job_list_clear(lb_job_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        lb_job_free(l->v[i]);
    free(l->v);
    *l = (lb_job_list){NULL, 0, 0};
}

int lb_job_order_key(const lb_outbox_job *job, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s\x1f%s", job->integration, job->lead_email);
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = '\0';
        return -1;
    }
    return n;
}

/* ---- dry run ------------------------------------------------------------------------ */

static json_object *seg_ref(const lb_segmentation *seg)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "segmentation", json_object_new_string(seg->name));
    json_object_object_add(o, "segmentation_id", json_object_new_int64(seg->id));
    return o;
}

static void add_str(json_object *o, const char *k, const char *v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_string(v));
}

static json_object *params_object(const lb_seg_action *a)
{
    json_object *p = json_object_new_object();
    for (size_t i = 0; i < a->n_params; i++)
        json_object_object_add(p, a->keys[i], json_object_new_string(a->values[i]));
    return p;
}

static void dry_decisions(json_object *out, const lb_segmentation *seg, json_object *event, const char *email)
{
    json_object *arr = NULL;
    json_object_object_get_ex(out, "decisions", &arr);
    for (size_t i = 0; i < seg->n_actions; i++) {
        json_object *d = seg_ref(seg);
        add_str(d, "integration", seg->integration);
        add_str(d, "action", seg->actions[i].action);
        json_object_object_add(d, "action_index", json_object_new_int((int)i));
        json_object_object_add(d, "params", params_object(&seg->actions[i]));
        json_object *lead = lead_object(event, seg->send_billet_link);
        add_str(lead, "email", email);
        json_object_object_add(d, "lead", lead);
        json_object_array_add(arr, d);
    }
}

static void dry_skip(json_object *out, const lb_segmentation *seg, const char *code, const char *message)
{
    json_object *arr = NULL;
    json_object_object_get_ex(out, "skipped", &arr);
    json_object *s = seg_ref(seg);
    add_str(s, "reason", code);
    add_str(s, "message", message);
    if (seg->status != LB_SEG_OK) {
        json_object *r = NULL;
        json_object_deep_copy(seg->reasons, &r, NULL);
        json_object_object_add(s, "reasons", r);
    }
    json_object_array_add(arr, s);
}

static void dry_error(json_object *out, const lb_segmentation *seg, const lb_error *err)
{
    json_object *arr = NULL;
    json_object_object_get_ex(out, "errors", &arr);
    json_object *o = seg_ref(seg);
    add_str(o, "rule", strncmp(err->field, "rule:", 5) == 0 ? err->field + 5 : err->field);
    add_str(o, "message", err->message);
    json_object_array_add(arr, o);
}

static void dry_one(lb_seg_engine *e, const seg_entry *en, json_object *event, const char *email, json_object *out)
{
    const lb_segmentation *seg = en->seg;
    lb_error err = {{0}, {0}};
    int rc = 0;
    if (!seg->enabled) {
        dry_skip(out, seg, "disabled", "the segmentation is disabled");
    } else if (!en->h) {
        dry_skip(out, seg, "needs_review", "the segmentation is inconsistent and does not run");
    } else if ((rc = lb_rules_match_prepared(e->rules, en->h, event, &err)) < 0) {
        report_rule_error(NULL, seg, &err);
        dry_error(out, seg, &err);
    } else if (rc == 0) {
        dry_skip(out, seg, "no_match", "the trigger or a condition did not match the event");
    } else {
        dry_decisions(out, seg, event, email);
    }
}

static json_object *dry_envelope(json_object *event, const char *email, const char *product)
{
    json_object *out = json_object_new_object(), *ev = json_object_new_object();
    if (!out || !ev) {
        json_object_put(out);
        json_object_put(ev);
        return NULL;
    }
    add_str(ev, "id", event ? lb_jstr(event, "id") : NULL);
    add_str(ev, "type", event ? lb_jstr(event, "type") : NULL);
    add_str(ev, "product", product);
    add_str(ev, "email", email);
    json_object_object_add(out, "event", ev);
    json_object_object_add(out, "decisions", json_object_new_array());
    json_object_object_add(out, "skipped", json_object_new_array());
    json_object_object_add(out, "errors", json_object_new_array());
    return out;
}

json_object *lb_seg_engine_dry_run(lb_seg_engine *e, const char *account, json_object *event)
{
    const char *email = NULL, *product = NULL;
    const char *why = event ? event_gate(event, &email, &product) : "no event";
    json_object *out = dry_envelope(event, email, product);
    if (!out || !e || !account)
        return out;
    if (why) {
        add_str(out, "event_skipped", why);
        return out;
    }
    const bucket *b = find_bucket(e, account, product);
    if (!b) {
        add_str(out, "event_skipped", "no segmentation of this account is for the event's product");
        return out;
    }
    for (size_t k = 0; k < b->n; k++)
        dry_one(e, &b->v[k], event, email, out);
    return out;
}
