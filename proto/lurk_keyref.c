/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key reference codec: see lurk_keyref.h.
 *
 * OpenSSL's ASN.1 templates do the parsing; on top of them every decoded
 * reference is re-encoded and compared with the input, so that only
 * canonical DER is accepted and one key has exactly one file.
 */
#include "lurk_keyref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

typedef struct {
    ASN1_INTEGER *version;
    ASN1_UTF8STRING *key_id;
    ASN1_INTEGER *key_type;
    ASN1_OCTET_STRING *public_key;
    ASN1_UTF8STRING *servers;
} LURK_KEYREF_ASN1;

ASN1_SEQUENCE(LURK_KEYREF_ASN1) = { ASN1_SIMPLE(LURK_KEYREF_ASN1, version, ASN1_INTEGER),
                                    ASN1_SIMPLE(LURK_KEYREF_ASN1, key_id, ASN1_UTF8STRING),
                                    ASN1_SIMPLE(LURK_KEYREF_ASN1, key_type, ASN1_INTEGER),
                                    ASN1_SIMPLE(LURK_KEYREF_ASN1, public_key, ASN1_OCTET_STRING),
                                    ASN1_EXP_OPT(LURK_KEYREF_ASN1, servers, ASN1_UTF8STRING,
                                                 0) } static_ASN1_SEQUENCE_END(LURK_KEYREF_ASN1)

    IMPLEMENT_STATIC_ASN1_ALLOC_FUNCTIONS(LURK_KEYREF_ASN1)
#define LURK_KEYREF_ITEM ASN1_ITEM_rptr(LURK_KEYREF_ASN1)

    /* OpenSSL's key management names, for matching keys and for fetching. */
    static const struct {
    Lurk__V1__KeyType type;
    const char *keymgmt;
} lurk_keyref_types[] = {
    { LURK__V1__KEY_TYPE__KEY_TYPE_RSA, "RSA" },
    { LURK__V1__KEY_TYPE__KEY_TYPE_EC, "EC" },
    { LURK__V1__KEY_TYPE__KEY_TYPE_ED25519, "ED25519" },
    { LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS, "RSA-PSS" },
};

const char *lurk_keyref_type_keymgmt(Lurk__V1__KeyType type)
{
    for (size_t i = 0; i < sizeof(lurk_keyref_types) / sizeof(lurk_keyref_types[0]); i++)
        if (lurk_keyref_types[i].type == type)
            return lurk_keyref_types[i].keymgmt;
    return NULL;
}

Lurk__V1__KeyType lurk_keyref_type_of(const EVP_PKEY *pkey)
{
    for (size_t i = 0; i < sizeof(lurk_keyref_types) / sizeof(lurk_keyref_types[0]); i++)
        if (EVP_PKEY_is_a(pkey, lurk_keyref_types[i].keymgmt))
            return lurk_keyref_types[i].type;
    return LURK__V1__KEY_TYPE__KEY_TYPE_UNSPECIFIED;
}

/* OpenSSL answers "SHA2-256" and the like; the scheme table says "SHA256". */
static const char *lurk_pss_md_spelling(OSSL_LIB_CTX *libctx, const char *name)
{
    static const char *const tls[] = { "SHA256", "SHA384", "SHA512" };
    EVP_MD *md = EVP_MD_fetch(libctx, name, NULL);
    const char *out = "";

    for (size_t i = 0; md != NULL && i < sizeof(tls) / sizeof(tls[0]); i++)
        if (EVP_MD_is_a(md, tls[i]))
            out = tls[i];
    EVP_MD_free(md);
    return out;
}

/*
 * OpenSSL 3.0 reports a restricted key's hash as mandatory-digest, but
 * leaves out of rsa-digest and rsa-mgf1-digest a value equal to the
 * RFC 4055 default (SHA-1): read absent ones as that default, or a key
 * restricted to SHA-1 would pass for an unrestricted one.
 */
#define LURK_PSS_DEFAULT_MD      "SHA1"
#define LURK_PSS_DEFAULT_SALTLEN 20

static void lurk_pss_param(const EVP_PKEY *pkey, const char *name, char *buf, size_t len)
{
    if (EVP_PKEY_get_utf8_string_param(pkey, name, buf, len, NULL) != 1)
        snprintf(buf, len, "%s", LURK_PSS_DEFAULT_MD);
}

int lurk_pss_restrictions_of(const EVP_PKEY *pkey, OSSL_LIB_CTX *libctx, lurk_pss_restrictions *out)
{
    char md[64], mgf1[64];
    int salt = LURK_PSS_DEFAULT_SALTLEN;

    memset(out, 0, sizeof(*out));
    out->md = out->mgf1_md = "";
    ERR_set_mark();
    /* Only a restricted key has a mandatory digest: else any scheme fits. */
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_MANDATORY_DIGEST, md, sizeof(md), NULL)
        != 1) {
        ERR_pop_to_mark();
        return 1;
    }
    out->restricted = 1;
    lurk_pss_param(pkey, OSSL_PKEY_PARAM_RSA_DIGEST, md, sizeof(md));
    lurk_pss_param(pkey, OSSL_PKEY_PARAM_RSA_MGF1_DIGEST, mgf1, sizeof(mgf1));
    if (EVP_PKEY_get_int_param(pkey, OSSL_PKEY_PARAM_RSA_PSS_SALTLEN, &salt) != 1)
        salt = LURK_PSS_DEFAULT_SALTLEN;
    ERR_pop_to_mark();
    if (salt < 0)
        return 0;
    out->md = lurk_pss_md_spelling(libctx, md);
    out->mgf1_md = lurk_pss_md_spelling(libctx, mgf1);
    out->min_saltlen = (unsigned int)salt;
    return 1;
}

static int lurk_keyref_type_known(long long type)
{
    return type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA || type == LURK__V1__KEY_TYPE__KEY_TYPE_EC
        || type == LURK__V1__KEY_TYPE__KEY_TYPE_ED25519
        || type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS;
}

/* Printable ASCII: the hint ends up in logs and on terminals. */
static int lurk_keyref_servers_valid(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++)
        if (s[n] < 0x20 || s[n] > 0x7e || n >= LURK_KEYREF_MAX_SERVERS)
            return 0;
    return n > 0;
}

/* The public key must parse completely and be of the stated type. */
static int lurk_keyref_check_spki(const lurk_keyref *ref, OSSL_LIB_CTX *libctx, const char **why)
{
    const unsigned char *p = ref->spki;
    EVP_PKEY *pub;
    int ok;

    if (ref->spki == NULL || ref->spki_len == 0 || ref->spki_len > LURK_KEYREF_MAX_SPKI) {
        *why = "public key missing or over the size limit";
        return 0;
    }
    /* provider=default: a provider decoding a reference must not recurse into itself. */
    ERR_set_mark();
    pub = d2i_PUBKEY_ex(NULL, &p, (long)ref->spki_len, libctx, "provider=default");
    ERR_pop_to_mark();
    if (pub == NULL || p != ref->spki + ref->spki_len) {
        EVP_PKEY_free(pub);
        *why = "public key is not a DER SubjectPublicKeyInfo";
        return 0;
    }
    ok = lurk_keyref_type_of(pub) == ref->type;
    EVP_PKEY_free(pub);
    if (!ok)
        *why = "public key is not of the stated key type";
    return ok;
}

static int lurk_keyref_check(const lurk_keyref *ref, OSSL_LIB_CTX *libctx, const char **why)
{
    if (!lurk_keyref_type_known(ref->type)) {
        *why = "unknown key type";
        return 0;
    }
    if (!lurk_key_id_valid(ref->key_id)) {
        *why = "invalid key id (1 to 64 characters of A-Z a-z 0-9 . _ -, "
               "not starting with . or -)";
        return 0;
    }
    if (ref->servers != NULL && !lurk_keyref_servers_valid(ref->servers)) {
        *why = "servers hint is empty, too long or not printable ASCII";
        return 0;
    }
    return lurk_keyref_check_spki(ref, libctx, why);
}

static int lurk_keyref_set_string(ASN1_STRING *s, const void *data, size_t len)
{
    return len <= LURK_KEYREF_MAX_DER && ASN1_STRING_set(s, data, (int)len) == 1;
}

int lurk_keyref_encode(const lurk_keyref *ref, OSSL_LIB_CTX *libctx, unsigned char **der,
                       size_t *der_len, const char **why)
{
    LURK_KEYREF_ASN1 *asn;
    unsigned char *out = NULL;
    int len = -1;

    *der = NULL;
    *der_len = 0;
    if (!lurk_keyref_check(ref, libctx, why))
        return 0;
    *why = "out of memory";
    ERR_set_mark();
    if ((asn = LURK_KEYREF_ASN1_new()) != NULL
        && ASN1_INTEGER_set_int64(asn->version, LURK_KEYREF_VERSION) == 1
        && lurk_keyref_set_string(asn->key_id, ref->key_id, strlen(ref->key_id))
        && ASN1_INTEGER_set_int64(asn->key_type, ref->type) == 1
        && lurk_keyref_set_string(asn->public_key, ref->spki, ref->spki_len)
        && (ref->servers == NULL
            || ((asn->servers = ASN1_UTF8STRING_new()) != NULL
                && lurk_keyref_set_string(asn->servers, ref->servers, strlen(ref->servers)))))
        len = ASN1_item_i2d((ASN1_VALUE *)asn, &out, LURK_KEYREF_ITEM);
    ERR_pop_to_mark();
    LURK_KEYREF_ASN1_free(asn);
    if (len <= 0)
        return 0;
    if ((size_t)len > LURK_KEYREF_MAX_DER) {
        OPENSSL_free(out);
        *why = "reference over the size limit";
        return 0;
    }
    *der = out;
    *der_len = (size_t)len;
    *why = NULL;
    return 1;
}

int lurk_keyref_write_pem(BIO *out, const lurk_keyref *ref, OSSL_LIB_CTX *libctx, const char **why)
{
    unsigned char *der;
    size_t len;
    int ok;

    if (!lurk_keyref_encode(ref, libctx, &der, &len, why))
        return 0;
    ok = PEM_write_bio(out, LURK_KEYREF_PEM_LABEL, "", der, (long)len) > 0;
    OPENSSL_free(der);
    if (!ok)
        *why = "cannot write the PEM block";
    return ok;
}

/*
 * Only to say "version N" instead of "malformed" for a file from a newer
 * lurkctl, whose extra fields the version 1 template cannot parse.
 */
static long long lurk_keyref_peek_version(const unsigned char *der, size_t der_len)
{
    const unsigned char *p = der;
    long len = 0;
    int tag = -1, xclass = -1;
    ASN1_INTEGER *v;
    int64_t version = -1;

    if ((ASN1_get_object(&p, &len, &tag, &xclass, (long)der_len) & 0x80) != 0
        || tag != V_ASN1_SEQUENCE || xclass != V_ASN1_UNIVERSAL)
        return -1;
    if ((v = d2i_ASN1_INTEGER(NULL, &p, len)) != NULL && ASN1_INTEGER_get_int64(&version, v) != 1)
        version = -1;
    ASN1_INTEGER_free(v);
    return version;
}

/* Re-encoding must give back the input byte for byte. */
static int lurk_keyref_is_canonical(const LURK_KEYREF_ASN1 *asn, const unsigned char *der,
                                    size_t der_len)
{
    unsigned char *again = NULL;
    int len = ASN1_item_i2d((const ASN1_VALUE *)asn, &again, LURK_KEYREF_ITEM);
    int ok = len > 0 && (size_t)len == der_len && memcmp(again, der, der_len) == 0;

    OPENSSL_free(again);
    return ok;
}

/* A string without embedded NULs, or -1. */
static int lurk_keyref_strlen(const ASN1_STRING *s, size_t max)
{
    int len = ASN1_STRING_length(s);

    if (len < 0 || (size_t)len > max || memchr(ASN1_STRING_get0_data(s), '\0', (size_t)len))
        return -1;
    return len;
}

/* Copies the fields into one allocation, so that one free releases all. */
static lurk_keyref *lurk_keyref_from_asn1(const LURK_KEYREF_ASN1 *asn, const char **why)
{
    int64_t version = 0, type = 0;
    int id_len, spki_len, srv_len = 0;
    lurk_keyref *ref;
    unsigned char *p;

    if (ASN1_INTEGER_get_int64(&version, asn->version) != 1 || version != LURK_KEYREF_VERSION) {
        *why = "unsupported reference version (this provider reads version 1)";
        return NULL;
    }
    if (ASN1_INTEGER_get_int64(&type, asn->key_type) != 1 || !lurk_keyref_type_known(type)) {
        *why = "unknown key type";
        return NULL;
    }
    if ((id_len = lurk_keyref_strlen(asn->key_id, LURK_MAX_KEY_ID)) <= 0) {
        *why = "invalid key id";
        return NULL;
    }
    spki_len = ASN1_STRING_length(asn->public_key);
    if (spki_len <= 0 || (size_t)spki_len > LURK_KEYREF_MAX_SPKI) {
        *why = "public key missing or over the size limit";
        return NULL;
    }
    if (asn->servers != NULL
        && (srv_len = lurk_keyref_strlen(asn->servers, LURK_KEYREF_MAX_SERVERS)) <= 0) {
        *why = "servers hint is empty, too long or not printable ASCII";
        return NULL;
    }
    ref = calloc(1, sizeof(*ref) + (size_t)id_len + 1 + (size_t)spki_len + (size_t)srv_len + 1);
    if (ref == NULL) {
        *why = "out of memory";
        return NULL;
    }
    p = (unsigned char *)(ref + 1);
    ref->type = (Lurk__V1__KeyType)type;
    memcpy(p, ASN1_STRING_get0_data(asn->public_key), (size_t)spki_len);
    ref->spki = p;
    ref->spki_len = (size_t)spki_len;
    p += spki_len;
    memcpy(p, ASN1_STRING_get0_data(asn->key_id), (size_t)id_len);
    ref->key_id = (const char *)p;
    p += id_len + 1;
    if (asn->servers != NULL) {
        memcpy(p, ASN1_STRING_get0_data(asn->servers), (size_t)srv_len);
        ref->servers = (const char *)p;
    }
    return ref;
}

int lurk_keyref_decode(const unsigned char *der, size_t der_len, OSSL_LIB_CTX *libctx,
                       lurk_keyref **out, const char **why)
{
    const unsigned char *p = der;
    LURK_KEYREF_ASN1 *asn;
    lurk_keyref *ref = NULL;
    long long version;

    *out = NULL;
    if (der == NULL || der_len == 0 || der_len > LURK_KEYREF_MAX_DER) {
        *why = "empty or over the size limit";
        return 0;
    }
    ERR_set_mark();
    asn = (LURK_KEYREF_ASN1 *)ASN1_item_d2i(NULL, &p, (long)der_len, LURK_KEYREF_ITEM);
    if (asn == NULL) {
        version = lurk_keyref_peek_version(der, der_len);
        *why = version > LURK_KEYREF_VERSION
            ? "unsupported reference version (this provider reads version 1)"
            : "not a DER LurkKeyReference";
    } else if (p != der + der_len) {
        *why = "trailing bytes after the reference";
    } else if (!lurk_keyref_is_canonical(asn, der, der_len)) {
        *why = "not canonical DER";
    } else {
        ref = lurk_keyref_from_asn1(asn, why);
    }
    ERR_pop_to_mark();
    LURK_KEYREF_ASN1_free(asn);
    if (ref == NULL)
        return 0;
    if (!lurk_keyref_check(ref, libctx, why)) {
        lurk_keyref_free(ref);
        return 0;
    }
    *out = ref;
    *why = NULL;
    return 1;
}

void lurk_keyref_free(lurk_keyref *ref)
{
    free(ref);
}
