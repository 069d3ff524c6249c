/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-edge identity: see ks_ident.h.
 */
#include "ks_ident.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest DNS label (RFC 1035). */
#define KS_IDENT_LABEL_MAX 63

static const char ks_ident_hex[] = "0123456789abcdef";

static void ks_ident_bad(char *bad, size_t badlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ks_ident_bad(char *bad, size_t badlen, const char *fmt, ...)
{
    va_list ap;

    if (bad == NULL || badlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(bad, badlen, fmt, ap);
    va_end(ap);
}

/* ASCII only: certificate names are compared byte for byte, whatever the locale. */
static char ks_ident_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int ks_ident_ieq(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++)
        if (ks_ident_lower(*a) != ks_ident_lower(*b))
            return 0;
    return *a == *b;
}

static int ks_ident_dns_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
        || c == '_';
}

/* A name of letters, digits, '-' and '_' in non-empty labels; its label count, or 0. */
static size_t ks_ident_dns_labels(const char *s)
{
    size_t labels = 0, lab = 0;

    if (strlen(s) > KS_IDENT_DNS_MAX)
        return 0;
    for (;; s++) {
        if (*s == '.' || *s == '\0') {
            if (lab == 0 || lab > KS_IDENT_LABEL_MAX)
                return 0;
            labels++;
            lab = 0;
            if (*s == '\0')
                return labels;
        } else if (ks_ident_dns_char(*s)) {
            lab++;
        } else {
            return 0;
        }
    }
}

static int ks_ident_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = ks_ident_lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int ks_ident_parse_spki(const char *hex, unsigned char out[32])
{
    if (strlen(hex) != 64)
        return -1;
    for (size_t i = 0; i < 32; i++) {
        int hi = ks_ident_hexval(hex[2 * i]), lo = ks_ident_hexval(hex[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* One member, "dns:..." or "spki:..."; `tok` is the caller's copy. */
static int ks_ident_parse_one(char *tok, ks_ident_member *m, char *bad, size_t badlen)
{
    memset(m, 0, sizeof(*m));
    if (strncmp(tok, "spki:", 5) == 0) {
        m->kind = KS_IDENT_SPKI;
        if (ks_ident_parse_spki(tok + 5, m->spki) != 0) {
            ks_ident_bad(bad, badlen,
                         "\"%.80s\": spki: needs the 64 hex digits of the SHA-256 of the "
                         "certificate's SubjectPublicKeyInfo",
                         tok);
            return -1;
        }
        return 0;
    }
    if (strncmp(tok, "dns:", 4) != 0) {
        ks_ident_bad(bad, badlen,
                     "\"%.80s\" is neither dns:NAME nor spki:HEX (the SHA-256 of the "
                     "certificate's public key)",
                     tok);
        return -1;
    }
    tok += 4;
    if (strncmp(tok, "*.", 2) == 0) {
        /* "*.com" would take a whole top-level domain: two labels at least. */
        if (ks_ident_dns_labels(tok + 2) < 2) {
            ks_ident_bad(bad, badlen,
                         "\"dns:%.80s\": a wildcard is \"*.\" followed by a DNS name of two "
                         "labels or more",
                         tok);
            return -1;
        }
        m->kind = KS_IDENT_DNS_WILDCARD;
        tok += 2;
    } else if (ks_ident_dns_labels(tok) == 0) {
        ks_ident_bad(bad, badlen,
                     "\"dns:%.80s\" is not a DNS name (labels of letters, digits, - and _; "
                     "\"*.\" only as the first label)",
                     tok);
        return -1;
    } else {
        m->kind = KS_IDENT_DNS;
    }
    if ((m->dns = strdup(tok)) == NULL) {
        ks_ident_bad(bad, badlen, "%s", "");
        return -1;
    }
    for (char *p = m->dns; *p != '\0'; p++)
        *p = ks_ident_lower(*p);
    return 0;
}

static int ks_ident_same(const ks_ident_member *a, const ks_ident_member *b)
{
    if (a->kind != b->kind)
        return 0;
    if (a->kind == KS_IDENT_SPKI)
        return memcmp(a->spki, b->spki, sizeof(a->spki)) == 0;
    return strcmp(a->dns, b->dns) == 0;
}

static int ks_ident_push(ks_ident_members *out, size_t *cap, const ks_ident_member *m)
{
    if (out->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        ks_ident_member *v = realloc(out->v, ncap * sizeof(*v));

        if (v == NULL)
            return -1;
        out->v = v;
        *cap = ncap;
    }
    out->v[out->n++] = *m;
    return 0;
}

int ks_ident_members_parse(const char *text, ks_ident_members *out, char *bad, size_t badlen)
{
    const char *p = text != NULL ? text : "";
    size_t cap = 0;

    memset(out, 0, sizeof(*out));
    ks_ident_bad(bad, badlen, "%s", "");
    p += strspn(p, " \t,");
    while (*p != '\0') {
        size_t len = strcspn(p, " \t,");
        char *tok = strndup(p, len);
        ks_ident_member m;

        if (tok == NULL || ks_ident_parse_one(tok, &m, bad, badlen) != 0) {
            free(tok);
            goto fail;
        }
        free(tok);
        for (size_t i = 0; i < out->n; i++) {
            if (ks_ident_same(&out->v[i], &m)) {
                char t[KS_IDENT_DNS_MAX + 8];

                ks_ident_member_text(&m, t, sizeof(t));
                ks_ident_bad(bad, badlen, "\"%s\" is listed twice", t);
                free(m.dns);
                goto fail;
            }
        }
        if (ks_ident_push(out, &cap, &m) != 0) {
            free(m.dns);
            goto fail;
        }
        p += len;
        p += strspn(p, " \t,");
    }
    if (out->n == 0) {
        ks_ident_bad(bad, badlen, "%s", "no member (dns:NAME or spki:HEX)");
        goto fail;
    }
    return 0;
fail:
    ks_ident_members_clear(out);
    return -1;
}

int ks_ident_members_copy(const ks_ident_members *in, ks_ident_members *out)
{
    memset(out, 0, sizeof(*out));
    if (in == NULL || in->n == 0)
        return 0;
    if ((out->v = calloc(in->n, sizeof(*out->v))) == NULL)
        return -1;
    for (size_t i = 0; i < in->n; i++) {
        out->v[i] = in->v[i];
        out->v[i].dns = NULL;
        out->n = i + 1;
        if (in->v[i].dns != NULL && (out->v[i].dns = strdup(in->v[i].dns)) == NULL) {
            ks_ident_members_clear(out);
            return -1;
        }
    }
    return 0;
}

void ks_ident_members_clear(ks_ident_members *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].dns);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

void ks_ident_member_text(const ks_ident_member *m, char *out, size_t len)
{
    char hex[65];

    if (m->kind == KS_IDENT_SPKI) {
        for (size_t i = 0; i < 32; i++) {
            hex[2 * i] = ks_ident_hex[m->spki[i] >> 4];
            hex[2 * i + 1] = ks_ident_hex[m->spki[i] & 15];
        }
        hex[64] = '\0';
        snprintf(out, len, "spki:%s", hex);
        return;
    }
    snprintf(out, len, "dns:%s%s", m->kind == KS_IDENT_DNS_WILDCARD ? "*." : "", m->dns);
}

int ks_ident_members_common(const ks_ident_members *a, const ks_ident_members *b, char *out,
                            size_t len)
{
    for (size_t i = 0; i < a->n; i++) {
        for (size_t j = 0; j < b->n; j++) {
            if (ks_ident_same(&a->v[i], &b->v[j])) {
                ks_ident_member_text(&a->v[i], out, len);
                return 1;
            }
        }
    }
    return 0;
}

/* "x.suffix" with x one label: never a name with '*', which stands for many edges. */
static int ks_ident_wildcard_matches(const char *suffix, const char *name)
{
    const char *dot = strchr(name, '.');

    if (dot == NULL || dot == name || strchr(name, '*') != NULL)
        return 0;
    return ks_ident_ieq(dot + 1, suffix);
}

int ks_ident_member_matches(const ks_ident_member *m, const ks_ident_peer *peer)
{
    size_t n = peer->n_dns < KS_IDENT_MAX_DNS ? peer->n_dns : KS_IDENT_MAX_DNS;

    if (m->kind == KS_IDENT_SPKI)
        return peer->spki != NULL && memcmp(peer->spki, m->spki, sizeof(m->spki)) == 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = peer->dns[i];

        if (name == NULL)
            continue;
        if (m->kind == KS_IDENT_DNS ? ks_ident_ieq(name, m->dns)
                                    : ks_ident_wildcard_matches(m->dns, name))
            return 1;
    }
    return 0;
}

long ks_ident_pick(const ks_ident_members *groups, size_t n, const ks_ident_peer *peer)
{
    long any = -1;

    for (size_t i = 0; i < n; i++) {
        if (groups[i].n == 0) {
            if (any < 0)
                any = (long)i;
            continue;
        }
        for (size_t j = 0; j < groups[i].n; j++)
            if (ks_ident_member_matches(&groups[i].v[j], peer))
                return (long)i;
    }
    return any;
}

/* ---- names for logs ------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len;
    size_t used;
} ks_ident_out;

static void ks_ident_putc(ks_ident_out *o, char c)
{
    if (o->len > 0 && o->used + 1 < o->len)
        o->buf[o->used++] = c;
    if (o->len > 0)
        o->buf[o->used] = '\0';
}

static void ks_ident_puts(ks_ident_out *o, const char *s)
{
    for (; *s != '\0'; s++)
        ks_ident_putc(o, *s);
}

/* The peer's bytes, at most max of them, with the unsafe ones as '?'. */
static void ks_ident_put_safe(ks_ident_out *o, const char *s, size_t max, int space_ok)
{
    for (size_t i = 0; s[i] != '\0' && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c > ' ' || (space_ok && c == ' ')) && c < 0x7f && c != '"' && c != '\\';

        ks_ident_putc(o, ok ? (char)c : '?');
    }
}

static void ks_ident_put_hex(ks_ident_out *o, const unsigned char *b, size_t digits)
{
    for (size_t i = 0; i < digits; i++)
        ks_ident_putc(o, ks_ident_hex[i % 2 == 0 ? b[i / 2] >> 4 : b[i / 2] & 15]);
}

void ks_ident_subject_cn(const char *subject, char *out, size_t len)
{
    const char *cn = NULL, *end;
    int oneline = subject != NULL && subject[0] == '/';
    char sep = oneline ? '/' : ',';

    if (len == 0)
        return;
    out[0] = '\0';
    if (subject == NULL)
        return;
    for (const char *p = subject; *p != '\0'; p++) {
        int start = p == subject || p[-1] == sep;

        if (start && strncmp(p, "CN=", 3) == 0) {
            cn = p + 3;
            if (!oneline)
                break;
        }
    }
    if (cn == NULL)
        return;
    for (end = cn; *end != '\0' && *end != sep; end++)
        if (!oneline && *end == '\\' && end[1] != '\0')
            end++;
    snprintf(out, len, "%.*s", (int)(end - cn), cn);
}

void ks_ident_label(const ks_ident_peer *peer, const char *subject, char *out, size_t len)
{
    ks_ident_out o = { out, len, 0 };
    char cn[128];
    /* Room for the SPKI part, so that a long name never hides it. */
    size_t max = len > 8 + 6 + KS_IDENT_LABEL_SPKI ? len - 1 - 6 - KS_IDENT_LABEL_SPKI : 1;

    if (len == 0)
        return;
    out[0] = '\0';
    ks_ident_subject_cn(subject, cn, sizeof(cn));
    if (peer->n_dns > 0 && peer->dns[0] != NULL && peer->dns[0][0] != '\0')
        ks_ident_put_safe(&o, peer->dns[0], max, 0);
    else if (cn[0] != '\0')
        ks_ident_put_safe(&o, cn, max, 0);
    else
        ks_ident_putc(&o, '-');
    if (peer->spki != NULL) {
        ks_ident_puts(&o, "/spki:");
        ks_ident_put_hex(&o, peer->spki, KS_IDENT_LABEL_SPKI);
    }
}

void ks_ident_describe(const ks_ident_peer *peer, const char *subject, char *out, size_t len)
{
    ks_ident_out o = { out, len, 0 };
    size_t n = peer->n_dns < KS_IDENT_MAX_DNS ? peer->n_dns : KS_IDENT_MAX_DNS;

    if (len == 0)
        return;
    out[0] = '\0';
    ks_ident_puts(&o, "subject \"");
    ks_ident_put_safe(&o, subject != NULL ? subject : "", 256, 1);
    ks_ident_puts(&o, "\", dns");
    for (size_t i = 0; i < n; i++) {
        ks_ident_putc(&o, ' ');
        ks_ident_put_safe(&o, peer->dns[i] != NULL ? peer->dns[i] : "", KS_IDENT_DNS_MAX, 0);
    }
    if (n == 0)
        ks_ident_puts(&o, " (none)");
    ks_ident_puts(&o, ", spki sha256 ");
    if (peer->spki != NULL)
        ks_ident_put_hex(&o, peer->spki, 64);
    else
        ks_ident_puts(&o, "(unknown)");
}
