/* metrics.c: a fixed number of series per family, looked up linearly: the
 * label sets are small (routes x statuses, event types x outcomes), so this
 * is faster than hashing and never allocates. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

static void family_init(lb_counter_family *f, const char *name, const char *help, const char *la,
                        const char *lb)
{
    memset(f, 0, sizeof *f);
    f->name = name;
    f->help = help;
    f->label_a = la;
    f->label_b = lb;
}

static void histogram_init(lb_histogram *h, const char *name, const char *help, const double *bounds,
                           size_t n)
{
    memset(h, 0, sizeof *h);
    h->name = name;
    h->help = help;
    h->n_bounds = n < LB_HIST_BUCKETS ? n : LB_HIST_BUCKETS;
    memcpy(h->bounds, bounds, h->n_bounds * sizeof *bounds);
}

void lb_metrics_init(lb_metrics *m)
{
    static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    static const double commit_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                           0.05,   0.1,   0.25,   0.5,   1,    2.5};
    memset(m, 0, sizeof *m);
    family_init(&m->requests, "listboss_http_requests_total", "HTTP requests answered, by route and status",
                "route", "status");
    family_init(&m->events, "listboss_events_total", "Events received, by normalized type and outcome",
                "type", "outcome");
    histogram_init(&m->batch_size, "listboss_commit_batch_size", "Events per group commit", batch_bounds,
                   sizeof batch_bounds / sizeof *batch_bounds);
    histogram_init(&m->commit_seconds, "listboss_commit_seconds", "Group commit latency in seconds",
                   commit_bounds, sizeof commit_bounds / sizeof *commit_bounds);
}

void lb_counter_inc(lb_counter_family *f, const char *a, const char *b)
{
    for (size_t i = 0; i < f->n_series; i++) {
        lb_counter_series *s = &f->series[i];
        if (strcmp(s->label_a, a) == 0 && strcmp(s->label_b, b) == 0) {
            s->value++;
            return;
        }
    }
    if (f->n_series == LB_METRICS_MAX_SERIES) {
        f->overflow++;
        return;
    }
    lb_counter_series *s = &f->series[f->n_series++];
    snprintf(s->label_a, sizeof s->label_a, "%s", a);
    snprintf(s->label_b, sizeof s->label_b, "%s", b);
    s->value = 1;
}

void lb_histogram_observe(lb_histogram *h, double v)
{
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

/* Label values come from our own tables or are sanitized at the source, but
 * escape anyway: a broken exposition line breaks every scraper. */
static void put_label_value(struct evbuffer *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            evbuffer_add_printf(out, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, v, 1);
    }
}

static void render_family(const lb_counter_family *f, struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n", f->name, f->help, f->name);
    for (size_t i = 0; i < f->n_series; i++) {
        const lb_counter_series *s = &f->series[i];
        evbuffer_add_printf(out, "%s{%s=\"", f->name, f->label_a);
        put_label_value(out, s->label_a);
        evbuffer_add_printf(out, "\",%s=\"", f->label_b);
        put_label_value(out, s->label_b);
        evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)s->value);
    }
}

static void render_histogram(const lb_histogram *h, struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h->n_bounds; i++) {
        cumulative += h->counts[i];
        evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[i],
                            (unsigned long long)cumulative);
    }
    cumulative += h->counts[h->n_bounds];
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", h->name,
                        (unsigned long long)cumulative, h->name, h->sum, h->name,
                        (unsigned long long)h->count);
}

void lb_metrics_render(const lb_metrics *m, struct evbuffer *out)
{
    render_family(&m->requests, out);
    render_family(&m->events, out);
    render_histogram(&m->batch_size, out);
    render_histogram(&m->commit_seconds, out);
    evbuffer_add_printf(out,
                        "# HELP listboss_store_errors_total Store writes that failed (ingest transactions answered 503, dispatcher writes retried)\n"
                        "# TYPE listboss_store_errors_total counter\nlistboss_store_errors_total %llu\n"
                        "# HELP listboss_http_connections Open client connections\n"
                        "# TYPE listboss_http_connections gauge\nlistboss_http_connections %llu\n"
                        "# HELP listboss_dedupe_keys Event keys in the in-memory dedupe index\n"
                        "# TYPE listboss_dedupe_keys gauge\nlistboss_dedupe_keys %llu\n"
                        "# HELP listboss_dedupe_bytes Memory the dedupe index holds\n"
                        "# TYPE listboss_dedupe_bytes gauge\nlistboss_dedupe_bytes %llu\n"
                        "# HELP listboss_wal_pages Pages in the write-ahead log after the last commit\n"
                        "# TYPE listboss_wal_pages gauge\nlistboss_wal_pages %llu\n"
                        "# HELP listboss_wal_full_waits_total Commits that found the write-ahead log at its hard size and waited for a checkpoint\n"
                        "# TYPE listboss_wal_full_waits_total counter\nlistboss_wal_full_waits_total %llu\n",
                        (unsigned long long)m->store_errors, (unsigned long long)m->connections_open,
                        (unsigned long long)m->store.dedupe_keys, (unsigned long long)m->store.dedupe_bytes,
                        (unsigned long long)m->store.wal_pages, (unsigned long long)m->store.wal_full_waits);
}
