/* bench/rules.c: evaluations per second of the segmentation engine.
 *
 * Built and run by bench/rules. For each count N given on the command line it
 * builds N segmentations on one product (4123456, the fixtures' product):
 * trigger purchase_approved, condition payment_method in CREDIT_CARD (odd
 * ones: the fixture pays by card, so they match) or PIX (even ones: they do
 * not), one tag_add action each, on a sandbox integration whose descriptor
 * comes from the plugin registry, exactly as the daemon prepares them. Then it
 * evaluates the normalized PURCHASE_APPROVED fixture in a loop for SECONDS,
 * with a sink that frees the jobs, and prints evaluations per second; and the
 * same for PURCHASE_BILLET_PRINTED (an event of the product that no trigger
 * accepts: the engine's cheap path).
 *
 * Usage: rules RULES_DIR PLUGIN_DIR FIXTURES_DIR SECONDS N [N...] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <listboss/plugin.h>

#include "error.h"
#include "event.h"
#include "hotmart.h"
#include "plugin_api.h"
#include "plugin_loader.h"
#include "rules.h"
#include "seg_engine.h"
#include "segmentation.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const lb_error *err)
{
    fprintf(stderr, "bench/rules: %s: %s: %s\n", what, err ? err->field : "", err ? err->message : "");
    exit(1);
}

static json_object *normalized(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    json_object *root = json_object_from_file(path);
    if (!root) {
        fprintf(stderr, "bench/rules: cannot read %s\n", path);
        exit(1);
    }
    lb_event ev;
    lb_error err;
    if (lb_hotmart_normalize(root, &ev, &err) != 0)
        die(path, &err);
    lb_event_set_account(&ev, "bench");
    json_object *doc = json_object_get(ev.doc);
    lb_event_clear(&ev);
    json_object_put(root);
    return doc;
}

/* The sink: free each job at once, count it. */
typedef struct counts {
    unsigned long jobs, rule_errors;
} counts;

static int take_job(void *ud, lb_outbox_job *job)
{
    ((counts *)ud)->jobs++;
    lb_job_free(job);
    return 0;
}

static void rule_error(void *ud, const lb_segmentation *seg, const lb_error *err)
{
    counts *c = ud;
    if (c->rule_errors++ == 0)
        fprintf(stderr, "bench/rules: rule error in %s: %s: %s\n", seg->name, err->field, err->message);
}

typedef struct result {
    double evals_per_s, us_per_eval, cpu_share;
    unsigned long evals, jobs;
    int jobs_per_eval;
} result;

static result run(lb_seg_engine *eng, json_object *ev, double secs)
{
    counts c = {0, 0};
    lb_seg_sink sink = {take_job, rule_error, &c};
    int64_t id = 1;
    /* warm-up: caches, allocator, Lua */
    int per = 0;
    for (int i = 0; i < 200; i++)
        per = lb_seg_engine_evaluate(eng, "bench", ev, id++, &sink);
    if (per < 0) {
        fprintf(stderr, "bench/rules: evaluation failed\n");
        exit(1);
    }
    c.jobs = 0;
    unsigned long n = 0;
    double t0 = now_s(), c0 = cpu_s(), t1;
    do {
        for (int i = 0; i < 16; i++)
            if (lb_seg_engine_evaluate(eng, "bench", ev, id++, &sink) < 0) {
                fprintf(stderr, "bench/rules: evaluation failed\n");
                exit(1);
            }
        n += 16;
        t1 = now_s();
    } while (t1 - t0 < secs);
    double c1 = cpu_s();
    result r = {n / (t1 - t0), (t1 - t0) * 1e6 / n, (c1 - c0) / (t1 - t0), n, c.jobs, per};
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s RULES_DIR PLUGIN_DIR FIXTURES_DIR SECONDS N [N...]\n", argv[0]);
        return 2;
    }
    const char *rules_dir = argv[1], *plugin_dir = argv[2], *fixtures = argv[3];
    double secs = atof(argv[4]);
    lb_error err;

    lb_rules *rules = lb_rules_load(rules_dir, NULL, NULL, &err);
    if (!rules)
        die("rules", &err);
    static lb_core_api api;
    lb_core_api_fill(&api);
    lb_plugin_registry *reg = lb_registry_new();
    if (!reg || lb_registry_load_dir(reg, plugin_dir, &api, &err) < 0)
        die("plugins", &err);
    const lb_loaded_plugin *sandbox = lb_registry_find(reg, "sandbox");
    if (!sandbox) {
        fprintf(stderr, "bench/rules: no sandbox plugin in %s\n", plugin_dir);
        return 1;
    }
    lb_seg_integration ig = {"bench", "sandbox", "sandbox", &sandbox->desc};

    json_object *approved = normalized(fixtures, "PURCHASE_APPROVED");
    json_object *billet = normalized(fixtures, "PURCHASE_BILLET_PRINTED");

    printf("%-15s %16s %12s %14s %14s %16s\n", "segmentations", "event", "evals/s", "us/eval",
           "jobs/eval", "seg checks/s");
    for (int a = 5; a < argc; a++) {
        size_t n = strtoul(argv[a], NULL, 10);
        lb_segmentation **segs = calloc(n ? n : 1, sizeof *segs);
        for (size_t i = 0; i < n; i++) {
            char decl[1024];
            snprintf(decl, sizeof decl,
                     "{\"id\":%zu,\"name\":\"seg-%zu\",\"product\":\"4123456\","
                     "\"trigger\":{\"id\":\"purchase_approved\",\"params\":{}},"
                     "\"conditions\":[{\"id\":\"payment_method\",\"params\":{\"in\":[\"%s\"]}}],"
                     "\"integration\":\"sandbox\","
                     "\"actions\":[{\"action\":\"tag_add\",\"params\":{\"tag\":\"seg-%zu\"}}]}",
                     i + 1, i + 1, i % 2 == 0 ? "CREDIT_CARD" : "PIX", i + 1);
            segs[i] = lb_segmentation_parse_text(decl, "bench", &err);
            if (!segs[i])
                die("segmentation", &err);
        }
        lb_seg_ctx ctx = {rules, &ig, 1, NULL, 0};
        lb_seg_engine *eng = lb_seg_engine_new(segs, n, &ctx, &err);
        if (!eng)
            die("engine", &err);
        if (lb_seg_engine_active(eng) != n) {
            fprintf(stderr, "bench/rules: only %zu of %zu segmentations prepared\n", lb_seg_engine_active(eng), n);
            return 1;
        }
        result r = run(eng, approved, secs);
        printf("%-15zu %16s %12.0f %14.2f %14d %16.0f\n", n, "PURCHASE_APPROVED", r.evals_per_s, r.us_per_eval,
               r.jobs_per_eval, r.evals_per_s * (double)n);
        if ((size_t)r.jobs_per_eval != (n + 1) / 2) {
            fprintf(stderr, "bench/rules: expected %zu jobs per evaluation, got %d\n", (n + 1) / 2, r.jobs_per_eval);
            return 1;
        }
        r = run(eng, billet, secs / 2);
        printf("%-15zu %16s %12.0f %14.2f %14d %16.0f\n", n, "BILLET_PRINTED", r.evals_per_s, r.us_per_eval,
               r.jobs_per_eval, r.evals_per_s * (double)n);
        fflush(stdout);
        lb_seg_engine_free(eng);
        for (size_t i = 0; i < n; i++)
            lb_segmentation_free(segs[i]);
        free(segs);
    }
    json_object_put(approved);
    json_object_put(billet);
    lb_rules_free(rules);
    lb_registry_free(reg);
    return 0;
}
