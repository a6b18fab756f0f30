/* test_dispatcher.c: the dispatcher on a real event_base, with a fake
 * provider plugin (scripted per job) and an in-memory persistence.
 *
 * A job's "script" parameter lists what each submission of it does, one
 * step per submission (the last step repeats):
 *   ok            OK after the completion delay, provider_ref "ref-<email>"
 *   cred          OK if the test's credentials are valid, else AUTH
 *   retry[@MS]    RETRY (503), with Retry-After MS
 *   rl[@MS]       RETRY rate_limited (429), with Retry-After MS
 *   fail / auth   FAIL (422) / AUTH (401)
 *   zero          a zeroed result (invalid status)
 *   hang          never completes
 *   twice         completes OK, and again 5 ms later
 *   sync2         completes OK twice from inside submit
 *   http          GETs /fast and /slow from the test's server; /fast's answer
 *                 (classified by the core) completes the call, so /slow is
 *                 dropped by the core
 *   get2          GETs /ok twice at once (two requests from the budget); OK
 *                 once both are answered
 * Everything the fake sees is recorded in the test context, which reaches
 * the plugin through its "ctx" setting (no globals). */
#include "plugin_host.h"
#include "dispatcher.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "limiter.h"
#include "tap.h"

#define MAX_REC 128

typedef struct fake_op fake_op;

typedef struct sub_rec {
    int64_t job_id, at_ms;
    uint32_t attempt;
    char contact_ref[64];
} sub_rec;

typedef struct out_rec {
    lb_job_outcome o;
    char reason[320], fact[128], provider_ref[128];
    int64_t committed_ms;
} out_rec;

typedef struct tctx {
    struct event_base *base;
    lb_plugin_host *host;
    lb_dispatcher *d;
    const lb_core_api *api;
    int completion_ms, commit_ms;
    int stagger_ms, staggered; /* each call completes stagger_ms after the one submitted before it */
    fake_op *ops;
    sub_rec subs[MAX_REC];
    size_t n_subs;
    int per_job[64]; /* submissions per job id */
    int running, max_running, cancels, late_completes, verifies;
    bool creds_ok;
    out_rec outs[MAX_REC];
    size_t n_outs;
    int batches;
    bool states[16];
    size_t n_states;
    int persist_pending;
    int failed_writes; /* > 0: this many outcome writes fail, with libevent's allocations failing meanwhile */
    int fix_after_ms; /* > 0: credentials become valid this long after the integration breaks */
    struct event *fix;
    lb_outbox_job *late_job; /* enqueued once the integration breaks */
    struct event *late_ev;
    size_t want;
    bool (*until)(const struct tctx *t);
    int64_t deadline_ms;
    /* the http step */
    lb_http_client *http;
    struct evhttp *server;
    int port;
    char token[64];
    const lb_settings *settings;
    lb_call *http_call;
    int slow_done, slow_seen;
    int64_t wall_step_ms; /* added to the dispatcher's wall clock (an NTP step) */
    int ok_left;          /* the get2 step: answers still to come */
    int64_t ok_at[8];     /* when the server saw each /ok */
    size_t n_ok;
} tctx;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval tv_ms(int ms) { return (struct timeval){ms / 1000, (ms % 1000) * 1000}; }

/* The dispatcher's clocks: the real ones, the wall clock stepped by the
 * test's offset. */
static double stepped_clock(clockid_t which, void *state)
{
    const tctx *t = state;
    return lb_clock_ms_fine(which) + (which == CLOCK_REALTIME ? (double)t->wall_step_ms : 0);
}

/* ---- the fake plugin -------------------------------------------------------------------- */

/* One per init: a reload builds a second instance while the first has calls
 * in flight, and destroying either must leave the other's calls alone. */
typedef struct fake_inst {
    tctx *t;
} fake_inst;

struct fake_op {
    tctx *t;
    const fake_inst *inst;
    lb_call *call;
    lb_result res;
    bool twice, verify, second;
    struct event *ev;
    fake_op *next;
};

static void op_unlink(tctx *t, fake_op *op)
{
    for (fake_op **p = &t->ops; *p != NULL; p = &(*p)->next)
        if (*p == op) {
            *p = op->next;
            return;
        }
}

static void op_free(tctx *t, fake_op *op)
{
    op_unlink(t, op);
    event_free(op->ev);
    free(op);
}

static void op_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fake_op *op = arg;
    tctx *t = op->t;
    t->api->complete(op->call, &op->res);
    if (op->second) {
        t->late_completes++; /* the host must ignore it */
    } else if (!op->verify) {
        t->running--;
    }
    if (op->twice && !op->second) {
        op->second = true;
        struct timeval tv = tv_ms(5);
        evtimer_add(op->ev, &tv);
        return;
    }
    op_free(t, op);
}

static fake_op *op_new(tctx *t, lb_call *call, const lb_result *res, int delay_ms)
{
    fake_op *op = calloc(1, sizeof *op);
    ck_assert_ptr_nonnull(op);
    op->t = t;
    op->call = call;
    op->res = *res;
    op->ev = evtimer_new(t->base, op_fire, op);
    op->next = t->ops;
    t->ops = op;
    if (delay_ms >= 0) {
        struct timeval tv = tv_ms(delay_ms);
        evtimer_add(op->ev, &tv);
    }
    return op;
}

static int fake_init(const lb_core_api *api, const lb_settings *s, void **instance, char *err, size_t errlen)
{
    void *p = NULL;
    const char *ctx = api->setting(s, "ctx");
    if (ctx == NULL || sscanf(ctx, "%p", &p) != 1) {
        snprintf(err, errlen, "no ctx");
        return -1;
    }
    tctx *t = p;
    t->api = api;
    t->settings = s;
    api->secret(s, "token", t->token, sizeof t->token);
    fake_inst *fi = calloc(1, sizeof *fi);
    ck_assert_ptr_nonnull(fi);
    fi->t = t;
    *instance = fi;
    return 0;
}

static const char *job_param(const lb_job *job, const char *key)
{
    for (size_t i = 0; job->params[i] != NULL; i += 2)
        if (strcmp(job->params[i], key) == 0)
            return job->params[i + 1];
    return NULL;
}

/* The n-th comma-separated step of the script (the last one repeats). */
static void script_step(const char *script, int n, char *out, size_t cap)
{
    const char *p = script;
    for (int i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    size_t len = strcspn(p, ",");
    snprintf(out, cap, "%.*s", (int)len, p);
}

static lb_result step_result(const tctx *t, const char *step, const lb_job *job)
{
    lb_result r = {0};
    const char *at = strchr(step, '@');
    uint32_t after = at ? (uint32_t)atoi(at + 1) : 0;
    bool ok = strncmp(step, "ok", 2) == 0 || strcmp(step, "twice") == 0 || strcmp(step, "sync2") == 0 ||
              (strcmp(step, "cred") == 0 && t->creds_ok);
    if (ok) {
        r = (lb_result){.status = LB_OK, .http_status = 200};
        snprintf(r.provider_ref, sizeof r.provider_ref, "ref-%s", job->email);
    } else if (strcmp(step, "cred") == 0 || strcmp(step, "auth") == 0) {
        r = (lb_result){.status = LB_AUTH, .http_status = 401};
        snprintf(r.reason, sizeof r.reason, "401 unauthorized");
    } else if (strncmp(step, "retry", 5) == 0) {
        r = (lb_result){.status = LB_RETRY, .http_status = 503, .retry_after_ms = after};
        snprintf(r.reason, sizeof r.reason, "503 unavailable");
    } else if (strncmp(step, "rl", 2) == 0) {
        r = (lb_result){.status = LB_RETRY, .http_status = 429, .retry_after_ms = after, .rate_limited = 1};
        snprintf(r.reason, sizeof r.reason, "429 slow down");
    } else if (strcmp(step, "fail") == 0) {
        r = (lb_result){.status = LB_FAIL, .http_status = 422};
        snprintf(r.reason, sizeof r.reason, "422 invalid email");
    }
    return r; /* "zero" and "hang" stay zeroed */
}

static void record_submit(tctx *t, int64_t id, const lb_job *job)
{
    ck_assert_uint_lt(t->n_subs, MAX_REC);
    sub_rec *s = &t->subs[t->n_subs++];
    s->job_id = id;
    s->at_ms = now_ms();
    s->attempt = job->attempt;
    snprintf(s->contact_ref, sizeof s->contact_ref, "%s", job->contact_ref ? job->contact_ref : "");
    if (++t->running > t->max_running)
        t->max_running = t->running;
}

static void on_fast(const lb_http_resp *resp, void *ud)
{
    tctx *t = ud;
    uint32_t after = 0;
    lb_result r = {.status = t->api->http_classify(resp, &after), .http_status = (int)resp->status};
    r.retry_after_ms = after;
    r.rate_limited = resp->status == 429;
    /* a careless plugin puts the token in its reason: the core redacts it */
    snprintf(r.reason, sizeof r.reason, "HTTP %ld (token %s)", resp->status, t->token);
    ck_assert_str_eq(t->api->http_header(resp, "X-Fake"), "yes");
    t->api->complete(t->http_call, &r); /* /slow is still in flight */
    t->running--;
}

static void on_slow(const lb_http_resp *resp, void *ud)
{
    (void)resp;
    ((tctx *)ud)->slow_done++; /* must never run: the call completed first */
}

static void http_step(tctx *t, lb_call *call)
{
    char url[128], auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->token);
    const char *headers[] = {auth, NULL};
    t->http_call = call;
    t->api->log(t->settings, LB_LEVEL_WARN, "calling with token %s", t->token);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow?api_key=%s", t->port, t->token);
    lb_http_req req = {.method = "GET", .url = url, .headers = headers};
    ck_assert_ptr_nonnull(t->api->http_request(call, &req, on_slow, t));
    snprintf(url, sizeof url, "http://127.0.0.1:%d/fast?api_key=%s", t->port, t->token);
    ck_assert_ptr_nonnull(t->api->http_request(call, &req, on_fast, t));
}

static void on_ok(const lb_http_resp *resp, void *ud)
{
    tctx *t = ud;
    if (--t->ok_left > 0)
        return;
    lb_result r = {.status = t->api->http_classify(resp, NULL), .http_status = (int)resp->status};
    t->api->complete(t->http_call, &r);
    t->running--;
}

static void get2_step(tctx *t, lb_call *call)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", t->port);
    lb_http_req req = {.method = "GET", .url = url};
    t->http_call = call;
    t->ok_left = 2;
    for (int i = 0; i < 2; i++)
        ck_assert_ptr_nonnull(t->api->http_request(call, &req, on_ok, t));
}

static void fake_submit(void *instance, lb_call *call, const lb_job *job)
{
    tctx *t = ((fake_inst *)instance)->t;
    /* whatever the test: nothing runs on a broken integration */
    ck_assert(!lb_dispatcher_integration_broken(t->d, "acc", "int1", NULL));
    long long id = 0;
    ck_assert_int_eq(sscanf(job->idempotency_key, "job-%lld", &id), 1);
    ck_assert(id > 0 && id < 64);
    char step[32] = {0}; /* whole: an inlined strncmp may load past its NUL (valgrind) */
    script_step(job_param(job, "script"), t->per_job[id]++, step, sizeof step);
    record_submit(t, id, job);
    if (strcmp(step, "http") == 0) {
        http_step(t, call);
        return;
    }
    if (strcmp(step, "get2") == 0) {
        get2_step(t, call);
        return;
    }
    lb_result r = step_result(t, step, job);
    if (strcmp(step, "sync2") == 0) {
        t->api->complete(call, &r);
        t->api->complete(call, &r); /* a plugin bug the host must absorb */
        t->running--;
        return;
    }
    int delay = t->completion_ms + t->stagger_ms * t->staggered++;
    fake_op *op = op_new(t, call, &r, strcmp(step, "hang") == 0 ? -1 : delay);
    op->inst = instance;
    op->twice = strcmp(step, "twice") == 0;
}

static void fake_verify(void *instance, lb_call *call)
{
    tctx *t = ((fake_inst *)instance)->t;
    t->verifies++;
    lb_result r = {.status = t->creds_ok ? LB_OK : LB_AUTH, .http_status = t->creds_ok ? 200 : 401};
    fake_op *op = op_new(t, call, &r, 1);
    op->verify = true;
    op->inst = instance;
}

static void fake_cancel(void *instance, lb_call *call)
{
    tctx *t = ((fake_inst *)instance)->t;
    for (fake_op *op = t->ops; op != NULL; op = op->next)
        if (op->call == call && !op->second) {
            t->cancels++;
            if (!op->verify)
                t->running--;
            op_free(t, op);
            return;
        }
}

static void fake_destroy(void *instance)
{
    fake_inst *fi = instance;
    for (fake_op *op = fi->t->ops, *next; op != NULL; op = next) {
        next = op->next;
        if (op->inst == fi)
            op_free(fi->t, op);
    }
    free(fi);
}

static const lb_config_decl fake_config[] = {{"ctx", LB_CFG_REQUIRED, NULL, "the test context"},
                                             {"token", LB_CFG_SECRET, "", "an API token"},
                                             {NULL, 0, NULL, NULL}};
static const lb_param_decl tag_params[] = {
    {"tag", LB_PARAM_REQUIRED, "tags", "the tag"}, {"script", 0, NULL, "what the fake does"}, {NULL, 0, NULL, NULL}};
static const lb_action_decl fake_actions[] = {
    {"tag_add", "Add a tag", tag_params, NULL, NULL},
    {"tag_remove", "Remove a tag", tag_params, "tag_add", "tag"},
    {NULL, NULL, NULL, NULL, NULL},
};

static const lb_plugin fake_plugin = {
    .struct_size = sizeof(lb_plugin),
    .abi_major = LB_ABI_MAJOR,
    .abi_minor = LB_ABI_MINOR,
    .name = "fake",
    .display_name = "Fake",
    .version = "1",
    .config = fake_config,
    .actions = fake_actions,
    .init = fake_init,
    .verify = fake_verify,
    .submit = fake_submit,
    .cancel = fake_cancel,
    .destroy = fake_destroy,
};

/* ---- the in-memory persistence -------------------------------------------------------- */

typedef struct persist_op {
    tctx *t;
    lb_persist_done done;
    void *ctx;
    size_t first, n; /* outcome records committed by this op */
    struct event *ev;
} persist_op;

/* libevent's allocator, so that a test can make allocations fail. A static:
 * event_set_mem_functions takes no state to pass along. */
static bool libevent_starved;

static void *libevent_malloc(size_t n) { return libevent_starved ? NULL : malloc(n); }
static void *libevent_realloc(void *p, size_t n) { return libevent_starved ? NULL : realloc(p, n); }

/* A failed write, answered while libevent can allocate nothing: whatever
 * the dispatcher needs to write the batch again must exist already. */
static void persist_fail(persist_op *op)
{
    lb_error err;
    lb_fail(&err, "", "disk I/O error");
    op->t->failed_writes--;
    libevent_starved = true;
    op->done(op->ctx, -1, &err);
    libevent_starved = false;
}

static void persist_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    persist_op *op = arg;
    int64_t now = now_ms();
    op->t->persist_pending--;
    if (op->n > 0 && op->t->failed_writes > 0) {
        persist_fail(op);
    } else {
        for (size_t i = op->first; i < op->first + op->n; i++)
            op->t->outs[i].committed_ms = now;
        op->done(op->ctx, 0, NULL);
    }
    event_free(op->ev);
    free(op);
}

static void persist_later(tctx *t, lb_persist_done done, void *ctx, size_t first, size_t n)
{
    persist_op *op = calloc(1, sizeof *op);
    ck_assert_ptr_nonnull(op);
    *op = (persist_op){.t = t, .done = done, .ctx = ctx, .first = first, .n = n};
    op->ev = evtimer_new(t->base, persist_fire, op);
    struct timeval tv = tv_ms(t->commit_ms);
    evtimer_add(op->ev, &tv);
    t->persist_pending++;
}

static void copy_str(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

static void fake_record(void *ud, const lb_job_outcome *outcomes, size_t n, lb_persist_done done, void *ctx)
{
    tctx *t = ud;
    size_t first = t->n_outs;
    t->batches++;
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_lt(t->n_outs, MAX_REC);
        out_rec *r = &t->outs[t->n_outs++];
        r->o = outcomes[i];
        copy_str(r->reason, sizeof r->reason, outcomes[i].reason);
        copy_str(r->fact, sizeof r->fact, outcomes[i].fact);
        copy_str(r->provider_ref, sizeof r->provider_ref, outcomes[i].provider_ref);
        r->o.reason = r->o.fact = r->o.provider_ref = NULL; /* the originals die after done */
        r->o.account = r->o.integration = r->o.lead_email = NULL;
    }
    persist_later(t, done, ctx, first, n);
}

static void fake_state(void *ud, const char *account, const char *integration, bool broken, const char *reason,
                       lb_persist_done done, void *ctx)
{
    tctx *t = ud;
    ck_assert_str_eq(account, "acc");
    ck_assert_str_eq(integration, "int1");
    ck_assert(broken == (reason != NULL));
    ck_assert_uint_lt(t->n_states, 16);
    t->states[t->n_states++] = broken;
    persist_later(t, done, ctx, 0, 0);
    if (broken && t->fix != NULL) {
        struct timeval tv = tv_ms(t->fix_after_ms), now = {0, 0};
        evtimer_add(t->fix, &tv);
        evtimer_add(t->late_ev, &now);
    }
}

/* ---- harness ------------------------------------------------------------------------- */

static lb_dispatcher_options quick_options(void)
{
    return (lb_dispatcher_options){
        .backoff_base_ms = 10, .backoff_cap_ms = 40, .broken_probe_interval_ms = 40, .store_retry_ms = 20};
}

static void on_server_request(struct evhttp_request *req, void *arg)
{
    tctx *t = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (strcmp(path, "/ok") == 0) {
        ck_assert_uint_lt(t->n_ok, sizeof t->ok_at / sizeof t->ok_at[0]);
        t->ok_at[t->n_ok++] = now_ms();
        evhttp_send_reply(req, 200, "OK", NULL);
        return;
    }
    if (strcmp(path, "/slow") == 0) {
        t->slow_seen++; /* never answered: the client must drop it */
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Retry-After", "2");
    evhttp_add_header(h, "X-Fake", "yes");
    evhttp_send_reply(req, 429, "Too Many Requests", NULL);
}

static void start_server(tctx *t)
{
    t->server = evhttp_new(t->base);
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(t->server, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(s);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len), 0);
    t->port = ntohs(sin.sin_port);
    evhttp_set_gencb(t->server, on_server_request, t);
    t->http = lb_http_client_new(t->base, NULL);
    ck_assert_ptr_nonnull(t->http);
}

static void setup_with(tctx *t, const lb_dispatcher_options *o, uint32_t call_timeout_ms, bool http)
{
    memset(t, 0, sizeof *t);
    t->base = event_base_new();
    ck_assert_ptr_nonnull(t->base);
    if (http)
        start_server(t);
    lb_plugin_host_options ho = {.call_timeout_ms = call_timeout_ms ? call_timeout_ms : 2000};
    t->host = lb_plugin_host_new(t->base, t->http, &ho);
    lb_dispatch_persist p = {.ud = t, .record_outcomes = fake_record, .set_integration_state = fake_state};
    t->d = lb_dispatcher_new_with(t->base, &p, NULL, o);
    ck_assert_ptr_nonnull(t->d);
    t->completion_ms = 5;
    t->commit_ms = 5;
}

static void setup(tctx *t, const lb_dispatcher_options *o, uint32_t call_timeout_ms)
{
    setup_with(t, o, call_timeout_ms, false);
}

static lb_integration *make_integration(tctx *t, double rate, unsigned burst, unsigned concurrency)
{
    char ptr[32];
    snprintf(ptr, sizeof ptr, "%p", (void *)t);
    char *keys[] = {"ctx", "token"}, *values[] = {ptr, "s3cr3t-t0ken"};
    lb_integration_config cfg = {.id = "int1", .provider = "fake", .keys = keys, .values = values, .n_settings = 2,
                                 .rate_per_s = rate, .burst = burst, .concurrency = concurrency};
    lb_error err;
    lb_integration *in = lb_integration_new(t->host, "acc", &cfg, &fake_plugin, &err);
    ck_assert_msg(in != NULL, "%s", err.message);
    return in;
}

static void add_integration(tctx *t, double rate, unsigned burst, unsigned concurrency)
{
    ck_assert_int_eq(lb_dispatcher_add_integration(t->d, make_integration(t, rate, burst, concurrency)), 0);
}

static lb_outbox_job *mkjob(int64_t id, const char *lead, const char *script)
{
    lb_outbox_job *j = calloc(1, sizeof *j);
    char params[128], key[32];
    snprintf(params, sizeof params, "{\"script\":\"%s\",\"tag\":\"buyer\"}", script);
    snprintf(key, sizeof key, "job-%" PRId64, id);
    j->id = id;
    j->account = strdup("acc");
    j->integration = strdup("int1");
    j->lead_email = strdup(lead);
    j->action = strdup("tag_add");
    j->params_json = strdup(params);
    j->lead_json = strdup("{\"name\":\"Ana Lima\",\"phone\":\"+55\"}");
    j->idempotency_key = strdup(key);
    j->state = LB_JOB_READY;
    j->created_at_ms = now_ms();
    return j;
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tctx *t = arg;
    if ((t->until != NULL && t->until(t)) || now_ms() > t->deadline_ms)
        event_base_loopbreak(t->base);
}

/* Runs the loop until `until` holds (checked every 2 ms), or for `ms` at
 * most. Tests wait for events, not for time, so a loaded machine only makes
 * them slower. */
static bool run_until(tctx *t, bool (*until)(const tctx *t), size_t want, int ms)
{
    t->until = until;
    t->want = want;
    t->deadline_ms = now_ms() + ms;
    struct event *check = event_new(t->base, -1, EV_PERSIST, on_check, t);
    struct timeval tv = tv_ms(2);
    evtimer_add(check, &tv);
    event_base_dispatch(t->base);
    event_free(check);
    return until == NULL || until(t);
}

/* `want` outcomes committed and nothing in flight. */
static bool outs_settled(const tctx *t)
{
    return t->n_outs >= t->want && lb_dispatcher_busy(t->d) == 0 && t->persist_pending == 0;
}
static bool subs_reached(const tctx *t) { return t->n_subs >= t->want; }
static bool late_reached(const tctx *t) { return (size_t)t->late_completes >= t->want; }

static bool run_until_outs(tctx *t, size_t n, int ms) { return run_until(t, outs_settled, n, ms); }

/* Runs the loop for `ms`, whatever happens. */
static void run_for(tctx *t, int ms) { run_until(t, NULL, 0, ms); }

static void teardown(tctx *t)
{
    lb_dispatcher_stop(t->d);
    lb_dispatcher_free(t->d);
    t->d = NULL;
    while (t->persist_pending > 0) /* orphaned writes still report */
        event_base_loop(t->base, EVLOOP_ONCE);
    lb_plugin_host_free(t->host);
    lb_http_client_free(t->http);
    if (t->server)
        evhttp_free(t->server);
    event_base_free(t->base);
}

static const out_rec *outcome_of(const tctx *t, int64_t job_id, int nth)
{
    for (size_t i = 0; i < t->n_outs; i++)
        if (t->outs[i].o.job_id == job_id && nth-- == 0)
            return &t->outs[i];
    return NULL;
}

static const sub_rec *submit_of(const tctx *t, int64_t job_id, int nth)
{
    for (size_t i = 0; i < t->n_subs; i++)
        if (t->subs[i].job_id == job_id && nth-- == 0)
            return &t->subs[i];
    return NULL;
}

/* ---- tests ------------------------------------------------------------------------------ */

START_TEST(per_lead_order_and_concurrency_across_leads)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    t.completion_ms = 20;
    t.commit_ms = 10;
    add_integration(&t, 0, 0, 0);
    /* out of id order on purpose: the lane sorts them */
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "ok"));
    lb_dispatcher_enqueue(t.d, mkjob(3, "a@x", "ok"));
    lb_dispatcher_enqueue(t.d, mkjob(2, "a@x", "ok"));
    for (int id = 4; id <= 6; id++)
        lb_dispatcher_enqueue(t.d, mkjob(id, "b@x", "ok"));
    lb_dispatcher_enqueue(t.d, mkjob(2, "a@x", "ok")); /* a duplicate is dropped */
    ck_assert(run_until_outs(&t, 6, 3000));
    ck_assert_uint_eq(t.n_subs, 6);
    ck_assert_int_ge(t.max_running, 2);
    for (int64_t first = 1; first <= 4; first += 3)
        for (int64_t id = first; id < first + 2; id++) {
            const out_rec *prev = outcome_of(&t, id, 0);
            const sub_rec *next = submit_of(&t, id + 1, 0);
            ck_assert_ptr_nonnull(prev);
            ck_assert_ptr_nonnull(next);
            /* the next job of a lead starts only after the outcome is committed */
            ck_assert_int_ge(next->at_ms, prev->committed_ms);
            ck_assert_int_eq(prev->o.new_state, LB_JOB_DONE);
            ck_assert_str_eq(prev->o.outcome, "ok");
            ck_assert_str_eq(prev->fact, "tag_add:buyer");
            ck_assert_int_eq(prev->o.attempts, 1);
        }
    /* lead state: the contact id of the first success reaches the next job */
    ck_assert_str_eq(submit_of(&t, 1, 0)->contact_ref, "");
    ck_assert_str_eq(submit_of(&t, 2, 0)->contact_ref, "ref-a@x");
    ck_assert_str_eq(submit_of(&t, 5, 0)->contact_ref, "ref-b@x");
    ck_assert_str_eq(outcome_of(&t, 3, 0)->provider_ref, "ref-a@x");
    lb_dispatcher_stats st;
    lb_dispatcher_stats_get(t.d, &st);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.ok, 6);
    teardown(&t);
}
END_TEST

START_TEST(rate_limit_spaces_starts)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    t.completion_ms = 1;
    add_integration(&t, 20, 1, 0); /* one call per 50 ms */
    char lead[16];
    for (int id = 1; id <= 5; id++) {
        snprintf(lead, sizeof lead, "l%d@x", id);
        lb_dispatcher_enqueue(t.d, mkjob(id, lead, "ok"));
    }
    ck_assert(run_until_outs(&t, 5, 3000));
    /* Tokens are taken 50 ms apart; a submission is recorded a little after
     * its token (most after the first, in a fresh process), hence the slack. */
    for (size_t i = 2; i < t.n_subs; i++)
        ck_assert_int_ge(t.subs[i].at_ms - t.subs[i - 1].at_ms, 40);
    ck_assert_int_ge(t.subs[4].at_ms - t.subs[1].at_ms, 140);
    teardown(&t);
}
END_TEST

START_TEST(concurrency_limit_caps_calls_in_flight)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    t.completion_ms = 30;
    add_integration(&t, 0, 0, 2);
    char lead[16];
    for (int id = 1; id <= 6; id++) {
        snprintf(lead, sizeof lead, "l%d@x", id);
        lb_dispatcher_enqueue(t.d, mkjob(id, lead, "ok"));
    }
    ck_assert(run_until_outs(&t, 6, 3000));
    ck_assert_int_eq(t.max_running, 2);
    ck_assert_uint_eq(t.n_subs, 6);
    teardown(&t);
}
END_TEST

START_TEST(retry_after_is_a_floor)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "retry@300,ok"));
    ck_assert(run_until_outs(&t, 2, 3000));
    const out_rec *first = outcome_of(&t, 1, 0), *second = outcome_of(&t, 1, 1);
    ck_assert_str_eq(first->o.outcome, "retry");
    ck_assert_int_eq(first->o.new_state, LB_JOB_READY);
    ck_assert_int_eq(first->o.attempts, 1);
    ck_assert_int_eq(first->o.http_status, 503);
    ck_assert_str_eq(first->reason, "503 unavailable");
    ck_assert_int_ge(first->o.next_attempt_at_ms - first->o.at_ms, 300); /* backoff alone: <= 40 ms */
    ck_assert_int_ge(submit_of(&t, 1, 1)->at_ms, first->o.next_attempt_at_ms);
    ck_assert_uint_eq(submit_of(&t, 1, 1)->attempt, 2);
    ck_assert_str_eq(second->o.outcome, "ok");
    ck_assert_int_eq(second->o.attempts, 2);
    teardown(&t);
}
END_TEST

START_TEST(rate_limited_uses_no_attempt_and_pauses_the_integration)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    o.max_attempts = 2;
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "rl@150,rl@20,rl@20,ok"));
    /* the other lead's job comes once the provider has said wait, and falls
     * due inside the wait (enqueued before, it could fall due before the
     * first 429 is back on a slow machine, under valgrind say) */
    ck_assert(run_until_outs(&t, 1, 3000));
    lb_outbox_job *other = mkjob(2, "b@x", "ok");
    other->next_attempt_at_ms = now_ms() + 60;
    lb_dispatcher_enqueue(t.d, other);
    ck_assert(run_until_outs(&t, 5, 3000));
    for (int i = 0; i < 3; i++) {
        const out_rec *r = outcome_of(&t, 1, i);
        ck_assert_str_eq(r->o.outcome, "rate_limited");
        ck_assert_int_eq(r->o.attempts, 0);
        ck_assert_int_eq(r->o.http_status, 429);
        ck_assert_uint_eq(submit_of(&t, 1, i)->attempt, 1);
    }
    ck_assert_int_eq(outcome_of(&t, 1, 3)->o.new_state, LB_JOB_DONE);
    ck_assert_int_eq(outcome_of(&t, 1, 3)->o.attempts, 1); /* max_attempts 2 was never near */
    /* the other lead waited for the provider's signal too */
    ck_assert_int_ge(submit_of(&t, 2, 0)->at_ms, outcome_of(&t, 1, 0)->o.at_ms + 150);
    teardown(&t);
}
END_TEST

/* A jitter draw at the top of its window: with a 1 ms base every window is a
 * power of two, so the draw is the window itself (1, 2, 4 ... ms). */
static uint64_t top_of_window(void *state)
{
    (void)state;
    return UINT64_MAX;
}

static lb_dispatcher_options doubling_options(void)
{
    lb_dispatcher_options o = quick_options();
    o.backoff_base_ms = 1;
    o.backoff_cap_ms = 4096;
    o.rand = top_of_window;
    return o;
}

/* Mailchimp's and Kit's 429s say nothing about how long to wait: each one
 * that follows a pause doubles the integration's pause, and an answer that
 * gets through ends the run, so the next 429 starts again at the base. */
START_TEST(rate_limited_without_a_hint_doubles_the_pause_until_a_call_gets_through)
{
    tctx t;
    lb_dispatcher_options o = doubling_options();
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "rl,rl,rl,rl,rl,rl,rl,rl,rl,rl,ok"));
    ck_assert(run_until_outs(&t, 11, 10000));
    for (int i = 0; i < 10; i++) {
        const out_rec *r = outcome_of(&t, 1, i);
        ck_assert_str_eq(r->o.outcome, "rate_limited");
        ck_assert_int_eq(r->o.attempts, 0);
        /* the wall clock of the record against the fake's: 1 ms of rounding */
        ck_assert_int_ge(submit_of(&t, 1, i + 1)->at_ms - r->o.at_ms, (1 << i) - 1);
    }
    ck_assert_int_eq(outcome_of(&t, 1, 10)->o.new_state, LB_JOB_DONE);
    lb_dispatcher_enqueue(t.d, mkjob(2, "b@x", "rl,ok"));
    ck_assert(run_until_outs(&t, 13, 5000));
    /* 1 ms again, not the 1,024 the run had reached */
    ck_assert_int_lt(submit_of(&t, 2, 1)->at_ms - outcome_of(&t, 2, 0)->o.at_ms, 500);
    teardown(&t);
}
END_TEST

/* Twelve leads, one job each, whose first call gets a 429 without a hint
 * and whose second gets through; runs until all 24 outcomes are in. */
static void twelve_leads_rate_limited_once(tctx *t)
{
    add_integration(t, 0, 0, 0);
    for (int i = 1; i <= 12; i++) {
        char lead[16];
        snprintf(lead, sizeof lead, "l%d@x", i);
        lb_dispatcher_enqueue(t->d, mkjob(i, lead, "rl,ok"));
    }
    ck_assert(run_until_outs(t, 24, 10000));
}

/* Twelve calls in flight all come back 429: that is one "slow down", not
 * twelve. Stacked, the pause would reach 2^11 ms. */
START_TEST(rate_limited_answers_to_calls_already_in_flight_do_not_stack)
{
    tctx t;
    lb_dispatcher_options o = doubling_options();
    setup(&t, &o, 0);
    t.completion_ms = 30;
    twelve_leads_rate_limited_once(&t);
    int64_t last_429 = 0, first_retry = INT64_MAX;
    for (int i = 1; i <= 12; i++) {
        ck_assert_str_eq(outcome_of(&t, i, 0)->o.outcome, "rate_limited");
        ck_assert_int_eq(outcome_of(&t, i, 1)->o.new_state, LB_JOB_DONE);
        if (outcome_of(&t, i, 0)->o.at_ms > last_429)
            last_429 = outcome_of(&t, i, 0)->o.at_ms;
        if (submit_of(&t, i, 1)->at_ms < first_retry)
            first_retry = submit_of(&t, i, 1)->at_ms;
    }
    ck_assert_int_lt(first_retry - last_429, 1000);
    teardown(&t);
}
END_TEST

/* The same twelve 429s, coming back 15 ms apart: each one after the first
 * answers a call sent before the pause began, even when that pause is over
 * by then. None of them doubles it; stacked, the pauses grew to 65 ms. */
START_TEST(rate_limited_answers_to_calls_sent_before_the_pause_do_not_escalate_it)
{
    tctx t;
    lb_dispatcher_options o = doubling_options();
    setup(&t, &o, 0);
    t.completion_ms = 30;
    t.stagger_ms = 15;
    twelve_leads_rate_limited_once(&t);
    for (int i = 1; i <= 12; i++) {
        const out_rec *r = outcome_of(&t, i, 0);
        ck_assert_str_eq(r->o.outcome, "rate_limited");
        /* the base (1 ms) and the clocks' rounding, never a doubled window */
        ck_assert_int_le(r->o.next_attempt_at_ms - r->o.at_ms, 3);
        ck_assert_int_eq(outcome_of(&t, i, 1)->o.new_state, LB_JOB_DONE);
    }
    teardown(&t);
}
END_TEST

/* A Retry-After of an hour against a 40 ms max_pause: the integration
 * waits 40 ms, and the job is not dead-lettered for a wait that would pass
 * its age cap. */
START_TEST(retry_after_past_max_pause_pauses_for_max_pause)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    o.max_pause_ms = 40;
    o.max_age_ms = 60 * 1000;
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "rl@3600000,ok"));
    ck_assert(run_until_outs(&t, 2, 3000));
    const out_rec *first = outcome_of(&t, 1, 0);
    ck_assert_str_eq(first->o.outcome, "rate_limited");
    ck_assert_int_eq(first->o.new_state, LB_JOB_READY);
    ck_assert_int_le(first->o.next_attempt_at_ms - first->o.at_ms, 41);
    ck_assert_int_eq(outcome_of(&t, 1, 1)->o.new_state, LB_JOB_DONE);
    teardown(&t);
}
END_TEST

/* The bucket runs on the monotonic clock: a wall clock stepped back an hour
 * (NTP, a VM resumed) right after a token was taken does not hold the next
 * call back for that hour. */
START_TEST(wall_clock_step_back_does_not_stall_the_bucket)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    o.clock = stepped_clock;
    o.clock_state = &t;
    setup(&t, &o, 0);
    add_integration(&t, 20, 1, 0); /* one call per 50 ms */
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "ok"));
    ck_assert(run_until_outs(&t, 1, 3000));
    t.wall_step_ms = -3600 * 1000;
    lb_dispatcher_enqueue(t.d, mkjob(2, "b@x", "ok")); /* due at once, whatever the wall clock says */
    ck_assert(run_until_outs(&t, 2, 3000));
    ck_assert_int_eq(outcome_of(&t, 2, 0)->o.new_state, LB_JOB_DONE);
    teardown(&t);
}
END_TEST

/* The provider's pause runs on the monotonic clock too: a wall clock stepped
 * forward does not end it early. */
START_TEST(wall_clock_step_forward_keeps_the_pause)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    o.clock = stepped_clock;
    o.clock_state = &t;
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "rl@300,ok"));
    ck_assert(run_until_outs(&t, 1, 3000));
    t.wall_step_ms = 3600 * 1000;
    lb_dispatcher_enqueue(t.d, mkjob(2, "b@x", "ok"));
    ck_assert(run_until_outs(&t, 3, 3000));
    /* both leads waited out the 300 ms, job 1 although its stored (wall)
     * next_attempt_at is now an hour past */
    ck_assert_int_ge(submit_of(&t, 2, 0)->at_ms - submit_of(&t, 1, 0)->at_ms, 300);
    ck_assert_int_ge(submit_of(&t, 1, 1)->at_ms - submit_of(&t, 1, 0)->at_ms, 300);
    teardown(&t);
}
END_TEST

START_TEST(attempt_cap_dead_letters_with_the_last_reason)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    o.max_attempts = 3;
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "retry"));
    ck_assert(run_until_outs(&t, 3, 3000));
    run_for(&t, 100);
    ck_assert_uint_eq(t.n_subs, 3);
    ck_assert_uint_eq(t.n_outs, 3);
    const out_rec *last = outcome_of(&t, 1, 2);
    ck_assert_int_eq(last->o.new_state, LB_JOB_DEAD);
    ck_assert_str_eq(last->o.outcome, "dead");
    ck_assert_int_eq(last->o.attempts, 3);
    ck_assert_str_eq(last->reason, "gave up after 3 attempts: 503 unavailable");
    lb_dispatcher_stats st;
    lb_dispatcher_stats_get(t.d, &st);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.dead, 1);
    teardown(&t);
}
END_TEST

START_TEST(age_cap_dead_letters)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    o.max_age_ms = 500;
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_outbox_job *old = mkjob(1, "a@x", "retry");
    old->created_at_ms -= 1000;
    lb_dispatcher_enqueue(t.d, old);
    ck_assert(run_until_outs(&t, 1, 3000));
    run_for(&t, 60);
    ck_assert_uint_eq(t.n_subs, 1);
    ck_assert_int_eq(t.outs[0].o.new_state, LB_JOB_DEAD);
    ck_assert_str_eq(t.outs[0].reason, "gave up after 1 attempt: 503 unavailable");
    teardown(&t);
}
END_TEST

START_TEST(fail_is_dead_at_once)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "fail"));
    lb_dispatcher_enqueue(t.d, mkjob(2, "a@x", "ok")); /* the lane goes on after a dead job */
    ck_assert(run_until_outs(&t, 2, 3000));
    ck_assert_uint_eq(t.n_subs, 2);
    const out_rec *r = outcome_of(&t, 1, 0);
    ck_assert_int_eq(r->o.new_state, LB_JOB_DEAD);
    ck_assert_str_eq(r->o.outcome, "fail");
    ck_assert_str_eq(r->reason, "422 invalid email");
    ck_assert_int_eq(r->o.attempts, 1);
    ck_assert_int_eq(outcome_of(&t, 2, 0)->o.new_state, LB_JOB_DONE);
    teardown(&t);
}
END_TEST

static void on_late_job(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tctx *t = arg;
    lb_dispatcher_enqueue(t->d, t->late_job); /* due at once, but the integration is broken */
    t->late_job = NULL;
}

static void on_fix_credentials(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tctx *t = arg;
    const char *reason = NULL;
    /* by now the integration is broken and nothing has run since */
    ck_assert(lb_dispatcher_integration_broken(t->d, "acc", "int1", &reason));
    ck_assert_str_eq(reason, "401 unauthorized");
    ck_assert_uint_eq(t->n_subs, 2);
    t->creds_ok = true;
}

START_TEST(auth_failures_break_then_a_probe_resumes)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    o.auth_failures_to_break = 2;
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "cred"));
    lb_dispatcher_enqueue(t.d, mkjob(2, "b@x", "cred"));
    t.late_job = mkjob(3, "c@x", "cred");
    t.late_ev = evtimer_new(t.base, on_late_job, &t);
    t.fix = evtimer_new(t.base, on_fix_credentials, &t);
    t.fix_after_ms = 120; /* long enough for two probes to fail */
    ck_assert(run_until_outs(&t, 5, 3000));
    event_free(t.fix);
    event_free(t.late_ev);
    ck_assert(t.creds_ok);
    ck_assert_int_ge(t.verifies, 2); /* at least one failed probe, then the good one */
    ck_assert_uint_eq(t.n_states, 2);
    ck_assert(t.states[0] == true && t.states[1] == false);
    ck_assert(!lb_dispatcher_integration_broken(t.d, "acc", "int1", NULL));
    for (int64_t id = 1; id <= 2; id++) {
        const out_rec *first = outcome_of(&t, id, 0);
        ck_assert_str_eq(first->o.outcome, "auth");
        ck_assert_int_eq(first->o.new_state, LB_JOB_READY); /* waiting, not dead-lettered */
        ck_assert_int_eq(first->o.attempts, 0);
        ck_assert_int_eq(outcome_of(&t, id, 1)->o.new_state, LB_JOB_DONE);
    }
    ck_assert_int_eq(outcome_of(&t, 3, 0)->o.new_state, LB_JOB_DONE);
    for (size_t i = 0; i < t.n_outs; i++)
        ck_assert_int_ne(t.outs[i].o.new_state, LB_JOB_DEAD);
    teardown(&t);
}
END_TEST

START_TEST(replacing_a_broken_integration_probes_at_once)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    o.auth_failures_to_break = 1;
    o.broken_probe_interval_ms = 60 * 1000; /* only the replacement can resume it in time */
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "cred"));
    ck_assert(run_until_outs(&t, 1, 3000));
    ck_assert(lb_dispatcher_integration_broken(t.d, "acc", "int1", NULL));
    t.creds_ok = true;
    lb_dispatcher_replace_integration(t.d, make_integration(&t, 0, 0, 0));
    ck_assert(run_until_outs(&t, 2, 3000));
    ck_assert(!lb_dispatcher_integration_broken(t.d, "acc", "int1", NULL));
    ck_assert_int_eq(outcome_of(&t, 1, 1)->o.new_state, LB_JOB_DONE);
    teardown(&t);
}
END_TEST

/* The request budget (per HTTP request, under the job bucket) is carried
 * over a reload like the job bucket: a SIGHUP right after a burst lets no
 * extra requests out. Each job makes two requests, so the job bucket still
 * has a token for the second job and only the request budget holds it. */
START_TEST(replacing_an_integration_keeps_its_request_budget)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup_with(&t, &o, 5000, true);
    add_integration(&t, 2, 2, 0); /* 2 at once, then one per 500 ms */
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "get2"));
    ck_assert(run_until_outs(&t, 1, 3000));
    ck_assert_uint_eq(t.n_ok, 2); /* the request budget is spent */
    lb_dispatcher_replace_integration(t.d, make_integration(&t, 2, 2, 0));
    lb_dispatcher_enqueue(t.d, mkjob(2, "b@x", "get2"));
    ck_assert(run_until_outs(&t, 2, 5000));
    ck_assert_int_eq(outcome_of(&t, 2, 0)->o.new_state, LB_JOB_DONE);
    ck_assert_uint_eq(t.n_ok, 4);
    /* the next token is 500 ms after the burst; slack for the loop */
    ck_assert_int_ge(t.ok_at[2] - t.ok_at[1], 400);
    ck_assert_int_ge(t.ok_at[3] - t.ok_at[1], 900);
    teardown(&t);
}
END_TEST

/* A reload that leaves an integration's configuration alone keeps its
 * instance: the call in flight completes on it, nothing is cancelled or
 * submitted again. A changed one (its concurrency here) is replaced as
 * before: the call is aborted and runs again on the new instance. */
START_TEST(updating_an_unchanged_integration_keeps_its_calls)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    t.completion_ms = 100;
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "ok"));
    ck_assert(run_until(&t, subs_reached, 1, 3000));
    ck_assert(lb_dispatcher_update_integration(t.d, make_integration(&t, 0, 0, 0)));
    ck_assert(run_until_outs(&t, 1, 3000));
    ck_assert_int_eq(t.per_job[1], 1);
    ck_assert_int_eq(t.cancels, 0);
    ck_assert_int_eq(outcome_of(&t, 1, 0)->o.new_state, LB_JOB_DONE);
    lb_dispatcher_enqueue(t.d, mkjob(2, "b@x", "ok"));
    ck_assert(run_until(&t, subs_reached, 2, 3000));
    ck_assert(!lb_dispatcher_update_integration(t.d, make_integration(&t, 0, 0, 2)));
    ck_assert(run_until_outs(&t, 2, 3000));
    ck_assert_int_eq(t.cancels, 1);
    ck_assert_int_eq(t.per_job[2], 2);
    ck_assert_int_eq(outcome_of(&t, 2, 0)->o.new_state, LB_JOB_DONE);
    teardown(&t);
}
END_TEST

START_TEST(plugin_timeout_retries_and_cancels)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 50);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "hang,ok"));
    ck_assert(run_until_outs(&t, 2, 3000));
    const out_rec *first = outcome_of(&t, 1, 0);
    ck_assert_str_eq(first->o.outcome, "timeout");
    ck_assert_str_eq(first->reason, "plugin timeout");
    ck_assert_int_eq(first->o.new_state, LB_JOB_READY);
    ck_assert_int_eq(first->o.attempts, 1);
    ck_assert_int_eq(t.cancels, 1);
    ck_assert_int_ge(first->o.at_ms - submit_of(&t, 1, 0)->at_ms, 45);
    ck_assert_int_eq(outcome_of(&t, 1, 1)->o.new_state, LB_JOB_DONE);
    teardown(&t);
}
END_TEST

START_TEST(double_completion_is_ignored)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "twice"));
    lb_dispatcher_enqueue(t.d, mkjob(2, "b@x", "sync2"));
    lb_dispatcher_enqueue(t.d, mkjob(3, "a@x", "ok"));
    ck_assert(run_until_outs(&t, 3, 3000));
    ck_assert(run_until(&t, late_reached, 1, 3000));
    run_for(&t, 20);
    ck_assert_int_eq(t.late_completes, 1);
    ck_assert_uint_eq(t.n_outs, 3);
    ck_assert_uint_eq(t.n_subs, 3);
    for (size_t i = 0; i < t.n_outs; i++)
        ck_assert_int_eq(t.outs[i].o.new_state, LB_JOB_DONE);
    teardown(&t);
}
END_TEST

START_TEST(invalid_status_becomes_retry)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "zero,ok"));
    ck_assert(run_until_outs(&t, 2, 3000));
    const out_rec *first = outcome_of(&t, 1, 0);
    ck_assert_str_eq(first->o.outcome, "retry");
    ck_assert_str_eq(first->reason, "plugin bug: invalid status");
    ck_assert_int_eq(first->o.new_state, LB_JOB_READY);
    ck_assert_int_eq(outcome_of(&t, 1, 1)->o.new_state, LB_JOB_DONE);
    teardown(&t);
}
END_TEST

START_TEST(replay_runs_a_dead_job_again)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    o.max_attempts = 1;
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "retry"));
    ck_assert(run_until_outs(&t, 1, 3000));
    ck_assert_int_eq(t.outs[0].o.new_state, LB_JOB_DEAD);
    lb_outbox_job *again = mkjob(1, "a@x", "ok");
    again->state = LB_JOB_DEAD;
    again->attempts = 1;
    lb_dispatcher_replay(t.d, again);
    ck_assert(run_until_outs(&t, 2, 3000));
    ck_assert_int_eq(t.outs[1].o.new_state, LB_JOB_DONE);
    ck_assert_int_eq(t.outs[1].o.attempts, 1); /* counting started again */
    teardown(&t);
}
END_TEST

/* An outcome write fails (a full disk) while memory is short too: the batch
 * is written again once the store recovers, and the lane goes on. Before,
 * the retry timer was made only after the failure, and a failure to make it
 * left the lane blocked until a restart. */
START_TEST(a_failed_outcome_write_is_retried_even_when_memory_is_short)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    t.failed_writes = 2;
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "ok"));
    lb_dispatcher_enqueue(t.d, mkjob(2, "a@x", "ok")); /* waits for job 1's outcome to be stored */
    ck_assert(run_until_outs(&t, 4, 3000));
    ck_assert_int_eq(t.failed_writes, 0);
    for (int nth = 0; nth < 3; nth++) /* the same outcome, written three times */
        ck_assert_int_eq(outcome_of(&t, 1, nth)->o.new_state, LB_JOB_DONE);
    ck_assert_int_eq(outcome_of(&t, 2, 0)->o.new_state, LB_JOB_DONE);
    ck_assert_int_eq(t.per_job[1], 1); /* written again, not sent again */
    teardown(&t);
}
END_TEST

START_TEST(jobs_wait_for_their_integration)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "ok"));
    run_for(&t, 30);
    ck_assert_uint_eq(t.n_subs, 0);
    add_integration(&t, 0, 0, 0);
    ck_assert(run_until_outs(&t, 1, 3000));
    ck_assert_int_eq(t.outs[0].o.new_state, LB_JOB_DONE);
    teardown(&t);
}
END_TEST

START_TEST(outcomes_of_one_turn_share_a_batch)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    t.completion_ms = 10; /* all five complete on the same timer tick */
    add_integration(&t, 0, 0, 0);
    char lead[16];
    for (int id = 1; id <= 5; id++) {
        snprintf(lead, sizeof lead, "l%d@x", id);
        lb_dispatcher_enqueue(t.d, mkjob(id, lead, "sync2"));
    }
    ck_assert(run_until_outs(&t, 5, 3000));
    ck_assert_int_eq(t.batches, 1);
    teardown(&t);
}
END_TEST

START_TEST(free_with_calls_in_flight)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup(&t, &o, 0);
    add_integration(&t, 0, 0, 0);
    t.commit_ms = 1000; /* c's outcome is still being written at the end */
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "hang"));
    lb_dispatcher_enqueue(t.d, mkjob(2, "a@x", "ok")); /* queued behind the hanging one */
    lb_dispatcher_enqueue(t.d, mkjob(3, "b@x", "hang"));
    lb_dispatcher_enqueue(t.d, mkjob(4, "c@x", "sync2"));
    ck_assert(run_until(&t, subs_reached, 3, 3000));
    run_for(&t, 10);
    ck_assert_uint_eq(lb_dispatcher_busy(t.d), 3);
    teardown(&t); /* aborts both calls (cancel runs), frees queued jobs: ASan checks */
    ck_assert_int_eq(t.cancels, 2);
}
END_TEST

/* Reads what was written to stderr (fd 2) since `start` into buf. */
static void read_stderr(FILE *capture, char *buf, size_t cap)
{
    fflush(stderr);
    rewind(capture);
    size_t n = fread(buf, 1, cap - 1, capture);
    buf[n] = '\0';
}

START_TEST(host_http_classify_drop_and_redact)
{
    tctx t;
    lb_dispatcher_options o = quick_options();
    setup_with(&t, &o, 0, true);
    FILE *capture = tmpfile();
    ck_assert_ptr_nonnull(capture);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(capture), 2);
    add_integration(&t, 0, 0, 0);
    lb_dispatcher_enqueue(t.d, mkjob(1, "a@x", "http"));
    ck_assert(run_until_outs(&t, 1, 5000));
    run_for(&t, 50);
    char log[16384];
    read_stderr(capture, log, sizeof log);
    dup2(saved, 2);
    close(saved);
    fclose(capture);
    const out_rec *r = outcome_of(&t, 1, 0);
    /* the core's classification and header lookup on the core's client */
    ck_assert_str_eq(r->o.outcome, "rate_limited");
    ck_assert_int_eq(r->o.http_status, 429);
    ck_assert_int_ge(r->o.next_attempt_at_ms - r->o.at_ms, 2000); /* Retry-After: 2 */
    ck_assert_str_eq(r->reason, "HTTP 429 (token [REDACTED])");
    /* complete() dropped /slow: its done never ran, nothing is in flight */
    ck_assert_int_eq(t.slow_seen, 1);
    ck_assert_int_eq(t.slow_done, 0);
    ck_assert_uint_eq(lb_http_client_in_flight(t.http), 0);
    /* no log line carries the token; the plugin's own line is tagged */
    ck_assert_ptr_null(strstr(log, "s3cr3t"));
    ck_assert_ptr_null(strstr(log, "api_key")); /* query strings are never logged */
    ck_assert_ptr_nonnull(strstr(log, "calling with token [REDACTED]\" integration=acc/int1"));
    ck_assert_ptr_nonnull(strstr(log, "url=http://127.0.0.1"));
    teardown(&t);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("dispatcher");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, per_lead_order_and_concurrency_across_leads);
    tcase_add_test(tc, rate_limit_spaces_starts);
    tcase_add_test(tc, concurrency_limit_caps_calls_in_flight);
    tcase_add_test(tc, retry_after_is_a_floor);
    tcase_add_test(tc, rate_limited_uses_no_attempt_and_pauses_the_integration);
    tcase_add_test(tc, rate_limited_without_a_hint_doubles_the_pause_until_a_call_gets_through);
    tcase_add_test(tc, rate_limited_answers_to_calls_already_in_flight_do_not_stack);
    tcase_add_test(tc, rate_limited_answers_to_calls_sent_before_the_pause_do_not_escalate_it);
    tcase_add_test(tc, retry_after_past_max_pause_pauses_for_max_pause);
    tcase_add_test(tc, wall_clock_step_back_does_not_stall_the_bucket);
    tcase_add_test(tc, wall_clock_step_forward_keeps_the_pause);
    tcase_add_test(tc, attempt_cap_dead_letters_with_the_last_reason);
    tcase_add_test(tc, age_cap_dead_letters);
    tcase_add_test(tc, fail_is_dead_at_once);
    tcase_add_test(tc, auth_failures_break_then_a_probe_resumes);
    tcase_add_test(tc, replacing_a_broken_integration_probes_at_once);
    tcase_add_test(tc, replacing_an_integration_keeps_its_request_budget);
    tcase_add_test(tc, updating_an_unchanged_integration_keeps_its_calls);
    tcase_add_test(tc, plugin_timeout_retries_and_cancels);
    tcase_add_test(tc, double_completion_is_ignored);
    tcase_add_test(tc, invalid_status_becomes_retry);
    tcase_add_test(tc, replay_runs_a_dead_job_again);
    tcase_add_test(tc, jobs_wait_for_their_integration);
    tcase_add_test(tc, a_failed_outcome_write_is_retried_even_when_memory_is_short);
    tcase_add_test(tc, outcomes_of_one_turn_share_a_batch);
    tcase_add_test(tc, free_with_calls_in_flight);
    tcase_add_test(tc, host_http_classify_drop_and_redact);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    event_set_mem_functions(libevent_malloc, libevent_realloc, free);
    return lb_run_suite_tap(make_suite());
}
