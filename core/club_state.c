/* club_state.c: a hash table of Club activity, and the inactivity scan. */
#include "club_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS ((int64_t)24 * 60 * 60 * 1000)

typedef struct lb_club_entry {
    char *account, *product_id, *lead_email;
    int64_t last_access_ms;
    double max_progress;
    int fired_days; /* the inactivity threshold already made for this login: 0, 15 or 30 */
    struct lb_club_entry *next;
} entry;

struct lb_club_state {
    entry **buckets;
    size_t n_buckets, n_entries;
};

static uint64_t hash3(const char *a, const char *b, const char *c)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    const char *parts[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0x1f) * 1099511628211ULL;
    }
    return h;
}

lb_club_state *lb_club_state_new(void)
{
    lb_club_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n_buckets = 1024;
    s->buckets = calloc(s->n_buckets, sizeof *s->buckets);
    if (!s->buckets) {
        free(s);
        return NULL;
    }
    return s;
}

static void entry_free(entry *e)
{
    free(e->account);
    free(e->product_id);
    free(e->lead_email);
    free(e);
}

void lb_club_state_free(lb_club_state *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_buckets; i++)
        for (entry *e = s->buckets[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    free(s->buckets);
    free(s);
}

static void grow(lb_club_state *s)
{
    size_t n = s->n_buckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->n_buckets; i++)
        for (entry *e = s->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t k = hash3(e->account, e->product_id, e->lead_email) % n;
            e->next = b[k];
            b[k] = e;
        }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
}

static entry *lookup(lb_club_state *s, const char *account, const char *product, const char *email, bool create)
{
    size_t k = hash3(account, product, email) % s->n_buckets;
    for (entry *e = s->buckets[k]; e; e = e->next)
        if (strcmp(e->lead_email, email) == 0 && strcmp(e->product_id, product) == 0 &&
            strcmp(e->account, account) == 0)
            return e;
    if (!create)
        return NULL;
    entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->account = strdup(account);
    e->product_id = strdup(product);
    e->lead_email = strdup(email);
    e->max_progress = -1;
    if (!e->account || !e->product_id || !e->lead_email) {
        entry_free(e);
        return NULL;
    }
    e->next = s->buckets[k];
    s->buckets[k] = e;
    if (++s->n_entries > s->n_buckets * 2)
        grow(s);
    return e;
}

static void view(const entry *e, lb_club_activity *out)
{
    *out = (lb_club_activity){.account = e->account, .product_id = e->product_id, .lead_email = e->lead_email,
                              .last_access_ms = e->last_access_ms, .max_progress = e->max_progress};
}

int lb_club_state_restore(lb_club_state *s, const lb_club_activity *row)
{
    entry *e = lookup(s, row->account, row->product_id, row->lead_email, true);
    if (!e)
        return -1;
    e->last_access_ms = row->last_access_ms;
    e->max_progress = row->max_progress;
    /* the scan may make a period's event again after a restart; its id makes
     * the store refuse it as a duplicate, so nothing runs twice */
    return 0;
}

static lb_club_change change_begin(const entry *e)
{
    return (lb_club_change){.last_access_ms = {e->last_access_ms}, .max_progress = {e->max_progress},
                            .fired_days = {e->fired_days}};
}

static lb_club_change change_end(lb_club_change c, entry *e)
{
    c.entry = e;
    c.last_access_ms[1] = e->last_access_ms;
    c.max_progress[1] = e->max_progress;
    c.fired_days[1] = e->fired_days;
    return c;
}

static const char *path_string(json_object *doc, const char *a, const char *b)
{
    json_object *o, *v;
    if (!json_object_object_get_ex(doc, a, &o) || !json_object_object_get_ex(o, b, &v))
        return NULL;
    return json_object_get_string(v);
}

static bool path_number(json_object *doc, const char *a, const char *b, double *out)
{
    json_object *o, *v;
    if (!json_object_object_get_ex(doc, a, &o) || !json_object_object_get_ex(o, b, &v) ||
        !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return false;
    *out = json_object_get_double(v);
    return true;
}

/* When the event says the student logged in, or NULL. */
static bool access_time(json_object *doc, const char *type, int64_t *at)
{
    double v;
    if (strcmp(type, "club.last_access") == 0 && path_number(doc, "club", "last_access_at", &v)) {
        *at = (int64_t)v;
        return true;
    }
    json_object *occurred;
    bool logged_in = strcmp(type, "club.first_access") == 0 || strcmp(type, "club.module_completed") == 0 ||
                     strcmp(type, "club.progress") == 0;
    if (logged_in && json_object_object_get_ex(doc, "occurred_at", &occurred)) {
        *at = json_object_get_int64(occurred);
        return *at > 0;
    }
    return false;
}

int lb_club_state_observe(lb_club_state *s, json_object *event, lb_club_activity *changed,
                          lb_club_change *change)
{
    json_object *t, *a;
    change->entry = NULL;
    if (!json_object_object_get_ex(event, "type", &t) || strncmp(json_object_get_string(t), "club.", 5) != 0 ||
        !json_object_object_get_ex(event, "account", &a))
        return 0;
    const char *type = json_object_get_string(t);
    const char *product = path_string(event, "product", "id");
    const char *email = path_string(event, "lead", "email");
    if (!product || !email)
        return 0;
    entry *e = lookup(s, json_object_get_string(a), product, email, true);
    if (!e)
        return 0;
    lb_club_change before = change_begin(e);
    bool dirty = false;
    double progress;
    if (strcmp(type, "club.progress") == 0 && path_number(event, "club", "progress", &progress)) {
        json_object *club;
        if (e->max_progress >= 0 && json_object_object_get_ex(event, "club", &club))
            json_object_object_add(club, "previous_progress", json_object_new_double(e->max_progress));
        if (progress > e->max_progress) {
            e->max_progress = progress;
            dirty = true;
        }
    }
    int64_t at;
    if (access_time(event, type, &at) && at > e->last_access_ms) {
        e->last_access_ms = at;
        e->fired_days = 0; /* a new login starts a new inactivity period */
        dirty = true;
    }
    if (dirty) {
        view(e, changed);
        *change = change_end(before, e);
    }
    return dirty;
}

void lb_club_state_scan(lb_club_state *s, int64_t now_ms, lb_club_inactive_fn make, void *ud)
{
    for (size_t i = 0; i < s->n_buckets; i++)
        for (entry *e = s->buckets[i]; e; e = e->next) {
            if (e->last_access_ms <= 0)
                continue;
            int64_t days = (now_ms - e->last_access_ms) / DAY_MS;
            int threshold = days >= 30 ? 30 : days >= 15 ? 15 : 0;
            if (threshold == 0 || threshold <= e->fired_days)
                continue;
            lb_club_change change = change_begin(e);
            e->fired_days = threshold;
            change = change_end(change, e);
            lb_club_activity a;
            view(e, &a);
            make(ud, &a, (int)days, &change);
        }
}

bool lb_club_change_undo(const lb_club_change *c)
{
    entry *e = c->entry;
    if (!e || e->last_access_ms != c->last_access_ms[1] || e->max_progress != c->max_progress[1] ||
        e->fired_days != c->fired_days[1])
        return false; /* changed since: by a later event, stored or still to be taken back */
    e->last_access_ms = c->last_access_ms[0];
    e->max_progress = c->max_progress[0];
    e->fired_days = c->fired_days[0];
    return true;
}

json_object *lb_club_inactive_event(const lb_club_activity *a, int days, int64_t now_ms)
{
    char id[512];
    int threshold = days >= 30 ? 30 : 15;
    /* one id per lead, product, threshold and login: once per period */
    snprintf(id, sizeof id, "inactive:%d:%s:%s:%lld", threshold, a->product_id, a->lead_email,
             (long long)a->last_access_ms);
    json_object *doc = json_object_new_object(), *product = json_object_new_object(),
                *lead = json_object_new_object(), *club = json_object_new_object();
    json_object_object_add(doc, "id", json_object_new_string(id));
    json_object_object_add(doc, "source", json_object_new_string("scheduler"));
    json_object_object_add(doc, "source_type", json_object_new_string("CLUB_INACTIVE"));
    json_object_object_add(doc, "type", json_object_new_string("club.inactive"));
    json_object_object_add(doc, "occurred_at", json_object_new_int64(now_ms));
    json_object_object_add(doc, "test", json_object_new_boolean(0));
    json_object_object_add(doc, "ignored", json_object_new_boolean(0));
    json_object_object_add(product, "id", json_object_new_string(a->product_id));
    json_object_object_add(doc, "product", product);
    json_object_object_add(lead, "email", json_object_new_string(a->lead_email));
    json_object_object_add(doc, "lead", lead);
    json_object_object_add(club, "inactive_days", json_object_new_int(days));
    json_object_object_add(club, "last_access_at", json_object_new_int64(a->last_access_ms));
    json_object_object_add(doc, "club", club);
    return doc;
}
