/* automation.c: plugins, integrations, segmentations and the dispatcher,
 * started and reloaded together. */
#include "automation.h"

#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "log.h"
#include "plugin_host.h"
#include "plugin_loader.h"
#include "seg_world.h"

struct lb_automation {
    struct event_base *base;
    lb_store *store;
    lb_http_client *http;
    lb_plugin_host *host;
    lb_plugin_registry *registry;
    lb_seg_world *world;
    lb_dispatcher *dispatcher;
};

static int load_plugins(lb_automation *a, const lb_config *cfg)
{
    lb_error err = {0};
    a->registry = lb_registry_new();
    if (!a->registry)
        return -1;
    /* a missing or partly bad plugin folder is not fatal: the segmentations
     * that need an absent provider are flagged for review instead */
    if (lb_registry_load_dir(a->registry, cfg->plugin_dir, lb_plugin_host_api(a->host), &err) < 0)
        lb_log(LB_LOG_WARN, "plugin folder not fully loaded", "dir", cfg->plugin_dir, "error", err.message, NULL);
    char n[16];
    snprintf(n, sizeof n, "%zu", lb_registry_count(a->registry));
    lb_log(LB_LOG_INFO, "provider plugins loaded", "dir", cfg->plugin_dir, "count", n, NULL);
    return 0;
}

/* Adds (or, on reload, replaces) every configured integration. One that
 * cannot start (unknown provider, bad settings) is logged and left out; its
 * jobs wait for a configuration that fixes it. */
static void start_integrations(lb_automation *a, const lb_config *cfg, bool replace)
{
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        const lb_account *acct = &cfg->accounts[i];
        for (size_t j = 0; j < acct->n_integrations; j++) {
            const lb_integration_config *ic = &acct->integrations[j];
            lb_error err = {0};
            lb_integration *in = lb_integration_from_registry(a->host, acct->id, ic, a->registry, &err);
            if (!in) {
                lb_log(LB_LOG_ERROR, "integration not started", "account", acct->id, "integration", ic->id,
                       "provider", ic->provider, "key", err.field, "error", err.message, NULL);
                continue;
            }
            if (replace)
                lb_dispatcher_replace_integration(a->dispatcher, in);
            else if (lb_dispatcher_add_integration(a->dispatcher, in) != 0)
                lb_integration_free(in);
        }
    }
}

static void enqueue_loaded(lb_outbox_job *job, void *ud) { lb_dispatcher_enqueue(ud, job); }

lb_automation *lb_automation_start(struct event_base *base, lb_store *store, lb_store_writer *writer,
                                   lb_metrics *metrics, const lb_config *cfg, lb_error *err)
{
    lb_automation *a = calloc(1, sizeof *a);
    if (!a) {
        lb_fail(err, "", "out of memory");
        return NULL;
    }
    a->base = base;
    a->store = store;
    a->http = lb_http_client_new(base, NULL);
    a->host = a->http ? lb_plugin_host_new(base, a->http, NULL) : NULL;
    if (!a->host || load_plugins(a, cfg)) {
        lb_fail(err, "", "cannot start the provider host");
        goto fail;
    }
    a->world = lb_seg_world_build(store, cfg, a->registry, err);
    if (!a->world)
        goto fail;
    a->dispatcher = lb_dispatcher_new(base, writer, metrics, NULL);
    if (!a->dispatcher) {
        lb_fail(err, "", "cannot start the dispatcher");
        goto fail;
    }
    start_integrations(a, cfg, false);
    if (lb_store_load_pending_jobs(store, enqueue_loaded, a->dispatcher, err))
        goto fail;
    return a;
fail:
    lb_automation_free(a);
    return NULL;
}

lb_seg_engine *lb_automation_engine(lb_automation *a) { return a->world->engine; }
lb_dispatcher *lb_automation_dispatcher(lb_automation *a) { return a->dispatcher; }

int lb_automation_reload(lb_automation *a, const lb_config *cfg, lb_error *err)
{
    lb_seg_world *fresh = lb_seg_world_build(a->store, cfg, a->registry, err);
    if (!fresh)
        return -1;
    lb_seg_world_free(a->world);
    a->world = fresh;
    start_integrations(a, cfg, true);
    /* pick up jobs made ready outside the daemon (dead letters replayed from
     * the command line); the dispatcher ignores ids it already holds */
    return lb_store_load_pending_jobs(a->store, enqueue_loaded, a->dispatcher, err);
}

void lb_automation_stop(lb_automation *a)
{
    if (a && a->dispatcher)
        lb_dispatcher_stop(a->dispatcher);
}

size_t lb_automation_busy(const lb_automation *a)
{
    return a && a->dispatcher ? lb_dispatcher_busy(a->dispatcher) : 0;
}

void lb_automation_free(lb_automation *a)
{
    if (!a)
        return;
    lb_dispatcher_free(a->dispatcher); /* frees the integrations */
    lb_seg_world_free(a->world);
    lb_registry_free(a->registry);
    lb_plugin_host_free(a->host);
    lb_http_client_free(a->http);
    free(a);
}
