/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lifecycle of one call (proto/lurk_attempt.c): every event in every
 * state as a table, then the stories that matter (failover, deadline,
 * OVERLOADED everywhere, late answers, abandon, client free), then the
 * invariants over many random event sequences.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lurk_attempt.h"

#define T0 1000 /* START's clock */

static const lurk_balance_view all_up[4] = { { 1, 0, 0 }, { 1, 0, 0 }, { 1, 0, 0 }, { 1, 0, 0 } };

static lurk_attempt_event ev_at(lurk_attempt_event_type type, int64_t now, int server)
{
    lurk_attempt_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.now_ms = now;
    ev.server = server;
    ev.err = 5;
    ev.view = all_up;
    return ev;
}

/* The actions as text, e.g. "LEAVE:0:r MARK_UP:0 KEEP_ANSWER COMPLETE RELEASE_IO". */
static const char *fmt(const lurk_attempt_actions *acts)
{
    static char buf[512];
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < acts->n; i++) {
        const lurk_attempt_action *a = &acts->a[i];
        const char *name = lurk_attempt_action_name(a->type);

        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? " " : "", name);
        switch (a->type) {
        case LURK_ATTEMPT_ACT_ARM_TIMER:
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, ":%d", a->ms);
            break;
        case LURK_ATTEMPT_ACT_LEAVE:
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, ":%d%s", a->server,
                                    a->reusable ? ":r" : "");
            break;
        case LURK_ATTEMPT_ACT_SEND:
        case LURK_ATTEMPT_ACT_RECV:
        case LURK_ATTEMPT_ACT_MARK_UP:
        case LURK_ATTEMPT_ACT_MARK_DOWN:
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, ":%d", a->server);
            break;
        default: break;
        }
    }
    return buf;
}

static const char *step(lurk_attempt *a, lurk_attempt_event ev)
{
    lurk_attempt_actions acts;

    lurk_attempt_step(a, &ev, &acts);
    return fmt(&acts);
}

/* Three servers all up, 1000 ms per call, 400 per attempt, brought to `state` on server 0. */
static void reach(lurk_attempt *a, lurk_attempt_state state)
{
    lurk_attempt_init(a, 3, 1000, 400, -1, 0);
    if (state == LURK_ATTEMPT_NEW)
        return;
    assert_string_equal(step(a, ev_at(LURK_ATTEMPT_EV_START, T0, 0)), "ARM_TIMER:400 SEND:0");
    if (state == LURK_ATTEMPT_SENDING)
        return;
    step(a, ev_at(LURK_ATTEMPT_EV_SENT, T0, 0));
    if (state == LURK_ATTEMPT_WAITING)
        return;
    if (state == LURK_ATTEMPT_ABANDONED) {
        assert_string_equal(step(a, ev_at(LURK_ATTEMPT_EV_ABANDON, T0, 0)), "ABORT_IO");
        return;
    }
    step(a, ev_at(LURK_ATTEMPT_EV_ANSWER, T0, 0));
    if (state == LURK_ATTEMPT_DONE)
        return;
    assert_string_equal(step(a, ev_at(LURK_ATTEMPT_EV_FINISH, T0, 0)), "FREE");
}

typedef struct {
    lurk_attempt_state from;
    lurk_attempt_event_type ev;
    lurk_attempt_state to;
    const char *actions;
} row;

#define S(x) LURK_ATTEMPT_##x
#define E(x) LURK_ATTEMPT_EV_##x
static const char FAILOVER[] = "LEAVE:0 MARK_DOWN:0 ARM_TIMER:400 SEND:1";
static const char DROPPED_FAIL[] = "LEAVE:0 MARK_DOWN:0 RELEASE_IO FREE";

static const row table[] = {
    { S(NEW), E(START), S(SENDING), "ARM_TIMER:400 SEND:0" },
    { S(NEW), E(ABANDON), S(FREED), "RELEASE_IO FREE" },
    { S(NEW), E(FINISH), S(FREED), "RELEASE_IO FREE" },
    { S(NEW), E(CLIENT_FREE), S(NEW), "" },
    { S(NEW), E(SENT), S(NEW), "" },
    { S(NEW), E(NOT_SENT), S(NEW), "" },
    { S(NEW), E(SEND_FAILED), S(NEW), "" },
    { S(NEW), E(ANSWER), S(NEW), "DROP_ANSWER" },
    { S(NEW), E(ANSWER_OTHER_ID), S(NEW), "DROP_ANSWER" },
    { S(NEW), E(RECV_FAILED), S(NEW), "" },
    { S(NEW), E(TIMEOUT), S(NEW), "" },
    { S(NEW), E(DISCONNECT), S(NEW), "" },
    { S(NEW), E(CANCELED), S(NEW), "" },

    { S(SENDING), E(START), S(SENDING), "" },
    { S(SENDING), E(ABANDON), S(ABANDONED), "ABORT_IO" },
    { S(SENDING), E(FINISH), S(ABANDONED), "ABORT_IO" },
    { S(SENDING), E(CLIENT_FREE), S(SENDING), "ABORT_IO" },
    { S(SENDING), E(SENT), S(WAITING), "ARM_TIMER:400 RECV:0" },
    { S(SENDING), E(NOT_SENT), S(DONE), "COMPLETE RELEASE_IO" },
    { S(SENDING), E(SEND_FAILED), S(SENDING), FAILOVER },
    { S(SENDING), E(ANSWER), S(SENDING), "DROP_ANSWER" },
    { S(SENDING), E(ANSWER_OTHER_ID), S(SENDING), "DROP_ANSWER" },
    { S(SENDING), E(RECV_FAILED), S(SENDING), "" },
    { S(SENDING), E(TIMEOUT), S(SENDING), FAILOVER },
    { S(SENDING), E(DISCONNECT), S(SENDING), FAILOVER },
    { S(SENDING), E(CANCELED), S(DONE), "LEAVE:0 COMPLETE RELEASE_IO" },

    { S(WAITING), E(START), S(WAITING), "" },
    { S(WAITING), E(ABANDON), S(ABANDONED), "ABORT_IO" },
    { S(WAITING), E(FINISH), S(ABANDONED), "ABORT_IO" },
    { S(WAITING), E(CLIENT_FREE), S(WAITING), "ABORT_IO" },
    { S(WAITING), E(SENT), S(WAITING), "" },
    { S(WAITING), E(NOT_SENT), S(WAITING), "" },
    { S(WAITING), E(SEND_FAILED), S(WAITING), "" },
    { S(WAITING), E(ANSWER), S(DONE), "LEAVE:0:r MARK_UP:0 KEEP_ANSWER COMPLETE RELEASE_IO" },
    { S(WAITING), E(ANSWER_OTHER_ID), S(DONE),
      "LEAVE:0:r MARK_UP:0 KEEP_ANSWER COMPLETE RELEASE_IO" },
    { S(WAITING), E(RECV_FAILED), S(SENDING), FAILOVER },
    { S(WAITING), E(TIMEOUT), S(SENDING), FAILOVER },
    { S(WAITING), E(DISCONNECT), S(SENDING), FAILOVER },
    { S(WAITING), E(CANCELED), S(DONE), "LEAVE:0 COMPLETE RELEASE_IO" },

    { S(DONE), E(START), S(DONE), "" },
    { S(DONE), E(ABANDON), S(FREED), "FREE" },
    { S(DONE), E(FINISH), S(FREED), "FREE" },
    { S(DONE), E(CLIENT_FREE), S(DONE), "" },
    { S(DONE), E(SENT), S(DONE), "" },
    { S(DONE), E(NOT_SENT), S(DONE), "" },
    { S(DONE), E(SEND_FAILED), S(DONE), "" },
    { S(DONE), E(ANSWER), S(DONE), "DROP_ANSWER" },
    { S(DONE), E(ANSWER_OTHER_ID), S(DONE), "DROP_ANSWER" },
    { S(DONE), E(RECV_FAILED), S(DONE), "" },
    { S(DONE), E(TIMEOUT), S(DONE), "" },
    { S(DONE), E(DISCONNECT), S(DONE), "" },
    { S(DONE), E(CANCELED), S(DONE), "" },

    { S(ABANDONED), E(START), S(ABANDONED), "" },
    { S(ABANDONED), E(ABANDON), S(ABANDONED), "" },
    { S(ABANDONED), E(FINISH), S(ABANDONED), "" },
    { S(ABANDONED), E(CLIENT_FREE), S(ABANDONED), "ABORT_IO" },
    { S(ABANDONED), E(SENT), S(FREED), "LEAVE:0 RELEASE_IO FREE" },
    { S(ABANDONED), E(NOT_SENT), S(FREED), "RELEASE_IO FREE" },
    { S(ABANDONED), E(SEND_FAILED), S(FREED), DROPPED_FAIL },
    { S(ABANDONED), E(ANSWER), S(FREED), "LEAVE:0:r MARK_UP:0 DROP_ANSWER RELEASE_IO FREE" },
    { S(ABANDONED), E(ANSWER_OTHER_ID), S(FREED),
      "LEAVE:0:r MARK_UP:0 DROP_ANSWER RELEASE_IO FREE" },
    { S(ABANDONED), E(RECV_FAILED), S(FREED), DROPPED_FAIL },
    { S(ABANDONED), E(TIMEOUT), S(FREED), DROPPED_FAIL },
    { S(ABANDONED), E(DISCONNECT), S(FREED), DROPPED_FAIL },
    { S(ABANDONED), E(CANCELED), S(FREED), "LEAVE:0 RELEASE_IO FREE" },

    { S(FREED), E(START), S(FREED), "" },
    { S(FREED), E(ABANDON), S(FREED), "" },
    { S(FREED), E(FINISH), S(FREED), "" },
    { S(FREED), E(CLIENT_FREE), S(FREED), "" },
    { S(FREED), E(SENT), S(FREED), "" },
    { S(FREED), E(NOT_SENT), S(FREED), "" },
    { S(FREED), E(SEND_FAILED), S(FREED), "" },
    { S(FREED), E(ANSWER), S(FREED), "DROP_ANSWER" },
    { S(FREED), E(ANSWER_OTHER_ID), S(FREED), "DROP_ANSWER" },
    { S(FREED), E(RECV_FAILED), S(FREED), "" },
    { S(FREED), E(TIMEOUT), S(FREED), "" },
    { S(FREED), E(DISCONNECT), S(FREED), "" },
    { S(FREED), E(CANCELED), S(FREED), "" },
};

static void test_every_event_in_every_state(void **state)
{
    int covered[LURK_ATTEMPT_NSTATES][LURK_ATTEMPT_NEVENTS];

    (void)state;
    memset(covered, 0, sizeof(covered));
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const row *r = &table[i];
        lurk_attempt a;
        const char *got;

        reach(&a, r->from);
        got = step(&a, ev_at(r->ev, T0 + 100, 0));
        if (strcmp(got, r->actions) != 0 || a.state != r->to)
            fail_msg("%s + %s: got %s -> \"%s\", want %s -> \"%s\"",
                     lurk_attempt_state_name(r->from), lurk_attempt_event_name(r->ev),
                     lurk_attempt_state_name(a.state), got, lurk_attempt_state_name(r->to),
                     r->actions);
        covered[r->from][r->ev]++;
    }
    for (int s = 0; s < LURK_ATTEMPT_NSTATES; s++)
        for (int e = 0; e < LURK_ATTEMPT_NEVENTS; e++)
            if (covered[s][e] != 1)
                fail_msg("table: %s + %s appears %d times", lurk_attempt_state_name(s),
                         lurk_attempt_event_name(e), covered[s][e]);
}

static void test_answer_is_the_result(void **state)
{
    lurk_attempt a;

    (void)state;
    reach(&a, LURK_ATTEMPT_DONE);
    assert_int_equal(a.result, LURK_ATTEMPT_RES_ANSWER);
    assert_int_equal(a.attempts, 1);
}

/* A late answer: from server 0 after the call moved to server 1. */
static void test_late_answer_from_previous_server(void **state)
{
    lurk_attempt a;

    (void)state;
    reach(&a, LURK_ATTEMPT_WAITING);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_TIMEOUT, T0 + 400, 0)), FAILOVER);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_SENT, T0 + 401, 1)), "ARM_TIMER:400 RECV:1");
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_ANSWER, T0 + 450, 0)), "DROP_ANSWER");
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_TIMEOUT, T0 + 450, 0)), "");
    assert_int_equal(a.state, LURK_ATTEMPT_WAITING);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_ANSWER, T0 + 460, 1)),
                        "LEAVE:1:r MARK_UP:1 KEEP_ANSWER COMPLETE RELEASE_IO");
    /* And once the call is over, any answer is dropped. */
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_ANSWER, T0 + 470, 1)), "DROP_ANSWER");
}

/* Another request's id: a broken key server. Final, even with servers left. */
static void test_answer_other_id_is_final(void **state)
{
    lurk_attempt a;

    (void)state;
    reach(&a, LURK_ATTEMPT_WAITING);
    assert_true(lurk_attempt_wants_status(&a));
    step(&a, ev_at(LURK_ATTEMPT_EV_ANSWER_OTHER_ID, T0 + 10, 0));
    assert_int_equal(a.state, LURK_ATTEMPT_DONE);
    assert_int_equal(a.result, LURK_ATTEMPT_RES_ANSWER);
    assert_int_equal(a.attempts, 1);
}

static void test_disconnect_mid_call(void **state)
{
    lurk_attempt a;

    (void)state;
    /* One server: nowhere to go, and for the caller it is a timeout. */
    lurk_attempt_init(&a, 1, 1000, 500, -1, 0);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_START, T0, 0)), "ARM_TIMER:1000 SEND:0");
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_SENT, T0 + 1, 0)), "ARM_TIMER:999 RECV:0");
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_DISCONNECT, T0 + 300, 0)),
                        "LEAVE:0 MARK_DOWN:0 COMPLETE RELEASE_IO");
    assert_int_equal(a.result, LURK_ATTEMPT_RES_TIMEOUT);
    /* Two: the request moves to the other at once, with what is left. */
    lurk_attempt_init(&a, 2, 1000, 500, -1, 0);
    step(&a, ev_at(LURK_ATTEMPT_EV_START, T0, 0));
    step(&a, ev_at(LURK_ATTEMPT_EV_SENT, T0 + 1, 0));
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_DISCONNECT, T0 + 700, 0)),
                        "LEAVE:0 MARK_DOWN:0 ARM_TIMER:300 SEND:1");
}

/* Never answered: three attempts, then the error exactly at the deadline. */
static void test_never_answered_fails_at_deadline(void **state)
{
    lurk_attempt a;
    int64_t now = T0;

    (void)state;
    lurk_attempt_init(&a, 3, 1000, 400, -1, 0);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_START, now, 0)), "ARM_TIMER:400 SEND:0");
    step(&a, ev_at(LURK_ATTEMPT_EV_SENT, now, 0));
    now += 400;
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_TIMEOUT, now, 0)), FAILOVER);
    step(&a, ev_at(LURK_ATTEMPT_EV_SENT, now, 1));
    now += 400;
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_TIMEOUT, now, 1)),
                        "LEAVE:1 MARK_DOWN:1 ARM_TIMER:200 SEND:2");
    step(&a, ev_at(LURK_ATTEMPT_EV_SENT, now, 2));
    now += 200;
    assert_int_equal(now, a.deadline_ms);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_TIMEOUT, now, 2)),
                        "LEAVE:2 MARK_DOWN:2 COMPLETE RELEASE_IO");
    assert_int_equal(a.result, LURK_ATTEMPT_RES_TIMEOUT);
    assert_int_equal(a.attempts, 3);
    assert_int_equal(a.tried, 7);
}

/* Less than LURK_ATTEMPT_MIN_MS left: no new attempt, even with servers left. */
static void test_no_attempt_too_close_to_deadline(void **state)
{
    lurk_attempt a;

    (void)state;
    lurk_attempt_init(&a, 3, 1000, 1000, -1, 0);
    step(&a, ev_at(LURK_ATTEMPT_EV_START, T0, 0));
    step(&a, ev_at(LURK_ATTEMPT_EV_SENT, T0, 0));
    assert_string_equal(
        step(&a, ev_at(LURK_ATTEMPT_EV_RECV_FAILED, T0 + 1000 - LURK_ATTEMPT_MIN_MS, 0)),
        "LEAVE:0 MARK_DOWN:0 COMPLETE RELEASE_IO");
    assert_int_equal(a.result, LURK_ATTEMPT_RES_TRANSPORT);
    assert_int_equal(a.err, 5);
}

static lurk_attempt_event overloaded(int64_t now, int server)
{
    lurk_attempt_event ev = ev_at(LURK_ATTEMPT_EV_ANSWER, now, server);

    ev.overloaded = 1;
    return ev;
}

/* OVERLOADED everywhere: each server once, then that answer is the result. */
static void test_overloaded_on_every_server(void **state)
{
    lurk_attempt a;

    (void)state;
    lurk_attempt_init(&a, 3, 1000, 400, -1, 0);
    step(&a, ev_at(LURK_ATTEMPT_EV_START, T0, 0));
    for (int i = 0; i < 3; i++) {
        char want[128];

        step(&a, ev_at(LURK_ATTEMPT_EV_SENT, T0 + 10 * i, i));
        assert_int_equal(lurk_attempt_wants_status(&a), i < 2);
        if (i < 2)
            snprintf(want, sizeof(want), "LEAVE:%d:r MARK_UP:%d DROP_ANSWER ARM_TIMER:400 SEND:%d",
                     i, i, i + 1);
        else
            snprintf(want, sizeof(want), "LEAVE:2:r MARK_UP:2 KEEP_ANSWER COMPLETE RELEASE_IO");
        assert_string_equal(step(&a, overloaded(T0 + 10 * i + 5, i)), want);
    }
    assert_int_equal(a.state, LURK_ATTEMPT_DONE);
    assert_int_equal(a.result, LURK_ATTEMPT_RES_ANSWER);
    assert_true(T0 + 25 < a.deadline_ms);
    /* Near the deadline the overloaded answer is final at once. */
    lurk_attempt_init(&a, 3, 1000, 400, -1, 0);
    step(&a, ev_at(LURK_ATTEMPT_EV_START, T0, 0));
    step(&a, ev_at(LURK_ATTEMPT_EV_SENT, T0, 0));
    assert_string_equal(step(&a, overloaded(T0 + 990, 0)),
                        "LEAVE:0:r MARK_UP:0 KEEP_ANSWER COMPLETE RELEASE_IO");
}

/* The caller leaves while the answer travels: it is dropped, and no COMPLETE. */
static void test_abandon_while_answer_in_flight(void **state)
{
    lurk_attempt a;

    (void)state;
    reach(&a, LURK_ATTEMPT_WAITING);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_ABANDON, T0 + 5, 0)), "ABORT_IO");
    /* The answer beat the abort. */
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_ANSWER, T0 + 6, 0)),
                        "LEAVE:0:r MARK_UP:0 DROP_ANSWER RELEASE_IO FREE");
    assert_int_equal(a.state, LURK_ATTEMPT_FREED);
    /* Or the abort won: the answer that comes later is nobody's. */
    reach(&a, LURK_ATTEMPT_WAITING);
    step(&a, ev_at(LURK_ATTEMPT_EV_ABANDON, T0 + 5, 0));
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_CANCELED, T0 + 6, 0)),
                        "LEAVE:0 RELEASE_IO FREE");
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_ANSWER, T0 + 50, 0)), "DROP_ANSWER");
    /* An abandoned call never moves on, whatever fails. */
    reach(&a, LURK_ATTEMPT_SENDING);
    step(&a, ev_at(LURK_ATTEMPT_EV_ABANDON, T0 + 5, 0));
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_TIMEOUT, T0 + 400, 0)), DROPPED_FAIL);
}

/* The client is freed with calls outstanding: they end as CLOSED, never retried. */
static void test_client_free_with_calls_outstanding(void **state)
{
    lurk_attempt a;

    (void)state;
    reach(&a, LURK_ATTEMPT_WAITING);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_CLIENT_FREE, T0 + 5, 0)), "ABORT_IO");
    assert_false(lurk_attempt_wants_status(&a));
    /* nng_close fails the receive: not the server's fault, no failover. */
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_RECV_FAILED, T0 + 6, 0)),
                        "LEAVE:0 COMPLETE RELEASE_IO");
    assert_int_equal(a.result, LURK_ATTEMPT_RES_CLOSED);
    /* The caller comes back later: the call is freed without the client. */
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_FINISH, T0 + 500, 0)), "FREE");
    /* An answer that made it is still an answer. */
    reach(&a, LURK_ATTEMPT_WAITING);
    step(&a, ev_at(LURK_ATTEMPT_EV_CLIENT_FREE, T0 + 5, 0));
    assert_string_equal(step(&a, overloaded(T0 + 6, 0)),
                        "LEAVE:0:r MARK_UP:0 KEEP_ANSWER COMPLETE RELEASE_IO");
    /* Shut down before it started. */
    lurk_attempt_init(&a, 3, 1000, 400, -1, 0);
    step(&a, ev_at(LURK_ATTEMPT_EV_CLIENT_FREE, T0, 0));
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_START, T0, 0)), "COMPLETE RELEASE_IO");
    assert_int_equal(a.result, LURK_ATTEMPT_RES_CLOSED);
    /* An abandoned call: the free ends it. */
    reach(&a, LURK_ATTEMPT_ABANDONED);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_CLIENT_FREE, T0 + 5, 0)), "ABORT_IO");
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_CANCELED, T0 + 6, 0)),
                        "LEAVE:0 RELEASE_IO FREE");
}

/* A probe: its server only, the whole timeout, nobody waits, no retry. */
static void test_probe(void **state)
{
    lurk_attempt a;

    (void)state;
    lurk_attempt_init(&a, 3, 1000, 400, 2, 1);
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_START, T0, 0)), "ARM_TIMER:1000 SEND:2");
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_ABANDON, T0, 2)), "");
    step(&a, ev_at(LURK_ATTEMPT_EV_SENT, T0, 2));
    assert_false(lurk_attempt_wants_status(&a));
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_TIMEOUT, T0 + 1000, 2)),
                        "LEAVE:2 MARK_DOWN:2 COMPLETE RELEASE_IO FREE");
    /* A probe that cannot even be sent still completes (the health tick waits for it). */
    lurk_attempt_init(&a, 3, 1000, 400, 1, 1);
    step(&a, ev_at(LURK_ATTEMPT_EV_START, T0, 0));
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_NOT_SENT, T0, 1)),
                        "COMPLETE RELEASE_IO FREE");
}

/* The request could not be handed to nng on a retry: the earlier failure is the story. */
static void test_not_sent(void **state)
{
    lurk_attempt a;

    (void)state;
    reach(&a, LURK_ATTEMPT_SENDING);
    step(&a, ev_at(LURK_ATTEMPT_EV_NOT_SENT, T0, 0));
    assert_int_equal(a.result, LURK_ATTEMPT_RES_LOCAL);
    reach(&a, LURK_ATTEMPT_WAITING);
    step(&a, ev_at(LURK_ATTEMPT_EV_TIMEOUT, T0 + 400, 0));
    assert_string_equal(step(&a, ev_at(LURK_ATTEMPT_EV_NOT_SENT, T0 + 400, 1)),
                        "COMPLETE RELEASE_IO");
    assert_int_equal(a.result, LURK_ATTEMPT_RES_TIMEOUT);
}

/* The choice is lurk_balance_pick's: up and connected first, never a tried one. */
static void test_pick_uses_balance(void **state)
{
    const lurk_balance_view v[3] = { { 1, 1, 0 }, { 0, 0, 0 }, { 1, 0, 3 } };
    lurk_attempt a;
    lurk_attempt_event ev;

    (void)state;
    lurk_attempt_init(&a, 3, 1000, 400, -1, 0);
    ev = ev_at(LURK_ATTEMPT_EV_START, T0, 0);
    ev.view = v;
    assert_string_equal(step(&a, ev), "ARM_TIMER:400 SEND:2");
    step(&a, ev_at(LURK_ATTEMPT_EV_SENT, T0, 2));
    ev = ev_at(LURK_ATTEMPT_EV_TIMEOUT, T0 + 400, 2);
    ev.view = v;
    assert_string_equal(step(&a, ev), "LEAVE:2 MARK_DOWN:2 ARM_TIMER:400 SEND:1");
    /* No view (none available): the call ends rather than guessing. */
    step(&a, ev_at(LURK_ATTEMPT_EV_SENT, T0 + 400, 1));
    ev = ev_at(LURK_ATTEMPT_EV_TIMEOUT, T0 + 800, 1);
    ev.view = NULL;
    assert_string_equal(step(&a, ev), "LEAVE:1 MARK_DOWN:1 COMPLETE RELEASE_IO");
}

/*
 * Random event sequences, each event aimed at the current attempt or a
 * stale one: the invariants of lurk_attempt.h hold in every one.
 */
static void test_invariants_random_walks(void **state)
{
    uint32_t seed = 12345;

    (void)state;
    for (int walk = 0; walk < 3000; walk++) {
        lurk_attempt a;
        int release = 0, freed = 0, complete = 0, abandoned = 0;
        uint32_t sent_to = 0;
        int64_t now = T0;
        int detached = walk % 7 == 0;

        lurk_attempt_init(&a, 1 + walk % 4, 1000, 300, detached ? walk % 2 : -1, detached);
        for (int k = 0; k < 40 && !freed; k++) {
            lurk_attempt_event ev;
            lurk_attempt_actions acts;
            int answers = 0;

            seed = seed * 1103515245u + 12345u;
            ev = ev_at((lurk_attempt_event_type)((seed >> 8) % LURK_ATTEMPT_NEVENTS), now,
                       (seed >> 20) % 5 == 0 ? (int)((seed >> 4) % 4) : a.server);
            ev.overloaded = (seed >> 24) & 1;
            ev.rr = seed >> 16;
            if (k == 0)
                ev.type = LURK_ATTEMPT_EV_START;
            now += (seed >> 12) % 150;
            if (ev.type == LURK_ATTEMPT_EV_ABANDON || ev.type == LURK_ATTEMPT_EV_FINISH)
                abandoned |= !detached && a.state != LURK_ATTEMPT_DONE;
            lurk_attempt_step(&a, &ev, &acts);
            for (size_t i = 0; i < acts.n; i++) {
                switch (acts.a[i].type) {
                case LURK_ATTEMPT_ACT_SEND:
                    assert_false(sent_to & (1u << acts.a[i].server));
                    sent_to |= 1u << acts.a[i].server;
                    break;
                case LURK_ATTEMPT_ACT_ARM_TIMER:
                    /* Never past the deadline; 0 once it has passed. */
                    assert_true(acts.a[i].ms >= 0);
                    assert_true(acts.a[i].ms == 0 || ev.now_ms + acts.a[i].ms <= a.deadline_ms);
                    break;
                case LURK_ATTEMPT_ACT_KEEP_ANSWER:
                case LURK_ATTEMPT_ACT_DROP_ANSWER: answers++; break;
                case LURK_ATTEMPT_ACT_COMPLETE:
                    assert_false(abandoned);
                    complete++;
                    break;
                case LURK_ATTEMPT_ACT_RELEASE_IO: release++; break;
                case LURK_ATTEMPT_ACT_FREE:
                    assert_int_equal(release, 1);
                    assert_int_equal(i, acts.n - 1);
                    freed++;
                    break;
                default: break;
                }
            }
            if (ev.type == LURK_ATTEMPT_EV_ANSWER || ev.type == LURK_ATTEMPT_EV_ANSWER_OTHER_ID)
                assert_int_equal(answers, 1);
            else
                assert_int_equal(answers, 0);
            assert_true(release <= 1 && freed <= 1 && complete <= 1);
        }
        if (!freed && a.state != LURK_ATTEMPT_NEW) {
            /* Drain: the caller leaves, the I/O ends; the call must be freed. */
            lurk_attempt_actions acts;
            lurk_attempt_event ev = ev_at(LURK_ATTEMPT_EV_FINISH, now, a.server);

            lurk_attempt_step(&a, &ev, &acts);
            ev.type = LURK_ATTEMPT_EV_CANCELED;
            if (a.state != LURK_ATTEMPT_FREED)
                lurk_attempt_step(&a, &ev, &acts);
            if (detached && a.state != LURK_ATTEMPT_FREED) {
                ev.type = LURK_ATTEMPT_EV_TIMEOUT;
                lurk_attempt_step(&a, &ev, &acts);
            }
            assert_int_equal(a.state, LURK_ATTEMPT_FREED);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_event_in_every_state),
        cmocka_unit_test(test_answer_is_the_result),
        cmocka_unit_test(test_late_answer_from_previous_server),
        cmocka_unit_test(test_answer_other_id_is_final),
        cmocka_unit_test(test_disconnect_mid_call),
        cmocka_unit_test(test_never_answered_fails_at_deadline),
        cmocka_unit_test(test_no_attempt_too_close_to_deadline),
        cmocka_unit_test(test_overloaded_on_every_server),
        cmocka_unit_test(test_abandon_while_answer_in_flight),
        cmocka_unit_test(test_client_free_with_calls_outstanding),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_not_sent),
        cmocka_unit_test(test_pick_uses_balance),
        cmocka_unit_test(test_invariants_random_walks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
