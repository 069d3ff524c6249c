/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading the private keys: see ks_keys.h.
 */
#include "ks_keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/x509.h>

#include "ks_log.h"
#include "lurk_keyref.h"
#include "lurk_wire.h"

#define KS_KEYS_RSA_MIN_BITS 2048
/* A larger modulus would not fit LURK's ciphertext limit. */
#define KS_KEYS_RSA_MAX_BITS ((int)(8 * LURK_MAX_CIPHERTEXT))

static atomic_ullong ks_keys_serials;
static atomic_ullong ks_keys_freed;

void ks_keys_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * len] = '\0';
}

/*
 * A private key file anyone on the host can read is already lost; one
 * anyone can write can be swapped. Refuse both rather than serve with it.
 */
static int ks_keys_check_file(const ks_config_key *ck, char *err, size_t errlen)
{
    struct stat st;

    if (stat(ck->uri, &st) != 0) {
        lurk_errf(err, errlen, "key \"%s\": cannot use %s: %s", ck->id, ck->uri, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        lurk_errf(err, errlen, "key \"%s\": %s is not a regular file", ck->id, ck->uri);
        return -1;
    }
    if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
        lurk_errf(err, errlen,
                  "key \"%s\": %s is %s by every user (mode %04o); run chmod 600 %s "
                  "(or chmod 640 with a group only the key server is in)",
                  ck->id, ck->uri, (st.st_mode & S_IROTH) ? "readable" : "writable",
                  (unsigned int)(st.st_mode & 07777), ck->uri);
        return -1;
    }
    if (access(ck->uri, R_OK) != 0) {
        lurk_errf(err, errlen, "key \"%s\": %s is not readable by uid %ld: %s", ck->id, ck->uri,
                  (long)geteuid(), strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * Did the store fail because no loader knows the URI's scheme? OpenSSL
 * ends with "No store loader found" then; its full error list (the file
 * loader's stat() of the URI included) would only confuse.
 */
static int ks_keys_no_loader(void)
{
    unsigned long e = ERR_peek_last_error();

    return ERR_GET_LIB(e) == ERR_LIB_OSSL_STORE
        && (ERR_GET_REASON(e) == ERR_R_UNSUPPORTED
            || ERR_GET_REASON(e) == OSSL_STORE_R_UNREGISTERED_SCHEME);
}

/* The first private key the store yields. */
static EVP_PKEY *ks_keys_open(const ks_config_key *ck, char *err, size_t errlen)
{
    OSSL_STORE_CTX *sctx;
    EVP_PKEY *pkey = NULL;
    char why[512] = "";

    /*
     * No UI method: a daemon must not stop at a passphrase prompt, so an
     * encrypted key simply fails to load.
     */
    sctx = OSSL_STORE_open_ex(ck->uri, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    if (sctx == NULL) {
        if (!ck->is_path && ks_keys_no_loader()) {
            ERR_clear_error();
            lurk_errf(err, errlen,
                      "key \"%s\": no OpenSSL provider opens \"%.*s:\" URIs; "
                      "activate one (e.g. pkcs11-provider, tpm2-provider) in the OpenSSL "
                      "configuration (OPENSSL_CONF)",
                      ck->id, (int)strcspn(ck->uri, ":"), ck->uri);
            return NULL;
        }
        ks_log_openssl_errors(why, sizeof(why));
        lurk_errf(err, errlen, "key \"%s\": cannot open %s: %s", ck->id, ck->uri,
                  why[0] ? why : "no OpenSSL store (provider) accepts this URI");
        return NULL;
    }
    if (OSSL_STORE_expect(sctx, OSSL_STORE_INFO_PKEY) != 1) {
        /* Some stores cannot filter; the loop below checks the type anyway. */
        ERR_clear_error();
    }
    /* Bounded: a store that keeps failing must not spin forever. */
    for (int tries = 0; pkey == NULL && tries < 64 && !OSSL_STORE_eof(sctx); tries++) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(sctx);

        if (info == NULL)
            continue;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    if (pkey == NULL) {
        ks_log_openssl_errors(why, sizeof(why));
        lurk_errf(err, errlen,
                  "key \"%s\": no private key in %s%s%s (a certificate or public key is not "
                  "enough; encrypted keys are not supported)",
                  ck->id, ck->uri, why[0] ? ": " : "", why);
    }
    ERR_clear_error();
    OSSL_STORE_close(sctx);
    return pkey;
}

static int ks_keys_rsa_bits(const ks_key *k, char *err, size_t errlen)
{
    if (k->desc.bits < KS_KEYS_RSA_MIN_BITS || k->desc.bits > KS_KEYS_RSA_MAX_BITS) {
        lurk_errf(err, errlen, "key \"%s\": %s key of %d bits; LURK serves %d to %d bits", k->id,
                  lurk_key_type_name(k->desc.type), k->desc.bits, KS_KEYS_RSA_MIN_BITS,
                  KS_KEYS_RSA_MAX_BITS);
        return -1;
    }
    return 0;
}

/* Does any rsa_pss_pss_* scheme fit these restrictions (as ks_policy checks them)? */
static int ks_keys_pss_usable(const lurk_pss_restrictions *r)
{
    const lurk_scheme *s;

    if (!r->restricted)
        return 1;
    for (size_t i = 0; (s = lurk_scheme_at(i)) != NULL; i++)
        if (s->key_type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS && strcmp(s->md, r->md) == 0
            && strcmp(s->md, r->mgf1_md) == 0 && s->md_len >= r->min_saltlen)
            return 1;
    return 0;
}

/*
 * The restrictions decide which rsa_pss_pss_* schemes the key signs, so a
 * restricted key whose parameters cannot be read is refused rather than
 * served as unrestricted.
 */
static int ks_keys_pss(ks_key *k, char *err, size_t errlen)
{
    lurk_pss_restrictions r;

    if (lurk_pss_restrictions_of(k->pkey, NULL, &r) != 1) {
        lurk_errf(err, errlen,
                  "key \"%s\": RSA-PSS key whose parameter restrictions "
                  "(hash, MGF1 hash, salt length) the provider does not report",
                  k->id);
        return -1;
    }
    /* Static strings from lurk_pss_restrictions_of: they outlive the key and its moves. */
    k->desc.pss.restricted = r.restricted != 0;
    k->desc.pss.md = r.md;
    k->desc.pss.mgf1_md = r.mgf1_md;
    k->desc.pss.min_saltlen = r.min_saltlen;
    if (!ks_keys_pss_usable(&r))
        ks_log(KS_LOG_WARN,
               "key \"%s\": its RSA-PSS restrictions fit no TLS signature "
               "scheme (TLS needs SHA-256, SHA-384 or SHA-512 with the same MGF1 hash and a "
               "minimum salt length no longer than the hash); every signature with it will "
               "be refused",
               k->id);
    return 0;
}

static int ks_keys_describe(ks_key *k, char *err, size_t errlen)
{
    EVP_PKEY *pkey = k->pkey;
    size_t glen = 0;

    k->desc.bits = EVP_PKEY_get_bits(pkey);
    k->desc.group = NULL;
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        k->desc.type = LURK__V1__KEY_TYPE__KEY_TYPE_RSA;
        if (ks_keys_rsa_bits(k, err, errlen) != 0)
            return -1;
    } else if (EVP_PKEY_is_a(pkey, "RSA-PSS")) {
        k->desc.type = LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS;
        if (ks_keys_rsa_bits(k, err, errlen) != 0 || ks_keys_pss(k, err, errlen) != 0)
            return -1;
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        k->desc.type = LURK__V1__KEY_TYPE__KEY_TYPE_EC;
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, k->group,
                                           sizeof(k->group), &glen)
            != 1) {
            ERR_clear_error();
            lurk_errf(err, errlen,
                      "key \"%s\": EC key without a named curve (explicit "
                      "parameters are not supported)",
                      k->id);
            return -1;
        }
        if (strcmp(k->group, "prime256v1") != 0 && strcmp(k->group, "secp384r1") != 0
            && strcmp(k->group, "secp521r1") != 0) {
            lurk_errf(err, errlen,
                      "key \"%s\": EC curve %s is not one TLS signs with "
                      "(prime256v1, secp384r1, secp521r1)",
                      k->id, k->group);
            return -1;
        }
        k->desc.group = k->group;
    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        k->desc.type = LURK__V1__KEY_TYPE__KEY_TYPE_ED25519;
    } else {
        const char *t = EVP_PKEY_get0_type_name(pkey);

        lurk_errf(err, errlen,
                  "key \"%s\": key type %s is not supported (RSA, RSA-PSS, "
                  "EC P-256, P-384, P-521 and Ed25519 are)",
                  k->id, t != NULL ? t : "unknown");
        return -1;
    }
    if (EVP_PKEY_get_size(pkey) <= 0) {
        lurk_errf(err, errlen, "key \"%s\": the provider reports no signature size", k->id);
        return -1;
    }
    k->max_size = (size_t)EVP_PKEY_get_size(pkey);
    return 0;
}

static int ks_keys_public(ks_key *k, char *err, size_t errlen)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(k->pkey, &der);

    if (len <= 0) {
        char why[256] = "";

        ks_log_openssl_errors(why, sizeof(why));
        lurk_errf(err, errlen, "key \"%s\": cannot encode its public key: %s", k->id, why);
        return -1;
    }
    k->spki = der;
    k->spki_len = (size_t)len;
    if (EVP_Digest(der, (size_t)len, k->spki_sha256, NULL, EVP_sha256(), NULL) != 1) {
        lurk_errf(err, errlen, "key \"%s\": SHA-256 failed", k->id);
        return -1;
    }
    if (k->desc.type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA
        || k->desc.type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS) {
        BIGNUM *n = NULL;

        /* Optional: an HSM provider may keep even n to itself. */
        if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1
            && (k->modulus = malloc(k->max_size)) != NULL
            && BN_bn2binpad(n, k->modulus, (int)k->max_size) != (int)k->max_size) {
            free(k->modulus);
            k->modulus = NULL;
        }
        BN_free(n);
        ERR_clear_error();
    }
    return 0;
}

static int ks_keys_load_one(const ks_config_key *ck, ks_key *k, char *err, size_t errlen)
{
    char hex[2 * sizeof(k->spki_sha256) + 1];

    if ((k->id = strdup(ck->id)) == NULL || (k->uri = strdup(ck->uri)) == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    /* A lurk: key lives on a key server: serving it here would loop. */
    if (strncasecmp(ck->uri, "lurk:", 5) == 0) {
        lurk_errf(err, errlen,
                  "key \"%s\": %s is a LURK reference; a key server must "
                  "hold the key itself (a file, pkcs11:, handle:, ...)",
                  ck->id, ck->uri);
        return -1;
    }
    if (ck->is_path && ks_keys_check_file(ck, err, errlen) != 0)
        return -1;
    if ((k->pkey = ks_keys_open(ck, err, errlen)) == NULL || ks_keys_describe(k, err, errlen) != 0
        || ks_keys_public(k, err, errlen) != 0)
        return -1;
    k->serial = (uint64_t)atomic_fetch_add(&ks_keys_serials, 1) + 1;
    ks_keys_hex(k->spki_sha256, sizeof(k->spki_sha256), hex);
    if (k->desc.type == LURK__V1__KEY_TYPE__KEY_TYPE_EC)
        ks_log(KS_LOG_INFO, "key \"%s\": EC %s (%d bits), spki sha256 %s", k->id, k->group,
               k->desc.bits, hex);
    else if (k->desc.type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS && k->desc.pss.restricted)
        ks_log(KS_LOG_INFO,
               "key \"%s\": RSA-PSS %d bits, restricted to hash %s, MGF1 %s, "
               "salt >= %u, spki sha256 %s",
               k->id, k->desc.bits, k->desc.pss.md[0] ? k->desc.pss.md : "(not a TLS hash)",
               k->desc.pss.mgf1_md[0] ? k->desc.pss.mgf1_md : "(not a TLS hash)",
               k->desc.pss.min_saltlen, hex);
    else if (k->desc.type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS)
        ks_log(KS_LOG_INFO, "key \"%s\": RSA-PSS %d bits, unrestricted, spki sha256 %s", k->id,
               k->desc.bits, hex);
    else
        ks_log(KS_LOG_INFO, "key \"%s\": %s %d bits, spki sha256 %s", k->id,
               lurk_key_type_name(k->desc.type), k->desc.bits, hex);
    return 0;
}

static void ks_key_clear(ks_key *k)
{
    free(k->id);
    free(k->uri);
    EVP_PKEY_free(k->pkey);
    OPENSSL_free(k->spki);
    free(k->modulus);
    memset(k, 0, sizeof(*k));
}

static int ks_keys_cmp(const void *a, const void *b)
{
    return strcmp(((const ks_key *)a)->id, ((const ks_key *)b)->id);
}

static int ks_keys_epoch(const ks_config *cfg, ks_keyring *kr)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char h[32];
    int ok;

    /* Called before sorting: configuration order, so a reordering counts too. */
    ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1
        && EVP_DigestUpdate(md, cfg->text_sha256, sizeof(cfg->text_sha256)) == 1;
    for (size_t i = 0; ok && i < kr->n; i++)
        ok = EVP_DigestUpdate(md, kr->keys[i].spki, kr->keys[i].spki_len) == 1;
    ok = ok && EVP_DigestFinal_ex(md, h, NULL) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return -1;
    kr->epoch = 0;
    for (int i = 0; i < 8; i++)
        kr->epoch = (kr->epoch << 8) | h[i];
    return 0;
}

int ks_keys_load(const ks_config *cfg, ks_keyring **out, char *err, size_t errlen)
{
    ks_keyring *kr;
    size_t failed = 0;
    char one[1024];

    *out = NULL;
    if ((kr = calloc(1, sizeof(*kr))) == NULL
        || (kr->keys = calloc(cfg->n_keys ? cfg->n_keys : 1, sizeof(*kr->keys))) == NULL) {
        free(kr);
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    /* Try every key, so one run names every problem, not only the first. */
    for (size_t i = 0; i < cfg->n_keys; i++) {
        one[0] = '\0';
        if (ks_keys_load_one(&cfg->keys[i], &kr->keys[kr->n], one, sizeof(one)) != 0) {
            ks_key_clear(&kr->keys[kr->n]);
            ks_log(KS_LOG_ERROR, "%s", one);
            failed++;
            continue;
        }
        kr->n++;
    }
    if (failed > 0)
        lurk_errf(err, errlen, "%zu of %zu keys could not be loaded (see above)", failed,
                  cfg->n_keys);
    if (failed == 0 && ks_keys_epoch(cfg, kr) != 0) {
        lurk_errf(err, errlen, "cannot compute the configuration epoch");
        failed = 1;
    }
    if (failed != 0) {
        ks_keys_free(kr);
        return -1;
    }
    qsort(kr->keys, kr->n, sizeof(*kr->keys), ks_keys_cmp);
    /* Sorting moved the entries: desc.group must follow its own group[]. */
    for (size_t i = 0; i < kr->n; i++)
        if (kr->keys[i].desc.group != NULL)
            kr->keys[i].desc.group = kr->keys[i].group;
    *out = kr;
    return 0;
}

const ks_key *ks_keys_find(const ks_keyring *kr, const char *id)
{
    ks_key probe;

    if (kr == NULL || id == NULL || kr->n == 0)
        return NULL;
    memset(&probe, 0, sizeof(probe));
    probe.id = (char *)id;
    return bsearch(&probe, kr->keys, kr->n, sizeof(*kr->keys), ks_keys_cmp);
}

void ks_keys_free(ks_keyring *kr)
{
    if (kr == NULL)
        return;
    for (size_t i = 0; i < kr->n; i++)
        ks_key_clear(&kr->keys[i]);
    free(kr->keys);
    free(kr);
    atomic_fetch_add(&ks_keys_freed, 1);
}

int ks_keys_in_process(const ks_key *k)
{
    const OSSL_PROVIDER *prov = EVP_PKEY_get0_provider(k->pkey);
    const char *name = prov != NULL ? OSSL_PROVIDER_get0_name(prov) : NULL;

    return name != NULL && (strcmp(name, "default") == 0 || strcmp(name, "fips") == 0);
}

uint64_t ks_keys_retired(void)
{
    return (uint64_t)atomic_load_explicit(&ks_keys_freed, memory_order_relaxed);
}
