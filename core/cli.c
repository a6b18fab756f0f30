/* cli.c: the commands. Each prints JSON on stdout so scripts and tests can
 * read it; errors go to stderr. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sysexits.h>

#include "canonical.h"
#include "db_lock.h"
#include "hotmart.h"
#include "log.h"
#include "plugin_api.h"
#include "plugin_loader.h"
#include "seg_world.h"
#include "store.h"

typedef struct cli {
    lb_config *cfg;
    lb_store store;
    lb_plugin_registry *registry;
    lb_core_api api;
    lb_seg_world *world;
} cli;

static void print_json(json_object *o)
{
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int fail_with(const lb_error *err)
{
    fprintf(stderr, "listbossd: %s%s%s\n", err->field, *err->field ? ": " : "", err->message);
    return 1;
}

/* Config, store, plugins and the segmentation world, as the daemon builds
 * them. Returns 0, -1 or LB_STORE_NEEDS_UPGRADE, err saying why. */
static int cli_open(cli *c, const lb_daemon_options *opts, bool with_world, lb_error *err)
{
    c->cfg = lb_daemon_load_config(opts, err);
    if (!c->cfg)
        return -1;
    /* must_exist: only the daemon creates a store, so a mistyped -d fails here;
     * no_upgrade: nor does anything but the daemon upgrade one (refuse_upgrade) */
    lb_store_options sopts = {.sync_full = c->cfg->sync_full, .busy_timeout_ms = 5000, .must_exist = true,
                              .no_upgrade = true};
    int rc = lb_store_open(&c->store, c->cfg->database, &sopts, err);
    if (rc)
        return rc;
    if (!with_world)
        return 0;
    lb_core_api_fill(&c->api);
    c->registry = lb_registry_new();
    if (!c->registry || lb_registry_load_dir(c->registry, c->cfg->plugin_dir, &c->api, err) < 0)
        lb_error_clear(err); /* as in the daemon: missing providers flag segmentations instead */
    c->world = lb_seg_world_build(&c->store, c->cfg, c->registry, err);
    return c->world ? 0 : -1;
}

/* A store whose schema is older than this listbossd's: the commands never
 * upgrade it, they say who can. After a package upgrade the old daemon may
 * still be running on it with SQL written for the old schema, and some
 * migrations rebuild whole tables under it. With no daemon running, a command
 * could take the lock and upgrade, but an upgrade can take minutes (migration
 * 6: 25 s for 300,000 events, docs/storage.md), which the daemon's start logs
 * step by step while a command would sit silent, and a daemon started
 * meanwhile would refuse to run. So only the daemon upgrades, as it starts;
 * the lock tells which advice fits (a daemon of this version holds it too
 * while its start upgrades). EX_TEMPFAIL: the same command works once the
 * daemon has started. */
static int refuse_upgrade(const char *database, const lb_error *err)
{
    char who[64] = "";
    int held = lb_db_lock_holder(database, who, sizeof who);
    fprintf(stderr, "listbossd: %s: %s", err->field, err->message);
    if (held > 0)
        fprintf(stderr, ", and %s is running on it. Only the daemon upgrades a store, as it starts: restart that "
                        "one with this listbossd (or, if it is starting, let it finish)", who);
    else if (held == 0)
        fprintf(stderr, ", and no listbossd is running on it. Only the daemon upgrades a store, as it starts: "
                        "start listbossd once");
    else
        fprintf(stderr, ". Only the daemon upgrades a store, as it starts: start listbossd (or restart it with "
                        "this version)");
    fprintf(stderr, ", then run the command again\n");
    return EX_TEMPFAIL;
}

static int open_failed(const cli *c, int rc, const lb_error *err)
{
    return rc == LB_STORE_NEEDS_UPGRADE ? refuse_upgrade(c->cfg->database, err) : fail_with(err);
}

static void cli_close(cli *c)
{
    lb_seg_world_free(c->world);
    lb_registry_free(c->registry);
    lb_store_close(&c->store);
    lb_config_free(c->cfg);
}

static const lb_account *find_account(const lb_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_accounts; i++)
        if (strcmp(cfg->accounts[i].id, id) == 0)
            return &cfg->accounts[i];
    return NULL;
}

/* A command naming an account not configured fails, instead of answering
 * as if that account simply had nothing (a mistyped name read as "none"). */
static int fail_unknown_account(void)
{
    return fail_with(&(lb_error){.field = "account", .message = "no such account in the configuration"});
}

/* ---- catalogue, segmentations -------------------------------------------- */

static int cmd_catalogue(cli *c)
{
    json_object *cat = lb_rules_catalogue(c->world->rules);
    print_json(cat);
    json_object_put(cat);
    return 0;
}

static int cmd_list(cli *c, const char *account)
{
    json_object *out = json_object_new_array();
    for (size_t i = 0; i < c->world->n_segs; i++)
        if (!account || strcmp(c->world->segs[i]->account, account) == 0)
            json_object_array_add(out, lb_segmentation_to_json(c->world->segs[i]));
    print_json(out);
    json_object_put(out);
    return 0;
}

static char *read_text_file(const char *path, lb_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        lb_fail(err, path, "cannot read the file");
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *grown = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        lb_fail(err, path, "file too large or out of memory");
    else
        buf[len] = '\0';
    return buf;
}

/* Saving refuses an inconsistent segmentation with every reason, as JSON. */
static int cmd_add(cli *c, const char *account, const char *path)
{
    lb_error err = {0};
    if (!find_account(c->cfg, account))
        return fail_unknown_account();
    char *text = read_text_file(path, &err);
    lb_segmentation *seg = text ? lb_segmentation_parse_text(text, account, &err) : NULL;
    free(text);
    if (!seg)
        return fail_with(&err);
    lb_seg_ctx ctx = {.rules = c->world->rules, .integrations = c->world->integrations,
                      .n_integrations = c->world->n_integrations,
                      .siblings = (lb_segmentation *const *)c->world->segs, .n_siblings = c->world->n_segs};
    json_object *reasons = json_object_new_array();
    int n = lb_segmentation_check(seg, &ctx, reasons);
    int status = 1;
    if (n > 0) {
        json_object *out = json_object_new_object();
        json_object_object_add(out, "saved", json_object_new_boolean(0));
        json_object_object_add(out, "reasons", json_object_get(reasons));
        print_json(out);
        json_object_put(out);
    } else {
        json_object *decl = lb_segmentation_to_json(seg);
        lb_stored_segmentation row = {.account = account, .name = seg->name, .product_id = seg->product,
                                      .declaration = json_object_to_json_string_ext(decl, JSON_C_TO_STRING_PLAIN),
                                      .origin = "cli"};
        int64_t id;
        if (lb_store_put_segmentation(&c->store, &row, &id, &err) == 0) {
            printf("{\"saved\": true, \"id\": %lld}\n", (long long)id);
            status = 0;
        } else {
            status = fail_with(&err);
        }
        json_object_put(decl);
    }
    json_object_put(reasons);
    lb_segmentation_free(seg);
    return status;
}

static int cmd_remove(cli *c, const char *account, const char *name)
{
    lb_error err = {0};
    bool deleted = false;
    if (lb_store_delete_segmentation(&c->store, account, name, &deleted, &err))
        return fail_with(&err);
    printf("{\"removed\": %s}\n", deleted ? "true" : "false");
    return deleted ? 0 : 1;
}

/* ---- dry run ---------------------------------------------------------------- */

/* A Hotmart 2.0 delivery (has "event") or an event in the canonical shape. */
static int normalize_file(json_object *root, lb_event *ev, lb_error *err)
{
    json_object *tmp;
    if (json_object_object_get_ex(root, "event", &tmp))
        return lb_hotmart_normalize(root, ev, err);
    return lb_canonical_normalize(root, ev, err);
}

static int cmd_evaluate(cli *c, const char *account, const char *path)
{
    lb_error err = {0};
    if (!find_account(c->cfg, account))
        return fail_unknown_account();
    char *text = read_text_file(path, &err);
    if (!text)
        return fail_with(&err);
    json_object *root = json_tokener_parse(text);
    free(text);
    lb_event ev = {0};
    if (!root || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return fail_with(&(lb_error){.field = "", .message = "the event file is not a JSON object"});
    }
    int rc = normalize_file(root, &ev, &err);
    json_object_put(root);
    if (rc)
        return fail_with(&err);
    lb_event_set_account(&ev, account);
    json_object *out = lb_seg_engine_dry_run(c->world->engine, account, ev.doc);
    lb_event_clear(&ev);
    if (!out)
        return fail_with(&(lb_error){.field = "", .message = "out of memory"});
    print_json(out);
    json_object_put(out);
    return 0;
}

/* ---- dead letters ---------------------------------------------------------- */

static void add_job_json(lb_outbox_job *job, void *ud)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "id", json_object_new_int64(job->id));
    json_object_object_add(j, "integration", json_object_new_string(job->integration));
    json_object_object_add(j, "lead", json_object_new_string(job->lead_email));
    json_object_object_add(j, "action", json_object_new_string(job->action));
    json_object_object_add(j, "params", json_tokener_parse(job->params_json));
    json_object_object_add(j, "attempts", json_object_new_int(job->attempts));
    json_object_object_add(j, "last_status", json_object_new_int(job->last_status));
    if (job->last_reason)
        json_object_object_add(j, "last_reason", json_object_new_string(job->last_reason));
    json_object_array_add(ud, j);
    lb_job_free(job);
}

static int cmd_dead(cli *c, const char *account)
{
    lb_error err = {0};
    if (!find_account(c->cfg, account))
        return fail_unknown_account();
    json_object *out = json_object_new_array();
    int rc = lb_store_list_jobs(&c->store, account, LB_JOB_DEAD, add_job_json, out, &err);
    if (rc == 0)
        print_json(out);
    json_object_put(out);
    return rc ? fail_with(&err) : 0;
}

static int cmd_replay(cli *c, const char *account, const char *id_text)
{
    lb_error err = {0};
    if (!find_account(c->cfg, account))
        return fail_unknown_account();
    char *end = NULL;
    long long id = id_text ? strtoll(id_text, &end, 10) : 0;
    if (id_text && (*end || id <= 0))
        return fail_with(&(lb_error){.field = "job", .message = "not a job id"});
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int64_t now = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, count = 0;
    if (lb_store_replay_dead(&c->store, account, id, now, &count, &err))
        return fail_with(&err);
    printf("{\"replayed\": %lld}\n", (long long)count);
    return count > 0 ? 0 : 1;
}

/* ---- dispatch ------------------------------------------------------------------ */

static void print_usage(FILE *out)
{
    fprintf(out, "usage: listbossd [-c FILE] [-d DBFILE] COMMAND  (DBFILE must exist: the daemon creates it)\n"
             "  catalogue                         the rule catalogue (triggers, conditions) as JSON\n"
             "  segmentations [ACCOUNT]           every segmentation with its status and reasons\n"
             "  segmentation add ACCOUNT FILE     check and save a segmentation (JSON declaration)\n"
             "  segmentation remove ACCOUNT NAME  remove a segmentation saved with add\n"
             "  evaluate ACCOUNT EVENT_FILE       what an event would queue, queuing nothing\n"
             "  dead-letters ACCOUNT              jobs that gave up, with their last error\n"
             "  replay ACCOUNT [JOB_ID]           dead letters back to the queue (then SIGHUP the daemon)\n"
             "  help                              this list\n");
}

static int usage(void)
{
    print_usage(stderr);
    return 2;
}

static int run(cli *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    if (strcmp(cmd, "catalogue") == 0 && argc == 1)
        return cmd_catalogue(c);
    if (strcmp(cmd, "segmentations") == 0 && argc <= 2)
        return cmd_list(c, argc == 2 ? argv[1] : NULL);
    if (strcmp(cmd, "segmentation") == 0 && argc == 4 && strcmp(argv[1], "add") == 0)
        return cmd_add(c, argv[2], argv[3]);
    if (strcmp(cmd, "segmentation") == 0 && argc == 4 && strcmp(argv[1], "remove") == 0)
        return cmd_remove(c, argv[2], argv[3]);
    if (strcmp(cmd, "evaluate") == 0 && argc == 3)
        return cmd_evaluate(c, argv[1], argv[2]);
    if (strcmp(cmd, "dead-letters") == 0 && argc == 2)
        return cmd_dead(c, argv[1]);
    if (strcmp(cmd, "replay") == 0 && (argc == 2 || argc == 3))
        return cmd_replay(c, argv[1], argc == 3 ? argv[2] : NULL);
    return usage();
}

static bool needs_world(const char *cmd)
{
    return strcmp(cmd, "dead-letters") != 0 && strcmp(cmd, "replay") != 0 && strcmp(cmd, "segmentation") != 0;
}

int lb_cli_run(const lb_daemon_options *opts, int argc, char **argv)
{
    if (argc < 1)
        return usage();
    if (strcmp(argv[0], "help") == 0 && argc == 1) { /* asked for: stdout and success, nothing opened */
        print_usage(stdout);
        return 0;
    }
    cli c = {0};
    lb_error err = {0};
    lb_log_set_level(LB_LOG_WARN); /* stdout is the answer; stderr only for trouble */
    /* "segmentation add" needs the world to check against; remove does not */
    bool world = needs_world(argv[0]) || (argc > 1 && strcmp(argv[1], "add") == 0);
    int rc = cli_open(&c, opts, world, &err);
    int status = rc ? open_failed(&c, rc, &err) : run(&c, argc, argv);
    cli_close(&c);
    return status;
}
