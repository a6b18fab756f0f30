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
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "canonical.h"
#include "hotmart.h"
#include "log.h"

typedef struct parked {
    lb_http_request *req;
    lb_event event;
    const char *account;      /* points into the config, which outlives the batch */
    const char *content_type; /* "json" or "form", for the raw copy */
} parked;

struct lb_ingest {
    lb_store *store;
    lb_metrics *metrics;
    const lb_config *cfg;
    struct event *commit_ev;
    parked *batch;
    size_t n_batch, cap_batch;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the group commit -------------------------------------------------- */

static void reply_stored(lb_ingest *ing, parked *p, const lb_store_put_result *r)
{
    const char *outcome = r->duplicate ? "duplicate" : p->event.ignored ? "ignored" : "stored";
    lb_counter_inc(&ing->metrics->events, p->event.type, outcome);
    char body[128];
    int n = snprintf(body, sizeof body, "{\"event_id\":%lld,\"duplicate\":%s%s}", (long long)r->event_id,
                     r->duplicate ? "true" : "false", p->event.ignored ? ",\"ignored\":true" : "");
    lb_http_reply(p->req, 200, "application/json", body, (size_t)n, NULL);
}

static int write_batch(lb_ingest *ing, lb_store_put_result *results, lb_error *err)
{
    if (lb_store_begin(ing->store, err))
        return -1;
    int64_t received = now_ms();
    for (size_t i = 0; i < ing->n_batch; i++) {
        parked *p = &ing->batch[i];
        size_t raw_len;
        const char *raw = lb_http_request_body(p->req, &raw_len);
        lb_store_event in = {
            .account = p->account,
            .event = &p->event,
            .normalized_json = json_object_to_json_string_ext(p->event.doc, JSON_C_TO_STRING_PLAIN),
            .raw_body = raw,
            .raw_len = raw_len,
            .raw_content_type = p->content_type,
            .received_at_ms = received,
        };
        if (lb_store_put_event(ing->store, &in, &results[i], err))
            goto fail;
    }
    if (lb_store_commit(ing->store, err) == 0)
        return 0;
fail:
    lb_store_rollback(ing->store);
    return -1;
}

static void commit_batch(lb_ingest *ing)
{
    if (ing->n_batch == 0)
        return;
    lb_store_put_result *results = calloc(ing->n_batch, sizeof *results);
    lb_error err = {0};
    double t0 = monotonic_s();
    int rc = results ? write_batch(ing, results, &err) : lb_fail(&err, "", "out of memory");
    lb_histogram_observe(&ing->metrics->commit_seconds, monotonic_s() - t0);
    lb_histogram_observe(&ing->metrics->batch_size, (double)ing->n_batch);
    if (rc) {
        char n[24];
        snprintf(n, sizeof n, "%zu", ing->n_batch);
        ing->metrics->store_errors++;
        lb_log(LB_LOG_ERROR, "store write failed; batch answered 503", "events", n, "error", err.message, NULL);
    }
    for (size_t i = 0; i < ing->n_batch; i++) {
        parked *p = &ing->batch[i];
        if (rc == 0)
            reply_stored(ing, p, &results[i]);
        else
            lb_http_reply_error(p->req, 503, "store_unavailable", "the event store cannot write now; retry",
                                NULL, "Retry-After: 1\r\n");
        lb_event_clear(&p->event);
    }
    ing->n_batch = 0;
    free(results);
}

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    commit_batch(arg);
}

static int park(lb_ingest *ing, lb_http_request *req, lb_event *ev, const lb_account *acct, const char *ctype)
{
    if (ing->n_batch == ing->cap_batch) {
        size_t cap = ing->cap_batch ? ing->cap_batch * 2 : 64;
        parked *grown = realloc(ing->batch, cap * sizeof *grown);
        if (!grown)
            return -1;
        ing->batch = grown;
        ing->cap_batch = cap;
    }
    if (ev->test && ing->cfg->ignore_test_events) {
        ev->ignored = true;
        json_object_object_add(ev->doc, "ignored", json_object_new_boolean(1));
    }
    lb_event_set_account(ev, acct->id);
    parked *p = &ing->batch[ing->n_batch++];
    p->req = req;
    p->event = *ev;
    p->account = acct->id;
    p->content_type = ctype;
    if (ing->n_batch == 1)
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

static void reply_unauthorized(lb_http_request *req, const char *route, const char *why)
{
    /* loud on purpose: Hotmart disables a webhook whose URL keeps failing */
    lb_log(LB_LOG_WARN, "request rejected: not authenticated", "route", route, "reason", why, NULL);
    lb_http_reply_error(req, 401, "unauthorized", why, NULL, NULL);
}

/* Parses the whole body as one JSON object, or answers 400 and returns NULL. */
static json_object *parse_json_object(lb_http_request *req)
{
    size_t len;
    const char *body = lb_http_request_body(req, &len);
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *root = tok ? json_tokener_parse_ex(tok, body, (int)len) : NULL;
    bool complete = tok && json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == len;
    char msg[160];
    snprintf(msg, sizeof msg, "body is not valid JSON: %s",
             tok ? json_tokener_error_desc(json_tokener_get_error(tok)) : "out of memory");
    json_tokener_free(tok);
    if (root && complete && json_object_is_type(root, json_type_object))
        return root;
    if (root && complete)
        snprintf(msg, sizeof msg, "body must be a JSON object");
    else if (root)
        snprintf(msg, sizeof msg, "body is not valid JSON: trailing data after the object");
    json_object_put(root);
    lb_http_reply_error(req, 400, "malformed_json", msg, NULL, NULL);
    return NULL;
}

/* ---- POST /webhooks/hotmart ------------------------------------------------ */

static void hotmart_json(lb_ingest *ing, lb_http_request *req)
{
    size_t tok_len;
    const char *tok = lb_http_request_header(req, "X-HOTMART-HOTTOK", &tok_len);
    const lb_account *acct = NULL;
    if (tok && !(acct = lb_account_by_hottok(ing->cfg, tok, tok_len))) {
        reply_unauthorized(req, "/webhooks/hotmart", "wrong hottok");
        return;
    }
    json_object *root = parse_json_object(req);
    if (!root)
        return;
    if (!acct) {
        const char *body_tok = lb_hotmart_body_hottok(root);
        acct = body_tok ? lb_account_by_hottok(ing->cfg, body_tok, strlen(body_tok)) : NULL;
        if (!acct) {
            json_object_put(root);
            reply_unauthorized(req, "/webhooks/hotmart", body_tok ? "wrong hottok" : "missing hottok");
            return;
        }
    }
    lb_event ev = {0};
    lb_error err = {0};
    int rc = lb_hotmart_normalize(root, &ev, &err);
    json_object_put(root);
    if (rc) {
        reply_bad_event(req, &err);
        return;
    }
    if (park(ing, req, &ev, acct, "application/json")) {
        lb_event_clear(&ev);
        lb_http_reply_error(req, 503, "out_of_memory", "server is out of memory", NULL, "Retry-After: 1\r\n");
    }
}

static void hotmart_form(lb_ingest *ing, lb_http_request *req)
{
    size_t len;
    const char *body = lb_http_request_body(req, &len);
    lb_event ev = {0};
    lb_error err = {0};
    char *tok = NULL;
    int rc = lb_hotmart_form_normalize(body, len, &ev, &tok, &err);
    const lb_account *acct = tok ? lb_account_by_hottok(ing->cfg, tok, strlen(tok)) : NULL;
    bool had_token = tok != NULL;
    if (tok) {
        explicit_bzero(tok, strlen(tok));
        free(tok);
    }
    if (!acct) {
        lb_event_clear(&ev);
        reply_unauthorized(req, "/webhooks/hotmart", had_token ? "wrong hottok" : "missing hottok");
    } else if (rc) {
        reply_bad_event(req, &err);
    } else if (park(ing, req, &ev, acct, "application/x-www-form-urlencoded")) {
        lb_event_clear(&ev);
        lb_http_reply_error(req, 503, "out_of_memory", "server is out of memory", NULL, "Retry-After: 1\r\n");
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
        reply_unauthorized(req, "/v1/events", "missing or wrong bearer token");
        return;
    }
    if (media_type(req) != MEDIA_JSON) {
        lb_http_reply_error(req, 415, "unsupported_media_type", "send application/json", NULL, NULL);
        return;
    }
    json_object *root = parse_json_object(req);
    if (!root)
        return;
    lb_event ev = {0};
    lb_error err = {0};
    int rc = lb_canonical_normalize(root, &ev, &err);
    json_object_put(root);
    if (rc) {
        reply_bad_event(req, &err);
        return;
    }
    if (park(ing, req, &ev, acct, "application/json")) {
        lb_event_clear(&ev);
        lb_http_reply_error(req, 503, "out_of_memory", "server is out of memory", NULL, "Retry-After: 1\r\n");
    }
}

/* ---- lifecycle ------------------------------------------------------------------ */

lb_ingest *lb_ingest_new(struct event_base *base, lb_store *store, lb_metrics *metrics, const lb_config *cfg)
{
    lb_ingest *ing = calloc(1, sizeof *ing);
    if (!ing)
        return NULL;
    ing->store = store;
    ing->metrics = metrics;
    ing->cfg = cfg;
    ing->commit_ev = event_new(base, -1, 0, on_commit, ing);
    if (!ing->commit_ev) {
        free(ing);
        return NULL;
    }
    return ing;
}

void lb_ingest_flush(lb_ingest *ing)
{
    event_del(ing->commit_ev);
    commit_batch(ing);
}

void lb_ingest_set_config(lb_ingest *ing, const lb_config *cfg)
{
    lb_ingest_flush(ing);
    ing->cfg = cfg;
}

void lb_ingest_free(lb_ingest *ing)
{
    if (!ing)
        return;
    lb_ingest_flush(ing);
    event_free(ing->commit_ev);
    free(ing->batch);
    free(ing);
}
