/* store_sqlite_vfs.c: a VFS shim that turns SQLite's many small sequential
 * writes to the WAL into one.
 *
 * A WAL commit writes every frame as two pwrite() calls (a 24-byte header,
 * then the page), so one group commit of a few dozen events made well over a
 * hundred system calls before its fsync. Here writes to the WAL that continue
 * the previous one are collected in a buffer and reach the file in one
 * pwrite() when anything else happens to the file: a sync, a read, a size
 * query, a file control, a write elsewhere.
 *
 * Why this is safe: SQLite treats a frame as durable only after the sync that
 * follows it, and the sync flushes first. Other connections see frames only
 * once the wal-index says they are committed, which with synchronous=FULL
 * happens after that sync, on the handle that wrote them. So the shim is used
 * only with synchronous=FULL (see store_sqlite.c): under NORMAL, committed
 * frames are not synced and must reach the OS at once. Reads through the same
 * handle flush first, so SQLite always reads what it wrote.
 *
 * The database file is written through. A checkpoint syncs it before
 * publishing the pages it copied (nBackfill) only when it copied the whole
 * WAL; one that stops short of the end (a reader's snapshot or a commit
 * during the copy: the checkpoint thread's usual case) publishes them with no
 * sync, and after its last page write asks the VFS nothing whose answer it
 * reads (SQLITE_FCNTL_CKPT_DONE's is ignored). A collected run that failed
 * there would be published as copied: new readers would take those pages from
 * the database, and no later checkpoint would copy them again. Any page can be
 * the last, so each must reach the file within its own write call.
 *
 * When a write fails: the run is dropped, not kept for a later flush, where
 * it could land over frames written since at the same offsets (after a failed
 * commit SQLite writes the next one from the same frame on); and the error is
 * kept for the handle's next sync, which returns it even when the call that
 * flushed was one whose result SQLite ignores (a file control, an unlock,
 * close). A failed write cannot pass for a durable one: with synchronous=FULL
 * the frames of a commit are published only after their handle's sync
 * succeeded, and a run collected after that sync belongs to a transaction not
 * yet committed, which that error fails (if SQLite read back lost frames in
 * between, what it built on them goes with it). A failure SQLite already had
 * from the call that flushed comes back once more from the next sync: at
 * worst one later commit or checkpoint fails for nothing, and the one after
 * it works.
 *
 * Calls that release something (xUnlock, xShmLock unlocking, xShmUnmap,
 * xClose) flush and then always reach the real file, whatever the flush did:
 * SQLite ignores what they return, so a release refused after a failed flush
 * is a lock held for good (a checkpoint's WAL_READ_LOCK(0) and CKPT lock
 * would leave every later checkpoint busy and the WAL growing without end).
 * Only the database handle takes locks, and it collects nothing; the rule
 * keeps that harmless should it change.
 *
 * It also skips a WAL sync that has nothing to do: a checkpoint syncs the WAL
 * before it copies frames, but under synchronous=FULL every commit synced its
 * frames already, through the handle that wrote them. A handle that wrote
 * nothing since its last sync (the checkpoint thread's never writes the WAL)
 * has nothing of its own to make durable, and the skipped fsync was a device
 * flush that the writer's commits waited behind (docs/benchmarks.md). A
 * handle with a failure to report never skips. */
#include "store_sqlite_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define LB_VFS_NAME "listboss-coalesce"
#define LB_VFS_BUFFER_MAX (4 * 1024 * 1024) /* larger runs go out in pieces */
/* The unix VFS writes at most 128 KiB - 1 per call (it masks the length
 * with 0x1ffff: SQLite's own writes are never larger), so a run goes down
 * in pieces of at most this. */
#define LB_VFS_WRITE_MAX ((size_t)0x1f000)

typedef struct coalesce_file {
    sqlite3_file base;     /* our methods */
    sqlite3_file *real;    /* the underlying file, allocated right after us */
    bool wal;              /* the WAL: the one file whose writes are collected, and whose idle syncs are skipped */
    bool unsynced;         /* written or truncated through this handle since its last sync */
    int lost_rc;           /* the error of a run dropped since the last sync, which that sync returns */
    char *buf;
    size_t len, cap;
    sqlite3_int64 offset;  /* file offset of buf[0] */
} coalesce_file;

static sqlite3_vfs coalesce_vfs;
static sqlite3_io_methods coalesce_methods_v1, coalesce_methods_v2, coalesce_methods_v3;

/* Writes the run out. A run that fails is dropped whole (see the header):
 * its error goes back to the caller and waits for the next sync. */
static int flush(coalesce_file *f)
{
    int rc = SQLITE_OK;
    for (size_t done = 0; done < f->len && rc == SQLITE_OK;) {
        size_t n = f->len - done < LB_VFS_WRITE_MAX ? f->len - done : LB_VFS_WRITE_MAX;
        rc = f->real->pMethods->xWrite(f->real, f->buf + done, (int)n, f->offset + (sqlite3_int64)done);
        done += n;
    }
    f->len = 0;
    if (rc != SQLITE_OK && f->lost_rc == SQLITE_OK)
        f->lost_rc = rc;
    return rc;
}

#define REAL(f) (((coalesce_file *)(f))->real)
/* Before a call whose result SQLite reads: a failed flush is its answer. */
#define FLUSHED(f)                                       \
    do {                                                 \
        int flush_rc = flush((coalesce_file *)(f));      \
        if (flush_rc != SQLITE_OK)                       \
            return flush_rc;                             \
    } while (0)
/* Before a release, or a call that answers nothing: it must happen whatever
 * the flush did, and a failure waits for the next sync. */
#define FLUSHED_ANYWAY(f) ((void)flush((coalesce_file *)(f)))

static int cf_close(sqlite3_file *file)
{
    coalesce_file *f = (coalesce_file *)file;
    int rc = flush(f); /* SQLite syncs what it needs before closing: a failure here fails nothing committed */
    int close_rc = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : close_rc;
}

static int cf_read(sqlite3_file *file, void *out, int amount, sqlite3_int64 offset)
{
    FLUSHED(file);
    return REAL(file)->pMethods->xRead(REAL(file), out, amount, offset);
}

/* Appends to the run when the write continues it; otherwise starts a new one. */
static int cf_write(sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset)
{
    coalesce_file *f = (coalesce_file *)file;
    f->unsynced = true;
    if (!f->wal)
        return f->real->pMethods->xWrite(f->real, data, amount, offset);
    bool continues = f->len > 0 && offset == f->offset + (sqlite3_int64)f->len;
    if (!continues || f->len + (size_t)amount > LB_VFS_BUFFER_MAX)
        FLUSHED(f);
    if ((size_t)amount > LB_VFS_BUFFER_MAX)
        return f->real->pMethods->xWrite(f->real, data, amount, offset);
    if (f->len + (size_t)amount > f->cap) {
        size_t cap = f->cap ? f->cap : 64 * 1024;
        while (cap < f->len + (size_t)amount)
            cap *= 2;
        char *grown = realloc(f->buf, cap);
        if (!grown) /* no room to collect: write through */
            return f->real->pMethods->xWrite(f->real, data, amount, offset);
        f->buf = grown;
        f->cap = cap;
    }
    if (f->len == 0)
        f->offset = offset;
    memcpy(f->buf + f->len, data, (size_t)amount);
    f->len += (size_t)amount;
    return SQLITE_OK;
}

static int cf_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    ((coalesce_file *)file)->unsynced = true;
    FLUSHED(file);
    return REAL(file)->pMethods->xTruncate(REAL(file), size);
}

/* A dropped run's error comes first, even on a WAL handle with nothing
 * unsynced: this is the call SQLite counts on for durability. */
static int cf_sync(sqlite3_file *file, int flags)
{
    coalesce_file *f = (coalesce_file *)file;
    (void)flush(f);
    int rc = f->lost_rc;
    if (rc != SQLITE_OK) {
        f->lost_rc = SQLITE_OK; /* reported: the handle goes on */
        return rc;
    }
    if (f->wal && !f->unsynced)
        return SQLITE_OK;
    rc = REAL(file)->pMethods->xSync(REAL(file), flags);
    if (rc == SQLITE_OK)
        f->unsynced = false;
    return rc;
}

static int cf_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    FLUSHED(file);
    return REAL(file)->pMethods->xFileSize(REAL(file), size);
}

static int cf_lock(sqlite3_file *file, int level)
{
    FLUSHED(file);
    return REAL(file)->pMethods->xLock(REAL(file), level);
}

static int cf_unlock(sqlite3_file *file, int level)
{
    FLUSHED_ANYWAY(file);
    return REAL(file)->pMethods->xUnlock(REAL(file), level);
}

static int cf_check_reserved_lock(sqlite3_file *file, int *out)
{
    return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}

static int cf_file_control(sqlite3_file *file, int op, void *arg)
{
    FLUSHED(file);
    return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}

static int cf_sector_size(sqlite3_file *file) { return REAL(file)->pMethods->xSectorSize(REAL(file)); }

static int cf_device_characteristics(sqlite3_file *file)
{
    return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}

/* Shared memory (the wal-index) and memory mapping: straight through, after
 * a flush, since they order with the file's contents. */
static int cf_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
    FLUSHED(file);
    return REAL(file)->pMethods->xShmMap(REAL(file), page, size, extend, out);
}

static int cf_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    if (flags & SQLITE_SHM_UNLOCK)
        FLUSHED_ANYWAY(file);
    else
        FLUSHED(file);
    return REAL(file)->pMethods->xShmLock(REAL(file), offset, n, flags);
}

static void cf_shm_barrier(sqlite3_file *file)
{
    FLUSHED_ANYWAY(file);
    REAL(file)->pMethods->xShmBarrier(REAL(file));
}

static int cf_shm_unmap(sqlite3_file *file, int delete_flag)
{
    FLUSHED_ANYWAY(file);
    return REAL(file)->pMethods->xShmUnmap(REAL(file), delete_flag);
}

static int cf_fetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **out)
{
    FLUSHED(file);
    return REAL(file)->pMethods->xFetch(REAL(file), offset, amount, out);
}

static int cf_unfetch(sqlite3_file *file, sqlite3_int64 offset, void *p)
{
    return REAL(file)->pMethods->xUnfetch(REAL(file), offset, p);
}

static int cf_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    sqlite3_vfs *real_vfs = vfs->pAppData;
    coalesce_file *f = (coalesce_file *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    /* a WAL may hold frames of an earlier process that no one synced (one
     * that ran with synchronous=NORMAL): the first sync is always real */
    f->unsynced = true;
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    if (f->real->pMethods == NULL) {
        file->pMethods = NULL; /* nothing to close */
        return rc;
    }
    switch (f->real->pMethods->iVersion) {
    case 1: file->pMethods = &coalesce_methods_v1; break;
    case 2: file->pMethods = &coalesce_methods_v2; break;
    default: file->pMethods = &coalesce_methods_v3; break;
    }
    return rc;
}

/* The rest of the VFS is the default one's. */
static int cf_delete(sqlite3_vfs *v, const char *n, int s) { return ((sqlite3_vfs *)v->pAppData)->xDelete(v->pAppData, n, s); }
static int cf_access(sqlite3_vfs *v, const char *n, int f, int *o) { return ((sqlite3_vfs *)v->pAppData)->xAccess(v->pAppData, n, f, o); }
static int cf_full_pathname(sqlite3_vfs *v, const char *n, int len, char *o) { return ((sqlite3_vfs *)v->pAppData)->xFullPathname(v->pAppData, n, len, o); }
static void *cf_dl_open(sqlite3_vfs *v, const char *n) { return ((sqlite3_vfs *)v->pAppData)->xDlOpen(v->pAppData, n); }
static void cf_dl_error(sqlite3_vfs *v, int n, char *o) { ((sqlite3_vfs *)v->pAppData)->xDlError(v->pAppData, n, o); }
static void (*cf_dl_sym(sqlite3_vfs *v, void *h, const char *s))(void) { return ((sqlite3_vfs *)v->pAppData)->xDlSym(v->pAppData, h, s); }
static void cf_dl_close(sqlite3_vfs *v, void *h) { ((sqlite3_vfs *)v->pAppData)->xDlClose(v->pAppData, h); }
static int cf_randomness(sqlite3_vfs *v, int n, char *o) { return ((sqlite3_vfs *)v->pAppData)->xRandomness(v->pAppData, n, o); }
static int cf_sleep(sqlite3_vfs *v, int us) { return ((sqlite3_vfs *)v->pAppData)->xSleep(v->pAppData, us); }
static int cf_current_time(sqlite3_vfs *v, double *o) { return ((sqlite3_vfs *)v->pAppData)->xCurrentTime(v->pAppData, o); }
static int cf_get_last_error(sqlite3_vfs *v, int n, char *o) { return ((sqlite3_vfs *)v->pAppData)->xGetLastError(v->pAppData, n, o); }
static int cf_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *o) { return ((sqlite3_vfs *)v->pAppData)->xCurrentTimeInt64(v->pAppData, o); }

static void init_methods(void)
{
    sqlite3_io_methods m = {
        .iVersion = 1,
        .xClose = cf_close,
        .xRead = cf_read,
        .xWrite = cf_write,
        .xTruncate = cf_truncate,
        .xSync = cf_sync,
        .xFileSize = cf_file_size,
        .xLock = cf_lock,
        .xUnlock = cf_unlock,
        .xCheckReservedLock = cf_check_reserved_lock,
        .xFileControl = cf_file_control,
        .xSectorSize = cf_sector_size,
        .xDeviceCharacteristics = cf_device_characteristics,
    };
    coalesce_methods_v1 = m;
    m.iVersion = 2;
    m.xShmMap = cf_shm_map;
    m.xShmLock = cf_shm_lock;
    m.xShmBarrier = cf_shm_barrier;
    m.xShmUnmap = cf_shm_unmap;
    coalesce_methods_v2 = m;
    m.iVersion = 3;
    m.xFetch = cf_fetch;
    m.xUnfetch = cf_unfetch;
    coalesce_methods_v3 = m;
}

static int register_rc = SQLITE_ERROR;

/* SQLite's VFS list is process-wide, so the shim is registered once. */
static void register_once(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real || real->iVersion < 2)
        return;
    init_methods();
    coalesce_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(coalesce_file) + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = LB_VFS_NAME,
        .pAppData = real,
        .xOpen = cf_open,
        .xDelete = cf_delete,
        .xAccess = cf_access,
        .xFullPathname = cf_full_pathname,
        .xDlOpen = cf_dl_open,
        .xDlError = cf_dl_error,
        .xDlSym = cf_dl_sym,
        .xDlClose = cf_dl_close,
        .xRandomness = cf_randomness,
        .xSleep = cf_sleep,
        .xCurrentTime = cf_current_time,
        .xGetLastError = cf_get_last_error,
        .xCurrentTimeInt64 = cf_current_time_int64,
    };
    register_rc = sqlite3_vfs_register(&coalesce_vfs, 0);
}

const char *lb_sqlite_coalescing_vfs(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_once);
    return register_rc == SQLITE_OK ? LB_VFS_NAME : NULL;
}
