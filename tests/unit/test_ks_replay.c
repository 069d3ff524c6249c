/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replay window (ks_replay): fresh, retry, replay, expiry, full, and
 * the index under churn against a simple model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ks_replay.h"

#define SEC 1000000ull

static void digest_of(uint32_t n, uint8_t d[KS_REPLAY_DIGEST_LEN])
{
    /* Deliberately colliding low bits for small n: probing must cope. */
    memset(d, 0, KS_REPLAY_DIGEST_LEN);
    d[0] = (uint8_t)(n >> 24);
    d[1] = (uint8_t)(n >> 16);
    d[2] = (uint8_t)(n >> 8);
    d[3] = (uint8_t)n;
    d[31] = (uint8_t)(n * 7u);
}

static void test_fresh_retry_replay(void **state)
{
    ks_replay *r = ks_replay_new(8);
    uint8_t a[32], b[32];

    (void)state;
    assert_non_null(r);
    digest_of(1, a);
    digest_of(2, b);
    assert_int_equal(ks_replay_check(r, a, 7, 100, 0, 60 * SEC), KS_REPLAY_FRESH);
    /* The same request again (nng resend): same group, id and bytes. */
    assert_int_equal(ks_replay_check(r, a, 7, 100, 1 * SEC, 60 * SEC), KS_REPLAY_RETRY);
    /* Same bytes, another request id, or another group: a replay. */
    assert_int_equal(ks_replay_check(r, a, 7, 101, 2 * SEC, 60 * SEC), KS_REPLAY_REPLAY);
    assert_int_equal(ks_replay_check(r, a, 8, 100, 2 * SEC, 60 * SEC), KS_REPLAY_REPLAY);
    assert_int_equal(ks_replay_check(r, b, 7, 100, 2 * SEC, 60 * SEC), KS_REPLAY_FRESH);
    assert_int_equal(ks_replay_count(r, 2 * SEC), 2);
    /* After the window: fresh again. */
    assert_int_equal(ks_replay_check(r, a, 9, 5, 60 * SEC, 60 * SEC), KS_REPLAY_FRESH);
    assert_int_equal(ks_replay_count(r, 62 * SEC + 1), 1); /* b expired, a is new */
    assert_int_equal(ks_replay_count(r, 120 * SEC), 0);
    ks_replay_free(r);
}

static void test_window_off(void **state)
{
    ks_replay *r = ks_replay_new(1);
    uint8_t a[32];

    (void)state;
    digest_of(1, a);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ks_replay_check(r, a, 1, (uint64_t)i, 0, 0), KS_REPLAY_FRESH);
    assert_int_equal(ks_replay_count(r, 0), 0);
    ks_replay_free(r);
}

static void test_full_fails_closed(void **state)
{
    ks_replay *r = ks_replay_new(4);
    uint8_t d[32];

    (void)state;
    for (uint32_t i = 0; i < 4; i++) {
        digest_of(i, d);
        assert_int_equal(ks_replay_check(r, d, 1, i, i, 10 * SEC), KS_REPLAY_FRESH);
    }
    digest_of(99, d);
    assert_int_equal(ks_replay_check(r, d, 1, 99, 5, 10 * SEC), KS_REPLAY_FULL);
    /* Known ones are still recognised when full. */
    digest_of(2, d);
    assert_int_equal(ks_replay_check(r, d, 1, 77, 5, 10 * SEC), KS_REPLAY_REPLAY);
    /* The oldest expires first and makes room. */
    digest_of(99, d);
    assert_int_equal(ks_replay_check(r, d, 1, 99, 10 * SEC, 10 * SEC), KS_REPLAY_FRESH);
    digest_of(0, d);
    assert_int_equal(ks_replay_check(r, d, 1, 1234, 10 * SEC, 10 * SEC), KS_REPLAY_FULL);
    assert_int_equal(ks_replay_check(r, d, 1, 1234, 10 * SEC + 1, 10 * SEC), KS_REPLAY_FRESH);
    ks_replay_free(r);
}

static void test_bad_sizes(void **state)
{
    (void)state;
    assert_null(ks_replay_new(0));
    assert_null(ks_replay_new(KS_REPLAY_MAX_CAPACITY + 1u));
    ks_replay_free(NULL);
    assert_string_equal(ks_replay_verdict_name(KS_REPLAY_RETRY), "retry");
}

/*
 * What each verdict means for each operation. A Decrypt is answered like a
 * local key answers every ClientKeyExchange: a replay or a full cache gets
 * random bytes, never a refusal the TLS client could see; a Sign is refused.
 */
static void test_action_table(void **state)
{
    static const struct {
        ks_replay_verdict v;
        ks_replay_op op;
        ks_replay_action want;
    } rows[] = {
        { KS_REPLAY_FRESH, KS_REPLAY_OP_SIGN, KS_REPLAY_ANSWER },
        { KS_REPLAY_FRESH, KS_REPLAY_OP_DECRYPT, KS_REPLAY_ANSWER },
        { KS_REPLAY_RETRY, KS_REPLAY_OP_SIGN, KS_REPLAY_ANSWER },
        { KS_REPLAY_RETRY, KS_REPLAY_OP_DECRYPT, KS_REPLAY_ANSWER },
        { KS_REPLAY_REPLAY, KS_REPLAY_OP_SIGN, KS_REPLAY_REFUSE },
        { KS_REPLAY_REPLAY, KS_REPLAY_OP_DECRYPT, KS_REPLAY_ANSWER_RANDOM },
        { KS_REPLAY_FULL, KS_REPLAY_OP_SIGN, KS_REPLAY_REFUSE_FULL },
        { KS_REPLAY_FULL, KS_REPLAY_OP_DECRYPT, KS_REPLAY_ANSWER_RANDOM },
        /* An unknown verdict fails closed, as a full cache. */
        { (ks_replay_verdict)99, KS_REPLAY_OP_SIGN, KS_REPLAY_REFUSE_FULL },
        { (ks_replay_verdict)99, KS_REPLAY_OP_DECRYPT, KS_REPLAY_ANSWER_RANDOM },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ks_replay_action got = ks_replay_action_of(rows[i].v, rows[i].op);
        if (got != rows[i].want) {
            print_error("row %zu (%s, %s): got %d, want %d\n", i, ks_replay_verdict_name(rows[i].v),
                        rows[i].op == KS_REPLAY_OP_SIGN ? "sign" : "decrypt", (int)got,
                        (int)rows[i].want);
            fail();
        }
    }
}

/* The same ciphertext under two request ids: the first recorded, the second a replay. */
static void test_decrypt_two_ids(void **state)
{
    ks_replay *r = ks_replay_new(8);
    uint8_t ct[32];

    (void)state;
    digest_of(5, ct);
    assert_int_equal(
        ks_replay_action_of(ks_replay_check(r, ct, 1, 500, 0, 60 * SEC), KS_REPLAY_OP_DECRYPT),
        KS_REPLAY_ANSWER);
    assert_int_equal(
        ks_replay_action_of(ks_replay_check(r, ct, 1, 501, 1, 60 * SEC), KS_REPLAY_OP_DECRYPT),
        KS_REPLAY_ANSWER_RANDOM);
    /* The first request again (an nng resend): decrypted again. */
    assert_int_equal(
        ks_replay_action_of(ks_replay_check(r, ct, 1, 500, 2, 60 * SEC), KS_REPLAY_OP_DECRYPT),
        KS_REPLAY_ANSWER);
    /* The replay left no entry of its own: its retry is a replay too. */
    assert_int_equal(
        ks_replay_action_of(ks_replay_check(r, ct, 1, 501, 3, 60 * SEC), KS_REPLAY_OP_DECRYPT),
        KS_REPLAY_ANSWER_RANDOM);
    assert_int_equal(ks_replay_count(r, 3), 1);
    ks_replay_free(r);
}

/* Churn: insert and expire many entries; every live one must stay findable. */
static void test_churn_against_model(void **state)
{
    enum { CAP = 64, ROUNDS = 20000 };
    ks_replay *r = ks_replay_new(CAP);
    uint64_t expires[4096];
    uint8_t d[32];
    uint64_t now = 0, window = 50;

    (void)state;
    memset(expires, 0, sizeof(expires));
    srand(42);
    for (int i = 0; i < ROUNDS; i++) {
        uint32_t n = (uint32_t)rand() % 4096u;
        ks_replay_verdict v;
        size_t live = 0;

        now += (uint64_t)(rand() % 3);
        digest_of(n * 65536u, d); /* all share the low index bits */
        for (size_t k = 0; k < 4096; k++)
            live += expires[k] > now;
        v = ks_replay_check(r, d, 1, 1000000u + (uint64_t)i, now, window);
        if (expires[n] > now) {
            assert_int_equal(v, KS_REPLAY_REPLAY);
        } else if (live >= CAP) {
            /* Full only when the model is full too (FIFO expiry order). */
            assert_int_equal(v, KS_REPLAY_FULL);
        } else {
            assert_int_equal(v, KS_REPLAY_FRESH);
            expires[n] = now + window;
        }
    }
    ks_replay_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_retry_replay),  cmocka_unit_test(test_window_off),
        cmocka_unit_test(test_full_fails_closed),   cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_churn_against_model), cmocka_unit_test(test_action_table),
        cmocka_unit_test(test_decrypt_two_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
