/* error.h: the one error value that crosses module boundaries.
 * A failing function fills it and returns -1 (or NULL); the caller turns it
 * into a log line or an HTTP 4xx body without guessing what went wrong. */
#ifndef LB_ERROR_H
#define LB_ERROR_H

#include <stdarg.h>

typedef struct lb_error {
    char field[96];    /* the offending key or path, e.g. "data.buyer.email"; "" if none */
    char message[256]; /* human-readable reason, never a secret */
} lb_error;

/* Fills err (if not NULL) and returns -1, so callers can `return lb_fail(...)`. */
int lb_fail(lb_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lb_error_clear(lb_error *err);

#endif
