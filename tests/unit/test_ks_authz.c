/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key grants of edge groups (ks_authz).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ks_authz.h"

static void test_parse_and_permit(void **state)
{
    ks_authz_grant g;
    char bad[128];

    (void)state;
    assert_int_equal(ks_authz_grant_parse(" www, api  rsa-2048 ", &g, bad, sizeof(bad)), 0);
    assert_false(g.all);
    assert_int_equal(g.n, 3);
    assert_true(ks_authz_permits(&g, "www"));
    assert_true(ks_authz_permits(&g, "api"));
    assert_true(ks_authz_permits(&g, "rsa-2048"));
    assert_false(ks_authz_permits(&g, "ww"));
    assert_false(ks_authz_permits(&g, "wwww"));
    assert_false(ks_authz_permits(&g, ""));
    assert_false(ks_authz_permits(&g, NULL));
    assert_false(ks_authz_permits(NULL, "www"));
    ks_authz_grant_clear(&g);
    assert_false(ks_authz_permits(&g, "www"));
}

static void test_all(void **state)
{
    ks_authz_grant g;

    (void)state;
    assert_int_equal(ks_authz_grant_parse("*", &g, NULL, 0), 0);
    assert_true(g.all);
    assert_true(ks_authz_permits(&g, "anything"));
    assert_false(ks_authz_permits(&g, NULL));
    ks_authz_grant_clear(&g);
    ks_authz_grant_all(&g);
    assert_true(ks_authz_permits(&g, "x"));
}

static void test_refusals(void **state)
{
    ks_authz_grant g;
    char bad[128];

    (void)state;
    assert_int_equal(ks_authz_grant_parse("", &g, bad, sizeof(bad)), -1);
    assert_string_equal(bad, "no key id");
    assert_int_equal(ks_authz_grant_parse(" , ", &g, bad, sizeof(bad)), -1);
    assert_int_equal(ks_authz_grant_parse("www bad/id", &g, bad, sizeof(bad)), -1);
    assert_string_equal(bad, "\"bad/id\" is not a valid key id");
    assert_int_equal(ks_authz_grant_parse("a b a", &g, bad, sizeof(bad)), -1);
    assert_string_equal(bad, "\"a\" is listed twice");
    assert_int_equal(ks_authz_grant_parse("* www", &g, bad, sizeof(bad)), -1);
    assert_int_equal(ks_authz_grant_parse(NULL, &g, bad, sizeof(bad)), -1);
    assert_null(g.ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_permit),
        cmocka_unit_test(test_all),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
