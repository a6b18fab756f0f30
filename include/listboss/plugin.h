/* listboss/plugin.h: the provider plugin ABI. The only header a provider
 * plugin includes; installed with listboss.pc.
 *
 * A plugin is a shared object exporting one symbol, lb_plugin_entry, which
 * returns a descriptor made with LB_PLUGIN_REGISTER. The core hands it a table
 * of functions (lb_core_api) for logging, settings, secrets, HTTP and
 * completion; the plugin never links libcurl, SQLite or json-c.
 *
 * Rules of the road:
 * - Everything runs on the core's one event-loop thread. Never block, sleep,
 *   resolve names or start threads.
 * - submit/verify/list_resources return at once and later call
 *   api->complete(call, &result) exactly once per call.
 * - A result status of 0 is invalid (a zeroed result is a plugin bug and is
 *   treated as RETRY).
 * - Both tables are append-only: a new member goes at the end and bumps the
 *   minor version; a plugin checks a newer API member with LB_API_HAS.
 */
#ifndef LISTBOSS_PLUGIN_H
#define LISTBOSS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LB_ABI_MAJOR 1
#define LB_ABI_MINOR 0

typedef enum lb_status {
    LB_STATUS_INVALID = 0, /* never valid: a zeroed result */
    LB_OK = 1,             /* done; a repeat would be harmless */
    LB_RETRY = 2,          /* transient: try again later (retry_after_ms is a floor) */
    LB_FAIL = 3,           /* permanent: this job can never succeed as it is */
    LB_AUTH = 4,           /* the credentials were refused: the integration is broken */
} lb_status;

typedef struct lb_result {
    lb_status status;
    uint32_t retry_after_ms; /* RETRY: the provider's own hint (Retry-After, reset headers); 0 = none */
    int http_status;         /* last HTTP status seen, 0 if none */
    int rate_limited;        /* RETRY because of a rate limit: does not use up an attempt */
    char provider_ref[128];  /* the provider's id for the contact, when known */
    char reason[256];        /* short, human, never a secret */
} lb_result;

/* Opaque handles owned by the core. */
typedef struct lb_call lb_call;         /* one submit/verify/list_resources call */
typedef struct lb_settings lb_settings; /* one integration's settings */
typedef struct lb_http lb_http;         /* one HTTP exchange in flight */

/* ---- declarations ----------------------------------------------------------- */

enum { LB_CFG_REQUIRED = 1 << 0, LB_CFG_SECRET = 1 << 1 };

typedef struct lb_config_decl {
    const char *key;
    int flags;              /* LB_CFG_REQUIRED | LB_CFG_SECRET */
    const char *default_value;
    const char *help;
} lb_config_decl;           /* arrays end with a { NULL } entry */

enum { LB_PARAM_REQUIRED = 1 << 0 };

typedef struct lb_param_decl {
    const char *name;       /* e.g. "list", "tag", "sequence" */
    int flags;
    const char *resource;   /* resource kind for the picker ("lists", "tags"), or NULL */
    const char *help;
} lb_param_decl;            /* arrays end with a { NULL } entry */

typedef struct lb_action_decl {
    const char *name;       /* "contact_upsert", "list_add", "list_remove", "tag_add", "tag_remove",
                               "sequence_add", "sequence_remove", ... */
    const char *label;
    const lb_param_decl *params;
    /* The action that must have been done before, for the same lead and the
     * same value of `requires_param` (ConvertKit: "tag_remove" requires
     * "tag_add" of that tag); NULL if none. */
    const char *requires_action;
    const char *requires_param;
} lb_action_decl;           /* arrays end with a { NULL } entry */

/* ---- a job ------------------------------------------------------------------ */

typedef struct lb_job {
    const char *action;          /* one of the descriptor's action names */
    const char *idempotency_key; /* stable across retries of this job */
    uint32_t attempt;            /* 1-based */
    const char *email;           /* lower-case */
    const char *name, *first_name, *last_name, *phone; /* NULL when unknown */
    const char *contact_ref;     /* provider contact id remembered from an earlier job, or NULL */
    const char *billet_url;      /* bank-slip link, when the event carries one */
    const char *const *params;   /* "key", "value", ..., NULL */
} lb_job;

/* ---- HTTP ------------------------------------------------------------------- */

typedef struct lb_http_req {
    const char *method;               /* "GET", "POST", "PUT", "PATCH", "DELETE" or "HEAD" */
    const char *url;                  /* absolute */
    const char *const *headers;       /* "Name: value" strings, NULL-terminated; may be NULL */
    const char *body;                 /* may be NULL (POST, PUT, PATCH: sent empty); none with HEAD */
    size_t body_len;
    uint32_t timeout_ms;              /* 0 = the core's default */
} lb_http_req;

typedef struct lb_http_resp {
    long status;                      /* 0 on a transport error */
    int transport_error;              /* non-zero: no HTTP answer (refused, reset, timeout) */
    const char *error;                /* transport error text, or NULL */
    const char *body;                 /* NUL-terminated; valid during the callback only */
    size_t body_len;
    const void *priv;                 /* the core's */
} lb_http_resp;

typedef void (*lb_http_done)(const lb_http_resp *resp, void *ud);

/* ---- what the core offers ------------------------------------------------- */

enum { LB_LEVEL_DEBUG = 0, LB_LEVEL_INFO, LB_LEVEL_WARN, LB_LEVEL_ERROR };

typedef struct lb_core_api {
    uint32_t struct_size;
    uint16_t abi_major, abi_minor;
    /* append-only from here */
    void (*log)(const lb_settings *s, int level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /* A non-secret setting (validated and defaulted by the core), or NULL. */
    const char *(*setting)(const lb_settings *s, const char *key);
    /* Copies a secret setting into buf (NUL-terminated); returns its length, or
     * -1 (buf = "") when the key is absent or buf is too small. */
    int (*secret)(const lb_settings *s, const char *key, char *buf, size_t len);
    /* Starts an HTTP exchange for a call; `done` runs once, on a later loop turn
     * (never from inside http_request). Returns NULL if the request cannot start,
     * and then `done` never runs. The handle is spent once `done` starts. */
    lb_http *(*http_request)(lb_call *call, const lb_http_req *req, lb_http_done done, void *ud);
    /* Drops a request whose `done` has not run yet; `done` then never runs. */
    void (*http_cancel)(lb_http *h);
    /* A response header's value (case-insensitive name), or NULL. */
    const char *(*http_header)(const lb_http_resp *resp, const char *name);
    /* The default mapping: 2xx OK; 408, 429, 5xx, transport errors RETRY (with
     * Retry-After in *retry_after_ms); 401/403 AUTH; other 4xx FAIL. */
    lb_status (*http_classify)(const lb_http_resp *resp, uint32_t *retry_after_ms);
    /* Finishes a call. Exactly once per call, possibly from inside submit/verify/
     * list_resources (the core defers the report). Cancel the call's requests
     * still in flight first: the core drops them and their `done` never runs.
     * The call handle is invalid afterwards. */
    void (*complete)(lb_call *call, const lb_result *result);
    /* list_resources: adds one pickable item to the call's answer. */
    void (*resource_add)(lb_call *call, const char *id, const char *name);
    /* A value from a JSON text by dotted path ("contact.id", "errors.0.code"):
     * strings unquoted, numbers and booleans as text, objects and arrays as
     * compact JSON. Returns its length, or -1 (out = "") when absent, null, or
     * too long for out: a truncated value is never returned. */
    int (*json_get)(const char *json, size_t len, const char *path, char *out, size_t outlen);
    /* Writes s as a JSON string literal (with quotes) into out, or `null` for a
     * NULL s; returns the length, or -1 (out = "") if it does not fit. */
    int (*json_quote)(const char *s, char *out, size_t outlen);
    /* Percent-encodes s for a URL path segment or query value (RFC 3986: only
     * ALPHA DIGIT - . _ ~ kept); returns the length, or -1 (out = "") if it does not fit. */
    int (*url_encode)(const char *s, char *out, size_t outlen);
    /* Lower-case hex MD5 of s (33 bytes with the NUL); Mailchimp's member key. */
    void (*md5_hex)(const char *s, char out[33]);
} lb_core_api;

#define LB_API_HAS(api, member)                                                                \
    (offsetof(lb_core_api, member) + sizeof((api)->member) <= (api)->struct_size && (api)->member != NULL)

/* ---- what the plugin offers ----------------------------------------------- */

typedef struct lb_plugin {
    uint32_t struct_size;         /* set by LB_PLUGIN_REGISTER */
    uint16_t abi_major, abi_minor;
    const char *name;             /* "mailchimp": unique, [a-z0-9_]+ */
    const char *display_name;     /* "Mailchimp" */
    const char *version;
    const lb_config_decl *config;
    const lb_action_decl *actions;
    int can_send_billet;          /* can deliver the bank-slip link to the buyer */
    double default_rate_per_s;    /* the provider's documented limit */
    uint32_t default_burst;
    uint32_t default_concurrency;

    /* One instance per integration. Returns 0, or -1 with a reason in err. */
    int (*init)(const lb_core_api *api, const lb_settings *settings, void **instance, char *err, size_t errlen);
    /* Checks the credentials: completes OK or AUTH (or RETRY when unreachable). */
    void (*verify)(void *instance, lb_call *call);
    /* Lists pickable resources of a kind ("lists", "tags", "sequences") with api->resource_add. */
    void (*list_resources)(void *instance, lb_call *call, const char *kind);
    /* Runs one job. Must not block; completes exactly once. */
    void (*submit)(void *instance, lb_call *call, const lb_job *job);
    /* The core gave up on a call (deadline, shutdown): drop it, do not complete it. */
    void (*cancel)(void *instance, lb_call *call);
    void (*destroy)(void *instance);
} lb_plugin;

typedef const lb_plugin *(*lb_plugin_entry_fn)(uint32_t core_abi_major, const lb_core_api *api);

#if defined(__GNUC__)
#define LB_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define LB_PLUGIN_EXPORT
#endif

/* Defines lb_plugin_entry for a descriptor written as designated initializers:
 *   LB_PLUGIN_REGISTER(.name = "mailchimp", .display_name = "Mailchimp", ...)
 * It fills struct_size and the ABI version, and refuses another core major. */
#define LB_PLUGIN_REGISTER(...)                                                                \
    static const lb_plugin lb_plugin_descriptor_ = {                                           \
        .struct_size = sizeof(lb_plugin), .abi_major = LB_ABI_MAJOR, .abi_minor = LB_ABI_MINOR, \
        __VA_ARGS__};                                                                          \
    LB_PLUGIN_EXPORT const lb_plugin *lb_plugin_entry(uint32_t core_abi_major, const lb_core_api *api); \
    LB_PLUGIN_EXPORT const lb_plugin *lb_plugin_entry(uint32_t core_abi_major, const lb_core_api *api) \
    {                                                                                          \
        (void)api;                                                                             \
        return core_abi_major == LB_ABI_MAJOR ? &lb_plugin_descriptor_ : NULL;                 \
    }

#ifdef __cplusplus
}
#endif

#endif
