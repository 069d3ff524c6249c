/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: what the key server does with the bytes of one request
 * before it touches a key. lurk_request_decode() on the raw message, then,
 * for a Sign request, the TLS-context policy (ks_policy_check_sign) for
 * RSA, EC P-256/P-384/P-521 and Ed25519 key descriptions under the default
 * policy and two narrowed ones; for a Decrypt request the decrypt policy.
 *
 * Besides memory errors (ASan) and undefined behaviour (UBSan), it checks
 * that whatever the policy accepts is, by an independent and deliberately
 * simple reading, exactly one of the three handshake forms with nothing
 * left over: a policy bug that lets other bytes through is a signing
 * oracle, and would not crash anything.
 */
#include <string.h>

#include "fuzz.h"
#include "ks_policy.h"
#include "lurk_wire.h"

#define ST(x) LURK__V1__STATUS__STATUS_##x

static const ks_key_desc fuzz_keys[] = {
    { LURK__V1__KEY_TYPE__KEY_TYPE_RSA, NULL, 2048, { 0 } },
    { LURK__V1__KEY_TYPE__KEY_TYPE_EC, "prime256v1", 256, { 0 } },
    { LURK__V1__KEY_TYPE__KEY_TYPE_EC, "secp384r1", 384, { 0 } },
    { LURK__V1__KEY_TYPE__KEY_TYPE_EC, "P-521", 521, { 0 } },
    { LURK__V1__KEY_TYPE__KEY_TYPE_ED25519, NULL, 253, { 0 } },
    { LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS, NULL, 2048, { 0 } },
    { LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS, NULL, 3072, { 1, "SHA384", "SHA384", 48 } },
};
#define FUZZ_N_KEYS (sizeof(fuzz_keys) / sizeof(fuzz_keys[0]))

/* A scheme the key can use, so that the structure is always parsed. */
static const uint32_t fuzz_natural_scheme[FUZZ_N_KEYS] = {
    LURK_SCHEME_RSA_PSS_RSAE_SHA256,
    LURK_SCHEME_ECDSA_SECP256R1_SHA256,
    LURK_SCHEME_ECDSA_SECP384R1_SHA384,
    LURK_SCHEME_ECDSA_SECP521R1_SHA512,
    LURK_SCHEME_ED25519,
    LURK_SCHEME_RSA_PSS_PSS_SHA256,
    LURK_SCHEME_RSA_PSS_PSS_SHA384,
};

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static int all_bytes(const uint8_t *p, size_t n, uint8_t b)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != b)
            return 0;
    return 1;
}

/* ---- an independent reading of what may be signed --------------------- */

static int ref_tls13(const uint8_t *t, size_t n)
{
    static const char ctx[] = "TLS 1.3, server CertificateVerify";
    size_t head = 64 + sizeof(ctx); /* with the 0x00 separator */

    /* SHA-256 or SHA-384 transcripts: no TLS 1.3 suite hashes with SHA-512. */
    return (n == head + 32 || n == head + 48) && all_bytes(t, 64, 0x20)
        && memcmp(t + 64, ctx, sizeof(ctx)) == 0;
}

static size_t ref_share_len(uint16_t group, int *nist)
{
    *nist = group >= 23 && group <= 25;
    switch (group) {
    case 23: return 65;
    case 24: return 97;
    case 25: return 133;
    case 29: return 32;
    case 30: return 56;
    default: return 0;
    }
}

static int ref_group_allowed(const ks_policy *pol, uint16_t group)
{
    uint32_t bit = ks_policy_group_bit(group);

    return bit != 0 && (pol->groups & bit) != 0;
}

static int ref_ecdhe(const ks_policy *pol, const uint8_t *t, size_t n)
{
    size_t share;
    int nist;

    if (n < 68 || t[64] != 3)
        return 0;
    share = ref_share_len(be16(t + 65), &nist);
    return share != 0 && ref_group_allowed(pol, be16(t + 65)) && t[67] == share && n == 68 + share
        && (!nist || t[68] == 0x04) && !all_bytes(t + 68, share, 0);
}

/* Only RSA keys sign DHE parameters: there are no DHE-ECDSA/EdDSA suites. */
static int ref_ffdhe(const ks_policy *pol, const ks_key_desc *key, const uint8_t *t, size_t n)
{
    size_t off = 64, p, g, y;

    if (key->type != LURK__V1__KEY_TYPE__KEY_TYPE_RSA
        && key->type != LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS)
        return 0;
    if (!pol->allow_ffdhe || n < off + 2)
        return 0;
    p = be16(t + off);
    if ((p != 256 && p != 384 && p != 512 && p != 768 && p != 1024) || p * 8 < pol->min_ffdhe_bits)
        return 0;
    off += 2 + p;
    if (n < off + 2)
        return 0;
    g = be16(t + off);
    off += 2 + g;
    if (n < off + 2)
        return 0;
    y = be16(t + off);
    off += 2 + y;
    /* p odd with its top bit set; g no longer than p, Ys exactly as long
     * (libssl pads it to the length of p). */
    return n == off && g >= 1 && g <= p && y == p && (t[66] & 0x80) != 0
        && (t[66 + p - 1] & 1) != 0;
}

static void check_sign(const ks_policy *pol, size_t k, uint32_t scheme_code, const uint8_t *tbs,
                       size_t len)
{
    const ks_key_desc *key = &fuzz_keys[k];
    ks_verdict v = ks_policy_check_sign(pol, key, scheme_code, tbs, len);
    const lurk_scheme *scheme;

    FUZZ_CHECK(v.reason != NULL);
    if (v.status != ST(OK)) {
        FUZZ_CHECK(v.status == ST(NOT_TLS_CONTEXT) || v.status == ST(UNSUPPORTED_SCHEME)
                   || v.status == ST(NOT_PERMITTED));
        return;
    }
    /* Accepted: the scheme is a known one for this key type... */
    scheme = lurk_scheme_find(scheme_code);
    FUZZ_CHECK(scheme != NULL);
    FUZZ_CHECK(scheme->key_type == key->type);
    /* ...within an RSA-PSS key's restrictions... */
    FUZZ_CHECK(!key->pss.restricted
               || (strcmp(scheme->md, key->pss.md) == 0 && scheme->md_len >= key->pss.min_saltlen));
    /* ...with SHA-1 or SHA-224 only where the policy allows them, in TLS 1.2... */
    FUZZ_CHECK(!scheme->legacy || (pol->allow_legacy_hashes && v.kind != KS_CTX_TLS13_SERVER_CV));
    /* ...and the bytes are exactly one handshake form the policy allows. */
    switch (v.kind) {
    case KS_CTX_TLS13_SERVER_CV:
        FUZZ_CHECK(pol->allow_tls13);
        FUZZ_CHECK(ref_tls13(tbs, len));
        FUZZ_CHECK(scheme->padding != LURK_PAD_PKCS1);
        break;
    case KS_CTX_TLS12_SKE_ECDHE:
        FUZZ_CHECK(pol->allow_tls12);
        FUZZ_CHECK(ref_ecdhe(pol, tbs, len));
        FUZZ_CHECK(!ref_tls13(tbs, len));
        break;
    case KS_CTX_TLS12_SKE_FFDHE:
        FUZZ_CHECK(pol->allow_tls12);
        FUZZ_CHECK(ref_ffdhe(pol, key, tbs, len));
        FUZZ_CHECK(!ref_tls13(tbs, len));
        break;
    default: FUZZ_CHECK(!"an accepted context has no kind");
    }
}

static void check_decrypt(const ks_policy *pol, const Lurk__V1__DecryptRequest *d)
{
    for (size_t k = 0; k < FUZZ_N_KEYS; k++) {
        size_t modulus = (size_t)fuzz_keys[k].bits / 8;
        ks_verdict v = ks_policy_check_decrypt(pol, &fuzz_keys[k], d->ciphertext.len, modulus,
                                               d->client_version);

        FUZZ_CHECK(v.reason != NULL);
        if (v.status == ST(OK)) {
            FUZZ_CHECK(fuzz_keys[k].type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA);
            FUZZ_CHECK(pol->allow_decrypt);
            FUZZ_CHECK(d->ciphertext.len == modulus);
        }
    }
}

static void check_request(const Lurk__V1__Request *req)
{
    ks_policy pols[3];

    pols[0] = ks_policy_default();
    /* TLS 1.3 only. */
    pols[1] = ks_policy_default();
    pols[1].allow_tls12 = 0;
    pols[1].allow_decrypt = 0;
    /* TLS 1.2 without DHE below 3072 bits, X25519 and P-384 only. */
    pols[2] = ks_policy_default();
    pols[2].allow_tls13 = 0;
    pols[2].min_ffdhe_bits = 3072;
    pols[2].groups = ks_policy_group_bit(29) | ks_policy_group_bit(24);
    pols[2].allow_legacy_hashes = 1;

    for (size_t p = 0; p < 3; p++) {
        if (req->op_case == LURK__V1__REQUEST__OP_SIGN) {
            const Lurk__V1__SignRequest *s = req->sign;

            for (size_t k = 0; k < FUZZ_N_KEYS; k++) {
                check_sign(&pols[p], k, s->scheme, s->tbs.data, s->tbs.len);
                if (s->scheme != fuzz_natural_scheme[k])
                    check_sign(&pols[p], k, fuzz_natural_scheme[k], s->tbs.data, s->tbs.len);
            }
        } else if (req->op_case == LURK__V1__REQUEST__OP_DECRYPT) {
            check_decrypt(&pols[p], req->decrypt);
        }
    }
}

/* What lurk_request_check() promises about an accepted request. */
static void check_limits(const Lurk__V1__Request *req)
{
    FUZZ_CHECK(req->version == LURK_PROTOCOL_VERSION);
    switch (req->op_case) {
    case LURK__V1__REQUEST__OP_PING: FUZZ_CHECK(req->ping->payload.len <= LURK_MAX_PING); break;
    case LURK__V1__REQUEST__OP_CAPABILITIES: break;
    case LURK__V1__REQUEST__OP_GET_PUBLIC_KEY:
        FUZZ_CHECK(lurk_key_id_valid(req->get_public_key->key_id));
        break;
    case LURK__V1__REQUEST__OP_SIGN:
        FUZZ_CHECK(lurk_key_id_valid(req->sign->key_id));
        FUZZ_CHECK(req->sign->tbs.len >= 1 && req->sign->tbs.len <= LURK_MAX_TBS);
        FUZZ_CHECK(req->sign->tbs.data != NULL);
        FUZZ_CHECK(strlen(req->sign->key_id) <= LURK_MAX_KEY_ID);
        break;
    case LURK__V1__REQUEST__OP_DECRYPT:
        FUZZ_CHECK(lurk_key_id_valid(req->decrypt->key_id));
        FUZZ_CHECK(req->decrypt->ciphertext.len >= 1
                   && req->decrypt->ciphertext.len <= LURK_MAX_CIPHERTEXT);
        break;
    default: FUZZ_CHECK(!"an accepted request has no operation");
    }
}

/* The operation's message inside a request, NULL without one. */
static ProtobufCMessage *op_message(Lurk__V1__Request *req)
{
    switch (req->op_case) {
    case LURK__V1__REQUEST__OP_PING: return &req->ping->base;
    case LURK__V1__REQUEST__OP_CAPABILITIES: return &req->capabilities->base;
    case LURK__V1__REQUEST__OP_GET_PUBLIC_KEY: return &req->get_public_key->base;
    case LURK__V1__REQUEST__OP_SIGN: return &req->sign->base;
    case LURK__V1__REQUEST__OP_DECRYPT: return &req->decrypt->base;
    default: return NULL;
    }
}

/*
 * Packing what was decoded and decoding it again gives the same verdict.
 * Unknown fields are left out: protobuf-c accepts field number 0 when the
 * tag is an over-long varint (81 00) but refuses the canonical tag it packs
 * it back as (corpus/request/protobuf-c-field-0), and the key server never
 * re-encodes a request anyway.
 */
static void check_roundtrip(Lurk__V1__Request *req)
{
    ProtobufCMessage *op = op_message(req);
    size_t unknown = req->base.n_unknown_fields, op_unknown = op ? op->n_unknown_fields : 0;
    size_t len;
    uint8_t *buf;
    Lurk__V1__Status st = ST(INTERNAL);
    const char *why = NULL;
    Lurk__V1__Request *again;

    req->base.n_unknown_fields = 0;
    if (op != NULL)
        op->n_unknown_fields = 0;
    len = lurk__v1__request__get_packed_size(req);
    buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf != NULL);
    FUZZ_CHECK(lurk__v1__request__pack(req, buf) == len);
    if (len <= LURK_MAX_MESSAGE) {
        again = lurk_request_decode(buf, len, &st, &why);
        FUZZ_CHECK(again != NULL);
        FUZZ_CHECK(st == ST(OK));
        FUZZ_CHECK(again->id == req->id && again->op_case == req->op_case);
        lurk__v1__request__free_unpacked(again, NULL);
    }
    free(buf);
    req->base.n_unknown_fields = unknown;
    if (op != NULL)
        op->n_unknown_fields = op_unknown;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Lurk__V1__Status st = ST(OK);
    const char *why = NULL;
    Lurk__V1__Request *req = lurk_request_decode(data, size, &st, &why);

    if (req == NULL) {
        FUZZ_CHECK(st != ST(OK));
        FUZZ_CHECK(why != NULL);
        return 0;
    }
    if (st != ST(OK)) {
        /* The key server answers these with the status and this reason. */
        FUZZ_CHECK(why != NULL);
        FUZZ_CHECK(st == ST(MALFORMED) || st == ST(UNSUPPORTED_VERSION));
        FUZZ_CHECK(lurk_status_name(st) != NULL);
    } else {
        check_limits(req);
        check_request(req);
        check_roundtrip(req);
    }
    lurk__v1__request__free_unpacked(req, NULL);
    return 0;
}
