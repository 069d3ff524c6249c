/*
 * Key reference files: what an unmodified server loads as its "private
 * key" when the key itself stays on a LURK key server.
 *
 *   -----BEGIN LURK KEY REFERENCE-----
 *   base64 of:
 *   LurkKeyReference ::= SEQUENCE {
 *       version    INTEGER,                      -- 1
 *       keyId      UTF8String,                   -- lurk_key_id_valid()
 *       keyType    INTEGER,                      -- 1 RSA, 2 EC, 3 ED25519
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
    const unsigned char *spki;  /* DER SubjectPublicKeyInfo */
    size_t spki_len;
    const char *servers;        /* NULL when absent */
} lurk_keyref;

/*
 * Encode to DER (free *der with OPENSSL_free). The reference is checked
 * exactly as lurk_keyref_decode() checks one, so that nothing is written
 * that a loader would refuse. libctx may be NULL; the public key is parsed
 * with the default provider. Returns 1, or 0 with a static reason in *why.
 */
int lurk_keyref_encode(const lurk_keyref *ref, OSSL_LIB_CTX *libctx,
                       unsigned char **der, size_t *der_len, const char **why);

/* The same, written to out as one PEM block. */
int lurk_keyref_write_pem(BIO *out, const lurk_keyref *ref, OSSL_LIB_CTX *libctx,
                          const char **why);

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

/* KEY_TYPE_UNSPECIFIED for anything but RSA, EC and Ed25519. */
Lurk__V1__KeyType lurk_keyref_type_of(const EVP_PKEY *pkey);

#endif
