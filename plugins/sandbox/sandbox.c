/* sandbox.c: a provider with no provider behind it.
 *
 * Every action succeeds at once and the core records it like any other: the
 * job's attempt history and the lead state (contact id, lists, tags,
 * sequences) in the local store. The demo configuration uses it, so a
 * producer can watch a lead move through segmentations before connecting a
 * real provider account. It also makes a handy target for dispatcher
 * benchmarks (no network at all). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <listboss/plugin.h>

typedef struct sandbox {
    const lb_core_api *api;
} sandbox;

static const lb_config_decl config[] = {
    {NULL, 0, NULL, NULL},
};

static const lb_param_decl list_params[] = {
    {"list", LB_PARAM_REQUIRED, "lists", "list name (any: the sandbox has no fixed lists)"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl tag_params[] = {
    {"tag", LB_PARAM_REQUIRED, "tags", "tag name"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl sequence_params[] = {
    {"sequence", LB_PARAM_REQUIRED, "sequences", "sequence name"},
    {NULL, 0, NULL, NULL},
};
static const lb_param_decl no_params[] = {
    {NULL, 0, NULL, NULL},
};

static const lb_action_decl actions[] = {
    {"contact_upsert", "Create or update the contact", no_params, NULL, NULL},
    {"list_add", "Add to list", list_params, NULL, NULL},
    {"list_remove", "Remove from list", list_params, "list_add", "list"},
    {"tag_add", "Add tag", tag_params, NULL, NULL},
    {"tag_remove", "Remove tag", tag_params, NULL, NULL},
    {"sequence_add", "Add to sequence", sequence_params, NULL, NULL},
    {"sequence_remove", "Remove from sequence", sequence_params, "sequence_add", "sequence"},
    {NULL, NULL, NULL, NULL, NULL},
};

static int sandbox_init(const lb_core_api *api, const lb_settings *settings, void **instance, char *err,
                        size_t errlen)
{
    (void)settings;
    sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sb->api = api;
    *instance = sb;
    return 0;
}

static void finish(sandbox *sb, lb_call *call, const char *email, const char *reason)
{
    lb_result r = {.status = LB_OK};
    if (email)
        snprintf(r.provider_ref, sizeof r.provider_ref, "sandbox:%s", email);
    snprintf(r.reason, sizeof r.reason, "%s", reason);
    sb->api->complete(call, &r);
}

static void sandbox_verify(void *instance, lb_call *call) { finish(instance, call, NULL, "sandbox: always ok"); }

static void sandbox_list_resources(void *instance, lb_call *call, const char *kind)
{
    sandbox *sb = instance;
    (void)kind;
    finish(sb, call, NULL, "sandbox: any name is accepted");
}

static void sandbox_submit(void *instance, lb_call *call, const lb_job *job)
{
    char reason[200];
    const char *value = job->params && job->params[0] && job->params[1] ? job->params[1] : "";
    snprintf(reason, sizeof reason, "sandbox: %s %s", job->action, value);
    finish(instance, call, job->email, reason);
}

static void sandbox_cancel(void *instance, lb_call *call)
{
    (void)instance;
    (void)call; /* every call completes inside submit: nothing is ever in flight */
}

static void sandbox_destroy(void *instance) { free(instance); }

LB_PLUGIN_REGISTER(.name = "sandbox", .display_name = "Sandbox (local, no provider)", .version = "1.0",
                   .config = config, .actions = actions, .can_send_billet = 1, .default_rate_per_s = 0,
                   .default_burst = 0, .default_concurrency = 64, .init = sandbox_init, .verify = sandbox_verify,
                   .list_resources = sandbox_list_resources, .submit = sandbox_submit, .cancel = sandbox_cancel,
                   .destroy = sandbox_destroy)
