/*
 * The key server configuration: an OpenSSL NCONF file.
 *
 *   [keyserver]
 *   listen = tls+tcp://127.0.0.1:7443 ipc:///run/lurk/ks.sock
 *   tls_cert = keyserver.crt
 *   tls_key = keyserver.key
 *   client_ca = edge-ca.pem
 *   [keys]
 *   rsa2048 = keys/rsa2048.pem
 *
 * Parsing is split from file access so that the unit tests can feed text
 * directly; nothing here opens a key or a certificate.
 */
#ifndef KS_CONFIG_H
#define KS_CONFIG_H

#include <stddef.h>

#include <openssl/bio.h>

#include "ks_policy.h"

/* Largest configuration accepted, far above any sane one. */
#define KS_CONFIG_MAX_TEXT (1024u * 1024u)
/* Upper bound for `workers`: beyond this, threads only cost memory. */
#define KS_CONFIG_MAX_WORKERS 1024u

typedef struct {
    char *id;      /* key id, lurk_key_id_valid() */
    char *uri;     /* path resolved against the config directory, or a URI */
    int is_path;   /* a file the key server checks the permissions of */
    long line;     /* in the configuration, 0 if not known */
} ks_config_key;

typedef struct ks_config {
    char *name;               /* the file as given, for messages */
    char *basedir;            /* where relative paths are resolved */

    char **listen;            /* NULL-terminated, lurk_url_list_parse() */
    size_t n_listen;
    int has_tls;              /* some listener is tls+tcp:// */
    int allow_insecure;

    /* Resolved paths, NULL when not set. */
    char *tls_cert;
    char *tls_key;
    char *client_ca;
    char *client_crl;

    unsigned int workers;     /* resolved: never 0 */
    unsigned int workers_set; /* as written: 0 means "automatic" */
    char *server_id;          /* NULL: the host name */

    ks_policy policy;

    char *keys_section;
    ks_config_key *keys;
    size_t n_keys;

    /* The configuration text itself, part of the config epoch. */
    unsigned char text_sha256[32];
} ks_config;

/*
 * Read and parse a configuration file. On failure returns -1 and puts in
 * err one line naming the file, the line when known, the setting and the
 * problem.
 */
int ks_config_load(const char *path, ks_config **out, char *err, size_t errlen);

/*
 * Parse configuration text. `name` is used in messages only; relative
 * paths are resolved against `basedir` (NULL: left relative).
 */
int ks_config_parse_text(const char *text, size_t len, const char *name,
                         const char *basedir, ks_config **out,
                         char *err, size_t errlen);

/* The same, reading the whole BIO first (at most KS_CONFIG_MAX_TEXT). */
int ks_config_parse_bio(BIO *bio, const char *name, const char *basedir,
                        ks_config **out, char *err, size_t errlen);

void ks_config_free(ks_config *cfg);

/*
 * Whether a key source is a file path (and not an OSSL_STORE URI such as
 * "handle:0x81000001" or "pkcs11:..."): no "scheme:" prefix, or it starts
 * with '/' or '.'. "file:" URIs count as paths too.
 */
int ks_config_source_is_path(const char *source);

#endif
