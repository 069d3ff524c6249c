/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OSSL_STORE loader for `lurk://<key-id>` URIs.
 *
 * The authority form is deliberate: OSSL_STORE first tries any URI as a
 * file path unless it has "://", so `lurk:<id>` could be shadowed by a file
 * of that name in the working directory.
 *
 * The key is emitted as a reference that our keymgmt `load` takes over;
 * there is no export_object, so libcrypto falls back to our keymgmt
 * instead of handing the reference to another provider.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>

#include "lurk_prov.h"

#define LURK_URI_PREFIX "lurk://"

typedef struct {
    LURK_PROV_CTX *prov;
    char key_id[LURK_MAX_KEY_ID + 1];
    int done;
} LURK_STORE_CTX;

/*
 * The dispatched functions, declared with OpenSSL's own types so that a
 * signature that does not match what libcrypto calls fails to compile.
 */
static OSSL_FUNC_store_open_fn lurk_store_open;
static OSSL_FUNC_store_load_fn lurk_store_load;
static OSSL_FUNC_store_eof_fn lurk_store_eof;
static OSSL_FUNC_store_close_fn lurk_store_close;
static OSSL_FUNC_store_set_ctx_params_fn lurk_store_set_ctx_params;
static OSSL_FUNC_store_settable_ctx_params_fn lurk_store_settable_ctx_params;

static void *lurk_store_open(void *provctx, const char *uri)
{
    LURK_PROV_CTX *prov = provctx;
    LURK_STORE_CTX *ctx;
    const char *id;
    size_t len;

    if (strncmp(uri, LURK_URI_PREFIX, strlen(LURK_URI_PREFIX)) == 0)
        id = uri + strlen(LURK_URI_PREFIX);
    else if (strncmp(uri, "lurk:", 5) == 0)
        id = uri + 5;
    else
        return NULL;
    len = strlen(id);
    if (len > 0 && id[len - 1] == '/')
        len--;
    if (len == 0 || len > LURK_MAX_KEY_ID) {
        lurk_raise(prov, LURK_R_BAD_URI, "\"%s\": expected lurk://<key-id>", uri);
        return NULL;
    }
    if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
        return NULL;
    memcpy(ctx->key_id, id, len);
    if (!lurk_key_id_valid(ctx->key_id)) {
        lurk_raise(prov, LURK_R_BAD_URI,
                   "\"%s\": a key id is 1 to %u characters of "
                   "A-Z a-z 0-9 . _ -, not starting with . or -",
                   uri, LURK_MAX_KEY_ID);
        free(ctx);
        return NULL;
    }
    ctx->prov = prov;
    return ctx;
}

static int lurk_store_load(void *vctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
                           OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    LURK_STORE_CTX *ctx = vctx;
    Lurk__V1__KeyType type;
    unsigned char *spki = NULL;
    size_t spki_len = 0;
    LURK_KEY *key;

    (void)pw_cb;
    (void)pw_cbarg;
    ctx->done = 1;
    if (!lurk_rpc_get_public_key(ctx->prov, ctx->key_id, &type, &spki, &spki_len))
        return 0;
    key = lurk_key_from_spki(ctx->prov, ctx->key_id, type, spki, spki_len);
    free(spki);
    return key != NULL && lurk_key_emit(ctx->prov, key, object_cb, object_cbarg);
}

static int lurk_store_eof(void *vctx)
{
    return ((LURK_STORE_CTX *)vctx)->done;
}

static int lurk_store_close(void *vctx)
{
    free(vctx);
    return 1;
}

/* libcrypto calls this without a NULL check; nothing here is tunable. */
static int lurk_store_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    (void)vctx;
    (void)params;
    return 1;
}

static const OSSL_PARAM *lurk_store_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM none[] = { OSSL_PARAM_END };

    (void)provctx;
    return none;
}

const OSSL_DISPATCH lurk_store_functions[] = {
    { OSSL_FUNC_STORE_OPEN, (void (*)(void))lurk_store_open },
    { OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, (void (*)(void))lurk_store_settable_ctx_params },
    { OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))lurk_store_set_ctx_params },
    { OSSL_FUNC_STORE_LOAD, (void (*)(void))lurk_store_load },
    { OSSL_FUNC_STORE_EOF, (void (*)(void))lurk_store_eof },
    { OSSL_FUNC_STORE_CLOSE, (void (*)(void))lurk_store_close },
    { 0, NULL }
};
