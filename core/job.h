/* job.h: one provider action queued for one lead (a row of the outbox).
 *
 * Jobs are made in the transaction that stores their event, one per action of
 * each matching segmentation, with an idempotency key "<event>:<segmentation>:<action index>"
 * and an order key "<integration>\x1f<lead email>": jobs of one order key run
 * strictly one at a time, in id order. */
#ifndef LB_JOB_H
#define LB_JOB_H

#include <stdint.h>

typedef enum lb_job_state {
    LB_JOB_READY = 1, /* waiting for next_attempt_at and its turn */
    LB_JOB_DONE = 2,  /* the provider confirmed it */
    LB_JOB_DEAD = 3,  /* permanent failure, or attempts/age exhausted: on the dead-letter list */
} lb_job_state;

typedef struct lb_outbox_job {
    int64_t id;                /* the store's id; 0 until stored */
    char *account;
    char *integration;         /* the integration id inside the account */
    char *lead_email;
    char *action;              /* a provider action name, e.g. "tag_add" */
    char *params_json;         /* {"tag": "buyers"}: string values only */
    char *lead_json;           /* {"name","first_name","last_name","phone","billet_url"} as known */
    char *idempotency_key;
    int64_t event_id;
    int64_t segmentation_id;
    int action_index;
    lb_job_state state;
    int attempts;              /* attempts that counted (rate-limit answers do not) */
    int64_t created_at_ms;
    int64_t next_attempt_at_ms;
    int last_status;           /* listings only: the last attempt's HTTP status */
    char *last_reason;         /* listings only: the last attempt's reason, or NULL */
} lb_outbox_job;

void lb_job_free(lb_outbox_job *job);

/* What one attempt did, as the dispatcher records it (one writer task). */
typedef struct lb_job_outcome {
    int64_t job_id;
    lb_job_state new_state;
    int attempts;
    int64_t next_attempt_at_ms;
    int64_t at_ms;
    int http_status;
    const char *outcome;       /* "ok" | "retry" | "rate_limited" | "fail" | "auth" | "timeout" | "dead" */
    const char *reason;        /* short, no secrets */
    const char *provider_ref;  /* contact id to remember for (integration, lead), or NULL */
    /* the lead-state fact this success establishes, e.g. "tag_add:buyers"; NULL if none */
    const char *fact;
    const char *account, *integration, *lead_email;
} lb_job_outcome;

#endif
