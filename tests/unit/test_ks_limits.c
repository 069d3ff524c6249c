/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token buckets, log-once-per-interval and in-flight admission (ks_limits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ks_limits.h"

#define SEC 1000000ull

static void test_bucket_burst_then_rate(void **state)
{
    ks_bucket b;
    int ok = 0;

    (void)state;
    ks_bucket_init(&b, 10, 5, 1000);
    for (int i = 0; i < 20; i++)
        ok += ks_bucket_take(&b, 1000);
    assert_int_equal(ok, 5);                        /* the burst, at once */
    assert_false(ks_bucket_take(&b, 1000 + 99999)); /* 0.099 s: not yet a token */
    assert_true(ks_bucket_take(&b, 1000 + 100000)); /* 0.1 s at 10/s: one token */
    assert_false(ks_bucket_take(&b, 1000 + 100000));
    /* One second: ten more, never above the burst. */
    ok = 0;
    for (int i = 0; i < 20; i++)
        ok += ks_bucket_take(&b, 1000 + 100000 + SEC);
    assert_int_equal(ok, 5);
}

static void test_bucket_sustained_rate(void **state)
{
    ks_bucket b;
    uint64_t t = 0;
    int ok = 0;

    (void)state;
    ks_bucket_init(&b, 100, 1, 0);
    /* 10 s of a request every millisecond: about rate x 10 + burst pass. */
    for (int i = 0; i < 10000; i++, t += 1000)
        ok += ks_bucket_take(&b, t);
    assert_in_range(ok, 999, 1001);
}

/*
 * Refill timing at a rate that does not divide a second (what the
 * integration tests no longer assert on wall time): a token is due exactly
 * after 1/rate s, and refused takes in between lose none of the credit.
 */
static void test_bucket_refill_timing(void **state)
{
    ks_bucket b;
    uint64_t t0 = 5 * SEC;

    (void)state;
    ks_bucket_init(&b, 3, 1, t0);
    assert_true(ks_bucket_take(&b, t0));           /* the burst of 1 */
    assert_false(ks_bucket_take(&b, t0 + 100000)); /* 0.3 token */
    assert_false(ks_bucket_take(&b, t0 + 200000)); /* 0.6: refused takes keep the credit */
    assert_false(ks_bucket_take(&b, t0 + 333333)); /* 0.999999 */
    assert_true(ks_bucket_take(&b, t0 + 333334));  /* 1.000002: due */
    assert_false(ks_bucket_take(&b, t0 + 333334));
    /* The bucket holds at most its burst (1 token): the 2 micro-tokens
     * over it were not kept, so the next one is due 1/3 s after that take. */
    assert_false(ks_bucket_take(&b, t0 + 666667)); /* 0.999999 */
    assert_true(ks_bucket_take(&b, t0 + 666668));  /* 1.000002 */
    /* it_ops' flood, on a known clock: 41 requests 25 ms apart (1 s) from
     * a full bucket (rate 5, burst 5): the burst, then one per 0.2 s. */
    int ok = 0;

    ks_bucket_init(&b, 5, 5, t0);
    for (int i = 0; i <= 40; i++)
        ok += ks_bucket_take(&b, t0 + (uint64_t)i * 25000);
    assert_int_equal(ok, 10);
}

static void test_bucket_unlimited_and_defaults(void **state)
{
    ks_bucket b;

    (void)state;
    ks_bucket_init(&b, 0, 0, 0);
    for (int i = 0; i < 100000; i++)
        assert_true(ks_bucket_take(&b, 0));
    ks_bucket_init(&b, 3, 0, 0); /* burst 0: the rate */
    assert_int_equal(b.burst, 3);
    ks_bucket_init(&b, KS_LIMITS_MAX_RATE * 4u, 0, 0);
    assert_int_equal(b.rate, KS_LIMITS_MAX_RATE);
}

static void test_bucket_clock_backwards_and_idle(void **state)
{
    ks_bucket b;

    (void)state;
    ks_bucket_init(&b, 1, 1, 10 * SEC);
    assert_true(ks_bucket_take(&b, 10 * SEC));
    assert_false(ks_bucket_take(&b, 5 * SEC)); /* earlier time: no refill */
    /* A year idle refills to the burst only, without overflow. */
    assert_true(ks_bucket_take(&b, 10 * SEC + 365ull * 86400 * SEC));
    assert_false(ks_bucket_take(&b, 10 * SEC + 365ull * 86400 * SEC));
}

static void test_ratelog_once_per_interval(void **state)
{
    ks_ratelog r;
    uint64_t count = 0;

    (void)state;
    ks_ratelog_init(&r, 10 * SEC);
    assert_true(ks_ratelog_hit(&r, 100, &count));
    assert_int_equal(count, 1);
    for (int i = 0; i < 999; i++)
        assert_false(ks_ratelog_hit(&r, 100 + (uint64_t)i * 1000, &count));
    assert_false(ks_ratelog_hit(&r, 100 + 10 * SEC - 1, &count));
    assert_true(ks_ratelog_hit(&r, 100 + 10 * SEC, &count));
    assert_int_equal(count, 1001); /* 999 + the one just before + this one */
    assert_true(ks_ratelog_hit(&r, 100 + 30 * SEC, &count));
    assert_int_equal(count, 1);
}

static void test_admit(void **state)
{
    (void)state;
    assert_int_equal(ks_limits_admit(0, 4, 0, 0, 0, 2), KS_ADMIT_OK);
    assert_int_equal(ks_limits_admit(3, 4, 3, 0, 1, 2), KS_ADMIT_OK);
    assert_int_equal(ks_limits_admit(4, 4, 0, 0, 0, 2), KS_ADMIT_TOTAL);
    assert_int_equal(ks_limits_admit(1, 4, 1, 0, 2, 2), KS_ADMIT_CONNECTION);
    assert_int_equal(ks_limits_admit(100, 0, 100, 0, 100, 0), KS_ADMIT_OK);
    assert_int_equal(ks_limits_admit(5, 4, 5, 3, 5, 2), KS_ADMIT_TOTAL); /* total first */
    /* The edge group's own limit, between the total and the connection's. */
    assert_int_equal(ks_limits_admit(2, 4, 2, 3, 0, 2), KS_ADMIT_OK);
    assert_int_equal(ks_limits_admit(3, 4, 3, 3, 0, 2), KS_ADMIT_GROUP);
    assert_int_equal(ks_limits_admit(3, 4, 3, 3, 2, 2), KS_ADMIT_GROUP); /* group before conn */
    assert_int_equal(ks_limits_admit(4, 4, 3, 3, 2, 2), KS_ADMIT_TOTAL);
    assert_int_equal(ks_limits_admit(1, 0, 9, 0, 1, 2), KS_ADMIT_OK); /* 0: no group limit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_burst_then_rate),
        cmocka_unit_test(test_bucket_sustained_rate),
        cmocka_unit_test(test_bucket_refill_timing),
        cmocka_unit_test(test_bucket_unlimited_and_defaults),
        cmocka_unit_test(test_bucket_clock_backwards_and_idle),
        cmocka_unit_test(test_ratelog_once_per_interval),
        cmocka_unit_test(test_admit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
