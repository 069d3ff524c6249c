/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key table: every private key the key server holds, loaded once at
 * start-up through OSSL_STORE (files, pkcs11:, handle:, ... whatever the
 * configured providers open), with the public facts the protocol reports.
 *
 * After ks_keys_load() the table is read-only, so the workers share it
 * without a lock: OpenSSL allows concurrent operations on one EVP_PKEY as
 * long as each uses its own EVP_MD_CTX / EVP_PKEY_CTX.
 */
#ifndef KS_KEYS_H
#define KS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ks_config.h"
#include "ks_policy.h"

typedef struct {
    char *id;
    char *uri; /* where it was loaded from, for logs */
    EVP_PKEY *pkey;
    /*
     * Unique in the process, never reused (0: none): what caches of this
     * key's contexts are keyed by, since a reload frees keys and a new one
     * may land at the same address.
     */
    uint64_t serial;
    ks_key_desc desc;    /* desc.group points into group[]: do not copy a ks_key */
    char group[32];      /* EC curve name, "" otherwise */
    size_t max_size;     /* EVP_PKEY_get_size(): largest signature */
    unsigned char *spki; /* DER SubjectPublicKeyInfo */
    size_t spki_len;
    unsigned char spki_sha256[32];
    /*
     * RSA, RSA-PSS: the modulus, big-endian, max_size bytes (NULL if the provider
     * would not export it). Public; it tells a ciphertext >= n, which
     * OpenSSL refuses, from a fault.
     */
    unsigned char *modulus;
} ks_key;

typedef struct {
    ks_key *keys; /* sorted by id for ks_keys_find() */
    size_t n;
    /*
     * First 8 bytes of SHA-256 over the configuration text and every SPKI
     * in configuration order: edges compare it to notice any change.
     */
    uint64_t epoch;
} ks_keyring;

/*
 * Load every key of the configuration. Refuses a key file that is not a
 * regular file, is unreadable, or is readable or writable by every user;
 * key types other than RSA and RSA-PSS (2048 to 8192 bits), EC on
 * P-256/P-384/P-521 and Ed25519; an RSA-PSS key's restrictions go to
 * desc.pss. Every key is tried: one info line is logged per key loaded
 * and one error line, naming the key and the fix, per key refused; err then
 * only sums up how many failed.
 */
int ks_keys_load(const ks_config *cfg, ks_keyring **out, char *err, size_t errlen);

const ks_key *ks_keys_find(const ks_keyring *kr, const char *id);

void ks_keys_free(ks_keyring *kr);

/*
 * How many key tables have been freed so far: a cache holding contexts of
 * keys notices a reload by a change and lets go of the old keys' contexts.
 */
uint64_t ks_keys_retired(void);

/*
 * Whether OpenSSL's own providers (default, fips) hold the key: it signs in
 * microseconds and never waits on a device, unlike a TPM or HSM key.
 */
int ks_keys_in_process(const ks_key *k);

/* Lower-case hex of `len` bytes; out needs 2 * len + 1 bytes. */
void ks_keys_hex(const unsigned char *in, size_t len, char *out);

#endif
