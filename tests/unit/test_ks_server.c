/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key server's nng adapter, in process: a real ks_server on ipc:// in a
 * temporary directory, answered through the real client. What the slot
 * state machine decides (tests/unit/test_ks_slot.c) is checked here where
 * it meets nng: answers, a reload that applies, a reload whose new listener
 * cannot open (the old configuration and listener stay), and a stop with a
 * request in flight (drained: the request is answered before stop returns).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ks_config.h"
#include "ks_keys.h"
#include "ks_log.h"
#include "ks_ops.h"
#include "ks_server.h"
#include "lurk_transport.h"

typedef struct {
    char dir[64];
    char url[128];
    char *urls[2];
    lurk_client *client;
} fixture;

static void write_key(const char *path, const char *curve)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    FILE *f = fopen(path, "w");

    assert_non_null(pkey);
    assert_non_null(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(pkey);
}

/* keyserver.cnf in the fixture's directory: listen URL, then the keys. */
static void write_config(const fixture *fx, const char *listen, int with_p384)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/ks.cnf", fx->dir);
    assert_non_null(f = fopen(path, "w"));
    fprintf(f,
            "[keyserver]\nlisten = %s\nworkers = 2\nmax_inflight = 4\ndrain_timeout = 5\n"
            "audit_log = %s/audit.log\n[keys]\np256 = %s/p256.pem\n",
            listen, fx->dir, fx->dir);
    if (with_p384)
        fprintf(f, "p384 = %s/p384.pem\n", fx->dir);
    fclose(f);
}

/* Configuration, keys and operations, as lurk-keyserver loads them. */
static void load(const fixture *fx, ks_config **cfg, ks_keyring **kr, ks_ops **ops)
{
    char path[128], err[512];

    snprintf(path, sizeof(path), "%s/ks.cnf", fx->dir);
    if (ks_config_load(path, cfg, err, sizeof(err)) != 0)
        fail_msg("config: %s", err);
    if (ks_keys_load(*cfg, kr, err, sizeof(err)) != 0)
        fail_msg("keys: %s", err);
    assert_non_null(*ops = ks_ops_new(*kr, &(*cfg)->policy, "test"));
}

static ks_server *start(const fixture *fx, int delay_ms)
{
    ks_config *cfg;
    ks_keyring *kr;
    ks_ops *ops;
    ks_server *srv = NULL;
    char err[512];

    load(fx, &cfg, &kr, &ops);
    if (ks_server_start(cfg, kr, ops, delay_ms, &srv, err, sizeof(err)) != 0)
        fail_msg("start: %s", err);
    return srv;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    char path[128], err[256];
    lurk_client_conf conf;

    assert_non_null(fx);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/lurk-ks-server.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(path, sizeof(path), "%s/p256.pem", fx->dir);
    write_key(path, "P-256");
    snprintf(path, sizeof(path), "%s/p384.pem", fx->dir);
    write_key(path, "P-384");
    snprintf(fx->url, sizeof(fx->url), "ipc://%s/ks.sock", fx->dir);
    fx->urls[0] = fx->url;
    memset(&conf, 0, sizeof(conf));
    conf.urls = fx->urls;
    conf.timeout_ms = 3000;
    conf.keepalive_ms = -1;
    if (lurk_client_new(&conf, &fx->client, err, sizeof(err)) != 0)
        fail_msg("client: %s", err);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    char cmd[160];

    lurk_client_free(fx->client);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static size_t n_keys(const fixture *fx, uint64_t *epoch)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__CapabilitiesRequest caps = LURK__V1__CAPABILITIES_REQUEST__INIT;
    Lurk__V1__Response *resp = NULL;
    char err[256];
    size_t n;

    req.op_case = LURK__V1__REQUEST__OP_CAPABILITIES;
    req.capabilities = &caps;
    if (lurk_client_call(fx->client, &req, LURK__V1__RESPONSE__RESULT_CAPABILITIES, &resp, err,
                         sizeof(err))
        != LURK_CALL_OK)
        fail_msg("capabilities: %s", err);
    n = resp->capabilities->n_keys;
    *epoch = resp->capabilities->config_epoch;
    lurk__v1__response__free_unpacked(resp, NULL);
    return n;
}

/* A TLS 1.3 server CertificateVerify context with a 32-byte transcript hash. */
static void sign_request(Lurk__V1__Request *req, Lurk__V1__SignRequest *sign, uint8_t *tbs,
                         size_t *len)
{
    static const char ctx[] = "TLS 1.3, server CertificateVerify";

    memset(tbs, 0x20, 64);
    memcpy(tbs + 64, ctx, sizeof(ctx)); /* with the 0x00 separator */
    memset(tbs + 64 + sizeof(ctx), 0xab, 32);
    *len = 64 + sizeof(ctx) + 32;
    sign->key_id = "p256";
    sign->scheme = 0x0403;
    sign->tbs.data = tbs;
    sign->tbs.len = *len;
    req->op_case = LURK__V1__REQUEST__OP_SIGN;
    req->sign = sign;
}

static void test_answers_and_reloads(void **state)
{
    fixture *fx = *state;
    ks_server *srv;
    ks_config *cfg;
    ks_keyring *kr;
    ks_ops *ops;
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest sign = LURK__V1__SIGN_REQUEST__INIT;
    Lurk__V1__Response *resp = NULL;
    uint8_t tbs[160];
    uint64_t epoch1, epoch2, epoch3;
    size_t len;
    char err[512];

    write_config(fx, fx->url, 0);
    srv = start(fx, 0);
    assert_int_equal(n_keys(fx, &epoch1), 1);
    sign_request(&req, &sign, tbs, &len);
    assert_int_equal(lurk_client_call(fx->client, &req, LURK__V1__RESPONSE__RESULT_SIGN, &resp, err,
                                      sizeof(err)),
                     LURK_CALL_OK);
    assert_true(resp->sign->signature.len > 0);
    lurk__v1__response__free_unpacked(resp, NULL);

    /* A reload that applies: the new key is served at once. */
    write_config(fx, fx->url, 1);
    load(fx, &cfg, &kr, &ops);
    assert_int_equal(ks_server_reload(srv, cfg, kr, ops, err, sizeof(err)), 0);
    assert_int_equal(n_keys(fx, &epoch2), 2);
    assert_true(epoch2 != epoch1);

    /*
     * All or nothing: a new listener that cannot open rejects the reload,
     * and the running configuration and listener stay.
     */
    write_config(fx, "ipc:///nonexistent-lurk-dir/ks.sock", 0);
    load(fx, &cfg, &kr, &ops);
    assert_int_equal(ks_server_reload(srv, cfg, kr, ops, err, sizeof(err)), -1);
    if (strstr(err, "nonexistent-lurk-dir") == NULL)
        fail_msg("the rejection does not name the listener: %s", err);
    ks_ops_free(ops);
    ks_keys_free(kr);
    ks_config_free(cfg);
    assert_int_equal(n_keys(fx, &epoch3), 2);
    assert_true(epoch3 == epoch2);
    ks_server_stop(srv);
}

/* The step of a bounded wait for a condition. */
static void tick(void)
{
    struct timespec ms = { 0, 1000 * 1000 };

    nanosleep(&ms, NULL);
}

static void on_done(void *arg)
{
    (void)arg;
}

/* SIGTERM's drain: a request admitted before the stop is still answered. */
static void test_stop_drains(void **state)
{
    fixture *fx = *state;
    ks_server *srv;
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest sign = LURK__V1__SIGN_REQUEST__INIT;
    Lurk__V1__Response *resp = NULL;
    lurk_pending *p;
    uint8_t tbs[160];
    uint64_t epoch;
    size_t len;
    char err[512];

    write_config(fx, fx->url, 0);
    srv = start(fx, 400); /* every Sign waits 400 ms in a worker */
    assert_int_equal(n_keys(fx, &epoch), 1);
    sign_request(&req, &sign, tbs, &len);
    assert_non_null(p = lurk_client_start(fx->client, &req, on_done, NULL, err, sizeof(err)));
    /*
     * Wait for the Sign to be admitted, not for a time. The Capabilities
     * answer before it no longer counts once made, though its slot may
     * still be sending it.
     */
    for (int i = 0; i < 5000 && ks_server_in_flight(srv) == 0; i++)
        tick();
    assert_int_equal(ks_server_in_flight(srv), 1);
    ks_server_stop(srv);
    for (int i = 0; i < 5000 && !lurk_pending_done(p); i++)
        tick();
    assert_true(lurk_pending_done(p));
    if (lurk_pending_finish(p, LURK__V1__RESPONSE__RESULT_SIGN, &resp, err, sizeof(err))
        != LURK_CALL_OK)
        fail_msg("the drained request was not answered: %s", err);
    assert_true(resp->sign->signature.len > 0);
    lurk__v1__response__free_unpacked(resp, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answers_and_reloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
    };

    ks_log_set_level(getenv("TKS_DEBUG") ? KS_LOG_DEBUG : KS_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
