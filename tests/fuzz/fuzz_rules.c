/* fuzz_rules.c: libFuzzer (or AFL++) target for the rule catalogue in
 * rules/ against what buyers put in deliveries. Every trigger, alone and
 * with each condition it allows, is prepared once with params made from the
 * catalogue (the first allowed value, the minimum, "x"); then each input is
 * normalized as a Hotmart webhook or as a /v1/events body and evaluated by
 * every one of them.
 *
 * Input: byte 0 chooses the normalizer (even: Hotmart 2.0.0 JSON, odd:
 * /v1/events); the rest is the body.
 *
 * Check, besides "no crash, no leak, no undefined behaviour": no rule ever
 * answers anything but match or no match. An error, or a budget spent, on
 * an event the normalizer accepted is a bug in the rule, and a costly one:
 * five in a row disable the module for every segmentation until the next
 * reload, so a buyer who could craft such an event could switch an
 * automation off.
 *
 * LB_RULES_DIR names the rules (tests/fuzz/run sets it to rules/); make
 * check loads them with fuzz_rules_load instead. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "canonical.h"
#include "error.h"
#include "event.h"
#include "fuzz_must.h"
#include "hotmart.h"
#include "rules.h"

#define RULES_TARGET "fuzz_rules"
#define MAX_SPECS 512

static struct {
    lb_rules *rules;
    lb_rule_prepared *specs[MAX_SPECS];
    char names[MAX_SPECS][128]; /* "trigger+condition", for a failure's message */
    size_t n_specs;
} catalogue;

/* A valid value for one catalogue param: the first allowed one, the
 * minimum (or maximum, or 1), "x", true. */
static json_object *param_value(json_object *param)
{
    json_object *type = NULL, *values = NULL, *min = NULL, *max = NULL;
    json_object_object_get_ex(param, "type", &type);
    json_object_object_get_ex(param, "values", &values);
    json_object_object_get_ex(param, "min", &min);
    json_object_object_get_ex(param, "max", &max);
    const char *t = json_object_get_string(type);
    json_object *first = values ? json_object_array_get_idx(values, 0) : NULL;
    if (strcmp(t, "number") == 0 || strcmp(t, "integer") == 0)
        return json_object_new_double(min ? json_object_get_double(min) : max ? json_object_get_double(max) : 1);
    if (strcmp(t, "boolean") == 0)
        return json_object_new_boolean(1);
    if (strcmp(t, "enum") == 0)
        return json_object_get(first);
    json_object *s = first ? json_object_get(first) : json_object_new_string("x");
    if (strcmp(t, "list") != 0)
        return s;
    json_object *list = json_object_new_array();
    json_object_array_add(list, s);
    return list;
}

/* Every param of a catalogue entry, each with a valid value. */
static json_object *params_of(json_object *entry)
{
    json_object *params = NULL, *out = json_object_new_object();
    json_object_object_get_ex(entry, "params", &params);
    for (size_t i = 0; params && i < json_object_array_length(params); i++) {
        json_object *param = json_object_array_get_idx(params, i), *name = NULL;
        json_object_object_get_ex(param, "name", &name);
        json_object_object_add(out, json_object_get_string(name), param_value(param));
    }
    return out;
}

static const char *id_of(json_object *entry)
{
    json_object *id = NULL;
    json_object_object_get_ex(entry, "id", &id);
    return json_object_get_string(id);
}

/* Prepares trigger t, with condition c when c is not NULL, if the pair is
 * consistent (a condition needs what the trigger carries). */
static void add_spec(json_object *t, json_object *c)
{
    json_object *tp = params_of(t), *cp = c ? params_of(c) : NULL;
    const char *cond = c ? id_of(c) : NULL;
    lb_rule_spec spec = {.trigger = id_of(t), .trigger_params = tp, .n_conditions = c ? 1 : 0,
                         .conditions = &cond, .condition_params = &cp};
    if (lb_rules_check(catalogue.rules, &spec, NULL) == 0 && catalogue.n_specs < MAX_SPECS) {
        lb_error err = {0};
        lb_rule_prepared *h = lb_rules_prepare(catalogue.rules, &spec, &err);
        fuzz_must(h != NULL, RULES_TARGET, "a consistent spec did not prepare");
        snprintf(catalogue.names[catalogue.n_specs], sizeof catalogue.names[0], "%s%s%s", spec.trigger,
                 cond ? "+" : "", cond ? cond : "");
        catalogue.specs[catalogue.n_specs++] = h;
    }
    json_object_put(tp);
    json_object_put(cp);
}

/* Loads the rules of dir and prepares every trigger, alone and with each
 * condition it allows. Returns how many triggers prepared alone. */
static size_t fuzz_rules_load(const char *dir)
{
    lb_rules_free(catalogue.rules);
    memset(&catalogue, 0, sizeof catalogue);
    lb_rules_limits limits;
    lb_rules_limits_default(&limits);
    limits.cpu_budget_us = 2000000; /* CPU time varies under the sanitizers; instructions do not */
    limits.max_errors = 1000000;    /* the first error fails the input anyway */
    lb_error err = {0};
    catalogue.rules = lb_rules_load(dir, NULL, &limits, &err);
    if (catalogue.rules == NULL) {
        fprintf(stderr, "%s: cannot load %s: %s %s\n", RULES_TARGET, dir, err.field, err.message);
        abort();
    }
    json_object *cat = lb_rules_catalogue(catalogue.rules), *triggers = NULL, *conditions = NULL;
    json_object_object_get_ex(cat, "triggers", &triggers);
    json_object_object_get_ex(cat, "conditions", &conditions);
    size_t alone = 0;
    for (size_t i = 0; i < json_object_array_length(triggers); i++) {
        json_object *t = json_object_array_get_idx(triggers, i);
        size_t before = catalogue.n_specs;
        add_spec(t, NULL);
        alone += catalogue.n_specs > before;
        for (size_t j = 0; j < json_object_array_length(conditions); j++)
            add_spec(t, json_object_array_get_idx(conditions, j));
    }
    json_object_put(cat);
    return alone;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("LB_RULES_DIR");
    fuzz_must(dir != NULL, RULES_TARGET, "set LB_RULES_DIR to the rules folder");
    size_t alone = fuzz_rules_load(dir);
    fprintf(stderr, "%s: %zu triggers alone, %zu specs in all\n", RULES_TARGET, alone, catalogue.n_specs);
    fuzz_must(alone > 0, RULES_TARGET, "no trigger prepared");
    return 0;
}

static void evaluate_all(json_object *doc)
{
    for (size_t i = 0; i < catalogue.n_specs; i++) {
        lb_error err = {0};
        int rc = lb_rules_match_prepared(catalogue.rules, catalogue.specs[i], doc, &err);
        if (rc != 0 && rc != 1) {
            fprintf(stderr, "%s: %s on %s: %s %s\n", RULES_TARGET, catalogue.names[i],
                    json_object_to_json_string(doc), err.field, err.message);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536 || catalogue.rules == NULL)
        return 0;
    json_tokener *tok = json_tokener_new();
    fuzz_must(tok != NULL, RULES_TARGET, "out of memory");
    json_object *root = json_tokener_parse_ex(tok, (const char *)data + 1, (int)(size - 1));
    if (root != NULL && json_tokener_get_error(tok) == json_tokener_success) {
        lb_event ev = {0};
        lb_error err = {0};
        int rc = data[0] % 2 == 0 ? lb_hotmart_normalize(root, &ev, &err) : lb_canonical_normalize(root, &ev, &err);
        if (rc == 0)
            evaluate_all(ev.doc);
        lb_event_clear(&ev); /* safe on a zeroed event, whatever a failure left */
    }
    json_object_put(root);
    json_tokener_free(tok);
    return 0;
}
