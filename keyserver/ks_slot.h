/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The life of a receiving slot as a pure state machine: an event on one
 * slot (or on the whole set: drain, reload, a connection gone) gives the
 * slot's next state and the actions the caller must carry out. No I/O, no
 * lock, no clock: the key server steps it under its slot lock and does the
 * nng calls, the answering and the logging itself, after unlocking.
 *
 *   IDLE --START--> RECV --RECEIVED--> QUEUED --TAKEN--> WORK
 *                     ^        |  (admitted, via workers)    |
 *                     |        +--> WORK (inline, or refused |
 *                     |             OVERLOADED)              |
 *                     |                                      v
 *                     +------SENT / SEND_FAILED------------ SEND
 *
 * A request counts against max_inflight (and its connection's
 * max_inflight_per_conn) from admission until its answer is ready
 * (WORKER_DONE); the slot stays busy until the answer is sent. Draining
 * stops new work: a request received while draining is dropped unanswered
 * and a slot that finishes rests (IDLE) instead of receiving again.
 *
 * The machine keeps the total in flight; a connection's own count stays
 * in the caller's connection table (there may be a million connections):
 * RECEIVED brings it, and CONN_ENTER / CONN_LEAVE say when to change it.
 * Once CONN_CLOSED has said a connection is gone, its requests still in
 * flight finish without a CONN_LEAVE, so a later connection that gets the
 * same id is never counted down for them. The count of the connection's
 * edge group (its max_inflight) follows the same actions: RECEIVED brings
 * the group's count and limit, CONN_ENTER / CONN_LEAVE change both, and a
 * closed connection's requests leave its group's count with it.
 */
#ifndef KS_SLOT_H
#define KS_SLOT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    KS_SLOT_IDLE = 0, /* no receive posted: before start, after drain or close */
    KS_SLOT_RECV,     /* a receive is posted */
    KS_SLOT_QUEUED,   /* admitted, waiting for a worker */
    KS_SLOT_WORK,     /* being answered (worker, inline, or an OVERLOADED refusal) */
    KS_SLOT_SEND,     /* the answer is being sent */
    KS_SLOT_N_STATES
} ks_slot_state;

typedef enum {
    KS_SLOT_EV_START = 0,   /* post the first receive */
    KS_SLOT_EV_RECEIVED,    /* a request arrived (conn fields of the event) */
    KS_SLOT_EV_RECV_ERROR,  /* the receive failed, the socket still open */
    KS_SLOT_EV_RECV_CLOSED, /* the receive was cancelled or the socket closed */
    KS_SLOT_EV_TAKEN,       /* a worker took the queued slot */
    KS_SLOT_EV_WORKER_DONE, /* answer ready (has_reply) or none could be made */
    KS_SLOT_EV_SENT,
    KS_SLOT_EV_SEND_FAILED, /* the answer is still ours to free */
    KS_SLOT_EV_CONN_CLOSED, /* set-wide: connection `conn` is gone */
    KS_SLOT_EV_DRAIN,       /* set-wide: SIGTERM */
    KS_SLOT_EV_RELOAD,      /* set-wide: SIGHUP switched to generation `gen` */
    KS_SLOT_EV_CLOSE,       /* set-wide: the socket is about to close */
    KS_SLOT_N_EVENTS
} ks_slot_event;

/* Actions: a bit set, carried out by the caller in this order. */
enum {
    KS_SLOT_A_CONN_ENTER = 1u << 0, /* count one more request on act.conn */
    KS_SLOT_A_CONN_LEAVE = 1u << 1, /* count one fewer on act.conn */
    KS_SLOT_A_QUEUE = 1u << 2,      /* hand the slot to the workers */
    KS_SLOT_A_ANSWER = 1u << 3,     /* answer it now, on this thread */
    KS_SLOT_A_REFUSE = 1u << 4,     /* answer OVERLOADED now (act.refusal) */
    KS_SLOT_A_DROP = 1u << 5,       /* free the request unanswered */
    KS_SLOT_A_SEND = 1u << 6,       /* send the answer */
    KS_SLOT_A_FREE_REPLY = 1u << 7, /* free the answer that was not sent */
    KS_SLOT_A_RECV = 1u << 8,       /* post a receive */
    KS_SLOT_A_NOTIFY = 1u << 9,     /* a slot went unbusy: wake a drain waiting for it */
    KS_SLOT_A_DRAINED = 1u << 10,   /* draining and nothing busy any more */
    KS_SLOT_A_INVALID = 1u << 15    /* the event cannot happen in this state: nothing done */
};

typedef enum {
    KS_SLOT_REFUSE_NONE = 0,
    KS_SLOT_REFUSE_TOTAL, /* max_inflight reached */
    KS_SLOT_REFUSE_CONN,  /* max_inflight_per_conn reached */
    KS_SLOT_REFUSE_GROUP  /* the edge group's max_inflight reached */
} ks_slot_refusal;

typedef struct {
    ks_slot_event type;
    /* RECEIVED, CONN_CLOSED: the connection. conn_known 0: not (any more) in the table. */
    uint32_t conn;
    int conn_known;
    unsigned int conn_inflight; /* RECEIVED: its requests in flight now */
    /* RECEIVED, with conn_known: its edge group's requests in flight and limit (0: none). */
    unsigned int group_inflight, max_group;
    int has_reply; /* WORKER_DONE */
    /* RELOAD (and ks_slot_init): the limits and answering mode in force. */
    uint64_t gen;
    unsigned int max_total, max_conn;
    int answer_inline;
} ks_slot_ev;

typedef struct {
    unsigned int acts;
    ks_slot_refusal refusal;
    uint32_t conn;      /* CONN_ENTER, CONN_LEAVE */
    unsigned int limit; /* REFUSE: the limit that was reached */
    unsigned int n;     /* CONN_CLOSED, RELOAD, DRAIN: requests in flight it concerns */
} ks_slot_act;

typedef struct {
    ks_slot_state state;
    int admitted; /* counted in the total */
    int on_conn;  /* counted on its connection (still open) */
    uint32_t conn;
    uint64_t gen; /* generation it was admitted under */
} ks_slot_rec;

typedef struct {
    ks_slot_rec *slot;
    size_t n;
    unsigned int cap_total; /* max_inflight at start: a reload cannot raise it */
    unsigned int max_total, max_conn;
    int answer_inline;
    uint64_t gen;
    unsigned int admitted; /* requests received and not yet answered */
    unsigned int busy;     /* slots neither receiving nor resting */
    unsigned int peak;     /* highest `admitted` seen */
    int draining, closed;
} ks_slot_set;

/* n slots, all IDLE, with the limits of generation ev->gen. -1: out of memory. */
int ks_slot_init(ks_slot_set *set, size_t n, unsigned int cap_total, const ks_slot_ev *limits);
void ks_slot_free(ks_slot_set *set);

/*
 * Apply one event to slot `i` (ignored for set-wide events). An event the
 * state does not allow returns -1 with act->acts = KS_SLOT_A_INVALID and
 * changes nothing.
 */
int ks_slot_step(ks_slot_set *set, size_t i, const ks_slot_ev *ev, ks_slot_act *act);

const char *ks_slot_state_name(ks_slot_state s);
const char *ks_slot_event_name(ks_slot_event e);

#endif
