/* daemon.h: listbossd's lifecycle: start, serve, reload on SIGHUP, drain on
 * SIGTERM/SIGINT. */
#ifndef LB_DAEMON_H
#define LB_DAEMON_H

#include "config.h"
#include "error.h"

typedef struct lb_daemon_options {
    const char *config_path;       /* NULL: the embedded demo configuration */
    const char *listen_override;   /* -l ADDR:PORT, or NULL */
    const char *database_override; /* -d FILE, or NULL */
} lb_daemon_options;

/* Loads the configuration the options name and applies the overrides. */
lb_config *lb_daemon_load_config(const lb_daemon_options *opts, lb_error *err);

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int lb_daemon_run(const lb_daemon_options *opts);

#endif
