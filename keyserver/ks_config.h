/* SPDX-License-Identifier: Apache-2.0 */
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
 * Edge groups (docs/keyserver.md): instead of listen/client_ca in
 * [keyserver], one section per group of edges, each with its own
 * listeners, CA, optional CRL, granted keys and rate limit:
 *
 *   [edge.cdn1]
 *   listen = tls+tcp://0.0.0.0:7443
 *   client_ca = cdn1-ca.pem
 *   client_crl = cdn1.crl
 *   keys = www api
 *   rate = 500
 *   burst = 1000
 *
 * A group may name its edges (per-edge identity, ks_ident.h), and then
 * share its listeners with other groups of the same CA and CRL: each
 * connection goes to the first group on its listener that names its
 * certificate, else to the one group there that names no edges:
 *
 *   [edge.edge1]
 *   listen = tls+tcp://0.0.0.0:7443
 *   client_ca = cdn1-ca.pem
 *   edges = dns:edge1.cdn.example spki:<64 hex digits>
 *   keys = www
 *
 * Without [edge.*] sections the [keyserver] listeners form one implicit
 * group, "default", granted every key.
 *
 * Parsing is split from file access so that the unit tests can feed text
 * directly; nothing here opens a key or a certificate.
 */
#ifndef KS_CONFIG_H
#define KS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/bio.h>

#include "ks_authz.h"
#include "ks_ident.h"
#include "ks_policy.h"

/* Largest configuration accepted, far above any sane one. */
#define KS_CONFIG_MAX_TEXT (1024u * 1024u)
/* Upper bound for `workers`: beyond this, threads only cost memory. */
#define KS_CONFIG_MAX_WORKERS 1024u
/* Name of the implicit group of the single-[keyserver] form. */
#define KS_CONFIG_DEFAULT_GROUP "default"
/* Defaults of the operational settings (docs/keyserver.md). */
#define KS_CONFIG_DEFAULT_REPLAY_WINDOW   60u      /* seconds */
#define KS_CONFIG_DEFAULT_REPLAY_CACHE    2097152u /* entries: >= peak signatures/s x window */
#define KS_CONFIG_DEFAULT_MAX_CONNECTIONS 1024u
#define KS_CONFIG_DEFAULT_DRAIN_TIMEOUT   10u /* seconds */
#define KS_CONFIG_MIN_MESSAGE             1024u
#define KS_CONFIG_MAX_INFLIGHT            65536u

typedef struct {
    char *id;      /* key id, lurk_key_id_valid() */
    char *uri;     /* path resolved against the config directory, or a URI */
    int is_path;   /* a file the key server checks the permissions of */
    long line;     /* in the configuration, 0 if not known */
    uint32_t rate; /* requests per second for this key, 0: unlimited */
    uint32_t burst;
} ks_config_key;

/* One group of edges: its listeners (and so its CA) and what it may use. */
typedef struct {
    char *name;    /* "cdn1" for [edge.cdn1]; "default" when implicit */
    int implicit;  /* the single-[keyserver] form */
    char **listen; /* NULL-terminated */
    size_t n_listen;
    int has_tls;
    char *client_ca;  /* resolved path; NULL without tls+tcp:// */
    char *client_crl; /* optional */
    ks_authz_grant grant;
    uint32_t rate; /* Sign+Decrypt per second for the whole group, 0: unlimited */
    uint32_t burst;
    long line;
    /* Its members (`edges`); empty: any certificate verified on its listeners. */
    ks_ident_members edges;
    long edges_line;
    /* Requests in flight for the whole group, all its connections; 0: no group limit. */
    unsigned int max_inflight;
} ks_config_group;

typedef struct ks_config {
    char *name;    /* the file as given, for messages */
    char *basedir; /* where relative paths are resolved */

    char **listen; /* NULL-terminated, lurk_url_list_parse() */
    size_t n_listen;
    int has_tls; /* some listener is tls+tcp:// */
    int allow_insecure;

    /* Resolved paths, NULL when not set. */
    char *tls_cert;
    char *tls_key;
    char *client_ca;
    char *client_crl;
    char *tls_min_version; /* "1.2" or "1.3"; NULL: 1.3 */

    unsigned int workers;     /* resolved: never 0 */
    unsigned int workers_set; /* as written: 0 means "automatic" */
    char *server_id;          /* NULL: the host name */

    ks_policy policy;

    char *keys_section;
    ks_config_key *keys;
    size_t n_keys;

    /* The configuration text itself, part of the config epoch. */
    unsigned char text_sha256[32];

    /* Edge groups: at least one; listen[] above is the union of theirs. */
    ks_config_group *groups;
    size_t n_groups;

    /* Operations (docs/keyserver.md). */
    char *audit_log;      /* resolved path; NULL: standard error */
    char *metrics_listen; /* http://host:port; NULL: no metrics */
    uint32_t key_rate;    /* default per-key limit, 0: unlimited */
    uint32_t key_burst;
    unsigned int replay_window; /* seconds, 0: off */
    size_t replay_cache;        /* entries */
    size_t max_message;         /* bytes of one request */
    unsigned int max_inflight;  /* received and not answered, all edges */
    unsigned int max_inflight_per_conn;
    unsigned int max_connections; /* all groups together */
    unsigned int drain_timeout;   /* seconds SIGTERM waits for in-flight requests */
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
int ks_config_parse_text(const char *text, size_t len, const char *name, const char *basedir,
                         ks_config **out, char *err, size_t errlen);

/* The same, reading the whole BIO first (at most KS_CONFIG_MAX_TEXT). */
int ks_config_parse_bio(BIO *bio, const char *name, const char *basedir, ks_config **out, char *err,
                        size_t errlen);

void ks_config_free(ks_config *cfg);

/*
 * Whether a key source is a file path (and not an OSSL_STORE URI such as
 * "handle:0x81000001" or "pkcs11:..."): no "scheme:" prefix, or it starts
 * with '/' or '.'. "file:" URIs count as paths too.
 */
int ks_config_source_is_path(const char *source);

/*
 * The first group a listener URL belongs to, NULL if none. Several groups
 * may share a tls+tcp:// URL (ks_config_groups_of_url).
 */
const ks_config_group *ks_config_group_of_url(const ks_config *cfg, const char *url);

/*
 * Every group of a listener URL, in configuration order: up to `max`
 * pointers in out; returns how many groups have it (0: none).
 */
size_t ks_config_groups_of_url(const ks_config *cfg, const char *url, const ks_config_group **out,
                               size_t max);

#endif
