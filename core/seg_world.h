/* seg_world.h: everything segmentations need, built in one go and swapped
 * whole: the rule set, every segmentation (from the store, after the
 * configuration's declarations were written into it), their consistency
 * status (written back to the store), and the evaluation engine.
 *
 * Building needs the store to itself (startup, or a reload with the store
 * writer idle). A reload builds a new world beside the old one and swaps only
 * when it built; otherwise the old one keeps running. The declarations and
 * statuses are written in one transaction, so a world that was not built
 * leaves the store as the running one had it. */
#ifndef LB_SEG_WORLD_H
#define LB_SEG_WORLD_H

#include "config.h"
#include "plugin_loader.h"
#include "rules.h"
#include "seg_engine.h"
#include "segmentation.h"
#include "store.h"

typedef struct lb_seg_world {
    lb_rules *rules;
    lb_segmentation **segs;
    size_t n_segs;
    lb_seg_integration *integrations;
    size_t n_integrations;
    lb_seg_engine *engine;
} lb_seg_world;

/* Writes the configuration's segmentation declarations into the store
 * (upsert by account and name, origin "config"; config-origin rows the
 * configuration no longer declares are removed, CLI-origin rows kept), reads
 * every segmentation back, builds the engine and writes the statuses, all in
 * the caller's open transaction: the caller commits, or rolls back and frees
 * the world when a later step of its own fails. */
lb_seg_world *lb_seg_world_prepare(lb_store *store, const lb_config *cfg, const lb_plugin_registry *registry,
                                   lb_error *err);
/* lb_seg_world_prepare in a transaction of its own. */
lb_seg_world *lb_seg_world_build(lb_store *store, const lb_config *cfg, const lb_plugin_registry *registry,
                                 lb_error *err);
void lb_seg_world_free(lb_seg_world *w);

#endif
