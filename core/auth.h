/* auth.h: matching presented tokens to accounts, in constant time. */
#ifndef LB_AUTH_H
#define LB_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Equal without an early exit, so the time taken tells nothing of how much
 * of the secret matched (it depends only on the presented length). */
bool lb_token_equal(const char *presented, size_t presented_len, const char *expected);

/* The account whose hottok / API token this is, or NULL. Every account is
 * compared, whether or not an earlier one matched. */
const lb_account *lb_account_by_hottok(const lb_config *cfg, const char *token, size_t len);
const lb_account *lb_account_by_api_token(const lb_config *cfg, const char *token, size_t len);

#endif
