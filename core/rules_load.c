/* rules_load.c: reading modules from rules/ and custom rules from custom_dir
 * or inline source, into the rule set's Lua state. */
#include "rules_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LB_CUSTOM_NAME_MAX 128

/* Reads a regular file (no symlink followed at the last step) of at most
 * max bytes. label names it in errors. */
static int read_file_at(int dirfd, const char *name, size_t max, const char *label, char **out, size_t *len,
                        lb_error *err)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return lb_fail(err, label, "%s: cannot open: %s", label, strerror(errno));
    struct stat st;
    int rc = 0;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = lb_fail(err, label, "%s: not a regular file", label);
    else if ((size_t)st.st_size > max)
        rc = lb_fail(err, label, "%s: larger than %zu bytes", label, max);
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        rc = lb_fail(err, label, "out of memory");
    size_t got = 0;
    while (rc == 0 && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = lb_fail(err, label, "%s: read failed: %s", label, n < 0 ? strerror(errno) : "short read");
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

static int is_lua_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".lua") == 0;
}

/* Compiles, runs and validates one module file into m. */
static int load_module(lb_rules *r, int dirfd, const char *sub, const char *name, lb_mod_kind kind, lb_module *m,
                       lb_error *err)
{
    char label[300];
    snprintf(label, sizeof label, "%s/%s", sub, name);
    char *src = NULL;
    size_t len = 0;
    if (read_file_at(dirfd, name, r->lim.max_source, label, &src, &len, err) != 0)
        return -1;
    int rc = lb_sb_run_chunk(&r->sb, src, len, label, err);
    free(src);
    if (rc != 0)
        return -1;
    return lb_module_build(&r->sb, kind, label, m, err);
}

static int append_module(lb_rules *r, lb_mod_kind kind, lb_module *m, lb_error *err)
{
    lb_module **arr = kind == LB_MOD_TRIGGER ? &r->triggers : &r->conditions;
    size_t *n = kind == LB_MOD_TRIGGER ? &r->n_triggers : &r->n_conditions;
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*arr)[i].id, m->id) == 0)
            return lb_fail(err, m->file, "%s: id '%s' is already used by %s", m->file, m->id, (*arr)[i].file);
    lb_module *grown = realloc(*arr, (*n + 1) * sizeof **arr);
    if (!grown)
        return lb_fail(err, m->file, "out of memory");
    grown[(*n)++] = *m;
    *arr = grown;
    return 0;
}

static int load_one(lb_rules *r, int dirfd, const char *sub, const char *name, lb_mod_kind kind, lb_error *err)
{
    lb_module m;
    if (load_module(r, dirfd, sub, name, kind, &m, err) != 0)
        return -1;
    if (append_module(r, kind, &m, err) != 0) {
        lb_module_clear(r->sb.L, &m);
        return -1;
    }
    return 0;
}

int lb_rules_load_dir(lb_rules *r, const char *rules_dir, lb_mod_kind kind, lb_error *err)
{
    const char *sub = kind == LB_MOD_TRIGGER ? "triggers" : "conditions";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", rules_dir, sub);
    int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return lb_fail(err, sub, "%s: cannot open directory: %s", path, strerror(errno));
    struct dirent **names = NULL;
    int n = scandirat(dirfd, ".", &names, is_lua_file, alphasort);
    int rc = n < 0 ? lb_fail(err, sub, "%s: cannot list: %s", path, strerror(errno)) : 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            rc = load_one(r, dirfd, sub, names[i]->d_name, kind, err);
        free(names[i]);
    }
    free(names);
    close(dirfd);
    return rc;
}

lb_module *lb_rules_find(lb_rules *r, lb_mod_kind kind, const char *id)
{
    lb_module *arr = kind == LB_MOD_TRIGGER ? r->triggers : r->conditions;
    size_t n = kind == LB_MOD_TRIGGER ? r->n_triggers : r->n_conditions;
    for (size_t i = 0; id && i < n; i++)
        if (strcmp(arr[i].id, id) == 0)
            return &arr[i];
    return NULL;
}

/* ---- custom rules ---------------------------------------------------------------- */

/* A plain file name inside custom_dir: no path, no hidden file, .lua. */
static bool valid_custom_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 5 || n > LB_CUSTOM_NAME_MAX || s[0] == '.' || strcmp(s + n - 4, ".lua") != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || s[i] == '-' || s[i] == '.' || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* FNV-1a: a short stable name for an inline rule in stats and errors. */
static unsigned long fnv1a(const char *s)
{
    unsigned long h = 2166136261UL;
    for (; *s; s++)
        h = ((h ^ (unsigned char)*s) * 16777619UL) & 0xffffffffUL;
    return h;
}

static char *custom_key(const char *file, const char *src)
{
    size_t n = strlen(file ? file : src) + 8;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s%s", file ? "file:" : "inline:", file ? file : src);
    return k;
}

/* Reads the source of a custom rule into *src (malloc'd). */
static int custom_source(lb_rules *r, const char *file, const char *inline_src, char **src, size_t *len,
                         lb_error *err)
{
    if (inline_src) {
        *len = strlen(inline_src);
        if (*len == 0 || *len > r->lim.max_source)
            return lb_fail(err, "custom_inline", "inline rule must be 1-%zu bytes", r->lim.max_source);
        *src = strdup(inline_src);
        return *src ? 0 : lb_fail(err, "custom_inline", "out of memory");
    }
    if (!r->custom_dir)
        return lb_fail(err, "custom_file", "no custom rules directory is configured");
    if (!valid_custom_name(file))
        return lb_fail(err, "custom_file", "'%.64s' must be a plain file name ending in .lua", file);
    int dirfd = open(r->custom_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return lb_fail(err, "custom_file", "cannot open the custom rules directory: %s", strerror(errno));
    char label[LB_CUSTOM_NAME_MAX + 16];
    snprintf(label, sizeof label, "custom/%s", file);
    int rc = read_file_at(dirfd, file, r->lim.max_source, label, src, len, err);
    close(dirfd);
    return rc;
}

static lb_module *compile_custom(lb_rules *r, const char *file, const char *inline_src, char *key, lb_error *err)
{
    char *src = NULL;
    size_t len = 0;
    char label[LB_CUSTOM_NAME_MAX + 16];
    if (inline_src)
        snprintf(label, sizeof label, "inline:%08lx", fnv1a(inline_src));
    else
        snprintf(label, sizeof label, "custom/%s", file);
    if (custom_source(r, file, inline_src, &src, &len, err) != 0)
        return NULL;
    int rc = lb_sb_run_chunk(&r->sb, src, len, label, err);
    free(src);
    lb_module *m = calloc(1, sizeof *m);
    if (rc != 0 || !m || lb_module_build(&r->sb, LB_MOD_CUSTOM, label, m, err) != 0) {
        if (rc == 0 && !m) {
            lua_pop(r->sb.L, 1);
            lb_fail(err, label, "out of memory");
        }
        free(m);
        return NULL;
    }
    m->id = strdup(label);
    m->key = key;
    return m;
}

lb_module *lb_custom_get(lb_rules *r, const char *file, const char *inline_src, json_object *reasons)
{
    const char *field = inline_src ? "custom_inline" : "custom_file";
    char *key = custom_key(file, inline_src);
    for (size_t i = 0; key && i < r->n_customs; i++) {
        if (strcmp(r->customs[i]->key, key) == 0) {
            free(key);
            return r->customs[i];
        }
    }
    if (r->n_customs >= r->lim.max_custom) {
        free(key);
        lb_reason_add(reasons, "too_many_custom", field, "this rule set already holds %u custom rules; reload to reset",
                      r->lim.max_custom);
        return NULL;
    }
    lb_error err = {{0}, {0}};
    lb_module **grown = key ? realloc(r->customs, (r->n_customs + 1) * sizeof *grown) : NULL;
    lb_module *m = grown ? (r->customs = grown, compile_custom(r, file, inline_src, key, &err)) : NULL;
    if (!m) {
        free(key);
        lb_reason_add(reasons, "custom_invalid", field, "%s", err.message[0] ? err.message : "out of memory");
        return NULL;
    }
    r->customs[r->n_customs++] = m;
    return m;
}
