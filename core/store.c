/* store.c: choosing the engine. Only SQLite exists; the location is its file. */
#include "store.h"

#include "store_sqlite.h"

int lb_store_open(lb_store *store, const char *location, const lb_store_options *opts, lb_error *err)
{
    void *impl = NULL;
    int rc = lb_store_sqlite_open(location, opts, &impl, err);
    if (rc)
        return rc;
    store->ops = &lb_store_sqlite_ops;
    store->impl = impl;
    return 0;
}

void lb_store_close(lb_store *store)
{
    if (store->ops)
        store->ops->close(store->impl);
    store->ops = NULL;
    store->impl = NULL;
}
