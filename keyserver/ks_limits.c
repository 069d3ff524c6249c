/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Limits: see ks_limits.h.
 */
#include "ks_limits.h"

#define KS_MICRO 1000000ull

void ks_bucket_init(ks_bucket *b, uint32_t rate, uint32_t burst, uint64_t now_us)
{
    if (rate > KS_LIMITS_MAX_RATE)
        rate = KS_LIMITS_MAX_RATE;
    if (burst == 0)
        burst = rate > 0 ? rate : 1;
    if (burst > KS_LIMITS_MAX_RATE)
        burst = KS_LIMITS_MAX_RATE;
    b->rate = rate;
    b->burst = burst;
    b->micro_tokens = (uint64_t)burst * KS_MICRO;
    b->last_us = now_us;
}

int ks_bucket_take(ks_bucket *b, uint64_t now_us)
{
    uint64_t cap, elapsed;

    if (b->rate == 0)
        return 1;
    cap = (uint64_t)b->burst * KS_MICRO;
    if (now_us > b->last_us) {
        elapsed = now_us - b->last_us;
        /* Beyond the time to fill the bucket, more elapsed time adds nothing. */
        if (elapsed > cap / b->rate + 1)
            elapsed = cap / b->rate + 1;
        b->micro_tokens += elapsed * b->rate; /* us x tokens/s = micro-tokens */
        if (b->micro_tokens > cap)
            b->micro_tokens = cap;
        b->last_us = now_us;
    }
    /* A clock that went backwards (it should not: monotonic) refills nothing. */
    if (b->micro_tokens < KS_MICRO)
        return 0;
    b->micro_tokens -= KS_MICRO;
    return 1;
}

void ks_ratelog_init(ks_ratelog *r, uint64_t interval_us)
{
    r->interval_us = interval_us;
    r->last_us = 0;
    r->pending = 0;
    r->started = 0;
}

int ks_ratelog_hit(ks_ratelog *r, uint64_t now_us, uint64_t *count)
{
    r->pending++;
    if (r->started && now_us >= r->last_us && now_us - r->last_us < r->interval_us)
        return 0;
    r->started = 1;
    r->last_us = now_us;
    *count = r->pending;
    r->pending = 0;
    return 1;
}

ks_admit ks_limits_admit(unsigned int total, unsigned int max_total, unsigned int group,
                         unsigned int max_group, unsigned int conn, unsigned int max_conn)
{
    if (max_total != 0 && total >= max_total)
        return KS_ADMIT_TOTAL;
    if (max_group != 0 && group >= max_group)
        return KS_ADMIT_GROUP;
    if (max_conn != 0 && conn >= max_conn)
        return KS_ADMIT_CONNECTION;
    return KS_ADMIT_OK;
}
