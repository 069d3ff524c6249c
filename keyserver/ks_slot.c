/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The slot state machine: see ks_slot.h.
 */
#include "ks_slot.h"

#include <stdlib.h>
#include <string.h>

#include "ks_limits.h"

static const char *const ks_slot_state_names[KS_SLOT_N_STATES] = {
    "IDLE", "RECV", "QUEUED", "WORK", "SEND",
};

static const char *const ks_slot_event_names[KS_SLOT_N_EVENTS] = {
    "START", "RECEIVED",    "RECV_ERROR",  "RECV_CLOSED", "TAKEN",  "WORKER_DONE",
    "SENT",  "SEND_FAILED", "CONN_CLOSED", "DRAIN",       "RELOAD", "CLOSE",
};

const char *ks_slot_state_name(ks_slot_state s)
{
    return (unsigned int)s < KS_SLOT_N_STATES ? ks_slot_state_names[s] : "?";
}

const char *ks_slot_event_name(ks_slot_event e)
{
    return (unsigned int)e < KS_SLOT_N_EVENTS ? ks_slot_event_names[e] : "?";
}

/* A reload cannot raise max_inflight above the slots that exist. */
static void ks_slot_set_limits(ks_slot_set *set, const ks_slot_ev *ev)
{
    set->gen = ev->gen;
    set->max_total = ev->max_total == 0 || ev->max_total > set->cap_total ? set->cap_total
                                                                          : ev->max_total;
    set->max_conn = ev->max_conn;
    set->answer_inline = ev->answer_inline;
}

int ks_slot_init(ks_slot_set *set, size_t n, unsigned int cap_total, const ks_slot_ev *limits)
{
    memset(set, 0, sizeof(*set));
    if ((set->slot = calloc(n ? n : 1, sizeof(*set->slot))) == NULL)
        return -1;
    set->n = n;
    set->cap_total = cap_total;
    ks_slot_set_limits(set, limits);
    return 0;
}

void ks_slot_free(ks_slot_set *set)
{
    free(set->slot);
    memset(set, 0, sizeof(*set));
}

static int ks_slot_stopping(const ks_slot_set *set)
{
    return set->draining || set->closed;
}

/* The answer is ready or abandoned: the request no longer counts. */
static void ks_slot_release(ks_slot_set *set, ks_slot_rec *r, ks_slot_act *act)
{
    if (r->admitted) {
        set->admitted--;
        r->admitted = 0;
    }
    if (r->on_conn) {
        act->acts |= KS_SLOT_A_CONN_LEAVE;
        act->conn = r->conn;
        r->on_conn = 0;
    }
}

/* The slot is done with its request: receive again, or rest when stopping. */
static void ks_slot_finish(ks_slot_set *set, ks_slot_rec *r, ks_slot_act *act)
{
    ks_slot_release(set, r, act);
    set->busy--;
    act->acts |= KS_SLOT_A_NOTIFY;
    if (ks_slot_stopping(set)) {
        r->state = KS_SLOT_IDLE;
        if (set->draining && set->busy == 0)
            act->acts |= KS_SLOT_A_DRAINED;
    } else {
        r->state = KS_SLOT_RECV;
        act->acts |= KS_SLOT_A_RECV;
    }
}

static void ks_slot_received(ks_slot_set *set, ks_slot_rec *r, const ks_slot_ev *ev,
                             ks_slot_act *act)
{
    unsigned int conn_max = ev->conn_known ? set->max_conn : 0;
    ks_admit admit;

    set->busy++;
    r->admitted = r->on_conn = 0;
    r->conn = ev->conn;
    if (ks_slot_stopping(set)) {
        /* Not taken: the edge resends it elsewhere once this server closes the connection. */
        act->acts |= KS_SLOT_A_DROP;
        ks_slot_finish(set, r, act);
        return;
    }
    /* A connection no longer in the table has no group to count it in either. */
    admit = ks_limits_admit(set->admitted, set->max_total, ev->conn_known ? ev->group_inflight : 0,
                            ev->conn_known ? ev->max_group : 0,
                            ev->conn_known ? ev->conn_inflight : 0, conn_max);
    r->state = KS_SLOT_WORK;
    switch (admit) {
    case KS_ADMIT_OK: break;
    case KS_ADMIT_TOTAL:
        act->refusal = KS_SLOT_REFUSE_TOTAL;
        act->limit = set->max_total;
        break;
    case KS_ADMIT_GROUP:
        act->refusal = KS_SLOT_REFUSE_GROUP;
        act->limit = ev->max_group;
        break;
    case KS_ADMIT_CONNECTION:
    default:
        act->refusal = KS_SLOT_REFUSE_CONN;
        act->limit = conn_max;
        break;
    }
    if (admit != KS_ADMIT_OK) {
        act->acts |= KS_SLOT_A_REFUSE;
        return;
    }
    r->admitted = 1;
    r->gen = set->gen;
    if (++set->admitted > set->peak)
        set->peak = set->admitted;
    if (ev->conn_known) {
        r->on_conn = 1;
        act->acts |= KS_SLOT_A_CONN_ENTER;
        act->conn = ev->conn;
    }
    if (set->answer_inline) {
        act->acts |= KS_SLOT_A_ANSWER;
    } else {
        r->state = KS_SLOT_QUEUED;
        act->acts |= KS_SLOT_A_QUEUE;
    }
}

/* Events that concern every slot. */
static void ks_slot_step_set(ks_slot_set *set, const ks_slot_ev *ev, ks_slot_act *act)
{
    switch (ev->type) {
    case KS_SLOT_EV_CONN_CLOSED:
        /* Its counter is gone with it: nothing to count down when these finish. */
        for (size_t i = 0; i < set->n; i++) {
            if (set->slot[i].on_conn && set->slot[i].conn == ev->conn) {
                set->slot[i].on_conn = 0;
                act->n++;
            }
        }
        break;
    case KS_SLOT_EV_DRAIN:
        set->draining = 1;
        act->n = set->busy;
        if (set->busy == 0)
            act->acts |= KS_SLOT_A_DRAINED;
        break;
    case KS_SLOT_EV_RELOAD:
        /* Requests in flight keep going; only the next admissions see the new limits. */
        ks_slot_set_limits(set, ev);
        act->n = set->admitted;
        break;
    case KS_SLOT_EV_CLOSE:
    default: set->closed = 1; break;
    }
}

int ks_slot_step(ks_slot_set *set, size_t i, const ks_slot_ev *ev, ks_slot_act *act)
{
    ks_slot_rec *r;
    ks_slot_state want;

    memset(act, 0, sizeof(*act));
    switch (ev->type) {
    case KS_SLOT_EV_CONN_CLOSED:
    case KS_SLOT_EV_DRAIN:
    case KS_SLOT_EV_RELOAD:
    case KS_SLOT_EV_CLOSE: ks_slot_step_set(set, ev, act); return 0;
    case KS_SLOT_EV_START: want = KS_SLOT_IDLE; break;
    case KS_SLOT_EV_RECEIVED:
    case KS_SLOT_EV_RECV_ERROR:
    case KS_SLOT_EV_RECV_CLOSED: want = KS_SLOT_RECV; break;
    case KS_SLOT_EV_TAKEN: want = KS_SLOT_QUEUED; break;
    case KS_SLOT_EV_WORKER_DONE: want = KS_SLOT_WORK; break;
    case KS_SLOT_EV_SENT:
    case KS_SLOT_EV_SEND_FAILED: want = KS_SLOT_SEND; break;
    default: act->acts = KS_SLOT_A_INVALID; return -1;
    }
    if (i >= set->n || set->slot[i].state != want) {
        act->acts = KS_SLOT_A_INVALID;
        return -1;
    }
    r = &set->slot[i];
    switch (ev->type) {
    case KS_SLOT_EV_START:
        if (!ks_slot_stopping(set)) {
            r->state = KS_SLOT_RECV;
            act->acts = KS_SLOT_A_RECV;
        }
        break;
    case KS_SLOT_EV_RECEIVED: ks_slot_received(set, r, ev, act); break;
    case KS_SLOT_EV_RECV_ERROR:
        /* A transient failure: keep receiving unless the socket is going away. */
        if (set->closed) {
            r->state = KS_SLOT_IDLE;
        } else {
            act->acts = KS_SLOT_A_RECV;
        }
        break;
    case KS_SLOT_EV_RECV_CLOSED: r->state = KS_SLOT_IDLE; break;
    case KS_SLOT_EV_TAKEN:
        if (set->closed) {
            act->acts |= KS_SLOT_A_DROP;
            ks_slot_finish(set, r, act);
        } else {
            r->state = KS_SLOT_WORK;
        }
        break;
    case KS_SLOT_EV_WORKER_DONE:
        if (ev->has_reply) {
            /* No longer in flight (nng sends it on its own), though the slot stays busy. */
            ks_slot_release(set, r, act);
            r->state = KS_SLOT_SEND;
            act->acts |= KS_SLOT_A_SEND;
        } else {
            ks_slot_finish(set, r, act);
        }
        break;
    case KS_SLOT_EV_SEND_FAILED:
        act->acts |= KS_SLOT_A_FREE_REPLY;
        ks_slot_finish(set, r, act);
        break;
    case KS_SLOT_EV_SENT:
    default: ks_slot_finish(set, r, act); break;
    }
    return 0;
}
