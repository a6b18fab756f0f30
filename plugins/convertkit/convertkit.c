/* convertkit.c: the Kit (formerly ConvertKit) provider plugin, API v4.
 *
 * The wire contract is spec/providers/convertkit.md, cited below as "spec §N".
 * Kit has no lists (spec §5 intro): a ListBoss "list" is a Kit form, a tag is
 * a tag and a sequence is a sequence. Every call is a short chain of HTTP
 * requests driven by one state machine (advance): each step fills in one
 * missing fact (the subscriber id, the target's id) and the last step does the
 * action itself.
 *
 * Decisions the spec leaves to us (see also the action table):
 * - No list_remove. Kit's only "unsubscribe" is global (spec §5.4: "There is
 *   no per-list removal"); mapping a per-list remove onto it would silently
 *   remove the lead from every form and sequence.
 * - contact_upsert sends email_address, first_name and state only. Last name
 *   and phone are custom fields that must exist in the account (spec §5.1),
 *   and an unknown field key may be a 422 (spec §4, conflicting sources), so
 *   sending them could fail a job that otherwise succeeds.
 * - verify reads GET /tags?per_page=1: the spec documents no account
 *   endpoint, and this is the cheapest documented call that needs the key.
 * - Tags are chosen by name: tag_add creates them idempotently (spec §5.6), so
 *   the "tags" resource list offers names as the pickable value.
 */
#include <listboss/plugin.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define CK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CK_PRINTF(f, a)
#endif

#define CK_DEFAULT_BASE "https://api.kit.com/v4"
#define CK_WINDOW_MS 60000u /* spec §4: 120 requests per *rolling* 60 s, no reset header */
#define CK_PAGE_SIZE 100    /* small pages keep each json_get scan cheap on the loop thread */
#define CK_MAX_PAGES 50     /* 5,000 tags/forms: past that, something is wrong */
#define CK_URL_MAX 1024
#define CK_BODY_MAX 1024
#define CK_REF_MAX 128
#define CK_NAME_MAX 256
#define CK_EMAIL_MAX 320

/* ---- the actions ------------------------------------------------------------ */

/* How an action finds the id its member request needs. */
typedef enum ck_resolve {
    CK_RESOLVE_NONE,   /* the job parameter is the id (forms, sequences) */
    CK_RESOLVE_CREATE, /* POST /tags {name}: 201 new, 200 existing (spec §3, §5.6) */
    CK_RESOLVE_FIND,   /* page through GET /tags; never creates (tag_remove) */
} ck_resolve;

typedef struct ck_action {
    const char *name;
    const char *param;      /* the job parameter naming the target; NULL: none */
    const char *collection; /* path segment of the target: "tags", "forms", "sequences" */
    const char *method;     /* of the member request */
    ck_resolve resolve;
    bool upsert_only;       /* contact_upsert: the upsert is the action */
    bool by_id;             /* the spec lists /{collection}/{id}/subscribers/{subscriber_id} */
    bool needs_subscriber;  /* spec §5.2: the member request needs an existing subscriber */
    bool absent_is_done;    /* a 404 on the member request means the goal already holds */
    const char *did_new;    /* reason on 201/204 */
    const char *did_dup;    /* reason on 200: "already" (spec §5.5) */
} ck_action;

static const ck_action ck_actions[] = {
    {.name = "contact_upsert", .upsert_only = true, .needs_subscriber = true,
     .did_new = "subscriber created", .did_dup = "subscriber already existed"},
    {.name = "tag_add", .param = "tag", .collection = "tags", .method = "POST",
     .resolve = CK_RESOLVE_CREATE, .by_id = true, .needs_subscriber = true,
     .did_new = "tag added", .did_dup = "subscriber already had the tag"},
    /* Untagging must not create the subscriber; without a known id it goes by
     * e-mail, the form spec §5.3 recommends to avoid a lookup. */
    {.name = "tag_remove", .param = "tag", .collection = "tags", .method = "DELETE",
     .resolve = CK_RESOLVE_FIND, .by_id = true, .absent_is_done = true,
     .did_new = "tag removed", .did_dup = "tag removed"},
    {.name = "list_add", .param = "form", .collection = "forms", .method = "POST", .by_id = true,
     .needs_subscriber = true, .did_new = "added to form", .did_dup = "already on the form"},
    /* The spec lists sequence adds by e-mail only (spec §3 SEQ+). */
    {.name = "sequence_add", .param = "sequence", .collection = "sequences", .method = "POST",
     .needs_subscriber = true, .did_new = "added to sequence", .did_dup = "already in the sequence"},
};

static const char *const ck_kinds[] = {"forms", "tags", "sequences"};

/* ---- state ------------------------------------------------------------------ */

typedef enum ck_step {
    CK_STEP_UPSERT,
    CK_STEP_TAG_CREATE,
    CK_STEP_TAG_FIND,
    CK_STEP_MEMBER,
    CK_STEP_VERIFY,
    CK_STEP_LIST,
} ck_step;

typedef struct ck_op ck_op;

typedef struct ck_instance {
    const lb_core_api *api;
    const lb_settings *settings;
    char base[512];         /* base_url without a trailing '/' */
    char auth_header[384];  /* "X-Kit-Api-Key: <key>"; wiped in destroy */
    ck_op *ops;             /* calls in flight, for cancel and destroy */
} ck_instance;

/* One call in flight. The request's url, body and headers live here, not on
 * the stack, so they outlast http_request whatever the core copies. */
struct ck_op {
    ck_op *next;
    ck_instance *in;
    lb_call *call;
    lb_http *http;
    const ck_action *act;   /* submit only */
    ck_step step;
    bool ref_given;         /* sub_id is job->contact_ref, not confirmed by this call */
    bool upserted;
    int pages;
    int upsert_status;      /* 201 or 200, for contact_upsert's reason */
    long last_status;
    unsigned found;         /* list_resources: items added */
    char email[CK_EMAIL_MAX];
    char first_name[CK_NAME_MAX];
    char target[CK_NAME_MAX];  /* tag name, form id or sequence id */
    char target_id[CK_REF_MAX];   /* "" or a Kit id, as sub_id */
    char loose_id[CK_REF_MAX]; /* a tag whose name matches ignoring ASCII case */
    char sub_id[CK_REF_MAX];   /* "" or a Kit id: each source is checked */
    char kind[16];             /* list_resources */
    char cursor[512];          /* "after" cursor of the next page */
    char url[CK_URL_MAX];
    char body[CK_BODY_MAX];
    const char *headers[4];
};

/* ---- small helpers ---------------------------------------------------------- */

/* memset that the compiler may not drop: the buffer holds a secret. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static bool copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        return false;
    memcpy(dst, src ? src : "", n + 1);
    return true;
}

/* Kit's ids are numbers. Anything else (a form param "..", an answer's id
 * ".") would go into the request's path as another segment than an id:
 * url_encode keeps dots (tests/fuzz/fuzz_plugin.c checks every URL). */
static bool is_kit_id(const char *s)
{
    return s && *s && strspn(s, "0123456789") == strlen(s);
}

static bool ascii_case_equal(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a + 32) : *a;
        char y = (*b >= 'A' && *b <= 'Z') ? (char)(*b + 32) : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

static const char *job_param(const lb_job *job, const char *key)
{
    for (const char *const *p = job->params; p && p[0] && p[1]; p += 2)
        if (strcmp(p[0], key) == 0)
            return p[1];
    return NULL;
}

/* Kit's only name field is first_name (spec §5.1); without one, the first word
 * of the full name stands in. */
static void pick_first_name(const lb_job *job, char *out, size_t cap)
{
    out[0] = '\0';
    if (job->first_name && *job->first_name) {
        snprintf(out, cap, "%s", job->first_name);
        return;
    }
    if (!job->name)
        return;
    const char *s = job->name + strspn(job->name, " ");
    snprintf(out, cap, "%.*s", (int)strcspn(s, " "), s);
}

static const ck_action *find_action(const char *name)
{
    for (size_t i = 0; i < sizeof ck_actions / sizeof ck_actions[0]; i++)
        if (strcmp(ck_actions[i].name, name) == 0)
            return &ck_actions[i];
    return NULL;
}

static bool known_kind(const char *kind)
{
    for (size_t i = 0; i < sizeof ck_kinds / sizeof ck_kinds[0]; i++)
        if (strcmp(ck_kinds[i], kind) == 0)
            return true;
    return false;
}

/* ---- op lifetime ------------------------------------------------------------ */

static ck_op *op_new(ck_instance *in, lb_call *call)
{
    ck_op *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->in = in;
    op->call = call;
    op->next = in->ops;
    in->ops = op;
    return op;
}

static void op_free(ck_op *op)
{
    for (ck_op **p = &op->in->ops; *p; p = &(*p)->next)
        if (*p == op) {
            *p = op->next;
            break;
        }
    free(op);
}

/* Completes the call (exactly once: the op is freed right after). */
static void finish(ck_op *op, lb_status st, const char *fmt, ...) CK_PRINTF(3, 4);
static void finish(ck_op *op, lb_status st, const char *fmt, ...)
{
    lb_result r;
    memset(&r, 0, sizeof r);
    r.status = st;
    r.http_status = (int)op->last_status;
    snprintf(r.provider_ref, sizeof r.provider_ref, "%s", op->sub_id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.reason, sizeof r.reason, fmt, ap);
    va_end(ap);
    op->in->api->complete(op->call, &r);
    op_free(op);
}

/* Finishes a call that never got going (bad job, no memory) without an op. */
static void finish_early(ck_instance *in, lb_call *call, lb_status st, const char *reason)
{
    lb_result r;
    memset(&r, 0, sizeof r);
    r.status = st;
    snprintf(r.reason, sizeof r.reason, "%s", reason);
    in->api->complete(call, &r);
}

/* ---- responses -------------------------------------------------------------- */

static bool is_2xx(const lb_http_resp *resp)
{
    return !resp->transport_error && resp->status >= 200 && resp->status < 300;
}

static int jget(ck_op *op, const lb_http_resp *resp, const char *path, char *out, size_t cap)
{
    if (!resp->body || resp->body_len == 0)
        return -1;
    return op->in->api->json_get(resp->body, resp->body_len, path, out, cap);
}

/* What went wrong, in Kit's words when it gave any: v4 errors are
 * {"errors":["..."]} (spec §4). */
static void error_detail(ck_op *op, const lb_http_resp *resp, char *out, size_t cap)
{
    char text[1024]; /* json_get never truncates: read wide, then cut to fit */
    if (resp->transport_error || resp->status == 0)
        snprintf(out, cap, "no answer from Kit: %s", resp->error ? resp->error : "transport error");
    else if (jget(op, resp, "errors.0", text, sizeof text) > 0)
        snprintf(out, cap, "%s", text);
    else
        snprintf(out, cap, "HTTP %ld", resp->status);
}

/* The shared error mapping: the core's default (401/403 AUTH, 408/429/5xx and
 * transport RETRY, other 4xx FAIL), plus Kit's rate limit. */
static void finish_error(ck_op *op, const lb_http_resp *resp, const char *what)
{
    uint32_t retry_ms = 0;
    lb_status st = op->in->api->http_classify(resp, &retry_ms);
    char detail[160];
    error_detail(op, resp, detail, sizeof detail);
    lb_result r;
    memset(&r, 0, sizeof r);
    r.status = st == LB_STATUS_INVALID ? LB_RETRY : st;
    r.http_status = (int)resp->status;
    if (resp->status == 429) {
        /* spec §4: 120 per rolling 60 s and no rate-limit or Retry-After
         * headers, so the only safe floor is the whole window. */
        r.status = LB_RETRY;
        r.rate_limited = 1;
        if (retry_ms == 0)
            retry_ms = CK_WINDOW_MS;
    }
    r.retry_after_ms = r.status == LB_RETRY ? retry_ms : 0;
    snprintf(r.provider_ref, sizeof r.provider_ref, "%s", op->sub_id);
    snprintf(r.reason, sizeof r.reason, "Kit %s: %s", what, detail);
    op->in->api->complete(op->call, &r);
    op_free(op);
}

/* ---- requests --------------------------------------------------------------- */

static void on_response(const lb_http_resp *resp, void *ud);

/* Sends op->url / op->body; the last thing its caller does. */
static void send_request(ck_op *op, ck_step step, const char *method, bool with_body)
{
    int n = 0;
    op->headers[n++] = op->in->auth_header;
    op->headers[n++] = "Accept: application/json";
    if (with_body)
        op->headers[n++] = "Content-Type: application/json; charset=utf-8";
    op->headers[n] = NULL;
    lb_http_req req = {
        .method = method,
        .url = op->url,
        .headers = op->headers,
        .body = with_body ? op->body : NULL,
        .body_len = with_body ? strlen(op->body) : 0,
    };
    op->step = step;
    op->http = op->in->api->http_request(op->call, &req, on_response, op);
    if (!op->http)
        finish(op, LB_RETRY, "Kit: could not start the HTTP request");
}

/* op->url = base + path built from fmt; false if it does not fit. */
static bool set_url(ck_op *op, const char *fmt, ...) CK_PRINTF(2, 3);
static bool set_url(ck_op *op, const char *fmt, ...)
{
    int n = snprintf(op->url, sizeof op->url, "%s", op->in->base);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(op->url + n, sizeof op->url - (size_t)n, fmt, ap);
    va_end(ap);
    return m >= 0 && (size_t)m < sizeof op->url - (size_t)n;
}

/* "&after=<cursor>" for the next page, or "" for the first. */
static bool page_suffix(ck_op *op, char *out, size_t cap)
{
    out[0] = '\0';
    if (op->cursor[0] == '\0')
        return true;
    char enc[sizeof op->cursor * 3];
    if (op->in->api->url_encode(op->cursor, enc, sizeof enc) < 0)
        return false;
    return (size_t)snprintf(out, cap, "&after=%s", enc) < cap;
}

/* GET /{collection}?per_page=N[&after=cursor] (spec §3: cursor pagination). */
static void send_page(ck_op *op, ck_step step, const char *collection)
{
    char after[sizeof op->cursor * 3 + 8];
    if (!page_suffix(op, after, sizeof after) ||
        !set_url(op, "/%s?per_page=%d%s", collection, CK_PAGE_SIZE, after)) {
        finish(op, LB_FAIL, "Kit: pagination cursor too long");
        return;
    }
    send_request(op, step, "GET", false);
}

/* POST /subscribers: an upsert, 201 created or 200 existed (spec §3 UPSERT).
 * state "active" only applies to a new subscriber; Kit never re-activates an
 * unsubscribed one here. */
static void send_upsert(ck_op *op)
{
    const lb_core_api *api = op->in->api;
    char email[CK_EMAIL_MAX * 2], name[CK_NAME_MAX * 2] = "";
    if (api->json_quote(op->email, email, sizeof email) < 0 ||
        (op->first_name[0] && api->json_quote(op->first_name, name, sizeof name) < 0)) {
        finish(op, LB_FAIL, "Kit: e-mail or name too long");
        return;
    }
    int n = snprintf(op->body, sizeof op->body, "{\"email_address\":%s%s%s,\"state\":\"active\"}", email,
                     name[0] ? ",\"first_name\":" : "", name);
    if (n < 0 || (size_t)n >= sizeof op->body || !set_url(op, "/subscribers")) {
        finish(op, LB_FAIL, "Kit: e-mail or name too long");
        return;
    }
    send_request(op, CK_STEP_UPSERT, "POST", true);
}

/* POST /tags {"name"}: returns the existing tag with 200 (spec §5.6). */
static void send_tag_create(ck_op *op)
{
    char name[CK_NAME_MAX * 2];
    if (op->in->api->json_quote(op->target, name, sizeof name) < 0 || !set_url(op, "/tags")) {
        finish(op, LB_FAIL, "Kit: tag name too long");
        return;
    }
    snprintf(op->body, sizeof op->body, "{\"name\":%s}", name);
    send_request(op, CK_STEP_TAG_CREATE, "POST", true);
}

/* The action itself: by subscriber id when we have one and the spec lists
 * that form, else by e-mail (a DELETE then carries a JSON body, spec §5.3). */
static void send_member(ck_op *op)
{
    const ck_action *a = op->act;
    char tid[CK_REF_MAX * 3], sid[CK_REF_MAX * 3], email[CK_EMAIL_MAX * 2];
    const lb_core_api *api = op->in->api;
    if (api->url_encode(op->target_id, tid, sizeof tid) < 0) {
        finish(op, LB_FAIL, "Kit: %s id too long", a->param);
        return;
    }
    bool by_id = a->by_id && op->sub_id[0] && api->url_encode(op->sub_id, sid, sizeof sid) >= 0;
    bool ok = by_id ? set_url(op, "/%s/%s/subscribers/%s", a->collection, tid, sid)
                    : set_url(op, "/%s/%s/subscribers", a->collection, tid);
    if (by_id)
        snprintf(op->body, sizeof op->body, "{}");
    else if (api->json_quote(op->email, email, sizeof email) < 0 ||
             (size_t)snprintf(op->body, sizeof op->body, "{\"email_address\":%s}", email) >= sizeof op->body)
        ok = false;
    if (!ok) {
        finish(op, LB_FAIL, "Kit: request too long");
        return;
    }
    /* A DELETE by id has no body; every other member request has one. */
    send_request(op, CK_STEP_MEMBER, a->method, !(by_id && strcmp(a->method, "DELETE") == 0));
}

/* The state machine: sends the request for the first missing fact. */
static void advance(ck_op *op)
{
    const ck_action *a = op->act;
    if (a->upsert_only ? !op->upserted : (a->needs_subscriber && op->sub_id[0] == '\0'))
        send_upsert(op);
    else if (a->upsert_only)
        finish(op, LB_OK, "Kit: %s", op->upsert_status == 201 ? a->did_new : a->did_dup);
    else if (op->target_id[0] == '\0' && a->resolve == CK_RESOLVE_CREATE)
        send_tag_create(op);
    else if (op->target_id[0] == '\0')
        send_page(op, CK_STEP_TAG_FIND, "tags");
    else
        send_member(op);
}

/* ---- response steps --------------------------------------------------------- */

static void on_upsert(ck_op *op, const lb_http_resp *resp)
{
    if (!is_2xx(resp)) {
        finish_error(op, resp, "subscriber upsert");
        return;
    }
    char id[CK_REF_MAX];
    if (jget(op, resp, "subscriber.id", id, sizeof id) <= 0 || !is_kit_id(id)) {
        finish(op, LB_RETRY, "Kit subscriber upsert: answer without a valid subscriber.id");
        return;
    }
    snprintf(op->sub_id, sizeof op->sub_id, "%s", id);
    op->upserted = true;
    op->ref_given = false;
    op->upsert_status = (int)resp->status;
    advance(op);
}

static void on_tag_create(ck_op *op, const lb_http_resp *resp)
{
    if (!is_2xx(resp)) {
        finish_error(op, resp, "tag create");
        return;
    }
    char id[CK_REF_MAX];
    if (jget(op, resp, "tag.id", id, sizeof id) <= 0 || !is_kit_id(id)) {
        finish(op, LB_RETRY, "Kit tag create: answer without a valid tag.id");
        return;
    }
    snprintf(op->target_id, sizeof op->target_id, "%s", id);
    advance(op);
}

/* Keeps the next page's cursor; false when this was the last page, or when
 * CK_MAX_PAGES were read (op->pages then says so). */
static bool next_cursor(ck_op *op, const lb_http_resp *resp)
{
    char more[8];
    if (jget(op, resp, "pagination.has_next_page", more, sizeof more) <= 0 || strcmp(more, "true") != 0)
        return false;
    return jget(op, resp, "pagination.end_cursor", op->cursor, sizeof op->cursor) > 0 &&
           ++op->pages < CK_MAX_PAGES;
}

/* Looks for op->target among one page of tags: an exact name wins; a name
 * equal but for ASCII case is kept as a fallback, as Kit's own idempotent
 * create may have matched it. The loop ends on the first missing id (json_get
 * also gives -1 for a value too long for the buffer, so a name cannot end it).
 * False when the tag's own entry has an id that is no Kit id (a fallback
 * with one is passed over). */
static bool scan_tags(ck_op *op, const lb_http_resp *resp)
{
    char path[48], id[CK_REF_MAX], name[CK_NAME_MAX];
    for (int i = 0; op->target_id[0] == '\0'; i++) {
        snprintf(path, sizeof path, "tags.%d.id", i);
        if (jget(op, resp, path, id, sizeof id) < 0)
            return true;
        snprintf(path, sizeof path, "tags.%d.name", i);
        if (jget(op, resp, path, name, sizeof name) < 0)
            continue;
        if (strcmp(name, op->target) == 0) {
            if (!is_kit_id(id))
                return false;
            snprintf(op->target_id, sizeof op->target_id, "%s", id);
        } else if (op->loose_id[0] == '\0' && is_kit_id(id) && ascii_case_equal(name, op->target)) {
            snprintf(op->loose_id, sizeof op->loose_id, "%s", id);
        }
    }
    return true;
}

static void on_tag_find(ck_op *op, const lb_http_resp *resp)
{
    if (!is_2xx(resp)) {
        finish_error(op, resp, "tag lookup");
        return;
    }
    if (!scan_tags(op, resp)) {
        finish(op, LB_RETRY, "Kit tag lookup: answer with an invalid tag id");
        return;
    }
    if (op->target_id[0] == '\0' && next_cursor(op, resp)) {
        send_page(op, CK_STEP_TAG_FIND, "tags");
        return;
    }
    if (op->target_id[0] == '\0' && op->loose_id[0])
        snprintf(op->target_id, sizeof op->target_id, "%s", op->loose_id);
    if (op->target_id[0] == '\0' && op->pages >= CK_MAX_PAGES) {
        finish(op, LB_FAIL, "Kit: tag \"%.120s\" not in the first %d tags", op->target,
               CK_MAX_PAGES * CK_PAGE_SIZE);
        return;
    }
    if (op->target_id[0] == '\0') {
        finish(op, LB_FAIL, "Kit: tag \"%.120s\" does not exist in the account", op->target);
        return;
    }
    advance(op);
}

/* A 404 on the member request. */
static void on_member_absent(ck_op *op, const lb_http_resp *resp)
{
    const ck_action *a = op->act;
    if (op->ref_given) {
        /* The remembered subscriber id may be stale (deleted in Kit): forget
         * it and go again from the upsert (or by e-mail, for tag_remove). */
        op->ref_given = false;
        op->sub_id[0] = '\0';
        advance(op);
        return;
    }
    if (a->absent_is_done) {
        finish(op, LB_OK, "Kit: subscriber or tag not found; nothing to remove");
        return;
    }
    char detail[160];
    error_detail(op, resp, detail, sizeof detail);
    finish(op, LB_FAIL, "Kit: %s %.64s not found (%s)", a->param, op->target_id, detail);
}

static void on_member(ck_op *op, const lb_http_resp *resp)
{
    if (!resp->transport_error && resp->status == 404) {
        on_member_absent(op, resp);
        return;
    }
    if (!is_2xx(resp)) {
        finish_error(op, resp, op->act->name);
        return;
    }
    char id[CK_REF_MAX];
    if (jget(op, resp, "subscriber.id", id, sizeof id) > 0 && is_kit_id(id))
        snprintf(op->sub_id, sizeof op->sub_id, "%s", id);
    finish(op, LB_OK, "Kit: %s", resp->status == 200 ? op->act->did_dup : op->act->did_new);
}

static void on_verify(ck_op *op, const lb_http_resp *resp)
{
    if (!is_2xx(resp)) {
        finish_error(op, resp, "verify");
        return;
    }
    finish(op, LB_OK, "Kit: API key accepted");
}

/* Adds one page of forms/tags/sequences. Tags offer their name as the value,
 * since tag_add and tag_remove take names. */
static void add_resources(ck_op *op, const lb_http_resp *resp)
{
    char path[64], id[CK_REF_MAX], name[CK_NAME_MAX];
    bool tags = strcmp(op->kind, "tags") == 0;
    for (int i = 0;; i++) {
        snprintf(path, sizeof path, "%s.%d.id", op->kind, i);
        if (jget(op, resp, path, id, sizeof id) < 0)
            return;
        snprintf(path, sizeof path, "%s.%d.name", op->kind, i);
        if (jget(op, resp, path, name, sizeof name) < 0) {
            if (tags)
                continue; /* a tag is picked by its name: none, nothing to offer */
            snprintf(name, sizeof name, "%s", id);
        }
        op->in->api->resource_add(op->call, tags ? name : id, name);
        op->found++;
    }
}

static void on_list(ck_op *op, const lb_http_resp *resp)
{
    if (!is_2xx(resp)) {
        finish_error(op, resp, "list");
        return;
    }
    add_resources(op, resp);
    if (next_cursor(op, resp)) {
        send_page(op, CK_STEP_LIST, op->kind);
        return;
    }
    finish(op, LB_OK, "Kit: %s listed (%u%s)", op->kind, op->found,
           op->pages >= CK_MAX_PAGES ? ", truncated" : "");
}

static void on_response(const lb_http_resp *resp, void *ud)
{
    ck_op *op = ud;
    op->http = NULL;
    op->last_status = resp->status;
    switch (op->step) {
    case CK_STEP_UPSERT: on_upsert(op, resp); break;
    case CK_STEP_TAG_CREATE: on_tag_create(op, resp); break;
    case CK_STEP_TAG_FIND: on_tag_find(op, resp); break;
    case CK_STEP_MEMBER: on_member(op, resp); break;
    case CK_STEP_VERIFY: on_verify(op, resp); break;
    case CK_STEP_LIST: on_list(op, resp); break;
    }
}

/* ---- plugin callbacks ------------------------------------------------------- */

/* Writes a reason and returns false, for load_job. */
static bool reject(char *why, size_t cap, const char *fmt, ...) CK_PRINTF(3, 4);
static bool reject(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return false;
}

/* Checks the job and copies what the chain needs. Returns false with a reason
 * when the job can never succeed as it is. */
static bool load_job(ck_op *op, const lb_job *job, char *why, size_t cap)
{
    const ck_action *a = op->act;
    if (!job->email || !*job->email || !copy(op->email, sizeof op->email, job->email))
        return reject(why, cap, "Kit: the job has no usable e-mail");
    pick_first_name(job, op->first_name, sizeof op->first_name);
    /* a contact_ref that is no id is taken as none: the call finds the
     * subscriber as it would without one, and the id Kit answers replaces
     * the stored one */
    if (!a->upsert_only && is_kit_id(job->contact_ref) && copy(op->sub_id, sizeof op->sub_id, job->contact_ref))
        op->ref_given = true;
    if (!a->param)
        return true;
    const char *v = job_param(job, a->param);
    if (!v || !*v)
        return reject(why, cap, "Kit: missing parameter \"%s\"", a->param);
    if (!copy(op->target, sizeof op->target, v))
        return reject(why, cap, "Kit: parameter \"%s\" is too long", a->param);
    if (a->resolve != CK_RESOLVE_NONE)
        return true;
    /* Kit ids are integers; checking here gives a clear reason and keeps
     * anything odd out of the URL path. */
    if (!is_kit_id(v))
        return reject(why, cap, "Kit: %s must be a numeric Kit %s id, not \"%.64s\"", a->param, a->param, v);
    snprintf(op->target_id, sizeof op->target_id, "%s", v);
    return true;
}

static void ck_submit(void *instance, lb_call *call, const lb_job *job)
{
    ck_instance *in = instance;
    const ck_action *a = job->action ? find_action(job->action) : NULL;
    if (!a) {
        finish_early(in, call, LB_FAIL,
                     job->action && strcmp(job->action, "list_remove") == 0
                         ? "Kit has no per-list removal (its unsubscribe is global); use tag_remove"
                         : "Kit: action not supported");
        return;
    }
    ck_op *op = op_new(in, call);
    if (!op) {
        finish_early(in, call, LB_RETRY, "Kit: out of memory");
        return;
    }
    op->act = a;
    char why[200];
    if (!load_job(op, job, why, sizeof why)) {
        finish(op, LB_FAIL, "%s", why);
        return;
    }
    advance(op);
}

static void ck_verify(void *instance, lb_call *call)
{
    ck_op *op = op_new(instance, call);
    if (!op) {
        finish_early(instance, call, LB_RETRY, "Kit: out of memory");
        return;
    }
    if (!set_url(op, "/tags?per_page=1")) {
        finish(op, LB_FAIL, "Kit: base_url too long");
        return;
    }
    send_request(op, CK_STEP_VERIFY, "GET", false);
}

static void ck_list_resources(void *instance, lb_call *call, const char *kind)
{
    if (!kind || !known_kind(kind)) {
        finish_early(instance, call, LB_FAIL, "Kit: resource kinds are forms, tags and sequences");
        return;
    }
    ck_op *op = op_new(instance, call);
    if (!op) {
        finish_early(instance, call, LB_RETRY, "Kit: out of memory");
        return;
    }
    snprintf(op->kind, sizeof op->kind, "%s", kind);
    send_page(op, CK_STEP_LIST, op->kind);
}

static void ck_cancel(void *instance, lb_call *call)
{
    ck_instance *in = instance;
    for (ck_op *op = in->ops; op; op = op->next)
        if (op->call == call) {
            if (op->http)
                in->api->http_cancel(op->http);
            op_free(op);
            return;
        }
}

static void ck_destroy(void *instance)
{
    ck_instance *in = instance;
    if (!in)
        return;
    while (in->ops) {
        if (in->ops->http)
            in->api->http_cancel(in->ops->http);
        op_free(in->ops);
    }
    wipe(in->auth_header, sizeof in->auth_header);
    free(in);
}

static bool api_complete(const lb_core_api *api)
{
    return LB_API_HAS(api, complete) && LB_API_HAS(api, http_request) && LB_API_HAS(api, http_classify) &&
           LB_API_HAS(api, json_get) && LB_API_HAS(api, json_quote) && LB_API_HAS(api, url_encode) &&
           LB_API_HAS(api, resource_add) && LB_API_HAS(api, secret) && LB_API_HAS(api, setting);
}

/* base_url: http(s), no trailing '/', so paths join with one. */
static int load_base(ck_instance *in, char *err, size_t errlen)
{
    const char *base = in->api->setting(in->settings, "base_url");
    if (!base || !*base)
        base = CK_DEFAULT_BASE;
    if ((strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0) ||
        !copy(in->base, sizeof in->base, base)) {
        snprintf(err, errlen, "base_url must be an http(s) URL of at most %zu bytes", sizeof in->base - 1);
        return -1;
    }
    for (size_t n = strlen(in->base); n > 0 && in->base[n - 1] == '/'; n--)
        in->base[n - 1] = '\0';
    return 0;
}

/* spec §1: v4 authenticates with the X-Kit-Api-Key header. */
static int load_key(ck_instance *in, char *err, size_t errlen)
{
    char key[256];
    int n = in->api->secret(in->settings, "api_key", key, sizeof key);
    int rc = 0;
    if (n <= 0 || (size_t)n >= sizeof key || strpbrk(key, "\r\n")) {
        snprintf(err, errlen, "api_key is missing, too long or contains a line break");
        rc = -1;
    } else {
        snprintf(in->auth_header, sizeof in->auth_header, "X-Kit-Api-Key: %s", key);
    }
    wipe(key, sizeof key);
    return rc;
}

static int ck_init(const lb_core_api *api, const lb_settings *settings, void **instance, char *err,
                   size_t errlen)
{
    if (!api_complete(api)) {
        snprintf(err, errlen, "the core lacks functions this plugin needs");
        return -1;
    }
    ck_instance *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    in->api = api;
    in->settings = settings;
    if (load_base(in, err, errlen) < 0 || load_key(in, err, errlen) < 0) {
        ck_destroy(in);
        return -1;
    }
    *instance = in;
    return 0;
}

/* ---- declarations ----------------------------------------------------------- */

static const lb_config_decl ck_config[] = {
    {"api_key", LB_CFG_REQUIRED | LB_CFG_SECRET, NULL,
     "Kit v4 API key (Settings > Developer), sent as X-Kit-Api-Key"},
    {"base_url", 0, CK_DEFAULT_BASE, "API base URL; tests point it at a local fake"},
    {NULL, 0, NULL, NULL},
};

static const lb_param_decl ck_no_params[] = {{NULL, 0, NULL, NULL}};

static const lb_param_decl ck_tag_add_params[] = {
    {"tag", LB_PARAM_REQUIRED, "tags", "Tag name; created in Kit when it does not exist"},
    {NULL, 0, NULL, NULL},
};

static const lb_param_decl ck_tag_remove_params[] = {
    {"tag", LB_PARAM_REQUIRED, "tags", "Tag name; it must exist in Kit"},
    {NULL, 0, NULL, NULL},
};

static const lb_param_decl ck_form_params[] = {
    {"form", LB_PARAM_REQUIRED, "forms", "Kit form id (Kit has no lists; a form stands in for one)"},
    {NULL, 0, NULL, NULL},
};

static const lb_param_decl ck_sequence_params[] = {
    {"sequence", LB_PARAM_REQUIRED, "sequences", "Kit sequence id"},
    {NULL, 0, NULL, NULL},
};

/* design.md §1: "remove works only for a lead that was tagged through add
 * tag", hence tag_remove's prerequisite. No list_remove: see the file head. */
static const lb_action_decl ck_action_decls[] = {
    {"contact_upsert", "Create or update subscriber", ck_no_params, NULL, NULL},
    {"tag_add", "Add tag", ck_tag_add_params, NULL, NULL},
    {"tag_remove", "Remove tag", ck_tag_remove_params, "tag_add", "tag"},
    {"list_add", "Add to form", ck_form_params, NULL, NULL},
    {"sequence_add", "Add to sequence", ck_sequence_params, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* spec §4: 120 requests per rolling 60 s per API key. A token bucket lets
 * rate * 60 + burst requests into any 60 s, so 1.9/s with a burst of 6 stays
 * within 120. Kit documents no concurrency limit; 4 keeps chains short. */
LB_PLUGIN_REGISTER(.name = "convertkit", .display_name = "Kit (ConvertKit)", .version = "1.0.0",
                   .config = ck_config, .actions = ck_action_decls, .can_send_billet = 0,
                   .default_rate_per_s = 1.9, .default_burst = 6, .default_concurrency = 4,
                   .init = ck_init, .verify = ck_verify, .list_resources = ck_list_resources,
                   .submit = ck_submit, .cancel = ck_cancel, .destroy = ck_destroy)
