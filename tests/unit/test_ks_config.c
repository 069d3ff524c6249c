/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the key server configuration parser (keyserver/ks_config.c):
 * what a valid file yields, and that each mistake an operator can make is
 * refused with a message naming the setting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ks_config.h"
#include "ks_log.h"

#define TLS_SETTINGS                              \
    "tls_cert = keyserver.crt\n"                  \
    "tls_key = /etc/lurk/private/keyserver.key\n" \
    "client_ca = edge-ca.pem\n"

static ks_config *parse_ok(const char *text)
{
    ks_config *cfg = NULL;
    char err[512] = "";

    if (ks_config_parse_text(text, strlen(text), "test.conf", "/etc/lurk", &cfg, err, sizeof(err))
        != 0) {
        print_error("unexpected refusal: %s\n", err);
        fail();
    }
    assert_non_null(cfg);
    return cfg;
}

/* Refused, and the message contains `needle`. */
static void parse_refused(const char *text, const char *needle)
{
    ks_config *cfg = NULL;
    char err[512] = "";

    assert_int_equal(
        ks_config_parse_text(text, strlen(text), "test.conf", "/etc/lurk", &cfg, err, sizeof(err)),
        -1);
    assert_null(cfg);
    if (strstr(err, needle) == NULL) {
        print_error("message \"%s\" lacks \"%s\"\n", err, needle);
        fail();
    }
    /* Every message names the file it is about. */
    assert_true(strncmp(err, "test.conf", 9) == 0);
}

static void test_valid(void **state)
{
    ks_config *cfg;

    (void)state;
    cfg = parse_ok("# a comment\n"
                   "[keyserver]\n"
                   "listen = tls+tcp://127.0.0.1:7443, ipc:///run/lurk/ks.sock\n" TLS_SETTINGS
                   "client_crl = crl/edges.pem\n"
                   "server_id = ks-1\n"
                   "\n"
                   "[keys]\n"
                   "rsa2048 = keys/rsa2048.pem   # relative to the config\n"
                   "ec.p256 = /srv/keys/ec.pem\n"
                   "ed_1 = ./keys/ed.pem\n"
                   "hsm-1 = handle:0x81000001\n"
                   "token = \"pkcs11:token=edge;object=rsa\"\n");
    assert_int_equal(cfg->n_listen, 2);
    assert_string_equal(cfg->listen[0], "tls+tcp://127.0.0.1:7443");
    assert_string_equal(cfg->listen[1], "ipc:///run/lurk/ks.sock");
    assert_null(cfg->listen[2]);
    assert_true(cfg->has_tls);
    assert_false(cfg->allow_insecure);
    assert_string_equal(cfg->tls_cert, "/etc/lurk/keyserver.crt");
    assert_string_equal(cfg->tls_key, "/etc/lurk/private/keyserver.key");
    assert_string_equal(cfg->client_ca, "/etc/lurk/edge-ca.pem");
    assert_string_equal(cfg->client_crl, "/etc/lurk/crl/edges.pem");
    assert_string_equal(cfg->server_id, "ks-1");
    assert_string_equal(cfg->keys_section, "keys");

    assert_int_equal(cfg->n_keys, 5);
    assert_string_equal(cfg->keys[0].id, "rsa2048");
    assert_string_equal(cfg->keys[0].uri, "/etc/lurk/keys/rsa2048.pem");
    assert_true(cfg->keys[0].is_path);
    assert_int_equal(cfg->keys[0].line, 11);
    assert_string_equal(cfg->keys[1].id, "ec.p256");
    assert_string_equal(cfg->keys[1].uri, "/srv/keys/ec.pem");
    assert_true(cfg->keys[1].is_path);
    assert_string_equal(cfg->keys[2].id, "ed_1");
    assert_string_equal(cfg->keys[2].uri, "/etc/lurk/keys/ed.pem");
    assert_true(cfg->keys[2].is_path);
    assert_string_equal(cfg->keys[3].id, "hsm-1");
    assert_string_equal(cfg->keys[3].uri, "handle:0x81000001");
    assert_false(cfg->keys[3].is_path);
    assert_string_equal(cfg->keys[4].uri, "pkcs11:token=edge;object=rsa");
    assert_false(cfg->keys[4].is_path);
    ks_config_free(cfg);
}

static void test_defaults(void **state)
{
    ks_config *cfg;
    ks_policy def = ks_policy_default();
    unsigned char zero[32] = { 0 };

    (void)state;
    cfg = parse_ok("[keyserver]\nlisten = ipc:///tmp/ks.sock\n[keys]\nk = k.pem\n");
    assert_false(cfg->has_tls);
    assert_null(cfg->tls_cert);
    assert_null(cfg->client_crl);
    assert_null(cfg->server_id);
    /* workers = 0 (or absent): 4 per online CPU, never fewer than 4. */
    assert_int_equal(cfg->workers_set, 0);
    assert_true(cfg->workers >= 4);
    assert_true(cfg->workers <= KS_CONFIG_MAX_WORKERS);
    assert_int_equal(cfg->workers % 4, 0);
    assert_int_equal(cfg->policy.allow_tls13, def.allow_tls13);
    assert_int_equal(cfg->policy.allow_tls12, def.allow_tls12);
    assert_int_equal(cfg->policy.allow_ffdhe, def.allow_ffdhe);
    /* RSA key exchange is opt-in (docs/security.md). */
    assert_false(cfg->policy.allow_decrypt);
    /* So are SHA-1 and SHA-224 signatures. */
    assert_false(cfg->policy.allow_legacy_hashes);
    assert_int_equal(cfg->policy.groups, def.groups);
    assert_memory_not_equal(cfg->text_sha256, zero, sizeof(zero));
    ks_config_free(cfg);

    cfg = parse_ok("[keyserver]\nlisten = ipc:///tmp/ks.sock\nworkers = 0\n[keys]\nk = k.pem\n");
    assert_int_equal(cfg->workers_set, 0);
    assert_true(cfg->workers >= 4);
    ks_config_free(cfg);

    cfg = parse_ok("[keyserver]\nlisten = ipc:///tmp/ks.sock\nworkers = 3\n[keys]\nk = k.pem\n");
    assert_int_equal(cfg->workers_set, 3);
    assert_int_equal(cfg->workers, 3);
    ks_config_free(cfg);
}

static void test_policy_knobs(void **state)
{
    ks_config *cfg;

    (void)state;
    cfg = parse_ok("[keyserver]\nlisten = ipc:///tmp/ks.sock\n"
                   "tls13 = yes\ntls12 = No\nffdhe = off\nrsa_decrypt = false\n"
                   "[keys]\nk = k.pem\n");
    assert_true(cfg->policy.allow_tls13);
    assert_false(cfg->policy.allow_tls12);
    assert_false(cfg->policy.allow_ffdhe);
    assert_false(cfg->policy.allow_decrypt);
    ks_config_free(cfg);

    cfg = parse_ok("[keyserver]\nlisten = ipc:///tmp/ks.sock\n"
                   "tls13 = 0\ntls12 = TRUE\nffdhe = on\nrsa_decrypt = 1\nlegacy_hashes = yes\n"
                   "[keys]\nk = k.pem\n");
    assert_true(cfg->policy.allow_legacy_hashes);
    assert_false(cfg->policy.allow_tls13);
    assert_true(cfg->policy.allow_tls12);
    assert_true(cfg->policy.allow_ffdhe);
    assert_true(cfg->policy.allow_decrypt);
    ks_config_free(cfg);

    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\nrsa_decrypt = maybe\n"
                  "[keys]\nk = k.pem\n",
                  ":3: rsa_decrypt: \"maybe\" is not yes or no");
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\nlegacy_hashes = sha1\n"
                  "[keys]\nk = k.pem\n",
                  ":3: legacy_hashes: \"sha1\" is not yes or no");
}

static void test_keys_section_name(void **state)
{
    ks_config *cfg;

    (void)state;
    cfg = parse_ok("[keyserver]\nlisten = ipc:///tmp/ks.sock\nkeys = edge_keys\n"
                   "[keys]\nignored = x.pem\n"
                   "[edge_keys]\nmine = m.pem\n");
    assert_string_equal(cfg->keys_section, "edge_keys");
    assert_int_equal(cfg->n_keys, 1);
    assert_string_equal(cfg->keys[0].id, "mine");
    ks_config_free(cfg);
}

static void test_insecure_tcp_allowed(void **state)
{
    ks_config *cfg;

    (void)state;
    cfg = parse_ok("[keyserver]\nlisten = tcp://127.0.0.1:7000\nallow_insecure = yes\n"
                   "[keys]\nk = k.pem\n");
    assert_int_equal(cfg->n_listen, 1);
    assert_true(cfg->allow_insecure);
    assert_false(cfg->has_tls);
    ks_config_free(cfg);
}

static void test_refuse_bad_url(void **state)
{
    (void)state;
    parse_refused("[keyserver]\nlisten = foo://x\n[keys]\nk = k.pem\n",
                  "test.conf:2: listen: \"foo://x\" is not a LURK URL");
    parse_refused("[keyserver]\nlisten = ipc:///ok.sock http://x:1\n[keys]\nk = k.pem\n",
                  "listen: \"http://x:1\" is not a LURK URL");
    parse_refused("[keyserver]\nlisten =\n[keys]\nk = k.pem\n", "listen: required");
    parse_refused("[keyserver]\nworkers = 4\n[keys]\nk = k.pem\n", "listen: required");
}

static void test_refuse_tcp_without_insecure(void **state)
{
    (void)state;
    parse_refused("[keyserver]\nlisten = tcp://127.0.0.1:7000\n[keys]\nk = k.pem\n",
                  "listen: \"tcp://127.0.0.1:7000\" is cleartext");
    parse_refused("[keyserver]\nlisten = tcp://127.0.0.1:7000\nallow_insecure = no\n"
                  "[keys]\nk = k.pem\n",
                  "allow_insecure = yes");
}

static void test_refuse_missing_tls_files(void **state)
{
    (void)state;
    parse_refused("[keyserver]\nlisten = tls+tcp://0.0.0.0:7443\n"
                  "tls_cert = c.pem\ntls_key = k.pem\n[keys]\nk = k.pem\n",
                  "client_ca: required for tls+tcp:// listeners");
    parse_refused("[keyserver]\nlisten = tls+tcp://0.0.0.0:7443\n"
                  "tls_key = k.pem\nclient_ca = ca.pem\n[keys]\nk = k.pem\n",
                  "tls_cert: required for tls+tcp:// listeners");
    parse_refused("[keyserver]\nlisten = ipc:///a.sock tls+tcp://0.0.0.0:7443\n"
                  "tls_cert = c.pem\nclient_ca = ca.pem\n[keys]\nk = k.pem\n",
                  "tls_key: required for tls+tcp:// listeners");
}

static void test_refuse_duplicate_key_id(void **state)
{
    (void)state;
    /* NCONF alone would keep only the second line. */
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\n"
                  "[keys]\nrsa = a.pem\nec = b.pem\nrsa = c.pem\n",
                  "test.conf:6: keys: duplicate key id \"rsa\" (first on line 4)");
    /* The same section opened twice is still one section. */
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\n"
                  "[keys]\nrsa = a.pem\n[keyserver]\nworkers = 4\n[keys]\nrsa=b.pem\n",
                  "duplicate key id \"rsa\"");
    /* The section::name form reaches the same section. */
    parse_refused("keys::rsa = x.pem\n[keyserver]\nlisten = ipc:///tmp/ks.sock\n"
                  "[keys]\nrsa = a.pem\n",
                  "duplicate key id \"rsa\"");
}

static void test_refuse_duplicate_setting(void **state)
{
    (void)state;
    parse_refused("[keyserver]\nlisten = ipc:///a.sock\nlisten = ipc:///b.sock\n"
                  "[keys]\nk = k.pem\n",
                  ":3: listen: set twice in [keyserver] (first on line 2)");
}

static void test_refuse_bad_key_id(void **state)
{
    char text[512];

    (void)state;
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\n[keys]\nbad+id = k.pem\n",
                  ":4: keys: \"bad+id\" is not a valid key id");
    /* 65 characters: one over LURK_MAX_KEY_ID. */
    snprintf(text, sizeof(text), "[keyserver]\nlisten = ipc:///tmp/ks.sock\n[keys]\n%s = k.pem\n",
             "a123456789b123456789c123456789d123456789e123456789f123456789g1234");
    parse_refused(text, "is not a valid key id");
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\n[keys]\nempty =\n",
                  "key id \"empty\" has no file or URI");
}

static void test_refuse_no_keys(void **state)
{
    (void)state;
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\n",
                  "keys: no keys: section [keys] is missing");
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\n[keys]\n# none yet\n",
                  "keys: no keys: section [keys] is");
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\nkeys = other\n[keys]\nk = k.pem\n",
                  "section [other] is missing");
}

static void test_refuse_structure(void **state)
{
    (void)state;
    parse_refused("listen = ipc:///tmp/ks.sock\n[keys]\nk = k.pem\n", "no [keyserver] section");
    /* A [default] value is not inherited by [keyserver] as NCONF would. */
    parse_refused("listen = ipc:///tmp/ks.sock\n[keyserver]\nworkers = 2\n[keys]\nk = k.pem\n",
                  "listen: required");
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\n.include /etc/other.cnf\n"
                  "[keys]\nk = k.pem\n",
                  ":3: .include is not supported");
    parse_refused("[keyserver\nlisten = ipc:///tmp/ks.sock\n", "test.conf:1: ");
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\nworkers = many\n[keys]\nk = k.pem\n",
                  ":3: workers: \"many\" is not a number");
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\nworkers = 100000\n[keys]\nk = k.pem\n",
                  "workers:");
    parse_refused("[keyserver]\nlisten = ipc:///tmp/ks.sock\nkeys = keyserver\n",
                  "keys: must name a section other than [keyserver]");
}

static void test_continuation_lines(void **state)
{
    ks_config *cfg;

    (void)state;
    cfg = parse_ok("[keyserver]\nlisten = ipc:///a.sock \\\n  ipc:///b.sock\n"
                   "[keys]\na = a.pem\nb = \\\nb.pem\nc = c.pem\n");
    assert_int_equal(cfg->n_listen, 2);
    assert_int_equal(cfg->n_keys, 3);
    assert_int_equal(cfg->keys[1].line, 6);
    assert_int_equal(cfg->keys[2].line, 8);
    ks_config_free(cfg);
}

static void test_source_is_path(void **state)
{
    (void)state;
    assert_true(ks_config_source_is_path("keys/rsa.pem"));
    assert_true(ks_config_source_is_path("/etc/lurk/rsa.pem"));
    assert_true(ks_config_source_is_path("./rsa:1.pem"));
    assert_true(ks_config_source_is_path("rsa.pem"));
    assert_true(ks_config_source_is_path("file:///etc/lurk/rsa.pem"));
    assert_true(ks_config_source_is_path("dir/with:colon.pem"));
    assert_false(ks_config_source_is_path("handle:0x81000001"));
    assert_false(ks_config_source_is_path("pkcs11:token=a;object=b"));
    assert_false(ks_config_source_is_path("lurk:rsa"));
}

static void test_file_uri_resolved(void **state)
{
    ks_config *cfg;

    (void)state;
    cfg = parse_ok("[keyserver]\nlisten = ipc:///tmp/ks.sock\n"
                   "[keys]\na = file:///srv/a.pem\nb = file:b.pem\n");
    assert_string_equal(cfg->keys[0].uri, "/srv/a.pem");
    assert_true(cfg->keys[0].is_path);
    assert_string_equal(cfg->keys[1].uri, "/etc/lurk/b.pem");
    ks_config_free(cfg);
}

static void test_parse_bio(void **state)
{
    static const char text[] = "[keyserver]\nlisten = ipc:///tmp/ks.sock\n[keys]\nk = k.pem\n";
    BIO *bio = BIO_new_mem_buf(text, -1);
    ks_config *cfg = NULL, *again = NULL;
    char err[256];

    (void)state;
    assert_non_null(bio);
    assert_int_equal(ks_config_parse_bio(bio, "mem", NULL, &cfg, err, sizeof(err)), 0);
    BIO_free(bio);
    /* No basedir: relative paths stay relative. */
    assert_string_equal(cfg->keys[0].uri, "k.pem");
    assert_string_equal(cfg->name, "mem");
    /* The text digest (part of the config epoch) depends on the text only. */
    again = parse_ok(text);
    assert_memory_equal(cfg->text_sha256, again->text_sha256, sizeof(cfg->text_sha256));
    ks_config_free(again);
    again = parse_ok("[keyserver]\nlisten = ipc:///tmp/ks.sock\n[keys]\nk = k2.pem\n");
    assert_memory_not_equal(cfg->text_sha256, again->text_sha256, sizeof(cfg->text_sha256));
    ks_config_free(again);
    ks_config_free(cfg);
}

static void test_load_file(void **state)
{
    char dir[] = "/tmp/test_ks_config.XXXXXX";
    char path[512], err[512] = "";
    ks_config *cfg = NULL;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ks.conf", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[keyserver]\nlisten = ipc:///tmp/ks.sock\n[keys]\nk = keys/k.pem\n", f);
    fclose(f);
    assert_int_equal(ks_config_load(path, &cfg, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/keys/k.pem", dir);
    assert_string_equal(cfg->keys[0].uri, path);
    ks_config_free(cfg);
    snprintf(path, sizeof(path), "%s/ks.conf", dir);
    unlink(path);
    rmdir(dir);

    assert_int_equal(ks_config_load("/nonexistent/ks.conf", &cfg, err, sizeof(err)), -1);
    assert_null(cfg);
    assert_non_null(strstr(err, "/nonexistent/ks.conf: cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_policy_knobs),
        cmocka_unit_test(test_keys_section_name),
        cmocka_unit_test(test_insecure_tcp_allowed),
        cmocka_unit_test(test_refuse_bad_url),
        cmocka_unit_test(test_refuse_tcp_without_insecure),
        cmocka_unit_test(test_refuse_missing_tls_files),
        cmocka_unit_test(test_refuse_duplicate_key_id),
        cmocka_unit_test(test_refuse_duplicate_setting),
        cmocka_unit_test(test_refuse_bad_key_id),
        cmocka_unit_test(test_refuse_no_keys),
        cmocka_unit_test(test_refuse_structure),
        cmocka_unit_test(test_continuation_lines),
        cmocka_unit_test(test_source_is_path),
        cmocka_unit_test(test_file_uri_resolved),
        cmocka_unit_test(test_parse_bio),
        cmocka_unit_test(test_load_file),
    };

    /* Warnings about ignored settings are expected here; keep the output readable. */
    ks_log_set_level(KS_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
