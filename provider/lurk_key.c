/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key object behind every lurk EVP_PKEY: a key id and the public half.
 *
 * The public half is an ordinary key of the default provider, so that every
 * public question (size, group, comparison with the certificate, export of
 * the public key, an RSA-PSS key's restrictions) gets OpenSSL's own answer
 * without an RPC.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "lurk_keyref.h"
#include "lurk_prov.h"

LURK_KEY *lurk_key_new(LURK_PROV_CTX *prov, Lurk__V1__KeyType type)
{
    LURK_KEY *key = calloc(1, sizeof(*key));

    if (key == NULL)
        return NULL;
    key->prov = prov;
    key->type = type;
    return key;
}

void lurk_key_free(LURK_KEY *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pub);
    free(key->key_id);
    free(key);
}

/* The same names lurk_keyref_type_of() matches an SPKI's key against. */
const char *lurk_key_type_data_name(Lurk__V1__KeyType type)
{
    return lurk_keyref_type_keymgmt(type);
}

LURK_KEY *lurk_key_from_spki(LURK_PROV_CTX *prov, const char *key_id, Lurk__V1__KeyType type,
                             const unsigned char *spki, size_t spki_len)
{
    const unsigned char *p = spki;
    lurk_pss_restrictions pss = { 0, "", "", 0 };
    EVP_PKEY *pub;
    LURK_KEY *key;

    if (!lurk_key_id_valid(key_id)) {
        lurk_raise(prov, LURK_R_BAD_KEY, "invalid key id");
        return NULL;
    }
    /* provider=default: never decode the public half with ourselves. */
    pub = d2i_PUBKEY_ex(NULL, &p, (long)spki_len, prov->libctx, "provider=default");
    if (pub == NULL || p != spki + spki_len) {
        EVP_PKEY_free(pub);
        lurk_raise(prov, LURK_R_BAD_KEY, "key \"%s\": public key is not a valid DER SPKI", key_id);
        return NULL;
    }
    if (lurk_keyref_type_of(pub) != type || lurk_key_type_data_name(type) == NULL) {
        EVP_PKEY_free(pub);
        lurk_raise(prov, LURK_R_BAD_KEY, "key \"%s\": public key is not of type %s", key_id,
                   lurk_key_type_name(type));
        return NULL;
    }
    if (type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS
        && lurk_pss_restrictions_of(pub, prov->libctx, &pss) != 1) {
        EVP_PKEY_free(pub);
        lurk_raise(prov, LURK_R_BAD_KEY,
                   "key \"%s\": the RSA-PSS public key's parameter "
                   "restrictions cannot be read",
                   key_id);
        return NULL;
    }
    if ((key = lurk_key_new(prov, type)) == NULL || (key->key_id = strdup(key_id)) == NULL) {
        lurk_key_free(key);
        EVP_PKEY_free(pub);
        lurk_raise(prov, LURK_R_INTERNAL, "out of memory");
        return NULL;
    }
    key->pub = pub;
    key->pss = pss;
    return key;
}

/*
 * Hands a new key to libcrypto as an object reference, which our keymgmt
 * `load` takes over; frees the key if nothing took it. The store and the
 * decoders both end here, so a broken provider configuration is reported
 * when a key is loaded, not first at a handshake.
 */
int lurk_key_emit(LURK_PROV_CTX *prov, LURK_KEY *key, OSSL_CALLBACK *object_cb, void *object_cbarg)
{
    int objtype = OSSL_OBJECT_PKEY, ok = 0;
    OSSL_PARAM params[4];

    if (lurk_prov_usable(prov)) {
        params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &objtype);
        params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                                     (char *)lurk_key_type_data_name(key->type), 0);
        params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &key,
                                                      sizeof(key));
        params[3] = OSSL_PARAM_construct_end();
        ok = object_cb(params, object_cbarg);
    }
    lurk_key_free(key); /* NULL if our keymgmt took it */
    return ok;
}
