/* seg_world.c: building the segmentation world from config, store, rules and plugins. */
#include "seg_world.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- config -> store ------------------------------------------------------ */

/* The ids of the rows the configuration declares, as upserted this sync:
 * every other config-origin row is stale. */
typedef struct id_set {
    int64_t *v;
    size_t n, cap;
} id_set;

static int id_set_add(id_set *set, int64_t id)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 32;
        int64_t *grown = realloc(set->v, cap * sizeof *grown);
        if (!grown)
            return -1;
        set->v = grown;
        set->cap = cap;
    }
    set->v[set->n++] = id;
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct stale {
    const id_set *kept;
    char **account, **name;
    size_t n, cap;
    bool oom;
} stale;

static void collect_stale(const lb_stored_segmentation *row, void *ud)
{
    stale *st = ud;
    if (strcmp(row->origin, "config") != 0 || (st->kept->n > 0 &&
        bsearch(&row->id, st->kept->v, st->kept->n, sizeof *st->kept->v, cmp_id)))
        return;
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 8;
        char **a = realloc(st->account, cap * sizeof *a);
        if (a)
            st->account = a;
        char **n = realloc(st->name, cap * sizeof *n);
        if (n)
            st->name = n;
        if (!a || !n) {
            st->oom = true;
            return;
        }
        st->cap = cap;
    }
    st->account[st->n] = strdup(row->account);
    st->name[st->n] = strdup(row->name);
    st->n++;
}

static int put_declarations(lb_store *store, const lb_account *a, id_set *kept, lb_error *err)
{
    lb_segmentation **segs = NULL;
    size_t n = 0;
    if (!a->segmentations_json)
        return 0;
    if (lb_segmentations_parse_array(a->segmentations_json, a->id, &segs, &n, err))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_object *decl = lb_segmentation_to_json(segs[i]);
        lb_stored_segmentation row = {
            .account = a->id,
            .name = segs[i]->name,
            .product_id = segs[i]->product,
            .declaration = json_object_to_json_string_ext(decl, JSON_C_TO_STRING_PLAIN),
            .origin = "config",
        };
        int64_t id;
        rc = lb_store_put_segmentation(store, &row, &id, err);
        if (rc == 0 && id_set_add(kept, id))
            rc = lb_fail(err, "", "out of memory");
        json_object_put(decl);
    }
    for (size_t i = 0; i < n; i++)
        lb_segmentation_free(segs[i]);
    free(segs);
    return rc;
}

/* Writes the configuration's segmentation declarations into the store
 * (upsert by account and name, origin "config") and removes config-origin
 * rows the configuration no longer declares. CLI-origin rows are kept. */
static int sync_config(lb_store *store, const lb_config *cfg, lb_error *err)
{
    int rc = 0;
    id_set kept = {0};
    for (size_t i = 0; i < cfg->n_accounts && rc == 0; i++)
        rc = put_declarations(store, &cfg->accounts[i], &kept, err);
    if (kept.n > 1)
        qsort(kept.v, kept.n, sizeof *kept.v, cmp_id);
    stale st = {.kept = &kept};
    if (rc == 0)
        rc = lb_store_load_segmentations(store, collect_stale, &st, err);
    if (rc == 0 && st.oom)
        rc = lb_fail(err, "", "out of memory");
    for (size_t i = 0; i < st.n; i++) {
        bool deleted;
        if (rc == 0 && st.account[i] && st.name[i])
            rc = lb_store_delete_segmentation(store, st.account[i], st.name[i], &deleted, err);
        free(st.account[i]);
        free(st.name[i]);
    }
    free(st.account);
    free(st.name);
    free(kept.v);
    return rc;
}

/* ---- store -> segmentations --------------------------------------------------- */

typedef struct loaded {
    lb_seg_world *w;
    int rc;
    lb_error *err;
} loaded;

static void load_one(const lb_stored_segmentation *row, void *ud)
{
    loaded *ld = ud;
    if (ld->rc)
        return;
    lb_error perr = {0};
    lb_segmentation *seg = lb_segmentation_parse_text(row->declaration, row->account, &perr);
    if (!seg) {
        /* a row that no longer parses (edited by hand, older format) is skipped, loudly */
        lb_log(LB_LOG_ERROR, "stored segmentation does not parse; skipped", "account", row->account, "name",
               row->name, "field", perr.field, "error", perr.message, NULL);
        return;
    }
    seg->id = row->id;
    lb_seg_world *w = ld->w;
    lb_segmentation **grown = realloc(w->segs, (w->n_segs + 1) * sizeof *grown);
    if (!grown) {
        lb_segmentation_free(seg);
        ld->rc = lb_fail(ld->err, "", "out of memory");
        return;
    }
    w->segs = grown;
    w->segs[w->n_segs++] = seg;
}

static int collect_integrations(lb_seg_world *w, const lb_config *cfg, const lb_plugin_registry *registry,
                                lb_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < cfg->n_accounts; i++)
        total += cfg->accounts[i].n_integrations;
    w->integrations = calloc(total ? total : 1, sizeof *w->integrations);
    if (!w->integrations)
        return lb_fail(err, "", "out of memory");
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        const lb_account *a = &cfg->accounts[i];
        for (size_t j = 0; j < a->n_integrations; j++) {
            const lb_integration_config *ic = &a->integrations[j];
            const lb_loaded_plugin *p = registry ? lb_registry_find(registry, ic->provider) : NULL;
            w->integrations[w->n_integrations++] = (lb_seg_integration){
                .account = a->id, .id = ic->id, .provider = ic->provider, .plugin = p ? &p->desc : NULL};
        }
    }
    return 0;
}

/* Writes each segmentation's status and reasons back, for listings. */
static int save_statuses(lb_store *store, lb_seg_world *w, lb_error *err)
{
    int rc = 0;
    for (size_t i = 0; i < w->n_segs && rc == 0; i++) {
        lb_segmentation *s = w->segs[i];
        const char *reasons = json_object_to_json_string_ext(s->reasons, JSON_C_TO_STRING_PLAIN);
        rc = lb_store_set_segmentation_status(store, s->id, lb_segmentation_state_name(s), reasons, err);
        if (s->status != LB_SEG_OK && s->enabled)
            lb_log(LB_LOG_WARN, "segmentation needs review; it will not run", "account", s->account, "name",
                   s->name, "reasons", reasons, NULL);
    }
    return rc;
}

lb_seg_world *lb_seg_world_prepare(lb_store *store, const lb_config *cfg, const lb_plugin_registry *registry,
                                 lb_error *err)
{
    lb_seg_world *w = calloc(1, sizeof *w);
    if (!w) {
        lb_fail(err, "", "out of memory");
        return NULL;
    }
    w->rules = lb_rules_load(cfg->rules_dir, cfg->custom_rules_dir, NULL, err);
    loaded ld = {.w = w, .err = err};
    if (!w->rules || sync_config(store, cfg, err) ||
        lb_store_load_segmentations(store, load_one, &ld, err) || ld.rc ||
        collect_integrations(w, cfg, registry, err))
        goto fail;
    lb_seg_ctx ctx = {.rules = w->rules, .integrations = w->integrations, .n_integrations = w->n_integrations};
    w->engine = lb_seg_engine_new(w->segs, w->n_segs, &ctx, err);
    if (!w->engine || save_statuses(store, w, err))
        goto fail;
    return w;
fail:
    lb_seg_world_free(w);
    return NULL;
}

lb_seg_world *lb_seg_world_build(lb_store *store, const lb_config *cfg, const lb_plugin_registry *registry,
                                 lb_error *err)
{
    if (lb_store_begin(store, err))
        return NULL;
    lb_seg_world *w = lb_seg_world_prepare(store, cfg, registry, err);
    if (!w || lb_store_commit(store, err)) {
        lb_store_rollback(store);
        lb_seg_world_free(w);
        return NULL;
    }
    return w;
}

void lb_seg_world_free(lb_seg_world *w)
{
    if (!w)
        return;
    lb_seg_engine_free(w->engine); /* borrows segs and rules: first */
    for (size_t i = 0; i < w->n_segs; i++)
        lb_segmentation_free(w->segs[i]);
    free(w->segs);
    free(w->integrations);
    lb_rules_free(w->rules);
    free(w);
}
