/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics in Prometheus text format (version 0.0.4). The registry is
 * thread-safe (one short mutex per update); rendering takes a snapshot.
 * Label values come from the configuration (key ids, group names) and
 * from fixed sets (operations, statuses, reasons): a client cannot add a
 * label value, so the number of series stays bounded.
 */
#ifndef KS_METRICS_H
#define KS_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ks_metrics ks_metrics;

/* Upper bounds of the latency histogram, in microseconds (then +Inf). */
#define KS_METRICS_N_BUCKETS 14

ks_metrics *ks_metrics_new(void);
void ks_metrics_free(ks_metrics *m);

/* One answered request: `key` NULL or "" for none. */
void ks_metrics_request(ks_metrics *m, const char *op, const char *key, const char *group,
                        const char *result, uint64_t latency_us);

/* One refusal by a short reason token (not_permitted, rate_group, replay, ...). */
void ks_metrics_refusal(ks_metrics *m, const char *reason);

/* What the server knows at scrape time. */
typedef struct {
    unsigned int in_flight;
    unsigned int max_inflight;
    size_t keys;
    uint64_t epoch;
    uint64_t config_loads;     /* successful loads, the first included */
    uint64_t config_failures;  /* rejected reloads */
    double config_loaded_time; /* Unix time of the last successful load */
    size_t n_groups;
    const char *const *group_names;
    const unsigned int *group_connections;
    uint64_t audit_lines;
    uint64_t audit_failures;
    size_t replay_entries;
    uint64_t connections_refused;
} ks_metrics_gauges;

/* The whole exposition, malloc'ed (free it); NULL when out of memory. */
char *ks_metrics_render(ks_metrics *m, const ks_metrics_gauges *g, size_t *len);

/* Counter value of one requests_total series (tests). */
uint64_t ks_metrics_requests(ks_metrics *m, const char *op, const char *key, const char *group,
                             const char *result);
uint64_t ks_metrics_refusals(ks_metrics *m, const char *reason);

#endif
