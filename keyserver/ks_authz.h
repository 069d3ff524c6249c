/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authorization: which keys an edge group may use.
 *
 * A connection belongs to one edge group: its listener's, or on a
 * listener several groups share, the one that names its certificate
 * (ks_ident.h). A grant is the set of key ids of one group. Pure: no I/O,
 * no global state.
 */
#ifndef KS_AUTHZ_H
#define KS_AUTHZ_H

#include <stddef.h>

typedef struct {
    int all;    /* every key of the key server */
    char **ids; /* sorted, unique; NULL when all */
    size_t n;
} ks_authz_grant;

/*
 * Parse "id1 id2, id3" (spaces or commas) or "*" into a grant. Fails
 * (-1, `bad` saying why; empty for out of memory) on an empty list, an
 * invalid key id, or a duplicate. On success the caller owns the grant
 * (ks_authz_grant_clear).
 */
int ks_authz_grant_parse(const char *text, ks_authz_grant *out, char *bad, size_t badlen);

/* A grant of every key. */
void ks_authz_grant_all(ks_authz_grant *out);

/* Whether the grant permits the key id (any string; NULL is never permitted). */
int ks_authz_permits(const ks_authz_grant *g, const char *key_id);

void ks_authz_grant_clear(ks_authz_grant *g);

#endif
