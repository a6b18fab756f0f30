/* automation.h: the half of the daemon that acts on events: provider plugins,
 * the accounts' integrations, the segmentation world (rules, segmentations,
 * engine) and the dispatcher that runs the queued jobs.
 *
 * Building or reloading uses the store directly, so the caller guarantees the
 * store writer is idle (startup, or after lb_store_writer_wait_idle). */
#ifndef LB_AUTOMATION_H
#define LB_AUTOMATION_H

#include <event2/event.h>

#include "config.h"
#include "dispatcher.h"
#include "metrics.h"
#include "seg_engine.h"
#include "store.h"
#include "store_writer.h"

typedef struct lb_automation lb_automation;

lb_automation *lb_automation_start(struct event_base *base, lb_store *store, lb_store_writer *writer,
                                   lb_metrics *metrics, const lb_config *cfg, lb_error *err);
lb_seg_engine *lb_automation_engine(lb_automation *a);
lb_dispatcher *lb_automation_dispatcher(lb_automation *a);
/* A new rule set, segmentations and integrations from cfg; on failure the
 * running ones stay and err says why. Jobs already queued are kept. */
int lb_automation_reload(lb_automation *a, const lb_config *cfg, lb_error *err);
/* Stops starting provider calls; lb_automation_busy tells when the last is done. */
void lb_automation_stop(lb_automation *a);
size_t lb_automation_busy(const lb_automation *a);
void lb_automation_free(lb_automation *a);

#endif
