/* auth.c: constant-time token comparison and account lookup. */
#include "auth.h"

#include <string.h>

bool lb_token_equal(const char *presented, size_t presented_len, const char *expected)
{
    size_t expected_len = strlen(expected);
    unsigned diff = presented_len != expected_len;
    if (expected_len == 0)
        return false;
    for (size_t i = 0; i < presented_len; i++)
        diff |= (unsigned char)presented[i] ^ (unsigned char)expected[i % expected_len];
    return diff == 0;
}

static const lb_account *lookup(const lb_config *cfg, const char *token, size_t len, bool hottok)
{
    const lb_account *found = NULL;
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        const lb_account *a = &cfg->accounts[i];
        if (lb_token_equal(token, len, hottok ? a->hottok : a->api_token) && !found)
            found = a;
    }
    return found;
}

const lb_account *lb_account_by_hottok(const lb_config *cfg, const char *token, size_t len)
{
    return lookup(cfg, token, len, true);
}

const lb_account *lb_account_by_api_token(const lb_config *cfg, const char *token, size_t len)
{
    return lookup(cfg, token, len, false);
}
