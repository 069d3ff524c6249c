/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The channel's TLS on OpenSSL 3: an nng TLS engine (lurk_tls.c) that
 * replaces nng's built-in mbed TLS, and the credentials it uses.
 *
 * Two steps, kept apart because of fork():
 *  - lurk_tls_cred_load() reads and parses the certificate, key (a file or
 *    any OSSL_STORE URI), CA and CRL. It uses OpenSSL only, never nng, so a
 *    provider may call it at activation in an nginx or HAProxy master, as
 *    root and before a chroot, and keep the result in memory.
 *  - lurk_tls_config_make() makes an nng TLS config from a credential. It
 *    registers the engine with nng first, so it runs where nng may run:
 *    after the fork.
 *
 * A connection's verified peer (subject, DNS names, SPKI) is read with
 * lurk_tls_peer_of_pipe(), from the nng thread that handles the pipe.
 */
#ifndef LURK_TLS_H
#define LURK_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

typedef struct {
    const char *cert;        /* own certificate chain (PEM file) */
    const char *key;         /* own private key: PEM file, or an OSSL_STORE URI */
    const char *ca;          /* CA the peer must chain to (PEM file) */
    const char *crl;         /* optional CRL (PEM file) */
    const char *server_name; /* client only: name expected in the server cert */
    const char *min_version; /* "1.2" or "1.3"; NULL: "1.3" */
} lurk_tls_files;

typedef struct lurk_tls_cred lurk_tls_cred;

/*
 * Read everything `files` names, now. A client may have no certificate
 * (only to test and diagnose the key server's refusal of such an edge).
 * No nng call. Key bytes read from a file are wiped once parsed.
 */
int lurk_tls_cred_load(const lurk_tls_files *files, lurk_tls_cred **out, char *err, size_t errlen);
/*
 * The same, with the key looked up in a private library context where the
 * OpenSSL providers `providers` are loaded (names separated by spaces or
 * commas, "tpm2 default" for a key in a TPM; NULL or "": "default"), so
 * that `files->key` may be any URI or file those providers decode.
 */
int lurk_tls_cred_load_ex(const lurk_tls_files *files, const char *providers, lurk_tls_cred **out,
                          char *err, size_t errlen);
void lurk_tls_cred_free(lurk_tls_cred *cred);
/* "TLSv1.3" or "TLSv1.2": the lowest version the credential allows. */
const char *lurk_tls_cred_min_version(const lurk_tls_cred *cred);

/*
 * An nng TLS config requiring a verified peer certificate, on the OpenSSL
 * engine. Registers the engine on first use (nng must be running: call it
 * after opening a socket). The config holds a reference to `cred`.
 */
int lurk_tls_config_make(int server, const lurk_tls_cred *cred, nng_tls_config **out, char *err,
                         size_t errlen);

/* Both steps at once, for tools that run no fork-sensitive code. */
int lurk_tls_config_from_files(int server, const lurk_tls_files *files, nng_tls_config **out,
                               char *err, size_t errlen);

/* Register the engine now (idempotent). 0, or -1 with a reason in err. */
int lurk_tls_engine_use(char *err, size_t errlen);
/*
 * Where the engine explains a failed handshake (the peer's certificate,
 * its version); warn is 1 for those. Set once, before any connection.
 */
void lurk_tls_set_logger(void (*fn)(int warn, const char *msg));
/*
 * Since the process started: plaintext pieces nng handed to the engine, and
 * writes of records into nng's send buffer (one per record unless the
 * buffer was full). For benchmarks: records per request.
 */
void lurk_tls_counters(unsigned long *sends, unsigned long *records);

/* The engine's description ("OpenSSL 3.0.x ..."), for logs. */
const char *lurk_tls_engine_description(void);

#define LURK_TLS_MAX_DNS 8

/* What the TLS layer verified about a connection's peer. */
typedef struct {
    int verified;                    /* chain and (server) name verified */
    char subject[256];               /* RFC 2253, one line; "" if none */
    char dns[LURK_TLS_MAX_DNS][128]; /* the first DNS subjectAltNames */
    size_t n_dns;
    unsigned char spki_sha256[32]; /* of the DER SubjectPublicKeyInfo */
    int has_spki;
    char version[16]; /* "TLSv1.3" */
    char cipher[64];  /* "TLS_AES_128_GCM_SHA256" */
    int resumed;      /* the session was resumed */
} lurk_tls_peer;

/*
 * The peer of an nng pipe on a tls+tcp:// listener or dialer of ours.
 * 0 and *out filled in; -1 for a pipe without TLS or not on our engine.
 */
int lurk_tls_peer_of_pipe(nng_pipe pipe, lurk_tls_peer *out);

/* The SPKI pin text, 64 lowercase hex digits plus NUL. */
void lurk_tls_spki_hex(const lurk_tls_peer *peer, char out[65]);

#endif
