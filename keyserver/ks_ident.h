/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-edge identity: which edge group a verified TLS peer belongs to, read
 * from its certificate's DNS names or its public key (docs/keyserver.md,
 * EDGE GROUPS). Pure: the caller reads the certificate (the channel engine,
 * lurk_tls_peer_of_pipe) and passes what it found; no I/O, no lock, no
 * global state.
 *
 * A group names its members in its `edges` setting, separated by spaces
 * or commas:
 *
 *   dns:edge1.cdn.example   a DNS subjectAltName of the certificate,
 *                           exact, ASCII case-insensitive
 *   dns:*.pop.cdn.example   any DNS subjectAltName of exactly one more
 *                           label (a.pop.cdn.example, not pop.cdn.example
 *                           nor b.a.pop.cdn.example)
 *   spki:<64 hex digits>    the SHA-256 of the certificate's
 *                           SubjectPublicKeyInfo (the pin `openssl x509
 *                           -pubkey | openssl pkey -pubin -outform DER |
 *                           openssl dgst -sha256` prints)
 *
 * The subject's CN is never matched: a certificate says who it is in its
 * subjectAltNames (RFC 6125), and a CN is not constrained the same way.
 */
#ifndef KS_IDENT_H
#define KS_IDENT_H

#include <stddef.h>

/* DNS names of a peer looked at (the channel engine passes at most as many). */
#define KS_IDENT_MAX_DNS 8
/* A DNS name, as RFC 1035 bounds it. */
#define KS_IDENT_DNS_MAX 253
/* A label for logs (ks_ident_label), with its NUL. */
#define KS_IDENT_LABEL 96
/* Hex digits of the SPKI hash a label carries: 64 bits tell edges apart. */
#define KS_IDENT_LABEL_SPKI 16

typedef enum {
    KS_IDENT_DNS = 0,      /* one name */
    KS_IDENT_DNS_WILDCARD, /* "*." then a name of two labels or more */
    KS_IDENT_SPKI          /* a public key */
} ks_ident_kind;

typedef struct {
    ks_ident_kind kind;
    char *dns; /* lowercase; for a wildcard, what follows "*." */
    unsigned char spki[32];
} ks_ident_member;

/* A group's members; n == 0: the group takes any verified certificate. */
typedef struct {
    ks_ident_member *v;
    size_t n;
} ks_ident_members;

/* What the TLS layer verified about a peer, as the matcher needs it. */
typedef struct {
    const char *dns[KS_IDENT_MAX_DNS]; /* its DNS subjectAltNames, untrusted bytes */
    size_t n_dns;
    const unsigned char *spki; /* SHA-256 of its SubjectPublicKeyInfo; NULL: unknown */
} ks_ident_peer;

/*
 * Parse an `edges` value. Fails (-1, `bad` saying why; empty for out of
 * memory) on an empty list, a member that is not dns:NAME or spki:HEX, a
 * malformed name or pin, or a member listed twice. On success the caller
 * owns the list (ks_ident_members_clear).
 */
int ks_ident_members_parse(const char *text, ks_ident_members *out, char *bad, size_t badlen);

/* A copy of `in` into *out; -1 when out of memory (then *out is empty). */
int ks_ident_members_copy(const ks_ident_members *in, ks_ident_members *out);

void ks_ident_members_clear(ks_ident_members *m);

/* A member as written canonically: "dns:a.example", "dns:*.b.example", "spki:<64 hex>". */
void ks_ident_member_text(const ks_ident_member *m, char *out, size_t len);

/*
 * Whether two lists name the same member (the same canonical text): 1 and
 * its text in `out`, or 0.
 */
int ks_ident_members_common(const ks_ident_members *a, const ks_ident_members *b, char *out,
                            size_t len);

/* Whether the peer is this member (1) or not (0). */
int ks_ident_member_matches(const ks_ident_member *m, const ks_ident_peer *peer);

/*
 * Which of a listener's groups takes the peer: `groups[i]` is the members
 * list of group i, in configuration order. The first group that names a
 * member matching the peer; else the first group that names no member (it
 * takes any verified certificate); else -1: no group takes it.
 */
long ks_ident_pick(const ks_ident_members *groups, size_t n, const ks_ident_peer *peer);

/*
 * The subject's common name: the last CN= of the one-line form
 * ("/O=CDN/CN=edge1"), the first of RFC 2253's ("CN=edge1,O=CDN"); "" when
 * there is none.
 */
void ks_ident_subject_cn(const char *subject, char *out, size_t len);

/*
 * A short name for logs and the audit log: the first DNS name, else the
 * subject's CN, else "-", then "/spki:" and the first KS_IDENT_LABEL_SPKI
 * hex digits of the SPKI hash when it is known:
 * "edge1.cdn.example/spki:1a2b3c4d5e6f7a8b". A byte that is not printable
 * ASCII, or is a space, '"' or '\', is written '?': certificate names are
 * the peer's bytes, and a log line must stay one line.
 */
void ks_ident_label(const ks_ident_peer *peer, const char *subject, char *out, size_t len);

/*
 * Everything the matcher saw, for the log line of a refused peer:
 * subject "/CN=x", dns a.example b.example, spki sha256 <64 hex>
 * (with the same replacement of unsafe bytes).
 */
void ks_ident_describe(const ks_ident_peer *peer, const char *subject, char *out, size_t len);

#endif
