/* mailchimp.c: the ListBoss provider plugin for the Mailchimp Marketing API v3.
 *
 * The wire contract is spec/providers/mailchimp.md; "spec §N" below points at
 * its sections. Everything goes through the core's api table: no curl or JSON
 * library headers, no blocking, no globals but const tables.
 *
 * Shape: every call (submit, verify, list_resources) becomes one mc_op that
 * walks a few steps, one HTTP exchange each, and ends in exactly one
 * api->complete(). Steps exist because Mailchimp answers "404 Resource Not
 * Found" both for an unknown audience and for an email that is not on it
 * (spec §3), and the two mean opposite things: a follow-up request tells them
 * apart.
 */
#include <listboss/plugin.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MC_EMAIL_MAX 254 /* RFC 5321 path limit */
#define MC_ID_MAX 128
#define MC_PAGE 1000     /* GET /lists page size: Mailchimp's maximum `count` */
#define MC_MAX_PAGES 50  /* a server whose total_items never ends must not page us forever */

/* ---- small string builder ---------------------------------------------------- */

typedef struct sb {
    char *p;
    size_t len, cap;
    int oom;
} sb;

static int sb_reserve(sb *b, size_t more)
{
    if (b->oom)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void sb_puts(sb *b, const char *s)
{
    size_t n = strlen(s);
    if (sb_reserve(b, n) == 0) {
        memcpy(b->p + b->len, s, n + 1);
        b->len += n;
    }
}

/* Appends s as a JSON string literal, quoted by the core (json_quote). */
static void sb_json(sb *b, const lb_core_api *api, const char *s)
{
    size_t need = strlen(s) * 6 + 3; /* worst case: every byte as \u00XX */
    if (sb_reserve(b, need) != 0)
        return;
    int n = api->json_quote(s, b->p + b->len, need + 1);
    if (n < 0)
        b->oom = 1;
    else
        b->len += (size_t)n;
}

/* Appends s percent-encoded for one URL path segment (url_encode). */
static void sb_seg(sb *b, const lb_core_api *api, const char *s)
{
    size_t need = strlen(s) * 3;
    if (sb_reserve(b, need) != 0)
        return;
    int n = api->url_encode(s, b->p + b->len, need + 1);
    if (n < 0)
        b->oom = 1;
    else
        b->len += (size_t)n;
}

/* Hands the text over (NULL if building failed) and resets the builder. */
static char *sb_take(sb *b)
{
    char *p = b->oom ? NULL : b->p;
    if (b->oom)
        free(b->p);
    if (p == NULL && !b->oom)
        p = calloc(1, 1);
    memset(b, 0, sizeof *b);
    return p;
}

/* ---- declarations ------------------------------------------------------------ */

static const lb_config_decl mc_config[] = {
    {"api_key", LB_CFG_REQUIRED | LB_CFG_SECRET, NULL,
     "Mailchimp API key; the part after its last '-' is the data center (...-us21)"},
    {"base_url", 0, NULL, "API base URL; default https://{dc}.api.mailchimp.com/3.0"},
    {"list_id", 0, NULL,
     "default audience id: used when an action has no \"list\" param, and for listing tags"},
    {"double_opt_in", 0, "false",
     "true: new members are 'pending' and Mailchimp emails them a confirmation; false: 'subscribed'"},
    {"merge_first_name", 0, "FNAME", "merge tag for the first name (empty: do not send)"},
    {"merge_last_name", 0, "LNAME", "merge tag for the last name (empty: do not send)"},
    {"merge_phone", 0, "PHONE", "merge tag for the phone (empty: do not send)"},
    {"timeout_ms", 0, "15000", "per-request timeout in milliseconds"},
    {NULL, 0, NULL, NULL},
};

/* Members live in one audience each (spec §1), so every member action takes
 * the audience; it defaults to the list_id setting except where the audience
 * is the very point of the action (list_add / list_remove / list_unsubscribe). */
static const lb_param_decl p_audience[] = {
    {"list", 0, "lists", "audience id (default: the list_id setting)"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl p_list[] = {
    {"list", LB_PARAM_REQUIRED, "lists", "audience id"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl p_tag[] = {
    {"tag", LB_PARAM_REQUIRED, "tags", "tag name; Mailchimp creates an unknown tag on first use"},
    {"list", 0, "lists", "audience id (default: the list_id setting)"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl p_seq_add[] = {
    {"journey", 0, NULL, "Customer Journey id (with \"step\")"},
    {"step", 0, NULL, "id of the journey's API-trigger step"},
    {"workflow", 0, NULL, "classic automation id (with \"workflow_email\")"},
    {"workflow_email", 0, NULL, "classic automation email id"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl p_seq_remove[] = {
    {"workflow", LB_PARAM_REQUIRED, NULL, "classic automation id"},
    {NULL, 0, NULL, NULL},
};

/* The order of mc_actions matches mc_kind. No action has a prerequisite:
 * a tag can be made inactive on any member (spec §2 TAG-), and the steps
 * below create a missing member where Mailchimp needs one. */
typedef enum mc_kind {
    K_UPSERT,
    K_LIST_ADD,
    K_LIST_REMOVE,
    K_UNSUBSCRIBE,
    K_TAG_ADD,
    K_TAG_REMOVE,
    K_SEQ_ADD,
    K_SEQ_REMOVE,
    K_VERIFY,      /* not actions: the other two kinds of call */
    K_LIST_LISTS,
    K_LIST_TAGS,
} mc_kind;

static const lb_action_decl mc_actions[] = {
    {"contact_upsert", "Create or update the contact in an audience", p_audience, NULL, NULL},
    {"list_add", "Add to an audience", p_list, NULL, NULL},
    {"list_remove", "Remove from an audience (archive)", p_list, NULL, NULL},
    {"list_unsubscribe", "Unsubscribe from an audience", p_list, NULL, NULL},
    {"tag_add", "Add a tag", p_tag, NULL, NULL},
    {"tag_remove", "Remove a tag", p_tag, NULL, NULL},
    {"sequence_add", "Start a Customer Journey or classic automation", p_seq_add, NULL, NULL},
    {"sequence_remove", "Remove from a classic automation", p_seq_remove, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ---- instance and calls ------------------------------------------------------ */

typedef struct mc_op mc_op;

typedef struct mc_inst {
    const lb_core_api *api;
    const lb_settings *settings;
    char base[512];
    char auth[512];             /* "Authorization: Basic ...": a secret, wiped in destroy */
    char list_id[MC_ID_MAX];
    const char *status_if_new;  /* "subscribed" or "pending" (spec §4.2) */
    char merge_first[32], merge_last[32], merge_phone[32];
    uint32_t timeout_ms;
    mc_op *ops;                 /* calls in flight, for cancel and destroy */
} mc_inst;

typedef enum mc_step {
    S_MAIN,          /* the action's own request */
    S_CHECK_LIST,    /* after a 404: does the audience exist? */
    S_CREATE_MEMBER, /* tag_add after a 404: PUT the member, then tag again */
    S_TAG_AGAIN,
} mc_step;

struct mc_op {
    mc_op *next, **pprev;
    mc_inst *inst;
    lb_call *call;
    lb_http *http;
    mc_kind kind;
    mc_step step;
    char list[MC_ID_MAX];
    char hash[33];
    const char *method;         /* the main request, kept to send it again */
    char *url, *body;
    char *member_url, *member_body; /* the member PUT, for tag_add's fallback */
    char *cur_url;              /* the request in flight and its headers, kept */
    const char *headers[4];     /* alive until it answers */
    unsigned offset;            /* list_resources paging */
    unsigned pages;             /* list pages answered so far */
};

static void op_free(mc_op *op)
{
    if (op->next)
        op->next->pprev = op->pprev;
    *op->pprev = op->next;
    free(op->url);
    free(op->body);
    free(op->member_url);
    free(op->member_body);
    free(op->cur_url);
    free(op);
}

static mc_op *op_new(mc_inst *inst, lb_call *call, mc_kind kind)
{
    mc_op *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->inst = inst;
    op->call = call;
    op->kind = kind;
    op->next = inst->ops;
    if (inst->ops)
        inst->ops->pprev = &op->next;
    op->pprev = &inst->ops;
    inst->ops = op;
    return op;
}

/* Ends the call: exactly one complete() per op, then the op is gone. */
static void op_finish(mc_op *op, lb_result *res)
{
    const lb_core_api *api = op->inst->api;
    lb_call *call = op->call;
    op_free(op);
    api->complete(call, res);
}

static void op_end(mc_op *op, lb_status st, int http, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void op_end(mc_op *op, lb_status st, int http, const char *fmt, ...)
{
    lb_result res;
    memset(&res, 0, sizeof res);
    res.status = st;
    res.http_status = http;
    if (op->hash[0])
        snprintf(res.provider_ref, sizeof res.provider_ref, "%s", op->hash);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res.reason, sizeof res.reason, fmt, ap);
    va_end(ap);
    op_finish(op, &res);
}

/* ---- reading answers ----------------------------------------------------------- */

/* A value from the answer's JSON, or "" and -1 (absent, or longer than n). */
static int jget(const mc_inst *inst, const lb_http_resp *r, const char *path, char *out, size_t n)
{
    out[0] = '\0';
    if (!r->body || r->body_len == 0)
        return -1;
    int len = inst->api->json_get(r->body, r->body_len, path, out, n);
    out[n - 1] = '\0';
    if (len < 0)
        out[0] = '\0';
    return len;
}

static int is_2xx(const lb_http_resp *r)
{
    return !r->transport_error && r->status >= 200 && r->status < 300;
}

/* The problem document's title (spec §3): Mailchimp's error identifier. */
static int title_is(const mc_inst *inst, const lb_http_resp *r, const char *title)
{
    char t[96];
    return jget(inst, r, "title", t, sizeof t) >= 0 && strcmp(t, title) == 0;
}

/* "HTTP 400 Invalid Resource: detail (FNAME: Please enter a value)". */
static void problem_reason(const mc_inst *inst, const lb_http_resp *r, char *out, size_t n)
{
    if (r->transport_error || r->status == 0) {
        snprintf(out, n, "no HTTP answer: %s", r->error ? r->error : "transport error");
        return;
    }
    /* json_get refuses (does not cut) a value longer than its buffer, and a
     * detail quotes the email (up to 254 bytes): read whole, cut below. */
    char title[128], detail[1024], field[64], msg[512];
    jget(inst, r, "title", title, sizeof title);
    jget(inst, r, "detail", detail, sizeof detail);
    jget(inst, r, "errors.0.field", field, sizeof field);
    jget(inst, r, "errors.0.message", msg, sizeof msg);
    int k = snprintf(out, n, "HTTP %ld%s%s%s%s", r->status, title[0] ? " " : "", title,
                     detail[0] ? ": " : "", detail);
    if (k > 0 && (size_t)k < n && msg[0])
        snprintf(out + k, n - (size_t)k, " (%s%s%s)", field, field[0] ? ": " : "", msg);
}

/* The error contract (spec §3), on top of the core's default mapping
 * (2xx OK; 408/429/5xx/transport RETRY with Retry-After; 401/403 AUTH;
 * other 4xx FAIL). */
static void classify(const mc_inst *inst, const lb_http_resp *r, lb_result *res)
{
    const lb_core_api *api = inst->api;
    res->http_status = (int)r->status;
    res->status = api->http_classify(r, &res->retry_after_ms);
    problem_reason(inst, r, res->reason, sizeof res->reason);
    if (r->transport_error)
        return;
    if (r->status == 429) {
        /* Spec §3: throttling is by concurrent connections and no Retry-After
         * is documented; a header, if one ever comes, was honoured above. */
        res->status = LB_RETRY;
        res->rate_limited = 1;
    } else if (r->status == 400 && title_is(inst, r, "Member Exists")) {
        res->status = LB_OK; /* the member is there: what a create wanted (spec §3) */
    } else if (r->status == 400) {
        char detail[1024];
        /* Spec §3 "Signup throttling for one email": transient, not a bad request. */
        if (jget(inst, r, "detail", detail, sizeof detail) >= 0 &&
            strstr(detail, "signed up to a lot of lists"))
            res->status = LB_RETRY;
        /* Compliance state and forgotten emails stay FAIL: only the contact
         * can undo them (spec §3, §4.2, §4.5). */
    }
}

static void end_with_problem(mc_op *op, const lb_http_resp *r)
{
    lb_result res;
    memset(&res, 0, sizeof res);
    classify(op->inst, r, &res);
    if (op->hash[0])
        snprintf(res.provider_ref, sizeof res.provider_ref, "%s", op->hash);
    op_finish(op, &res);
}

/* ---- sending ------------------------------------------------------------------- */

static void on_http(const lb_http_resp *r, void *ud);

/* Starts one exchange for the op; the URL and body stay alive in the op
 * until the answer (the ABI does not promise the core copies them). */
static int op_send(mc_op *op, const char *method, const char *url, const char *body)
{
    mc_inst *inst = op->inst;
    free(op->cur_url);
    op->cur_url = strdup(url);
    if (!op->cur_url)
        return -1;
    op->headers[0] = inst->auth;
    op->headers[1] = "Accept: application/json";
    op->headers[2] = body ? "Content-Type: application/json" : NULL;
    op->headers[3] = NULL;
    lb_http_req req = {
        .method = method, .url = op->cur_url, .headers = op->headers,
        .body = body, .body_len = body ? strlen(body) : 0, .timeout_ms = inst->timeout_ms,
    };
    op->http = inst->api->http_request(op->call, &req, on_http, op);
    return op->http ? 0 : -1;
}

static void send_or_end(mc_op *op, const char *method, const char *url, const char *body)
{
    if (op_send(op, method, url, body) != 0)
        op_end(op, LB_RETRY, 0, "could not start the HTTP request");
}

/* GET /lists/{list_id}: tells an unknown audience from an absent member. */
static void check_list(mc_op *op)
{
    sb b = {0};
    sb_puts(&b, op->inst->base);
    sb_puts(&b, "/lists/");
    sb_seg(&b, op->inst->api, op->list);
    sb_puts(&b, "?fields=id");
    char *url = sb_take(&b);
    op->step = S_CHECK_LIST;
    if (!url) {
        op_end(op, LB_RETRY, 0, "out of memory");
        return;
    }
    send_or_end(op, "GET", url, NULL);
    free(url);
}

/* ---- answers, step by step ---------------------------------------------------- */

static void end_ok_member(mc_op *op, const lb_http_resp *r)
{
    char id[sizeof op->hash], status[32];
    /* The member id is the subscriber hash (spec §2 member object). */
    if (jget(op->inst, r, "id", id, sizeof id) == 32)
        memcpy(op->hash, id, sizeof op->hash);
    jget(op->inst, r, "status", status, sizeof status);
    /* Spec §4.2: status_if_new leaves an existing member's status alone, so an
     * unsubscribed or cleaned contact stays so. That is the contact's choice,
     * not an error; say it. */
    if (!strcmp(status, "unsubscribed") || !strcmp(status, "cleaned"))
        op_end(op, LB_OK, (int)r->status, "member is %s: left so (only the contact can resubscribe)",
               status);
    else if (!strcmp(status, "pending"))
        op_end(op, LB_OK, (int)r->status, "member is pending double opt-in confirmation");
    else
        op_end(op, LB_OK, (int)r->status, "done");
}

static void on_404(mc_op *op, const lb_http_resp *r)
{
    switch (op->kind) {
    case K_UPSERT:
    case K_LIST_ADD: /* PUT creates a missing member: only the audience can be missing */
        op_end(op, LB_FAIL, 404, "Mailchimp audience '%s' not found", op->list);
        return;
    case K_TAG_ADD: /* spec §4.4: tagging needs a member, so upsert first */
        op->step = S_CREATE_MEMBER;
        send_or_end(op, "PUT", op->member_url, op->member_body);
        return;
    case K_LIST_REMOVE:
    case K_UNSUBSCRIBE:
    case K_TAG_REMOVE:
        check_list(op);
        return;
    case K_SEQ_ADD:
    case K_SEQ_REMOVE:
        op_end(op, LB_FAIL, 404, "Mailchimp automation, journey or step not found");
        return;
    default:
        end_with_problem(op, r);
        return;
    }
}

static void on_main(mc_op *op, const lb_http_resp *r)
{
    if (!is_2xx(r)) {
        if (r->status == 404 && !r->transport_error && op->step == S_TAG_AGAIN)
            /* the member was created a moment ago: creating it again would
             * loop for as long as the answers do (tests/fuzz/fuzz_plugin.c);
             * the next attempt starts over */
            op_end(op, LB_RETRY, 404, "Mailchimp member still not found after creating it");
        else if (r->status == 404 && !r->transport_error)
            on_404(op, r);
        else
            end_with_problem(op, r);
        return;
    }
    if (op->kind == K_UPSERT || op->kind == K_LIST_ADD)
        end_ok_member(op, r);
    else
        op_end(op, LB_OK, (int)r->status, "done");
}

static void on_check_list(mc_op *op, const lb_http_resp *r)
{
    if (is_2xx(r)) /* the audience exists, so the member is not on it */
        op_end(op, LB_OK, (int)r->status, "not a member of audience '%s': nothing to do", op->list);
    else if (r->status == 404 && !r->transport_error)
        op_end(op, LB_FAIL, 404, "Mailchimp audience '%s' not found", op->list);
    else
        end_with_problem(op, r);
}

static void on_create_member(mc_op *op, const lb_http_resp *r)
{
    if (is_2xx(r)) {
        op->step = S_TAG_AGAIN;
        send_or_end(op, op->method, op->url, op->body);
    } else if (r->status == 404 && !r->transport_error) {
        op_end(op, LB_FAIL, 404, "Mailchimp audience '%s' not found", op->list);
    } else {
        end_with_problem(op, r);
    }
}

static void on_verify(mc_op *op, const lb_http_resp *r)
{
    if (is_2xx(r))
        op_end(op, LB_OK, (int)r->status, "API key accepted");
    else
        end_with_problem(op, r);
}

static void send_lists_page(mc_op *op);

/* GET /lists answers {"lists":[{id,name}...],"total_items":N}; tag-search
 * answers {"tags":[{id,name}...]}. A tag is picked by name (spec §2 TAG+). */
static void on_resources(mc_op *op, const lb_http_resp *r)
{
    if (!is_2xx(r)) {
        end_with_problem(op, r);
        return;
    }
    const char *arr = op->kind == K_LIST_LISTS ? "lists" : "tags";
    unsigned n = 0;
    for (;; n++) {
        char path[48], id[MC_ID_MAX], name[256];
        snprintf(path, sizeof path, "%s.%u.name", arr, n);
        if (jget(op->inst, r, path, name, sizeof name) < 0)
            break;
        snprintf(path, sizeof path, "%s.%u.id", arr, n);
        if (op->kind == K_LIST_LISTS && jget(op->inst, r, path, id, sizeof id) < 0)
            break;
        op->inst->api->resource_add(op->call, op->kind == K_LIST_LISTS ? id : name, name);
    }
    char total[24];
    op->offset += n;
    if (op->kind == K_LIST_LISTS && n > 0 && ++op->pages < MC_MAX_PAGES &&
        jget(op->inst, r, "total_items", total, sizeof total) > 0 && strtoul(total, NULL, 10) > op->offset)
        send_lists_page(op);
    else
        op_end(op, LB_OK, (int)r->status, "%u %s", op->offset, arr);
}

static void on_http(const lb_http_resp *r, void *ud)
{
    mc_op *op = ud;
    op->http = NULL; /* answered: nothing left to cancel */
    switch (op->kind) {
    case K_VERIFY:
        on_verify(op, r);
        return;
    case K_LIST_LISTS:
    case K_LIST_TAGS:
        on_resources(op, r);
        return;
    default:
        break;
    }
    switch (op->step) {
    case S_MAIN:
    case S_TAG_AGAIN:
        on_main(op, r);
        return;
    case S_CHECK_LIST:
        on_check_list(op, r);
        return;
    case S_CREATE_MEMBER:
        on_create_member(op, r);
        return;
    }
}

/* ---- building requests from a job ----------------------------------------------- */

static const char *job_param(const lb_job *job, const char *key)
{
    for (const char *const *p = job->params; p && p[0] && p[1]; p += 2)
        if (!strcmp(p[0], key))
            return p[1][0] ? p[1] : NULL;
    return NULL;
}

/* "." and "..": url_encode keeps them (unreserved bytes), and as a path
 * segment they name another resource, so they are no id (an id from a
 * param goes into the path; tests/fuzz/fuzz_plugin.c checks every URL). */
static int is_dot_segment(const char *s)
{
    return s && (!strcmp(s, ".") || !strcmp(s, ".."));
}

/* Spec §1 plugin rule: trim, lower-case ASCII, then hash that. */
static int normalize_email(const char *in, char out[MC_EMAIL_MAX + 1])
{
    if (!in)
        return -1;
    while (*in == ' ' || *in == '\t')
        in++;
    size_t n = strlen(in);
    while (n && (in[n - 1] == ' ' || in[n - 1] == '\t' || in[n - 1] == '\r' || in[n - 1] == '\n'))
        n--;
    if (n == 0 || n > MC_EMAIL_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
    out[n] = '\0';
    return 0;
}

static void add_merge(sb *b, const lb_core_api *api, int *first, const char *tag, const char *val)
{
    if (!tag[0] || !val || !val[0])
        return;
    sb_puts(b, *first ? "" : ",");
    sb_json(b, api, tag);
    sb_puts(b, ":");
    sb_json(b, api, val);
    *first = 0;
}

/* First and last name: the job's own, else `name` split at its first space. */
static void split_name(const lb_job *job, char *first, char *last, size_t n)
{
    first[0] = last[0] = '\0';
    if (job->first_name || job->last_name) {
        snprintf(first, n, "%s", job->first_name ? job->first_name : "");
        snprintf(last, n, "%s", job->last_name ? job->last_name : "");
        return;
    }
    if (!job->name)
        return;
    const char *s = job->name;
    while (*s == ' ')
        s++;
    const char *sp = strchr(s, ' ');
    if (!sp) {
        snprintf(first, n, "%s", s);
        return;
    }
    snprintf(first, n, "%.*s", (int)(sp - s), s);
    while (*sp == ' ')
        sp++;
    snprintf(last, n, "%s", sp);
}

/* The upsert body (spec §2 UPSERT, §4.2): only status_if_new, never status,
 * so an unsubscribed contact is never forced back (Member In Compliance
 * State). PUT has no tags field; merge fields per the audience's tags. */
static char *member_body(const mc_inst *inst, const lb_job *job, const char *email)
{
    char first[256], last[256];
    split_name(job, first, last, sizeof first);
    sb b = {0};
    sb_puts(&b, "{\"email_address\":");
    sb_json(&b, inst->api, email);
    sb_puts(&b, ",\"status_if_new\":");
    sb_json(&b, inst->api, inst->status_if_new);
    sb_puts(&b, ",\"merge_fields\":{");
    int none = 1;
    add_merge(&b, inst->api, &none, inst->merge_first, first);
    add_merge(&b, inst->api, &none, inst->merge_last, last);
    add_merge(&b, inst->api, &none, inst->merge_phone, job->phone);
    sb_puts(&b, "}}");
    return sb_take(&b);
}

/* {base}/lists/{list}/members/{hash}{suffix} */
static char *member_url(const mc_op *op, const char *suffix)
{
    sb b = {0};
    sb_puts(&b, op->inst->base);
    sb_puts(&b, "/lists/");
    sb_seg(&b, op->inst->api, op->list);
    sb_puts(&b, "/members/");
    sb_puts(&b, op->hash);
    sb_puts(&b, suffix);
    return sb_take(&b);
}

/* Spec §2 TAG+/TAG-: one idempotent endpoint, "active" adds, "inactive" removes. */
static char *tag_body(const mc_inst *inst, const char *tag, const char *status)
{
    sb b = {0};
    sb_puts(&b, "{\"tags\":[{\"name\":");
    sb_json(&b, inst->api, tag);
    sb_puts(&b, ",\"status\":\"");
    sb_puts(&b, status);
    sb_puts(&b, "\"}],\"is_syncing\":false}");
    return sb_take(&b);
}

static char *email_body(const mc_inst *inst, const char *email)
{
    sb b = {0};
    sb_puts(&b, "{\"email_address\":");
    sb_json(&b, inst->api, email);
    sb_puts(&b, "}");
    return sb_take(&b);
}

/* Spec §2 SEQ+: a Customer Journey's API-trigger step (204), or a classic
 * automation email's queue (200). Journeys first: classic automations are a
 * legacy feature (spec §4.7). */
static const char *build_seq_add(mc_op *op, const lb_job *job, const char *email)
{
    const char *journey = job_param(job, "journey"), *step = job_param(job, "step");
    const char *wf = job_param(job, "workflow"), *wfe = job_param(job, "workflow_email");
    const lb_core_api *api = op->inst->api;
    if (is_dot_segment(journey) || is_dot_segment(step) || is_dot_segment(wf) || is_dot_segment(wfe))
        return "\".\" and \"..\" are not Mailchimp ids";
    sb b = {0};
    sb_puts(&b, op->inst->base);
    if (journey && step) {
        sb_puts(&b, "/customer-journeys/journeys/");
        sb_seg(&b, api, journey);
        sb_puts(&b, "/steps/");
        sb_seg(&b, api, step);
        sb_puts(&b, "/actions/trigger");
    } else if (wf && wfe) {
        sb_puts(&b, "/automations/");
        sb_seg(&b, api, wf);
        sb_puts(&b, "/emails/");
        sb_seg(&b, api, wfe);
        sb_puts(&b, "/queue");
    } else {
        free(b.p);
        return "sequence_add needs the params journey and step, or workflow and workflow_email";
    }
    op->method = "POST";
    op->url = sb_take(&b);
    op->body = email_body(op->inst, email);
    return NULL;
}

/* Spec §2 SEQ- (classic automations only: journeys have no remove). */
static const char *build_seq_remove(mc_op *op, const lb_job *job, const char *email)
{
    const char *wf = job_param(job, "workflow");
    if (!wf) /* declared required, but a host may not check */
        return "the param \"workflow\" is required";
    if (is_dot_segment(wf))
        return "\".\" and \"..\" are not Mailchimp ids";
    sb b = {0};
    sb_puts(&b, op->inst->base);
    sb_puts(&b, "/automations/");
    sb_seg(&b, op->inst->api, wf);
    sb_puts(&b, "/removed-subscribers");
    op->method = "POST";
    op->url = sb_take(&b);
    op->body = email_body(op->inst, email);
    return NULL;
}

/* Member actions: all keyed by audience + subscriber hash (spec §1). */
static const char *build_member(mc_op *op, const lb_job *job, const char *email)
{
    const mc_inst *inst = op->inst;
    const char *list = job_param(job, "list");
    if (!list)
        list = inst->list_id[0] ? inst->list_id : NULL;
    if (!list)
        return "no audience: set the param \"list\" or the setting list_id";
    if (strlen(list) >= sizeof op->list)
        return "audience id too long";
    if (is_dot_segment(list))
        return "\".\" and \"..\" are not Mailchimp audience ids";
    snprintf(op->list, sizeof op->list, "%s", list);
    const char *tag = job_param(job, "tag");
    if ((op->kind == K_TAG_ADD || op->kind == K_TAG_REMOVE) && !tag)
        return "the param \"tag\" is required";

    /* Spec §4.1: PUT is the idempotent upsert; skip_merge_validation so a
     * required merge field the buyer data cannot fill does not block (§4.3).
     * tag_add keeps it for a member that is not there yet (§4.4). */
    if (op->kind == K_TAG_ADD) {
        op->member_url = member_url(op, "?skip_merge_validation=true");
        op->member_body = member_body(inst, job, email);
    }
    switch (op->kind) {
    case K_UPSERT:
    case K_LIST_ADD:
        op->method = "PUT";
        op->url = member_url(op, "?skip_merge_validation=true");
        op->body = member_body(inst, job, email);
        break;
    case K_LIST_REMOVE: /* spec §4.5: default "remove" is archive, re-addable */
        op->method = "DELETE";
        op->url = member_url(op, "");
        break;
    case K_UNSUBSCRIBE: /* spec §2 LIST- (unsubscribe): the one place we send status */
        op->method = "PATCH";
        op->url = member_url(op, "");
        op->body = strdup("{\"status\":\"unsubscribed\"}");
        break;
    default:
        op->method = "POST";
        op->url = member_url(op, "/tags");
        op->body = tag_body(inst, tag, op->kind == K_TAG_ADD ? "active" : "inactive");
        break;
    }
    return NULL;
}

/* Every string the op's requests need was allocated. */
static int op_built(const mc_op *op)
{
    return op->url && (op->body || !strcmp(op->method, "DELETE")) &&
           (op->kind != K_TAG_ADD || (op->member_url && op->member_body));
}

static int kind_of(const char *action)
{
    for (int i = 0; action && mc_actions[i].name; i++)
        if (!strcmp(mc_actions[i].name, action))
            return i;
    return -1;
}

/* ---- plugin callbacks ----------------------------------------------------------- */

static void mc_submit(void *instance, lb_call *call, const lb_job *job)
{
    mc_inst *inst = instance;
    int kind = kind_of(job->action);
    mc_op *op = op_new(inst, call, kind < 0 ? K_UPSERT : (mc_kind)kind);
    if (!op) {
        lb_result res = {.status = LB_RETRY, .reason = "out of memory"};
        inst->api->complete(call, &res);
        return;
    }
    char email[MC_EMAIL_MAX + 1];
    if (kind < 0) {
        op_end(op, LB_FAIL, 0, "unknown action '%.64s'", job->action ? job->action : "");
        return;
    }
    if (normalize_email(job->email, email) != 0) {
        op_end(op, LB_FAIL, 0, "missing or invalid email");
        return;
    }
    inst->api->md5_hex(email, op->hash);
    const char *err = op->kind == K_SEQ_ADD      ? build_seq_add(op, job, email)
                      : op->kind == K_SEQ_REMOVE ? build_seq_remove(op, job, email)
                                                 : build_member(op, job, email);
    if (err)
        op_end(op, LB_FAIL, 0, "%s", err);
    else if (!op_built(op))
        op_end(op, LB_RETRY, 0, "out of memory");
    else
        send_or_end(op, op->method, op->url, op->body);
}

/* Spec §3: a bad key, disabled key or wrong data center answers 401/403 on
 * any authenticated call; GET /ping is Mailchimp's cheapest one (its health
 * check; not in the spec's action table). */
static void mc_verify(void *instance, lb_call *call)
{
    mc_inst *inst = instance;
    mc_op *op = op_new(inst, call, K_VERIFY);
    char url[600];
    if (!op) {
        lb_result res = {.status = LB_RETRY, .reason = "out of memory"};
        inst->api->complete(call, &res);
        return;
    }
    snprintf(url, sizeof url, "%s/ping", inst->base);
    send_or_end(op, "GET", url, NULL);
}

static void send_lists_page(mc_op *op)
{
    char url[700];
    snprintf(url, sizeof url, "%s/lists?count=%d&offset=%u&fields=lists.id,lists.name,total_items",
             op->inst->base, MC_PAGE, op->offset);
    send_or_end(op, "GET", url, NULL);
}

/* "lists": the audiences (GET /lists, paged). "tags": the tags of the
 * list_id audience; tag-search is the only read API for tags (spec §4.4),
 * and without a name prefix it matches them all. */
static void mc_list_resources(void *instance, lb_call *call, const char *kind)
{
    mc_inst *inst = instance;
    int is_lists = kind && !strcmp(kind, "lists");
    int is_tags = kind && !strcmp(kind, "tags");
    mc_op *op = op_new(inst, call, is_tags ? K_LIST_TAGS : K_LIST_LISTS);
    if (!op) {
        lb_result res = {.status = LB_RETRY, .reason = "out of memory"};
        inst->api->complete(call, &res);
        return;
    }
    if (!is_lists && !is_tags) {
        op_end(op, LB_FAIL, 0, "unknown resource kind '%.32s' (lists, tags)", kind ? kind : "");
        return;
    }
    if (is_lists) {
        send_lists_page(op);
        return;
    }
    if (!inst->list_id[0]) {
        op_end(op, LB_FAIL, 0, "listing tags needs the setting list_id (tags belong to an audience)");
        return;
    }
    snprintf(op->list, sizeof op->list, "%s", inst->list_id);
    sb b = {0};
    sb_puts(&b, inst->base);
    sb_puts(&b, "/lists/");
    sb_seg(&b, inst->api, op->list);
    sb_puts(&b, "/tag-search");
    char *url = sb_take(&b);
    if (!url)
        op_end(op, LB_RETRY, 0, "out of memory");
    else
        send_or_end(op, "GET", url, NULL);
    free(url);
}

static void mc_cancel(void *instance, lb_call *call)
{
    mc_inst *inst = instance;
    for (mc_op *op = inst->ops; op; op = op->next) {
        if (op->call != call)
            continue;
        if (op->http)
            inst->api->http_cancel(op->http);
        op_free(op);
        return;
    }
}

/* ---- init and destroy ------------------------------------------------------------ */

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Spec §1: HTTP Basic, any user name, the API key as password. */
static int make_auth(mc_inst *inst, const char *key)
{
    char pair[300];
    int n = snprintf(pair, sizeof pair, "listboss:%s", key);
    if (n < 0 || (size_t)n >= sizeof pair)
        return -1;
    char b64[420];
    base64((const unsigned char *)pair, (size_t)n, b64);
    snprintf(inst->auth, sizeof inst->auth, "Authorization: Basic %s", b64);
    wipe(pair, sizeof pair);
    wipe(b64, sizeof b64);
    return 0;
}

/* Spec §1: the data center is the key's part after the '-' ("...-us21").
 * It becomes a host name, so only [a-z0-9] passes. */
static int key_dc(const char *key, char *dc, size_t n)
{
    const char *d = strrchr(key, '-');
    if (!d || !d[1] || strlen(d + 1) >= n)
        return -1;
    for (const char *c = d + 1; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            return -1;
    snprintf(dc, n, "%s", d + 1);
    return 0;
}

static int set_base(mc_inst *inst, const char *key, char *err, size_t errlen)
{
    const char *over = inst->api->setting(inst->settings, "base_url");
    if (over && over[0]) {
        if (strncmp(over, "http://", 7) && strncmp(over, "https://", 8)) {
            snprintf(err, errlen, "base_url must start with http:// or https://");
            return -1;
        }
        if (strlen(over) >= sizeof inst->base) {
            snprintf(err, errlen, "base_url too long");
            return -1;
        }
        snprintf(inst->base, sizeof inst->base, "%s", over);
        size_t n = strlen(inst->base);
        while (n && inst->base[n - 1] == '/')
            inst->base[--n] = '\0';
        return 0;
    }
    char dc[32];
    if (key_dc(key, dc, sizeof dc) != 0) {
        snprintf(err, errlen, "api_key has no data-center suffix such as -us21");
        return -1;
    }
    snprintf(inst->base, sizeof inst->base, "https://%s.api.mailchimp.com/3.0", dc);
    return 0;
}

static void copy_setting(const mc_inst *inst, const char *key, char *out, size_t n)
{
    const char *v = inst->api->setting(inst->settings, key);
    snprintf(out, n, "%s", v ? v : "");
}

static void read_options(mc_inst *inst)
{
    char v[32];
    copy_setting(inst, "list_id", inst->list_id, sizeof inst->list_id);
    copy_setting(inst, "merge_first_name", inst->merge_first, sizeof inst->merge_first);
    copy_setting(inst, "merge_last_name", inst->merge_last, sizeof inst->merge_last);
    copy_setting(inst, "merge_phone", inst->merge_phone, sizeof inst->merge_phone);
    copy_setting(inst, "double_opt_in", v, sizeof v);
    inst->status_if_new = (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) ? "pending"
                                                                                      : "subscribed";
    copy_setting(inst, "timeout_ms", v, sizeof v);
    inst->timeout_ms = (uint32_t)strtoul(v, NULL, 10);
}

static int mc_init(const lb_core_api *api, const lb_settings *settings, void **instance, char *err,
                   size_t errlen)
{
    mc_inst *inst = calloc(1, sizeof *inst);
    if (!inst) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    inst->api = api;
    inst->settings = settings;
    char key[256];
    int n = api->secret(settings, "api_key", key, sizeof key);
    while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == ' '))
        key[--n] = '\0';
    int rc = -1;
    if (n <= 0 || (size_t)n >= sizeof key - 1)
        snprintf(err, errlen, "api_key is missing or too long");
    else if (set_base(inst, key, err, errlen) != 0)
        ; /* err says why */
    else if (make_auth(inst, key) != 0)
        snprintf(err, errlen, "api_key too long");
    else
        rc = 0;
    wipe(key, sizeof key);
    if (rc != 0) {
        free(inst);
        return -1;
    }
    read_options(inst);
    if (is_dot_segment(inst->list_id)) { /* it goes into paths as the default audience */
        snprintf(err, errlen, "list_id \"%s\" is not a Mailchimp audience id", inst->list_id);
        wipe(inst->auth, sizeof inst->auth); /* made from the key above */
        free(inst);
        return -1;
    }
    *instance = inst;
    return 0;
}

/* The core drains before destroy; whatever is left it gave up on. */
static void mc_destroy(void *instance)
{
    mc_inst *inst = instance;
    while (inst->ops) {
        if (inst->ops->http)
            inst->api->http_cancel(inst->ops->http);
        op_free(inst->ops);
    }
    wipe(inst->auth, sizeof inst->auth);
    free(inst);
}

/* Spec §3 rate limits: 10 simultaneous connections per user and no published
 * per-second or per-minute quota, so the rate is left at 0 (none documented)
 * and concurrency carries the limit. */
LB_PLUGIN_REGISTER(.name = "mailchimp", .display_name = "Mailchimp", .version = "1.0.0",
                   .config = mc_config, .actions = mc_actions, .can_send_billet = 0,
                   .default_rate_per_s = 0.0, .default_burst = 0, .default_concurrency = 10,
                   .init = mc_init, .verify = mc_verify, .list_resources = mc_list_resources,
                   .submit = mc_submit, .cancel = mc_cancel, .destroy = mc_destroy)
