/* dispatcher.h: runs queued jobs through provider plugins, on the loop.
 *
 * - Order: jobs of one (account, integration, lead) form a lane, run one at a
 *   time in id order; only the head may run, only once its next_attempt_at
 *   has come, and the next one starts only after the head's outcome is
 *   COMMITTED. Different lanes run concurrently.
 * - Limits: per integration, a token bucket and a concurrency gate (the
 *   integration's overrides, else the provider's documented defaults), plus
 *   a pause when the provider signals a rate limit. The bucket and the pause
 *   run on the monotonic clock, next_attempt_at (stored) on the wall clock.
 * - Outcomes: OK -> DONE; RETRY -> READY again after backoff (a rate-limit
 *   answer uses no attempt); FAIL -> DEAD; attempts or age exhausted -> DEAD
 *   "gave up after N attempts: <last reason>"; AUTH -> READY, and after
 *   auth_failures_to_break in a row the integration is broken: its jobs wait
 *   (never dead-lettered) while verify() is probed every
 *   broken_probe_interval; an OK probe resumes them.
 * - Every attempt is handed to the persistence as an lb_job_outcome; the
 *   outcomes of one loop turn go as one batch (one transaction).
 * - One libevent timer serves every lane's next_attempt_at (no polling).
 *
 * docs/dispatcher.md describes the policy. */
#ifndef LB_DISPATCHER_H
#define LB_DISPATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "backoff.h"
#include "error.h"
#include "job.h"
#include "metrics.h"

typedef struct lb_dispatcher lb_dispatcher;
/* `which` clock (CLOCK_REALTIME or CLOCK_MONOTONIC) now, in milliseconds to
 * the microsecond. */
typedef double (*lb_clock_fn)(clockid_t which, void *state);
typedef struct lb_integration lb_integration; /* plugin_host.h */
struct lb_store_writer;

/* Zero fields take the defaults. */
typedef struct lb_dispatcher_options {
    int max_attempts;                  /* counted attempts before DEAD; default 8 */
    int64_t max_age_ms;                /* since the job was created; default 72 h */
    int64_t backoff_base_ms;           /* default 1 s */
    int64_t backoff_cap_ms;            /* default 1 h */
    int64_t max_pause_ms;              /* longest Retry-After honoured; default 1 h */
    int auth_failures_to_break;        /* consecutive AUTH results; default 3 */
    int64_t broken_probe_interval_ms;  /* default 60 s */
    int64_t store_retry_ms;            /* a failed outcome write is retried after; default 1 s */
    size_t lead_cache_max;             /* provider contact ids kept in memory; default 100000 */
    lb_rand_fn rand;                   /* jitter source; default splitmix64 with a random seed */
    void *rand_state;
    lb_clock_fn clock;                 /* default lb_clock_ms_fine; tests step the wall clock */
    void *clock_state;
} lb_dispatcher_options;

/* ---- persistence: how outcomes reach the store ------------------------------- */

/* Runs on the loop, on a later turn than the request: rc 0 after COMMIT, -1
 * (err set) after ROLLBACK. */
typedef void (*lb_persist_done)(void *ctx, int rc, const lb_error *err);

typedef struct lb_dispatch_persist {
    void *ud;
    /* Records n outcomes (lb_store_record_outcome each) in ONE transaction.
     * The outcomes and their strings stay valid until done runs. */
    void (*record_outcomes)(void *ud, const lb_job_outcome *outcomes, size_t n, lb_persist_done done, void *ctx);
    /* Persists an integration's broken flag and reason (NULL when healthy);
     * the strings stay valid until done runs. */
    void (*set_integration_state)(void *ud, const char *account, const char *integration, bool broken,
                                  const char *reason, lb_persist_done done, void *ctx);
    /* Called by lb_dispatcher_free; may be NULL. */
    void (*free)(void *ud);
} lb_dispatch_persist;

/* The dispatcher with any persistence (tests supply an in-memory one). */
lb_dispatcher *lb_dispatcher_new_with(struct event_base *base, const lb_dispatch_persist *persist,
                                      lb_metrics *metrics, const lb_dispatcher_options *opts);
/* The daemon's: outcomes go to the store writer thread as write tasks
 * (core/dispatch_persist.c). metrics may be NULL. */
lb_dispatcher *lb_dispatcher_new(struct event_base *base, struct lb_store_writer *writer, lb_metrics *metrics,
                                 const lb_dispatcher_options *opts);

/* Aborts calls in flight (their jobs stay READY in the store and run again
 * after a restart: at-least-once), frees every job and integration. Outcome
 * writes still in flight complete harmlessly. Call lb_dispatcher_stop and
 * wait for lb_dispatcher_busy() == 0 first for a clean drain. */
void lb_dispatcher_free(lb_dispatcher *d);
/* No new job starts from now on; calls in flight finish and are recorded. */
void lb_dispatcher_stop(lb_dispatcher *d);
/* Calls in flight plus outcomes not yet committed. */
size_t lb_dispatcher_busy(const lb_dispatcher *d);

/* ---- integrations --------------------------------------------------------------- */

/* Takes ownership of `in` (lb_integration_free at the end). Jobs already
 * enqueued for it start running. -1 (the caller keeps `in`) if (account, id)
 * is already there or memory ran out. */
int lb_dispatcher_add_integration(lb_dispatcher *d, lb_integration *in);
/* A config reload: swaps in the new instance (same account and id), aborting
 * the old one's calls (their jobs run again on the new one) and applying its
 * limits. A broken integration is probed at once: valid credentials resume
 * it. Adds the integration if it was not there. */
void lb_dispatcher_replace_integration(lb_dispatcher *d, lb_integration *in);
/* A config reload of one integration: when `in` is configured like the
 * running instance (lb_integration_same), `in` is freed and the running one
 * kept as it is (calls in flight, limiter, request budget, pause, broken
 * state); otherwise as lb_dispatcher_replace_integration. True if kept. */
bool lb_dispatcher_update_integration(lb_dispatcher *d, lb_integration *in);
/* Removed from the config: its jobs wait (as for a broken integration). */
void lb_dispatcher_remove_integration(lb_dispatcher *d, const char *account, const char *integration);
/* Whether an integration is broken, and why (for the segmentations page). */
bool lb_dispatcher_integration_broken(const lb_dispatcher *d, const char *account, const char *integration,
                                      const char **reason);

/* ---- jobs ------------------------------------------------------------------------ */

/* Takes ownership of a READY job that is already committed (from the ingest
 * after its commit, or loaded from the store at startup, in id order). A job
 * whose id is already queued is dropped. The integration need not be added
 * yet: its jobs wait for it. */
void lb_dispatcher_enqueue(lb_dispatcher *d, lb_outbox_job *job);
/* A dead job replayed from the dead-letter list (the store has already made
 * it READY): attempts and the age count start again from now. */
void lb_dispatcher_replay(lb_dispatcher *d, lb_outbox_job *job);

typedef struct lb_dispatcher_stats {
    size_t queued;    /* jobs held, running ones included */
    size_t running;   /* provider calls in flight */
    size_t recording; /* outcomes not yet committed */
    size_t broken;    /* broken integrations */
    uint64_t ok, retry, rate_limited, timeout, fail, auth, dead; /* outcomes so far */
} lb_dispatcher_stats;

void lb_dispatcher_stats_get(const lb_dispatcher *d, lb_dispatcher_stats *out);

#endif
