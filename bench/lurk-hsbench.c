/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk-hsbench: a TLS handshake load generator.
 *
 * N concurrent connections, each a loop of: connect, full handshake (no
 * session ticket, no session reuse), optionally one HTTP/1.0 request read to
 * the end, close_notify, close, reconnect. Non-blocking sockets on one epoll
 * per thread. Reports the handshake rate and the latency of each handshake,
 * measured from connect() to the end of SSL_do_handshake on the client.
 *
 * Output: one line of key=value pairs on stdout, e.g.
 *   handshakes=5321 errors=0 seconds=5.001 rate=1064.0 p50_ms=28.1 p90_ms=... p99_ms=...
 * so that scripts can parse it with a single regular expression.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "bench_stats.h"

typedef struct {
    const char *host;
    int port;
    int conns;
    int threads;
    double duration; /* seconds of measurement, after warmup */
    double warmup;   /* seconds not counted */
    long count;      /* total handshakes to measure instead of a duration */
    int tls_version; /* 0 (any), TLS1_2_VERSION or TLS1_3_VERSION */
    const char *sigalgs, *ciphers, *ciphersuites, *groups, *servername, *cafile;
    int http;
    int linger0;
    int quiet;
} hs_opts;

static hs_opts opt = {
    .host = "127.0.0.1",
    .port = 0,
    .conns = 1,
    .threads = 1,
    .duration = 5.0,
    .warmup = 0.5,
    .count = 0,
    .servername = "localhost",
};

enum { ST_CONNECT, ST_HANDSHAKE, ST_WRITE, ST_READ, ST_SHUTDOWN };

typedef struct {
    int fd;
    SSL *ssl;
    int state;
    double t0;   /* connect() */
    double t_hs; /* handshake done */
    size_t sent;
    int counted; /* started inside the measurement window */
} hs_conn;

typedef struct {
    int index;
    int nconns;
    SSL_CTX *ctx;
    pthread_t thread;
    int ep;
    hs_conn *c;
    /* results */
    double *lat; /* handshake latencies of counted handshakes, ms */
    size_t nlat, caplat;
    unsigned long errors, reused;
    char first_err[256];
} hs_thread;

static double t_start, t_measure, t_end;
static atomic_long started_counted; /* count mode: handshakes started */
static atomic_int stop_now;
static char neg_proto[32], neg_cipher[64], neg_sig[64], neg_group[64];
static pthread_mutex_t neg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sockaddr_in dst;

static const char request[] = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("lurk-hsbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static void usage(FILE *out)
{
    fputs("Usage: lurk-hsbench -p PORT [options]\n"
          "  -H, --host ADDR        server IPv4 address (127.0.0.1)\n"
          "  -p, --port PORT        server port (required)\n"
          "  -c, --conns N          concurrent connections (1)\n"
          "  -T, --threads N        client threads sharing the connections (1)\n"
          "  -d, --duration S       measure for S seconds (5)\n"
          "  -w, --warmup S         run S seconds before measuring (0.5)\n"
          "  -n, --count N          measure N handshakes instead of a duration\n"
          "  -V, --tls 1.2|1.3      only this TLS version (default: any)\n"
          "      --sigalgs LIST     signature algorithms offered (OpenSSL syntax)\n"
          "      --ciphers LIST     TLS 1.2 cipher list\n"
          "      --ciphersuites L   TLS 1.3 cipher suites\n"
          "      --groups LIST      key exchange groups\n"
          "      --servername NAME  SNI (localhost)\n"
          "      --cafile FILE      verify the server chain against FILE (default: no\n"
          "                         chain check; the handshake signature is always verified)\n"
          "      --http             send GET / HTTP/1.0 and read the answer to the end\n"
          "      --linger0          close with RST (no TIME_WAIT) instead of FIN\n"
          "  -q, --quiet            no progress on stderr\n"
          "Every handshake is a full one: no session tickets, no session cache.\n"
          "Prints one line: handshakes= errors= seconds= rate= p50_ms= p90_ms= p99_ms=\n"
          "mean_ms= max_ms= reused= proto= cipher= sigalg= group=\n",
          out);
}

static void parse_args(int argc, char **argv)
{
    enum { O_SIGALGS = 256, O_CIPHERS, O_SUITES, O_GROUPS, O_SNI, O_CA, O_HTTP, O_LINGER };
    static const struct option lo[] = { { "host", required_argument, 0, 'H' },
                                        { "port", required_argument, 0, 'p' },
                                        { "conns", required_argument, 0, 'c' },
                                        { "threads", required_argument, 0, 'T' },
                                        { "duration", required_argument, 0, 'd' },
                                        { "warmup", required_argument, 0, 'w' },
                                        { "count", required_argument, 0, 'n' },
                                        { "tls", required_argument, 0, 'V' },
                                        { "sigalgs", required_argument, 0, O_SIGALGS },
                                        { "ciphers", required_argument, 0, O_CIPHERS },
                                        { "ciphersuites", required_argument, 0, O_SUITES },
                                        { "groups", required_argument, 0, O_GROUPS },
                                        { "servername", required_argument, 0, O_SNI },
                                        { "cafile", required_argument, 0, O_CA },
                                        { "http", no_argument, 0, O_HTTP },
                                        { "linger0", no_argument, 0, O_LINGER },
                                        { "quiet", no_argument, 0, 'q' },
                                        { "help", no_argument, 0, 'h' },
                                        { 0, 0, 0, 0 } };
    int ch;

    while ((ch = getopt_long(argc, argv, "H:p:c:T:d:w:n:V:qh", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'c': opt.conns = atoi(optarg); break;
        case 'T': opt.threads = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'n': opt.count = atol(optarg); break;
        case 'V':
            if (strcmp(optarg, "1.2") == 0)
                opt.tls_version = TLS1_2_VERSION;
            else if (strcmp(optarg, "1.3") == 0)
                opt.tls_version = TLS1_3_VERSION;
            else
                die("--tls takes 1.2 or 1.3");
            break;
        case O_SIGALGS: opt.sigalgs = optarg; break;
        case O_CIPHERS: opt.ciphers = optarg; break;
        case O_SUITES: opt.ciphersuites = optarg; break;
        case O_GROUPS: opt.groups = optarg; break;
        case O_SNI: opt.servername = optarg; break;
        case O_CA: opt.cafile = optarg; break;
        case O_HTTP: opt.http = 1; break;
        case O_LINGER: opt.linger0 = 1; break;
        case 'q': opt.quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.conns < 1 || opt.conns > 4096
        || opt.threads < 1 || opt.threads > opt.conns || (opt.count <= 0 && opt.duration <= 0)
        || opt.warmup < 0) {
        usage(stderr);
        exit(2);
    }
    memset(&dst, 0, sizeof(dst));
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1)
        die("bad IPv4 address %s", opt.host);
}

static SSL_CTX *make_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        die("SSL_CTX_new");
    /* Full handshakes only: no tickets, no client session cache. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (opt.tls_version != 0
        && (!SSL_CTX_set_min_proto_version(ctx, opt.tls_version)
            || !SSL_CTX_set_max_proto_version(ctx, opt.tls_version)))
        die("cannot restrict the TLS version");
    if (opt.sigalgs != NULL && !SSL_CTX_set1_sigalgs_list(ctx, opt.sigalgs))
        die("bad --sigalgs %s", opt.sigalgs);
    if (opt.ciphers != NULL && !SSL_CTX_set_cipher_list(ctx, opt.ciphers))
        die("bad --ciphers %s", opt.ciphers);
    if (opt.ciphersuites != NULL && !SSL_CTX_set_ciphersuites(ctx, opt.ciphersuites))
        die("bad --ciphersuites %s", opt.ciphersuites);
    if (opt.groups != NULL && !SSL_CTX_set1_groups_list(ctx, opt.groups))
        die("bad --groups %s", opt.groups);
    if (opt.cafile != NULL) {
        if (!SSL_CTX_load_verify_locations(ctx, opt.cafile, NULL))
            die("cannot load %s", opt.cafile);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

static void record_error(hs_thread *t, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[160] = "";

    t->errors++;
    if (t->first_err[0] == '\0') {
        if (e != 0)
            ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(t->first_err, sizeof(t->first_err), "%s%s%s", what, buf[0] ? ": " : "", buf);
    }
    ERR_clear_error();
}

static void add_lat(hs_thread *t, double ms)
{
    if (t->nlat == t->caplat) {
        size_t cap = t->caplat ? t->caplat * 2 : 4096;
        double *n = realloc(t->lat, cap * sizeof(*n));

        if (n == NULL)
            die("out of memory");
        t->lat = n;
        t->caplat = cap;
    }
    t->lat[t->nlat++] = ms;
}

static void conn_close(hs_thread *t, hs_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->fd = -1;
}

/* Whether a new handshake may start now; marks it counted if it is measured. */
static int may_start(hs_conn *c, double now)
{
    if (atomic_load(&stop_now))
        return 0;
    if (opt.count > 0) {
        if (now < t_measure) {
            c->counted = 0;
            return 1;
        }
        if (atomic_fetch_add(&started_counted, 1) >= opt.count)
            return 0;
        c->counted = 1;
        return 1;
    }
    if (now >= t_end)
        return 0;
    c->counted = now >= t_measure;
    return 1;
}

static void set_events(hs_thread *t, hs_conn *c, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = c };

    if (epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &e) != 0)
        die("epoll_ctl: %s", strerror(errno));
}

/* Starts a connection; 0 when no more should start. */
static int conn_start(hs_thread *t, hs_conn *c)
{
    struct epoll_event e = { .events = EPOLLOUT, .data.ptr = c };
    int one = 1;
    double now = now_s();

    if (!may_start(c, now))
        return 0;
    if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        die("socket: %s", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (opt.linger0) {
        struct linger l = { 1, 0 };

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    c->t0 = now;
    c->sent = 0;
    c->state = ST_CONNECT;
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS) {
        char why[96];

        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        close(c->fd);
        c->fd = -1;
        record_error(t, why);
        /* do not spin on a refused port: the caller retries on the next loop */
        return -1;
    }
    if ((c->ssl = SSL_new(t->ctx)) == NULL || !SSL_set_fd(c->ssl, c->fd))
        die("SSL_new");
    if (opt.servername != NULL && opt.servername[0] != '\0')
        SSL_set_tlsext_host_name(c->ssl, opt.servername);
    SSL_set_connect_state(c->ssl);
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &e) != 0)
        die("epoll_ctl: %s", strerror(errno));
    return 1;
}

static void note_negotiated(SSL *ssl)
{
    int nid;
    const char *s;

    pthread_mutex_lock(&neg_lock);
    if (neg_proto[0] == '\0') {
        snprintf(neg_proto, sizeof(neg_proto), "%s", SSL_get_version(ssl));
        snprintf(neg_cipher, sizeof(neg_cipher), "%s", SSL_get_cipher_name(ssl));
        s = NULL;
        if (SSL_get_peer_signature_type_nid(ssl, &nid))
            s = OBJ_nid2sn(nid);
        snprintf(neg_sig, sizeof(neg_sig), "%s", s != NULL ? s : "?");
        if (SSL_get_peer_signature_nid(ssl, &nid) && nid != NID_undef
            && strcmp(neg_sig, "RSA-PSS") == 0) {
            /* RSA-PSS+SHA256 reads better than RSA-PSS alone */
            size_t l = strlen(neg_sig);
            snprintf(neg_sig + l, sizeof(neg_sig) - l, "+%s", OBJ_nid2sn(nid));
        } else if (SSL_get_peer_signature_nid(ssl, &nid) && nid != NID_undef
                   && strcmp(neg_sig, "ED25519") != 0) {
            size_t l = strlen(neg_sig);
            snprintf(neg_sig + l, sizeof(neg_sig) - l, "+%s", OBJ_nid2sn(nid));
        }
        s = SSL_group_to_name(ssl, SSL_get_negotiated_group(ssl));
        snprintf(neg_group, sizeof(neg_group), "%s", s != NULL ? s : "?");
    }
    pthread_mutex_unlock(&neg_lock);
}

/* Advances one connection; returns 1 when it is finished (closed). */
static int conn_step(hs_thread *t, hs_conn *c, uint32_t revents)
{
    int r = 0, err;
    char buf[4096];

    if (c->state == ST_CONNECT) {
        int soerr = 0;
        socklen_t l = sizeof(soerr);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &l) != 0 || soerr != 0) {
            char why[96];

            snprintf(why, sizeof(why), "connect: %s", strerror(soerr ? soerr : errno));
            record_error(t, why);
            conn_close(t, c);
            return 1;
        }
        c->state = ST_HANDSHAKE;
    }
    (void)revents;
    for (;;) {
        switch (c->state) {
        case ST_HANDSHAKE:
            r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                c->t_hs = now_s();
                if (SSL_session_reused(c->ssl))
                    t->reused++;
                if (c->counted)
                    add_lat(t, (c->t_hs - c->t0) * 1e3);
                note_negotiated(c->ssl);
                c->state = opt.http ? ST_WRITE : ST_SHUTDOWN;
                continue;
            }
            break;
        case ST_WRITE:
            r = SSL_write(c->ssl, request + c->sent, (int)(sizeof(request) - 1 - c->sent));
            if (r > 0) {
                c->sent += (size_t)r;
                if (c->sent == sizeof(request) - 1)
                    c->state = ST_READ;
                continue;
            }
            break;
        case ST_READ:
            r = SSL_read(c->ssl, buf, sizeof(buf));
            if (r > 0)
                continue;
            err = SSL_get_error(c->ssl, r);
            if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
                || (err == SSL_ERROR_SSL
                    && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
                /* the server closed after answering: done */
                ERR_clear_error();
                c->state = ST_SHUTDOWN;
                continue;
            }
            break;
        case ST_SHUTDOWN:
            /* one close_notify, no waiting for the peer's */
            (void)SSL_shutdown(c->ssl);
            ERR_clear_error();
            conn_close(t, c);
            return 1;
        }
        err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ) {
            set_events(t, c, EPOLLIN);
            return 0;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
            set_events(t, c, EPOLLOUT);
            return 0;
        }
        record_error(t, c->state == ST_HANDSHAKE ? "handshake" : "request");
        conn_close(t, c);
        return 1;
    }
}

static void *thread_main(void *arg)
{
    hs_thread *t = arg;
    struct epoll_event ev[64];
    int active = 0;
    double next_retry = 0;

    if ((t->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1: %s", strerror(errno));
    for (int i = 0; i < t->nconns; i++) {
        t->c[i].fd = -1;
        if (conn_start(t, &t->c[i]) == 1)
            active++;
    }
    for (;;) {
        double now = now_s();
        int n, timeout_ms = 50;

        if (active < t->nconns && now >= next_retry) {
            /* connections that failed to start (refused) or ended */
            for (int i = 0; i < t->nconns; i++) {
                if (t->c[i].fd < 0) {
                    int r = conn_start(t, &t->c[i]);

                    if (r == 1)
                        active++;
                    else if (r < 0)
                        next_retry = now + 0.05;
                }
            }
        }
        if (active == 0
            && (atomic_load(&stop_now) || (opt.count <= 0 && now >= t_end)
                || (opt.count > 0 && atomic_load(&started_counted) >= opt.count)))
            break;
        n = epoll_wait(t->ep, ev, 64, timeout_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            hs_conn *c = ev[i].data.ptr;

            if (conn_step(t, c, ev[i].events)) {
                active--;
                if (conn_start(t, c) == 1)
                    active++;
            }
        }
        /* a stuck server must not hang the benchmark forever */
        if (opt.count <= 0 && now_s() > t_end + 30) {
            for (int i = 0; i < t->nconns; i++)
                if (t->c[i].fd >= 0) {
                    record_error(t, "still open 30 s after the end");
                    conn_close(t, &t->c[i]);
                }
            break;
        }
    }
    close(t->ep);
    return NULL;
}

int main(int argc, char **argv)
{
    hs_thread *th;
    double *all, sum = 0, secs;
    size_t n = 0;
    unsigned long errors = 0, reused = 0;
    const char *first_err = NULL;

    signal(SIGPIPE, SIG_IGN);
    parse_args(argc, argv);
    if ((th = calloc((size_t)opt.threads, sizeof(*th))) == NULL)
        die("out of memory");
    t_start = now_s();
    t_measure = t_start + opt.warmup;
    t_end = t_measure + (opt.count > 0 ? 1e9 : opt.duration);
    for (int i = 0; i < opt.threads; i++) {
        hs_thread *t = &th[i];

        t->index = i;
        t->nconns = opt.conns / opt.threads + (i < opt.conns % opt.threads);
        t->ctx = make_ctx();
        if ((t->c = calloc((size_t)t->nconns, sizeof(*t->c))) == NULL)
            die("out of memory");
        if (pthread_create(&t->thread, NULL, thread_main, t) != 0)
            die("pthread_create");
    }
    for (int i = 0; i < opt.threads; i++) {
        pthread_join(th[i].thread, NULL);
        n += th[i].nlat;
        errors += th[i].errors;
        reused += th[i].reused;
        if (first_err == NULL && th[i].first_err[0] != '\0')
            first_err = th[i].first_err;
    }
    /* count mode: the measurement ends when the last counted handshake does */
    secs = opt.count > 0 ? now_s() - t_measure : opt.duration;
    if ((all = malloc((n ? n : 1) * sizeof(*all))) == NULL)
        die("out of memory");
    n = 0;
    for (int i = 0; i < opt.threads; i++) {
        memcpy(all + n, th[i].lat, th[i].nlat * sizeof(*all));
        n += th[i].nlat;
        free(th[i].lat);
        free(th[i].c);
        SSL_CTX_free(th[i].ctx);
    }
    qsort(all, n, sizeof(*all), cmp_double);
    for (size_t i = 0; i < n; i++)
        sum += all[i];
    printf("handshakes=%zu errors=%lu seconds=%.3f rate=%.1f p50_ms=%.3f p90_ms=%.3f "
           "p99_ms=%.3f mean_ms=%.3f max_ms=%.3f reused=%lu proto=%s cipher=%s sigalg=%s "
           "group=%s conns=%d\n",
           n, errors, secs, secs > 0 ? (double)n / secs : 0.0, pct(all, n, 50), pct(all, n, 90),
           pct(all, n, 99), n ? sum / (double)n : 0.0, n ? all[n - 1] : 0.0, reused,
           neg_proto[0] ? neg_proto : "-", neg_cipher[0] ? neg_cipher : "-",
           neg_sig[0] ? neg_sig : "-", neg_group[0] ? neg_group : "-", opt.conns);
    if (first_err != NULL && !opt.quiet)
        fprintf(stderr, "lurk-hsbench: %lu errors, first: %s\n", errors, first_err);
    free(all);
    free(th);
    return errors > 0 && n == 0 ? 1 : 0;
}
