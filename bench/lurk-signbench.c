/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk-signbench: drives a LURK key server the way edges do, through the
 * same client code (proto/lurk_transport.h), and measures what it answers.
 *
 *   --op sign   K Sign requests in flight at all times (lurk_client_start),
 *               over one or more connections, each a valid TLS 1.3 server
 *               CertificateVerify context with a fresh transcript hash:
 *               signatures per second and latency percentiles.
 *   --op ping   the same with Ping (the key server's round trip, no key).
 *   --op echo   sequential requests to an nng echo server started with
 *               --serve-echo, from a bare nng req0 socket (nng_sendmsg,
 *               nng_recvmsg) with the same mutual TLS: the bare nng tls+tcp
 *               req/rep round trip, with no LURK code at either end.
 *   --op echo-client  the same through the edges' client code
 *               (lurk_client_call_raw): the client's own cost on top.
 *
 * Output: one line of key=value pairs, e.g.
 *   ops=81234 errors=0 seconds=5.000 rate=16246.8 p50_ms=1.9 p90_ms=... p99_ms=...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "bench_stats.h"
#include "lurk_tls.h"
#include "lurk_transport.h"
#include "lurk_wire.h"

enum { OP_SIGN, OP_PING, OP_ECHO, OP_ECHO_CLIENT };

static struct {
    const char *url, *cert, *key, *ca, *server_name, *key_id, *serve;
    unsigned int scheme;
    int op, inflight, clients, verify, size, timeout_ms, quiet;
    double duration, warmup;
    long count, gap_us;
} opt = {
    .server_name = "localhost",
    .key_id = "rsa",
    .scheme = 0x0804,
    .op = OP_SIGN,
    .inflight = 32,
    .clients = 1,
    .verify = 3,
    .size = 200,
    .timeout_ms = 10000,
    .duration = 5.0,
    .warmup = 0.5,
};

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("lurk-signbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *out)
{
    fputs("Usage: lurk-signbench --url URL --cert EDGE.crt --key EDGE.key --ca CA.crt [options]\n"
          "       lurk-signbench --serve-echo URL --cert SRV.crt --key SRV.key --ca CA.crt\n"
          "  -u, --url URL            key server (or echo server) URL\n"
          "      --cert/--key/--ca F  mutual TLS files, as in the lurk provider's section\n"
          "      --server-name NAME   name expected in the server certificate (localhost)\n"
          "  -o, --op OP              sign, ping, echo (bare nng req0), echo-client\n"
          "                           (echo through the edges' client code) (sign)\n"
          "  -k, --key-id ID          key to sign with (rsa)\n"
          "  -s, --scheme CODE        TLS SignatureScheme, e.g. 0x0804 0x0403 0x0807 (0x0804)\n"
          "  -i, --inflight K         requests in flight (32; echo is always 1)\n"
          "  -C, --clients N          client connections sharing them (1)\n"
          "  -d, --duration S         measure for S seconds (5)\n"
          "  -w, --warmup S           run S seconds before measuring (0.5)\n"
          "  -n, --count N            measure N requests instead of a duration\n"
          "      --verify N           check the first N signatures with the public key (3)\n"
          "      --size B             echo payload bytes (200)\n"
          "      --gap-us U           echo: wait U microseconds between requests (0), so\n"
          "                           that threads sleep between them as in handshakes\n"
          "      --serve-echo URL     run a bare nng rep0 echo server until SIGTERM\n"
          "Prints one line: ops= errors= seconds= rate= p50_ms= p90_ms= p99_ms= mean_ms= max_ms=\n",
          out);
}

static void parse_args(int argc, char **argv)
{
    enum { O_CERT = 256, O_KEY, O_CA, O_SNI, O_VERIFY, O_SIZE, O_SERVE, O_TIMEOUT, O_GAP };
    static const struct option lo[] = { { "url", required_argument, 0, 'u' },
                                        { "cert", required_argument, 0, O_CERT },
                                        { "key", required_argument, 0, O_KEY },
                                        { "ca", required_argument, 0, O_CA },
                                        { "server-name", required_argument, 0, O_SNI },
                                        { "op", required_argument, 0, 'o' },
                                        { "key-id", required_argument, 0, 'k' },
                                        { "scheme", required_argument, 0, 's' },
                                        { "inflight", required_argument, 0, 'i' },
                                        { "clients", required_argument, 0, 'C' },
                                        { "duration", required_argument, 0, 'd' },
                                        { "warmup", required_argument, 0, 'w' },
                                        { "count", required_argument, 0, 'n' },
                                        { "verify", required_argument, 0, O_VERIFY },
                                        { "size", required_argument, 0, O_SIZE },
                                        { "serve-echo", required_argument, 0, O_SERVE },
                                        { "gap-us", required_argument, 0, O_GAP },
                                        { "timeout-ms", required_argument, 0, O_TIMEOUT },
                                        { "quiet", no_argument, 0, 'q' },
                                        { "help", no_argument, 0, 'h' },
                                        { 0, 0, 0, 0 } };
    int ch;

    while ((ch = getopt_long(argc, argv, "u:o:k:s:i:C:d:w:n:qh", lo, NULL)) != -1) {
        switch (ch) {
        case 'u': opt.url = optarg; break;
        case O_CERT: opt.cert = optarg; break;
        case O_KEY: opt.key = optarg; break;
        case O_CA: opt.ca = optarg; break;
        case O_SNI: opt.server_name = optarg; break;
        case 'o':
            if (strcmp(optarg, "sign") == 0)
                opt.op = OP_SIGN;
            else if (strcmp(optarg, "ping") == 0)
                opt.op = OP_PING;
            else if (strcmp(optarg, "echo") == 0)
                opt.op = OP_ECHO;
            else if (strcmp(optarg, "echo-client") == 0)
                opt.op = OP_ECHO_CLIENT;
            else
                die("--op takes sign, ping, echo or echo-client");
            break;
        case 'k': opt.key_id = optarg; break;
        case 's': opt.scheme = (unsigned int)strtoul(optarg, NULL, 0); break;
        case 'i': opt.inflight = atoi(optarg); break;
        case 'C': opt.clients = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'n': opt.count = atol(optarg); break;
        case O_VERIFY: opt.verify = atoi(optarg); break;
        case O_SIZE: opt.size = atoi(optarg); break;
        case O_SERVE: opt.serve = optarg; break;
        case O_GAP: opt.gap_us = atol(optarg); break;
        case O_TIMEOUT: opt.timeout_ms = atoi(optarg); break;
        case 'q': opt.quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || (opt.url == NULL && opt.serve == NULL) || opt.ca == NULL
        || opt.inflight < 1 || opt.inflight > 4096 || opt.clients < 1 || opt.clients > 64
        || opt.size < 1 || opt.size > 60000 || (opt.count <= 0 && opt.duration <= 0)) {
        usage(stderr);
        exit(2);
    }
    if (opt.op == OP_ECHO || opt.op == OP_ECHO_CLIENT)
        opt.inflight = 1;
}

/* ---- the bare echo server ------------------------------------------------ */

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
    (void)sig;
    stop_sig = 1;
}

/*
 * The echo answers from nng's callback that received the request, on a few
 * contexts: the fastest way to answer with nng, the way the key server
 * answers, so that the reference round trip is not slowed by a hand-off.
 */
#define ECHO_CTXS 4

typedef struct {
    nng_ctx ctx;
    nng_aio *aio;
    int sending;
} echo_slot;

static atomic_ulong echo_count;

static void echo_cb(void *arg)
{
    echo_slot *e = arg;
    int rv = nng_aio_result(e->aio);

    if (e->sending) {
        if (rv != 0)
            nng_msg_free(nng_aio_get_msg(e->aio));
        e->sending = 0;
        nng_ctx_recv(e->ctx, e->aio);
        return;
    }
    if (rv != 0) {
        if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
            nng_ctx_recv(e->ctx, e->aio);
        return;
    }
    atomic_fetch_add(&echo_count, 1);
    e->sending = 1;
    nng_ctx_send(e->ctx, e->aio); /* the received message, as it is */
}

static int serve_echo(void)
{
    lurk_tls_files f = { .cert = opt.cert, .key = opt.key, .ca = opt.ca };
    nng_tls_config *tls = NULL;
    nng_socket sock;
    nng_listener l;
    echo_slot slots[ECHO_CTXS] = { 0 };
    unsigned long n = 0;
    char err[256];
    int rv;

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if ((rv = nng_rep0_open(&sock)) != 0)
        die("nng_rep0_open: %s", nng_strerror(rv));
    if (lurk_url_classify(opt.serve) == LURK_URL_TLS
        && lurk_tls_config_from_files(1, &f, &tls, err, sizeof(err)) != 0)
        die("%s", err);
    if ((rv = nng_listener_create(&l, sock, opt.serve)) != 0
        || (tls != NULL && (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls)) != 0)
        || (rv = nng_listener_start(l, 0)) != 0)
        die("listen on %s: %s", opt.serve, nng_strerror(rv));
    if (tls != NULL)
        nng_tls_config_free(tls);
    for (int i = 0; i < ECHO_CTXS; i++) {
        if ((rv = nng_ctx_open(&slots[i].ctx, sock)) != 0
            || (rv = nng_aio_alloc(&slots[i].aio, echo_cb, &slots[i])) != 0)
            die("nng: %s", nng_strerror(rv));
        nng_ctx_recv(slots[i].ctx, slots[i].aio);
    }
    fprintf(stderr, "lurk-signbench: echo server ready on %s\n", opt.serve);
    while (!stop_sig)
        nng_msleep(50);
    nng_close(sock);
    for (int i = 0; i < ECHO_CTXS; i++)
        nng_aio_free(slots[i].aio);
    n = atomic_load(&echo_count);
    fprintf(stderr, "lurk-signbench: echo server answered %lu requests\n", n);
    return 0;
}

/* ---- the load ------------------------------------------------------------ */

/* 64 spaces, the context string, a zero byte, a SHA-256 transcript hash. */
#define CV_PREFIX 64
#define CV_LABEL  "TLS 1.3, server CertificateVerify"
#define CV_HASH   32
#define CV_LEN    (CV_PREFIX + sizeof(CV_LABEL) - 1 + 1 + CV_HASH)

typedef struct {
    int idx;
    lurk_client *client;
    lurk_pending *p;
    double t0;
    int counted;
    Lurk__V1__Request req;
    Lurk__V1__SignRequest sign;
    Lurk__V1__PingRequest ping;
    uint8_t tbs[CV_LEN];
    uint8_t payload[16];
} slot;

/* Completion queue: nng threads push slot numbers, the main thread pops. */
static struct {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int *ring;
    size_t head, tail, cap;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0 };

static void on_done(void *arg)
{
    slot *s = arg;

    pthread_mutex_lock(&q.m);
    q.ring[q.tail++ % q.cap] = s->idx;
    pthread_cond_signal(&q.cv);
    pthread_mutex_unlock(&q.m);
}

static int q_pop(double deadline)
{
    int idx = -1;

    pthread_mutex_lock(&q.m);
    while (q.head == q.tail) {
        struct timespec ts;
        double d = deadline;

        /* CLOCK_REALTIME deadline for pthread_cond_timedwait */
        clock_gettime(CLOCK_REALTIME, &ts);
        d = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + (deadline - now_s());
        if (deadline - now_s() <= 0)
            break;
        ts.tv_sec = (time_t)d;
        ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&q.cv, &q.m, &ts);
    }
    if (q.head != q.tail)
        idx = q.ring[q.head++ % q.cap];
    pthread_mutex_unlock(&q.m);
    return idx;
}

/*
 * Transcript hashes: a random per-process prefix and a counter, so that no
 * two requests (in this run or another) carry the same bytes; key servers
 * refuse a replayed handshake context.
 */
static uint8_t run_prefix[16];
static uint64_t tbs_counter;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    /* xorshift64*: transcript hashes need only be different, not secret */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void slot_fill(slot *s)
{
    lurk__v1__request__init(&s->req);
    if (opt.op == OP_SIGN) {
        lurk__v1__sign_request__init(&s->sign);
        memset(s->tbs, 0x20, CV_PREFIX);
        memcpy(s->tbs + CV_PREFIX, CV_LABEL, sizeof(CV_LABEL) - 1);
        s->tbs[CV_PREFIX + sizeof(CV_LABEL) - 1] = 0;
        {
            uint8_t *h = s->tbs + CV_LEN - CV_HASH;
            uint64_t ctr = ++tbs_counter, r = rng();

            memcpy(h, run_prefix, 16);
            memcpy(h + 16, &ctr, 8);
            memcpy(h + 24, &r, 8);
        }
        s->sign.key_id = (char *)opt.key_id;
        s->sign.scheme = opt.scheme;
        s->sign.tbs.data = s->tbs;
        s->sign.tbs.len = CV_LEN;
        s->req.op_case = LURK__V1__REQUEST__OP_SIGN;
        s->req.sign = &s->sign;
    } else {
        lurk__v1__ping_request__init(&s->ping);
        memcpy(s->payload, "lurk-signbench..", sizeof(s->payload));
        s->ping.payload.data = s->payload;
        s->ping.payload.len = sizeof(s->payload);
        s->req.op_case = LURK__V1__REQUEST__OP_PING;
        s->req.ping = &s->ping;
    }
}

static EVP_PKEY *pubkey;
static int verified;

static EVP_PKEY *fetch_pubkey(lurk_client *c)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__GetPublicKeyRequest get = LURK__V1__GET_PUBLIC_KEY_REQUEST__INIT;
    Lurk__V1__Response *resp = NULL;
    const unsigned char *p;
    EVP_PKEY *pk;
    char err[512];

    get.key_id = (char *)opt.key_id;
    req.op_case = LURK__V1__REQUEST__OP_GET_PUBLIC_KEY;
    req.get_public_key = &get;
    if (lurk_client_call(c, &req, LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY, &resp, err,
                         sizeof(err))
        != LURK_CALL_OK)
        die("public key of \"%s\": %s", opt.key_id, err);
    p = resp->get_public_key->spki.data;
    pk = d2i_PUBKEY(NULL, &p, (long)resp->get_public_key->spki.len);
    lurk__v1__response__free_unpacked(resp, NULL);
    if (pk == NULL)
        die("public key of \"%s\" does not decode", opt.key_id);
    return pk;
}

static void verify_sig(const slot *s, const uint8_t *sig, size_t len)
{
    const lurk_scheme *sc = lurk_scheme_find(opt.scheme);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    int ok;

    if (sc == NULL || m == NULL)
        die("cannot verify scheme 0x%04x", opt.scheme);
    ok = EVP_DigestVerifyInit_ex(m, &pc, sc->md, NULL, NULL, pubkey, NULL) == 1;
    if (ok && sc->padding == LURK_PAD_PSS)
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0
            && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) > 0;
    ok = ok && EVP_DigestVerify(m, sig, len, s->tbs, CV_LEN) == 1;
    EVP_MD_CTX_free(m);
    if (!ok)
        die("signature %d by \"%s\" (scheme 0x%04x) does not verify", verified + 1, opt.key_id,
            opt.scheme);
    verified++;
}

typedef struct {
    double *v;
    size_t n, cap;
} lat_vec;

static void lat_add(lat_vec *l, double ms)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8192;
        double *nv = realloc(l->v, cap * sizeof(*nv));

        if (nv == NULL)
            die("out of memory");
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = ms;
}

/* Requests answered, warm-up included: the divisor of the channel's counters. */
static unsigned long ops_all;

static void report(lat_vec *l, unsigned long errors, double secs, const char *first_err)
{
    double sum = 0;
    unsigned long sends, records;

    qsort(l->v, l->n, sizeof(double), cmp_double);
    for (size_t i = 0; i < l->n; i++)
        sum += l->v[i];
    printf("ops=%zu errors=%lu seconds=%.3f rate=%.1f p50_ms=%.4f p90_ms=%.4f p99_ms=%.4f "
           "mean_ms=%.4f max_ms=%.4f inflight=%d clients=%d verified=%d",
           l->n, errors, secs, secs > 0 ? (double)l->n / secs : 0.0, pct(l->v, l->n, 50),
           pct(l->v, l->n, 90), pct(l->v, l->n, 99), l->n ? sum / (double)l->n : 0.0,
           l->n ? l->v[l->n - 1] : 0.0, opt.inflight, opt.clients, verified);
    /* this process's side of tls+tcp: plaintext pieces and records per request */
    lurk_tls_counters(&sends, &records);
    if (ops_all > 0 && sends > 0)
        printf(" tls_pieces_per_op=%.2f tls_records_per_op=%.2f", (double)sends / (double)ops_all,
               (double)records / (double)ops_all);
    printf("\n");
    if (first_err != NULL && !opt.quiet)
        fprintf(stderr, "lurk-signbench: %lu errors, first: %s\n", errors, first_err);
}

/* One echo through the edges' client code, or through a bare nng req0 socket. */
static int echo_client(void *arg, const uint8_t *buf, size_t len, size_t *outlen, char *err,
                       size_t errlen)
{
    uint8_t *out = NULL;
    int ok = lurk_client_call_raw(arg, buf, len, &out, outlen, err, errlen) == LURK_CALL_OK;

    free(out);
    return ok;
}

static int echo_bare(void *arg, const uint8_t *buf, size_t len, size_t *outlen, char *err,
                     size_t errlen)
{
    nng_socket *sock = arg;
    nng_msg *m;
    int rv;

    if ((rv = nng_msg_alloc(&m, len)) != 0)
        goto fail;
    memcpy(nng_msg_body(m), buf, len);
    if ((rv = nng_sendmsg(*sock, m, 0)) != 0) {
        nng_msg_free(m);
        goto fail;
    }
    if ((rv = nng_recvmsg(*sock, &m, 0)) != 0)
        goto fail;
    *outlen = nng_msg_len(m);
    nng_msg_free(m);
    return 1;
fail:
    snprintf(err, errlen, "nng: %s", nng_strerror(rv));
    return 0;
}

static void bare_open(nng_socket *sock)
{
    lurk_tls_files f = { .cert = opt.cert,
                         .key = opt.key,
                         .ca = opt.ca,
                         .server_name = opt.server_name ? opt.server_name : "127.0.0.1" };
    nng_tls_config *tls = NULL;
    nng_dialer d;
    char err[256];
    int rv;

    if ((rv = nng_req0_open(sock)) != 0)
        die("nng_req0_open: %s", nng_strerror(rv));
    if (lurk_url_classify(opt.url) == LURK_URL_TLS
        && lurk_tls_config_from_files(0, &f, &tls, err, sizeof(err)) != 0)
        die("%s", err);
    nng_socket_set_ms(*sock, NNG_OPT_RECVTIMEO, opt.timeout_ms > 0 ? opt.timeout_ms : 2000);
    nng_socket_set_ms(*sock, NNG_OPT_SENDTIMEO, opt.timeout_ms > 0 ? opt.timeout_ms : 2000);
    if ((rv = nng_dialer_create(&d, *sock, opt.url)) != 0
        || (tls != NULL && (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls)) != 0)
        || (rv = nng_dialer_start(d, 0)) != 0)
        die("dial %s: %s", opt.url, nng_strerror(rv));
    if (tls != NULL)
        nng_tls_config_free(tls);
}

typedef int (*echo_fn)(void *arg, const uint8_t *buf, size_t len, size_t *outlen, char *err,
                       size_t errlen);

static void run_echo(echo_fn echo, void *arg)
{
    uint8_t *buf = malloc((size_t)opt.size);
    size_t outlen = 0;
    lat_vec l = { 0 };
    unsigned long errors = 0, n = 0;
    char err[512], first[512] = "";
    double t_measure, t_end, t0, t;

    if (buf == NULL)
        die("out of memory");
    memset(buf, 0xa5, (size_t)opt.size);
    t_measure = now_s() + opt.warmup;
    t_end = t_measure + (opt.count > 0 ? 1e9 : opt.duration);
    for (;;) {
        t0 = now_s();
        if (opt.count > 0 ? (t0 >= t_measure && (long)l.n >= opt.count) : t0 >= t_end)
            break;
        if (!echo(arg, buf, (size_t)opt.size, &outlen, err, sizeof(err))
            || outlen != (size_t)opt.size) {
            if (first[0] == '\0')
                snprintf(first, sizeof(first), "%s", err);
            errors++;
            if (errors > 100)
                break;
        } else {
            ops_all++;
            if (t0 >= t_measure) {
                t = now_s();
                lat_add(&l, (t - t0) * 1e3);
            }
        }
        n++;
        if (opt.gap_us > 0) {
            struct timespec ts = { opt.gap_us / 1000000, (opt.gap_us % 1000000) * 1000 };

            nanosleep(&ts, NULL);
        }
    }
    report(&l, errors, opt.count > 0 ? now_s() - t_measure : opt.duration, first[0] ? first : NULL);
    free(l.v);
    free(buf);
}

/* When new requests may start, and which ones are measured. */
typedef struct {
    double t_measure, t_end;
    long started_counted;
} load_state;

static int slot_start(slot *s, load_state *ld)
{
    double now = now_s();
    char err[512];

    if (opt.count > 0) {
        if (now >= ld->t_measure && ld->started_counted >= opt.count)
            return 0;
        s->counted = now >= ld->t_measure;
        if (s->counted)
            ld->started_counted++;
    } else {
        if (now >= ld->t_end)
            return 0;
        s->counted = now >= ld->t_measure;
    }
    slot_fill(s);
    s->t0 = now;
    if ((s->p = lurk_client_start(s->client, &s->req, on_done, s, err, sizeof(err))) == NULL)
        die("start: %s", err);
    return 1;
}

int main(int argc, char **argv)
{
    lurk_client **clients;
    char *urls[2];
    slot *slots;
    lat_vec l = { 0 };
    unsigned long errors = 0;
    int active = 0;
    char err[512], first[512] = "";
    load_state ld = { 0, 0, 0 };
    double t_stop;

    signal(SIGPIPE, SIG_IGN);
    parse_args(argc, argv);
    if (RAND_bytes(run_prefix, sizeof(run_prefix)) != 1
        || RAND_bytes((unsigned char *)&rng_state, sizeof(rng_state)) != 1)
        die("RAND_bytes");
    rng_state |= 1;
    if (opt.serve != NULL)
        return serve_echo();
    if (opt.op == OP_ECHO) {
        nng_socket sock;

        bare_open(&sock);
        run_echo(echo_bare, &sock);
        nng_close(sock);
        return 0;
    }
    urls[0] = (char *)opt.url;
    urls[1] = NULL;
    if ((clients = calloc((size_t)opt.clients, sizeof(*clients))) == NULL)
        die("out of memory");
    for (int i = 0; i < opt.clients; i++) {
        lurk_client_conf conf = {
            .urls = urls,
            .tls = { .cert = opt.cert,
                     .key = opt.key,
                     .ca = opt.ca,
                     .server_name = opt.server_name },
            .timeout_ms = opt.timeout_ms,
        };

        if (lurk_client_new(&conf, &clients[i], err, sizeof(err)) != 0)
            die("%s", err);
    }
    if (opt.op == OP_ECHO_CLIENT) {
        run_echo(echo_client, clients[0]);
        lurk_client_free(clients[0]);
        free(clients);
        return 0;
    }
    if (opt.op == OP_SIGN && opt.verify > 0) {
        if (lurk_scheme_find(opt.scheme) == NULL)
            die("unknown scheme 0x%04x", opt.scheme);
        pubkey = fetch_pubkey(clients[0]);
    }
    /* Every connection up before the clock starts. */
    for (int i = 0; i < opt.clients; i++) {
        Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
        Lurk__V1__PingRequest ping = LURK__V1__PING_REQUEST__INIT;
        Lurk__V1__Response *resp = NULL;

        req.op_case = LURK__V1__REQUEST__OP_PING;
        req.ping = &ping;
        if (lurk_client_call(clients[i], &req, LURK__V1__RESPONSE__RESULT_PING, &resp, err,
                             sizeof(err))
            != LURK_CALL_OK)
            die("ping: %s", err);
        lurk__v1__response__free_unpacked(resp, NULL);
    }
    q.cap = (size_t)opt.inflight + 1;
    if ((q.ring = calloc(q.cap, sizeof(int))) == NULL
        || (slots = calloc((size_t)opt.inflight, sizeof(*slots))) == NULL)
        die("out of memory");
    ld.t_measure = now_s() + opt.warmup;
    ld.t_end = ld.t_measure + (opt.count > 0 ? 1e9 : opt.duration);
    t_stop = opt.count > 0 ? 1e18 : ld.t_end + 30;
    for (int i = 0; i < opt.inflight; i++) {
        slot *s = &slots[i];

        s->idx = i;
        s->client = clients[i % opt.clients];
    }
    for (int i = 0; i < opt.inflight; i++)
        active += slot_start(&slots[i], &ld);
    while (active > 0) {
        int idx = q_pop(t_stop);
        slot *s;
        Lurk__V1__Response *resp = NULL;
        lurk_call_result r;
        double now;

        if (idx < 0) {
            if (first[0] == '\0')
                snprintf(first, sizeof(first), "%d requests never completed", active);
            errors += (unsigned long)active;
            break;
        }
        s = &slots[idx];
        active--;
        r = lurk_pending_finish(s->p,
                                opt.op == OP_SIGN ? LURK__V1__RESPONSE__RESULT_SIGN
                                                  : LURK__V1__RESPONSE__RESULT_PING,
                                &resp, err, sizeof(err));
        now = now_s();
        if (r == LURK_CALL_OK) {
            ops_all++;
            if (opt.op == OP_SIGN && verified < opt.verify)
                verify_sig(s, resp->sign->signature.data, resp->sign->signature.len);
            if (s->counted)
                lat_add(&l, (now - s->t0) * 1e3);
        } else {
            errors++;
            if (first[0] == '\0')
                snprintf(first, sizeof(first), "%s", err);
        }
        if (resp != NULL)
            lurk__v1__response__free_unpacked(resp, NULL);
        if (errors <= 1000)
            active += slot_start(s, &ld);
    }
    report(&l, errors, opt.count > 0 ? now_s() - ld.t_measure : opt.duration,
           first[0] ? first : NULL);
    for (int i = 0; i < opt.clients; i++)
        lurk_client_free(clients[i]);
    EVP_PKEY_free(pubkey);
    free(l.v);
    free(slots);
    free(q.ring);
    free(clients);
    return errors > 0 && l.n == 0 ? 1 : 0;
}
