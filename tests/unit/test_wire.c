/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The wire contract both ends share: what a decoded request or response
 * may contain, the key id syntax and the scheme table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lurk_wire.h"

#define ST_OK        LURK__V1__STATUS__STATUS_OK
#define ST_MALFORMED LURK__V1__STATUS__STATUS_MALFORMED
#define ST_VERSION   LURK__V1__STATUS__STATUS_UNSUPPORTED_VERSION

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

typedef struct {
    uint8_t *buf;
    size_t len;
} packed;

static packed pack_request(const Lurk__V1__Request *r)
{
    packed p;

    p.len = lurk__v1__request__get_packed_size(r);
    p.buf = malloc(p.len ? p.len : 1);
    assert_non_null(p.buf);
    assert_int_equal(lurk__v1__request__pack(r, p.buf), p.len);
    return p;
}

static packed pack_response(const Lurk__V1__Response *r)
{
    packed p;

    p.len = lurk__v1__response__get_packed_size(r);
    p.buf = malloc(p.len ? p.len : 1);
    assert_non_null(p.buf);
    assert_int_equal(lurk__v1__response__pack(r, p.buf), p.len);
    return p;
}

/* Decodes and returns the status; frees whatever came back. */
static Lurk__V1__Status decode_status(const packed *p, const char **why)
{
    Lurk__V1__Status st = ST_OK;
    Lurk__V1__Request *req;

    *why = NULL;
    req = lurk_request_decode(p->buf, p->len, &st, why);
    if (req == NULL) {
        assert_int_not_equal(st, ST_OK);
        assert_non_null(*why);
        return st;
    }
    if (st != ST_OK)
        assert_non_null(*why);
    lurk__v1__request__free_unpacked(req, NULL);
    return st;
}

static Lurk__V1__Status request_status(const Lurk__V1__Request *r)
{
    packed p = pack_request(r);
    const char *why;
    Lurk__V1__Status st = decode_status(&p, &why);

    free(p.buf);
    return st;
}

static Lurk__V1__Status sign_status(const char *key_id, uint32_t scheme, size_t tbs_len)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest s = LURK__V1__SIGN_REQUEST__INIT;
    uint8_t *tbs = calloc(1, tbs_len ? tbs_len : 1);
    Lurk__V1__Status st;

    assert_non_null(tbs);
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 1;
    r.op_case = LURK__V1__REQUEST__OP_SIGN;
    r.sign = &s;
    s.key_id = (char *)key_id;
    s.scheme = scheme;
    s.tbs.data = tbs;
    s.tbs.len = tbs_len;
    st = request_status(&r);
    free(tbs);
    return st;
}

static Lurk__V1__Status decrypt_status(size_t ct_len, uint32_t cv, uint32_t nv)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__DecryptRequest d = LURK__V1__DECRYPT_REQUEST__INIT;
    uint8_t *ct = calloc(1, ct_len ? ct_len : 1);
    Lurk__V1__Status st;

    assert_non_null(ct);
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 2;
    r.op_case = LURK__V1__REQUEST__OP_DECRYPT;
    r.decrypt = &d;
    d.key_id = "rsa";
    d.ciphertext.data = ct;
    d.ciphertext.len = ct_len;
    d.client_version = cv;
    d.negotiated_version = nv;
    st = request_status(&r);
    free(ct);
    return st;
}

/* Deterministic, so a failure reproduces. */
static uint32_t xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* ------------------------------------------------------------------ */
/* Requests: round trips                                              */
/* ------------------------------------------------------------------ */

static Lurk__V1__Request *decode_ok(const Lurk__V1__Request *r)
{
    packed p = pack_request(r);
    Lurk__V1__Status st = ST_MALFORMED;
    const char *why = NULL;
    Lurk__V1__Request *out = lurk_request_decode(p.buf, p.len, &st, &why);

    free(p.buf);
    assert_non_null(out);
    if (st != ST_OK) {
        print_error("unexpected status %s: %s\n", lurk_status_name(st), why ? why : "-");
        fail();
    }
    assert_int_equal(out->version, LURK_PROTOCOL_VERSION);
    assert_true(out->id == r->id);
    assert_int_equal(out->op_case, r->op_case);
    return out;
}

static void test_roundtrip_ping(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__PingRequest ping = LURK__V1__PING_REQUEST__INIT;
    uint8_t payload[LURK_MAX_PING];
    Lurk__V1__Request *out;

    (void)state;
    memset(payload, 0xab, sizeof(payload));
    r.version = LURK_PROTOCOL_VERSION;
    r.id = UINT64_MAX;
    r.op_case = LURK__V1__REQUEST__OP_PING;
    r.ping = &ping;
    ping.payload.data = payload;
    ping.payload.len = sizeof(payload);
    out = decode_ok(&r);
    assert_int_equal(out->ping->payload.len, sizeof(payload));
    assert_memory_equal(out->ping->payload.data, payload, sizeof(payload));
    lurk__v1__request__free_unpacked(out, NULL);

    /* An empty payload is a ping too. */
    ping.payload.len = 0;
    ping.payload.data = NULL;
    out = decode_ok(&r);
    assert_int_equal(out->ping->payload.len, 0);
    lurk__v1__request__free_unpacked(out, NULL);
}

static void test_roundtrip_capabilities(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__CapabilitiesRequest caps = LURK__V1__CAPABILITIES_REQUEST__INIT;
    Lurk__V1__Request *out;

    (void)state;
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 42;
    r.op_case = LURK__V1__REQUEST__OP_CAPABILITIES;
    r.capabilities = &caps;
    out = decode_ok(&r);
    assert_non_null(out->capabilities);
    lurk__v1__request__free_unpacked(out, NULL);
}

static void test_roundtrip_get_public_key(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__GetPublicKeyRequest g = LURK__V1__GET_PUBLIC_KEY_REQUEST__INIT;
    Lurk__V1__Request *out;

    (void)state;
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 7;
    r.op_case = LURK__V1__REQUEST__OP_GET_PUBLIC_KEY;
    r.get_public_key = &g;
    g.key_id = "www.example.com-ecdsa_p256";
    out = decode_ok(&r);
    assert_string_equal(out->get_public_key->key_id, g.key_id);
    lurk__v1__request__free_unpacked(out, NULL);
}

static void test_roundtrip_sign(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest s = LURK__V1__SIGN_REQUEST__INIT;
    uint8_t tbs[LURK_MAX_TBS];
    Lurk__V1__Request *out;

    (void)state;
    for (size_t i = 0; i < sizeof(tbs); i++)
        tbs[i] = (uint8_t)i;
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 0x0123456789abcdefull;
    r.op_case = LURK__V1__REQUEST__OP_SIGN;
    r.sign = &s;
    s.key_id = "rsa-2048";
    s.scheme = LURK_SCHEME_RSA_PSS_RSAE_SHA256;
    s.tbs.data = tbs;
    s.tbs.len = sizeof(tbs);
    out = decode_ok(&r);
    assert_string_equal(out->sign->key_id, "rsa-2048");
    assert_int_equal(out->sign->scheme, LURK_SCHEME_RSA_PSS_RSAE_SHA256);
    assert_int_equal(out->sign->tbs.len, sizeof(tbs));
    assert_memory_equal(out->sign->tbs.data, tbs, sizeof(tbs));
    lurk__v1__request__free_unpacked(out, NULL);
}

static void test_roundtrip_decrypt(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__DecryptRequest d = LURK__V1__DECRYPT_REQUEST__INIT;
    uint8_t ct[256];
    Lurk__V1__Request *out;

    (void)state;
    memset(ct, 0x5c, sizeof(ct));
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 3;
    r.op_case = LURK__V1__REQUEST__OP_DECRYPT;
    r.decrypt = &d;
    d.key_id = "rsa";
    d.ciphertext.data = ct;
    d.ciphertext.len = sizeof(ct);
    d.client_version = 0x0303;
    d.negotiated_version = 0x0302;
    out = decode_ok(&r);
    assert_string_equal(out->decrypt->key_id, "rsa");
    assert_int_equal(out->decrypt->ciphertext.len, sizeof(ct));
    assert_memory_equal(out->decrypt->ciphertext.data, ct, sizeof(ct));
    assert_int_equal(out->decrypt->client_version, 0x0303);
    assert_int_equal(out->decrypt->negotiated_version, 0x0302);
    lurk__v1__request__free_unpacked(out, NULL);
}

/* ------------------------------------------------------------------ */
/* Requests: refusals                                                 */
/* ------------------------------------------------------------------ */

static void test_request_garbage(void **state)
{
    static const uint8_t bad[][12] = {
        { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
        { 0x0a },             /* length-delimited tag, no length */
        { 0x6a, 0x05, 0x0a }, /* sign submessage cut short */
        { 0x08, 0x80 },       /* unterminated varint */
        { 0x07 },             /* wire type 7 does not exist */
        { 0x00, 0x01 },       /* field number 0 */
    };
    static const size_t bad_len[] = { 12, 1, 3, 2, 1, 2 };
    uint8_t buf[300];
    uint32_t seed = 0x9e3779b9u;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
        Lurk__V1__Status st = ST_OK;
        const char *why = NULL;
        assert_null(lurk_request_decode(bad[i], bad_len[i], &st, &why));
        assert_int_equal(st, ST_MALFORMED);
        assert_non_null(why);
    }
    /* Random bytes: never a crash or a leak, never an acceptable request
     * that the checks would refuse. */
    for (int i = 0; i < 20000; i++) {
        size_t len = xorshift(&seed) % sizeof(buf);
        Lurk__V1__Status st = ST_OK;
        const char *why = NULL;
        Lurk__V1__Request *req;

        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)xorshift(&seed);
        req = lurk_request_decode(buf, len, &st, &why);
        if (req != NULL) {
            const char *why2 = NULL;
            assert_int_equal(lurk_request_check(req, &why2), st);
            lurk__v1__request__free_unpacked(req, NULL);
        } else {
            assert_int_equal(st, ST_MALFORMED);
        }
    }
}

/* Every proper prefix: a cut inside the operation is undecodable (its
 * length prefix overstates), a cut before it loses the operation. */
static void test_request_truncated(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest s = LURK__V1__SIGN_REQUEST__INIT;
    Lurk__V1__DecryptRequest d = LURK__V1__DECRYPT_REQUEST__INIT;
    uint8_t data[300];
    packed p;

    (void)state;
    memset(data, 0x11, sizeof(data));
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 99;
    r.op_case = LURK__V1__REQUEST__OP_SIGN;
    r.sign = &s;
    s.key_id = "k1";
    s.scheme = LURK_SCHEME_ED25519;
    s.tbs.data = data;
    s.tbs.len = 130;
    p = pack_request(&r);
    for (size_t cut = 0; cut < p.len; cut++) {
        packed q = { p.buf, cut };
        const char *why;
        assert_int_not_equal(decode_status(&q, &why), ST_OK);
    }
    free(p.buf);

    r.op_case = LURK__V1__REQUEST__OP_DECRYPT;
    r.decrypt = &d;
    d.key_id = "k1";
    d.ciphertext.data = data;
    d.ciphertext.len = 256;
    d.client_version = 0x0303;
    p = pack_request(&r);
    for (size_t cut = 0; cut < p.len; cut++) {
        packed q = { p.buf, cut };
        const char *why;
        assert_int_not_equal(decode_status(&q, &why), ST_OK);
    }
    free(p.buf);
}

static void test_request_oversized(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest s = LURK__V1__SIGN_REQUEST__INIT;
    uint8_t *big = calloc(1, LURK_MAX_MESSAGE + 16);
    Lurk__V1__Status st = ST_OK;
    const char *why = NULL;
    packed p;

    (void)state;
    assert_non_null(big);
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 1;
    r.op_case = LURK__V1__REQUEST__OP_SIGN;
    r.sign = &s;
    s.key_id = "k";
    s.scheme = LURK_SCHEME_RSA_PSS_RSAE_SHA256;
    s.tbs.data = big;
    s.tbs.len = LURK_MAX_MESSAGE + 16;
    p = pack_request(&r);
    assert_true(p.len > LURK_MAX_MESSAGE);
    assert_null(lurk_request_decode(p.buf, p.len, &st, &why));
    assert_int_equal(st, ST_MALFORMED);
    assert_non_null(why);
    free(p.buf);

    /* One byte over the limit is refused before protobuf sees it. */
    st = ST_OK;
    assert_null(lurk_request_decode(big, LURK_MAX_MESSAGE + 1, &st, &why));
    assert_int_equal(st, ST_MALFORMED);

    /* Under the message limit but over the tbs limit: decoded, refused. */
    s.tbs.len = LURK_MAX_MESSAGE - 64;
    p = pack_request(&r);
    assert_true(p.len <= LURK_MAX_MESSAGE);
    {
        Lurk__V1__Request *req = lurk_request_decode(p.buf, p.len, &st, &why);
        assert_non_null(req);
        assert_int_equal(st, ST_MALFORMED);
        lurk__v1__request__free_unpacked(req, NULL);
    }
    free(p.buf);
    free(big);
}

static void test_request_field_limits(void **state)
{
    (void)state;
    /* Sign: tbs 1..LURK_MAX_TBS, scheme 16 bits. */
    assert_int_equal(sign_status("k", 0x0804, 1), ST_OK);
    assert_int_equal(sign_status("k", 0x0804, LURK_MAX_TBS), ST_OK);
    assert_int_equal(sign_status("k", 0x0804, LURK_MAX_TBS + 1), ST_MALFORMED);
    assert_int_equal(sign_status("k", 0x0804, 0), ST_MALFORMED);
    assert_int_equal(sign_status("k", 0xffff, 10), ST_OK);
    assert_int_equal(sign_status("k", 0x10000, 10), ST_MALFORMED);
    assert_int_equal(sign_status("k", 0x10804, 10), ST_MALFORMED);

    /* Decrypt: ciphertext 1..LURK_MAX_CIPHERTEXT, versions 16 bits. */
    assert_int_equal(decrypt_status(256, 0x0303, 0), ST_OK);
    assert_int_equal(decrypt_status(LURK_MAX_CIPHERTEXT, 0x0303, 0), ST_OK);
    assert_int_equal(decrypt_status(LURK_MAX_CIPHERTEXT + 1, 0x0303, 0), ST_MALFORMED);
    assert_int_equal(decrypt_status(0, 0x0303, 0), ST_MALFORMED);
    assert_int_equal(decrypt_status(256, 0x10303, 0), ST_MALFORMED);
    assert_int_equal(decrypt_status(256, 0x0303, 0x10303), ST_MALFORMED);
    /* The negotiated version, when given, must be a (D)TLS version. */
    assert_int_equal(decrypt_status(256, 0xffff, 0xffff), ST_MALFORMED);
    assert_int_equal(decrypt_status(256, 0xffff, 0), ST_OK);
    assert_int_equal(decrypt_status(256, 0x0303, 0x0303), ST_OK);
    assert_int_equal(decrypt_status(256, 0xfefd, 0xfefd), ST_OK);
    assert_int_equal(decrypt_status(256, 0x0303, 0x0305), ST_MALFORMED);
    assert_int_equal(decrypt_status(256, 0x0303, 0x02ff), ST_MALFORMED);

    /* Ping: payload at most LURK_MAX_PING. */
    {
        Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
        Lurk__V1__PingRequest ping = LURK__V1__PING_REQUEST__INIT;
        uint8_t payload[LURK_MAX_PING + 1] = { 0 };

        r.version = LURK_PROTOCOL_VERSION;
        r.op_case = LURK__V1__REQUEST__OP_PING;
        r.ping = &ping;
        ping.payload.data = payload;
        ping.payload.len = LURK_MAX_PING;
        assert_int_equal(request_status(&r), ST_OK);
        ping.payload.len = LURK_MAX_PING + 1;
        assert_int_equal(request_status(&r), ST_MALFORMED);
    }
}

static void test_request_key_ids(void **state)
{
    char long_id[LURK_MAX_KEY_ID + 2];
    static const char *const bad[] = {
        "",        "/",    "a/b",     "../etc/passwd", " ",  "a b",          " a",  "a\n", "a\t",
        "a:b",     "a%2f", "key\\id", "caf\xc3\xa9",   "a*", "pkcs11:token", "a@b", ".",   "..",
        ".hidden", "-",    "-v",      "--help",
    };
    static const char *const good[] = {
        "a", "A", "0", "rsa-2048", "www.example.com", "ecdsa_p256.v2", "_", "a..b", "k-",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sign_status(bad[i], 0x0804, 10), ST_MALFORMED);
        assert_int_equal(lurk_key_id_valid(bad[i]), 0);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(sign_status(good[i], 0x0804, 10), ST_OK);
        assert_int_equal(lurk_key_id_valid(good[i]), 1);
    }
    memset(long_id, 'k', LURK_MAX_KEY_ID);
    long_id[LURK_MAX_KEY_ID] = '\0';
    assert_int_equal(lurk_key_id_valid(long_id), 1);
    assert_int_equal(sign_status(long_id, 0x0804, 10), ST_OK);
    long_id[LURK_MAX_KEY_ID] = 'k';
    long_id[LURK_MAX_KEY_ID + 1] = '\0';
    assert_int_equal(strlen(long_id), 65);
    assert_int_equal(lurk_key_id_valid(long_id), 0);
    assert_int_equal(sign_status(long_id, 0x0804, 10), ST_MALFORMED);
    assert_int_equal(lurk_key_id_valid(NULL), 0);

    /* The same syntax for every operation that names a key. */
    {
        Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
        Lurk__V1__GetPublicKeyRequest g = LURK__V1__GET_PUBLIC_KEY_REQUEST__INIT;
        Lurk__V1__DecryptRequest d = LURK__V1__DECRYPT_REQUEST__INIT;
        uint8_t ct[16] = { 1 };

        r.version = LURK_PROTOCOL_VERSION;
        r.op_case = LURK__V1__REQUEST__OP_GET_PUBLIC_KEY;
        r.get_public_key = &g;
        g.key_id = "";
        assert_int_equal(request_status(&r), ST_MALFORMED);
        g.key_id = "a/b";
        assert_int_equal(request_status(&r), ST_MALFORMED);
        g.key_id = long_id;
        assert_int_equal(request_status(&r), ST_MALFORMED);

        r.op_case = LURK__V1__REQUEST__OP_DECRYPT;
        r.decrypt = &d;
        d.ciphertext.data = ct;
        d.ciphertext.len = sizeof(ct);
        d.client_version = 0x0303;
        d.key_id = " ";
        assert_int_equal(request_status(&r), ST_MALFORMED);
        d.key_id = "";
        assert_int_equal(request_status(&r), ST_MALFORMED);
    }
}

static void test_request_no_op(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    packed p;
    Lurk__V1__Status st = ST_OK;
    const char *why = NULL;
    Lurk__V1__Request *req;

    (void)state;
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 5;
    p = pack_request(&r);
    req = lurk_request_decode(p.buf, p.len, &st, &why);
    assert_non_null(req);
    assert_int_equal(st, ST_MALFORMED);
    assert_non_null(why);
    lurk__v1__request__free_unpacked(req, NULL);
    free(p.buf);

    /* The empty message: version 0 and no operation. */
    st = ST_OK;
    req = lurk_request_decode((const uint8_t *)"", 0, &st, &why);
    assert_non_null(req);
    assert_int_not_equal(st, ST_OK);
    lurk__v1__request__free_unpacked(req, NULL);
}

static void test_request_version(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__CapabilitiesRequest caps = LURK__V1__CAPABILITIES_REQUEST__INIT;
    static const uint32_t versions[] = { 0, 2, 3, 0xffff, 0xffffffffu };

    (void)state;
    r.op_case = LURK__V1__REQUEST__OP_CAPABILITIES;
    r.capabilities = &caps;
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        packed p;
        Lurk__V1__Status st = ST_OK;
        const char *why = NULL;
        Lurk__V1__Request *req;

        r.version = versions[i];
        p = pack_request(&r);
        req = lurk_request_decode(p.buf, p.len, &st, &why);
        /* Decoded, so that the answer can echo the id. */
        assert_non_null(req);
        assert_int_equal(st, ST_VERSION);
        assert_non_null(why);
        lurk__v1__request__free_unpacked(req, NULL);
        free(p.buf);
    }
    /* The version is judged before the operation. */
    r.version = 2;
    r.op_case = LURK__V1__REQUEST__OP__NOT_SET;
    assert_int_equal(request_status(&r), ST_VERSION);
}

/* Two operations on the wire: protobuf keeps the last; nothing leaks. */
static void test_request_two_ops(void **state)
{
    Lurk__V1__Request r = LURK__V1__REQUEST__INIT;
    Lurk__V1__PingRequest ping = LURK__V1__PING_REQUEST__INIT;
    Lurk__V1__SignRequest s = LURK__V1__SIGN_REQUEST__INIT;
    uint8_t tbs[32] = { 1 }, both[512];
    packed a, b;
    Lurk__V1__Status st = ST_OK;
    const char *why = NULL;
    Lurk__V1__Request *req;

    (void)state;
    r.version = LURK_PROTOCOL_VERSION;
    r.op_case = LURK__V1__REQUEST__OP_PING;
    r.ping = &ping;
    a = pack_request(&r);
    r.op_case = LURK__V1__REQUEST__OP_SIGN;
    r.sign = &s;
    s.key_id = "k";
    s.tbs.data = tbs;
    s.tbs.len = sizeof(tbs);
    b = pack_request(&r);
    assert_true(a.len + b.len <= sizeof(both));
    memcpy(both, a.buf, a.len);
    memcpy(both + a.len, b.buf, b.len);
    req = lurk_request_decode(both, a.len + b.len, &st, &why);
    assert_non_null(req);
    assert_int_equal(st, ST_OK);
    assert_int_equal(req->op_case, LURK__V1__REQUEST__OP_SIGN);
    lurk__v1__request__free_unpacked(req, NULL);
    free(a.buf);
    free(b.buf);
}

/* ------------------------------------------------------------------ */
/* Responses                                                          */
/* ------------------------------------------------------------------ */

static Lurk__V1__Response *decode_response(const Lurk__V1__Response *r, uint64_t id,
                                           Lurk__V1__Response__ResultCase expect, const char **why)
{
    packed p = pack_response(r);
    Lurk__V1__Response *out;

    *why = NULL;
    out = lurk_response_decode(p.buf, p.len, id, expect, why);
    free(p.buf);
    if (out == NULL)
        assert_non_null(*why);
    return out;
}

static void test_response_ok(void **state)
{
    Lurk__V1__Response r = LURK__V1__RESPONSE__INIT;
    Lurk__V1__SignResponse s = LURK__V1__SIGN_RESPONSE__INIT;
    uint8_t sig[64];
    const char *why;
    Lurk__V1__Response *out;

    (void)state;
    memset(sig, 0x3c, sizeof(sig));
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 77;
    r.status = ST_OK;
    r.result_case = LURK__V1__RESPONSE__RESULT_SIGN;
    r.sign = &s;
    s.signature.data = sig;
    s.signature.len = sizeof(sig);
    out = decode_response(&r, 77, LURK__V1__RESPONSE__RESULT_SIGN, &why);
    assert_non_null(out);
    assert_int_equal(out->sign->signature.len, sizeof(sig));
    assert_memory_equal(out->sign->signature.data, sig, sizeof(sig));
    lurk__v1__response__free_unpacked(out, NULL);

    /* Every result kind, each only where it is expected. */
    {
        Lurk__V1__PingResponse pr = LURK__V1__PING_RESPONSE__INIT;
        Lurk__V1__CapabilitiesResponse cr = LURK__V1__CAPABILITIES_RESPONSE__INIT;
        Lurk__V1__GetPublicKeyResponse gr = LURK__V1__GET_PUBLIC_KEY_RESPONSE__INIT;
        Lurk__V1__DecryptResponse dr = LURK__V1__DECRYPT_RESPONSE__INIT;
        uint8_t pm[LURK_PREMASTER_LEN] = { 3, 3 };
        static const Lurk__V1__Response__ResultCase kinds[] = {
            LURK__V1__RESPONSE__RESULT_PING,           LURK__V1__RESPONSE__RESULT_CAPABILITIES,
            LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY, LURK__V1__RESPONSE__RESULT_SIGN,
            LURK__V1__RESPONSE__RESULT_DECRYPT,
        };
        dr.premaster.data = pm;
        dr.premaster.len = sizeof(pm);
        cr.protocol_version = LURK_PROTOCOL_VERSION;
        for (size_t i = 0; i < 5; i++) {
            r.result_case = kinds[i];
            switch (kinds[i]) {
            case LURK__V1__RESPONSE__RESULT_PING: r.ping = &pr; break;
            case LURK__V1__RESPONSE__RESULT_CAPABILITIES: r.capabilities = &cr; break;
            case LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY: r.get_public_key = &gr; break;
            case LURK__V1__RESPONSE__RESULT_SIGN: r.sign = &s; break;
            default: r.decrypt = &dr; break;
            }
            for (size_t j = 0; j < 5; j++) {
                out = decode_response(&r, 77, kinds[j], &why);
                if (i == j) {
                    assert_non_null(out);
                    assert_int_equal(out->result_case, kinds[i]);
                    lurk__v1__response__free_unpacked(out, NULL);
                } else {
                    assert_null(out);
                }
            }
        }
    }
}

static void test_response_refusals(void **state)
{
    Lurk__V1__Response r = LURK__V1__RESPONSE__INIT;
    Lurk__V1__SignResponse s = LURK__V1__SIGN_RESPONSE__INIT;
    uint8_t sig[8] = { 1 };
    const char *why;

    (void)state;
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 10;
    r.result_case = LURK__V1__RESPONSE__RESULT_SIGN;
    r.sign = &s;
    s.signature.data = sig;
    s.signature.len = sizeof(sig);

    /* Another request's answer. */
    assert_null(decode_response(&r, 11, LURK__V1__RESPONSE__RESULT_SIGN, &why));
    assert_null(decode_response(&r, 0, LURK__V1__RESPONSE__RESULT_SIGN, &why));
    /* The wrong kind of result, or none with STATUS_OK. */
    assert_null(decode_response(&r, 10, LURK__V1__RESPONSE__RESULT_DECRYPT, &why));
    r.result_case = LURK__V1__RESPONSE__RESULT__NOT_SET;
    assert_null(decode_response(&r, 10, LURK__V1__RESPONSE__RESULT_SIGN, &why));
    /* An unknown protocol version on success. */
    r.result_case = LURK__V1__RESPONSE__RESULT_SIGN;
    r.version = 2;
    assert_null(decode_response(&r, 10, LURK__V1__RESPONSE__RESULT_SIGN, &why));
    r.version = 0;
    assert_null(decode_response(&r, 10, LURK__V1__RESPONSE__RESULT_SIGN, &why));
    /* An error status that still carries a result. */
    r.version = LURK_PROTOCOL_VERSION;
    for (int st = LURK__V1__STATUS__STATUS_UNKNOWN_KEY;
         st <= LURK__V1__STATUS__STATUS_UNSUPPORTED_VERSION; st++) {
        r.status = (Lurk__V1__Status)st;
        assert_null(decode_response(&r, 10, LURK__V1__RESPONSE__RESULT_SIGN, &why));
    }
}

static void test_response_errors_accepted(void **state)
{
    Lurk__V1__Response r = LURK__V1__RESPONSE__INIT;
    const char *why;
    Lurk__V1__Response *out;

    (void)state;
    r.version = LURK_PROTOCOL_VERSION;
    r.id = 10;
    r.detail = "bytes are not a TLS handshake context";
    for (int st = LURK__V1__STATUS__STATUS_UNKNOWN_KEY;
         st <= LURK__V1__STATUS__STATUS_UNSUPPORTED_VERSION; st++) {
        r.status = (Lurk__V1__Status)st;
        out = decode_response(&r, 10, LURK__V1__RESPONSE__RESULT_SIGN, &why);
        assert_non_null(out);
        assert_int_equal(out->status, st);
        assert_int_equal(out->result_case, LURK__V1__RESPONSE__RESULT__NOT_SET);
        assert_string_equal(out->detail, r.detail);
        lurk__v1__response__free_unpacked(out, NULL);
        /* Still only for the request it answers. */
        assert_null(decode_response(&r, 11, LURK__V1__RESPONSE__RESULT_SIGN, &why));
    }
    /* A newer server's "unsupported version" stays readable. */
    r.version = 2;
    r.status = ST_VERSION;
    out = decode_response(&r, 10, LURK__V1__RESPONSE__RESULT_SIGN, &why);
    assert_non_null(out);
    lurk__v1__response__free_unpacked(out, NULL);
}

static void test_response_garbage_and_size(void **state)
{
    static const uint8_t bad[] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    };
    uint8_t *big = calloc(1, LURK_MAX_MESSAGE + 1);
    uint8_t buf[200];
    uint32_t seed = 12345;
    const char *why = NULL;

    (void)state;
    assert_non_null(big);
    assert_null(lurk_response_decode(bad, sizeof(bad), 0, LURK__V1__RESPONSE__RESULT_SIGN, &why));
    assert_non_null(why);
    /* A well-formed answer over the size limit. */
    {
        Lurk__V1__Response r = LURK__V1__RESPONSE__INIT;
        Lurk__V1__SignResponse s = LURK__V1__SIGN_RESPONSE__INIT;
        packed p;

        r.version = LURK_PROTOCOL_VERSION;
        r.result_case = LURK__V1__RESPONSE__RESULT_SIGN;
        r.sign = &s;
        s.signature.data = big;
        s.signature.len = LURK_MAX_MESSAGE + 1;
        p = pack_response(&r);
        assert_true(p.len > LURK_MAX_MESSAGE);
        why = NULL;
        assert_null(lurk_response_decode(p.buf, p.len, 0, LURK__V1__RESPONSE__RESULT_SIGN, &why));
        assert_non_null(why);
        free(p.buf);
        /* The same under the limit passes: only the size was at fault. */
        s.signature.len = 512;
        p = pack_response(&r);
        {
            Lurk__V1__Response *out = lurk_response_decode(p.buf, p.len, 0,
                                                           LURK__V1__RESPONSE__RESULT_SIGN, &why);
            assert_non_null(out);
            lurk__v1__response__free_unpacked(out, NULL);
        }
        free(p.buf);
    }
    free(big);
    for (int i = 0; i < 20000; i++) {
        size_t len = xorshift(&seed) % sizeof(buf);
        Lurk__V1__Response *out;
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)xorshift(&seed);
        out = lurk_response_decode(buf, len, 0, LURK__V1__RESPONSE__RESULT_SIGN, &why);
        if (out != NULL) {
            assert_true(out->id == 0);
            if (out->status == ST_OK)
                assert_int_equal(out->result_case, LURK__V1__RESPONSE__RESULT_SIGN);
            else
                assert_int_equal(out->result_case, LURK__V1__RESPONSE__RESULT__NOT_SET);
            lurk__v1__response__free_unpacked(out, NULL);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Tables                                                             */
/* ------------------------------------------------------------------ */

static void test_scheme_table(void **state)
{
    static const uint32_t known[] = {
        LURK_SCHEME_RSA_PKCS1_SHA256,
        LURK_SCHEME_RSA_PKCS1_SHA384,
        LURK_SCHEME_RSA_PKCS1_SHA512,
        LURK_SCHEME_ECDSA_SECP256R1_SHA256,
        LURK_SCHEME_ECDSA_SECP384R1_SHA384,
        LURK_SCHEME_ECDSA_SECP521R1_SHA512,
        LURK_SCHEME_RSA_PSS_RSAE_SHA256,
        LURK_SCHEME_RSA_PSS_RSAE_SHA384,
        LURK_SCHEME_RSA_PSS_RSAE_SHA512,
        LURK_SCHEME_ED25519,
        LURK_SCHEME_RSA_PSS_PSS_SHA256,
        LURK_SCHEME_RSA_PSS_PSS_SHA384,
        LURK_SCHEME_RSA_PSS_PSS_SHA512,
        LURK_SCHEME_RSA_PKCS1_SHA1,
        LURK_SCHEME_ECDSA_SHA1,
        LURK_SCHEME_RSA_PKCS1_SHA224,
        LURK_SCHEME_ECDSA_SHA224,
    };
    /* DSA, ed448, rsa_pkcs1_md5 and rsa_pss_pss with no hash of its own. */
    static const uint32_t unknown[] = {
        0, 0x0101, 0x0202, 0x0402, 0x0808, 0x080c, 0xffff, 0x10401, 0x10807, 0xffffffffu,
    };
    size_t count = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        const lurk_scheme *s = lurk_scheme_find(known[i]);
        assert_non_null(s);
        assert_int_equal(s->code, known[i]);
        assert_non_null(s->name);
    }
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_null(lurk_scheme_find(unknown[i]));

    for (const lurk_scheme *s; (s = lurk_scheme_at(count)) != NULL; count++) {
        assert_ptr_equal(lurk_scheme_find(s->code), s);
        switch (s->key_type) {
        case LURK__V1__KEY_TYPE__KEY_TYPE_RSA:
            assert_int_not_equal(s->padding, LURK_PAD_NONE);
            assert_null(s->tls13_group);
            assert_int_equal(s->padding == LURK_PAD_PKCS1, (s->code & 0xff) == 0x01);
            break;
        case LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS:
            assert_int_equal(s->padding, LURK_PAD_PSS);
            assert_null(s->tls13_group);
            assert_int_equal(s->code >> 8, 0x08);
            break;
        case LURK__V1__KEY_TYPE__KEY_TYPE_EC:
            assert_int_equal(s->padding, LURK_PAD_NONE);
            /* TLS 1.3 binds a curve; the TLS 1.2-only legacy pairs do not. */
            assert_int_equal(s->tls13_group == NULL, s->legacy);
            break;
        case LURK__V1__KEY_TYPE__KEY_TYPE_ED25519:
            assert_int_equal(s->code, LURK_SCHEME_ED25519);
            assert_null(s->md);
            assert_int_equal(s->md_len, 0);
            break;
        default: fail();
        }
        if (s->md != NULL && !s->legacy)
            assert_true(s->md_len == 32 || s->md_len == 48 || s->md_len == 64);
        if (s->legacy)
            assert_true(s->md_len == 20 || s->md_len == 28);
    }
    assert_int_equal(count, sizeof(known) / sizeof(known[0]));
    assert_null(lurk_scheme_at(count + 1));
    assert_null(lurk_scheme_at((size_t)-1));
}

static void test_names(void **state)
{
    (void)state;
    for (int st = LURK__V1__STATUS__STATUS_OK; st <= LURK__V1__STATUS__STATUS_UNSUPPORTED_VERSION;
         st++) {
        const char *n = lurk_status_name((Lurk__V1__Status)st);
        assert_non_null(n);
        assert_string_not_equal(n, "unknown status");
        for (int o = LURK__V1__STATUS__STATUS_OK; o < st; o++)
            assert_string_not_equal(n, lurk_status_name((Lurk__V1__Status)o));
    }
    assert_string_equal(lurk_status_name((Lurk__V1__Status)99), "unknown status");
    assert_string_equal(lurk_key_type_name(LURK__V1__KEY_TYPE__KEY_TYPE_RSA), "RSA");
    assert_string_equal(lurk_key_type_name(LURK__V1__KEY_TYPE__KEY_TYPE_EC), "EC");
    assert_string_equal(lurk_key_type_name(LURK__V1__KEY_TYPE__KEY_TYPE_ED25519), "ED25519");
    assert_string_equal(lurk_key_type_name(LURK__V1__KEY_TYPE__KEY_TYPE_UNSPECIFIED), "unknown");
}

/*
 * Every status in the contract has its prose, its token and its label, so
 * that a status added to lurk.proto cannot be forgotten here.
 */
static void test_status_names_cover_contract(void **state)
{
    const ProtobufCEnumDescriptor *d = &lurk__v1__status__descriptor;

    (void)state;
    assert_true(d->n_values > 0);
    for (unsigned int i = 0; i < d->n_values; i++) {
        Lurk__V1__Status st = (Lurk__V1__Status)d->values[i].value;
        const char *token = lurk_status_token(st), *label = lurk_status_label(st);

        assert_string_not_equal(lurk_status_name(st), "unknown status");
        assert_int_equal(strncmp(d->values[i].name, "STATUS_", strlen("STATUS_")), 0);
        assert_string_equal(token, d->values[i].name + strlen("STATUS_"));
        assert_string_not_equal(label, "other");
        assert_int_equal(strlen(label), strlen(token));
        for (size_t k = 0; token[k] != '\0'; k++)
            assert_int_equal(label[k], tolower((unsigned char)token[k]));
        for (unsigned int o = 0; o < i; o++) {
            Lurk__V1__Status other = (Lurk__V1__Status)d->values[o].value;

            assert_string_not_equal(lurk_status_name(st), lurk_status_name(other));
            assert_string_not_equal(label, lurk_status_label(other));
        }
    }
    /* The spellings the audit log, the metrics and the docs already use. */
    assert_string_equal(lurk_status_token(LURK__V1__STATUS__STATUS_OK), "OK");
    assert_string_equal(lurk_status_token(LURK__V1__STATUS__STATUS_UNSUPPORTED_VERSION),
                        "UNSUPPORTED_VERSION");
    assert_string_equal(lurk_status_label(LURK__V1__STATUS__STATUS_UNKNOWN_KEY), "unknown_key");
    assert_string_equal(lurk_status_label(LURK__V1__STATUS__STATUS_NOT_TLS_CONTEXT),
                        "not_tls_context");
    assert_string_equal(lurk_status_token((Lurk__V1__Status)99), "UNKNOWN_STATUS");
    assert_string_equal(lurk_status_label((Lurk__V1__Status)99), "other");
    assert_string_equal(lurk_status_label((Lurk__V1__Status)-1), "other");
}

/* Every key type in the contract but UNSPECIFIED has a name. */
static void test_key_type_names_cover_contract(void **state)
{
    const ProtobufCEnumDescriptor *d = &lurk__v1__key_type__descriptor;

    (void)state;
    for (unsigned int i = 0; i < d->n_values; i++) {
        Lurk__V1__KeyType t = (Lurk__V1__KeyType)d->values[i].value;

        if (t == LURK__V1__KEY_TYPE__KEY_TYPE_UNSPECIFIED)
            assert_string_equal(lurk_key_type_name(t), "unknown");
        else
            assert_string_not_equal(lurk_key_type_name(t), "unknown");
    }
    assert_string_equal(lurk_key_type_name(LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS), "RSA-PSS");
}

/* Every operation of the request's oneof has a name of its own in the table. */
static void test_op_names_cover_contract(void **state)
{
    const ProtobufCMessageDescriptor *d = &lurk__v1__request__descriptor;
    size_t ops = 0;

    (void)state;
    for (unsigned int i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *n;
        int listed = 0;

        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0)
            continue;
        ops++;
        /* protobuf-c numbers the oneof's cases by field number */
        n = lurk_op_name((Lurk__V1__Request__OpCase)f->id);
        assert_string_not_equal(n, "request");
        for (size_t k = 0; k + 1 < LURK_OP_NAMES; k++)
            listed += strcmp(lurk_op_name_at(k), n) == 0;
        assert_int_equal(listed, 1);
    }
    assert_int_equal(ops, LURK_OP_NAMES - 1);
    assert_string_equal(lurk_op_name_at(LURK_OP_NAMES - 1), "request");
    assert_null(lurk_op_name_at(LURK_OP_NAMES));
    assert_string_equal(lurk_op_name(LURK__V1__REQUEST__OP__NOT_SET), "request");
    assert_string_equal(lurk_op_name((Lurk__V1__Request__OpCase)99), "request");
    assert_string_equal(lurk_op_name(LURK__V1__REQUEST__OP_GET_PUBLIC_KEY), "get-public-key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_ping),
        cmocka_unit_test(test_roundtrip_capabilities),
        cmocka_unit_test(test_roundtrip_get_public_key),
        cmocka_unit_test(test_roundtrip_sign),
        cmocka_unit_test(test_roundtrip_decrypt),
        cmocka_unit_test(test_request_garbage),
        cmocka_unit_test(test_request_truncated),
        cmocka_unit_test(test_request_oversized),
        cmocka_unit_test(test_request_field_limits),
        cmocka_unit_test(test_request_key_ids),
        cmocka_unit_test(test_request_no_op),
        cmocka_unit_test(test_request_version),
        cmocka_unit_test(test_request_two_ops),
        cmocka_unit_test(test_response_ok),
        cmocka_unit_test(test_response_refusals),
        cmocka_unit_test(test_response_errors_accepted),
        cmocka_unit_test(test_response_garbage_and_size),
        cmocka_unit_test(test_scheme_table),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_status_names_cover_contract),
        cmocka_unit_test(test_key_type_names_cover_contract),
        cmocka_unit_test(test_op_names_cover_contract),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
