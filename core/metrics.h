/* metrics.h: counters and histograms, rendered in the Prometheus text format.
 * Everything runs on the one loop thread, so plain integers suffice. */
#ifndef LB_METRICS_H
#define LB_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <event2/buffer.h>

#include "store.h"

#define LB_METRICS_MAX_SERIES 128
#define LB_HIST_BUCKETS 12

typedef struct lb_counter_series {
    char label_a[48]; /* e.g. route, event type */
    char label_b[24]; /* e.g. status code, outcome */
    uint64_t value;
} lb_counter_series;

typedef struct lb_counter_family {
    const char *name, *help, *label_a, *label_b;
    lb_counter_series series[LB_METRICS_MAX_SERIES];
    size_t n_series;
    uint64_t overflow; /* increments that found no free series slot */
} lb_counter_family;

typedef struct lb_histogram {
    const char *name, *help;
    double bounds[LB_HIST_BUCKETS]; /* upper bounds, ascending; +Inf is implicit */
    size_t n_bounds;
    uint64_t counts[LB_HIST_BUCKETS + 1];
    double sum;
    uint64_t count;
} lb_histogram;

typedef struct lb_metrics {
    lb_counter_family requests; /* route, status */
    lb_counter_family events;   /* type, outcome (stored|duplicate|ignored) */
    lb_histogram batch_size;    /* events per group commit */
    lb_histogram commit_seconds;
    uint64_t store_errors;
    uint64_t connections_open;
    lb_store_stats store; /* what the store said after the last commit */
} lb_metrics;

void lb_metrics_init(lb_metrics *m);
void lb_counter_inc(lb_counter_family *f, const char *a, const char *b);
void lb_histogram_observe(lb_histogram *h, double v);
void lb_metrics_render(const lb_metrics *m, struct evbuffer *out);

#endif
