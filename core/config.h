/* config.h: the daemon's configuration, read from a Lua file evaluated in a
 * sandbox (no io, os, require). Every key is documented in
 * docs/configuration.md. Loading either yields a complete, validated config or
 * fails with the key and the reason; there is no half-loaded state. */
#ifndef LB_CONFIG_H
#define LB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* One connection of an account to an email-marketing provider. Setting
 * values are kept as written (secret references unresolved): only the
 * provider's plugin knows which keys are secret, and the core resolves those
 * when it validates the settings against the plugin's declaration. */
typedef struct lb_integration_config {
    char *id;          /* unique within the account: [a-z0-9_-]+ */
    char *provider;    /* a plugin name, e.g. "mailchimp" */
    char **keys;       /* settings, n_settings pairs */
    char **values;
    size_t n_settings;
    double rate_per_s; /* overrides; 0 = the provider's documented default */
    unsigned burst;
    unsigned concurrency;
} lb_integration_config;

typedef struct lb_account {
    char *id;        /* short name, unique: [a-z0-9_-]+ */
    char *hottok;    /* resolved secret (literal, env:NAME or file:PATH) */
    char *api_token; /* resolved secret, for POST /v1/events and the admin API */
    lb_integration_config *integrations;
    size_t n_integrations;
    /* The account's segmentation declarations as a JSON array text (the shape
     * in docs/configuration.md), or NULL when it declares none. */
    char *segmentations_json;
} lb_account;

typedef struct lb_config {
    char *listen;            /* "ADDR:PORT"; default "127.0.0.1:8080" */
    char *database;          /* SQLite file; default "var/listboss.db" */
    size_t max_body;         /* bytes; written "256k", "1m" or a number; default 256 KiB */
    char *log_level;         /* "debug" | "info" | "warn" | "error"; default "info" */
    bool ignore_test_events; /* store Hotmart "send test" deliveries as ignored; default false */
    bool sync_full;          /* SQLite synchronous=FULL (default true); false = NORMAL */
    char *plugin_dir;        /* provider plugins (*.so); default: the installed plugin folder */
    char *rules_dir;         /* triggers/ and conditions/; default: the installed rules folder */
    char *custom_rules_dir;  /* custom condition files; NULL = none */
    unsigned club_scan_interval_s; /* seconds between inactivity scans; default 60 */
    size_t max_connections;  /* client connections open at once; default 10000 */
    lb_account *accounts;    /* at least one */
    size_t n_accounts;
} lb_config;

/* Loads and validates a config file. NULL on error, with err->field naming the key
 * (e.g. "accounts[1].hottok") and err->message the reason. */
lb_config *lb_config_load_file(const char *path, lb_error *err);
/* Same, from a Lua chunk in memory; `chunkname` appears in syntax errors. */
lb_config *lb_config_load_string(const char *chunk, const char *chunkname, lb_error *err);
void lb_config_free(lb_config *cfg);

/* The embedded demo configuration used when listbossd runs without -c. */
extern const char lb_config_demo[];

#endif
