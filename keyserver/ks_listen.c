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

/* What a listener depends on: its URL's group and, for TLS, the contents of its files. */
static int ks_listener_sig(const ks_config *cfg, const ks_config_group *g, int tls,
                           unsigned char out[32], char *err, size_t errlen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    const char *files[4] = { cfg->tls_cert, cfg->tls_key, g->client_ca, g->client_crl };
    int rv = -1;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(md, g->name, strlen(g->name) + 1) != 1)
        goto out;
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
static int ks_listener_open(ks_server *srv, const char *cfg_name, const char *group,
                            const char *url, nng_tls_config *tls, const unsigned char sig[32],
                            size_t recv_max, char *err, size_t errlen)
{
    ks_lst *l = calloc(1, sizeof(*l));
    int rv;

    if (l == NULL || (l->url = strdup(url)) == NULL) {
        free(l);
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(l->group, sizeof(l->group), "%s", group);
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
    if (lurk_url_classify(url) == LURK_URL_TCP)
        ks_log(KS_LOG_WARN,
               "listening on %s without TLS: anyone who can reach it can use "
               "every key of group %s",
               url, group);
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

/* Every listener of cfg: TLS configs per group, then open. */
typedef struct {
    const ks_config_group *g;
    const char *url;
    nng_tls_config *tls;
    unsigned char sig[32];
    ks_lst *old; /* reload: the listener on this URL now */
} ks_plan;

static void ks_plan_free(ks_plan *plan, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (plan[i].tls != NULL)
            nng_tls_config_free(plan[i].tls);
    free(plan);
}

static ks_plan *ks_plan_make(ks_server *srv, const ks_config *cfg, size_t *n, char *err,
                             size_t errlen)
{
    ks_plan *plan = calloc(cfg->n_listen + 1, sizeof(*plan));
    size_t k = 0;

    *n = 0;
    if (plan == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_groups; i++) {
        const ks_config_group *g = &cfg->groups[i];
        nng_tls_config *tls = NULL;

        if (g->has_tls && ks_group_tls(cfg, g, &tls, err, errlen) != 0) {
            ks_plan_free(plan, k);
            return NULL;
        }
        for (size_t j = 0; j < g->n_listen; j++) {
            ks_plan *p = &plan[k++];
            int is_tls = lurk_url_classify(g->listen[j]) == LURK_URL_TLS;

            p->g = g;
            p->url = g->listen[j];
            if (is_tls) {
                nng_tls_config_hold(tls);
                p->tls = tls;
            }
            if (ks_listener_sig(cfg, g, is_tls, p->sig, err, errlen) != 0) {
                if (tls != NULL)
                    nng_tls_config_free(tls);
                ks_plan_free(plan, k);
                return NULL;
            }
            p->old = srv != NULL ? ks_listener_find(srv, p->url) : NULL;
        }
        if (tls != NULL)
            nng_tls_config_free(tls); /* each plan entry holds its own reference */
    }
    *n = k;
    return plan;
}

static int ks_plan_open(ks_server *srv, const ks_config *cfg, const ks_plan *p, char *err,
                        size_t errlen)
{
    return ks_listener_open(srv, cfg->name, p->g->name, p->url, p->tls, p->sig,
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
        if (ks_listener_open(srv, cfg->name, old->group, old->url, old->tls_cfg, old->sig,
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
        char why[512] = "";

        if (!ks_plan_changed(&plan[i]))
            continue;
        ks_log(KS_LOG_INFO,
               "reload: restarting listener %s (group %s): its TLS files or "
               "group changed; its connections drop",
               plan[i].url, plan[i].g->name);
        retired[i] = plan[i].old;
        ks_listener_detach(srv, retired[i]);
        if (ks_plan_open(srv, cfg, &plan[i], why, sizeof(why)) != 0) {
            lurk_errf(err, errlen,
                      "listener %s (group %s) could not be reopened with its new "
                      "TLS files or group: %s",
                      plan[i].url, plan[i].g->name, why);
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

        pthread_mutex_lock(&srv->lst_lock);
        for (ks_lst *l = srv->lsts; l != NULL && gone == NULL; l = l->next)
            if (ks_config_group_of_url(cfg, l->url) == NULL)
                gone = l;
        pthread_mutex_unlock(&srv->lst_lock);
        if (gone == NULL)
            break;
        ks_log(KS_LOG_INFO, "reload: closing listener %s (group %s): no longer configured",
               gone->url, gone->group);
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
