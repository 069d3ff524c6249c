/*
 * nng transport for LURK: URL rules, mutual TLS and the req/rep client.
 */
#include "lurk_transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

struct lurk_client {
    nng_socket sock;
    int timeout_ms;
};

static void lurk_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int lurk_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

lurk_url_kind lurk_url_classify(const char *url)
{
    const char *rest;

    if (url == NULL)
        return LURK_URL_INVALID;
    if (lurk_has_prefix(url, "tls+tcp://") || lurk_has_prefix(url, "tls+tcp4://")
        || lurk_has_prefix(url, "tls+tcp6://")) {
        rest = strstr(url, "://") + 3;
        /* host:port with a port; nng itself validates the rest. */
        return strrchr(rest, ':') != NULL && rest[0] != '\0' ? LURK_URL_TLS : LURK_URL_INVALID;
    }
    if (lurk_has_prefix(url, "ipc://"))
        return url[6] != '\0' ? LURK_URL_IPC : LURK_URL_INVALID;
    if (lurk_has_prefix(url, "tcp://") || lurk_has_prefix(url, "tcp4://")
        || lurk_has_prefix(url, "tcp6://")) {
        rest = strstr(url, "://") + 3;
        return strrchr(rest, ':') != NULL && rest[0] != '\0' ? LURK_URL_TCP : LURK_URL_INVALID;
    }
    return LURK_URL_INVALID;
}

void lurk_url_list_free(char **urls)
{
    if (urls == NULL)
        return;
    for (char **u = urls; *u != NULL; u++)
        free(*u);
    free(urls);
}

char **lurk_url_list_parse(const char *text, int allow_insecure, char *err, size_t errlen)
{
    static const char seps[] = " \t,";
    char **urls = NULL;
    size_t n = 0;
    const char *p = text;

    if (text == NULL) {
        lurk_errf(err, errlen, "no URL given");
        return NULL;
    }
    while (*p != '\0') {
        size_t len;
        char *url, **grown;
        lurk_url_kind kind;

        p += strspn(p, seps);
        len = strcspn(p, seps);
        if (len == 0)
            break;
        url = strndup(p, len);
        grown = url != NULL ? realloc(urls, (n + 2) * sizeof(*urls)) : NULL;
        if (grown == NULL) {
            free(url);
            lurk_errf(err, errlen, "out of memory");
            goto fail;
        }
        urls = grown;
        urls[n++] = url;
        urls[n] = NULL;
        p += len;
        kind = lurk_url_classify(url);
        if (kind == LURK_URL_INVALID) {
            lurk_errf(err, errlen, "\"%s\" is not a LURK URL (tls+tcp://host:port, ipc:///path, "
                      "or tcp://host:port with allow_insecure)", url);
            goto fail;
        }
        if (kind == LURK_URL_TCP && !allow_insecure) {
            lurk_errf(err, errlen, "\"%s\" is cleartext TCP: use tls+tcp://, or set "
                      "allow_insecure = yes if you really mean it", url);
            goto fail;
        }
    }
    if (n == 0) {
        lurk_errf(err, errlen, "no URL given");
        goto fail;
    }
    return urls;
fail:
    lurk_url_list_free(urls);
    return NULL;
}

/* Whole file, NUL-terminated, as mbed TLS wants PEM. */
static char *lurk_read_file(const char *path, size_t *lenp, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;

    if (f == NULL) {
        lurk_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || len > (1L << 20)
        || fseek(f, 0, SEEK_SET) != 0) {
        lurk_errf(err, errlen, "cannot read %s (or larger than 1 MiB)", path);
        goto out;
    }
    buf = malloc((size_t)len + 1);
    if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        lurk_errf(err, errlen, "cannot read %s", path);
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[len] = '\0';
    if (lenp != NULL)
        *lenp = (size_t)len;
out:
    fclose(f);
    return buf;
}

static void lurk_free_secret(char *buf)
{
    if (buf == NULL)
        return;
    /* volatile so the wipe of key bytes is not optimised away */
    for (volatile char *p = buf; *p != '\0'; p++)
        *p = 0;
    free(buf);
}

int lurk_tls_config_make(int server, const lurk_tls_files *files, nng_tls_config **out,
                         char *err, size_t errlen)
{
    nng_tls_config *cfg = NULL;
    char *cert = NULL, *key = NULL, *ca = NULL, *crl = NULL;
    int rv;

    *out = NULL;
    /*
     * A client without a certificate is allowed here only so that the key
     * server's refusal of such an edge can be tested and diagnosed.
     */
    if (files->ca == NULL || (server && (files->cert == NULL || files->key == NULL))
        || ((files->cert == NULL) != (files->key == NULL))) {
        lurk_errf(err, errlen, "mutual TLS needs a certificate, its key and a CA file");
        return -1;
    }
    if ((files->cert != NULL && (cert = lurk_read_file(files->cert, NULL, err, errlen)) == NULL)
        || (files->key != NULL && (key = lurk_read_file(files->key, NULL, err, errlen)) == NULL)
        || (ca = lurk_read_file(files->ca, NULL, err, errlen)) == NULL
        || (files->crl != NULL && (crl = lurk_read_file(files->crl, NULL, err, errlen)) == NULL))
        goto fail;
    if ((rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT)) != 0) {
        lurk_errf(err, errlen, "TLS setup: %s", nng_strerror(rv));
        goto fail;
    }
    if (cert != NULL && (rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
        lurk_errf(err, errlen, "certificate %s with key %s: %s (RSA or ECDSA, PEM, unencrypted)",
                  files->cert, files->key, nng_strerror(rv));
        goto fail;
    }
    if ((rv = nng_tls_config_ca_chain(cfg, ca, crl)) != 0) {
        lurk_errf(err, errlen, "CA file %s%s%s: %s", files->ca, crl ? " with CRL " : "",
                  crl ? files->crl : "", nng_strerror(rv));
        goto fail;
    }
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0
        || (!server && files->server_name != NULL
            && (rv = nng_tls_config_server_name(cfg, files->server_name)) != 0)) {
        lurk_errf(err, errlen, "TLS setup: %s", nng_strerror(rv));
        goto fail;
    }
    lurk_free_secret(key);
    free(cert);
    free(ca);
    free(crl);
    *out = cfg;
    return 0;
fail:
    if (cfg != NULL)
        nng_tls_config_free(cfg);
    lurk_free_secret(key);
    free(cert);
    free(ca);
    free(crl);
    return -1;
}

/* The host part of tls+tcp://host:port, used as the expected server name. */
static char *lurk_url_host(const char *url)
{
    const char *h = strstr(url, "://"), *end;

    if (h == NULL)
        return NULL;
    h += 3;
    if (*h == '[') {
        end = strchr(h, ']');
        return end != NULL ? strndup(h + 1, (size_t)(end - h - 1)) : NULL;
    }
    end = strrchr(h, ':');
    return end != NULL ? strndup(h, (size_t)(end - h)) : NULL;
}

int lurk_client_new(const lurk_client_conf *conf, lurk_client **out, char *err, size_t errlen)
{
    lurk_client *c;
    int rv;

    *out = NULL;
    if (conf->urls == NULL || conf->urls[0] == NULL) {
        lurk_errf(err, errlen, "no key server URL configured");
        return -1;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    c->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 2000;
    if ((rv = nng_req0_open(&c->sock)) != 0) {
        lurk_errf(err, errlen, "cannot open nng socket: %s", nng_strerror(rv));
        free(c);
        return -1;
    }
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, LURK_MAX_MESSAGE);
    /*
     * nng resends a request that got no answer; within one call's deadline a
     * resend only doubles the work on a slow key server, so leave it to the
     * deadline (the caller's retry policy decides).
     */
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 100);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 2000);

    for (char *const *u = conf->urls; *u != NULL; u++) {
        nng_dialer d;
        nng_tls_config *tls = NULL;
        char *host = NULL;

        if ((rv = nng_dialer_create(&d, c->sock, *u)) != 0) {
            lurk_errf(err, errlen, "key server URL %s: %s", *u, nng_strerror(rv));
            goto fail;
        }
        if (lurk_url_classify(*u) == LURK_URL_TLS) {
            lurk_tls_files f = conf->tls;

            if (f.server_name == NULL)
                f.server_name = host = lurk_url_host(*u);
            rv = lurk_tls_config_make(0, &f, &tls, err, errlen);
            free(host);
            if (rv != 0)
                goto fail;
            rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls);
            nng_tls_config_free(tls); /* the dialer holds its own reference */
            if (rv != 0) {
                lurk_errf(err, errlen, "key server URL %s: %s", *u, nng_strerror(rv));
                goto fail;
            }
        }
        /*
         * Non-blocking: a key server that is down now must not fail the
         * client; nng keeps redialling and each call has its deadline.
         */
        if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
            lurk_errf(err, errlen, "key server URL %s: %s", *u, nng_strerror(rv));
            goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    nng_close(c->sock);
    free(c);
    return -1;
}

void lurk_client_free(lurk_client *c)
{
    if (c == NULL)
        return;
    nng_close(c->sock);
    free(c);
}

static uint64_t lurk_next_id(void)
{
    static _Atomic uint32_t counter;

    /* Random high half so that two edges' ids do not collide in logs. */
    return ((uint64_t)nng_random() << 32) | (uint32_t)(++counter);
}

/*
 * A call in flight. Two references: the caller's (dropped by finish or
 * abandon) and the nng callback chain's (dropped when the answer, an error
 * or the deadline arrives), so that a caller may walk away, as an ASYNC
 * job freed by SSL_free does, without a late answer touching freed memory.
 */
struct lurk_pending {
    pthread_mutex_t lock;
    int refs;
    _Atomic int done;
    int sending;
    int rv;
    int timeout_ms;
    uint64_t id;
    nng_time deadline;
    nng_ctx ctx;
    nng_aio *aio;
    nng_msg *reply;
    lurk_done_fn done_fn;  /* NULL once abandoned */
    void *done_arg;
};

static void lurk_pending_release(lurk_pending *p)
{
    int left;

    pthread_mutex_lock(&p->lock);
    left = --p->refs;
    pthread_mutex_unlock(&p->lock);
    if (left > 0)
        return;
    nng_msg_free(p->reply);
    nng_ctx_close(p->ctx);
    /* reap, not free: this may run inside the aio's own callback */
    nng_aio_reap(p->aio);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static void lurk_pending_complete(lurk_pending *p, int rv)
{
    pthread_mutex_lock(&p->lock);
    p->rv = rv;
    p->done = 1;
    if (p->done_fn != NULL)
        p->done_fn(p->done_arg);
    pthread_mutex_unlock(&p->lock);
    lurk_pending_release(p);
}

/* nng's thread: send done -> receive; receive done -> complete. */
static void lurk_pending_cb(void *arg)
{
    lurk_pending *p = arg;
    int rv = nng_aio_result(p->aio);
    nng_time now;

    if (p->sending) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(p->aio));
            nng_aio_set_msg(p->aio, NULL);
            lurk_pending_complete(p, rv);
            return;
        }
        p->sending = 0;
        now = nng_clock();
        nng_aio_set_timeout(p->aio, now < p->deadline ? (nng_duration)(p->deadline - now) : 1);
        nng_ctx_recv(p->ctx, p->aio);
        return;
    }
    if (rv == 0)
        p->reply = nng_aio_get_msg(p->aio);
    lurk_pending_complete(p, rv);
}

/* Consumes msg. */
static lurk_pending *lurk_pending_start(lurk_client *c, nng_msg *msg, uint64_t id,
                                        lurk_done_fn done, void *arg, char *err, size_t errlen)
{
    lurk_pending *p = calloc(1, sizeof(*p));
    int rv;

    if (p == NULL) {
        nng_msg_free(msg);
        lurk_errf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->refs = 2;
    p->id = id;
    p->timeout_ms = c->timeout_ms;
    p->deadline = nng_clock() + (nng_time)c->timeout_ms;
    p->done_fn = done;
    p->done_arg = arg;
    p->sending = 1;
    if ((rv = nng_ctx_open(&p->ctx, c->sock)) != 0
        || (rv = nng_aio_alloc(&p->aio, lurk_pending_cb, p)) != 0) {
        if (p->ctx.id != 0)
            nng_ctx_close(p->ctx);
        nng_msg_free(msg);
        pthread_mutex_destroy(&p->lock);
        free(p);
        lurk_errf(err, errlen, "nng: %s", nng_strerror(rv));
        return NULL;
    }
    nng_aio_set_msg(p->aio, msg);
    nng_aio_set_timeout(p->aio, c->timeout_ms);
    nng_ctx_send(p->ctx, p->aio);
    return p;
}

lurk_pending *lurk_client_start(lurk_client *c, Lurk__V1__Request *req, lurk_done_fn done,
                                void *arg, char *err, size_t errlen)
{
    nng_msg *msg;

    req->version = LURK_PROTOCOL_VERSION;
    req->id = lurk_next_id();
    if (nng_msg_alloc(&msg, lurk__v1__request__get_packed_size(req)) != 0) {
        lurk_errf(err, errlen, "out of memory");
        return NULL;
    }
    lurk__v1__request__pack(req, nng_msg_body(msg));
    return lurk_pending_start(c, msg, req->id, done, arg, err, errlen);
}

int lurk_pending_done(const lurk_pending *p)
{
    return p->done;
}

void lurk_pending_abandon(lurk_pending *p)
{
    pthread_mutex_lock(&p->lock);
    p->done_fn = NULL;
    pthread_mutex_unlock(&p->lock);
    nng_aio_cancel(p->aio);
    lurk_pending_release(p);
}

/* The transport outcome; on success *reply is the answer. Drops the caller's reference. */
static lurk_call_result lurk_pending_take(lurk_pending *p, nng_msg **reply, char *err,
                                          size_t errlen)
{
    lurk_call_result res = LURK_CALL_OK;

    *reply = NULL;
    if (p->rv == 0) {
        *reply = p->reply;
        p->reply = NULL;
    } else if (p->rv == NNG_ETIMEDOUT) {
        res = LURK_CALL_TIMEOUT;
        lurk_errf(err, errlen, "no key server answered within %d ms (is one running and "
                  "does it accept this edge's certificate?)", p->timeout_ms);
    } else {
        res = LURK_CALL_TRANSPORT;
        lurk_errf(err, errlen, "key server transport: %s", nng_strerror(p->rv));
    }
    lurk_pending_release(p);
    return res;
}

lurk_call_result lurk_pending_finish(lurk_pending *p, Lurk__V1__Response__ResultCase expect,
                                     Lurk__V1__Response **resp, char *err, size_t errlen)
{
    uint64_t id = p->id;
    nng_msg *reply;
    const char *why = NULL;
    lurk_call_result res;

    *resp = NULL;
    if ((res = lurk_pending_take(p, &reply, err, errlen)) != LURK_CALL_OK)
        return res;
    *resp = lurk_response_decode(nng_msg_body(reply), nng_msg_len(reply), id, expect, &why);
    nng_msg_free(reply);
    if (*resp == NULL) {
        lurk_errf(err, errlen, "bad answer from the key server: %s", why);
        return LURK_CALL_BAD_REPLY;
    }
    if ((*resp)->status != LURK__V1__STATUS__STATUS_OK) {
        lurk_errf(err, errlen, "key server refused: %s%s%s", lurk_status_name((*resp)->status),
                  (*resp)->detail != NULL && (*resp)->detail[0] != '\0' ? ": " : "",
                  (*resp)->detail != NULL ? (*resp)->detail : "");
        return LURK_CALL_REFUSED;
    }
    return LURK_CALL_OK;
}

/* Blocking callers wait on a condition variable the nng thread signals. */
typedef struct {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int done;
} lurk_waiter;

static void lurk_waiter_wake(void *arg)
{
    lurk_waiter *w = arg;

    pthread_mutex_lock(&w->m);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->m);
}

static void lurk_waiter_wait(lurk_waiter *w)
{
    pthread_mutex_lock(&w->m);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->m);
    pthread_mutex_unlock(&w->m);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->m);
}

#define LURK_WAITER_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 }

lurk_call_result lurk_client_call(lurk_client *c, Lurk__V1__Request *req,
                                  Lurk__V1__Response__ResultCase expect,
                                  Lurk__V1__Response **resp, char *err, size_t errlen)
{
    lurk_waiter w = LURK_WAITER_INIT;
    lurk_pending *p;

    *resp = NULL;
    if ((p = lurk_client_start(c, req, lurk_waiter_wake, &w, err, errlen)) == NULL)
        return LURK_CALL_TRANSPORT;
    lurk_waiter_wait(&w);
    return lurk_pending_finish(p, expect, resp, err, errlen);
}

lurk_call_result lurk_client_call_raw(lurk_client *c, const void *buf, size_t len,
                                      uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
    lurk_waiter w = LURK_WAITER_INIT;
    lurk_pending *p;
    nng_msg *msg, *reply;
    lurk_call_result res;

    *out = NULL;
    *outlen = 0;
    if (nng_msg_alloc(&msg, 0) != 0 || nng_msg_append(msg, buf, len) != 0) {
        lurk_errf(err, errlen, "out of memory");
        return LURK_CALL_TRANSPORT;
    }
    if ((p = lurk_pending_start(c, msg, 0, lurk_waiter_wake, &w, err, errlen)) == NULL)
        return LURK_CALL_TRANSPORT;
    lurk_waiter_wait(&w);
    if ((res = lurk_pending_take(p, &reply, err, errlen)) != LURK_CALL_OK)
        return res;
    *outlen = nng_msg_len(reply);
    if ((*out = malloc(*outlen + 1)) == NULL) {
        nng_msg_free(reply);
        lurk_errf(err, errlen, "out of memory");
        return LURK_CALL_TRANSPORT;
    }
    memcpy(*out, nng_msg_body(reply), *outlen);
    nng_msg_free(reply);
    return LURK_CALL_OK;
}
