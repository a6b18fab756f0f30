/* cli.h: listbossd's commands besides serving: managing segmentations,
 * the rule catalogue, dry runs ("send test") and dead letters, on the
 * configured store. They work while the daemon runs (SQLite WAL); the daemon
 * picks changes up on SIGHUP. */
#ifndef LB_CLI_H
#define LB_CLI_H

#include "daemon.h"

/* Runs the command in argv[0..argc) and returns the process exit status:
 * 0 done, 1 refused or failed (the reason on stderr or as JSON on stdout),
 * 2 usage. */
int lb_cli_run(const lb_daemon_options *opts, int argc, char **argv);

#endif
