/* fd_limit.h: fits the client connection limit to the process's descriptor
 * limit, raising the soft limit toward the hard one first (as Redis does for
 * maxclients). Without this a default soft limit of 1024 makes accept fail
 * long before max_connections. */
#ifndef LB_FD_LIMIT_H
#define LB_FD_LIMIT_H

#include <stddef.h>

/* Descriptors kept for everything but client connections: the store's
 * files, provider connections (the HTTP client's cap), pipes, the log. */
#define LB_FD_RESERVE 320

typedef struct lb_fd_fit {
    size_t connections; /* what fits: at most the wanted number */
    unsigned long long soft_before, soft_after, hard;
} lb_fd_fit;

/* Raises RLIMIT_NOFILE's soft limit as far as `want` connections plus
 * LB_FD_RESERVE need (never past the hard limit) and says how many
 * connections fit. -1 if the limit cannot be read (then nothing changed). */
int lb_fd_limit_fit(size_t want, lb_fd_fit *out);

#endif
