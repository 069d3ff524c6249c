/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Limits as pure decisions: token buckets (rate limits per edge group and
 * per key), the "log once per interval" rule for refusals, and the
 * in-flight admission rule. No clock, no lock, no I/O: the caller passes
 * the time in microseconds and serialises access to each object.
 */
#ifndef KS_LIMITS_H
#define KS_LIMITS_H

#include <stdint.h>

/* Largest rate and burst accepted in the configuration. */
#define KS_LIMITS_MAX_RATE 1000000u

/*
 * A token bucket: `rate` tokens per second, at most `burst` banked; each
 * request takes one. rate 0 means unlimited. Tokens are kept in millionths
 * so that integer arithmetic is exact enough for any rate.
 */
typedef struct {
    uint32_t rate;
    uint32_t burst;
    uint64_t micro_tokens; /* tokens x 1e6 */
    uint64_t last_us;
} ks_bucket;

/* Start full: a burst is available at once. burst 0 is taken as rate (or 1). */
void ks_bucket_init(ks_bucket *b, uint32_t rate, uint32_t burst, uint64_t now_us);

/* 1: take a token (allowed); 0: over the limit, nothing taken. */
int ks_bucket_take(ks_bucket *b, uint64_t now_us);

/*
 * Once per interval: the first event logs, then the following ones are
 * only counted until `interval_us` has passed; the next event then logs
 * with the count of the events it stands for (itself included).
 */
typedef struct {
    uint64_t interval_us;
    uint64_t last_us;
    uint64_t pending; /* events not yet reported */
    int started;
} ks_ratelog;

void ks_ratelog_init(ks_ratelog *r, uint64_t interval_us);

/* 1 when a line should be written now; *count then holds the events it covers. */
int ks_ratelog_hit(ks_ratelog *r, uint64_t now_us, uint64_t *count);

typedef enum {
    KS_ADMIT_OK = 0,
    KS_ADMIT_TOTAL,      /* max_inflight reached */
    KS_ADMIT_CONNECTION, /* max_inflight_per_conn reached */
    KS_ADMIT_GROUP       /* the edge group's max_inflight reached */
} ks_admit;

/*
 * Admit one more request given what is in flight now (not counting it):
 * on the whole key server, in the request's edge group, on its
 * connection. A maximum of 0 means no limit. The widest limit reached is
 * the one reported: total, then group, then connection.
 */
ks_admit ks_limits_admit(unsigned int total, unsigned int max_total, unsigned int group,
                         unsigned int max_group, unsigned int conn, unsigned int max_conn);

#endif
