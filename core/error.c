/* error.c: filling lb_error. */
#include "error.h"

#include <stdio.h>
#include <string.h>

int lb_fail(lb_error *err, const char *field, const char *fmt, ...)
{
    if (!err)
        return -1;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

void lb_error_clear(lb_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}
