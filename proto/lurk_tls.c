/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The channel's TLS on OpenSSL 3: an nng TLS engine.
 *
 * nng's TLS layer owns the TCP stream and two byte buffers; the engine
 * turns plaintext into records through nng_tls_engine_send/recv, here a
 * BIO of our own over them. One SSL_CTX per nng TLS config (one per
 * configuration and listener or key server), one SSL per connection, no
 * allocation per record (OpenSSL keeps its record buffers).
 *
 * Credentials come in as a lurk_tls_cred loaded beforehand (see
 * lurk_tls.h): nng_tls_config_alloc() calls the engine's config init in
 * the calling thread, which takes the credential handed over in a
 * thread-local. The PEM-string operations of nng's API work too, for any
 * other caller.
 *
 * Everything runs in a private library context: the edge's channel key may
 * come from another provider (a TPM through tpm2-openssl), and nothing
 * looked up here can reach the lurk provider of the host process.
 */
#include "lurk_tls.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/store.h>
#include <openssl/x509v3.h>

#include <nng/supplemental/tls/engine.h>

#include "lurk_spframe.h"
#include "lurk_wire.h"

/* Largest PEM file read (certificate chain, CA bundle, CRL). */
#define LURK_TLS_MAX_FILE (4L << 20)
/* Channel suites, cheapest first: both ends are ours. */
#define LURK_TLS13_SUITES \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define LURK_TLS12_CIPHERS \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE+AESGCM:ECDHE+CHACHA20"

struct lurk_tls_cred {
    atomic_int refs;
    OSSL_LIB_CTX *libctx;   /* private: the key's providers and default; never freed */
    X509 *cert;             /* NULL: a client without a certificate */
    STACK_OF(X509) * chain; /* the rest of the cert file */
    EVP_PKEY *key;
    X509_STORE *trust; /* CA and CRL */
    int has_crl;
    int min_version; /* TLS1_2_VERSION or TLS1_3_VERSION */
    char *server_name;
    unsigned char trust_id[32];    /* SHA-256 of CA and CRL: bound into session tickets */
    unsigned char ticket_keys[80]; /* name 16, AES 32, HMAC 32: from the key */
    int has_ticket_keys;
    char propq[160]; /* the SSL_CTX's property query: "" or the key's provider first */
};

/* ---- logging --------------------------------------------------------------- */

static void (*lurk_tls_logger)(int warn, const char *msg);

void lurk_tls_set_logger(void (*fn)(int warn, const char *msg))
{
    lurk_tls_logger = fn;
}

static void lurk_tls_log(int warn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lurk_tls_log(int warn, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (lurk_tls_logger == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lurk_tls_logger(warn, msg);
}

/* OpenSSL's first queued reason, then the queue is emptied (threads are nng's). */
static void lurk_tls_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();

    if (e == 0)
        snprintf(buf, len, "no detail");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

/* ---- credentials ----------------------------------------------------------- */

static char *lurk_tls_slurp(const char *path, size_t *lenp, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;

    if (f == NULL) {
        lurk_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || len > LURK_TLS_MAX_FILE
        || fseek(f, 0, SEEK_SET) != 0) {
        lurk_errf(err, errlen, "cannot read %s (or larger than 4 MiB)", path);
        fclose(f);
        return NULL;
    }
    if ((buf = malloc((size_t)len + 1)) == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        lurk_errf(err, errlen, "cannot read %s", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[len] = '\0';
    *lenp = (size_t)len;
    return buf;
}

static void lurk_tls_wipe_free(char *buf, size_t len)
{
    if (buf != NULL)
        OPENSSL_cleanse(buf, len);
    free(buf);
}

/* A key setting is a URI when it starts with "scheme:" and is not a plain path. */
static int lurk_tls_is_uri(const char *s)
{
    const char *p = s;

    if (!isalpha((unsigned char)*p))
        return 0;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    return *p == ':' && strncmp(s, "file:", 5) != 0;
}

/*
 * The channel's library contexts, one per list of providers, kept for the
 * life of the process: OpenSSL 3.0 keeps per-thread state for a context
 * (its random generators) whose clean-up at thread exit crashes once the
 * context has been freed.
 */
#define LURK_TLS_MAX_LIBCTX 4
static struct {
    char names[256];
    OSSL_LIB_CTX *libctx;
} lurk_tls_ctxs[LURK_TLS_MAX_LIBCTX];
static pthread_mutex_t lurk_tls_ctx_lock = PTHREAD_MUTEX_INITIALIZER;

static OSSL_LIB_CTX *lurk_tls_libctx_new(const char *names, char *err, size_t errlen)
{
    OSSL_LIB_CTX *libctx = OSSL_LIB_CTX_new();
    char buf[256], *save = NULL;

    if (libctx == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(buf, sizeof(buf), "%s", names);
    for (char *n = strtok_r(buf, " ,", &save); n != NULL; n = strtok_r(NULL, " ,", &save)) {
        if (OSSL_PROVIDER_load(libctx, n) == NULL) {
            char why[160];

            lurk_tls_reason(why, sizeof(why));
            lurk_errf(err, errlen, "cannot load the OpenSSL provider \"%s\" for the channel: %s", n,
                      why);
            OSSL_LIB_CTX_free(libctx);
            return NULL;
        }
    }
    /* TLS itself needs the default algorithms whatever holds the key. */
    if (!OSSL_PROVIDER_available(libctx, "default")
        && OSSL_PROVIDER_load(libctx, "default") == NULL) {
        lurk_errf(err, errlen, "cannot load OpenSSL's default provider for the channel");
        OSSL_LIB_CTX_free(libctx);
        return NULL;
    }
    return libctx;
}

static OSSL_LIB_CTX *lurk_tls_libctx(const char *names, char *err, size_t errlen)
{
    const char *want = names != NULL && names[0] != '\0' ? names : "default";
    OSSL_LIB_CTX *libctx = NULL;
    size_t i;

    if (strlen(want) >= sizeof(lurk_tls_ctxs[0].names)) {
        lurk_errf(err, errlen, "the list of channel providers is too long");
        return NULL;
    }
    pthread_mutex_lock(&lurk_tls_ctx_lock);
    for (i = 0; i < LURK_TLS_MAX_LIBCTX && lurk_tls_ctxs[i].libctx != NULL; i++)
        if (strcmp(lurk_tls_ctxs[i].names, want) == 0)
            break;
    if (i == LURK_TLS_MAX_LIBCTX)
        lurk_errf(err, errlen, "at most %d different lists of channel providers",
                  LURK_TLS_MAX_LIBCTX);
    else if ((libctx = lurk_tls_ctxs[i].libctx) == NULL
             && (libctx = lurk_tls_libctx_new(want, err, errlen)) != NULL) {
        snprintf(lurk_tls_ctxs[i].names, sizeof(lurk_tls_ctxs[i].names), "%s", want);
        lurk_tls_ctxs[i].libctx = libctx;
    }
    pthread_mutex_unlock(&lurk_tls_ctx_lock);
    return libctx;
}

static int lurk_tls_load_certs(lurk_tls_cred *c, const char *path, char *err, size_t errlen)
{
    size_t len;
    char *pem = lurk_tls_slurp(path, &len, err, errlen);
    BIO *b;
    X509 *x;

    if (pem == NULL)
        return -1;
    b = BIO_new_mem_buf(pem, (int)len);
    c->chain = sk_X509_new_null();
    while (b != NULL && c->chain != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (c->cert == NULL)
            c->cert = x;
        else if (!sk_X509_push(c->chain, x))
            X509_free(x);
    }
    ERR_clear_error(); /* the end of the file */
    BIO_free(b);
    free(pem);
    if (c->cert == NULL) {
        lurk_errf(err, errlen, "%s: no PEM certificate", path);
        return -1;
    }
    return 0;
}

static int lurk_tls_load_key_file(lurk_tls_cred *c, const char *path, char *err, size_t errlen)
{
    size_t len;
    char *pem = lurk_tls_slurp(path, &len, err, errlen);
    BIO *b;

    if (pem == NULL)
        return -1;
    if ((b = BIO_new_mem_buf(pem, (int)len)) != NULL)
        c->key = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, c->libctx, NULL);
    BIO_free(b);
    lurk_tls_wipe_free(pem, len);
    if (c->key == NULL) {
        char why[160];

        lurk_tls_reason(why, sizeof(why));
        lurk_errf(err, errlen, "%s: not an unencrypted PEM private key (%s)", path, why);
        return -1;
    }
    return 0;
}

static int lurk_tls_load_key_uri(lurk_tls_cred *c, const char *uri, char *err, size_t errlen)
{
    OSSL_STORE_CTX *st = OSSL_STORE_open_ex(uri, c->libctx, NULL, NULL, NULL, NULL, NULL, NULL);
    char why[160];

    if (st == NULL) {
        lurk_tls_reason(why, sizeof(why));
        lurk_errf(err, errlen,
                  "cannot open the channel key %s: %s (is its provider in "
                  "tls_providers?)",
                  uri, why);
        return -1;
    }
    OSSL_STORE_expect(st, OSSL_STORE_INFO_PKEY);
    while (c->key == NULL && !OSSL_STORE_eof(st)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(st);

        if (info == NULL)
            break;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            c->key = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(st);
    if (c->key == NULL) {
        lurk_tls_reason(why, sizeof(why));
        lurk_errf(err, errlen, "no private key at %s: %s", uri, why);
        return -1;
    }
    return 0;
}

/* CA certificates and CRLs into one store; trust_id hashes both files. */
static int lurk_tls_load_trust(lurk_tls_cred *c, const char *ca, const char *crl, char *err,
                               size_t errlen)
{
    const char *files[2] = { ca, crl };
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t n_ca = 0;
    int ok = md != NULL && EVP_DigestInit_ex2(md, EVP_sha256(), NULL);

    c->trust = X509_STORE_new();
    for (size_t i = 0; ok && i < 2; i++) {
        size_t len;
        char *pem;
        BIO *b;
        STACK_OF(X509_INFO) * infos;

        if (files[i] == NULL)
            continue;
        if ((pem = lurk_tls_slurp(files[i], &len, err, errlen)) == NULL) {
            ok = 0;
            break;
        }
        EVP_DigestUpdate(md, pem, len);
        b = BIO_new_mem_buf(pem, (int)len);
        infos = b != NULL ? PEM_X509_INFO_read_bio_ex(b, NULL, NULL, NULL, c->libctx, NULL) : NULL;
        for (int j = 0; infos != NULL && j < sk_X509_INFO_num(infos); j++) {
            X509_INFO *xi = sk_X509_INFO_value(infos, j);

            if (i == 0 && xi->x509 != NULL && X509_STORE_add_cert(c->trust, xi->x509))
                n_ca++;
            if (i == 1 && xi->crl != NULL && X509_STORE_add_crl(c->trust, xi->crl))
                c->has_crl = 1;
        }
        sk_X509_INFO_pop_free(infos, X509_INFO_free);
        BIO_free(b);
        free(pem);
        ERR_clear_error();
        if (i == 0 && n_ca == 0) {
            lurk_errf(err, errlen, "%s: no PEM CA certificate", ca);
            ok = 0;
        } else if (i == 1 && !c->has_crl) {
            lurk_errf(err, errlen, "%s: no PEM CRL", crl);
            ok = 0;
        }
    }
    if (ok)
        ok = EVP_DigestFinal_ex(md, c->trust_id, NULL);
    EVP_MD_CTX_free(md);
    if (ok && c->has_crl)
        X509_STORE_set_flags(c->trust, X509_V_FLAG_CRL_CHECK);
    return ok ? 0 : -1;
}

/*
 * Session ticket keys derived from the private key: the same after a
 * restart, so every edge resumes instead of a full handshake; rotated with
 * the key. A key that cannot be exported (a TPM) gets none: OpenSSL's own
 * random keys, valid for one run.
 */
static void lurk_tls_ticket_keys(lurk_tls_cred *c)
{
    unsigned char *der = NULL;
    int n = c->key != NULL ? i2d_PrivateKey(c->key, &der) : -1;
    EVP_KDF *kdf;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5];
    static const char salt[] = "LURK channel session tickets v1";

    ERR_clear_error();
    if (n <= 0)
        return;
    if ((kdf = EVP_KDF_fetch(c->libctx, "HKDF", NULL)) != NULL)
        kctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, der, (size_t)n);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
                                                  sizeof(salt) - 1);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, c->trust_id,
                                                  sizeof(c->trust_id));
    params[4] = OSSL_PARAM_construct_end();
    if (kctx != NULL && EVP_KDF_derive(kctx, c->ticket_keys, sizeof(c->ticket_keys), params) == 1)
        c->has_ticket_keys = 1;
    EVP_KDF_CTX_free(kctx);
    OPENSSL_clear_free(der, (size_t)n);
    ERR_clear_error();
}

/*
 * The channel's algorithms when the key is another provider's (a TPM's).
 * OpenSSL 3.0 signs with the first signature implementation the query
 * picks and hands it the key's exported public half: tpm2-openssl exports
 * that without refusing the private part, so the default provider's ECDSA
 * would fail ("missing private key"). So the key's provider comes first,
 * as tpm2-openssl's documentation says (-propquery
 * ?provider=tpm2,tpm2.digest!=yes): but not for what it marks as its
 * digests, ciphers and random generator, which would put every transcript
 * hash in the TPM (its few object slots ran out at the first handshake, in
 * swtpm) and gain nothing. Other providers do not define those marks; the
 * clauses do not exclude anything of theirs.
 */
static void lurk_tls_key_propq(lurk_tls_cred *c)
{
    const OSSL_PROVIDER *prov = c->key != NULL ? EVP_PKEY_get0_provider(c->key) : NULL;
    const char *name = prov != NULL ? OSSL_PROVIDER_get0_name(prov) : NULL;

    c->propq[0] = '\0';
    if (name == NULL || strcmp(name, "default") == 0 || strlen(name) > 64
        || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != strlen(name))
        return;
    snprintf(c->propq, sizeof(c->propq),
             "?provider=%s,tpm2.digest!=yes,tpm2.cipher!=yes,tpm2.rand!=yes", name);
}

int lurk_tls_cred_load_ex(const lurk_tls_files *files, const char *providers, lurk_tls_cred **out,
                          char *err, size_t errlen)
{
    lurk_tls_cred *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    atomic_init(&c->refs, 1);
    if (files->ca == NULL || ((files->cert == NULL) != (files->key == NULL))) {
        lurk_errf(err, errlen, "mutual TLS needs a certificate, its key and a CA file");
        goto fail;
    }
    if (files->min_version == NULL || strcmp(files->min_version, "1.3") == 0)
        c->min_version = TLS1_3_VERSION;
    else if (strcmp(files->min_version, "1.2") == 0)
        c->min_version = TLS1_2_VERSION;
    else {
        lurk_errf(err, errlen, "tls_min_version \"%s\": 1.2 or 1.3", files->min_version);
        goto fail;
    }
    if ((c->libctx = lurk_tls_libctx(providers, err, errlen)) == NULL)
        goto fail;
    if (files->cert != NULL
        && (lurk_tls_load_certs(c, files->cert, err, errlen) != 0
            || (lurk_tls_is_uri(files->key) ? lurk_tls_load_key_uri(c, files->key, err, errlen)
                                            : lurk_tls_load_key_file(c, files->key, err, errlen))
                != 0))
        goto fail;
    if (c->cert != NULL && !X509_check_private_key(c->cert, c->key)) {
        ERR_clear_error();
        lurk_errf(err, errlen, "the key %s does not match the certificate %s", files->key,
                  files->cert);
        goto fail;
    }
    if (lurk_tls_load_trust(c, files->ca, files->crl, err, errlen) != 0)
        goto fail;
    if (files->server_name != NULL && (c->server_name = strdup(files->server_name)) == NULL)
        goto fail;
    lurk_tls_ticket_keys(c);
    lurk_tls_key_propq(c);
    *out = c;
    return 0;
fail:
    lurk_tls_cred_free(c);
    return -1;
}

int lurk_tls_cred_load(const lurk_tls_files *files, lurk_tls_cred **out, char *err, size_t errlen)
{
    return lurk_tls_cred_load_ex(files, NULL, out, err, errlen);
}

static lurk_tls_cred *lurk_tls_cred_hold(const lurk_tls_cred *cred)
{
    lurk_tls_cred *c = (lurk_tls_cred *)cred;

    atomic_fetch_add(&c->refs, 1);
    return c;
}

void lurk_tls_cred_free(lurk_tls_cred *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    X509_free(c->cert);
    sk_X509_pop_free(c->chain, X509_free);
    EVP_PKEY_free(c->key);
    X509_STORE_free(c->trust);
    free(c->server_name);
    OPENSSL_cleanse(c->ticket_keys, sizeof(c->ticket_keys));
    free(c);
}

const char *lurk_tls_cred_min_version(const lurk_tls_cred *c)
{
    return c->min_version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3";
}

/* ---- the BIO over nng's buffers --------------------------------------------- */

/* Pieces of one message gathered before they are sealed; larger messages pass through. */
#define LURK_TLS_GATHER 4096

struct nng_tls_engine_conn {
    void *tls; /* nng's connection, for nng_tls_engine_send/recv */
    SSL *ssl;
    struct nng_tls_engine_config *cfg;
    int nng_error;   /* nng's own failure under the BIO (its close), or 0 */
    int failed;      /* the handshake failure was logged */
    lurk_spframe sp; /* where nng's stream stands: messages end where records should */
    size_t out_len;  /* gathered plaintext, reported to nng as sent */
    size_t out_off;  /* of which already written as records */
    size_t out_held; /* the last piece, in out[] but not yet reported (its write waits) */
    unsigned char out[LURK_TLS_GATHER];
};

static atomic_ulong lurk_tls_n_sends;   /* pieces nng handed to the engine */
static atomic_ulong lurk_tls_n_records; /* writes into nng's buffer: records, or parts */

void lurk_tls_counters(unsigned long *sends, unsigned long *records)
{
    *sends = atomic_load_explicit(&lurk_tls_n_sends, memory_order_relaxed);
    *records = atomic_load_explicit(&lurk_tls_n_records, memory_order_relaxed);
}

static int lurk_bio_write(BIO *b, const char *buf, size_t len, size_t *done)
{
    nng_tls_engine_conn *ec = BIO_get_data(b);
    size_t n = len;
    int rv = nng_tls_engine_send(ec->tls, (const uint8_t *)buf, &n);

    BIO_clear_retry_flags(b);
    if (rv == 0) {
        atomic_fetch_add_explicit(&lurk_tls_n_records, 1, memory_order_relaxed);
        *done = n;
        return 1;
    }
    if (rv == NNG_EAGAIN)
        BIO_set_retry_write(b);
    else
        ec->nng_error = rv;
    return 0;
}

static int lurk_bio_read(BIO *b, char *buf, size_t len, size_t *done)
{
    nng_tls_engine_conn *ec = BIO_get_data(b);
    size_t n = len;
    int rv = nng_tls_engine_recv(ec->tls, (uint8_t *)buf, &n);

    BIO_clear_retry_flags(b);
    if (rv == 0) {
        *done = n;
        return 1;
    }
    if (rv == NNG_EAGAIN)
        BIO_set_retry_read(b);
    else
        ec->nng_error = rv;
    return 0;
}

static long lurk_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* nng sends what it is given at once: a flush has nothing to do. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *lurk_bio_method;
static pthread_once_t lurk_bio_once = PTHREAD_ONCE_INIT;

static void lurk_bio_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lurk nng stream");

    if (m != NULL
        && (!BIO_meth_set_write_ex(m, lurk_bio_write) || !BIO_meth_set_read_ex(m, lurk_bio_read)
            || !BIO_meth_set_ctrl(m, lurk_bio_ctrl))) {
        BIO_meth_free(m);
        m = NULL;
    }
    lurk_bio_method = m;
}

/* ---- engine configuration ------------------------------------------------------ */

struct nng_tls_engine_config {
    SSL_CTX *ctx;
    nng_tls_mode mode;
    lurk_tls_cred *cred; /* NULL: configured through nng's PEM-string calls */
    char *server_name;
    pthread_mutex_t lock; /* session */
    SSL_SESSION *session; /* client: the latest, offered on the next connection */
    EVP_CIPHER *aes;      /* server: ticket encryption */
};

/* The credential nng_tls_config_alloc() is about to hand to config init. */
static _Thread_local const lurk_tls_cred *lurk_tls_pending;
static int lurk_tls_ex_cfg = -1;

static int lurk_tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
    nng_tls_engine_config *cfg = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), lurk_tls_ex_cfg);
    SSL_SESSION *old;

    if (cfg == NULL || !SSL_SESSION_is_resumable(sess))
        return 0;
    pthread_mutex_lock(&cfg->lock);
    old = cfg->session;
    cfg->session = sess;
    pthread_mutex_unlock(&cfg->lock);
    SSL_SESSION_free(old);
    return 1; /* the reference is ours */
}

static int lurk_tls_ticket_key(SSL *ssl, unsigned char name[16], unsigned char *iv,
                               EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    nng_tls_engine_config *cfg = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), lurk_tls_ex_cfg);
    const unsigned char *k = cfg->cred->ticket_keys;
    OSSL_PARAM params[2];

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (enc) {
        memcpy(name, k, 16);
        if (RAND_bytes_ex(cfg->cred->libctx, iv, 16, 0) <= 0
            || !EVP_EncryptInit_ex2(cctx, cfg->aes, k + 16, iv, NULL))
            return -1;
    } else {
        if (CRYPTO_memcmp(name, k, 16) != 0)
            return 0; /* another key's ticket: a full handshake */
        if (!EVP_DecryptInit_ex2(cctx, cfg->aes, k + 16, iv, NULL))
            return -1;
    }
    if (!EVP_MAC_init(hctx, k + 48, 32, params))
        return -1;
    return 1;
}

/* The CA and CRL a session was verified against travel in its ticket. */
static int lurk_tls_ticket_gen(SSL *ssl, void *arg)
{
    nng_tls_engine_config *cfg = arg;

    return SSL_SESSION_set1_ticket_appdata(SSL_get0_session(ssl), cfg->cred->trust_id,
                                           sizeof(cfg->cred->trust_id));
}

/*
 * A ticket from before the CA or CRL changed (a revoked edge's) is not
 * resumed: the edge proves its certificate again in a full handshake.
 */
static SSL_TICKET_RETURN lurk_tls_ticket_dec(SSL *ssl, SSL_SESSION *ss,
                                             const unsigned char *keyname, size_t keyname_len,
                                             SSL_TICKET_STATUS status, void *arg)
{
    nng_tls_engine_config *cfg = arg;
    void *data = NULL;
    size_t len = 0;

    (void)ssl;
    (void)keyname;
    (void)keyname_len;
    switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
        if (!SSL_SESSION_get0_ticket_appdata(ss, &data, &len) || len != sizeof(cfg->cred->trust_id)
            || CRYPTO_memcmp(data, cfg->cred->trust_id, len) != 0)
            return SSL_TICKET_RETURN_IGNORE_RENEW;
        return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
    case SSL_TICKET_FATAL_ERR_MALLOC:
    case SSL_TICKET_FATAL_ERR_OTHER: return SSL_TICKET_RETURN_ABORT;
    default: return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
}

static int lurk_cfg_versions(nng_tls_engine_config *cfg, int min)
{
    return SSL_CTX_set_min_proto_version(cfg->ctx, min)
        && SSL_CTX_set_max_proto_version(cfg->ctx, TLS1_3_VERSION);
}

static int lurk_cfg_use_cred(nng_tls_engine_config *cfg, const lurk_tls_cred *cred)
{
    SSL_CTX *ctx = cfg->ctx;

    cfg->cred = lurk_tls_cred_hold(cred);
    if (cred->cert != NULL && !SSL_CTX_use_cert_and_key(ctx, cred->cert, cred->key, cred->chain, 1))
        return NNG_EINVAL;
    X509_STORE_up_ref(cred->trust);
    SSL_CTX_set_cert_store(ctx, cred->trust);
    if (!lurk_cfg_versions(cfg, cred->min_version))
        return NNG_ENOTSUP;
    if (cred->server_name != NULL && (cfg->server_name = strdup(cred->server_name)) == NULL)
        return NNG_ENOMEM;
    if (cfg->mode == NNG_TLS_MODE_SERVER) {
        /* Sessions of edges verified against these CA and CRL. */
        if (!SSL_CTX_set_session_id_context(ctx, cred->trust_id, sizeof(cred->trust_id)))
            return NNG_ENOMEM;
        if (!SSL_CTX_set_session_ticket_cb(ctx, lurk_tls_ticket_gen, lurk_tls_ticket_dec, cfg))
            return NNG_ENOMEM;
        if (cred->has_ticket_keys) {
            if ((cfg->aes = EVP_CIPHER_fetch(cred->libctx, "AES-256-CBC", NULL)) == NULL
                || !SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, lurk_tls_ticket_key))
                return NNG_ENOTSUP;
        }
    }
    return 0;
}

static int lurk_cfg_init(nng_tls_engine_config *cfg, nng_tls_mode mode)
{
    const lurk_tls_cred *cred = lurk_tls_pending;
    SSL_CTX *ctx;

    lurk_tls_pending = NULL;
    cfg->mode = mode;
    pthread_mutex_init(&cfg->lock, NULL);
    ctx = SSL_CTX_new_ex(cred != NULL ? cred->libctx : NULL,
                         cred != NULL && cred->propq[0] != '\0' ? cred->propq : NULL,
                         mode == NNG_TLS_MODE_SERVER ? TLS_server_method() : TLS_client_method());
    if ((cfg->ctx = ctx) == NULL) {
        ERR_clear_error();
        return NNG_ENOMEM;
    }
    SSL_CTX_set_ex_data(ctx, lurk_tls_ex_cfg, cfg);
    /* nng hands over one buffer at a time and resends the same one after EAGAIN. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Our order (cheapest first) over the peer's: both ends are ours. */
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (!SSL_CTX_set_ciphersuites(ctx, LURK_TLS13_SUITES)
        || !SSL_CTX_set_cipher_list(ctx, LURK_TLS12_CIPHERS)
        || !lurk_cfg_versions(cfg, TLS1_3_VERSION)) {
        ERR_clear_error();
        return NNG_ENOTSUP;
    }
    if (mode == NNG_TLS_MODE_SERVER) {
        /* The edge keeps one ticket: one is enough. */
        SSL_CTX_set_num_tickets(ctx, 1);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    } else {
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, lurk_tls_new_session);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return cred != NULL ? lurk_cfg_use_cred(cfg, cred) : 0;
}

static void lurk_cfg_fini(nng_tls_engine_config *cfg)
{
    SSL_CTX_free(cfg->ctx);
    SSL_SESSION_free(cfg->session);
    EVP_CIPHER_free(cfg->aes);
    free(cfg->server_name);
    lurk_tls_cred_free(cfg->cred);
    pthread_mutex_destroy(&cfg->lock);
}

static int lurk_cfg_server(nng_tls_engine_config *cfg, const char *name)
{
    char *dup = strdup(name);

    if (dup == NULL)
        return NNG_ENOMEM;
    free(cfg->server_name);
    cfg->server_name = dup;
    return 0;
}

static int lurk_cfg_auth(nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
    int v = SSL_VERIFY_NONE;

    if (mode == NNG_TLS_AUTH_MODE_REQUIRED)
        v = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    else if (mode == NNG_TLS_AUTH_MODE_OPTIONAL)
        v = SSL_VERIFY_PEER;
    SSL_CTX_set_verify(cfg->ctx, v, NULL);
    return 0;
}

/* nng's PEM-string calls: for callers that have no lurk_tls_cred. */
static int lurk_cfg_ca_chain(nng_tls_engine_config *cfg, const char *ca, const char *crl)
{
    X509_STORE *st = SSL_CTX_get_cert_store(cfg->ctx);
    const char *pems[2] = { ca, crl };
    int n = 0;

    for (int i = 0; i < 2; i++) {
        BIO *b;
        STACK_OF(X509_INFO) * infos;

        if (pems[i] == NULL)
            continue;
        b = BIO_new_mem_buf(pems[i], -1);
        infos = b != NULL ? PEM_X509_INFO_read_bio(b, NULL, NULL, NULL) : NULL;
        for (int j = 0; infos != NULL && j < sk_X509_INFO_num(infos); j++) {
            X509_INFO *xi = sk_X509_INFO_value(infos, j);

            if (xi->x509 != NULL && X509_STORE_add_cert(st, xi->x509))
                n++;
            if (xi->crl != NULL && X509_STORE_add_crl(st, xi->crl))
                X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
        }
        sk_X509_INFO_pop_free(infos, X509_INFO_free);
        BIO_free(b);
    }
    ERR_clear_error();
    return n > 0 ? 0 : NNG_EINVAL;
}

static int lurk_cfg_own_cert(nng_tls_engine_config *cfg, const char *cert, const char *key,
                             const char *pass)
{
    BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
    X509 *x = cb != NULL ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb != NULL ? PEM_read_bio_PrivateKey(kb, NULL, NULL, (void *)pass) : NULL;
    int ok = x != NULL && k != NULL && SSL_CTX_use_cert_and_key(cfg->ctx, x, k, NULL, 1);

    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    ERR_clear_error();
    return ok ? 0 : NNG_EINVAL;
}

static int lurk_cfg_version(nng_tls_engine_config *cfg, nng_tls_version min, nng_tls_version max)
{
    int lo = min <= NNG_TLS_1_2 ? TLS1_2_VERSION : TLS1_3_VERSION;
    int hi = max >= NNG_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;

    if (max < NNG_TLS_1_2 || lo > hi)
        return NNG_ENOTSUP; /* TLS 1.0 and 1.1 are not offered */
    return SSL_CTX_set_min_proto_version(cfg->ctx, lo)
            && SSL_CTX_set_max_proto_version(cfg->ctx, hi)
        ? 0
        : NNG_ENOTSUP;
}

/* ---- connections -------------------------------------------------------------- */

static int lurk_conn_init(nng_tls_engine_conn *ec, void *tls, nng_tls_engine_config *cfg)
{
    BIO *b;

    ec->tls = tls;
    ec->cfg = cfg;
    pthread_once(&lurk_bio_once, lurk_bio_init);
    if (lurk_bio_method == NULL || (ec->ssl = SSL_new(cfg->ctx)) == NULL
        || (b = BIO_new(lurk_bio_method)) == NULL) {
        ERR_clear_error();
        return NNG_ENOMEM;
    }
    BIO_set_data(b, ec);
    BIO_set_init(b, 1);
    SSL_set_bio(ec->ssl, b, b);
    if (cfg->mode == NNG_TLS_MODE_SERVER) {
        SSL_set_accept_state(ec->ssl);
        return 0;
    }
    SSL_set_connect_state(ec->ssl);
    if (cfg->server_name != NULL
        && (!SSL_set_tlsext_host_name(ec->ssl, cfg->server_name)
            || !SSL_set1_host(ec->ssl, cfg->server_name))) {
        ERR_clear_error();
        return NNG_ENOMEM;
    }
    pthread_mutex_lock(&cfg->lock);
    if (cfg->session != NULL)
        SSL_set_session(ec->ssl, cfg->session);
    pthread_mutex_unlock(&cfg->lock);
    return 0;
}

static void lurk_conn_fini(nng_tls_engine_conn *ec)
{
    OPENSSL_cleanse(ec->out, sizeof(ec->out));
    SSL_free(ec->ssl);
}

static void lurk_conn_close(nng_tls_engine_conn *ec)
{
    /* A close_notify if the stream still takes it; nothing waits for the answer. */
    if (ec->ssl != NULL && SSL_is_init_finished(ec->ssl))
        SSL_shutdown(ec->ssl);
    ERR_clear_error();
}

/* SSL_get_error() as nng wants it; failures are explained once. */
static int lurk_conn_error(nng_tls_engine_conn *ec, int r, const char *what)
{
    char why[200];
    long v;

    /*
     * Careful with the codes: nng's listener stops accepting for good on
     * NNG_ECLOSED and pauses 100 ms on codes it does not know. A peer that
     * goes away or fails the handshake is a remote condition
     * (NNG_ECONNRESET, NNG_EPEERAUTH); NNG_ECLOSED only when nng closed.
     */
    switch (SSL_get_error(ec->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return NNG_EAGAIN;
    case SSL_ERROR_ZERO_RETURN: return NNG_ECONNRESET;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return ec->nng_error != 0 ? ec->nng_error : NNG_ECONNRESET;
    default: break;
    }
    v = SSL_get_verify_result(ec->ssl);
    lurk_tls_reason(why, sizeof(why));
    if (!ec->failed) {
        ec->failed = 1;
        if (v != X509_V_OK)
            lurk_tls_log(1, "channel %s: peer certificate: %s", what,
                         X509_verify_cert_error_string(v));
        else
            lurk_tls_log(1, "channel %s: %s", what, why);
    }
    return NNG_EPEERAUTH;
}

static int lurk_conn_handshake(nng_tls_engine_conn *ec)
{
    int r = SSL_do_handshake(ec->ssl);

    return r == 1 ? 0 : lurk_conn_error(ec, r, "handshake");
}

static int lurk_conn_recv(nng_tls_engine_conn *ec, uint8_t *buf, size_t *len)
{
    size_t n = 0;
    int r = SSL_read_ex(ec->ssl, buf, *len, &n);

    if (r == 1) {
        *len = n;
        return 0;
    }
    return lurk_conn_error(ec, r, "receive");
}

/* Writes out[out_off..out_len) as records; 0, NNG_EAGAIN (call again) or an error. */
static int lurk_conn_flush(nng_tls_engine_conn *ec)
{
    while (ec->out_off < ec->out_len) {
        size_t n = 0;
        int r = SSL_write_ex(ec->ssl, ec->out + ec->out_off, ec->out_len - ec->out_off, &n);

        if (r != 1)
            return lurk_conn_error(ec, r, "send");
        ec->out_off += n;
    }
    /* a Decrypt answer carries a premaster */
    OPENSSL_cleanse(ec->out, ec->out_len);
    ec->out_off = ec->out_len = 0;
    return 0;
}

static int lurk_conn_write(nng_tls_engine_conn *ec, const uint8_t *buf, size_t *len)
{
    size_t n = 0;
    int r = SSL_write_ex(ec->ssl, buf, *len, &n);

    if (r != 1)
        return lurk_conn_error(ec, r, "send");
    lurk_spframe_feed(&ec->sp, buf, n);
    *len = n;
    return 0;
}

/*
 * nng sends a message as three pieces, each finished before the next is
 * handed over. Sealed one by one they cost three records, three AEAD
 * operations and up to three TCP sends per message; gathered until the
 * message is complete, one of each. Every piece is reported sent only once
 * it is in out[] for good; the piece that completes a message is reported
 * when its record is written, so a record that must wait (nng's buffer
 * full) is retried on nng's next call, which carries the same piece.
 */
static int lurk_conn_send(nng_tls_engine_conn *ec, const uint8_t *buf, size_t *len)
{
    int rv;

    atomic_fetch_add_explicit(&lurk_tls_n_sends, 1, memory_order_relaxed);
    if (ec->out_held == 0) {
        if (ec->sp.state == LURK_SP_OFF || ec->out_len + *len > sizeof(ec->out)) {
            /* too large to gather: what is held first, then this piece as it is */
            if ((rv = lurk_conn_flush(ec)) != 0)
                return rv;
            return lurk_conn_write(ec, buf, len);
        }
        memcpy(ec->out + ec->out_len, buf, *len);
        ec->out_len += *len;
        if (!lurk_spframe_feed(&ec->sp, buf, *len))
            return 0; /* the rest of the message comes next */
        ec->out_held = *len;
    }
    if ((rv = lurk_conn_flush(ec)) != 0)
        return rv;
    *len = ec->out_held;
    ec->out_held = 0;
    return 0;
}

/* Filled by the `verified` operation for the thread that asked (lurk_tls_peer_of_pipe). */
static _Thread_local lurk_tls_peer *lurk_tls_want_peer;

static void lurk_conn_describe(nng_tls_engine_conn *ec, lurk_tls_peer *p, int verified)
{
    X509 *x = SSL_get0_peer_certificate(ec->ssl);
    GENERAL_NAMES *sans;
    const SSL_CIPHER *c = SSL_get_current_cipher(ec->ssl);
    unsigned char *der = NULL;
    int n;

    memset(p, 0, sizeof(*p));
    p->verified = verified;
    snprintf(p->version, sizeof(p->version), "%s", SSL_get_version(ec->ssl));
    snprintf(p->cipher, sizeof(p->cipher), "%s", c != NULL ? SSL_CIPHER_get_name(c) : "");
    p->resumed = SSL_session_reused(ec->ssl);
    if (x == NULL)
        return;
    X509_NAME_oneline(X509_get_subject_name(x), p->subject, sizeof(p->subject));
    sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && p->n_dns < LURK_TLS_MAX_DNS;
         i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        const unsigned char *s;
        int len;

        if (g->type != GEN_DNS)
            continue;
        s = ASN1_STRING_get0_data(g->d.dNSName);
        len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || (size_t)len >= sizeof(p->dns[0]) || memchr(s, 0, (size_t)len) != NULL)
            continue;
        memcpy(p->dns[p->n_dns], s, (size_t)len);
        p->dns[p->n_dns++][len] = '\0';
    }
    GENERAL_NAMES_free(sans);
    if ((n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der)) > 0) {
        p->has_spki = EVP_Digest(der, (size_t)n, p->spki_sha256, NULL, EVP_sha256(), NULL);
        OPENSSL_free(der);
    }
    ERR_clear_error();
}

static bool lurk_conn_verified(nng_tls_engine_conn *ec)
{
    int ok = ec->ssl != NULL && SSL_is_init_finished(ec->ssl)
        && SSL_get0_peer_certificate(ec->ssl) != NULL
        && SSL_get_verify_result(ec->ssl) == X509_V_OK;

    if (lurk_tls_want_peer != NULL) {
        lurk_conn_describe(ec, lurk_tls_want_peer, ok);
        lurk_tls_want_peer = NULL;
    }
    return ok;
}

/* ---- the engine ------------------------------------------------------------------ */

static nng_tls_engine_config_ops lurk_cfg_ops = {
    .size = sizeof(nng_tls_engine_config),
    .init = lurk_cfg_init,
    .fini = lurk_cfg_fini,
    .server = lurk_cfg_server,
    .auth = lurk_cfg_auth,
    .ca_chain = lurk_cfg_ca_chain,
    .own_cert = lurk_cfg_own_cert,
    .version = lurk_cfg_version,
};

static nng_tls_engine_conn_ops lurk_conn_ops = {
    .size = sizeof(nng_tls_engine_conn),
    .init = lurk_conn_init,
    .fini = lurk_conn_fini,
    .close = lurk_conn_close,
    .handshake = lurk_conn_handshake,
    .recv = lurk_conn_recv,
    .send = lurk_conn_send,
    .verified = lurk_conn_verified,
};

static nng_tls_engine lurk_engine = {
    .version = NNG_TLS_ENGINE_VERSION,
    .config_ops = &lurk_cfg_ops,
    .conn_ops = &lurk_conn_ops,
    .name = "lurk-openssl",
    .description = "OpenSSL " OPENSSL_FULL_VERSION_STR " (LURK channel engine)",
    .fips_mode = false,
};

static pthread_mutex_t lurk_engine_lock = PTHREAD_MUTEX_INITIALIZER;

int lurk_tls_engine_use(char *err, size_t errlen)
{
    int rv = 0;

    pthread_mutex_lock(&lurk_engine_lock);
    if (lurk_tls_ex_cfg < 0)
        lurk_tls_ex_cfg = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    /*
     * nng's initialisation installs mbed TLS: start it first (this call
     * does), then take its place. Checked each time: a process that
     * finalised nng and started it again has mbed TLS back.
     */
    if (strcmp(nng_tls_engine_name(), lurk_engine.name) != 0)
        rv = nng_tls_engine_register(&lurk_engine);
    pthread_mutex_unlock(&lurk_engine_lock);
    if (lurk_tls_ex_cfg < 0 || rv != 0) {
        lurk_errf(err, errlen, "cannot register the OpenSSL TLS engine with nng: %s",
                  rv != 0 ? nng_strerror(rv) : "no SSL_CTX ex_data index");
        return -1;
    }
    return 0;
}

const char *lurk_tls_engine_description(void)
{
    return lurk_engine.description;
}

int lurk_tls_config_make(int server, const lurk_tls_cred *cred, nng_tls_config **out, char *err,
                         size_t errlen)
{
    nng_tls_config *cfg = NULL;
    int rv;

    *out = NULL;
    if (server && cred->cert == NULL) {
        lurk_errf(err, errlen, "a TLS listener needs a certificate and its key");
        return -1;
    }
    if (lurk_tls_engine_use(err, errlen) != 0)
        return -1;
    lurk_tls_pending = cred;
    rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT);
    lurk_tls_pending = NULL;
    if (rv != 0) {
        lurk_errf(err, errlen, "TLS setup: %s",
                  rv == NNG_EINVAL ? "the certificate and key do not go together"
                                   : nng_strerror(rv));
        return -1;
    }
    *out = cfg;
    return 0;
}

int lurk_tls_config_from_files(int server, const lurk_tls_files *files, nng_tls_config **out,
                               char *err, size_t errlen)
{
    lurk_tls_cred *cred;
    int rv;

    if (lurk_tls_cred_load(files, &cred, err, errlen) != 0)
        return -1;
    rv = lurk_tls_config_make(server, cred, out, err, errlen);
    lurk_tls_cred_free(cred); /* the config holds its own reference */
    return rv;
}

/* ---- peers ---------------------------------------------------------------------- */

int lurk_tls_peer_of_pipe(nng_pipe pipe, lurk_tls_peer *out)
{
    bool verified = false;
    int rv;

    memset(out, 0, sizeof(*out));
    out->version[0] = '\0';
    lurk_tls_want_peer = out;
    rv = nng_pipe_get_bool(pipe, NNG_OPT_TLS_VERIFIED, &verified);
    if (lurk_tls_want_peer != NULL) {
        /* Not ours (no TLS, or another engine's connection). */
        lurk_tls_want_peer = NULL;
        return -1;
    }
    return rv == 0 ? 0 : -1;
}

void lurk_tls_spki_hex(const lurk_tls_peer *peer, char out[65])
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[peer->spki_sha256[i] >> 4];
        out[2 * i + 1] = hex[peer->spki_sha256[i] & 15];
    }
    out[64] = '\0';
}
