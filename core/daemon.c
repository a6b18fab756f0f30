/* daemon.c: wiring the parts together on one event loop. */
#include "daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "automation.h"
#include "db_lock.h"
#include "fd_limit.h"
#include "http_server.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "store_writer.h"

#define LB_DRAIN_DEADLINE_S 10
#define LB_STORE_BUSY_TIMEOUT_MS 250

typedef struct lb_daemon {
    const lb_daemon_options *opts;
    struct event_base *base;
    lb_config *cfg;
    lb_metrics metrics;
    int db_lock; /* one daemon per database (db_lock.h); -1 when not held */
    lb_store store;
    lb_store_writer *writer;
    lb_automation *automation;
    lb_ingest *ingest;
    lb_http_server *http;
    struct event *sig_term, *sig_int, *sig_hup, *drain_deadline, *calls_poll;
    bool stopping;
} lb_daemon;

static int replace_string(char **slot, const char *value, lb_error *err)
{
    char *copy = strdup(value);
    if (!copy)
        return lb_fail(err, "", "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

lb_config *lb_daemon_load_config(const lb_daemon_options *opts, lb_error *err)
{
    lb_config *cfg = opts->config_path ? lb_config_load_file(opts->config_path, err)
                                       : lb_config_load_string(lb_config_demo, "=demo", err);
    if (!cfg)
        return NULL;
    if ((opts->listen_override && replace_string(&cfg->listen, opts->listen_override, err)) ||
        (opts->database_override && replace_string(&cfg->database, opts->database_override, err))) {
        lb_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* ---- small routes -------------------------------------------------------- */

static void handle_healthz(lb_http_request *req, void *ctx)
{
    (void)ctx;
    static const char body[] = "{\"status\":\"ok\",\"version\":\"" PACKAGE_VERSION "\"}";
    lb_http_reply(req, 200, "application/json", body, sizeof body - 1, NULL);
}

static void render_dispatcher(const lb_dispatcher *disp, struct evbuffer *out)
{
    lb_dispatcher_stats st;
    lb_dispatcher_stats_get(disp, &st);
    evbuffer_add_printf(out,
                        "# HELP listboss_jobs_queued Jobs waiting or running\n# TYPE listboss_jobs_queued gauge\n"
                        "listboss_jobs_queued %zu\n"
                        "# HELP listboss_provider_calls_in_flight Provider calls running\n"
                        "# TYPE listboss_provider_calls_in_flight gauge\nlistboss_provider_calls_in_flight %zu\n"
                        "# HELP listboss_integrations_broken Integrations whose credentials were refused\n"
                        "# TYPE listboss_integrations_broken gauge\nlistboss_integrations_broken %zu\n",
                        st.queued, st.running, st.broken);
    const struct {
        const char *outcome;
        uint64_t n;
    } outcomes[] = {{"ok", st.ok},     {"retry", st.retry}, {"rate_limited", st.rate_limited}, {"timeout", st.timeout},
                    {"fail", st.fail}, {"auth", st.auth},   {"dead", st.dead}};
    evbuffer_add_printf(out, "# HELP listboss_job_attempts_total Provider call outcomes\n"
                             "# TYPE listboss_job_attempts_total counter\n");
    for (size_t i = 0; i < sizeof outcomes / sizeof *outcomes; i++)
        evbuffer_add_printf(out, "listboss_job_attempts_total{outcome=\"%s\"} %llu\n", outcomes[i].outcome,
                            (unsigned long long)outcomes[i].n);
}

static void handle_metrics(lb_http_request *req, void *ctx)
{
    lb_daemon *d = ctx;
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        lb_http_reply_error(req, 503, "out_of_memory", "server is out of memory", NULL, NULL);
        return;
    }
    lb_metrics_render(&d->metrics, out);
    render_dispatcher(lb_automation_dispatcher(d->automation), out);
    size_t len = evbuffer_get_length(out);
    lb_http_reply(req, 200, "text/plain; version=0.0.4", (const char *)evbuffer_pullup(out, -1), len, NULL);
    evbuffer_free(out);
}

/* ---- signals -------------------------------------------------------------- */

/* After the last HTTP answer: let provider calls in flight finish (their
 * outcomes are recorded), then leave the loop. Jobs not started stay READY
 * in the store and run after the next start. */
static void on_calls_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lb_daemon *d = arg;
    if (lb_automation_busy(d->automation) == 0) {
        event_base_loopexit(d->base, NULL);
        return;
    }
    struct timeval again = {0, 20 * 1000};
    evtimer_add(d->calls_poll, &again);
}

static void on_drained(void *arg)
{
    lb_daemon *d = arg;
    lb_ingest_flush(d->ingest);
    lb_automation_stop(d->automation);
    on_calls_poll(-1, 0, d);
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lb_daemon *d = arg;
    lb_log(LB_LOG_WARN, "drain deadline passed; closing remaining connections", NULL);
    lb_ingest_flush(d->ingest);
    event_base_loopexit(d->base, NULL);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    lb_daemon *d = arg;
    if (d->stopping)
        return;
    d->stopping = true;
    lb_log(LB_LOG_INFO, "stopping: no new connections, finishing in-flight requests", "signal",
           sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    struct timeval deadline = {LB_DRAIN_DEADLINE_S, 0};
    evtimer_add(d->drain_deadline, &deadline);
    lb_http_server_drain(d->http, on_drained, d);
}

/* Keeps the parts of the running config that only a restart can change. */
static int keep_restart_only_keys(const lb_config *old, lb_config *fresh, lb_error *err)
{
    if (strcmp(old->listen, fresh->listen) != 0)
        lb_log(LB_LOG_WARN, "reload: listen changes only at restart", "listen", old->listen, NULL);
    if (strcmp(old->database, fresh->database) != 0)
        lb_log(LB_LOG_WARN, "reload: database changes only at restart", "database", old->database, NULL);
    if (old->sync_full != fresh->sync_full)
        lb_log(LB_LOG_WARN, "reload: synchronous changes only at restart", NULL);
    fresh->sync_full = old->sync_full;
    /* plugins are loaded and the Club scan armed once, at start */
    if (strcmp(old->plugin_dir, fresh->plugin_dir) != 0)
        lb_log(LB_LOG_WARN, "reload: plugin_dir changes only at restart", "plugin_dir", old->plugin_dir, NULL);
    if (old->club_scan_interval_s != fresh->club_scan_interval_s)
        lb_log(LB_LOG_WARN, "reload: club_scan_interval changes only at restart", NULL);
    fresh->club_scan_interval_s = old->club_scan_interval_s;
    /* the descriptor limit was fitted to it at start */
    if (old->max_connections != fresh->max_connections)
        lb_log(LB_LOG_WARN, "reload: max_connections changes only at restart", NULL);
    fresh->max_connections = old->max_connections;
    return replace_string(&fresh->listen, old->listen, err) || replace_string(&fresh->database, old->database, err) ||
           replace_string(&fresh->plugin_dir, old->plugin_dir, err);
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    lb_daemon *d = arg;
    lb_error err = {0};
    lb_config *fresh = lb_daemon_load_config(d->opts, &err);
    if (!fresh || keep_restart_only_keys(d->cfg, fresh, &err)) {
        lb_config_free(fresh);
        lb_log(LB_LOG_ERROR, "reload failed; keeping the running configuration", "key", err.field, "error",
               err.message, NULL);
        return;
    }
    lb_ingest_flush(d->ingest); /* the store to ourselves: nothing in flight, writer idle */
    if (lb_automation_reload(d->automation, fresh, &err)) {
        lb_config_free(fresh);
        lb_log(LB_LOG_ERROR, "reload failed; keeping the running configuration and segmentations", "key", err.field,
               "error", err.message, NULL);
        return;
    }
    lb_ingest_set_engine(d->ingest, lb_automation_engine(d->automation), lb_automation_dispatcher(d->automation));
    lb_ingest_set_config(d->ingest, fresh);
    lb_http_server_set_max_body(d->http, fresh->max_body);
    lb_log_set_level((enum lb_log_level)lb_log_level_parse(fresh->log_level));
    lb_config_free(d->cfg);
    d->cfg = fresh;
    char n[16];
    snprintf(n, sizeof n, "%zu", fresh->n_accounts);
    lb_log(LB_LOG_INFO, "configuration reloaded", "accounts", n, NULL);
}

/* ---- start and stop --------------------------------------------------------- */

static int add_signals(lb_daemon *d)
{
    d->sig_term = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
    d->sig_int = evsignal_new(d->base, SIGINT, on_stop_signal, d);
    d->sig_hup = evsignal_new(d->base, SIGHUP, on_reload_signal, d);
    d->drain_deadline = evtimer_new(d->base, on_drain_deadline, d);
    d->calls_poll = evtimer_new(d->base, on_calls_poll, d);
    if (!d->sig_term || !d->sig_int || !d->sig_hup || !d->drain_deadline || !d->calls_poll)
        return -1;
    return event_add(d->sig_term, NULL) | event_add(d->sig_int, NULL) | event_add(d->sig_hup, NULL);
}

/* The dedupe index is read at open: on a large store that takes a while
 * (about a second per million events), so say how long and how big. */
static void log_store_opened(lb_daemon *d, const struct timespec *t0, const struct timespec *t1)
{
    lb_store_stats st;
    lb_store_stats_get(&d->store, &st);
    d->metrics.store = st;
    char keys[24], mib[24], ms[24];
    snprintf(keys, sizeof keys, "%llu", (unsigned long long)st.dedupe_keys);
    snprintf(mib, sizeof mib, "%.1f", (double)st.dedupe_bytes / (1024.0 * 1024.0));
    double elapsed_ms = (double)(t1->tv_sec - t0->tv_sec) * 1e3 + (double)(t1->tv_nsec - t0->tv_nsec) / 1e6;
    snprintf(ms, sizeof ms, "%.0f", elapsed_ms);
    lb_log(LB_LOG_INFO, "store opened", "database", d->cfg->database, "event_keys", keys, "dedupe_mib", mib,
           "ms", ms, NULL);
}

/* The connection limit the descriptor limit allows (raised if it can be);
 * a lower one than configured is logged, since it is the operator's to fix. */
static size_t fit_connections(size_t want)
{
    lb_fd_fit fit;
    if (lb_fd_limit_fit(want, &fit) != 0)
        return want;
    char conns[24], soft[24], hard[24];
    snprintf(conns, sizeof conns, "%zu", fit.connections);
    snprintf(soft, sizeof soft, "%llu", fit.soft_after);
    snprintf(hard, sizeof hard, "%llu", fit.hard);
    if (fit.connections < want)
        lb_log(LB_LOG_WARN, "the descriptor limit allows fewer connections than max_connections; raise the hard "
                            "limit (ulimit -Hn, LimitNOFILE=) to allow more",
               "max_connections", conns, "nofile_soft", soft, "nofile_hard", hard, NULL);
    else if (fit.soft_after != fit.soft_before)
        lb_log(LB_LOG_DEBUG, "raised the descriptor limit for max_connections", "nofile_soft", soft, NULL);
    return fit.connections;
}

static int start(lb_daemon *d)
{
    lb_error err = {0};
    lb_store_options sopts = {
        .sync_full = d->cfg->sync_full,
        .busy_timeout_ms = LB_STORE_BUSY_TIMEOUT_MS,
        .checkpoint_thread = true,
        .load_event_keys = true,
    };
    if ((d->db_lock = lb_db_lock(d->cfg->database, &err)) < 0) {
        lb_log(LB_LOG_ERROR, "cannot open the store", "database", d->cfg->database, "error", err.message, NULL);
        return -1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (lb_store_open(&d->store, d->cfg->database, &sopts, &err)) {
        lb_log(LB_LOG_ERROR, "cannot open the store", "database", d->cfg->database, "error", err.message, NULL);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_store_opened(d, &t0, &t1);
    d->writer = lb_store_writer_start(d->base, &d->store, &err);
    if (!d->writer) {
        lb_log(LB_LOG_ERROR, "cannot start the store writer", "error", err.message, NULL);
        return -1;
    }
    lb_store_writer_publish_stats(d->writer, &d->metrics.store);
    /* the writer is idle until the first request: the automation may use the store */
    d->automation = lb_automation_start(d->base, &d->store, d->writer, &d->metrics, d->cfg, &err);
    if (!d->automation) {
        lb_log(LB_LOG_ERROR, "cannot start segmentations and providers", "key", err.field, "error", err.message,
               NULL);
        return -1;
    }
    d->ingest = lb_ingest_new(d->base, d->writer, &d->metrics, d->cfg);
    if (!d->ingest || add_signals(d))
        return -1;
    if (lb_ingest_start_club(d->ingest, d->base, &d->store, d->cfg->club_scan_interval_s, &err)) {
        lb_log(LB_LOG_ERROR, "cannot start the Club scheduler", "error", err.message, NULL);
        return -1;
    }
    lb_ingest_set_engine(d->ingest, lb_automation_engine(d->automation), lb_automation_dispatcher(d->automation));
    const lb_http_route routes[] = {
        {"/webhooks/hotmart", "POST", lb_ingest_hotmart, d->ingest},
        {"/v1/events", "POST", lb_ingest_events, d->ingest},
        {"/healthz", "GET", handle_healthz, d},
        {"/metrics", "GET", handle_metrics, d},
    };
    lb_http_limits limits = {.max_head = 16 * 1024, .max_body = d->cfg->max_body, .idle_timeout_s = 60,
                             .max_connections = fit_connections(d->cfg->max_connections)};
    char errbuf[256];
    d->http = lb_http_server_new(d->base, d->cfg->listen, &limits, routes, sizeof routes / sizeof *routes,
                                 &d->metrics, errbuf, sizeof errbuf);
    if (!d->http) {
        lb_log(LB_LOG_ERROR, "cannot start the HTTP server", "error", errbuf, NULL);
        return -1;
    }
    return 0;
}

static void stop(lb_daemon *d)
{
    lb_http_server_free(d->http);
    lb_ingest_free(d->ingest); /* commits whatever is parked */
    lb_automation_stop(d->automation);
    lb_automation_free(d->automation);
    if (d->writer)
        lb_store_writer_wait_idle(d->writer); /* outcomes of the last calls */
    lb_store_writer_stop(d->writer);
    lb_store_close(&d->store);
    lb_db_unlock(d->db_lock);
    struct event *evs[] = {d->sig_term, d->sig_int, d->sig_hup, d->drain_deadline, d->calls_poll};
    for (size_t i = 0; i < sizeof evs / sizeof *evs; i++)
        if (evs[i])
            event_free(evs[i]);
    if (d->base)
        event_base_free(d->base);
    lb_config_free(d->cfg);
}

/* SIGHUP's default action ends the process, and its handler (add_signals)
 * comes only after the store is open (about a second per million events),
 * the plugins loaded and the automation started. Until then it is held
 * blocked, which the threads started meanwhile inherit, so a reload asked
 * for during start-up is delivered to the handler once it exists. */
static void hold_sighup(bool hold)
{
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &hup, NULL);
}

int lb_daemon_run(const lb_daemon_options *opts)
{
    hold_sighup(true);
    lb_daemon d = {.opts = opts, .db_lock = -1};
    lb_error err = {0};
    lb_metrics_init(&d.metrics);
    d.cfg = lb_daemon_load_config(opts, &err);
    if (!d.cfg) {
        lb_log(LB_LOG_ERROR, "bad configuration", "key", err.field, "error", err.message, NULL);
        return 1;
    }
    lb_log_set_level((enum lb_log_level)lb_log_level_parse(d.cfg->log_level));
    if (!opts->config_path)
        lb_log(LB_LOG_WARN, "running the embedded demo configuration (literal demo tokens)", NULL);
    signal(SIGPIPE, SIG_IGN);
    d.base = event_base_new();
    int status = 1;
    if (d.base && start(&d) == 0) {
        lb_log(LB_LOG_INFO, "listbossd started", "version", PACKAGE_VERSION, "database", d.cfg->database, NULL);
        hold_sighup(false); /* a held SIGHUP reaches the handler now and reloads from the loop */
        event_base_dispatch(d.base);
        status = 0;
    }
    stop(&d);
    lb_log(LB_LOG_INFO, status == 0 ? "stopped" : "exiting after a start-up failure", NULL);
    return status;
}
