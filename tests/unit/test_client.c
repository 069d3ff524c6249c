/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client's nng adapter (proto/lurk_client.c) against small key servers
 * in this process: nng rep sockets over ipc:// in a temporary directory,
 * each served by a thread that answers, stays silent, says OVERLOADED,
 * answers late or hangs up. Deadlines are short so that the whole file
 * runs in about two seconds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include "lurk_transport.h"

typedef enum { FAKE_ANSWER, FAKE_SILENT, FAKE_OVERLOADED, FAKE_LATE, FAKE_HANGUP } fake_mode;

typedef struct {
    nng_socket sock;
    char url[300];
    fake_mode mode;
    pthread_t thread;
    _Atomic int requests; /* Sign requests received (probes not counted) */
} fake_server;

static char tmpdir[] = "/tmp/lurk-test-client-XXXXXX";

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static nng_msg *fake_answer(const fake_server *f, const Lurk__V1__Request *req)
{
    Lurk__V1__Response resp = LURK__V1__RESPONSE__INIT;
    Lurk__V1__SignResponse sign = LURK__V1__SIGN_RESPONSE__INIT;
    Lurk__V1__PingResponse ping = LURK__V1__PING_RESPONSE__INIT;
    static uint8_t sig[64];
    nng_msg *msg;

    resp.version = LURK_PROTOCOL_VERSION;
    resp.id = req->id;
    if (req->op_case == LURK__V1__REQUEST__OP_PING) {
        resp.result_case = LURK__V1__RESPONSE__RESULT_PING;
        resp.ping = &ping;
    } else if (f->mode == FAKE_OVERLOADED) {
        resp.status = LURK__V1__STATUS__STATUS_OVERLOADED;
        resp.detail = "fake: full";
    } else {
        memset(sig, 0xab, sizeof(sig));
        sign.signature.data = sig;
        sign.signature.len = sizeof(sig);
        resp.result_case = LURK__V1__RESPONSE__RESULT_SIGN;
        resp.sign = &sign;
    }
    if (nng_msg_alloc(&msg, lurk__v1__response__get_packed_size(&resp)) != 0)
        return NULL;
    lurk__v1__response__pack(&resp, nng_msg_body(msg));
    return msg;
}

static void *fake_serve(void *arg)
{
    fake_server *f = arg;
    nng_msg *in, *out;

    while (nng_recvmsg(f->sock, &in, 0) == 0) {
        Lurk__V1__Status st;
        const char *why;
        Lurk__V1__Request *req = lurk_request_decode(nng_msg_body(in), nng_msg_len(in), &st, &why);

        nng_msg_free(in);
        if (req == NULL)
            continue;
        if (req->op_case == LURK__V1__REQUEST__OP_SIGN)
            f->requests++;
        if (req->op_case == LURK__V1__REQUEST__OP_SIGN && f->mode == FAKE_HANGUP) {
            lurk__v1__request__free_unpacked(req, NULL);
            nng_close(f->sock);
            break;
        }
        if (f->mode == FAKE_SILENT) {
            lurk__v1__request__free_unpacked(req, NULL);
            continue;
        }
        if (f->mode == FAKE_LATE && req->op_case == LURK__V1__REQUEST__OP_SIGN)
            nng_msleep(200);
        out = fake_answer(f, req);
        lurk__v1__request__free_unpacked(req, NULL);
        if (out != NULL && nng_sendmsg(f->sock, out, 0) != 0)
            nng_msg_free(out);
    }
    return NULL;
}

static void fake_start(fake_server *f, int i, fake_mode mode)
{
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    snprintf(f->url, sizeof(f->url), "ipc://%s/ks%d", tmpdir, i);
    assert_int_equal(nng_rep0_open(&f->sock), 0);
    assert_int_equal(nng_listen(f->sock, f->url, NULL, 0), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

static void fake_stop(fake_server *f)
{
    char path[300];

    nng_close(f->sock); /* ends nng_recvmsg in the thread; harmless if it hung up */
    pthread_join(f->thread, NULL);
    snprintf(path, sizeof(path), "%s", f->url + strlen("ipc://"));
    unlink(path);
}

/* A client of servers f[0..n-1]; connected by the time it returns. */
static lurk_client *client_of(fake_server *f, int n, int timeout_ms, int attempt_ms)
{
    char *urls[5] = { NULL };
    lurk_client_conf conf;
    lurk_client *c;
    char err[256];

    for (int i = 0; i < n; i++)
        urls[i] = f[i].url;
    memset(&conf, 0, sizeof(conf));
    conf.urls = urls;
    conf.timeout_ms = timeout_ms;
    conf.attempt_timeout_ms = attempt_ms;
    conf.keepalive_ms = -1;
    if (lurk_client_new(&conf, &c, err, sizeof(err)) != 0)
        fail_msg("lurk_client_new: %s", err);
    nng_msleep(100); /* ipc dials at once; let every pipe come up */
    return c;
}

static lurk_call_result sign(lurk_client *c, Lurk__V1__Response **resp, char *err, size_t errlen)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest s = LURK__V1__SIGN_REQUEST__INIT;
    static uint8_t tbs[32];

    s.key_id = "k";
    s.scheme = LURK_SCHEME_ECDSA_SECP256R1_SHA256;
    s.tbs.data = tbs;
    s.tbs.len = sizeof(tbs);
    req.op_case = LURK__V1__REQUEST__OP_SIGN;
    req.sign = &s;
    return lurk_client_call(c, &req, LURK__V1__RESPONSE__RESULT_SIGN, resp, err, errlen);
}

static void test_call_answered(void **state)
{
    fake_server f[1];
    lurk_client *c;
    Lurk__V1__Response *resp;
    char err[256] = "";

    (void)state;
    fake_start(&f[0], 0, FAKE_ANSWER);
    c = client_of(f, 1, 1000, 0);
    for (int i = 0; i < 3; i++) { /* the second and third reuse context and aio */
        assert_int_equal(sign(c, &resp, err, sizeof(err)), LURK_CALL_OK);
        assert_int_equal(resp->sign->signature.len, 64);
        lurk__v1__response__free_unpacked(resp, NULL);
    }
    lurk_client_free(c);
    fake_stop(&f[0]);
}

static void test_never_answered_fails_at_deadline(void **state)
{
    fake_server f[1];
    lurk_client *c;
    Lurk__V1__Response *resp;
    char err[256] = "";
    int64_t t;

    (void)state;
    fake_start(&f[0], 0, FAKE_SILENT);
    c = client_of(f, 1, 300, 0);
    t = now_ms();
    assert_int_equal(sign(c, &resp, err, sizeof(err)), LURK_CALL_TIMEOUT);
    t = now_ms() - t;
    assert_null(resp);
    assert_true(t >= 290 && t < 600);
    assert_non_null(strstr(err, "no key server answered within 300 ms (tried 1 of 1"));
    lurk_client_free(c);
    fake_stop(&f[0]);
}

/* The first server never answers: after attempt_timeout_ms the second does. */
static void test_failover_to_second_server(void **state)
{
    fake_server f[2];
    lurk_client *c;
    Lurk__V1__Response *resp;
    char err[256] = "";
    int64_t t;

    (void)state;
    fake_start(&f[0], 0, FAKE_SILENT);
    fake_start(&f[1], 1, FAKE_ANSWER);
    c = client_of(f, 2, 2000, 200);
    t = now_ms();
    assert_int_equal(sign(c, &resp, err, sizeof(err)), LURK_CALL_OK);
    t = now_ms() - t;
    lurk__v1__response__free_unpacked(resp, NULL);
    /* Both up and connected, the rotation starts with server 0. */
    assert_int_equal(f[0].requests, 1);
    assert_int_equal(f[1].requests, 1);
    assert_true(t >= 190 && t < 1000);
    /* Server 0 is down now: the next call goes straight to server 1. */
    t = now_ms();
    assert_int_equal(sign(c, &resp, err, sizeof(err)), LURK_CALL_OK);
    assert_true(now_ms() - t < 150);
    lurk__v1__response__free_unpacked(resp, NULL);
    assert_int_equal(f[0].requests, 1);
    lurk_client_free(c);
    fake_stop(&f[0]);
    fake_stop(&f[1]);
}

/* A server that hangs up mid-call: the request moves on without waiting for its timer. */
static void test_disconnect_moves_on_at_once(void **state)
{
    fake_server f[2];
    lurk_client *c;
    Lurk__V1__Response *resp;
    char err[256] = "";
    int64_t t;

    (void)state;
    fake_start(&f[0], 0, FAKE_HANGUP);
    fake_start(&f[1], 1, FAKE_ANSWER);
    c = client_of(f, 2, 4000, 2000);
    t = now_ms();
    assert_int_equal(sign(c, &resp, err, sizeof(err)), LURK_CALL_OK);
    assert_true(now_ms() - t < 1000);
    lurk__v1__response__free_unpacked(resp, NULL);
    assert_int_equal(f[1].requests, 1);
    lurk_client_free(c);
    fake_stop(&f[0]);
    fake_stop(&f[1]);
}

/* OVERLOADED everywhere: each server once, then the refusal, long before the deadline. */
static void test_overloaded_everywhere(void **state)
{
    fake_server f[2];
    lurk_client *c;
    Lurk__V1__Response *resp;
    char err[256] = "";
    int64_t t;

    (void)state;
    fake_start(&f[0], 0, FAKE_OVERLOADED);
    fake_start(&f[1], 1, FAKE_OVERLOADED);
    c = client_of(f, 2, 2000, 1000);
    t = now_ms();
    assert_int_equal(sign(c, &resp, err, sizeof(err)), LURK_CALL_REFUSED);
    assert_true(now_ms() - t < 500);
    assert_int_equal(resp->status, LURK__V1__STATUS__STATUS_OVERLOADED);
    assert_non_null(strstr(err, "overloaded"));
    lurk__v1__response__free_unpacked(resp, NULL);
    assert_int_equal(f[0].requests, 1);
    assert_int_equal(f[1].requests, 1);
    lurk_client_free(c);
    fake_stop(&f[0]);
    fake_stop(&f[1]);
}

static void count_done(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

static lurk_pending *start_sign(lurk_client *c, _Atomic int *done)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest s = LURK__V1__SIGN_REQUEST__INIT;
    static uint8_t tbs[32];
    char err[256];
    lurk_pending *p;

    s.key_id = "k";
    s.scheme = LURK_SCHEME_ECDSA_SECP256R1_SHA256;
    s.tbs.data = tbs;
    s.tbs.len = sizeof(tbs);
    req.op_case = LURK__V1__REQUEST__OP_SIGN;
    req.sign = &s;
    if ((p = lurk_client_start(c, &req, count_done, done, err, sizeof(err))) == NULL)
        fail_msg("lurk_client_start: %s", err);
    return p;
}

/*
 * An ASYNC job freed while paused: the call is abandoned, its answer comes
 * later and must go nowhere. Under ASan, any use after free or leak fails.
 */
static void test_abandon_then_late_answer(void **state)
{
    fake_server f[1];
    lurk_client *c;
    _Atomic int done = 0;
    lurk_pending *p;

    (void)state;
    fake_start(&f[0], 0, FAKE_LATE);
    c = client_of(f, 1, 2000, 0);
    p = start_sign(c, &done);
    nng_msleep(50);
    lurk_pending_abandon(p);
    nng_msleep(300); /* the answer arrives at 200 ms */
    assert_int_equal(done, 0);
    assert_int_equal(f[0].requests, 1);
    /* Abandoned after it was done: nothing to wait for. */
    p = start_sign(c, &done);
    while (!lurk_pending_done(p))
        nng_msleep(5);
    assert_int_equal(done, 1);
    lurk_pending_abandon(p);
    lurk_client_free(c);
    fake_stop(&f[0]);
}

/*
 * The client is freed with a call in flight whose caller comes back only
 * afterwards: the free does not wait for the caller, the call ends as
 * "shut down", and finishing it later touches no freed client.
 */
static void test_free_with_call_outstanding(void **state)
{
    fake_server f[1];
    lurk_client *c;
    _Atomic int done = 0;
    lurk_pending *p;
    Lurk__V1__Response *resp;
    char err[256] = "";
    int64_t t;

    (void)state;
    fake_start(&f[0], 0, FAKE_SILENT);
    c = client_of(f, 1, 5000, 0);
    p = start_sign(c, &done);
    nng_msleep(20);
    t = now_ms();
    lurk_client_free(c);
    assert_true(now_ms() - t < 1000);
    assert_int_equal(done, 1);
    assert_true(lurk_pending_done(p));
    assert_int_equal(
        lurk_pending_finish(p, LURK__V1__RESPONSE__RESULT_SIGN, &resp, err, sizeof(err)),
        LURK_CALL_TRANSPORT);
    assert_null(resp);
    assert_non_null(strstr(err, "shut down"));
    fake_stop(&f[0]);
}

typedef struct {
    lurk_client *c;
    lurk_call_result res;
    char err[256];
} blocked_call;

static void *call_blocked(void *arg)
{
    blocked_call *b = arg;
    Lurk__V1__Response *resp;

    b->res = sign(b->c, &resp, b->err, sizeof(b->err));
    if (resp != NULL)
        lurk__v1__response__free_unpacked(resp, NULL);
    return NULL;
}

/* The same for a thread blocked in lurk_client_call: it returns, the free does not hang. */
static void test_free_with_blocking_call(void **state)
{
    fake_server f[1];
    blocked_call b;
    pthread_t t;
    int64_t start;

    (void)state;
    fake_start(&f[0], 0, FAKE_SILENT);
    memset(&b, 0, sizeof(b));
    b.c = client_of(f, 1, 5000, 0);
    assert_int_equal(pthread_create(&t, NULL, call_blocked, &b), 0);
    nng_msleep(50);
    start = now_ms();
    lurk_client_free(b.c);
    pthread_join(t, NULL);
    assert_true(now_ms() - start < 1000);
    assert_int_equal(b.res, LURK_CALL_TRANSPORT);
    assert_non_null(strstr(b.err, "shut down"));
    fake_stop(&f[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_answered),
        cmocka_unit_test(test_never_answered_fails_at_deadline),
        cmocka_unit_test(test_failover_to_second_server),
        cmocka_unit_test(test_disconnect_moves_on_at_once),
        cmocka_unit_test(test_overloaded_everywhere),
        cmocka_unit_test(test_abandon_then_late_answer),
        cmocka_unit_test(test_free_with_call_outstanding),
        cmocka_unit_test(test_free_with_blocking_call),
    };
    int rv;

    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    rv = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(tmpdir);
    return rv;
}
