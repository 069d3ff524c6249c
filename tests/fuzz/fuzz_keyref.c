/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the key reference decoder (proto/lurk_keyref.h), which the
 * provider runs on whatever file a server hands OpenSSL as its private key.
 *
 * Besides memory errors, it checks the decoder's promises: a reference it
 * accepts has a valid key id, a known type, a public key within bounds,
 * and is canonical: encoding it again gives back the input byte for byte.
 * The input may also be PEM: then the first LURK KEY REFERENCE block is
 * decoded, as the provider's PEM-to-DER decoder would pass it on.
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "fuzz.h"
#include "lurk_keyref.h"
#include "lurk_wire.h"

static void decode_der(const unsigned char *der, size_t len)
{
    lurk_keyref *ref = NULL;
    const char *why = NULL;
    unsigned char *again = NULL;
    size_t again_len = 0;
    int ok = lurk_keyref_decode(der, len, NULL, &ref, &why);

    /* The decoder leaves OpenSSL's error queue as it found it. */
    FUZZ_CHECK(ERR_peek_error() == 0);
    if (!ok) {
        FUZZ_CHECK(ref == NULL);
        FUZZ_CHECK(why != NULL);
        return;
    }
    FUZZ_CHECK(ref != NULL);
    FUZZ_CHECK(lurk_key_id_valid(ref->key_id));
    FUZZ_CHECK(ref->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA
               || ref->type == LURK__V1__KEY_TYPE__KEY_TYPE_EC
               || ref->type == LURK__V1__KEY_TYPE__KEY_TYPE_ED25519
               || ref->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS);
    FUZZ_CHECK(ref->spki != NULL && ref->spki_len > 0 && ref->spki_len <= LURK_KEYREF_MAX_SPKI);
    FUZZ_CHECK(ref->servers == NULL || strlen(ref->servers) <= LURK_KEYREF_MAX_SERVERS);
    /* Canonical: one key, one file. */
    FUZZ_CHECK(lurk_keyref_encode(ref, NULL, &again, &again_len, &why) == 1);
    FUZZ_CHECK(again_len == len && memcmp(again, der, len) == 0);
    FUZZ_CHECK(ERR_peek_error() == 0);
    OPENSSL_free(again);
    lurk_keyref_free(ref);
}

static void decode_pem(const uint8_t *data, size_t size)
{
    BIO *in = BIO_new_mem_buf(data, (int)size);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long len = 0;

    if (in == NULL)
        return;
    if (PEM_read_bio(in, &name, &header, &der, &len) == 1
        && strcmp(name, LURK_KEYREF_PEM_LABEL) == 0 && len > 0)
        decode_der(der, (size_t)len);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(in);
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * LURK_KEYREF_MAX_DER + 1024)
        return 0;
    ERR_clear_error();
    if (size >= 5 && memcmp(data, "-----", 5) == 0)
        decode_pem(data, size);
    else
        decode_der(data, size);
    return 0;
}
