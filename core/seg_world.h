/* seg_world.h: everything segmentations need, built in one go and swapped
 * whole: the rule set, every segmentation (from the store, after the
 * configuration's declarations were written into it), their consistency
 * status (written back to the store), and the evaluation engine.
 *
 * Building needs the store to itself (startup, or a reload with the store
 * writer idle). A reload builds a new world beside the old one and swaps only
 * when it built; otherwise the old one keeps running. */
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

lb_seg_world *lb_seg_world_build(lb_store *store, const lb_config *cfg, const lb_plugin_registry *registry,
                                 lb_error *err);
void lb_seg_world_free(lb_seg_world *w);

/* Writes the configuration's segmentation declarations into the store
 * (upsert by account and name, origin "config") and removes config-origin
 * rows the configuration no longer declares. CLI-origin rows are kept. */
int lb_seg_world_sync_config(lb_store *store, const lb_config *cfg, lb_error *err);

#endif
