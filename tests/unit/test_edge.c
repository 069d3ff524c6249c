/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The edge's settings (proto/lurk_edge.c): the one reading of the
 * provider's openssl.cnf section that the provider and lurkctl share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lurk_edge.h"
#include "lurk_url.h"

static void test_bool(void **state)
{
    static const char *const yes[] = { "yes", "YES", "True", "on", "1" };
    static const char *const no[] = { "no", "No", "false", "OFF", "0" };
    static const char *const bad[] = { "", "y", "2", "maybe", "yes ", "enabled" };
    int v;

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        v = -1;
        assert_int_equal(lurk_bool_parse(yes[i], &v), 0);
        assert_int_equal(v, 1);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        v = -1;
        assert_int_equal(lurk_bool_parse(no[i], &v), 0);
        assert_int_equal(v, 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lurk_bool_parse(bad[i], &v), -1);
    assert_int_equal(lurk_bool_parse(NULL, &v), -1);
}

/* Every field of lurk_edge_text has a name, once, and a slot of its own. */
static void test_fields(void **state)
{
    lurk_edge_text t;
    size_t n;
    const lurk_edge_field *f = lurk_edge_fields(&n);

    (void)state;
    assert_int_equal(n, sizeof(t) / sizeof(const char *));
    memset(&t, 0, sizeof(t));
    for (size_t i = 0; i < n; i++) {
        const char **slot = lurk_edge_slot(&t, &f[i]);

        assert_null(*slot);
        *slot = f[i].name;
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(f[i].name, f[j].name);
    }
    assert_string_equal(t.servers, "servers");
    assert_string_equal(t.tls_key, "tls_key");
    assert_string_equal(t.attempt_timeout_ms, "attempt_timeout_ms");
    assert_string_equal(t.pubkey_helper, "pubkey_helper");
    assert_string_equal(t.tls_min_version, "tls_min_version");
    assert_string_equal(t.tls_providers, "tls_providers");
}

static void test_defaults(void **state)
{
    lurk_edge_text t;
    lurk_edge_values v;
    char err[256];

    (void)state;
    memset(&t, 0, sizeof(t));
    assert_int_equal(lurk_edge_parse(&t, &v, err, sizeof(err)), 0);
    assert_null(v.servers);
    assert_int_equal(v.timeout_ms, LURK_EDGE_DEFAULT_TIMEOUT_MS);
    assert_int_equal(v.attempt_timeout_ms, 0);
    assert_int_equal(v.keepalive_ms, LURK_EDGE_DEFAULT_KEEPALIVE_MS);
    assert_false(v.allow_insecure);
    assert_false(v.verify_signatures);
    assert_string_equal(v.tls_min_version, "1.3");
}

static void test_values(void **state)
{
    lurk_edge_text t;
    lurk_edge_values v;
    char err[256];

    (void)state;
    memset(&t, 0, sizeof(t));
    t.servers = "tls+tcp://a.example:7443, tls+tcp://b.example:7443";
    t.timeout_ms = "1500";
    t.attempt_timeout_ms = "700";
    t.keepalive_ms = "0";
    t.verify_signatures = "Yes";
    t.tls_min_version = "1.2";
    t.tls_providers = "tpm2 default"; /* names, checked when they are loaded */
    assert_int_equal(lurk_edge_parse(&t, &v, err, sizeof(err)), 0);
    assert_string_equal(v.tls_min_version, "1.2");
    assert_string_equal(v.servers[0], "tls+tcp://a.example:7443");
    assert_string_equal(v.servers[1], "tls+tcp://b.example:7443");
    assert_null(v.servers[2]);
    assert_int_equal(v.timeout_ms, 1500);
    assert_int_equal(v.attempt_timeout_ms, 700);
    assert_int_equal(v.keepalive_ms, 0);
    assert_true(v.verify_signatures);
    lurk_url_list_free(v.servers);

    /* Cleartext only when the section says so. */
    t.servers = "tcp://127.0.0.1:7000";
    assert_int_equal(lurk_edge_parse(&t, &v, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "servers:"));
    assert_non_null(strstr(err, "allow_insecure"));
    t.allow_insecure = "on";
    assert_int_equal(lurk_edge_parse(&t, &v, err, sizeof(err)), 0);
    assert_true(v.allow_insecure);
    lurk_url_list_free(v.servers);
}

/* Each bad value is named with what the setting takes. */
static void test_refused(void **state)
{
    static const struct {
        size_t offset;
        const char *value, *says;
    } bad[] = {
        { offsetof(lurk_edge_text, timeout_ms), "5s",
          "timeout_ms = \"5s\": give milliseconds, 10 to 600000" },
        { offsetof(lurk_edge_text, timeout_ms), "9", "timeout_ms = \"9\"" },
        { offsetof(lurk_edge_text, timeout_ms), "600001", "timeout_ms = \"600001\"" },
        { offsetof(lurk_edge_text, attempt_timeout_ms), "", "attempt_timeout_ms = \"\"" },
        { offsetof(lurk_edge_text, keepalive_ms), "-1",
          "keepalive_ms = \"-1\": give milliseconds, 0 to 3600000" },
        { offsetof(lurk_edge_text, verify_signatures), "maybe",
          "verify_signatures = \"maybe\": give yes or no" },
        { offsetof(lurk_edge_text, allow_insecure), "2", "allow_insecure = \"2\": give yes or no" },
        { offsetof(lurk_edge_text, servers), "https://a.example",
          "servers: \"https://a.example\" is not a LURK URL" },
        { offsetof(lurk_edge_text, servers), " , ", "servers: no URL given" },
        { offsetof(lurk_edge_text, tls_min_version), "1.1",
          "tls_min_version = \"1.1\": give 1.2 or 1.3" },
        { offsetof(lurk_edge_text, tls_min_version), "TLSv1.3", "tls_min_version = \"TLSv1.3\"" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lurk_edge_text t;
        lurk_edge_values v;
        char err[256] = "";

        memset(&t, 0, sizeof(t));
        *(const char **)(void *)((char *)&t + bad[i].offset) = bad[i].value;
        assert_int_equal(lurk_edge_parse(&t, &v, err, sizeof(err)), -1);
        if (strstr(err, bad[i].says) == NULL)
            fail_msg("\"%s\" does not say \"%s\"", err, bad[i].says);
        assert_null(v.servers);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bool),     cmocka_unit_test(test_fields),
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_values),
        cmocka_unit_test(test_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
