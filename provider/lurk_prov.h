/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal interfaces of the lurk provider.
 *
 * The provider presents keys held by a LURK key server as ordinary
 * OpenSSL keys. Everything a server needs while it loads keys (type, size,
 * public key) is local; only signing and RSA premaster decryption go to the
 * key server, one RPC each, and the RPC client starts lazily in the process
 * that signs (see lurk_rpc.c for why).
 */
#ifndef LURK_PROV_H
#define LURK_PROV_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "lurk_keyref.h"
#include "lurk_wire.h"

#define LURK_PROV_NAME "lurk"
#define LURK_PROPS     "provider=lurk"

/* Reasons, as shown by ERR_print_errors: "lurk: <reason>: <detail>". */
enum {
    LURK_R_CONFIG = 1,
    LURK_R_BAD_URI,
    LURK_R_KEY_SERVER_UNREACHABLE,
    LURK_R_KEY_SERVER_REFUSED,
    LURK_R_KEY_SERVER_BAD_REPLY,
    LURK_R_FORKED,
    LURK_R_UNSUPPORTED,
    LURK_R_BAD_KEY,
    LURK_R_BUFFER_TOO_SMALL,
    LURK_R_INTERNAL
};

typedef struct lurk_client lurk_client;
typedef struct lurk_caps lurk_caps;
typedef struct lurk_tls_cred lurk_tls_cred;

typedef struct lurk_prov_ctx_st {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *libctx; /* child of the application's */

    /* From the provider's section in openssl.cnf. */
    char **servers;
    char *tls_cert, *tls_key, *tls_ca, *server_name;
    int timeout_ms;         /* per operation, all attempts */
    int attempt_timeout_ms; /* per key server tried; 0: half of timeout_ms */
    int keepalive_ms;       /* ping idle key servers; 0: never */
    int verify_signatures;  /* check each signature before libssl sends it */
    int allow_insecure;     /* tcp:// URLs allowed (passed on to the helper) */
    char *pubkey_helper;    /* lurk-pubkey for lurk:// loads; NULL: LURK_PUBKEY_HELPER */
    char *tls_min_version;  /* "1.2" or "1.3" */
    char *tls_providers;    /* providers of the channel's library context; NULL: default */
    char config_error[512]; /* a bad setting, reported at every use */

    /*
     * The channel's certificate, key and CA, read at activation (see
     * lurk_prov.c); NULL without tls+tcp:// servers or TLS settings.
     */
    lurk_tls_cred *cred;

    /* The RPC client, started at the first private-key operation. */
    pthread_mutex_t lock;
    lurk_client *client;
    pid_t client_pid;
    lurk_caps *caps; /* the key server's Capabilities, see lurk_caps.c */
} LURK_PROV_CTX;

/* A key held by the key server, or a bare public key imported for match. */
typedef struct lurk_key_st {
    LURK_PROV_CTX *prov;
    Lurk__V1__KeyType type;
    char *key_id;  /* NULL: public only, no remote private half */
    EVP_PKEY *pub; /* the public half, held by the default provider */
    /*
     * RSA-PSS keys held by the key server: the restrictions from the SPKI,
     * read once at load so that libssl's per-handshake probes stay cheap.
     */
    lurk_pss_restrictions pss;
} LURK_KEY;

/* lurk_prov.c: 0 with the configuration error raised if a setting is bad. */
int lurk_prov_usable(const LURK_PROV_CTX *prov);

/* lurk_err.c */
void lurk_err_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in);
/*
 * Raise an error with this provider's reason and a printf detail; like
 * ERR_raise_data, it records where: `openssl errstr`-style reports and
 * ERR_print_errors then name our file, line and function.
 */
#define lurk_raise(prov, reason, ...) \
    lurk_raise_at((prov), (reason), OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC, __VA_ARGS__)
void lurk_raise_at(const LURK_PROV_CTX *prov, int reason, const char *file, int line,
                   const char *func, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
const OSSL_ITEM *lurk_reason_strings(void);

/* lurk_key.c */
LURK_KEY *lurk_key_new(LURK_PROV_CTX *prov, Lurk__V1__KeyType type);
void lurk_key_free(LURK_KEY *key);
/* Remote key from its id and DER SPKI; checks that the SPKI is of `type`. */
LURK_KEY *lurk_key_from_spki(LURK_PROV_CTX *prov, const char *key_id, Lurk__V1__KeyType type,
                             const unsigned char *spki, size_t spki_len);
const char *lurk_key_type_data_name(Lurk__V1__KeyType type);
int lurk_key_emit(LURK_PROV_CTX *prov, LURK_KEY *key, OSSL_CALLBACK *object_cb, void *object_cbarg);

/* lurk_rpc.c: each returns 1 on success, 0 with an error raised. */
int lurk_rpc_sign(LURK_PROV_CTX *prov, const char *key_id, uint16_t scheme,
                  const unsigned char *tbs, size_t tbs_len, unsigned char *sig, size_t *sig_len,
                  size_t sig_size);
int lurk_rpc_decrypt(LURK_PROV_CTX *prov, const char *key_id, const unsigned char *ct,
                     size_t ct_len, unsigned int client_version, unsigned int negotiated_version,
                     unsigned char premaster[LURK_PREMASTER_LEN]);
/* Public key of a key id. Never starts nng in the calling process, and
 * never forks it: unless this process already talks to the key server, the
 * question is asked by the lurk-pubkey helper (pubkey_helper), spawned. */
int lurk_rpc_get_public_key(LURK_PROV_CTX *prov, const char *key_id, Lurk__V1__KeyType *type,
                            unsigned char **spki, size_t *spki_len);
void lurk_rpc_teardown(LURK_PROV_CTX *prov);
/* The key server's Capabilities answer (free with
 * lurk__v1__response__free_unpacked), or NULL with an error raised that
 * names key_id, the key whose question needed it. */
Lurk__V1__Response *lurk_rpc_capabilities(LURK_PROV_CTX *prov, const char *key_id);

/* lurk_caps.c: does the key server sign `scheme` with this key, decrypt
 * with it? 1 yes, 0 no or unknown (key server unreachable). */
int lurk_caps_signs(LURK_PROV_CTX *prov, const char *key_id, uint32_t scheme);
int lurk_caps_decrypts(LURK_PROV_CTX *prov, const char *key_id);
void lurk_caps_teardown(LURK_PROV_CTX *prov);

/* Dispatch tables, one file each. */
extern const OSSL_DISPATCH lurk_rsa_keymgmt_functions[];
extern const OSSL_DISPATCH lurk_rsa_pss_keymgmt_functions[];
extern const OSSL_DISPATCH lurk_ec_keymgmt_functions[];
extern const OSSL_DISPATCH lurk_ed25519_keymgmt_functions[];
extern const OSSL_DISPATCH lurk_rsa_signature_functions[];
extern const OSSL_DISPATCH lurk_ecdsa_signature_functions[];
extern const OSSL_DISPATCH lurk_ed25519_signature_functions[];
extern const OSSL_DISPATCH lurk_rsa_asym_cipher_functions[];
extern const OSSL_DISPATCH lurk_store_functions[];
extern const OSSL_DISPATCH lurk_pem_decoder_functions[];
extern const OSSL_DISPATCH lurk_rsa_decoder_functions[];
extern const OSSL_DISPATCH lurk_rsa_pss_decoder_functions[];
extern const OSSL_DISPATCH lurk_ec_decoder_functions[];
extern const OSSL_DISPATCH lurk_ed25519_decoder_functions[];

#endif
