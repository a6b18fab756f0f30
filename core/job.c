/* job.c: the job's lifetime. */
#include "job.h"

#include <stdlib.h>

void lb_job_free(lb_outbox_job *job)
{
    if (!job)
        return;
    free(job->account);
    free(job->integration);
    free(job->lead_email);
    free(job->action);
    free(job->params_json);
    free(job->lead_json);
    free(job->idempotency_key);
    free(job->last_reason);
    free(job);
}
