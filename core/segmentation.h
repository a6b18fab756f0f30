/* segmentation.h: a product's segmentation (trigger, conditions, optional
 * custom rule, one integration and its ordered actions, options), how it is
 * read from its JSON declaration, written back for listings, and checked for
 * consistency against the rules, the account's providers and its siblings.
 * docs/segmentations.md describes the shape, the checks and their codes.
 */
#ifndef LB_SEGMENTATION_H
#define LB_SEGMENTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "error.h"
#include "rules.h"

struct lb_plugin;

#define LB_SEG_NAME_MAX 128 /* bytes of a name, an integration id, an action or param name */

typedef struct lb_seg_action {
    char *action;      /* a provider action name, e.g. "tag_add" */
    size_t n_params;
    char **keys;       /* flat string params, in declaration order */
    char **values;     /* numbers were turned into their text */
    char *params_json; /* {"tag":"buyer"}: what each job of this action carries */
} lb_seg_action;

typedef enum lb_seg_status {
    LB_SEG_OK = 0,           /* consistent: runs when enabled */
    LB_SEG_NEEDS_REVIEW = 1, /* inconsistent: kept, shown with reasons, never run */
} lb_seg_status;

typedef struct lb_segmentation {
    int64_t id;        /* stable id (the store's, or the declaration's "id"); 0 = none yet */
    char *account;
    char *name;
    char *product;     /* product.id of the events it acts on */
    char *trigger;
    json_object *trigger_params;     /* owned; an object, never NULL */
    size_t n_conditions;
    char **conditions;
    json_object **condition_params;  /* owned; objects, never NULL */
    char *custom_file, *custom_inline; /* at most one set */
    char *integration; /* the integration id inside the account */
    size_t n_actions;
    lb_seg_action *actions;
    bool send_billet_link; /* options.send_billet_link */
    bool enabled;
    lb_seg_status status;  /* set by lb_segmentations_recheck (parse: LB_SEG_OK) */
    json_object *reasons;  /* owned array of {"code","message","field"}; [] when consistent */
    lb_rule_spec spec;     /* the rule part for the rules host; points into this struct */
} lb_segmentation;

/* Reads one declaration (docs/segmentations.md, section 1) for `account`.
 * Everything kept is copied. Returns NULL with err naming the field as it is
 * spelled in the declaration, 1-based ("actions[2].params.tag"). Only the
 * shape is checked here; consistency is lb_segmentation_check's. */
lb_segmentation *lb_segmentation_parse(json_object *decl, const char *account, lb_error *err);
/* The same from JSON text (a CLI file); a syntax error has field "". */
lb_segmentation *lb_segmentation_parse_text(const char *text, const char *account, lb_error *err);
/* A JSON array text of declarations (the configuration's form). On success
 * *out is a malloc'd array of *n segmentations (free each, then the array);
 * field names are prefixed with "[i]." (1-based). Returns 0 or -1. */
int lb_segmentations_parse_array(const char *text, const char *account, lb_segmentation ***out, size_t *n,
                                 lb_error *err);
void lb_segmentation_free(lb_segmentation *seg);

/* The declaration plus "id", "account", "status" ("ok" | "needs_review" |
 * "disabled") and "reasons": a new reference. lb_segmentation_parse accepts
 * it back (it ignores the read-only keys). */
json_object *lb_segmentation_to_json(const lb_segmentation *seg);

/* One integration of an account, as the checks see it. */
typedef struct lb_seg_integration {
    const char *account;
    const char *id;                 /* the integration id the segmentations name */
    const char *provider;           /* plugin name, for messages; may be NULL */
    const struct lb_plugin *plugin; /* NULL: the provider is not loaded */
} lb_seg_integration;

typedef struct lb_seg_ctx {
    lb_rules *rules;
    /* every account's integrations (entries of other accounts are skipped) */
    const lb_seg_integration *integrations;
    size_t n_integrations;
    /* lb_segmentation_check only: the other segmentations of the same
     * account and product (entries of another account or product, the
     * segmentation itself and an older version with the same non-zero id are
     * skipped). lb_segmentations_recheck finds siblings itself. */
    lb_segmentation *const *siblings;
    size_t n_siblings;
} lb_seg_ctx;

/* Checks seg for consistency: appends one {"code","message","field"} per
 * problem to reasons_out (an array; NULL only counts) and returns how many.
 * A sibling provides a prerequisite only while it is enabled and its status
 * is LB_SEG_OK (a sibling that needs review does not run). seg itself is not
 * modified; a custom rule is compiled (and cached) by the rules host. */
int lb_segmentation_check(const lb_segmentation *seg, const lb_seg_ctx *ctx, json_object *reasons_out);

/* Re-checks every segmentation (after a rule set, a provider or a sibling
 * changed), replacing each one's status and reasons. Prerequisites are
 * resolved to a fixpoint: a segmentation that needs review provides nothing,
 * which may in turn flag the ones that relied on it. ctx->siblings is
 * ignored. Returns how many changed status, or -1 on out of memory. */
int lb_segmentations_recheck(lb_segmentation *const *all, size_t n, const lb_seg_ctx *ctx);

/* "ok" | "needs_review" | "disabled" (a disabled one keeps its reasons). */
const char *lb_segmentation_state_name(const lb_segmentation *seg);

#endif
