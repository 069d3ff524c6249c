/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS 1.2 RSA key exchange under the replay window: ks_ops
 * with a real RSA key and a gate that applies ks_replay and
 * ks_replay_action_of as the daemon's does. A repeated ciphertext under
 * another request id is answered like any ClientKeyExchange (STATUS_OK,
 * 48 bytes) but never with the real premaster again; a retry of the same
 * request gets the same premaster; a replayed Sign is still refused.
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
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "ks_config.h"
#include "ks_keys.h"
#include "ks_log.h"
#include "ks_ops.h"
#include "ks_replay.h"

#define ST(x)     LURK__V1__STATUS__STATUS_##x
#define WINDOW_US (60u * 1000000u)

typedef struct {
    char dir[64];
    ks_config *cfg;
    ks_keyring *kr;
    ks_ops *ops;
    EVP_PKEY *pub; /* the RSA key, to encrypt premasters with */
    ks_replay *replay;
    uint64_t now;
} fixture;

/* The daemon's replay gate without its clocks, locks, limits and logs. */
static Lurk__V1__Status replay_gate(void *arg, const Lurk__V1__Request *req, const ks_key *key,
                                    const char **reason, char *detail, size_t detail_len,
                                    int *answer_random)
{
    fixture *f = arg;
    int decrypt = req->op_case == LURK__V1__REQUEST__OP_DECRYPT;
    const ProtobufCBinaryData *b = decrypt ? &req->decrypt->ciphertext : &req->sign->tbs;
    uint8_t digest[KS_REPLAY_DIGEST_LEN];
    unsigned int dlen = 0;
    ks_replay_verdict v;

    (void)key;
    /* Unkeyed here: the test chooses no colliding inputs. */
    assert_int_equal(EVP_Digest(b->data, b->len, digest, &dlen, EVP_sha256(), NULL), 1);
    digest[0] ^= (uint8_t)decrypt;
    v = ks_replay_check(f->replay, digest, 1, req->id, f->now++, WINDOW_US);
    switch (ks_replay_action_of(v, decrypt ? KS_REPLAY_OP_DECRYPT : KS_REPLAY_OP_SIGN)) {
    case KS_REPLAY_ANSWER: return ST(OK);
    case KS_REPLAY_ANSWER_RANDOM:
        *answer_random = v == KS_REPLAY_REPLAY ? KS_OPS_RANDOM_WARN : KS_OPS_RANDOM_QUIET;
        *reason = v == KS_REPLAY_REPLAY ? "replay" : "replay_cache_full";
        snprintf(detail, detail_len, "%s: answered with random bytes", *reason);
        return ST(OK);
    case KS_REPLAY_REFUSE:
        *reason = "replay";
        snprintf(detail, detail_len, "replay: test");
        return ST(NOT_PERMITTED);
    case KS_REPLAY_REFUSE_FULL:
    default:
        *reason = "replay_cache_full";
        snprintf(detail, detail_len, "replay cache full: test");
        return ST(OVERLOADED);
    }
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char path[128], text[512], err[512];
    EVP_PKEY *pk;
    FILE *fp;

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/ks-decrypt-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    snprintf(path, sizeof(path), "%s/rsa.pem", f->dir);
    if (pk == NULL || (fp = fopen(path, "w")) == NULL)
        return -1;
    chmod(path, 0600);
    PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL);
    fclose(fp);
    f->pub = pk;
    snprintf(text, sizeof(text),
             "[keyserver]\nlisten = tls+tcp://127.0.0.1:1\n"
             "tls_cert = a\ntls_key = b\nclient_ca = c\nrsa_decrypt = yes\n"
             "[keys]\nrsa = rsa.pem\n");
    if (ks_config_parse_text(text, strlen(text), "t.cnf", f->dir, &f->cfg, err, sizeof(err)) != 0
        || ks_keys_load(f->cfg, &f->kr, err, sizeof(err)) != 0
        || (f->ops = ks_ops_new(f->kr, &f->cfg->policy, "ks-test")) == NULL) {
        print_error("%s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[160];

    ks_ops_thread_cleanup();
    ks_ops_free(f->ops);
    ks_keys_free(f->kr);
    ks_config_free(f->cfg);
    EVP_PKEY_free(f->pub);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* A fresh, empty replay window of `capacity` entries for each test. */
static void fresh_window(fixture *f, size_t capacity)
{
    ks_replay_free(f->replay);
    assert_non_null(f->replay = ks_replay_new(capacity));
}

static int setup_test(void **state)
{
    fresh_window(*state, 64);
    return 0;
}

static int teardown_test(void **state)
{
    fixture *f = *state;

    ks_replay_free(f->replay);
    f->replay = NULL;
    return 0;
}

/* A TLS premaster: 0x0303 then 46 random bytes, PKCS#1 v1.5 encrypted. */
static void make_premaster(fixture *f, uint8_t pms[48], uint8_t ct[256])
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(f->pub, NULL);
    size_t len = 256;

    pms[0] = 0x03;
    pms[1] = 0x03;
    assert_int_equal(RAND_bytes(pms + 2, 46), 1);
    assert_non_null(c);
    assert_int_equal(EVP_PKEY_encrypt_init(c), 1);
    assert_true(EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0);
    assert_int_equal(EVP_PKEY_encrypt(c, ct, &len, pms, 48), 1);
    assert_int_equal(len, 256);
    EVP_PKEY_CTX_free(c);
}

/* Decrypt `ct` as request `id`; the premaster (if any) is copied to `out`. */
static Lurk__V1__Status decrypt(fixture *f, uint64_t id, const uint8_t *ct, size_t len,
                                uint8_t out[48], const char **reason)
{
    Lurk__V1__Request req;
    Lurk__V1__DecryptRequest dr;
    ks_ops_call call;
    ks_ops_answer ans;
    Lurk__V1__Status st;

    lurk__v1__request__init(&req);
    lurk__v1__decrypt_request__init(&dr);
    req.version = LURK_PROTOCOL_VERSION;
    req.id = id;
    req.op_case = LURK__V1__REQUEST__OP_DECRYPT;
    req.decrypt = &dr;
    dr.key_id = "rsa";
    dr.ciphertext.data = (uint8_t *)ct;
    dr.ciphertext.len = len;
    dr.client_version = 0x0303;
    memset(&call, 0, sizeof(call));
    call.peer = "test [cdn1]";
    call.gate = replay_gate;
    call.gate_arg = f;
    ks_ops_handle_call(f->ops, &call, &req, &ans);
    st = ans.resp.status;
    *reason = ans.reason;
    memset(out, 0, 48);
    if (st == ST(OK)) {
        /* The shape of every successful answer: 48 bytes, no detail. */
        assert_int_equal(ans.resp.result_case, LURK__V1__RESPONSE__RESULT_DECRYPT);
        assert_int_equal(ans.resp.decrypt->premaster.len, 48);
        assert_true(ans.resp.detail == NULL || ans.resp.detail[0] == '\0');
        memcpy(out, ans.resp.decrypt->premaster.data, 48);
    } else {
        assert_null(ans.resp.decrypt);
    }
    ks_ops_answer_clear(&ans);
    return st;
}

static Lurk__V1__Status sign(fixture *f, uint64_t id, const char **reason)
{
    static const char label[] = "TLS 1.3, server CertificateVerify";
    Lurk__V1__Request req;
    Lurk__V1__SignRequest sr;
    ks_ops_call call;
    ks_ops_answer ans;
    uint8_t tbs[200];
    Lurk__V1__Status st;

    memset(tbs, 0x20, 64);
    memcpy(tbs + 64, label, sizeof(label));
    memset(tbs + 64 + sizeof(label), 0x77, 32);
    lurk__v1__request__init(&req);
    lurk__v1__sign_request__init(&sr);
    req.version = LURK_PROTOCOL_VERSION;
    req.id = id;
    req.op_case = LURK__V1__REQUEST__OP_SIGN;
    req.sign = &sr;
    sr.key_id = "rsa";
    sr.scheme = LURK_SCHEME_RSA_PSS_RSAE_SHA256;
    sr.tbs.data = tbs;
    sr.tbs.len = 64 + sizeof(label) + 32;
    memset(&call, 0, sizeof(call));
    call.peer = "test [cdn1]";
    call.gate = replay_gate;
    call.gate_arg = f;
    ks_ops_handle_call(f->ops, &call, &req, &ans);
    st = ans.resp.status;
    *reason = ans.reason;
    if (st != ST(OK))
        assert_null(ans.resp.sign);
    ks_ops_answer_clear(&ans);
    return st;
}

static void test_replay_gets_random_premaster(void **state)
{
    fixture *f = *state;
    uint8_t pms[48], ct[256], a1[48], a2[48], a3[48], r1[48];
    const char *reason;

    make_premaster(f, pms, ct);
    assert_int_equal(decrypt(f, 1, ct, sizeof(ct), a1, &reason), ST(OK));
    assert_memory_equal(a1, pms, 48);
    assert_null(reason);
    /* Another request id: OK and 48 bytes like any answer, not the premaster. */
    assert_int_equal(decrypt(f, 2, ct, sizeof(ct), a2, &reason), ST(OK));
    assert_memory_not_equal(a2, pms, 48);
    assert_string_equal(reason, "replay");
    /* A third time: random again, and other random bytes. */
    assert_int_equal(decrypt(f, 3, ct, sizeof(ct), a3, &reason), ST(OK));
    assert_memory_not_equal(a3, pms, 48);
    assert_memory_not_equal(a3, a2, 48);
    /* A retry of the first request decrypts again: the same premaster. */
    assert_int_equal(decrypt(f, 1, ct, sizeof(ct), r1, &reason), ST(OK));
    assert_memory_equal(r1, pms, 48);
    assert_null(reason);
}

/*
 * Bad padding: OpenSSL's TLS padding answers random bytes, fresh on every
 * decryption, so a retry gets other bytes than the first attempt. The edge
 * uses one answer and the handshake fails at Finished either way.
 */
static void test_bad_padding(void **state)
{
    fixture *f = *state;
    uint8_t zero[256], a1[48], a2[48], a3[48];
    const char *reason;

    memset(zero, 0, sizeof(zero));
    assert_int_equal(decrypt(f, 10, zero, sizeof(zero), a1, &reason), ST(OK));
    assert_null(reason);
    assert_int_equal(decrypt(f, 10, zero, sizeof(zero), a2, &reason), ST(OK));
    assert_null(reason);
    assert_memory_not_equal(a1, a2, 48);
    assert_int_equal(decrypt(f, 11, zero, sizeof(zero), a3, &reason), ST(OK));
    assert_string_equal(reason, "replay");
}

/* Numerically not below the modulus: refused as a local key fails it, every time. */
static void test_out_of_range_stays_refused(void **state)
{
    fixture *f = *state;
    uint8_t ff[256], out[48];
    const char *reason;

    memset(ff, 0xff, sizeof(ff));
    assert_int_equal(decrypt(f, 20, ff, sizeof(ff), out, &reason), ST(MALFORMED));
    assert_int_equal(decrypt(f, 21, ff, sizeof(ff), out, &reason), ST(MALFORMED));
    assert_int_equal(decrypt(f, 20, ff, sizeof(ff), out, &reason), ST(MALFORMED));
}

static void test_sign_replay_still_refused(void **state)
{
    fixture *f = *state;
    const char *reason;

    assert_int_equal(sign(f, 30, &reason), ST(OK));
    assert_int_equal(sign(f, 30, &reason), ST(OK)); /* retry */
    assert_int_equal(sign(f, 31, &reason), ST(NOT_PERMITTED));
    assert_string_equal(reason, "replay");
}

/*
 * A full cache cannot tell a new ciphertext from a replayed one: a Decrypt
 * is answered, as a local key would answer it, with random bytes (never a
 * premaster that might be a second copy); a Sign is refused as overloaded.
 */
static void test_full_cache(void **state)
{
    fixture *f = *state;
    uint8_t pms[48], ct[256], pms2[48], ct2[256], out[48];
    const char *reason;

    fresh_window(f, 1);
    make_premaster(f, pms, ct);
    make_premaster(f, pms2, ct2);
    assert_int_equal(decrypt(f, 40, ct, sizeof(ct), out, &reason), ST(OK));
    assert_memory_equal(out, pms, 48);
    assert_int_equal(decrypt(f, 41, ct2, sizeof(ct2), out, &reason), ST(OK));
    assert_memory_not_equal(out, pms2, 48);
    assert_string_equal(reason, "replay_cache_full");
    assert_int_equal(sign(f, 42, &reason), ST(OVERLOADED));
    assert_string_equal(reason, "replay_cache_full");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_gets_random_premaster, setup_test,
                                        teardown_test),
        cmocka_unit_test_setup_teardown(test_bad_padding, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_out_of_range_stays_refused, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_sign_replay_still_refused, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_full_cache, setup_test, teardown_test),
    };
    ks_log_set_level(KS_LOG_ERROR);
    return cmocka_run_group_tests(tests, setup, teardown);
}
