/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration parsing: see ks_config.h.
 *
 * NCONF does the parsing, but it forgives things a key server must not:
 * a name given twice in a section silently keeps the last value (and drops
 * the first from the section's stack too, so walking the stack cannot tell),
 * and a name missing from a section is looked up in [default]. So the text
 * is also scanned line by line (ks_config_scan.c), only to learn which names
 * each section assigns and on which line; values always come from NCONF.
 *
 * This file has [keyserver], [keys] and the whole; edge groups and
 * [key_limits] are in ks_config_groups.c, shared declarations in
 * ks_config_int.h.
 */
#include "ks_config_int.h"
#include "lurk_edge.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "ks_limits.h"
#include "ks_log.h"
#include "ks_replay.h"
#include "lurk_transport.h"
#include "lurk_wire.h"

/* ---- [keyserver] ------------------------------------------------------- */

static const char *const ks_config_known[] = {
    "listen",
    "tls_cert",
    "tls_key",
    "client_ca",
    "client_crl",
    "tls_min_version",
    "allow_insecure",
    "workers",
    "keys",
    "server_id",
    "tls13",
    "tls12",
    "ffdhe",
    "rsa_decrypt",
    "legacy_hashes",
    "rate",
    "burst",
    "key_rate",
    "key_burst",
    "replay_window",
    "replay_cache",
    "max_message",
    "max_inflight",
    "max_inflight_per_conn",
    "max_connections",
    "drain_timeout",
    "audit_log",
    "metrics_listen",
};

/* The value of a setting of one section, never one inherited from [default]. */
const char *ks_sect_get(STACK_OF(CONF_VALUE) * sect, const char *name)
{
    for (int i = 0; i < sk_CONF_VALUE_num(sect); i++) {
        const CONF_VALUE *v = sk_CONF_VALUE_value(sect, i);

        if (strcmp(v->name, name) == 0)
            return v->value != NULL && v->value[0] != '\0' ? v->value : NULL;
    }
    return NULL;
}

const char *ks_main_get(const ks_parse *p, const char *name)
{
    return ks_sect_get(p->main, name);
}

long ks_main_line(const ks_parse *p, const char *name)
{
    return ks_scan_last(&p->scan, KS_MAIN, name);
}

int ks_main_path(ks_parse *p, const char *name, char **out)
{
    const char *v = ks_main_get(p, name);

    *out = NULL;
    if (v == NULL)
        return 0;
    if ((*out = ks_config_resolve(p->basedir, v)) == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, 0, "out of memory");
        return -1;
    }
    return 0;
}

static int ks_main_bool(ks_parse *p, const char *name, int dflt, int *out)
{
    const char *v = ks_main_get(p, name);

    *out = dflt;
    if (v == NULL)
        return 0;
    if (lurk_bool_parse(v, out) != 0) {
        ks_config_errf(p->err, p->errlen, p->text_name, ks_main_line(p, name),
                       "%s: \"%s\" is not yes or no", name, v);
        return -1;
    }
    return 0;
}

static void ks_main_warn_unknown(const ks_parse *p)
{
    for (int i = 0; i < sk_CONF_VALUE_num(p->main); i++) {
        const CONF_VALUE *v = sk_CONF_VALUE_value(p->main, i);
        int known = 0;

        for (size_t k = 0; k < sizeof(ks_config_known) / sizeof(ks_config_known[0]); k++)
            known |= strcmp(v->name, ks_config_known[k]) == 0;
        if (!known) {
            long line = ks_main_line(p, v->name);

            ks_log(KS_LOG_WARN, "%s:%ld: [keyserver]: unknown setting \"%s\" ignored", p->text_name,
                   line, v->name);
        }
    }
}

static int ks_main_listen(ks_parse *p, ks_config *cfg)
{
    const char *v = ks_main_get(p, "listen");
    long line = ks_main_line(p, "listen");
    char why[512];

    if (v == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, line,
                       "listen: required in [keyserver] (e.g. listen = tls+tcp://0.0.0.0:7443), "
                       "or [edge.NAME] sections");
        return -1;
    }
    why[0] = '\0';
    cfg->listen = lurk_url_list_parse(v, cfg->allow_insecure, why, sizeof(why));
    if (cfg->listen == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, line, "listen: %s", why);
        return -1;
    }
    for (char **u = cfg->listen; *u != NULL; u++) {
        cfg->n_listen++;
        if (lurk_url_classify(*u) == LURK_URL_TLS)
            cfg->has_tls = 1;
    }
    return 0;
}

static int ks_main_tls(ks_parse *p, ks_config *cfg)
{
    static const char *const need[] = { "tls_cert", "tls_key", "client_ca" };
    char **const have[] = { &cfg->tls_cert, &cfg->tls_key, &cfg->client_ca };
    const char *v;

    if (ks_main_path(p, "tls_cert", &cfg->tls_cert) != 0
        || ks_main_path(p, "tls_key", &cfg->tls_key) != 0
        || ks_main_path(p, "client_ca", &cfg->client_ca) != 0
        || ks_main_path(p, "client_crl", &cfg->client_crl) != 0)
        return -1;
    v = ks_main_get(p, "tls_min_version");
    if (v != NULL && strcmp(v, "1.2") != 0 && strcmp(v, "1.3") != 0) {
        ks_config_errf(p->err, p->errlen, p->text_name, ks_main_line(p, "tls_min_version"),
                       "tls_min_version: \"%s\" is not 1.2 or 1.3 (the channel offers no "
                       "older TLS)",
                       v);
        return -1;
    }
    if (v != NULL && (cfg->tls_min_version = strdup(v)) == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, 0, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        if (cfg->has_tls && *have[i] == NULL) {
            ks_config_errf(p->err, p->errlen, p->text_name, ks_main_line(p, "listen"),
                           "%s: required for tls+tcp:// listeners%s", need[i],
                           i == 2 ? " (edges' certificates must chain to it)" : "");
            return -1;
        }
        if (!cfg->has_tls && *have[i] != NULL)
            ks_log(KS_LOG_WARN, "%s:%ld: %s is set but no tls+tcp:// listener uses it",
                   p->text_name, ks_main_line(p, need[i]), need[i]);
    }
    return 0;
}

static int ks_main_workers(ks_parse *p, ks_config *cfg)
{
    const char *v = ks_main_get(p, "workers");
    char *end;
    unsigned long w;

    cfg->workers_set = 0;
    if (v != NULL) {
        errno = 0;
        w = strtoul(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || w > KS_CONFIG_MAX_WORKERS) {
            ks_config_errf(p->err, p->errlen, p->text_name, ks_main_line(p, "workers"),
                           "workers: \"%s\" is not a number from 0 (automatic) to %u", v,
                           KS_CONFIG_MAX_WORKERS);
            return -1;
        }
        cfg->workers_set = (unsigned int)w;
    }
    cfg->workers = cfg->workers_set != 0 ? cfg->workers_set : ks_config_auto_workers();
    return 0;
}

static int ks_main_policy(ks_parse *p, ks_config *cfg)
{
    int tls13, tls12, ffdhe, decrypt, legacy;

    cfg->policy = ks_policy_default();
    /*
     * RSA key exchange is opt-in: whoever holds a group's credentials can
     * have any recorded RSA key exchange with a granted key decrypted, and
     * revoking them later does not undo it (docs/security.md).
     */
    cfg->policy.allow_decrypt = 0;
    if (ks_main_bool(p, "tls13", cfg->policy.allow_tls13, &tls13) != 0
        || ks_main_bool(p, "tls12", cfg->policy.allow_tls12, &tls12) != 0
        || ks_main_bool(p, "ffdhe", cfg->policy.allow_ffdhe, &ffdhe) != 0
        || ks_main_bool(p, "rsa_decrypt", cfg->policy.allow_decrypt, &decrypt) != 0
        || ks_main_bool(p, "legacy_hashes", 0, &legacy) != 0)
        return -1;
    cfg->policy.allow_tls13 = tls13 != 0;
    cfg->policy.allow_tls12 = tls12 != 0;
    cfg->policy.allow_ffdhe = ffdhe != 0;
    cfg->policy.allow_decrypt = decrypt != 0;
    /*
     * SHA-1 and SHA-224 TLS 1.2 signatures are opt-in: a local key serves
     * them only where the edge's security level lets libssl choose them
     * (SHA-1 at @SECLEVEL=0), and a key server shared by many edges should
     * not sign with broken hashes for all of them because one must.
     */
    cfg->policy.allow_legacy_hashes = legacy != 0;
    if (legacy)
        ks_log(KS_LOG_WARN,
               "%s: legacy_hashes = yes: TLS 1.2 signatures with SHA-1 and SHA-224 "
               "are served (only for clients and edges that still choose them)",
               p->text_name);
    if (!tls13 && !tls12)
        ks_log(KS_LOG_WARN, "%s: tls13 and tls12 are both off: every signature will be refused",
               p->text_name);
    return 0;
}

static int ks_main_server_id(ks_parse *p, ks_config *cfg)
{
    const char *v = ks_main_get(p, "server_id");

    if (v == NULL)
        return 0;
    for (const char *c = v; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f || c - v >= 255) {
            ks_config_errf(p->err, p->errlen, p->text_name, ks_main_line(p, "server_id"),
                           "server_id: at most 255 printable characters");
            return -1;
        }
    }
    if ((cfg->server_id = strdup(v)) == NULL)
        return -1;
    return 0;
}

/* ---- [keys] ------------------------------------------------------------ */

/*
 * The scanner and NCONF must agree on the names in the section, or a
 * duplicate could hide behind syntax only one of them understands.
 */
static int ks_keys_cross_check(ks_parse *p, const char *section, STACK_OF(CONF_VALUE) * sect)
{
    size_t distinct = 0;

    for (size_t i = 0; i < p->scan.n; i++) {
        if (strcmp(p->scan.v[i].section, section) == 0
            && ks_scan_find(&p->scan, section, p->scan.v[i].name, 0) == p->scan.v[i].line)
            distinct++;
    }
    for (int i = 0; i < sk_CONF_VALUE_num(sect); i++) {
        const CONF_VALUE *v = sk_CONF_VALUE_value(sect, i);

        if (ks_scan_find(&p->scan, section, v->name, 0) == 0)
            distinct = (size_t)-1;
    }
    if (distinct != (size_t)sk_CONF_VALUE_num(sect)) {
        ks_config_errf(p->err, p->errlen, p->text_name, 0,
                       "keys: cannot cross-check the key ids in [%s]; write each as a plain "
                       "name (letters, digits, '.', '_', '-') at the start of its line",
                       section);
        return -1;
    }
    return 0;
}

static int ks_keys_parse(ks_parse *p, ks_config *cfg)
{
    const char *section = cfg->keys_section;
    STACK_OF(CONF_VALUE) *sect = NCONF_get_section(p->conf, section);
    const ks_scan_entry *dup;
    long first = 0;
    int n;

    ERR_clear_error(); /* NCONF_get_section queues an error for a missing section */
    if (sect == NULL || (n = sk_CONF_VALUE_num(sect)) <= 0) {
        ks_config_errf(p->err, p->errlen, p->text_name, 0, "keys: no keys: section [%s] is %s",
                       section, sect == NULL ? "missing" : "empty");
        return -1;
    }
    if ((dup = ks_scan_duplicate(&p->scan, section, &first)) != NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, dup->line,
                       "keys: duplicate key id \"%s\" (first on line %ld)", dup->name, first);
        return -1;
    }
    if (ks_keys_cross_check(p, section, sect) != 0)
        return -1;
    if ((cfg->keys = calloc((size_t)n, sizeof(*cfg->keys))) == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        const CONF_VALUE *v = sk_CONF_VALUE_value(sect, i);
        ks_config_key *k = &cfg->keys[cfg->n_keys];
        long line = ks_scan_last(&p->scan, section, v->name);
        const char *src = v->value, *fpath;

        if (!lurk_key_id_valid(v->name)) {
            ks_config_errf(p->err, p->errlen, p->text_name, line,
                           "keys: \"%s\" is not a valid key id (1 to %u characters of "
                           "A-Z a-z 0-9 . _ -, not starting with . or -)",
                           v->name, LURK_MAX_KEY_ID);
            return -1;
        }
        if (src == NULL || src[0] == '\0') {
            ks_config_errf(p->err, p->errlen, p->text_name, line,
                           "keys: key id \"%s\" has no file or URI", v->name);
            return -1;
        }
        k->line = line;
        k->is_path = ks_config_source_is_path(src);
        if (k->is_path && (fpath = ks_config_file_uri_path(src)) != NULL)
            src = fpath;
        k->uri = k->is_path ? ks_config_resolve(p->basedir, src) : strdup(src);
        k->id = strdup(v->name);
        cfg->n_keys++;
        if (k->uri == NULL || k->id == NULL)
            return -1;
    }
    return 0;
}

/* ---- operational settings ---------------------------------------------- */

/*
 * An unsigned number setting of `section`: decimal, from min to max;
 * `dflt` when absent.
 */
int ks_sect_uint(ks_parse *p, STACK_OF(CONF_VALUE) * sect, const char *section, const char *name,
                 unsigned long dflt, unsigned long min, unsigned long max, unsigned long *out)
{
    const char *v = ks_sect_get(sect, name);
    char *end;
    unsigned long n;

    *out = dflt;
    if (v == NULL)
        return 0;
    errno = 0;
    n = strtoul(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < min || n > max) {
        ks_config_errf(p->err, p->errlen, p->text_name, ks_scan_last(&p->scan, section, name),
                       "%s: \"%s\" is not a number from %lu to %lu", name, v, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

static int ks_main_ops(ks_parse *p, ks_config *cfg)
{
    unsigned long n;
    const char *v;

    if (ks_sect_uint(p, p->main, KS_MAIN, "key_rate", 0, 0, KS_LIMITS_MAX_RATE, &n) != 0)
        return -1;
    cfg->key_rate = (uint32_t)n;
    if (ks_sect_uint(p, p->main, KS_MAIN, "key_burst", 0, 0, KS_LIMITS_MAX_RATE, &n) != 0)
        return -1;
    cfg->key_burst = (uint32_t)n;
    if (ks_sect_uint(p, p->main, KS_MAIN, "replay_window", KS_CONFIG_DEFAULT_REPLAY_WINDOW, 0,
                     86400, &n)
        != 0)
        return -1;
    cfg->replay_window = (unsigned int)n;
    if (ks_sect_uint(p, p->main, KS_MAIN, "replay_cache", KS_CONFIG_DEFAULT_REPLAY_CACHE, 16,
                     KS_REPLAY_MAX_CAPACITY, &n)
        != 0)
        return -1;
    cfg->replay_cache = n;
    if (ks_sect_uint(p, p->main, KS_MAIN, "max_message", LURK_MAX_MESSAGE, KS_CONFIG_MIN_MESSAGE,
                     LURK_MAX_MESSAGE, &n)
        != 0)
        return -1;
    cfg->max_message = n;
    /* Default: a queue as deep again as the workers, so bursts wait a little. */
    if (ks_sect_uint(p, p->main, KS_MAIN, "max_inflight", 2ul * cfg->workers, 1,
                     KS_CONFIG_MAX_INFLIGHT, &n)
        != 0)
        return -1;
    cfg->max_inflight = (unsigned int)n;
    if (ks_sect_uint(p, p->main, KS_MAIN, "max_inflight_per_conn", cfg->workers, 1,
                     KS_CONFIG_MAX_INFLIGHT, &n)
        != 0)
        return -1;
    cfg->max_inflight_per_conn = (unsigned int)n;
    if (ks_sect_uint(p, p->main, KS_MAIN, "max_connections", KS_CONFIG_DEFAULT_MAX_CONNECTIONS, 1,
                     1000000, &n)
        != 0)
        return -1;
    cfg->max_connections = (unsigned int)n;
    if (ks_sect_uint(p, p->main, KS_MAIN, "drain_timeout", KS_CONFIG_DEFAULT_DRAIN_TIMEOUT, 0, 3600,
                     &n)
        != 0)
        return -1;
    cfg->drain_timeout = (unsigned int)n;
    if ((v = ks_main_get(p, "audit_log")) != NULL) {
        if (strcmp(v, "-") == 0 || strcmp(v, "stderr") == 0)
            cfg->audit_log = NULL;
        else if ((cfg->audit_log = ks_config_resolve(p->basedir, v)) == NULL)
            return -1;
    }
    if ((v = ks_main_get(p, "metrics_listen")) != NULL) {
        if (strncmp(v, "http://", 7) != 0 || strchr(v + 7, ':') == NULL) {
            ks_config_errf(p->err, p->errlen, p->text_name, ks_main_line(p, "metrics_listen"),
                           "metrics_listen: \"%s\" is not http://HOST:PORT (plain HTTP; keep "
                           "it on a loopback or management address)",
                           v);
            return -1;
        }
        if ((cfg->metrics_listen = strdup(v)) == NULL)
            return -1;
    }
    return 0;
}

/* ---- the whole ---------------------------------------------------------- */

static int ks_config_nconf(ks_parse *p, const char *text, size_t len)
{
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    long eline = 0;
    char why[512];

    if (bio == NULL || (p->conf = NCONF_new(NULL)) == NULL) {
        BIO_free(bio);
        ks_config_errf(p->err, p->errlen, p->text_name, 0, "out of memory");
        return -1;
    }
    if (NCONF_load_bio(p->conf, bio, &eline) <= 0) {
        why[0] = '\0';
        ks_log_openssl_errors(why, sizeof(why));
        ks_config_errf(p->err, p->errlen, p->text_name, eline, "%s",
                       why[0] != '\0' ? why : "syntax error");
        BIO_free(bio);
        return -1;
    }
    BIO_free(bio);
    return 0;
}

static int ks_config_parse(ks_parse *p, ks_config *cfg, const char *text, size_t len)
{
    const ks_scan_entry *dup;
    const char *keys;
    const char **edges = NULL;
    size_t n_edges = 0;
    long first = 0;
    int rv;

    if (memchr(text, '\0', len) != NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, 0, "contains a NUL byte: not a text file");
        return -1;
    }
    if (EVP_Digest(text, len, cfg->text_sha256, NULL, EVP_sha256(), NULL) != 1
        || ks_scan_text(&p->scan, text, len) != 0) {
        ks_config_errf(p->err, p->errlen, p->text_name, 0, "out of memory");
        return -1;
    }
    /*
     * Refused before NCONF sees it: it would open the file, and the config
     * epoch would miss a change made there.
     */
    if (p->scan.include_line != 0) {
        ks_config_errf(p->err, p->errlen, p->text_name, p->scan.include_line,
                       ".include is not supported: keep the key server configuration in "
                       "one file");
        return -1;
    }
    if (ks_config_nconf(p, text, len) != 0)
        return -1;
    p->main = NCONF_get_section(p->conf, KS_MAIN);
    ERR_clear_error();
    if (p->main == NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, 0, "no [keyserver] section");
        return -1;
    }
    if ((dup = ks_scan_duplicate(&p->scan, KS_MAIN, &first)) != NULL) {
        ks_config_errf(p->err, p->errlen, p->text_name, dup->line,
                       "%s: set twice in [keyserver] (first on line %ld)%s", dup->name, first,
                       strcmp(dup->name, "listen") == 0 ? "; list all URLs in one listen setting"
                                                        : "");
        return -1;
    }
    ks_main_warn_unknown(p);
    keys = ks_main_get(p, "keys");
    if ((cfg->keys_section = strdup(keys != NULL ? keys : "keys")) == NULL)
        return -1;
    if (strcmp(cfg->keys_section, KS_MAIN) == 0) {
        ks_config_errf(p->err, p->errlen, p->text_name, ks_main_line(p, "keys"),
                       "keys: must name a section other than [keyserver]");
        return -1;
    }
    if (ks_main_bool(p, "allow_insecure", 0, &cfg->allow_insecure) != 0)
        return -1;
    if (ks_groups_discover(p, &edges, &n_edges) != 0)
        return -1;
    if (n_edges > 0)
        rv = ks_groups_parse(p, cfg, edges, n_edges);
    else
        rv = ks_main_listen(p, cfg) != 0 || ks_main_tls(p, cfg) != 0
                || ks_group_implicit(p, cfg) != 0
            ? -1
            : 0;
    free(edges);
    if (rv != 0 || ks_main_workers(p, cfg) != 0 || ks_main_ops(p, cfg) != 0
        || ks_main_policy(p, cfg) != 0 || ks_main_server_id(p, cfg) != 0
        || ks_keys_parse(p, cfg) != 0 || ks_groups_check_keys(p, cfg) != 0)
        return -1;
    ks_config_warn_sections(p, cfg);
    return 0;
}

int ks_config_parse_text(const char *text, size_t len, const char *name, const char *basedir,
                         ks_config **out, char *err, size_t errlen)
{
    ks_parse p;
    ks_config *cfg;
    int rv = -1;

    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    memset(&p, 0, sizeof(p));
    p.text_name = name != NULL ? name : "<config>";
    p.basedir = basedir;
    p.err = err;
    p.errlen = errlen;
    if (len > KS_CONFIG_MAX_TEXT) {
        ks_config_errf(err, errlen, p.text_name, 0, "larger than %u bytes", KS_CONFIG_MAX_TEXT);
        return -1;
    }
    if ((cfg = calloc(1, sizeof(*cfg))) == NULL || (cfg->name = strdup(p.text_name)) == NULL
        || (basedir != NULL && (cfg->basedir = strdup(basedir)) == NULL)) {
        ks_config_errf(err, errlen, p.text_name, 0, "out of memory");
        goto out;
    }
    if (ks_config_parse(&p, cfg, text, len) != 0) {
        if (err != NULL && errlen > 0 && err[0] == '\0')
            ks_config_errf(err, errlen, p.text_name, 0, "out of memory");
        goto out;
    }
    *out = cfg;
    cfg = NULL;
    rv = 0;
out:
    ks_config_free(cfg);
    NCONF_free(p.conf);
    ks_scan_free(&p.scan);
    return rv;
}

int ks_config_parse_bio(BIO *bio, const char *name, const char *basedir, ks_config **out, char *err,
                        size_t errlen)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rv;

    *out = NULL;
    for (;;) {
        int n;

        if (cap - len < 4096) {
            char *grown;

            cap = cap ? cap * 2 : 8192;
            if (cap > KS_CONFIG_MAX_TEXT + 8192u)
                cap = KS_CONFIG_MAX_TEXT + 8192u;
            if ((grown = realloc(buf, cap)) == NULL) {
                free(buf);
                ks_config_errf(err, errlen, name != NULL ? name : "<config>", 0, "out of memory");
                return -1;
            }
            buf = grown;
        }
        n = BIO_read(bio, buf + len, (int)(cap - len));
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len > KS_CONFIG_MAX_TEXT)
            break; /* parse_text refuses it with a message */
    }
    rv = ks_config_parse_text(buf != NULL ? buf : "", len, name, basedir, out, err, errlen);
    free(buf);
    return rv;
}

/* The directory holding `path`, absolute when it can be made so. */
static char *ks_config_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir, *abs;
    char cwd[PATH_MAX];
    size_t n;

    if (slash == NULL)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL || dir[0] == '/')
        return dir;
    /* Absolute, so that logs and --check name the files unambiguously. */
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return dir;
    n = strlen(cwd) + 1 + strlen(dir) + 1;
    if ((abs = malloc(n)) != NULL) {
        if (strcmp(dir, ".") == 0)
            snprintf(abs, n, "%s", cwd);
        else
            snprintf(abs, n, "%s/%s", cwd, dir);
        free(dir);
        return abs;
    }
    return dir;
}

int ks_config_load(const char *path, ks_config **out, char *err, size_t errlen)
{
    BIO *bio;
    char *dir;
    int rv;

    *out = NULL;
    if ((bio = BIO_new_file(path, "rb")) == NULL) {
        int e = errno;

        ERR_clear_error();
        ks_config_errf(err, errlen, path, 0, "cannot open: %s", strerror(e));
        return -1;
    }
    if ((dir = ks_config_dirname(path)) == NULL) {
        BIO_free(bio);
        ks_config_errf(err, errlen, path, 0, "out of memory");
        return -1;
    }
    rv = ks_config_parse_bio(bio, path, dir, out, err, errlen);
    free(dir);
    BIO_free(bio);
    return rv;
}

void ks_config_free(ks_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->name);
    free(cfg->basedir);
    lurk_url_list_free(cfg->listen);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_min_version);
    free(cfg->client_ca);
    free(cfg->client_crl);
    free(cfg->server_id);
    free(cfg->keys_section);
    for (size_t i = 0; i < cfg->n_keys; i++) {
        free(cfg->keys[i].id);
        free(cfg->keys[i].uri);
    }
    free(cfg->keys);
    for (size_t i = 0; i < cfg->n_groups; i++) {
        ks_config_group *g = &cfg->groups[i];

        free(g->name);
        lurk_url_list_free(g->listen);
        free(g->client_ca);
        free(g->client_crl);
        ks_authz_grant_clear(&g->grant);
        ks_ident_members_clear(&g->edges);
    }
    free(cfg->groups);
    free(cfg->audit_log);
    free(cfg->metrics_listen);
    free(cfg);
}
