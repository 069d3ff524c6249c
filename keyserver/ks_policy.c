/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS handshake context check. Every byte of a to-be-signed request is
 * accounted for by one of the forms libssl produces for a server; whatever
 * is left over, missing or out of range is refused, because a signature
 * over anything else would make the key server a signing oracle.
 *
 * The forms are disjoint: a TLS 1.3 context has 'T' (0x54) at offset 64,
 * which is neither the named_curve byte of ECDHE nor the high byte of an
 * accepted DH prime length, so one input never reads as two kinds.
 */
#include "ks_policy.h"

#include <string.h>

#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#define KS_RANDOMS_LEN      64u /* client_random || server_random */
#define KS_TLS13_PAD_LEN    64u
#define KS_CURVE_TYPE_NAMED 3u
#define KS_FFDHE_MAX_P_LEN  1024u /* 8192 bits */

static const char ks_tls13_server_ctx[] = "TLS 1.3, server CertificateVerify";
static const char ks_tls13_client_ctx[] = "TLS 1.3, client CertificateVerify";
/* Both strings have this length; sizeof counts the NUL that TLS also sends. */
#define KS_TLS13_CTX_LEN (sizeof(ks_tls13_server_ctx) - 1u)

typedef enum {
    KS_SHARE_NIST, /* X9.62 uncompressed point, checked on the curve */
    KS_SHARE_MONT  /* RFC 7748 u-coordinate */
} ks_share_form;

typedef struct {
    uint16_t code;
    const char *name;
    int nid;
    size_t share_len;
    ks_share_form form;
    const char *not_allowed; /* reason when the policy leaves it out */
} ks_group;

/* The index of an entry is its bit in ks_policy.groups: never reorder. */
static const ks_group ks_groups[] = {
    { KS_GROUP_SECP256R1, "secp256r1", NID_X9_62_prime256v1, 65, KS_SHARE_NIST,
      "TLS 1.2 ECDHE: group secp256r1 (0x0017) not allowed by policy" },
    { KS_GROUP_SECP384R1, "secp384r1", NID_secp384r1, 97, KS_SHARE_NIST,
      "TLS 1.2 ECDHE: group secp384r1 (0x0018) not allowed by policy" },
    { KS_GROUP_SECP521R1, "secp521r1", NID_secp521r1, 133, KS_SHARE_NIST,
      "TLS 1.2 ECDHE: group secp521r1 (0x0019) not allowed by policy" },
    { KS_GROUP_X25519, "x25519", NID_X25519, 32, KS_SHARE_MONT,
      "TLS 1.2 ECDHE: group x25519 (0x001d) not allowed by policy" },
    { KS_GROUP_X448, "x448", NID_X448, 56, KS_SHARE_MONT,
      "TLS 1.2 ECDHE: group x448 (0x001e) not allowed by policy" },
};
#define KS_N_GROUPS (sizeof(ks_groups) / sizeof(ks_groups[0]))

/*
 * The same NIST curve goes by several names in OpenSSL and in key files;
 * the TLS 1.3 curve binding must not fail on a spelling.
 */
static const char *const ks_curve_aliases[][3] = {
    { "prime256v1", "secp256r1", "P-256" },
    { "secp384r1", "P-384", NULL },
    { "secp521r1", "P-521", NULL },
};

static ks_verdict ks_verdict_make(Lurk__V1__Status status, ks_ctx_kind kind, const char *reason)
{
    ks_verdict v = { status, kind, reason };
    return v;
}

static ks_verdict ks_not_ctx(const char *reason)
{
    return ks_verdict_make(LURK__V1__STATUS__STATUS_NOT_TLS_CONTEXT, KS_CTX_NONE, reason);
}

static ks_verdict ks_bad_scheme(const char *reason)
{
    return ks_verdict_make(LURK__V1__STATUS__STATUS_UNSUPPORTED_SCHEME, KS_CTX_NONE, reason);
}

static ks_verdict ks_ok(ks_ctx_kind kind)
{
    return ks_verdict_make(LURK__V1__STATUS__STATUS_OK, kind, ks_ctx_kind_name(kind));
}

static uint16_t ks_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static int ks_all_bytes(const uint8_t *p, size_t n, uint8_t b)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != b)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Policy                                                             */
/* ------------------------------------------------------------------ */

ks_policy ks_policy_default(void)
{
    ks_policy pol;

    memset(&pol, 0, sizeof(pol));
    pol.allow_tls13 = 1;
    pol.allow_tls12 = 1;
    pol.allow_ffdhe = 1;
    pol.allow_decrypt = 1;
    for (size_t i = 0; i < KS_N_GROUPS; i++)
        pol.groups |= 1u << i;
    pol.min_ffdhe_bits = 2048;
    return pol;
}

static const ks_group *ks_group_find(uint16_t code, size_t *index)
{
    for (size_t i = 0; i < KS_N_GROUPS; i++) {
        if (ks_groups[i].code == code) {
            *index = i;
            return &ks_groups[i];
        }
    }
    return NULL;
}

uint32_t ks_policy_group_bit(uint16_t named_group)
{
    size_t i;

    return ks_group_find(named_group, &i) != NULL ? 1u << i : 0;
}

const char *ks_ctx_kind_name(ks_ctx_kind kind)
{
    switch (kind) {
    case KS_CTX_TLS13_SERVER_CV: return "TLS 1.3 server CertificateVerify";
    case KS_CTX_TLS12_SKE_ECDHE: return "TLS 1.2 ServerKeyExchange (ECDHE)";
    case KS_CTX_TLS12_SKE_FFDHE: return "TLS 1.2 ServerKeyExchange (DHE)";
    case KS_CTX_NONE: break;
    }
    return "none";
}

/* ------------------------------------------------------------------ */
/* Scheme against key                                                 */
/* ------------------------------------------------------------------ */

static int ks_md_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* RFC 4055 3.1: a restricted key signs with its one hash and MGF1 hash,
 * and TLS fixes the salt to the hash length, which must meet the minimum. */
static ks_verdict ks_pss_restrictions(const ks_pss_desc *pss, const lurk_scheme *scheme)
{
    if (!pss->restricted)
        return ks_verdict_make(LURK__V1__STATUS__STATUS_OK, KS_CTX_NONE, "scheme fits the key");
    if (!ks_md_eq(scheme->md, pss->md))
        return ks_bad_scheme("the RSA-PSS key's parameters restrict it to another hash");
    if (!ks_md_eq(scheme->md, pss->mgf1_md))
        return ks_bad_scheme("the RSA-PSS key's parameters restrict it to another MGF1 hash");
    if (scheme->md_len < pss->min_saltlen)
        return ks_bad_scheme("the RSA-PSS key's minimum salt length exceeds the hash length "
                             "TLS uses as salt");
    return ks_verdict_make(LURK__V1__STATUS__STATUS_OK, KS_CTX_NONE, "scheme fits the key");
}

ks_verdict ks_policy_check_scheme(const ks_policy *pol, const ks_key_desc *key,
                                  const lurk_scheme *scheme)
{
    if (pol == NULL || key == NULL)
        return ks_verdict_make(LURK__V1__STATUS__STATUS_INTERNAL, KS_CTX_NONE,
                               "policy check without a policy or key description");
    if (scheme == NULL)
        return ks_bad_scheme("unknown signature scheme");
    /* The scheme table ties Ed25519 keys to 0x0807 alone, so this also
     * keeps an EdDSA key from ever producing a pre-hashed signature; it
     * also keeps rsaEncryption keys to rsa_pss_rsae_* and PKCS#1, and
     * RSA-PSS keys to rsa_pss_pss_*, as RFC 8446 4.2.3 pairs them. */
    if (scheme->key_type != key->type)
        return ks_bad_scheme("signature scheme does not fit the key type");
    if (scheme->legacy && !pol->allow_legacy_hashes)
        return ks_bad_scheme("SHA-1 and SHA-224 signatures are off (legacy_hashes = no)");
    if (key->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS)
        return ks_pss_restrictions(&key->pss, scheme);
    return ks_verdict_make(LURK__V1__STATUS__STATUS_OK, KS_CTX_NONE, "scheme fits the key");
}

static int ks_ascii_ieq(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++) {
        char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        char cb = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
        if (ca != cb)
            return 0;
    }
    return *a == *b;
}

static int ks_curve_alias_row(const char *name)
{
    for (size_t r = 0; r < sizeof(ks_curve_aliases) / sizeof(ks_curve_aliases[0]); r++)
        for (size_t c = 0; c < 3 && ks_curve_aliases[r][c] != NULL; c++)
            if (ks_ascii_ieq(name, ks_curve_aliases[r][c]))
                return (int)r;
    return -1;
}

static int ks_same_curve(const char *a, const char *b)
{
    int ra, rb;

    if (a == NULL || b == NULL)
        return 0;
    ra = ks_curve_alias_row(a);
    rb = ks_curve_alias_row(b);
    return ra >= 0 ? ra == rb : ks_ascii_ieq(a, b);
}

/* ------------------------------------------------------------------ */
/* TLS 1.3 CertificateVerify                                          */
/* ------------------------------------------------------------------ */

/* The transcript hash follows the cipher suite: SHA-256 or SHA-384. No
 * TLS 1.3 suite hashes with SHA-512, so libssl never asks for 64 bytes. */
static int ks_tls13_hash_len_ok(size_t n)
{
    return n == 32 || n == 48;
}

/* Only called once the 64-space prefix is there: an ordinary TLS 1.2
 * ServerKeyExchange cannot start with it, since both randoms would have to
 * be 32 spaces. */
static ks_verdict ks_tls13_parse(const uint8_t *tbs, size_t len)
{
    const uint8_t *ctx = tbs + KS_TLS13_PAD_LEN;
    size_t rest = len - KS_TLS13_PAD_LEN;

    if (rest < KS_TLS13_CTX_LEN + 1u) {
        if (memcmp(ctx, ks_tls13_server_ctx, rest) == 0)
            return ks_not_ctx("TLS 1.3 context: truncated context string");
        return ks_not_ctx("TLS 1.3 context: wrong context string");
    }
    if (memcmp(ctx, ks_tls13_client_ctx, KS_TLS13_CTX_LEN) == 0)
        return ks_not_ctx("TLS 1.3 context: client CertificateVerify; the key "
                          "server signs only as a TLS server");
    if (memcmp(ctx, ks_tls13_server_ctx, KS_TLS13_CTX_LEN) != 0)
        return ks_not_ctx("TLS 1.3 context: wrong context string");
    if (ctx[KS_TLS13_CTX_LEN] != 0x00)
        return ks_not_ctx("TLS 1.3 context: separator after the context string is not 0x00");
    rest -= KS_TLS13_CTX_LEN + 1u;
    if (!ks_tls13_hash_len_ok(rest)) {
        if (rest == 0)
            return ks_not_ctx("TLS 1.3 context: no transcript hash");
        if (rest == 64)
            return ks_not_ctx("TLS 1.3 context: a 64-byte transcript hash, which no TLS 1.3 "
                              "cipher suite produces (SHA-256 or SHA-384 only)");
        return ks_not_ctx("TLS 1.3 context: hash length is not 32 or 48");
    }
    return ks_ok(KS_CTX_TLS13_SERVER_CV);
}

/* RFC 8446 4.4.3 binds scheme and key tighter than TLS 1.2 does. */
static ks_verdict ks_tls13_scheme(const ks_key_desc *key, const lurk_scheme *scheme)
{
    if (scheme->padding == LURK_PAD_PKCS1)
        return ks_bad_scheme("TLS 1.3 forbids RSA PKCS#1 v1.5 in CertificateVerify");
    if (scheme->legacy)
        return ks_bad_scheme("TLS 1.3 forbids SHA-1 and SHA-224 in CertificateVerify");
    if (scheme->tls13_group != NULL && !ks_same_curve(scheme->tls13_group, key->group))
        return ks_bad_scheme("TLS 1.3: the ECDSA scheme names another curve than the key's");
    return ks_ok(KS_CTX_TLS13_SERVER_CV);
}

/* ------------------------------------------------------------------ */
/* TLS 1.2 ServerKeyExchange, ECDHE                                   */
/* ------------------------------------------------------------------ */

static int ks_nist_point_on_curve(int nid, const uint8_t *pt, size_t len)
{
    EC_GROUP *group = EC_GROUP_new_by_curve_name(nid);
    EC_POINT *point = NULL;
    int ok = 0;

    if (group == NULL)
        return 0;
    point = EC_POINT_new(group);
    /* oct2point rejects coordinates >= p; is_on_curve is kept for clarity
     * of intent rather than trusting an implementation detail. All three
     * NIST curves have cofactor 1, so on the curve means in the group. */
    if (point != NULL && EC_POINT_oct2point(group, point, pt, len, NULL) == 1
        && EC_POINT_is_at_infinity(group, point) == 0
        && EC_POINT_is_on_curve(group, point, NULL) == 1)
        ok = 1;
    EC_POINT_free(point);
    EC_GROUP_free(group);
    return ok;
}

static ks_verdict ks_ecdhe_share(const ks_group *g, const uint8_t *pt, size_t len)
{
    if (g->form == KS_SHARE_MONT) {
        if (ks_all_bytes(pt, len, 0x00))
            return ks_not_ctx("TLS 1.2 ECDHE: all-zero X25519/X448 share");
        return ks_ok(KS_CTX_TLS12_SKE_ECDHE);
    }
    /* RFC 8422 5.1.2: TLS 1.2 peers send uncompressed points only, and a
     * hybrid (0x06/0x07) encoding would otherwise decode fine. */
    if (pt[0] != 0x04)
        return ks_not_ctx("TLS 1.2 ECDHE: point is not in uncompressed form");
    if (!ks_nist_point_on_curve(g->nid, pt, len))
        return ks_not_ctx("TLS 1.2 ECDHE: point not on curve");
    return ks_ok(KS_CTX_TLS12_SKE_ECDHE);
}

/* params = 03 | NamedGroup(2) | len(1) | point, and nothing after it. */
static ks_verdict ks_ecdhe_parse(const ks_policy *pol, const uint8_t *params, size_t len)
{
    const ks_group *g;
    size_t idx, plen;

    if (len < 4)
        return ks_not_ctx("TLS 1.2 ECDHE: truncated parameters");
    if (params[0] != KS_CURVE_TYPE_NAMED)
        return ks_not_ctx("TLS 1.2 ECDHE: curve type is not named_curve (3)");
    g = ks_group_find(ks_be16(params + 1), &idx);
    if (g == NULL)
        return ks_not_ctx("TLS 1.2 ECDHE: unknown group");
    if ((pol->groups & (1u << idx)) == 0)
        return ks_not_ctx(g->not_allowed);
    plen = params[3];
    if (plen != g->share_len)
        return ks_not_ctx("TLS 1.2 ECDHE: point length does not fit the group");
    if (len - 4 < plen)
        return ks_not_ctx("TLS 1.2 ECDHE: truncated point");
    if (len - 4 > plen)
        return ks_not_ctx("TLS 1.2 ECDHE: trailing bytes after the point");
    return ks_ecdhe_share(g, params + 4, plen);
}

/* ------------------------------------------------------------------ */
/* TLS 1.2 ServerKeyExchange, finite-field DHE                        */
/* ------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t len;
} ks_span;

/* Reads one opaque<1..2^16-1>; 0 if it does not fit in what is left. */
static int ks_take_vec16(const uint8_t **cur, size_t *left, ks_span *out)
{
    size_t n;

    if (*left < 2)
        return 0;
    n = ks_be16(*cur);
    if (*left - 2 < n)
        return 0;
    out->p = *cur + 2;
    out->len = n;
    *cur += 2 + n;
    *left -= 2 + n;
    return 1;
}

/* RFC 7919 sizes; anything in between is not what a sane server sends. */
static int ks_ffdhe_p_len_ok(const ks_policy *pol, size_t n)
{
    static const size_t sizes[] = { 256, 384, 512, 768, KS_FFDHE_MAX_P_LEN };

    if (n * 8u < pol->min_ffdhe_bits)
        return 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        if (n == sizes[i])
            return 1;
    return 0;
}

/*
 * 2 <= x <= p - 2, i.e. neither 0, 1 nor p - 1, the values that put a
 * share or generator in a subgroup of order at most 2 (RFC 7919 5.1).
 * x may carry leading zeros: OpenSSL pads Ys to the length of p. p is odd,
 * so p - 1 is p with its last byte decremented, without a borrow.
 */
static int ks_dh_value_ok(const ks_span *x, const ks_span *p)
{
    const uint8_t *v = x->p;
    size_t n = x->len;

    while (n > 0 && *v == 0) {
        v++;
        n--;
    }
    if (n == 0 || (n == 1 && v[0] == 1))
        return 0;
    if (n < p->len)
        return 1;
    if (n > p->len)
        return 0;
    int c = memcmp(v, p->p, n - 1);
    if (c != 0)
        return c < 0;
    return v[n - 1] < p->p[n - 1] - 1;
}

static ks_verdict ks_ffdhe_parse(const ks_policy *pol, const uint8_t *params, size_t len)
{
    const uint8_t *cur = params;
    size_t left = len;
    ks_span p, g, ys;

    if (len < 2 || !ks_ffdhe_p_len_ok(pol, ks_be16(params)))
        return ks_not_ctx("TLS 1.2 DHE: prime size not accepted");
    if (!ks_take_vec16(&cur, &left, &p))
        return ks_not_ctx("TLS 1.2 DHE: truncated p");
    if ((p.p[0] & 0x80) == 0)
        return ks_not_ctx("TLS 1.2 DHE: p has its top bit clear, so not the size its length says");
    if ((p.p[p.len - 1] & 1) == 0)
        return ks_not_ctx("TLS 1.2 DHE: p is even");
    if (!ks_take_vec16(&cur, &left, &g))
        return ks_not_ctx("TLS 1.2 DHE: truncated g");
    if (g.len == 0 || g.len > p.len)
        return ks_not_ctx("TLS 1.2 DHE: g length out of range");
    if (!ks_dh_value_ok(&g, &p))
        return ks_not_ctx("TLS 1.2 DHE: g is 0, 1 or not below p - 1");
    if (!ks_take_vec16(&cur, &left, &ys))
        return ks_not_ctx("TLS 1.2 DHE: truncated Ys");
    /* libssl left-pads Ys to the length of p (for old Microsoft stacks),
     * so any other length is not a ServerKeyExchange it wrote. */
    if (ys.len != p.len)
        return ks_not_ctx("TLS 1.2 DHE: Ys is not exactly as long as p (libssl pads it "
                          "to the length of p)");
    if (!ks_dh_value_ok(&ys, &p))
        return ks_not_ctx("TLS 1.2 DHE: Ys is 0, 1 or not below p - 1");
    if (left != 0)
        return ks_not_ctx("TLS 1.2 DHE: trailing bytes after Ys");
    return ks_ok(KS_CTX_TLS12_SKE_FFDHE);
}

/* ------------------------------------------------------------------ */
/* TLS 1.2 dispatch                                                   */
/* ------------------------------------------------------------------ */

/* DHE_RSA is the only DHE key exchange with a signed ServerKeyExchange
 * that libssl offers: there are no DHE-ECDSA or DHE-EdDSA cipher suites. */
static int ks_dhe_key_ok(const ks_key_desc *key)
{
    return key->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA
        || key->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS;
}

/*
 * A 6144-bit DH prime length (0x0300) also starts with 0x03, so a failed
 * ECDHE parse still gets its chance as DHE; the ECDHE reason is kept
 * because it is the likelier intent. Likewise 0x01/0x02 open both the
 * explicit curve types and 2048/4096-bit primes.
 */
static ks_verdict ks_tls12_parse(const ks_policy *pol, const ks_key_desc *key, const uint8_t *tbs,
                                 size_t len)
{
    const uint8_t *params = tbs + KS_RANDOMS_LEN;
    size_t plen = len - KS_RANDOMS_LEN;
    ks_verdict ec = { LURK__V1__STATUS__STATUS_NOT_TLS_CONTEXT, KS_CTX_NONE, NULL };
    ks_verdict dh;

    if (params[0] == KS_CURVE_TYPE_NAMED) {
        ec = ks_ecdhe_parse(pol, params, plen);
        if (ec.status == LURK__V1__STATUS__STATUS_OK)
            return ec;
    }
    if (ks_ffdhe_p_len_ok(pol, ks_be16(params))) {
        if (!pol->allow_ffdhe)
            return ec.reason != NULL ? ec : ks_not_ctx("TLS 1.2 DHE: DHE not allowed by policy");
        dh = ks_ffdhe_parse(pol, params, plen);
        if (dh.status == LURK__V1__STATUS__STATUS_OK && !ks_dhe_key_ok(key))
            return ks_not_ctx("TLS 1.2 DHE: parameters are signed only with an RSA key "
                              "(no DHE cipher suite uses an EC or EdDSA key)");
        return dh.status == LURK__V1__STATUS__STATUS_OK || ec.reason == NULL ? dh : ec;
    }
    if (ec.reason != NULL)
        return ec;
    if (params[0] == 1 || params[0] == 2)
        return ks_not_ctx("TLS 1.2 ECDHE: curve type is not named_curve (3)");
    return ks_not_ctx("TLS 1.2: parameters are neither named-curve ECDHE "
                      "nor DHE with an accepted prime size");
}

/* ------------------------------------------------------------------ */
/* The whole decision                                                 */
/* ------------------------------------------------------------------ */

static ks_verdict ks_structure(const ks_policy *pol, const ks_key_desc *key, const uint8_t *tbs,
                               size_t len)
{
    if (tbs == NULL || len == 0)
        return ks_not_ctx("empty to-be-signed data");
    if (len >= KS_TLS13_PAD_LEN && ks_all_bytes(tbs, KS_TLS13_PAD_LEN, 0x20))
        return ks_tls13_parse(tbs, len);
    /* The shortest TLS 1.2 form: randoms, then DHE with 2-byte lengths or
     * ECDHE with its 4-byte header. */
    if (len < KS_RANDOMS_LEN + 4u)
        return ks_not_ctx("too short for a TLS 1.3 or TLS 1.2 handshake context");
    return ks_tls12_parse(pol, key, tbs, len);
}

static ks_verdict ks_permitted(const ks_policy *pol, ks_ctx_kind kind)
{
    if (kind == KS_CTX_TLS13_SERVER_CV && !pol->allow_tls13)
        return ks_verdict_make(LURK__V1__STATUS__STATUS_NOT_PERMITTED, kind,
                               "TLS 1.3 not permitted by policy");
    if (kind != KS_CTX_TLS13_SERVER_CV && !pol->allow_tls12)
        return ks_verdict_make(LURK__V1__STATUS__STATUS_NOT_PERMITTED, kind,
                               "TLS 1.2 not permitted by policy");
    return ks_ok(kind);
}

ks_verdict ks_policy_check_sign(const ks_policy *pol, const ks_key_desc *key, uint32_t scheme_code,
                                const uint8_t *tbs, size_t tbs_len)
{
    const lurk_scheme *scheme;
    ks_verdict v;

    if (pol == NULL)
        return ks_verdict_make(LURK__V1__STATUS__STATUS_INTERNAL, KS_CTX_NONE,
                               "policy check without a policy");
    scheme = scheme_code <= 0xffffu ? lurk_scheme_find(scheme_code) : NULL;
    v = ks_policy_check_scheme(pol, key, scheme);
    if (v.status != LURK__V1__STATUS__STATUS_OK)
        return v;
    v = ks_structure(pol, key, tbs, tbs_len);
    if (v.status != LURK__V1__STATUS__STATUS_OK)
        return v;
    v = ks_permitted(pol, v.kind);
    if (v.status != LURK__V1__STATUS__STATUS_OK)
        return v;
    if (v.kind == KS_CTX_TLS13_SERVER_CV)
        return ks_tls13_scheme(key, scheme);
    return v;
}

/* ------------------------------------------------------------------ */
/* RSA key exchange                                                   */
/* ------------------------------------------------------------------ */

ks_verdict ks_policy_check_decrypt(const ks_policy *pol, const ks_key_desc *key,
                                   size_t ciphertext_len, size_t modulus_len,
                                   uint32_t client_version)
{
    if (pol == NULL || key == NULL)
        return ks_verdict_make(LURK__V1__STATUS__STATUS_INTERNAL, KS_CTX_NONE,
                               "policy check without a policy or key");
    /* RFC 4055: an id-RSASSA-PSS key is for signatures only, as with a local key. */
    if (key->type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS)
        return ks_bad_scheme("RSA key exchange needs an rsaEncryption key; an RSA-PSS key "
                             "only signs");
    if (key->type != LURK__V1__KEY_TYPE__KEY_TYPE_RSA)
        return ks_bad_scheme("RSA key exchange needs an RSA key");
    if (!pol->allow_decrypt)
        return ks_verdict_make(LURK__V1__STATUS__STATUS_NOT_PERMITTED, KS_CTX_NONE,
                               "RSA key exchange not permitted by policy");
    /* The edge left-pads short ciphertexts, so anything but the modulus
     * length is a broken or probing edge, not a client. */
    if (modulus_len == 0 || ciphertext_len != modulus_len)
        return ks_verdict_make(LURK__V1__STATUS__STATUS_MALFORMED, KS_CTX_NONE,
                               "ciphertext length is not the modulus length");
    if (!lurk_tls_version_valid(client_version))
        return ks_verdict_make(LURK__V1__STATUS__STATUS_MALFORMED, KS_CTX_NONE,
                               "client version is not a TLS or DTLS 1.x version");
    return ks_verdict_make(LURK__V1__STATUS__STATUS_OK, KS_CTX_NONE, "RSA key exchange");
}
