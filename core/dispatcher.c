/* dispatcher.c: lanes, limits, retries and broken integrations on the loop;
 * see dispatcher.h and docs/dispatcher.md.
 *
 * Data: every job held is in its lane's FIFO (sorted by id). A lane whose
 * head is idle sits either in the timer heap (head not due yet) or in its
 * integration's ready list (due, waiting for the limiter, or for the
 * integration to be healthy). A pump moves due lanes from the heap to the
 * ready lists and starts heads while limiters admit them, then re-arms the
 * one timer at the earliest heap entry or limiter wake-up. */

#include "plugin_host.h"
#include "dispatcher.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "limiter.h"
#include "log.h"

#define HOUR_MS (3600 * 1000LL)

/* ---- a string-keyed hash map with intrusive nodes ---------------------------------- */

typedef struct map_node {
    char *key;
    uint64_t hash;
    struct map_node *next;
} map_node;

typedef struct strmap {
    map_node **slots;
    size_t nslots, count; /* nslots: 0 or a power of two */
} strmap;

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static map_node *map_find(const strmap *m, const char *key)
{
    if (m->nslots == 0)
        return NULL;
    uint64_t h = hash_key(key);
    for (map_node *n = m->slots[h & (m->nslots - 1)]; n != NULL; n = n->next)
        if (n->hash == h && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

static int map_grow(strmap *m)
{
    size_t ns = m->nslots ? m->nslots * 2 : 64;
    map_node **slots = calloc(ns, sizeof *slots);
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < m->nslots; i++) {
        map_node *n = m->slots[i];
        while (n != NULL) {
            map_node *next = n->next;
            size_t j = n->hash & (ns - 1);
            n->next = slots[j];
            slots[j] = n;
            n = next;
        }
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = ns;
    return 0;
}

/* n->key must be set. A failed grow only matters when there are no slots. */
static int map_insert(strmap *m, map_node *n)
{
    if (m->count >= m->nslots / 4 * 3 && map_grow(m) != 0 && m->nslots == 0)
        return -1;
    n->hash = hash_key(n->key);
    size_t j = n->hash & (m->nslots - 1);
    n->next = m->slots[j];
    m->slots[j] = n;
    m->count++;
    return 0;
}

static void map_remove(strmap *m, map_node *n)
{
    map_node **p = &m->slots[n->hash & (m->nslots - 1)];
    while (*p != NULL && *p != n)
        p = &(*p)->next;
    if (*p == n) {
        *p = n->next;
        m->count--;
    }
}

/* ---- types ---------------------------------------------------------------------------- */

typedef struct qjob {
    lb_outbox_job *job;
    struct qjob *prev, *next;
} qjob;

/* The running attempt of a lane's head: the plugin's view of the job and
 * what backs its strings (kept until the call reports). */
typedef struct run {
    lb_call *call;
    lb_job view;
    json_object *params, *lead;
    const char **param_list; /* "k", "v", ..., NULL: points into params */
    char *contact_ref;
    double started_ms; /* monotonic: when the call was submitted */
} run;

enum lane_state {
    LANE_IDLE,      /* in no list (transient, or empty) */
    LANE_WAITING,   /* in the heap: head not due yet */
    LANE_READY,     /* in its integration's ready list */
    LANE_RUNNING,   /* head's call in flight */
    LANE_RECORDING, /* head's outcome on its way to the store */
};

typedef struct integ integ;

typedef struct lane {
    map_node node; /* key: "<account>\x1f<integration>\x1f<lead>" */
    integ *integ;
    qjob *head, *tail;
    enum lane_state state;
    size_t heap_idx;
    int64_t due_ms;
    struct lane *rprev, *rnext;
    run run;
} lane;

struct integ {
    lb_dispatcher *d;
    char *account, *id;
    lb_integration *inst; /* NULL: not configured (yet): its jobs wait */
    bool attached_once;
    lb_limiter lim;
    lane *ready, *ready_tail;
    int64_t wake_ms; /* monotonic: when the limiter may admit again; 0 = not waiting */
    int auth_failures;
    int throttles; /* pauses in a row that the provider asked for without saying how long */
    double throttled_ms; /* monotonic: when the last of them began */
    bool broken;
    char reason[256];
    struct event *probe_timer;
    lb_call *probe;
    integ *next;
};

typedef struct ref_entry {
    map_node node; /* key: the lane's key */
    char *ref;
    struct ref_entry *older, *newer;
} ref_entry;

/* One outcome on its way to the store. Its strings are copies: the writer
 * thread reads them while the loop may already have freed the job. */
typedef struct pending {
    lb_job_outcome o;
    lane *lane;
    char *account, *integration, *lead, *reason, *provider_ref, *fact;
} pending;

typedef struct batch {
    lb_dispatcher *d; /* NULL once the dispatcher is gone: done only frees */
    pending **items;
    size_t n;
    lb_job_outcome *outcomes;
    struct event *retry;
    struct batch *prev, *next;
} batch;

typedef struct state_write {
    char *account, *integration, *reason;
} state_write;

struct lb_dispatcher {
    struct event_base *base;
    lb_dispatch_persist persist;
    lb_metrics *metrics;
    lb_dispatcher_options opts;
    lb_backoff backoff;
    lb_retry_caps caps;
    uint64_t rand_state;
    strmap lanes, refs;
    ref_entry *refs_oldest, *refs_newest;
    lane **heap;
    size_t heap_n, heap_cap;
    integ *integs;
    struct event *timer, *kick, *flush;
    pending **pending;
    size_t n_pending, cap_pending;
    batch *batches;
    json_tokener *tok; /* the jobs' params and lead, for the plugin's view */
    size_t n_jobs, n_running, n_recording;
    bool stopped;
    lb_dispatcher_stats counts;
};

/* next_attempt_at is stored and must mean the same after a restart: the
 * wall clock. Compared only with other wall-clock times. */
static int64_t wall_ms(const lb_dispatcher *d)
{
    return (int64_t)d->opts.clock(CLOCK_REALTIME, d->opts.clock_state);
}

/* The limiter's clock (bucket, pause, wake-ups), to the microsecond: a
 * wall-clock step back would stall the bucket for as long, a step forward
 * would end a provider's pause early. Never compared with a wall time. */
static double mono_ms(const lb_dispatcher *d) { return d->opts.clock(CLOCK_MONOTONIC, d->opts.clock_state); }

static double default_clock(clockid_t which, void *state)
{
    (void)state;
    return lb_clock_ms_fine(which);
}

static struct timeval ms_to_tv(int64_t ms)
{
    if (ms < 0)
        ms = 0;
    return (struct timeval){.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

static void kick(lb_dispatcher *d) { event_active(d->kick, EV_TIMEOUT, 0); }

static char *make_key(const char *account, const char *integration, const char *lead)
{
    size_t n = strlen(account) + strlen(integration) + strlen(lead) + 3;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "%s\x1f%s\x1f%s", account, integration, lead);
    return k;
}

/* ---- the timer heap (lanes by due time) ------------------------------------------------- */

static void heap_set(lb_dispatcher *d, size_t i, lane *l)
{
    d->heap[i] = l;
    l->heap_idx = i;
}

static void heap_up(lb_dispatcher *d, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (d->heap[p]->due_ms <= d->heap[i]->due_ms)
            return;
        lane *t = d->heap[p];
        heap_set(d, p, d->heap[i]);
        heap_set(d, i, t);
        i = p;
    }
}

static void heap_down(lb_dispatcher *d, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < d->heap_n && d->heap[c]->due_ms < d->heap[m]->due_ms)
            m = c;
        if (c + 1 < d->heap_n && d->heap[c + 1]->due_ms < d->heap[m]->due_ms)
            m = c + 1;
        if (m == i)
            return;
        lane *t = d->heap[m];
        heap_set(d, m, d->heap[i]);
        heap_set(d, i, t);
        i = m;
    }
}

static int heap_push(lb_dispatcher *d, lane *l)
{
    if (d->heap_n == d->heap_cap) {
        size_t cap = d->heap_cap ? d->heap_cap * 2 : 256;
        lane **grown = realloc(d->heap, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        d->heap = grown;
        d->heap_cap = cap;
    }
    heap_set(d, d->heap_n++, l);
    heap_up(d, d->heap_n - 1);
    return 0;
}

static void heap_remove(lb_dispatcher *d, lane *l)
{
    size_t i = l->heap_idx;
    lane *last = d->heap[--d->heap_n];
    if (i < d->heap_n) {
        heap_set(d, i, last);
        heap_up(d, i);
        heap_down(d, last->heap_idx);
    }
}

/* ---- lane scheduling ----------------------------------------------------------------- */

static void ready_push(integ *g, lane *l)
{
    l->rnext = NULL;
    l->rprev = g->ready_tail;
    if (g->ready_tail)
        g->ready_tail->rnext = l;
    else
        g->ready = l;
    g->ready_tail = l;
    l->state = LANE_READY;
}

static void ready_remove(integ *g, lane *l)
{
    if (l->rprev)
        l->rprev->rnext = l->rnext;
    else
        g->ready = l->rnext;
    if (l->rnext)
        l->rnext->rprev = l->rprev;
    else
        g->ready_tail = l->rprev;
    l->rprev = l->rnext = NULL;
    l->state = LANE_IDLE;
}

/* An idle lane with a head: wait for its time, or queue for its limiter. */
static void schedule_lane(lb_dispatcher *d, lane *l, int64_t now)
{
    int64_t due = l->head->job->next_attempt_at_ms;
    if (due > now) {
        l->due_ms = due;
        if (heap_push(d, l) == 0) {
            l->state = LANE_WAITING;
            return;
        }
        lb_log(LB_LOG_ERROR, "out of memory: job runs before its time", NULL);
    }
    ready_push(l->integ, l);
}

static void unschedule_lane(lb_dispatcher *d, lane *l)
{
    if (l->state == LANE_WAITING)
        heap_remove(d, l);
    else if (l->state == LANE_READY)
        ready_remove(l->integ, l);
    l->state = LANE_IDLE;
}

static lane *lane_get(lb_dispatcher *d, integ *g, const lb_outbox_job *job)
{
    char *key = make_key(job->account, job->integration, job->lead_email);
    if (key == NULL)
        return NULL;
    lane *l = (lane *)map_find(&d->lanes, key);
    if (l != NULL) {
        free(key);
        return l;
    }
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        free(key);
        return NULL;
    }
    l->node.key = key;
    l->integ = g;
    if (map_insert(&d->lanes, &l->node) != 0) {
        free(key);
        free(l);
        return NULL;
    }
    return l;
}

static void lane_free(lb_dispatcher *d, lane *l)
{
    map_remove(&d->lanes, &l->node);
    free(l->node.key);
    free(l);
}

/* Inserts in id order, never ahead of a head that is running or being
 * recorded. False for a job id already in the lane. */
/* A lane is sorted by job id and new jobs nearly always have the highest id,
 * so the walk from the tail stops at once; a duplicate (a job loaded again
 * from the store) is where the walk stops, so it costs nothing more. */
static bool lane_insert(lane *l, qjob *q)
{
    const qjob *floor = l->state == LANE_RUNNING || l->state == LANE_RECORDING ? l->head : NULL;
    qjob *after = l->tail;
    while (after != NULL && after != floor && after->job->id > q->job->id)
        after = after->prev;
    if (after && after->job->id == q->job->id)
        return false;
    q->prev = after;
    q->next = after ? after->next : l->head;
    if (q->next)
        q->next->prev = q;
    else
        l->tail = q;
    if (after)
        after->next = q;
    else
        l->head = q;
    return true;
}

static lb_outbox_job *lane_pop(lane *l)
{
    qjob *q = l->head;
    l->head = q->next;
    if (l->head)
        l->head->prev = NULL;
    else
        l->tail = NULL;
    lb_outbox_job *job = q->job;
    free(q);
    return job;
}

/* ---- the lead-state cache: provider contact ids ---------------------------------------- */

static const char *cached_ref(const lb_dispatcher *d, const char *key)
{
    const ref_entry *e = (const ref_entry *)map_find(&d->refs, key);
    return e ? e->ref : NULL;
}

static void ref_unlink(lb_dispatcher *d, ref_entry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        d->refs_oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        d->refs_newest = e->older;
    e->older = e->newer = NULL;
}

static void ref_link_newest(lb_dispatcher *d, ref_entry *e)
{
    e->older = d->refs_newest;
    if (d->refs_newest)
        d->refs_newest->newer = e;
    else
        d->refs_oldest = e;
    d->refs_newest = e;
}

static void ref_free(lb_dispatcher *d, ref_entry *e)
{
    ref_unlink(d, e);
    map_remove(&d->refs, &e->node);
    free(e->node.key);
    free(e->ref);
    free(e);
}

static void remember_ref(lb_dispatcher *d, const char *key, const char *ref)
{
    char *copy = strdup(ref);
    if (copy == NULL)
        return;
    ref_entry *e = (ref_entry *)map_find(&d->refs, key);
    if (e != NULL) {
        free(e->ref);
        e->ref = copy;
        ref_unlink(d, e);
        ref_link_newest(d, e);
        return;
    }
    if (d->refs.count >= d->opts.lead_cache_max && d->refs_oldest != NULL)
        ref_free(d, d->refs_oldest); /* a miss only costs the plugin a lookup */
    e = calloc(1, sizeof *e);
    if (e == NULL || (e->node.key = strdup(key)) == NULL || map_insert(&d->refs, &e->node) != 0) {
        if (e)
            free(e->node.key);
        free(e);
        free(copy);
        return;
    }
    e->ref = copy;
    ref_link_newest(d, e);
}

/* ---- integrations ------------------------------------------------------------------- */

static void on_probe_timer(evutil_socket_t fd, short what, void *arg);

static integ *integ_find(const lb_dispatcher *d, const char *account, const char *id)
{
    for (integ *g = d->integs; g != NULL; g = g->next)
        if (strcmp(g->account, account) == 0 && strcmp(g->id, id) == 0)
            return g;
    return NULL;
}

/* Found, or a placeholder whose jobs wait until the integration is added. */
static integ *integ_get(lb_dispatcher *d, const char *account, const char *id)
{
    integ *g = integ_find(d, account, id);
    if (g != NULL)
        return g;
    g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->d = d;
    g->account = strdup(account);
    g->id = strdup(id);
    g->probe_timer = evtimer_new(d->base, on_probe_timer, g);
    if (g->account == NULL || g->id == NULL || g->probe_timer == NULL) {
        free(g->account);
        free(g->id);
        if (g->probe_timer)
            event_free(g->probe_timer);
        free(g);
        return NULL;
    }
    g->next = d->integs;
    d->integs = g;
    return g;
}

/* ---- the plugin's view of a job ----------------------------------------------------- */

/* With the dispatcher's tokener: a new one per parse is a 2 KiB allocation,
 * and each attempt parses twice. */
static json_object *parse_object(json_tokener *tok, const char *text)
{
    json_object *o = NULL;
    if (text != NULL) {
        json_tokener_reset(tok);
        o = json_tokener_parse_ex(tok, text, -1);
        if (json_tokener_get_error(tok) != json_tokener_success) {
            json_object_put(o);
            o = NULL;
        }
    }
    if (o != NULL && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

static const char *lead_field(json_object *lead, const char *key)
{
    json_object *v;
    if (lead != NULL && json_object_object_get_ex(lead, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static void free_run(run *r)
{
    json_object_put(r->params);
    json_object_put(r->lead);
    free(r->param_list);
    free(r->contact_ref);
    memset(r, 0, sizeof *r);
}

static int build_view(run *r, json_tokener *tok, const lb_outbox_job *job, const char *contact_ref)
{
    r->params = parse_object(tok, job->params_json);
    r->lead = parse_object(tok, job->lead_json);
    size_t n = r->params ? (size_t)json_object_object_length(r->params) : 0;
    r->param_list = calloc(2 * n + 1, sizeof *r->param_list);
    r->contact_ref = contact_ref ? strdup(contact_ref) : NULL;
    if (r->param_list == NULL || (contact_ref != NULL && r->contact_ref == NULL))
        return -1;
    size_t i = 0;
    if (r->params != NULL) {
        json_object_object_foreach(r->params, key, val) {
            if (val == NULL)
                continue; /* a null would end the list early */
            r->param_list[i++] = key;
            r->param_list[i++] = json_object_get_string(val);
        }
    }
    r->view = (lb_job){
        .action = job->action,
        .idempotency_key = job->idempotency_key,
        .attempt = (uint32_t)job->attempts + 1,
        .email = job->lead_email,
        .name = lead_field(r->lead, "name"),
        .first_name = lead_field(r->lead, "first_name"),
        .last_name = lead_field(r->lead, "last_name"),
        .phone = lead_field(r->lead, "phone"),
        .contact_ref = r->contact_ref,
        .billet_url = lead_field(r->lead, "billet_url"),
        .params = r->param_list,
    };
    return 0;
}

static const char *param_value(const run *r, const char *name)
{
    for (size_t i = 0; r->param_list[i] != NULL; i += 2)
        if (strcmp(r->param_list[i], name) == 0)
            return r->param_list[i + 1];
    return NULL;
}

/* The parameter a later prerequisite check will look for: the one an action
 * that requires this one names (ConvertKit tag_remove -> tag_add's "tag"),
 * else the first declared parameter, else the first given. */
static const char *main_param(const lb_plugin *p, const run *r, const char *action)
{
    const char *v;
    for (const lb_action_decl *a = p->actions; a != NULL && a->name != NULL; a++)
        if (a->requires_action && a->requires_param && strcmp(a->requires_action, action) == 0 &&
            (v = param_value(r, a->requires_param)) != NULL)
            return v;
    for (const lb_action_decl *a = p->actions; a != NULL && a->name != NULL; a++)
        if (strcmp(a->name, action) == 0)
            for (const lb_param_decl *pd = a->params; pd != NULL && pd->name != NULL; pd++)
                if ((v = param_value(r, pd->name)) != NULL)
                    return v;
    return r->param_list[0] ? r->param_list[1] : NULL;
}

/* "<action>:<main param value>", or the action alone. */
static char *make_fact(const lb_plugin *p, const run *r, const char *action)
{
    const char *v = main_param(p, r, action);
    size_t n = strlen(action) + (v ? strlen(v) + 1 : 0) + 1;
    char *fact = malloc(n);
    if (fact != NULL)
        snprintf(fact, n, v ? "%s:%s" : "%s", action, v);
    return fact;
}

/* ---- deciding an outcome ------------------------------------------------------------- */

typedef struct verdict {
    lb_job_state state;
    int attempts;
    int64_t next_at;
    const char *outcome;
    char reason[320];
} verdict;

/* What is left of the integration's pause: measured on the pause's own
 * (monotonic) clock, so that it can be added to a wall-clock time. */
static int64_t pause_left_ms(const lb_dispatcher *d, const integ *g)
{
    double left = (double)g->lim.paused_until_ms - mono_ms(d);
    return left > 0 ? (int64_t)ceil(left) : 0;
}

/* The provider's own wait, at most max_pause_ms: a Retry-After of days (up
 * to 49 can be said) would otherwise hold every lead of the account and
 * dead-letter jobs past their age cap. After the cap one call asks again. */
static int64_t retry_after_capped(const lb_dispatcher *d, const lb_result *r)
{
    return r->retry_after_ms < d->opts.max_pause_ms ? (int64_t)r->retry_after_ms : d->opts.max_pause_ms;
}

static void decide_retry(const lb_dispatcher *d, const integ *g, const lb_outbox_job *job, const lb_call_report *rep,
                         int64_t now, verdict *v)
{
    const lb_result *r = &rep->result;
    bool limited = r->rate_limited != 0;
    v->attempts = job->attempts + (limited ? 0 : 1); /* a rate-limit answer is not the job's fault */
    v->outcome = rep->timed_out ? "timeout" : limited ? "rate_limited" : "retry";
    int64_t floor = retry_after_capped(d, r), paused = pause_left_ms(d, g);
    if (paused > floor)
        floor = paused; /* the provider's signal for the whole integration */
    v->next_at = now + lb_backoff_delay_ms(&d->backoff, limited ? 0 : (uint32_t)v->attempts, floor);
    if (!lb_retry_exhausted(&d->caps, v->attempts, job->created_at_ms, v->next_at)) {
        v->state = LB_JOB_READY;
        snprintf(v->reason, sizeof v->reason, "%s", r->reason);
        return;
    }
    v->state = LB_JOB_DEAD;
    v->outcome = "dead";
    v->next_at = 0;
    snprintf(v->reason, sizeof v->reason, "gave up after %d attempt%s: %s", v->attempts, v->attempts == 1 ? "" : "s",
             r->reason[0] ? r->reason : v->outcome);
}

static void decide(const lb_dispatcher *d, const integ *g, const lb_outbox_job *job, const lb_call_report *rep, int64_t now,
                   verdict *v)
{
    const lb_result *r = &rep->result;
    memset(v, 0, sizeof *v);
    switch (r->status) {
    case LB_OK:
    case LB_FAIL:
        v->state = r->status == LB_OK ? LB_JOB_DONE : LB_JOB_DEAD;
        v->attempts = job->attempts + 1;
        v->outcome = r->status == LB_OK ? "ok" : "fail";
        snprintf(v->reason, sizeof v->reason, "%s", r->reason);
        return;
    case LB_AUTH:
        /* Not the job's fault either: no attempt used, no age check. Once
         * the integration is broken the job simply waits. */
        v->state = LB_JOB_READY;
        v->attempts = job->attempts;
        v->outcome = "auth";
        v->next_at = now + lb_backoff_delay_ms(&d->backoff, (uint32_t)g->auth_failures, r->retry_after_ms);
        snprintf(v->reason, sizeof v->reason, "%s", r->reason);
        return;
    default: /* the host turned anything invalid into RETRY */
        decide_retry(d, g, job, rep, now, v);
        return;
    }
}

static void count_outcome(lb_dispatcher *d, const char *outcome)
{
    static const char *const names[] = {"ok", "retry", "rate_limited", "timeout", "fail", "auth", "dead"};
    uint64_t *slots[] = {&d->counts.ok,      &d->counts.retry, &d->counts.rate_limited, &d->counts.timeout,
                         &d->counts.fail,    &d->counts.auth,  &d->counts.dead};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(outcome, names[i]) == 0)
            (*slots[i])++;
}

static void free_pending(pending *p)
{
    free(p->account);
    free(p->integration);
    free(p->lead);
    free(p->reason);
    free(p->provider_ref);
    free(p->fact);
    free(p);
}

static pending *new_pending(lane *l, const verdict *v, const lb_call_report *rep, char *fact, int64_t now)
{
    const lb_outbox_job *job = l->head->job;
    pending *p = calloc(1, sizeof *p);
    if (p == NULL) {
        free(fact);
        return NULL;
    }
    p->lane = l;
    p->fact = fact;
    p->account = strdup(job->account);
    p->integration = strdup(job->integration);
    p->lead = strdup(job->lead_email);
    p->reason = strdup(v->reason);
    const char *ref = rep->result.provider_ref;
    p->provider_ref = ref[0] ? strdup(ref) : NULL;
    if (!p->account || !p->integration || !p->lead || !p->reason || (ref[0] && !p->provider_ref)) {
        free_pending(p);
        return NULL;
    }
    p->o = (lb_job_outcome){
        .job_id = job->id, .new_state = v->state, .attempts = v->attempts, .next_attempt_at_ms = v->next_at,
        .at_ms = now, .http_status = rep->result.http_status, .outcome = v->outcome, .reason = p->reason,
        .provider_ref = p->provider_ref, .fact = p->fact, .account = p->account, .integration = p->integration,
        .lead_email = p->lead,
    };
    return p;
}

static void log_outcome(const pending *p)
{
    bool dead = p->o.new_state == LB_JOB_DEAD;
    if (!lb_log_enabled(dead ? LB_LOG_WARN : LB_LOG_DEBUG))
        return; /* every attempt passes here: format only what is written */
    char id[24], attempts[16], status[16];
    snprintf(id, sizeof id, "%lld", (long long)p->o.job_id);
    snprintf(attempts, sizeof attempts, "%d", p->o.attempts);
    snprintf(status, sizeof status, "%d", p->o.http_status);
    lb_log(dead ? LB_LOG_WARN : LB_LOG_DEBUG, dead ? "job dead-lettered" : "job attempt", "job", id, "account",
           p->account, "integration", p->integration, "outcome", p->o.outcome, "attempts", attempts, "http_status",
           status, "reason", p->reason, NULL);
}

/* ---- writing outcomes --------------------------------------------------------------- */

static void on_batch_done(void *ctx, int rc, const lb_error *err);
static void on_batch_retry(evutil_socket_t fd, short what, void *arg);

static void queue_pending(lb_dispatcher *d, pending *p)
{
    if (d->n_pending == d->cap_pending) {
        size_t cap = d->cap_pending ? d->cap_pending * 2 : 64;
        pending **grown = realloc(d->pending, cap * sizeof *grown);
        if (grown == NULL) {
            lb_log(LB_LOG_ERROR, "out of memory: outcome lost, the job will run again", NULL);
            p->lane->state = LANE_IDLE;
            schedule_lane(d, p->lane, wall_ms(d));
            free_pending(p);
            return;
        }
        d->pending = grown;
        d->cap_pending = cap;
    }
    d->pending[d->n_pending++] = p;
    d->n_recording++;
    event_active(d->flush, EV_TIMEOUT, 0); /* every outcome of this turn goes in one batch */
}

static void free_batch(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free_pending(b->items[i]);
    free(b->items);
    free(b->outcomes);
    if (b->retry)
        event_free(b->retry);
    free(b);
}

static void unlink_batch(lb_dispatcher *d, batch *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        d->batches = b->next;
    if (b->next)
        b->next->prev = b->prev;
}

static void submit_batch(batch *b)
{
    lb_dispatcher *d = b->d;
    d->persist.record_outcomes(d->persist.ud, b->outcomes, b->n, on_batch_done, b);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lb_dispatcher *d = arg;
    if (d->n_pending == 0)
        return;
    batch *b = calloc(1, sizeof *b);
    lb_job_outcome *outcomes = calloc(d->n_pending, sizeof *outcomes);
    /* The retry timer is made now, while a failure can still leave the
     * outcomes pending: made when a write fails, a failure to make it would
     * leave the batch's lanes blocked with nothing to write it again. */
    struct event *retry = b ? evtimer_new(d->base, on_batch_retry, b) : NULL;
    if (b == NULL || outcomes == NULL || retry == NULL) {
        free(b);
        free(outcomes);
        if (retry)
            event_free(retry);
        struct timeval tv = ms_to_tv(d->opts.store_retry_ms);
        evtimer_add(d->flush, &tv); /* the outcomes stay pending; try again */
        return;
    }
    for (size_t i = 0; i < d->n_pending; i++)
        outcomes[i] = d->pending[i]->o;
    b->d = d;
    b->retry = retry;
    b->items = d->pending;
    b->n = d->n_pending;
    b->outcomes = outcomes;
    d->pending = NULL;
    d->n_pending = d->cap_pending = 0;
    b->next = d->batches;
    if (d->batches)
        d->batches->prev = b;
    d->batches = b;
    submit_batch(b);
}

/* The outcome is committed: the job's lane may move on. */
static void apply(lb_dispatcher *d, pending *p, int64_t now)
{
    lane *l = p->lane;
    d->n_recording--;
    if (p->o.provider_ref != NULL && p->o.new_state == LB_JOB_DONE)
        remember_ref(d, l->node.key, p->o.provider_ref); /* as the store's lead state: successes only */
    if (p->o.new_state != LB_JOB_READY) {
        lb_job_free(lane_pop(l));
        d->n_jobs--;
    } else {
        lb_outbox_job *job = l->head->job;
        job->attempts = p->o.attempts;
        job->next_attempt_at_ms = p->o.next_attempt_at_ms;
        job->state = LB_JOB_READY;
    }
    l->state = LANE_IDLE;
    if (l->head != NULL)
        schedule_lane(d, l, now);
    else
        lane_free(d, l);
}

static void on_batch_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    submit_batch(arg);
}

static void on_batch_done(void *ctx, int rc, const lb_error *err)
{
    batch *b = ctx;
    lb_dispatcher *d = b->d;
    if (d == NULL) {
        free_batch(b);
        return;
    }
    if (rc != 0) {
        /* The lanes stay blocked: running their next job before this
         * outcome is stored could reorder them after a crash. */
        lb_log(LB_LOG_ERROR, "recording job outcomes failed; retrying", "error", err ? err->message : "", NULL);
        if (d->metrics)
            d->metrics->store_errors++;
        struct timeval tv = ms_to_tv(d->opts.store_retry_ms);
        evtimer_add(b->retry, &tv);
        return;
    }
    unlink_batch(d, b);
    int64_t now = wall_ms(d);
    for (size_t i = 0; i < b->n; i++)
        apply(d, b->items[i], now);
    free_batch(b);
    kick(d);
}

/* ---- broken integrations ------------------------------------------------------------ */

static void free_state_write(state_write *w)
{
    free(w->account);
    free(w->integration);
    free(w->reason);
    free(w);
}

static void on_state_done(void *ctx, int rc, const lb_error *err)
{
    state_write *w = ctx;
    if (rc != 0)
        lb_log(LB_LOG_ERROR, "recording the integration state failed", "account", w->account, "integration",
               w->integration, "error", err ? err->message : "", NULL);
    free_state_write(w);
}

static void persist_state(lb_dispatcher *d, const integ *g)
{
    if (d->persist.set_integration_state == NULL)
        return;
    state_write *w = calloc(1, sizeof *w);
    if (w == NULL || !(w->account = strdup(g->account)) || !(w->integration = strdup(g->id)) ||
        !(w->reason = strdup(g->reason))) {
        if (w)
            free_state_write(w);
        lb_log(LB_LOG_ERROR, "out of memory: integration state not recorded", "integration", g->id, NULL);
        return;
    }
    d->persist.set_integration_state(d->persist.ud, w->account, w->integration, g->broken,
                                     g->broken ? w->reason : NULL, on_state_done, w);
}

static void arm_probe(integ *g, int64_t delay_ms)
{
    struct timeval tv = ms_to_tv(delay_ms);
    evtimer_add(g->probe_timer, &tv);
}

static void mark_broken(lb_dispatcher *d, integ *g, const char *reason)
{
    char n[16];
    g->broken = true;
    snprintf(g->reason, sizeof g->reason, "%s", reason[0] ? reason : "credentials refused");
    snprintf(n, sizeof n, "%d", g->auth_failures);
    /* Logged once, at the transition: the probes that follow log at debug. */
    lb_log(LB_LOG_ERROR, "integration broken: the provider refuses its credentials; its jobs wait until fixed",
           "account", g->account, "integration", g->id, "auth_failures", n, "reason", g->reason, NULL);
    persist_state(d, g);
    arm_probe(g, d->opts.broken_probe_interval_ms);
}

static void resume(lb_dispatcher *d, integ *g)
{
    g->broken = false;
    g->auth_failures = 0;
    g->reason[0] = '\0';
    evtimer_del(g->probe_timer);
    lb_log(LB_LOG_INFO, "integration resumed: credentials accepted", "account", g->account, "integration", g->id,
           NULL);
    persist_state(d, g);
    kick(d);
}

/* Consecutive AUTH answers break the integration; an answer that proves the
 * credentials work (OK, or a permanent FAIL about the data) resets the count. */
static void note_auth(lb_dispatcher *d, integ *g, const lb_result *r)
{
    if (r->status == LB_OK || r->status == LB_FAIL) {
        g->auth_failures = 0;
        return;
    }
    if (r->status != LB_AUTH)
        return;
    g->auth_failures++;
    if (!g->broken && g->auth_failures >= d->opts.auth_failures_to_break)
        mark_broken(d, g, r->reason);
}

/* A rate-limit answer pauses the whole integration: providers count requests
 * per account, not per lead. With the provider's Retry-After the pause is
 * what it says, up to max_pause_ms. Without one (Mailchimp's and
 * Kit's 429s carry none) it grows as a retry's backoff does: each 429 that
 * comes back after the last pause ended doubles the window, until an answer
 * that is not a retry shows the provider admits calls again. A 429 answering
 * a call sent before the last pause began escalates nothing: the calls in
 * flight when the first one came back would otherwise stack their pauses,
 * even once that pause is over. */
static void note_rate_limit(lb_dispatcher *d, integ *g, const lb_result *r, double call_started_ms)
{
    if (r->status != LB_RETRY) {
        g->throttles = 0;
        return;
    }
    if (!r->rate_limited)
        return;
    int64_t pause = retry_after_capped(d, r);
    if (r->retry_after_ms > (uint32_t)pause) {
        char said[24];
        snprintf(said, sizeof said, "%" PRIu32, r->retry_after_ms);
        lb_log(LB_LOG_WARN, "provider asked for a pause longer than max_pause; pausing for max_pause", "account",
               g->account, "integration", g->id, "retry_after_ms", said, NULL);
    }
    double now = mono_ms(d);
    if (pause == 0) {
        if (pause_left_ms(d, g) > 0 || (g->throttles > 0 && call_started_ms < g->throttled_ms))
            return;
        pause = lb_backoff_delay_ms(&d->backoff, (uint32_t)g->throttles, 0);
        g->throttles += g->throttles < 62; /* the window stops doubling at the cap long before */
        g->throttled_ms = now;
    }
    lb_limiter_pause_until(&g->lim, (int64_t)ceil(now) + pause);
}

static void on_probe_report(const lb_call_report *rep, void *ud)
{
    integ *g = ud;
    g->probe = NULL;
    if (!g->broken)
        return;
    if (rep->result.status == LB_OK) {
        resume(g->d, g);
        return;
    }
    lb_log(LB_LOG_DEBUG, "integration still broken", "account", g->account, "integration", g->id, "reason",
           rep->result.reason, NULL);
    arm_probe(g, g->d->opts.broken_probe_interval_ms);
}

static void on_probe_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    integ *g = arg;
    if (!g->broken || g->probe != NULL || g->inst == NULL)
        return;
    g->probe = lb_call_verify(g->inst, on_probe_report, g);
    if (g->probe == NULL)
        arm_probe(g, g->d->opts.broken_probe_interval_ms);
}

/* ---- running jobs ------------------------------------------------------------------- */

static void on_job_report(const lb_call_report *rep, void *ud);

/* A job that could not be started (out of memory) tries again later. */
static void start_failed(lb_dispatcher *d, lane *l, int64_t now)
{
    lb_log(LB_LOG_ERROR, "out of memory: job start postponed", NULL);
    free_run(&l->run);
    lb_limiter_release(&l->integ->lim);
    l->head->job->next_attempt_at_ms = now + d->opts.store_retry_ms;
    l->state = LANE_IDLE;
    schedule_lane(d, l, now);
}

/* The limiter has admitted the lane's head. */
static void start_job(lb_dispatcher *d, lane *l, int64_t now)
{
    integ *g = l->integ;
    if (build_view(&l->run, d->tok, l->head->job, cached_ref(d, l->node.key)) != 0) {
        start_failed(d, l, now);
        return;
    }
    l->state = LANE_RUNNING;
    l->run.started_ms = mono_ms(d);
    l->run.call = lb_call_submit(g->inst, &l->run.view, on_job_report, l);
    if (l->run.call == NULL) {
        start_failed(d, l, now);
        return;
    }
    d->n_running++;
}

static void on_job_report(const lb_call_report *rep, void *ud)
{
    lane *l = ud;
    integ *g = l->integ;
    lb_dispatcher *d = g->d;
    int64_t now = wall_ms(d);
    const lb_result *r = &rep->result;
    l->run.call = NULL;
    lb_limiter_release(&g->lim);
    d->n_running--;
    note_rate_limit(d, g, r, l->run.started_ms);
    note_auth(d, g, r);
    verdict v;
    decide(d, g, l->head->job, rep, now, &v);
    const lb_plugin *plugin = lb_integration_plugin(g->inst);
    char *fact = v.state == LB_JOB_DONE ? make_fact(plugin, &l->run, l->head->job->action) : NULL;
    free_run(&l->run);
    count_outcome(d, v.outcome);
    pending *p = new_pending(l, &v, rep, fact, now);
    if (p == NULL) {
        lb_log(LB_LOG_ERROR, "out of memory: outcome lost, the job will run again", NULL);
        l->state = LANE_IDLE;
        schedule_lane(d, l, now);
    } else {
        log_outcome(p);
        l->state = LANE_RECORDING;
        queue_pending(d, p);
    }
    kick(d); /* a concurrency slot is free */
}

/* ---- the pump and the one timer ----------------------------------------------------- */

static void promote_due(lb_dispatcher *d, int64_t now)
{
    while (d->heap_n > 0 && d->heap[0]->due_ms <= now) {
        lane *l = d->heap[0];
        heap_remove(d, l);
        ready_push(l->integ, l);
    }
}

static void run_integ(lb_dispatcher *d, integ *g, int64_t now)
{
    g->wake_ms = 0;
    if (d->stopped || g->inst == NULL || g->broken)
        return; /* its lanes wait in the ready list */
    while (g->ready != NULL) {
        int64_t wait;
        /* read per job: starting one takes time, which refills the bucket */
        double t = mono_ms(d);
        lb_limit_verdict v = lb_limiter_acquire(&g->lim, t, &wait);
        if (v == LB_LIMIT_WAIT)
            g->wake_ms = (int64_t)ceil(t) + wait;
        if (v != LB_LIMIT_GO)
            return; /* FULL: a finishing call kicks the pump */
        lane *l = g->ready;
        ready_remove(g, l);
        start_job(d, l, now);
    }
}

/* Due times are wall-clock and wake-ups monotonic: each is turned into a
 * delay on its own clock before they are compared. */
static void arm_timer(lb_dispatcher *d)
{
    int64_t delay = INT64_MAX;
    if (d->heap_n > 0)
        delay = d->heap[0]->due_ms - wall_ms(d);
    double mono = mono_ms(d);
    for (const integ *g = d->integs; g != NULL; g = g->next) {
        if (g->ready == NULL || g->wake_ms == 0)
            continue;
        int64_t wait = (int64_t)ceil((double)g->wake_ms - mono);
        if (wait < delay)
            delay = wait;
    }
    if (delay == INT64_MAX) {
        evtimer_del(d->timer);
        return;
    }
    /* Starting jobs takes time: measure from now, and make libevent do the
     * same (it counts from the time cached at the start of the turn). An
     * early wake-up would only find nothing due and re-arm. */
    struct timeval tv = ms_to_tv(delay);
    event_base_update_cache_time(d->base);
    evtimer_add(d->timer, &tv);
}

static void pump(lb_dispatcher *d)
{
    int64_t now = wall_ms(d);
    promote_due(d, now);
    for (integ *g = d->integs; g != NULL; g = g->next)
        run_integ(d, g, now);
    arm_timer(d);
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

/* ---- public: lifetime ---------------------------------------------------------------- */

static void set_defaults(lb_dispatcher *d, const lb_dispatcher_options *opts)
{
    lb_dispatcher_options *o = &d->opts;
    *o = opts ? *opts : (lb_dispatcher_options){0};
    if (o->max_attempts <= 0)
        o->max_attempts = 8;
    if (o->max_age_ms <= 0)
        o->max_age_ms = 72 * HOUR_MS;
    if (o->backoff_base_ms <= 0)
        o->backoff_base_ms = 1000;
    if (o->backoff_cap_ms <= 0)
        o->backoff_cap_ms = HOUR_MS;
    if (o->backoff_cap_ms < o->backoff_base_ms)
        o->backoff_cap_ms = o->backoff_base_ms;
    if (o->max_pause_ms <= 0)
        o->max_pause_ms = HOUR_MS;
    if (o->auth_failures_to_break <= 0)
        o->auth_failures_to_break = 3;
    if (o->broken_probe_interval_ms <= 0)
        o->broken_probe_interval_ms = 60 * 1000;
    if (o->store_retry_ms <= 0)
        o->store_retry_ms = 1000;
    if (o->lead_cache_max == 0)
        o->lead_cache_max = 100000;
    if (o->clock == NULL)
        o->clock = default_clock;
    if (o->rand == NULL) {
        d->rand_state = lb_rand_seed();
        o->rand = lb_rand_splitmix;
        o->rand_state = &d->rand_state;
    }
    d->backoff = (lb_backoff){o->backoff_base_ms, o->backoff_cap_ms, o->rand, o->rand_state};
    d->caps = (lb_retry_caps){o->max_attempts, o->max_age_ms};
}

lb_dispatcher *lb_dispatcher_new_with(struct event_base *base, const lb_dispatch_persist *persist,
                                      lb_metrics *metrics, const lb_dispatcher_options *opts)
{
    if (persist == NULL || persist->record_outcomes == NULL)
        return NULL;
    lb_dispatcher *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->base = base;
    d->persist = *persist;
    d->metrics = metrics;
    set_defaults(d, opts);
    d->timer = evtimer_new(base, on_pump, d);
    d->kick = evtimer_new(base, on_pump, d);
    d->flush = evtimer_new(base, on_flush, d);
    d->tok = json_tokener_new();
    if (d->timer == NULL || d->kick == NULL || d->flush == NULL || d->tok == NULL) {
        d->persist.free = NULL; /* the caller still owns it */
        lb_dispatcher_free(d);
        return NULL;
    }
    return d;
}

static void free_lane_jobs(lane *l)
{
    if (l->state == LANE_RUNNING && l->run.call != NULL)
        lb_call_abort(l->run.call);
    free_run(&l->run);
    while (l->head != NULL)
        lb_job_free(lane_pop(l));
    free(l->node.key);
    free(l);
}

static void free_lanes(lb_dispatcher *d)
{
    for (size_t i = 0; i < d->lanes.nslots; i++) {
        map_node *n = d->lanes.slots[i];
        while (n != NULL) {
            map_node *next = n->next;
            free_lane_jobs((lane *)n);
            n = next;
        }
    }
    free(d->lanes.slots);
    while (d->refs_oldest != NULL)
        ref_free(d, d->refs_oldest);
    free(d->refs.slots);
}

static void free_integs(lb_dispatcher *d)
{
    while (d->integs != NULL) {
        integ *g = d->integs;
        d->integs = g->next;
        if (g->probe != NULL)
            lb_call_abort(g->probe);
        event_free(g->probe_timer);
        lb_integration_free(g->inst);
        free(g->account);
        free(g->id);
        free(g);
    }
}

/* A batch waiting for its retry timer is ours to free; one inside the
 * persistence frees itself when its done arrives. */
static void release_batches(lb_dispatcher *d)
{
    while (d->batches != NULL) {
        batch *b = d->batches;
        d->batches = b->next;
        if (b->retry != NULL && evtimer_pending(b->retry, NULL)) {
            free_batch(b);
            continue;
        }
        for (size_t i = 0; i < b->n; i++)
            b->items[i]->lane = NULL;
        b->d = NULL;
    }
}

void lb_dispatcher_free(lb_dispatcher *d)
{
    if (d == NULL)
        return;
    free_lanes(d); /* aborts job calls before their integrations go */
    for (size_t i = 0; i < d->n_pending; i++)
        free_pending(d->pending[i]);
    free(d->pending);
    release_batches(d);
    free_integs(d);
    free(d->heap);
    if (d->timer)
        event_free(d->timer);
    if (d->kick)
        event_free(d->kick);
    if (d->flush)
        event_free(d->flush);
    if (d->tok)
        json_tokener_free(d->tok);
    if (d->persist.free)
        d->persist.free(d->persist.ud);
    free(d);
}

void lb_dispatcher_stop(lb_dispatcher *d) { d->stopped = true; }

size_t lb_dispatcher_busy(const lb_dispatcher *d) { return d->n_running + d->n_recording; }

/* ---- public: integrations -------------------------------------------------------------- */

static void attach(lb_dispatcher *d, integ *g, lb_integration *in)
{
    double rate;
    uint32_t burst, concurrency;
    lb_integration_limits(in, &rate, &burst, &concurrency);
    if (g->attached_once)
        lb_limiter_configure(&g->lim, rate, burst, concurrency, mono_ms(d));
    else
        lb_limiter_init(&g->lim, rate, burst, concurrency, mono_ms(d));
    g->attached_once = true;
    g->inst = in;
    kick(d);
}

/* Stops everything running on g's instance: its jobs go back to waiting
 * (due now) and will run again, which idempotent provider calls allow. */
static void detach(lb_dispatcher *d, integ *g)
{
    if (g->probe != NULL)
        lb_call_abort(g->probe);
    g->probe = NULL;
    int64_t now = wall_ms(d);
    for (size_t i = 0; i < d->lanes.nslots; i++)
        for (map_node *n = d->lanes.slots[i]; n != NULL; n = n->next) {
            lane *l = (lane *)n;
            if (l->integ != g || l->state != LANE_RUNNING)
                continue;
            lb_call_abort(l->run.call);
            free_run(&l->run);
            lb_limiter_release(&g->lim);
            d->n_running--;
            l->state = LANE_IDLE;
            schedule_lane(d, l, now);
        }
    lb_integration_free(g->inst);
    g->inst = NULL;
}

int lb_dispatcher_add_integration(lb_dispatcher *d, lb_integration *in)
{
    integ *g = integ_get(d, lb_integration_account(in), lb_integration_id(in));
    if (g == NULL || g->inst != NULL)
        return -1;
    attach(d, g, in);
    return 0;
}

void lb_dispatcher_replace_integration(lb_dispatcher *d, lb_integration *in)
{
    integ *g = integ_get(d, lb_integration_account(in), lb_integration_id(in));
    if (g == NULL) {
        lb_log(LB_LOG_ERROR, "out of memory: integration not replaced", NULL);
        lb_integration_free(in);
        return;
    }
    if (g->inst != NULL) {
        lb_integration_carry_budget(in, g->inst); /* as attach carries the job bucket */
        detach(d, g);
    }
    g->auth_failures = 0;
    attach(d, g, in);
    if (g->broken)
        arm_probe(g, 0); /* new credentials: find out now, not in a minute */
}

bool lb_dispatcher_update_integration(lb_dispatcher *d, lb_integration *in)
{
    const integ *g = integ_find(d, lb_integration_account(in), lb_integration_id(in));
    if (g != NULL && g->inst != NULL && lb_integration_same(g->inst, in)) {
        lb_integration_free(in); /* never used: no call to abort */
        return true;
    }
    lb_dispatcher_replace_integration(d, in);
    return false;
}

void lb_dispatcher_remove_integration(lb_dispatcher *d, const char *account, const char *integration)
{
    integ *g = integ_find(d, account, integration);
    if (g != NULL && g->inst != NULL)
        detach(d, g);
}

bool lb_dispatcher_integration_broken(const lb_dispatcher *d, const char *account, const char *integration,
                                      const char **reason)
{
    const integ *g = integ_find(d, account, integration);
    if (reason != NULL)
        *reason = g && g->broken ? g->reason : NULL;
    return g != NULL && g->broken;
}

/* ---- public: jobs ---------------------------------------------------------------------- */

void lb_dispatcher_enqueue(lb_dispatcher *d, lb_outbox_job *job)
{
    if (job == NULL)
        return;
    integ *g = integ_get(d, job->account, job->integration);
    lane *l = g ? lane_get(d, g, job) : NULL;
    qjob *q = l ? calloc(1, sizeof *q) : NULL;
    if (q == NULL) {
        /* Still READY in the store: it runs after the next restart. */
        lb_log(LB_LOG_ERROR, "out of memory: job not queued", NULL);
        if (l != NULL && l->head == NULL)
            lane_free(d, l);
        lb_job_free(job);
        return;
    }
    q->job = job;
    const qjob *old_head = l->head;
    if (!lane_insert(l, q)) {
        free(q);
        lb_job_free(job); /* already queued (a startup load racing the ingest) */
        return;
    }
    d->n_jobs++;
    bool idle = l->state == LANE_IDLE || l->state == LANE_WAITING || l->state == LANE_READY;
    if (idle && (l->state == LANE_IDLE || l->head != old_head)) {
        unschedule_lane(d, l);
        schedule_lane(d, l, wall_ms(d));
    }
    kick(d);
}

void lb_dispatcher_replay(lb_dispatcher *d, lb_outbox_job *job)
{
    if (job == NULL)
        return;
    int64_t now = wall_ms(d);
    job->state = LB_JOB_READY;
    job->attempts = 0;
    job->created_at_ms = now; /* the age cap counts from the replay */
    job->next_attempt_at_ms = now;
    lb_dispatcher_enqueue(d, job);
}

void lb_dispatcher_stats_get(const lb_dispatcher *d, lb_dispatcher_stats *out)
{
    *out = d->counts;
    out->queued = d->n_jobs;
    out->running = d->n_running;
    out->recording = d->n_recording;
    out->broken = 0;
    for (const integ *g = d->integs; g != NULL; g = g->next)
        out->broken += g->broken;
}
