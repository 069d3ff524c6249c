/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decoders for key reference files (PEM "LURK KEY REFERENCE", see
 * proto/lurk_keyref.h), so that servers which only read key files with
 * PEM_read_bio_PrivateKey (nginx, HAProxy) or through OSSL_STORE's file
 * loader (the openssl apps) load a lurk key unmodified.
 *
 * OpenSSL's own PEM decoder passes over labels it does not know, so it
 * takes two steps, as in OpenSSL's pem2der and der2key:
 *   - "DER" from input=pem: reads one PEM block and, when it is a
 *     reference, passes its DER on as structure "LurkKeyReference";
 *   - one decoder per key type from that structure: emits a reference to a
 *     LURK_KEY that our keymgmt `load` takes over.
 * Everything here is local: the public key is in the file, and nothing
 * may start nng, since servers load keys in a master process and fork.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include "lurk_keyref.h"
#include "lurk_prov.h"

typedef struct {
    LURK_PROV_CTX *prov;
} LURK_DEC_CTX;

/*
 * The dispatched functions, declared with OpenSSL's own types so that a
 * signature that does not match what libcrypto calls fails to compile.
 */
static OSSL_FUNC_decoder_newctx_fn lurk_dec_newctx;
static OSSL_FUNC_decoder_freectx_fn lurk_dec_freectx;
static OSSL_FUNC_decoder_export_object_fn lurk_dec_export_object;
static OSSL_FUNC_decoder_decode_fn lurk_dec_pem_decode, lurk_dec_rsa_decode,
    lurk_dec_rsa_pss_decode, lurk_dec_ec_decode, lurk_dec_ed25519_decode;

static void *lurk_dec_newctx(void *provctx)
{
    LURK_DEC_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        lurk_raise(provctx, LURK_R_INTERNAL, "out of memory");
        return NULL;
    }
    ctx->prov = provctx;
    return ctx;
}

static void lurk_dec_freectx(void *vctx)
{
    free(vctx);
}

/*
 * libcrypto calls this without a NULL check when the keymgmt it picked is
 * another provider's; a LURK_KEY can only become one of our keys.
 */
static int lurk_dec_export_object(void *vctx, const void *reference, size_t reference_sz,
                                  OSSL_CALLBACK *export_cb, void *export_cbarg)
{
    (void)vctx;
    (void)reference;
    (void)reference_sz;
    (void)export_cb;
    (void)export_cbarg;
    return 0;
}

/* --- PEM to DER ------------------------------------------------------------ */

static int lurk_dec_pem_pass_on(LURK_DEC_CTX *ctx, const char *header, unsigned char *der,
                                long der_len, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    int objtype = OSSL_OBJECT_PKEY;
    lurk_keyref *ref;
    const char *why;
    OSSL_PARAM params[4];

    /*
     * The label says the file is ours, so a broken one fails here with the
     * reason, instead of as "unsupported" after every other decoder.
     */
    if (header[0] != '\0') {
        lurk_raise(ctx->prov, LURK_R_BAD_KEY,
                   "key reference file: unexpected PEM headers "
                   "(a reference is never encrypted)");
        return 0;
    }
    if (!lurk_keyref_decode(der, (size_t)der_len, ctx->prov->libctx, &ref, &why)) {
        lurk_raise(ctx->prov, LURK_R_BAD_KEY, "key reference file: %s", why);
        return 0;
    }
    lurk_keyref_free(ref);
    /*
     * The object type keeps OSSL_STORE from also trying the DER as a
     * certificate, CRL or PKCS#12. No data type: each per-type decoder
     * checks the key type. OpenSSL 3.0 has no "input type" parameter; our
     * name, "DER", says it.
     */
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &objtype);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, der, (size_t)der_len);
    params[2] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE,
                                                 (char *)LURK_KEYREF_STRUCTURE, 0);
    params[3] = OSSL_PARAM_construct_end();
    return data_cb(params, data_cbarg);
}

static int lurk_dec_pem_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                               OSSL_CALLBACK *data_cb, void *data_cbarg,
                               OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    LURK_DEC_CTX *ctx = vctx;
    BIO *in = BIO_new_from_core_bio(ctx->prov->libctx, cin);
    char *label = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    int ok = 1;

    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    if (in == NULL)
        return 1;
    /*
     * Exactly one block: the next may be another decoder's, as in a
     * certificate + key bundle, where the caller loops block by block.
     * Any other label: return empty-handed so the other decoders run.
     */
    if (PEM_read_bio(in, &label, &header, &der, &der_len) > 0
        && strcmp(label, LURK_KEYREF_PEM_LABEL) == 0)
        ok = lurk_dec_pem_pass_on(ctx, header, der, der_len, data_cb, data_cbarg);
    OPENSSL_free(label);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(in);
    return ok;
}

/* --- LurkKeyReference to a key --------------------------------------------- */

/*
 * At most LURK_KEYREF_MAX_DER + 1 bytes: these decoders also see raw DER
 * input of any kind, which must cost nothing when it is not ours.
 */
static unsigned char *lurk_dec_read_der(LURK_DEC_CTX *ctx, OSSL_CORE_BIO *cin, size_t *len)
{
    BIO *in = BIO_new_from_core_bio(ctx->prov->libctx, cin);
    unsigned char *buf = malloc(LURK_KEYREF_MAX_DER + 1);
    size_t n = 0, got;

    while (in != NULL && buf != NULL && n <= LURK_KEYREF_MAX_DER
           && BIO_read_ex(in, buf + n, LURK_KEYREF_MAX_DER + 1 - n, &got) == 1 && got > 0)
        n += got;
    BIO_free(in);
    if (buf == NULL || n == 0 || n > LURK_KEYREF_MAX_DER) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int lurk_dec_emit(LURK_DEC_CTX *ctx, const lurk_keyref *ref, OSSL_CALLBACK *object_cb,
                         void *object_cbarg)
{
    LURK_KEY *key = lurk_key_from_spki(ctx->prov, ref->key_id, ref->type, ref->spki, ref->spki_len);

    return key != NULL && lurk_key_emit(ctx->prov, key, object_cb, object_cbarg);
}

static int lurk_dec_ref_decode(void *vctx, Lurk__V1__KeyType type, OSSL_CORE_BIO *cin,
                               OSSL_CALLBACK *object_cb, void *object_cbarg)
{
    LURK_DEC_CTX *ctx = vctx;
    unsigned char *der;
    size_t der_len = 0;
    lurk_keyref *ref = NULL;
    const char *why;
    int ok = 1;

    if ((der = lurk_dec_read_der(ctx, cin, &der_len)) == NULL)
        return 1;
    /* Not a reference, or one for another type's decoder: not an error. */
    if (lurk_keyref_decode(der, der_len, ctx->prov->libctx, &ref, &why) && ref->type == type)
        ok = lurk_dec_emit(ctx, ref, object_cb, object_cbarg);
    lurk_keyref_free(ref);
    free(der);
    return ok;
}

#define LURK_DEC_TYPE(t, TYPE)                                                                \
    static int lurk_dec_##t##_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,           \
                                     OSSL_CALLBACK *object_cb, void *object_cbarg,            \
                                     OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)         \
    {                                                                                         \
        (void)selection;                                                                      \
        (void)pw_cb;                                                                          \
        (void)pw_cbarg;                                                                       \
        return lurk_dec_ref_decode(vctx, LURK__V1__KEY_TYPE__KEY_TYPE_##TYPE, cin, object_cb, \
                                   object_cbarg);                                             \
    }                                                                                         \
    const OSSL_DISPATCH lurk_##t##_decoder_functions[] = {                                    \
        { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))lurk_dec_newctx },                        \
        { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))lurk_dec_freectx },                      \
        { OSSL_FUNC_DECODER_DECODE, (void (*)(void))lurk_dec_##t##_decode },                  \
        { OSSL_FUNC_DECODER_EXPORT_OBJECT, (void (*)(void))lurk_dec_export_object },          \
        { 0, NULL }                                                                           \
    }

LURK_DEC_TYPE(rsa, RSA);
LURK_DEC_TYPE(rsa_pss, RSA_PSS);
LURK_DEC_TYPE(ec, EC);
LURK_DEC_TYPE(ed25519, ED25519);

const OSSL_DISPATCH lurk_pem_decoder_functions[] = {
    { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))lurk_dec_newctx },
    { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))lurk_dec_freectx },
    { OSSL_FUNC_DECODER_DECODE, (void (*)(void))lurk_dec_pem_decode },
    { OSSL_FUNC_DECODER_EXPORT_OBJECT, (void (*)(void))lurk_dec_export_object },
    { 0, NULL }
};
