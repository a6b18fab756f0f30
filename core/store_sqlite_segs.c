/* store_sqlite_segs.c: segmentations on SQLite. */
#include <string.h>

#include "store_sqlite_int.h"

int lb_sqlite_put_segmentation(void *impl, const lb_stored_segmentation *seg, int64_t *id, lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st = lb_sqlite_cached(
        s, LB_SQ_PUT_SEGMENTATION,
        "INSERT INTO segmentations (account, name, product_id, declaration, origin, status, reasons, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"
        " ON CONFLICT (account, name) DO UPDATE SET product_id = excluded.product_id,"
        " declaration = excluded.declaration, origin = excluded.origin, status = excluded.status,"
        " reasons = excluded.reasons, updated_at = excluded.updated_at RETURNING id",
        err);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, seg->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, seg->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, seg->product_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, seg->declaration, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, seg->origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, seg->status ? seg->status : "ok", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, seg->reasons ? seg->reasons : "[]", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : lb_sqlite_fail(err, s->db, "saving a segmentation");
}

int lb_sqlite_delete_segmentation(void *impl, const char *account, const char *name, bool *deleted, lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM segmentations WHERE account = ?1 AND name = ?2", -1, &st, NULL) !=
        SQLITE_OK)
        return lb_sqlite_fail(err, s->db, "removing a segmentation");
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *deleted = sqlite3_changes(s->db) > 0;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : lb_sqlite_fail(err, s->db, "removing a segmentation");
}

int lb_sqlite_load_segmentations(void *impl, lb_segmentation_visit visit, void *ud, lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st = lb_sqlite_cached(s, LB_SQ_LOAD_SEGMENTATIONS,
                                        "SELECT id, account, name, product_id, declaration, origin, status, reasons"
                                        " FROM segmentations ORDER BY account, product_id, id",
                                        err);
    if (!st)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        lb_stored_segmentation seg = {
            .id = sqlite3_column_int64(st, 0),
            .account = (const char *)sqlite3_column_text(st, 1),
            .name = (const char *)sqlite3_column_text(st, 2),
            .product_id = (const char *)sqlite3_column_text(st, 3),
            .declaration = (const char *)sqlite3_column_text(st, 4),
            .origin = (const char *)sqlite3_column_text(st, 5),
            .status = (const char *)sqlite3_column_text(st, 6),
            .reasons = (const char *)sqlite3_column_text(st, 7),
        };
        visit(&seg, ud);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : lb_sqlite_fail(err, s->db, "loading segmentations");
}

int lb_sqlite_set_segmentation_status(void *impl, int64_t id, const char *status, const char *reasons_json,
                                      lb_error *err)
{
    sqlite_store *s = impl;
    sqlite3_stmt *st = lb_sqlite_cached(s, LB_SQ_SEGMENTATION_STATUS,
                                        "UPDATE segmentations SET status = ?2, reasons = ?3 WHERE id = ?1", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, reasons_json ? reasons_json : "[]", -1, SQLITE_STATIC);
    int rc = lb_sqlite_step_done(s, st, "saving a segmentation's status", err);
    sqlite3_clear_bindings(st);
    return rc;
}
