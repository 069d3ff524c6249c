/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the key server agrees to sign: the TLS handshake context check.
 *
 * Pure functions with no I/O and no global state, so that the rule that
 * keeps the key server from being a signing oracle can be read, tested and
 * fuzzed on its own. The only library call is OpenSSL's EC point decoding,
 * used to check that an ECDHE share lies on its curve.
 */
#ifndef KS_POLICY_H
#define KS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "lurk_wire.h"

/* TLS NamedGroup code points (RFC 8446 4.2.7, RFC 7919). */
#define KS_GROUP_SECP256R1 23u
#define KS_GROUP_SECP384R1 24u
#define KS_GROUP_SECP521R1 25u
#define KS_GROUP_X25519    29u
#define KS_GROUP_X448      30u

/*
 * An RSA-PSS key's restrictions (RFC 4055 RSASSA-PSS-params in its
 * SubjectPublicKeyInfo). Digest names are the scheme table's spelling
 * ("SHA256"), or "" for a digest no TLS scheme uses, which then matches none.
 */
typedef struct {
    unsigned int restricted : 1; /* 0: any rsa_pss_pss_* scheme */
    const char *md;
    const char *mgf1_md;
    unsigned int min_saltlen;
} ks_pss_desc;

/* The public facts about a key that the policy needs. */
typedef struct {
    Lurk__V1__KeyType type;
    const char *group; /* EC only: OpenSSL group name, e.g. "prime256v1" */
    int bits;          /* modulus or curve size */
    ks_pss_desc pss;   /* RSA-PSS keys only */
} ks_key_desc;

/* What an operator may narrow; ks_policy_default() is the safe default. */
typedef struct {
    unsigned int allow_tls13 : 1;
    unsigned int allow_tls12 : 1;
    unsigned int allow_ffdhe : 1;         /* TLS 1.2 DHE ServerKeyExchange */
    unsigned int allow_decrypt : 1;       /* TLS 1.2 RSA key exchange */
    unsigned int allow_legacy_hashes : 1; /* TLS 1.2 SHA-1 and SHA-224 signatures */
    uint32_t groups;                      /* bit (1u << i) per entry of ks_groups[] */
    unsigned int min_ffdhe_bits;          /* smallest DH prime accepted, e.g. 2048 */
} ks_policy;

typedef enum {
    KS_CTX_NONE = 0,
    KS_CTX_TLS13_SERVER_CV, /* TLS 1.3 server CertificateVerify */
    KS_CTX_TLS12_SKE_ECDHE, /* (D)TLS 1.2 ServerKeyExchange, ECDHE */
    KS_CTX_TLS12_SKE_FFDHE  /* (D)TLS 1.2 ServerKeyExchange, DHE */
} ks_ctx_kind;

typedef struct {
    Lurk__V1__Status status; /* STATUS_OK when the request may be signed */
    ks_ctx_kind kind;        /* what the bytes were recognised as */
    const char *reason;      /* static text for the log and the edge */
} ks_verdict;

/* All of TLS 1.3 and 1.2, P-256/384/521, X25519, X448, FFDHE >= 2048. */
ks_policy ks_policy_default(void);

/* Bit for a NamedGroup in ks_policy.groups, 0 if the group is unknown. */
uint32_t ks_policy_group_bit(uint16_t named_group);

/*
 * Does this scheme fit this key at all (PSS/PKCS#1 for RSA, rsa_pss_pss_*
 * within an RSA-PSS key's restrictions, ...) and does the policy allow its
 * hash? What Capabilities lists for a key is exactly what passes here.
 */
ks_verdict ks_policy_check_scheme(const ks_policy *pol, const ks_key_desc *key,
                                  const lurk_scheme *scheme);

/*
 * The whole decision for a Sign request: the scheme fits the key and the
 * bytes are exactly a server-side TLS handshake context under the policy.
 * The key server then hashes and signs exactly these bytes.
 */
ks_verdict ks_policy_check_sign(const ks_policy *pol, const ks_key_desc *key, uint32_t scheme_code,
                                const uint8_t *tbs, size_t tbs_len);

/* A Decrypt request: an RSA key, decrypt allowed, ciphertext exactly
 * `modulus_len` bytes. */
ks_verdict ks_policy_check_decrypt(const ks_policy *pol, const ks_key_desc *key,
                                   size_t ciphertext_len, size_t modulus_len,
                                   uint32_t client_version);

/* Human-readable name of a context kind, for logs. */
const char *ks_ctx_kind_name(ks_ctx_kind kind);

#endif
