/* store_sqlite_jobs.c: the outbox on SQLite: jobs, their attempts, what the
 * server did per lead, and broken integrations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "store_sqlite_int.h"

static const char *const state_names[] = {[LB_JOB_READY] = "ready", [LB_JOB_DONE] = "done", [LB_JOB_DEAD] = "dead"};

static lb_job_state state_from_name(const char *name)
{
    for (int i = LB_JOB_READY; i <= LB_JOB_DEAD; i++)
        if (strcmp(state_names[i], name) == 0)
            return (lb_job_state)i;
    return LB_JOB_READY;
}

/* Runs an INSERT ... ON CONFLICT DO NOTHING and resets it: 0 with *id the
 * new row's, or 0 with *id = 0 when a conflict inserted nothing, or -1.
 * Without RETURNING, whose rows SQLite collects in an ephemeral table (1-2 us
 * per row on the writer, docs/benchmarks.md): a conflict changes no row, and
 * the writer's connection is the only one that inserts. */
static int insert_new(sqlite_store *s, sqlite3_stmt *st, int64_t *id, const char *what, lb_error *err)
{
    int rc = sqlite3_step(st);
    *id = rc == SQLITE_DONE && sqlite3_changes(s->db) == 1 ? sqlite3_last_insert_rowid(s->db) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : lb_sqlite_fail(err, s->db, what);
}

int lb_sqlite_put_job(void *impl, lb_outbox_job *job, bool *inserted, lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st = lb_sqlite_cached(
        s, LB_SQ_INSERT_JOB,
        "INSERT INTO jobs (account, integration, lead_email, action, params, lead, idempotency_key, event_id,"
        " segmentation_id, action_index, state, attempts, created_at, next_attempt_at, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'ready', 0, ?11, ?12, ?11)"
        " ON CONFLICT (idempotency_key) DO NOTHING",
        err);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, job->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, job->integration, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, job->lead_email, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, job->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, job->params_json ? job->params_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, job->lead_json ? job->lead_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, job->idempotency_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, job->event_id);
    sqlite3_bind_int64(st, 9, job->segmentation_id);
    sqlite3_bind_int(st, 10, job->action_index);
    sqlite3_bind_int64(st, 11, job->created_at_ms);
    sqlite3_bind_int64(st, 12, job->next_attempt_at_ms);
    int64_t id;
    if (insert_new(s, st, &id, "queuing a job", err))
        return -1;
    *inserted = id != 0;
    if (*inserted)
        job->id = id;
    return 0;
}

static int update_job(sqlite_store *s, const lb_job_outcome *o, lb_error *err)
{
    sqlite3_stmt *st = lb_sqlite_cached(s, LB_SQ_UPDATE_JOB,
                                        "UPDATE jobs SET state = ?2, attempts = ?3, next_attempt_at = ?4,"
                                        " updated_at = ?5, last_status = ?6, last_reason = ?7 WHERE id = ?1",
                                        err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, o->job_id);
    sqlite3_bind_text(st, 2, state_names[o->new_state], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, o->attempts);
    sqlite3_bind_int64(st, 4, o->next_attempt_at_ms);
    sqlite3_bind_int64(st, 5, o->at_ms);
    sqlite3_bind_int(st, 6, o->http_status);
    lb_sqlite_bind_text_or_null(st, 7, o->reason);
    int rc = lb_sqlite_step_done(s, st, "updating a job", err);
    sqlite3_clear_bindings(st);
    return rc;
}

static int insert_attempt(sqlite_store *s, const lb_job_outcome *o, lb_error *err)
{
    sqlite3_stmt *st = lb_sqlite_cached(s, LB_SQ_INSERT_ATTEMPT,
                                        "INSERT INTO job_attempts (job_id, at, http_status, outcome, reason)"
                                        " VALUES (?1, ?2, ?3, ?4, ?5)",
                                        err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, o->job_id);
    sqlite3_bind_int64(st, 2, o->at_ms);
    if (o->http_status)
        sqlite3_bind_int(st, 3, o->http_status);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, o->outcome, -1, SQLITE_STATIC);
    lb_sqlite_bind_text_or_null(st, 5, o->reason);
    int rc = lb_sqlite_step_done(s, st, "recording an attempt", err);
    sqlite3_clear_bindings(st);
    return rc;
}

/* "tag_add:buyer" adds membership "tag:buyer"; "tag_remove:buyer" removes it;
 * facts of other actions (contact_upsert) change no membership. */
static void apply_fact(json_object *memberships, const char *fact)
{
    const char *colon = strchr(fact, ':');
    if (!colon)
        return;
    size_t action_len = (size_t)(colon - fact);
    bool add = action_len > 4 && strncmp(colon - 4, "_add", 4) == 0;
    bool remove = action_len > 7 && strncmp(colon - 7, "_remove", 7) == 0;
    if (!add && !remove)
        return;
    size_t kind_len = action_len - (add ? 4 : 7);
    char membership[512];
    snprintf(membership, sizeof membership, "%.*s%s", (int)kind_len, fact, colon);
    for (size_t i = json_object_array_length(memberships); i-- > 0;) {
        if (strcmp(json_object_get_string(json_object_array_get_idx(memberships, i)), membership) != 0)
            continue;
        if (add)
            return; /* already a member: keep the order, change nothing */
        json_object_array_del_idx(memberships, i, 1);
    }
    if (add)
        json_object_array_add(memberships, json_object_new_string(membership));
}

static json_object *current_memberships(sqlite_store *s, const lb_job_outcome *o, char **contact_ref,
                                        lb_error *err)
{
    sqlite3_stmt *st = lb_sqlite_cached(s, LB_SQ_GET_LEAD,
                                        "SELECT contact_ref, memberships FROM lead_state"
                                        " WHERE account = ?1 AND integration = ?2 AND lead_email = ?3",
                                        err);
    if (!st)
        return NULL;
    sqlite3_bind_text(st, 1, o->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, o->integration, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, o->lead_email, -1, SQLITE_STATIC);
    json_object *list = NULL;
    *contact_ref = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *ref = (const char *)sqlite3_column_text(st, 0);
        *contact_ref = ref ? strdup(ref) : NULL;
        list = json_tokener_parse((const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (!list || !json_object_is_type(list, json_type_array)) {
        json_object_put(list);
        list = json_object_new_array();
    }
    return list;
}

static int update_lead_state(sqlite_store *s, const lb_job_outcome *o, lb_error *err)
{
    char *old_ref = NULL;
    json_object *memberships = current_memberships(s, o, &old_ref, err);
    if (!memberships)
        return -1;
    char *before = strdup(json_object_to_json_string_ext(memberships, JSON_C_TO_STRING_PLAIN));
    if (o->fact)
        apply_fact(memberships, o->fact);
    /* a repeat (the same tag for a lead that has it, the same contact id)
     * changes nothing: skip the write, the common case of a busy lead */
    bool same_ref = !o->provider_ref || !*o->provider_ref || (old_ref && strcmp(old_ref, o->provider_ref) == 0);
    bool same_set = before && strcmp(before, json_object_to_json_string_ext(memberships, JSON_C_TO_STRING_PLAIN)) == 0;
    free(before);
    if (same_ref && same_set && old_ref) {
        json_object_put(memberships);
        free(old_ref);
        return 0;
    }
    sqlite3_stmt *st = lb_sqlite_cached(
        s, LB_SQ_PUT_LEAD,
        "INSERT INTO lead_state (account, integration, lead_email, contact_ref, memberships, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (account, integration, lead_email) DO UPDATE SET"
        " contact_ref = excluded.contact_ref, memberships = excluded.memberships, updated_at = excluded.updated_at",
        err);
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, o->account, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, o->integration, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, o->lead_email, -1, SQLITE_STATIC);
        lb_sqlite_bind_text_or_null(st, 4, o->provider_ref && *o->provider_ref ? o->provider_ref : old_ref);
        sqlite3_bind_text(st, 5, json_object_to_json_string_ext(memberships, JSON_C_TO_STRING_PLAIN), -1,
                          SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 6, o->at_ms);
        rc = lb_sqlite_step_done(s, st, "updating lead state", err);
        sqlite3_clear_bindings(st);
    }
    json_object_put(memberships);
    free(old_ref);
    return rc;
}

int lb_sqlite_record_outcome(void *impl, const lb_job_outcome *o, lb_error *err)
{
    sqlite_store *s = impl;
    if (update_job(s, o, err) || insert_attempt(s, o, err))
        return -1;
    if (o->new_state == LB_JOB_DONE && o->account && o->integration && o->lead_email)
        return update_lead_state(s, o, err);
    return 0;
}

int lb_sqlite_set_integration_state(void *impl, const char *account, const char *integration, bool broken,
                                    const char *reason, lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st = lb_sqlite_cached(
        s, LB_SQ_PUT_INTEGRATION,
        "INSERT INTO integration_state (account, integration, broken, reason, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"
        " ON CONFLICT (account, integration) DO UPDATE SET broken = excluded.broken, reason = excluded.reason,"
        " updated_at = excluded.updated_at",
        err);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, integration, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, broken);
    lb_sqlite_bind_text_or_null(st, 4, reason);
    int rc = lb_sqlite_step_done(s, st, "recording integration state", err);
    sqlite3_clear_bindings(st);
    return rc;
}

static char *column_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    return strdup(v ? (const char *)v : "");
}

static lb_outbox_job *job_from_row(sqlite3_stmt *st)
{
    lb_outbox_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->id = sqlite3_column_int64(st, 0);
    job->account = column_dup(st, 1);
    job->integration = column_dup(st, 2);
    job->lead_email = column_dup(st, 3);
    job->action = column_dup(st, 4);
    job->params_json = column_dup(st, 5);
    job->lead_json = column_dup(st, 6);
    job->idempotency_key = column_dup(st, 7);
    job->event_id = sqlite3_column_int64(st, 8);
    job->segmentation_id = sqlite3_column_int64(st, 9);
    job->action_index = sqlite3_column_int(st, 10);
    job->state = state_from_name((const char *)sqlite3_column_text(st, 11));
    job->attempts = sqlite3_column_int(st, 12);
    job->created_at_ms = sqlite3_column_int64(st, 13);
    job->next_attempt_at_ms = sqlite3_column_int64(st, 14);
    if (!job->account || !job->integration || !job->lead_email || !job->action || !job->params_json ||
        !job->lead_json || !job->idempotency_key) {
        lb_job_free(job);
        return NULL;
    }
    return job;
}

int lb_sqlite_load_pending_jobs(void *impl, lb_job_visit visit, void *ud, lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st = lb_sqlite_cached(
        s, LB_SQ_PENDING_JOBS,
        "SELECT id, account, integration, lead_email, action, params, lead, idempotency_key, event_id,"
        " segmentation_id, action_index, state, attempts, created_at, next_attempt_at"
        " FROM jobs WHERE state = 'ready' ORDER BY id",
        err);
    if (!st)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        lb_outbox_job *job = job_from_row(st);
        if (!job) {
            sqlite3_reset(st);
            return lb_fail(err, "", "out of memory loading jobs");
        }
        visit(job, ud);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : lb_sqlite_fail(err, s->db, "loading pending jobs");
}

int lb_sqlite_list_jobs(void *impl, const char *account, lb_job_state state, lb_job_visit visit, void *ud,
                        lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st;
    const char *sql = "SELECT id, account, integration, lead_email, action, params, lead, idempotency_key, event_id,"
                      " segmentation_id, action_index, state, attempts, created_at, next_attempt_at, last_status,"
                      " last_reason FROM jobs WHERE account = ?1 AND state = ?2 ORDER BY id";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return lb_sqlite_fail(err, s->db, "listing jobs");
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, state_names[state], -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        lb_outbox_job *job = job_from_row(st);
        if (!job)
            break;
        job->last_status = sqlite3_column_int(st, 15);
        const unsigned char *reason = sqlite3_column_text(st, 16);
        job->last_reason = reason ? strdup((const char *)reason) : NULL;
        visit(job, ud);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lb_sqlite_fail(err, s->db, "listing jobs");
}

int lb_sqlite_replay_dead(void *impl, const char *account, int64_t job_id, int64_t now_ms, int64_t *count,
                          lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st;
    const char *sql = "UPDATE jobs SET state = 'ready', attempts = 0, next_attempt_at = ?3, updated_at = ?3,"
                      " created_at = ?3 WHERE state = 'dead' AND account = ?1 AND (?2 = 0 OR id = ?2)";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return lb_sqlite_fail(err, s->db, "replaying dead letters");
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, job_id);
    sqlite3_bind_int64(st, 3, now_ms);
    int rc = sqlite3_step(st);
    *count = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lb_sqlite_fail(err, s->db, "replaying dead letters");
}
