/* store_sqlite_keys.c: which events are stored already (dedupe).
 *
 * A unique index on (account, source, source_event_id) cost each event one
 * random leaf of the index: Hotmart's ids are UUIDs, so every event of a
 * commit dirtied its own 4 KiB page, written once to the WAL and again by the
 * checkpoint, about half of all the bytes an event cost (docs/storage.md).
 * So the keys live in two places instead:
 *   - event_keys, a table written in id order next to events, in the same
 *     transaction: appending to it shares pages between the events of a
 *     commit, and it is what survives a restart;
 *   - a hash map in memory (key_map.c) from a keyed hash of the key to the
 *     event id, loaded from event_keys by the first write after opening.
 * A hash match is checked against the stored key, so the answer is exact,
 * and entries a rollback left behind do no harm.
 * The map is only right while this connection is the only one that stores
 * events, which is how the daemon runs (one writer thread per database). */
#include "store_sqlite_int.h"
#include "store_sqlite.h"

#include <string.h>

typedef struct event_key {
    const char *account, *source, *id;
} event_key;

/* The hash of the three parts' hashes: no part can run into the next. */
static uint64_t key_hash(const sqlite_store *s, const event_key *k)
{
    const lb_siphash_key *seed = &s->keys.seed;
    if (s->keys.collide)
        return 42;
    uint64_t parts[3] = {
        lb_siphash(seed, k->account, strlen(k->account)),
        lb_siphash(seed, k->source, strlen(k->source)),
        lb_siphash(seed, k->id, strlen(k->id)),
    };
    return lb_siphash(seed, parts, sizeof parts);
}

int lb_sqlite_keys_load(sqlite_store *s, lb_error *err)
{
    sqlite3_stmt *count = lb_sqlite_cached(s, LB_SQ_COUNT_KEYS, "SELECT count(*) FROM event_keys", err);
    sqlite3_stmt *all = lb_sqlite_cached(s, LB_SQ_ALL_KEYS,
                                         "SELECT event_id, account, source, source_event_id FROM event_keys", err);
    if (!count || !all)
        return -1;
    int rc = sqlite3_step(count);
    size_t n = rc == SQLITE_ROW ? (size_t)sqlite3_column_int64(count, 0) : 0;
    sqlite3_reset(count);
    if (rc != SQLITE_ROW)
        return lb_sqlite_fail(err, s->db, "counting stored event keys");
    if (lb_key_map_reserve(&s->keys.map, n))
        return lb_fail(err, "", "out of memory for %zu event keys", n);
    while ((rc = sqlite3_step(all)) == SQLITE_ROW) {
        event_key k = {(const char *)sqlite3_column_text(all, 1), (const char *)sqlite3_column_text(all, 2),
                       (const char *)sqlite3_column_text(all, 3)};
        if (!k.account || !k.source || !k.id) {
            rc = SQLITE_NOMEM;
            break;
        }
        if (lb_key_map_put(&s->keys.map, key_hash(s, &k), sqlite3_column_int64(all, 0))) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_reset(all);
    if (rc != SQLITE_DONE) {
        lb_key_map_free(&s->keys.map);
        return lb_sqlite_fail(err, s->db, "loading stored event keys");
    }
    s->keys.loaded = true;
    return 0;
}

static bool column_is(sqlite3_stmt *st, int col, const char *want)
{
    const char *v = (const char *)sqlite3_column_text(st, col);
    return v && strcmp(v, want) == 0;
}

/* 1 when event `id` has this key, 0 when it has another, -1 on error. */
static int same_key(sqlite_store *s, int64_t id, const event_key *k, lb_error *err)
{
    sqlite3_stmt *st = lb_sqlite_cached(
        s, LB_SQ_GET_KEY, "SELECT account, source, source_event_id FROM event_keys WHERE event_id = ?1", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), same = 0;
    if (rc == SQLITE_ROW)
        same = column_is(st, 0, k->account) && column_is(st, 1, k->source) && column_is(st, 2, k->id);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return lb_sqlite_fail(err, s->db, "reading a stored event key");
    return same;
}

int lb_sqlite_keys_find(sqlite_store *s, const char *account, const char *source, const char *source_event_id,
                        uint64_t *hash, int64_t *found, lb_error *err)
{
    if (!s->keys.loaded && lb_sqlite_keys_load(s, err))
        return -1;
    event_key k = {account, source, source_event_id};
    *hash = key_hash(s, &k);
    size_t cursor = 0;
    int64_t id;
    while (lb_key_map_next(&s->keys.map, *hash, &cursor, &id)) {
        int same = same_key(s, id, &k, err);
        if (same < 0)
            return -1;
        if (same) {
            *found = id;
            return 1;
        }
    }
    return 0;
}

int lb_sqlite_keys_add(sqlite_store *s, uint64_t hash, int64_t id, const char *account, const char *source,
                       const char *source_event_id, lb_error *err)
{
    sqlite3_stmt *st = lb_sqlite_cached(
        s, LB_SQ_PUT_KEY, "INSERT INTO event_keys (event_id, account, source, source_event_id) VALUES (?1, ?2, ?3, ?4)",
        err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, source_event_id, -1, SQLITE_STATIC);
    int rc = lb_sqlite_step_done(s, st, "storing an event key", err);
    sqlite3_clear_bindings(st);
    if (rc)
        return -1;
    /* in the map before the commit, so a second copy in the same batch is a
     * duplicate. A rollback leaves the entry behind, which is harmless: the
     * check of a match against event_keys finds no row, or another key's,
     * under that id. Reloading the map instead would take seconds on a
     * large store, for every failed batch. */
    if (lb_key_map_put(&s->keys.map, hash, id))
        return lb_fail(err, "", "out of memory for event keys");
    return 0;
}

void lb_sqlite_dedupe_stats(const sqlite_store *s, lb_store_stats *out)
{
    out->dedupe_keys = s->keys.map.n;
    out->dedupe_bytes = lb_key_map_bytes(&s->keys.map);
}

void lb_store_sqlite_collide_keys_for_test(lb_store *store)
{
    sqlite_store *s = store->impl;
    s->keys.collide = true;
    lb_sqlite_keys_forget(s);
}

void lb_sqlite_keys_forget(sqlite_store *s)
{
    lb_key_map_free(&s->keys.map);
    s->keys.loaded = false;
}
