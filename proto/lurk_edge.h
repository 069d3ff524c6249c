/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An edge's settings: the lurk provider's section of openssl.cnf, read by
 * the provider (through the core's get_params) and by lurkctl (through
 * NCONF). One table of names and one reading of their values, so that the
 * two can never disagree on what a setting means. Pure: no nng, no I/O.
 */
#ifndef LURK_EDGE_H
#define LURK_EDGE_H

#include <stddef.h>

#define LURK_EDGE_DEFAULT_TIMEOUT_MS   2000
#define LURK_EDGE_DEFAULT_KEEPALIVE_MS 1000

/* The settings as text, NULL when absent. */
typedef struct {
    const char *servers, *tls_cert, *tls_key, *tls_ca, *server_name;
    const char *timeout_ms, *attempt_timeout_ms, *keepalive_ms;
    const char *allow_insecure, *verify_signatures, *pubkey_helper;
    const char *tls_min_version, *tls_providers;
} lurk_edge_text;

/* Every setting's name and where its text goes in lurk_edge_text. */
typedef struct {
    const char *name;
    size_t offset;
} lurk_edge_field;

/* The table, `*n` entries. */
const lurk_edge_field *lurk_edge_fields(size_t *n);

/* The slot of a field in t. */
const char **lurk_edge_slot(lurk_edge_text *t, const lurk_edge_field *f);

/* What the settings that are not file paths say, checked. */
typedef struct {
    char **servers; /* NULL when `servers` is absent; lurk_url_list_free */
    int allow_insecure;
    int verify_signatures;
    int timeout_ms;              /* per operation, every attempt included */
    int attempt_timeout_ms;      /* 0: half of timeout_ms */
    int keepalive_ms;            /* 0: never */
    const char *tls_min_version; /* "1.2" or "1.3" (the default), from the text */
} lurk_edge_values;

/*
 * Check and convert: durations in their ranges, booleans, the URL list
 * (tcp:// only with allow_insecure), the channel's lowest TLS version. 0,
 * or -1 with err naming the setting and what it takes; *v is then left
 * with nothing to free.
 */
int lurk_edge_parse(const lurk_edge_text *t, lurk_edge_values *v, char *err, size_t errlen);

/* yes, true, on, 1 / no, false, off, 0, in any case: 0 with *out set, or -1. */
int lurk_bool_parse(const char *text, int *out);

#endif
