/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The slot state machine (ks_slot): every event in every state, then the
 * scenarios the key server lives through (overload per connection and in
 * total, a connection closing with requests in flight, SIGHUP and SIGTERM
 * with requests in flight, drain completion).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ks_slot.h"

#define CONN    7u
#define NONE    0u
#define INVALID KS_SLOT_A_INVALID
#define A(x)    KS_SLOT_A_##x

/* Four slots, max_inflight 4, per connection 2, through the workers. */
static void set_new(ks_slot_set *set, unsigned int max_total, unsigned int max_conn, int inl)
{
    ks_slot_ev lim = { .type = KS_SLOT_EV_RELOAD,
                       .gen = 1,
                       .max_total = max_total,
                       .max_conn = max_conn,
                       .answer_inline = inl };

    assert_int_equal(ks_slot_init(set, 4, 4, &lim), 0);
}

static ks_slot_act step(ks_slot_set *set, size_t i, ks_slot_ev ev)
{
    ks_slot_act act;

    (void)ks_slot_step(set, i, &ev, &act);
    return act;
}

static ks_slot_ev ev_of(ks_slot_event type)
{
    ks_slot_ev ev = { .type = type };

    return ev;
}

static ks_slot_ev received(uint32_t conn, unsigned int inflight)
{
    ks_slot_ev ev = {
        .type = KS_SLOT_EV_RECEIVED, .conn = conn, .conn_known = 1, .conn_inflight = inflight
    };

    return ev;
}

static ks_slot_ev done(int has_reply)
{
    ks_slot_ev ev = { .type = KS_SLOT_EV_WORKER_DONE, .has_reply = has_reply };

    return ev;
}

/* Drive slot i from IDLE into `st` the way the server does (workers mode). */
static void put(ks_slot_set *set, size_t i, ks_slot_state st)
{
    if (st == KS_SLOT_IDLE)
        return;
    step(set, i, ev_of(KS_SLOT_EV_START));
    if (st == KS_SLOT_RECV)
        return;
    step(set, i, received(CONN, 0));
    if (st == KS_SLOT_QUEUED)
        return;
    step(set, i, ev_of(KS_SLOT_EV_TAKEN));
    if (st == KS_SLOT_WORK)
        return;
    step(set, i, done(1));
    assert_int_equal(set->slot[i].state, st);
}

typedef struct {
    ks_slot_state from;
    ks_slot_ev ev;
    ks_slot_state to;
    unsigned int acts;
} row;

#define EV(t)                  \
    {                          \
        .type = KS_SLOT_EV_##t \
    }
#define S(x) KS_SLOT_##x

static const row table[] = {
    /* IDLE: only START and the set-wide events. */
    { S(IDLE), EV(START), S(RECV), A(RECV) },
    { S(IDLE), { .type = KS_SLOT_EV_RECEIVED, .conn = CONN, .conn_known = 1 }, S(IDLE), INVALID },
    { S(IDLE), EV(RECV_ERROR), S(IDLE), INVALID },
    { S(IDLE), EV(RECV_CLOSED), S(IDLE), INVALID },
    { S(IDLE), EV(TAKEN), S(IDLE), INVALID },
    { S(IDLE), { .type = KS_SLOT_EV_WORKER_DONE, .has_reply = 1 }, S(IDLE), INVALID },
    { S(IDLE), EV(SENT), S(IDLE), INVALID },
    { S(IDLE), EV(SEND_FAILED), S(IDLE), INVALID },
    { S(IDLE), { .type = KS_SLOT_EV_CONN_CLOSED, .conn = CONN }, S(IDLE), NONE },
    { S(IDLE), EV(DRAIN), S(IDLE), A(DRAINED) },
    { S(IDLE), { .type = KS_SLOT_EV_RELOAD, .gen = 2, .max_total = 4 }, S(IDLE), NONE },
    { S(IDLE), EV(CLOSE), S(IDLE), NONE },
    /* RECV */
    { S(RECV), EV(START), S(RECV), INVALID },
    { S(RECV),
      { .type = KS_SLOT_EV_RECEIVED, .conn = CONN, .conn_known = 1 },
      S(QUEUED),
      A(CONN_ENTER) | A(QUEUE) },
    { S(RECV), EV(RECV_ERROR), S(RECV), A(RECV) },
    { S(RECV), EV(RECV_CLOSED), S(IDLE), NONE },
    { S(RECV), EV(TAKEN), S(RECV), INVALID },
    { S(RECV), { .type = KS_SLOT_EV_WORKER_DONE, .has_reply = 1 }, S(RECV), INVALID },
    { S(RECV), EV(SENT), S(RECV), INVALID },
    { S(RECV), EV(SEND_FAILED), S(RECV), INVALID },
    { S(RECV), { .type = KS_SLOT_EV_CONN_CLOSED, .conn = CONN }, S(RECV), NONE },
    { S(RECV), EV(DRAIN), S(RECV), A(DRAINED) },
    { S(RECV), { .type = KS_SLOT_EV_RELOAD, .gen = 2, .max_total = 4 }, S(RECV), NONE },
    { S(RECV), EV(CLOSE), S(RECV), NONE },
    /* QUEUED */
    { S(QUEUED), EV(START), S(QUEUED), INVALID },
    { S(QUEUED),
      { .type = KS_SLOT_EV_RECEIVED, .conn = CONN, .conn_known = 1 },
      S(QUEUED),
      INVALID },
    { S(QUEUED), EV(RECV_ERROR), S(QUEUED), INVALID },
    { S(QUEUED), EV(RECV_CLOSED), S(QUEUED), INVALID },
    { S(QUEUED), EV(TAKEN), S(WORK), NONE },
    { S(QUEUED), { .type = KS_SLOT_EV_WORKER_DONE, .has_reply = 1 }, S(QUEUED), INVALID },
    { S(QUEUED), EV(SENT), S(QUEUED), INVALID },
    { S(QUEUED), EV(SEND_FAILED), S(QUEUED), INVALID },
    { S(QUEUED), { .type = KS_SLOT_EV_CONN_CLOSED, .conn = CONN }, S(QUEUED), NONE },
    { S(QUEUED), EV(DRAIN), S(QUEUED), NONE },
    { S(QUEUED), { .type = KS_SLOT_EV_RELOAD, .gen = 2, .max_total = 4 }, S(QUEUED), NONE },
    { S(QUEUED), EV(CLOSE), S(QUEUED), NONE },
    /* WORK */
    { S(WORK), EV(START), S(WORK), INVALID },
    { S(WORK), { .type = KS_SLOT_EV_RECEIVED, .conn = CONN, .conn_known = 1 }, S(WORK), INVALID },
    { S(WORK), EV(RECV_ERROR), S(WORK), INVALID },
    { S(WORK), EV(RECV_CLOSED), S(WORK), INVALID },
    { S(WORK), EV(TAKEN), S(WORK), INVALID },
    { S(WORK),
      { .type = KS_SLOT_EV_WORKER_DONE, .has_reply = 1 },
      S(SEND),
      A(CONN_LEAVE) | A(SEND) },
    { S(WORK),
      { .type = KS_SLOT_EV_WORKER_DONE, .has_reply = 0 },
      S(RECV),
      A(CONN_LEAVE) | A(NOTIFY) | A(RECV) },
    { S(WORK), EV(SENT), S(WORK), INVALID },
    { S(WORK), EV(SEND_FAILED), S(WORK), INVALID },
    { S(WORK), { .type = KS_SLOT_EV_CONN_CLOSED, .conn = CONN }, S(WORK), NONE },
    { S(WORK), EV(DRAIN), S(WORK), NONE },
    { S(WORK), { .type = KS_SLOT_EV_RELOAD, .gen = 2, .max_total = 4 }, S(WORK), NONE },
    { S(WORK), EV(CLOSE), S(WORK), NONE },
    /* SEND */
    { S(SEND), EV(START), S(SEND), INVALID },
    { S(SEND), { .type = KS_SLOT_EV_RECEIVED, .conn = CONN, .conn_known = 1 }, S(SEND), INVALID },
    { S(SEND), EV(RECV_ERROR), S(SEND), INVALID },
    { S(SEND), EV(RECV_CLOSED), S(SEND), INVALID },
    { S(SEND), EV(TAKEN), S(SEND), INVALID },
    { S(SEND), { .type = KS_SLOT_EV_WORKER_DONE, .has_reply = 1 }, S(SEND), INVALID },
    { S(SEND), EV(SENT), S(RECV), A(NOTIFY) | A(RECV) },
    { S(SEND), EV(SEND_FAILED), S(RECV), A(FREE_REPLY) | A(NOTIFY) | A(RECV) },
    { S(SEND), { .type = KS_SLOT_EV_CONN_CLOSED, .conn = CONN }, S(SEND), NONE },
    { S(SEND), EV(DRAIN), S(SEND), NONE },
    { S(SEND), { .type = KS_SLOT_EV_RELOAD, .gen = 2, .max_total = 4 }, S(SEND), NONE },
    { S(SEND), EV(CLOSE), S(SEND), NONE },
};

static void test_every_event_in_every_state(void **state)
{
    int seen[KS_SLOT_N_STATES][KS_SLOT_N_EVENTS] = { { 0 } };

    (void)state;
    for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++) {
        const row *r = &table[k];
        ks_slot_set set, before;
        ks_slot_act act;
        int rc;

        set_new(&set, 4, 2, 0);
        put(&set, 0, r->from);
        before = set;
        rc = ks_slot_step(&set, 0, &r->ev, &act);
        if (act.acts != r->acts || set.slot[0].state != r->to)
            fail_msg("%s + %s: acts %#x state %s, want %#x %s", ks_slot_state_name(r->from),
                     ks_slot_event_name(r->ev.type), act.acts,
                     ks_slot_state_name(set.slot[0].state), r->acts, ks_slot_state_name(r->to));
        assert_int_equal(rc, r->acts == INVALID ? -1 : 0);
        if (rc != 0) {
            /* Refused: nothing changed. */
            assert_int_equal(set.busy, before.busy);
            assert_int_equal(set.admitted, before.admitted);
        }
        seen[r->from][r->ev.type] = 1;
        ks_slot_free(&set);
    }
    for (int s = 0; s < KS_SLOT_N_STATES; s++)
        for (int e = 0; e < KS_SLOT_N_EVENTS; e++)
            if (!seen[s][e])
                fail_msg("no row for %s + %s", ks_slot_state_name((ks_slot_state)s),
                         ks_slot_event_name((ks_slot_event)e));
}

static void test_counts_follow_the_request(void **state)
{
    ks_slot_set set;
    ks_slot_act a;

    (void)state;
    set_new(&set, 4, 2, 0);
    put(&set, 0, KS_SLOT_RECV);
    assert_int_equal(set.busy, 0);
    a = step(&set, 0, received(CONN, 0));
    assert_int_equal(a.conn, CONN);
    assert_int_equal(set.admitted, 1);
    assert_int_equal(set.busy, 1);
    assert_int_equal(set.slot[0].gen, 1);
    step(&set, 0, ev_of(KS_SLOT_EV_TAKEN));
    a = step(&set, 0, done(1));
    /* Answered: no longer in flight, still busy until sent. */
    assert_int_equal(a.conn, CONN);
    assert_int_equal(set.admitted, 0);
    assert_int_equal(set.busy, 1);
    step(&set, 0, ev_of(KS_SLOT_EV_SENT));
    assert_int_equal(set.busy, 0);
    assert_int_equal(set.peak, 1);
    ks_slot_free(&set);
}

static void test_inline_answers_on_the_receiving_thread(void **state)
{
    ks_slot_set set;
    ks_slot_act a;

    (void)state;
    set_new(&set, 4, 2, 1);
    put(&set, 0, KS_SLOT_RECV);
    a = step(&set, 0, received(CONN, 0));
    assert_int_equal(a.acts, A(CONN_ENTER) | A(ANSWER));
    assert_int_equal(set.slot[0].state, KS_SLOT_WORK);
    a = step(&set, 0, done(1));
    assert_int_equal(a.acts, A(CONN_LEAVE) | A(SEND));
    ks_slot_free(&set);
}

static void test_overload_per_connection(void **state)
{
    ks_slot_set set;
    ks_slot_act a;

    (void)state;
    set_new(&set, 4, 2, 0);
    for (size_t i = 0; i < 4; i++)
        put(&set, i, KS_SLOT_RECV);
    step(&set, 0, received(CONN, 0));
    step(&set, 1, received(CONN, 1));
    a = step(&set, 2, received(CONN, 2));
    assert_int_equal(a.acts, A(REFUSE));
    assert_int_equal(a.refusal, KS_SLOT_REFUSE_CONN);
    assert_int_equal(a.limit, 2);
    assert_int_equal(set.admitted, 2);
    assert_int_equal(set.busy, 3);
    /* Another connection still gets in. */
    a = step(&set, 3, received(CONN + 1, 0));
    assert_int_equal(a.acts, A(CONN_ENTER) | A(QUEUE));
    /* The refusal is answered from its slot: nothing counted to give back. */
    a = step(&set, 2, done(1));
    assert_int_equal(a.acts, A(SEND));
    assert_int_equal(set.admitted, 3);
    a = step(&set, 2, ev_of(KS_SLOT_EV_SENT));
    assert_int_equal(a.acts, A(NOTIFY) | A(RECV));
    /* Unknown connection: only the total applies, nothing counted on it. */
    a = step(&set, 2,
             (ks_slot_ev){ .type = KS_SLOT_EV_RECEIVED, .conn = 99, .conn_inflight = 1000 });
    assert_int_equal(a.acts, A(QUEUE));
    ks_slot_free(&set);
}

/* The edge group's limit: counted across its connections, applied like theirs. */
static void test_overload_group(void **state)
{
    ks_slot_set set;
    ks_slot_act a;
    ks_slot_ev ev;

    (void)state;
    set_new(&set, 8, 4, 0);
    for (size_t i = 0; i < 4; i++)
        put(&set, i, KS_SLOT_RECV);
    ev = received(CONN, 0);
    ev.group_inflight = 1;
    ev.max_group = 2;
    a = step(&set, 0, ev);
    assert_int_equal(a.acts, A(CONN_ENTER) | A(QUEUE));
    /* Another connection of the same group, the group now full. */
    ev = received(CONN + 1, 0);
    ev.group_inflight = 2;
    ev.max_group = 2;
    a = step(&set, 1, ev);
    assert_int_equal(a.acts, A(REFUSE));
    assert_int_equal(a.refusal, KS_SLOT_REFUSE_GROUP);
    assert_int_equal(a.limit, 2);
    assert_int_equal(set.admitted, 1);
    /* Over both the group and its connection: the group is named. */
    ev = received(CONN, 4);
    ev.group_inflight = 2;
    ev.max_group = 2;
    a = step(&set, 2, ev);
    assert_int_equal(a.refusal, KS_SLOT_REFUSE_GROUP);
    /* No group limit (0), or a connection gone from the table: not applied. */
    ev = received(CONN + 2, 0);
    ev.group_inflight = 100;
    ev.max_group = 0;
    a = step(&set, 3, ev);
    assert_int_equal(a.acts, A(CONN_ENTER) | A(QUEUE));
    a = step(&set, 1, done(1));
    step(&set, 1, ev_of(KS_SLOT_EV_SENT));
    ev = (ks_slot_ev){
        .type = KS_SLOT_EV_RECEIVED, .conn = 99, .group_inflight = 5, .max_group = 1
    };
    a = step(&set, 1, ev);
    assert_int_equal(a.acts, A(QUEUE));
    ks_slot_free(&set);
}

static void test_overload_total(void **state)
{
    ks_slot_set set;
    ks_slot_act a;

    (void)state;
    set_new(&set, 2, 2, 0);
    for (size_t i = 0; i < 4; i++)
        put(&set, i, KS_SLOT_RECV);
    step(&set, 0, received(1, 0));
    step(&set, 1, received(2, 0));
    a = step(&set, 2, received(3, 0));
    assert_int_equal(a.acts, A(REFUSE));
    assert_int_equal(a.refusal, KS_SLOT_REFUSE_TOTAL);
    assert_int_equal(a.limit, 2);
    /* One answered: room again. */
    step(&set, 0, ev_of(KS_SLOT_EV_TAKEN));
    step(&set, 0, done(1));
    a = step(&set, 3, received(3, 0));
    assert_int_equal(a.acts, A(CONN_ENTER) | A(QUEUE));
    assert_int_equal(set.peak, 2);
    ks_slot_free(&set);
}

static void test_connection_closed_in_flight(void **state)
{
    ks_slot_set set;
    ks_slot_act a;

    (void)state;
    set_new(&set, 4, 2, 0);
    for (size_t i = 0; i < 3; i++)
        put(&set, i, KS_SLOT_RECV);
    step(&set, 0, received(CONN, 0));
    step(&set, 1, received(CONN, 1));
    step(&set, 2, received(CONN + 1, 0));
    a = step(&set, 0, (ks_slot_ev){ .type = KS_SLOT_EV_CONN_CLOSED, .conn = CONN });
    assert_int_equal(a.n, 2);
    assert_int_equal(a.acts, NONE);
    /* They still finish and count down the total, but not the gone connection. */
    step(&set, 0, ev_of(KS_SLOT_EV_TAKEN));
    a = step(&set, 0, done(1));
    assert_int_equal(a.acts, A(SEND));
    a = step(&set, 0, ev_of(KS_SLOT_EV_SEND_FAILED));
    assert_int_equal(a.acts, A(FREE_REPLY) | A(NOTIFY) | A(RECV));
    step(&set, 1, ev_of(KS_SLOT_EV_TAKEN));
    a = step(&set, 1, done(0));
    assert_int_equal(a.acts, A(NOTIFY) | A(RECV));
    assert_int_equal(set.admitted, 1);
    /* The other connection's request is untouched. */
    step(&set, 2, ev_of(KS_SLOT_EV_TAKEN));
    a = step(&set, 2, done(1));
    assert_int_equal(a.acts, A(CONN_LEAVE) | A(SEND));
    assert_int_equal(a.conn, CONN + 1);
    ks_slot_free(&set);
}

static void test_reload_in_flight(void **state)
{
    ks_slot_set set;
    ks_slot_act a;

    (void)state;
    set_new(&set, 4, 2, 0);
    for (size_t i = 0; i < 4; i++)
        put(&set, i, KS_SLOT_RECV);
    step(&set, 0, received(1, 0));
    step(&set, 1, received(2, 0));
    a = step(&set, 0,
             (ks_slot_ev){ .type = KS_SLOT_EV_RELOAD,
                           .gen = 2,
                           .max_total = 1,
                           .max_conn = 1,
                           .answer_inline = 1 });
    assert_int_equal(a.n, 2);
    assert_int_equal(set.gen, 2);
    /* Admitted before the reload: they carry on as they were. */
    assert_int_equal(set.slot[0].state, KS_SLOT_QUEUED);
    assert_int_equal(set.slot[1].gen, 1);
    /* New ones see the new, lower, limit. */
    a = step(&set, 2, received(3, 0));
    assert_int_equal(a.refusal, KS_SLOT_REFUSE_TOTAL);
    assert_int_equal(a.limit, 1);
    step(&set, 2, done(1));
    step(&set, 2, ev_of(KS_SLOT_EV_SENT));
    for (size_t i = 0; i < 2; i++) {
        step(&set, i, ev_of(KS_SLOT_EV_TAKEN));
        step(&set, i, done(1));
        step(&set, i, ev_of(KS_SLOT_EV_SENT));
    }
    a = step(&set, 3, received(3, 0));
    assert_int_equal(a.acts, A(CONN_ENTER) | A(ANSWER));
    assert_int_equal(set.slot[3].gen, 2);
    /* A reload cannot raise max_inflight above the slots there are. */
    step(&set, 0, (ks_slot_ev){ .type = KS_SLOT_EV_RELOAD, .gen = 3, .max_total = 1000 });
    assert_int_equal(set.max_total, 4);
    ks_slot_free(&set);
}

static void test_drain_in_flight(void **state)
{
    ks_slot_set set;
    ks_slot_act a;

    (void)state;
    set_new(&set, 4, 2, 0);
    put(&set, 0, KS_SLOT_QUEUED);
    put(&set, 1, KS_SLOT_SEND);
    put(&set, 2, KS_SLOT_RECV);
    a = step(&set, 0, ev_of(KS_SLOT_EV_DRAIN));
    assert_int_equal(a.n, 2);
    assert_int_equal(a.acts, NONE);
    /* A request arriving now is dropped and its slot rests. */
    a = step(&set, 2, received(CONN, 1));
    assert_int_equal(a.acts, A(DROP) | A(NOTIFY));
    assert_int_equal(set.slot[2].state, KS_SLOT_IDLE);
    assert_int_equal(set.admitted, 1);
    /* A resting slot does not start again. */
    a = step(&set, 3, ev_of(KS_SLOT_EV_START));
    assert_int_equal(a.acts, NONE);
    assert_int_equal(set.slot[3].state, KS_SLOT_IDLE);
    /* The admitted ones are answered and sent; the last one completes the drain. */
    a = step(&set, 1, ev_of(KS_SLOT_EV_SENT));
    assert_int_equal(a.acts, A(NOTIFY));
    step(&set, 0, ev_of(KS_SLOT_EV_TAKEN));
    a = step(&set, 0, done(1));
    assert_int_equal(a.acts, A(CONN_LEAVE) | A(SEND));
    a = step(&set, 0, ev_of(KS_SLOT_EV_SENT));
    assert_int_equal(a.acts, A(NOTIFY) | A(DRAINED));
    assert_int_equal(set.busy, 0);
    assert_int_equal(set.admitted, 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(set.slot[i].state, KS_SLOT_IDLE);
    ks_slot_free(&set);
}

static void test_close(void **state)
{
    ks_slot_set set;
    ks_slot_act a;

    (void)state;
    set_new(&set, 4, 2, 0);
    put(&set, 0, KS_SLOT_QUEUED);
    put(&set, 1, KS_SLOT_RECV);
    put(&set, 2, KS_SLOT_RECV);
    step(&set, 0, ev_of(KS_SLOT_EV_CLOSE));
    /* A queued request a worker takes after the close is dropped, its counts given back. */
    a = step(&set, 0, ev_of(KS_SLOT_EV_TAKEN));
    assert_int_equal(a.acts, A(DROP) | A(CONN_LEAVE) | A(NOTIFY));
    assert_int_equal(set.slot[0].state, KS_SLOT_IDLE);
    assert_int_equal(set.admitted, 0);
    a = step(&set, 1, ev_of(KS_SLOT_EV_RECV_ERROR));
    assert_int_equal(a.acts, NONE);
    assert_int_equal(set.slot[1].state, KS_SLOT_IDLE);
    a = step(&set, 2, received(CONN, 0));
    assert_int_equal(a.acts, A(DROP) | A(NOTIFY));
    assert_int_equal(set.busy, 0);
    ks_slot_free(&set);
}

static void test_bad_index_and_names(void **state)
{
    ks_slot_set set;
    ks_slot_act a;
    ks_slot_ev ev = { .type = KS_SLOT_EV_START };

    (void)state;
    set_new(&set, 4, 2, 0);
    assert_int_equal(ks_slot_step(&set, 4, &ev, &a), -1);
    assert_int_equal(a.acts, INVALID);
    ev.type = KS_SLOT_N_EVENTS;
    assert_int_equal(ks_slot_step(&set, 0, &ev, &a), -1);
    assert_string_equal(ks_slot_state_name(KS_SLOT_SEND), "SEND");
    assert_string_equal(ks_slot_event_name(KS_SLOT_EV_CONN_CLOSED), "CONN_CLOSED");
    assert_string_equal(ks_slot_state_name(KS_SLOT_N_STATES), "?");
    ks_slot_free(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_event_in_every_state),
        cmocka_unit_test(test_counts_follow_the_request),
        cmocka_unit_test(test_inline_answers_on_the_receiving_thread),
        cmocka_unit_test(test_overload_per_connection),
        cmocka_unit_test(test_overload_group),
        cmocka_unit_test(test_overload_total),
        cmocka_unit_test(test_connection_closed_in_flight),
        cmocka_unit_test(test_reload_in_flight),
        cmocka_unit_test(test_drain_in_flight),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_bad_index_and_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
