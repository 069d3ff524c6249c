/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the key server's nng side, shared by its three files:
 *
 *   ks_server.c     the runtime, connections, the gate (limits and the
 *                   replay window), answering, audit lines and metrics;
 *   ks_listen.c     listeners: TLS checks, plans, open and close, and
 *                   their part of a reload;
 *   ks_lifecycle.c  the slots (the adapter that runs ks_slot's state
 *                   machine over nng contexts), the workers, start, reload
 *                   and stop.
 *
 * The lock order is in ks_server.h. Not for use outside keyserver/ks_*.c.
 */
#ifndef KS_SERVER_INT_H
#define KS_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "ks_audit.h"
#include "ks_config.h"
#include "ks_http.h"
#include "ks_ident.h"
#include "ks_keys.h"
#include "ks_limits.h"
#include "ks_metrics.h"
#include "ks_ops.h"
#include "ks_replay.h"
#include "ks_server.h"
#include "ks_slot.h"

/* nng counts the SP header (a 4-byte request id per hop) against its limit. */
#define KS_SERVER_SP_HEADROOM 64u
/* An edge that stops reading must not hold a slot forever. */
#define KS_SERVER_SEND_TIMEOUT_MS 10000
/* Slots beyond max_inflight, to answer OVERLOADED while all others work. */
#define KS_SERVER_SPARE_SLOTS 8u
/* Overload and refusal summaries: at most one line per reason per interval. */
#define KS_SERVER_LOG_INTERVAL_US 10000000ull
/*
 * After a drain, how long answers already handed to nng get to leave before
 * the socket closes (unless every edge disconnects sooner): nng's rep socket
 * reports an answer sent once it is queued on the connection, before the
 * transport has written it, and closing the socket discards what is queued.
 */
#define KS_SERVER_LINGER_MS    250
#define KS_SERVER_PIPE_BUCKETS 1024u
#define KS_SERVER_GROUP_NAME   72
/*
 * ", TLSv1.3 TLS_AES_256_GCM_SHA384, session resumed, client certificate
 * verified": the channel of a connection, for its log line.
 */
#define KS_SERVER_HELLO 128
/* "LABEL at PEER [GROUP]": who a log line is about. */
#define KS_SERVER_WHO (KS_IDENT_LABEL + 128 + KS_SERVER_GROUP_NAME + 8)

/* ---- the runtime: everything a reload replaces ---- */

typedef struct {
    const ks_config_group *g;
    ks_bucket bucket;
    ks_ratelog rlog;
    uint32_t tag; /* hash of the name: a retry's group across reloads */
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
    ks_kstate *keys;      /* same order as kr->keys */
    int in_process;       /* every key is OpenSSL's own: answer in nng's callback */
    int group_inflight;   /* some group has a max_inflight of its own */
    pthread_mutex_t lock; /* the buckets and their log limiters */
    double loaded_time;
} ks_runtime;

/* ---- server state ---- */

/*
 * The groups a listener hands its connections to, in configuration order,
 * with their members (ks_ident_pick chooses): a copy, so that a listener
 * decides with what it was opened with, whichever runtime is current.
 */
typedef struct {
    char (*names)[KS_SERVER_GROUP_NAME];
    ks_ident_members *edges;
    size_t n;
} ks_lst_groups;

/* A listener we opened, and the groups and TLS material it was opened with. */
typedef struct ks_lst {
    struct ks_lst *next;
    nng_listener l;
    char *url;
    ks_lst_groups groups;
    int tls;
    unsigned char sig[32]; /* SHA-256 of group name and TLS files */
    /* What it was opened with, to open it again if a reload must be undone. */
    nng_tls_config *tls_cfg; /* held; NULL without TLS */
    size_t recv_max;
} ks_lst;

/*
 * One edge group's requests in flight, all its connections together (its
 * max_inflight), under conn_lock. Kept by group name, not in the runtime:
 * requests admitted before a reload are still counted after it. Freed with
 * the group's last connection.
 */
typedef struct ks_gcount {
    struct ks_gcount *next;
    char name[KS_SERVER_GROUP_NAME];
    unsigned int inflight;
    unsigned int conns;
} ks_gcount;

/* A connected edge. */
typedef struct ks_conn {
    struct ks_conn *next;
    uint32_t pipe_id;
    char peer[128];
    char group[KS_SERVER_GROUP_NAME];
    char ident[KS_IDENT_LABEL]; /* its certificate (ks_ident_label); "" without TLS */
    char hello[KS_SERVER_HELLO];
    unsigned int inflight;
    ks_gcount *gc; /* its group's count */
} ks_conn;

/* One receiving nng context; its state lives in srv->sm.slot[index]. */
typedef struct ks_slot {
    struct ks_server *srv;
    struct ks_slot *next; /* work queue */
    size_t index;
    nng_ctx ctx;
    nng_aio *aio;
    int ctx_open;
    uint32_t pipe_id;
    nng_msg *msg;
    uint64_t t0_us;
    struct timespec t0_real;
    char peer[128];
    char group[KS_SERVER_GROUP_NAME];
    char ident[KS_IDENT_LABEL]; /* its connection's certificate; "" without TLS */
} ks_slot;

struct ks_server {
    nng_socket sock;
    int sock_open;
    int debug_delay_ms;

    pthread_mutex_t rt_lock;
    ks_runtime *rt;
    uint64_t generation; /* reloads applied; only the reloading thread writes it */

    pthread_mutex_t lst_lock;
    ks_lst *lsts;

    pthread_mutex_t conn_lock;
    pthread_cond_t conn_cond; /* an edge disconnected (CLOCK_MONOTONIC) */
    ks_conn *conns[KS_SERVER_PIPE_BUCKETS];
    unsigned int n_conns;
    ks_gcount *gcounts; /* groups with a connection */
    atomic_ullong conns_refused;

    ks_slot *slots;
    size_t n_slots;
    unsigned int max_slots_inflight; /* max_inflight at start: slots allocated */

    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    ks_slot *q_head, *q_tail;
    int q_shutdown;
    unsigned int q_active;     /* workers between taking a request and coming back */
    atomic_uint inline_active; /* requests being answered in nng's callbacks */
    pthread_t *workers;
    size_t n_workers;

    /* The slots' state machine: in-flight counts, drain, reload generation. */
    pthread_mutex_t slot_lock;
    pthread_cond_t slot_cond; /* a slot went unbusy (the drain waits on it) */
    ks_slot_set sm;
    atomic_int draining; /* mirrors sm.draining for the connection callback */

    pthread_mutex_t lim_lock; /* server-wide refusal log limiters */
    ks_ratelog rlog_total, rlog_conn, rlog_group, rlog_replay_full, rlog_replay_full_random;

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

/* ---- ks_server.c ---- */

uint64_t ks_now_us(void);
ks_runtime *ks_runtime_new(ks_config *cfg, ks_keyring *kr, ks_ops *ops);
void ks_runtime_free(ks_runtime *rt);
/* The current runtime, held: release it with ks_runtime_release(). */
ks_runtime *ks_server_rt(ks_server *srv);
void ks_runtime_release(ks_runtime *rt);
/* The runtime's state of group `name`, NULL if it has no such group. */
ks_gstate *ks_runtime_group(ks_runtime *rt, const char *name);
void ks_server_peer(nng_pipe p, char *buf, size_t len);
/* "LABEL at PEER [GROUP]", or "PEER [GROUP]" for a connection without a certificate. */
void ks_server_who(const char *ident, const char *peer, const char *group, char *buf, size_t len);
void ks_server_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg);
/* The connection `id`, or NULL; with conn_lock held. */
ks_conn *ks_conn_find_locked(ks_server *srv, uint32_t id);
void ks_conn_leave(ks_server *srv, uint32_t id);
char *ks_server_render(void *arg, size_t *len);
/* The answer to the request in s (in a worker or nng's callback). */
nng_msg *ks_server_answer(ks_server *srv, ks_slot *s);
/* OVERLOADED for a request refused at admission, audited and counted. */
nng_msg *ks_server_refuse_slot(ks_server *srv, ks_slot *s, ks_slot_refusal why);
/* Nothing queued and no worker busy; with q_lock held. */
int ks_server_idle_locked(const ks_server *srv);
/* One warn line per interval: "<message>: N refused as overloaded". */
void ks_server_overload_log(ks_ratelog *rl, pthread_mutex_t *lock, uint64_t now, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));

/* ---- ks_listen.c ---- */

/* Open every listener of cfg (start). */
int ks_listen_start(ks_server *srv, const ks_config *cfg, char *err, size_t errlen);
/*
 * Reload, before the switch: open the new URLs and restart the changed
 * listeners. All or nothing: on failure (-1) every listener is as it was
 * (see ks_listen.c for the one case that cannot be undone).
 */
int ks_listen_prepare(ks_server *srv, const ks_config *cfg, char *err, size_t errlen);
/* Reload, after the switch: close the listeners cfg no longer has. */
void ks_listen_commit(ks_server *srv, const ks_config *cfg);
/* Forget every listener (the socket is closed). */
void ks_listen_free_all(ks_server *srv);
/*
 * The listener a pipe came through: its URL and whether it is TLS, and the
 * group that takes the peer: for TLS, the one ks_ident_pick() chooses for
 * `peer` (NULL: no certificate, no group); otherwise the listener's one
 * group. `group` is "" when none takes it. 0 if the listener is not ours.
 */
int ks_listen_pick(ks_server *srv, nng_pipe p, const ks_ident_peer *peer, char *url, size_t urllen,
                   int *tls, char group[KS_SERVER_GROUP_NAME]);

/* ---- ks_lifecycle.c ---- */

/* A connection closed: its requests in flight no longer count on it. */
void ks_slots_conn_closed(ks_server *srv, uint32_t id);

#endif
