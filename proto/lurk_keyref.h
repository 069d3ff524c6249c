/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key reference files: what an unmodified server loads as its "private
 * key" when the key itself stays on a LURK key server.
 *
 *   -----BEGIN LURK KEY REFERENCE-----
 *   base64 of:
 *   LurkKeyReference ::= SEQUENCE {
 *       version    INTEGER,                      -- 1
 *       keyId      UTF8String,                   -- lurk_key_id_valid()
 *       keyType    INTEGER,                      -- 1 RSA, 2 EC, 3 ED25519, 4 RSA-PSS
 *       publicKey  OCTET STRING,                 -- DER SubjectPublicKeyInfo
 *       servers    [0] EXPLICIT UTF8String OPTIONAL  -- key server URLs, a hint
 *   }
 *   -----END LURK KEY REFERENCE-----
 *
 * The public key travels in the file so that loading it needs no network:
 * servers load keys in a master process that forks afterwards, where nng
 * must not run. It is an OCTET STRING rather than an embedded
 * SubjectPublicKeyInfo so that decoding the reference is one flat step and
 * never recurses into OpenSSL's key decoders; it is parsed separately.
 *
 * A file holds no secret: it names a key and carries its public half.
 * An RSA-PSS key (id-RSASSA-PSS) keeps its parameter restrictions, if any,
 * inside its SubjectPublicKeyInfo, so type 4 needed no new field and the
 * version stays 1 (a provider older than type 4 reports "unknown key type").
 */
#ifndef LURK_KEYREF_H
#define LURK_KEYREF_H

#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/evp.h>

#include "lurk_wire.h"

#define LURK_KEYREF_VERSION   1
#define LURK_KEYREF_PEM_LABEL "LURK KEY REFERENCE"
/* The OSSL_DECODER data structure name of the DER inside the PEM. */
#define LURK_KEYREF_STRUCTURE "LurkKeyReference"

/* Bounds on what a file can make a loader allocate or parse. */
#define LURK_KEYREF_MAX_SPKI    2048u /* RSA-8192 is 1062 bytes */
#define LURK_KEYREF_MAX_SERVERS 1024u
#define LURK_KEYREF_MAX_DER     4096u

typedef struct {
    Lurk__V1__KeyType type;
    const char *key_id;
    const unsigned char *spki; /* DER SubjectPublicKeyInfo */
    size_t spki_len;
    const char *servers; /* NULL when absent */
} lurk_keyref;

/*
 * Encode to DER (free *der with OPENSSL_free). The reference is checked
 * exactly as lurk_keyref_decode() checks one, so that nothing is written
 * that a loader would refuse. libctx may be NULL; the public key is parsed
 * with the default provider. Returns 1, or 0 with a static reason in *why.
 */
int lurk_keyref_encode(const lurk_keyref *ref, OSSL_LIB_CTX *libctx, unsigned char **der,
                       size_t *der_len, const char **why);

/* The same, written to out as one PEM block. */
int lurk_keyref_write_pem(BIO *out, const lurk_keyref *ref, OSSL_LIB_CTX *libctx, const char **why);

/*
 * Decode untrusted DER: canonical DER only, version 1, a valid key id, a
 * known key type, a public key that parses and is of that type, the
 * bounds above, no trailing bytes. On success *out is one allocation
 * (lurk_keyref_free); returns 0 with a static reason in *why otherwise.
 * Leaves OpenSSL's error queue as it found it.
 */
int lurk_keyref_decode(const unsigned char *der, size_t der_len, OSSL_LIB_CTX *libctx,
                       lurk_keyref **out, const char **why);

void lurk_keyref_free(lurk_keyref *ref);

/* KEY_TYPE_UNSPECIFIED for anything but RSA, RSA-PSS, EC and Ed25519. */
Lurk__V1__KeyType lurk_keyref_type_of(const EVP_PKEY *pkey);

/*
 * OpenSSL's key management name of a key type ("RSA", "EC", "ED25519",
 * "RSA-PSS"), the one lurk_keyref_type_of matches; NULL for UNSPECIFIED.
 */
const char *lurk_keyref_type_keymgmt(Lurk__V1__KeyType type);

/*
 * An RSA-PSS key's parameter restrictions (RFC 4055), in the scheme
 * table's spelling: md and mgf1_md are "SHA256", "SHA384", "SHA512", or ""
 * for a digest no TLS scheme signs with (which then matches no scheme).
 * The strings are static.
 */
typedef struct {
    int restricted; /* 0: the key signs with any rsa_pss_pss_* */
    const char *md;
    const char *mgf1_md;
    unsigned int min_saltlen;
} lurk_pss_restrictions;

/*
 * Reads them from a key (private or public) of type RSA-PSS: OpenSSL 3.0
 * reports OSSL_PKEY_PARAM_MANDATORY_DIGEST only for a restricted key, and
 * omits a hash or MGF1 hash equal to the RFC 4055 default (SHA-1), which is
 * then taken as that default. libctx may be NULL. Returns 1, or 0 when a
 * restricted key's parameters make no sense.
 */
int lurk_pss_restrictions_of(const EVP_PKEY *pkey, OSSL_LIB_CTX *libctx,
                             lurk_pss_restrictions *out);

#endif
