/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS-context policy: what the key server agrees to sign. Every form
 * libssl produces for a server must pass for every scheme that fits the
 * key; everything else must be refused with the status the edge acts on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "ks_policy.h"

#define ST_OK        LURK__V1__STATUS__STATUS_OK
#define ST_NOT_TLS   LURK__V1__STATUS__STATUS_NOT_TLS_CONTEXT
#define ST_SCHEME    LURK__V1__STATUS__STATUS_UNSUPPORTED_SCHEME
#define ST_PERMITTED LURK__V1__STATUS__STATUS_NOT_PERMITTED
#define ST_MALFORMED LURK__V1__STATUS__STATUS_MALFORMED

#define KT_RSA     LURK__V1__KEY_TYPE__KEY_TYPE_RSA
#define KT_EC      LURK__V1__KEY_TYPE__KEY_TYPE_EC
#define KT_ED25519 LURK__V1__KEY_TYPE__KEY_TYPE_ED25519
#define KT_RSA_PSS LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS

#define BUF_MAX 4096u

static const char SERVER_CTX[] = "TLS 1.3, server CertificateVerify";
static const char CLIENT_CTX[] = "TLS 1.3, client CertificateVerify";

static const ks_key_desc k_rsa = { KT_RSA, NULL, 2048, { 0 } };
static const ks_key_desc k_p256 = { KT_EC, "prime256v1", 256, { 0 } };
static const ks_key_desc k_p384 = { KT_EC, "secp384r1", 384, { 0 } };
static const ks_key_desc k_p521 = { KT_EC, "secp521r1", 521, { 0 } };
static const ks_key_desc k_ed = { KT_ED25519, NULL, 256, { 0 } };
/* Unrestricted id-RSASSA-PSS: only for the DHE rule, not in all_keys. */
static const ks_key_desc k_rsa_pss = { KT_RSA_PSS, NULL, 2048, { 0 } };
static const ks_key_desc *const all_keys[] = { &k_rsa, &k_p256, &k_p384, &k_p521, &k_ed };
#define N_KEYS (sizeof(all_keys) / sizeof(all_keys[0]))

/* Real ECDHE shares, made once per run. */
static uint8_t pt_p256[65], pt_p384[97], pt_p521[133], pt_x25519[32], pt_x448[56];

typedef struct {
    uint16_t group;
    const uint8_t *pt;
    size_t len;
} share;

static const share shares[] = {
    { KS_GROUP_SECP256R1, pt_p256, sizeof(pt_p256) },
    { KS_GROUP_SECP384R1, pt_p384, sizeof(pt_p384) },
    { KS_GROUP_SECP521R1, pt_p521, sizeof(pt_p521) },
    { KS_GROUP_X25519, pt_x25519, sizeof(pt_x25519) },
    { KS_GROUP_X448, pt_x448, sizeof(pt_x448) },
};
#define N_SHARES (sizeof(shares) / sizeof(shares[0]))

/* Real FFDHE parameters and a real share, Ys padded to |p| as libssl does. */
typedef struct {
    const char *name;
    uint8_t p[1024], g[1024], ys[1024];
    size_t plen, glen, yslen;
} dh_params;

static dh_params dh[5] = {
    { .name = "ffdhe2048" }, { .name = "ffdhe3072" }, { .name = "ffdhe4096" },
    { .name = "ffdhe6144" }, { .name = "ffdhe8192" },
};
#define N_DH (sizeof(dh) / sizeof(dh[0]))

/* ------------------------------------------------------------------ */
/* Builders                                                           */
/* ------------------------------------------------------------------ */

static void fill_randoms(uint8_t *out)
{
    /* Fixed, non-space bytes: the TLS 1.2 form must not depend on luck. */
    for (size_t i = 0; i < 64; i++)
        out[i] = (uint8_t)(0xa5u ^ (i * 31u));
}

static void fill_hash(uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(i * 7u + 1u);
}

static size_t build_tls13(uint8_t *out, const char *label, size_t hash_len)
{
    size_t n = 0;

    memset(out, 0x20, 64);
    n = 64;
    memcpy(out + n, label, strlen(label));
    n += strlen(label);
    out[n++] = 0x00;
    fill_hash(out + n, hash_len);
    return n + hash_len;
}

static size_t build_ecdhe_raw(uint8_t *out, uint8_t curve_type, uint16_t group, size_t declared_len,
                              const uint8_t *pt, size_t pt_len)
{
    fill_randoms(out);
    out[64] = curve_type;
    out[65] = (uint8_t)(group >> 8);
    out[66] = (uint8_t)group;
    out[67] = (uint8_t)declared_len;
    memcpy(out + 68, pt, pt_len);
    return 68 + pt_len;
}

static size_t build_ecdhe(uint8_t *out, const share *s)
{
    return build_ecdhe_raw(out, 3, s->group, s->len, s->pt, s->len);
}

static size_t put_vec16(uint8_t *out, const uint8_t *v, size_t n)
{
    out[0] = (uint8_t)(n >> 8);
    out[1] = (uint8_t)n;
    if (n > 0)
        memcpy(out + 2, v, n);
    return 2 + n;
}

static size_t build_dhe_raw(uint8_t *out, const uint8_t *p, size_t plen, const uint8_t *g,
                            size_t glen, const uint8_t *ys, size_t yslen)
{
    size_t n = 64;

    fill_randoms(out);
    n += put_vec16(out + n, p, plen);
    n += put_vec16(out + n, g, glen);
    n += put_vec16(out + n, ys, yslen);
    return n;
}

static size_t build_dhe(uint8_t *out, const dh_params *d)
{
    return build_dhe_raw(out, d->p, d->plen, d->g, d->glen, d->ys, d->yslen);
}

static void ec_share(const char *curve, uint8_t *out, size_t want)
{
    EVP_PKEY *pk = EVP_EC_gen(curve);
    size_t n = 0;

    assert_non_null(pk);
    assert_int_equal(EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, out, want, &n),
                     1);
    assert_int_equal(n, want);
    assert_int_equal(out[0], 0x04);
    EVP_PKEY_free(pk);
}

static void mont_share(uint8_t *out, size_t n)
{
    assert_int_equal(RAND_bytes(out, (int)n), 1);
    out[0] |= 1; /* never all zero */
}

static void bn_out(EVP_PKEY *pk, const char *name, uint8_t *out, size_t *len, size_t pad_to)
{
    BIGNUM *bn = NULL;

    assert_int_equal(EVP_PKEY_get_bn_param(pk, name, &bn), 1);
    *len = pad_to ? pad_to : (size_t)BN_num_bytes(bn);
    assert_true(*len <= 1024);
    assert_int_equal(BN_bn2binpad(bn, out, (int)*len), (int)*len);
    BN_free(bn);
}

static void dh_make(dh_params *d)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
    EVP_PKEY *pk = NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)d->name, 0),
        OSSL_PARAM_construct_end(),
    };

    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_params(ctx, params), 1);
    assert_int_equal(EVP_PKEY_generate(ctx, &pk), 1);
    bn_out(pk, OSSL_PKEY_PARAM_FFC_P, d->p, &d->plen, 0);
    bn_out(pk, OSSL_PKEY_PARAM_FFC_G, d->g, &d->glen, 0);
    bn_out(pk, OSSL_PKEY_PARAM_PUB_KEY, d->ys, &d->yslen, d->plen);
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(ctx);
}

static int setup_material(void **state)
{
    (void)state;
    ec_share("P-256", pt_p256, sizeof(pt_p256));
    ec_share("P-384", pt_p384, sizeof(pt_p384));
    ec_share("P-521", pt_p521, sizeof(pt_p521));
    mont_share(pt_x25519, sizeof(pt_x25519));
    mont_share(pt_x448, sizeof(pt_x448));
    for (size_t i = 0; i < N_DH; i++)
        dh_make(&dh[i]);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Assertions                                                         */
/* ------------------------------------------------------------------ */

static ks_verdict sign_at(int line, const ks_policy *pol, const ks_key_desc *key, uint32_t scheme,
                          const uint8_t *tbs, size_t len, Lurk__V1__Status want,
                          ks_ctx_kind want_kind)
{
    ks_verdict v = ks_policy_check_sign(pol, key, scheme, tbs, len);

    if (v.reason == NULL) {
        print_error("line %d: verdict without a reason\n", line);
        fail();
    }
    if (v.status != want || (want == ST_OK && v.kind != want_kind)) {
        print_error("line %d: key %s/%s scheme 0x%04x len %zu: got %s (%s) kind %s,"
                    " want %s kind %s\n",
                    line, lurk_key_type_name(key->type), key->group ? key->group : "-",
                    (unsigned)scheme, len, lurk_status_name(v.status), v.reason,
                    ks_ctx_kind_name(v.kind), lurk_status_name(want), ks_ctx_kind_name(want_kind));
        fail();
    }
    return v;
}

#define EXPECT_OK(pol, key, scheme, tbs, len, kind) \
    sign_at(__LINE__, (pol), (key), (scheme), (tbs), (len), ST_OK, (kind))
#define EXPECT_REFUSED(pol, key, scheme, tbs, len, st) \
    sign_at(__LINE__, (pol), (key), (scheme), (tbs), (len), (st), KS_CTX_NONE)

/* A scheme that fits the key in any TLS version. */
static uint32_t any_scheme(const ks_key_desc *key)
{
    if (key->type == KT_RSA)
        return LURK_SCHEME_RSA_PSS_RSAE_SHA256;
    if (key->type == KT_ED25519)
        return LURK_SCHEME_ED25519;
    if (strcmp(key->group, "secp384r1") == 0)
        return LURK_SCHEME_ECDSA_SECP384R1_SHA384;
    if (strcmp(key->group, "secp521r1") == 0)
        return LURK_SCHEME_ECDSA_SECP521R1_SHA512;
    return LURK_SCHEME_ECDSA_SECP256R1_SHA256;
}

/* Checks `tbs` is refused as NOT_TLS_CONTEXT for every key. */
static void refused_for_all_keys(int line, const ks_policy *pol, const uint8_t *tbs, size_t len)
{
    for (size_t k = 0; k < N_KEYS; k++)
        sign_at(line, pol, all_keys[k], any_scheme(all_keys[k]), tbs, len, ST_NOT_TLS, KS_CTX_NONE);
}
#define NOT_TLS(pol, tbs, len) refused_for_all_keys(__LINE__, (pol), (tbs), (len))

/* ------------------------------------------------------------------ */
/* Defaults and small helpers                                         */
/* ------------------------------------------------------------------ */

static void test_default_policy(void **state)
{
    ks_policy pol = ks_policy_default();
    static const uint16_t groups[] = { KS_GROUP_SECP256R1, KS_GROUP_SECP384R1, KS_GROUP_SECP521R1,
                                       KS_GROUP_X25519, KS_GROUP_X448 };
    uint32_t seen = 0;

    (void)state;
    assert_int_equal(pol.allow_tls13, 1);
    assert_int_equal(pol.allow_tls12, 1);
    assert_int_equal(pol.allow_ffdhe, 1);
    assert_int_equal(pol.allow_decrypt, 1);
    assert_int_equal(pol.min_ffdhe_bits, 2048);
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        uint32_t bit = ks_policy_group_bit(groups[i]);
        assert_int_not_equal(bit, 0);
        assert_int_equal(bit & (bit - 1), 0); /* one bit */
        assert_int_equal(seen & bit, 0);      /* distinct */
        assert_int_equal(pol.groups & bit, bit);
        seen |= bit;
    }
    assert_int_equal(pol.groups, seen);
    assert_int_equal(ks_policy_group_bit(0), 0);
    assert_int_equal(ks_policy_group_bit(22), 0);     /* secp256k1 */
    assert_int_equal(ks_policy_group_bit(0x0100), 0); /* ffdhe2048 */
    assert_int_equal(ks_policy_group_bit(0xffff), 0);
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(ks_ctx_kind_name(KS_CTX_NONE), "none");
    assert_non_null(strstr(ks_ctx_kind_name(KS_CTX_TLS13_SERVER_CV), "1.3"));
    assert_non_null(strstr(ks_ctx_kind_name(KS_CTX_TLS12_SKE_ECDHE), "ECDHE"));
    assert_non_null(strstr(ks_ctx_kind_name(KS_CTX_TLS12_SKE_FFDHE), "DHE"));
    assert_string_equal(ks_ctx_kind_name((ks_ctx_kind)99), "none");
}

/* ------------------------------------------------------------------ */
/* Schemes                                                            */
/* ------------------------------------------------------------------ */

static void test_scheme_fits_key_type(void **state)
{
    ks_policy pol = ks_policy_default();

    (void)state;
    pol.allow_legacy_hashes = 1;
    for (size_t k = 0; k < N_KEYS; k++) {
        for (size_t i = 0; lurk_scheme_at(i) != NULL; i++) {
            const lurk_scheme *s = lurk_scheme_at(i);
            ks_verdict v = ks_policy_check_scheme(&pol, all_keys[k], s);
            assert_non_null(v.reason);
            assert_int_equal(v.status, s->key_type == all_keys[k]->type ? ST_OK : ST_SCHEME);
        }
        assert_int_equal(ks_policy_check_scheme(&pol, all_keys[k], NULL).status, ST_SCHEME);
    }
    /* Ed25519 keys sign with 0x0807 and nothing else. */
    for (size_t i = 0; lurk_scheme_at(i) != NULL; i++) {
        const lurk_scheme *s = lurk_scheme_at(i);
        assert_int_equal(ks_policy_check_scheme(&pol, &k_ed, s).status,
                         s->code == LURK_SCHEME_ED25519 ? ST_OK : ST_SCHEME);
    }
    {
        ks_key_desc none = { LURK__V1__KEY_TYPE__KEY_TYPE_UNSPECIFIED, NULL, 0, { 0 } };
        for (size_t i = 0; lurk_scheme_at(i) != NULL; i++)
            assert_int_equal(ks_policy_check_scheme(&pol, &none, lurk_scheme_at(i)).status,
                             ST_SCHEME);
    }
}

/* ks_key_desc of an RSA-PSS key; md NULL: unrestricted. */
static ks_key_desc pss_key(const char *md, const char *mgf1_md, unsigned int min_saltlen)
{
    ks_key_desc k = { KT_RSA_PSS, NULL, 2048, { 0 } };

    if (md != NULL) {
        k.pss.restricted = 1;
        k.pss.md = md;
        k.pss.mgf1_md = mgf1_md;
        k.pss.min_saltlen = min_saltlen;
    }
    return k;
}

/* Exactly the scheme `only` (0: none) passes for `key`; the rest say `why`. */
static void pss_only(int line, const ks_key_desc *key, uint32_t only, const char *why)
{
    ks_policy pol = ks_policy_default();

    pol.allow_legacy_hashes = 1;
    for (size_t i = 0; lurk_scheme_at(i) != NULL; i++) {
        const lurk_scheme *s = lurk_scheme_at(i);
        ks_verdict v = ks_policy_check_scheme(&pol, key, s);

        if (v.status != (s->code == only ? ST_OK : ST_SCHEME)) {
            print_error("line %d: scheme %s: got %s (%s)\n", line, s->name,
                        lurk_status_name(v.status), v.reason);
            fail();
        }
        if (s->key_type == KT_RSA_PSS && s->code != only && strstr(v.reason, why) == NULL) {
            print_error("line %d: scheme %s refused for \"%s\", want \"%s\"\n", line, s->name,
                        v.reason, why);
            fail();
        }
    }
}

/*
 * RSA-PSS keys (RFC 8446 4.2.3): rsa_pss_pss_* only, never rsae or PKCS#1,
 * and within the key's RFC 4055 restrictions, which TLS meets only with
 * hash = MGF1 hash and salt = hash length.
 */
static void test_rsa_pss_restrictions(void **state)
{
    ks_policy pol = ks_policy_default();
    ks_key_desc any = pss_key(NULL, NULL, 0);
    ks_key_desc k;
    uint8_t buf[BUF_MAX];
    size_t n;

    (void)state;
    pol.allow_legacy_hashes = 1;
    for (size_t i = 0; lurk_scheme_at(i) != NULL; i++) {
        const lurk_scheme *s = lurk_scheme_at(i);
        int pss = s->code == LURK_SCHEME_RSA_PSS_PSS_SHA256
            || s->code == LURK_SCHEME_RSA_PSS_PSS_SHA384
            || s->code == LURK_SCHEME_RSA_PSS_PSS_SHA512;

        assert_int_equal(ks_policy_check_scheme(&pol, &any, s).status, pss ? ST_OK : ST_SCHEME);
        /* And an rsaEncryption key never takes rsa_pss_pss_*. */
        if (pss)
            assert_int_equal(ks_policy_check_scheme(&pol, &k_rsa, s).status, ST_SCHEME);
    }
    k = pss_key("SHA384", "SHA384", 48);
    pss_only(__LINE__, &k, LURK_SCHEME_RSA_PSS_PSS_SHA384, "restrict it to another hash");
    k = pss_key("SHA256", "SHA256", 0);
    pss_only(__LINE__, &k, LURK_SCHEME_RSA_PSS_PSS_SHA256, "restrict it to another hash");
    /* MGF1 with another hash than the signature's: no TLS scheme fits. */
    k = pss_key("SHA256", "SHA384", 32);
    assert_int_equal(
        ks_policy_check_scheme(&pol, &k, lurk_scheme_find(LURK_SCHEME_RSA_PSS_PSS_SHA256)).status,
        ST_SCHEME);
    assert_non_null(strstr(
        ks_policy_check_scheme(&pol, &k, lurk_scheme_find(LURK_SCHEME_RSA_PSS_PSS_SHA256)).reason,
        "MGF1"));
    pss_only(__LINE__, &k, 0, "restrict it to another");
    /* Minimum salt 64: more than SHA-256's 32 and SHA-384's 48 bytes, SHA-512's 64 fits. */
    k = pss_key("SHA256", "SHA256", 64);
    pss_only(__LINE__, &k, 0, "");
    assert_non_null(strstr(
        ks_policy_check_scheme(&pol, &k, lurk_scheme_find(LURK_SCHEME_RSA_PSS_PSS_SHA256)).reason,
        "salt"));
    k = pss_key("SHA384", "SHA384", 64);
    pss_only(__LINE__, &k, 0, "");
    assert_non_null(strstr(
        ks_policy_check_scheme(&pol, &k, lurk_scheme_find(LURK_SCHEME_RSA_PSS_PSS_SHA384)).reason,
        "salt"));
    k = pss_key("SHA512", "SHA512", 64);
    pss_only(__LINE__, &k, LURK_SCHEME_RSA_PSS_PSS_SHA512, "restrict it to another hash");
    k = pss_key("SHA512", "SHA512", 65);
    pss_only(__LINE__, &k, 0, "");
    /* Restricted to a hash no TLS scheme uses (e.g. SHA-1): "" matches nothing. */
    k = pss_key("", "", 20);
    pss_only(__LINE__, &k, 0, "restrict it to another hash");

    /* The whole sign check: TLS 1.3 and TLS 1.2 contexts, as for rsaEncryption. */
    k = pss_key("SHA384", "SHA384", 48);
    n = build_tls13(buf, SERVER_CTX, 32);
    EXPECT_OK(&pol, &any, LURK_SCHEME_RSA_PSS_PSS_SHA512, buf, n, KS_CTX_TLS13_SERVER_CV);
    EXPECT_OK(&pol, &k, LURK_SCHEME_RSA_PSS_PSS_SHA384, buf, n, KS_CTX_TLS13_SERVER_CV);
    EXPECT_REFUSED(&pol, &k, LURK_SCHEME_RSA_PSS_PSS_SHA256, buf, n, ST_SCHEME);
    EXPECT_REFUSED(&pol, &any, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n, ST_SCHEME);
    EXPECT_REFUSED(&pol, &any, LURK_SCHEME_RSA_PKCS1_SHA256, buf, n, ST_SCHEME);
    n = build_ecdhe(buf, &shares[0]);
    EXPECT_OK(&pol, &k, LURK_SCHEME_RSA_PSS_PSS_SHA384, buf, n, KS_CTX_TLS12_SKE_ECDHE);
    EXPECT_REFUSED(&pol, &k, LURK_SCHEME_RSA_PSS_PSS_SHA512, buf, n, ST_SCHEME);
}

static void test_unknown_and_wrong_schemes(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];
    size_t n = build_tls13(buf, SERVER_CTX, 32);
    static const uint32_t unknown[] = {
        0x0000,
        0x0201 /* rsa_pkcs1_sha1 */,
        0x0203 /* ecdsa_sha1 */,
        0x0808 /* ed448 */,
        0x0809 /* rsa_pss_pss_sha256 */,
        0x0402,
        0xffff,
        0x10804 /* 0x0804 above 16 bits */,
        0xffffffffu,
    };

    (void)state;
    for (size_t k = 0; k < N_KEYS; k++) {
        for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
            EXPECT_REFUSED(&pol, all_keys[k], unknown[i], buf, n, ST_SCHEME);
        for (size_t i = 0; lurk_scheme_at(i) != NULL; i++) {
            const lurk_scheme *s = lurk_scheme_at(i);
            if (s->key_type != all_keys[k]->type)
                EXPECT_REFUSED(&pol, all_keys[k], s->code, buf, n, ST_SCHEME);
        }
    }
    /* The scheme is judged before the bytes. */
    EXPECT_REFUSED(&pol, &k_ed, LURK_SCHEME_RSA_PSS_RSAE_SHA256, (const uint8_t *)"garbage", 7,
                   ST_SCHEME);
    EXPECT_REFUSED(&pol, &k_rsa, 0x0201, NULL, 0, ST_SCHEME);
}

/*
 * SHA-1 and SHA-224 (TLS 1.2 only): refused by default with a reason that
 * names the setting, signed with legacy_hashes = yes, never in TLS 1.3.
 */
static void test_legacy_hashes(void **state)
{
    static const struct {
        const ks_key_desc *key;
        uint32_t scheme;
    } legacy[] = {
        { &k_rsa, LURK_SCHEME_RSA_PKCS1_SHA1 }, { &k_rsa, LURK_SCHEME_RSA_PKCS1_SHA224 },
        { &k_p256, LURK_SCHEME_ECDSA_SHA1 },    { &k_p384, LURK_SCHEME_ECDSA_SHA224 },
        { &k_p521, LURK_SCHEME_ECDSA_SHA1 },
    };
    ks_policy off = ks_policy_default(), on = ks_policy_default();
    uint8_t ske[BUF_MAX], cv[BUF_MAX];
    size_t n_ske = build_ecdhe(ske, &shares[0]), n_cv = build_tls13(cv, SERVER_CTX, 32);

    (void)state;
    assert_false(off.allow_legacy_hashes);
    on.allow_legacy_hashes = 1;
    for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++) {
        ks_verdict v = EXPECT_REFUSED(&off, legacy[i].key, legacy[i].scheme, ske, n_ske, ST_SCHEME);
        assert_non_null(strstr(v.reason, "legacy_hashes"));
        assert_int_equal(
            ks_policy_check_scheme(&off, legacy[i].key, lurk_scheme_find(legacy[i].scheme)).status,
            ST_SCHEME);
        EXPECT_OK(&on, legacy[i].key, legacy[i].scheme, ske, n_ske, KS_CTX_TLS12_SKE_ECDHE);
        EXPECT_REFUSED(&on, legacy[i].key, legacy[i].scheme, cv, n_cv, ST_SCHEME);
    }
    /* Ed25519 has no legacy form, and a legacy RSA scheme never fits EC. */
    EXPECT_REFUSED(&on, &k_ed, LURK_SCHEME_ECDSA_SHA1, ske, n_ske, ST_SCHEME);
    EXPECT_REFUSED(&on, &k_p256, LURK_SCHEME_RSA_PKCS1_SHA1, ske, n_ske, ST_SCHEME);
}

/* ------------------------------------------------------------------ */
/* TLS 1.3                                                            */
/* ------------------------------------------------------------------ */

static void test_tls13_accepted(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];
    static const size_t hashes[] = { 32, 48 };
    static const struct {
        const ks_key_desc *key;
        uint32_t scheme;
    } ok[] = {
        { &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256 },
        { &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA384 },
        { &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA512 },
        { &k_p256, LURK_SCHEME_ECDSA_SECP256R1_SHA256 },
        { &k_p384, LURK_SCHEME_ECDSA_SECP384R1_SHA384 },
        { &k_p521, LURK_SCHEME_ECDSA_SECP521R1_SHA512 },
        { &k_ed, LURK_SCHEME_ED25519 },
    };

    (void)state;
    for (size_t h = 0; h < 2; h++) {
        size_t n = build_tls13(buf, SERVER_CTX, hashes[h]);
        assert_int_equal(n, 98 + hashes[h]);
        /* The hash follows the cipher suite, not the scheme: every pair. */
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
            ks_verdict v = EXPECT_OK(&pol, ok[i].key, ok[i].scheme, buf, n, KS_CTX_TLS13_SERVER_CV);
            assert_non_null(v.reason);
        }
    }
}

static void test_tls13_scheme_rules(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];
    static const size_t hashes[] = { 32, 48 };
    static const uint32_t pkcs1[] = { LURK_SCHEME_RSA_PKCS1_SHA256, LURK_SCHEME_RSA_PKCS1_SHA384,
                                      LURK_SCHEME_RSA_PKCS1_SHA512 };
    const ks_key_desc *ec_keys[] = { &k_p256, &k_p384, &k_p521 };
    static const uint32_t ec_schemes[] = { LURK_SCHEME_ECDSA_SECP256R1_SHA256,
                                           LURK_SCHEME_ECDSA_SECP384R1_SHA384,
                                           LURK_SCHEME_ECDSA_SECP521R1_SHA512 };

    (void)state;
    for (size_t h = 0; h < 2; h++) {
        size_t n = build_tls13(buf, SERVER_CTX, hashes[h]);
        for (size_t i = 0; i < 3; i++)
            EXPECT_REFUSED(&pol, &k_rsa, pkcs1[i], buf, n, ST_SCHEME);
        for (size_t k = 0; k < 3; k++)
            for (size_t s = 0; s < 3; s++)
                if (k != s)
                    EXPECT_REFUSED(&pol, ec_keys[k], ec_schemes[s], buf, n, ST_SCHEME);
                else
                    EXPECT_OK(&pol, ec_keys[k], ec_schemes[s], buf, n, KS_CTX_TLS13_SERVER_CV);
    }
}

static void test_tls13_curve_aliases(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];
    size_t n = build_tls13(buf, SERVER_CTX, 48);
    const ks_key_desc alias1 = { KT_EC, "P-256", 256, { 0 } };
    const ks_key_desc alias2 = { KT_EC, "secp256r1", 256, { 0 } };
    const ks_key_desc alias3 = { KT_EC, "P-384", 384, { 0 } };
    const ks_key_desc nogroup = { KT_EC, NULL, 256, { 0 } };
    const ks_key_desc other = { KT_EC, "brainpoolP256r1", 256, { 0 } };

    (void)state;
    EXPECT_OK(&pol, &alias1, LURK_SCHEME_ECDSA_SECP256R1_SHA256, buf, n, KS_CTX_TLS13_SERVER_CV);
    EXPECT_OK(&pol, &alias2, LURK_SCHEME_ECDSA_SECP256R1_SHA256, buf, n, KS_CTX_TLS13_SERVER_CV);
    EXPECT_OK(&pol, &alias3, LURK_SCHEME_ECDSA_SECP384R1_SHA384, buf, n, KS_CTX_TLS13_SERVER_CV);
    EXPECT_REFUSED(&pol, &alias1, LURK_SCHEME_ECDSA_SECP384R1_SHA384, buf, n, ST_SCHEME);
    /* Unknown curve: no TLS 1.3 scheme names it. */
    EXPECT_REFUSED(&pol, &nogroup, LURK_SCHEME_ECDSA_SECP256R1_SHA256, buf, n, ST_SCHEME);
    EXPECT_REFUSED(&pol, &other, LURK_SCHEME_ECDSA_SECP256R1_SHA256, buf, n, ST_SCHEME);
}

static void test_tls13_refusals(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX], tmp[BUF_MAX];
    size_t n;

    (void)state;
    /* The client's context: the key server is never a TLS client. */
    for (size_t h = 32; h <= 64; h += 16) {
        ks_verdict v;
        n = build_tls13(buf, CLIENT_CTX, h);
        NOT_TLS(&pol, buf, n);
        v = EXPECT_REFUSED(&pol, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n, ST_NOT_TLS);
        assert_non_null(strstr(v.reason, "client"));
    }
    /* Hash lengths other than 32 and 48 (64: see test_tls13_hash_64). */
    {
        static const size_t bad[] = { 0, 1, 16, 20, 28, 31, 33, 47, 49, 63, 64, 65, 96, 128 };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            n = build_tls13(buf, SERVER_CTX, bad[i]);
            NOT_TLS(&pol, buf, n);
        }
    }
    /* 63 and 65 spaces. */
    n = build_tls13(buf, SERVER_CTX, 32);
    NOT_TLS(&pol, buf + 1, n - 1);
    tmp[0] = 0x20;
    memcpy(tmp + 1, buf, n);
    NOT_TLS(&pol, tmp, n + 1);
    /* 63 spaces but the right length overall (one more hash byte). */
    n = build_tls13(buf, SERVER_CTX, 33);
    NOT_TLS(&pol, buf + 1, n - 1);
    /* Wrong separator after the context string. */
    {
        static const uint8_t seps[] = { 0x01, 0x20, 0x0a, 0xff, '.' };
        for (size_t i = 0; i < sizeof(seps); i++) {
            n = build_tls13(buf, SERVER_CTX, 32);
            buf[64 + strlen(SERVER_CTX)] = seps[i];
            NOT_TLS(&pol, buf, n);
        }
    }
    /* Other context strings. */
    {
        static const char *const labels[] = {
            "TLS 1.3, server certificateverify", "tls 1.3, server CertificateVerify",
            "TLS 1.2, server CertificateVerify", "TLS 1.3, server CertificateVerifx",
            "TLS 1.3, server CertificateVerif",  "TLS 1.3, server CertificateVerify!",
            "TLS 1.3, server Finished",          "",
        };
        for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
            n = build_tls13(buf, labels[i], 32);
            NOT_TLS(&pol, buf, n);
        }
    }
    /* Any other padding byte. */
    n = build_tls13(buf, SERVER_CTX, 32);
    for (size_t i = 0; i < 64; i++) {
        memcpy(tmp, buf, n);
        tmp[i] = 0x00;
        NOT_TLS(&pol, tmp, n);
    }
}

/* Every proper prefix and every one-byte extension of a valid context. */
static void test_tls13_truncated_and_padded(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];

    (void)state;
    for (size_t h = 32; h <= 48; h += 16) {
        size_t n = build_tls13(buf, SERVER_CTX, h);
        for (size_t cut = 0; cut < n; cut++) {
            if (cut == 98 + 32)
                continue; /* a shorter valid context */
            NOT_TLS(&pol, buf, cut);
        }
        for (unsigned b = 0; b < 256; b += 85) {
            buf[n] = (uint8_t)b;
            NOT_TLS(&pol, buf, n + 1);
        }
    }
}

static void test_tls13_bit_flips(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];
    size_t n = build_tls13(buf, SERVER_CTX, 32);

    (void)state;
    for (size_t i = 0; i < 98; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            EXPECT_REFUSED(&pol, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n, ST_NOT_TLS);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    EXPECT_OK(&pol, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n, KS_CTX_TLS13_SERVER_CV);
}

/*
 * No TLS 1.3 cipher suite hashes its transcript with SHA-512, so libssl
 * never hands over 64 bytes, whatever the scheme's own hash: refused for
 * every key and scheme, SHA-512 schemes included, naming the length.
 */
static void test_tls13_hash_64(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];
    size_t n = build_tls13(buf, SERVER_CTX, 64);
    static const struct {
        const ks_key_desc *key;
        uint32_t scheme;
    } rows[] = {
        { &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256 },
        { &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA512 },
        { &k_p256, LURK_SCHEME_ECDSA_SECP256R1_SHA256 },
        { &k_p384, LURK_SCHEME_ECDSA_SECP384R1_SHA384 },
        { &k_p521, LURK_SCHEME_ECDSA_SECP521R1_SHA512 },
        { &k_ed, LURK_SCHEME_ED25519 },
        { &k_rsa_pss, LURK_SCHEME_RSA_PSS_PSS_SHA512 },
    };

    (void)state;
    assert_int_equal(n, 98 + 64);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ks_verdict v = EXPECT_REFUSED(&pol, rows[i].key, rows[i].scheme, buf, n, ST_NOT_TLS);
        assert_non_null(strstr(v.reason, "64-byte transcript hash"));
    }
    /* The same key and scheme sign the 48-byte form: only the length is at fault. */
    EXPECT_OK(&pol, &k_p521, LURK_SCHEME_ECDSA_SECP521R1_SHA512, buf,
              build_tls13(buf, SERVER_CTX, 48), KS_CTX_TLS13_SERVER_CV);
}

/* ------------------------------------------------------------------ */
/* TLS 1.2 ECDHE                                                      */
/* ------------------------------------------------------------------ */

static void test_tls12_ecdhe_accepted(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];

    (void)state;
    for (size_t s = 0; s < N_SHARES; s++) {
        size_t n = build_ecdhe(buf, &shares[s]);
        if (shares[s].group == KS_GROUP_X25519)
            assert_int_equal(n, 100); /* as observed from libssl */
        /* Every scheme of every key type, PKCS#1 and any ECDSA curve too. */
        for (size_t k = 0; k < N_KEYS; k++)
            for (size_t i = 0; lurk_scheme_at(i) != NULL; i++)
                if (lurk_scheme_at(i)->key_type == all_keys[k]->type && !lurk_scheme_at(i)->legacy)
                    EXPECT_OK(&pol, all_keys[k], lurk_scheme_at(i)->code, buf, n,
                              KS_CTX_TLS12_SKE_ECDHE);
    }
}

static void test_tls12_ecdhe_fresh_points(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX], pt[133];
    static const struct {
        const char *curve;
        uint16_t group;
        size_t len;
    } c[] = {
        { "P-256", KS_GROUP_SECP256R1, 65 },
        { "P-384", KS_GROUP_SECP384R1, 97 },
        { "P-521", KS_GROUP_SECP521R1, 133 },
    };

    (void)state;
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < 3; i++) {
            share s = { c[i].group, pt, c[i].len };
            ec_share(c[i].curve, pt, c[i].len);
            EXPECT_OK(&pol, &k_p256, LURK_SCHEME_ECDSA_SECP256R1_SHA256, buf, build_ecdhe(buf, &s),
                      KS_CTX_TLS12_SKE_ECDHE);
        }
    }
}

static void test_tls12_ecdhe_curve_type(void **state)
{
    ks_policy pol = ks_policy_default();
    ks_policy nodh = ks_policy_default();
    uint8_t buf[BUF_MAX];
    static const uint8_t types[] = { 0, 1, 2, 4, 0xff };

    (void)state;
    nodh.allow_ffdhe = 0;
    for (size_t t = 0; t < sizeof(types); t++) {
        for (size_t s = 0; s < N_SHARES; s++) {
            size_t n = build_ecdhe_raw(buf, types[t], shares[s].group, shares[s].len, shares[s].pt,
                                       shares[s].len);
            NOT_TLS(&pol, buf, n);
            NOT_TLS(&nodh, buf, n);
        }
    }
}

static void test_tls12_ecdhe_groups(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];
    static const uint16_t unknown[] = { 0x0000,
                                        0x0016 /* secp256k1 */,
                                        0x001a /* brainpoolP256r1 */,
                                        0x0100 /* ffdhe2048 */,
                                        0x0017 ^ 0x0100,
                                        0xff01,
                                        0xffff };

    (void)state;
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        size_t n = build_ecdhe_raw(buf, 3, unknown[i], 65, pt_p256, 65);
        NOT_TLS(&pol, buf, n);
    }
    /* A group left out by the operator, one at a time. */
    for (size_t s = 0; s < N_SHARES; s++) {
        ks_policy narrow = ks_policy_default();
        narrow.groups &= ~ks_policy_group_bit(shares[s].group);
        for (size_t o = 0; o < N_SHARES; o++) {
            size_t n = build_ecdhe(buf, &shares[o]);
            if (o == s)
                NOT_TLS(&narrow, buf, n);
            else
                EXPECT_OK(&narrow, &k_rsa, LURK_SCHEME_RSA_PKCS1_SHA256, buf, n,
                          KS_CTX_TLS12_SKE_ECDHE);
        }
    }
    {
        ks_policy none = ks_policy_default();
        none.groups = 0;
        for (size_t s = 0; s < N_SHARES; s++)
            NOT_TLS(&none, buf, build_ecdhe(buf, &shares[s]));
    }
}

static void test_tls12_ecdhe_point_length(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX], pt[256];
    size_t n;

    (void)state;
    /* Another group's share under this group, both lengths consistent. */
    for (size_t s = 0; s < N_SHARES; s++)
        for (size_t o = 0; o < N_SHARES; o++)
            if (shares[o].len != shares[s].len) {
                n = build_ecdhe_raw(buf, 3, shares[s].group, shares[o].len, shares[o].pt,
                                    shares[o].len);
                NOT_TLS(&pol, buf, n);
            }
    /* Declared length right, bytes short or long, and the reverse. */
    for (size_t s = 0; s < N_SHARES; s++) {
        size_t len = shares[s].len;
        memcpy(pt, shares[s].pt, len);
        pt[len] = 0x01;
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, shares[s].group, len, pt, len - 1));
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, shares[s].group, len, pt, len + 1));
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, shares[s].group, len - 1, pt, len - 1));
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, shares[s].group, len + 1, pt, len + 1));
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, shares[s].group, 0, pt, 0));
    }
}

static void test_tls12_ecdhe_point_encoding(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX], pt[133];
    static const struct {
        const uint8_t *pt;
        uint16_t group;
        size_t len;
    } nist[] = {
        { pt_p256, KS_GROUP_SECP256R1, 65 },
        { pt_p384, KS_GROUP_SECP384R1, 97 },
        { pt_p521, KS_GROUP_SECP521R1, 133 },
    };

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        size_t len = nist[i].len, clen = (len - 1) / 2 + 1;
        uint8_t y_odd = nist[i].pt[len - 1] & 1;

        /* Compressed, with its own (shorter) length. */
        pt[0] = (uint8_t)(0x02 | y_odd);
        memcpy(pt + 1, nist[i].pt + 1, clen - 1);
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, nist[i].group, clen, pt, clen));
        /* Hybrid: full length, valid coordinates, wrong form byte. */
        memcpy(pt, nist[i].pt, len);
        pt[0] = (uint8_t)(0x06 | y_odd);
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, nist[i].group, len, pt, len));
        pt[0] = 0x00;
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, nist[i].group, len, pt, len));
        /* Off the curve: y changed, then (0, 0), then x = y = 0xff..ff (>= p). */
        memcpy(pt, nist[i].pt, len);
        pt[len - 1] ^= 0x01;
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, nist[i].group, len, pt, len));
        memset(pt + 1, 0x00, len - 1);
        pt[0] = 0x04;
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, nist[i].group, len, pt, len));
        memset(pt + 1, 0xff, len - 1);
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, nist[i].group, len, pt, len));
        /* Another curve's coordinates, cut or padded to fit: not on this curve. */
        {
            const uint8_t *o = nist[(i + 1) % 3].pt;
            size_t olen = nist[(i + 1) % 3].len;
            memset(pt, 0x5a, len);
            memcpy(pt, o, olen < len ? olen : len);
        }
        pt[0] = 0x04;
        NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, nist[i].group, len, pt, len));
        /* Every single-bit flip of the point, form byte included. */
        for (size_t b = 0; b < len; b++) {
            for (int bit = 0; bit < 8; bit++) {
                memcpy(pt, nist[i].pt, len);
                pt[b] ^= (uint8_t)(1u << bit);
                NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, nist[i].group, len, pt, len));
            }
        }
    }
    /* All-zero Montgomery shares. */
    memset(pt, 0, sizeof(pt));
    NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, KS_GROUP_X25519, 32, pt, 32));
    NOT_TLS(&pol, buf, build_ecdhe_raw(buf, 3, KS_GROUP_X448, 56, pt, 56));
    pt[31] = 0x80;
    EXPECT_OK(&pol, &k_ed, LURK_SCHEME_ED25519, buf,
              build_ecdhe_raw(buf, 3, KS_GROUP_X25519, 32, pt, 32), KS_CTX_TLS12_SKE_ECDHE);
}

static void test_tls12_ecdhe_truncated_and_padded(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];

    (void)state;
    for (size_t s = 0; s < N_SHARES; s++) {
        size_t n = build_ecdhe(buf, &shares[s]);
        for (size_t cut = 0; cut < n; cut++)
            NOT_TLS(&pol, buf, cut);
        for (unsigned b = 0; b < 256; b += 51) {
            buf[n] = (uint8_t)b;
            NOT_TLS(&pol, buf, n + 1);
        }
        /* Header bit flips: curve type, group, length. */
        for (size_t i = 64; i < 68; i++) {
            for (int bit = 0; bit < 8; bit++) {
                buf[i] ^= (uint8_t)(1u << bit);
                NOT_TLS(&pol, buf, n);
                buf[i] ^= (uint8_t)(1u << bit);
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* TLS 1.2 DHE                                                        */
/* ------------------------------------------------------------------ */

static void test_tls12_ffdhe_accepted(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];

    (void)state;
    assert_int_equal(dh[0].plen, 256);
    for (size_t d = 0; d < N_DH; d++) {
        size_t n = build_dhe(buf, &dh[d]);
        assert_true(n <= LURK_MAX_TBS);
        /* Every scheme of the RSA key types; other keys: test_tls12_ffdhe_rules. */
        for (size_t i = 0; lurk_scheme_at(i) != NULL; i++) {
            const lurk_scheme *sc = lurk_scheme_at(i);
            if (sc->legacy)
                continue;
            if (sc->key_type == KT_RSA)
                EXPECT_OK(&pol, &k_rsa, sc->code, buf, n, KS_CTX_TLS12_SKE_FFDHE);
            if (sc->key_type == KT_RSA_PSS)
                EXPECT_OK(&pol, &k_rsa_pss, sc->code, buf, n, KS_CTX_TLS12_SKE_FFDHE);
        }
    }
    /* g with a leading zero: only Ys has a fixed length. */
    {
        const dh_params *d = &dh[0];
        uint8_t g2[2] = { 0x00, d->g[0] };
        EXPECT_OK(&pol, &k_rsa, LURK_SCHEME_RSA_PKCS1_SHA256, buf,
                  build_dhe_raw(buf, d->p, d->plen, g2, 2, d->ys, d->yslen),
                  KS_CTX_TLS12_SKE_FFDHE);
    }
}

/*
 * The two rules that follow what libssl writes: DHE parameters are signed
 * only by RSA keys (there are no DHE-ECDSA or DHE-EdDSA suites), and Ys is
 * exactly as long as p (libssl left-pads it). One row per rule and side.
 */
static void test_tls12_ffdhe_rules(void **state)
{
    ks_policy pol = ks_policy_default();
    const dh_params *d = &dh[0];
    uint8_t buf[BUF_MAX], ys[1100];
    size_t z = 0;
    static const struct {
        const char *what;
        const ks_key_desc *key;
        uint32_t scheme;
        int ys_form; /* 0: padded to |p|, 1: leading zeros cut, 2: one zero more */
        Lurk__V1__Status want;
        const char *reason; /* a part of the refusal's reason */
    } rows[] = {
        { "rsaEncryption key", &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, 0, ST_OK, NULL },
        { "rsaEncryption key, PKCS#1", &k_rsa, LURK_SCHEME_RSA_PKCS1_SHA384, 0, ST_OK, NULL },
        { "RSA-PSS key", &k_rsa_pss, LURK_SCHEME_RSA_PSS_PSS_SHA256, 0, ST_OK, NULL },
        { "P-256 key", &k_p256, LURK_SCHEME_ECDSA_SECP256R1_SHA256, 0, ST_NOT_TLS, "RSA key" },
        { "P-384 key", &k_p384, LURK_SCHEME_ECDSA_SECP384R1_SHA384, 0, ST_NOT_TLS, "RSA key" },
        { "P-521 key", &k_p521, LURK_SCHEME_ECDSA_SECP521R1_SHA512, 0, ST_NOT_TLS, "RSA key" },
        { "Ed25519 key", &k_ed, LURK_SCHEME_ED25519, 0, ST_NOT_TLS, "RSA key" },
        { "Ys shorter than p", &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, 1, ST_NOT_TLS,
          "as long as p" },
        { "Ys longer than p", &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, 2, ST_NOT_TLS,
          "as long as p" },
        { "Ys shorter than p, EC key", &k_p256, LURK_SCHEME_ECDSA_SECP256R1_SHA256, 1, ST_NOT_TLS,
          "as long as p" },
    };

    (void)state;
    /* A Ys with a leading zero byte, so that cutting it keeps the value. */
    memcpy(ys, d->ys, d->yslen);
    ys[0] = 0x00;
    while (z < d->yslen && ys[z] == 0)
        z++;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t n;
        ks_verdict v;

        if (rows[i].ys_form == 0) {
            n = build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, ys, d->yslen);
        } else if (rows[i].ys_form == 1) {
            n = build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, ys + z, d->yslen - z);
        } else {
            uint8_t longer[1100];
            longer[0] = 0x00;
            memcpy(longer + 1, ys, d->yslen);
            n = build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, longer, d->yslen + 1);
        }
        v = ks_policy_check_sign(&pol, rows[i].key, rows[i].scheme, buf, n);
        if (v.status != rows[i].want || (rows[i].want == ST_OK && v.kind != KS_CTX_TLS12_SKE_FFDHE)
            || (rows[i].reason != NULL && strstr(v.reason, rows[i].reason) == NULL)) {
            print_error("row \"%s\": got %s (%s)\n", rows[i].what, lurk_status_name(v.status),
                        v.reason);
            fail();
        }
    }
}

static void test_tls12_ffdhe_policy(void **state)
{
    ks_policy nodh = ks_policy_default();
    ks_policy min3072 = ks_policy_default();
    uint8_t buf[BUF_MAX];

    (void)state;
    nodh.allow_ffdhe = 0;
    min3072.min_ffdhe_bits = 3072;
    for (size_t d = 0; d < N_DH; d++) {
        size_t n = build_dhe(buf, &dh[d]);
        NOT_TLS(&nodh, buf, n);
        if (dh[d].plen * 8 < 3072)
            NOT_TLS(&min3072, buf, n);
        else
            EXPECT_OK(&min3072, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n,
                      KS_CTX_TLS12_SKE_FFDHE);
    }
    /* ECDHE is unaffected by the DHE switch. */
    for (size_t s = 0; s < N_SHARES; s++)
        EXPECT_OK(&nodh, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, build_ecdhe(buf, &shares[s]),
                  KS_CTX_TLS12_SKE_ECDHE);
}

static void test_tls12_ffdhe_refusals(void **state)
{
    ks_policy pol = ks_policy_default();
    const dh_params *d = &dh[0];
    uint8_t buf[BUF_MAX], v[1100], p[1100];
    static const uint8_t zero[1] = { 0 }, one[1] = { 1 };
    size_t n;

    (void)state;
    /* g = 0, 1, empty, 0 with padding, p - 1, p, longer than p. */
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, zero, 1, d->ys, d->yslen));
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, one, 1, d->ys, d->yslen));
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, NULL, 0, d->ys, d->yslen));
    memset(v, 0, d->plen);
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, v, d->plen, d->ys, d->yslen));
    v[d->plen - 1] = 1;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, v, d->plen, d->ys, d->yslen));
    memcpy(v, d->p, d->plen);
    v[d->plen - 1] -= 1;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, v, d->plen, d->ys, d->yslen));
    memcpy(v, d->p, d->plen);
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, v, d->plen, d->ys, d->yslen));
    v[0] = 0;
    memcpy(v + 1, d->p, d->plen);
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, v, d->plen + 1, d->ys, d->yslen));
    /* g = 2 and Ys = 2 in more bytes than p has: the lengths alone refuse. */
    memset(v, 0, d->plen + 1);
    v[d->plen] = 2;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, v, d->plen + 1, d->ys, d->yslen));
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, v, d->plen + 1));
    EXPECT_OK(&pol, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf,
              build_dhe_raw(buf, d->p, d->plen, v + 1, d->plen, d->ys, d->yslen),
              KS_CTX_TLS12_SKE_FFDHE);
    /* p - 2 is the largest acceptable g. */
    memcpy(v, d->p, d->plen);
    v[d->plen - 1] -= 2;
    EXPECT_OK(&pol, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf,
              build_dhe_raw(buf, d->p, d->plen, v, d->plen, d->ys, d->yslen),
              KS_CTX_TLS12_SKE_FFDHE);

    /* Ys = 0 (padded or not), 1, p - 1, p, empty, longer than p. */
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, zero, 1));
    memset(v, 0, d->plen);
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, v, d->plen));
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, one, 1));
    memcpy(v, d->p, d->plen);
    v[d->plen - 1] -= 1;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, v, d->plen));
    memcpy(v, d->p, d->plen);
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, v, d->plen));
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, NULL, 0));
    v[0] = 0;
    memcpy(v + 1, d->ys, d->yslen);
    NOT_TLS(&pol, buf, build_dhe_raw(buf, d->p, d->plen, d->g, d->glen, v, d->yslen + 1));

    /* Short p: 1024 and 1536 bits (prefixes of a real prime, made odd). */
    memcpy(p, d->p, d->plen);
    p[127] |= 1;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, p, 128, d->g, d->glen, d->ys + 128, 128));
    p[191] |= 1;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, p, 192, d->g, d->glen, d->ys + 64, 192));
    /* Sizes between the standard ones, and one over 8192 bits. */
    {
        static const size_t odd_sizes[] = { 255, 257, 320, 383, 1025, 1040 };
        for (size_t i = 0; i < sizeof(odd_sizes) / sizeof(odd_sizes[0]); i++) {
            size_t pl = odd_sizes[i];
            memset(p, 0xff, pl);
            n = build_dhe_raw(buf, p, pl, d->g, d->glen, d->ys, d->yslen);
            NOT_TLS(&pol, buf, n);
        }
    }
    /* p with its top bit clear (Ys kept below it so only p is at fault),
     * and p even. */
    memcpy(p, d->p, d->plen);
    memcpy(v, d->ys, d->yslen);
    v[0] = 0x00;
    v[1] = 0x00;
    EXPECT_OK(&pol, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf,
              build_dhe_raw(buf, p, d->plen, d->g, d->glen, v, d->yslen), KS_CTX_TLS12_SKE_FFDHE);
    p[0] = 0x7f;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, p, d->plen, d->g, d->glen, v, d->yslen));
    p[0] = 0x01;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, p, d->plen, d->g, d->glen, v, d->yslen));
    p[0] = 0x00;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, p, d->plen, d->g, d->glen, v, d->yslen));
    memcpy(p, d->p, d->plen);
    p[d->plen - 1] &= 0xfe;
    NOT_TLS(&pol, buf, build_dhe_raw(buf, p, d->plen, d->g, d->glen, d->ys, d->yslen));

    /* Trailing bytes, every prefix, and one-byte extensions. */
    for (size_t k = 0; k < N_DH; k++) {
        n = build_dhe(buf, &dh[k]);
        for (unsigned b = 0; b < 256; b += 85) {
            buf[n] = (uint8_t)b;
            NOT_TLS(&pol, buf, n + 1);
        }
        buf[n] = 0;
        buf[n + 1] = 0;
        NOT_TLS(&pol, buf, n + 2);
    }
    n = build_dhe(buf, d);
    for (size_t cut = 0; cut < n; cut++)
        NOT_TLS(&pol, buf, cut);
    /* Each length field claiming one byte more than is left. */
    for (size_t off = 64; off < n; off = off + 2 + ((size_t)buf[off] << 8 | buf[off + 1])) {
        uint8_t hi = buf[off], lo = buf[off + 1];
        size_t claim = n - off - 2 + 1;
        buf[off] = (uint8_t)(claim >> 8);
        buf[off + 1] = (uint8_t)claim;
        NOT_TLS(&pol, buf, n);
        buf[off] = hi;
        buf[off + 1] = lo;
    }
}

/* ------------------------------------------------------------------ */
/* Not a context at all                                               */
/* ------------------------------------------------------------------ */

static void test_not_a_context(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];
    static const char *const text[] = {
        "hello",
        "TLS 1.3, server CertificateVerify",
        "Please sign this contract on behalf of example.com",
    };
    /* DigestInfo for SHA-256, then the digest: what an oracle would sign. */
    static const uint8_t digest_info[19] = {
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
    };

    (void)state;
    NOT_TLS(&pol, NULL, 0);
    NOT_TLS(&pol, buf, 0);
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
        NOT_TLS(&pol, (const uint8_t *)text[i], strlen(text[i]));
    /* Bare precomputed digests. */
    {
        static const char *const mds[] = { "SHA256", "SHA384", "SHA512" };
        for (size_t i = 0; i < 3; i++) {
            unsigned int len = 0;
            assert_int_equal(EVP_Digest("x", 1, buf, &len, EVP_get_digestbyname(mds[i]), NULL), 1);
            assert_int_equal(len, 32 + 16 * i);
            NOT_TLS(&pol, buf, len);
            memset(buf, 0x20, len);
            NOT_TLS(&pol, buf, len);
        }
    }
    memcpy(buf, digest_info, sizeof(digest_info));
    fill_hash(buf + sizeof(digest_info), 32);
    NOT_TLS(&pol, buf, sizeof(digest_info) + 32);
    /* Arbitrary data of every length up to a few kilobytes. */
    for (size_t len = 1; len <= BUF_MAX; len = len < 300 ? len + 1 : len * 2) {
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)(i * 131u + len);
        NOT_TLS(&pol, buf, len);
        memset(buf, 0, len);
        NOT_TLS(&pol, buf, len);
        memset(buf, 0xff, len);
        NOT_TLS(&pol, buf, len);
    }
    /* 64 spaces alone, and with nothing valid after. */
    memset(buf, 0x20, 200);
    for (size_t len = 60; len <= 200; len++)
        NOT_TLS(&pol, buf, len);
    /* A TLS 1.2 prefix followed by a TLS 1.3 context. */
    fill_randoms(buf);
    NOT_TLS(&pol, buf, 64 + build_tls13(buf + 64, SERVER_CTX, 32));
}

static void test_random_inputs_refused(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[512];

    (void)state;
    for (int i = 0; i < 20000; i++) {
        unsigned char r[2];
        size_t len;
        assert_int_equal(RAND_bytes(r, 2), 1);
        len = ((size_t)r[0] << 8 | r[1]) % sizeof(buf);
        assert_int_equal(RAND_bytes(buf, (int)sizeof(buf)), 1);
        EXPECT_REFUSED(&pol, &k_rsa, LURK_SCHEME_RSA_PKCS1_SHA256, buf, len, ST_NOT_TLS);
    }
}

/* ------------------------------------------------------------------ */
/* Protocol switches                                                  */
/* ------------------------------------------------------------------ */

static void test_protocol_switches(void **state)
{
    ks_policy no13 = ks_policy_default();
    ks_policy no12 = ks_policy_default();
    uint8_t buf[BUF_MAX];
    size_t n;
    ks_verdict v;

    (void)state;
    no13.allow_tls13 = 0;
    no12.allow_tls12 = 0;

    n = build_tls13(buf, SERVER_CTX, 32);
    v = EXPECT_REFUSED(&no13, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n, ST_PERMITTED);
    assert_non_null(strstr(v.reason, "1.3"));
    EXPECT_OK(&no12, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n, KS_CTX_TLS13_SERVER_CV);
    /* A broken TLS 1.3 context is still not a context. */
    EXPECT_REFUSED(&no13, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n - 1, ST_NOT_TLS);

    n = build_ecdhe(buf, &shares[0]);
    v = EXPECT_REFUSED(&no12, &k_p256, LURK_SCHEME_ECDSA_SECP256R1_SHA256, buf, n, ST_PERMITTED);
    assert_non_null(strstr(v.reason, "1.2"));
    EXPECT_OK(&no13, &k_p256, LURK_SCHEME_ECDSA_SECP256R1_SHA256, buf, n, KS_CTX_TLS12_SKE_ECDHE);
    EXPECT_REFUSED(&no12, &k_p256, LURK_SCHEME_ECDSA_SECP256R1_SHA256, buf, n + 1, ST_NOT_TLS);

    n = build_dhe(buf, &dh[0]);
    EXPECT_REFUSED(&no12, &k_rsa, LURK_SCHEME_RSA_PKCS1_SHA256, buf, n, ST_PERMITTED);
    EXPECT_OK(&no13, &k_rsa, LURK_SCHEME_RSA_PKCS1_SHA256, buf, n, KS_CTX_TLS12_SKE_FFDHE);

    /* Nothing allowed: refusals, never a signature. */
    {
        ks_policy none = ks_policy_default();
        none.allow_tls12 = 0;
        none.allow_tls13 = 0;
        EXPECT_REFUSED(&none, &k_ed, LURK_SCHEME_ED25519, buf, build_tls13(buf, SERVER_CTX, 48),
                       ST_PERMITTED);
        EXPECT_REFUSED(&none, &k_ed, LURK_SCHEME_ED25519, buf, build_ecdhe(buf, &shares[3]),
                       ST_PERMITTED);
    }
}

static void test_null_arguments(void **state)
{
    ks_policy pol = ks_policy_default();
    uint8_t buf[BUF_MAX];
    size_t n = build_tls13(buf, SERVER_CTX, 32);

    (void)state;
    assert_int_not_equal(
        ks_policy_check_sign(NULL, &k_rsa, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n).status, ST_OK);
    assert_int_not_equal(
        ks_policy_check_sign(&pol, NULL, LURK_SCHEME_RSA_PSS_RSAE_SHA256, buf, n).status, ST_OK);
    assert_int_not_equal(ks_policy_check_decrypt(NULL, &k_rsa, 256, 256, 0x0303).status, ST_OK);
    assert_int_not_equal(ks_policy_check_decrypt(&pol, NULL, 256, 256, 0x0303).status, ST_OK);
    assert_int_not_equal(ks_policy_check_scheme(&pol, NULL, lurk_scheme_find(0x0804)).status,
                         ST_OK);
    assert_int_not_equal(ks_policy_check_scheme(NULL, &k_rsa, lurk_scheme_find(0x0804)).status,
                         ST_OK);
}

/* ------------------------------------------------------------------ */
/* RSA key exchange                                                   */
/* ------------------------------------------------------------------ */

static void expect_decrypt(int line, const ks_policy *pol, const ks_key_desc *key, size_t ct,
                           size_t mod, uint32_t ver, Lurk__V1__Status want)
{
    ks_verdict v = ks_policy_check_decrypt(pol, key, ct, mod, ver);

    if (v.reason == NULL || v.status != want) {
        print_error("line %d: decrypt ct %zu mod %zu ver 0x%04x: got %s (%s), want %s\n", line, ct,
                    mod, (unsigned)ver, lurk_status_name(v.status), v.reason ? v.reason : "(null)",
                    lurk_status_name(want));
        fail();
    }
}
#define EXPECT_DECRYPT(pol, key, ct, mod, ver, want) \
    expect_decrypt(__LINE__, (pol), (key), (ct), (mod), (ver), (want))

static void test_decrypt(void **state)
{
    ks_policy pol = ks_policy_default();
    ks_policy off = ks_policy_default();
    static const uint32_t good[] = { 0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0xfeff, 0xfefd };
    static const uint32_t bad[] = { 0,      0x0002, 0x0200, 0x02ff, 0x0305,  0x0400,    0x0403,
                                    0xfefe, 0xfefc, 0xfe00, 0xffff, 0x10303, 0xfffffeff };
    static const size_t mods[] = { 128, 256, 384, 512, 1024 };

    (void)state;
    off.allow_decrypt = 0;
    for (size_t m = 0; m < sizeof(mods) / sizeof(mods[0]); m++) {
        size_t mod = mods[m];
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
            EXPECT_DECRYPT(&pol, &k_rsa, mod, mod, good[i], ST_OK);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            EXPECT_DECRYPT(&pol, &k_rsa, mod, mod, bad[i], ST_MALFORMED);
        EXPECT_DECRYPT(&pol, &k_rsa, mod - 1, mod, 0x0303, ST_MALFORMED);
        EXPECT_DECRYPT(&pol, &k_rsa, mod + 1, mod, 0x0303, ST_MALFORMED);
        EXPECT_DECRYPT(&pol, &k_rsa, 0, mod, 0x0303, ST_MALFORMED);
        EXPECT_DECRYPT(&pol, &k_rsa, 48, mod, 0x0303, ST_MALFORMED);
        EXPECT_DECRYPT(&off, &k_rsa, mod, mod, 0x0303, ST_PERMITTED);
    }
    EXPECT_DECRYPT(&pol, &k_rsa, 0, 0, 0x0303, ST_MALFORMED);
    /* Only RSA keys decrypt, whatever the policy says. */
    for (size_t k = 1; k < N_KEYS; k++) {
        EXPECT_DECRYPT(&pol, all_keys[k], 256, 256, 0x0303, ST_SCHEME);
        EXPECT_DECRYPT(&off, all_keys[k], 256, 256, 0x0303, ST_SCHEME);
    }
    /* Order: key type, then permission, then lengths, then version. */
    EXPECT_DECRYPT(&off, &k_rsa, 255, 256, 0x0200, ST_PERMITTED);
    EXPECT_DECRYPT(&pol, &k_rsa, 255, 256, 0x0200, ST_MALFORMED);
    EXPECT_DECRYPT(&pol, &k_p256, 255, 256, 0x0200, ST_SCHEME);
    /* RSA-PSS keys only sign (RFC 4055), restricted or not. */
    {
        ks_key_desc pss = pss_key(NULL, NULL, 0);

        EXPECT_DECRYPT(&pol, &pss, 256, 256, 0x0303, ST_SCHEME);
        assert_non_null(strstr(ks_policy_check_decrypt(&pol, &pss, 256, 256, 0x0303).reason,
                               "RSA-PSS key only signs"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_policy),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_scheme_fits_key_type),
        cmocka_unit_test(test_rsa_pss_restrictions),
        cmocka_unit_test(test_unknown_and_wrong_schemes),
        cmocka_unit_test(test_legacy_hashes),
        cmocka_unit_test(test_tls13_accepted),
        cmocka_unit_test(test_tls13_scheme_rules),
        cmocka_unit_test(test_tls13_curve_aliases),
        cmocka_unit_test(test_tls13_refusals),
        cmocka_unit_test(test_tls13_truncated_and_padded),
        cmocka_unit_test(test_tls13_bit_flips),
        cmocka_unit_test(test_tls13_hash_64),
        cmocka_unit_test(test_tls12_ecdhe_accepted),
        cmocka_unit_test(test_tls12_ecdhe_fresh_points),
        cmocka_unit_test(test_tls12_ecdhe_curve_type),
        cmocka_unit_test(test_tls12_ecdhe_groups),
        cmocka_unit_test(test_tls12_ecdhe_point_length),
        cmocka_unit_test(test_tls12_ecdhe_point_encoding),
        cmocka_unit_test(test_tls12_ecdhe_truncated_and_padded),
        cmocka_unit_test(test_tls12_ffdhe_accepted),
        cmocka_unit_test(test_tls12_ffdhe_rules),
        cmocka_unit_test(test_tls12_ffdhe_policy),
        cmocka_unit_test(test_tls12_ffdhe_refusals),
        cmocka_unit_test(test_not_a_context),
        cmocka_unit_test(test_random_inputs_refused),
        cmocka_unit_test(test_protocol_switches),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_decrypt),
    };

    return cmocka_run_group_tests(tests, setup_material, NULL);
}
