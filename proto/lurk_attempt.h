/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lifecycle of one call to the key servers, as a pure function from
 * (state, event) to (state, actions): no I/O, no locks, no clock. The
 * client (lurk_client.c) turns what nng reports into events and carries out
 * the actions; the rules that decide where a request goes, when it moves
 * to another key server and what the caller is told live here, where they
 * can be read and table-tested without sockets (tests/unit/test_attempt.c).
 *
 *   NEW      START            -> SENDING to the server lurk_balance_pick chooses
 *   SENDING  SENT             -> WAITING
 *   WAITING  ANSWER           -> DONE; if it says OVERLOADED and a server not
 *                                yet tried and time are left: SENDING there
 *   SENDING, WAITING  TIMEOUT, DISCONNECT, SEND_FAILED, RECV_FAILED
 *                             -> server marked down; SENDING to another if
 *                                one and time are left, else DONE
 *   DONE     FINISH, ABANDON  -> FREED
 *   SENDING, WAITING  ABANDON -> ABANDONED: the I/O is aborted, and whatever
 *                                it then brings (a late answer) is dropped
 *                                and the call FREED
 *   SENDING, WAITING  CANCELED -> DONE, the server not blamed
 *   any      CLIENT_FREE      -> no new attempt; the I/O is aborted and the
 *                                call ends as CLOSED (an answer that makes it
 *                                is still the answer)
 *
 * Events for an attempt that is over (another server, another state) are
 * stale and change nothing; a stale answer is dropped.
 *
 * Invariants (tested): every call gets exactly one RELEASE_IO and one FREE,
 * FREE last; COMPLETE at most once, never after ABANDON; an answer event
 * always gets KEEP_ANSWER or DROP_ANSWER; each server is tried at most once.
 */
#ifndef LURK_ATTEMPT_H
#define LURK_ATTEMPT_H

#include <stddef.h>
#include <stdint.h>

#include "lurk_balance.h"

/* No new attempt when less than this is left of the deadline. */
#define LURK_ATTEMPT_MIN_MS      20
#define LURK_ATTEMPT_MAX_ACTIONS 8

typedef enum {
    LURK_ATTEMPT_NEW = 0,   /* not started */
    LURK_ATTEMPT_SENDING,   /* the request goes out to `server` */
    LURK_ATTEMPT_WAITING,   /* sent; the answer is awaited from `server` */
    LURK_ATTEMPT_DONE,      /* the result is known; the caller has not taken it */
    LURK_ATTEMPT_ABANDONED, /* the caller left with I/O in flight: its outcome is dropped */
    LURK_ATTEMPT_FREED,     /* over: every event is ignored */
    LURK_ATTEMPT_NSTATES
} lurk_attempt_state;

typedef enum {
    /* From the caller and the client. */
    LURK_ATTEMPT_EV_START = 0,   /* now_ms, view, rr */
    LURK_ATTEMPT_EV_ABANDON,     /* the caller will never look at the result */
    LURK_ATTEMPT_EV_FINISH,      /* the caller took the result */
    LURK_ATTEMPT_EV_CLIENT_FREE, /* the client shuts down */
    /* From the I/O of the attempt on `server`; others are stale and ignored. */
    LURK_ATTEMPT_EV_SENT,            /* the request went out */
    LURK_ATTEMPT_EV_NOT_SENT,        /* err: the request could not be handed to nng at all */
    LURK_ATTEMPT_EV_SEND_FAILED,     /* err: the send failed in transport */
    LURK_ATTEMPT_EV_ANSWER,          /* an answer; `overloaded` if it said so */
    LURK_ATTEMPT_EV_ANSWER_OTHER_ID, /* an answer to another request: a broken key server */
    LURK_ATTEMPT_EV_RECV_FAILED,     /* err: the receive failed in transport */
    LURK_ATTEMPT_EV_TIMEOUT,         /* the attempt's timer ran out */
    LURK_ATTEMPT_EV_DISCONNECT,      /* the server lost its last connection */
    LURK_ATTEMPT_EV_CANCELED,        /* the I/O was aborted on our side (ABORT_IO) */
    LURK_ATTEMPT_NEVENTS
} lurk_attempt_event_type;

typedef enum {
    LURK_ATTEMPT_ACT_ARM_TIMER = 0, /* ms: the next SEND or RECV gives up after this */
    LURK_ATTEMPT_ACT_SEND,          /* server: send the kept request there (a context of its own) */
    LURK_ATTEMPT_ACT_RECV,          /* wait for the answer on the same context */
    LURK_ATTEMPT_ACT_LEAVE,       /* server: the attempt there is over; reusable: its context too */
    LURK_ATTEMPT_ACT_MARK_UP,     /* server: it answered */
    LURK_ATTEMPT_ACT_MARK_DOWN,   /* server: it failed an attempt */
    LURK_ATTEMPT_ACT_ABORT_IO,    /* stop the I/O in flight; its end comes back as an event */
    LURK_ATTEMPT_ACT_KEEP_ANSWER, /* the answer of this event is the result */
    LURK_ATTEMPT_ACT_DROP_ANSWER, /* the answer of this event is not used: free it */
    LURK_ATTEMPT_ACT_COMPLETE,    /* the result is known: tell the caller */
    LURK_ATTEMPT_ACT_RELEASE_IO,  /* no I/O any more: give back the aio, leave the client */
    LURK_ATTEMPT_ACT_FREE,        /* nobody holds the call: free it */
    LURK_ATTEMPT_NACTIONS
} lurk_attempt_action_type;

typedef enum {
    LURK_ATTEMPT_RES_NONE = 0,
    LURK_ATTEMPT_RES_ANSWER,    /* the kept answer, whatever its status */
    LURK_ATTEMPT_RES_TIMEOUT,   /* no server answered in time (or each lost its connection) */
    LURK_ATTEMPT_RES_TRANSPORT, /* err: a transport failure on the last attempt */
    LURK_ATTEMPT_RES_LOCAL,     /* err: the first request could not be handed to nng */
    LURK_ATTEMPT_RES_CLOSED     /* the client was freed with the call in flight */
} lurk_attempt_result;

typedef struct {
    lurk_attempt_state state;
    unsigned int nservers;
    int fixed;           /* this server only (a probe), else -1 */
    int detached;        /* nobody waits (a probe): COMPLETE is followed by FREE */
    int timeout_ms;      /* whole call */
    int attempt_ms;      /* one attempt, with several servers */
    int64_t deadline_ms; /* set by START */
    int server;          /* of the current or last attempt, -1 before the first */
    uint32_t tried;      /* bit i: server i had an attempt */
    int attempts;
    int closing;                /* CLIENT_FREE seen */
    lurk_attempt_result result; /* the final one once DONE, else the last failure */
    int err;                    /* the adapter's error code for RES_TRANSPORT and RES_LOCAL */
} lurk_attempt;

typedef struct {
    lurk_attempt_event_type type;
    int64_t now_ms;
    int server;                    /* I/O events: the server of the attempt they end */
    int err;                       /* NOT_SENT, *_FAILED, CANCELED: kept, not interpreted */
    int overloaded;                /* ANSWER: its status is OVERLOADED */
    const lurk_balance_view *view; /* events that may pick a server; NULL: none available */
    unsigned int rr;               /* rotation for lurk_balance_pick */
} lurk_attempt_event;

typedef struct {
    lurk_attempt_action_type type;
    int server;   /* SEND, LEAVE, MARK_UP, MARK_DOWN */
    int ms;       /* ARM_TIMER */
    int reusable; /* LEAVE */
} lurk_attempt_action;

typedef struct {
    size_t n;
    lurk_attempt_action a[LURK_ATTEMPT_MAX_ACTIONS];
} lurk_attempt_actions;

/*
 * fixed >= 0: a probe of that server only, with the whole timeout.
 * attempt_ms caps one attempt when there are several servers.
 */
void lurk_attempt_init(lurk_attempt *a, unsigned int nservers, int timeout_ms, int attempt_ms,
                       int fixed, int detached);

/* Applies one event; *out receives the actions, to be carried out in order. */
void lurk_attempt_step(lurk_attempt *a, const lurk_attempt_event *ev, lurk_attempt_actions *out);

/*
 * Whether an answer's status would change anything (OVERLOADED would move
 * the request on): when not, the client need not decode it twice.
 */
int lurk_attempt_wants_status(const lurk_attempt *a);

/* Whether this event type may pick a server, so that it needs a view. */
int lurk_attempt_needs_view(lurk_attempt_event_type type, int overloaded);

const char *lurk_attempt_state_name(lurk_attempt_state s);
const char *lurk_attempt_event_name(lurk_attempt_event_type t);
const char *lurk_attempt_action_name(lurk_attempt_action_type t);

#endif
