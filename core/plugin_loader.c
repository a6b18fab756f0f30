/* plugin_loader.c: dlopen, the entry-point handshake and the descriptor
 * checks, then a by-name registry. Every refusal says why in words an
 * operator can act on ("built for plugin ABI 2.0, this core speaks 1.0"),
 * because a plugin that silently fails to load looks like a config typo. */
#include "plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "limiter.h"
#include "log.h"

#define NAME_MAX_LEN 64
#define VERSION_MAX_LEN 64
#define DECL_MAX 1024 /* entries in one decl table: past this it has no terminator */

/* " [plugin mailchimp 1.2, ABI 1.0; core ABI 1.0]": the versions found, for
 * every refusal after the plugin handed back a descriptor. */
static void versions_found(const lb_plugin *d, char *buf, size_t cap)
{
    snprintf(buf, cap, " [plugin %.64s %.32s, ABI %u.%u; core ABI %d.%d]", d->name ? d->name : "(no name)",
             d->version ? d->version : "(no version)", (unsigned)d->abi_major, (unsigned)d->abi_minor,
             LB_ABI_MAJOR, LB_ABI_MINOR);
}

static bool valid_name(const char *name)
{
    /* strnlen: a descriptor's strings are the plugin's, not known to end */
    size_t n = name ? strnlen(name, NAME_MAX_LEN + 1) : 0;
    return n > 0 && n <= NAME_MAX_LEN && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static int check_callbacks(const lb_plugin *d, lb_error *err)
{
    const char *missing = !d->init      ? "init"
                          : !d->verify  ? "verify"
                          : !d->submit  ? "submit"
                          : !d->cancel  ? "cancel"
                          : !d->destroy ? "destroy"
                                        : NULL;
    return missing ? lb_fail(err, NULL, "the descriptor has no %s callback", missing) : 0;
}

/* An action name, parameter name or config key: 1 to NAME_MAX_LEN bytes,
 * read no further than that. */
static bool decl_text_ok(const char *s)
{
    size_t n = strnlen(s, NAME_MAX_LEN + 1);
    return n > 0 && n <= NAME_MAX_LEN;
}

static int check_params(const lb_action_decl *a, size_t k, lb_error *err)
{
    size_t i = 0;
    for (; a->params != NULL && i < DECL_MAX && a->params[i].name != NULL; i++)
        if (!decl_text_ok(a->params[i].name))
            return lb_fail(err, NULL, "action %zu: parameter %zu's name is empty or longer than %d bytes", k, i,
                           NAME_MAX_LEN);
    if (i == DECL_MAX)
        return lb_fail(err, NULL, "action %zu: the params table has no { NULL } terminator", k);
    return 0;
}

/* Config keys, action and parameter names must be present and short, and
 * the tables terminated within reason; an unterminated table would be read
 * past its end later. */
static int check_tables(const lb_plugin *d, lb_error *err)
{
    if (d->actions == NULL)
        return lb_fail(err, NULL, "the descriptor has no actions table");
    size_t i = 0;
    for (; i < DECL_MAX && d->actions[i].name != NULL; i++) {
        if (!decl_text_ok(d->actions[i].name))
            return lb_fail(err, NULL, "action %zu's name is empty or longer than %d bytes", i, NAME_MAX_LEN);
        if (check_params(&d->actions[i], i, err))
            return -1;
    }
    if (i == DECL_MAX)
        return lb_fail(err, NULL, "the actions table has no { NULL } terminator");
    for (i = 0; d->config != NULL && i < DECL_MAX && d->config[i].key != NULL; i++)
        if (!decl_text_ok(d->config[i].key))
            return lb_fail(err, NULL, "config key %zu is empty or longer than %d bytes", i, NAME_MAX_LEN);
    if (i == DECL_MAX)
        return lb_fail(err, NULL, "the config table has no { NULL } terminator");
    return 0;
}

/* The default limits meet the config's rules for the same limits, so no
 * plugin hands the limiter a rate the config would refuse (NaN, negative,
 * infinite, or so slow its wait overflowed). 0 keeps its meaning: unlimited
 * (docs/dispatcher.md); any default_burst is usable, 0 being one second's
 * worth. */
static int check_default_limits(const lb_plugin *d, lb_error *err)
{
    if (d->default_rate_per_s != 0 && !lb_rate_in_range(d->default_rate_per_s))
        return lb_fail(err, NULL,
                       "default_rate_per_s %g is neither 0 (unlimited) nor a finite number of requests per second "
                       "of at least 1/86400 (one a day)",
                       d->default_rate_per_s);
    if (d->default_concurrency > LB_CONCURRENCY_MAX)
        return lb_fail(err, NULL, "default_concurrency %u is above %u (0 means unlimited)",
                       (unsigned)d->default_concurrency, LB_CONCURRENCY_MAX);
    return 0;
}

int lb_plugin_check(const lb_plugin *d, lb_error *err)
{
    /* first: below the header, abi_major is not the plugin's to compare */
    if (d->struct_size < LB_PLUGIN_HEADER_SIZE)
        return lb_fail(err, NULL,
                       "descriptor struct_size %u is smaller than the ABI header (%zu bytes: struct_size, abi_major, "
                       "abi_minor); LB_PLUGIN_REGISTER sets it to sizeof(lb_plugin)",
                       (unsigned)d->struct_size, (size_t)LB_PLUGIN_HEADER_SIZE);
    if (d->abi_major != LB_ABI_MAJOR)
        return lb_fail(err, NULL, "built for plugin ABI %u.%u, this core speaks %d.%d: rebuild it against this listboss",
                       (unsigned)d->abi_major, (unsigned)d->abi_minor, LB_ABI_MAJOR, LB_ABI_MINOR);
    if (d->struct_size < LB_PLUGIN_SIZE_1_0)
        return lb_fail(err, NULL, "descriptor is %u bytes, smaller than the ABI 1.0 descriptor (%zu bytes)",
                       (unsigned)d->struct_size, (size_t)LB_PLUGIN_SIZE_1_0);
    if (d->name == NULL)
        return lb_fail(err, NULL, "the descriptor has no name");
    if (!valid_name(d->name))
        return lb_fail(err, NULL, "name \"%.64s\" is not 1-%d characters of [a-z0-9_]", d->name, NAME_MAX_LEN);
    if (d->version != NULL && strnlen(d->version, VERSION_MAX_LEN + 1) > VERSION_MAX_LEN)
        return lb_fail(err, NULL, "the version is longer than %d bytes", VERSION_MAX_LEN);
    if (check_callbacks(d, err) != 0 || check_default_limits(d, err) != 0)
        return -1;
    return check_tables(d, err);
}

static void close_handle(void *handle)
{
#ifdef LB_NO_DLCLOSE
    (void)handle;
#else
    if (handle != NULL)
        dlclose(handle);
#endif
}

/* Turns err's message into "<message> [versions]" with field = path. */
static void refuse(lb_error *err, const char *path, const lb_plugin *d)
{
    if (err == NULL)
        return;
    char versions[160] = "";
    if (d != NULL)
        versions_found(d, versions, sizeof versions);
    char msg[sizeof err->message];
    snprintf(msg, sizeof msg, "%s", err->message);
    lb_fail(err, path, "%s%s", msg, versions);
}

/* dlopen + dlsym + the entry call; NULL with err set on any failure. */
static const lb_plugin *open_entry(const char *path, const lb_core_api *api, void **handle, lb_error *err)
{
    /* dlopen opens what it is given: a FIFO named *.so would block the
     * daemon's start for good, before it listens */
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        lb_fail(err, path, "cannot load: not a regular file");
        return NULL;
    }
    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (*handle == NULL) {
        const char *why = dlerror();
        lb_fail(err, path, "cannot load: %s", why ? why : "unknown dlopen error");
        return NULL;
    }
    /* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
    lb_plugin_entry_fn entry;
    void *sym = dlsym(*handle, "lb_plugin_entry");
    memcpy(&entry, &sym, sizeof entry);
    if (sym == NULL) {
        lb_fail(err, path, "no lb_plugin_entry symbol: not a listboss plugin (or built without LB_PLUGIN_REGISTER)");
        return NULL;
    }
    const lb_plugin *d = entry(LB_ABI_MAJOR, api);
    if (d == NULL)
        lb_fail(err, path, "lb_plugin_entry returned NULL: the plugin refused core ABI %d.%d", LB_ABI_MAJOR,
                LB_ABI_MINOR);
    return d;
}

lb_loaded_plugin *lb_plugin_load(const char *path, const lb_core_api *api, lb_error *err)
{
    void *handle = NULL;
    const lb_plugin *d = open_entry(path, api, &handle, err);
    lb_loaded_plugin *p = d ? calloc(1, sizeof *p) : NULL;
    if (d != NULL && p == NULL)
        lb_fail(err, path, "out of memory");
    if (p == NULL) {
        close_handle(handle);
        return NULL;
    }
    /* A newer plugin's descriptor is longer (we ignore the tail); an older
     * one is shorter (calloc left our extra members zero). struct_size is
     * read whole (n was computed from it) even when it claims less than its
     * own 4 bytes, so the check sees the value the plugin declared. */
    size_t n = d->struct_size < sizeof p->desc ? d->struct_size : sizeof p->desc;
    memcpy(&p->desc, d, n);
    p->desc.struct_size = d->struct_size;
    p->handle = handle;
    p->path = strdup(path);
    if (p->path == NULL || lb_plugin_check(&p->desc, err) != 0) {
        if (p->path == NULL)
            lb_fail(err, path, "out of memory");
        /* versions not copied are zeros, not versions: leave them out */
        refuse(err, path, p->desc.struct_size >= LB_PLUGIN_HEADER_SIZE ? &p->desc : NULL);
        lb_plugin_unload(p);
        return NULL;
    }
    return p;
}

void lb_plugin_unload(lb_loaded_plugin *p)
{
    if (p == NULL)
        return;
    close_handle(p->handle);
    free(p->path);
    free(p);
}

/* ---- registry ------------------------------------------------------------- */

struct lb_plugin_registry {
    lb_loaded_plugin **items;
    size_t count, cap;
};

lb_plugin_registry *lb_registry_new(void) { return calloc(1, sizeof(lb_plugin_registry)); }

void lb_registry_free(lb_plugin_registry *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++)
        lb_plugin_unload(r->items[i]);
    free(r->items);
    free(r);
}

const lb_loaded_plugin *lb_registry_find(const lb_plugin_registry *r, const char *name)
{
    for (size_t i = 0; r != NULL && name != NULL && i < r->count; i++)
        if (strcmp(r->items[i]->desc.name, name) == 0)
            return r->items[i];
    return NULL;
}

size_t lb_registry_count(const lb_plugin_registry *r) { return r ? r->count : 0; }

const lb_loaded_plugin *lb_registry_at(const lb_plugin_registry *r, size_t i)
{
    return r != NULL && i < r->count ? r->items[i] : NULL;
}

int lb_registry_add(lb_plugin_registry *r, lb_loaded_plugin *p, lb_error *err)
{
    const lb_loaded_plugin *taken = lb_registry_find(r, p->desc.name);
    if (taken != NULL) {
        lb_fail(err, p->path, "name \"%s\" (version %.32s) is already taken by %.200s (version %.32s)", p->desc.name,
                p->desc.version ? p->desc.version : "?", taken->path, taken->desc.version ? taken->desc.version : "?");
        lb_plugin_unload(p);
        return -1;
    }
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        lb_loaded_plugin **items = realloc(r->items, cap * sizeof *items);
        if (items == NULL) {
            lb_plugin_unload(p);
            return lb_fail(err, NULL, "out of memory");
        }
        r->items = items;
        r->cap = cap;
    }
    r->items[r->count++] = p;
    return 0;
}

static int is_so(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 3 && strcmp(e->d_name + n - 3, ".so") == 0;
}

/* Loads and registers one file, logging the outcome either way. */
static bool load_one(lb_plugin_registry *r, const char *path, const lb_core_api *api)
{
    lb_error err;
    lb_error_clear(&err);
    lb_loaded_plugin *p = lb_plugin_load(path, api, &err);
    if (p != NULL) {
        char abi[32];
        snprintf(abi, sizeof abi, "%u.%u", (unsigned)p->desc.abi_major, (unsigned)p->desc.abi_minor);
        const char *name = p->desc.name, *version = p->desc.version ? p->desc.version : "";
        if (lb_registry_add(r, p, &err) == 0) {
            lb_log(LB_LOG_INFO, "plugin loaded", "plugin", name, "version", version, "abi", abi, "path", path, NULL);
            return true;
        }
    }
    lb_log(LB_LOG_WARN, "plugin refused", "path", path, "reason", err.message, NULL);
    return false;
}

int lb_registry_load_dir(lb_plugin_registry *r, const char *dir, const lb_core_api *api, lb_error *err)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_so, alphasort);
    if (n < 0)
        return lb_fail(err, dir, "cannot read the plugin folder: %m");
    int loaded = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name) < (int)sizeof path)
            loaded += load_one(r, path, api) ? 1 : 0;
        free(names[i]);
    }
    free(names);
    return loaded;
}
