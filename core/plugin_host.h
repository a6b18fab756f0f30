/* plugin_host.h: the daemon's side of the provider plugin ABI.
 *
 * The host owns the lb_core_api table handed to every plugin (load plugins
 * with lb_plugin_host_api(host), and free the host only after the registry:
 * plugins keep the pointer) and the call objects behind lb_call:
 *
 * - a call is one submit, verify or list_resources on one integration;
 * - the plugin finishes it with api->complete() exactly once. The host copies
 *   and checks the result (a zeroed or unknown status becomes RETRY "plugin
 *   bug: invalid status"; the reason is redacted), drops the call's HTTP
 *   requests still in flight, and reports to the caller on a LATER loop turn
 *   (event_active), never from inside the plugin;
 * - a second complete() is a plugin bug: logged and ignored. Finished call
 *   handles stay allocated for a grace period (retire_ms) so that a late
 *   second completion is caught instead of touching freed memory;
 * - a call that does not complete within call_timeout_ms is reported as
 *   RETRY "plugin timeout" (timed_out set) and the plugin's cancel() runs.
 *
 * Everything runs on the loop thread. */
#ifndef LB_PLUGIN_HOST_H
#define LB_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <listboss/plugin.h>

#include "config.h"
#include "error.h"
#include "http_client.h"
#include "plugin_loader.h"

typedef struct lb_plugin_host lb_plugin_host;
typedef struct lb_integration lb_integration;

typedef struct lb_plugin_host_options {
    uint32_t call_timeout_ms; /* per-call deadline; default 30000 */
    uint32_t retire_ms;       /* how long a finished call handle stays valid; default call_timeout_ms */
} lb_plugin_host_options;

/* http may be NULL in tests whose plugins make no requests (http_request then
 * returns NULL). */
lb_plugin_host *lb_plugin_host_new(struct event_base *base, lb_http_client *http, const lb_plugin_host_options *opts);
/* After every integration has been freed. */
void lb_plugin_host_free(lb_plugin_host *h);
/* The table to pass to lb_plugin_load / lb_registry_load_dir. */
const lb_core_api *lb_plugin_host_api(const lb_plugin_host *h);

/* ---- integrations: one plugin instance each ----------------------------------- */

/* Builds the settings from cfg, validates them against the plugin's
 * declarations (unknown, missing, defaults), resolves secret references and
 * calls the plugin's init. NULL with err set on any failure; err->field is
 * "<account>/<integration id>" or the offending key. */
lb_integration *lb_integration_new(lb_plugin_host *h, const char *account, const lb_integration_config *cfg,
                                   const lb_plugin *plugin, lb_error *err);
/* Same, finding the plugin by cfg->provider. */
lb_integration *lb_integration_from_registry(lb_plugin_host *h, const char *account, const lb_integration_config *cfg,
                                             const lb_plugin_registry *reg, lb_error *err);
/* Aborts every call (no done runs afterwards, the plugin's cancel runs for
 * calls it has not completed), then destroys the plugin instance. Never from
 * inside one of this integration's done callbacks. */
void lb_integration_free(lb_integration *in);

const char *lb_integration_account(const lb_integration *in);
const char *lb_integration_id(const lb_integration *in);
const lb_plugin *lb_integration_plugin(const lb_integration *in);
/* The config's overrides where given (non-zero), else the provider's defaults. */
void lb_integration_limits(const lb_integration *in, double *rate_per_s, uint32_t *burst, uint32_t *concurrency);
/* A reload: `in`, replacing `old`, takes over what is left of old's request
 * budget (at most in's burst) instead of starting with a full one, so a
 * SIGHUP right after a burst lets no extra requests out. */
void lb_integration_carry_budget(lb_integration *in, const lb_integration *old);
/* Calls started and not yet reported or aborted. */
size_t lb_integration_live_calls(const lb_integration *in);
/* Whether a and b are configured alike: the same account, id and plugin, the
 * same settings as resolved (secrets read from env: or file:, so a rotated
 * one differs) and the same limits in effect. A reload keeps a running
 * instance its new configuration builds alike. */
bool lb_integration_same(const lb_integration *a, const lb_integration *b);

/* ---- calls ---------------------------------------------------------------------- */

typedef struct lb_resource {
    char *id, *name; /* name may be NULL */
} lb_resource;

typedef struct lb_call_report {
    lb_result result;        /* checked: a valid status, terminated strings, reason redacted */
    bool timed_out;          /* the host gave up: RETRY "plugin timeout" */
    bool plugin_bug;         /* the status was invalid (now RETRY) */
    double elapsed_ms;
    const lb_resource *resources; /* list_resources: what the plugin added */
    size_t n_resources;
} lb_call_report;

/* Runs once, on a loop turn after the call finished; the report is valid
 * during the callback only. */
typedef void (*lb_call_done)(const lb_call_report *report, void *ud);

/* Start a call. `job` (and every string it points to) must stay valid until
 * done runs or the call is aborted: a plugin may read it later. NULL only
 * when out of memory (done then never runs). */
lb_call *lb_call_submit(lb_integration *in, const lb_job *job, lb_call_done done, void *ud);
lb_call *lb_call_verify(lb_integration *in, lb_call_done done, void *ud);
lb_call *lb_call_list_resources(lb_integration *in, const char *kind, lb_call_done done, void *ud);
/* The caller gives up on a call (shutdown, reload): done never runs; the
 * plugin's cancel runs if it has not completed. */
void lb_call_abort(lb_call *call);

#endif
