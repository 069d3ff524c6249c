/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key reference codec: round trips for every key type, and every kind
 * of damaged or hostile input a loader must refuse. A small independent
 * DER builder writes the documented format, so the tests also pin the
 * format itself, not only encoder/decoder agreement.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lurk_keyref.h"
#include "lurk_wire.h"

#define T_RSA     LURK__V1__KEY_TYPE__KEY_TYPE_RSA
#define T_EC      LURK__V1__KEY_TYPE__KEY_TYPE_EC
#define T_ED25519 LURK__V1__KEY_TYPE__KEY_TYPE_ED25519
#define T_RSA_PSS LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS

/* ------------------------------------------------------------------ */
/* Fixtures                                                           */
/* ------------------------------------------------------------------ */

typedef struct {
    unsigned char *der;
    size_t len;
} blob;

static struct {
    blob rsa, ec, ed25519;
    blob pss, pss384; /* id-RSASSA-PSS: unrestricted; SHA-384, MGF1 SHA-384, salt >= 48 */
} spki;

static blob spki_of(EVP_PKEY *pkey)
{
    blob b = { NULL, 0 };
    int len;

    assert_non_null(pkey);
    len = i2d_PUBKEY(pkey, &b.der);
    assert_true(len > 0);
    b.len = (size_t)len;
    EVP_PKEY_free(pkey);
    return b;
}

static EVP_PKEY *pss_keygen(const char *md, int saltlen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    EVP_PKEY *pk = NULL;

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
    return pk;
}

static int setup(void **state)
{
    (void)state;
    spki.pss = spki_of(pss_keygen(NULL, 0));
    spki.pss384 = spki_of(pss_keygen("SHA384", 48));
    spki.rsa = spki_of(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048));
    spki.ec = spki_of(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
    spki.ed25519 = spki_of(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    OPENSSL_free(spki.rsa.der);
    OPENSSL_free(spki.ec.der);
    OPENSSL_free(spki.ed25519.der);
    OPENSSL_free(spki.pss.der);
    OPENSSL_free(spki.pss384.der);
    return 0;
}

/* ------------------------------------------------------------------ */
/* An independent DER writer for the documented structure              */
/* ------------------------------------------------------------------ */

typedef struct {
    unsigned char b[8192];
    size_t n;
} der_buf;

static void der_put(der_buf *d, const void *p, size_t n)
{
    assert_true(d->n + n <= sizeof(d->b));
    memcpy(d->b + d->n, p, n);
    d->n += n;
}

static void der_tlv(der_buf *d, unsigned char tag, const void *p, size_t n)
{
    unsigned char h[4] = { tag };
    size_t hl;

    if (n < 0x80) {
        h[1] = (unsigned char)n;
        hl = 2;
    } else if (n < 0x100) {
        h[1] = 0x81;
        h[2] = (unsigned char)n;
        hl = 3;
    } else {
        assert_true(n < 0x10000);
        h[1] = 0x82;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    }
    der_put(d, h, hl);
    der_put(d, p, n);
}

/* Small non-negative or negative integers, minimal encoding. */
static void der_int(der_buf *d, int v)
{
    unsigned char c = (unsigned char)(signed char)v;

    assert_true(v >= -128 && v <= 127);
    der_tlv(d, 0x02, &c, 1);
}

typedef struct {
    int version;
    const char *key_id;
    size_t key_id_len; /* 0: strlen */
    int type;
    const unsigned char *spki;
    size_t spki_len;
    const char *servers; /* NULL: absent */
} ref_fields;

static blob build(const ref_fields *f)
{
    der_buf body = { .n = 0 }, out = { .n = 0 }, srv = { .n = 0 };
    blob b;

    der_int(&body, f->version);
    der_tlv(&body, 0x0c, f->key_id, f->key_id_len ? f->key_id_len : strlen(f->key_id));
    der_int(&body, f->type);
    der_tlv(&body, 0x04, f->spki, f->spki_len);
    if (f->servers != NULL) {
        der_tlv(&srv, 0x0c, f->servers, strlen(f->servers));
        der_tlv(&body, 0xa0, srv.b, srv.n);
    }
    der_tlv(&out, 0x30, body.b, body.n);
    b.der = malloc(out.n);
    assert_non_null(b.der);
    memcpy(b.der, out.b, out.n);
    b.len = out.n;
    return b;
}

static ref_fields good_with(int type, const blob *s)
{
    ref_fields f = { 1, "web-rsa.2024_a", 0, type, NULL, 0, NULL };

    f.spki = s->der;
    f.spki_len = s->len;
    return f;
}

static ref_fields good(int type)
{
    ref_fields f = { 1, "web-rsa.2024_a", 0, type, NULL, 0, NULL };
    const blob *s = type == T_RSA ? &spki.rsa
        : type == T_EC            ? &spki.ec
        : type == T_RSA_PSS       ? &spki.pss
                                  : &spki.ed25519;

    f.spki = s->der;
    f.spki_len = s->len;
    return f;
}

/* Decoding must fail, leave *out NULL and say why. */
static void refused(const unsigned char *der, size_t len)
{
    lurk_keyref *ref = (lurk_keyref *)1;
    const char *why = NULL;

    assert_int_equal(lurk_keyref_decode(der, len, NULL, &ref, &why), 0);
    assert_null(ref);
    assert_non_null(why);
}

static void refused_fields(const ref_fields *f)
{
    blob b = build(f);

    refused(b.der, b.len);
    free(b.der);
}

/* ------------------------------------------------------------------ */
/* Round trips                                                        */
/* ------------------------------------------------------------------ */

static void round_trip_with(int type, const blob *s, const char *servers)
{
    ref_fields f = good_with(type, s);
    lurk_keyref in = { (Lurk__V1__KeyType)type, f.key_id, f.spki, f.spki_len, servers };
    lurk_keyref *out = NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    const char *why = NULL;
    blob expect;

    assert_int_equal(lurk_keyref_encode(&in, NULL, &der, &len, &why), 1);
    assert_null(why);
    /* Exactly the documented DER. */
    f.servers = servers;
    expect = build(&f);
    assert_int_equal(len, expect.len);
    assert_memory_equal(der, expect.der, len);
    free(expect.der);

    assert_int_equal(lurk_keyref_decode(der, len, NULL, &out, &why), 1);
    assert_non_null(out);
    assert_int_equal(out->type, type);
    assert_string_equal(out->key_id, in.key_id);
    assert_int_equal(out->spki_len, in.spki_len);
    assert_memory_equal(out->spki, in.spki, in.spki_len);
    if (servers == NULL)
        assert_null(out->servers);
    else
        assert_string_equal(out->servers, servers);
    lurk_keyref_free(out);
    OPENSSL_free(der);
}

static void round_trip(int type, const char *servers)
{
    ref_fields f = good(type);
    blob s = { (unsigned char *)f.spki, f.spki_len };

    round_trip_with(type, &s, servers);
}

/* The restrictions an RSA-PSS reference's SPKI carries, read back. */
static lurk_pss_restrictions pss_of(const blob *s)
{
    const unsigned char *p = s->der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)s->len);
    lurk_pss_restrictions r;

    assert_non_null(pub);
    assert_int_equal(lurk_keyref_type_of(pub), T_RSA_PSS);
    assert_int_equal(lurk_pss_restrictions_of(pub, NULL, &r), 1);
    EVP_PKEY_free(pub);
    return r;
}

/* Type 4, version 1: the restrictions ride in the SPKI, no new field. */
static void test_round_trip_rsa_pss(void **state)
{
    lurk_pss_restrictions r;

    (void)state;
    round_trip_with(T_RSA_PSS, &spki.pss, NULL);
    round_trip_with(T_RSA_PSS, &spki.pss, "tls+tcp://ks1.example:7443");
    r = pss_of(&spki.pss);
    assert_int_equal(r.restricted, 0);
    round_trip_with(T_RSA_PSS, &spki.pss384, NULL);
    round_trip_with(T_RSA_PSS, &spki.pss384, "ipc:///run/lurk/ks.sock");
    r = pss_of(&spki.pss384);
    assert_int_equal(r.restricted, 1);
    assert_string_equal(r.md, "SHA384");
    assert_string_equal(r.mgf1_md, "SHA384");
    assert_int_equal(r.min_saltlen, 48);
}

static void test_round_trip_rsa(void **state)
{
    (void)state;
    round_trip(T_RSA, NULL);
    round_trip(T_RSA, "tls+tcp://ks1.example:7443 tls+tcp://ks2.example:7443");
}

static void test_round_trip_ec(void **state)
{
    (void)state;
    round_trip(T_EC, NULL);
    round_trip(T_EC, "ipc:///run/lurk/ks.sock");
}

static void test_round_trip_ed25519(void **state)
{
    (void)state;
    round_trip(T_ED25519, NULL);
    round_trip(T_ED25519, "tls+tcp://[::1]:7443");
}

/* What a loader does: one PEM block, the label, then the DER. */
static void test_pem_round_trip(void **state)
{
    ref_fields f = good(T_EC);
    lurk_keyref in = { T_EC, "p256", f.spki, f.spki_len, NULL };
    lurk_keyref *out = NULL;
    BIO *mem = BIO_new(BIO_s_mem());
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long len = 0;
    const char *why = NULL;

    (void)state;
    assert_non_null(mem);
    assert_int_equal(lurk_keyref_write_pem(mem, &in, NULL, &why), 1);
    assert_true(PEM_read_bio(mem, &name, &header, &der, &len) > 0);
    assert_string_equal(name, LURK_KEYREF_PEM_LABEL);
    assert_string_equal(header, "");
    assert_int_equal(lurk_keyref_decode(der, (size_t)len, NULL, &out, &why), 1);
    assert_string_equal(out->key_id, "p256");
    lurk_keyref_free(out);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(mem);
}

/* The longest id and hint, and the largest public key, fit the bounds. */
static void test_limits_fit(void **state)
{
    char id[LURK_MAX_KEY_ID + 1], hint[LURK_KEYREF_MAX_SERVERS + 1];
    ref_fields f = good(T_RSA);
    lurk_keyref *out = NULL;
    const char *why;
    blob b;

    (void)state;
    memset(id, 'k', LURK_MAX_KEY_ID);
    id[LURK_MAX_KEY_ID] = '\0';
    memset(hint, 'h', LURK_KEYREF_MAX_SERVERS);
    hint[LURK_KEYREF_MAX_SERVERS] = '\0';
    f.key_id = id;
    f.servers = hint;
    b = build(&f);
    assert_true(b.len <= LURK_KEYREF_MAX_DER);
    assert_int_equal(lurk_keyref_decode(b.der, b.len, NULL, &out, &why), 1);
    lurk_keyref_free(out);
    free(b.der);
}

/*
 * OpenSSL 3.0 leaves a hash equal to the RFC 4055 default (SHA-1) out of
 * the key's parameters: such a key is still restricted, to SHA-1 (which
 * no TLS scheme uses, ""), not unrestricted.
 */
static void test_pss_restrictions_with_defaults(void **state)
{
    EVP_PKEY_CTX *ctx;
    EVP_PKEY *pk = NULL;
    lurk_pss_restrictions r;
    blob b;

    (void)state;
    /* rsa_pss_keygen_md:sha1 alone: every parameter is the default. */
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_true(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_pss_keygen_md_name(ctx, "SHA1", NULL) > 0);
    assert_int_equal(EVP_PKEY_keygen(ctx, &pk), 1);
    EVP_PKEY_CTX_free(ctx);
    b = spki_of(pk);
    r = pss_of(&b);
    assert_int_equal(r.restricted, 1);
    assert_string_equal(r.md, "");
    assert_string_equal(r.mgf1_md, "");
    assert_int_equal(r.min_saltlen, 20);
    OPENSSL_free(b.der);

    /* rsa_pss_keygen_md:sha256 alone: MGF1 stays the default SHA-1. */
    pk = NULL;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_true(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_pss_keygen_md_name(ctx, "SHA256", NULL) > 0);
    assert_int_equal(EVP_PKEY_keygen(ctx, &pk), 1);
    EVP_PKEY_CTX_free(ctx);
    b = spki_of(pk);
    r = pss_of(&b);
    assert_int_equal(r.restricted, 1);
    assert_string_equal(r.md, "SHA256");
    assert_string_equal(r.mgf1_md, "");
    OPENSSL_free(b.der);
}

/* ------------------------------------------------------------------ */
/* Refused input                                                      */
/* ------------------------------------------------------------------ */

static void test_truncated(void **state)
{
    ref_fields f = good(T_ED25519);
    blob b = build(&f);

    (void)state;
    for (size_t n = 0; n < b.len; n++)
        refused(b.der, n);
    free(b.der);
}

static void test_trailing_bytes(void **state)
{
    ref_fields f = good(T_EC);
    blob b = build(&f);
    unsigned char *longer = malloc(b.len + 1);

    (void)state;
    assert_non_null(longer);
    memcpy(longer, b.der, b.len);
    longer[b.len] = 0x00;
    refused(longer, b.len + 1);
    free(longer);
    free(b.der);
}

static void test_wrong_version(void **state)
{
    ref_fields f = good(T_EC);
    int versions[] = { 0, 2, 3, -1, 127 };

    (void)state;
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        f.version = versions[i];
        refused_fields(&f);
    }
}

static void test_bad_key_id(void **state)
{
    static const char *bad[] = { "",
                                 "-rsa",
                                 ".rsa",
                                 "../rsa",
                                 "rsa key",
                                 "rsa/1",
                                 "r\xc3\xa9sa",
                                 "0123456789012345678901234567890123456789012345678901234567890123"
                                 "4" /* 65 */ };
    ref_fields f = good(T_RSA);

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f.key_id = bad[i];
        refused_fields(&f);
    }
    /* An embedded NUL: "rsa\0evil" must not read as "rsa". */
    f.key_id = "rsa\0evil";
    f.key_id_len = 8;
    refused_fields(&f);
}

static void test_type_and_spki_disagree(void **state)
{
    ref_fields f;

    (void)state;
    f = good(T_RSA);
    f.type = T_EC;
    refused_fields(&f);
    f = good(T_EC);
    f.type = T_ED25519;
    refused_fields(&f);
    f = good(T_ED25519);
    f.type = T_RSA;
    refused_fields(&f);
    /* rsaEncryption and id-RSASSA-PSS are two types, in both directions. */
    f = good(T_RSA);
    f.type = T_RSA_PSS;
    refused_fields(&f);
    f = good_with(T_RSA, &spki.pss384);
    refused_fields(&f);
}

static void test_unknown_type(void **state)
{
    ref_fields f = good(T_RSA);
    int types[] = { 0, 5, -1, 100 };

    (void)state;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        f.type = types[i];
        refused_fields(&f);
    }
}

static void test_bad_spki(void **state)
{
    ref_fields f = good(T_EC);
    unsigned char longer[512];
    static const unsigned char not_spki[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };

    (void)state;
    /* Truncated public key inside an intact reference. */
    f.spki_len -= 1;
    refused_fields(&f);
    /* A byte after the public key inside the OCTET STRING. */
    f = good(T_EC);
    assert_true(f.spki_len + 1 <= sizeof(longer));
    memcpy(longer, f.spki, f.spki_len);
    longer[f.spki_len] = 0;
    f.spki = longer;
    f.spki_len += 1;
    refused_fields(&f);
    /* Not a SubjectPublicKeyInfo at all, and empty. */
    f = good(T_EC);
    f.spki = not_spki;
    f.spki_len = sizeof(not_spki);
    refused_fields(&f);
    f.spki_len = 0;
    refused_fields(&f);
}

static void test_bad_servers(void **state)
{
    static const char *bad[] = { "tls+tcp://a\n:1", "tls+tcp://a\x01:1", "caf\xc3\xa9" };
    ref_fields f = good(T_RSA);

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f.servers = bad[i];
        refused_fields(&f);
    }
}

/* BER that DER forbids: a long-form length where the short one fits. */
static void test_not_canonical(void **state)
{
    ref_fields f = good(T_ED25519);
    blob b = build(&f);
    unsigned char *ber = malloc(b.len + 1);

    (void)state;
    assert_non_null(ber);
    assert_int_equal(b.der[0], 0x30);
    assert_true(b.der[1] < 0x80);
    ber[0] = 0x30;
    ber[1] = 0x81;
    memcpy(ber + 2, b.der + 1, b.len - 1);
    refused(ber, b.len + 1);
    free(ber);
    free(b.der);
}

static void test_garbage(void **state)
{
    static const unsigned char zeros[64] = { 0 };
    unsigned char noise[256];
    unsigned int x = 0x2545f491u;
    unsigned char *big;

    (void)state;
    refused(NULL, 0);
    refused(zeros, 0);
    refused(zeros, sizeof(zeros));
    for (size_t i = 0; i < sizeof(noise); i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (unsigned char)(x >> 16);
    }
    refused(noise, sizeof(noise));
    /* A SubjectPublicKeyInfo is not a reference. */
    refused(spki.rsa.der, spki.rsa.len);
    /* Over the size bound, whatever it holds. */
    big = calloc(1, LURK_KEYREF_MAX_DER + 1);
    assert_non_null(big);
    refused(big, LURK_KEYREF_MAX_DER + 1);
    free(big);
}

/* The encoder refuses what the decoder would refuse. */
static void test_encode_refuses(void **state)
{
    ref_fields f = good(T_RSA);
    lurk_keyref in = { T_RSA, "rsa", f.spki, f.spki_len, NULL };
    unsigned char *der = (unsigned char *)1;
    size_t len = 1;
    const char *why;

    (void)state;
    in.type = T_EC;
    assert_int_equal(lurk_keyref_encode(&in, NULL, &der, &len, &why), 0);
    assert_null(der);
    assert_int_equal(len, 0);
    in.type = LURK__V1__KEY_TYPE__KEY_TYPE_UNSPECIFIED;
    assert_int_equal(lurk_keyref_encode(&in, NULL, &der, &len, &why), 0);
    in.type = T_RSA;
    in.key_id = "../rsa";
    assert_int_equal(lurk_keyref_encode(&in, NULL, &der, &len, &why), 0);
    in.key_id = "rsa";
    in.servers = "";
    assert_int_equal(lurk_keyref_encode(&in, NULL, &der, &len, &why), 0);
    in.servers = NULL;
    in.spki = NULL;
    assert_int_equal(lurk_keyref_encode(&in, NULL, &der, &len, &why), 0);
    assert_null(der);
}

/*
 * Every key type in the contract but UNSPECIFIED has a name for operators
 * (lurk_key_type_name) and one OpenSSL can fetch a key management for (the
 * provider's lurk_key_type_data_name is lurk_keyref_type_keymgmt), so that
 * a key type added to lurk.proto cannot be forgotten in either.
 */
static void test_key_type_names_cover_contract(void **state)
{
    const ProtobufCEnumDescriptor *d = &lurk__v1__key_type__descriptor;

    (void)state;
    for (unsigned int i = 0; i < d->n_values; i++) {
        Lurk__V1__KeyType t = (Lurk__V1__KeyType)d->values[i].value;
        const char *km = lurk_keyref_type_keymgmt(t);
        EVP_KEYMGMT *mgmt;

        if (t == LURK__V1__KEY_TYPE__KEY_TYPE_UNSPECIFIED) {
            assert_null(km);
            continue;
        }
        assert_string_not_equal(lurk_key_type_name(t), "unknown");
        assert_non_null(km);
        mgmt = EVP_KEYMGMT_fetch(NULL, km, NULL);
        assert_non_null(mgmt);
        EVP_KEYMGMT_free(mgmt);
        for (unsigned int o = 0; o < i; o++) {
            const char *other = lurk_keyref_type_keymgmt((Lurk__V1__KeyType)d->values[o].value);

            assert_true(other == NULL || strcmp(other, km) != 0);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_type_names_cover_contract),
        cmocka_unit_test(test_round_trip_rsa),
        cmocka_unit_test(test_round_trip_ec),
        cmocka_unit_test(test_round_trip_ed25519),
        cmocka_unit_test(test_round_trip_rsa_pss),
        cmocka_unit_test(test_pss_restrictions_with_defaults),
        cmocka_unit_test(test_pem_round_trip),
        cmocka_unit_test(test_limits_fit),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_wrong_version),
        cmocka_unit_test(test_bad_key_id),
        cmocka_unit_test(test_type_and_spki_disagree),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_bad_spki),
        cmocka_unit_test(test_bad_servers),
        cmocka_unit_test(test_not_canonical),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_encode_refuses),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
