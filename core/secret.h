/* secret.h: resolving the secret references written in the config.
 *
 * A reference is one of
 *   "env:NAME"  the value of environment variable NAME (unset or empty: error)
 *   "file:PATH" the content of file PATH, minus one trailing newline
 *               (missing, unreadable, empty or over 64 KiB: error)
 *   anything else: the literal value (fine for demos, not for production)
 *
 * Error messages name the variable or the path, never the value: they end up
 * in logs and on the terminal of whoever runs `listbossd -t`. */
#ifndef LB_SECRET_H
#define LB_SECRET_H

#include "error.h"

/* A shorter hottok or API token is guessable; 8 is a floor, not advice. */
#define LB_SECRET_MIN_LEN 8
/* A secret file is a token, not a document; the cap stops `file:/var/log/x`. */
#define LB_SECRET_FILE_MAX (64 * 1024)

/* Returns the resolved value (malloc'd, free with lb_secret_free), or NULL with
 * err->field = `field` and err->message saying why. */
char *lb_secret_resolve(const char *ref, const char *field, lb_error *err);

/* Wipes then frees a value from lb_secret_resolve; NULL is fine. */
void lb_secret_free(char *secret);

#endif
