/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key management for lurk keys: RSA, RSA-PSS, EC and Ed25519.
 *
 * Every public question is answered locally from the public half, so key
 * loading, certificate matching and libssl's per-handshake capability
 * probes never touch the network. The private half is only ever a key id:
 * export refuses any selection that includes it, which is also what makes
 * libcrypto fall back from the default provider's operations to ours.
 */
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>

#include "lurk_prov.h"

/*
 * The dispatched functions, declared with OpenSSL's own types so that a
 * signature that does not match what libcrypto calls fails to compile.
 */
static OSSL_FUNC_keymgmt_new_fn lurk_km_rsa_new, lurk_km_rsa_pss_new, lurk_km_ec_new,
    lurk_km_ed25519_new;
static OSSL_FUNC_keymgmt_free_fn lurk_km_free;
static OSSL_FUNC_keymgmt_load_fn lurk_km_load;
static OSSL_FUNC_keymgmt_has_fn lurk_km_has;
static OSSL_FUNC_keymgmt_match_fn lurk_km_match;
static OSSL_FUNC_keymgmt_import_fn lurk_km_import;
static OSSL_FUNC_keymgmt_export_fn lurk_km_export;
static OSSL_FUNC_keymgmt_import_types_fn lurk_km_rsa_types, lurk_km_rsa_pss_types, lurk_km_ec_types,
    lurk_km_ed25519_types;
static OSSL_FUNC_keymgmt_get_params_fn lurk_km_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn lurk_km_rsa_gettable, lurk_km_rsa_pss_gettable,
    lurk_km_ec_gettable, lurk_km_ed25519_gettable;
static OSSL_FUNC_keymgmt_query_operation_name_fn lurk_km_rsa_opname, lurk_km_rsa_pss_opname,
    lurk_km_ec_opname, lurk_km_ed25519_opname;

static void *lurk_km_new(void *provctx, Lurk__V1__KeyType type)
{
    LURK_KEY *key = lurk_key_new(provctx, type);

    if (key == NULL)
        lurk_raise(provctx, LURK_R_INTERNAL, "out of memory");
    return key;
}

static void *lurk_km_rsa_new(void *provctx)
{
    return lurk_km_new(provctx, LURK__V1__KEY_TYPE__KEY_TYPE_RSA);
}

static void *lurk_km_rsa_pss_new(void *provctx)
{
    return lurk_km_new(provctx, LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS);
}

static void *lurk_km_ec_new(void *provctx)
{
    return lurk_km_new(provctx, LURK__V1__KEY_TYPE__KEY_TYPE_EC);
}

static void *lurk_km_ed25519_new(void *provctx)
{
    return lurk_km_new(provctx, LURK__V1__KEY_TYPE__KEY_TYPE_ED25519);
}

static void lurk_km_free(void *keydata)
{
    lurk_key_free(keydata);
}

/* The store and the decoders pass a LURK_KEY * by reference; we take it. */
static void *lurk_km_load(const void *reference, size_t reference_sz)
{
    LURK_KEY *key;

    if (reference == NULL || reference_sz != sizeof(key))
        return NULL;
    key = *(LURK_KEY **)reference;
    *(LURK_KEY **)reference = NULL;
    return key;
}

static int lurk_km_has(const void *keydata, int selection)
{
    const LURK_KEY *key = keydata;
    int ok = 1;

    if (key == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
        ok = ok && key->key_id != NULL;
    if ((selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)) != 0)
        ok = ok && key->pub != NULL;
    return ok;
}

static int lurk_km_match(const void *keydata1, const void *keydata2, int selection)
{
    const LURK_KEY *k1 = keydata1, *k2 = keydata2;

    if (k1 == NULL || k2 == NULL || k1->pub == NULL || k2->pub == NULL || k1->type != k2->type)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0)
        return EVP_PKEY_eq(k1->pub, k2->pub) == 1;
    if ((selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) != 0)
        return EVP_PKEY_parameters_eq(k1->pub, k2->pub) == 1;
    return 1;
}

/*
 * libcrypto imports the certificate's public key here to compare it with
 * ours. Only public data is ever kept: private parameters, if a caller
 * passes any, are not read.
 */
static int lurk_km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    LURK_KEY *key = keydata;
    EVP_PKEY_CTX *ctx;
    EVP_PKEY *pub = NULL;
    int sel = (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0 ? EVP_PKEY_PUBLIC_KEY
                                                             : EVP_PKEY_KEY_PARAMETERS;

    if (key == NULL || key->pub != NULL || key->key_id != NULL)
        return 0;
    ctx = EVP_PKEY_CTX_new_from_name(key->prov->libctx, lurk_key_type_data_name(key->type),
                                     "provider=default");
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &pub, sel, (OSSL_PARAM *)params) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        return 0;
    }
    EVP_PKEY_CTX_free(ctx);
    key->pub = pub;
    return 1;
}

static int lurk_km_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    LURK_KEY *key = keydata;

    if (key == NULL || key->pub == NULL)
        return 0;
    /* Quietly: libcrypto asks on every handshake and then falls back to us. */
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
        return 0;
    return EVP_PKEY_export(key->pub, selection, cb, cbarg);
}

static int lurk_km_get_params(void *keydata, OSSL_PARAM params[])
{
    LURK_KEY *key = keydata;

    if (key == NULL || key->pub == NULL)
        return 0;
    return EVP_PKEY_get_params(key->pub, params);
}

static const OSSL_PARAM lurk_rsa_public[] = { OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
                                              OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
                                              OSSL_PARAM_END };

/*
 * As OpenSSL's RSA-PSS keymgmt: the restrictions (RFC 4055 parameters)
 * travel with the public key, so an id-RSASSA-PSS certificate's key
 * imported here keeps them and compares as OpenSSL compares it.
 */
static const OSSL_PARAM lurk_rsa_pss_public[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_RSA_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_RSA_DIGEST_PROPS, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_RSA_MASKGENFUNC, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_RSA_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_RSA_PSS_SALTLEN, NULL),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ec_public[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0), OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ed25519_public[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0), OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_km_rsa_types(int selection)
{
    (void)selection;
    return lurk_rsa_public;
}

static const OSSL_PARAM *lurk_km_rsa_pss_types(int selection)
{
    (void)selection;
    return lurk_rsa_pss_public;
}

static const OSSL_PARAM *lurk_km_ec_types(int selection)
{
    (void)selection;
    return lurk_ec_public;
}

static const OSSL_PARAM *lurk_km_ed25519_types(int selection)
{
    (void)selection;
    return lurk_ed25519_public;
}

static const OSSL_PARAM lurk_rsa_gettable[] = { OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
                                                OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
                                                OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
                                                OSSL_PARAM_utf8_string(
                                                    OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
                                                OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
                                                OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
                                                OSSL_PARAM_END };

/*
 * A restricted key answers mandatory-digest (its one hash) and no
 * default-digest, an unrestricted one the reverse: libssl reads them to
 * skip sigalgs, exactly as with a local key (the public half answers).
 */
static const OSSL_PARAM lurk_rsa_pss_gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_RSA_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_RSA_MASKGENFUNC, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_RSA_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_RSA_PSS_SALTLEN, NULL),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ec_gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ed25519_gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_km_rsa_gettable(void *provctx)
{
    (void)provctx;
    return lurk_rsa_gettable;
}

static const OSSL_PARAM *lurk_km_rsa_pss_gettable(void *provctx)
{
    (void)provctx;
    return lurk_rsa_pss_gettable;
}

static const OSSL_PARAM *lurk_km_ec_gettable(void *provctx)
{
    (void)provctx;
    return lurk_ec_gettable;
}

static const OSSL_PARAM *lurk_km_ed25519_gettable(void *provctx)
{
    (void)provctx;
    return lurk_ed25519_gettable;
}

static const char *lurk_km_rsa_opname(int operation_id)
{
    return operation_id == OSSL_OP_SIGNATURE || operation_id == OSSL_OP_ASYM_CIPHER ? "RSA" : NULL;
}

/*
 * Our RSA signature serves RSA-PSS keys too (PSS only, within their
 * restrictions), as OpenSSL's does; there is no RSA-PSS key exchange.
 */
static const char *lurk_km_rsa_pss_opname(int operation_id)
{
    return operation_id == OSSL_OP_SIGNATURE ? "RSA" : NULL;
}

/* libssl fetches the signature by this name: EC keys sign with "ECDSA". */
static const char *lurk_km_ec_opname(int operation_id)
{
    return operation_id == OSSL_OP_SIGNATURE ? "ECDSA" : NULL;
}

static const char *lurk_km_ed25519_opname(int operation_id)
{
    return operation_id == OSSL_OP_SIGNATURE ? "ED25519" : NULL;
}

#define LURK_KEYMGMT_FUNCTIONS(t)                                                         \
    const OSSL_DISPATCH lurk_##t##_keymgmt_functions[] = {                                \
        { OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))lurk_km_##t##_new },                     \
        { OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))lurk_km_free },                         \
        { OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))lurk_km_load },                         \
        { OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))lurk_km_has },                           \
        { OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))lurk_km_match },                       \
        { OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))lurk_km_import },                     \
        { OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))lurk_km_##t##_types },          \
        { OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))lurk_km_export },                     \
        { OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))lurk_km_##t##_types },          \
        { OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))lurk_km_get_params },             \
        { OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))lurk_km_##t##_gettable },    \
        { OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))lurk_km_##t##_opname }, \
        { 0, NULL }                                                                       \
    }

LURK_KEYMGMT_FUNCTIONS(rsa);
LURK_KEYMGMT_FUNCTIONS(rsa_pss);
LURK_KEYMGMT_FUNCTIONS(ec);
LURK_KEYMGMT_FUNCTIONS(ed25519);
