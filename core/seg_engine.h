/* seg_engine.h: the segmentations of every account, indexed by (account,
 * product), each consistent and enabled one prepared with the rules host;
 * evaluating a normalized event against them makes one job per action
 * (core/job.h). docs/segmentations.md, sections 3 and 4.
 *
 * Threading and lifetime: like the rule set it uses, an engine belongs to the
 * event loop thread. It borrows the segmentations and the rule set it was
 * built from: free the engine first. A change (rules reload, provider loaded
 * or gone, segmentation saved) means building a new engine and swapping. */
#ifndef LB_SEG_ENGINE_H
#define LB_SEG_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "error.h"
#include "job.h"
#include "segmentation.h"

typedef struct lb_seg_engine lb_seg_engine;

/* Re-checks segs as lb_segmentations_recheck does (it sets their status and
 * reasons), then indexes them and prepares the enabled, consistent ones.
 * One that checks but does not prepare is flagged needs_review with reason
 * "prepare_failed". The order of segs is kept within a product: it is the
 * order jobs are made in. Returns NULL on out of memory (err set). */
lb_seg_engine *lb_seg_engine_new(lb_segmentation *const *segs, size_t n, const lb_seg_ctx *ctx, lb_error *err);
void lb_seg_engine_free(lb_seg_engine *e);
/* How many segmentations are prepared (will run). */
size_t lb_seg_engine_active(const lb_seg_engine *e);

/* Where evaluation results go. */
typedef struct lb_seg_sink {
    /* Takes ownership of job (free with lb_job_free), also when it fails.
     * Returns 0, or -1 to stop the evaluation (the caller is out of memory). */
    int (*job)(void *ud, lb_outbox_job *job);
    /* A rule failed (-1 from the rules host): err->field is "rule:<id>" and
     * err->message starts with the outcome. May be NULL; the engine logs
     * errors itself (except "disabled:", which the rules host logged once). */
    void (*rule_error)(void *ud, const lb_segmentation *seg, const lb_error *err);
    void *ud;
} lb_seg_sink;

/* Evaluates the enabled, consistent segmentations of (account, the event's
 * product.id) on a normalized event and hands one job per action of each
 * match to sink->job, in segmentation then action order: idempotency key
 * "<event_id>:<segmentation id>:<action index>" (0-based index), state
 * READY. An ignored event, or one without lead.email or product.id, makes
 * nothing. A rule error skips that segmentation only. Returns the number of
 * jobs made, or -1 if making one failed or sink->job refused it. No
 * allocation happens unless a segmentation matches. */
int lb_seg_engine_evaluate(lb_seg_engine *e, const char *account, json_object *event, int64_t event_id,
                           const lb_seg_sink *sink);

/* Whether (account, product) has a segmentation whose trigger takes events
 * of this type. When it has none, lb_seg_engine_evaluate makes nothing, runs
 * no rule and reads nothing of the event, so a caller that holds the event in
 * another form need not make its json-c document. */
bool lb_seg_engine_covers(const lb_seg_engine *e, const char *account, const char *product, const char *type);

/* What evaluation would do, queuing nothing (the base of "send test"):
 * {"event":{"id","type","product","email"},
 *  "decisions":[{"segmentation","segmentation_id","integration","action",
 *                "action_index","params":{},"lead":{}}],
 *  "skipped":[{"segmentation","segmentation_id","reason","message"[,"reasons"]}],
 *  "errors":[{"segmentation","segmentation_id","rule","message"}]
 *  [,"event_skipped":"why the event as a whole makes nothing"]}
 * A new reference, or NULL on out of memory. Rule counters advance as in a
 * real evaluation. */
json_object *lb_seg_engine_dry_run(lb_seg_engine *e, const char *account, json_object *event);

/* A growable list of jobs: pass lb_job_list_add as a sink's job callback and
 * the list as its ud. */
typedef struct lb_job_list {
    lb_outbox_job **v;
    size_t n, cap;
} lb_job_list;
int lb_job_list_add(void *list, lb_outbox_job *job);
/* Frees every job and the array; the list is empty and reusable after. */
void lb_job_list_clear(lb_job_list *l);

/* The order key of job.h, "<integration>\x1f<lead email>", into buf.
 * Returns its length, or -1 if it does not fit. */
int lb_job_order_key(const lb_outbox_job *job, char *buf, size_t cap);

#endif
