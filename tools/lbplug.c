/* lbplug: a command-line host for one provider plugin, to test it against a
 * real (usually fake) HTTP server without running listbossd.
 *
 * It offers the plugin the same lb_core_api as the daemon, except that HTTP
 * is a blocking libcurl easy client: http_request only queues; after the
 * plugin's entry point returns, the host runs the queue one request at a
 * time, calling each `done` (which may queue more), until the call completes.
 * The host is strict where the daemon must be forgiving: completing twice or
 * never, an invalid status, or touching a call after completing it are all
 * reported as contract breaches (exit 3), so plugin bugs surface in tests.
 *
 * Exit: 0 the call completed (any status); 2 usage, load or settings error;
 * 3 the plugin broke the contract. stdout: one JSON object. stderr: logfmt,
 * with secret values and Authorization headers redacted. */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "http_client.h"
#include "log.h"
#include "plugin_api.h"
#include "plugin_loader.h"

#define EXIT_USAGE 2
#define EXIT_CONTRACT 3
#define DEFAULT_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 10000
#define BODY_MAX (8u << 20) /* like the daemon's cap: a provider answer is never this big */

static const char usage_text[] =
    "usage:\n"
    "  lbplug PLUGIN.so [--set KEY=VALUE]... describe\n"
    "  lbplug PLUGIN.so [--set KEY=VALUE]... verify\n"
    "  lbplug PLUGIN.so [--set KEY=VALUE]... list KIND\n"
    "  lbplug PLUGIN.so [--set KEY=VALUE]... submit ACTION --email E [--name N] [--first-name F]\n"
    "        [--last-name L] [--phone P] [--contact-ref R] [--billet-url U] [--param K=V]...\n"
    "        [--attempt N] [--key IDEMPOTENCY_KEY]\n"
    "\n"
    "--set values of secret keys may be references: env:NAME, file:PATH.\n"
    "Environment: LBPLUG_LOG_LEVEL=debug|info|warn|error (default info; debug logs\n"
    "request headers and bodies, redacted).\n"
    "Exit: 0 call completed, 2 usage/load/settings error, 3 plugin broke the contract.\n";

/* ---- command line ---------------------------------------------------------- */

typedef struct options {
    const char *plugin_path;
    const char **sets; /* "KEY=VALUE" */
    size_t nsets;
    const char *command; /* describe, verify, list, submit */
    const char *arg;     /* KIND or ACTION */
    lb_job job;
    const char **params; /* "k", "v", ..., NULL */
    size_t nparams;
    char email[256];
    char key[64];
} options;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lbplug: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n\n", stderr);
    fputs(usage_text, stderr);
    va_end(ap);
    return -1;
}

/* The job's string members, each with its option name. */
static const char **job_field(lb_job *job, const char *opt)
{
    static const char *const names[] = {"--name", "--first-name", "--last-name", "--phone", "--contact-ref",
                                        "--billet-url", "--key"};
    const char **fields[] = {&job->name,        &job->first_name, &job->last_name,      &job->phone,
                             &job->contact_ref, &job->billet_url, &job->idempotency_key};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(opt, names[i]) == 0)
            return fields[i];
    return NULL;
}

static int parse_attempt(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!isdigit((unsigned char)*s) || *end != '\0' || v < 1 || v > 1000000)
        return usage_error("--attempt needs a whole number from 1, got \"%s\"", s);
    *out = (uint32_t)v;
    return 0;
}

static int parse_email(options *o, const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof o->email || strchr(s, '@') == NULL)
        return usage_error("--email needs an address, got \"%s\"", s);
    for (size_t i = 0; i <= n; i++)
        o->email[i] = (char)tolower((unsigned char)s[i]); /* jobs carry lower-case e-mails */
    o->job.email = o->email;
    return 0;
}

static int add_param(options *o, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv)
        return usage_error("--param needs KEY=VALUE, got \"%s\"", kv);
    char *k = strndup(kv, (size_t)(eq - kv));
    if (k == NULL)
        return usage_error("out of memory");
    o->params[o->nparams++] = k; /* freed by free_options: even slots are ours */
    o->params[o->nparams++] = eq + 1;
    o->params[o->nparams] = NULL;
    return 0;
}

/* One submit option at argv[*i] (and its value). 0 or -1. */
static int parse_submit_opt(options *o, int argc, char **argv, int *i)
{
    const char *opt = argv[*i];
    if (*i + 1 >= argc)
        return usage_error("%s needs a value", opt);
    const char *val = argv[++*i];
    const char **field = job_field(&o->job, opt);
    if (field != NULL) {
        *field = val;
        return 0;
    }
    if (strcmp(opt, "--email") == 0)
        return parse_email(o, val);
    if (strcmp(opt, "--param") == 0)
        return add_param(o, val);
    if (strcmp(opt, "--attempt") == 0)
        return parse_attempt(val, &o->job.attempt);
    return usage_error("unknown option %s", opt);
}

static int parse_command(options *o, int argc, char **argv, int i)
{
    o->command = argv[i++];
    bool needs_arg = strcmp(o->command, "list") == 0 || strcmp(o->command, "submit") == 0;
    if (!needs_arg && strcmp(o->command, "describe") != 0 && strcmp(o->command, "verify") != 0)
        return usage_error("unknown command \"%s\"", o->command);
    if (needs_arg) {
        if (i >= argc || argv[i][0] == '-')
            return usage_error("%s needs %s", o->command, strcmp(o->command, "list") == 0 ? "a KIND" : "an ACTION");
        o->arg = argv[i++];
    }
    bool submit = strcmp(o->command, "submit") == 0;
    for (; i < argc; i++)
        if (!submit || parse_submit_opt(o, argc, argv, &i) != 0)
            return submit ? -1 : usage_error("unexpected argument \"%s\"", argv[i]);
    if (submit && o->job.email == NULL)
        return usage_error("submit needs --email");
    return 0;
}

static int parse_args(options *o, int argc, char **argv)
{
    if (argc < 3)
        return usage_error("missing %s", argc < 2 ? "PLUGIN.so" : "command");
    o->plugin_path = argv[1];
    o->sets = calloc((size_t)argc, sizeof *o->sets);
    o->params = calloc((size_t)argc + 1, sizeof *o->params);
    if (o->sets == NULL || o->params == NULL)
        return usage_error("out of memory");
    o->job.attempt = 1;
    o->job.params = o->params;
    int i = 2;
    for (; i < argc && strcmp(argv[i], "--set") == 0; i += 2) {
        if (i + 1 >= argc || strchr(argv[i + 1], '=') == NULL || argv[i + 1][0] == '=')
            return usage_error("--set needs KEY=VALUE");
        o->sets[o->nsets++] = argv[i + 1];
    }
    if (i >= argc)
        return usage_error("missing command");
    return parse_command(o, argc, argv, i);
}

static void free_options(options *o)
{
    for (size_t i = 0; i < o->nparams; i += 2)
        free((char *)o->params[i]);
    free(o->params);
    free(o->sets);
}

/* ---- the call and its requests ------------------------------------------- */

enum req_state { REQ_QUEUED, REQ_RUNNING, REQ_DONE, REQ_CANCELLED };

struct lb_http {
    struct lb_http *next; /* every request of the call, in order; freed at the end */
    lb_call *call;
    enum req_state state;
    char *method, *url, *body;
    size_t body_len;
    bool has_body;
    struct curl_slist *headers;
    uint32_t timeout_ms;
    lb_http_done done;
    void *ud;
};

struct lb_call {
    const lb_settings *settings; /* for redaction */
    CURL *curl;                  /* one easy handle, so connections are reused */
    bool is_list;
    struct lb_http *requests, **tail;
    unsigned performed;
    int completions;
    lb_result result;
    json_object *resources;
    char breach[300]; /* the first contract breach, "" if none */
};

static void breach(lb_call *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void breach(lb_call *call, const char *fmt, ...)
{
    char msg[sizeof call->breach];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lb_log(LB_LOG_ERROR, "plugin broke the contract", "reason", msg, NULL);
    if (call->breach[0] == '\0')
        snprintf(call->breach, sizeof call->breach, "%s", msg);
}

static void free_request(struct lb_http *r)
{
    free(r->method);
    free(r->url);
    free(r->body);
    curl_slist_free_all(r->headers);
    free(r);
}

/* Copies the plugin's request: its strings may live on the plugin's stack. */
static struct lb_http *copy_request(const lb_http_req *req)
{
    struct lb_http *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->method = strdup(req->method);
    r->url = strdup(req->url);
    r->has_body = req->body != NULL;
    r->body_len = req->body ? req->body_len : 0;
    r->body = malloc(r->body_len + 1);
    bool ok = r->method && r->url && r->body;
    if (ok && r->body_len)
        memcpy(r->body, req->body, r->body_len);
    if (ok)
        r->body[r->body_len] = '\0'; /* for logging; curl gets the length */
    /* "Expect:" stops curl's 100-continue pause before larger bodies. */
    ok = ok && (r->headers = curl_slist_append(NULL, "Expect:")) != NULL;
    for (size_t i = 0; ok && req->headers != NULL && req->headers[i] != NULL; i++) {
        struct curl_slist *h = curl_slist_append(r->headers, req->headers[i]);
        ok = h != NULL;
    }
    r->timeout_ms = req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    if (!ok) {
        free_request(r);
        return NULL;
    }
    return r;
}

static lb_http *host_http_request(lb_call *call, const lb_http_req *req, lb_http_done done, void *ud)
{
    if (call == NULL)
        return NULL;
    if (call->completions > 0) {
        breach(call, "http_request after complete(): the call is finished");
        return NULL;
    }
    if (req == NULL || req->url == NULL || done == NULL || !lb_http_method_supported(req->method)) {
        breach(call, "http_request with %s", req == NULL ? "no request" : req->url == NULL ? "no url"
                                            : done == NULL ? "no done callback" : "an unknown method");
        return NULL;
    }
    if (strcmp(req->method, "HEAD") == 0 && req->body != NULL) {
        breach(call, "http_request: HEAD with a body"); /* the daemon refuses it too */
        return NULL;
    }
    struct lb_http *r = copy_request(req);
    if (r == NULL) {
        lb_log(LB_LOG_ERROR, "out of memory", NULL);
        return NULL;
    }
    r->call = call;
    r->done = done;
    r->ud = ud;
    *call->tail = r;
    call->tail = &r->next;
    return r;
}

static void host_http_cancel(lb_http *h)
{
    if (h == NULL)
        return;
    lb_call *call = h->call;
    if (call->completions > 0)
        breach(call, "http_cancel after complete(): cancel requests before completing");
    else if (h->state == REQ_DONE)
        breach(call, "http_cancel on a request whose done callback already ran (the handle is spent)");
    else if (h->state == REQ_CANCELLED)
        breach(call, "http_cancel twice on the same request");
    else if (h->state == REQ_RUNNING)
        lb_log(LB_LOG_WARN, "http_cancel from the request's own done callback: ignored", NULL);
    if (h->state == REQ_QUEUED)
        h->state = REQ_CANCELLED;
}

static void host_complete(lb_call *call, const lb_result *result)
{
    if (call == NULL)
        return;
    if (++call->completions > 1) {
        breach(call, "complete() called %d times for one call", call->completions);
        return;
    }
    if (result == NULL) {
        breach(call, "complete() with a NULL result");
        return;
    }
    call->result = *result;
    /* The plugin may have left the strings unterminated: end them ourselves. */
    call->result.provider_ref[sizeof call->result.provider_ref - 1] = '\0';
    call->result.reason[sizeof call->result.reason - 1] = '\0';
    if (result->status < LB_OK || result->status > LB_AUTH)
        breach(call, "complete() with invalid status %d (0 is a zeroed result)", (int)result->status);
}

static void host_resource_add(lb_call *call, const char *id, const char *name)
{
    if (call == NULL)
        return;
    if (!call->is_list || call->completions > 0 || id == NULL) {
        breach(call, "resource_add %s", !call->is_list ? "outside list_resources"
                                        : id == NULL   ? "with a NULL id" : "after complete()");
        return;
    }
    json_object *item = json_object_new_object();
    json_object_object_add(item, "id", json_object_new_string(id));
    json_object_object_add(item, "name", name ? json_object_new_string(name) : NULL);
    json_object_array_add(call->resources, item);
}

/* ---- running one request with libcurl ---------------------------------- */

typedef struct body_buf {
    char *data;
    size_t len;
    bool too_big;
} body_buf;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    body_buf *b = ud;
    size_t add = size * n;
    if (b->len + add > BODY_MAX) {
        b->too_big = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    char *grown = realloc(b->data, b->len + add + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + b->len, data, add);
    b->data = grown;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    return lb_header_list_add(ud, data, size * n) == 0 ? size * n : 0;
}

static void set_method(CURL *c, const struct lb_http *r)
{
    if (strcmp(r->method, "GET") == 0 && !r->has_body) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        return;
    }
    /* Any body, and POST/PUT/PATCH without one (so Content-Length: 0 is sent). */
    if (r->has_body || strcmp(r->method, "DELETE") != 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
}

static void set_options(CURL *c, const struct lb_http *r, body_buf *body, lb_header_list *headers, char *errbuf)
{
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    set_method(c, r);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* as the daemon: a redirect is an answer */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, headers);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

/* Debug logging of what was sent, with Authorization and secrets redacted. */
static void log_request_detail(const lb_call *call, const struct lb_http *r)
{
    char clean[2048];
    for (const struct curl_slist *h = r->headers->next; h != NULL; h = h->next) {
        lb_redact(call->settings, h->data, clean, sizeof clean);
        lb_log(LB_LOG_DEBUG, "http request header", "header", clean, NULL);
    }
    if (r->has_body) {
        lb_redact(call->settings, r->body, clean, sizeof clean);
        lb_log(LB_LOG_DEBUG, "http request body", "body", clean, NULL);
    }
}

static void log_response(const lb_call *call, const struct lb_http *r, const lb_http_resp *resp, double ms)
{
    char url[2048], status[16], elapsed[32], err[512];
    lb_redact(call->settings, r->url, url, sizeof url);
    snprintf(status, sizeof status, "%ld", resp->status);
    snprintf(elapsed, sizeof elapsed, "%.1f", ms);
    lb_redact(call->settings, resp->error ? resp->error : "", err, sizeof err);
    lb_log(resp->transport_error ? LB_LOG_WARN : LB_LOG_INFO, "http", "method", r->method, "url", url, "status",
           status, "ms", elapsed, resp->transport_error ? "error" : NULL, err, NULL);
    if (resp->body_len > 0) {
        char body[2048];
        lb_redact(call->settings, resp->body, body, sizeof body);
        lb_log(LB_LOG_DEBUG, "http response body", "body", body, NULL);
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Performs r and hands the answer to its done callback. */
static void perform(lb_call *call, struct lb_http *r)
{
    body_buf body = {NULL, 0, false};
    lb_header_list headers = {NULL, 0, 0};
    char errbuf[CURL_ERROR_SIZE] = "";
    set_options(call->curl, r, &body, &headers, errbuf);
    log_request_detail(call, r);
    double t0 = now_ms();
    CURLcode rc = curl_easy_perform(call->curl);
    lb_http_resp resp = {.body = body.data ? body.data : "", .body_len = body.len, .priv = &headers};
    if (rc == CURLE_OK) {
        curl_easy_getinfo(call->curl, CURLINFO_RESPONSE_CODE, &resp.status);
    } else {
        resp.transport_error = 1;
        resp.error = body.too_big ? "response body is larger than 8 MiB" : errbuf[0] ? errbuf : curl_easy_strerror(rc);
    }
    log_response(call, r, &resp, now_ms() - t0);
    call->performed++;
    r->state = REQ_RUNNING;
    r->done(&resp, r->ud);
    r->state = REQ_DONE;
    lb_header_list_clear(&headers);
    free(body.data);
}

static struct lb_http *next_queued(const lb_call *call)
{
    for (struct lb_http *r = call->requests; r != NULL; r = r->next)
        if (r->state == REQ_QUEUED)
            return r;
    return NULL;
}

/* Runs queued requests until the call completes or nothing is left. */
static void run_queue(lb_call *call)
{
    struct lb_http *r;
    while (call->completions == 0 && (r = next_queued(call)) != NULL)
        perform(call, r);
    unsigned left = 0;
    for (r = call->requests; r != NULL; r = r->next)
        left += r->state == REQ_QUEUED;
    if (left > 0) {
        char n[16];
        snprintf(n, sizeof n, "%u", left);
        lb_log(LB_LOG_WARN, "call completed with requests still queued: dropped without calling done "
               "(cancel them before completing)", "requests", n, NULL);
    }
}

static void free_call(lb_call *call)
{
    struct lb_http *r = call->requests;
    while (r != NULL) {
        struct lb_http *next = r->next;
        free_request(r);
        r = next;
    }
    json_object_put(call->resources);
}

/* ---- describe -------------------------------------------------------------- */

static json_object *jstr(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *describe_config(const lb_config_decl *d)
{
    json_object *arr = json_object_new_array();
    for (; d != NULL && d->key != NULL; d++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "key", jstr(d->key));
        json_object_object_add(o, "required", json_object_new_boolean(d->flags & LB_CFG_REQUIRED));
        json_object_object_add(o, "secret", json_object_new_boolean(d->flags & LB_CFG_SECRET));
        json_object_object_add(o, "default", jstr(d->default_value));
        json_object_object_add(o, "help", jstr(d->help));
        json_object_array_add(arr, o);
    }
    return arr;
}

static json_object *describe_params(const lb_param_decl *p)
{
    json_object *arr = json_object_new_array();
    for (; p != NULL && p->name != NULL; p++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", jstr(p->name));
        json_object_object_add(o, "required", json_object_new_boolean(p->flags & LB_PARAM_REQUIRED));
        json_object_object_add(o, "resource", jstr(p->resource));
        json_object_object_add(o, "help", jstr(p->help));
        json_object_array_add(arr, o);
    }
    return arr;
}

static json_object *describe_actions(const lb_action_decl *a)
{
    json_object *arr = json_object_new_array();
    for (; a != NULL && a->name != NULL; a++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", jstr(a->name));
        json_object_object_add(o, "label", jstr(a->label));
        json_object_object_add(o, "params", describe_params(a->params));
        json_object_object_add(o, "requires_action", jstr(a->requires_action));
        json_object_object_add(o, "requires_param", jstr(a->requires_param));
        json_object_array_add(arr, o);
    }
    return arr;
}

static json_object *describe(const lb_plugin *d)
{
    char abi[32];
    snprintf(abi, sizeof abi, "%u.%u", (unsigned)d->abi_major, (unsigned)d->abi_minor);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", jstr(d->name));
    json_object_object_add(o, "display_name", jstr(d->display_name));
    json_object_object_add(o, "version", jstr(d->version));
    json_object_object_add(o, "abi", json_object_new_string(abi));
    json_object_object_add(o, "config", describe_config(d->config));
    json_object_object_add(o, "actions", describe_actions(d->actions));
    json_object_object_add(o, "can_send_billet", json_object_new_boolean(d->can_send_billet != 0));
    json_object_object_add(o, "can_list_resources", json_object_new_boolean(d->list_resources != NULL));
    json_object *limits = json_object_new_object();
    json_object_object_add(limits, "rate_per_s", json_object_new_double(d->default_rate_per_s));
    json_object_object_add(limits, "burst", json_object_new_int64(d->default_burst));
    json_object_object_add(limits, "concurrency", json_object_new_int64(d->default_concurrency));
    json_object_object_add(o, "default_limits", limits);
    return o;
}

static void print_json(json_object *o)
{
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    fflush(stdout);
    json_object_put(o);
}

/* ---- the result ------------------------------------------------------------ */

static const char *status_name(const lb_call *call)
{
    static const char *const names[] = {"invalid", "ok", "retry", "fail", "auth"};
    if (call->completions == 0)
        return "none";
    int st = (int)call->result.status;
    return st >= LB_OK && st <= LB_AUTH ? names[st] : "invalid";
}

static json_object *result_json(const lb_call *call)
{
    char ref[sizeof call->result.provider_ref * 2], reason[sizeof call->result.reason * 2];
    lb_redact(call->settings, call->result.provider_ref, ref, sizeof ref);
    lb_redact(call->settings, call->result.reason, reason, sizeof reason);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(status_name(call)));
    json_object_object_add(o, "http_status", json_object_new_int(call->result.http_status));
    json_object_object_add(o, "retry_after_ms", json_object_new_int64(call->result.retry_after_ms));
    json_object_object_add(o, "rate_limited", json_object_new_boolean(call->result.rate_limited != 0));
    json_object_object_add(o, "provider_ref", json_object_new_string(ref));
    json_object_object_add(o, "reason", json_object_new_string(reason));
    json_object_object_add(o, "requests", json_object_new_int64(call->performed));
    if (call->is_list)
        json_object_object_add(o, "resources", json_object_get(call->resources));
    if (call->breach[0] != '\0')
        json_object_object_add(o, "contract_error", json_object_new_string(call->breach));
    return o;
}

/* ---- settings and the job -------------------------------------------------- */

static int fail_exit(const char *what, const lb_error *err)
{
    fprintf(stderr, "lbplug: %s: %s%s%s\n", what, err->field, err->field[0] ? ": " : "", err->message);
    return EXIT_USAGE;
}

static lb_settings *make_settings(const options *o, const lb_plugin *d, lb_error *err)
{
    lb_settings *s = lb_settings_new(d->name);
    if (s == NULL) {
        lb_fail(err, NULL, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < o->nsets; i++) {
        const char *eq = strchr(o->sets[i], '=');
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - o->sets[i]), o->sets[i]);
        if (lb_settings_set(s, key, eq + 1, false) != 0) {
            lb_fail(err, key, "out of memory");
            lb_settings_free(s);
            return NULL;
        }
    }
    if (lb_plugin_validate_settings(d, s, err) != 0 || lb_settings_resolve_secrets(s, err) != 0) {
        lb_settings_free(s);
        return NULL;
    }
    return s;
}

static const lb_action_decl *find_action(const lb_plugin *d, const char *name)
{
    for (const lb_action_decl *a = d->actions; a->name != NULL; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

static const char *job_param(const lb_job *job, const char *name)
{
    for (size_t i = 0; job->params[i] != NULL; i += 2)
        if (strcmp(job->params[i], name) == 0)
            return job->params[i + 1];
    return NULL;
}

static bool declared_param(const lb_action_decl *a, const char *name)
{
    for (const lb_param_decl *p = a->params; p != NULL && p->name != NULL; p++)
        if (strcmp(p->name, name) == 0)
            return true;
    return false;
}

/* Checks the job as the core would before calling submit. */
static int check_job(const lb_plugin *d, const char *action, const lb_job *job, lb_error *err)
{
    const lb_action_decl *a = find_action(d, action);
    if (a == NULL)
        return lb_fail(err, action, "is not an action of plugin %s (see `describe`)", d->name);
    for (size_t i = 0; job->params[i] != NULL; i += 2)
        if (!declared_param(a, job->params[i]))
            return lb_fail(err, job->params[i], "is not a parameter of action %s", action);
    for (const lb_param_decl *p = a->params; p != NULL && p->name != NULL; p++)
        if ((p->flags & LB_PARAM_REQUIRED) && job_param(job, p->name) == NULL)
            return lb_fail(err, p->name, "is a required parameter of action %s (--param %s=...)", action, p->name);
    return 0;
}

/* A stable default idempotency key: the same job gets the same key, as a
 * retried job does in the daemon. */
static void default_key(options *o)
{
    char text[2048], md5[33];
    int n = snprintf(text, sizeof text, "%s|%s", o->arg, o->job.email);
    for (size_t i = 0; o->params[i] != NULL && n > 0 && (size_t)n < sizeof text; i += 2)
        n += snprintf(text + n, sizeof text - (size_t)n, "|%s=%s", o->params[i], o->params[i + 1]);
    lb_md5_hex(text, md5);
    snprintf(o->key, sizeof o->key, "lbplug-%.16s", md5);
    o->job.idempotency_key = o->key;
}

/* ---- main ------------------------------------------------------------------ */

typedef struct host {
    lb_core_api api; /* the plugin keeps a pointer: lives until the plugin is unloaded */
    lb_loaded_plugin *plugin;
    lb_settings *settings;
    void *instance;
    CURL *curl;
} host;

static int run_call(host *h, const options *o)
{
    const lb_plugin *d = &h->plugin->desc;
    lb_call call = {.settings = h->settings, .curl = h->curl, .is_list = strcmp(o->command, "list") == 0};
    call.tail = &call.requests;
    if (call.is_list)
        call.resources = json_object_new_array();
    if (strcmp(o->command, "verify") == 0)
        d->verify(h->instance, &call);
    else if (call.is_list)
        d->list_resources(h->instance, &call, o->arg);
    else
        d->submit(h->instance, &call, &o->job);
    run_queue(&call);
    if (call.completions == 0) {
        breach(&call, "the call never completed: every path, including errors, must end in complete()");
        d->cancel(h->instance, &call); /* what the daemon does at the call's deadline */
    }
    print_json(result_json(&call));
    int rc = call.breach[0] != '\0' ? EXIT_CONTRACT : EXIT_SUCCESS;
    free_call(&call);
    return rc;
}

/* Everything between loading the plugin and running the call. */
static int prepare(host *h, options *o)
{
    lb_error err;
    lb_error_clear(&err);
    const lb_plugin *d = &h->plugin->desc;
    if (strcmp(o->command, "list") == 0 && d->list_resources == NULL) {
        fprintf(stderr, "lbplug: plugin %s cannot list resources (no list_resources callback)\n", d->name);
        return EXIT_USAGE;
    }
    if (strcmp(o->command, "submit") == 0) {
        o->job.action = o->arg;
        if (o->job.idempotency_key == NULL)
            default_key(o);
        if (check_job(d, o->arg, &o->job, &err) != 0)
            return fail_exit("invalid job", &err);
    }
    h->settings = make_settings(o, d, &err);
    if (h->settings == NULL)
        return fail_exit("invalid settings", &err);
    char ierr[256] = "", clean[512];
    if (d->init(&h->api, h->settings, &h->instance, ierr, sizeof ierr) != 0) {
        ierr[sizeof ierr - 1] = '\0';
        lb_redact(h->settings, ierr, clean, sizeof clean);
        fprintf(stderr, "lbplug: plugin %s refused its settings (init failed): %s\n", d->name, clean);
        return EXIT_USAGE;
    }
    return EXIT_SUCCESS;
}

static int run(host *h, options *o)
{
    lb_error err;
    lb_error_clear(&err);
    h->plugin = lb_plugin_load(o->plugin_path, &h->api, &err);
    if (h->plugin == NULL)
        return fail_exit("cannot load plugin", &err);
    if (strcmp(o->command, "describe") == 0) {
        print_json(describe(&h->plugin->desc));
        return EXIT_SUCCESS;
    }
    int rc = prepare(h, o);
    if (rc != EXIT_SUCCESS)
        return rc;
    h->curl = curl_easy_init();
    if (h->curl == NULL) {
        fprintf(stderr, "lbplug: cannot initialise libcurl\n");
        rc = EXIT_USAGE;
    } else {
        rc = run_call(h, o);
    }
    h->plugin->desc.destroy(h->instance);
    return rc;
}

static void set_log_level(void)
{
    const char *level = getenv("LBPLUG_LOG_LEVEL");
    int l = level ? lb_log_level_parse(level) : -1;
    if (l >= 0)
        lb_log_set_level((enum lb_log_level)l);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage_text, stdout);
        return EXIT_SUCCESS;
    }
    options o;
    memset(&o, 0, sizeof o);
    if (parse_args(&o, argc, argv) != 0) {
        free_options(&o);
        return EXIT_USAGE;
    }
    set_log_level();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    host h;
    memset(&h, 0, sizeof h);
    lb_core_api_fill(&h.api);
    h.api.http_request = host_http_request;
    h.api.http_cancel = host_http_cancel;
    h.api.http_header = lb_http_header; /* our responses' priv is an lb_header_list */
    h.api.http_classify = lb_http_classify;
    h.api.complete = host_complete;
    h.api.resource_add = host_resource_add;
    int rc = run(&h, &o);
    if (h.curl != NULL)
        curl_easy_cleanup(h.curl);
    lb_settings_free(h.settings);
    lb_plugin_unload(h.plugin);
    curl_global_cleanup();
    free_options(&o);
    return rc;
}
