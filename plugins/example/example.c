/* example.c: the smallest useful listboss provider plugin. Copy it to start a
 * new one. It talks to an imaginary provider:
 *
 *   POST {base_url}/tags   {"email": "...", "tag": "..."}  -> {"contact": {"id": "..."}}
 *   GET  {base_url}/tags                                   -> {"tags": [{"id": "...", "name": "..."}]}
 *   GET  {base_url}/me                                     -> 200 if the key is good
 *
 * each with "Authorization: Bearer <api_key>".
 *
 * Build it out of tree with nothing but the installed header:
 *   cc -std=c11 -shared -fPIC -fvisibility=hidden $(pkg-config --cflags listboss) \
 *      -o example.so example.c
 * and try it against a server with the test host:
 *   lbplug ./example.so --set base_url=http://127.0.0.1:8080 --set api_key=env:EXAMPLE_KEY \
 *      submit tag_add --email ana@example.com --param tag=buyer
 *
 * The rules that matter (docs/plugins.md has them all):
 * - Never block: build requests, hand them to api->http_request, return.
 * - Every call ends with exactly one api->complete(), on every path, errors
 *   included; after cancel() it ends with none.
 * - Only the core's functions (api->...) and libc: no libcurl, no json-c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <listboss/plugin.h>

#define URL_MAX 1024
#define AUTH_MAX 512

/* One instance per integration (a set of settings). */
typedef struct example {
    const lb_core_api *api;
    const lb_settings *settings;
    char base_url[URL_MAX];
    char auth[AUTH_MAX]; /* "Authorization: Bearer ...": wiped in destroy */
    struct pending *pending; /* in-flight requests, so cancel() can find them */
} example;

/* One in-flight request: what the done callback needs to finish the call.
 * Doubly linked: an instance may have hundreds in flight, and each answer
 * unlinks its own. */
typedef struct pending {
    struct pending *prev, *next;
    example *ex;
    lb_call *call;
    lb_http *http;
} pending;

/* ---- declarations ----------------------------------------------------------- */

static const lb_config_decl config[] = {
    {"base_url", 0, "https://api.example.com/v1", "API root; tests point it at a fake server"},
    {"api_key", LB_CFG_REQUIRED | LB_CFG_SECRET, NULL, "API key: env:NAME or file:PATH"},
    {NULL, 0, NULL, NULL},
};

static const lb_param_decl tag_params[] = {
    {"tag", LB_PARAM_REQUIRED, "tags", "tag to add to the contact"},
    {NULL, 0, NULL, NULL},
};

static const lb_action_decl actions[] = {
    {"tag_add", "Add a tag", tag_params, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ---- helpers ------------------------------------------------------------------ */

/* memset on a buffer that is about to die may be optimised away; writes
 * through a volatile pointer may not. */
static void wipe(void *buf, size_t len)
{
    volatile unsigned char *p = buf;
    while (len--)
        *p++ = 0;
}

/* Finishes a call. The reason is formatted here so every path stays one line. */
#if defined(__GNUC__)
__attribute__((format(printf, 7, 8)))
#endif
static void finish(example *ex, lb_call *call, lb_status st, const lb_http_resp *resp, uint32_t retry_ms,
                   const char *ref, const char *fmt, ...)
{
    lb_result r;
    memset(&r, 0, sizeof r); /* then set status: a zeroed result is invalid on purpose */
    r.status = st;
    r.retry_after_ms = retry_ms;
    r.http_status = resp ? (int)resp->status : 0;
    r.rate_limited = resp != NULL && resp->status == 429;
    snprintf(r.provider_ref, sizeof r.provider_ref, "%s", ref ? ref : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.reason, sizeof r.reason, fmt, ap);
    va_end(ap);
    ex->api->complete(call, &r);
}

static void forget(pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        p->ex->pending = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    free(p);
}

/* Starts one request for a call. On failure the call is completed here, so
 * the caller can simply return either way. */
static void start(example *ex, lb_call *call, const char *method, const char *path, const char *body,
                  lb_http_done done)
{
    char url[URL_MAX + 64];
    const char *headers[] = {ex->auth, "Content-Type: application/json", "Accept: application/json", NULL};
    lb_http_req req = {method, url, headers, body, body ? strlen(body) : 0, 0};
    pending *p = calloc(1, sizeof *p);
    if (p == NULL || snprintf(url, sizeof url, "%s%s", ex->base_url, path) >= (int)sizeof url) {
        free(p);
        finish(ex, call, LB_RETRY, NULL, 0, NULL, "cannot build the request (out of memory or URL too long)");
        return;
    }
    *p = (pending){NULL, ex->pending, ex, call, NULL};
    if (ex->pending != NULL)
        ex->pending->prev = p;
    ex->pending = p; /* listed before the request starts: done always finds it */
    p->http = ex->api->http_request(call, &req, done, p);
    if (p->http == NULL) {
        forget(p);
        finish(ex, call, LB_RETRY, NULL, 0, NULL, "the core could not start the request");
    }
}

/* The default mapping, plus the provider's own error text when there is one
 * (only looked for on errors: a success has none, and parsing costs). */
static lb_status classify(example *ex, const lb_http_resp *resp, uint32_t *retry_ms, char *why, size_t len)
{
    lb_status st = ex->api->http_classify(resp, retry_ms);
    if (st == LB_OK)
        snprintf(why, len, "HTTP %ld", resp->status);
    else if (resp->transport_error)
        snprintf(why, len, "%s", resp->error ? resp->error : "no answer");
    else if (ex->api->json_get(resp->body, resp->body_len, "error.message", why, len) < 0)
        snprintf(why, len, "HTTP %ld", resp->status);
    return st;
}

/* ---- callbacks ------------------------------------------------------------------ */

static int ex_init(const lb_core_api *api, const lb_settings *settings, void **instance, char *err, size_t errlen)
{
    example *ex = calloc(1, sizeof *ex);
    if (ex == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ex->api = api;
    ex->settings = settings;
    /* The core validated the settings and applied defaults before init, so
     * base_url is there; checking costs one line and survives a core bug. */
    const char *base = api->setting(settings, "base_url");
    if (base == NULL || snprintf(ex->base_url, sizeof ex->base_url, "%s", base) >= (int)sizeof ex->base_url) {
        snprintf(err, errlen, "base_url is missing or too long");
        free(ex);
        return -1;
    }
    size_t n = strlen(ex->base_url);
    if (n > 0 && ex->base_url[n - 1] == '/')
        ex->base_url[n - 1] = '\0'; /* "http://x/" + "/tags" would give "//tags" */
    char key[AUTH_MAX - 32];
    if (api->secret(settings, "api_key", key, sizeof key) < 0) {
        snprintf(err, errlen, "api_key is missing or too long");
        wipe(key, sizeof key);
        free(ex);
        return -1;
    }
    snprintf(ex->auth, sizeof ex->auth, "Authorization: Bearer %s", key);
    wipe(key, sizeof key); /* the instance keeps the header, not loose copies */
    *instance = ex;
    return 0;
}

static void tag_added(const lb_http_resp *resp, void *ud)
{
    pending *p = ud;
    example *ex = p->ex;
    lb_call *call = p->call;
    forget(p); /* the handle is spent once done runs */
    char why[200], ref[128] = "";
    uint32_t retry_ms = 0;
    lb_status st = classify(ex, resp, &retry_ms, why, sizeof why);
    if (st != LB_OK) {
        finish(ex, call, st, resp, retry_ms, NULL, "tag_add: %s", why);
        return;
    }
    ex->api->json_get(resp->body, resp->body_len, "contact.id", ref, sizeof ref);
    finish(ex, call, LB_OK, resp, 0, ref, "tag added");
}

static const char *param(const lb_job *job, const char *name)
{
    for (size_t i = 0; job->params != NULL && job->params[i] != NULL; i += 2)
        if (strcmp(job->params[i], name) == 0)
            return job->params[i + 1];
    return NULL;
}

static void ex_submit(void *instance, lb_call *call, const lb_job *job)
{
    example *ex = instance;
    const char *tag = param(job, "tag");
    char email[600], qtag[600], body[1400];
    /* The core checked the action and its required params; a plugin still
     * completes FAIL rather than crash if a newer core sends something else. */
    if (strcmp(job->action, "tag_add") != 0 || tag == NULL) {
        finish(ex, call, LB_FAIL, NULL, 0, NULL, "unsupported action %s", job->action);
        return;
    }
    if (ex->api->json_quote(job->email, email, sizeof email) < 0 ||
        ex->api->json_quote(tag, qtag, sizeof qtag) < 0) {
        finish(ex, call, LB_FAIL, NULL, 0, NULL, "e-mail or tag is too long");
        return;
    }
    snprintf(body, sizeof body, "{\"email\":%s,\"tag\":%s}", email, qtag);
    start(ex, call, "POST", "/tags", body, tag_added);
}

static void verified(const lb_http_resp *resp, void *ud)
{
    pending *p = ud;
    example *ex = p->ex;
    lb_call *call = p->call;
    forget(p);
    char why[200];
    uint32_t retry_ms = 0;
    lb_status st = classify(ex, resp, &retry_ms, why, sizeof why);
    finish(ex, call, st, resp, retry_ms, NULL, "%s", st == LB_OK ? "credentials accepted" : why);
}

static void ex_verify(void *instance, lb_call *call) { start(instance, call, "GET", "/me", NULL, verified); }

static void tags_listed(const lb_http_resp *resp, void *ud)
{
    pending *p = ud;
    example *ex = p->ex;
    lb_call *call = p->call;
    forget(p);
    char why[200];
    uint32_t retry_ms = 0;
    lb_status st = classify(ex, resp, &retry_ms, why, sizeof why);
    /* json_get reads array items by index: "tags.0.id", "tags.1.id", ... */
    for (int i = 0; st == LB_OK; i++) {
        char path[64], id[128], name[256];
        snprintf(path, sizeof path, "tags.%d.id", i);
        if (ex->api->json_get(resp->body, resp->body_len, path, id, sizeof id) < 0)
            break;
        snprintf(path, sizeof path, "tags.%d.name", i);
        if (ex->api->json_get(resp->body, resp->body_len, path, name, sizeof name) < 0)
            name[0] = '\0';
        ex->api->resource_add(call, id, name);
    }
    finish(ex, call, st, resp, retry_ms, NULL, "%s", st == LB_OK ? "tags listed" : why);
}

static void ex_list_resources(void *instance, lb_call *call, const char *kind)
{
    if (strcmp(kind, "tags") != 0) {
        example *ex = instance;
        finish(ex, call, LB_FAIL, NULL, 0, NULL, "unknown resource kind %s (this plugin lists: tags)", kind);
        return;
    }
    start(instance, call, "GET", "/tags", NULL, tags_listed);
}

/* The core gave up on the call: stop its requests and never complete it. */
static void ex_cancel(void *instance, lb_call *call)
{
    example *ex = instance;
    pending *p = ex->pending;
    while (p != NULL) {
        pending *next = p->next;
        if (p->call == call) {
            ex->api->http_cancel(p->http);
            forget(p);
        }
        p = next;
    }
}

static void ex_destroy(void *instance)
{
    example *ex = instance;
    while (ex->pending != NULL) { /* the core cancels calls first; this is belt and braces */
        pending *p = ex->pending;
        ex->pending = p->next;
        free(p);
    }
    wipe(ex->auth, sizeof ex->auth);
    free(ex);
}

/* Exports lb_plugin_entry, the only visible symbol (built -fvisibility=hidden). */
LB_PLUGIN_REGISTER(.name = "example", .display_name = "Example provider", .version = "1.0.0", .config = config,
                   .actions = actions, .can_send_billet = 0, .default_rate_per_s = 5.0, .default_burst = 10,
                   .default_concurrency = 4, .init = ex_init, .verify = ex_verify,
                   .list_resources = ex_list_resources, .submit = ex_submit, .cancel = ex_cancel,
                   .destroy = ex_destroy)
