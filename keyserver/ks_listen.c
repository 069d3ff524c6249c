/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listeners: the TLS configuration of each edge group (checked with
 * OpenSSL first, since mbed TLS says little), the plan of what to listen
 * on, opening and closing, and their part of a reload. See
 * ks_server_int.h for how the key server's files divide the work.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ks_log.h"
#include "ks_server_int.h"
#include "lurk_transport.h"
#include "lurk_wire.h"

static int ks_hash_file(EVP_MD_CTX *md, const char *path)
{
    FILE *f;
    unsigned char buf[4096];
    size_t n;

    if (path == NULL)
        return EVP_DigestUpdate(md, "-", 1) == 1 ? 0 : -1;
    if ((f = fopen(path, "rb")) == NULL)
        return -1;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(md, buf, n);
    fclose(f);
    OPENSSL_cleanse(buf, sizeof(buf));
    return EVP_DigestUpdate(md, "\0", 1) == 1 ? 0 : -1;
}

/*
 * What a listener depends on: its groups in order with their members and,
 * for TLS, the contents of its files (the groups on one URL share them).
 */
static int ks_listener_sig(const ks_config *cfg, const ks_config_group *const *gs, size_t n,
                           int tls, unsigned char out[32], char *err, size_t errlen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    const char *files[4] = { cfg->tls_cert, cfg->tls_key, gs[0]->client_ca, gs[0]->client_crl };
    char member[KS_IDENT_DNS_MAX + 8];
    int rv = -1;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (EVP_DigestUpdate(md, gs[i]->name, strlen(gs[i]->name) + 1) != 1)
            goto out;
        for (size_t j = 0; j < gs[i]->edges.n; j++) {
            ks_ident_member_text(&gs[i]->edges.v[j], member, sizeof(member));
            if (EVP_DigestUpdate(md, member, strlen(member) + 1) != 1)
                goto out;
        }
        if (EVP_DigestUpdate(md, "\n", 1) != 1)
            goto out;
    }
    for (size_t i = 0; tls && i < 4; i++) {
        if (ks_hash_file(md, files[i]) != 0) {
            lurk_errf(err, errlen, "cannot read %s: %s", files[i], strerror(errno));
            goto out;
        }
    }
    if (EVP_DigestFinal_ex(md, out, NULL) == 1)
        rv = 0;
out:
    EVP_MD_CTX_free(md);
    return rv;
}

/* ---- a listener's groups ------------------------------------------------- */

static void ks_lst_groups_clear(ks_lst_groups *g)
{
    for (size_t i = 0; g->edges != NULL && i < g->n; i++)
        ks_ident_members_clear(&g->edges[i]);
    free(g->names);
    free(g->edges);
    memset(g, 0, sizeof(*g));
}

static int ks_lst_groups_alloc(ks_lst_groups *g, size_t n)
{
    memset(g, 0, sizeof(*g));
    if ((g->names = calloc(n ? n : 1, sizeof(*g->names))) == NULL
        || (g->edges = calloc(n ? n : 1, sizeof(*g->edges))) == NULL) {
        ks_lst_groups_clear(g);
        return -1;
    }
    g->n = n;
    return 0;
}

static int ks_lst_groups_of_cfg(ks_lst_groups *out, const ks_config_group *const *gs, size_t n)
{
    if (ks_lst_groups_alloc(out, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        snprintf(out->names[i], sizeof(out->names[i]), "%s", gs[i]->name);
        if (ks_ident_members_copy(&gs[i]->edges, &out->edges[i]) != 0) {
            ks_lst_groups_clear(out);
            return -1;
        }
    }
    return 0;
}

static int ks_lst_groups_copy(ks_lst_groups *out, const ks_lst_groups *in)
{
    if (ks_lst_groups_alloc(out, in->n) != 0)
        return -1;
    for (size_t i = 0; i < in->n; i++) {
        memcpy(out->names[i], in->names[i], sizeof(out->names[i]));
        if (ks_ident_members_copy(&in->edges[i], &out->edges[i]) != 0) {
            ks_lst_groups_clear(out);
            return -1;
        }
    }
    return 0;
}

/* "cdn1" or "edge1 edge2 cdn1", for logs (cut to fit). */
static void ks_lst_groups_text(const ks_lst_groups *g, char *buf, size_t len)
{
    size_t used = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < g->n && used + 1 < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? " " : "", g->names[i]);

        if (n < 0)
            break;
        used += (size_t)n < len - used ? (size_t)n : len - used - 1;
    }
}

/*
 * mbed TLS (inside nng) takes a certificate and a key that do not belong
 * together without a word, and every handshake then fails; OpenSSL can say
 * so at start-up.
 */
static int ks_server_tls_pair(const ks_config *cfg, char *err, size_t errlen)
{
    BIO *in;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int rv = -1;

    if ((in = BIO_new_file(cfg->tls_cert, "r")) != NULL)
        cert = PEM_read_bio_X509(in, NULL, NULL, NULL);
    BIO_free(in);
    if ((in = BIO_new_file(cfg->tls_key, "r")) != NULL)
        key = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    BIO_free(in);
    ERR_clear_error();
    if (cert == NULL || key == NULL) {
        /* Unreadable files: lurk_tls_config_make() names the problem. */
        rv = 0;
    } else if (X509_check_private_key(cert, key) != 1) {
        lurk_errf(err, errlen, "tls_cert %s does not match tls_key %s", cfg->tls_cert,
                  cfg->tls_key);
        ERR_clear_error();
    } else {
        rv = 0;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return rv;
}

/*
 * Dates that silently lock edges out: mbed TLS refuses every edge of a
 * group once its CRL is past nextUpdate, and edges refuse an expired key
 * server certificate, each with nothing but a timeout to show for it.
 */
static void ks_group_check_dates(const ks_config *cfg, const ks_config_group *g)
{
    static const int soon_days = 7;
    BIO *bio;
    X509 *cert = NULL;
    X509_CRL *crl = NULL;
    int days = 0, secs = 0;
    const ASN1_TIME *t;

    if ((bio = BIO_new_file(cfg->tls_cert, "r")) != NULL)
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (cert != NULL && (t = X509_get0_notAfter(cert)) != NULL
        && ASN1_TIME_diff(&days, &secs, NULL, t)) {
        if (days < 0 || secs < 0)
            ks_log(KS_LOG_WARN, "tls_cert %s has expired: edges will refuse this key server",
                   cfg->tls_cert);
        else if (days < soon_days)
            ks_log(KS_LOG_WARN, "tls_cert %s expires in %d days", cfg->tls_cert, days);
    }
    X509_free(cert);
    if (g->client_crl == NULL)
        return;
    if ((bio = BIO_new_file(g->client_crl, "r")) != NULL)
        crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (crl != NULL && (t = X509_CRL_get0_nextUpdate(crl)) != NULL
        && ASN1_TIME_diff(&days, &secs, NULL, t)) {
        if (days < 0 || secs < 0)
            ks_log(KS_LOG_WARN,
                   "client_crl %s is past its nextUpdate: every edge of group %s is "
                   "refused until a fresh CRL is installed (then SIGHUP)",
                   g->client_crl, g->name);
        else if (days < soon_days)
            ks_log(KS_LOG_WARN,
                   "client_crl %s reaches its nextUpdate in %d days: after that "
                   "every edge of group %s is refused",
                   g->client_crl, days, g->name);
    }
    X509_CRL_free(crl);
    ERR_clear_error();
}

static int ks_group_tls(const ks_config *cfg, const ks_config_group *g, nng_tls_config **tls,
                        char *err, size_t errlen)
{
    lurk_tls_files f;
    struct stat st;
    char why[512] = "";

    memset(&f, 0, sizeof(f));
    f.cert = cfg->tls_cert;
    f.key = cfg->tls_key;
    f.ca = g->client_ca;
    f.crl = g->client_crl;
    f.min_version = cfg->tls_min_version;
    *tls = NULL;
    if (lurk_tls_config_from_files(1, &f, tls, why, sizeof(why)) != 0
        || ks_server_tls_pair(cfg, why, sizeof(why)) != 0) {
        lurk_errf(err, errlen, "%s: TLS for %s%s: %s", cfg->name,
                  g->implicit ? "[keyserver]" : "[edge.", g->implicit ? "" : g->name, why);
        if (*tls != NULL)
            nng_tls_config_free(*tls);
        *tls = NULL;
        return -1;
    }
    /*
     * Only a warning, unlike the signing keys: this key authenticates the
     * channel, and refusing would lock out setups that share it on purpose.
     */
    if (f.key != NULL && stat(f.key, &st) == 0 && (st.st_mode & S_IROTH) != 0)
        ks_log(KS_LOG_WARN, "tls_key %s is readable by every user; run chmod 600 %s", f.key, f.key);
    ks_group_check_dates(cfg, g);
    return 0;
}

int ks_server_check_tls(const ks_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_groups; i++) {
        nng_tls_config *tls = NULL;

        if (!cfg->groups[i].has_tls)
            continue;
        if (ks_group_tls(cfg, &cfg->groups[i], &tls, err, errlen) != 0)
            return -1;
        nng_tls_config_free(tls);
    }
    return 0;
}

/* Forget a listener struct that nng no longer listens with. */
static void ks_lst_free(ks_lst *l)
{
    if (l->tls_cfg != NULL)
        nng_tls_config_free(l->tls_cfg);
    ks_lst_groups_clear(&l->groups);
    free(l->url);
    free(l);
}

/*
 * Stop listening (nng closes the connections the listener accepted) and
 * take it off srv->lsts; the struct stays the caller's. No lock is held
 * around nng_listener_close(): it runs our pipe callbacks, which lock.
 */
static void ks_listener_detach(ks_server *srv, ks_lst *l)
{
    pthread_mutex_lock(&srv->lst_lock);
    for (ks_lst **pl = &srv->lsts; *pl != NULL; pl = &(*pl)->next)
        if (*pl == l) {
            *pl = l->next;
            break;
        }
    pthread_mutex_unlock(&srv->lst_lock);
    nng_listener_close(l->l);
}

static void ks_listener_close(ks_server *srv, ks_lst *l)
{
    ks_listener_detach(srv, l);
    ks_lst_free(l);
}

/* Open one listener; on success it is on srv->lsts. `cfg_name` names the file in errors. */
static int ks_listener_open(ks_server *srv, const char *cfg_name, const ks_lst_groups *groups,
                            const char *url, nng_tls_config *tls, const unsigned char sig[32],
                            size_t recv_max, char *err, size_t errlen)
{
    ks_lst *l = calloc(1, sizeof(*l));
    char names[256];
    int rv;

    if (l == NULL || (l->url = strdup(url)) == NULL
        || ks_lst_groups_copy(&l->groups, groups) != 0) {
        if (l != NULL)
            free(l->url);
        free(l);
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    l->tls = lurk_url_classify(url) == LURK_URL_TLS;
    memcpy(l->sig, sig, 32);
    l->recv_max = recv_max;
    if (l->tls && tls != NULL) {
        nng_tls_config_hold(tls);
        l->tls_cfg = tls;
    }
    if ((rv = nng_listener_create(&l->l, srv->sock, url)) != 0
        || (l->tls && (rv = nng_listener_set_ptr(l->l, NNG_OPT_TLS_CONFIG, tls)) != 0)
        || (rv = nng_listener_set_size(l->l, NNG_OPT_RECVMAXSZ, recv_max)) != 0) {
        lurk_errf(err, errlen, "%s: listen: cannot listen on %s: %s", cfg_name, url,
                  nng_strerror(rv));
        if (nng_listener_id(l->l) > 0)
            nng_listener_close(l->l);
        ks_lst_free(l);
        return -1;
    }
    /* Known before the first connection can arrive. */
    pthread_mutex_lock(&srv->lst_lock);
    l->next = srv->lsts;
    srv->lsts = l;
    pthread_mutex_unlock(&srv->lst_lock);
    if ((rv = nng_listener_start(l->l, 0)) != 0) {
        lurk_errf(err, errlen, "%s: listen: cannot listen on %s: %s", cfg_name, url,
                  nng_strerror(rv));
        ks_listener_close(srv, l);
        return -1;
    }
    ks_lst_groups_text(groups, names, sizeof(names));
    if (lurk_url_classify(url) == LURK_URL_TCP)
        ks_log(KS_LOG_WARN,
               "listening on %s without TLS: anyone who can reach it can use "
               "every key of group %s",
               url, names);
    return 0;
}

static ks_lst *ks_listener_find(ks_server *srv, const char *url)
{
    ks_lst *found = NULL;

    pthread_mutex_lock(&srv->lst_lock);
    for (ks_lst *l = srv->lsts; l != NULL; l = l->next)
        if (strcmp(l->url, url) == 0)
            found = l;
    pthread_mutex_unlock(&srv->lst_lock);
    return found;
}

/* Every listener of cfg: TLS configs per group, then one plan entry per URL. */
typedef struct {
    const ks_config_group *g; /* the first group of the URL (its CA and CRL) */
    const char *url;
    ks_lst_groups groups;
    nng_tls_config *tls;
    unsigned char sig[32];
    ks_lst *old; /* reload: the listener on this URL now */
} ks_plan;

static void ks_plan_free(ks_plan *plan, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (plan[i].tls != NULL)
            nng_tls_config_free(plan[i].tls);
        ks_lst_groups_clear(&plan[i].groups);
    }
    free(plan);
}

static void ks_plan_free_tls(nng_tls_config **tls, size_t n)
{
    for (size_t i = 0; tls != NULL && i < n; i++)
        if (tls[i] != NULL)
            nng_tls_config_free(tls[i]);
    free(tls);
}

/* One entry: the URL's groups in order, the TLS config of the first, its signature. */
static int ks_plan_entry(ks_server *srv, const ks_config *cfg, const char *url,
                         nng_tls_config *const *tls, ks_plan *p, char *err, size_t errlen)
{
    size_t n = ks_config_groups_of_url(cfg, url, NULL, 0);
    const ks_config_group **gs = calloc(n ? n : 1, sizeof(*gs));
    int is_tls = lurk_url_classify(url) == LURK_URL_TLS, rv = -1;

    if (gs == NULL || n == 0 || ks_config_groups_of_url(cfg, url, gs, n) != n
        || ks_lst_groups_of_cfg(&p->groups, gs, n) != 0) {
        lurk_errf(err, errlen, "out of memory");
        goto out;
    }
    p->g = gs[0];
    p->url = url;
    if (is_tls && (p->tls = tls[gs[0] - cfg->groups]) != NULL)
        nng_tls_config_hold(p->tls);
    if (ks_listener_sig(cfg, gs, n, is_tls, p->sig, err, errlen) != 0)
        goto out;
    p->old = srv != NULL ? ks_listener_find(srv, p->url) : NULL;
    rv = 0;
out:
    free(gs);
    return rv;
}

static ks_plan *ks_plan_make(ks_server *srv, const ks_config *cfg, size_t *n, char *err,
                             size_t errlen)
{
    ks_plan *plan = calloc(cfg->n_listen + 1, sizeof(*plan));
    nng_tls_config **tls = calloc(cfg->n_groups + 1, sizeof(*tls));
    size_t k = 0;

    *n = 0;
    if (plan == NULL || tls == NULL) {
        free(plan);
        free(tls);
        lurk_errf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_groups; i++) {
        if (cfg->groups[i].has_tls
            && ks_group_tls(cfg, &cfg->groups[i], &tls[i], err, errlen) != 0) {
            ks_plan_free_tls(tls, cfg->n_groups);
            ks_plan_free(plan, 0);
            return NULL;
        }
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        if (ks_plan_entry(srv, cfg, cfg->listen[i], tls, &plan[k++], err, errlen) != 0) {
            ks_plan_free_tls(tls, cfg->n_groups);
            ks_plan_free(plan, k);
            return NULL;
        }
    }
    /* Each plan entry holds its own reference. */
    ks_plan_free_tls(tls, cfg->n_groups);
    *n = k;
    return plan;
}

static int ks_plan_open(ks_server *srv, const ks_config *cfg, const ks_plan *p, char *err,
                        size_t errlen)
{
    return ks_listener_open(srv, cfg->name, &p->groups, p->url, p->tls, p->sig,
                            cfg->max_message + KS_SERVER_SP_HEADROOM, err, errlen);
}

int ks_listen_start(ks_server *srv, const ks_config *cfg, char *err, size_t errlen)
{
    size_t n = 0;
    ks_plan *plan = ks_plan_make(NULL, cfg, &n, err, errlen);
    int rv = plan != NULL ? 0 : -1;

    for (size_t i = 0; rv == 0 && i < n; i++)
        rv = ks_plan_open(srv, cfg, &plan[i], err, errlen);
    if (plan != NULL)
        ks_plan_free(plan, n);
    return rv;
}

static int ks_plan_changed(const ks_plan *p)
{
    return p->old != NULL && memcmp(p->old->sig, p->sig, 32) != 0;
}

/*
 * Undo a reload's listener work: close what it opened, and open again each
 * listener it had restarted, with the TLS configuration and limits that
 * one had. `retired[i]` is the old listener of changed plan entry i (NULL
 * when not (yet) restarted).
 */
static void ks_listen_undo(ks_server *srv, const ks_config *cfg, ks_lst **created, size_t n_created,
                           ks_lst **retired, size_t n)
{
    for (size_t j = 0; j < n_created; j++)
        ks_listener_close(srv, created[j]);
    for (size_t i = n; i-- > 0;) {
        ks_lst *old = retired[i], *now;
        char why[512] = "";

        if (old == NULL)
            continue;
        if ((now = ks_listener_find(srv, old->url)) != NULL)
            ks_listener_close(srv, now);
        if (ks_listener_open(srv, cfg->name, &old->groups, old->url, old->tls_cfg, old->sig,
                             old->recv_max, why, sizeof(why))
            == 0)
            ks_log(KS_LOG_INFO, "reload: listener %s restored as it was", old->url);
        else
            ks_log(KS_LOG_ERROR,
                   "reload: listener %s could not be restored: %s; it stays "
                   "closed until the next successful reload",
                   old->url, why);
        ks_lst_free(old);
        retired[i] = NULL;
    }
}

/*
 * A listener on a new URL opens next to the old ones, so a failure costs
 * nothing. A changed listener (group, CA, CRL, certificate or key) keeps
 * its URL, and nng cannot bind one address twice: it is closed (its
 * connections drop, so an edge whose certificate was just revoked cannot
 * keep one) and opened again. If any of this fails, the listeners opened
 * are closed and the restarted ones are opened again as they were; only
 * if the old address cannot be bound again either (taken in the
 * meantime) does that listener stay closed, logged at error.
 */
int ks_listen_prepare(ks_server *srv, const ks_config *cfg, char *err, size_t errlen)
{
    size_t n = 0, n_created = 0;
    ks_plan *plan = ks_plan_make(srv, cfg, &n, err, errlen);
    ks_lst **created = NULL, **retired = NULL;

    if (plan == NULL)
        return -1;
    if ((created = calloc(n + 1, sizeof(*created))) == NULL
        || (retired = calloc(n + 1, sizeof(*retired))) == NULL) {
        lurk_errf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (plan[i].old != NULL)
            continue;
        if (ks_plan_open(srv, cfg, &plan[i], err, errlen) != 0)
            goto fail;
        created[n_created++] = ks_listener_find(srv, plan[i].url);
    }
    for (size_t i = 0; i < n; i++) {
        char why[512] = "", names[256];

        if (!ks_plan_changed(&plan[i]))
            continue;
        ks_lst_groups_text(&plan[i].groups, names, sizeof(names));
        ks_log(KS_LOG_INFO,
               "reload: restarting listener %s (group %s): its TLS files, groups or "
               "their edges changed; its connections drop",
               plan[i].url, names);
        retired[i] = plan[i].old;
        ks_listener_detach(srv, retired[i]);
        if (ks_plan_open(srv, cfg, &plan[i], why, sizeof(why)) != 0) {
            lurk_errf(err, errlen,
                      "listener %s (group %s) could not be reopened with its new "
                      "TLS files or group: %s",
                      plan[i].url, names, why);
            goto fail;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (retired[i] != NULL)
            ks_lst_free(retired[i]);
    free(created);
    free(retired);
    ks_plan_free(plan, n);
    return 0;
fail:
    if (created != NULL && retired != NULL)
        ks_listen_undo(srv, cfg, created, n_created, retired, n);
    free(created);
    free(retired);
    ks_plan_free(plan, n);
    return -1;
}

void ks_listen_commit(ks_server *srv, const ks_config *cfg)
{
    for (;;) {
        ks_lst *gone = NULL;
        char names[256];

        pthread_mutex_lock(&srv->lst_lock);
        for (ks_lst *l = srv->lsts; l != NULL && gone == NULL; l = l->next)
            if (ks_config_group_of_url(cfg, l->url) == NULL)
                gone = l;
        pthread_mutex_unlock(&srv->lst_lock);
        if (gone == NULL)
            break;
        ks_lst_groups_text(&gone->groups, names, sizeof(names));
        ks_log(KS_LOG_INFO, "reload: closing listener %s (group %s): no longer configured",
               gone->url, names);
        ks_listener_close(srv, gone);
    }
}

void ks_listen_free_all(ks_server *srv)
{
    while (srv->lsts != NULL) {
        ks_lst *l = srv->lsts;

        srv->lsts = l->next;
        ks_lst_free(l);
    }
}

int ks_listen_pick(ks_server *srv, nng_pipe p, const ks_ident_peer *peer, char *url, size_t urllen,
                   int *tls, char group[KS_SERVER_GROUP_NAME])
{
    int id = nng_listener_id(nng_pipe_listener(p)), found = 0;

    group[0] = '\0';
    pthread_mutex_lock(&srv->lst_lock);
    for (ks_lst *l = srv->lsts; l != NULL; l = l->next) {
        long g = -1;

        if (nng_listener_id(l->l) != id)
            continue;
        snprintf(url, urllen, "%s", l->url);
        *tls = l->tls;
        found = 1;
        if (!l->tls)
            g = l->groups.n > 0 ? 0 : -1; /* no certificate: the listener's one group */
        else if (peer != NULL)
            g = ks_ident_pick(l->groups.edges, l->groups.n, peer);
        if (g >= 0)
            snprintf(group, KS_SERVER_GROUP_NAME, "%s", l->groups.names[g]);
        break;
    }
    pthread_mutex_unlock(&srv->lst_lock);
    return found;
}
