/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provider entry point: configuration from openssl.cnf and the algorithm
 * tables.
 *
 * Settings come from the provider's own section (core get_params), never
 * from the environment: nginx clears its workers' environment, and a key
 * that works in the master must keep working in the workers. The channel's
 * credentials are read at activation too (lurk_load_channel).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include "lurk_edge.h"
#include "lurk_keyref.h"
#include "lurk_prov.h"
#include "lurk_transport.h"

static OSSL_FUNC_provider_query_operation_fn lurk_query;
static OSSL_FUNC_provider_gettable_params_fn lurk_gettable_params;
static OSSL_FUNC_provider_get_params_fn lurk_get_params;
static OSSL_FUNC_provider_get_reason_strings_fn lurk_get_reason_strings;
static OSSL_FUNC_provider_teardown_fn lurk_teardown;

/* The descriptions are what `openssl list -...-algorithms -verbose` shows. */
#define LURK_ALG(name, fns, what)   \
    {                               \
        name, LURK_PROPS, fns, what \
    }

static const OSSL_ALGORITHM lurk_keymgmt[] = {
    LURK_ALG("RSA:rsaEncryption:1.2.840.113549.1.1.1", lurk_rsa_keymgmt_functions,
             "LURK remote RSA key (public half local, private half on the key server)"),
    LURK_ALG("RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10", lurk_rsa_pss_keymgmt_functions,
             "LURK remote RSA-PSS key (public half local, private half on the key server)"),
    LURK_ALG("EC:id-ecPublicKey:1.2.840.10045.2.1", lurk_ec_keymgmt_functions,
             "LURK remote EC key (public half local, private half on the key server)"),
    LURK_ALG("ED25519:1.3.101.112", lurk_ed25519_keymgmt_functions,
             "LURK remote Ed25519 key (public half local, private half on the key server)"),
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM lurk_signature[] = {
    LURK_ALG("RSA:rsaEncryption:1.2.840.113549.1.1.1", lurk_rsa_signature_functions,
             "TLS handshake signatures with a LURK RSA or RSA-PSS key, made by the key server"),
    LURK_ALG("ECDSA", lurk_ecdsa_signature_functions,
             "TLS handshake signatures with a LURK EC key, made by the key server"),
    LURK_ALG("ED25519:1.3.101.112", lurk_ed25519_signature_functions,
             "TLS handshake signatures with a LURK Ed25519 key, made by the key server"),
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM lurk_asym_cipher[] = {
    LURK_ALG("RSA:rsaEncryption:1.2.840.113549.1.1.1", lurk_rsa_asym_cipher_functions,
             "TLS 1.2 RSA premaster decryption with a LURK RSA key, made by the key server"),
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM lurk_store[] = {
    LURK_ALG("lurk", lurk_store_functions, "lurk://KEY-ID: a key held by a LURK key server"),
    { NULL, NULL, NULL, NULL }
};

/* Key reference files (lurk_decoder.c): PEM to DER, then DER to a key. */
#define LURK_DECODER_REF(name, fns, what)                                         \
    {                                                                             \
        name, LURK_PROPS ",input=der,structure=" LURK_KEYREF_STRUCTURE, fns, what \
    }

static const OSSL_ALGORITHM lurk_decoder[] = {
    { "DER", LURK_PROPS ",input=pem", lurk_pem_decoder_functions,
      "PEM \"" LURK_KEYREF_PEM_LABEL "\" to DER" },
    LURK_DECODER_REF("RSA:rsaEncryption:1.2.840.113549.1.1.1", lurk_rsa_decoder_functions,
                     "LURK key reference file to a remote RSA key"),
    LURK_DECODER_REF("RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10", lurk_rsa_pss_decoder_functions,
                     "LURK key reference file to a remote RSA-PSS key"),
    LURK_DECODER_REF("EC:id-ecPublicKey:1.2.840.10045.2.1", lurk_ec_decoder_functions,
                     "LURK key reference file to a remote EC key"),
    LURK_DECODER_REF("ED25519:1.3.101.112", lurk_ed25519_decoder_functions,
                     "LURK key reference file to a remote Ed25519 key"),
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM *lurk_query(void *provctx, int operation_id, int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_KEYMGMT: return lurk_keymgmt;
    case OSSL_OP_SIGNATURE: return lurk_signature;
    case OSSL_OP_ASYM_CIPHER: return lurk_asym_cipher;
    case OSSL_OP_STORE: return lurk_store;
    case OSSL_OP_DECODER: return lurk_decoder;
    default: return NULL;
    }
}

static const OSSL_PARAM lurk_param_types[] = {
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0), OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_gettable_params(void *provctx)
{
    (void)provctx;
    return lurk_param_types;
}

static int lurk_get_params(void *provctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;

    (void)provctx;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME)) != NULL
        && !OSSL_PARAM_set_utf8_ptr(p, "LURK remote key provider"))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION)) != NULL
        && !OSSL_PARAM_set_utf8_ptr(p, LURK_VERSION))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS)) != NULL
        && !OSSL_PARAM_set_int(p, 1))
        return 0;
    return 1;
}

static const OSSL_ITEM *lurk_get_reason_strings(void *provctx)
{
    (void)provctx;
    return lurk_reason_strings();
}

static void lurk_prov_ctx_free(LURK_PROV_CTX *prov)
{
    if (prov == NULL)
        return;
    lurk_rpc_teardown(prov);
    lurk_caps_teardown(prov);
    /* A forked child's client still holds its references: they stay. */
    lurk_tls_cred_free(prov->cred);
    lurk_url_list_free(prov->servers);
    free(prov->tls_cert);
    free(prov->tls_key);
    free(prov->tls_ca);
    free(prov->server_name);
    free(prov->pubkey_helper);
    free(prov->tls_min_version);
    free(prov->tls_providers);
    OSSL_LIB_CTX_free(prov->libctx);
    pthread_mutex_destroy(&prov->lock);
    free(prov);
}

static void lurk_teardown(void *provctx)
{
    lurk_prov_ctx_free(provctx);
}

static const OSSL_DISPATCH lurk_dispatch[] = {
    { OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))lurk_teardown },
    { OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))lurk_gettable_params },
    { OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))lurk_get_params },
    { OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))lurk_query },
    { OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))lurk_get_reason_strings },
    { 0, NULL }
};

static int lurk_dup_opt(char **dst, const char *src)
{
    if (src == NULL || src[0] == '\0')
        return 1;
    return (*dst = strdup(src)) != NULL;
}

#define lurk_config_fail(prov, ...) \
    snprintf((prov)->config_error, sizeof((prov)->config_error), __VA_ARGS__)

/*
 * Reads the provider's openssl.cnf section (the names and their reading
 * are lurk_edge.c's, shared with lurkctl); fails on anything unusable.
 */
static int lurk_configure(LURK_PROV_CTX *prov, const OSSL_DISPATCH *in)
{
    OSSL_FUNC_core_get_params_fn *get_params = NULL;
    lurk_edge_text text;
    lurk_edge_values v;
    const lurk_edge_field *fields;
    size_t n;
    OSSL_PARAM params[16];

    memset(&text, 0, sizeof(text));
    fields = lurk_edge_fields(&n);
    if (n >= sizeof(params) / sizeof(params[0])) {
        lurk_config_fail(prov, "internal: too many settings");
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        params[i] = OSSL_PARAM_construct_utf8_ptr(fields[i].name,
                                                  (char **)lurk_edge_slot(&text, &fields[i]), 0);
    params[n] = OSSL_PARAM_construct_end();
    for (; in->function_id != 0; in++)
        if (in->function_id == OSSL_FUNC_CORE_GET_PARAMS)
            get_params = OSSL_FUNC_core_get_params(in);
    if (get_params == NULL || !get_params(prov->handle, params)) {
        lurk_config_fail(prov, "cannot read the provider's configuration section");
        return 0;
    }
    /*
     * Without servers the provider still loads: `openssl list -providers`
     * and key loading work, and the first signature says what is missing.
     */
    if (lurk_edge_parse(&text, &v, prov->config_error, sizeof(prov->config_error)) != 0)
        return 0;
    prov->servers = v.servers;
    prov->allow_insecure = v.allow_insecure;
    prov->verify_signatures = v.verify_signatures;
    prov->timeout_ms = v.timeout_ms;
    prov->attempt_timeout_ms = v.attempt_timeout_ms;
    prov->keepalive_ms = v.keepalive_ms;
    if (!lurk_dup_opt(&prov->tls_cert, text.tls_cert) || !lurk_dup_opt(&prov->tls_key, text.tls_key)
        || !lurk_dup_opt(&prov->tls_ca, text.tls_ca)
        || !lurk_dup_opt(&prov->server_name, text.server_name)
        || !lurk_dup_opt(&prov->pubkey_helper, text.pubkey_helper)
        || !lurk_dup_opt(&prov->tls_min_version, v.tls_min_version)
        || !lurk_dup_opt(&prov->tls_providers, text.tls_providers)) {
        lurk_config_fail(prov, "out of memory");
        return 0;
    }
    return 1;
}

/*
 * The channel's certificate, key, CA and providers are read here, once, by
 * the process that activates the provider: an nginx, HAProxy or Postfix
 * master, as root, before it forks its workers, drops privileges or enters
 * a chroot. The workers then authenticate the channel from memory, so the
 * edge's channel key need be readable by root only, and a chrooted Postfix
 * smtpd opens no file at its first handshake. lurk_tls_cred_load_ex is
 * OpenSSL only: nng must not start before the fork (lurk_rpc.c).
 *
 * Only an edge with a tls+tcp:// server needs a credential; an ipc://
 * edge's leftover TLS settings are not read.
 */
static void lurk_load_channel(LURK_PROV_CTX *prov)
{
    lurk_tls_files files;
    char err[400];
    int tls = 0;

    for (char *const *u = prov->servers; u != NULL && *u != NULL; u++)
        tls |= lurk_url_classify(*u) == LURK_URL_TLS;
    if (!tls)
        return;
    memset(&files, 0, sizeof(files));
    files.cert = prov->tls_cert;
    files.key = prov->tls_key;
    files.ca = prov->tls_ca;
    files.min_version = prov->tls_min_version;
    if (lurk_tls_cred_load_ex(&files, prov->tls_providers, &prov->cred, err, sizeof(err)) != 0)
        lurk_config_fail(prov,
                         "channel credentials (tls_cert, tls_key, tls_ca): %s (read when the "
                         "provider was activated, by uid %ld)",
                         err, (long)geteuid());
}

int lurk_prov_usable(const LURK_PROV_CTX *prov)
{
    if (prov->config_error[0] == '\0')
        return 1;
    lurk_raise(prov, LURK_R_CONFIG, "%s", prov->config_error);
    return 0;
}

int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    LURK_PROV_CTX *prov;

    lurk_err_init(handle, in);
    if ((prov = calloc(1, sizeof(*prov))) == NULL)
        return 0;
    prov->handle = handle;
    pthread_mutex_init(&prov->lock, NULL);
    /*
     * A bad setting or an unusable channel credential does not stop the
     * provider from loading: OpenSSL 3.0 would drop it without a word, and
     * the server would then fail on an "unregistered scheme" or an
     * undecodable key file. Loaded, it names the bad setting or file at
     * every key load and operation (lurk_prov_usable), so the server
     * refuses to start with that message.
     */
    if (lurk_configure(prov, in))
        lurk_load_channel(prov);
    if ((prov->libctx = OSSL_LIB_CTX_new_child(handle, in)) == NULL) {
        lurk_prov_ctx_free(prov);
        return 0;
    }
    *out = lurk_dispatch;
    *provctx = prov;
    return 1;
}
