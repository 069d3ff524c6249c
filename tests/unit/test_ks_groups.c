/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Edge groups and operational settings in the configuration, and the
 * authorization and gate they drive in ks_ops (with real keys).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ks_config.h"
#include "ks_keys.h"
#include "ks_log.h"
#include "ks_ops.h"

static ks_config *parse(const char *text)
{
    ks_config *cfg = NULL;
    char err[512];

    if (ks_config_parse_text(text, strlen(text), "t.cnf", "/etc/lurk", &cfg, err, sizeof(err))
        != 0) {
        print_error("unexpected refusal: %s\n", err);
        fail();
    }
    return cfg;
}

static void refuse(const char *text, const char *expect)
{
    ks_config *cfg = NULL;
    char err[512] = "";

    assert_int_equal(
        ks_config_parse_text(text, strlen(text), "t.cnf", "/etc/lurk", &cfg, err, sizeof(err)), -1);
    assert_null(cfg);
    if (strstr(err, expect) == NULL) {
        print_error("error \"%s\" lacks \"%s\"\n", err, expect);
        fail();
    }
}

#define MAIN "[keyserver]\ntls_cert = ks.crt\ntls_key = ks.key\n"
#define KEYS "[keys]\nwww = k/www.pem\napi = k/api.pem\nold = k/old.pem\n"

static void test_single_form_is_one_group(void **state)
{
    ks_config *cfg = parse("[keyserver]\nlisten = tls+tcp://127.0.0.1:7443\n"
                           "tls_cert = a\ntls_key = b\nclient_ca = ca.pem\nclient_crl = c.crl\n"
                           "rate = 50\nburst = 80\n" KEYS);

    (void)state;
    assert_int_equal(cfg->n_groups, 1);
    assert_string_equal(cfg->groups[0].name, "default");
    assert_true(cfg->groups[0].implicit);
    assert_true(cfg->groups[0].grant.all);
    assert_string_equal(cfg->groups[0].client_ca, "/etc/lurk/ca.pem");
    assert_string_equal(cfg->groups[0].client_crl, "/etc/lurk/c.crl");
    assert_int_equal(cfg->groups[0].rate, 50);
    assert_int_equal(cfg->groups[0].burst, 80);
    assert_string_equal(cfg->groups[0].listen[0], "tls+tcp://127.0.0.1:7443");
    /* Defaults of the operational settings. */
    assert_int_equal(cfg->replay_window, KS_CONFIG_DEFAULT_REPLAY_WINDOW);
    assert_int_equal(cfg->replay_cache, KS_CONFIG_DEFAULT_REPLAY_CACHE);
    assert_int_equal(cfg->max_message, LURK_MAX_MESSAGE);
    assert_int_equal(cfg->max_inflight, 2 * cfg->workers);
    assert_int_equal(cfg->max_inflight_per_conn, cfg->workers);
    assert_int_equal(cfg->max_connections, KS_CONFIG_DEFAULT_MAX_CONNECTIONS);
    assert_null(cfg->audit_log);
    assert_null(cfg->metrics_listen);
    assert_int_equal(cfg->keys[0].rate, 0);
    ks_config_free(cfg);
}

static void test_edge_groups(void **state)
{
    ks_config *cfg = parse(MAIN "audit_log = /var/log/lurk/audit.log\n"
                                "metrics_listen = http://127.0.0.1:9464\nkey_rate = 100\n"
                                "replay_window = 30\nmax_inflight = 7\nmax_connections = 9\n"
                                "[edge.cdn1]\nlisten = tls+tcp://0.0.0.0:7443\n"
                                "client_ca = cdn1-ca.pem\nclient_crl = cdn1.crl\n"
                                "keys = www api\nrate = 10\nburst = 20\nmax_inflight = 3\n"
                                "[edge.partner_2]\nlisten = tls+tcp://0.0.0.0:7444 ipc:///run/x\n"
                                "client_ca = p2-ca.pem\nkeys = *\n" KEYS
                                "[key_limits]\nwww = 5 9\napi = 3\n");

    (void)state;
    assert_int_equal(cfg->n_groups, 2);
    assert_string_equal(cfg->groups[0].name, "cdn1");
    assert_false(cfg->groups[0].implicit);
    assert_int_equal(cfg->groups[0].grant.n, 2);
    assert_true(ks_authz_permits(&cfg->groups[0].grant, "www"));
    assert_false(ks_authz_permits(&cfg->groups[0].grant, "old"));
    assert_string_equal(cfg->groups[0].client_crl, "/etc/lurk/cdn1.crl");
    assert_int_equal(cfg->groups[0].rate, 10);
    assert_int_equal(cfg->groups[0].burst, 20);
    assert_int_equal(cfg->groups[0].max_inflight, 3);
    assert_int_equal(cfg->groups[1].max_inflight, 0);
    assert_string_equal(cfg->groups[1].name, "partner_2");
    assert_true(cfg->groups[1].grant.all);
    assert_null(cfg->groups[1].client_crl);
    assert_int_equal(cfg->n_listen, 3);
    assert_true(cfg->has_tls);
    assert_ptr_equal(ks_config_group_of_url(cfg, "ipc:///run/x"), &cfg->groups[1]);
    assert_null(ks_config_group_of_url(cfg, "ipc:///run/y"));
    assert_string_equal(cfg->audit_log, "/var/log/lurk/audit.log");
    assert_string_equal(cfg->metrics_listen, "http://127.0.0.1:9464");
    assert_int_equal(cfg->replay_window, 30);
    assert_int_equal(cfg->max_inflight, 7);
    assert_int_equal(cfg->max_connections, 9);
    /* keys: www, api, old in order; limits from [key_limits] or key_rate */
    assert_int_equal(cfg->keys[0].rate, 5);
    assert_int_equal(cfg->keys[0].burst, 9);
    assert_int_equal(cfg->keys[1].rate, 3);
    assert_int_equal(cfg->keys[1].burst, 0);
    assert_int_equal(cfg->keys[2].rate, 100);
    ks_config_free(cfg);
}

static void test_edge_group_refusals(void **state)
{
    (void)state;
    refuse(MAIN "listen = tls+tcp://a:1\n[edge.x]\nlisten = tls+tcp://b:1\nclient_ca = c\n"
                "keys = www\n" KEYS,
           "with [edge.*] sections, set it in each");
    refuse(MAIN "[edge.x]\nclient_ca = c\nkeys = www\n" KEYS, "[edge.x]: listen: required");
    refuse(MAIN "[edge.x]\nlisten = tls+tcp://b:1\nkeys = www\n" KEYS, "client_ca: required");
    refuse(MAIN "[edge.x]\nlisten = tls+tcp://b:1\nclient_ca = c\n" KEYS, "keys: required");
    refuse(MAIN "[edge.x]\nlisten = tls+tcp://b:1\nclient_ca = c\nkeys = www nope\n" KEYS,
           "no key \"nope\"");
    refuse(MAIN "[edge.x]\nlisten = tls+tcp://b:1\nclient_ca = c\nkeys = www www\n" KEYS,
           "listed twice");
    refuse(MAIN "[edge.x]\nlisten = tls+tcp://b:1\nclient_ca = c\nkeys = www\n"
                "[edge.y]\nlisten = tls+tcp://b:1\nclient_ca = d\nkeys = api\n" KEYS,
           "t.cnf:9: [edge.y]: listen: tls+tcp://b:1 is shared with [edge.x] (line 5), whose "
           "client_ca differs (/etc/lurk/c, not /etc/lurk/d)");
    refuse(MAIN "[edge.x]\nlisten = tls+tcp://b:1\nclient_ca = c\nkeys = www\nrate = -1\n" KEYS,
           "rate: \"-1\"");
    refuse(MAIN "[edge.x]\nlisten = tls+tcp://b:1\nclient_ca = c\nkeys = www\n"
                "max_inflight = 70000\n" KEYS,
           "max_inflight: \"70000\"");
    refuse(MAIN "[edge.x]\nlisten = tls+tcp://b:1\nclient_ca = c\nkeys = www\nkeys = api\n" KEYS,
           "set twice in [edge.x]");
    refuse("[keyserver]\nlisten = ipc:///x\n[edge.x]\nlisten = ipc:///y\nkeys = www\n" KEYS,
           "with [edge.*] sections");
    refuse("[keyserver]\n[edge.x]\nlisten = tls+tcp://b:1\nclient_ca = c\nkeys = www\n" KEYS,
           "tls_cert: required");
    refuse("[keyserver]\nlisten = ipc:///x\nmetrics_listen = 127.0.0.1:9\n" KEYS, "metrics_listen");
    refuse("[keyserver]\nlisten = ipc:///x\nmax_message = 10\n" KEYS, "max_message");
    refuse("[keyserver]\nlisten = ipc:///x\nreplay_cache = 1\n" KEYS, "replay_cache");
    refuse("[keyserver]\nlisten = ipc:///x\n" KEYS "[key_limits]\nnope = 1\n", "no key \"nope\"");
    refuse("[keyserver]\nlisten = ipc:///x\n" KEYS "[key_limits]\nwww = fast\n",
           "not RATE or RATE BURST");
}

/* ---- per-edge identity: edges, shared listeners ------------------------- */

#define CA1 "client_ca = ca1.pem\n"
#define PIN "spki:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void test_edges_shared_listener(void **state)
{
    /* 500 edges of one CA on one listener: two named, the rest by the catch-all. */
    ks_config *cfg = parse(MAIN "[edge.all]\nlisten = tls+tcp://0.0.0.0:7443\n" CA1 "keys = www\n"
                                "[edge.edge1]\nlisten = tls+tcp://0.0.0.0:7443\n" CA1
                                "edges = dns:edge1.cdn.example " PIN "\nkeys = www api\n"
                                "[edge.pops]\nlisten = tls+tcp://0.0.0.0:7443 "
                                "tls+tcp://0.0.0.0:7444\n" CA1
                                "edges = dns:*.pop.cdn.example\nkeys = old\n" KEYS);
    const ks_config_group *on[4];
    char t[128];

    (void)state;
    assert_int_equal(cfg->n_groups, 3);
    /* One listener per distinct URL. */
    assert_int_equal(cfg->n_listen, 2);
    assert_string_equal(cfg->listen[0], "tls+tcp://0.0.0.0:7443");
    assert_string_equal(cfg->listen[1], "tls+tcp://0.0.0.0:7444");
    assert_int_equal(cfg->groups[0].edges.n, 0);
    assert_int_equal(cfg->groups[1].edges.n, 2);
    assert_int_equal(cfg->groups[1].edges_line, 11);
    ks_ident_member_text(&cfg->groups[1].edges.v[1], t, sizeof(t));
    assert_string_equal(t, PIN);
    assert_int_equal(cfg->groups[2].edges.v[0].kind, KS_IDENT_DNS_WILDCARD);
    assert_int_equal(ks_config_groups_of_url(cfg, "tls+tcp://0.0.0.0:7443", on, 4), 3);
    assert_ptr_equal(on[0], &cfg->groups[0]);
    assert_ptr_equal(on[2], &cfg->groups[2]);
    assert_int_equal(ks_config_groups_of_url(cfg, "tls+tcp://0.0.0.0:7444", on, 4), 1);
    assert_ptr_equal(on[0], &cfg->groups[2]);
    /* More groups than room: the count says so. */
    assert_int_equal(ks_config_groups_of_url(cfg, "tls+tcp://0.0.0.0:7443", on, 1), 3);
    assert_int_equal(ks_config_groups_of_url(cfg, "tls+tcp://0.0.0.0:1", on, 4), 0);
    ks_config_free(cfg);
    /* Groups with members only, and the same CRL: no catch-all needed. */
    cfg = parse(MAIN "[edge.a]\nlisten = tls+tcp://h:1\n" CA1 "client_crl = x.crl\n"
                     "edges = dns:a.example\nkeys = www\n"
                     "[edge.b]\nlisten = tls+tcp://h:1\n" CA1 "client_crl = x.crl\n"
                     "edges = dns:b.example\nkeys = api\n" KEYS);
    assert_int_equal(cfg->n_listen, 1);
    ks_config_free(cfg);
}

static void test_edges_refusals(void **state)
{
    (void)state;
    refuse(MAIN "[edge.a]\nlisten = tls+tcp://h:1\n" CA1 "edges = edge1\nkeys = www\n" KEYS,
           "t.cnf:7: [edge.a]: edges: \"edge1\" is neither dns:NAME nor spki:HEX");
    refuse(MAIN "[edge.a]\nlisten = tls+tcp://h:1\n" CA1 "edges = dns:*.com\nkeys = www\n" KEYS,
           "a wildcard is");
    refuse(MAIN "[edge.a]\nlisten = tls+tcp://h:1\n" CA1 "edges = spki:abc\nkeys = www\n" KEYS,
           "64 hex digits");
    refuse(MAIN "[edge.a]\nlisten = tls+tcp://h:1\n" CA1
                "edges = dns:a.example dns:A.example\nkeys = www\n" KEYS,
           "\"dns:a.example\" is listed twice");
    /* Only a certificate names an edge. */
    refuse(MAIN "[edge.a]\nlisten = tls+tcp://h:1 ipc:///run/a\n" CA1
                "edges = dns:a.example\nkeys = www\n" KEYS,
           "[edge.a]: edges: listener ipc:///run/a has no client certificate to match");
    /* A listener without TLS belongs to one group. */
    refuse(MAIN "[edge.a]\nlisten = ipc:///run/a\nkeys = www\n"
                "[edge.b]\nlisten = ipc:///run/a\nkeys = api\n" KEYS,
           "t.cnf:8: [edge.b]: listen: ipc:///run/a is already a listener of [edge.a] (line 5)");
    /* One TLS configuration per listener: the same CA and CRL files. */
    refuse(MAIN "[edge.a]\nlisten = tls+tcp://h:1\n" CA1 "client_crl = x.crl\nkeys = www\n"
                "[edge.b]\nlisten = tls+tcp://h:1\n" CA1 "edges = dns:b.example\nkeys = api\n" KEYS,
           "t.cnf:10: [edge.b]: listen: tls+tcp://h:1 is shared with [edge.a] (line 5), whose "
           "client_crl differs (/etc/lurk/x.crl, not none)");
    refuse(MAIN "[edge.a]\nlisten = tls+tcp://h:1\n" CA1 "edges = dns:a.example\nkeys = www\n"
                "[edge.b]\nlisten = tls+tcp://h:2 tls+tcp://h:1\nclient_ca = other.pem\n"
                "edges = dns:b.example\nkeys = api\n" KEYS,
           "[edge.b]: listen: tls+tcp://h:1 is shared with [edge.a] (line 5), whose client_ca "
           "differs");
    /* At most one group on a listener takes any certificate. */
    refuse(MAIN "[edge.a]\nlisten = tls+tcp://h:1\n" CA1 "keys = www\n"
                "[edge.b]\nlisten = tls+tcp://h:1\n" CA1 "keys = api\n" KEYS,
           "t.cnf:9: [edge.b]: listen: tls+tcp://h:1 is shared with [edge.a] (line 5) and "
           "neither names its edges");
    /* An edge is a member of one group per listener. */
    refuse(MAIN "[edge.a]\nlisten = tls+tcp://h:1\n" CA1 "edges = dns:x.example " PIN "\n"
                "keys = www\n"
                "[edge.b]\nlisten = tls+tcp://h:1\n" CA1 "edges = dns:y.example " PIN "\n"
                "keys = api\n" KEYS,
           "t.cnf:12: [edge.b]: edges: " PIN " is also a member of [edge.a] (line 7), on the "
           "same listener tls+tcp://h:1");
    /* A group that names nobody and the single form are unchanged: no edges there. */
    refuse("[keyserver]\nlisten = tls+tcp://h:1\ntls_cert = a\ntls_key = b\n"
           "[edge.a]\nlisten = tls+tcp://h:1\n" CA1 "edges = dns:a.example\nkeys = www\n" KEYS,
           "listen: with [edge.*] sections");
}

/* ---- ks_ops with grants and a gate -------------------------------------- */

typedef struct {
    char dir[64];
    ks_config *cfg;
    ks_keyring *kr;
    ks_ops *ops;
} fixture;

static int setup_keys(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char path[128], text[512], err[512];
    const char *ids[] = { "www", "api" };

    snprintf(f->dir, sizeof(f->dir), "/tmp/ks-groups-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    for (int i = 0; i < 2; i++) {
        EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        FILE *fp;

        snprintf(path, sizeof(path), "%s/%s.pem", f->dir, ids[i]);
        if (pk == NULL || (fp = fopen(path, "w")) == NULL)
            return -1;
        chmod(path, 0600);
        PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL);
        fclose(fp);
        EVP_PKEY_free(pk);
    }
    snprintf(text, sizeof(text),
             "[keyserver]\ntls_cert = a\ntls_key = b\n"
             "[edge.cdn1]\nlisten = tls+tcp://127.0.0.1:1\nclient_ca = c\nkeys = www\n"
             "[keys]\nwww = www.pem\napi = api.pem\n");
    if (ks_config_parse_text(text, strlen(text), "t.cnf", f->dir, &f->cfg, err, sizeof(err)) != 0
        || ks_keys_load(f->cfg, &f->kr, err, sizeof(err)) != 0
        || (f->ops = ks_ops_new(f->kr, &f->cfg->policy, "ks-test")) == NULL) {
        print_error("%s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_keys(void **state)
{
    fixture *f = *state;
    char cmd[160];

    ks_ops_thread_cleanup(); /* the signing templates this thread made */
    ks_ops_free(f->ops);
    ks_keys_free(f->kr);
    ks_config_free(f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static size_t tls13_cv(uint8_t *buf, uint8_t fill)
{
    static const char label[] = "TLS 1.3, server CertificateVerify";
    size_t n = 64;

    memset(buf, 0x20, 64);
    memcpy(buf + n, label, sizeof(label));
    n += sizeof(label);
    memset(buf + n, fill, 32);
    return n + 32;
}

static int gate_calls;
static Lurk__V1__Status gate_status;

static Lurk__V1__Status test_gate(void *arg, const Lurk__V1__Request *req, const ks_key *key,
                                  const char **reason, char *detail, size_t detail_len,
                                  int *answer_random)
{
    (void)arg;
    (void)req;
    (void)key;
    (void)answer_random;
    gate_calls++;
    if (gate_status != LURK__V1__STATUS__STATUS_OK) {
        *reason = "replay";
        snprintf(detail, detail_len, "replay: test");
    }
    return gate_status;
}

static void sign_as(fixture *f, const ks_authz_grant *grant, const char *key, uint8_t fill,
                    ks_ops_answer *ans)
{
    Lurk__V1__Request req;
    Lurk__V1__SignRequest sr;
    uint8_t tbs[200];
    ks_ops_call call;

    lurk__v1__request__init(&req);
    lurk__v1__sign_request__init(&sr);
    req.version = LURK_PROTOCOL_VERSION;
    req.id = 42;
    req.op_case = LURK__V1__REQUEST__OP_SIGN;
    req.sign = &sr;
    sr.key_id = (char *)key;
    sr.scheme = LURK_SCHEME_ECDSA_SECP256R1_SHA256;
    sr.tbs.data = tbs;
    sr.tbs.len = tls13_cv(tbs, fill);
    memset(&call, 0, sizeof(call));
    call.grant = grant;
    call.peer = "test [cdn1]";
    call.gate = test_gate;
    ks_ops_handle_call(f->ops, &call, &req, ans);
}

static void test_ops_grant_and_gate(void **state)
{
    fixture *f = *state;
    const ks_authz_grant *grant = &f->cfg->groups[0].grant;
    ks_ops_answer ans;

    gate_calls = 0;
    gate_status = LURK__V1__STATUS__STATUS_OK;
    sign_as(f, grant, "www", 1, &ans);
    assert_int_equal(ans.resp.status, LURK__V1__STATUS__STATUS_OK);
    assert_null(ans.reason);
    assert_int_equal(gate_calls, 1);
    ks_ops_answer_clear(&ans);
    /* A key that exists but is not granted, and one that does not exist: the same answer. */
    sign_as(f, grant, "api", 2, &ans);
    assert_int_equal(ans.resp.status, LURK__V1__STATUS__STATUS_NOT_PERMITTED);
    assert_string_equal(ans.reason, "not_permitted");
    ks_ops_answer_clear(&ans);
    sign_as(f, grant, "nope", 2, &ans);
    assert_int_equal(ans.resp.status, LURK__V1__STATUS__STATUS_NOT_PERMITTED);
    ks_ops_answer_clear(&ans);
    assert_int_equal(gate_calls, 1); /* refused before the gate */
    /* Without a grant (all keys) the unknown key is UNKNOWN_KEY. */
    sign_as(f, NULL, "nope", 2, &ans);
    assert_int_equal(ans.resp.status, LURK__V1__STATUS__STATUS_UNKNOWN_KEY);
    ks_ops_answer_clear(&ans);
    /* The gate's refusal reaches the edge with its reason. */
    gate_status = LURK__V1__STATUS__STATUS_NOT_PERMITTED;
    sign_as(f, grant, "www", 3, &ans);
    assert_int_equal(ans.resp.status, LURK__V1__STATUS__STATUS_NOT_PERMITTED);
    assert_string_equal(ans.reason, "replay");
    assert_string_equal(ans.resp.detail, "replay: test");
    assert_null(ans.resp.sign);
    ks_ops_answer_clear(&ans);
}

static void test_ops_capabilities_per_group(void **state)
{
    fixture *f = *state;
    Lurk__V1__Request req;
    Lurk__V1__CapabilitiesRequest cr;
    ks_ops_answer ans;
    ks_ops_call call;

    lurk__v1__request__init(&req);
    lurk__v1__capabilities_request__init(&cr);
    req.version = LURK_PROTOCOL_VERSION;
    req.op_case = LURK__V1__REQUEST__OP_CAPABILITIES;
    req.capabilities = &cr;
    memset(&call, 0, sizeof(call));
    call.grant = &f->cfg->groups[0].grant;
    ks_ops_handle_call(f->ops, &call, &req, &ans);
    assert_int_equal(ans.resp.status, LURK__V1__STATUS__STATUS_OK);
    assert_int_equal(ans.resp.capabilities->n_keys, 1);
    assert_string_equal(ans.resp.capabilities->keys[0]->key_id, "www");
    assert_int_equal(ans.resp.capabilities->config_epoch, f->kr->epoch);
    ks_ops_answer_clear(&ans);
    call.grant = NULL;
    ks_ops_handle_call(f->ops, &call, &req, &ans);
    assert_int_equal(ans.resp.capabilities->n_keys, 2);
    ks_ops_answer_clear(&ans);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_form_is_one_group),
        cmocka_unit_test(test_edge_groups),
        cmocka_unit_test(test_edge_group_refusals),
        cmocka_unit_test(test_edges_shared_listener),
        cmocka_unit_test(test_edges_refusals),
        cmocka_unit_test(test_ops_grant_and_gate),
        cmocka_unit_test(test_ops_capabilities_per_group),
    };
    ks_log_set_level(KS_LOG_ERROR);
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
