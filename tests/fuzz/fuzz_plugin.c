/* fuzz_plugin.c: libFuzzer (or AFL++) target for a provider plugin, a .so
 * built from plugins/, against what buyers and providers can send it: a
 * job's buyer fields come from a Hotmart delivery, and every answer from the
 * provider's API. The harness plays a strict core: HTTP exchanges are queued
 * and answered one at a time, in order, from the input, after the plugin's
 * entry point returns (as the daemon's loop does on a later turn).
 *
 * Input: chunks separated by NUL bytes.
 *   Chunk 0, the call: byte 0 chooses verify, list_resources (of one of the
 *   kinds the plugin's action params name) or submit (of one of its
 *   actions); byte 1's low six bits which optional job fields are set, its
 *   top bit whether the core cancels the call (as at its deadline); byte 2
 *   the attempt (low three bits) and after how many answers the cancel
 *   comes (the rest); then, separated by 0x1f, the job's email, name,
 *   first name, last name, phone, contact ref, billet url and the
 *   action's param values.
 *   Every later chunk answers one request: a status line ("200"; anything
 *   that is not 1-3 digits is no answer, a transport error), header lines,
 *   a blank line, the body. Once the chunks run out, every request gets a
 *   transport error.
 *
 * Checks, besides "no crash, no leak, no undefined behaviour":
 *   - every request has a known method and an absolute http(s) URL made only
 *     of bytes RFC 3986 allows (no space, control byte, quote, brace...),
 *     each % followed by two hex digits, with no empty, "." or ".." segment
 *     in its path (where an id from an answer, unchecked, would move it);
 *   - every header is "Name: value" with no CR or LF in it: a buyer's name
 *     must never add a header;
 *   - a body sent as application/json is one whole, strict JSON text, and
 *     a form body only unreserved bytes, %XX, =, & and +;
 *   - a call completes exactly once, with a valid status and NUL-terminated
 *     texts, and makes no request after that; a cancelled call neither
 *     completes nor makes a request;
 *   - a call never stalls: the plugin has no timers, so once nothing is in
 *     flight it must have completed; and it does so within 64 requests;
 *   - resource_add only during a list call, with an id.
 *
 * LB_FUZZ_PLUGIN names the .so (tests/fuzz/run sets it); make check loads
 * each built plugin with fuzz_plugin_load instead. */
#include <ctype.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "error.h"
#include "fuzz_must.h"
#include "plugin_api.h"

#define PLUGIN_TARGET "fuzz_plugin"
#define MAX_REQUESTS 64
#define FIELD_SEP '\x1f'

/* ---- the plugin under test, loaded once per process -------------------------- */

static struct {
    void *so;
    const lb_plugin *plugin;
    lb_core_api api;
    lb_settings *settings;
} loaded;

/* ---- one call's state ------------------------------------------------------- */

struct lb_http {
    lb_http_done done;
    void *ud;
    bool dropped; /* cancelled, or its call finished: done never runs */
    bool delivering;
    struct lb_http *next;
};

typedef struct run {
    char **answers; /* the input's answer chunks */
    size_t n_answers, next_answer;
    struct lb_http *head, *tail;
    size_t answered;
} run;

struct lb_call {
    run *run;
    bool is_list;
    bool finished;   /* completed or cancelled: no request, no second completion */
    bool completed;  /* by the plugin, with `result` (not cancelled) */
    lb_result result;
    unsigned requests;
};

/* ---- the core's side: what the plugin may call -------------------------------- */

static void quiet_log(const lb_settings *s, int level, const char *fmt, ...)
{
    (void)s;
    (void)level;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* formats every argument, as the daemon's log does */
    va_end(ap);
}

static bool is_method(const char *m)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; m && i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(m, methods[i]) == 0)
            return true;
    return false;
}

/* Whether the path of url (after its authority, before any query) has an
 * empty, "." or ".." segment: what an unchecked id such as "../x" or "" from
 * an answer would put there, moving the request to another resource. */
static bool has_odd_segment(const char *url)
{
    const char *p = strchr(strstr(url, "//") + 2, '/');
    if (p == NULL)
        return false;
    const char *end = p + strcspn(p, "?#");
    while (p < end) { /* p is at the '/' before a segment */
        const char *seg = p + 1;
        const char *next = memchr(seg, '/', (size_t)(end - seg));
        size_t n = (size_t)((next ? next : end) - seg);
        /* a last empty segment is a trailing slash, some APIs' own spelling */
        if ((n == 0 && next) || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return true;
        if (!next)
            break;
        p = next;
    }
    return false;
}

/* An absolute http(s) URL of bytes RFC 3986 allows, with well-formed %XX,
 * and no empty or dot segment in its path. */
static bool is_clean_url(const char *url)
{
    if (url == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return false;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || strchr("\"<>\\^`{|}", *p) != NULL)
            return false;
        if (*p == '%' && !(isxdigit(p[1]) && isxdigit(p[2])))
            return false;
    }
    return !has_odd_segment(url);
}

static bool is_clean_header(const char *h)
{
    const char *colon = h ? strchr(h, ':') : NULL;
    return colon != NULL && colon > h && strpbrk(h, "\r\n") == NULL;
}

/* The value of header `name` among the request's, or NULL. */
static const char *request_header(const lb_http_req *req, const char *name)
{
    size_t n = strlen(name);
    for (const char *const *h = req->headers; h && *h; h++)
        if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':')
            return *h + n + 1 + strspn(*h + n + 1, " \t");
    return NULL;
}

static bool is_strict_json(const char *body, size_t len)
{
    json_tokener *tok = json_tokener_new();
    fuzz_must(tok != NULL, PLUGIN_TARGET, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    bool ok = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len;
    json_object_put(o);
    json_tokener_free(tok);
    return ok;
}

static bool is_form(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)body[i + 1]) || !isxdigit((unsigned char)body[i + 2]))
                return false;
            i += 2;
        } else if (!isalnum(c) && strchr("-._~=&+", c) == NULL) {
            return false;
        }
    }
    return true;
}

/* fuzz_must, and on a failure the request text it is about first, for triage. */
static void must_about(bool ok, const char *what, const char *text)
{
    if (!ok)
        fprintf(stderr, "%s: in: %.2000s\n", PLUGIN_TARGET, text ? text : "(null)");
    fuzz_must(ok, PLUGIN_TARGET, what);
}

static void check_request(const lb_http_req *req)
{
    fuzz_must(req != NULL && is_method(req->method), PLUGIN_TARGET, "a request with an unknown method");
    must_about(is_clean_url(req->url), "a request URL with bytes RFC 3986 does not allow", req->url);
    for (const char *const *h = req->headers; h && *h; h++)
        must_about(is_clean_header(*h), "a request header that is not one 'Name: value' line", *h);
    fuzz_must(req->body != NULL || req->body_len == 0, PLUGIN_TARGET, "a body length without a body");
    const char *type = request_header(req, "Content-Type");
    if (req->body == NULL || type == NULL)
        return;
    if (strncasecmp(type, "application/json", 16) == 0)
        must_about(is_strict_json(req->body, req->body_len), "a JSON body that is not JSON", req->body);
    else if (strncasecmp(type, "application/x-www-form-urlencoded", 33) == 0)
        must_about(is_form(req->body, req->body_len), "a form body with unencoded bytes", req->body);
}

static lb_http *fake_http_request(lb_call *call, const lb_http_req *req, lb_http_done done, void *ud)
{
    fuzz_must(call != NULL && done != NULL, PLUGIN_TARGET, "http_request without a call or a callback");
    fuzz_must(!call->finished, PLUGIN_TARGET, "a request after the call completed or was cancelled");
    check_request(req);
    fuzz_must(++call->requests <= MAX_REQUESTS, PLUGIN_TARGET, "more than 64 requests in one call");
    struct lb_http *h = calloc(1, sizeof *h);
    fuzz_must(h != NULL, PLUGIN_TARGET, "out of memory");
    h->done = done;
    h->ud = ud;
    run *r = call->run;
    if (r->tail)
        r->tail->next = h;
    else
        r->head = h;
    r->tail = h;
    return h;
}

static void fake_http_cancel(lb_http *h)
{
    if (h != NULL && !h->delivering) /* from its own done: spent anyway, as the daemon allows */
        h->dropped = true;
}

static void drop_in_flight(run *r)
{
    for (struct lb_http *h = r->head; h; h = h->next)
        h->dropped = true;
}

static void fake_complete(lb_call *call, const lb_result *result)
{
    fuzz_must(call != NULL && result != NULL, PLUGIN_TARGET, "complete without a call or a result");
    fuzz_must(!call->finished, PLUGIN_TARGET, "complete on a call already completed or cancelled");
    fuzz_must(result->status >= LB_OK && result->status <= LB_AUTH, PLUGIN_TARGET, "a result with no valid status");
    fuzz_must(memchr(result->reason, '\0', sizeof result->reason) != NULL &&
                  memchr(result->provider_ref, '\0', sizeof result->provider_ref) != NULL,
              PLUGIN_TARGET, "a result text without its NUL");
    call->finished = true;
    call->completed = true;
    call->result = *result;
    drop_in_flight(call->run); /* as the daemon: the call's exchanges end with it */
}

static void fake_resource_add(lb_call *call, const char *id, const char *name)
{
    (void)name;
    fuzz_must(call != NULL && call->is_list && !call->finished, PLUGIN_TARGET, "resource_add outside a list call");
    fuzz_must(id != NULL, PLUGIN_TARGET, "resource_add without an id");
}

/* ---- loading ------------------------------------------------------------------ */

/* Every declared key the plugin requires gets a plausible value: a URL for
 * the keys that name one, else a token that also reads as a Mailchimp key
 * (its data centre after the dash). The rest keep their defaults. */
static lb_settings *fuzz_settings(const lb_plugin *p)
{
    lb_settings *s = lb_settings_new(p->name);
    fuzz_must(s != NULL, PLUGIN_TARGET, "out of memory");
    for (const lb_config_decl *d = p->config; d && d->key; d++) {
        if (!(d->flags & LB_CFG_REQUIRED) || d->default_value != NULL)
            continue;
        const char *v = strstr(d->key, "url") ? "https://provider.example/api" : "0123456789abcdef0123-us6";
        fuzz_must(lb_settings_set(s, d->key, v, (d->flags & LB_CFG_SECRET) != 0) == 0, PLUGIN_TARGET, "settings");
    }
    lb_error err = {0};
    if (lb_plugin_validate_settings(p, s, &err) != 0) {
        fprintf(stderr, "%s: %s: %s %s\n", PLUGIN_TARGET, p->name, err.field, err.message);
        abort();
    }
    return s;
}

/* Loads the plugin at path for the calls that follow (once per process). */
static void fuzz_plugin_load(const char *path)
{
    if (loaded.so != NULL) {
        lb_settings_free(loaded.settings);
        dlclose(loaded.so);
    }
    memset(&loaded, 0, sizeof loaded);
    loaded.so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (loaded.so == NULL) {
        fprintf(stderr, "%s: cannot load %s: %s\n", PLUGIN_TARGET, path, dlerror());
        abort();
    }
    lb_plugin_entry_fn entry = (lb_plugin_entry_fn)dlsym(loaded.so, "lb_plugin_entry");
    fuzz_must(entry != NULL, PLUGIN_TARGET, "the plugin has no lb_plugin_entry");
    lb_core_api_fill(&loaded.api);
    loaded.api.log = quiet_log;
    loaded.api.http_request = fake_http_request;
    loaded.api.http_cancel = fake_http_cancel;
    loaded.api.http_header = lb_http_header;
    loaded.api.http_classify = lb_http_classify;
    loaded.api.complete = fake_complete;
    loaded.api.resource_add = fake_resource_add;
    loaded.plugin = entry(LB_ABI_MAJOR, &loaded.api);
    fuzz_must(loaded.plugin != NULL, PLUGIN_TARGET, "the plugin refused the core's ABI");
    loaded.settings = fuzz_settings(loaded.plugin);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("LB_FUZZ_PLUGIN");
    fuzz_must(path != NULL, PLUGIN_TARGET, "set LB_FUZZ_PLUGIN to the plugin's .so");
    fuzz_plugin_load(path);
    return 0;
}

/* ---- the input ---------------------------------------------------------------- */

/* fields[i], or NULL past the last. */
static char *nth_field(char **fields, size_t n, size_t i) { return i < n ? fields[i] : NULL; }

/* Cuts s in place at each 0x1f; returns how many fields it made. */
static size_t split_fields(char *s, char **fields, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        fields[n++] = s;
        char *sep = strchr(s, FIELD_SEP);
        if (sep == NULL)
            break;
        *sep = '\0';
        s = sep + 1;
    }
    return n;
}

static size_t count_actions(const lb_plugin *p)
{
    size_t n = 0;
    while (p->actions && p->actions[n].name)
        n++;
    return n;
}

/* The resource kinds the plugin's action params name, in order, unique. */
static size_t list_kinds(const lb_plugin *p, const char **kinds, size_t cap)
{
    size_t n = 0;
    for (const lb_action_decl *a = p->actions; a && a->name; a++)
        for (const lb_param_decl *d = a->params; d && d->name; d++) {
            bool seen = d->resource == NULL;
            for (size_t i = 0; i < n && !seen; i++)
                seen = strcmp(kinds[i], d->resource) == 0;
            if (!seen && n < cap)
                kinds[n++] = d->resource;
        }
    return n;
}

/* ---- answering ---------------------------------------------------------------- */

/* Answers h from the next chunk, or with a transport error once there are none. */
static void answer(run *r, struct lb_http *h)
{
    lb_header_list headers = {0};
    lb_http_resp resp = {.transport_error = 1, .error = "connection refused (fuzz)", .body = "", .priv = &headers};
    if (r->next_answer < r->n_answers) {
        char *text = r->answers[r->next_answer++];
        char *eol = strchr(text, '\n');
        size_t digits = strspn(text, "0123456789");
        if (digits >= 1 && digits <= 3 && (text[digits] == '\0' || text + digits == eol ||
                                           (text[digits] == '\r' && text + digits + 1 == eol))) {
            resp = (lb_http_resp){.status = strtol(text, NULL, 10), .body = "", .priv = &headers};
            char *line = eol ? eol + 1 : text + strlen(text);
            while (*line) {
                char *end = strchr(line, '\n');
                size_t len = end ? (size_t)(end - line) : strlen(line);
                size_t bare = len > 0 && line[len - 1] == '\r' ? len - 1 : len;
                if (bare == 0) { /* the blank line: the body follows */
                    line += end ? len + 1 : len;
                    break;
                }
                fuzz_must(lb_header_list_add(&headers, line, len) == 0, PLUGIN_TARGET, "out of memory");
                line += end ? len + 1 : len;
            }
            resp.body = line;
            resp.body_len = strlen(line);
        }
    }
    h->delivering = true;
    h->done(&resp, h->ud);
    lb_header_list_clear(&headers);
}

/* Runs the queue in order until nothing is in flight, cancelling the call
 * after cancel_after answers if the input asks for that. */
static void pump(run *r, lb_call *call, void *instance, size_t cancel_after)
{
    while (r->head) {
        struct lb_http *h = r->head;
        if (!h->dropped) {
            if (r->answered == cancel_after && !call->finished) {
                call->finished = true; /* as the daemon at a deadline: no completion, no request */
                loaded.plugin->cancel(instance, call);
                drop_in_flight(r);
                continue;
            }
            r->answered++;
            answer(r, h);
        }
        r->head = h->next; /* done may have queued more behind h */
        if (r->head == NULL)
            r->tail = NULL;
        free(h);
    }
}

/* ---- one input ---------------------------------------------------------------- */

static void start_call(void *instance, lb_call *call, const uint8_t *ctl, char **fields, size_t n_fields)
{
    const lb_plugin *p = loaded.plugin;
    size_t n_actions = count_actions(p);
    const char *kinds[16];
    size_t n_kinds = p->list_resources ? list_kinds(p, kinds, 16) : 0; /* optional in a descriptor */
    unsigned choice = ctl[0] % (unsigned)(1 + n_kinds + n_actions);
    if (choice == 0) {
        p->verify(instance, call);
        return;
    }
    if (choice <= n_kinds) {
        call->is_list = true;
        p->list_resources(instance, call, kinds[choice - 1]);
        return;
    }
    const lb_action_decl *action = &p->actions[choice - 1 - n_kinds];
    /* the job's fields; the core gives a lower-case e-mail, always set */
    char *email = nth_field(fields, n_fields, 0);
    for (char *c = email; c && *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *optional[6]; /* name, first and last name, phone, contact ref, billet url */
    for (size_t i = 0; i < 6; i++)
        optional[i] = (ctl[1] >> i & 1) ? nth_field(fields, n_fields, i + 1) : NULL;
    const char *params[2 * 8 + 1];
    size_t np = 0, k = 0;
    for (const lb_param_decl *d = action->params; d && d->name && np < 2 * 8; d++, k++) {
        const char *v = nth_field(fields, n_fields, 7 + k);
        if ((v == NULL || *v == '\0') && (d->flags & LB_PARAM_REQUIRED))
            v = "fuzz"; /* the core's checks make sure a required param is set */
        if (v == NULL)
            continue;
        params[np++] = d->name;
        params[np++] = v;
    }
    params[np] = NULL;
    lb_job job = {
        .action = action->name,
        .idempotency_key = "job-1",
        .attempt = 1u + ctl[2] % 8u,
        .email = email && *email ? email : "buyer@example.com",
        .name = optional[0],
        .first_name = optional[1],
        .last_name = optional[2],
        .phone = optional[3],
        .contact_ref = optional[4],
        .billet_url = optional[5],
        .params = params,
    };
    p->submit(instance, call, &job);
}

/* One input, checked as described at the top. Returns the finished call
 * (its result, if the plugin completed it, and its request count) so that a
 * replay can also hold a saved input to the outcome it must have. */
static lb_call fuzz_plugin_call(const uint8_t *data, size_t size)
{
    lb_call call = {0};
    if (size < 3 || size > 65536 || loaded.plugin == NULL)
        return call;
    char *text = malloc(size + 1);
    fuzz_must(text != NULL, PLUGIN_TARGET, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    uint8_t ctl[3] = {data[0], data[1], data[2]};
    /* chunks: the call (after its three control bytes), then the answers */
    char *answers[MAX_REQUESTS + 1];
    size_t n_answers = 0;
    char *call_text = text + 3;
    for (char *p = call_text + strlen(call_text); p < text + size && n_answers < MAX_REQUESTS; p += strlen(p))
        answers[n_answers++] = ++p;
    char *fields[16];
    size_t n_fields = split_fields(call_text, fields, 16);

    void *instance = NULL;
    char err[256] = "";
    if (loaded.plugin->init(&loaded.api, loaded.settings, &instance, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s refused the fuzz settings: %s\n", PLUGIN_TARGET, loaded.plugin->name, err);
        abort();
    }
    run r = {.answers = answers, .n_answers = n_answers};
    call.run = &r;
    start_call(instance, &call, ctl, fields, n_fields);
    bool cancels = ctl[1] & 0x80;
    pump(&r, &call, instance, cancels ? (size_t)(ctl[2] >> 3) : SIZE_MAX);
    fuzz_must(call.finished, PLUGIN_TARGET, "the call stalled: nothing in flight and not completed");
    loaded.plugin->destroy(instance);
    free(text);
    call.run = NULL; /* r ends here */
    return call;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_plugin_call(data, size);
    return 0;
}
