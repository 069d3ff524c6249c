/*
 * The nng server: see ks_server.h.
 *
 * Each worker owns an nng context and an aio and loops receive, answer,
 * send. A signature blocks only its own worker, nothing is locked around
 * the key, so signatures run on every core at once.
 */
#include "ks_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ks_log.h"
#include "lurk_transport.h"
#include "lurk_wire.h"

/*
 * nng counts the SP header (a 4-byte request id per hop) against its
 * receive limit: leave room for it so that a request of exactly
 * LURK_MAX_MESSAGE bytes still reaches lurk_request_decode().
 */
#define KS_SERVER_RECVMAX (LURK_MAX_MESSAGE + 64u)
/* An edge that stops reading must not hold a worker forever. */
#define KS_SERVER_SEND_TIMEOUT_MS 10000

typedef struct ks_worker {
    struct ks_server *srv;
    unsigned int index;
    pthread_t thread;
    int started;
    nng_ctx ctx;
    nng_aio *aio;
} ks_worker;

typedef struct {
    nng_listener l;
    const char *url;
    int tls;
} ks_listener;

/* A connected edge, remembered because a closed pipe no longer has an address. */
typedef struct ks_edge {
    struct ks_edge *next;
    int pipe_id;
    char peer[128];
} ks_edge;

struct ks_server {
    nng_socket sock;
    int sock_open;
    const ks_ops *ops;
    int debug_delay_ms;
    ks_listener *listeners;
    size_t n_listeners;
    ks_worker *workers;
    size_t n_workers;

    atomic_uint in_flight;
    atomic_uint peak;
    atomic_ullong answered;
    atomic_ullong refused;
    pthread_mutex_t edges_lock; /* connects and disconnects only, never a request */
    ks_edge *edges;
    unsigned int n_edges;
    int running; /* started completely: worth a summary at stop */
};

static void ks_server_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ks_server_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- peers ------------------------------------------------------------- */

static void ks_server_format_addr(const nng_sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    switch (sa->s_family) {
    case NNG_AF_INET:
        /* nng keeps address and port in network byte order, like sockaddr_in. */
        if (inet_ntop(AF_INET, &sa->s_in.sa_addr, host, sizeof(host)) == NULL)
            break;
        snprintf(buf, len, "%s:%u", host, (unsigned int)ntohs(sa->s_in.sa_port));
        return;
    case NNG_AF_INET6:
        if (inet_ntop(AF_INET6, sa->s_in6.sa_addr, host, sizeof(host)) == NULL)
            break;
        snprintf(buf, len, "[%s]:%u", host, (unsigned int)ntohs(sa->s_in6.sa_port));
        return;
    case NNG_AF_IPC:
        snprintf(buf, len, "ipc://%.96s", sa->s_ipc.sa_path);
        return;
    default:
        break;
    }
    snprintf(buf, len, "an unknown address");
}

/*
 * Who is on the other end of a pipe, for logs: "127.0.0.1:40512", or for
 * IPC the peer process, which the kernel vouches for.
 */
static void ks_server_peer(nng_pipe p, char *buf, size_t len)
{
    nng_sockaddr sa;
    uint64_t uid, pid;

    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0) {
        snprintf(buf, len, "pipe %d", nng_pipe_id(p));
        return;
    }
    if (sa.s_family == NNG_AF_IPC && nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) == 0
        && nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0) {
        snprintf(buf, len, "ipc pid %llu uid %llu", (unsigned long long)pid,
                 (unsigned long long)uid);
        return;
    }
    ks_server_format_addr(&sa, buf, len);
}

static const ks_listener *ks_server_listener_of(const ks_server *srv, nng_pipe p)
{
    int id = nng_listener_id(nng_pipe_listener(p));

    for (size_t i = 0; i < srv->n_listeners; i++)
        if (nng_listener_id(srv->listeners[i].l) == id)
            return &srv->listeners[i];
    return NULL;
}

static unsigned int ks_server_edge_add(ks_server *srv, int pipe_id, const char *peer)
{
    ks_edge *e = calloc(1, sizeof(*e));
    unsigned int n;

    pthread_mutex_lock(&srv->edges_lock);
    if (e != NULL) {
        e->pipe_id = pipe_id;
        snprintf(e->peer, sizeof(e->peer), "%s", peer);
        e->next = srv->edges;
        srv->edges = e;
    }
    n = ++srv->n_edges;
    pthread_mutex_unlock(&srv->edges_lock);
    return n;
}

/* Copies the remembered peer name into `peer` if the pipe was known. */
static unsigned int ks_server_edge_remove(ks_server *srv, int pipe_id, char *peer, size_t len)
{
    unsigned int n;

    pthread_mutex_lock(&srv->edges_lock);
    for (ks_edge **pe = &srv->edges; *pe != NULL; pe = &(*pe)->next) {
        ks_edge *e = *pe;

        if (e->pipe_id == pipe_id) {
            snprintf(peer, len, "%s", e->peer);
            *pe = e->next;
            free(e);
            if (srv->n_edges > 0)
                srv->n_edges--;
            break;
        }
    }
    n = srv->n_edges;
    pthread_mutex_unlock(&srv->edges_lock);
    return n;
}

/*
 * nng 1.5.2 tells only whether the TLS peer was verified: it exposes no
 * certificate, subject or SAN, so an edge is logged by address and by the
 * listener (hence the CA) it came through. That is all there is to log.
 */
static void ks_server_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    ks_server *srv = arg;
    const ks_listener *lst = ks_server_listener_of(srv, p);
    char peer[128];
    bool verified = false;
    int have_verified;

    ks_server_peer(p, peer, sizeof(peer));
    switch (ev) {
    case NNG_PIPE_EV_ADD_PRE:
        /*
         * Belt and braces: the TLS config already requires a verified
         * client certificate; never let an unverified TLS peer through.
         */
        if (lst != NULL && lst->tls
            && (nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified) != 0 || !verified)) {
            ks_log(KS_LOG_WARN, "edge %s on %s: TLS peer not verified, closing", peer, lst->url);
            nng_pipe_close(p);
        }
        break;
    case NNG_PIPE_EV_ADD_POST:
        have_verified = nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified) == 0;
        ks_log(KS_LOG_INFO, "edge connected: %s on %s%s (pipe %d, %u connected)", peer,
               lst != NULL ? lst->url : "an unknown listener",
               !have_verified ? "" : verified ? ", TLS client certificate verified"
                                              : ", TLS client certificate NOT verified",
               nng_pipe_id(p), ks_server_edge_add(srv, nng_pipe_id(p), peer));
        break;
    case NNG_PIPE_EV_REM_POST: {
        unsigned int n = ks_server_edge_remove(srv, nng_pipe_id(p), peer, sizeof(peer));

        ks_log(KS_LOG_INFO, "edge disconnected: %s (pipe %d, %u connected)", peer,
               nng_pipe_id(p), n);
        break;
    }
    default:
        break;
    }
}

/* ---- workers ----------------------------------------------------------- */

static void ks_server_note_start(ks_server *srv)
{
    unsigned int now = atomic_fetch_add(&srv->in_flight, 1) + 1;
    unsigned int peak = atomic_load(&srv->peak);

    while (now > peak && !atomic_compare_exchange_weak(&srv->peak, &peak, now))
        ;
}

/* Decode, decide, and pack the answer into a fresh message. */
static nng_msg *ks_server_answer(ks_server *srv, nng_msg *msg)
{
    char peer[128];
    Lurk__V1__Request *req;
    Lurk__V1__Status status;
    const char *why = NULL;
    ks_ops_answer ans;
    nng_msg *reply = NULL;
    size_t size;

    ks_server_peer(nng_msg_get_pipe(msg), peer, sizeof(peer));
    req = lurk_request_decode(nng_msg_body(msg), nng_msg_len(msg), &status, &why);
    if (req == NULL || status != LURK__V1__STATUS__STATUS_OK) {
        /* Answer with the request id when there is one, so the edge can match it. */
        ks_ops_refuse(&ans, req != NULL ? req->id : 0, status, why);
        ks_log(KS_LOG_INFO, "refused %s from %s: %s: %s", req != NULL ? ks_ops_name(req)
               : "request", peer, lurk_status_name(status), ans.detail);
    } else {
        if (srv->debug_delay_ms > 0 && ks_ops_is_private(req))
            nng_msleep((nng_duration)srv->debug_delay_ms);
        ks_ops_handle(srv->ops, req, peer, &ans);
    }
    size = lurk__v1__response__get_packed_size(&ans.resp);
    if (size > LURK_MAX_MESSAGE) {
        ks_log(KS_LOG_ERROR, "answer to %s is %zu bytes, over the LURK limit", peer, size);
        ks_ops_answer_clear(&ans);
        ks_ops_refuse(&ans, ans.resp.id, LURK__V1__STATUS__STATUS_INTERNAL,
                      "answer over the size limit");
        size = lurk__v1__response__get_packed_size(&ans.resp);
    }
    if (nng_msg_alloc(&reply, size) == 0)
        lurk__v1__response__pack(&ans.resp, nng_msg_body(reply));
    else
        ks_log(KS_LOG_ERROR, "out of memory answering %s", peer);
    if (ans.resp.status == LURK__V1__STATUS__STATUS_OK)
        atomic_fetch_add(&srv->answered, 1);
    else
        atomic_fetch_add(&srv->refused, 1);
    /*
     * The premaster is wiped here; the copy in `reply` is freed by nng
     * unwiped once sent, which no code of ours can reach.
     */
    ks_ops_answer_clear(&ans);
    if (req != NULL)
        lurk__v1__request__free_unpacked(req, NULL);
    return reply;
}

static void *ks_server_worker(void *arg)
{
    ks_worker *w = arg;
    ks_server *srv = w->srv;

    for (;;) {
        nng_msg *msg, *reply;
        int rv;

        nng_aio_set_timeout(w->aio, NNG_DURATION_INFINITE);
        nng_ctx_recv(w->ctx, w->aio);
        nng_aio_wait(w->aio);
        if ((rv = nng_aio_result(w->aio)) != 0) {
            if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
                break;
            ks_log(KS_LOG_WARN, "worker %u: receive: %s", w->index, nng_strerror(rv));
            nng_msleep(10); /* do not spin on a persistent error */
            continue;
        }
        msg = nng_aio_get_msg(w->aio);
        ks_server_note_start(srv);
        reply = ks_server_answer(srv, msg);
        nng_msg_free(msg);
        /* Counted as busy while deciding and signing, not while nng sends. */
        atomic_fetch_sub(&srv->in_flight, 1);
        if (reply != NULL) {
            nng_aio_set_msg(w->aio, reply);
            nng_aio_set_timeout(w->aio, KS_SERVER_SEND_TIMEOUT_MS);
            nng_ctx_send(w->ctx, w->aio);
            nng_aio_wait(w->aio);
            if ((rv = nng_aio_result(w->aio)) != 0) {
                /* On failure the message is still ours. */
                nng_msg_free(nng_aio_get_msg(w->aio));
                nng_aio_set_msg(w->aio, NULL);
                if (rv != NNG_ECLOSED)
                    ks_log(KS_LOG_DEBUG, "worker %u: answer not sent: %s", w->index,
                           nng_strerror(rv));
            }
        }
        if (rv == NNG_ECLOSED)
            break;
    }
    return NULL;
}

static int ks_server_start_workers(ks_server *srv, unsigned int n, char *err, size_t errlen)
{
    int rv;

    if ((srv->workers = calloc(n, sizeof(*srv->workers))) == NULL) {
        ks_server_errf(err, errlen, "out of memory for %u workers", n);
        return -1;
    }
    srv->n_workers = n;
    for (unsigned int i = 0; i < n; i++) {
        ks_worker *w = &srv->workers[i];

        w->srv = srv;
        w->index = i;
        if ((rv = nng_ctx_open(&w->ctx, srv->sock)) != 0
            || (rv = nng_aio_alloc(&w->aio, NULL, NULL)) != 0) {
            ks_server_errf(err, errlen, "worker %u: %s", i, nng_strerror(rv));
            return -1;
        }
        if ((rv = pthread_create(&w->thread, NULL, ks_server_worker, w)) != 0) {
            ks_server_errf(err, errlen, "cannot start worker %u of %u: %s", i + 1, n,
                           strerror(rv));
            return -1;
        }
        w->started = 1;
    }
    return 0;
}

/* ---- listeners --------------------------------------------------------- */

static void ks_server_tls_files(const ks_config *cfg, lurk_tls_files *f)
{
    struct stat st;

    memset(f, 0, sizeof(*f));
    f->cert = cfg->tls_cert;
    f->key = cfg->tls_key;
    f->ca = cfg->client_ca;
    f->crl = cfg->client_crl;
    /*
     * Only a warning, unlike the signing keys: this key authenticates the
     * channel, and refusing would lock out setups that share it on purpose.
     */
    if (f->key != NULL && stat(f->key, &st) == 0 && (st.st_mode & S_IROTH) != 0)
        ks_log(KS_LOG_WARN, "tls_key %s is readable by every user; run chmod 600 %s", f->key,
               f->key);
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
        ks_server_errf(err, errlen, "tls_cert %s does not match tls_key %s", cfg->tls_cert,
                       cfg->tls_key);
    } else {
        if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
            ks_log(KS_LOG_WARN, "tls_cert %s has expired: edges will refuse it",
                   cfg->tls_cert);
        rv = 0;
    }
    ERR_clear_error();
    X509_free(cert);
    EVP_PKEY_free(key);
    return rv;
}

int ks_server_check_tls(const ks_config *cfg, char *err, size_t errlen)
{
    lurk_tls_files f;
    nng_tls_config *tls = NULL;

    if (!cfg->has_tls)
        return 0;
    ks_server_tls_files(cfg, &f);
    if (lurk_tls_config_make(1, &f, &tls, err, errlen) != 0
        || ks_server_tls_pair(cfg, err, errlen) != 0) {
        if (tls != NULL)
            nng_tls_config_free(tls);
        return -1;
    }
    nng_tls_config_free(tls);
    return 0;
}

static int ks_server_listen(ks_server *srv, const ks_config *cfg, char *err, size_t errlen)
{
    nng_tls_config *tls = NULL;
    char why[512];
    int rv = 0;

    if (cfg->has_tls) {
        lurk_tls_files f;

        ks_server_tls_files(cfg, &f);
        why[0] = '\0';
        if (lurk_tls_config_make(1, &f, &tls, why, sizeof(why)) != 0
            || ks_server_tls_pair(cfg, why, sizeof(why)) != 0) {
            ks_server_errf(err, errlen, "%s: TLS: %s", cfg->name, why);
            if (tls != NULL)
                nng_tls_config_free(tls);
            return -1;
        }
    }
    if ((srv->listeners = calloc(cfg->n_listen, sizeof(*srv->listeners))) == NULL) {
        ks_server_errf(err, errlen, "out of memory");
        rv = -1;
        goto out;
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        ks_listener *lst = &srv->listeners[i];

        lst->url = cfg->listen[i];
        lst->tls = lurk_url_classify(lst->url) == LURK_URL_TLS;
        if ((rv = nng_listener_create(&lst->l, srv->sock, lst->url)) != 0
            || (lst->tls && (rv = nng_listener_set_ptr(lst->l, NNG_OPT_TLS_CONFIG, tls)) != 0)
            || (rv = nng_listener_start(lst->l, 0)) != 0) {
            ks_server_errf(err, errlen, "%s: listen: cannot listen on %s: %s", cfg->name,
                           lst->url, nng_strerror(rv));
            rv = -1;
            goto out;
        }
        srv->n_listeners++;
        if (lurk_url_classify(lst->url) == LURK_URL_TCP)
            ks_log(KS_LOG_WARN, "listening on %s without TLS: anyone who can reach it can "
                   "use every key", lst->url);
    }
out:
    if (tls != NULL)
        nng_tls_config_free(tls); /* each listener holds its own reference */
    return rv;
}

/* ---- life cycle -------------------------------------------------------- */

int ks_server_start(const ks_config *cfg, const ks_ops *ops, int debug_delay_ms,
                    ks_server **out, char *err, size_t errlen)
{
    ks_server *srv = calloc(1, sizeof(*srv));
    int rv;

    *out = NULL;
    if (srv == NULL) {
        ks_server_errf(err, errlen, "out of memory");
        return -1;
    }
    srv->ops = ops;
    srv->debug_delay_ms = debug_delay_ms;
    pthread_mutex_init(&srv->edges_lock, NULL);
    if ((rv = nng_rep0_open(&srv->sock)) != 0) {
        ks_server_errf(err, errlen, "cannot open the nng socket: %s", nng_strerror(rv));
        ks_server_stop(srv);
        return -1;
    }
    srv->sock_open = 1;
    if ((rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, KS_SERVER_RECVMAX)) != 0
        || (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, ks_server_pipe_event, srv)) != 0
        || (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_POST, ks_server_pipe_event, srv)) != 0
        || (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, ks_server_pipe_event, srv)) != 0) {
        ks_server_errf(err, errlen, "nng socket setup: %s", nng_strerror(rv));
        ks_server_stop(srv);
        return -1;
    }
    /* Workers first: a request arriving as soon as we listen finds one waiting. */
    if (ks_server_start_workers(srv, cfg->workers, err, errlen) != 0
        || ks_server_listen(srv, cfg, err, errlen) != 0) {
        ks_server_stop(srv);
        return -1;
    }
    srv->running = 1;
    *out = srv;
    return 0;
}

void ks_server_stop(ks_server *srv)
{
    if (srv == NULL)
        return;
    /* Closing the socket fails every pending receive and send with NNG_ECLOSED. */
    if (srv->sock_open)
        nng_close(srv->sock);
    for (size_t i = 0; i < srv->n_workers; i++) {
        ks_worker *w = &srv->workers[i];

        if (w->started)
            pthread_join(w->thread, NULL);
        if (w->aio != NULL)
            nng_aio_free(w->aio);
    }
    if (srv->running)
        ks_log(KS_LOG_INFO, "stopped: %llu requests answered, %llu refused, peak %u of %zu "
               "workers busy", (unsigned long long)atomic_load(&srv->answered),
               (unsigned long long)atomic_load(&srv->refused), atomic_load(&srv->peak),
               srv->n_workers);
    while (srv->edges != NULL) {
        ks_edge *e = srv->edges;

        srv->edges = e->next;
        free(e);
    }
    pthread_mutex_destroy(&srv->edges_lock);
    free(srv->workers);
    free(srv->listeners);
    free(srv);
}
