/* ingest.h: the webhook and event API handlers, and the group commit.
 *
 * A handler authenticates, parses and normalizes a request, then parks it in
 * the current batch. At the end of the loop turn the batch goes to the store
 * writer thread, which commits it (with whatever else is queued) in one
 * transaction; only then is every request of it answered: 200 when the commit
 * is durable, 503 + Retry-After when it is not (nothing half-stored). */
#ifndef LB_INGEST_H
#define LB_INGEST_H

#include <event2/event.h>

#include "config.h"
#include "http_server.h"
#include "metrics.h"
#include "store_writer.h"

typedef struct lb_ingest lb_ingest;

lb_ingest *lb_ingest_new(struct event_base *base, lb_store_writer *writer, lb_metrics *metrics,
                         const lb_config *cfg);
/* Hands the open batch to the writer and waits until every batch is answered (shutdown). */
void lb_ingest_flush(lb_ingest *ing);
/* Swaps the configuration (accounts, options); parked requests keep copies. */
void lb_ingest_set_config(lb_ingest *ing, const lb_config *cfg);
/* The segmentations to evaluate each new event against, and where the jobs
 * they make go once committed. Either may be NULL. */
struct lb_seg_engine;
struct lb_dispatcher;
void lb_ingest_set_engine(lb_ingest *ing, struct lb_seg_engine *engine, struct lb_dispatcher *dispatcher);
/* Restores Club activity from the store (writer idle) and scans for
 * inactive students every interval_s seconds, turning each into a
 * club.inactive event that goes through this same ingest. */
int lb_ingest_start_club(lb_ingest *ing, struct event_base *base, lb_store *store, unsigned interval_s,
                         lb_error *err);
void lb_ingest_free(lb_ingest *ing);

/* Route handlers; ctx is the lb_ingest. */
void lb_ingest_hotmart(lb_http_request *req, void *ctx);
void lb_ingest_events(lb_http_request *req, void *ctx);

#endif
