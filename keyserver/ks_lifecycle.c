/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Slots and life cycle: the adapter that runs ks_slot's state machine over
 * nng contexts, the workers, and start, reload and stop. See
 * ks_server_int.h for how the key server's files divide the work.
 *
 * Each nng callback and each worker turns what happened into an event,
 * steps the machine under slot_lock, and carries out the actions it gives
 * after unlocking: nng calls, answering and logging never happen under
 * one of our locks (nng runs our callbacks under its own).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <openssl/rand.h>

#include "ks_log.h"
#include "ks_server_int.h"
#include "lurk_transport.h"
#include "lurk_wire.h"

/* ---- slots ----------------------------------------------------------------- */

static void ks_slot_work(ks_slot *s);
static void ks_slot_work_inline(ks_slot *s);
static void ks_slot_refuse(ks_slot *s, const ks_slot_act *act);

/*
 * Step slot s (NULL: a set-wide event) with slot_lock held, waking the
 * drain when due. An event the state does not allow comes back as
 * KS_SLOT_A_INVALID, logged by ks_slots_carry() once the lock is released.
 */
static void ks_slots_step_locked(ks_server *srv, ks_slot *s, const ks_slot_ev *ev, ks_slot_act *act)
{
    (void)ks_slot_step(&srv->sm, s != NULL ? s->index : 0, ev, act);
    if (act->acts & KS_SLOT_A_NOTIFY)
        pthread_cond_broadcast(&srv->slot_cond);
}

static ks_slot_act ks_slots_step(ks_server *srv, ks_slot *s, ks_slot_ev ev)
{
    ks_slot_act act;

    pthread_mutex_lock(&srv->slot_lock);
    ks_slots_step_locked(srv, s, &ev, &act);
    pthread_mutex_unlock(&srv->slot_lock);
    return act;
}

static void ks_slot_recv(ks_slot *s)
{
    nng_aio_set_timeout(s->aio, NNG_DURATION_INFINITE);
    nng_ctx_recv(s->ctx, s->aio);
}

static void ks_slot_send(ks_slot *s, nng_msg *reply)
{
    nng_aio_set_msg(s->aio, reply);
    nng_aio_set_timeout(s->aio, KS_SERVER_SEND_TIMEOUT_MS);
    nng_ctx_send(s->ctx, s->aio);
}

static void ks_slot_queue(ks_slot *s)
{
    ks_server *srv = s->srv;

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

/* Carry out the machine's actions, in the order ks_slot.h gives. `reply`: for SEND. */
static void ks_slots_carry(ks_slot *s, const ks_slot_act *act, nng_msg *reply)
{
    if (act->acts & KS_SLOT_A_INVALID) {
        /* A bug of ours, not the edge's: say so; the slot stays as it was. */
        ks_log(KS_LOG_ERROR,
               "request slot %zu: an event its state does not allow was "
               "ignored",
               s->index);
        return;
    }
    if (act->acts & KS_SLOT_A_CONN_LEAVE)
        ks_conn_leave(s->srv, act->conn);
    if ((act->acts & KS_SLOT_A_DROP) && s->msg != NULL) {
        nng_msg_free(s->msg);
        s->msg = NULL;
    }
    if (act->acts & KS_SLOT_A_FREE_REPLY) {
        /* On a failed send the message is still ours. */
        nng_msg_free(nng_aio_get_msg(s->aio));
        nng_aio_set_msg(s->aio, NULL);
    }
    if (act->acts & KS_SLOT_A_QUEUE)
        ks_slot_queue(s);
    if (act->acts & KS_SLOT_A_ANSWER)
        ks_slot_work_inline(s);
    if (act->acts & KS_SLOT_A_REFUSE)
        ks_slot_refuse(s, act);
    if (act->acts & KS_SLOT_A_SEND)
        ks_slot_send(s, reply);
    if (act->acts & KS_SLOT_A_RECV)
        ks_slot_recv(s);
}

/* The answer (or none) is made: hand it to the machine, which says what follows. */
static void ks_slot_done(ks_slot *s, nng_msg *reply)
{
    ks_slot_ev ev = { .type = KS_SLOT_EV_WORKER_DONE, .has_reply = reply != NULL };
    ks_slot_act act;

    if (s->msg != NULL) {
        nng_msg_free(s->msg);
        s->msg = NULL;
    }
    act = ks_slots_step(s->srv, s, ev);
    ks_slots_carry(s, &act, reply);
}

/* Answer an admitted request: on a worker, or inline. */
static void ks_slot_work(ks_slot *s)
{
    ks_slot_done(s, ks_server_answer(s->srv, s));
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
    /* ks_server_shutdown waits for the last of these (the workers are gone). */
    if (srv->q_shutdown)
        pthread_cond_broadcast(&srv->q_cond);
    pthread_mutex_unlock(&srv->q_lock);
    if (idle)
        ks_audit_flush(srv->audit);
}

/* Over max_inflight (total or group) or max_inflight_per_conn: OVERLOADED at once, from the slot. */
static void ks_slot_refuse(ks_slot *s, const ks_slot_act *act)
{
    ks_server *srv = s->srv;
    char who[KS_SERVER_WHO];

    ks_server_who(s->ident, s->peer, s->group, who, sizeof(who));
    if (act->refusal == KS_SLOT_REFUSE_TOTAL)
        ks_server_overload_log(&srv->rlog_total, &srv->lim_lock, s->t0_us,
                               "max_inflight (%u) reached, last from %s", act->limit, who);
    else if (act->refusal == KS_SLOT_REFUSE_GROUP)
        ks_server_overload_log(&srv->rlog_group, &srv->lim_lock, s->t0_us,
                               "max_inflight (%u) of edge group %s reached, last from %s",
                               act->limit, s->group, who);
    else
        ks_server_overload_log(&srv->rlog_conn, &srv->lim_lock, s->t0_us,
                               "max_inflight_per_conn (%u) reached by %s", act->limit, who);
    ks_slot_done(s, ks_server_refuse_slot(srv, s, act->refusal));
}

/* The max_inflight of a connection's group in the runtime; 0: none. */
static unsigned int ks_slot_group_max(ks_runtime *rt, const ks_conn *c)
{
    ks_gstate *gs;

    if (rt == NULL || !rt->group_inflight || (gs = ks_runtime_group(rt, c->group)) == NULL)
        return 0;
    return gs->g->max_inflight;
}

/*
 * A request arrived on slot s. Its connection's and group's counts and
 * the machine's step are one decision: conn_lock is held around the step
 * (lock order: conn_lock, then slot_lock). The group's limit comes from
 * the runtime, held before conn_lock is taken (rt_lock is a leaf) and
 * only read under it: a runtime never changes once made.
 */
static void ks_slot_arrived(ks_slot *s)
{
    ks_server *srv = s->srv;
    ks_slot_ev ev = { .type = KS_SLOT_EV_RECEIVED };
    ks_slot_act act;
    ks_conn *c;
    ks_runtime *rt = ks_server_rt(srv);

    s->msg = nng_aio_get_msg(s->aio);
    nng_aio_set_msg(s->aio, NULL);
    s->t0_us = ks_now_us();
    clock_gettime(CLOCK_REALTIME, &s->t0_real);
    s->pipe_id = ev.conn = (uint32_t)nng_pipe_id(nng_msg_get_pipe(s->msg));
    s->peer[0] = s->group[0] = s->ident[0] = '\0';
    pthread_mutex_lock(&srv->conn_lock);
    if ((c = ks_conn_find_locked(srv, s->pipe_id)) != NULL) {
        snprintf(s->peer, sizeof(s->peer), "%s", c->peer);
        snprintf(s->group, sizeof(s->group), "%s", c->group);
        memcpy(s->ident, c->ident, sizeof(s->ident));
        ev.conn_known = 1;
        ev.conn_inflight = c->inflight;
        ev.group_inflight = c->gc != NULL ? c->gc->inflight : 0;
        ev.max_group = ks_slot_group_max(rt, c);
    }
    pthread_mutex_lock(&srv->slot_lock);
    ks_slots_step_locked(srv, s, &ev, &act);
    pthread_mutex_unlock(&srv->slot_lock);
    if (c != NULL && (act.acts & KS_SLOT_A_CONN_ENTER)) {
        c->inflight++;
        if (c->gc != NULL)
            c->gc->inflight++;
    }
    pthread_mutex_unlock(&srv->conn_lock);
    ks_runtime_release(rt);
    if (c == NULL && !(act.acts & KS_SLOT_A_DROP)) {
        /* Not (any more) in the table: only the total limit applies to it. */
        ks_server_peer(nng_msg_get_pipe(s->msg), s->peer, sizeof(s->peer));
        snprintf(s->group, sizeof(s->group), "?");
    }
    ks_slots_carry(s, &act, NULL);
}

static void ks_slot_cb(void *arg)
{
    ks_slot *s = arg;
    ks_server *srv = s->srv;
    int rv = nng_aio_result(s->aio), closed;
    ks_slot_state st;
    ks_slot_ev ev = { .type = KS_SLOT_EV_SENT };
    ks_slot_act act;

    pthread_mutex_lock(&srv->slot_lock);
    st = srv->sm.slot[s->index].state;
    closed = srv->sm.closed;
    pthread_mutex_unlock(&srv->slot_lock);
    switch (st) {
    case KS_SLOT_RECV:
        if (rv == 0) {
            ks_slot_arrived(s);
            return;
        }
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
            ev.type = KS_SLOT_EV_RECV_CLOSED;
        } else {
            if (!closed)
                ks_log(KS_LOG_WARN, "receive: %s", nng_strerror(rv));
            ev.type = KS_SLOT_EV_RECV_ERROR;
        }
        break;
    case KS_SLOT_SEND:
        if (rv != 0) {
            ev.type = KS_SLOT_EV_SEND_FAILED;
            if (rv != NNG_ECLOSED)
                ks_log(KS_LOG_DEBUG, "answer to %s not sent: %s", s->peer, nng_strerror(rv));
        }
        break;
    default: return;
    }
    act = ks_slots_step(srv, s, ev);
    ks_slots_carry(s, &act, NULL);
}

void ks_slots_conn_closed(ks_server *srv, uint32_t id)
{
    ks_slot_ev ev = { .type = KS_SLOT_EV_CONN_CLOSED, .conn = id };
    ks_slot_act act = ks_slots_step(srv, NULL, ev);

    if (act.n > 0)
        ks_log(KS_LOG_DEBUG,
               "pipe %u closed with %u requests in flight; their answers go "
               "nowhere",
               id, act.n);
}

static void *ks_server_worker(void *arg)
{
    ks_server *srv = arg;
    int busy = 0;

    for (;;) {
        ks_slot *s;
        ks_slot_act act;

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
        act = ks_slots_step(srv, s, (ks_slot_ev){ .type = KS_SLOT_EV_TAKEN });
        if (act.acts == 0)
            ks_slot_work(s);
        else
            ks_slots_carry(s, &act, NULL); /* closed meanwhile: dropped */
    }
    /* Now rather than in the thread-exit destructor, while OpenSSL is surely intact. */
    ks_ops_thread_cleanup();
    return NULL;
}

/* The limits and answering mode of a runtime, as the machine takes them. */
static ks_slot_ev ks_slots_limits(const ks_server *srv, const ks_runtime *rt, uint64_t gen)
{
    ks_slot_ev ev = { .type = KS_SLOT_EV_RELOAD, .gen = gen };

    ev.max_total = rt->cfg->max_inflight;
    ev.max_conn = rt->cfg->max_inflight_per_conn;
    ev.answer_inline = rt->in_process && srv->debug_delay_ms == 0;
    return ev;
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
            lurk_errf(err, errlen, "cannot start worker %u of %u: %s", i + 1, n, strerror(rv));
            return -1;
        }
        srv->n_workers++;
    }
    return 0;
}

static int ks_server_slots_start(ks_server *srv, size_t n, char *err, size_t errlen)
{
    ks_slot_ev limits = ks_slots_limits(srv, srv->rt, 0);
    int rv;

    if ((srv->slots = calloc(n, sizeof(*srv->slots))) == NULL
        || ks_slot_init(&srv->sm, n, srv->max_slots_inflight, &limits) != 0) {
        lurk_errf(err, errlen, "out of memory for %zu request slots", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        ks_slot *s = &srv->slots[i];

        s->srv = srv;
        s->index = i;
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
    ks_listen_free_all(srv);
    for (size_t b = 0; b < KS_SERVER_PIPE_BUCKETS; b++) {
        while (srv->conns[b] != NULL) {
            ks_conn *c = srv->conns[b];

            srv->conns[b] = c->next;
            free(c);
        }
    }
    while (srv->gcounts != NULL) {
        ks_gcount *gc = srv->gcounts;

        srv->gcounts = gc->next;
        free(gc);
    }
    ks_runtime_release(srv->rt);
    ks_replay_free(srv->replay);
    ks_audit_close(srv->audit);
    ks_metrics_free(srv->metrics);
    free(srv->slots);
    ks_slot_free(&srv->sm);
    free(srv->workers);
    pthread_mutex_destroy(&srv->rt_lock);
    pthread_mutex_destroy(&srv->lst_lock);
    pthread_mutex_destroy(&srv->conn_lock);
    pthread_mutex_destroy(&srv->q_lock);
    pthread_cond_destroy(&srv->q_cond);
    pthread_mutex_destroy(&srv->slot_lock);
    pthread_cond_destroy(&srv->slot_cond);
    pthread_cond_destroy(&srv->conn_cond);
    pthread_mutex_destroy(&srv->lim_lock);
    pthread_mutex_destroy(&srv->replay_lock);
    free(srv);
}

/* Close the socket, stop slots and workers. */
static void ks_server_shutdown(ks_server *srv)
{
    ks_slot_act act;

    pthread_mutex_lock(&srv->slot_lock);
    ks_slots_step_locked(srv, NULL, &(ks_slot_ev){ .type = KS_SLOT_EV_CLOSE }, &act);
    pthread_mutex_unlock(&srv->slot_lock);
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
    pthread_mutex_lock(&srv->q_lock);
    while (atomic_load(&srv->inline_active) > 0)
        pthread_cond_wait(&srv->q_cond, &srv->q_lock);
    pthread_mutex_unlock(&srv->q_lock);
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

/* The channel engine explains failed handshakes: which edge certificate, which version. */
static void ks_server_tls_log(int warn, const char *msg)
{
    ks_log(warn ? KS_LOG_WARN : KS_LOG_INFO, "%s", msg);
}

int ks_server_start(ks_config *cfg, ks_keyring *kr, ks_ops *ops, int debug_delay_ms,
                    ks_server **out, char *err, size_t errlen)
{
    ks_server *srv = calloc(1, sizeof(*srv));
    ks_slot_act act;
    pthread_condattr_t cattr;
    int rv;

    *out = NULL;
    if (srv == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    srv->debug_delay_ms = debug_delay_ms;
    lurk_tls_set_logger(ks_server_tls_log);
    pthread_mutex_init(&srv->rt_lock, NULL);
    pthread_mutex_init(&srv->lst_lock, NULL);
    pthread_mutex_init(&srv->conn_lock, NULL);
    pthread_mutex_init(&srv->q_lock, NULL);
    pthread_cond_init(&srv->q_cond, NULL);
    pthread_mutex_init(&srv->slot_lock, NULL);
    /* The drain's deadlines must not move with the wall clock. */
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->slot_cond, &cattr);
    pthread_cond_init(&srv->conn_cond, &cattr);
    pthread_condattr_destroy(&cattr);
    pthread_mutex_init(&srv->lim_lock, NULL);
    pthread_mutex_init(&srv->replay_lock, NULL);
    ks_ratelog_init(&srv->rlog_total, KS_SERVER_LOG_INTERVAL_US);
    ks_ratelog_init(&srv->rlog_conn, KS_SERVER_LOG_INTERVAL_US);
    ks_ratelog_init(&srv->rlog_group, KS_SERVER_LOG_INTERVAL_US);
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
                                  cfg->max_message + KS_SERVER_SP_HEADROOM))
            != 0
        || (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, ks_server_pipe_event, srv)) != 0
        || (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_POST, ks_server_pipe_event, srv)) != 0
        || (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, ks_server_pipe_event, srv))
            != 0) {
        lurk_errf(err, errlen, "nng socket setup: %s", nng_strerror(rv));
        goto fail;
    }
    if (ks_server_workers_start(srv, cfg->workers, err, errlen) != 0
        || ks_server_slots_start(srv, (size_t)cfg->max_inflight + KS_SERVER_SPARE_SLOTS, err,
                                 errlen)
            != 0)
        goto fail;
    /* Slots receive before we listen: a request arriving at once finds one waiting. */
    for (size_t i = 0; i < srv->n_slots; i++) {
        act = ks_slots_step(srv, &srv->slots[i], (ks_slot_ev){ .type = KS_SLOT_EV_START });
        ks_slots_carry(&srv->slots[i], &act, NULL);
    }
    if (ks_listen_start(srv, cfg, err, errlen) != 0)
        goto fail;
    if (cfg->metrics_listen != NULL
        && ks_http_start(cfg->metrics_listen, ks_server_render, srv, &srv->http, err, errlen) != 0)
        goto fail;
    atomic_store(&srv->config_loads, 1);
    *out = srv;
    return 0;
fail:
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

/*
 * All or nothing: everything that can fail (TLS files, the runtime, the
 * listeners, see ks_listen_prepare) happens before the switch, and a
 * failure there puts every listener back as it was. After the switch only
 * things that cannot fail, or whose failure keeps the old state (the audit
 * log), remain.
 */
int ks_server_reload(ks_server *srv, ks_config *cfg, ks_keyring *kr, ks_ops *ops, char *err,
                     size_t errlen)
{
    ks_runtime *rt_new, *rt_old;
    ks_slot_ev limits;
    ks_slot_act act;
    int rv;

    if ((rt_new = ks_runtime_new(cfg, kr, ops)) == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    if (ks_listen_prepare(srv, cfg, err, errlen) != 0) {
        /* The caller keeps what it passed on failure. */
        rt_new->cfg = NULL;
        rt_new->kr = NULL;
        rt_new->ops = NULL;
        ks_runtime_free(rt_new);
        return -1;
    }
    /* Swap: requests from now on use the new configuration. */
    pthread_mutex_lock(&srv->rt_lock);
    rt_old = srv->rt;
    srv->rt = rt_new;
    pthread_mutex_unlock(&srv->rt_lock);
    limits = ks_slots_limits(srv, rt_new, ++srv->generation);
    pthread_mutex_lock(&srv->slot_lock);
    ks_slots_step_locked(srv, NULL, &limits, &act);
    pthread_mutex_unlock(&srv->slot_lock);
    ks_log(KS_LOG_DEBUG, "reload: generation %llu, %u requests in flight carry on",
           (unsigned long long)srv->generation, act.n);
    if ((rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ,
                                  cfg->max_message + KS_SERVER_SP_HEADROOM))
        != 0)
        ks_log(KS_LOG_WARN, "max_message: %s", nng_strerror(rv));
    ks_listen_commit(srv, cfg);
    if (!ks_server_audit_same(rt_old->cfg->audit_log, cfg->audit_log)) {
        char why[512] = "";

        if (ks_audit_retarget(srv->audit, cfg->audit_log, why, sizeof(why)) != 0)
            ks_log(KS_LOG_ERROR, "reload: %s; the audit log stays where it was", why);
    }
    if (cfg->max_inflight > srv->max_slots_inflight)
        ks_log(KS_LOG_WARN,
               "reload: max_inflight %u is above the %u this process started "
               "with; restart to raise it",
               cfg->max_inflight, srv->max_slots_inflight);
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

/*
 * The answers the drain saw sent may still be queued in nng's connections
 * (KS_SERVER_LINGER_MS): give them that long to leave, or until every edge
 * has disconnected, before the socket closes.
 */
static void ks_server_linger(ks_server *srv)
{
    struct timespec deadline;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += KS_SERVER_LINGER_MS * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&srv->conn_lock);
    while (srv->n_conns > 0)
        if (pthread_cond_timedwait(&srv->conn_cond, &srv->conn_lock, &deadline) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&srv->conn_lock);
}

void ks_server_stop(ks_server *srv)
{
    ks_runtime *rt;
    unsigned int timeout_s, left, at_start;
    struct timespec deadline;
    size_t nworkers;
    ks_slot_act act;

    if (srv == NULL)
        return;
    rt = ks_server_rt(srv);
    timeout_s = rt->cfg->drain_timeout;
    ks_runtime_release(rt);
    /* Stop taking connections and requests; let the admitted ones finish. */
    atomic_store(&srv->draining, 1);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)timeout_s;
    pthread_mutex_lock(&srv->slot_lock);
    ks_slots_step_locked(srv, NULL, &(ks_slot_ev){ .type = KS_SLOT_EV_DRAIN }, &act);
    at_start = act.n;
    while (srv->sm.busy > 0) {
        if (pthread_cond_timedwait(&srv->slot_cond, &srv->slot_lock, &deadline) == ETIMEDOUT)
            break;
    }
    left = srv->sm.busy;
    pthread_mutex_unlock(&srv->slot_lock);
    if (left > 0)
        ks_log(KS_LOG_WARN,
               "drain: %u of %u requests still in flight after drain_timeout "
               "(%u s); their connections close and the edges resend them elsewhere",
               left, at_start, timeout_s);
    else
        ks_log(KS_LOG_INFO, "drained: %u requests in flight at the stop were answered", at_start);
    ks_server_linger(srv);
    nworkers = srv->n_workers;
    ks_server_shutdown(srv);
    ks_log(KS_LOG_INFO,
           "stopped: %llu requests answered, %llu refused, peak %u of %zu workers "
           "busy (admitted in flight; max_inflight %u)",
           (unsigned long long)atomic_load(&srv->answered),
           (unsigned long long)atomic_load(&srv->refused), srv->sm.peak, nworkers,
           srv->max_slots_inflight);
    ks_server_free(srv);
}
