/* SPDX-License-Identifier: Apache-2.0 */
#include "lurk_attempt.h"

#include <string.h>

static void lurk_attempt_emit(lurk_attempt_actions *out, lurk_attempt_action_type type, int server,
                              int ms, int reusable)
{
    lurk_attempt_action *act;

    /* The longest sequence is 5 (an overloaded answer moved on): never full. */
    if (out->n >= LURK_ATTEMPT_MAX_ACTIONS)
        return;
    act = &out->a[out->n++];
    act->type = type;
    act->server = server;
    act->ms = ms;
    act->reusable = reusable;
}

void lurk_attempt_init(lurk_attempt *a, unsigned int nservers, int timeout_ms, int attempt_ms,
                       int fixed, int detached)
{
    memset(a, 0, sizeof(*a));
    a->state = LURK_ATTEMPT_NEW;
    a->nservers = nservers > LURK_BALANCE_MAX_SERVERS ? LURK_BALANCE_MAX_SERVERS : nservers;
    a->fixed = fixed >= 0 && (unsigned int)fixed < a->nservers ? fixed : -1;
    a->detached = detached;
    a->timeout_ms = timeout_ms;
    a->attempt_ms = attempt_ms > 0 ? attempt_ms : timeout_ms;
    a->server = -1;
}

/* A single server, or a probe, gets the whole remaining time. */
static int lurk_attempt_timer(const lurk_attempt *a, int64_t now)
{
    int64_t left = a->deadline_ms > now ? a->deadline_ms - now : 0;

    if (a->fixed >= 0 || a->nservers == 1 || left < a->attempt_ms)
        return (int)left;
    return a->attempt_ms;
}

static void lurk_attempt_send(lurk_attempt *a, int server, int64_t now, lurk_attempt_actions *out)
{
    a->state = LURK_ATTEMPT_SENDING;
    a->server = server;
    a->tried |= 1u << server;
    a->attempts++;
    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_ARM_TIMER, -1, lurk_attempt_timer(a, now), 0);
    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_SEND, server, 0, 0);
}

/* The server for another attempt, or -1: a probe, shutdown, too late, none left. */
static int lurk_attempt_next(const lurk_attempt *a, const lurk_attempt_event *ev)
{
    if (a->fixed >= 0 || a->closing || ev->view == NULL
        || a->deadline_ms <= ev->now_ms + LURK_ATTEMPT_MIN_MS)
        return -1;
    return lurk_balance_pick(ev->view, a->nservers, a->tried, ev->rr);
}

static void lurk_attempt_end(lurk_attempt *a, lurk_attempt_result result, int err,
                             lurk_attempt_actions *out)
{
    a->state = LURK_ATTEMPT_DONE;
    a->result = result;
    a->err = err;
    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_COMPLETE, -1, 0, 0);
    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_RELEASE_IO, -1, 0, 0);
    if (a->detached) {
        a->state = LURK_ATTEMPT_FREED;
        lurk_attempt_emit(out, LURK_ATTEMPT_ACT_FREE, -1, 0, 0);
    }
}

/* Abandoned, and the I/O is over: nothing is left to wait for. */
static void lurk_attempt_drop(lurk_attempt *a, lurk_attempt_actions *out)
{
    a->state = LURK_ATTEMPT_FREED;
    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_RELEASE_IO, -1, 0, 0);
    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_FREE, -1, 0, 0);
}

static void lurk_attempt_start(lurk_attempt *a, const lurk_attempt_event *ev,
                               lurk_attempt_actions *out)
{
    int server;

    a->deadline_ms = ev->now_ms + a->timeout_ms;
    if (a->closing) {
        lurk_attempt_end(a, LURK_ATTEMPT_RES_CLOSED, 0, out);
        return;
    }
    server = a->fixed;
    if (server < 0 && ev->view != NULL)
        server = lurk_balance_pick(ev->view, a->nservers, 0, ev->rr);
    if (server < 0) {
        lurk_attempt_end(a, LURK_ATTEMPT_RES_LOCAL, 0, out);
        return;
    }
    lurk_attempt_send(a, server, ev->now_ms, out);
}

/*
 * The attempt failed. `blame`: the server's fault (timeout, lost connection,
 * transport error), so it is marked down; our own cancel says nothing about
 * it. The request moves on while a server and time are left.
 */
static void lurk_attempt_failed(lurk_attempt *a, const lurk_attempt_event *ev, int blame,
                                lurk_attempt_result result, lurk_attempt_actions *out)
{
    int next;

    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_LEAVE, a->server, 0, 0);
    if (a->state == LURK_ATTEMPT_ABANDONED) {
        if (blame)
            lurk_attempt_emit(out, LURK_ATTEMPT_ACT_MARK_DOWN, a->server, 0, 0);
        lurk_attempt_drop(a, out);
        return;
    }
    if (blame && !a->closing)
        lurk_attempt_emit(out, LURK_ATTEMPT_ACT_MARK_DOWN, a->server, 0, 0);
    a->result = result;
    a->err = ev->err;
    if (blame && (next = lurk_attempt_next(a, ev)) >= 0) {
        lurk_attempt_send(a, next, ev->now_ms, out);
        return;
    }
    lurk_attempt_end(a, a->closing ? LURK_ATTEMPT_RES_CLOSED : result, ev->err, out);
}

/*
 * An answer, even a refusal, is final, except OVERLOADED: that key server
 * is alive but full, another may have room. An answer to another request
 * id is final too: the decoder reports it as a bad reply.
 */
static void lurk_attempt_answer(lurk_attempt *a, const lurk_attempt_event *ev,
                                lurk_attempt_actions *out)
{
    int next;

    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_LEAVE, a->server, 0, 1);
    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_MARK_UP, a->server, 0, 0);
    if (a->state == LURK_ATTEMPT_ABANDONED) {
        lurk_attempt_emit(out, LURK_ATTEMPT_ACT_DROP_ANSWER, -1, 0, 0);
        lurk_attempt_drop(a, out);
        return;
    }
    if (ev->type == LURK_ATTEMPT_EV_ANSWER && ev->overloaded
        && (next = lurk_attempt_next(a, ev)) >= 0) {
        lurk_attempt_emit(out, LURK_ATTEMPT_ACT_DROP_ANSWER, -1, 0, 0);
        lurk_attempt_send(a, next, ev->now_ms, out);
        return;
    }
    lurk_attempt_emit(out, LURK_ATTEMPT_ACT_KEEP_ANSWER, -1, 0, 0);
    lurk_attempt_end(a, LURK_ATTEMPT_RES_ANSWER, 0, out);
}

/* The caller leaves: now if nothing is in flight, else when the I/O ends. */
static void lurk_attempt_leave_caller(lurk_attempt *a, lurk_attempt_actions *out)
{
    switch (a->state) {
    case LURK_ATTEMPT_NEW: lurk_attempt_drop(a, out); break;
    case LURK_ATTEMPT_SENDING:
    case LURK_ATTEMPT_WAITING:
        a->state = LURK_ATTEMPT_ABANDONED;
        lurk_attempt_emit(out, LURK_ATTEMPT_ACT_ABORT_IO, -1, 0, 0);
        break;
    case LURK_ATTEMPT_DONE:
        a->state = LURK_ATTEMPT_FREED;
        lurk_attempt_emit(out, LURK_ATTEMPT_ACT_FREE, -1, 0, 0);
        break;
    default: break;
    }
}

static int lurk_attempt_in_flight(const lurk_attempt *a)
{
    return a->state == LURK_ATTEMPT_SENDING || a->state == LURK_ATTEMPT_WAITING
        || a->state == LURK_ATTEMPT_ABANDONED;
}

/* An I/O event the current attempt expects in its current state. */
static int lurk_attempt_io_expected(const lurk_attempt *a, const lurk_attempt_event *ev)
{
    if (!lurk_attempt_in_flight(a) || ev->server != a->server)
        return 0;
    if (a->state == LURK_ATTEMPT_ABANDONED)
        return 1;
    switch (ev->type) {
    case LURK_ATTEMPT_EV_SENT:
    case LURK_ATTEMPT_EV_NOT_SENT:
    case LURK_ATTEMPT_EV_SEND_FAILED: return a->state == LURK_ATTEMPT_SENDING;
    case LURK_ATTEMPT_EV_ANSWER:
    case LURK_ATTEMPT_EV_ANSWER_OTHER_ID:
    case LURK_ATTEMPT_EV_RECV_FAILED: return a->state == LURK_ATTEMPT_WAITING;
    default: return 1;
    }
}

static void lurk_attempt_io(lurk_attempt *a, const lurk_attempt_event *ev,
                            lurk_attempt_actions *out)
{
    int answer = ev->type == LURK_ATTEMPT_EV_ANSWER || ev->type == LURK_ATTEMPT_EV_ANSWER_OTHER_ID;

    if (!lurk_attempt_io_expected(a, ev)) {
        /* Late or stale: from an attempt that is over. */
        if (answer)
            lurk_attempt_emit(out, LURK_ATTEMPT_ACT_DROP_ANSWER, -1, 0, 0);
        return;
    }
    if (answer) {
        lurk_attempt_answer(a, ev, out);
        return;
    }
    switch (ev->type) {
    case LURK_ATTEMPT_EV_SENT:
        if (a->state == LURK_ATTEMPT_ABANDONED) {
            /* A request left unanswered: its context cannot be reused. */
            lurk_attempt_emit(out, LURK_ATTEMPT_ACT_LEAVE, a->server, 0, 0);
            lurk_attempt_drop(a, out);
            return;
        }
        a->state = LURK_ATTEMPT_WAITING;
        lurk_attempt_emit(out, LURK_ATTEMPT_ACT_ARM_TIMER, -1, lurk_attempt_timer(a, ev->now_ms),
                          0);
        lurk_attempt_emit(out, LURK_ATTEMPT_ACT_RECV, a->server, 0, 0);
        return;
    case LURK_ATTEMPT_EV_NOT_SENT:
        /* Nothing reached the server, nothing to leave; an earlier failure says more. */
        if (a->state == LURK_ATTEMPT_ABANDONED)
            lurk_attempt_drop(a, out);
        else if (a->attempts > 1)
            lurk_attempt_end(a, a->closing ? LURK_ATTEMPT_RES_CLOSED : a->result, a->err, out);
        else
            lurk_attempt_end(a, a->closing ? LURK_ATTEMPT_RES_CLOSED : LURK_ATTEMPT_RES_LOCAL,
                             ev->err, out);
        return;
    case LURK_ATTEMPT_EV_TIMEOUT:
    case LURK_ATTEMPT_EV_DISCONNECT:
        /* Either way no answer came: for the caller both are a timeout. */
        lurk_attempt_failed(a, ev, 1, LURK_ATTEMPT_RES_TIMEOUT, out);
        return;
    case LURK_ATTEMPT_EV_SEND_FAILED:
    case LURK_ATTEMPT_EV_RECV_FAILED:
        lurk_attempt_failed(a, ev, 1, LURK_ATTEMPT_RES_TRANSPORT, out);
        return;
    case LURK_ATTEMPT_EV_CANCELED:
        lurk_attempt_failed(a, ev, 0, LURK_ATTEMPT_RES_TRANSPORT, out);
        return;
    default: return;
    }
}

void lurk_attempt_step(lurk_attempt *a, const lurk_attempt_event *ev, lurk_attempt_actions *out)
{
    out->n = 0;
    switch (ev->type) {
    case LURK_ATTEMPT_EV_START:
        if (a->state == LURK_ATTEMPT_NEW)
            lurk_attempt_start(a, ev, out);
        return;
    case LURK_ATTEMPT_EV_ABANDON:
    case LURK_ATTEMPT_EV_FINISH:
        /* A detached call has no caller to leave. */
        if (!a->detached)
            lurk_attempt_leave_caller(a, out);
        return;
    case LURK_ATTEMPT_EV_CLIENT_FREE:
        if (a->state == LURK_ATTEMPT_DONE || a->state == LURK_ATTEMPT_FREED)
            return;
        a->closing = 1;
        if (lurk_attempt_in_flight(a))
            lurk_attempt_emit(out, LURK_ATTEMPT_ACT_ABORT_IO, -1, 0, 0);
        return;
    default: lurk_attempt_io(a, ev, out); return;
    }
}

int lurk_attempt_wants_status(const lurk_attempt *a)
{
    return a->state == LURK_ATTEMPT_WAITING && a->fixed < 0 && !a->closing
        && __builtin_popcount(a->tried) < (int)a->nservers;
}

int lurk_attempt_needs_view(lurk_attempt_event_type type, int overloaded)
{
    switch (type) {
    case LURK_ATTEMPT_EV_START:
    case LURK_ATTEMPT_EV_SEND_FAILED:
    case LURK_ATTEMPT_EV_RECV_FAILED:
    case LURK_ATTEMPT_EV_TIMEOUT:
    case LURK_ATTEMPT_EV_DISCONNECT: return 1;
    case LURK_ATTEMPT_EV_ANSWER: return overloaded;
    default: return 0;
    }
}

const char *lurk_attempt_state_name(lurk_attempt_state s)
{
    static const char *const names[] = {
        "NEW", "SENDING", "WAITING", "DONE", "ABANDONED", "FREED"
    };

    return (unsigned int)s < LURK_ATTEMPT_NSTATES ? names[s] : "?";
}

const char *lurk_attempt_event_name(lurk_attempt_event_type t)
{
    static const char *const names[] = { "START",       "ABANDON", "FINISH",
                                         "CLIENT_FREE", "SENT",    "NOT_SENT",
                                         "SEND_FAILED", "ANSWER",  "ANSWER_OTHER_ID",
                                         "RECV_FAILED", "TIMEOUT", "DISCONNECT",
                                         "CANCELED" };

    return (unsigned int)t < LURK_ATTEMPT_NEVENTS ? names[t] : "?";
}

const char *lurk_attempt_action_name(lurk_attempt_action_type t)
{
    static const char *const names[] = { "ARM_TIMER",   "SEND",      "RECV",       "LEAVE",
                                         "MARK_UP",     "MARK_DOWN", "ABORT_IO",   "KEEP_ANSWER",
                                         "DROP_ANSWER", "COMPLETE",  "RELEASE_IO", "FREE" };

    return (unsigned int)t < LURK_ATTEMPT_NACTIONS ? names[t] : "?";
}
