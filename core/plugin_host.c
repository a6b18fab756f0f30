/* plugin_host.c: lb_core_api for the daemon, integrations and calls; see
 * plugin_host.h for the contract. */
#include "plugin_host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limiter.h"
#include "log.h"
#include "plugin_api.h"

#define DEFAULT_CALL_TIMEOUT_MS 30000
/* A live handle's first word: complete() on anything else is refused rather
 * than trusted (it cannot be a call of ours). */
#define CALL_MAGIC 0x4c42434cu /* "LBCL" */
#define CALL_DEAD 0x44454144u  /* "DEAD": freed after its grace period */

struct lb_plugin_host {
    struct event_base *base;
    lb_http_client *http;
    lb_plugin_host_options opts;
    lb_core_api api; /* plugins keep a pointer to it */
};

enum call_kind { CALL_SUBMIT, CALL_VERIFY, CALL_LIST };

enum call_state {
    CALL_RUNNING,   /* waiting for the plugin */
    CALL_FINISHED,  /* result recorded (plugin or deadline); report pending */
    CALL_RETIRED,   /* reported or aborted; kept only to catch late completions */
};

/* One HTTP request of a call. */
struct lb_http {
    lb_call *call;
    lb_http_exchange *x;  /* NULL while paced */
    /* a request waiting for its integration's request budget: our copy */
    bool paced;
    lb_http_req req;
    char **headers;
    struct lb_http *pace_prev, *pace_next;
    lb_http_done done;
    void *ud;
    bool delivering; /* inside done: the handle is spent */
    char method[8];
    char *url;       /* as the plugin gave it; logged only redacted (loggable_url) */
    int64_t started_ms;
    struct lb_http *prev, *next;
};

struct lb_call {
    uint32_t magic;
    enum call_kind kind;
    enum call_state state;
    lb_integration *in;
    lb_call_done done;
    void *ud;
    struct event *deadline, *report;
    struct lb_http *requests; /* in flight */
    lb_call_report rep;
    lb_resource *resources;
    size_t n_resources, cap_resources;
    int64_t started_ms, retired_ms;
    lb_call *prev, *next; /* the integration's live list, or its retired FIFO */
};

struct lb_integration {
    lb_plugin_host *host;
    const lb_plugin *plugin;
    void *instance;
    lb_settings *settings;
    char *account, *id;
    double rate_per_s;
    uint32_t burst, concurrency;
    lb_call *live;
    size_t n_live;
    lb_call *retired, *retired_tail; /* oldest first */
    /* Provider rate limits count HTTP requests, and one job may make several
     * (look up, create, tag): the request budget is spent here, per request. */
    lb_token_bucket request_budget;
    struct lb_http *paced_head, *paced_tail;
    struct event *pace_ev;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The request budget's clock, to the microsecond. */
static double mono_ms_fine(void) { return lb_clock_ms_fine(CLOCK_MONOTONIC); }

static void log_call(const lb_call *call, enum lb_log_level level, const char *msg)
{
    static const char *const kinds[] = {"submit", "verify", "list_resources"};
    lb_log(level, msg, "integration", lb_settings_label(call->in->settings), "provider", call->in->plugin->name,
           "call", kinds[call->kind], NULL);
}

/* ---- the plugin-facing log ---------------------------------------------------- */

static void host_log(const lb_settings *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void host_log(const lb_settings *s, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lb_api_vlog(s, level, fmt, ap);
    va_end(ap);
}

/* ---- HTTP requests of a call ------------------------------------------------- */

static void unlink_request(struct lb_http *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else if (h->call->requests == h)
        h->call->requests = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
}

static void free_request_copy(struct lb_http *h)
{
    for (char **p = h->headers; p && *p; p++)
        free(*p);
    free(h->headers);
    free((char *)h->req.url);
    free((char *)h->req.body);
    h->headers = NULL;
    h->req.url = h->req.body = NULL;
}

static void unpace(struct lb_http *h)
{
    lb_integration *in = h->call->in;
    if (!h->paced)
        return;
    if (h->pace_prev)
        h->pace_prev->pace_next = h->pace_next;
    else
        in->paced_head = h->pace_next;
    if (h->pace_next)
        h->pace_next->pace_prev = h->pace_prev;
    else
        in->paced_tail = h->pace_prev;
    h->pace_prev = h->pace_next = NULL;
    h->paced = false;
}

static void free_request(struct lb_http *h)
{
    unpace(h);
    free_request_copy(h);
    free(h->url);
    free(h);
}

/* What a log line may show of a URL: no query string (tokens travel there)
 * and no secret setting anywhere. */
static void loggable_url(const lb_settings *s, const char *url, char *clean, size_t len)
{
    char path[1024];
    size_t n = strcspn(url, "?#");
    snprintf(path, sizeof path, "%.*s", (int)(n < sizeof path ? n : sizeof path - 1), url);
    lb_redact(s, path, clean, len);
}

/* Formatted only when the line is written: most answers log at debug. */
static void log_response(const struct lb_http *h, const lb_http_resp *resp)
{
    enum lb_log_level level = resp->transport_error ? LB_LOG_WARN : resp->status >= 400 ? LB_LOG_INFO : LB_LOG_DEBUG;
    if (!lb_log_enabled(level))
        return;
    char status[16], ms[24], err[512] = "", url[1200] = "";
    if (h->url != NULL)
        loggable_url(h->call->in->settings, h->url, url, sizeof url);
    snprintf(status, sizeof status, "%ld", resp->status);
    snprintf(ms, sizeof ms, "%lld", (long long)(mono_ms() - h->started_ms));
    if (resp->transport_error && resp->error != NULL)
        lb_redact(h->call->in->settings, resp->error, err, sizeof err);
    lb_log(level, "provider http", "integration", lb_settings_label(h->call->in->settings), "method", h->method,
           "url", url, "status", status, "ms", ms, err[0] ? "error" : NULL, err, NULL);
}

static void on_http_done(const lb_http_resp *resp, void *ud)
{
    struct lb_http *h = ud;
    log_response(h, resp);
    /* Unlinked before the plugin runs: a complete() from inside done must
     * not cancel the exchange that is being delivered. */
    unlink_request(h);
    h->delivering = true;
    h->done(resp, h->ud);
    free_request(h);
}

static void arm_pacing(lb_integration *in)
{
    int64_t wait = lb_bucket_wait_ms(&in->request_budget, mono_ms_fine());
    struct timeval tv = {wait / 1000, (wait % 1000) * 1000};
    event_base_update_cache_time(in->host->base);
    evtimer_add(in->pace_ev, &tv);
}

/* Keeps a copy of the request (the plugin's may not outlive this call) and
 * queues it for when the integration's request budget allows. */
static int pace(lb_integration *in, struct lb_http *h, const lb_http_req *req)
{
    size_t n = 0;
    while (req->headers && req->headers[n])
        n++;
    h->headers = calloc(n + 1, sizeof *h->headers);
    h->req = *req;
    h->req.url = strdup(req->url);
    h->req.body = NULL;
    if (req->body) {
        char *body = malloc(req->body_len ? req->body_len : 1);
        if (body)
            memcpy(body, req->body, req->body_len);
        h->req.body = body;
    }
    bool ok = h->headers && h->req.url && (!req->body || h->req.body);
    for (size_t i = 0; ok && i < n; i++)
        ok = (h->headers[i] = strdup(req->headers[i])) != NULL;
    if (!ok)
        return -1;
    h->req.headers = (const char *const *)h->headers;
    h->paced = true;
    h->pace_prev = in->paced_tail;
    if (in->paced_tail)
        in->paced_tail->pace_next = h;
    else
        in->paced_head = h;
    in->paced_tail = h;
    if (!evtimer_pending(in->pace_ev, NULL))
        arm_pacing(in);
    return 0;
}

/* A paced request whose exchange cannot even start is answered as a
 * transport error, so its plugin still hears back exactly once. */
static void fail_unstartable(struct lb_http *h)
{
    lb_http_resp resp = {.transport_error = 1, .error = "cannot start the request", .body = "", .body_len = 0};
    unlink_request(h);
    h->delivering = true;
    h->done(&resp, h->ud);
    free_request(h);
}

static void on_pace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lb_integration *in = arg;
    while (in->paced_head && lb_bucket_take(&in->request_budget, mono_ms_fine())) {
        struct lb_http *h = in->paced_head;
        unpace(h);
        h->started_ms = mono_ms();
        h->x = lb_http_client_request(in->host->http, &h->req, on_http_done, h);
        free_request_copy(h); /* the client keeps its own copy of the body */
        if (h->x == NULL)
            fail_unstartable(h);
    }
    if (in->paced_head)
        arm_pacing(in);
}

static lb_http *host_http_request(lb_call *call, const lb_http_req *req, lb_http_done done, void *ud)
{
    if (call == NULL || call->magic != CALL_MAGIC || req == NULL || req->method == NULL || req->url == NULL)
        return NULL;
    if (call->state != CALL_RUNNING) {
        log_call(call, LB_LOG_ERROR, "plugin bug: http_request on a finished call: refused");
        return NULL;
    }
    /* checked here, not only by the client: a paced request would fail only
     * when its turn came */
    if (!lb_http_method_supported(req->method) || (strcmp(req->method, "HEAD") == 0 && req->body)) {
        log_call(call, LB_LOG_ERROR, "plugin bug: http_request with a method the ABI does not name, or HEAD "
                                     "with a body: refused");
        return NULL;
    }
    lb_plugin_host *host = call->in->host;
    struct lb_http *h = calloc(1, sizeof *h);
    if (h == NULL || host->http == NULL) {
        free(h);
        return NULL;
    }
    h->call = call;
    h->done = done;
    h->ud = ud;
    snprintf(h->method, sizeof h->method, "%s", req->method);
    h->url = strdup(req->url); /* a failed copy only leaves the log line without it */
    h->started_ms = mono_ms();
    lb_integration *in = call->in;
    if (in->rate_per_s > 0 && !lb_bucket_take(&in->request_budget, mono_ms_fine())) {
        if (pace(in, h, req) != 0) {
            free_request(h);
            return NULL;
        }
    } else {
        h->x = lb_http_client_request(host->http, req, on_http_done, h);
        if (h->x == NULL) {
            free_request(h);
            return NULL;
        }
    }
    h->next = call->requests;
    if (call->requests)
        call->requests->prev = h;
    call->requests = h;
    return h;
}

static void host_http_cancel(lb_http *h)
{
    if (h == NULL)
        return;
    if (h->delivering)
        return; /* cancelling itself from its own done: the handle is spent anyway */
    if (h->x)
        lb_http_client_cancel(h->x);
    unlink_request(h);
    free_request(h);
}

static void drop_requests(lb_call *call)
{
    while (call->requests != NULL) {
        struct lb_http *h = call->requests;
        if (h->x)
            lb_http_client_cancel(h->x);
        unlink_request(h);
        free_request(h);
    }
}

static const char *host_http_header(const lb_http_resp *resp, const char *name)
{
    return lb_http_client_header(resp, name);
}

static lb_status host_http_classify(const lb_http_resp *resp, uint32_t *retry_after_ms)
{
    return lb_http_classify_with(resp, retry_after_ms, lb_http_client_header);
}

/* ---- call lifetime ------------------------------------------------------------ */

static void unlink_live(lb_call *call)
{
    lb_integration *in = call->in;
    if (call->prev)
        call->prev->next = call->next;
    else
        in->live = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    in->n_live--;
}

static void free_call(lb_call *call)
{
    call->magic = CALL_DEAD;
    free(call);
}

/* Frees retired handles whose grace period is over (oldest first). */
static void sweep_retired(lb_integration *in, int64_t now_ms, bool all)
{
    int64_t grace = in->host->opts.retire_ms;
    while (in->retired != NULL && (all || now_ms - in->retired->retired_ms >= grace)) {
        lb_call *old = in->retired;
        in->retired = old->next;
        if (in->retired == NULL)
            in->retired_tail = NULL;
        free_call(old);
    }
}

/* Releases everything but the handle itself, which waits out its grace
 * period so a late complete() finds CALL_RETIRED instead of freed memory. */
static void retire(lb_call *call)
{
    lb_integration *in = call->in;
    drop_requests(call);
    event_free(call->deadline);
    event_free(call->report);
    call->deadline = call->report = NULL;
    for (size_t i = 0; i < call->n_resources; i++) {
        free(call->resources[i].id);
        free(call->resources[i].name);
    }
    free(call->resources);
    call->resources = NULL;
    call->n_resources = 0;
    unlink_live(call);
    call->state = CALL_RETIRED;
    call->retired_ms = mono_ms();
    if (in->retired_tail)
        in->retired_tail->next = call;
    else
        in->retired = call;
    in->retired_tail = call;
    sweep_retired(in, call->retired_ms, false);
}

static void on_report(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lb_call *call = arg;
    call->rep.elapsed_ms = (double)(mono_ms() - call->started_ms);
    call->rep.resources = call->resources;
    call->rep.n_resources = call->n_resources;
    call->done(&call->rep, call->ud);
    retire(call);
}

static void set_reason(lb_result *r, const char *reason)
{
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

/* Copies a plugin's result, making it safe to store and log. */
static void check_result(lb_call *call, const lb_result *in)
{
    lb_result *r = &call->rep.result;
    if (in == NULL) {
        memset(r, 0, sizeof *r);
    } else {
        *r = *in;
    }
    r->provider_ref[sizeof r->provider_ref - 1] = '\0';
    r->reason[sizeof r->reason - 1] = '\0';
    if (r->status < LB_OK || r->status > LB_AUTH) {
        call->rep.plugin_bug = true;
        r->status = LB_RETRY;
        r->retry_after_ms = 0;
        r->rate_limited = 0;
        set_reason(r, "plugin bug: invalid status");
        log_call(call, LB_LOG_ERROR, "plugin bug: complete() with an invalid status (a zeroed result?)");
        return;
    }
    if (r->status != LB_RETRY) {
        r->retry_after_ms = 0;
        r->rate_limited = 0;
    }
    char clean[sizeof r->reason];
    lb_redact(call->in->settings, r->reason, clean, sizeof clean);
    memcpy(r->reason, clean, sizeof clean);
}

static void finish(lb_call *call)
{
    call->state = CALL_FINISHED;
    drop_requests(call);
    evtimer_del(call->deadline);
    event_active(call->report, EV_TIMEOUT, 0);
}

static void host_complete(lb_call *call, const lb_result *result)
{
    if (call == NULL)
        return;
    if (call->magic != CALL_MAGIC) {
        lb_log(LB_LOG_ERROR, "plugin bug: complete() on an unknown or long-finished call: ignored", NULL);
        return;
    }
    if (call->state != CALL_RUNNING) {
        log_call(call, LB_LOG_ERROR, "plugin bug: complete() on a finished call: ignored");
        return;
    }
    check_result(call, result);
    finish(call);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lb_call *call = arg;
    if (call->state != CALL_RUNNING)
        return;
    log_call(call, LB_LOG_WARN, "plugin did not complete in time: cancelled");
    /* Finished before cancel(): a complete() from inside cancel is then the
     * ignored second completion, and http_request is refused. */
    call->state = CALL_FINISHED;
    call->rep.timed_out = true;
    call->rep.result = (lb_result){.status = LB_RETRY};
    set_reason(&call->rep.result, "plugin timeout");
    call->in->plugin->cancel(call->in->instance, call);
    finish(call);
}

static void host_resource_add(lb_call *call, const char *id, const char *name)
{
    if (call == NULL || call->magic != CALL_MAGIC || id == NULL)
        return;
    if (call->kind != CALL_LIST || call->state != CALL_RUNNING) {
        log_call(call, LB_LOG_ERROR, "plugin bug: resource_add outside a running list_resources call: ignored");
        return;
    }
    if (call->n_resources == call->cap_resources) {
        size_t cap = call->cap_resources ? call->cap_resources * 2 : 16;
        lb_resource *grown = realloc(call->resources, cap * sizeof *grown);
        if (grown == NULL)
            return;
        call->resources = grown;
        call->cap_resources = cap;
    }
    lb_resource *r = &call->resources[call->n_resources];
    r->id = strdup(id);
    r->name = name ? strdup(name) : NULL;
    if (r->id == NULL || (name != NULL && r->name == NULL)) {
        free(r->id);
        free(r->name);
        return;
    }
    call->n_resources++;
}

static lb_call *new_call(lb_integration *in, enum call_kind kind, lb_call_done done, void *ud)
{
    lb_plugin_host *h = in->host;
    lb_call *call = calloc(1, sizeof *call);
    if (call == NULL)
        return NULL;
    call->deadline = evtimer_new(h->base, on_deadline, call);
    call->report = event_new(h->base, -1, 0, on_report, call);
    if (call->deadline == NULL || call->report == NULL) {
        if (call->deadline)
            event_free(call->deadline);
        if (call->report)
            event_free(call->report);
        free(call);
        return NULL;
    }
    call->magic = CALL_MAGIC;
    call->kind = kind;
    call->state = CALL_RUNNING;
    call->in = in;
    call->done = done;
    call->ud = ud;
    call->started_ms = mono_ms();
    struct timeval tv = {h->opts.call_timeout_ms / 1000, (h->opts.call_timeout_ms % 1000) * 1000};
    /* libevent measures from the time cached at the start of this loop
     * turn; a long turn would make the deadline fire early. */
    event_base_update_cache_time(h->base);
    evtimer_add(call->deadline, &tv);
    call->next = in->live;
    if (in->live)
        in->live->prev = call;
    in->live = call;
    in->n_live++;
    return call;
}

lb_call *lb_call_submit(lb_integration *in, const lb_job *job, lb_call_done done, void *ud)
{
    lb_call *call = new_call(in, CALL_SUBMIT, done, ud);
    if (call != NULL)
        in->plugin->submit(in->instance, call, job);
    return call;
}

lb_call *lb_call_verify(lb_integration *in, lb_call_done done, void *ud)
{
    lb_call *call = new_call(in, CALL_VERIFY, done, ud);
    if (call != NULL)
        in->plugin->verify(in->instance, call);
    return call;
}

lb_call *lb_call_list_resources(lb_integration *in, const char *kind, lb_call_done done, void *ud)
{
    lb_call *call = new_call(in, CALL_LIST, done, ud);
    if (call == NULL)
        return NULL;
    if (in->plugin->list_resources != NULL) {
        in->plugin->list_resources(in->instance, call, kind);
        return call;
    }
    lb_result r = {.status = LB_FAIL};
    set_reason(&r, "this provider cannot list resources");
    host_complete(call, &r);
    return call;
}

void lb_call_abort(lb_call *call)
{
    if (call == NULL || call->magic != CALL_MAGIC || call->state == CALL_RETIRED)
        return;
    if (call->state == CALL_RUNNING) {
        call->state = CALL_FINISHED; /* as on_deadline: a complete() inside cancel is ignored */
        call->in->plugin->cancel(call->in->instance, call);
    }
    retire(call);
}

/* ---- the host ------------------------------------------------------------------ */

lb_plugin_host *lb_plugin_host_new(struct event_base *base, lb_http_client *http, const lb_plugin_host_options *opts)
{
    lb_plugin_host *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->base = base;
    h->http = http;
    if (opts != NULL)
        h->opts = *opts;
    if (h->opts.call_timeout_ms == 0)
        h->opts.call_timeout_ms = DEFAULT_CALL_TIMEOUT_MS;
    if (h->opts.retire_ms == 0)
        h->opts.retire_ms = h->opts.call_timeout_ms;
    lb_core_api_fill(&h->api);
    h->api.log = host_log;
    h->api.http_request = host_http_request;
    h->api.http_cancel = host_http_cancel;
    h->api.http_header = host_http_header;
    h->api.http_classify = host_http_classify;
    h->api.complete = host_complete;
    h->api.resource_add = host_resource_add;
    return h;
}

void lb_plugin_host_free(lb_plugin_host *h) { free(h); }

const lb_core_api *lb_plugin_host_api(const lb_plugin_host *h) { return &h->api; }

/* ---- integrations --------------------------------------------------------------- */

static lb_settings *build_settings(const char *account, const lb_integration_config *cfg, const lb_plugin *plugin,
                                   lb_error *err)
{
    char label[256];
    snprintf(label, sizeof label, "%s/%s", account, cfg->id);
    lb_settings *s = lb_settings_new(label);
    if (s == NULL) {
        lb_fail(err, label, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_settings; i++)
        if (lb_settings_set(s, cfg->keys[i], cfg->values[i], false) != 0) {
            lb_fail(err, label, "out of memory");
            lb_settings_free(s);
            return NULL;
        }
    if (lb_plugin_validate_settings(plugin, s, err) != 0 || lb_settings_resolve_secrets(s, err) != 0) {
        lb_settings_free(s);
        return NULL;
    }
    return s;
}

static void pick_limits(lb_integration *in, const lb_integration_config *cfg)
{
    in->rate_per_s = cfg->rate_per_s > 0 ? cfg->rate_per_s : in->plugin->default_rate_per_s;
    in->burst = cfg->burst > 0 ? cfg->burst : in->plugin->default_burst;
    in->concurrency = cfg->concurrency > 0 ? cfg->concurrency : in->plugin->default_concurrency;
}

static int init_instance(lb_integration *in, lb_error *err)
{
    char msg[256] = "", clean[256];
    if (in->plugin->init(&in->host->api, in->settings, &in->instance, msg, sizeof msg) == 0)
        return 0;
    msg[sizeof msg - 1] = '\0';
    lb_redact(in->settings, msg, clean, sizeof clean);
    return lb_fail(err, lb_settings_label(in->settings), "%s: init failed: %s", in->plugin->name,
                   clean[0] ? clean : "no reason given");
}

lb_integration *lb_integration_new(lb_plugin_host *h, const char *account, const lb_integration_config *cfg,
                                   const lb_plugin *plugin, lb_error *err)
{
    lb_integration *in = calloc(1, sizeof *in);
    if (in == NULL) {
        lb_fail(err, cfg->id, "out of memory");
        return NULL;
    }
    in->host = h;
    in->plugin = plugin;
    in->account = strdup(account);
    in->id = strdup(cfg->id);
    if (in->account == NULL || in->id == NULL) {
        lb_fail(err, cfg->id, "out of memory");
    } else if ((in->settings = build_settings(account, cfg, plugin, err)) != NULL && init_instance(in, err) == 0) {
        pick_limits(in, cfg);
        lb_bucket_init(&in->request_budget, in->rate_per_s, in->burst, mono_ms_fine());
        in->pace_ev = evtimer_new(h->base, on_pace, in);
        if (in->pace_ev)
            return in;
        lb_fail(err, cfg->id, "out of memory");
        in->plugin->destroy(in->instance);
    }
    lb_settings_free(in->settings);
    free(in->account);
    free(in->id);
    free(in);
    return NULL;
}

lb_integration *lb_integration_from_registry(lb_plugin_host *h, const char *account, const lb_integration_config *cfg,
                                             const lb_plugin_registry *reg, lb_error *err)
{
    const lb_loaded_plugin *p = lb_registry_find(reg, cfg->provider);
    if (p == NULL) {
        lb_fail(err, cfg->id, "unknown provider \"%s\": no such plugin loaded", cfg->provider);
        return NULL;
    }
    return lb_integration_new(h, account, cfg, &p->desc, err);
}

void lb_integration_free(lb_integration *in)
{
    if (in == NULL)
        return;
    while (in->live != NULL)
        lb_call_abort(in->live);
    in->plugin->destroy(in->instance);
    sweep_retired(in, 0, true);
    if (in->pace_ev)
        event_free(in->pace_ev);
    lb_settings_free(in->settings);
    free(in->account);
    free(in->id);
    free(in);
}

const char *lb_integration_account(const lb_integration *in) { return in->account; }
const char *lb_integration_id(const lb_integration *in) { return in->id; }
const lb_plugin *lb_integration_plugin(const lb_integration *in) { return in->plugin; }
size_t lb_integration_live_calls(const lb_integration *in) { return in->n_live; }

/* The limits compared are those picked (override, else the plugin's default):
 * an override written equal to the default runs the instance the same way. */
bool lb_integration_same(const lb_integration *a, const lb_integration *b)
{
    return a->plugin == b->plugin && strcmp(a->account, b->account) == 0 && strcmp(a->id, b->id) == 0 &&
           a->rate_per_s == b->rate_per_s && a->burst == b->burst && a->concurrency == b->concurrency &&
           lb_settings_equal(a->settings, b->settings);
}

void lb_integration_carry_budget(lb_integration *in, const lb_integration *old)
{
    lb_bucket_carry(&in->request_budget, &old->request_budget, mono_ms_fine());
}

void lb_integration_limits(const lb_integration *in, double *rate_per_s, uint32_t *burst, uint32_t *concurrency)
{
    *rate_per_s = in->rate_per_s;
    *burst = in->burst;
    *concurrency = in->concurrency;
}
