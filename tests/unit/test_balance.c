/* SPDX-License-Identifier: Apache-2.0 */
/* Which key server gets the next attempt (proto/lurk_balance.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "lurk_balance.h"

static void test_prefers_connected_up(void **state)
{
    lurk_balance_view v[3] = { { 0, 0, 0 }, { 1, 1, 0 }, { 1, 0, 5 } };

    (void)state;
    /* Only 2 is connected and up, busy or not. */
    for (unsigned int rr = 0; rr < 6; rr++)
        assert_int_equal(lurk_balance_pick(v, 3, 0, rr), 2);
}

static void test_connecting_before_down(void **state)
{
    lurk_balance_view v[2] = { { 1, 1, 0 }, { 0, 0, 3 } };

    (void)state;
    assert_int_equal(lurk_balance_pick(v, 2, 0, 0), 1);
    assert_int_equal(lurk_balance_pick(v, 2, 0, 1), 1);
}

static void test_all_down_still_tries(void **state)
{
    lurk_balance_view v[2] = { { 0, 1, 0 }, { 0, 1, 0 } };

    (void)state;
    /* Nothing is known to work: rotate, so a recovered server is found. */
    assert_int_equal(lurk_balance_pick(v, 2, 0, 0), 0);
    assert_int_equal(lurk_balance_pick(v, 2, 0, 1), 1);
}

static void test_least_inflight_then_rotation(void **state)
{
    lurk_balance_view busy[3] = { { 1, 0, 4 }, { 1, 0, 1 }, { 1, 0, 2 } };
    lurk_balance_view idle[3] = { { 1, 0, 0 }, { 1, 0, 0 }, { 1, 0, 0 } };
    int seen[3] = { 0, 0, 0 };

    (void)state;
    assert_int_equal(lurk_balance_pick(busy, 3, 0, 0), 1);
    assert_int_equal(lurk_balance_pick(busy, 3, 0, 2), 1);
    for (unsigned int rr = 0; rr < 30; rr++)
        seen[lurk_balance_pick(idle, 3, 0, rr)]++;
    assert_int_equal(seen[0], 10);
    assert_int_equal(seen[1], 10);
    assert_int_equal(seen[2], 10);
}

static void test_skips_tried(void **state)
{
    lurk_balance_view v[3] = { { 1, 0, 0 }, { 1, 0, 0 }, { 0, 1, 0 } };

    (void)state;
    assert_int_equal(lurk_balance_pick(v, 3, 1u << 0, 0), 1);
    assert_int_equal(lurk_balance_pick(v, 3, (1u << 0) | (1u << 1), 0), 2);
    assert_int_equal(lurk_balance_pick(v, 3, 7u, 0), -1);
    assert_int_equal(lurk_balance_pick(v, 0, 0, 0), -1);
}

static void test_backoff(void **state)
{
    int ms = 0;

    (void)state;
    ms = lurk_balance_backoff(ms);
    assert_int_equal(ms, LURK_BALANCE_BACKOFF_MIN_MS);
    ms = lurk_balance_backoff(ms);
    assert_int_equal(ms, 2 * LURK_BALANCE_BACKOFF_MIN_MS);
    for (int i = 0; i < 20; i++)
        ms = lurk_balance_backoff(ms);
    assert_int_equal(ms, LURK_BALANCE_BACKOFF_MAX_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefers_connected_up),
        cmocka_unit_test(test_connecting_before_down),
        cmocka_unit_test(test_all_down_still_tries),
        cmocka_unit_test(test_least_inflight_then_rotation),
        cmocka_unit_test(test_skips_tried),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
