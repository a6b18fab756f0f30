/* automation.c: plugins, integrations, segmentations and the dispatcher,
 * started and reloaded together. */
#include "automation.h"

#include <stdio.h>
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
    char **running;   /* "account\x1fintegration" of the integrations started, for reloads */
    size_t n_running;
};

static void forget_running(lb_automation *a)
{
    for (size_t i = 0; i < a->n_running; i++)
        free(a->running[i]);
    free(a->running);
    a->running = NULL;
    a->n_running = 0;
}

static bool config_has(const lb_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        const lb_account *acct = &cfg->accounts[i];
        size_t alen = strlen(acct->id);
        if (strncmp(key, acct->id, alen) != 0 || key[alen] != '\x1f')
            continue;
        for (size_t j = 0; j < acct->n_integrations; j++)
            if (strcmp(key + alen + 1, acct->integrations[j].id) == 0)
                return true;
    }
    return false;
}

/* An integration the new configuration no longer has is detached: its jobs
 * wait (as for a broken one) until a configuration brings it back. */
static void remove_dropped(lb_automation *a, const lb_config *cfg)
{
    for (size_t i = 0; i < a->n_running; i++) {
        if (config_has(cfg, a->running[i]))
            continue;
        char *sep = strchr(a->running[i], '\x1f');
        *sep = '\0';
        lb_log(LB_LOG_INFO, "integration removed by the configuration; its jobs wait", "account", a->running[i],
               "integration", sep + 1, NULL);
        lb_dispatcher_remove_integration(a->dispatcher, a->running[i], sep + 1);
        *sep = '\x1f';
    }
}

static void remember_running(lb_automation *a, const lb_config *cfg)
{
    forget_running(a);
    size_t total = 0;
    for (size_t i = 0; i < cfg->n_accounts; i++)
        total += cfg->accounts[i].n_integrations;
    a->running = calloc(total ? total : 1, sizeof *a->running);
    if (!a->running)
        return;
    for (size_t i = 0; i < cfg->n_accounts; i++)
        for (size_t j = 0; j < cfg->accounts[i].n_integrations; j++) {
            char *key;
            if (asprintf(&key, "%s\x1f%s", cfg->accounts[i].id, cfg->accounts[i].integrations[j].id) >= 0)
                a->running[a->n_running++] = key;
        }
}

/* The dispatcher starts every integration healthy and finds broken
 * credentials again within a few answers; an alert stored by an earlier run
 * would otherwise outlive a fix made while the daemon was down. */
static int clear_stored_alerts(lb_store *store, const lb_config *cfg, lb_error *err)
{
    if (lb_store_begin(store, err))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < cfg->n_accounts && rc == 0; i++)
        for (size_t j = 0; j < cfg->accounts[i].n_integrations && rc == 0; j++)
            rc = lb_store_set_integration_state(store, cfg->accounts[i].id, cfg->accounts[i].integrations[j].id,
                                                false, NULL, err);
    if (rc == 0)
        rc = lb_store_commit(store, err);
    if (rc)
        lb_store_rollback(store);
    return rc;
}

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

/* Adds every configured integration or, on reload, replaces those whose
 * configuration changed: replacing aborts the calls in flight and runs their
 * jobs again, so an unchanged one keeps running as it is. Its new instance is
 * built all the same, since only that resolves its secrets (a rotated
 * file: or env: secret is a change). One that cannot start (unknown
 * provider, bad settings) is logged and left out; its jobs wait for a
 * configuration that fixes it. */
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
            if (replace) {
                if (lb_dispatcher_update_integration(a->dispatcher, in))
                    lb_log(LB_LOG_DEBUG, "integration unchanged by the reload: kept running", "account", acct->id,
                           "integration", ic->id, NULL);
            } else if (lb_dispatcher_add_integration(a->dispatcher, in) != 0)
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
    if (clear_stored_alerts(store, cfg, err))
        goto fail;
    start_integrations(a, cfg, false);
    remember_running(a, cfg);
    if (lb_store_load_pending_jobs(store, enqueue_loaded, a->dispatcher, err))
        goto fail;
    return a;
fail:
    lb_automation_free(a);
    return NULL;
}

lb_seg_engine *lb_automation_engine(lb_automation *a) { return a->world->engine; }
lb_dispatcher *lb_automation_dispatcher(lb_automation *a) { return a->dispatcher; }

/* The ready jobs a reload read, held until it commits. */
typedef struct job_list {
    lb_outbox_job **v;
    size_t n, cap;
    bool oom;
} job_list;

static void collect_job(lb_outbox_job *job, void *ud)
{
    job_list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        lb_outbox_job **grown = realloc(l->v, cap * sizeof *grown);
        if (!grown) {
            l->oom = true;
            lb_job_free(job);
            return;
        }
        l->v = grown;
        l->cap = cap;
    }
    l->v[l->n++] = job;
}

static int read_ready_jobs(lb_store *store, job_list *jobs, lb_error *err)
{
    if (lb_store_load_pending_jobs(store, collect_job, jobs, err))
        return -1;
    return jobs->oom ? lb_fail(err, "", "out of memory loading jobs") : 0;
}

static void free_jobs(job_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        lb_job_free(l->v[i]);
    free(l->v);
}

/* Every step that can fail runs first, in one store transaction: the new
 * world (declarations and statuses written) and the ready jobs read. Only
 * after the commit is anything swapped or freed, by steps that cannot fail,
 * so a failed reload leaves the store, the engine the ingest holds and the
 * integrations as they were. Nothing here borrows from cfg: an integration
 * (and the dispatcher's state for it) holds its own copies of the account,
 * id and settings, so one a reload keeps outlives the config it came from. */
int lb_automation_reload(lb_automation *a, const lb_config *cfg, lb_error *err)
{
    if (lb_store_begin(a->store, err))
        return -1;
    job_list jobs = {0};
    lb_seg_world *fresh = lb_seg_world_prepare(a->store, cfg, a->registry, err);
    /* pick up jobs made ready outside the daemon (dead letters replayed from
     * the command line); the dispatcher ignores ids it already holds */
    if (!fresh || read_ready_jobs(a->store, &jobs, err) || lb_store_commit(a->store, err)) {
        lb_store_rollback(a->store);
        lb_seg_world_free(fresh);
        free_jobs(&jobs);
        return -1;
    }
    lb_seg_world_free(a->world);
    a->world = fresh;
    remove_dropped(a, cfg);
    start_integrations(a, cfg, true);
    remember_running(a, cfg);
    for (size_t i = 0; i < jobs.n; i++)
        lb_dispatcher_enqueue(a->dispatcher, jobs.v[i]);
    jobs.n = 0; /* the dispatcher owns them now */
    free_jobs(&jobs);
    return 0;
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
    forget_running(a);
    free(a);
}
