/* activecampaign.c: the ActiveCampaign (API v3) provider plugin.
 *
 * The wire contract is spec/providers/activecampaign.md ("the spec"; "§2"
 * etc. below are its sections). Each action is a short chain of HTTP
 * exchanges, one in flight per call, driven by the done callbacks:
 *
 *   contact_upsert  sync
 *   list_add        [sync] -> POST contactLists status 1
 *   list_remove     [find] -> POST contactLists status 2
 *   tag_add         [sync] -> tag id (cache, or search -> create) -> contact's contactTags -> POST contactTags
 *   tag_remove      [find] -> tag search -> contact's contactTags -> DELETE contactTags/{association id}
 *   sequence_add    [sync] -> POST contactAutomations
 *
 * [sync]/[find] are skipped when the job carries the contact id from an
 * earlier job (contact_ref). Adds sync, because an add must create the
 * contact (§4 quirk 1); removals only look the contact up, because removing
 * someone who is not there is already done and must not create them.
 *
 * Every chain can be repeated from the start without harm: sync is an upsert,
 * contactLists sets a status, tags are checked before tagging (§4 quirk 4),
 * and 422 "duplicate" on an association means it is already there (§3). */
#include <listboss/plugin.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AC_PAGE 100        /* §4 quirk 7: list endpoints page with limit <= 100 */
#define AC_MAX_PAGES 50    /* a server that ignores offset must not loop us forever */
#define AC_ID_MAX 32       /* ids are numbers sent as strings (§1) */
#define AC_TAG_MAX 256     /* tag names */
#define AC_EMAIL_MAX 320
#define AC_URL_MAX 2048
#define AC_KEY_MAX 256
#define AC_TAG_CACHE 64    /* §4 quirk 2: "cache tag ids" */
#define AC_RESTARTS 2      /* re-resolutions of a stale contact or tag id per call */

/* ---- declarations ------------------------------------------------------- */

static const lb_config_decl ac_config[] = {
    {"api_url", LB_CFG_REQUIRED, NULL,
     "The account's API URL from Settings > Developer, e.g. https://acct.api-us1.com (\"/api/3\" is added)"},
    {"api_key", LB_CFG_REQUIRED | LB_CFG_SECRET, NULL, "The user's API key (sent as the Api-Token header)"},
    {"billet_field_id", 0, "",
     "Id of a custom contact field (GET /api/3/fields) that receives the bank-slip link on every sync; "
     "empty: the link is not sent"},
    {NULL, 0, NULL, NULL},
};

static const lb_param_decl ac_no_params[] = {{NULL, 0, NULL, NULL}};
static const lb_param_decl ac_list_params[] = {
    {"list", LB_PARAM_REQUIRED, "lists", "List id (numeric)"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl ac_tag_params[] = {
    {"tag", LB_PARAM_REQUIRED, "tags", "Tag name (case-insensitive, no commas); created on first use"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl ac_untag_params[] = {
    {"tag", LB_PARAM_REQUIRED, "tags", "Tag name (case-insensitive)"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl ac_automation_params[] = {
    {"automation", LB_PARAM_REQUIRED, "automations", "Automation id (numeric)"},
    {NULL, 0, NULL, NULL},
};

/* No action requires an earlier one: ActiveCampaign removes by looking the
 * contact and the association up, so removing what was never added is a
 * harmless no-op rather than an error. */
static const lb_action_decl ac_actions[] = {
    {"contact_upsert", "Create or update the contact", ac_no_params, NULL, NULL},
    {"list_add", "Subscribe to a list", ac_list_params, NULL, NULL},
    {"list_remove", "Unsubscribe from a list", ac_list_params, NULL, NULL},
    {"tag_add", "Add a tag", ac_tag_params, NULL, NULL},
    {"tag_remove", "Remove a tag", ac_untag_params, NULL, NULL},
    {"sequence_add", "Add to an automation", ac_automation_params, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

typedef enum { AC_UPSERT, AC_LIST_ADD, AC_LIST_REMOVE, AC_TAG_ADD, AC_TAG_REMOVE, AC_SEQ_ADD } ac_kind;

typedef struct ac_action {
    const char *name;
    ac_kind kind;
    const char *param; /* the job parameter it needs, or NULL */
    int creates;       /* resolves the contact with sync (1) or find (0) */
} ac_action;

static const ac_action ac_action_table[] = {
    {"contact_upsert", AC_UPSERT, NULL, 1},   {"list_add", AC_LIST_ADD, "list", 1},
    {"list_remove", AC_LIST_REMOVE, "list", 0}, {"tag_add", AC_TAG_ADD, "tag", 1},
    {"tag_remove", AC_TAG_REMOVE, "tag", 0},  {"sequence_add", AC_SEQ_ADD, "automation", 1},
};

/* list_resources kinds: GET path, the array key and the display-name field. */
typedef struct ac_kind_info {
    const char *kind, *path, *array, *name_field;
} ac_kind_info;

static const ac_kind_info ac_kinds[] = {
    {"lists", "/lists", "lists", "name"},
    {"tags", "/tags", "tags", "tag"},
    {"automations", "/automations", "automations", "name"},
};

/* ---- instance and call state ------------------------------------------ */

typedef struct ac_tag_slot {
    char name[AC_TAG_MAX]; /* lower-cased: names are case-insensitive (§2 tag create) */
    char id[AC_ID_MAX];
} ac_tag_slot;

struct ac_op;

typedef struct ac_inst {
    const lb_core_api *api;
    const lb_settings *settings;
    char base[AC_URL_MAX / 2];   /* ".../api/3", no trailing slash */
    char auth[AC_KEY_MAX + 16];  /* "Api-Token: <key>"; wiped in destroy */
    const char *hdr_plain[3];
    const char *hdr_json[4];
    char billet_field[AC_ID_MAX];
    ac_tag_slot tags[AC_TAG_CACHE];
    unsigned tag_next;           /* round-robin replacement */
    struct ac_op *ops;           /* calls in flight, for cancel and destroy */
} ac_inst;

typedef struct ac_op {
    struct ac_op *next, *prev;
    ac_inst *in;
    lb_call *call;
    lb_http *http;               /* the exchange in flight, or NULL */
    const ac_action *act;        /* NULL for verify and list_resources */
    const ac_kind_info *kind;    /* list_resources only */
    char email[AC_EMAIL_MAX + 1];
    char param[AC_TAG_MAX];      /* list id, tag name or automation id */
    char contact[AC_ID_MAX];
    char tag[AC_ID_MAX];
    int contact_trusted;         /* contact id came from this call, not from contact_ref */
    int tag_cached;              /* tag id came from the cache */
    int tag_create_raced;
    int restarts;
    unsigned offset, pages;      /* paging through a list endpoint */
    char *sync_body;             /* built once from the job */
    char url[AC_URL_MAX];        /* kept alive while the exchange runs */
    char body[512];
    lb_result res;
} ac_op;

/* ---- small helpers ------------------------------------------------------- */

static int all_digits(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* An id as it goes into a URL path or, as a number, into a JSON body:
 * decimal digits without a leading zero (01 is not JSON), at most 18 (an
 * int64 holds them). Anything else in a setting, a param, a stored
 * contact_ref or an answer is refused, so no text can add to a path or a
 * body (found by tests/fuzz/fuzz_plugin.c). */
static int is_id(const char *s)
{
    return s && s[0] >= '1' && s[0] <= '9' && all_digits(s, 18);
}

/* ASCII case-insensitive equality (tag names, e-mails); no locale. */
static int same_text(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

/* Writes a reason and returns -1: the error return of the job and settings checks. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int refuse(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static void lower_copy(char *out, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

static int http_ok(const lb_http_resp *r)
{
    return !r->transport_error && r->status >= 200 && r->status < 300;
}

/* The value at path in the answer, or "" (returns 0) when absent. */
static int resp_get(const ac_op *op, const lb_http_resp *r, const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    if (!r->body || r->body_len == 0)
        return 0;
    int n = op->in->api->json_get(r->body, r->body_len, path, out, cap);
    if (n < 0)
        out[0] = '\0';
    return n > 0;
}

/* The value at "<array>.<i>.<field>" in the answer. */
static int resp_row(const ac_op *op, const lb_http_resp *r, const char *array, unsigned i, const char *field,
                    char *out, size_t cap)
{
    char path[96];
    snprintf(path, sizeof path, "%s.%u.%s", array, i, field);
    return resp_get(op, r, path, out, cap);
}

/* The provider's own words, for a reason: §3 has two error body shapes,
 * {"errors":[{"title",...}]} and {"message"}. Control characters go, so a
 * hostile answer cannot forge log lines. */
static void provider_message(const ac_op *op, const lb_http_resp *r, char *out, size_t cap)
{
    if (!resp_get(op, r, "errors.0.title", out, cap))
        resp_get(op, r, "message", out, cap);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* §3: 422 with code "duplicate" on an association means it already exists. */
static int is_duplicate(const ac_op *op, const lb_http_resp *r)
{
    char code[32];
    return r->status == 422 && resp_get(op, r, "errors.0.code", code, sizeof code) && strcmp(code, "duplicate") == 0;
}

/* ---- call lifetime ------------------------------------------------------- */

static ac_op *op_new(ac_inst *in, lb_call *call)
{
    ac_op *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->in = in;
    op->call = call;
    op->next = in->ops;
    if (in->ops)
        in->ops->prev = op;
    in->ops = op;
    return op;
}

static void op_free(ac_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        op->in->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    free(op->sync_body);
    free(op);
}

/* Completes the call (exactly once: the op is gone afterwards). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void op_finish(ac_op *op, lb_status st, const char *fmt, ...)
{
    lb_result res = op->res;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res.reason, sizeof res.reason, fmt, ap);
    va_end(ap);
    res.status = st;
    /* a contact_ref is only vouched for once something succeeded with it */
    if (op->contact[0] && (op->contact_trusted || st == LB_OK))
        snprintf(res.provider_ref, sizeof res.provider_ref, "%s", op->contact);
    const lb_core_api *api = op->in->api;
    lb_call *call = op->call;
    op_free(op);
    api->complete(call, &res);
}

/* A done callback's first step: the exchange is over; remember its status. */
static void op_took(ac_op *op, const lb_http_resp *r)
{
    op->http = NULL;
    op->res.http_status = (int)r->status;
}

/* Completes from an answer that is not a success, with the core's mapping
 * (2xx OK; 408/429/5xx/transport RETRY; 401/403 AUTH; other 4xx FAIL).
 * §3: 503 may stand in for 429, and the core already retries it. */
static void op_fail_http(ac_op *op, const lb_http_resp *r, const char *what)
{
    const lb_core_api *api = op->in->api;
    uint32_t after = 0;
    lb_status st = api->http_classify(r, &after);
    char msg[160];
    if (r->transport_error || r->status == 0) {
        op_finish(op, LB_RETRY, "%s: no answer from ActiveCampaign (%.120s)", what, r->error ? r->error : "transport error");
        return;
    }
    if (r->status == 429) {
        /* §3: 429 + Retry-After (seconds); the 5 req/s limit is per account */
        const char *ra = api->http_header(r, "Retry-After");
        if (after == 0 && ra && all_digits(ra, 6))
            after = (uint32_t)strtoul(ra, NULL, 10) * 1000u;
        op->res.retry_after_ms = after;
        op->res.rate_limited = 1;
        op_finish(op, LB_RETRY, "%s: rate limited by ActiveCampaign (HTTP 429)", what);
        return;
    }
    op->res.retry_after_ms = st == LB_RETRY ? after : 0;
    if (st == LB_AUTH) {
        op_finish(op, LB_AUTH, "ActiveCampaign refused the API token (HTTP %ld)", r->status);
        return;
    }
    provider_message(op, r, msg, sizeof msg);
    if (st == LB_OK) /* a 2xx the caller could not use */
        st = LB_RETRY;
    op_finish(op, st, "%s: HTTP %ld%s%s", what, r->status, msg[0] ? ": " : "", msg);
}

/* Starts one exchange at base + path. The URL and body live in the op
 * until the answer arrives, so the core may keep pointers to them. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static void op_send(ac_op *op, const char *method, const char *body, lb_http_done done, const char *fmt, ...)
{
    ac_inst *in = op->in;
    int n = snprintf(op->url, sizeof op->url, "%s", in->base);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(op->url + n, sizeof op->url - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)(n + m) >= sizeof op->url) {
        op_finish(op, LB_FAIL, "request URL too long");
        return;
    }
    lb_http_req req = {
        .method = method,
        .url = op->url,
        .headers = body ? in->hdr_json : in->hdr_plain,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    op->http = in->api->http_request(op->call, &req, done, op);
    if (!op->http)
        op_finish(op, LB_RETRY, "could not start an HTTP request");
}

/* ---- tag id cache (§4 quirk 2) --------------------------------------------- */

static ac_tag_slot *cache_find(ac_inst *in, const char *name)
{
    char key[AC_TAG_MAX];
    lower_copy(key, sizeof key, name);
    for (unsigned i = 0; i < AC_TAG_CACHE; i++)
        if (in->tags[i].id[0] && strcmp(in->tags[i].name, key) == 0)
            return &in->tags[i];
    return NULL;
}

static void cache_put(ac_inst *in, const char *name, const char *id)
{
    ac_tag_slot *slot = cache_find(in, name);
    if (!slot) {
        slot = &in->tags[in->tag_next];
        in->tag_next = (in->tag_next + 1) % AC_TAG_CACHE;
    }
    lower_copy(slot->name, sizeof slot->name, name);
    snprintf(slot->id, sizeof slot->id, "%s", id);
}

static void cache_drop(ac_inst *in, const char *name)
{
    ac_tag_slot *slot = cache_find(in, name);
    if (slot)
        memset(slot, 0, sizeof *slot);
}

/* ---- the contact: sync or find ------------------------------------------- */

static void after_contact(ac_op *op);
static void on_sync(const lb_http_resp *r, void *ud);
static void on_find(const lb_http_resp *r, void *ud);

static void resolve_contact(ac_op *op)
{
    op->contact[0] = '\0';
    if (!op->email[0]) {
        op_finish(op, LB_FAIL, "contact_ref was refused and the job has no e-mail to find the contact by");
        return;
    }
    if (op->act->creates) {
        op_send(op, "POST", op->sync_body, on_sync, "/contact/sync");
        return;
    }
    char enc[AC_EMAIL_MAX * 3 + 1];
    if (op->in->api->url_encode(op->email, enc, sizeof enc) < 0) {
        op_finish(op, LB_FAIL, "e-mail too long");
        return;
    }
    op_send(op, "GET", NULL, on_find, "/contacts?email=%s", enc);
}

/* A 404/422 on a call that used contact_ref may mean the contact was
 * deleted in ActiveCampaign since: resolve it again, once. Returns 1 when
 * the call goes on. */
static int retry_contact(ac_op *op)
{
    if (op->contact_trusted || op->restarts >= AC_RESTARTS)
        return 0;
    op->restarts++;
    op->in->api->log(op->in->settings, LB_LEVEL_INFO, "activecampaign: contact %s refused, resolving it again",
                     op->contact);
    resolve_contact(op);
    return 1;
}

/* §2 UPSERT: 201 (or 200) with {"contact":{"id":"10",...}}. */
static void on_sync(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    op_took(op, r);
    if (!http_ok(r)) {
        op_fail_http(op, r, "contact sync");
        return;
    }
    if (!resp_get(op, r, "contact.id", op->contact, sizeof op->contact) || !is_id(op->contact)) {
        op->contact[0] = '\0';
        op_finish(op, LB_RETRY, "contact sync: answer without a valid contact.id");
        return;
    }
    op->contact_trusted = 1;
    if (op->act->kind == AC_UPSERT)
        op_finish(op, LB_OK, "contact synced");
    else
        after_contact(op);
}

/* §2 FIND: {"contacts":[...]}, an empty array when absent. The e-mail of a
 * row is checked too, so a server that ignored the filter cannot make us
 * act on someone else. */
static void on_find(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    op_took(op, r);
    if (!http_ok(r)) {
        op_fail_http(op, r, "contact lookup");
        return;
    }
    char id[AC_ID_MAX], email[AC_EMAIL_MAX + 1];
    for (unsigned i = 0; resp_row(op, r, "contacts", i, "id", id, sizeof id); i++) {
        if (resp_row(op, r, "contacts", i, "email", email, sizeof email) && same_text(email, op->email)) {
            if (!is_id(id)) {
                op_finish(op, LB_RETRY, "contact lookup: answer with an invalid contact id");
                return;
            }
            snprintf(op->contact, sizeof op->contact, "%s", id);
            op->contact_trusted = 1;
            after_contact(op);
            return;
        }
    }
    op_finish(op, LB_OK, "no contact with this e-mail in ActiveCampaign: nothing to remove");
}

/* ---- lists and automations ----------------------------------------------- */

static void on_assoc(const lb_http_resp *r, void *ud);

/* §2 LIST+/LIST-: POST contactLists, status 1 subscribes, 2 unsubscribes.
 * §4 quirk 5: status 1 re-subscribes someone who unsubscribed; that is the
 * job's intent here, and the rules decide whether to send it. */
static void post_list(ac_op *op)
{
    int status = op->act->kind == AC_LIST_ADD ? 1 : 2;
    snprintf(op->body, sizeof op->body, "{\"contactList\":{\"list\":%s,\"contact\":%s,\"status\":%d}}", op->param,
             op->contact, status);
    op_send(op, "POST", op->body, on_assoc, "/contactLists");
}

/* §2 SEQ+: POST contactAutomations. */
static void post_automation(ac_op *op)
{
    snprintf(op->body, sizeof op->body, "{\"contactAutomation\":{\"contact\":%s,\"automation\":%s}}", op->contact,
             op->param);
    op_send(op, "POST", op->body, on_assoc, "/contactAutomations");
}

static const char *assoc_noun(const ac_op *op)
{
    return op->act->kind == AC_SEQ_ADD ? "automation" : "list";
}

static const char *assoc_done(const ac_op *op)
{
    if (op->act->kind == AC_LIST_ADD)
        return "subscribed to list";
    return op->act->kind == AC_LIST_REMOVE ? "unsubscribed from list" : "added to automation";
}

/* The answer to contactLists / contactAutomations. A 404 with a contact id
 * we just resolved can only be about the list or automation (§3 "Not
 * found"): a permanent failure the producer must fix in the segmentation. */
static void on_assoc(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    op_took(op, r);
    if (http_ok(r)) {
        op_finish(op, LB_OK, "%s %s", assoc_done(op), op->param);
        return;
    }
    if (is_duplicate(op, r)) {
        op_finish(op, LB_OK, "already %s %s", assoc_done(op), op->param);
        return;
    }
    if ((r->status == 404 || r->status == 422) && retry_contact(op))
        return;
    if (r->status == 404) {
        char msg[160];
        provider_message(op, r, msg, sizeof msg);
        op_finish(op, LB_FAIL, "unknown %s %s in ActiveCampaign (HTTP 404%s%s)", assoc_noun(op), op->param,
                  msg[0] ? ": " : "", msg);
        return;
    }
    char what[64];
    snprintf(what, sizeof what, "%s %.20s", assoc_noun(op), op->param);
    op_fail_http(op, r, what);
}

/* ---- tags ----------------------------------------------------------------- */

static void on_tags(const lb_http_resp *r, void *ud);
static void on_tag_created(const lb_http_resp *r, void *ud);
static void on_contact_tags(const lb_http_resp *r, void *ud);
static void on_tagged(const lb_http_resp *r, void *ud);
static void on_untagged(const lb_http_resp *r, void *ud);

/* §2 tag lookup: "search" is a contains match, so rows are filtered here,
 * case-insensitively (§4 quirk 2). */
static void search_tags(ac_op *op, int first_page)
{
    char enc[AC_TAG_MAX * 3 + 1];
    if (first_page)
        op->offset = op->pages = 0;
    op->tag[0] = '\0';
    op->tag_cached = 0;
    if (op->in->api->url_encode(op->param, enc, sizeof enc) < 0) {
        op_finish(op, LB_FAIL, "tag name too long");
        return;
    }
    op_send(op, "GET", NULL, on_tags, "/tags?search=%s&limit=%d&offset=%u", enc, AC_PAGE, op->offset);
}

/* §4 quirk 3: the contact's associations, to find ours (or see it is there). */
static void fetch_contact_tags(ac_op *op, int first_page)
{
    if (first_page)
        op->offset = op->pages = 0;
    op_send(op, "GET", NULL, on_contact_tags, "/contacts/%s/contactTags?limit=%d&offset=%u", op->contact, AC_PAGE,
            op->offset);
}

/* §2 tag create: 201 {"tag":{"id",...}}. Names may not contain commas;
 * that was checked when the job was read. */
static void create_tag(ac_op *op)
{
    char name[AC_TAG_MAX * 6 + 3];
    if (op->in->api->json_quote(op->param, name, sizeof name) < 0 ||
        (size_t)snprintf(op->body, sizeof op->body, "{\"tag\":{\"tag\":%s,\"tagType\":\"contact\",\"description\":\"\"}}",
                         name) >= sizeof op->body) {
        op_finish(op, LB_FAIL, "tag name too long");
        return;
    }
    op_send(op, "POST", op->body, on_tag_created, "/tags");
}

/* §2 TAG+: POST contactTags with the tag id. */
static void post_contact_tag(ac_op *op)
{
    snprintf(op->body, sizeof op->body, "{\"contactTag\":{\"contact\":%s,\"tag\":%s}}", op->contact, op->tag);
    op_send(op, "POST", op->body, on_tagged, "/contactTags");
}

/* Whether another page may hold what we look for: a full page, within the cap. */
static int next_page(ac_op *op, unsigned rows)
{
    if (rows < AC_PAGE || ++op->pages >= AC_MAX_PAGES)
        return 0;
    op->offset += rows;
    return 1;
}

static void on_tags(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    op_took(op, r);
    if (!http_ok(r)) {
        op_fail_http(op, r, "tag lookup");
        return;
    }
    char id[AC_ID_MAX], name[AC_TAG_MAX];
    unsigned i = 0;
    for (; resp_row(op, r, "tags", i, "id", id, sizeof id); i++) {
        if (resp_row(op, r, "tags", i, "tag", name, sizeof name) && same_text(name, op->param)) {
            if (!is_id(id)) {
                op_finish(op, LB_RETRY, "tag lookup: answer with an invalid tag id");
                return;
            }
            snprintf(op->tag, sizeof op->tag, "%s", id);
            cache_put(op->in, op->param, id);
            fetch_contact_tags(op, 1);
            return;
        }
    }
    if (next_page(op, i))
        search_tags(op, 0);
    else if (op->act->kind == AC_TAG_ADD)
        create_tag(op); /* §4 quirk 2: tags must exist before tagging */
    else
        op_finish(op, LB_OK, "tag \"%s\" does not exist: nothing to remove", op->param);
}

static void on_tag_created(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    op_took(op, r);
    if (is_duplicate(op, r) && !op->tag_create_raced) {
        /* another call created it between our search and our create */
        op->tag_create_raced = 1;
        search_tags(op, 1);
        return;
    }
    if (!http_ok(r)) {
        op_fail_http(op, r, "tag create");
        return;
    }
    if (!resp_get(op, r, "tag.id", op->tag, sizeof op->tag) || !is_id(op->tag)) {
        op_finish(op, LB_RETRY, "tag create: answer without a valid tag.id");
        return;
    }
    op->in->api->log(op->in->settings, LB_LEVEL_INFO, "activecampaign: created tag id %s", op->tag);
    cache_put(op->in, op->param, op->tag);
    post_contact_tag(op); /* a tag made just now is on nobody yet */
}

/* Scans a page of the contact's contactTags for our tag: sets assoc to the
 * association id ("" if absent; *invalid if the row's id is not one) and
 * returns the page's row count. */
static unsigned find_assoc(const ac_op *op, const lb_http_resp *r, char *assoc, size_t cap, int *invalid)
{
    char id[AC_ID_MAX], tag[AC_ID_MAX];
    unsigned i = 0;
    assoc[0] = '\0';
    *invalid = 0;
    for (; resp_row(op, r, "contactTags", i, "id", id, sizeof id); i++)
        if (!assoc[0] && !*invalid && resp_row(op, r, "contactTags", i, "tag", tag, sizeof tag) &&
            strcmp(tag, op->tag) == 0) {
            if (is_id(id))
                snprintf(assoc, cap, "%s", id);
            else
                *invalid = 1;
        }
    return i;
}

static void on_contact_tags(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    op_took(op, r);
    if (r->status == 404 && retry_contact(op))
        return;
    if (!http_ok(r)) {
        op_fail_http(op, r, "contact's tags");
        return;
    }
    char assoc[AC_ID_MAX];
    int invalid;
    unsigned rows = find_assoc(op, r, assoc, sizeof assoc, &invalid);
    if (invalid)
        op_finish(op, LB_RETRY, "contact's tags: answer with an invalid association id");
    else if (assoc[0] && op->act->kind == AC_TAG_ADD)
        op_finish(op, LB_OK, "already tagged \"%s\"", op->param);
    else if (assoc[0]) /* §4 quirk 3: delete the association, not the tag */
        op_send(op, "DELETE", NULL, on_untagged, "/contactTags/%s", assoc);
    else if (next_page(op, rows))
        fetch_contact_tags(op, 0);
    else if (op->act->kind == AC_TAG_ADD)
        post_contact_tag(op);
    else
        op_finish(op, LB_OK, "not tagged \"%s\": nothing to remove", op->param);
}

/* §2 TAG+ answer. A 404/422 may come from a cached tag id whose tag was
 * deleted since, or from a stale contact_ref: look each up again, once. */
static void on_tagged(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    op_took(op, r);
    if (http_ok(r) || is_duplicate(op, r)) {
        op_finish(op, LB_OK, "%s \"%s\"", http_ok(r) ? "tagged" : "already tagged", op->param);
        return;
    }
    if ((r->status == 404 || r->status == 422) && op->tag_cached && op->restarts < AC_RESTARTS) {
        op->restarts++;
        cache_drop(op->in, op->param);
        search_tags(op, 1);
        return;
    }
    if ((r->status == 404 || r->status == 422) && retry_contact(op))
        return;
    op_fail_http(op, r, "tag add");
}

/* §2 TAG- step 2: 200 {}; 404 means the association is gone already. */
static void on_untagged(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    op_took(op, r);
    if (http_ok(r) || r->status == 404)
        op_finish(op, LB_OK, "removed tag \"%s\"", op->param);
    else
        op_fail_http(op, r, "tag remove");
}

/* ---- the job --------------------------------------------------------------- */

/* Runs the action's own step once the contact id is known. tag_remove never
 * uses the cache: a stale id would make it report "not tagged" wrongly. */
static void after_contact(ac_op *op)
{
    switch (op->act->kind) {
    case AC_LIST_ADD:
    case AC_LIST_REMOVE:
        post_list(op);
        break;
    case AC_SEQ_ADD:
        post_automation(op);
        break;
    case AC_TAG_ADD: {
        const ac_tag_slot *slot = cache_find(op->in, op->param);
        if (!slot) {
            search_tags(op, 1);
            break;
        }
        snprintf(op->tag, sizeof op->tag, "%s", slot->id);
        op->tag_cached = 1;
        fetch_contact_tags(op, 1);
        break;
    }
    case AC_TAG_REMOVE:
        search_tags(op, 1);
        break;
    case AC_UPSERT:
        op_finish(op, LB_OK, "contact synced");
        break;
    }
}

static const char *job_param(const lb_job *job, const char *key)
{
    for (const char *const *p = job->params; p && p[0] && p[1]; p += 2)
        if (strcmp(p[0], key) == 0)
            return p[1];
    return NULL;
}

typedef struct ac_buf {
    char *p;
    size_t len, cap;
    int oom;
} ac_buf;

static void buf_reserve(ac_buf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t cap = (b->len + more + 1) * 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void buf_raw(ac_buf *b, const char *s)
{
    size_t n = strlen(s);
    buf_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

/* Appends ,"key":"value" (JSON-quoted) when value is set. */
static void buf_field(ac_buf *b, const lb_core_api *api, const char *key, const char *value, size_t vlen)
{
    if (!value || vlen == 0)
        return;
    char *v = malloc(vlen + 1);
    size_t need = vlen * 6 + 3; /* worst case: every byte as \u00XX, plus quotes */
    if (!v) {
        b->oom = 1;
        return;
    }
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    buf_raw(b, ",\"");
    buf_raw(b, key);
    buf_raw(b, "\":");
    buf_reserve(b, need);
    int n = b->oom ? -1 : api->json_quote(v, b->p + b->len, b->cap - b->len);
    if (n < 0)
        b->oom = 1;
    else
        b->len += (size_t)n;
    free(v);
}

/* First and last name: the job's own, or its full name split at the first
 * space ("Maria da Silva" -> "Maria" + "da Silva"). Unknown parts are left
 * out, so a sync never blanks what the contact already has. */
static void add_names(ac_buf *b, const lb_core_api *api, const lb_job *job)
{
    const char *first = job->first_name, *last = job->last_name, *name = job->name;
    if (first || last || !name) {
        buf_field(b, api, "firstName", first, first ? strlen(first) : 0);
        buf_field(b, api, "lastName", last, last ? strlen(last) : 0);
        return;
    }
    while (*name == ' ')
        name++;
    size_t n = strcspn(name, " ");
    const char *rest = name + n;
    while (*rest == ' ')
        rest++;
    buf_field(b, api, "firstName", name, n);
    buf_field(b, api, "lastName", rest, strlen(rest));
}

/* §2 UPSERT body: {"contact":{"email","firstName","lastName","phone",
 * "fieldValues":[{"field":"<id>","value":"<bank-slip link>"}]}}. §4 quirk 6:
 * field is the custom field id, as a string. */
static char *build_sync_body(const ac_inst *in, const lb_job *job)
{
    const lb_core_api *api = in->api;
    ac_buf b = {0};
    buf_raw(&b, "{\"contact\":{\"email\":");
    buf_reserve(&b, strlen(job->email) * 6 + 3);
    int n = b.oom ? -1 : api->json_quote(job->email, b.p + b.len, b.cap - b.len);
    b.oom |= n < 0;
    b.len += n > 0 ? (size_t)n : 0;
    add_names(&b, api, job);
    buf_field(&b, api, "phone", job->phone, job->phone ? strlen(job->phone) : 0);
    if (in->billet_field[0] && job->billet_url && job->billet_url[0]) {
        buf_raw(&b, ",\"fieldValues\":[{\"field\":\"");
        buf_raw(&b, in->billet_field);
        buf_raw(&b, "\"");
        buf_field(&b, api, "value", job->billet_url, strlen(job->billet_url));
        buf_raw(&b, "}]");
    }
    buf_raw(&b, "}}");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* The action's parameter, checked: ids must be numeric (they go into the
 * JSON body as numbers); tag names may not contain commas (§2 tag create). */
static int load_param(ac_op *op, const lb_job *job, char *why, size_t cap)
{
    const char *key = op->act->param;
    const char *v = key ? job_param(job, key) : NULL;
    if (!key)
        return 0;
    if (!v || !*v)
        return refuse(why, cap, "missing parameter \"%s\"", key);
    if (strlen(v) >= sizeof op->param)
        return refuse(why, cap, "parameter \"%s\" is too long", key);
    if (strcmp(key, "tag") != 0 && !is_id(v))
        return refuse(why, cap, "%s must be a numeric ActiveCampaign id, not \"%.64s\"", key, v);
    if (op->act->kind == AC_TAG_ADD && strchr(v, ','))
        return refuse(why, cap, "ActiveCampaign tag names may not contain commas: \"%.64s\"", v);
    snprintf(op->param, sizeof op->param, "%s", v);
    return 0;
}

/* Copies what the call needs out of the job, which may not outlive submit. */
static int load_job(ac_op *op, const lb_job *job, char *why, size_t cap)
{
    if (load_param(op, job, why, cap) < 0)
        return -1;
    if (is_id(job->contact_ref))
        snprintf(op->contact, sizeof op->contact, "%s", job->contact_ref);
    int need_email = op->act->kind == AC_UPSERT || !op->contact[0];
    if (need_email && (!job->email || !job->email[0]))
        return refuse(why, cap, "the job has no e-mail");
    if (job->email && strlen(job->email) > AC_EMAIL_MAX)
        return refuse(why, cap, "e-mail too long");
    snprintf(op->email, sizeof op->email, "%s", job->email ? job->email : "");
    if (job->billet_url && job->billet_url[0] && !op->in->billet_field[0] && op->act->kind == AC_UPSERT)
        op->in->api->log(op->in->settings, LB_LEVEL_WARN,
                         "activecampaign: the job has a bank-slip link but billet_field_id is not set");
    if (op->act->creates && op->email[0] && !(op->sync_body = build_sync_body(op->in, job)))
        return refuse(why, cap, "out of memory");
    return 0;
}

static const ac_action *find_action(const char *name)
{
    for (size_t i = 0; name && i < sizeof ac_action_table / sizeof ac_action_table[0]; i++)
        if (strcmp(ac_action_table[i].name, name) == 0)
            return &ac_action_table[i];
    return NULL;
}

/* Completes a call that could not even get an op. */
static void complete_oom(const lb_core_api *api, lb_call *call)
{
    lb_result res = {.status = LB_RETRY};
    snprintf(res.reason, sizeof res.reason, "out of memory");
    api->complete(call, &res);
}

static void ac_submit(void *instance, lb_call *call, const lb_job *job)
{
    ac_inst *in = instance;
    ac_op *op = op_new(in, call);
    char why[200];
    if (!op) {
        complete_oom(in->api, call);
        return;
    }
    op->act = find_action(job->action);
    if (!op->act) {
        op_finish(op, LB_FAIL, "unknown action \"%.64s\"", job->action ? job->action : "");
        return;
    }
    if (load_job(op, job, why, sizeof why) < 0) {
        op_finish(op, LB_FAIL, "%s", why);
        return;
    }
    /* an upsert always syncs: updating the contact is the point */
    if (op->act->kind == AC_UPSERT || !op->contact[0])
        resolve_contact(op);
    else
        after_contact(op);
}

/* ---- verify and list_resources ------------------------------------------- */

/* The cheapest authenticated read in §2 (List_contacts, one row). A 2xx
 * without "meta.total" (§4 quirk 7) is not ActiveCampaign: a wrong api_url. */
static void on_verify(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    char total[32];
    op_took(op, r);
    if (!http_ok(r))
        op_fail_http(op, r, "verify");
    else if (!resp_get(op, r, "meta.total", total, sizeof total))
        op_finish(op, LB_FAIL, "api_url answered, but not like the ActiveCampaign API v3");
    else
        op_finish(op, LB_OK, "API token accepted");
}

static void ac_verify(void *instance, lb_call *call)
{
    ac_inst *in = instance;
    ac_op *op = op_new(in, call);
    if (!op) {
        complete_oom(in->api, call);
        return;
    }
    op_send(op, "GET", NULL, on_verify, "/contacts?limit=1");
}

static void on_resources(const lb_http_resp *r, void *ud)
{
    ac_op *op = ud;
    op_took(op, r);
    if (!http_ok(r)) {
        op_fail_http(op, r, op->kind->kind);
        return;
    }
    char id[AC_ID_MAX], name[AC_TAG_MAX];
    unsigned i = 0;
    for (; resp_row(op, r, op->kind->array, i, "id", id, sizeof id); i++) {
        resp_row(op, r, op->kind->array, i, op->kind->name_field, name, sizeof name);
        op->in->api->resource_add(op->call, id, name[0] ? name : id);
    }
    unsigned seen = op->offset + i;
    if (next_page(op, i))
        op_send(op, "GET", NULL, on_resources, "%s?limit=%d&offset=%u", op->kind->path, AC_PAGE, op->offset);
    else
        op_finish(op, LB_OK, "%u %s", seen, op->kind->kind);
}

static void ac_list_resources(void *instance, lb_call *call, const char *kind)
{
    ac_inst *in = instance;
    ac_op *op = op_new(in, call);
    if (!op) {
        complete_oom(in->api, call);
        return;
    }
    for (size_t i = 0; kind && i < sizeof ac_kinds / sizeof ac_kinds[0]; i++)
        if (strcmp(ac_kinds[i].kind, kind) == 0)
            op->kind = &ac_kinds[i];
    if (!op->kind) {
        op_finish(op, LB_FAIL, "unknown resource kind \"%.32s\" (lists, tags, automations)", kind ? kind : "");
        return;
    }
    op_send(op, "GET", NULL, on_resources, "%s?limit=%d&offset=0", op->kind->path, AC_PAGE);
}

/* ---- lifecycle ------------------------------------------------------------ */

/* §1: store the API URL as a full URL; the v3 root is "<api_url>/api/3".
 * An api_url that already ends in /api/3 is taken as it is. */
static int set_base(ac_inst *in, const char *url, char *err, size_t errlen)
{
    if (!url || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
        return refuse(err, errlen, "api_url must be an http(s) URL, e.g. https://acct.api-us1.com");
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    int has_root = n >= 6 && strncmp(url + n - 6, "/api/3", 6) == 0;
    if (n + 7 >= sizeof in->base)
        return refuse(err, errlen, "api_url is too long");
    snprintf(in->base, sizeof in->base, "%.*s%s", (int)n, url, has_root ? "" : "/api/3");
    return 0;
}

/* §1: the key travels as "Api-Token: <key>". A CR or LF would let the key
 * inject headers, so it is refused. */
static int set_key(ac_inst *in, char *err, size_t errlen)
{
    char key[AC_KEY_MAX];
    int n = in->api->secret(in->settings, "api_key", key, sizeof key);
    int bad = n <= 0 || (size_t)n >= sizeof key || strpbrk(key, "\r\n") != NULL;
    if (!bad)
        snprintf(in->auth, sizeof in->auth, "Api-Token: %s", key);
    for (volatile char *p = key; p < key + sizeof key; p++)
        *p = 0;
    if (bad)
        return refuse(err, errlen, "api_key is missing, too long or not one line");
    return 0;
}

static int api_complete(const lb_core_api *api)
{
    return api && LB_API_HAS(api, log) && LB_API_HAS(api, setting) && LB_API_HAS(api, secret) &&
           LB_API_HAS(api, http_request) && LB_API_HAS(api, http_cancel) && LB_API_HAS(api, http_header) &&
           LB_API_HAS(api, http_classify) && LB_API_HAS(api, complete) && LB_API_HAS(api, resource_add) &&
           LB_API_HAS(api, json_get) && LB_API_HAS(api, json_quote) && LB_API_HAS(api, url_encode);
}

static int ac_init(const lb_core_api *api, const lb_settings *settings, void **instance, char *err, size_t errlen)
{
    if (!api_complete(api))
        return refuse(err, errlen, "the core's API lacks functions this plugin needs");
    ac_inst *in = calloc(1, sizeof *in);
    if (!in)
        return refuse(err, errlen, "out of memory");
    in->api = api;
    in->settings = settings;
    const char *field = api->setting(settings, "billet_field_id");
    if (set_base(in, api->setting(settings, "api_url"), err, errlen) < 0 || set_key(in, err, errlen) < 0) {
        free(in);
        return -1;
    }
    if (field && field[0] && !is_id(field)) {
        snprintf(err, errlen, "billet_field_id must be a numeric custom field id");
        free(in);
        return -1;
    }
    snprintf(in->billet_field, sizeof in->billet_field, "%s", field ? field : "");
    in->hdr_plain[0] = in->hdr_json[0] = in->auth;
    in->hdr_plain[1] = in->hdr_json[1] = "Accept: application/json";
    in->hdr_json[2] = "Content-Type: application/json";
    *instance = in;
    return 0;
}

/* The core gave up on the call: stop its exchange and forget it, without
 * completing (plugin.h). */
static void ac_cancel(void *instance, lb_call *call)
{
    ac_inst *in = instance;
    for (ac_op *op = in->ops; op; op = op->next) {
        if (op->call != call)
            continue;
        if (op->http)
            in->api->http_cancel(op->http);
        op_free(op);
        return;
    }
}

static void ac_destroy(void *instance)
{
    ac_inst *in = instance;
    while (in->ops)
        ac_cancel(in, in->ops->call);
    for (volatile char *p = in->auth; p < in->auth + sizeof in->auth; p++)
        *p = 0;
    free(in);
}

LB_PLUGIN_REGISTER(.name = "activecampaign", .display_name = "ActiveCampaign", .version = "1.0.0",
                   .config = ac_config, .actions = ac_actions,
                   .can_send_billet = 1,        /* through billet_field_id, on sync */
                   .default_rate_per_s = 5.0,   /* §3: 5 requests/second per account */
                   .default_burst = 5, .default_concurrency = 5, .init = ac_init, .verify = ac_verify,
                   .list_resources = ac_list_resources, .submit = ac_submit, .cancel = ac_cancel,
                   .destroy = ac_destroy)
