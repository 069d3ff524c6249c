/*
 * The nng server: see ks_server.h.
 *
 * Request path. A fixed set of slots, each an nng context with its own
 * aio, receive requests (max_inflight of them plus a few spare). When a
 * request arrives its slot's callback decides at once, without blocking:
 * over max_inflight in total or max_inflight_per_conn on its connection,
 * it answers OVERLOADED right there; otherwise it queues the slot for
 * the workers. So nothing waits in a queue of ours beyond max_inflight,
 * and nng itself holds at most one unread request per connection (it
 * stops reading a connection until a context takes its message), with
 * max_connections connections.
 *
 * A worker takes a slot, answers it with the runtime current at that
 * moment (configuration, keys, grants, buckets), sends the answer, and
 * the slot receives again. Nothing is locked around a signature.
 */
#include "ks_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "ks_audit.h"
#include "ks_http.h"
#include "ks_limits.h"
#include "ks_log.h"
#include "ks_metrics.h"
#include "ks_replay.h"
#include "lurk_transport.h"
#include "lurk_wire.h"

/* nng counts the SP header (a 4-byte request id per hop) against its limit. */
#define KS_SERVER_SP_HEADROOM 64u
/* An edge that stops reading must not hold a slot forever. */
#define KS_SERVER_SEND_TIMEOUT_MS 10000
/* Slots beyond max_inflight, to answer OVERLOADED while all others work. */
#define KS_SERVER_SPARE_SLOTS 8u
/* Overload and refusal summaries: at most one line per reason per interval. */
#define KS_SERVER_LOG_INTERVAL_US 10000000ull
#define KS_SERVER_PIPE_BUCKETS 1024u
#define KS_SERVER_GROUP_NAME 72

#define ST(x) LURK__V1__STATUS__STATUS_##x

static uint64_t ks_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the runtime: everything a reload replaces ------------------------- */

typedef struct {
    const ks_config_group *g;
    ks_bucket bucket;
    ks_ratelog rlog;
    uint32_t tag;               /* hash of the name: a retry's group across reloads */
} ks_gstate;

typedef struct {
    ks_bucket bucket;
    ks_ratelog rlog;
} ks_kstate;

typedef struct ks_runtime {
    atomic_int refs;
    ks_config *cfg;
    ks_keyring *kr;
    ks_ops *ops;
    ks_gstate *groups;
    ks_kstate *keys;            /* same order as kr->keys */
    int in_process;             /* every key is OpenSSL's own: answer in nng's callback */
    pthread_mutex_t lock;       /* the buckets and their log limiters */
    double loaded_time;
} ks_runtime;

static uint32_t ks_tag(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void ks_runtime_free(ks_runtime *rt)
{
    if (rt == NULL)
        return;
    ks_ops_free(rt->ops);
    ks_keys_free(rt->kr);
    ks_config_free(rt->cfg);
    free(rt->groups);
    free(rt->keys);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
}

static ks_runtime *ks_runtime_new(ks_config *cfg, ks_keyring *kr, ks_ops *ops)
{
    ks_runtime *rt = calloc(1, sizeof(*rt));
    uint64_t now = ks_now_us();
    struct timespec ts;

    if (rt == NULL)
        return NULL;
    pthread_mutex_init(&rt->lock, NULL);
    if ((rt->groups = calloc(cfg->n_groups ? cfg->n_groups : 1, sizeof(*rt->groups))) == NULL
        || (rt->keys = calloc(kr->n ? kr->n : 1, sizeof(*rt->keys))) == NULL) {
        free(rt->groups);
        free(rt->keys);
        pthread_mutex_destroy(&rt->lock);
        free(rt);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_groups; i++) {
        ks_gstate *gs = &rt->groups[i];

        gs->g = &cfg->groups[i];
        gs->tag = ks_tag(gs->g->name);
        ks_bucket_init(&gs->bucket, gs->g->rate, gs->g->burst, now);
        ks_ratelog_init(&gs->rlog, KS_SERVER_LOG_INTERVAL_US);
    }
    for (size_t i = 0; i < kr->n; i++) {
        uint32_t rate = cfg->key_rate, burst = cfg->key_burst;

        for (size_t j = 0; j < cfg->n_keys; j++) {
            if (strcmp(cfg->keys[j].id, kr->keys[i].id) == 0) {
                rate = cfg->keys[j].rate;
                burst = cfg->keys[j].burst;
            }
        }
        ks_bucket_init(&rt->keys[i].bucket, rate, burst, now);
        ks_ratelog_init(&rt->keys[i].rlog, KS_SERVER_LOG_INTERVAL_US);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    rt->loaded_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    rt->in_process = 1;
    for (size_t i = 0; i < kr->n; i++)
        rt->in_process &= ks_keys_in_process(&kr->keys[i]);
    rt->cfg = cfg;
    rt->kr = kr;
    rt->ops = ops;
    atomic_init(&rt->refs, 1);
    return rt;
}

static ks_gstate *ks_runtime_group(ks_runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->cfg->n_groups; i++)
        if (strcmp(rt->groups[i].g->name, name) == 0)
            return &rt->groups[i];
    return NULL;
}

/* ---- server state ------------------------------------------------------- */

/* A listener we opened, and the group and TLS material it was opened with. */
typedef struct ks_lst {
    struct ks_lst *next;
    nng_listener l;
    char *url;
    char group[KS_SERVER_GROUP_NAME];
    int tls;
    unsigned char sig[32];      /* SHA-256 of group name and TLS files */
} ks_lst;

/* A connected edge. */
typedef struct ks_conn {
    struct ks_conn *next;
    uint32_t pipe_id;
    char peer[128];
    char group[KS_SERVER_GROUP_NAME];
    unsigned int inflight;
} ks_conn;

typedef enum { KS_SLOT_RECV, KS_SLOT_QUEUED, KS_SLOT_SEND, KS_SLOT_IDLE } ks_slot_state;

typedef struct ks_slot {
    struct ks_server *srv;
    struct ks_slot *next;       /* work queue */
    nng_ctx ctx;
    nng_aio *aio;
    int ctx_open;
    ks_slot_state state;
    int admitted;               /* counted in in-flight totals */
    uint32_t pipe_id;
    nng_msg *msg;
    uint64_t t0_us;
    struct timespec t0_real;
    char peer[128];
    char group[KS_SERVER_GROUP_NAME];
} ks_slot;

struct ks_server {
    nng_socket sock;
    int sock_open;
    int debug_delay_ms;

    pthread_mutex_t rt_lock;
    ks_runtime *rt;

    pthread_mutex_t lst_lock;
    ks_lst *lsts;

    pthread_mutex_t conn_lock;
    ks_conn *conns[KS_SERVER_PIPE_BUCKETS];
    unsigned int n_conns;
    atomic_ullong conns_refused;

    ks_slot *slots;
    size_t n_slots;
    unsigned int max_slots_inflight;   /* max_inflight at start: slots allocated */

    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    ks_slot *q_head, *q_tail;
    int q_shutdown;
    unsigned int q_active;      /* workers between taking a request and coming back */
    atomic_uint inline_active;  /* requests being answered in nng's callbacks */
    pthread_t *workers;
    size_t n_workers;

    /* in-flight: admitted (queued or being answered) and busy (any slot not receiving) */
    pthread_mutex_t busy_lock;
    pthread_cond_t busy_cond;
    unsigned int admitted;
    unsigned int busy;
    unsigned int peak;
    atomic_int draining;
    atomic_int closed;

    pthread_mutex_t lim_lock;   /* server-wide refusal log limiters */
    ks_ratelog rlog_total, rlog_conn, rlog_replay_full, rlog_replay_full_random;

    pthread_mutex_t replay_lock;
    ks_replay *replay;
    unsigned char replay_secret[32];

    ks_audit *audit;
    ks_metrics *metrics;
    ks_http *http;
    atomic_ullong config_loads;
    atomic_ullong config_failures;
    atomic_ullong answered;
    atomic_ullong refused;
};

static ks_runtime *ks_server_rt(ks_server *srv)
{
    ks_runtime *rt;

    pthread_mutex_lock(&srv->rt_lock);
    rt = srv->rt;
    atomic_fetch_add(&rt->refs, 1);
    pthread_mutex_unlock(&srv->rt_lock);
    return rt;
}

static void ks_runtime_release(ks_runtime *rt)
{
    if (rt != NULL && atomic_fetch_sub(&rt->refs, 1) == 1)
        ks_runtime_free(rt);
}

/* ---- peers and connections --------------------------------------------- */

static void ks_server_format_addr(const nng_sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    switch (sa->s_family) {
    case NNG_AF_INET:
        /* nng keeps address and port in network byte order, like sockaddr_in. */
        if (inet_ntop(AF_INET, &sa->s_in.sa_addr, host, sizeof(host)) == NULL)
            break;
        snprintf(buf, len, "%s:%u", host, (unsigned int)ntohs(sa->s_in.sa_port));
        return;
    case NNG_AF_INET6:
        if (inet_ntop(AF_INET6, sa->s_in6.sa_addr, host, sizeof(host)) == NULL)
            break;
        snprintf(buf, len, "[%s]:%u", host, (unsigned int)ntohs(sa->s_in6.sa_port));
        return;
    case NNG_AF_IPC:
        snprintf(buf, len, "ipc://%.96s", sa->s_ipc.sa_path);
        return;
    default:
        break;
    }
    snprintf(buf, len, "an unknown address");
}

/* "127.0.0.1:40512", or for IPC the peer process, which the kernel vouches for. */
static void ks_server_peer(nng_pipe p, char *buf, size_t len)
{
    nng_sockaddr sa;
    uint64_t uid, pid;

    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0) {
        snprintf(buf, len, "pipe %d", nng_pipe_id(p));
        return;
    }
    if (sa.s_family == NNG_AF_IPC && nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) == 0
        && nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0) {
        snprintf(buf, len, "ipc-pid-%llu-uid-%llu", (unsigned long long)pid,
                 (unsigned long long)uid);
        return;
    }
    ks_server_format_addr(&sa, buf, len);
}

/* The group and URL of the listener a pipe came through; 0 if it is not ours. */
static int ks_server_listener_info(ks_server *srv, nng_pipe p, char *group, char *url,
                                   size_t urllen, int *tls)
{
    int id = nng_listener_id(nng_pipe_listener(p)), found = 0;

    pthread_mutex_lock(&srv->lst_lock);
    for (ks_lst *l = srv->lsts; l != NULL; l = l->next) {
        if (nng_listener_id(l->l) == id) {
            snprintf(group, KS_SERVER_GROUP_NAME, "%s", l->group);
            snprintf(url, urllen, "%s", l->url);
            *tls = l->tls;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&srv->lst_lock);
    return found;
}

static void ks_conn_counts(ks_server *srv, const ks_runtime *rt, unsigned int *per_group)
{
    pthread_mutex_lock(&srv->conn_lock);
    for (size_t b = 0; b < KS_SERVER_PIPE_BUCKETS; b++)
        for (ks_conn *c = srv->conns[b]; c != NULL; c = c->next)
            for (size_t i = 0; i < rt->cfg->n_groups; i++)
                if (strcmp(rt->cfg->groups[i].name, c->group) == 0)
                    per_group[i]++;
    pthread_mutex_unlock(&srv->conn_lock);
}

static void ks_server_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    ks_server *srv = arg;
    uint32_t id = (uint32_t)nng_pipe_id(p);
    char peer[128], group[KS_SERVER_GROUP_NAME] = "?", url[256] = "?";
    bool verified = false;
    int tls = 0, known;

    ks_server_peer(p, peer, sizeof(peer));
    known = ks_server_listener_info(srv, p, group, url, sizeof(url), &tls);
    switch (ev) {
    case NNG_PIPE_EV_ADD_PRE: {
        ks_runtime *rt;
        unsigned int max_conns, n;

        /*
         * Belt and braces: the TLS config already requires a verified
         * client certificate; never let an unverified TLS peer through.
         */
        if (!known || (tls && (nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified) != 0
                               || !verified))) {
            ks_log(KS_LOG_WARN, "edge %s on %s: %s, closing", peer, url,
                   known ? "TLS peer not verified" : "unknown listener");
            atomic_fetch_add(&srv->conns_refused, 1);
            nng_pipe_close(p);
            return;
        }
        if (atomic_load(&srv->draining)) {
            atomic_fetch_add(&srv->conns_refused, 1);
            nng_pipe_close(p);
            return;
        }
        rt = ks_server_rt(srv);
        max_conns = rt->cfg->max_connections;
        ks_runtime_release(rt);
        pthread_mutex_lock(&srv->conn_lock);
        n = srv->n_conns;
        if (n < max_conns) {
            ks_conn *c = calloc(1, sizeof(*c));

            if (c != NULL) {
                c->pipe_id = id;
                snprintf(c->peer, sizeof(c->peer), "%s", peer);
                snprintf(c->group, sizeof(c->group), "%s", group);
                c->next = srv->conns[id % KS_SERVER_PIPE_BUCKETS];
                srv->conns[id % KS_SERVER_PIPE_BUCKETS] = c;
                srv->n_conns++;
            } else {
                n = max_conns; /* no memory: refuse like a full table */
            }
        }
        pthread_mutex_unlock(&srv->conn_lock);
        if (n >= max_conns) {
            uint64_t count;
            int say;

            pthread_mutex_lock(&srv->lim_lock);
            say = ks_ratelog_hit(&srv->rlog_total, ks_now_us(), &count);
            pthread_mutex_unlock(&srv->lim_lock);
            if (say)
                ks_log(KS_LOG_WARN, "edge %s on %s refused: max_connections (%u) reached", peer,
                       url, max_conns);
            atomic_fetch_add(&srv->conns_refused, 1);
            nng_pipe_close(p);
        }
        break;
    }
    case NNG_PIPE_EV_ADD_POST:
        pthread_mutex_lock(&srv->conn_lock);
        {
            unsigned int n = srv->n_conns;
            int have = 0;

            for (ks_conn *c = srv->conns[id % KS_SERVER_PIPE_BUCKETS]; c != NULL; c = c->next)
                have |= c->pipe_id == id;
            pthread_mutex_unlock(&srv->conn_lock);
            if (have)
                ks_log(KS_LOG_INFO, "edge connected: %s on %s, group %s%s (pipe %u, %u "
                       "connected)", peer, url, group,
                       tls ? ", TLS client certificate verified" : "", id, n);
        }
        break;
    case NNG_PIPE_EV_REM_POST: {
        ks_conn *gone = NULL;
        unsigned int n;

        pthread_mutex_lock(&srv->conn_lock);
        for (ks_conn **pc = &srv->conns[id % KS_SERVER_PIPE_BUCKETS]; *pc != NULL;
             pc = &(*pc)->next) {
            if ((*pc)->pipe_id == id) {
                gone = *pc;
                *pc = gone->next;
                srv->n_conns--;
                break;
            }
        }
        n = srv->n_conns;
        pthread_mutex_unlock(&srv->conn_lock);
        if (gone != NULL) {
            ks_log(KS_LOG_INFO, "edge disconnected: %s, group %s (pipe %u, %u connected)",
                   gone->peer, gone->group, id, n);
            free(gone);
        }
        break;
    }
    default:
        break;
    }
}

/*
 * Count a request on its connection, copying the peer and group; -1 when
 * the connection is not (any more) known. `max_conn` 0: no limit check.
 */
static int ks_conn_enter(ks_server *srv, uint32_t id, unsigned int max_conn, ks_slot *s,
                         unsigned int *was)
{
    int rv = -1;

    pthread_mutex_lock(&srv->conn_lock);
    for (ks_conn *c = srv->conns[id % KS_SERVER_PIPE_BUCKETS]; c != NULL; c = c->next) {
        if (c->pipe_id == id) {
            snprintf(s->peer, sizeof(s->peer), "%s", c->peer);
            snprintf(s->group, sizeof(s->group), "%s", c->group);
            *was = c->inflight;
            if (max_conn == 0 || c->inflight < max_conn)
                c->inflight++;
            rv = 0;
            break;
        }
    }
    pthread_mutex_unlock(&srv->conn_lock);
    return rv;
}

static void ks_conn_leave(ks_server *srv, uint32_t id)
{
    pthread_mutex_lock(&srv->conn_lock);
    for (ks_conn *c = srv->conns[id % KS_SERVER_PIPE_BUCKETS]; c != NULL; c = c->next) {
        if (c->pipe_id == id) {
            if (c->inflight > 0)
                c->inflight--;
            break;
        }
    }
    pthread_mutex_unlock(&srv->conn_lock);
}

/* ---- audit and metrics -------------------------------------------------- */

static const char *ks_scheme_name(const Lurk__V1__Request *req)
{
    const lurk_scheme *s;

    if (req == NULL || req->op_case != LURK__V1__REQUEST__OP_SIGN || req->sign == NULL)
        return req != NULL && req->op_case == LURK__V1__REQUEST__OP_DECRYPT
               ? "tls12_rsa_premaster" : NULL;
    s = lurk_scheme_find(req->sign->scheme);
    return s != NULL ? s->name : "unknown";
}

/* One audit line and the metrics for one answered request. */
static void ks_server_record(ks_server *srv, const ks_runtime *rt, const ks_slot *s,
                             const Lurk__V1__Request *req, const ks_ops_answer *ans)
{
    ks_audit_rec rec;
    uint64_t lat = ks_now_us() - s->t0_us;
    const char *key = req != NULL ? ks_ops_key_id(req) : NULL;
    const char *result = ks_ops_status_token(ans->resp.status);
    const char *op = req != NULL ? ks_ops_name(req) : "request";
    const char *mkey = NULL;

    memset(&rec, 0, sizeof(rec));
    rec.when = s->t0_real;
    rec.group = s->group[0] ? s->group : "?";
    rec.peer = s->peer[0] ? s->peer : "?";
    rec.conn = s->pipe_id;
    rec.request_id = ans->resp.id;
    rec.op = op;
    rec.key = key;
    rec.scheme = ks_scheme_name(req);
    rec.result = result;
    rec.latency_us = lat;
    rec.epoch = rt != NULL ? rt->kr->epoch : 0;
    if (ans->resp.status != ST(OK)) {
        rec.reason = ans->reason != NULL ? ans->reason : ks_ops_reason_of(ans->resp.status);
        rec.detail = ans->resp.detail;
    } else if (ans->reason != NULL) {
        /* A Decrypt answered with random bytes: recorded as the replay it is,
         * with the detail the response leaves out. */
        rec.reason = ans->reason;
        rec.detail = ans->detail;
    }
    ks_audit_write(srv->audit, &rec);
    /* Only configured key ids become label values: a client cannot add series. */
    if (key != NULL && rt != NULL && ks_keys_find(rt->kr, key) != NULL)
        mkey = key;
    ks_metrics_request(srv->metrics, op, mkey != NULL ? mkey : "", rec.group, result, lat);
    if (rec.reason != NULL)
        ks_metrics_refusal(srv->metrics, rec.reason);
    /*
     * The stop summary counts private-key operations only (the metrics
     * count everything): pings from edges' health checks would drown them.
     */
    if (req != NULL && !ks_ops_is_private(req))
        return;
    if (ans->resp.status == ST(OK))
        atomic_fetch_add(&srv->answered, 1);
    else
        atomic_fetch_add(&srv->refused, 1);
}

/* ---- the gate: limits and the replay window ----------------------------- */

typedef struct {
    ks_server *srv;
    ks_runtime *rt;
    ks_gstate *gs;
    const ks_slot *slot;
} ks_gate_ctx;

static void ks_server_replay_digest(const ks_server *srv, const Lurk__V1__Request *req,
                                    uint8_t out[KS_REPLAY_DIGEST_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char op = req->op_case == LURK__V1__REQUEST__OP_SIGN ? 'S' : 'D';
    const uint8_t *data = op == 'S' ? req->sign->tbs.data : req->decrypt->ciphertext.data;
    size_t len = op == 'S' ? req->sign->tbs.len : req->decrypt->ciphertext.len;
    unsigned int olen = 0;

    /*
     * Keyed with a per-process secret: an edge cannot choose inputs that
     * pile up in one chain of the index. The key id is left out on
     * purpose: the same context under another key is no more legitimate.
     */
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(md, srv->replay_secret, sizeof(srv->replay_secret)) != 1
        || EVP_DigestUpdate(md, &op, 1) != 1 || EVP_DigestUpdate(md, data, len) != 1
        || EVP_DigestFinal_ex(md, out, &olen) != 1) {
        /* Cannot happen with the default provider; fail towards "seen". */
        memset(out, 0, KS_REPLAY_DIGEST_LEN);
    }
    EVP_MD_CTX_free(md);
}

/* One warn line per interval: "<msg>: N <outcome>[ since the last such line]". */
static void ks_server_ratelog_v(ks_ratelog *rl, pthread_mutex_t *lock, uint64_t now,
                                const char *outcome, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void ks_server_ratelog_v(ks_ratelog *rl, pthread_mutex_t *lock, uint64_t now,
                                const char *outcome, const char *fmt, va_list ap)
{
    uint64_t count = 0;
    int say;
    char msg[512];

    pthread_mutex_lock(lock);
    say = ks_ratelog_hit(rl, now, &count);
    pthread_mutex_unlock(lock);
    if (!say)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    ks_log(KS_LOG_WARN, "%s: %llu %s%s", msg, (unsigned long long)count, outcome,
           count > 1 ? " since the last such line" : "");
}

static void ks_server_overload_log(ks_ratelog *rl, pthread_mutex_t *lock, uint64_t now,
                                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void ks_server_overload_log(ks_ratelog *rl, pthread_mutex_t *lock, uint64_t now,
                                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ks_server_ratelog_v(rl, lock, now, "refused as overloaded", fmt, ap);
    va_end(ap);
}

static void ks_server_random_log(ks_ratelog *rl, pthread_mutex_t *lock, uint64_t now,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void ks_server_random_log(ks_ratelog *rl, pthread_mutex_t *lock, uint64_t now,
                                 const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ks_server_ratelog_v(rl, lock, now, "answered with random bytes", fmt, ap);
    va_end(ap);
}

static Lurk__V1__Status ks_server_gate(void *arg, const Lurk__V1__Request *req,
                                       const ks_key *key, const char **reason, char *detail,
                                       size_t detail_len, int *answer_random)
{
    ks_gate_ctx *gc = arg;
    ks_server *srv = gc->srv;
    ks_runtime *rt = gc->rt;
    ks_kstate *ks = &rt->keys[key - rt->kr->keys];
    uint64_t now = ks_now_us();
    uint8_t digest[KS_REPLAY_DIGEST_LEN];
    ks_replay_verdict v;
    int decrypt = req->op_case == LURK__V1__REQUEST__OP_DECRYPT;
    int ok_group, ok_key = 1;

    pthread_mutex_lock(&rt->lock);
    ok_group = ks_bucket_take(&gc->gs->bucket, now);
    if (ok_group)
        ok_key = ks_bucket_take(&ks->bucket, now);
    pthread_mutex_unlock(&rt->lock);
    if (!ok_group) {
        *reason = "rate_group";
        snprintf(detail, detail_len, "edge group %s is over its rate limit", gc->gs->g->name);
        ks_server_overload_log(&gc->gs->rlog, &rt->lock, now, "edge group %s over its rate "
                               "limit (rate %u/s, burst %u)", gc->gs->g->name,
                               gc->gs->bucket.rate, gc->gs->bucket.burst);
        return ST(OVERLOADED);
    }
    if (!ok_key) {
        *reason = "rate_key";
        snprintf(detail, detail_len, "key \"%s\" is over its rate limit", key->id);
        ks_server_overload_log(&ks->rlog, &rt->lock, now, "key \"%s\" over its rate limit "
                               "(rate %u/s, burst %u), last from group %s", key->id,
                               ks->bucket.rate, ks->bucket.burst, gc->gs->g->name);
        return ST(OVERLOADED);
    }
    if (rt->cfg->replay_window == 0)
        return ST(OK);
    ks_server_replay_digest(srv, req, digest);
    pthread_mutex_lock(&srv->replay_lock);
    v = ks_replay_check(srv->replay, digest, gc->gs->tag, req->id, now,
                        (uint64_t)rt->cfg->replay_window * 1000000u);
    pthread_mutex_unlock(&srv->replay_lock);
    switch (ks_replay_action_of(v, decrypt ? KS_REPLAY_OP_DECRYPT : KS_REPLAY_OP_SIGN)) {
    case KS_REPLAY_ANSWER:
        if (v != KS_REPLAY_RETRY)
            return ST(OK);
        ks_log(KS_LOG_INFO, "%s key \"%s\" from %s [%s]: retry of request %016llx (same "
               "group, id and bytes): answered again", ks_ops_name(req), key->id,
               gc->slot->peer, gc->gs->g->name, (unsigned long long)req->id);
        ks_metrics_refusal(srv->metrics, "retry_answered");
        return ST(OK);
    case KS_REPLAY_ANSWER_RANDOM:
        /* Counted and audited through *reason, as the refusal it replaces;
         * a replay is logged by ks_ops once answered, a full cache here. */
        if (v == KS_REPLAY_REPLAY) {
            *answer_random = KS_OPS_RANDOM_WARN;
            *reason = "replay";
            snprintf(detail, detail_len, "replay: this ciphertext was already decrypted within "
                     "the replay window (%u s): answered with random bytes",
                     rt->cfg->replay_window);
            return ST(OK);
        }
        *answer_random = KS_OPS_RANDOM_QUIET;
        *reason = "replay_cache_full";
        snprintf(detail, detail_len, "replay cache full: answered with random bytes");
        ks_server_random_log(&srv->rlog_replay_full_random, &srv->lim_lock, now, "replay cache "
                             "full for decrypt (replay_cache = %zu entries within "
                             "replay_window = %u s)",
                             rt->cfg->replay_cache, rt->cfg->replay_window);
        return ST(OK);
    case KS_REPLAY_REFUSE:
        *reason = "replay";
        snprintf(detail, detail_len, "replay: these TLS handshake bytes were already signed "
                 "within the replay window (%u s)", rt->cfg->replay_window);
        return ST(NOT_PERMITTED);
    case KS_REPLAY_REFUSE_FULL:
    default:
        *reason = "replay_cache_full";
        snprintf(detail, detail_len, "replay cache full: too many operations within the "
                 "replay window");
        ks_server_overload_log(&srv->rlog_replay_full, &srv->lim_lock, now, "replay cache full "
                               "(replay_cache = %zu entries within replay_window = %u s)",
                               rt->cfg->replay_cache, rt->cfg->replay_window);
        return ST(OVERLOADED);
    }
}

/* ---- answering ------------------------------------------------------------ */

static nng_msg *ks_server_pack(const ks_slot *s, ks_ops_answer *ans)
{
    nng_msg *reply = NULL;
    size_t size = lurk__v1__response__get_packed_size(&ans->resp);

    if (size > LURK_MAX_MESSAGE) {
        uint64_t id = ans->resp.id;

        ks_log(KS_LOG_ERROR, "answer to %s is %zu bytes, over the LURK limit", s->peer, size);
        ks_ops_answer_clear(ans);
        ks_ops_refuse(ans, id, ST(INTERNAL), "answer over the size limit");
        size = lurk__v1__response__get_packed_size(&ans->resp);
    }
    if (nng_msg_alloc(&reply, size) == 0)
        lurk__v1__response__pack(&ans->resp, nng_msg_body(reply));
    else
        ks_log(KS_LOG_ERROR, "out of memory answering %s", s->peer);
    return reply;
}

/* Decode, decide, answer, record. Runs on a worker. */
static nng_msg *ks_server_answer(ks_server *srv, ks_slot *s)
{
    ks_runtime *rt = ks_server_rt(srv);
    Lurk__V1__Request *req;
    Lurk__V1__Status status;
    const char *why = NULL;
    ks_ops_answer ans;
    nng_msg *reply;
    ks_gstate *gs = ks_runtime_group(rt, s->group);
    char who[220];

    snprintf(who, sizeof(who), "%s [%s]", s->peer, s->group);
    req = lurk_request_decode(nng_msg_body(s->msg), nng_msg_len(s->msg), &status, &why);
    if (req == NULL || status != ST(OK)) {
        /* Answer with the request id when there is one, so the edge can match it. */
        ks_ops_refuse(&ans, req != NULL ? req->id : 0, status, why);
        ks_log(KS_LOG_INFO, "refused %s from %s: %s: %s", req != NULL ? ks_ops_name(req)
               : "request", who, lurk_status_name(status), ans.detail);
    } else if (gs == NULL) {
        /* A connection of a group that a reload removed, not yet closed. */
        ks_ops_refuse(&ans, req->id, ST(NOT_PERMITTED), "edge group no longer configured");
        ks_log(KS_LOG_INFO, "refused %s from %s: edge group \"%s\" no longer configured",
               ks_ops_name(req), who, s->group);
    } else {
        ks_gate_ctx gc = { srv, rt, gs, s };
        ks_ops_call call;

        memset(&call, 0, sizeof(call));
        call.grant = &gs->g->grant;
        call.peer = who;
        call.gate = ks_server_gate;
        call.gate_arg = &gc;
        if (srv->debug_delay_ms > 0 && ks_ops_is_private(req))
            nng_msleep((nng_duration)srv->debug_delay_ms);
        ks_ops_handle_call(rt->ops, &call, req, &ans);
    }
    reply = ks_server_pack(s, &ans);
    ks_server_record(srv, rt, s, req, &ans);
    /*
     * The premaster is wiped here; the copy in `reply` is freed by nng
     * unwiped once sent, which no code of ours can reach.
     */
    ks_ops_answer_clear(&ans);
    if (req != NULL)
        lurk__v1__request__free_unpacked(req, NULL);
    ks_runtime_release(rt);
    return reply;
}

/*
 * Nothing queued and no worker busy: the audit lines waiting in the batch
 * are written now, so an idle server has written them all. With q_lock held.
 */
static int ks_server_idle_locked(const ks_server *srv)
{
    return srv->q_head == NULL && srv->q_active == 0 && atomic_load(&srv->inline_active) == 0;
}

/* A refusal answered from the slot callback (admission), without a worker. */
static nng_msg *ks_server_refuse_now(ks_server *srv, ks_slot *s, Lurk__V1__Status st,
                                     const char *reason, const char *detail)
{
    Lurk__V1__Request *req;
    Lurk__V1__Status dst;
    const char *why = NULL;
    ks_ops_answer ans;
    nng_msg *reply;
    ks_runtime *rt = ks_server_rt(srv);
    int idle;

    req = lurk_request_decode(nng_msg_body(s->msg), nng_msg_len(s->msg), &dst, &why);
    ks_ops_refuse(&ans, req != NULL ? req->id : 0, st, detail);
    ans.reason = reason;
    reply = ks_server_pack(s, &ans);
    ks_server_record(srv, rt, s, dst == ST(OK) ? req : NULL, &ans);
    /*
     * Answered outside the workers: with none busy and nothing queued, no
     * worker will go idle after this line to write it, so write it now.
     */
    pthread_mutex_lock(&srv->q_lock);
    idle = ks_server_idle_locked(srv);
    pthread_mutex_unlock(&srv->q_lock);
    if (idle)
        ks_audit_flush(srv->audit);
    ks_ops_answer_clear(&ans);
    if (req != NULL)
        lurk__v1__request__free_unpacked(req, NULL);
    ks_runtime_release(rt);
    return reply;
}

/* ---- slots ----------------------------------------------------------------- */

static void ks_slot_recv(ks_slot *s)
{
    s->state = KS_SLOT_RECV;
    nng_aio_set_timeout(s->aio, NNG_DURATION_INFINITE);
    nng_ctx_recv(s->ctx, s->aio);
}

static void ks_slot_send(ks_slot *s, nng_msg *reply)
{
    s->state = KS_SLOT_SEND;
    nng_aio_set_msg(s->aio, reply);
    nng_aio_set_timeout(s->aio, KS_SERVER_SEND_TIMEOUT_MS);
    nng_ctx_send(s->ctx, s->aio);
}

/*
 * The answer is ready: the request no longer counts against max_inflight
 * (nng sends it on its own threads), though the slot stays busy until sent.
 */
static void ks_slot_answered(ks_slot *s)
{
    ks_server *srv = s->srv;

    if (!s->admitted)
        return;
    ks_conn_leave(srv, s->pipe_id);
    pthread_mutex_lock(&srv->busy_lock);
    srv->admitted--;
    s->admitted = 0;
    pthread_mutex_unlock(&srv->busy_lock);
}

/* The request of a slot is over (answered, or dropped): receive again or rest. */
static void ks_slot_finish(ks_slot *s)
{
    ks_server *srv = s->srv;

    if (s->msg != NULL) {
        nng_msg_free(s->msg);
        s->msg = NULL;
    }
    if (s->admitted)
        ks_conn_leave(srv, s->pipe_id);
    pthread_mutex_lock(&srv->busy_lock);
    if (s->admitted)
        srv->admitted--;
    s->admitted = 0;
    srv->busy--;
    if (atomic_load(&srv->draining) || atomic_load(&srv->closed))
        s->state = KS_SLOT_IDLE;
    pthread_cond_broadcast(&srv->busy_cond);
    pthread_mutex_unlock(&srv->busy_lock);
    if (s->state != KS_SLOT_IDLE)
        ks_slot_recv(s);
}

/* Answer an admitted request and send the answer: on a worker, or inline. */
static void ks_slot_work(ks_slot *s)
{
    ks_server *srv = s->srv;
    nng_msg *reply;

    if (atomic_load(&srv->closed)) {
        ks_slot_finish(s);
        return;
    }
    reply = ks_server_answer(srv, s);
    nng_msg_free(s->msg);
    s->msg = NULL;
    ks_slot_answered(s);
    if (reply == NULL) {
        ks_slot_finish(s);
        return;
    }
    ks_slot_send(s, reply);
}

/*
 * When every key is in process (OpenSSL's own providers: a signature takes
 * microseconds and never waits on a device), the callback that received
 * the request answers it: handing it to a worker costs a thread wake-up,
 * which on this path takes longer than an ECDSA signature. Keys that may
 * block (TPM, HSM) and the test delay go through the workers, so that they
 * never hold nng's own threads.
 */
static void ks_slot_work_inline(ks_slot *s)
{
    ks_server *srv = s->srv;
    int idle;

    atomic_fetch_add(&srv->inline_active, 1);
    ks_slot_work(s);
    if (atomic_fetch_sub(&srv->inline_active, 1) != 1)
        return;
    pthread_mutex_lock(&srv->q_lock);
    idle = ks_server_idle_locked(srv);
    pthread_mutex_unlock(&srv->q_lock);
    if (idle)
        ks_audit_flush(srv->audit);
}

static void ks_slot_queue(ks_slot *s)
{
    ks_server *srv = s->srv;

    s->state = KS_SLOT_QUEUED;
    pthread_mutex_lock(&srv->q_lock);
    s->next = NULL;
    if (srv->q_tail != NULL)
        srv->q_tail->next = s;
    else
        srv->q_head = s;
    srv->q_tail = s;
    pthread_cond_signal(&srv->q_cond);
    pthread_mutex_unlock(&srv->q_lock);
}

/* A request arrived on slot s: admit it (queue for a worker) or refuse it now. */
static void ks_slot_arrived(ks_slot *s)
{
    ks_server *srv = s->srv;
    ks_runtime *rt;
    unsigned int max_total, max_conn, conn_was = 0, total;
    ks_admit admit;
    uint64_t now;
    int in_process;

    s->msg = nng_aio_get_msg(s->aio);
    nng_aio_set_msg(s->aio, NULL);
    s->t0_us = now = ks_now_us();
    clock_gettime(CLOCK_REALTIME, &s->t0_real);
    s->pipe_id = (uint32_t)nng_pipe_id(nng_msg_get_pipe(s->msg));
    s->admitted = 0;
    s->peer[0] = s->group[0] = '\0';
    pthread_mutex_lock(&srv->busy_lock);
    srv->busy++;
    pthread_mutex_unlock(&srv->busy_lock);
    if (atomic_load(&srv->draining)) {
        /*
         * Shutting down: not taken. The edge's nng resends it to another
         * key server as soon as this one closes the connection.
         */
        ks_slot_finish(s);
        return;
    }
    rt = ks_server_rt(srv);
    max_total = rt->cfg->max_inflight < srv->max_slots_inflight ? rt->cfg->max_inflight
                                                                : srv->max_slots_inflight;
    max_conn = rt->cfg->max_inflight_per_conn;
    in_process = rt->in_process && srv->debug_delay_ms == 0;
    ks_runtime_release(rt);
    if (ks_conn_enter(srv, s->pipe_id, max_conn, s, &conn_was) != 0) {
        ks_server_peer(nng_msg_get_pipe(s->msg), s->peer, sizeof(s->peer));
        snprintf(s->group, sizeof(s->group), "?");
        conn_was = 0;
        max_conn = 0; /* unknown connection: nothing was counted on it */
    }
    pthread_mutex_lock(&srv->busy_lock);
    total = srv->admitted;
    admit = ks_limits_admit(total, max_total, conn_was, max_conn);
    if (admit == KS_ADMIT_OK) {
        srv->admitted++;
        if (srv->admitted > srv->peak)
            srv->peak = srv->admitted;
        s->admitted = 1;
    }
    pthread_mutex_unlock(&srv->busy_lock);
    if (admit == KS_ADMIT_OK) {
        if (in_process)
            ks_slot_work_inline(s);
        else
            ks_slot_queue(s);
        return;
    }
    if (admit == KS_ADMIT_TOTAL && max_conn != 0 && conn_was < max_conn)
        ks_conn_leave(srv, s->pipe_id); /* counted on the connection, refused in total */
    if (admit == KS_ADMIT_TOTAL)
        ks_server_overload_log(&srv->rlog_total, &srv->lim_lock, now, "max_inflight (%u) "
                               "reached, last from %s [%s]", max_total, s->peer, s->group);
    else
        ks_server_overload_log(&srv->rlog_conn, &srv->lim_lock, now, "max_inflight_per_conn "
                               "(%u) reached by %s [%s]", max_conn, s->peer, s->group);
    {
        nng_msg *reply = ks_server_refuse_now(srv, s, ST(OVERLOADED),
                                              admit == KS_ADMIT_TOTAL ? "inflight_total"
                                                                      : "inflight_conn",
                                              admit == KS_ADMIT_TOTAL
                                              ? "too many requests in flight on this key server"
                                              : "too many requests in flight on this connection");

        nng_msg_free(s->msg);
        s->msg = NULL;
        if (reply == NULL) {
            ks_slot_finish(s);
            return;
        }
        ks_slot_send(s, reply);
    }
}

static void ks_slot_cb(void *arg)
{
    ks_slot *s = arg;
    int rv = nng_aio_result(s->aio);

    switch (s->state) {
    case KS_SLOT_RECV:
        if (rv != 0) {
            if (rv == NNG_ECLOSED || rv == NNG_ECANCELED || atomic_load(&s->srv->closed)) {
                s->state = KS_SLOT_IDLE;
                return;
            }
            ks_log(KS_LOG_WARN, "receive: %s", nng_strerror(rv));
            ks_slot_recv(s);
            return;
        }
        ks_slot_arrived(s);
        return;
    case KS_SLOT_SEND:
        if (rv != 0) {
            /* On failure the message is still ours. */
            nng_msg_free(nng_aio_get_msg(s->aio));
            nng_aio_set_msg(s->aio, NULL);
            if (rv != NNG_ECLOSED)
                ks_log(KS_LOG_DEBUG, "answer to %s not sent: %s", s->peer, nng_strerror(rv));
        }
        ks_slot_finish(s);
        return;
    default:
        return;
    }
}

static void *ks_server_worker(void *arg)
{
    ks_server *srv = arg;
    int busy = 0;

    for (;;) {
        ks_slot *s;

        pthread_mutex_lock(&srv->q_lock);
        if (busy) {
            busy = 0;
            srv->q_active--;
            if (ks_server_idle_locked(srv)) {
                pthread_mutex_unlock(&srv->q_lock);
                ks_audit_flush(srv->audit);
                pthread_mutex_lock(&srv->q_lock);
            }
        }
        while (srv->q_head == NULL && !srv->q_shutdown)
            pthread_cond_wait(&srv->q_cond, &srv->q_lock);
        s = srv->q_head;
        if (s != NULL) {
            srv->q_head = s->next;
            if (srv->q_head == NULL)
                srv->q_tail = NULL;
            srv->q_active++;
            busy = 1;
        }
        pthread_mutex_unlock(&srv->q_lock);
        if (s == NULL)
            break; /* shut down and nothing left */
        ks_slot_work(s);
    }
    /* Now rather than in the thread-exit destructor, while OpenSSL is surely intact. */
    ks_ops_thread_cleanup();
    return NULL;
}

/* ---- listeners --------------------------------------------------------------- */

static int ks_hash_file(EVP_MD_CTX *md, const char *path)
{
    FILE *f;
    unsigned char buf[4096];
    size_t n;

    if (path == NULL)
        return EVP_DigestUpdate(md, "-", 1) == 1 ? 0 : -1;
    if ((f = fopen(path, "rb")) == NULL)
        return -1;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(md, buf, n);
    fclose(f);
    OPENSSL_cleanse(buf, sizeof(buf));
    return EVP_DigestUpdate(md, "\0", 1) == 1 ? 0 : -1;
}

/* What a listener depends on: its URL's group and, for TLS, the contents of its files. */
static int ks_listener_sig(const ks_config *cfg, const ks_config_group *g, int tls,
                           unsigned char out[32], char *err, size_t errlen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    const char *files[4] = { cfg->tls_cert, cfg->tls_key, g->client_ca, g->client_crl };
    int rv = -1;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(md, g->name, strlen(g->name) + 1) != 1)
        goto out;
    for (size_t i = 0; tls && i < 4; i++) {
        if (ks_hash_file(md, files[i]) != 0) {
            lurk_errf(err, errlen, "cannot read %s: %s", files[i], strerror(errno));
            goto out;
        }
    }
    if (EVP_DigestFinal_ex(md, out, NULL) == 1)
        rv = 0;
out:
    EVP_MD_CTX_free(md);
    return rv;
}

/*
 * mbed TLS (inside nng) takes a certificate and a key that do not belong
 * together without a word, and every handshake then fails; OpenSSL can say
 * so at start-up.
 */
static int ks_server_tls_pair(const ks_config *cfg, char *err, size_t errlen)
{
    BIO *in;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int rv = -1;

    if ((in = BIO_new_file(cfg->tls_cert, "r")) != NULL)
        cert = PEM_read_bio_X509(in, NULL, NULL, NULL);
    BIO_free(in);
    if ((in = BIO_new_file(cfg->tls_key, "r")) != NULL)
        key = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    BIO_free(in);
    ERR_clear_error();
    if (cert == NULL || key == NULL) {
        /* Unreadable files: lurk_tls_config_make() names the problem. */
        rv = 0;
    } else if (X509_check_private_key(cert, key) != 1) {
        lurk_errf(err, errlen, "tls_cert %s does not match tls_key %s", cfg->tls_cert,
                       cfg->tls_key);
        ERR_clear_error();
    } else {
        rv = 0;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return rv;
}

/*
 * Dates that silently lock edges out: mbed TLS refuses every edge of a
 * group once its CRL is past nextUpdate, and edges refuse an expired key
 * server certificate, each with nothing but a timeout to show for it.
 */
static void ks_group_check_dates(const ks_config *cfg, const ks_config_group *g)
{
    static const int soon_days = 7;
    BIO *bio;
    X509 *cert = NULL;
    X509_CRL *crl = NULL;
    int days = 0, secs = 0;
    const ASN1_TIME *t;

    if ((bio = BIO_new_file(cfg->tls_cert, "r")) != NULL)
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (cert != NULL && (t = X509_get0_notAfter(cert)) != NULL
        && ASN1_TIME_diff(&days, &secs, NULL, t)) {
        if (days < 0 || secs < 0)
            ks_log(KS_LOG_WARN, "tls_cert %s has expired: edges will refuse this key server",
                   cfg->tls_cert);
        else if (days < soon_days)
            ks_log(KS_LOG_WARN, "tls_cert %s expires in %d days", cfg->tls_cert, days);
    }
    X509_free(cert);
    if (g->client_crl == NULL)
        return;
    if ((bio = BIO_new_file(g->client_crl, "r")) != NULL)
        crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (crl != NULL && (t = X509_CRL_get0_nextUpdate(crl)) != NULL
        && ASN1_TIME_diff(&days, &secs, NULL, t)) {
        if (days < 0 || secs < 0)
            ks_log(KS_LOG_WARN, "client_crl %s is past its nextUpdate: every edge of group %s is "
                   "refused until a fresh CRL is installed (then SIGHUP)", g->client_crl, g->name);
        else if (days < soon_days)
            ks_log(KS_LOG_WARN, "client_crl %s reaches its nextUpdate in %d days: after that "
                   "every edge of group %s is refused", g->client_crl, days, g->name);
    }
    X509_CRL_free(crl);
    ERR_clear_error();
}

static int ks_group_tls(const ks_config *cfg, const ks_config_group *g, nng_tls_config **tls,
                        char *err, size_t errlen)
{
    lurk_tls_files f;
    struct stat st;
    char why[512] = "";

    memset(&f, 0, sizeof(f));
    f.cert = cfg->tls_cert;
    f.key = cfg->tls_key;
    f.ca = g->client_ca;
    f.crl = g->client_crl;
    *tls = NULL;
    if (lurk_tls_config_make(1, &f, tls, why, sizeof(why)) != 0
        || ks_server_tls_pair(cfg, why, sizeof(why)) != 0) {
        lurk_errf(err, errlen, "%s: TLS for %s%s: %s", cfg->name,
                       g->implicit ? "[keyserver]" : "[edge.", g->implicit ? "" : g->name, why);
        if (*tls != NULL)
            nng_tls_config_free(*tls);
        *tls = NULL;
        return -1;
    }
    /*
     * Only a warning, unlike the signing keys: this key authenticates the
     * channel, and refusing would lock out setups that share it on purpose.
     */
    if (f.key != NULL && stat(f.key, &st) == 0 && (st.st_mode & S_IROTH) != 0)
        ks_log(KS_LOG_WARN, "tls_key %s is readable by every user; run chmod 600 %s", f.key,
               f.key);
    ks_group_check_dates(cfg, g);
    return 0;
}

int ks_server_check_tls(const ks_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_groups; i++) {
        nng_tls_config *tls = NULL;

        if (!cfg->groups[i].has_tls)
            continue;
        if (ks_group_tls(cfg, &cfg->groups[i], &tls, err, errlen) != 0)
            return -1;
        nng_tls_config_free(tls);
    }
    return 0;
}

static void ks_listener_close(ks_server *srv, ks_lst *l);

/* Open one listener; on success it is on srv->lsts. */
static int ks_listener_open(ks_server *srv, const ks_config *cfg, const ks_config_group *g,
                            const char *url, nng_tls_config *tls, const unsigned char sig[32],
                            char *err, size_t errlen)
{
    ks_lst *l = calloc(1, sizeof(*l));
    int rv;

    if (l == NULL || (l->url = strdup(url)) == NULL) {
        free(l);
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(l->group, sizeof(l->group), "%s", g->name);
    l->tls = lurk_url_classify(url) == LURK_URL_TLS;
    memcpy(l->sig, sig, 32);
    if ((rv = nng_listener_create(&l->l, srv->sock, url)) != 0
        || (l->tls && (rv = nng_listener_set_ptr(l->l, NNG_OPT_TLS_CONFIG, tls)) != 0)
        || (rv = nng_listener_set_size(l->l, NNG_OPT_RECVMAXSZ,
                                       cfg->max_message + KS_SERVER_SP_HEADROOM)) != 0) {
        lurk_errf(err, errlen, "%s: listen: cannot listen on %s: %s", cfg->name, url,
                       nng_strerror(rv));
        if (nng_listener_id(l->l) > 0)
            nng_listener_close(l->l);
        free(l->url);
        free(l);
        return -1;
    }
    /* Known before the first connection can arrive. */
    pthread_mutex_lock(&srv->lst_lock);
    l->next = srv->lsts;
    srv->lsts = l;
    pthread_mutex_unlock(&srv->lst_lock);
    if ((rv = nng_listener_start(l->l, 0)) != 0) {
        lurk_errf(err, errlen, "%s: listen: cannot listen on %s: %s", cfg->name, url,
                  nng_strerror(rv));
        ks_listener_close(srv, l);
        return -1;
    }
    if (lurk_url_classify(url) == LURK_URL_TCP)
        ks_log(KS_LOG_WARN, "listening on %s without TLS: anyone who can reach it can use "
               "every key of group %s", url, g->name);
    return 0;
}

/* Close a listener (and, in nng, the connections it accepted) and forget it. */
static void ks_listener_close(ks_server *srv, ks_lst *l)
{
    pthread_mutex_lock(&srv->lst_lock);
    for (ks_lst **pl = &srv->lsts; *pl != NULL; pl = &(*pl)->next)
        if (*pl == l) {
            *pl = l->next;
            break;
        }
    pthread_mutex_unlock(&srv->lst_lock);
    nng_listener_close(l->l);
    free(l->url);
    free(l);
}

static ks_lst *ks_listener_find(ks_server *srv, const char *url)
{
    ks_lst *found = NULL;

    pthread_mutex_lock(&srv->lst_lock);
    for (ks_lst *l = srv->lsts; l != NULL; l = l->next)
        if (strcmp(l->url, url) == 0)
            found = l;
    pthread_mutex_unlock(&srv->lst_lock);
    return found;
}

/* Every listener of cfg: TLS configs per group, then open. */
typedef struct {
    const ks_config_group *g;
    const char *url;
    nng_tls_config *tls;
    unsigned char sig[32];
    ks_lst *old;            /* reload: the listener on this URL now */
} ks_plan;

static void ks_plan_free(ks_plan *plan, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (plan[i].tls != NULL)
            nng_tls_config_free(plan[i].tls);
    free(plan);
}

static ks_plan *ks_plan_make(ks_server *srv, const ks_config *cfg, size_t *n, char *err,
                             size_t errlen)
{
    ks_plan *plan = calloc(cfg->n_listen + 1, sizeof(*plan));
    size_t k = 0;

    *n = 0;
    if (plan == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_groups; i++) {
        const ks_config_group *g = &cfg->groups[i];
        nng_tls_config *tls = NULL;

        if (g->has_tls && ks_group_tls(cfg, g, &tls, err, errlen) != 0) {
            ks_plan_free(plan, k);
            return NULL;
        }
        for (size_t j = 0; j < g->n_listen; j++) {
            ks_plan *p = &plan[k++];
            int is_tls = lurk_url_classify(g->listen[j]) == LURK_URL_TLS;

            p->g = g;
            p->url = g->listen[j];
            if (is_tls) {
                nng_tls_config_hold(tls);
                p->tls = tls;
            }
            if (ks_listener_sig(cfg, g, is_tls, p->sig, err, errlen) != 0) {
                if (tls != NULL)
                    nng_tls_config_free(tls);
                ks_plan_free(plan, k);
                return NULL;
            }
            p->old = srv != NULL ? ks_listener_find(srv, p->url) : NULL;
        }
        if (tls != NULL)
            nng_tls_config_free(tls); /* each plan entry holds its own reference */
    }
    *n = k;
    return plan;
}

/* ---- metrics --------------------------------------------------------------- */

static char *ks_server_render(void *arg, size_t *len)
{
    ks_server *srv = arg;
    ks_runtime *rt = ks_server_rt(srv);
    ks_metrics_gauges g;
    const char **names = calloc(rt->cfg->n_groups + 1, sizeof(*names));
    unsigned int *conns = calloc(rt->cfg->n_groups + 1, sizeof(*conns));
    uint64_t written = 0, failed = 0;
    char *out = NULL;

    if (names != NULL && conns != NULL) {
        memset(&g, 0, sizeof(g));
        for (size_t i = 0; i < rt->cfg->n_groups; i++)
            names[i] = rt->cfg->groups[i].name;
        ks_conn_counts(srv, rt, conns);
        pthread_mutex_lock(&srv->busy_lock);
        g.in_flight = srv->busy;
        pthread_mutex_unlock(&srv->busy_lock);
        g.max_inflight = rt->cfg->max_inflight < srv->max_slots_inflight
                         ? rt->cfg->max_inflight : srv->max_slots_inflight;
        g.keys = rt->kr->n;
        g.epoch = rt->kr->epoch;
        g.config_loads = atomic_load(&srv->config_loads);
        g.config_failures = atomic_load(&srv->config_failures);
        g.config_loaded_time = rt->loaded_time;
        g.n_groups = rt->cfg->n_groups;
        g.group_names = names;
        g.group_connections = conns;
        ks_audit_stats(srv->audit, &written, &failed);
        g.audit_lines = written;
        g.audit_failures = failed;
        pthread_mutex_lock(&srv->replay_lock);
        g.replay_entries = ks_replay_count(srv->replay, ks_now_us());
        pthread_mutex_unlock(&srv->replay_lock);
        g.connections_refused = atomic_load(&srv->conns_refused);
        out = ks_metrics_render(srv->metrics, &g, len);
    }
    free(names);
    free(conns);
    ks_runtime_release(rt);
    return out;
}

/* ---- life cycle ---------------------------------------------------------------- */

static int ks_server_workers_start(ks_server *srv, unsigned int n, char *err, size_t errlen)
{
    int rv;

    if ((srv->workers = calloc(n, sizeof(*srv->workers))) == NULL) {
        lurk_errf(err, errlen, "out of memory for %u workers", n);
        return -1;
    }
    for (unsigned int i = 0; i < n; i++) {
        if ((rv = pthread_create(&srv->workers[i], NULL, ks_server_worker, srv)) != 0) {
            lurk_errf(err, errlen, "cannot start worker %u of %u: %s", i + 1, n,
                           strerror(rv));
            return -1;
        }
        srv->n_workers++;
    }
    return 0;
}

static int ks_server_slots_start(ks_server *srv, size_t n, char *err, size_t errlen)
{
    int rv;

    if ((srv->slots = calloc(n, sizeof(*srv->slots))) == NULL) {
        lurk_errf(err, errlen, "out of memory for %zu request slots", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        ks_slot *s = &srv->slots[i];

        s->srv = srv;
        s->state = KS_SLOT_IDLE;
        if ((rv = nng_ctx_open(&s->ctx, srv->sock)) != 0
            || (rv = nng_aio_alloc(&s->aio, ks_slot_cb, s)) != 0) {
            lurk_errf(err, errlen, "request slot %zu: %s", i, nng_strerror(rv));
            return -1;
        }
        s->ctx_open = 1;
        srv->n_slots++;
    }
    return 0;
}

static void ks_server_free(ks_server *srv)
{
    while (srv->lsts != NULL) {
        ks_lst *l = srv->lsts;

        srv->lsts = l->next;
        free(l->url);
        free(l);
    }
    for (size_t b = 0; b < KS_SERVER_PIPE_BUCKETS; b++) {
        while (srv->conns[b] != NULL) {
            ks_conn *c = srv->conns[b];

            srv->conns[b] = c->next;
            free(c);
        }
    }
    ks_runtime_release(srv->rt);
    ks_replay_free(srv->replay);
    ks_audit_close(srv->audit);
    ks_metrics_free(srv->metrics);
    free(srv->slots);
    free(srv->workers);
    pthread_mutex_destroy(&srv->rt_lock);
    pthread_mutex_destroy(&srv->lst_lock);
    pthread_mutex_destroy(&srv->conn_lock);
    pthread_mutex_destroy(&srv->q_lock);
    pthread_cond_destroy(&srv->q_cond);
    pthread_mutex_destroy(&srv->busy_lock);
    pthread_cond_destroy(&srv->busy_cond);
    pthread_mutex_destroy(&srv->lim_lock);
    pthread_mutex_destroy(&srv->replay_lock);
    free(srv);
}

/* Close the socket, stop slots and workers. */
static void ks_server_shutdown(ks_server *srv)
{
    atomic_store(&srv->closed, 1);
    ks_http_stop(srv->http);
    srv->http = NULL;
    /*
     * Workers first: one may still be inside nng_ctx_send() for an answer
     * whose completion already ended the drain, and closing the socket
     * under it makes nng panic.
     */
    pthread_mutex_lock(&srv->q_lock);
    srv->q_shutdown = 1;
    pthread_cond_broadcast(&srv->q_cond);
    pthread_mutex_unlock(&srv->q_lock);
    for (size_t i = 0; i < srv->n_workers; i++)
        pthread_join(srv->workers[i], NULL);
    srv->n_workers = 0;
    /* The same for answers being sent from nng's callbacks; new ones see `closed`. */
    while (atomic_load(&srv->inline_active) > 0)
        nng_msleep(1);
    /* Closing the socket fails every pending receive and send with NNG_ECLOSED. */
    if (srv->sock_open) {
        nng_close(srv->sock);
        srv->sock_open = 0;
    }
    for (size_t i = 0; i < srv->n_slots; i++) {
        if (srv->slots[i].aio != NULL) {
            nng_aio_stop(srv->slots[i].aio);
            if (srv->slots[i].msg != NULL)
                nng_msg_free(srv->slots[i].msg);
            nng_aio_free(srv->slots[i].aio);
            srv->slots[i].aio = NULL;
        }
    }
}

int ks_server_start(ks_config *cfg, ks_keyring *kr, ks_ops *ops, int debug_delay_ms,
                    ks_server **out, char *err, size_t errlen)
{
    ks_server *srv = calloc(1, sizeof(*srv));
    ks_plan *plan = NULL;
    size_t n_plan = 0;
    int rv;

    *out = NULL;
    if (srv == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    srv->debug_delay_ms = debug_delay_ms;
    pthread_mutex_init(&srv->rt_lock, NULL);
    pthread_mutex_init(&srv->lst_lock, NULL);
    pthread_mutex_init(&srv->conn_lock, NULL);
    pthread_mutex_init(&srv->q_lock, NULL);
    pthread_cond_init(&srv->q_cond, NULL);
    pthread_mutex_init(&srv->busy_lock, NULL);
    pthread_cond_init(&srv->busy_cond, NULL);
    pthread_mutex_init(&srv->lim_lock, NULL);
    pthread_mutex_init(&srv->replay_lock, NULL);
    ks_ratelog_init(&srv->rlog_total, KS_SERVER_LOG_INTERVAL_US);
    ks_ratelog_init(&srv->rlog_conn, KS_SERVER_LOG_INTERVAL_US);
    ks_ratelog_init(&srv->rlog_replay_full, KS_SERVER_LOG_INTERVAL_US);
    ks_ratelog_init(&srv->rlog_replay_full_random, KS_SERVER_LOG_INTERVAL_US);
    if ((srv->rt = ks_runtime_new(cfg, kr, ops)) == NULL
        || (srv->metrics = ks_metrics_new()) == NULL
        || (srv->replay = ks_replay_new(cfg->replay_cache)) == NULL
        || RAND_bytes(srv->replay_secret, sizeof(srv->replay_secret)) != 1) {
        lurk_errf(err, errlen, "out of memory");
        goto fail;
    }
    if (ks_audit_open(cfg->audit_log, &srv->audit, err, errlen) != 0)
        goto fail;
    srv->max_slots_inflight = cfg->max_inflight;
    if ((rv = nng_rep0_open(&srv->sock)) != 0) {
        lurk_errf(err, errlen, "cannot open the nng socket: %s", nng_strerror(rv));
        goto fail;
    }
    srv->sock_open = 1;
    if ((rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ,
                                  cfg->max_message + KS_SERVER_SP_HEADROOM)) != 0
        || (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, ks_server_pipe_event, srv)) != 0
        || (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_POST, ks_server_pipe_event, srv)) != 0
        || (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, ks_server_pipe_event, srv)) != 0) {
        lurk_errf(err, errlen, "nng socket setup: %s", nng_strerror(rv));
        goto fail;
    }
    if (ks_server_workers_start(srv, cfg->workers, err, errlen) != 0
        || ks_server_slots_start(srv, (size_t)cfg->max_inflight + KS_SERVER_SPARE_SLOTS, err,
                                 errlen) != 0)
        goto fail;
    /* Slots receive before we listen: a request arriving at once finds one waiting. */
    for (size_t i = 0; i < srv->n_slots; i++)
        ks_slot_recv(&srv->slots[i]);
    if ((plan = ks_plan_make(NULL, cfg, &n_plan, err, errlen)) == NULL)
        goto fail;
    for (size_t i = 0; i < n_plan; i++)
        if (ks_listener_open(srv, cfg, plan[i].g, plan[i].url, plan[i].tls, plan[i].sig, err,
                             errlen) != 0)
            goto fail;
    ks_plan_free(plan, n_plan);
    plan = NULL;
    if (cfg->metrics_listen != NULL
        && ks_http_start(cfg->metrics_listen, ks_server_render, srv, &srv->http, err,
                         errlen) != 0)
        goto fail;
    atomic_store(&srv->config_loads, 1);
    *out = srv;
    return 0;
fail:
    if (plan != NULL)
        ks_plan_free(plan, n_plan);
    ks_server_shutdown(srv);
    /* The caller keeps what it passed on failure. */
    if (srv->rt != NULL) {
        srv->rt->cfg = NULL;
        srv->rt->kr = NULL;
        srv->rt->ops = NULL;
    }
    ks_server_free(srv);
    return -1;
}

static int ks_server_audit_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

int ks_server_reload(ks_server *srv, ks_config *cfg, ks_keyring *kr, ks_ops *ops,
                     char *err, size_t errlen)
{
    ks_runtime *rt_new, *rt_old;
    ks_plan *plan;
    size_t n_plan = 0, opened = 0;
    ks_lst **created = NULL;
    int rv;

    if ((plan = ks_plan_make(srv, cfg, &n_plan, err, errlen)) == NULL)
        return -1;
    if ((created = calloc(n_plan + 1, sizeof(*created))) == NULL
        || (rt_new = ks_runtime_new(cfg, kr, ops)) == NULL) {
        free(created);
        ks_plan_free(plan, n_plan);
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    /* 1. New URLs: open first, so that a failure leaves everything as it was. */
    for (size_t i = 0; i < n_plan; i++) {
        if (plan[i].old != NULL)
            continue;
        if (ks_listener_open(srv, cfg, plan[i].g, plan[i].url, plan[i].tls, plan[i].sig, err,
                             errlen) != 0) {
            for (size_t j = 0; j < opened; j++)
                ks_listener_close(srv, created[j]);
            rt_new->cfg = NULL;
            rt_new->kr = NULL;
            rt_new->ops = NULL;
            ks_runtime_free(rt_new);
            ks_plan_free(plan, n_plan);
            free(created);
            return -1;
        }
        created[opened++] = ks_listener_find(srv, plan[i].url);
    }
    /* 2. Swap: requests from now on use the new configuration. */
    pthread_mutex_lock(&srv->rt_lock);
    rt_old = srv->rt;
    srv->rt = rt_new;
    pthread_mutex_unlock(&srv->rt_lock);
    if ((rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ,
                                  cfg->max_message + KS_SERVER_SP_HEADROOM)) != 0)
        ks_log(KS_LOG_WARN, "max_message: %s", nng_strerror(rv));
    /*
     * 3. Changed listeners (group, CA, CRL, certificate or key): restart.
     * Their connections drop (an edge whose certificate was just revoked
     * must not keep its connection); edges reconnect and nng resends what
     * was pending.
     */
    for (size_t i = 0; i < n_plan; i++) {
        char why[512] = "";

        if (plan[i].old == NULL || memcmp(plan[i].old->sig, plan[i].sig, 32) == 0)
            continue;
        ks_log(KS_LOG_INFO, "reload: restarting listener %s (group %s): its TLS files or "
               "group changed; its connections drop", plan[i].url, plan[i].g->name);
        ks_listener_close(srv, plan[i].old);
        plan[i].old = NULL;
        if (ks_listener_open(srv, cfg, plan[i].g, plan[i].url, plan[i].tls, plan[i].sig, why,
                             sizeof(why)) != 0)
            ks_log(KS_LOG_ERROR, "reload: listener %s could not be reopened: %s; it stays "
                   "closed until the next successful reload", plan[i].url, why);
    }
    /* 4. Listeners no longer configured: close. */
    for (;;) {
        ks_lst *gone = NULL;

        pthread_mutex_lock(&srv->lst_lock);
        for (ks_lst *l = srv->lsts; l != NULL && gone == NULL; l = l->next)
            if (ks_config_group_of_url(cfg, l->url) == NULL)
                gone = l;
        pthread_mutex_unlock(&srv->lst_lock);
        if (gone == NULL)
            break;
        ks_log(KS_LOG_INFO, "reload: closing listener %s (group %s): no longer configured",
               gone->url, gone->group);
        ks_listener_close(srv, gone);
    }
    if (!ks_server_audit_same(rt_old->cfg->audit_log, cfg->audit_log)) {
        char why[512] = "";

        if (ks_audit_retarget(srv->audit, cfg->audit_log, why, sizeof(why)) != 0)
            ks_log(KS_LOG_ERROR, "reload: %s; the audit log stays where it was", why);
    }
    if (cfg->max_inflight > srv->max_slots_inflight)
        ks_log(KS_LOG_WARN, "reload: max_inflight %u is above the %u this process started "
               "with; restart to raise it", cfg->max_inflight, srv->max_slots_inflight);
    if (cfg->workers != rt_old->cfg->workers)
        ks_log(KS_LOG_WARN, "reload: workers changed to %u; restart to apply (still %zu)",
               cfg->workers, srv->n_workers);
    if (cfg->replay_cache != rt_old->cfg->replay_cache)
        ks_log(KS_LOG_WARN, "reload: replay_cache changed; restart to apply");
    if ((cfg->metrics_listen == NULL) != (rt_old->cfg->metrics_listen == NULL)
        || (cfg->metrics_listen != NULL
            && strcmp(cfg->metrics_listen, rt_old->cfg->metrics_listen) != 0))
        ks_log(KS_LOG_WARN, "reload: metrics_listen changed; restart to apply");
    atomic_fetch_add(&srv->config_loads, 1);
    ks_runtime_release(rt_old); /* freed when its last request is answered */
    ks_plan_free(plan, n_plan);
    free(created);
    return 0;
}

void ks_server_reload_failed(ks_server *srv)
{
    atomic_fetch_add(&srv->config_failures, 1);
}

void ks_server_reopen_audit(ks_server *srv)
{
    char why[512] = "";

    if (ks_audit_reopen(srv->audit, why, sizeof(why)) != 0)
        ks_log(KS_LOG_ERROR, "%s; still writing to the previous file", why);
    else
        ks_log(KS_LOG_INFO, "audit log reopened");
}

void ks_server_stop(ks_server *srv)
{
    ks_runtime *rt;
    unsigned int timeout_s, left, at_start;
    struct timespec deadline;
    size_t nworkers;

    if (srv == NULL)
        return;
    rt = ks_server_rt(srv);
    timeout_s = rt->cfg->drain_timeout;
    ks_runtime_release(rt);
    /* Stop taking connections and requests; let the admitted ones finish. */
    atomic_store(&srv->draining, 1);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)timeout_s;
    pthread_mutex_lock(&srv->busy_lock);
    at_start = srv->busy;
    while (srv->busy > 0) {
        if (pthread_cond_timedwait(&srv->busy_cond, &srv->busy_lock, &deadline) == ETIMEDOUT)
            break;
    }
    left = srv->busy;
    pthread_mutex_unlock(&srv->busy_lock);
    if (left > 0)
        ks_log(KS_LOG_WARN, "drain: %u of %u requests still in flight after drain_timeout "
               "(%u s); their connections close and the edges resend them elsewhere", left,
               at_start, timeout_s);
    else
        ks_log(KS_LOG_INFO, "drained: %u requests in flight at the stop were answered",
               at_start);
    nworkers = srv->n_workers;
    ks_server_shutdown(srv);
    ks_log(KS_LOG_INFO, "stopped: %llu requests answered, %llu refused, peak %u of %zu workers "
           "busy (admitted in flight; max_inflight %u)",
           (unsigned long long)atomic_load(&srv->answered),
           (unsigned long long)atomic_load(&srv->refused), srv->peak, nworkers,
           srv->max_slots_inflight);
    ks_server_free(srv);
}
