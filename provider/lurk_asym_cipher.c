/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RSA decryption with lurk keys: TLS 1.2 RSA key exchange only.
 *
 * The only padding offered is RSA_PKCS1_WITH_TLS_PADDING, whose contract
 * (RFC 5246 7.4.7.1) is what keeps the key server from being a decryption
 * oracle: it always answers 48 bytes, random ones when the padding or the
 * version is wrong. Any other padding is refused here and at the key server.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "lurk_prov.h"

typedef struct {
    LURK_PROV_CTX *prov;
    LURK_KEY *key;
    int pad;
    unsigned int client_version;
    unsigned int negotiated_version;
} LURK_RSA_CTX;

/*
 * The dispatched functions, declared with OpenSSL's own types so that a
 * signature that does not match what libcrypto calls fails to compile.
 */
static OSSL_FUNC_asym_cipher_newctx_fn lurk_rsa_newctx;
static OSSL_FUNC_asym_cipher_freectx_fn lurk_rsa_freectx;
static OSSL_FUNC_asym_cipher_dupctx_fn lurk_rsa_dupctx;
static OSSL_FUNC_asym_cipher_decrypt_init_fn lurk_rsa_decrypt_init;
static OSSL_FUNC_asym_cipher_decrypt_fn lurk_rsa_decrypt;
static OSSL_FUNC_asym_cipher_set_ctx_params_fn lurk_rsa_set_ctx_params;
static OSSL_FUNC_asym_cipher_settable_ctx_params_fn lurk_rsa_settable_ctx_params;

static void *lurk_rsa_newctx(void *provctx)
{
    LURK_RSA_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        lurk_raise(provctx, LURK_R_INTERNAL, "out of memory");
    else
        ctx->prov = provctx;
    return ctx;
}

static void lurk_rsa_freectx(void *vctx)
{
    free(vctx);
}

static void *lurk_rsa_dupctx(void *vctx)
{
    LURK_RSA_CTX *dst = malloc(sizeof(*dst));

    if (dst != NULL)
        *dst = *(LURK_RSA_CTX *)vctx;
    return dst;
}

static int lurk_rsa_decrypt_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    LURK_RSA_CTX *ctx = vctx;
    LURK_KEY *key = keydata;

    /* Unreachable through EVP (RSA-PSS keys name no cipher), but say why if called. */
    if (key != NULL && key->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED,
                   "an RSA-PSS key only signs: no RSA key exchange or decryption with it");
        return 0;
    }
    if (key == NULL || key->type != LURK__V1__KEY_TYPE__KEY_TYPE_RSA || key->key_id == NULL) {
        lurk_raise(ctx->prov, LURK_R_BAD_KEY, "not a lurk RSA private key");
        return 0;
    }
    ctx->key = key;
    ctx->pad = RSA_PKCS1_PADDING;
    ctx->client_version = 0;
    ctx->negotiated_version = 0;
    return lurk_rsa_set_ctx_params(ctx, params);
}

static int lurk_rsa_decrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize,
                            const unsigned char *in, size_t inlen)
{
    LURK_RSA_CTX *ctx = vctx;
    size_t modlen = (size_t)EVP_PKEY_get_size(ctx->key->pub);
    unsigned char ct[LURK_MAX_CIPHERTEXT], premaster[LURK_PREMASTER_LEN];
    int ok;

    if (out == NULL) {
        *outlen = modlen;
        return 1;
    }
    if (ctx->pad != RSA_PKCS1_WITH_TLS_PADDING) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED,
                   "lurk RSA keys only decrypt TLS premaster secrets (RSA_PKCS1_WITH_TLS_PADDING)");
        return 0;
    }
    if (outsize < LURK_PREMASTER_LEN) {
        lurk_raise(ctx->prov, LURK_R_BUFFER_TOO_SMALL, "need %u bytes", LURK_PREMASTER_LEN);
        return 0;
    }
    /* A publicly visible length fault; a local key fails it the same way. */
    if (inlen == 0 || inlen > modlen || modlen > sizeof(ct)) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED, "ciphertext of %zu bytes for a %zu-byte modulus",
                   inlen, modlen);
        return 0;
    }
    /*
     * A local key zero-extends a short ciphertext; doing it here keeps the
     * behaviour identical and lets the key server insist on the exact length.
     */
    memset(ct, 0, modlen - inlen);
    memcpy(ct + (modlen - inlen), in, inlen);
    ok = lurk_rpc_decrypt(ctx->prov, ctx->key->key_id, ct, modlen, ctx->client_version,
                          ctx->negotiated_version, premaster);
    if (ok) {
        memcpy(out, premaster, LURK_PREMASTER_LEN);
        *outlen = LURK_PREMASTER_LEN;
    }
    OPENSSL_cleanse(premaster, sizeof(premaster));
    return ok;
}

static int lurk_rsa_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    LURK_RSA_CTX *ctx = vctx;
    const OSSL_PARAM *p;

    if (params == NULL)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) != NULL) {
        const char *s;
        int mode;

        if (p->data_type == OSSL_PARAM_UTF8_STRING && OSSL_PARAM_get_utf8_string_ptr(p, &s))
            mode = strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0 ? RSA_PKCS1_PADDING : -1;
        else if (!OSSL_PARAM_get_int(p, &mode))
            return 0;
        /* Refused later at decrypt, so that encrypt-style probes still init. */
        ctx->pad = mode;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION)) != NULL
        && !OSSL_PARAM_get_uint(p, &ctx->client_version))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION)) != NULL
        && !OSSL_PARAM_get_uint(p, &ctx->negotiated_version))
        return 0;
    return 1;
}

static const OSSL_PARAM lurk_rsa_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL), OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_rsa_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return lurk_rsa_settable;
}

const OSSL_DISPATCH lurk_rsa_asym_cipher_functions[] = {
    { OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))lurk_rsa_newctx },
    { OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))lurk_rsa_freectx },
    { OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))lurk_rsa_dupctx },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))lurk_rsa_decrypt_init },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))lurk_rsa_decrypt },
    { OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))lurk_rsa_set_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))lurk_rsa_settable_ctx_params },
    { 0, NULL }
};
