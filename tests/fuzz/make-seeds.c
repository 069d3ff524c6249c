/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writes the seed corpora of the fuzz targets:
 *
 *   cmake --build build --target lurk-fuzz-seeds
 *   build/tests/fuzz/lurk-fuzz-seeds tests/fuzz/corpus
 *
 * One file per seed, named after what it is, in <dir>/{request,response,
 * keyref,config}/. The seeds are the well-formed messages of each kind
 * (every operation, every handshake form the policy accepts, with real
 * points and DH values) plus the near misses the key server must refuse,
 * so that the fuzzer starts next to every branch. Keys are generated
 * afresh, so a new run changes the bytes, not the coverage; the committed
 * files are what CI uses. Crash reproducers are added by hand next to them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "lurk_keyref.h"
#include "lurk_wire.h"

#define FUZZ_ID 0x4c55524b00000001ull /* fuzz_response.c waits for this id */

static const char *outdir;

static void die(const char *what)
{
    fprintf(stderr, "lurk-fuzz-seeds: %s\n", what);
    exit(1);
}

static void write_seed(const char *sub, const char *name, const void *data, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", outdir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path);
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, sub, name);
    if ((f = fopen(path, "wb")) == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die(path);
}

/* ---- requests ---------------------------------------------------------- */

static void write_request(const char *name, Lurk__V1__Request *req)
{
    size_t len = lurk__v1__request__get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);

    if (buf == NULL)
        die("out of memory");
    lurk__v1__request__pack(req, buf);
    write_seed("request", name, buf, len);
    free(buf);
}

static void sign_seed(const char *name, const char *key, uint32_t scheme, const uint8_t *tbs,
                      size_t len)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest s = LURK__V1__SIGN_REQUEST__INIT;

    req.version = LURK_PROTOCOL_VERSION;
    req.id = 7;
    req.op_case = LURK__V1__REQUEST__OP_SIGN;
    req.sign = &s;
    s.key_id = (char *)key;
    s.scheme = scheme;
    s.tbs.data = (uint8_t *)tbs;
    s.tbs.len = len;
    write_request(name, &req);
}

static size_t tls13_ctx(uint8_t *buf, const char *label, size_t hash_len)
{
    size_t n = 64, l = strlen(label) + 1;

    memset(buf, 0x20, 64);
    memcpy(buf + n, label, l);
    n += l;
    RAND_bytes(buf + n, (int)hash_len);
    return n + hash_len;
}

static size_t encoded_public(EVP_PKEY *pkey, uint8_t *out, size_t max)
{
    size_t len = 0;

    if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out, max, &len)
        != 1)
        die("encoded public key");
    return len;
}

/* randoms || 03 group len point */
static size_t ecdhe_ctx(uint8_t *buf, uint16_t group, const char *alg, const char *curve)
{
    EVP_PKEY *k = curve != NULL ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve)
                                : EVP_PKEY_Q_keygen(NULL, NULL, alg);
    size_t n;

    if (k == NULL)
        die("EC key generation");
    RAND_bytes(buf, 64);
    buf[64] = 3;
    buf[65] = (uint8_t)(group >> 8);
    buf[66] = (uint8_t)group;
    n = encoded_public(k, buf + 68, 200);
    buf[67] = (uint8_t)n;
    EVP_PKEY_free(k);
    return 68 + n;
}

static void put_vec16(uint8_t *buf, size_t *off, const uint8_t *v, size_t n)
{
    buf[(*off)++] = (uint8_t)(n >> 8);
    buf[(*off)++] = (uint8_t)n;
    memcpy(buf + *off, v, n);
    *off += n;
}

/*
 * randoms || p || g || Ys of an RFC 7919 group, Ys padded to p's length as
 * OpenSSL does; ys_delta -1 writes Ys one byte short (its first byte
 * dropped), +1 with one more leading zero byte: what libssl never sends.
 */
static size_t ffdhe_ctx_ys(uint8_t *buf, const char *group, int ys_delta)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
    EVP_PKEY *k = NULL;
    BIGNUM *p = NULL, *g = NULL, *y = NULL;
    OSSL_PARAM params[2];
    uint8_t tmp[1024 + 2]; /* Ys with a leading zero byte */
    size_t off = 64, plen;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_CTX_set_params(ctx, params) != 1
        || EVP_PKEY_generate(ctx, &k) != 1
        || EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_FFC_P, &p) != 1
        || EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_FFC_G, &g) != 1
        || EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PUB_KEY, &y) != 1)
        die("DH key generation");
    RAND_bytes(buf, 64);
    plen = (size_t)BN_num_bytes(p);
    BN_bn2bin(p, tmp);
    put_vec16(buf, &off, tmp, plen);
    put_vec16(buf, &off, tmp, (size_t)BN_bn2bin(g, tmp));
    tmp[0] = 0;
    BN_bn2binpad(y, tmp + 1, (int)plen);
    if (ys_delta < 0)
        put_vec16(buf, &off, tmp + 2, plen - 1);
    else if (ys_delta > 0)
        put_vec16(buf, &off, tmp, plen + 1);
    else
        put_vec16(buf, &off, tmp + 1, plen);
    BN_free(p);
    BN_free(g);
    BN_free(y);
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(ctx);
    return off;
}

static size_t ffdhe_ctx(uint8_t *buf, const char *group)
{
    return ffdhe_ctx_ys(buf, group, 0);
}

static void request_seeds(void)
{
    static const char server[] = "TLS 1.3, server CertificateVerify";
    static const char client[] = "TLS 1.3, client CertificateVerify";
    uint8_t tbs[4200];
    size_t n;

    {
        Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
        Lurk__V1__PingRequest ping = LURK__V1__PING_REQUEST__INIT;
        Lurk__V1__CapabilitiesRequest caps = LURK__V1__CAPABILITIES_REQUEST__INIT;
        Lurk__V1__GetPublicKeyRequest get = LURK__V1__GET_PUBLIC_KEY_REQUEST__INIT;
        Lurk__V1__DecryptRequest dec = LURK__V1__DECRYPT_REQUEST__INIT;
        uint8_t ct[257];

        req.version = LURK_PROTOCOL_VERSION;
        req.id = 1;
        req.op_case = LURK__V1__REQUEST__OP_PING;
        req.ping = &ping;
        ping.payload.data = (uint8_t *)"lurkctl";
        ping.payload.len = 7;
        write_request("ping", &req);
        req.version = 2;
        write_request("ping-version-2", &req);
        req.version = LURK_PROTOCOL_VERSION;
        ping.payload.data = tbs;
        ping.payload.len = 65;
        memset(tbs, 'p', 65);
        write_request("ping-payload-65", &req);

        req.op_case = LURK__V1__REQUEST__OP_CAPABILITIES;
        req.capabilities = &caps;
        write_request("capabilities", &req);

        req.op_case = LURK__V1__REQUEST__OP_GET_PUBLIC_KEY;
        req.get_public_key = &get;
        get.key_id = "rsa";
        write_request("get-public-key", &req);
        get.key_id = "../etc/passwd";
        write_request("get-public-key-bad-id", &req);
        memset(tbs, 'k', 65);
        tbs[65] = 0;
        get.key_id = (char *)tbs;
        write_request("get-public-key-id-65", &req);

        req.op_case = LURK__V1__REQUEST__OP_DECRYPT;
        req.decrypt = &dec;
        dec.key_id = "rsa";
        RAND_bytes(ct, sizeof(ct));
        dec.ciphertext.data = ct;
        dec.ciphertext.len = 256;
        dec.client_version = 0x0303;
        write_request("decrypt-rsa2048", &req);
        dec.ciphertext.len = 255;
        write_request("decrypt-short", &req);
        dec.ciphertext.len = 256;
        dec.client_version = 0x10303;
        write_request("decrypt-version-17-bits", &req);
        dec.client_version = 0x0303;
        dec.negotiated_version = 0x0302;
        write_request("decrypt-rollback", &req);

        req.op_case = LURK__V1__REQUEST__OP__NOT_SET;
        write_request("no-operation", &req);
    }
    write_seed("request", "empty", "", 0);
    /* version 1, id 1, then field 15 (not an operation of version 1), length 3 */
    write_seed("request", "unknown-operation", "\x08\x01\x10\x01\x7a\x03\x0a\x01\x78", 9);
    /* a length that claims more than there is */
    write_seed("request", "truncated-length", "\x08\x01\x10\x01\x6a\xff\xff\xff\xff\x0f", 10);

    n = tls13_ctx(tbs, server, 32);
    sign_seed("sign-tls13-rsa-pss-sha256", "rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA256, tbs, n);
    sign_seed("sign-tls13-rsa-pkcs1", "rsa", LURK_SCHEME_RSA_PKCS1_SHA256, tbs, n);
    sign_seed("sign-tls13-p256", "p256", LURK_SCHEME_ECDSA_SECP256R1_SHA256, tbs, n);
    sign_seed("sign-tls13-ed25519", "ed25519", LURK_SCHEME_ED25519, tbs, n);
    sign_seed("sign-tls13-unknown-scheme", "rsa", 0x0809, tbs, n);
    sign_seed("sign-tls13-scheme-32-bits", "rsa", 0x10804, tbs, n);
    sign_seed("sign-tls13-ecdsa-sha1", "p256", LURK_SCHEME_ECDSA_SHA1, tbs, n);
    n = tls13_ctx(tbs, server, 48);
    sign_seed("sign-tls13-p384-sha384-transcript", "p384", LURK_SCHEME_ECDSA_SECP384R1_SHA384, tbs,
              n);
    sign_seed("sign-tls13-trailing", "p384", LURK_SCHEME_ECDSA_SECP384R1_SHA384, tbs, n + 1);
    n = tls13_ctx(tbs, server, 32);
    sign_seed("sign-tls13-p521", "p521", LURK_SCHEME_ECDSA_SECP521R1_SHA512, tbs, n);
    /* No TLS 1.3 suite has a SHA-512 transcript: refused even for a SHA-512 scheme. */
    n = tls13_ctx(tbs, server, 64);
    sign_seed("sign-tls13-hash-64", "rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA512, tbs, n);
    n = tls13_ctx(tbs, client, 32);
    sign_seed("sign-tls13-client-context", "rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA256, tbs, n);
    n = tls13_ctx(tbs, server, 20);
    sign_seed("sign-tls13-hash-20", "rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA256, tbs, n);

    n = ecdhe_ctx(tbs, 23, NULL, "P-256");
    sign_seed("sign-tls12-ecdhe-p256", "rsa", LURK_SCHEME_RSA_PKCS1_SHA256, tbs, n);
    sign_seed("sign-tls12-ecdhe-p256-trailing", "rsa", LURK_SCHEME_RSA_PKCS1_SHA256, tbs, n + 1);
    /* SHA-1 and SHA-224: TLS 1.2 only, and only with legacy_hashes = yes. */
    sign_seed("sign-tls12-rsa-sha1", "rsa", LURK_SCHEME_RSA_PKCS1_SHA1, tbs, n);
    sign_seed("sign-tls12-ecdsa-sha224", "p256", LURK_SCHEME_ECDSA_SHA224, tbs, n);
    tbs[n - 1] ^= 1;
    sign_seed("sign-tls12-ecdhe-p256-off-curve", "p256", LURK_SCHEME_ECDSA_SECP256R1_SHA256, tbs,
              n);
    n = ecdhe_ctx(tbs, 24, NULL, "P-384");
    sign_seed("sign-tls12-ecdhe-p384", "p256", LURK_SCHEME_ECDSA_SECP256R1_SHA256, tbs, n);
    n = ecdhe_ctx(tbs, 25, NULL, "P-521");
    sign_seed("sign-tls12-ecdhe-p521", "rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA512, tbs, n);
    n = ecdhe_ctx(tbs, 29, "X25519", NULL);
    sign_seed("sign-tls12-ecdhe-x25519", "ed25519", LURK_SCHEME_ED25519, tbs, n);
    n = ecdhe_ctx(tbs, 30, "X448", NULL);
    sign_seed("sign-tls12-ecdhe-x448", "rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA384, tbs, n);
    n = ffdhe_ctx(tbs, "ffdhe2048");
    sign_seed("sign-tls12-ffdhe2048", "rsa", LURK_SCHEME_RSA_PKCS1_SHA256, tbs, n);
    n = ffdhe_ctx(tbs, "ffdhe3072");
    sign_seed("sign-tls12-ffdhe3072", "rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA256, tbs, n);
    /* DHE with an EC or EdDSA key: no such cipher suite, refused. */
    sign_seed("sign-tls12-ffdhe3072-ec-key", "p256", LURK_SCHEME_ECDSA_SECP256R1_SHA256, tbs, n);
    sign_seed("sign-tls12-ffdhe3072-ed25519-key", "ed25519", LURK_SCHEME_ED25519, tbs, n);
    /* Ys not padded to the length of p, or longer than p: refused. */
    n = ffdhe_ctx_ys(tbs, "ffdhe2048", -1);
    sign_seed("sign-tls12-ffdhe2048-ys-short", "rsa", LURK_SCHEME_RSA_PKCS1_SHA256, tbs, n);
    n = ffdhe_ctx_ys(tbs, "ffdhe2048", 1);
    sign_seed("sign-tls12-ffdhe2048-ys-long", "rsa", LURK_SCHEME_RSA_PKCS1_SHA256, tbs, n);

    RAND_bytes(tbs, 32);
    sign_seed("sign-digest-32", "rsa", LURK_SCHEME_RSA_PKCS1_SHA256, tbs, 32);
    RAND_bytes(tbs, 100);
    sign_seed("sign-arbitrary-100", "p256", LURK_SCHEME_ECDSA_SECP256R1_SHA256, tbs, 100);
    memset(tbs, 0x20, LURK_MAX_TBS + 1);
    sign_seed("sign-tbs-4097", "rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA256, tbs, LURK_MAX_TBS + 1);
}

/* ---- responses --------------------------------------------------------- */

static void write_response(const char *name, Lurk__V1__Response *r)
{
    size_t len = lurk__v1__response__get_packed_size(r);
    uint8_t *buf = malloc(len ? len : 1);

    if (buf == NULL)
        die("out of memory");
    lurk__v1__response__pack(r, buf);
    write_seed("response", name, buf, len);
    free(buf);
}

static void response_seeds(void)
{
    Lurk__V1__Response r = LURK__V1__RESPONSE__INIT;
    Lurk__V1__PingResponse ping = LURK__V1__PING_RESPONSE__INIT;
    Lurk__V1__CapabilitiesResponse caps = LURK__V1__CAPABILITIES_RESPONSE__INIT;
    Lurk__V1__KeyInfo k1 = LURK__V1__KEY_INFO__INIT, k2 = LURK__V1__KEY_INFO__INIT;
    Lurk__V1__KeyInfo *keys[2] = { &k1, &k2 };
    uint32_t schemes[3] = { 0x0804, 0x0401, 0x0805 };
    Lurk__V1__GetPublicKeyResponse pub = LURK__V1__GET_PUBLIC_KEY_RESPONSE__INIT;
    Lurk__V1__SignResponse sig = LURK__V1__SIGN_RESPONSE__INIT;
    Lurk__V1__DecryptResponse dec = LURK__V1__DECRYPT_RESPONSE__INIT;
    uint8_t bytes[512];

    RAND_bytes(bytes, sizeof(bytes));
    r.version = LURK_PROTOCOL_VERSION;
    r.id = FUZZ_ID;
    r.result_case = LURK__V1__RESPONSE__RESULT_PING;
    r.ping = &ping;
    ping.payload.data = (uint8_t *)"lurkctl";
    ping.payload.len = 7;
    write_response("pong", &r);
    r.id = FUZZ_ID + 1;
    write_response("pong-other-id", &r);
    r.id = FUZZ_ID;

    r.result_case = LURK__V1__RESPONSE__RESULT_CAPABILITIES;
    r.capabilities = &caps;
    caps.protocol_version = 1;
    caps.config_epoch = 0x1122334455667788ull;
    caps.server_id = "keys.example.net";
    caps.n_keys = 2;
    caps.keys = keys;
    k1.key_id = "rsa";
    k1.type = LURK__V1__KEY_TYPE__KEY_TYPE_RSA;
    k1.bits = 2048;
    k1.n_schemes = 3;
    k1.schemes = schemes;
    k1.decrypt = 1;
    k1.spki_sha256.data = bytes;
    k1.spki_sha256.len = 32;
    k2.key_id = "p256";
    k2.type = LURK__V1__KEY_TYPE__KEY_TYPE_EC;
    k2.bits = 256;
    k2.group = "prime256v1";
    write_response("capabilities", &r);

    r.result_case = LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY;
    r.get_public_key = &pub;
    pub.type = LURK__V1__KEY_TYPE__KEY_TYPE_EC;
    pub.spki.data = bytes;
    pub.spki.len = 91;
    write_response("get-public-key", &r);

    r.result_case = LURK__V1__RESPONSE__RESULT_SIGN;
    r.sign = &sig;
    sig.signature.data = bytes;
    sig.signature.len = 256;
    write_response("sign", &r);
    r.version = 2;
    write_response("sign-version-2", &r);
    r.version = LURK_PROTOCOL_VERSION;

    r.result_case = LURK__V1__RESPONSE__RESULT_DECRYPT;
    r.decrypt = &dec;
    dec.premaster.data = bytes;
    dec.premaster.len = 48;
    write_response("decrypt", &r);
    r.status = LURK__V1__STATUS__STATUS_NOT_TLS_CONTEXT;
    write_response("refusal-with-result", &r);

    r.result_case = LURK__V1__RESPONSE__RESULT__NOT_SET;
    r.detail = "rsa_pss_rsae_sha256: TLS 1.3 context: client CertificateVerify";
    write_response("refusal", &r);
    r.status = (Lurk__V1__Status)99;
    write_response("refusal-unknown-status", &r);
}

/* ---- key references ---------------------------------------------------- */

/* EVP_PKEY_Q_keygen() does not know RSA-PSS: unrestricted, 2048 bits. */
static EVP_PKEY *pss_keygen(void)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    EVP_PKEY *k = NULL;

    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &k) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(ctx);
    return k;
}

static void keyref_seed(const char *name, const char *alg, const char *curve, const char *id,
                        const char *servers)
{
    EVP_PKEY *k = curve != NULL       ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve)
        : strcmp(alg, "RSA") == 0     ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
        : strcmp(alg, "RSA-PSS") == 0 ? pss_keygen()
                                      : EVP_PKEY_Q_keygen(NULL, NULL, alg);
    unsigned char *spki = NULL, *der = NULL;
    int spki_len;
    size_t der_len;
    lurk_keyref ref;
    const char *why = NULL;
    char pemname[256];
    BIO *mem;
    char *text;
    long text_len;

    if (k == NULL || (spki_len = i2d_PUBKEY(k, &spki)) <= 0)
        die("key generation");
    ref.type = lurk_keyref_type_of(k);
    ref.key_id = id;
    ref.spki = spki;
    ref.spki_len = (size_t)spki_len;
    ref.servers = servers;
    if (!lurk_keyref_encode(&ref, NULL, &der, &der_len, &why))
        die(why);
    write_seed("keyref", name, der, der_len);
    /* The same as the PEM file a server loads. */
    if ((mem = BIO_new(BIO_s_mem())) == NULL || !lurk_keyref_write_pem(mem, &ref, NULL, &why))
        die("PEM");
    text_len = BIO_get_mem_data(mem, &text);
    snprintf(pemname, sizeof(pemname), "%s.pem", name);
    write_seed("keyref", pemname, text, (size_t)text_len);
    /* Version 2: the decoder names the version instead of "malformed". */
    size_t h = der[1] < 0x80 ? 2 : 2 + (der[1] & 0x7f);
    if (der_len > h + 3 && der[h] == 0x02 && der[h + 1] == 0x01 && der[h + 2] == 0x01) {
        der[h + 2] = 0x02;
        snprintf(pemname, sizeof(pemname), "%s-version-2", name);
        write_seed("keyref", pemname, der, der_len);
    }
    BIO_free(mem);
    OPENSSL_free(der);
    OPENSSL_free(spki);
    EVP_PKEY_free(k);
}

static void keyref_seeds(void)
{
    keyref_seed("rsa2048", "RSA", NULL, "www", NULL);
    keyref_seed("p256-servers", NULL, "P-256", "api.example_1",
                "tls+tcp://keys1.example.net:7443 tls+tcp://keys2.example.net:7443");
    keyref_seed("p384", NULL, "P-384", "p384", NULL);
    keyref_seed("p521", NULL, "P-521", "p521", NULL);
    keyref_seed("ed25519", "ED25519", NULL, "ed25519", "ipc:///run/lurk/ks.sock");
    /* id-RSASSA-PSS, unrestricted: key type 4. */
    keyref_seed("rsa-pss", "RSA-PSS", NULL, "pss", NULL);
}

/* ---- configurations ---------------------------------------------------- */

static void config_seed(const char *name, const char *text)
{
    write_seed("config", name, text, strlen(text));
}

static void config_seeds(void)
{
    config_seed("minimal",
                "[keyserver]\n"
                "listen = tls+tcp://127.0.0.1:7443\n"
                "tls_cert = keyserver.crt\n"
                "tls_key = keyserver.key\n"
                "client_ca = edge-ca.pem\n"
                "[keys]\n"
                "rsa2048 = keys/rsa2048.pem\n");
    config_seed("full",
                "# every setting\n"
                "[keyserver]\n"
                "listen = tls+tcp://keys.example.net:7443, ipc:///run/lurk/ks.sock\n"
                "tls_cert = /etc/lurk/keyserver.crt\n"
                "tls_key = /etc/lurk/keyserver.key   # chmod 600\n"
                "client_ca = edge-ca.pem\n"
                "client_crl = edge.crl\n"
                "workers = 0\n"
                "server_id = ks-1 \"east\"\n"
                "keys = mykeys\n"
                "tls13 = yes\n"
                "tls12 = true\n"
                "ffdhe = off\n"
                "rsa_decrypt = 0\n"
                "key_rate = 1000\n"
                "key_burst = 2000\n"
                "replay_window = 60\n"
                "replay_cache = 100000\n"
                "max_message = 65536\n"
                "max_inflight = 256\n"
                "max_inflight_per_conn = 32\n"
                "max_connections = 1024\n"
                "drain_timeout = 10\n"
                "audit_log = /var/log/lurk/audit.log\n"
                "metrics_listen = http://127.0.0.1:9100\n"
                "[mykeys]\n"
                "www = /etc/lurk/keys/www.example.com.pem\n"
                "api = pkcs11:token=hsm;object=api\n"
                "tpm = handle:0x81000001\n"
                "file1 = file:///etc/lurk/keys/f.pem\n"
                "file2 = file://localhost/etc/lurk/keys/g.pem\n"
                "rel = ./keys/r.pem\n");
    config_seed("edge-groups",
                "[keyserver]\n"
                "tls_cert = ks.crt\n"
                "tls_key = ks.key\n"
                "[edge.cdn1]\n"
                "listen = tls+tcp://0.0.0.0:7443\n"
                "client_ca = cdn1-ca.pem\n"
                "client_crl = cdn1.crl\n"
                "keys = www api\n"
                "rate = 500\n"
                "burst = 1000\n"
                "[edge.local]\n"
                "listen = ipc:///run/lurk/local.sock\n"
                "keys = *\n"
                "[keys]\n"
                "www = www.pem\n"
                "api = api.pem\n");
    config_seed("edge-identity",
                "[keyserver]\n"
                "tls_cert = ks.crt\n"
                "tls_key = ks.key\n"
                "[edge.cdn1]\n"
                "listen = tls+tcp://0.0.0.0:7443\n"
                "client_ca = cdn1-ca.pem\n"
                "keys = www\n"
                "[edge.edge1]\n"
                "listen = tls+tcp://0.0.0.0:7443\n"
                "client_ca = cdn1-ca.pem\n"
                "edges = dns:edge1.cdn1.example, dns:*.eu.cdn1.example spki:"
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "keys = www api\n"
                "max_inflight = 8\n"
                "[keys]\n"
                "www = www.pem\n"
                "api = api.pem\n");
    config_seed("insecure",
                "[keyserver]\n"
                "listen = tcp://127.0.0.1:7000\n"
                "allow_insecure = yes\n"
                "[keys]\n"
                "k = k.pem\n");
    config_seed("cleartext-refused",
                "[keyserver]\n"
                "listen = tcp://127.0.0.1:7000\n"
                "[keys]\n"
                "k = k.pem\n");
    config_seed("duplicate-key",
                "[keyserver]\n"
                "listen = ipc:///tmp/ks\n"
                "[keys]\n"
                "k = a.pem\n"
                "k = b.pem\n");
    config_seed("include",
                ".include /etc/lurk/more.cnf\n"
                "[keyserver]\n"
                "listen = ipc:///tmp/ks\n"
                "[keys]\n"
                "k = a.pem\n");
    config_seed("variables",
                "dir = /etc/lurk\n"
                "[keyserver]\n"
                "listen = ipc://$dir/ks.sock\n"
                "workers = ${keyserver::w}\n"
                "w = 4\n"
                "[keys]\n"
                "k = $dir/keys/\\\n"
                "k.pem\n"
                "\"q\" = 'x y'\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: lurk-fuzz-seeds DIR (tests/fuzz/corpus)\n");
        return 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST)
        die(outdir);
    request_seeds();
    response_seeds();
    keyref_seeds();
    config_seeds();
    return 0;
}
