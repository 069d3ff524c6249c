/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics: see ks_metrics.h.
 */
#include "ks_metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lurk_wire.h"

#define KS_METRICS_HASH 256u

static const uint64_t ks_metrics_bounds_us[KS_METRICS_N_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000,
};

/* One latency histogram per operation name (lurk_op_name_at), "request" last. */
#define KS_METRICS_N_OPS LURK_OP_NAMES

typedef struct ks_series {
    struct ks_series *next;  /* hash chain */
    struct ks_series *order; /* creation order, for a stable output */
    char *labels;            /* NUL-separated values */
    size_t labels_len;
    uint64_t value;
} ks_series;

typedef struct {
    ks_series *hash[KS_METRICS_HASH];
    ks_series *first, *last;
} ks_family;

typedef struct {
    uint64_t buckets[KS_METRICS_N_BUCKETS + 1];
    uint64_t count;
    uint64_t sum_us;
} ks_histogram;

struct ks_metrics {
    pthread_mutex_t lock;
    ks_family requests; /* op, key, group, result */
    ks_family refusals; /* reason */
    ks_histogram latency[KS_METRICS_N_OPS];
};

ks_metrics *ks_metrics_new(void)
{
    ks_metrics *m = calloc(1, sizeof(*m));

    if (m != NULL)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void ks_family_clear(ks_family *f)
{
    ks_series *s = f->first;

    while (s != NULL) {
        ks_series *n = s->order;

        free(s->labels);
        free(s);
        s = n;
    }
    memset(f, 0, sizeof(*f));
}

void ks_metrics_free(ks_metrics *m)
{
    if (m == NULL)
        return;
    ks_family_clear(&m->requests);
    ks_family_clear(&m->refusals);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Join the label values with NULs into buf; returns the length or 0 if too long. */
static size_t ks_labels_join(char *buf, size_t len, const char *const *v, size_t n)
{
    size_t used = 0;

    for (size_t i = 0; i < n; i++) {
        const char *s = v[i] != NULL ? v[i] : "";
        size_t l = strlen(s);

        if (used + l + 1 > len)
            return 0;
        memcpy(buf + used, s, l + 1);
        used += l + 1;
    }
    return used;
}

static uint32_t ks_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The series for these labels, created at 0 when missing; NULL on no memory. */
static ks_series *ks_family_get(ks_family *f, const char *labels, size_t len, int create)
{
    uint32_t h = ks_hash(labels, len) % KS_METRICS_HASH;
    ks_series *s;

    for (s = f->hash[h]; s != NULL; s = s->next)
        if (s->labels_len == len && memcmp(s->labels, labels, len) == 0)
            return s;
    if (!create || (s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    if ((s->labels = malloc(len)) == NULL) {
        free(s);
        return NULL;
    }
    memcpy(s->labels, labels, len);
    s->labels_len = len;
    s->next = f->hash[h];
    f->hash[h] = s;
    if (f->last != NULL)
        f->last->order = s;
    else
        f->first = s;
    f->last = s;
    return s;
}

static size_t ks_metrics_op_index(const char *op)
{
    for (size_t i = 0; i < KS_METRICS_N_OPS; i++)
        if (op != NULL && strcmp(op, lurk_op_name_at(i)) == 0)
            return i;
    return KS_METRICS_N_OPS - 1;
}

void ks_metrics_request(ks_metrics *m, const char *op, const char *key, const char *group,
                        const char *result, uint64_t latency_us)
{
    const char *v[4] = { lurk_op_name_at(ks_metrics_op_index(op)), key, group, result };
    char labels[512];
    size_t len = ks_labels_join(labels, sizeof(labels), v, 4);
    ks_histogram *h = &m->latency[ks_metrics_op_index(op)];
    ks_series *s;
    size_t b = 0;

    while (b < KS_METRICS_N_BUCKETS && latency_us > ks_metrics_bounds_us[b])
        b++;
    pthread_mutex_lock(&m->lock);
    if (len > 0 && (s = ks_family_get(&m->requests, labels, len, 1)) != NULL)
        s->value++;
    h->buckets[b]++;
    h->count++;
    h->sum_us += latency_us;
    pthread_mutex_unlock(&m->lock);
}

void ks_metrics_refusal(ks_metrics *m, const char *reason)
{
    const char *v[1] = { reason };
    char labels[128];
    size_t len = ks_labels_join(labels, sizeof(labels), v, 1);
    ks_series *s;

    if (len == 0)
        return;
    pthread_mutex_lock(&m->lock);
    if ((s = ks_family_get(&m->refusals, labels, len, 1)) != NULL)
        s->value++;
    pthread_mutex_unlock(&m->lock);
}

uint64_t ks_metrics_requests(ks_metrics *m, const char *op, const char *key, const char *group,
                             const char *result)
{
    const char *v[4] = { op, key, group, result };
    char labels[512];
    size_t len = ks_labels_join(labels, sizeof(labels), v, 4);
    ks_series *s;
    uint64_t n = 0;

    pthread_mutex_lock(&m->lock);
    if (len > 0 && (s = ks_family_get(&m->requests, labels, len, 0)) != NULL)
        n = s->value;
    pthread_mutex_unlock(&m->lock);
    return n;
}

uint64_t ks_metrics_refusals(ks_metrics *m, const char *reason)
{
    const char *v[1] = { reason };
    char labels[128];
    size_t len = ks_labels_join(labels, sizeof(labels), v, 1);
    ks_series *s;
    uint64_t n = 0;

    pthread_mutex_lock(&m->lock);
    if (len > 0 && (s = ks_family_get(&m->refusals, labels, len, 0)) != NULL)
        n = s->value;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* ---- rendering --------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} ks_out;

static void ks_out_printf(ks_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ks_out_printf(ks_out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        {
            size_t ncap = (o->cap + (size_t)n + 1) * 2;
            char *g = realloc(o->buf, ncap);

            if (g == NULL) {
                o->oom = 1;
                return;
            }
            o->buf = g;
            o->cap = ncap;
        }
    }
}

/* A label value, escaped as the text format says (\\, \", \n). */
static void ks_out_label(ks_out *o, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\')
            ks_out_printf(o, "\\\\");
        else if (*v == '"')
            ks_out_printf(o, "\\\"");
        else if (*v == '\n')
            ks_out_printf(o, "\\n");
        else
            ks_out_printf(o, "%c", *v);
    }
}

static void ks_out_labels(ks_out *o, const char *const *names, size_t n, const char *values)
{
    const char *v = values;

    ks_out_printf(o, "{");
    for (size_t i = 0; i < n; i++) {
        ks_out_printf(o, "%s%s=\"", i ? "," : "", names[i]);
        ks_out_label(o, v);
        ks_out_printf(o, "\"");
        v += strlen(v) + 1;
    }
    ks_out_printf(o, "}");
}

static void ks_out_head(ks_out *o, const char *name, const char *type, const char *help)
{
    ks_out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *ks_metrics_render(ks_metrics *m, const ks_metrics_gauges *g, size_t *len)
{
    static const char *const req_labels[] = { "op", "key", "group", "result" };
    static const char *const ref_labels[] = { "reason" };
    ks_out o = { NULL, 0, 0, 0 };

    if ((o.buf = malloc(o.cap = 8192)) == NULL)
        return NULL;
    o.buf[0] = '\0';
    pthread_mutex_lock(&m->lock);
    ks_out_head(&o, "lurk_keyserver_requests_total", "counter",
                "Requests answered, by operation, key, edge group and result status.");
    for (ks_series *s = m->requests.first; s != NULL; s = s->order) {
        ks_out_printf(&o, "lurk_keyserver_requests_total");
        ks_out_labels(&o, req_labels, 4, s->labels);
        ks_out_printf(&o, " %llu\n", (unsigned long long)s->value);
    }
    ks_out_head(&o, "lurk_keyserver_refusals_total", "counter", "Requests refused, by reason.");
    for (ks_series *s = m->refusals.first; s != NULL; s = s->order) {
        ks_out_printf(&o, "lurk_keyserver_refusals_total");
        ks_out_labels(&o, ref_labels, 1, s->labels);
        ks_out_printf(&o, " %llu\n", (unsigned long long)s->value);
    }
    ks_out_head(&o, "lurk_keyserver_request_duration_seconds", "histogram",
                "Time from receiving a request to having its answer, by operation.");
    for (size_t i = 0; i < KS_METRICS_N_OPS; i++) {
        const ks_histogram *h = &m->latency[i];
        uint64_t cum = 0;

        if (h->count == 0)
            continue;
        for (size_t b = 0; b <= KS_METRICS_N_BUCKETS; b++) {
            cum += h->buckets[b];
            if (b < KS_METRICS_N_BUCKETS)
                ks_out_printf(&o,
                              "lurk_keyserver_request_duration_seconds_bucket{op=\"%s\","
                              "le=\"%g\"} %llu\n",
                              lurk_op_name_at(i), (double)ks_metrics_bounds_us[b] / 1e6,
                              (unsigned long long)cum);
            else
                ks_out_printf(&o,
                              "lurk_keyserver_request_duration_seconds_bucket{op=\"%s\","
                              "le=\"+Inf\"} %llu\n",
                              lurk_op_name_at(i), (unsigned long long)cum);
        }
        ks_out_printf(&o, "lurk_keyserver_request_duration_seconds_sum{op=\"%s\"} %.6f\n",
                      lurk_op_name_at(i), (double)h->sum_us / 1e6);
        ks_out_printf(&o, "lurk_keyserver_request_duration_seconds_count{op=\"%s\"} %llu\n",
                      lurk_op_name_at(i), (unsigned long long)h->count);
    }
    pthread_mutex_unlock(&m->lock);

    ks_out_head(&o, "lurk_keyserver_in_flight", "gauge", "Requests received and not yet answered.");
    ks_out_printf(&o, "lurk_keyserver_in_flight %u\n", g->in_flight);
    ks_out_head(&o, "lurk_keyserver_in_flight_max", "gauge", "The max_inflight limit.");
    ks_out_printf(&o, "lurk_keyserver_in_flight_max %u\n", g->max_inflight);
    ks_out_head(&o, "lurk_keyserver_keys", "gauge", "Keys loaded.");
    ks_out_printf(&o, "lurk_keyserver_keys %zu\n", g->keys);
    ks_out_head(&o, "lurk_keyserver_config_info", "gauge",
                "The configuration epoch in force (as in Capabilities), as a label.");
    ks_out_printf(&o, "lurk_keyserver_config_info{epoch=\"%016llx\"} 1\n",
                  (unsigned long long)g->epoch);
    ks_out_head(&o, "lurk_keyserver_config_epoch", "gauge",
                "The configuration epoch's low 48 bits (exact in a float).");
    ks_out_printf(&o, "lurk_keyserver_config_epoch %llu\n",
                  (unsigned long long)(g->epoch & 0xffffffffffffull));
    ks_out_head(&o, "lurk_keyserver_config_loads_total", "counter",
                "Configurations loaded (start-up and accepted reloads).");
    ks_out_printf(&o, "lurk_keyserver_config_loads_total %llu\n",
                  (unsigned long long)g->config_loads);
    ks_out_head(&o, "lurk_keyserver_config_reload_failures_total", "counter",
                "Reloads rejected (the previous configuration stayed).");
    ks_out_printf(&o, "lurk_keyserver_config_reload_failures_total %llu\n",
                  (unsigned long long)g->config_failures);
    ks_out_head(&o, "lurk_keyserver_config_loaded_timestamp_seconds", "gauge",
                "When the configuration in force was loaded.");
    ks_out_printf(&o, "lurk_keyserver_config_loaded_timestamp_seconds %.3f\n",
                  g->config_loaded_time);
    ks_out_head(&o, "lurk_keyserver_connections", "gauge", "Edge connections, by edge group.");
    for (size_t i = 0; i < g->n_groups; i++) {
        ks_out_printf(&o, "lurk_keyserver_connections{group=\"");
        ks_out_label(&o, g->group_names[i]);
        ks_out_printf(&o, "\"} %u\n", g->group_connections[i]);
    }
    ks_out_head(&o, "lurk_keyserver_connections_refused_total", "counter",
                "Connections closed at once (max_connections, shutting down).");
    ks_out_printf(&o, "lurk_keyserver_connections_refused_total %llu\n",
                  (unsigned long long)g->connections_refused);
    ks_out_head(&o, "lurk_keyserver_replay_entries", "gauge",
                "TLS contexts remembered by the replay window.");
    ks_out_printf(&o, "lurk_keyserver_replay_entries %zu\n", g->replay_entries);
    ks_out_head(&o, "lurk_keyserver_audit_lines_total", "counter", "Audit lines written.");
    ks_out_printf(&o, "lurk_keyserver_audit_lines_total %llu\n",
                  (unsigned long long)g->audit_lines);
    ks_out_head(&o, "lurk_keyserver_audit_write_failures_total", "counter",
                "Audit lines that could not be written.");
    ks_out_printf(&o, "lurk_keyserver_audit_write_failures_total %llu\n",
                  (unsigned long long)g->audit_failures);
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}
