/* SPDX-License-Identifier: Apache-2.0 */
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
 *
 * This file holds the runtime, the connections, the gate and answering;
 * the slots (whose decisions are ks_slot's state machine) and the life
 * cycle are in ks_lifecycle.c, the listeners in ks_listen.c.
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
#include "ks_server_int.h"
#include "lurk_tls.h"
#include "lurk_transport.h"
#include "lurk_wire.h"

#define ST(x) LURK__V1__STATUS__STATUS_##x

uint64_t ks_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the runtime: everything a reload replaces ------------------------- */

static uint32_t ks_tag(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

void ks_runtime_free(ks_runtime *rt)
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

ks_runtime *ks_runtime_new(ks_config *cfg, ks_keyring *kr, ks_ops *ops)
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
    for (size_t i = 0; i < cfg->n_groups; i++)
        rt->group_inflight |= cfg->groups[i].max_inflight != 0;
    rt->in_process = 1;
    for (size_t i = 0; i < kr->n; i++)
        rt->in_process &= ks_keys_in_process(&kr->keys[i]);
    rt->cfg = cfg;
    rt->kr = kr;
    rt->ops = ops;
    atomic_init(&rt->refs, 1);
    return rt;
}

ks_gstate *ks_runtime_group(ks_runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->cfg->n_groups; i++)
        if (strcmp(rt->groups[i].g->name, name) == 0)
            return &rt->groups[i];
    return NULL;
}

/* ---- server state ------------------------------------------------------- */

ks_runtime *ks_server_rt(ks_server *srv)
{
    ks_runtime *rt;

    pthread_mutex_lock(&srv->rt_lock);
    rt = srv->rt;
    atomic_fetch_add(&rt->refs, 1);
    pthread_mutex_unlock(&srv->rt_lock);
    return rt;
}

void ks_runtime_release(ks_runtime *rt)
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
    case NNG_AF_IPC: snprintf(buf, len, "ipc://%.96s", sa->s_ipc.sa_path); return;
    default: break;
    }
    snprintf(buf, len, "an unknown address");
}

/* "127.0.0.1:40512", or for IPC the peer process, which the kernel vouches for. */
void ks_server_peer(nng_pipe p, char *buf, size_t len)
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

void ks_server_who(const char *ident, const char *peer, const char *group, char *buf, size_t len)
{
    if (ident != NULL && ident[0] != '\0')
        snprintf(buf, len, "%s at %s [%s]", ident, peer, group);
    else
        snprintf(buf, len, "%s [%s]", peer, group);
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

/* The certificate as ks_ident sees it: names and public key, pointing into tp. */
static void ks_server_ident_peer(const lurk_tls_peer *tp, ks_ident_peer *ip)
{
    memset(ip, 0, sizeof(*ip));
    for (size_t i = 0; i < tp->n_dns && i < KS_IDENT_MAX_DNS && i < LURK_TLS_MAX_DNS; i++)
        ip->dns[ip->n_dns++] = tp->dns[i];
    ip->spki = tp->has_spki ? tp->spki_sha256 : NULL;
}

/* The count of group `name`, made for its first connection; with conn_lock held. */
static ks_gcount *ks_gcount_get_locked(ks_server *srv, const char *name)
{
    ks_gcount *gc;

    for (gc = srv->gcounts; gc != NULL; gc = gc->next)
        if (strcmp(gc->name, name) == 0)
            break;
    if (gc == NULL && (gc = calloc(1, sizeof(*gc))) != NULL) {
        snprintf(gc->name, sizeof(gc->name), "%s", name);
        gc->next = srv->gcounts;
        srv->gcounts = gc;
    }
    if (gc != NULL)
        gc->conns++;
    return gc;
}

/*
 * A connection's requests leave its group's count with it (they finish
 * without CONN_LEAVE, ks_slot.h); the count goes with the group's last
 * connection. With conn_lock held.
 */
static void ks_gcount_put_locked(ks_server *srv, ks_conn *c)
{
    ks_gcount *gc = c->gc;

    if (gc == NULL)
        return;
    gc->inflight -= c->inflight < gc->inflight ? c->inflight : gc->inflight;
    if (--gc->conns > 0)
        return;
    for (ks_gcount **p = &srv->gcounts; *p != NULL; p = &(*p)->next) {
        if (*p == gc) {
            *p = gc->next;
            break;
        }
    }
    free(gc);
}

/* Count the connection in, unless max_connections is reached; 0 when admitted. */
static int ks_conn_enter(ks_server *srv, uint32_t id, const char *peer, const char *group,
                         const char *ident, const char *hello, unsigned int max_conns)
{
    int rv = -1;

    pthread_mutex_lock(&srv->conn_lock);
    if (srv->n_conns < max_conns) {
        ks_conn *c = calloc(1, sizeof(*c));

        /* No memory: refused like a full table. */
        if (c != NULL && (c->gc = ks_gcount_get_locked(srv, group)) == NULL) {
            free(c);
            c = NULL;
        }
        if (c != NULL) {
            c->pipe_id = id;
            snprintf(c->peer, sizeof(c->peer), "%s", peer);
            snprintf(c->group, sizeof(c->group), "%s", group);
            snprintf(c->ident, sizeof(c->ident), "%s", ident);
            snprintf(c->hello, sizeof(c->hello), "%s", hello);
            c->next = srv->conns[id % KS_SERVER_PIPE_BUCKETS];
            srv->conns[id % KS_SERVER_PIPE_BUCKETS] = c;
            srv->n_conns++;
            rv = 0;
        }
    }
    pthread_mutex_unlock(&srv->conn_lock);
    return rv;
}

static void ks_server_refuse_pipe(ks_server *srv, nng_pipe p)
{
    atomic_fetch_add(&srv->conns_refused, 1);
    nng_pipe_close(p);
}

/*
 * A new connection, before nng adds it: its listener, for TLS its verified
 * certificate and the group that takes it (per-edge identity), then the
 * connection limit. The certificate is read here because the channel
 * engine hands it over only on this thread (lurk_tls.h).
 */
static void ks_pipe_add_pre(ks_server *srv, nng_pipe p)
{
    uint32_t id = (uint32_t)nng_pipe_id(p);
    char peer[128], group[KS_SERVER_GROUP_NAME] = "", url[256] = "?";
    char ident[KS_IDENT_LABEL] = "", hello[KS_SERVER_HELLO] = "";
    lurk_tls_peer *tp = calloc(1, sizeof(*tp)); /* 1.3 KiB: not on nng's thread stack */
    ks_ident_peer ip;
    int tls = 0, have_cert, known;
    unsigned int max_conns;
    ks_runtime *rt;

    ks_server_peer(p, peer, sizeof(peer));
    if (tp == NULL || atomic_load(&srv->draining)) {
        free(tp);
        ks_server_refuse_pipe(srv, p);
        return;
    }
    /*
     * -1 without TLS (ipc://, tcp://). `verified` is the engine's check of
     * the chain (and CRL) that the TLS config already requires: belt and
     * braces, an unverified TLS peer never gets through.
     */
    have_cert = lurk_tls_peer_of_pipe(p, tp) == 0 && tp->verified;
    ks_server_ident_peer(tp, &ip);
    known = ks_listen_pick(srv, p, have_cert ? &ip : NULL, url, sizeof(url), &tls, group);
    if (!known || (tls && !have_cert)) {
        ks_log(KS_LOG_WARN, "edge %s on %s: %s, closing", peer, url,
               known ? "TLS peer not verified" : "unknown listener");
        free(tp);
        ks_server_refuse_pipe(srv, p);
        return;
    }
    if (tls) {
        ks_ident_label(&ip, tp->subject, ident, sizeof(ident));
        snprintf(hello, sizeof(hello), ", %s %s%s, client certificate verified", tp->version,
                 tp->cipher, tp->resumed ? ", session resumed" : "");
    }
    if (group[0] == '\0') {
        char desc[768];

        ks_ident_describe(&ip, tp->subject, desc, sizeof(desc));
        ks_log(KS_LOG_WARN,
               "edge %s at %s on %s refused: no edge group of this listener names its "
               "certificate, and none takes any certificate (%s); closing",
               ident, peer, url, desc);
        free(tp);
        ks_server_refuse_pipe(srv, p);
        return;
    }
    free(tp);
    rt = ks_server_rt(srv);
    max_conns = rt->cfg->max_connections;
    ks_runtime_release(rt);
    if (ks_conn_enter(srv, id, peer, group, ident, hello, max_conns) != 0) {
        uint64_t count;
        int say;

        pthread_mutex_lock(&srv->lim_lock);
        say = ks_ratelog_hit(&srv->rlog_total, ks_now_us(), &count);
        pthread_mutex_unlock(&srv->lim_lock);
        if (say)
            ks_log(KS_LOG_WARN, "edge %s on %s refused: max_connections (%u) reached", peer, url,
                   max_conns);
        ks_server_refuse_pipe(srv, p);
    }
}

static void ks_pipe_add_post(ks_server *srv, nng_pipe p)
{
    uint32_t id = (uint32_t)nng_pipe_id(p);
    char group[KS_SERVER_GROUP_NAME], url[256] = "?", ident[KS_IDENT_LABEL], peer[128];
    char hello[KS_SERVER_HELLO];
    unsigned int n;
    int have = 0, tls = 0;
    ks_conn *c;

    pthread_mutex_lock(&srv->conn_lock);
    n = srv->n_conns;
    if ((c = ks_conn_find_locked(srv, id)) != NULL) {
        have = 1;
        memcpy(group, c->group, sizeof(group));
        memcpy(ident, c->ident, sizeof(ident));
        memcpy(peer, c->peer, sizeof(peer));
        memcpy(hello, c->hello, sizeof(hello));
    }
    pthread_mutex_unlock(&srv->conn_lock);
    if (!have)
        return;
    /* The URL only: the group was chosen at ADD_PRE. */
    {
        char unused[KS_SERVER_GROUP_NAME];

        ks_listen_pick(srv, p, NULL, url, sizeof(url), &tls, unused);
    }
    ks_log(KS_LOG_INFO, "edge connected: %s on %s, group %s%s%s%s (pipe %u, %u connected)", peer,
           url, group, ident[0] ? ", edge " : "", ident, hello, id, n);
}

static void ks_pipe_rem_post(ks_server *srv, nng_pipe p)
{
    uint32_t id = (uint32_t)nng_pipe_id(p);
    ks_conn *gone = NULL;
    unsigned int n;

    pthread_mutex_lock(&srv->conn_lock);
    for (ks_conn **pc = &srv->conns[id % KS_SERVER_PIPE_BUCKETS]; *pc != NULL; pc = &(*pc)->next) {
        if ((*pc)->pipe_id == id) {
            gone = *pc;
            *pc = gone->next;
            srv->n_conns--;
            ks_gcount_put_locked(srv, gone);
            break;
        }
    }
    n = srv->n_conns;
    pthread_cond_broadcast(&srv->conn_cond); /* a stop may linger for this */
    pthread_mutex_unlock(&srv->conn_lock);
    if (gone != NULL) {
        ks_slots_conn_closed(srv, id);
        ks_log(KS_LOG_INFO, "edge disconnected: %s, group %s%s%s (pipe %u, %u connected)",
               gone->peer, gone->group, gone->ident[0] ? ", edge " : "", gone->ident, id, n);
        free(gone);
    }
}

void ks_server_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    ks_server *srv = arg;

    switch (ev) {
    case NNG_PIPE_EV_ADD_PRE: ks_pipe_add_pre(srv, p); break;
    case NNG_PIPE_EV_ADD_POST: ks_pipe_add_post(srv, p); break;
    case NNG_PIPE_EV_REM_POST: ks_pipe_rem_post(srv, p); break;
    default: break;
    }
}

ks_conn *ks_conn_find_locked(ks_server *srv, uint32_t id)
{
    for (ks_conn *c = srv->conns[id % KS_SERVER_PIPE_BUCKETS]; c != NULL; c = c->next)
        if (c->pipe_id == id)
            return c;
    return NULL;
}

void ks_conn_leave(ks_server *srv, uint32_t id)
{
    pthread_mutex_lock(&srv->conn_lock);
    for (ks_conn *c = srv->conns[id % KS_SERVER_PIPE_BUCKETS]; c != NULL; c = c->next) {
        if (c->pipe_id == id) {
            if (c->inflight > 0)
                c->inflight--;
            if (c->gc != NULL && c->gc->inflight > 0)
                c->gc->inflight--;
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
        return req != NULL && req->op_case == LURK__V1__REQUEST__OP_DECRYPT ? "tls12_rsa_premaster"
                                                                            : NULL;
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
    const char *result = lurk_status_token(ans->resp.status);
    const char *op = req != NULL ? ks_ops_name(req) : "request";
    const char *mkey = NULL;

    memset(&rec, 0, sizeof(rec));
    rec.when = s->t0_real;
    rec.group = s->group[0] ? s->group : "?";
    rec.peer = s->peer[0] ? s->peer : "?";
    /* "-": a connection without a certificate; "?": one already gone. */
    rec.edge = s->ident[0] ? s->ident : strcmp(rec.group, "?") == 0 ? "?" : "-";
    rec.conn = s->pipe_id;
    rec.request_id = ans->resp.id;
    rec.op = op;
    rec.key = key;
    rec.scheme = ks_scheme_name(req);
    rec.result = result;
    rec.latency_us = lat;
    rec.epoch = rt != NULL ? rt->kr->epoch : 0;
    if (ans->resp.status != ST(OK)) {
        rec.reason = ans->reason != NULL ? ans->reason : lurk_status_label(ans->resp.status);
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
    const char *who; /* ks_server_who() */
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

void ks_server_overload_log(ks_ratelog *rl, pthread_mutex_t *lock, uint64_t now, const char *fmt,
                            ...)
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

static Lurk__V1__Status ks_server_gate(void *arg, const Lurk__V1__Request *req, const ks_key *key,
                                       const char **reason, char *detail, size_t detail_len,
                                       int *answer_random)
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
        ks_server_overload_log(&gc->gs->rlog, &rt->lock, now,
                               "edge group %s over its rate "
                               "limit (rate %u/s, burst %u)",
                               gc->gs->g->name, gc->gs->bucket.rate, gc->gs->bucket.burst);
        return ST(OVERLOADED);
    }
    if (!ok_key) {
        *reason = "rate_key";
        snprintf(detail, detail_len, "key \"%s\" is over its rate limit", key->id);
        ks_server_overload_log(&ks->rlog, &rt->lock, now,
                               "key \"%s\" over its rate limit "
                               "(rate %u/s, burst %u), last from group %s",
                               key->id, ks->bucket.rate, ks->bucket.burst, gc->gs->g->name);
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
        ks_log(KS_LOG_INFO,
               "%s key \"%s\" from %s: retry of request %016llx (same "
               "group, id and bytes): answered again",
               ks_ops_name(req), key->id, gc->who, (unsigned long long)req->id);
        ks_metrics_refusal(srv->metrics, "retry_answered");
        return ST(OK);
    case KS_REPLAY_ANSWER_RANDOM:
        /* Counted and audited through *reason, as the refusal it replaces;
         * a replay is logged by ks_ops once answered, a full cache here. */
        if (v == KS_REPLAY_REPLAY) {
            *answer_random = KS_OPS_RANDOM_WARN;
            *reason = "replay";
            snprintf(detail, detail_len,
                     "replay: this ciphertext was already decrypted within "
                     "the replay window (%u s): answered with random bytes",
                     rt->cfg->replay_window);
            return ST(OK);
        }
        *answer_random = KS_OPS_RANDOM_QUIET;
        *reason = "replay_cache_full";
        snprintf(detail, detail_len, "replay cache full: answered with random bytes");
        ks_server_random_log(&srv->rlog_replay_full_random, &srv->lim_lock, now,
                             "replay cache "
                             "full for decrypt (replay_cache = %zu entries within "
                             "replay_window = %u s)",
                             rt->cfg->replay_cache, rt->cfg->replay_window);
        return ST(OK);
    case KS_REPLAY_REFUSE:
        *reason = "replay";
        snprintf(detail, detail_len,
                 "replay: these TLS handshake bytes were already signed "
                 "within the replay window (%u s)",
                 rt->cfg->replay_window);
        return ST(NOT_PERMITTED);
    case KS_REPLAY_REFUSE_FULL:
    default:
        *reason = "replay_cache_full";
        snprintf(detail, detail_len,
                 "replay cache full: too many operations within the "
                 "replay window");
        ks_server_overload_log(&srv->rlog_replay_full, &srv->lim_lock, now,
                               "replay cache full "
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
nng_msg *ks_server_answer(ks_server *srv, ks_slot *s)
{
    ks_runtime *rt = ks_server_rt(srv);
    Lurk__V1__Request *req;
    Lurk__V1__Status status;
    const char *why = NULL;
    ks_ops_answer ans;
    nng_msg *reply;
    ks_gstate *gs = ks_runtime_group(rt, s->group);
    char who[KS_SERVER_WHO];

    ks_server_who(s->ident, s->peer, s->group, who, sizeof(who));
    req = lurk_request_decode(nng_msg_body(s->msg), nng_msg_len(s->msg), &status, &why);
    if (req == NULL || status != ST(OK)) {
        /* Answer with the request id when there is one, so the edge can match it. */
        ks_ops_refuse(&ans, req != NULL ? req->id : 0, status, why);
        ks_log(KS_LOG_INFO, "refused %s from %s: %s: %s",
               req != NULL ? ks_ops_name(req) : "request", who, lurk_status_name(status),
               ans.detail);
    } else if (gs == NULL) {
        /* A connection of a group that a reload removed, not yet closed. */
        ks_ops_refuse(&ans, req->id, ST(NOT_PERMITTED), "edge group no longer configured");
        ks_log(KS_LOG_INFO, "refused %s from %s: edge group \"%s\" no longer configured",
               ks_ops_name(req), who, s->group);
    } else {
        ks_gate_ctx gc = { srv, rt, gs, s, who };
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
int ks_server_idle_locked(const ks_server *srv)
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

/* ---- metrics --------------------------------------------------------------- */

char *ks_server_render(void *arg, size_t *len)
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
        pthread_mutex_lock(&srv->slot_lock);
        g.in_flight = srv->sm.busy;
        g.max_inflight = srv->sm.max_total;
        pthread_mutex_unlock(&srv->slot_lock);
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

unsigned int ks_server_in_flight(ks_server *srv)
{
    unsigned int n;

    /*
     * Not `busy`: a slot whose answer nng is still sending stays busy after
     * the edge may already have read it.
     */
    pthread_mutex_lock(&srv->slot_lock);
    n = srv->sm.admitted;
    pthread_mutex_unlock(&srv->slot_lock);
    return n;
}

/* ---- refusals at admission (ks_lifecycle.c) ------------------------------- */

nng_msg *ks_server_refuse_slot(ks_server *srv, ks_slot *s, ks_slot_refusal why)
{
    char detail[128];

    switch (why) {
    case KS_SLOT_REFUSE_TOTAL:
        return ks_server_refuse_now(srv, s, ST(OVERLOADED), "inflight_total",
                                    "too many requests in flight on this key server");
    case KS_SLOT_REFUSE_GROUP:
        snprintf(detail, sizeof(detail), "edge group %s has too many requests in flight", s->group);
        return ks_server_refuse_now(srv, s, ST(OVERLOADED), "inflight_group", detail);
    case KS_SLOT_REFUSE_CONN:
    default:
        return ks_server_refuse_now(srv, s, ST(OVERLOADED), "inflight_conn",
                                    "too many requests in flight on this connection");
    }
}
