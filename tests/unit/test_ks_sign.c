/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signing path of ks_ops with its per-thread templates: every scheme
 * still signs exactly as TLS verifies it, templates never outlive or
 * confuse their key across a reload, eviction and thread exit work, and a
 * template that cannot be copied falls back to a fresh context without a
 * trace in the error queue. ks_ops.c is built into this test with
 * KS_OPS_TEST_HOOKS, which lets the test make the copies fail.
 */
#include <pthread.h>
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
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "ks_config.h"
#include "ks_keys.h"
#include "ks_ops.h"

extern int ks_ops_test_copy_fails;

typedef struct {
    ks_config *cfg;
    ks_keyring *kr;
    ks_ops *ops;
} ring;

static char dir[64];

static void write_key(const char *id, const char *alg, const char *arg)
{
    char path[128];
    EVP_PKEY *pk;
    FILE *fp;

    if (strcmp(alg, "RSA") == 0)
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else if (arg != NULL)
        pk = EVP_PKEY_Q_keygen(NULL, NULL, alg, arg);
    else
        pk = EVP_PKEY_Q_keygen(NULL, NULL, alg);
    assert_non_null(pk);
    snprintf(path, sizeof(path), "%s/%s.pem", dir, id);
    assert_non_null(fp = fopen(path, "w"));
    chmod(path, 0600);
    assert_int_equal(PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
    EVP_PKEY_free(pk);
}

/* An id-RSASSA-PSS key, restricted to md (hash, MGF1, salt = hash length) unless md is NULL. */
static void write_pss_key(const char *id, const char *md, int saltlen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    EVP_PKEY *pk = NULL;
    char path[128];
    FILE *fp;

    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_true(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) > 0);
    if (md != NULL) {
        assert_true(EVP_PKEY_CTX_set_rsa_pss_keygen_md_name(ctx, md, NULL) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_pss_keygen_mgf1_md_name(ctx, md) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_pss_keygen_saltlen(ctx, saltlen) > 0);
    }
    assert_int_equal(EVP_PKEY_keygen(ctx, &pk), 1);
    EVP_PKEY_CTX_free(ctx);
    snprintf(path, sizeof(path), "%s/%s.pem", dir, id);
    assert_non_null(fp = fopen(path, "w"));
    chmod(path, 0600);
    assert_int_equal(PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
    EVP_PKEY_free(pk);
}

/* A keyring of the keys <id>.pem in dir, for the ids given. */
static void ring_load(ring *r, const char *const *ids, size_t n)
{
    char text[4096], err[512];
    size_t used;

    used = (size_t)snprintf(text, sizeof(text),
                            "[keyserver]\nlisten = tls+tcp://127.0.0.1:1\n"
                            "tls_cert = a\ntls_key = b\nclient_ca = c\n[keys]\n");
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s = %s.pem\n", ids[i], ids[i]);
    memset(r, 0, sizeof(*r));
    if (ks_config_parse_text(text, strlen(text), "t.cnf", dir, &r->cfg, err, sizeof(err)) != 0
        || ks_keys_load(r->cfg, &r->kr, err, sizeof(err)) != 0
        || (r->ops = ks_ops_new(r->kr, &r->cfg->policy, "ks-test")) == NULL) {
        print_error("%s\n", err);
        fail();
    }
}

static void ring_free(ring *r)
{
    ks_ops_free(r->ops);
    ks_keys_free(r->kr);
    ks_config_free(r->cfg);
    memset(r, 0, sizeof(*r));
}

static size_t tls13_cv(uint8_t *buf, uint32_t fill)
{
    static const char label[] = "TLS 1.3, server CertificateVerify";

    memset(buf, 0x20, 64);
    memcpy(buf + 64, label, sizeof(label));
    memset(buf + 64 + sizeof(label), 0x5a, 32);
    memcpy(buf + 64 + sizeof(label), &fill, sizeof(fill));
    return 64 + sizeof(label) + 32;
}

/* client_random | server_random | ECDHE params on X25519. */
static size_t tls12_ske(uint8_t *buf, uint32_t fill)
{
    memset(buf, 0x11, 64);
    memcpy(buf, &fill, sizeof(fill));
    buf[64] = 3;
    buf[65] = 0x00;
    buf[66] = 0x1d;
    buf[67] = 32;
    memset(buf + 68, 0x42, 32);
    return 68 + 32;
}

/* As a TLS peer checks it: the scheme's hash, PSS with salt = hash length. */
static int verify(EVP_PKEY *pk, const lurk_scheme *s, const uint8_t *tbs, size_t len,
                  const uint8_t *sig, size_t sig_len)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    int ok;

    ok = m != NULL && EVP_DigestVerifyInit_ex(m, &pc, s->md, NULL, NULL, pk, NULL) == 1;
    if (ok && s->padding == LURK_PAD_PSS)
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0
            && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) > 0
            && EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, s->md, NULL) > 0;
    else if (ok && s->padding == LURK_PAD_PKCS1)
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0;
    ok = ok && EVP_DigestVerify(m, sig, sig_len, tbs, len) == 1;
    EVP_MD_CTX_free(m);
    ERR_clear_error();
    return ok;
}

/*
 * Sign with key `id` and scheme `code` (a TLS 1.3 context, else a TLS 1.2
 * one when the policy wants that) and check the signature against `pk`.
 * 1 signed and verified, 0 refused by the policy, -1 wrong (why says how).
 * No cmocka assertion here: threads call it.
 */
static int try_sign(const ks_ops *ops, const char *id, uint32_t code, uint32_t fill, EVP_PKEY *pk,
                    char *why, size_t why_len)
{
    const lurk_scheme *s = lurk_scheme_find(code);
    Lurk__V1__Request req;
    Lurk__V1__SignRequest sr;
    ks_ops_answer ans;
    uint8_t tbs[256];
    int rv = 0;

    for (int form = 0; s != NULL && form < 2 && rv == 0; form++) {
        lurk__v1__request__init(&req);
        lurk__v1__sign_request__init(&sr);
        req.version = LURK_PROTOCOL_VERSION;
        req.id = fill;
        req.op_case = LURK__V1__REQUEST__OP_SIGN;
        req.sign = &sr;
        sr.key_id = (char *)id;
        sr.scheme = code;
        sr.tbs.data = tbs;
        sr.tbs.len = form == 0 ? tls13_cv(tbs, fill) : tls12_ske(tbs, fill);
        ks_ops_handle(ops, &req, "test", &ans);
        if (ERR_peek_error() != 0) {
            /* A fallback must not leave an error for the next log line. */
            snprintf(why, why_len, "%s %s: an error was left in the queue", id, s->name);
            rv = -1;
        } else if (ans.resp.status == LURK__V1__STATUS__STATUS_NOT_TLS_CONTEXT
                   || ans.resp.status == LURK__V1__STATUS__STATUS_UNSUPPORTED_SCHEME) {
            rv = 0;
        } else if (ans.resp.status != LURK__V1__STATUS__STATUS_OK || ans.resp.sign == NULL) {
            snprintf(why, why_len, "%s %s: %s", id, s->name, ans.resp.detail);
            rv = -1;
        } else if (!verify(pk, s, tbs, sr.tbs.len, ans.resp.sign->signature.data,
                           ans.resp.sign->signature.len)) {
            snprintf(why, why_len, "%s %s: the signature does not verify", id, s->name);
            rv = -1;
        } else {
            rv = 1;
        }
        ks_ops_answer_clear(&ans);
    }
    return rv;
}

static int sign_check(const ks_ops *ops, const char *id, uint32_t code, uint32_t fill, EVP_PKEY *pk)
{
    char why[512] = "";
    int rv = try_sign(ops, id, code, fill, pk, why, sizeof(why));

    if (rv < 0) {
        print_error("%s\n", why);
        fail();
    }
    return rv;
}

static EVP_PKEY *key_of(const ring *r, const char *id)
{
    const ks_key *k = ks_keys_find(r->kr, id);

    assert_non_null(k);
    return k->pkey;
}

/* Every scheme that fits the key, three times (a miss, then hits). */
static size_t sign_all_schemes(const ring *r, const char *id, uint32_t fill)
{
    const ks_key *k = ks_keys_find(r->kr, id);
    const lurk_scheme *s;
    size_t signed_n = 0;

    assert_non_null(k);
    for (size_t i = 0; (s = lurk_scheme_at(i)) != NULL; i++) {
        if (s->key_type != k->desc.type)
            continue;
        for (uint32_t round = 0; round < 3; round++)
            signed_n += (size_t)sign_check(r->ops, id, s->code, fill + round, k->pkey);
    }
    return signed_n;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ks-sign-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    write_key("rsa", "RSA", NULL);
    write_key("p256", "EC", "P-256");
    write_key("p384", "EC", "P-384");
    write_key("ed25519", "ED25519", NULL);
    return 0;
}

static int teardown(void **state)
{
    char cmd[160];

    (void)state;
    ks_ops_thread_cleanup();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *const all_ids[] = { "rsa", "p256", "p384", "ed25519" };

/* OpenSSL 3.0 copies a one-shot Ed25519 DigestSign context (digest NULL). */
static void test_ed25519_context_copies(void **state)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_MD_CTX *tmpl = EVP_MD_CTX_new();
    const lurk_scheme *s = lurk_scheme_find(LURK_SCHEME_ED25519);
    uint8_t tbs[256], sig[64];

    (void)state;
    assert_non_null(pk);
    assert_non_null(tmpl);
    assert_int_equal(EVP_DigestSignInit_ex(tmpl, NULL, NULL, NULL, NULL, pk, NULL), 1);
    for (uint32_t i = 0; i < 3; i++) {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        size_t len = sizeof(sig), n = tls13_cv(tbs, i);

        assert_non_null(m);
        assert_int_equal(EVP_MD_CTX_copy_ex(m, tmpl), 1);
        assert_int_equal(EVP_DigestSign(m, sig, &len, tbs, n), 1);
        assert_int_equal(len, 64);
        assert_true(verify(pk, s, tbs, n, sig, len));
        EVP_MD_CTX_free(m);
    }
    EVP_MD_CTX_free(tmpl);
    EVP_PKEY_free(pk);
}

static void test_every_scheme_verifies(void **state)
{
    ring r;

    (void)state;
    ring_load(&r, all_ids, 4);
    /* PSS and PKCS#1 with SHA-256/384/512, each three times. */
    assert_int_equal(sign_all_schemes(&r, "rsa", 100), 6 * 3);
    assert_true(sign_all_schemes(&r, "p256", 200) >= 3);
    assert_true(sign_all_schemes(&r, "p384", 300) >= 3);
    assert_int_equal(sign_all_schemes(&r, "ed25519", 400), 3);
    ring_free(&r);
}

static const Lurk__V1__KeyInfo *caps_key(const ring *r, const char *id, ks_ops_answer *ans)
{
    Lurk__V1__Request req;
    Lurk__V1__CapabilitiesRequest cr;

    lurk__v1__request__init(&req);
    lurk__v1__capabilities_request__init(&cr);
    req.version = LURK_PROTOCOL_VERSION;
    req.op_case = LURK__V1__REQUEST__OP_CAPABILITIES;
    req.capabilities = &cr;
    ks_ops_handle(r->ops, &req, "test", ans);
    assert_int_equal(ans->resp.status, LURK__V1__STATUS__STATUS_OK);
    for (size_t i = 0; i < ans->resp.capabilities->n_keys; i++)
        if (strcmp(ans->resp.capabilities->keys[i]->key_id, id) == 0)
            return ans->resp.capabilities->keys[i];
    fail_msg("key %s not in Capabilities", id);
    return NULL;
}

/*
 * id-RSASSA-PSS keys sign rsa_pss_pss_* (verified as a TLS peer verifies:
 * PSS, MGF1 = the scheme's hash, salt = hash length) within their
 * restrictions, never rsae or PKCS#1, and Capabilities says why.
 */
static void test_rsa_pss_keys(void **state)
{
    static const char *const ids[] = { "pss", "pss384" };
    Lurk__V1__Request req;
    Lurk__V1__DecryptRequest dr;
    const Lurk__V1__KeyInfo *ki;
    ks_ops_answer ans;
    uint8_t ct[256];
    ring r;

    (void)state;
    write_pss_key("pss", NULL, 0);
    write_pss_key("pss384", "SHA384", 48);
    ring_load(&r, ids, 2);
    assert_int_equal(ks_keys_find(r.kr, "pss")->desc.type, LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS);
    assert_int_equal(sign_all_schemes(&r, "pss", 500), 3 * 3);
    assert_int_equal(sign_all_schemes(&r, "pss384", 600), 3);
    assert_int_equal(
        sign_check(r.ops, "pss384", LURK_SCHEME_RSA_PSS_PSS_SHA384, 7, key_of(&r, "pss384")), 1);
    assert_int_equal(
        sign_check(r.ops, "pss384", LURK_SCHEME_RSA_PSS_PSS_SHA256, 7, key_of(&r, "pss384")), 0);
    assert_int_equal(
        sign_check(r.ops, "pss", LURK_SCHEME_RSA_PSS_RSAE_SHA256, 7, key_of(&r, "pss")), 0);
    assert_int_equal(sign_check(r.ops, "pss", LURK_SCHEME_RSA_PKCS1_SHA256, 7, key_of(&r, "pss")),
                     0);

    ki = caps_key(&r, "pss", &ans);
    assert_int_equal(ki->type, LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS);
    assert_int_equal(ki->n_schemes, 3);
    assert_null(ki->pss);
    assert_false(ki->decrypt);
    ks_ops_answer_clear(&ans);
    ki = caps_key(&r, "pss384", &ans);
    assert_int_equal(ki->n_schemes, 1);
    assert_int_equal(ki->schemes[0], LURK_SCHEME_RSA_PSS_PSS_SHA384);
    assert_non_null(ki->pss);
    assert_string_equal(ki->pss->hash, "SHA384");
    assert_string_equal(ki->pss->mgf1_hash, "SHA384");
    assert_int_equal(ki->pss->min_salt_len, 48);
    ks_ops_answer_clear(&ans);

    /* RSA key exchange: refused with a reason an operator understands. */
    lurk__v1__request__init(&req);
    lurk__v1__decrypt_request__init(&dr);
    req.version = LURK_PROTOCOL_VERSION;
    req.id = 9;
    req.op_case = LURK__V1__REQUEST__OP_DECRYPT;
    req.decrypt = &dr;
    memset(ct, 0x01, sizeof(ct));
    dr.key_id = "pss";
    dr.ciphertext.data = ct;
    dr.ciphertext.len = sizeof(ct);
    dr.client_version = 0x0303;
    ks_ops_handle(r.ops, &req, "test", &ans);
    assert_int_not_equal(ans.resp.status, LURK__V1__STATUS__STATUS_OK);
    assert_non_null(strstr(ans.resp.detail, "RSA-PSS key only signs"));
    ks_ops_answer_clear(&ans);
    ring_free(&r);
}

/* More (key, scheme) pairs than slots, in turn: every one evicts another. */
static void test_more_pairs_than_slots(void **state)
{
    char ids[24][8];
    const char *idp[24];
    ring r;

    (void)state;
    for (int i = 0; i < 24; i++) {
        snprintf(ids[i], sizeof(ids[i]), "k%02d", i);
        idp[i] = ids[i];
        write_key(ids[i], i % 3 == 0 ? "ED25519" : "EC", i % 3 == 0 ? NULL : "P-256");
    }
    ring_load(&r, idp, 24);
    for (uint32_t round = 0; round < 3; round++)
        for (int i = 0; i < 24; i++)
            assert_int_equal(
                sign_check(r.ops, ids[i],
                           i % 3 == 0 ? LURK_SCHEME_ED25519 : LURK_SCHEME_ECDSA_SECP256R1_SHA256,
                           round * 100 + (uint32_t)i, key_of(&r, ids[i])),
                1);
    ring_free(&r);
}

/*
 * A reload: the same ids, new keys. The old table is still in use while the
 * new one serves (the daemon frees it when its last request is answered),
 * then freed, and the next table may reuse its memory: each table's
 * signatures must be by its own keys throughout.
 */
static void test_reload_uses_the_new_keys(void **state)
{
    static const char *const ids[] = { "p256", "ed25519" };
    ring old, cur;

    (void)state;
    ring_load(&old, ids, 2);
    assert_int_equal(
        sign_check(old.ops, "p256", LURK_SCHEME_ECDSA_SECP256R1_SHA256, 1, key_of(&old, "p256")),
        1);
    assert_int_equal(
        sign_check(old.ops, "ed25519", LURK_SCHEME_ED25519, 1, key_of(&old, "ed25519")), 1);
    for (uint32_t gen = 0; gen < 4; gen++) {
        write_key("p256", "EC", "P-256");
        write_key("ed25519", "ED25519", NULL);
        ring_load(&cur, ids, 2);
        assert_true(ks_keys_find(cur.kr, "p256")->serial != ks_keys_find(old.kr, "p256")->serial);
        assert_true(ks_keys_find(cur.kr, "p256")->serial != 0);
        for (uint32_t i = 0; i < 2; i++) {
            assert_int_equal(sign_check(cur.ops, "p256", LURK_SCHEME_ECDSA_SECP256R1_SHA256,
                                        gen * 10 + i, key_of(&cur, "p256")),
                             1);
            assert_int_equal(sign_check(cur.ops, "ed25519", LURK_SCHEME_ED25519, gen * 10 + i,
                                        key_of(&cur, "ed25519")),
                             1);
            /* The old table, still serving its last requests, keeps its keys. */
            assert_int_equal(sign_check(old.ops, "p256", LURK_SCHEME_ECDSA_SECP256R1_SHA256,
                                        gen * 10 + i, key_of(&old, "p256")),
                             1);
        }
        ring_free(&old);
        old = cur;
        assert_int_equal(
            sign_check(old.ops, "ed25519", LURK_SCHEME_ED25519, gen, key_of(&old, "ed25519")), 1);
    }
    ring_free(&old);
}

/*
 * A provider whose contexts cannot be duplicated: the request signs on a
 * fresh context, correctly, and leaves no error behind (sign_check checks
 * the queue), both when the template is first made and when an existing
 * template stops copying.
 */
static void test_copy_failure_falls_back(void **state)
{
    ring r;

    (void)state;
    ks_ops_thread_cleanup();
    ring_load(&r, all_ids, 4);
    ks_ops_test_copy_fails = 1;
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(
            sign_check(r.ops, "p256", LURK_SCHEME_ECDSA_SECP256R1_SHA256, i, key_of(&r, "p256")),
            1);
        assert_int_equal(
            sign_check(r.ops, "ed25519", LURK_SCHEME_ED25519, i, key_of(&r, "ed25519")), 1);
        assert_int_equal(
            sign_check(r.ops, "rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA256, i, key_of(&r, "rsa")), 1);
    }
    ks_ops_test_copy_fails = 0;
    /* Templates made now, then the copies fail on a hit. */
    assert_int_equal(
        sign_check(r.ops, "p384", LURK_SCHEME_ECDSA_SECP384R1_SHA384, 1, key_of(&r, "p384")), 1);
    ks_ops_test_copy_fails = 1;
    assert_int_equal(
        sign_check(r.ops, "p384", LURK_SCHEME_ECDSA_SECP384R1_SHA384, 2, key_of(&r, "p384")), 1);
    ks_ops_test_copy_fails = 0;
    assert_int_equal(
        sign_check(r.ops, "p384", LURK_SCHEME_ECDSA_SECP384R1_SHA384, 3, key_of(&r, "p384")), 1);
    ring_free(&r);
}

typedef struct {
    const ring *r;
    EVP_PKEY *pk[4];
    uint32_t seed;
    int failures;
    char why[512];
} thread_arg;

static void *signer(void *arg)
{
    thread_arg *t = arg;

    for (uint32_t i = 0; i < 60; i++) {
        size_t k = (t->seed + i) % 4;
        const char *id = all_ids[k];
        uint32_t code = k == 0 ? LURK_SCHEME_RSA_PSS_RSAE_SHA256
            : k == 1           ? LURK_SCHEME_ECDSA_SECP256R1_SHA256
            : k == 2           ? LURK_SCHEME_ECDSA_SECP384R1_SHA384
                               : LURK_SCHEME_ED25519;

        if (try_sign(t->r->ops, id, code, t->seed * 1000 + i, t->pk[k], t->why, sizeof(t->why))
            != 1)
            t->failures++;
    }
    /* Exit with the templates in place: the thread's destructor frees them. */
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[4];
    thread_arg args[4];
    ring r;

    (void)state;
    ring_load(&r, all_ids, 4);
    memset(args, 0, sizeof(args));
    for (uint32_t i = 0; i < 4; i++) {
        args[i].r = &r;
        args[i].seed = i;
        for (size_t k = 0; k < 4; k++)
            args[i].pk[k] = key_of(&r, all_ids[k]);
        assert_int_equal(pthread_create(&th[i], NULL, signer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (args[i].failures != 0)
            print_error("thread %d: %d failures, last: %s\n", i, args[i].failures, args[i].why);
        assert_int_equal(args[i].failures, 0);
    }
    ring_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ed25519_context_copies),
        cmocka_unit_test(test_every_scheme_verifies),
        cmocka_unit_test(test_rsa_pss_keys),
        cmocka_unit_test(test_more_pairs_than_slots),
        cmocka_unit_test(test_reload_uses_the_new_keys),
        cmocka_unit_test(test_copy_failure_falls_back),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
