/* plugin_loader.h: loading provider plugins (shared objects) and keeping
 * them in a registry by name.
 *
 * A plugin is refused, with the reason in an lb_error, when it cannot be
 * dlopen'd, lacks lb_plugin_entry, returns NULL, has a descriptor too short
 * to hold its own header, another ABI major, a descriptor smaller than the
 * 1.0 one, a missing or malformed name (must be
 * [a-z0-9_]+), no init/verify/submit/cancel/destroy, or no actions table.
 *
 * The api table handed to the plugin must outlive it: plugins keep the
 * pointer. Descriptor strings live inside the shared object, so unload a
 * plugin only after every instance of it has been destroyed. */
#ifndef LB_PLUGIN_LOADER_H
#define LB_PLUGIN_LOADER_H

#include <stddef.h>

#include <listboss/plugin.h>

#include "error.h"

/* Sanitizer builds keep plugins mapped so that leak reports can still name
 * functions inside them. */
#if defined(__SANITIZE_ADDRESS__) && !defined(LB_NO_DLCLOSE)
#define LB_NO_DLCLOSE 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(LB_NO_DLCLOSE)
#define LB_NO_DLCLOSE 1
#endif
#endif

/* The members every ABI version starts with (struct_size, abi_major,
 * abi_minor): a descriptor declaring less has no version to read. */
#define LB_PLUGIN_HEADER_SIZE (offsetof(lb_plugin, abi_minor) + sizeof(uint16_t))

/* The size of the ABI 1.0 descriptor: a plugin declaring less is corrupt. */
#define LB_PLUGIN_SIZE_1_0 (offsetof(lb_plugin, destroy) + sizeof(void (*)(void *)))

typedef struct lb_loaded_plugin {
    lb_plugin desc; /* our copy: min(struct_size, sizeof ours), zero-filled past it */
    void *handle;   /* from dlopen */
    char *path;
} lb_loaded_plugin;

/* Loads one plugin file. Returns it (free with lb_plugin_unload), or NULL with
 * err->field = path and err->message saying why, including the versions found
 * when the plugin got as far as returning a descriptor. */
lb_loaded_plugin *lb_plugin_load(const char *path, const lb_core_api *api, lb_error *err);
void lb_plugin_unload(lb_loaded_plugin *p);

/* Checks a descriptor as the loader does (exposed for tests). 0 or -1. */
int lb_plugin_check(const lb_plugin *desc, lb_error *err);

/* ---- registry ------------------------------------------------------------- */

typedef struct lb_plugin_registry lb_plugin_registry;

lb_plugin_registry *lb_registry_new(void);
/* Unloads every plugin. */
void lb_registry_free(lb_plugin_registry *r);
/* Loads every *.so in dir, in name order. A refused file (a load error or a
 * name already taken) is logged with its path, versions and reason, and the
 * others still load. Returns how many loaded, or -1 (err set) when dir
 * cannot be read. */
int lb_registry_load_dir(lb_plugin_registry *r, const char *dir, const lb_core_api *api, lb_error *err);
/* Takes ownership of p: adds it, or refuses a duplicate name (p is then
 * unloaded and err says which path has the name). 0 or -1. */
int lb_registry_add(lb_plugin_registry *r, lb_loaded_plugin *p, lb_error *err);
const lb_loaded_plugin *lb_registry_find(const lb_plugin_registry *r, const char *name);
size_t lb_registry_count(const lb_plugin_registry *r);
const lb_loaded_plugin *lb_registry_at(const lb_plugin_registry *r, size_t i);

#endif
