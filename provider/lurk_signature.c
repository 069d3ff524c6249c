/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signatures with lurk keys: RSA (PKCS#1 v1.5 and PSS), RSA-PSS keys (PSS
 * only, within their restrictions), ECDSA, Ed25519.
 *
 * libssl signs through EVP_DigestSign, and for a provider key libcrypto
 * hands the whole to-be-signed message to digest_sign: we ship those bytes
 * to the key server untouched, so that it can check they are a TLS
 * handshake context before it hashes and signs them. A digest chosen by
 * the edge is never signed.
 *
 * Init must stay cheap and local: libssl's capability probe runs a full
 * DigestSignInit per candidate sigalg on every handshake, and reads a
 * failed init as "this key does not do that digest".
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "lurk_prov.h"

typedef struct {
    LURK_PROV_CTX *prov;
    Lurk__V1__KeyType type;     /* of the algorithm this context implements */
    Lurk__V1__KeyType key_type; /* of the key: RSA-PSS under the RSA algorithm */
    LURK_KEY *key;
    const char *md; /* canonical name from the scheme table, or NULL */
    lurk_padding pad;
    unsigned char *buf; /* DigestSignUpdate accumulation */
    size_t len;
} LURK_SIG_CTX;

/*
 * The dispatched functions, declared with OpenSSL's own types so that a
 * signature that does not match what libcrypto calls fails to compile.
 */
static OSSL_FUNC_signature_newctx_fn lurk_sig_rsa_newctx, lurk_sig_ecdsa_newctx,
    lurk_sig_ed25519_newctx;
static OSSL_FUNC_signature_freectx_fn lurk_sig_freectx;
static OSSL_FUNC_signature_dupctx_fn lurk_sig_dupctx;
static OSSL_FUNC_signature_sign_init_fn lurk_sig_sign_init;
static OSSL_FUNC_signature_sign_fn lurk_sig_sign;
static OSSL_FUNC_signature_digest_sign_init_fn lurk_sig_digest_sign_init;
static OSSL_FUNC_signature_digest_sign_update_fn lurk_sig_digest_sign_update;
static OSSL_FUNC_signature_digest_sign_final_fn lurk_sig_digest_sign_final;
static OSSL_FUNC_signature_digest_sign_fn lurk_sig_digest_sign;
static OSSL_FUNC_signature_get_ctx_params_fn lurk_sig_get_ctx_params;
static OSSL_FUNC_signature_gettable_ctx_params_fn lurk_sig_gettable_ctx_params;
static OSSL_FUNC_signature_set_ctx_params_fn lurk_sig_set_ctx_params;
static OSSL_FUNC_signature_settable_ctx_params_fn lurk_sig_rsa_settable_ctx_params,
    lurk_sig_ecdsa_settable_ctx_params, lurk_sig_ed25519_settable_ctx_params;

/* Names libssl and applications use for the digests TLS signs with. */
/* clang-format off */
static const struct {
    const char *alias;
    const char *md;
} lurk_md_aliases[] = {
    { "SHA256", "SHA256" }, { "SHA2-256", "SHA256" }, { "SHA-256", "SHA256" },
    { "2.16.840.1.101.3.4.2.1", "SHA256" },
    { "SHA384", "SHA384" }, { "SHA2-384", "SHA384" }, { "SHA-384", "SHA384" },
    { "2.16.840.1.101.3.4.2.2", "SHA384" },
    { "SHA512", "SHA512" }, { "SHA2-512", "SHA512" }, { "SHA-512", "SHA512" },
    { "2.16.840.1.101.3.4.2.3", "SHA512" },
    /* TLS 1.2 only, and only where the key server allows them (lurk_caps.c). */
    { "SHA1", "SHA1" }, { "SHA-1", "SHA1" }, { "1.3.14.3.2.26", "SHA1" },
    { "SHA224", "SHA224" }, { "SHA2-224", "SHA224" }, { "SHA-224", "SHA224" },
    { "2.16.840.1.101.3.4.2.4", "SHA224" },
};
/* clang-format on */

static const char *lurk_sig_md_canonical(const char *name)
{
    for (size_t i = 0; i < sizeof(lurk_md_aliases) / sizeof(lurk_md_aliases[0]); i++)
        if (strcasecmp(name, lurk_md_aliases[i].alias) == 0)
            return lurk_md_aliases[i].md;
    return NULL;
}

static const lurk_scheme *lurk_sig_scheme(const LURK_SIG_CTX *ctx)
{
    const lurk_scheme *s;

    for (size_t i = 0; (s = lurk_scheme_at(i)) != NULL; i++) {
        if (s->key_type != ctx->key_type || s->padding != ctx->pad)
            continue;
        if ((s->md == NULL && ctx->md == NULL)
            || (s->md != NULL && ctx->md != NULL && strcmp(s->md, ctx->md) == 0))
            return s;
    }
    return NULL;
}

static void *lurk_sig_newctx(void *provctx, Lurk__V1__KeyType type)
{
    LURK_SIG_CTX *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        lurk_raise(provctx, LURK_R_INTERNAL, "out of memory");
        return NULL;
    }
    ctx->prov = provctx;
    ctx->type = type;
    ctx->key_type = type;
    return ctx;
}

static void *lurk_sig_rsa_newctx(void *provctx, const char *propq)
{
    (void)propq;
    return lurk_sig_newctx(provctx, LURK__V1__KEY_TYPE__KEY_TYPE_RSA);
}

static void *lurk_sig_ecdsa_newctx(void *provctx, const char *propq)
{
    (void)propq;
    return lurk_sig_newctx(provctx, LURK__V1__KEY_TYPE__KEY_TYPE_EC);
}

static void *lurk_sig_ed25519_newctx(void *provctx, const char *propq)
{
    (void)propq;
    return lurk_sig_newctx(provctx, LURK__V1__KEY_TYPE__KEY_TYPE_ED25519);
}

static void lurk_sig_freectx(void *vctx)
{
    LURK_SIG_CTX *ctx = vctx;

    if (ctx == NULL)
        return;
    free(ctx->buf);
    free(ctx);
}

static void *lurk_sig_dupctx(void *vctx)
{
    LURK_SIG_CTX *src = vctx, *dst = malloc(sizeof(*dst));

    if (dst == NULL)
        return NULL;
    *dst = *src;
    dst->buf = NULL;
    if (src->len > 0) {
        if ((dst->buf = malloc(src->len)) == NULL) {
            free(dst);
            return NULL;
        }
        memcpy(dst->buf, src->buf, src->len);
    }
    return dst;
}

/*
 * SHA-1 and SHA-224 signatures: answer as the key server will sign, which
 * its Capabilities say (legacy_hashes). An RSA key also takes SHA-1 where
 * the key server decrypts with it: libssl checks the TLS 1.2 implied
 * signature algorithm (rsa_pkcs1_sha1, for a client that sends no
 * signature_algorithms) even for RSA key exchange, which signs nothing, and
 * a "no" here would fail those handshakes with "wrong signature type" where
 * a local key serves them. libssl only asks at a security level that allows
 * SHA-1 (@SECLEVEL=0).
 */
static int lurk_sig_legacy_ok(LURK_SIG_CTX *ctx, const char *mdname)
{
    const lurk_scheme *s;

    for (size_t i = 0; (s = lurk_scheme_at(i)) != NULL; i++)
        if (s->legacy && s->key_type == ctx->key_type && strcmp(s->md, ctx->md) == 0)
            break;
    if (s != NULL && ctx->key != NULL
        && (lurk_caps_signs(ctx->prov, ctx->key->key_id, s->code)
            || (s->code == LURK_SCHEME_RSA_PKCS1_SHA1
                && lurk_caps_decrypts(ctx->prov, ctx->key->key_id))))
        return 1;
    lurk_raise(ctx->prov, LURK_R_UNSUPPORTED,
               "digest %s: the key server does not sign with it for this key (it needs "
               "legacy_hashes = yes in the key server's configuration) or cannot be reached",
               mdname);
    return 0;
}

/*
 * RFC 4055: a restricted RSA-PSS key signs with its one hash, MGF1 hash and
 * at least its minimum salt; TLS fixes MGF1 to the hash and the salt to
 * the hash length. Failing here, at init, is what makes libssl's probe
 * skip the other rsa_pss_pss_* schemes without an RPC.
 */
static int lurk_sig_pss_allows(const LURK_SIG_CTX *ctx, const char *md)
{
    const lurk_pss_restrictions *r = &ctx->key->pss;
    const lurk_scheme *s;

    if (ctx->key_type != LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS || !r->restricted)
        return 1;
    if (strcmp(md, r->md) != 0 || strcmp(md, r->mgf1_md) != 0) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED,
                   "key \"%s\": its RSA-PSS parameters restrict it to hash %s with MGF1 %s, "
                   "not %s",
                   ctx->key->key_id, r->md[0] ? r->md : "(not a TLS hash)",
                   r->mgf1_md[0] ? r->mgf1_md : "(not a TLS hash)", md);
        return 0;
    }
    for (size_t i = 0; (s = lurk_scheme_at(i)) != NULL; i++)
        if (s->key_type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS && strcmp(s->md, md) == 0
            && s->md_len >= r->min_saltlen)
            return 1;
    lurk_raise(ctx->prov, LURK_R_UNSUPPORTED,
               "key \"%s\": its RSA-PSS minimum salt length %u exceeds the %s length TLS "
               "uses as salt",
               ctx->key->key_id, r->min_saltlen, md);
    return 0;
}

static int lurk_sig_set_md(LURK_SIG_CTX *ctx, const char *mdname)
{
    if (ctx->type == LURK__V1__KEY_TYPE__KEY_TYPE_ED25519) {
        /* EdDSA hashes internally; a digest here is a caller error. */
        if (mdname != NULL && mdname[0] != '\0') {
            lurk_raise(ctx->prov, LURK_R_UNSUPPORTED, "Ed25519 takes no digest, got %s", mdname);
            return 0;
        }
        ctx->md = NULL;
        return 1;
    }
    /* As OpenSSL does: a restricted RSA-PSS key's default is its own hash. */
    if (mdname == NULL || mdname[0] == '\0')
        mdname = ctx->key_type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS && ctx->key->pss.restricted
                && ctx->key->pss.md[0] != '\0'
            ? ctx->key->pss.md
            : "SHA256";
    if ((ctx->md = lurk_sig_md_canonical(mdname)) == NULL) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED,
                   "digest %s: lurk keys sign TLS with SHA-256, SHA-384 or SHA-512 (SHA-1 and "
                   "SHA-224 with legacy_hashes = yes on the key server)",
                   mdname);
        return 0;
    }
    if (strcmp(ctx->md, "SHA1") == 0 || strcmp(ctx->md, "SHA224") == 0)
        return lurk_sig_legacy_ok(ctx, mdname);
    return lurk_sig_pss_allows(ctx, ctx->md);
}

/* The RSA algorithm serves both RSA key types, as OpenSSL's does. */
static int lurk_sig_key_fits(const LURK_SIG_CTX *ctx, const LURK_KEY *key)
{
    if (key->type == ctx->type)
        return 1;
    return ctx->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA
        && key->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS;
}

static int lurk_sig_init(LURK_SIG_CTX *ctx, const char *mdname, void *keydata,
                         const OSSL_PARAM params[])
{
    LURK_KEY *key = keydata;

    if (key != NULL) {
        if (!lurk_sig_key_fits(ctx, key) || key->key_id == NULL) {
            lurk_raise(ctx->prov, LURK_R_BAD_KEY, "not a lurk private key of this type");
            return 0;
        }
        ctx->key = key;
        ctx->key_type = key->type;
    }
    if (ctx->key == NULL) {
        lurk_raise(ctx->prov, LURK_R_BAD_KEY, "no key");
        return 0;
    }
    /*
     * libssl never sets PKCS#1 explicitly: every init starts from it, or
     * from PSS for an RSA-PSS key, which knows no other padding.
     */
    ctx->pad = ctx->key_type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS ? LURK_PAD_PSS
        : ctx->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA              ? LURK_PAD_PKCS1
                                                                     : LURK_PAD_NONE;
    ctx->len = 0;
    if (!lurk_sig_set_md(ctx, mdname))
        return 0;
    return lurk_sig_set_ctx_params(ctx, params);
}

static int lurk_sig_digest_sign_init(void *vctx, const char *mdname, void *keydata,
                                     const OSSL_PARAM params[])
{
    return lurk_sig_init(vctx, mdname, keydata, params);
}

/* Plain sign() gets a digest: sent as is, so the key server refuses it. */
static int lurk_sig_sign_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    return lurk_sig_init(vctx, NULL, keydata, params);
}

/*
 * verify_signatures = yes: check the key server's answer with the public
 * key before libssl sends it, so that a faulty or compromised key server
 * cannot make this edge send a bad signature (a fault attack on RSA-CRT
 * would otherwise leak the key to the client).
 */
static int lurk_sig_verify(LURK_SIG_CTX *ctx, const lurk_scheme *scheme, const unsigned char *sig,
                           size_t siglen, const unsigned char *tbs, size_t tbslen)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = m != NULL
        && EVP_DigestVerifyInit_ex(m, &pctx, scheme->md, ctx->prov->libctx, "provider=default",
                                   ctx->key->pub, NULL)
            > 0
        && (scheme->padding != LURK_PAD_PSS
            || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0
                && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0
                && EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, scheme->md, NULL) > 0))
        && EVP_DigestVerify(m, sig, siglen, tbs, tbslen) == 1;

    EVP_MD_CTX_free(m);
    if (!ok)
        lurk_raise(ctx->prov, LURK_R_KEY_SERVER_BAD_REPLY,
                   "key \"%s\": the key server's %s signature does not verify with the public key",
                   ctx->key->key_id, scheme->name);
    return ok;
}

static int lurk_sig_do_sign(LURK_SIG_CTX *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                            const unsigned char *tbs, size_t tbslen)
{
    const lurk_scheme *scheme;

    if (sig == NULL) {
        /* Size query: answer the maximum, never an RPC. */
        *siglen = (size_t)EVP_PKEY_get_size(ctx->key->pub);
        return 1;
    }
    if ((scheme = lurk_sig_scheme(ctx)) == NULL) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED, "no TLS signature scheme for %s with %s%s",
                   lurk_key_type_name(ctx->key_type), ctx->md ? ctx->md : "no digest",
                   ctx->pad == LURK_PAD_PSS ? " and PSS" : "");
        return 0;
    }
    if (!lurk_rpc_sign(ctx->prov, ctx->key->key_id, scheme->code, tbs, tbslen, sig, siglen,
                       sigsize))
        return 0;
    return !ctx->prov->verify_signatures || lurk_sig_verify(ctx, scheme, sig, *siglen, tbs, tbslen);
}

static int lurk_sig_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                         const unsigned char *tbs, size_t tbslen)
{
    return lurk_sig_do_sign(vctx, sig, siglen, sigsize, tbs, tbslen);
}

static int lurk_sig_digest_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                                const unsigned char *tbs, size_t tbslen)
{
    return lurk_sig_do_sign(vctx, sig, siglen, sigsize, tbs, tbslen);
}

static int lurk_sig_digest_sign_update(void *vctx, const unsigned char *data, size_t datalen)
{
    LURK_SIG_CTX *ctx = vctx;
    unsigned char *grown;

    /* The key server takes no more than this; fail here, not after an RPC. */
    if (datalen > LURK_MAX_TBS - ctx->len) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED, "message longer than %u bytes", LURK_MAX_TBS);
        return 0;
    }
    if (datalen == 0)
        return 1;
    if ((grown = realloc(ctx->buf, ctx->len + datalen)) == NULL) {
        lurk_raise(ctx->prov, LURK_R_INTERNAL, "out of memory");
        return 0;
    }
    memcpy(grown + ctx->len, data, datalen);
    ctx->buf = grown;
    ctx->len += datalen;
    return 1;
}

static int lurk_sig_digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen,
                                      size_t sigsize)
{
    LURK_SIG_CTX *ctx = vctx;

    return lurk_sig_do_sign(ctx, sig, siglen, sigsize, ctx->buf, ctx->len);
}

static int lurk_sig_set_pad(LURK_SIG_CTX *ctx, const OSSL_PARAM *p)
{
    int mode = 0;
    const char *s = NULL;

    if (p->data_type == OSSL_PARAM_UTF8_STRING && OSSL_PARAM_get_utf8_string_ptr(p, &s))
        mode = strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0 ? RSA_PKCS1_PADDING
            : strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0      ? RSA_PKCS1_PSS_PADDING
                                                              : -1;
    else if (!OSSL_PARAM_get_int(p, &mode))
        return 0;
    if (ctx->type != LURK__V1__KEY_TYPE__KEY_TYPE_RSA
        || (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_PSS_PADDING)) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED,
                   "padding: lurk RSA keys sign with PKCS#1 v1.5 or PSS only");
        return 0;
    }
    if (mode != RSA_PKCS1_PSS_PADDING && ctx->key_type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED, "padding: an RSA-PSS key signs with PSS only");
        return 0;
    }
    ctx->pad = mode == RSA_PKCS1_PSS_PADDING ? LURK_PAD_PSS : LURK_PAD_PKCS1;
    return 1;
}

/* TLS fixes the PSS salt to the digest length; accept only that. */
static int lurk_sig_set_saltlen(LURK_SIG_CTX *ctx, const OSSL_PARAM *p)
{
    const char *s = NULL;
    int len;
    const lurk_scheme *scheme;

    if (p->data_type == OSSL_PARAM_UTF8_STRING && OSSL_PARAM_get_utf8_string_ptr(p, &s)) {
        if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0)
            return 1;
        len = atoi(s);
    } else if (!OSSL_PARAM_get_int(p, &len)) {
        return 0;
    }
    if (len == RSA_PSS_SALTLEN_DIGEST)
        return 1;
    scheme = lurk_sig_scheme(ctx);
    if (scheme != NULL && scheme->md_len == (size_t)len)
        return 1;
    lurk_raise(ctx->prov, LURK_R_UNSUPPORTED, "PSS salt length must equal the digest length");
    return 0;
}

static int lurk_sig_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    LURK_SIG_CTX *ctx = vctx;
    const OSSL_PARAM *p;
    const char *s;

    if (params == NULL)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST)) != NULL
        && (!OSSL_PARAM_get_utf8_string_ptr(p, &s) || !lurk_sig_set_md(ctx, s)))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL
        && !lurk_sig_set_pad(ctx, p))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL
        && !lurk_sig_set_saltlen(ctx, p))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
        const char *mgf1;

        if (!OSSL_PARAM_get_utf8_string_ptr(p, &s) || (mgf1 = lurk_sig_md_canonical(s)) == NULL
            || ctx->md == NULL || strcmp(mgf1, ctx->md) != 0) {
            lurk_raise(ctx->prov, LURK_R_UNSUPPORTED, "MGF1 digest must equal the signing digest");
            return 0;
        }
    }
    return 1;
}

/*
 * X.509, CMS and CSR signing ask for the AlgorithmIdentifier first. Those
 * are not TLS handshakes and the key server would refuse them: say so here,
 * clearly, instead of failing without a word.
 */
static int lurk_sig_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    LURK_SIG_CTX *ctx = vctx;

    if (OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID) != NULL) {
        lurk_raise(ctx->prov, LURK_R_UNSUPPORTED,
                   "lurk keys sign TLS handshakes only; sign certificates, requests and "
                   "documents on the key server host with the key itself");
        return 0;
    }
    return 1;
}

static const OSSL_PARAM *lurk_sig_gettable_ctx_params(void *vctx, void *provctx)
{
    static const OSSL_PARAM gettable[] = {
        OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0), OSSL_PARAM_END
    };

    (void)vctx;
    (void)provctx;
    return gettable;
}

static const OSSL_PARAM lurk_sig_rsa_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0), OSSL_PARAM_END
};

static const OSSL_PARAM lurk_sig_ecdsa_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0), OSSL_PARAM_END
};

static const OSSL_PARAM lurk_sig_ed25519_settable[] = { OSSL_PARAM_END };

static const OSSL_PARAM *lurk_sig_rsa_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return lurk_sig_rsa_settable;
}

static const OSSL_PARAM *lurk_sig_ecdsa_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return lurk_sig_ecdsa_settable;
}

static const OSSL_PARAM *lurk_sig_ed25519_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return lurk_sig_ed25519_settable;
}

#define LURK_SIGNATURE_FUNCTIONS(t)                                                                \
    const OSSL_DISPATCH lurk_##t##_signature_functions[] = {                                       \
        { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))lurk_sig_##t##_newctx },                     \
        { OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))lurk_sig_freectx },                         \
        { OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))lurk_sig_dupctx },                           \
        { OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))lurk_sig_sign_init },                     \
        { OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))lurk_sig_sign },                               \
        { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))lurk_sig_digest_sign_init },       \
        { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))lurk_sig_digest_sign_update },   \
        { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))lurk_sig_digest_sign_final },     \
        { OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))lurk_sig_digest_sign },                 \
        { OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))lurk_sig_get_ctx_params },           \
        { OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))lurk_sig_gettable_ctx_params }, \
        { OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))lurk_sig_set_ctx_params },           \
        { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,                                                 \
          (void (*)(void))lurk_sig_##t##_settable_ctx_params },                                    \
        { 0, NULL }                                                                                \
    }

LURK_SIGNATURE_FUNCTIONS(rsa);
LURK_SIGNATURE_FUNCTIONS(ecdsa);
LURK_SIGNATURE_FUNCTIONS(ed25519);
