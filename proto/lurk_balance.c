/* SPDX-License-Identifier: Apache-2.0 */
#include "lurk_balance.h"

static int lurk_balance_tier(const lurk_balance_view *s)
{
    if (!s->down)
        return s->connected ? 0 : 1;
    return 2;
}

int lurk_balance_pick(const lurk_balance_view *v, size_t n, uint32_t tried, unsigned int rr)
{
    int best = -1;

    if (n > LURK_BALANCE_MAX_SERVERS)
        n = LURK_BALANCE_MAX_SERVERS;
    for (size_t k = 0; k < n; k++) {
        size_t i = (rr + k) % n;

        if ((tried & (1u << i)) != 0)
            continue;
        /* First in rotation order wins ties: that is the spreading. */
        if (best < 0 || lurk_balance_tier(&v[i]) < lurk_balance_tier(&v[best])
            || (lurk_balance_tier(&v[i]) == lurk_balance_tier(&v[best])
                && v[i].inflight < v[best].inflight))
            best = (int)i;
    }
    return best;
}

int lurk_balance_backoff(int prev_ms)
{
    if (prev_ms < LURK_BALANCE_BACKOFF_MIN_MS)
        return LURK_BALANCE_BACKOFF_MIN_MS;
    return prev_ms >= LURK_BALANCE_BACKOFF_MAX_MS / 2 ? LURK_BALANCE_BACKOFF_MAX_MS : prev_ms * 2;
}
