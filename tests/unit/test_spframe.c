/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SP framing tracker (proto/lurk_spframe.c): the TLS engine seals a
 * record where it says a message ends, so a wrong answer either holds a
 * message back (the peer waits forever) or splits it into more records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lurk_spframe.h"

static const uint8_t nego_req[8] = { 0, 'S', 'P', 0, 0x30, 0x00, 0, 0 }; /* req0 */

static void be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

/* nng's pieces: the header alone, then length, message header, body. */
static void test_pieces(void **state)
{
    lurk_spframe t = { 0 };
    uint8_t len[8], hdr[4] = { 0x80, 0, 0, 1 }, body[200];

    (void)state;
    memset(body, 0x5a, sizeof(body));
    assert_int_equal(lurk_spframe_feed(&t, nego_req, sizeof(nego_req)), 1);
    for (int m = 0; m < 3; m++) {
        be64(len, sizeof(hdr) + sizeof(body));
        assert_int_equal(lurk_spframe_feed(&t, len, 8), 0);
        assert_int_equal(lurk_spframe_feed(&t, hdr, sizeof(hdr)), 0);
        assert_int_equal(lurk_spframe_feed(&t, body, sizeof(body)), 1);
        assert_int_equal(t.state, LURK_SP_LEN);
    }
}

/* Any split of the same stream: the ends fall on the same bytes. */
static void test_byte_by_byte(void **state)
{
    uint8_t stream[8 + 2 * (8 + 5) + 8];
    size_t off = 0, ends[8], n_ends = 0;
    lurk_spframe t = { 0 };

    (void)state;
    memcpy(stream, nego_req, 8);
    off = 8;
    for (int m = 0; m < 2; m++) {
        be64(stream + off, 5);
        memset(stream + off + 8, m, 5);
        off += 13;
    }
    be64(stream + off, 0); /* an empty message ends at its length */
    off += 8;
    assert_int_equal(off, sizeof(stream));
    for (size_t i = 0; i < off; i++)
        if (lurk_spframe_feed(&t, stream + i, 1))
            ends[n_ends++] = i + 1;
    assert_int_equal(n_ends, 4);
    assert_int_equal(ends[0], 8);
    assert_int_equal(ends[1], 21);
    assert_int_equal(ends[2], 34);
    assert_int_equal(ends[3], 42);

    /* all at once: it ends where the last message ends */
    memset(&t, 0, sizeof(t));
    assert_int_equal(lurk_spframe_feed(&t, stream, off), 1);
    memset(&t, 0, sizeof(t));
    assert_int_equal(lurk_spframe_feed(&t, stream, off - 3), 0);
}

/* A large body in pieces: only its last byte ends the message. */
static void test_long_body(void **state)
{
    lurk_spframe t = { 0 };
    uint8_t len[8], chunk[1000] = { 0 };

    (void)state;
    lurk_spframe_feed(&t, nego_req, 8);
    be64(len, 100000);
    assert_int_equal(lurk_spframe_feed(&t, len, 8), 0);
    for (int i = 0; i < 99; i++)
        assert_int_equal(lurk_spframe_feed(&t, chunk, sizeof(chunk)), 0);
    assert_int_equal(t.need, 1000);
    assert_int_equal(lurk_spframe_feed(&t, chunk, sizeof(chunk)), 1);
}

/* Not SP: said at the first byte that differs, and for good. */
static void test_not_sp(void **state)
{
    static const uint8_t http[] = "GET / HTTP/1.1\r\n";
    static const uint8_t almost[8] = { 0, 'S', 'P', 1, 0, 0, 0, 0 };
    lurk_spframe t = { 0 };

    (void)state;
    assert_int_equal(lurk_spframe_feed(&t, http, 1), 1);
    assert_int_equal(t.state, LURK_SP_OFF);
    assert_int_equal(lurk_spframe_feed(&t, http + 1, 3), 1);

    memset(&t, 0, sizeof(t));
    assert_int_equal(lurk_spframe_feed(&t, almost, 3), 0);
    assert_int_equal(lurk_spframe_feed(&t, almost + 3, 5), 1);
    assert_int_equal(t.state, LURK_SP_OFF);

    /* the protocol number may be anything; bytes 6 and 7 may not */
    memset(&t, 0, sizeof(t));
    assert_int_equal(lurk_spframe_feed(&t, (const uint8_t *)"\0SP\0\xff\xff\0\1", 8), 1);
    assert_int_equal(t.state, LURK_SP_OFF);
    memset(&t, 0, sizeof(t));
    assert_int_equal(lurk_spframe_feed(&t, (const uint8_t *)"\0SP\0\xff\xff\0\0", 8), 1);
    assert_int_equal(t.state, LURK_SP_LEN);
}

/* The largest length there is: counted down, no overflow. */
static void test_huge_length(void **state)
{
    lurk_spframe t = { 0 };
    uint8_t len[8];

    (void)state;
    lurk_spframe_feed(&t, nego_req, 8);
    be64(len, UINT64_MAX);
    assert_int_equal(lurk_spframe_feed(&t, len, 8), 0);
    assert_int_equal(t.state, LURK_SP_BODY);
    assert_true(t.need == UINT64_MAX);
    assert_int_equal(lurk_spframe_feed(&t, len, 8), 0);
    assert_true(t.need == UINT64_MAX - 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pieces),      cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_long_body),   cmocka_unit_test(test_not_sp),
        cmocka_unit_test(test_huge_length),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
