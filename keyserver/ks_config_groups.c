/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration parsing: edge groups ([edge.NAME] sections, or the one
 * implicit group of the single-[keyserver] form) and the per-key limits
 * that refer to the keys the groups are granted.
 */
#include "ks_config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "ks_limits.h"
#include "ks_log.h"
#include "lurk_transport.h"
#include "lurk_wire.h"

/* ---- edge groups --------------------------------------------------------- */

static const char *const ks_edge_known[] = {
    "listen", "client_ca", "client_crl", "keys", "rate", "burst", "edges", "max_inflight",
};

/* "RATE" or "RATE BURST" (key_limits values). */
static int ks_rate_pair(const char *v, uint32_t *rate, uint32_t *burst)
{
    char *end;
    unsigned long r, b = 0;

    errno = 0;
    if (v[0] < '0' || v[0] > '9')
        return -1;
    r = strtoul(v, &end, 10);
    if (errno != 0 || r > KS_LIMITS_MAX_RATE)
        return -1;
    while (*end == ' ' || *end == '\t' || *end == ',')
        end++;
    if (*end != '\0') {
        const char *bs = end;

        if (bs[0] < '0' || bs[0] > '9')
            return -1;
        b = strtoul(bs, &end, 10);
        if (errno != 0 || b > KS_LIMITS_MAX_RATE || *end != '\0')
            return -1;
    }
    *rate = (uint32_t)r;
    *burst = (uint32_t)b;
    return 0;
}

static int ks_group_path(ks_parse *p, STACK_OF(CONF_VALUE) * sect, const char *name, char **out)
{
    const char *v = ks_sect_get(sect, name);

    *out = NULL;
    if (v == NULL)
        return 0;
    return (*out = ks_config_resolve(p->basedir, v)) == NULL ? -1 : 0;
}

static int ks_group_rate(ks_parse *p, STACK_OF(CONF_VALUE) * sect, const char *section,
                         ks_config_group *g)
{
    unsigned long n;

    if (ks_sect_uint(p, sect, section, "rate", 0, 0, KS_LIMITS_MAX_RATE, &n) != 0)
        return -1;
    g->rate = (uint32_t)n;
    if (ks_sect_uint(p, sect, section, "burst", 0, 0, KS_LIMITS_MAX_RATE, &n) != 0)
        return -1;
    g->burst = (uint32_t)n;
    return 0;
}

/*
 * `max_inflight` of one group: its share of the key server's, so that one
 * edge (a group of its own) or one CDN cannot take every worker.
 */
static int ks_group_inflight(ks_parse *p, STACK_OF(CONF_VALUE) * sect, const char *section,
                             ks_config_group *g)
{
    unsigned long n;

    if (ks_sect_uint(p, sect, section, "max_inflight", 0, 0, KS_CONFIG_MAX_INFLIGHT, &n) != 0)
        return -1;
    g->max_inflight = (unsigned int)n;
    return 0;
}

static int ks_group_listen(ks_parse *p, ks_config *cfg, const char *section, const char *v,
                           ks_config_group *g)
{
    char why[512] = "";

    g->listen = lurk_url_list_parse(v, cfg->allow_insecure, why, sizeof(why));
    if (g->listen == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, ks_scan_last(&p->scan, section, "listen"),
                       "listen: %s", why);
        return -1;
    }
    for (char **u = g->listen; *u != NULL; u++) {
        g->n_listen++;
        if (lurk_url_classify(*u) == LURK_URL_TLS)
            g->has_tls = 1;
    }
    return 0;
}

/*
 * `edges`: the group's members. Only a certificate names a member, so
 * every listener of such a group must be tls+tcp://: on ipc:// or tcp://
 * anyone who can connect would pass for a member.
 */
static int ks_group_edges(ks_parse *p, STACK_OF(CONF_VALUE) * sect, const char *section,
                          ks_config_group *g)
{
    const char *v = ks_sect_get(sect, "edges");
    char why[320];

    if (v == NULL)
        return 0;
    g->edges_line = ks_scan_last(&p->scan, section, "edges");
    if (ks_ident_members_parse(v, &g->edges, why, sizeof(why)) != 0) {
        ks_config_errf(p->err, p->errlen, p->text_name, g->edges_line, "[%s]: edges: %s", section,
                       why[0] ? why : "out of memory");
        return -1;
    }
    for (char **u = g->listen; *u != NULL; u++) {
        if (lurk_url_classify(*u) != LURK_URL_TLS) {
            ks_config_errf(p->err, p->errlen, p->text_name, g->edges_line,
                           "[%s]: edges: listener %s has no client certificate to match; "
                           "put ipc:// and tcp:// listeners in a group without edges",
                           section, *u);
            return -1;
        }
    }
    return 0;
}

static int ks_group_parse(ks_parse *p, ks_config *cfg, const char *section, ks_config_group *g)
{
    STACK_OF(CONF_VALUE) *sect = NCONF_get_section(p->conf, section);
    const char *name = section + strlen(KS_EDGE_PREFIX), *v;
    const ks_scan_entry *dup;
    long first = 0, line = ks_scan_find(&p->scan, section, "listen", 0);
    char why[320];

    ERR_clear_error();
    g->line = line;
    if (!lurk_key_id_valid(name)) {
        ks_config_errf(p->err, p->errlen, p->text_name, line,
                       "[%s]: \"%s\" is not a valid edge "
                       "group name (1 to %u of A-Z a-z 0-9 . _ -, not starting with . or -)",
                       section, name, LURK_MAX_KEY_ID);
        return -1;
    }
    if (sect == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, 0, "[%s]: cannot read the section",
                       section);
        return -1;
    }
    if ((dup = ks_scan_duplicate(&p->scan, section, &first)) != NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, dup->line,
                       "%s: set twice in [%s] (first on line %ld)", dup->name, section, first);
        return -1;
    }
    for (int i = 0; i < sk_CONF_VALUE_num(sect); i++) {
        const CONF_VALUE *cv = sk_CONF_VALUE_value(sect, i);
        int known = 0;

        for (size_t k = 0; k < sizeof(ks_edge_known) / sizeof(ks_edge_known[0]); k++)
            known |= strcmp(cv->name, ks_edge_known[k]) == 0;
        if (!known)
            ks_log(KS_LOG_WARN, "%s:%ld: [%s]: unknown setting \"%s\" ignored", p->text_name,
                   ks_scan_last(&p->scan, section, cv->name), section, cv->name);
    }
    if ((g->name = strdup(name)) == NULL)
        return -1;
    if ((v = ks_sect_get(sect, "listen")) == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, line,
                       "[%s]: listen: required "
                       "(each edge group has listeners of its own)",
                       section);
        return -1;
    }
    if (ks_group_listen(p, cfg, section, v, g) != 0
        || ks_group_path(p, sect, "client_ca", &g->client_ca) != 0
        || ks_group_path(p, sect, "client_crl", &g->client_crl) != 0
        || ks_group_rate(p, sect, section, g) != 0 || ks_group_inflight(p, sect, section, g) != 0)
        return -1;
    if (g->has_tls && g->client_ca == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, line,
                       "[%s]: client_ca: required for "
                       "tls+tcp:// listeners (this group's edge certificates must chain to it)",
                       section);
        return -1;
    }
    if (!g->has_tls && (g->client_ca != NULL || g->client_crl != NULL))
        ks_log(KS_LOG_WARN,
               "%s: [%s]: client_ca/client_crl set but no tls+tcp:// listener "
               "uses them",
               p->text_name, section);
    if (g->client_crl != NULL && g->client_ca == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, line,
                       "[%s]: client_crl without "
                       "client_ca",
                       section);
        return -1;
    }
    if ((v = ks_sect_get(sect, "keys")) == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, line,
                       "[%s]: keys: required (the key "
                       "ids this group may use, or * for all)",
                       section);
        return -1;
    }
    if (ks_authz_grant_parse(v, &g->grant, why, sizeof(why)) != 0) {
        ks_config_errf(p->err, p->errlen, p->text_name, ks_scan_last(&p->scan, section, "keys"),
                       "[%s]: keys: %s", section, why[0] ? why : "out of memory");
        return -1;
    }
    return ks_group_edges(p, sect, section, g);
}

/* Distinct [edge.*] section names in order of appearance. */
int ks_groups_discover(const ks_parse *p, const char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    for (size_t i = 0; i < p->scan.n; i++) {
        const char *s = p->scan.v[i].section;
        int seen = 0;

        if (strncmp(s, KS_EDGE_PREFIX, strlen(KS_EDGE_PREFIX)) != 0)
            continue;
        for (size_t j = 0; j < *n; j++)
            seen |= strcmp((*names)[j], s) == 0;
        if (!seen) {
            const char **v = realloc(*names, (*n + 1) * sizeof(*v));

            if (v == NULL)
                return -1;
            *names = v;
            (*names)[(*n)++] = s;
        }
    }
    return 0;
}

static int ks_str_same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * Group g lists `url`, which the earlier group `o` lists too. One URL is
 * one nng listener with one TLS configuration, and each connection on it
 * must go to exactly one group (ks_ident_pick): the two must use the
 * same CA and CRL files, at most one may take any certificate, and no
 * member may be named by both.
 */
static int ks_group_share_check(ks_parse *p, const ks_config_group *o, const ks_config_group *g,
                                const char *url)
{
    char member[KS_IDENT_DNS_MAX + 8];

    if (lurk_url_classify(url) != LURK_URL_TLS) {
        ks_config_errf(p->err, p->errlen, p->text_name, g->line,
                       "[edge.%s]: listen: %s is already a listener of [edge.%s] (line %ld); a "
                       "listener without TLS has no certificate to tell edges apart, so it "
                       "belongs to one group",
                       g->name, url, o->name, o->line);
        return -1;
    }
    if (!ks_str_same(o->client_ca, g->client_ca) || !ks_str_same(o->client_crl, g->client_crl)) {
        int ca = !ks_str_same(o->client_ca, g->client_ca);
        const char *mine = ca ? g->client_ca : g->client_crl,
                   *theirs = ca ? o->client_ca : o->client_crl;

        ks_config_errf(p->err, p->errlen, p->text_name, g->line,
                       "[edge.%s]: listen: %s is shared with [edge.%s] (line %ld), whose %s "
                       "differs (%s, not %s): groups on one listener share its TLS "
                       "configuration; give them the same client_ca and client_crl files, or "
                       "listeners of their own",
                       g->name, url, o->name, o->line, ca ? "client_ca" : "client_crl",
                       theirs != NULL ? theirs : "none", mine != NULL ? mine : "none");
        return -1;
    }
    if (o->edges.n == 0 && g->edges.n == 0) {
        ks_config_errf(p->err, p->errlen, p->text_name, g->line,
                       "[edge.%s]: listen: %s is shared with [edge.%s] (line %ld) and neither "
                       "names its edges, so a connection would belong to both; name the "
                       "members of one with edges = dns:NAME or spki:HEX",
                       g->name, url, o->name, o->line);
        return -1;
    }
    if (ks_ident_members_common(&o->edges, &g->edges, member, sizeof(member))) {
        ks_config_errf(p->err, p->errlen, p->text_name, g->edges_line,
                       "[edge.%s]: edges: %s is also a member of [edge.%s] (line %ld), on the "
                       "same listener %s; an edge belongs to one group on a listener",
                       g->name, member, o->name, o->edges_line, url);
        return -1;
    }
    return 0;
}

static int ks_group_has_url(const ks_config_group *g, const char *url)
{
    for (size_t i = 0; i < g->n_listen; i++)
        if (strcmp(g->listen[i], url) == 0)
            return 1;
    return 0;
}

/* The distinct URLs of every group; the rules of shared listeners. */
static int ks_groups_union(ks_parse *p, ks_config *cfg)
{
    size_t total = 0, k = 0;

    for (size_t i = 0; i < cfg->n_groups; i++)
        total += cfg->groups[i].n_listen;
    if ((cfg->listen = calloc(total + 1, sizeof(*cfg->listen))) == NULL)
        return -1;
    for (size_t i = 0; i < cfg->n_groups; i++) {
        const ks_config_group *g = &cfg->groups[i];

        for (size_t j = 0; j < g->n_listen; j++) {
            int shared = 0;

            for (size_t m = 0; m < i; m++) {
                if (!ks_group_has_url(&cfg->groups[m], g->listen[j]))
                    continue;
                if (ks_group_share_check(p, &cfg->groups[m], g, g->listen[j]) != 0)
                    return -1;
                shared = 1;
            }
            if (!shared && (cfg->listen[k++] = strdup(g->listen[j])) == NULL)
                return -1;
        }
        if (g->has_tls)
            cfg->has_tls = 1;
    }
    cfg->n_listen = k;
    return 0;
}

/* Every listener of a is one of b's and the other way round. */
static int ks_groups_same_listeners(const ks_config_group *a, const ks_config_group *b)
{
    for (size_t i = 0; i < a->n_listen; i++)
        if (!ks_group_has_url(b, a->listen[i]))
            return 0;
    for (size_t i = 0; i < b->n_listen; i++)
        if (!ks_group_has_url(a, b->listen[i]))
            return 0;
    return 1;
}

/*
 * Groups that trust the same CA file are told apart by their members on
 * the listeners they share. A group that names no edges takes any
 * certificate of its CA on its listeners: an edge of the other group can
 * become one of its edges by dialing a listener the two do not share.
 */
static void ks_groups_warn_same_ca(const ks_parse *p, const ks_config *cfg)
{
    for (size_t i = 0; i < cfg->n_groups; i++) {
        for (size_t j = 0; j < i; j++) {
            const ks_config_group *a = &cfg->groups[j], *b = &cfg->groups[i];
            const ks_config_group *open = b->edges.n == 0 ? b : a;

            if (a->client_ca == NULL || b->client_ca == NULL
                || strcmp(a->client_ca, b->client_ca) != 0 || (a->edges.n > 0 && b->edges.n > 0)
                || ks_groups_same_listeners(a, b))
                continue;
            ks_log(KS_LOG_WARN,
                   "%s: [edge.%s] and [edge.%s] trust the same client_ca %s: an edge of either "
                   "can connect to the listeners of [edge.%s], which names no edges and so "
                   "takes any certificate of that CA; name its members with edges =, share "
                   "one listener, or give each group its own CA",
                   p->text_name, a->name, b->name, a->client_ca, open->name);
        }
    }
}

int ks_groups_parse(ks_parse *p, ks_config *cfg, const char **names, size_t n)
{
    static const char *const main_only[] = { "listen", "client_ca", "client_crl", "rate", "burst" };

    for (size_t i = 0; i < sizeof(main_only) / sizeof(main_only[0]); i++) {
        if (ks_main_get(p, main_only[i]) != NULL) {
            ks_config_errf(p->err, p->errlen, p->text_name, ks_main_line(p, main_only[i]),
                           "%s: with [edge.*] sections, set it in each [edge.NAME] section, "
                           "not in [keyserver]",
                           main_only[i]);
            return -1;
        }
    }
    if ((cfg->groups = calloc(n, sizeof(*cfg->groups))) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        cfg->n_groups++;
        if (ks_group_parse(p, cfg, names[i], &cfg->groups[i]) != 0)
            return -1;
    }
    if (ks_groups_union(p, cfg) != 0)
        return -1;
    if (ks_main_path(p, "tls_cert", &cfg->tls_cert) != 0
        || ks_main_path(p, "tls_key", &cfg->tls_key) != 0)
        return -1;
    if (cfg->has_tls && (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
        ks_config_errf(p->err, p->errlen, p->text_name, 0,
                       "%s: required in [keyserver] for "
                       "tls+tcp:// listeners",
                       cfg->tls_cert == NULL ? "tls_cert" : "tls_key");
        return -1;
    }
    ks_groups_warn_same_ca(p, cfg);
    return 0;
}

/* The single-[keyserver] form: one group with every key. */
int ks_group_implicit(ks_parse *p, ks_config *cfg)
{
    ks_config_group *g;

    if ((cfg->groups = calloc(1, sizeof(*cfg->groups))) == NULL)
        return -1;
    cfg->n_groups = 1;
    g = &cfg->groups[0];
    g->implicit = 1;
    g->line = ks_main_line(p, "listen");
    ks_authz_grant_all(&g->grant);
    if ((g->name = strdup(KS_CONFIG_DEFAULT_GROUP)) == NULL
        || (g->listen = calloc(cfg->n_listen + 1, sizeof(*g->listen))) == NULL
        || (cfg->client_ca != NULL && (g->client_ca = strdup(cfg->client_ca)) == NULL)
        || (cfg->client_crl != NULL && (g->client_crl = strdup(cfg->client_crl)) == NULL))
        return -1;
    for (size_t i = 0; i < cfg->n_listen; i++)
        if ((g->listen[g->n_listen++] = strdup(cfg->listen[i])) == NULL)
            return -1;
    g->has_tls = cfg->has_tls;
    return ks_group_rate(p, p->main, KS_MAIN, g);
}

/* Every granted key exists; [key_limits] names known keys. */
int ks_groups_check_keys(ks_parse *p, ks_config *cfg)
{
    STACK_OF(CONF_VALUE) * lim;

    for (size_t i = 0; i < cfg->n_groups; i++) {
        const ks_config_group *g = &cfg->groups[i];

        for (size_t j = 0; j < g->grant.n; j++) {
            int found = 0;

            for (size_t k = 0; k < cfg->n_keys && !found; k++)
                found = strcmp(cfg->keys[k].id, g->grant.ids[j]) == 0;
            if (!found) {
                char sec[128];

                snprintf(sec, sizeof(sec), KS_EDGE_PREFIX "%s", g->name);
                ks_config_errf(p->err, p->errlen, p->text_name, ks_scan_last(&p->scan, sec, "keys"),
                               "[edge.%s]: keys: no key "
                               "\"%s\" in [%s]",
                               g->name, g->grant.ids[j], cfg->keys_section);
                return -1;
            }
        }
    }
    for (size_t k = 0; k < cfg->n_keys; k++) {
        cfg->keys[k].rate = cfg->key_rate;
        cfg->keys[k].burst = cfg->key_burst;
    }
    lim = NCONF_get_section(p->conf, "key_limits");
    ERR_clear_error();
    for (int i = 0; lim != NULL && i < sk_CONF_VALUE_num(lim); i++) {
        const CONF_VALUE *v = sk_CONF_VALUE_value(lim, i);
        long line = ks_scan_last(&p->scan, "key_limits", v->name);
        ks_config_key *key = NULL;

        for (size_t k = 0; k < cfg->n_keys && key == NULL; k++)
            if (strcmp(cfg->keys[k].id, v->name) == 0)
                key = &cfg->keys[k];
        if (key == NULL) {
            ks_config_errf(p->err, p->errlen, p->text_name, line,
                           "[key_limits]: no key \"%s\" "
                           "in [%s]",
                           v->name, cfg->keys_section);
            return -1;
        }
        if (v->value == NULL || ks_rate_pair(v->value, &key->rate, &key->burst) != 0) {
            ks_config_errf(p->err, p->errlen, p->text_name, line,
                           "[key_limits]: %s: \"%s\" is "
                           "not RATE or RATE BURST (requests per second, 0 to %u)",
                           v->name, v->value != NULL ? v->value : "", KS_LIMITS_MAX_RATE);
            return -1;
        }
    }
    if (lim != NULL) {
        const ks_scan_entry *dup;
        long first = 0;

        if ((dup = ks_scan_duplicate(&p->scan, "key_limits", &first)) != NULL) {
            ks_config_errf(p->err, p->errlen, p->text_name, dup->line,
                           "[key_limits]: \"%s\" "
                           "set twice (first on line %ld)",
                           dup->name, first);
            return -1;
        }
    }
    return 0;
}

size_t ks_config_groups_of_url(const ks_config *cfg, const char *url, const ks_config_group **out,
                               size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < cfg->n_groups; i++) {
        if (!ks_group_has_url(&cfg->groups[i], url))
            continue;
        if (n < max)
            out[n] = &cfg->groups[i];
        n++;
    }
    return n;
}

const ks_config_group *ks_config_group_of_url(const ks_config *cfg, const char *url)
{
    for (size_t i = 0; i < cfg->n_groups; i++)
        for (size_t j = 0; j < cfg->groups[i].n_listen; j++)
            if (strcmp(cfg->groups[i].listen[j], url) == 0)
                return &cfg->groups[i];
    return NULL;
}

/* Warn about sections nothing reads: a typo there would go unnoticed. */
void ks_config_warn_sections(const ks_parse *p, const ks_config *cfg)
{
    for (size_t i = 0; i < p->scan.n; i++) {
        const char *s = p->scan.v[i].section;

        if (strcmp(s, KS_MAIN) == 0 || strcmp(s, cfg->keys_section) == 0
            || strcmp(s, "key_limits") == 0
            || strncmp(s, KS_EDGE_PREFIX, strlen(KS_EDGE_PREFIX)) == 0)
            continue;
        ks_log(KS_LOG_WARN,
               "%s:%ld: \"%s\" in %s%s%s is ignored: settings belong in "
               "[keyserver] and keys in [%s]",
               p->text_name, p->scan.v[i].line, p->scan.v[i].name,
               strcmp(s, "default") == 0 ? "no section" : "[", strcmp(s, "default") == 0 ? "" : s,
               strcmp(s, "default") == 0 ? "" : "]", cfg->keys_section);
    }
}
