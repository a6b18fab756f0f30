/* log.h: logfmt lines on stderr: `ts=... level=... msg="..." key=value ...`.
 * Callers pass key/value pairs already formatted; values are quoted when they
 * need it. Secrets are never passed here: callers log ids, not tokens.
 * A line is at most 2048 bytes: a longer one is cut where it stops fitting
 * (a quoted value still closed, no UTF-8 sequence split) and ends with
 * ` truncated=true`. */
#ifndef LB_LOG_H
#define LB_LOG_H

#include <stdbool.h>

enum lb_log_level { LB_LOG_DEBUG = 0, LB_LOG_INFO, LB_LOG_WARN, LB_LOG_ERROR };

void lb_log_set_level(enum lb_log_level level);
/* Parses "debug"/"info"/"warn"/"error"; returns -1 if unknown. */
int lb_log_level_parse(const char *name);

/* lb_log(LB_LOG_INFO, "listening", "addr", "127.0.0.1:8080", NULL):
 * a message followed by NULL-terminated key/value string pairs. */
void lb_log(enum lb_log_level level, const char *msg, ...) __attribute__((sentinel));
/* Whether lb_log at `level` writes anything: lets a hot path skip
 * formatting the values of a line nobody will see. */
bool lb_log_enabled(enum lb_log_level level);

#endif
