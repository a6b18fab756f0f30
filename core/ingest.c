/* ingest.c: from an HTTP request to a durable event.
 *
 * Requests handled in one loop turn are parked in `batch`; a commit event,
 * activated by the first of them, runs after the turn's other callbacks and
 * writes the whole batch in one transaction (group commit). The fsync of one
 * commit is paid by every event of the batch, and while it runs new requests
 * queue up in the kernel, so batches grow with load by themselves. */
#include "ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "canonical.h"
#include "hotmart.h"
#include "club_state.h"
#include "dispatcher.h"
#include "json_get.h"
#include "log.h"
#include "seg_engine.h"
#include "store_writer.h"

#define LB_ACCOUNT_ID_MAX 64
#define LB_SPARE_DOCS 256 /* more than the requests a batch holds at 64 connections */

typedef struct parked {
    lb_http_request *req;
    lb_event event;
    char account[LB_ACCOUNT_ID_MAX + 1]; /* a copy: a reload may free the config meanwhile */
    const char *content_type;
    const char *normalized;              /* the document as text, made on the loop thread */
    size_t normalized_len;
    lb_store_put_result result;
    lb_job_list jobs;                    /* what the segmentations decided; stored with the event */
    lb_club_activity club;               /* Club activity the event changed (owned copies); account NULL if none */
    lb_club_change club_change;          /* what the event did to the Club state, taken back if not stored */
} parked;

/* Changes to the Club state that a failed transaction's events made and
 * that could not be taken back yet, because a later event built on them. */
typedef struct club_waiting {
    lb_club_change *v;
    size_t n, cap;
} club_waiting;

/* The requests of one loop turn, on their way through the writer thread. */
typedef struct batch {
    lb_write_task task;
    lb_ingest *ing;
    parked *items;
    size_t n, cap;
} batch;

struct lb_ingest {
    lb_store_writer *writer;
    lb_metrics *metrics;
    const lb_config *cfg;
    struct event *commit_ev;
    json_tokener *tok; /* reused: a new one per body costs a 2 KiB allocation */
    lb_jflat *flat;    /* reused: Hotmart deliveries are read without a json-c tree */
    batch *open;  /* collecting this turn's requests */
    batch *spare; /* a finished batch kept for the next turn: its item array
                   * is tens of KiB, and allocating that per commit made glibc
                   * consolidate its small-chunk bins each time */
    lb_edoc *spare_docs[LB_SPARE_DOCS]; /* emptied event documents, for the next requests: a
                                         * few KiB each, and with the heap busy (jobs held
                                         * for dispatch) allocating one per request cost
                                         * 4 % of the loop */
    size_t n_spare_docs;
    lb_seg_engine *engine;   /* may be NULL: events are stored, nothing is queued */
    lb_dispatcher *dispatcher;
    lb_club_state *club;     /* logins and progress, for the time-based triggers */
    club_waiting waiting;    /* changes of failed events that later ones built on */
    struct event *scan_ev;   /* the periodic inactivity scan */
    /* 401s are logged loudly but at most once a second, so a flood of bad
     * tokens cannot flood the log */
    time_t unauth_logged_at;
    unsigned long unauth_unlogged;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the group commit -------------------------------------------------- */

/* Writer thread: the jobs of a newly stored event, keyed by its id. A
 * duplicate event queues nothing: its jobs were queued with its first copy. */
static int put_jobs(lb_store *store, parked *p, int64_t now, lb_error *err)
{
    for (size_t j = 0; j < p->jobs.n; j++) {
        lb_outbox_job *job = p->jobs.v[j];
        job->id = 0;
        if (p->result.duplicate)
            continue;
        char key[96];
        snprintf(key, sizeof key, "%lld:%lld:%d", (long long)p->result.event_id, (long long)job->segmentation_id,
                 job->action_index);
        char *copy = strdup(key);
        if (!copy)
            return lb_fail(err, "", "out of memory");
        free(job->idempotency_key);
        job->idempotency_key = copy;
        job->event_id = p->result.event_id;
        job->created_at_ms = job->next_attempt_at_ms = now;
        bool inserted;
        if (lb_store_put_job(store, job, &inserted, err))
            return -1;
    }
    return 0;
}

/* Writer thread: store every event of the batch (inside the transaction). */
static int batch_write(lb_store *store, void *arg, lb_error *err)
{
    batch *b = arg;
    int64_t received = now_ms();
    for (size_t i = 0; i < b->n; i++) {
        parked *p = &b->items[i];
        size_t raw_len = 0;
        /* an event the server made itself (the Club scan) has no request: its document is its raw form */
        const char *raw = p->req ? lb_http_request_body(p->req, &raw_len) : p->normalized;
        if (!p->req)
            raw_len = p->normalized_len;
        lb_store_event in = {
            .account = p->account,
            .event = &p->event,
            .normalized_json = p->normalized,
            .normalized_len = p->normalized_len,
            .raw_body = raw,
            .raw_len = raw_len,
            .raw_content_type = p->content_type,
            .received_at_ms = received,
        };
        if (lb_store_put_event(store, &in, &p->result, err) || put_jobs(store, p, received, err))
            return -1;
        /* a duplicate says nothing new, even if its content differs */
        if (p->club.account && !p->result.duplicate && lb_store_put_club_activity(store, &p->club, err))
            return -1;
    }
    return 0;
}

static void reply_stored(lb_ingest *ing, parked *p)
{
    const lb_store_put_result *r = &p->result;
    const char *outcome = r->duplicate ? "duplicate" : p->event.ignored ? "ignored" : "stored";
    lb_counter_inc(&ing->metrics->events, p->event.type, outcome);
    if (!p->req)
        return;
    char body[128];
    int n = snprintf(body, sizeof body, "{\"event_id\":%lld,\"duplicate\":%s%s}", (long long)r->event_id,
                     r->duplicate ? "true" : "false", p->event.ignored ? ",\"ignored\":true" : "");
    lb_http_reply(p->req, 200, "application/json", body, (size_t)n, NULL);
}

/* Loop thread, after the commit: stored jobs go to the dispatcher (which
 * takes them over); the rest are freed with the batch. */
static void dispatch_jobs(lb_ingest *ing, parked *p)
{
    for (size_t j = 0; j < p->jobs.n; j++) {
        if (p->jobs.v[j]->id > 0 && ing->dispatcher) {
            lb_dispatcher_enqueue(ing->dispatcher, p->jobs.v[j]);
            p->jobs.v[j] = NULL;
        }
    }
}

static lb_edoc *doc_take(lb_ingest *ing)
{
    return ing->n_spare_docs ? ing->spare_docs[--ing->n_spare_docs] : lb_edoc_new();
}

static void doc_give(lb_ingest *ing, lb_edoc *doc)
{
    if (doc && ing->n_spare_docs < LB_SPARE_DOCS) {
        lb_edoc_reset(doc);
        ing->spare_docs[ing->n_spare_docs++] = doc;
    } else {
        lb_edoc_free(doc);
    }
}

/* The parked event's own copy of the Club activity it changed. */
static void club_copy_free(lb_club_activity *c)
{
    free((char *)c->account);
    free((char *)c->product_id);
    free((char *)c->lead_email);
    c->account = c->product_id = c->lead_email = NULL;
}

/* Empties the batch; keeps it as the spare if there is none yet. */
static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        lb_job_list *l = &b->items[i].jobs;
        size_t kept = 0;
        for (size_t j = 0; j < l->n; j++) /* drop the slots the dispatcher took */
            if (l->v[j])
                l->v[kept++] = l->v[j];
        l->n = kept;
        lb_job_list_clear(l);
        lb_edoc *doc;
        lb_event_clear_keep_edoc(&b->items[i].event, &doc);
        doc_give(b->ing, doc);
        club_copy_free(&b->items[i].club);
    }
    if (!b->ing->spare) {
        b->n = 0;
        b->ing->spare = b;
        return;
    }
    free(b->items);
    free(b);
}

/* Takes back whatever waits and can be, until nothing more can. */
static void club_retry_waiting(club_waiting *w)
{
    for (bool again = true; again;) {
        again = false;
        for (size_t i = w->n; i-- > 0;)
            if (lb_club_change_undo(&w->v[i])) {
                w->v[i] = w->v[--w->n];
                again = true;
            }
    }
}

/* The batch was not stored: take back what its events did to the Club
 * state, latest first, so that their retries find it as it was. A change a
 * later event built on waits for that one to be taken back too (the batches
 * of one transaction come here one at a time). Once a transaction commits,
 * what it built on stays: the waiting changes are dropped (club_settled). */
static void club_take_back(lb_ingest *ing, batch *b)
{
    club_waiting *w = &ing->waiting;
    for (size_t i = b->n; i-- > 0;) {
        const lb_club_change *c = &b->items[i].club_change;
        if (!c->entry)
            continue;
        if (lb_club_change_undo(c)) {
            club_retry_waiting(w);
            continue;
        }
        if (w->n == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 16;
            lb_club_change *grown = realloc(w->v, cap * sizeof *grown);
            if (!grown)
                continue; /* kept as made: what happened before take-backs existed */
            w->v = grown;
            w->cap = cap;
        }
        w->v[w->n++] = *c;
    }
}

/* The batch was stored. Its duplicates were not: what they did to the Club
 * state is taken back as a failed event's is, unless a stored event built on
 * it. The changes a failed transaction left waiting stay as they are. */
static void club_settled(lb_ingest *ing, batch *b)
{
    ing->waiting.n = 0;
    for (size_t i = b->n; i-- > 0;)
        if (b->items[i].result.duplicate && b->items[i].club_change.entry)
            lb_club_change_undo(&b->items[i].club_change);
}

/* Loop thread: the transaction is over; now, and only now, answer. */
static void batch_done(void *arg, int rc, const lb_error *err, double commit_seconds)
{
    batch *b = arg;
    lb_ingest *ing = b->ing;
    /* once per transaction: batches queued while the writer was busy share
     * one commit, and counted one by one they read as small, slow commits
     * (and one failed transaction as several) */
    if (b->task.tx_first && rc == 0) {
        lb_histogram_observe(&ing->metrics->commit_seconds, commit_seconds);
        lb_histogram_observe(&ing->metrics->batch_size, (double)b->task.tx_events);
    } else if (b->task.tx_first) {
        ing->metrics->store_errors++;
    }
    if (rc != 0) {
        char n[24];
        snprintf(n, sizeof n, "%zu", b->n);
        lb_log(LB_LOG_ERROR, "store write failed; batch answered 503", "events", n, "error", err->message, NULL);
    }
    if (rc == 0)
        club_settled(ing, b);
    else
        club_take_back(ing, b);
    for (size_t i = 0; i < b->n; i++) {
        if (rc == 0) {
            reply_stored(ing, &b->items[i]);
            dispatch_jobs(ing, &b->items[i]);
        } else if (b->items[i].req) /* the Club scan's events have no request */
            lb_http_reply_error(b->items[i].req, 503, "store_unavailable",
                                "the event store cannot write now; retry", NULL, "Retry-After: 1\r\n");
    }
    batch_free(b);
}

static void submit_open_batch(lb_ingest *ing)
{
    batch *b = ing->open;
    if (!b)
        return;
    ing->open = NULL;
    for (size_t i = 0; i < b->n; i++) /* the text is cached in the document: make it here, not on the writer */
        b->items[i].normalized = lb_event_text(&b->items[i].event, &b->items[i].normalized_len);
    b->task.run = batch_write;
    b->task.done = batch_done;
    b->task.arg = b;
    b->task.events = b->n;
    lb_store_writer_submit(ing->writer, &b->task);
}

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    submit_open_batch(arg);
}

static parked *batch_slot(lb_ingest *ing)
{
    batch *b = ing->open;
    if (!b && ing->spare) {
        b = ing->spare;
        ing->spare = NULL;
        ing->open = b;
    } else if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            return NULL;
        b->ing = ing;
        ing->open = b;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        parked *grown = realloc(b->items, cap * sizeof *grown);
        if (!grown)
            return NULL;
        b->items = grown;
        b->cap = cap;
    }
    return &b->items[b->n];
}

/* made: for an event the Club scan made, what the scan marked (NULL for a
 * request's event) */
static int park(lb_ingest *ing, lb_http_request *req, lb_event *ev, const lb_account *acct, const char *ctype,
                const lb_club_change *made)
{
    parked *p = batch_slot(ing);
    if (!p)
        return -1;
    if (ev->test && ing->cfg->ignore_test_events && lb_event_set_ignored(ev) < 0)
        return -1;
    if (lb_event_set_account(ev, acct->id) < 0)
        return -1;
    memset(p, 0, sizeof *p);
    /* The json-c form of the document is made only for what reads it: Club
     * state (club.* events) and segmentations on the product whose trigger
     * takes this type of event. */
    bool club = ing->club && !ev->ignored && ev->type && strncmp(ev->type, "club.", 5) == 0;
    bool segs = !ev->ignored && lb_seg_engine_covers(ing->engine, acct->id, ev->product_id, ev->type);
    if ((club && !lb_event_json_for_change(ev)) || (segs && !lb_event_json(ev)))
        return -1;
    lb_club_activity changed;
    lb_club_change change = {0};
    if (club && lb_club_state_observe(ing->club, ev->doc, &changed, &change)) {
        p->club = changed;
        p->club.account = strdup(changed.account);
        p->club.product_id = strdup(changed.product_id);
        p->club.lead_email = strdup(changed.lead_email);
        if (!p->club.account || !p->club.product_id || !p->club.lead_email) {
            club_copy_free(&p->club);
            lb_club_change_undo(&change); /* the event is not parked: nor is its change */
            return -1;
        }
    }
    if (segs) {
        lb_seg_sink sink = {.job = lb_job_list_add, .ud = &p->jobs};
        if (lb_seg_engine_evaluate(ing->engine, acct->id, ev->doc, 0, &sink) < 0) {
            lb_job_list_clear(&p->jobs);
            club_copy_free(&p->club);
            lb_club_change_undo(&change);
            return -1;
        }
    }
    p->club_change = made ? *made : change;
    p->req = req;
    p->event = *ev;
    snprintf(p->account, sizeof p->account, "%s", acct->id);
    p->content_type = ctype;
    if (++ing->open->n == 1)
        event_active(ing->commit_ev, EV_WRITE, 0);
    return 0;
}

/* ---- request checks ------------------------------------------------------ */

enum media { MEDIA_OTHER, MEDIA_JSON, MEDIA_FORM };

static enum media media_type(lb_http_request *req)
{
    size_t len;
    const char *v = lb_http_request_header(req, "Content-Type", &len);
    if (!v)
        return MEDIA_OTHER;
    const char *semi = memchr(v, ';', len);
    size_t n = semi ? (size_t)(semi - v) : len;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(v, "application/json", n) == 0)
        return MEDIA_JSON;
    if (n == 33 && strncasecmp(v, "application/x-www-form-urlencoded", n) == 0)
        return MEDIA_FORM;
    return MEDIA_OTHER;
}

static void reply_bad_event(lb_http_request *req, const lb_error *err)
{
    lb_http_reply_error(req, 400, "invalid_event", err->message, err->field, NULL);
}

static void reply_unauthorized(lb_ingest *ing, lb_http_request *req, const char *route, const char *why)
{
    /* loud on purpose: Hotmart disables a webhook whose URL keeps failing */
    time_t now = time(NULL);
    if (now != ing->unauth_logged_at) {
        char more[24];
        snprintf(more, sizeof more, "%lu", ing->unauth_unlogged);
        lb_log(LB_LOG_WARN, "request rejected: not authenticated", "route", route, "reason", why,
               "also_rejected_since_last_line", more, NULL);
        ing->unauth_logged_at = now;
        ing->unauth_unlogged = 0;
    } else {
        ing->unauth_unlogged++;
    }
    lb_http_reply_error(req, 401, "unauthorized", why, NULL, NULL);
}

static void reply_malformed(lb_http_request *req, const char *msg)
{
    lb_http_reply_error(req, 400, "malformed_json", msg, NULL, NULL);
}

/* Reads the whole body as one JSON object into the reused flat document, or
 * answers 400 and returns NULL. Nesting is capped as for json-c (64). */
static const lb_jnode *parse_flat_object(lb_ingest *ing, lb_http_request *req)
{
    size_t len;
    const char *body = lb_http_request_body(req, &len);
    char why[120], msg[160];
    const lb_jnode *root = lb_jflat_parse(ing->flat, body, len, 64, why, sizeof why);
    if (root && root->type == json_type_object)
        return root;
    if (root)
        snprintf(msg, sizeof msg, "body must be a JSON object");
    else
        snprintf(msg, sizeof msg, "body is not valid JSON: %s", why);
    reply_malformed(req, msg);
    return NULL;
}

/* Whether the body holds a NUL, raw or as the escape \u0000 (one preceded
 * by an odd number of backslashes: "\\u0000" is a backslash and "u0000").
 * json-c ends a key at it, so "id\u0000" would silently replace "id":
 * the event stored would not be the one the body shows. */
static bool has_nul(const char *body, size_t len)
{
    if (memchr(body, '\0', len))
        return true;
    for (const char *p = body; (p = memmem(p, len - (size_t)(p - body), "u0000", 5)) != NULL; p++) {
        size_t slashes = 0;
        while (p - slashes > body && p[-1 - (ptrdiff_t)slashes] == '\\')
            slashes++;
        if (slashes % 2 == 1)
            return true;
    }
    return false;
}

/* Parses the whole body as one JSON object, or answers 400 and returns NULL. */
static json_object *parse_json_object(lb_ingest *ing, lb_http_request *req)
{
    size_t len;
    const char *body = lb_http_request_body(req, &len);
    if (has_nul(body, len)) {
        reply_malformed(req, "body holds a NUL character (\\u0000), which no field may contain");
        return NULL;
    }
    json_tokener *tok = ing->tok;
    json_tokener_reset(tok);
    json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    bool complete = jerr == json_tokener_success && json_tokener_get_parse_end(tok) == len;
    if (root && complete && json_object_is_type(root, json_type_object))
        return root;
    char msg[160];
    if (root && complete)
        snprintf(msg, sizeof msg, "body must be a JSON object");
    else if (root)
        snprintf(msg, sizeof msg, "body is not valid JSON: trailing data after the object");
    else
        snprintf(msg, sizeof msg, "body is not valid JSON: %s", json_tokener_error_desc(jerr));
    json_object_put(root);
    reply_malformed(req, msg);
    return NULL;
}

/* Parks a normalized event, or answers 503 when even that fails (memory). */
static void park_or_refuse(lb_ingest *ing, lb_http_request *req, lb_event *ev, const lb_account *acct,
                           const char *ctype)
{
    if (park(ing, req, ev, acct, ctype, NULL)) {
        lb_event_clear(ev);
        lb_http_reply_error(req, 503, "out_of_memory", "server is out of memory", NULL, "Retry-After: 1\r\n");
    }
}

/* After a JSON body was normalized (rc 0) or refused (rc -1, err names the
 * field): park the event, or answer 400. */
static void park_if_valid(lb_ingest *ing, lb_http_request *req, int rc, lb_event *ev, const lb_error *err,
                          const lb_account *acct)
{
    if (rc)
        reply_bad_event(req, err);
    else
        park_or_refuse(ing, req, ev, acct, "application/json");
}

/* ---- POST /webhooks/hotmart ------------------------------------------------ */

static void hotmart_json(lb_ingest *ing, lb_http_request *req)
{
    size_t tok_len;
    const char *tok = lb_http_request_header(req, "X-HOTMART-HOTTOK", &tok_len);
    if (tok && tok_len == 0)
        tok = NULL; /* an empty header (a proxy's blank template, say) says nothing: the body's hottok decides */
    const lb_account *acct = NULL;
    if (tok && !(acct = lb_account_by_hottok(ing->cfg, tok, tok_len))) {
        reply_unauthorized(ing, req, "/webhooks/hotmart", "wrong hottok");
        return;
    }
    const lb_jnode *root = parse_flat_object(ing, req);
    if (!root)
        return;
    if (!acct) {
        size_t body_tok_len = 0;
        const char *body_tok = lb_hotmart_body_hottok(root, &body_tok_len);
        acct = body_tok ? lb_account_by_hottok(ing->cfg, body_tok, body_tok_len) : NULL;
        if (!acct) {
            bool sent = body_tok || lb_hotmart_body_sent_hottok(root);
            reply_unauthorized(ing, req, "/webhooks/hotmart", sent ? "wrong hottok" : "missing hottok");
            return;
        }
    }
    lb_event ev = {0};
    lb_error err = {0};
    lb_edoc *doc = doc_take(ing);
    if (!doc) {
        lb_http_reply_error(req, 503, "out_of_memory", "server is out of memory", NULL, "Retry-After: 1\r\n");
        return;
    }
    int rc = lb_hotmart_normalize_flat_into(root, doc, &ev, &err);
    if (rc)
        doc_give(ing, doc);
    park_if_valid(ing, req, rc, &ev, &err, acct);
}

static void hotmart_form(lb_ingest *ing, lb_http_request *req)
{
    size_t len;
    const char *body = lb_http_request_body(req, &len);
    lb_event ev = {0};
    lb_error err = {0};
    char *tok = NULL;
    size_t tok_len = 0;
    int rc = lb_hotmart_form_normalize(body, len, &ev, &tok, &tok_len, &err);
    const lb_account *acct = tok ? lb_account_by_hottok(ing->cfg, tok, tok_len) : NULL;
    bool had_token = tok != NULL;
    if (tok) {
        explicit_bzero(tok, tok_len);
        free(tok);
    }
    if (!acct) {
        lb_event_clear(&ev);
        reply_unauthorized(ing, req, "/webhooks/hotmart", had_token ? "wrong hottok" : "missing hottok");
    } else if (rc) {
        reply_bad_event(req, &err);
    } else {
        park_or_refuse(ing, req, &ev, acct, "application/x-www-form-urlencoded");
    }
}

void lb_ingest_hotmart(lb_http_request *req, void *ctx)
{
    switch (media_type(req)) {
    case MEDIA_JSON:
        hotmart_json(ctx, req);
        break;
    case MEDIA_FORM:
        hotmart_form(ctx, req);
        break;
    default:
        lb_http_reply_error(req, 415, "unsupported_media_type",
                            "send application/json (webhook 2.0.0) or application/x-www-form-urlencoded (1.0)",
                            NULL, NULL);
    }
}

/* ---- POST /v1/events --------------------------------------------------------- */

static const lb_account *bearer_account(lb_ingest *ing, lb_http_request *req)
{
    size_t len;
    const char *v = lb_http_request_header(req, "Authorization", &len);
    if (!v || len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return NULL;
    return lb_account_by_api_token(ing->cfg, v + 7, len - 7);
}

void lb_ingest_events(lb_http_request *req, void *ctx)
{
    lb_ingest *ing = ctx;
    const lb_account *acct = bearer_account(ing, req);
    if (!acct) {
        reply_unauthorized(ing, req, "/v1/events", "missing or wrong bearer token");
        return;
    }
    if (media_type(req) != MEDIA_JSON) {
        lb_http_reply_error(req, 415, "unsupported_media_type", "send application/json", NULL, NULL);
        return;
    }
    json_object *root = parse_json_object(ing, req);
    if (!root)
        return;
    lb_event ev = {0};
    lb_error err = {0};
    int rc = lb_canonical_normalize(root, &ev, &err);
    json_object_put(root);
    park_if_valid(ing, req, rc, &ev, &err, acct);
}

/* ---- lifecycle ------------------------------------------------------------------ */

lb_ingest *lb_ingest_new(struct event_base *base, lb_store_writer *writer, lb_metrics *metrics,
                         const lb_config *cfg)
{
    lb_ingest *ing = calloc(1, sizeof *ing);
    if (!ing)
        return NULL;
    ing->writer = writer;
    ing->metrics = metrics;
    ing->cfg = cfg;
    ing->commit_ev = event_new(base, -1, 0, on_commit, ing);
    ing->tok = json_tokener_new_ex(64);
    ing->flat = lb_jflat_new();
    if (!ing->commit_ev || !ing->tok || !ing->flat) {
        if (ing->commit_ev)
            event_free(ing->commit_ev);
        if (ing->tok)
            json_tokener_free(ing->tok);
        lb_jflat_free(ing->flat);
        free(ing);
        return NULL;
    }
    return ing;
}

void lb_ingest_flush(lb_ingest *ing)
{
    event_del(ing->commit_ev);
    submit_open_batch(ing);
    lb_store_writer_wait_idle(ing->writer);
}

void lb_ingest_set_config(lb_ingest *ing, const lb_config *cfg) { ing->cfg = cfg; }

void lb_ingest_set_engine(lb_ingest *ing, lb_seg_engine *engine, lb_dispatcher *dispatcher)
{
    ing->engine = engine;
    ing->dispatcher = dispatcher;
}

/* ---- events the server makes: the Club inactivity scan ---------------------- */

static const lb_account *account_by_id(const lb_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_accounts; i++)
        if (strcmp(cfg->accounts[i].id, id) == 0)
            return &cfg->accounts[i];
    return NULL;
}

static void make_inactive_event(void *ud, const lb_club_activity *a, int days, const lb_club_change *change)
{
    lb_ingest *ing = ud;
    const lb_account *acct = account_by_id(ing->cfg, a->account);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_object *doc = acct ? lb_club_inactive_event(a, days, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000)
                            : NULL;
    lb_event ev = {0};
    if (doc) {
        lb_event_bind(&ev, doc, "scheduler", "club.inactive");
        if (park(ing, NULL, &ev, acct, "application/json", change) == 0)
            return;
        lb_event_clear(&ev);
    }
    lb_club_change_undo(change); /* not made now (the account is gone, or no memory): the next scan may */
}

static void on_scan(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lb_ingest *ing = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lb_club_state_scan(ing->club, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, make_inactive_event, ing);
}

static void restore_one(const lb_club_activity *a, void *ud) { lb_club_state_restore(ud, a); }

int lb_ingest_start_club(lb_ingest *ing, struct event_base *base, lb_store *store, unsigned interval_s,
                         lb_error *err)
{
    ing->club = lb_club_state_new();
    if (!ing->club)
        return lb_fail(err, "", "out of memory");
    if (lb_store_load_club_activity(store, restore_one, ing->club, err))
        return -1;
    ing->scan_ev = event_new(base, -1, EV_PERSIST, on_scan, ing);
    struct timeval every = {interval_s ? interval_s : 60, 0};
    if (!ing->scan_ev || event_add(ing->scan_ev, &every))
        return lb_fail(err, "", "cannot start the Club scan");
    return 0;
}

void lb_ingest_free(lb_ingest *ing)
{
    if (!ing)
        return;
    if (ing->scan_ev)
        event_free(ing->scan_ev);
    lb_ingest_flush(ing);
    if (ing->spare) {
        free(ing->spare->items);
        free(ing->spare);
    }
    event_free(ing->commit_ev);
    json_tokener_free(ing->tok);
    lb_jflat_free(ing->flat);
    lb_club_state_free(ing->club);
    free(ing->waiting.v);
    while (ing->n_spare_docs)
        lb_edoc_free(ing->spare_docs[--ing->n_spare_docs]);
    free(ing);
}
