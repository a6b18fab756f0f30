/* store_sqlite_club.c: Club activity on SQLite. */
#include "store_sqlite_int.h"

int lb_sqlite_put_club_activity(void *impl, const lb_club_activity *a, lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st = lb_sqlite_cached(
        s, LB_SQ_PUT_CLUB,
        "INSERT INTO club_activity (account, product_id, lead_email, last_access_at, max_progress)"
        " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (account, product_id, lead_email) DO UPDATE SET"
        " last_access_at = max(last_access_at, excluded.last_access_at),"
        " max_progress = max(max_progress, excluded.max_progress)",
        err);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, a->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->product_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, a->lead_email, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, a->last_access_ms);
    sqlite3_bind_double(st, 5, a->max_progress);
    int rc = lb_sqlite_step_done(s, st, "recording Club activity", err);
    sqlite3_clear_bindings(st);
    return rc;
}

int lb_sqlite_load_club_activity(void *impl, lb_club_visit visit, void *ud, lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT account, product_id, lead_email, last_access_at, max_progress FROM club_activity",
                           -1, &st, NULL) != SQLITE_OK)
        return lb_sqlite_fail(err, s->db, "loading Club activity");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        lb_club_activity a = {
            .account = (const char *)sqlite3_column_text(st, 0),
            .product_id = (const char *)sqlite3_column_text(st, 1),
            .lead_email = (const char *)sqlite3_column_text(st, 2),
            .last_access_ms = sqlite3_column_int64(st, 3),
            .max_progress = sqlite3_column_double(st, 4),
        };
        visit(&a, ud);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lb_sqlite_fail(err, s->db, "loading Club activity");
}
