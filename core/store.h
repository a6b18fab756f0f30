/* store.h: the one interface in front of the database. All SQL lives behind
 * it (store_sqlite.c today), so another engine is one more ops table.
 *
 * Writes happen in batches: begin, put each event of one loop turn, commit.
 * The caller answers nothing before commit returns 0; on any failure it rolls
 * back and every request of the batch is told to retry, so an event is either
 * wholly stored or not at all. */
#ifndef LB_STORE_H
#define LB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "event.h"

typedef struct lb_store_event {
    const char *account;
    const lb_event *event;
    const char *normalized_json; /* the event document as text */
    const char *raw_body;        /* the delivery as received */
    size_t raw_len;
    const char *raw_content_type;
    int64_t received_at_ms;
} lb_store_event;

typedef struct lb_store_put_result {
    int64_t event_id; /* the server's id; for a duplicate, the first copy's */
    bool duplicate;
} lb_store_put_result;

typedef struct lb_store_options {
    bool sync_full;      /* synchronous=FULL (else NORMAL) */
    int busy_timeout_ms; /* how long a write waits for another writer's lock */
} lb_store_options;

typedef struct lb_store_ops {
    const char *engine;
    int (*begin)(void *impl, lb_error *err);
    int (*put_event)(void *impl, const lb_store_event *in, lb_store_put_result *out, lb_error *err);
    int (*commit)(void *impl, lb_error *err);
    void (*rollback)(void *impl);
    void (*close)(void *impl);
} lb_store_ops;

typedef struct lb_store {
    const lb_store_ops *ops;
    void *impl;
} lb_store;

/* Opens the store at `location` (a SQLite file path), creating and migrating
 * its schema. Returns 0, or -1 with the reason. */
int lb_store_open(lb_store *store, const char *location, const lb_store_options *opts, lb_error *err);
void lb_store_close(lb_store *store);

static inline int lb_store_begin(lb_store *s, lb_error *err) { return s->ops->begin(s->impl, err); }
static inline int lb_store_put_event(lb_store *s, const lb_store_event *in, lb_store_put_result *out,
                                     lb_error *err)
{
    return s->ops->put_event(s->impl, in, out, err);
}
static inline int lb_store_commit(lb_store *s, lb_error *err) { return s->ops->commit(s->impl, err); }
static inline void lb_store_rollback(lb_store *s) { s->ops->rollback(s->impl); }

#endif
