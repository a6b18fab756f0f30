/* fd_limit.c: see fd_limit.h. */
#include "fd_limit.h"

#include <sys/resource.h>

int lb_fd_limit_fit(size_t want, lb_fd_fit *out)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    out->soft_before = rl.rlim_cur;
    out->hard = rl.rlim_max;
    rlim_t need = (rlim_t)want + LB_FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t raised = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        struct rlimit up = {raised, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = raised;
    }
    out->soft_after = rl.rlim_cur;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        out->connections = want;
    else /* at least a few: the store's own reserve is generous */
        out->connections = rl.rlim_cur > LB_FD_RESERVE + 16 ? (size_t)(rl.rlim_cur - LB_FD_RESERVE) : 16;
    return 0;
}
