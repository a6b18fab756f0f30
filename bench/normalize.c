/* bench/normalize.c: CPU per delivery of what the event loop does to a
 * Hotmart webhook body before it is stored: read the JSON, normalize it,
 * write the normalized document as text, free everything.
 *
 * Built and run by bench/normalize, over the mix of six fixtures that
 * bench/ingest posts. The flat reader (core/json_flat.c) is timed stage by
 * stage (read; read + normalize; read + normalize + write; read + normalize
 * + the document's json-c tree, which segmentations and Club state read);
 * json-c's tokener and tree, which the daemon used before, for reading alone
 * (parse + free), the part the flat reader replaced. In process CPU time.
 *
 * Usage: normalize FIXTURES_DIR ITERATIONS */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "error.h"
#include "event.h"
#include "hotmart.h"
#include "json_flat.h"

static const char *const names[] = {"PURCHASE_APPROVED", "PURCHASE_BILLET_PRINTED", "PURCHASE_OUT_OF_SHOPPING_CART",
                                    "PURCHASE_REFUNDED", "CLUB_MODULE_COMPLETED", "SUBSCRIPTION_CANCELLATION"};
#define N_BODIES (sizeof names / sizeof *names)

static char *bodies[N_BODIES];
static size_t lens[N_BODIES];

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void load(const char *dir)
{
    for (size_t i = 0; i < N_BODIES; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.json", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f || !(bodies[i] = malloc(1 << 16))) {
            fprintf(stderr, "bench/normalize: cannot read %s\n", path);
            exit(1);
        }
        lens[i] = fread(bodies[i], 1, 1 << 16, f);
        fclose(f);
    }
}

enum stage { PARSE, NORMALIZE, WRITE, TREE };

/* The event's document as the daemon stores it (account added, then text). */
static size_t finish(lb_event *ev, enum stage stage)
{
    size_t len = 0;
    lb_event_set_account(ev, "bench");
    if (stage == WRITE)
        lb_event_text(ev, &len);
    if (stage == TREE && !lb_event_json(ev)) {
        fprintf(stderr, "bench/normalize: out of memory\n");
        exit(1);
    }
    lb_event_clear(ev);
    return len;
}

static void fail(const char *what, const lb_error *err)
{
    fprintf(stderr, "bench/normalize: %s: %s: %s\n", what, err->field, err->message);
    exit(1);
}

static void one_json_c(json_tokener *tok, size_t i)
{
    json_tokener_reset(tok);
    json_object *root = json_tokener_parse_ex(tok, bodies[i], (int)lens[i]);
    if (!root) {
        fprintf(stderr, "bench/normalize: json-c cannot read %s\n", names[i]);
        exit(1);
    }
    json_object_put(root);
}

static size_t one_flat(lb_jflat *flat, size_t i, enum stage stage)
{
    char why[160];
    const lb_jnode *root = lb_jflat_parse(flat, bodies[i], lens[i], 64, why, sizeof why);
    if (!root) {
        fprintf(stderr, "bench/normalize: %s: %s\n", names[i], why);
        exit(1);
    }
    if (stage == PARSE)
        return 0;
    lb_event ev;
    lb_error err;
    if (lb_hotmart_normalize_flat(root, &ev, &err))
        fail(names[i], &err);
    return finish(&ev, stage);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: normalize FIXTURES_DIR ITERATIONS\n");
        return 2;
    }
    load(argv[1]);
    long n = atol(argv[2]);
    json_tokener *tok = json_tokener_new_ex(64);
    lb_jflat *flat = lb_jflat_new();
    static const char *const stage_names[] = {"read", "read + normalize", "read + normalize + write",
                                              "read + normalize + json-c tree"};
    size_t sink = 0;
    double t0 = cpu_s();
    for (long k = 0; k < n; k++)
        one_json_c(tok, (size_t)k % N_BODIES);
    printf("%-7s %-30s %6.2f us/delivery\n", "json-c", stage_names[PARSE], (cpu_s() - t0) / (double)n * 1e6);
    for (enum stage s = PARSE; s <= TREE; s++) {
        t0 = cpu_s();
        for (long k = 0; k < n; k++)
            sink += one_flat(flat, (size_t)k % N_BODIES, s);
        printf("%-7s %-30s %6.2f us/delivery\n", "flat", stage_names[s], (cpu_s() - t0) / (double)n * 1e6);
    }
    json_tokener_free(tok);
    lb_jflat_free(flat);
    for (size_t i = 0; i < N_BODIES; i++)
        free(bodies[i]);
    return sink == 0; /* uses the writes, so they are not optimized away */
}
