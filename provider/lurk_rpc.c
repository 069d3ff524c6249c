/*
 * The provider's side of the wire: one RPC per private-key operation.
 *
 * nng registers an atfork handler when it starts and aborts in any child
 * that calls it afterwards. nginx and HAProxy load keys in a master process
 * and fork workers, so nng must not start until the first signature or
 * decryption, in the process that performs it. The client remembers the
 * pid that started it; a forked child that inherits it gets a clear error
 * instead of an abort.
 *
 * Loading a `lurk://` URI needs the public key before any fork may happen,
 * so that one question is asked from a short-lived child process: the
 * child starts nng, asks, writes the answer to a pipe and exits, and the
 * loading process never starts nng itself.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/crypto.h>

#include "lurk_prov.h"
#include "lurk_transport.h"

static void lurk_rpc_conf(const LURK_PROV_CTX *prov, lurk_client_conf *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->urls = prov->servers;
    conf->tls.cert = prov->tls_cert;
    conf->tls.key = prov->tls_key;
    conf->tls.ca = prov->tls_ca;
    conf->tls.server_name = prov->server_name;
    conf->timeout_ms = prov->timeout_ms;
    conf->attempt_timeout_ms = prov->attempt_timeout_ms;
    conf->keepalive_ms = prov->keepalive_ms > 0 ? prov->keepalive_ms : -1;
}

static lurk_client *lurk_rpc_client(LURK_PROV_CTX *prov)
{
    lurk_client *c;
    char err[256];
    lurk_client_conf conf;

    if (!lurk_prov_usable(prov))
        return NULL;
    if (prov->servers == NULL) {
        lurk_raise(prov, LURK_R_CONFIG, "no key server configured: set servers = tls+tcp://host:port "
                   "in the lurk provider's section of openssl.cnf");
        return NULL;
    }
    pthread_mutex_lock(&prov->lock);
    if (prov->client != NULL && prov->client_pid != getpid()) {
        pid_t parent = prov->client_pid;

        pthread_mutex_unlock(&prov->lock);
        lurk_raise(prov, LURK_R_FORKED,
                   "process %ld was forked from %ld after %ld had used the key server; nng cannot "
                   "run in such a child. Load keys before forking, but sign only after it",
                   (long)getpid(), (long)parent, (long)parent);
        return NULL;
    }
    if (prov->client == NULL) {
        lurk_rpc_conf(prov, &conf);
        if (lurk_client_new(&conf, &prov->client, err, sizeof(err)) != 0) {
            pthread_mutex_unlock(&prov->lock);
            lurk_raise(prov, LURK_R_CONFIG, "%s", err);
            return NULL;
        }
        prov->client_pid = getpid();
    }
    c = prov->client;
    pthread_mutex_unlock(&prov->lock);
    return c;
}

void lurk_rpc_teardown(LURK_PROV_CTX *prov)
{
    /* In a forked child nng must not even be shut down. */
    if (prov->client != NULL && prov->client_pid == getpid())
        lurk_client_free(prov->client);
    prov->client = NULL;
}

static int lurk_rpc_reason(lurk_call_result res)
{
    switch (res) {
    case LURK_CALL_REFUSED: return LURK_R_KEY_SERVER_REFUSED;
    case LURK_CALL_BAD_REPLY: return LURK_R_KEY_SERVER_BAD_REPLY;
    default: return LURK_R_KEY_SERVER_UNREACHABLE;
    }
}

/*
 * Inside an OpenSSL ASYNC job (HAProxy ssl-mode-async, s_server -async) a
 * call pauses the job instead of blocking the thread. Each job keeps one
 * eventfd in its wait context for its whole life: the application polls it,
 * the nng thread makes it readable, and the wait context's cleanup closes
 * it. Closing it per call instead could hand its number to a new socket
 * while the application still has the old one in its poller.
 */
typedef struct {
    int efd;
    lurk_pending *current; /* the call this job is paused on */
} lurk_job_waiter;

static const char lurk_async_key = 0;

static void lurk_job_wake(void *arg)
{
    uint64_t one = 1;

    (void)!write(((lurk_job_waiter *)arg)->efd, &one, sizeof(one));
}

/* The job is gone (SSL_free while paused, or its end): no late wake-ups. */
static void lurk_job_cleanup(ASYNC_WAIT_CTX *wctx, const void *key, OSSL_ASYNC_FD fd, void *arg)
{
    lurk_job_waiter *w = arg;

    (void)wctx;
    (void)key;
    if (w->current != NULL)
        lurk_pending_abandon(w->current);
    close(fd);
    free(w);
}

static lurk_job_waiter *lurk_job_waiter_get(LURK_PROV_CTX *prov, ASYNC_JOB *job, int *fresh)
{
    ASYNC_WAIT_CTX *wctx = ASYNC_get_wait_ctx(job);
    OSSL_ASYNC_FD fd;
    void *custom = NULL;
    lurk_job_waiter *w;

    *fresh = 0;
    if (wctx == NULL)
        return NULL;
    if (ASYNC_WAIT_CTX_get_fd(wctx, &lurk_async_key, &fd, &custom) && custom != NULL)
        return custom;
    if ((w = calloc(1, sizeof(*w))) == NULL
        || (w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        free(w);
        lurk_raise(prov, LURK_R_INTERNAL, "cannot create the async wait fd");
        return NULL;
    }
    if (!ASYNC_WAIT_CTX_set_wait_fd(wctx, &lurk_async_key, w->efd, w, lurk_job_cleanup)) {
        close(w->efd);
        free(w);
        lurk_raise(prov, LURK_R_INTERNAL, "cannot register the async wait fd");
        return NULL;
    }
    *fresh = 1;
    return w;
}

/*
 * A newly registered fd must be seen by the application, which only looks
 * at the wait context when the job pauses (SSL_ERROR_WANT_ASYNC). A call
 * that finished before any pause would leave an fd the application never
 * added but later deletes: HAProxy aborts on that. So pause once, with the
 * fd already readable so that the job is resumed at once.
 */
static void lurk_job_announce(lurk_job_waiter *w)
{
    uint64_t v = 1;

    (void)!write(w->efd, &v, sizeof(v));
    (void)ASYNC_pause_job();
    (void)!read(w->efd, &v, sizeof(v));
}

/*
 * Pause until the answer is in. Applications may resume a job before its fd
 * fires (s_server -async does, in a loop), so only the call's own state
 * says when to stop.
 */
static lurk_call_result lurk_rpc_call_async(LURK_PROV_CTX *prov, lurk_client *c,
                                            ASYNC_JOB *job, Lurk__V1__Request *req,
                                            Lurk__V1__Response__ResultCase expect,
                                            Lurk__V1__Response **resp, char *err, size_t errlen)
{
    int fresh, paused = 0;
    lurk_job_waiter *w = lurk_job_waiter_get(prov, job, &fresh);
    lurk_pending *p;
    uint64_t drain;

    if (w == NULL) {
        snprintf(err, errlen, "async wait setup failed");
        return LURK_CALL_TRANSPORT;
    }
    if ((p = lurk_client_start(c, req, lurk_job_wake, w, err, errlen)) == NULL) {
        if (fresh)
            lurk_job_announce(w);
        return LURK_CALL_TRANSPORT;
    }
    w->current = p;
    while (!lurk_pending_done(p)) {
        if (!ASYNC_pause_job()) {
            w->current = NULL;
            lurk_pending_abandon(p);
            snprintf(err, errlen, "cannot pause the async job");
            return LURK_CALL_TRANSPORT;
        }
        paused = 1;
    }
    w->current = NULL;
    (void)!read(w->efd, &drain, sizeof(drain));
    if (fresh && !paused)
        lurk_job_announce(w);
    return lurk_pending_finish(p, expect, resp, err, errlen);
}

/* A call with the error turned into an OpenSSL error naming the key. */
static Lurk__V1__Response *lurk_rpc_call(LURK_PROV_CTX *prov, const char *key_id,
                                         Lurk__V1__Request *req,
                                         Lurk__V1__Response__ResultCase expect)
{
    lurk_client *c = lurk_rpc_client(prov);
    Lurk__V1__Response *resp = NULL;
    lurk_call_result res;
    ASYNC_JOB *job;
    char err[512];

    if (c == NULL)
        return NULL;
    if ((job = ASYNC_get_current_job()) != NULL)
        res = lurk_rpc_call_async(prov, c, job, req, expect, &resp, err, sizeof(err));
    else
        res = lurk_client_call(c, req, expect, &resp, err, sizeof(err));
    if (res == LURK_CALL_OK)
        return resp;
    if (resp != NULL)
        lurk__v1__response__free_unpacked(resp, NULL);
    lurk_raise(prov, lurk_rpc_reason(res), "key \"%s\": %s", key_id, err);
    return NULL;
}

int lurk_rpc_sign(LURK_PROV_CTX *prov, const char *key_id, uint16_t scheme,
                  const unsigned char *tbs, size_t tbs_len,
                  unsigned char *sig, size_t *sig_len, size_t sig_size)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__SignRequest sign = LURK__V1__SIGN_REQUEST__INIT;
    Lurk__V1__Response *resp;
    int ok = 0;

    sign.key_id = (char *)key_id;
    sign.scheme = scheme;
    sign.tbs.data = (uint8_t *)tbs;
    sign.tbs.len = tbs_len;
    req.op_case = LURK__V1__REQUEST__OP_SIGN;
    req.sign = &sign;
    if ((resp = lurk_rpc_call(prov, key_id, &req, LURK__V1__RESPONSE__RESULT_SIGN)) == NULL)
        return 0;
    if (resp->sign->signature.len == 0 || resp->sign->signature.len > sig_size) {
        lurk_raise(prov, LURK_R_KEY_SERVER_BAD_REPLY, "key \"%s\": signature of %zu bytes, expected "
                   "1 to %zu", key_id, resp->sign->signature.len, sig_size);
    } else {
        memcpy(sig, resp->sign->signature.data, resp->sign->signature.len);
        *sig_len = resp->sign->signature.len;
        ok = 1;
    }
    lurk__v1__response__free_unpacked(resp, NULL);
    return ok;
}

Lurk__V1__Response *lurk_rpc_capabilities(LURK_PROV_CTX *prov, const char *key_id)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__CapabilitiesRequest caps = LURK__V1__CAPABILITIES_REQUEST__INIT;

    req.op_case = LURK__V1__REQUEST__OP_CAPABILITIES;
    req.capabilities = &caps;
    return lurk_rpc_call(prov, key_id, &req, LURK__V1__RESPONSE__RESULT_CAPABILITIES);
}

int lurk_rpc_decrypt(LURK_PROV_CTX *prov, const char *key_id,
                     const unsigned char *ct, size_t ct_len,
                     unsigned int client_version, unsigned int negotiated_version,
                     unsigned char premaster[LURK_PREMASTER_LEN])
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__DecryptRequest dec = LURK__V1__DECRYPT_REQUEST__INIT;
    Lurk__V1__Response *resp;
    int ok = 0;

    dec.key_id = (char *)key_id;
    dec.ciphertext.data = (uint8_t *)ct;
    dec.ciphertext.len = ct_len;
    dec.client_version = client_version;
    dec.negotiated_version = negotiated_version;
    req.op_case = LURK__V1__REQUEST__OP_DECRYPT;
    req.decrypt = &dec;
    if ((resp = lurk_rpc_call(prov, key_id, &req, LURK__V1__RESPONSE__RESULT_DECRYPT)) == NULL)
        return 0;
    if (resp->decrypt->premaster.len != LURK_PREMASTER_LEN) {
        lurk_raise(prov, LURK_R_KEY_SERVER_BAD_REPLY, "key \"%s\": premaster of %zu bytes", key_id,
                   resp->decrypt->premaster.len);
    } else {
        memcpy(premaster, resp->decrypt->premaster.data, LURK_PREMASTER_LEN);
        ok = 1;
    }
    OPENSSL_cleanse(resp->decrypt->premaster.data, resp->decrypt->premaster.len);
    lurk__v1__response__free_unpacked(resp, NULL);
    return ok;
}

/*
 * Pipe format from the child: one status byte (0 ok, 1 failed, 2 refused by
 * the key server, 3 unusable settings such as an unreadable tls_cert), then
 * for ok the key type byte and the DER SPKI, else the error text.
 */
static void lurk_rpc_pubkey_child(LURK_PROV_CTX *prov, const char *key_id, int fd)
{
    lurk_client *c = NULL;
    lurk_client_conf conf;
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__GetPublicKeyRequest get = LURK__V1__GET_PUBLIC_KEY_REQUEST__INIT;
    Lurk__V1__Response *resp = NULL;
    char err[512];
    unsigned char hdr[2] = { 1, 0 };
    size_t errlen;
    lurk_call_result res = LURK_CALL_TRANSPORT;

    lurk_rpc_conf(prov, &conf);
    conf.keepalive_ms = -1; /* one question, then exit */
    get.key_id = (char *)key_id;
    req.op_case = LURK__V1__REQUEST__OP_GET_PUBLIC_KEY;
    req.get_public_key = &get;
    if (lurk_client_new(&conf, &c, err, sizeof(err)) != 0) {
        hdr[0] = 3;
        if (write(fd, hdr, 1) == 1)
            (void)!write(fd, err, strlen(err));
        _exit(1);
    }
    res = lurk_client_call(c, &req, LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY, &resp, err,
                           sizeof(err));
    if (res == LURK_CALL_OK) {
        hdr[0] = 0;
        hdr[1] = (unsigned char)resp->get_public_key->type;
        if (write(fd, hdr, 2) == 2)
            (void)!write(fd, resp->get_public_key->spki.data, resp->get_public_key->spki.len);
        _exit(0);
    }
    hdr[0] = res == LURK_CALL_REFUSED ? 2 : 1;
    errlen = strlen(err);
    if (write(fd, hdr, 1) == 1)
        (void)!write(fd, err, errlen);
    _exit(1);
}

/* Reads the child's whole answer, or gives up at the deadline. */
static size_t lurk_rpc_read_all(int fd, unsigned char *buf, size_t size, int timeout_ms)
{
    size_t len = 0;
    struct timespec start, now;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (len < size) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        long spent;
        ssize_t n;

        clock_gettime(CLOCK_MONOTONIC, &now);
        spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (spent >= timeout_ms || poll(&pfd, 1, (int)(timeout_ms - spent)) == 0)
            break;
        n = read(fd, buf + len, size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    return len;
}

static int lurk_rpc_pubkey_forked(LURK_PROV_CTX *prov, const char *key_id,
                                  Lurk__V1__KeyType *type, unsigned char **spki,
                                  size_t *spki_len)
{
    int fds[2], status;
    pid_t pid;
    unsigned char *buf;
    size_t len;
    int ok = 0;

    /* On the heap: an ASYNC job's stack is only 32 KiB. */
    if ((buf = malloc(LURK_MAX_MESSAGE)) == NULL) {
        lurk_raise(prov, LURK_R_INTERNAL, "out of memory");
        return 0;
    }
    if (pipe(fds) != 0 || (pid = fork()) < 0) {
        lurk_raise(prov, LURK_R_INTERNAL, "cannot start the key lookup: %s", strerror(errno));
        free(buf);
        return 0;
    }
    if (pid == 0) {
        close(fds[0]);
        lurk_rpc_pubkey_child(prov, key_id, fds[1]);
    }
    close(fds[1]);
    len = lurk_rpc_read_all(fds[0], buf, LURK_MAX_MESSAGE, prov->timeout_ms + 1000);
    close(fds[0]);
    kill(pid, SIGKILL); /* harmless if it already exited */
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (len >= 2 && buf[0] == 0) {
        *type = (Lurk__V1__KeyType)buf[1];
        *spki_len = len - 2;
        if ((*spki = malloc(*spki_len + 1)) == NULL)
            lurk_raise(prov, LURK_R_INTERNAL, "out of memory");
        else
            memcpy(*spki, buf + 2, *spki_len);
        ok = *spki != NULL;
    } else if (len >= 1 && buf[0] >= 1 && buf[0] <= 3) {
        static const int reasons[] = { 0, LURK_R_KEY_SERVER_UNREACHABLE, LURK_R_KEY_SERVER_REFUSED,
                                       LURK_R_CONFIG };

        lurk_raise(prov, reasons[buf[0]],
                   "key \"%s\": %.*s", key_id, (int)(len - 1), (const char *)buf + 1);
    } else {
        lurk_raise(prov, LURK_R_KEY_SERVER_UNREACHABLE,
                   "key \"%s\": no answer from the key server within %d ms", key_id,
                   prov->timeout_ms);
    }
    free(buf);
    return ok;
}

int lurk_rpc_get_public_key(LURK_PROV_CTX *prov, const char *key_id,
                            Lurk__V1__KeyType *type, unsigned char **spki, size_t *spki_len)
{
    int started;

    if (!lurk_prov_usable(prov))
        return 0;
    if (prov->servers == NULL) {
        lurk_raise(prov, LURK_R_CONFIG, "no key server configured: set servers = tls+tcp://host:port "
                   "in the lurk provider's section of openssl.cnf");
        return 0;
    }
    pthread_mutex_lock(&prov->lock);
    started = prov->client != NULL && prov->client_pid == getpid();
    pthread_mutex_unlock(&prov->lock);
    if (started) {
        /* nng already runs here: no fork to protect, ask directly. */
        Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
        Lurk__V1__GetPublicKeyRequest get = LURK__V1__GET_PUBLIC_KEY_REQUEST__INIT;
        Lurk__V1__Response *resp;

        get.key_id = (char *)key_id;
        req.op_case = LURK__V1__REQUEST__OP_GET_PUBLIC_KEY;
        req.get_public_key = &get;
        resp = lurk_rpc_call(prov, key_id, &req, LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY);
        if (resp == NULL)
            return 0;
        *type = resp->get_public_key->type;
        *spki_len = resp->get_public_key->spki.len;
        *spki = malloc(*spki_len ? *spki_len : 1);
        if (*spki != NULL)
            memcpy(*spki, resp->get_public_key->spki.data, *spki_len);
        lurk__v1__response__free_unpacked(resp, NULL);
        return *spki != NULL;
    }
    return lurk_rpc_pubkey_forked(prov, key_id, type, spki, spki_len);
}
