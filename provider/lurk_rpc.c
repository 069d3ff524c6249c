/* SPDX-License-Identifier: Apache-2.0 */
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
 * so that one question is asked by a helper program, lurk-pubkey
 * (pubkey_helper), started with posix_spawn: it starts nng, asks, writes
 * the answer to a pipe and exits, and the loading process never starts nng
 * itself. Not fork(): in a multi-threaded host a forked copy of the loader
 * could block forever on a lock another thread held at the fork.
 */
#define _GNU_SOURCE /* pipe2, posix_spawn_file_actions_addclosefrom_np */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/crypto.h>

#include "lurk_prov.h"
#include "lurk_transport.h"

/*
 * The channel's credential was read at activation (lurk_prov.c), before
 * any fork, chroot or privilege drop: no file is named here, so none is
 * opened at the first handshake, in a worker that may not reach it.
 */
static void lurk_rpc_conf(const LURK_PROV_CTX *prov, lurk_client_conf *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->urls = prov->servers;
    conf->cred = prov->cred;
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
        lurk_raise(prov, LURK_R_CONFIG,
                   "no key server configured: set servers = tls+tcp://host:port "
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
static lurk_call_result lurk_rpc_call_async(LURK_PROV_CTX *prov, lurk_client *c, ASYNC_JOB *job,
                                            Lurk__V1__Request *req,
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
                  const unsigned char *tbs, size_t tbs_len, unsigned char *sig, size_t *sig_len,
                  size_t sig_size)
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
        lurk_raise(prov, LURK_R_KEY_SERVER_BAD_REPLY,
                   "key \"%s\": signature of %zu bytes, expected "
                   "1 to %zu",
                   key_id, resp->sign->signature.len, sig_size);
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

int lurk_rpc_decrypt(LURK_PROV_CTX *prov, const char *key_id, const unsigned char *ct,
                     size_t ct_len, unsigned int client_version, unsigned int negotiated_version,
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
 * The lurk-pubkey helper (tools/lurk-pubkey.c) answers on its standard
 * output: one status byte (0 ok, 1 failed, 2 refused by the key server,
 * 3 unusable settings such as an unreadable tls_cert), then for ok the key
 * type byte and the DER SPKI, else the error text. Its exit status is the
 * same number.
 */
/*
 * After the program and its --server URLs (32 at most, as lurk_client_new
 * takes): 8 options with a value, --allow-insecure, --, the key id, NULL.
 */
#define LURK_HELPER_TAIL_ARGS 20
#define LURK_HELPER_MAX_ARGS  (1 + 2 * 32 + LURK_HELPER_TAIL_ARGS)

static long lurk_ms_since(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/*
 * Reads the helper's whole answer (up to end of file), or gives up at the
 * deadline; *eof says which. The fd is non-blocking. An answer longer than
 * `size` is drained and reported as size + 1.
 */
static size_t lurk_rpc_read_all(int fd, unsigned char *buf, size_t size,
                                const struct timespec *start, int timeout_ms, int *eof)
{
    size_t len = 0;
    unsigned char sink[256];
    int too_long = 0;

    *eof = 0;
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        long spent = lurk_ms_since(start);
        ssize_t n;
        int r;

        if (spent >= timeout_ms)
            break;
        r = poll(&pfd, 1, (int)(timeout_ms - spent));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (len < size)
            n = read(fd, buf + len, size - len);
        else
            n = read(fd, sink, sizeof(sink)); /* more than any answer: drain it */
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            break;
        if (n == 0) {
            *eof = 1;
            break;
        }
        if (len < size)
            len += (size_t)n;
        else
            too_long = 1;
    }
    return too_long ? size + 1 : len;
}

/*
 * The helper as a pidfd (Linux 5.3), opened as soon as it runs: signals and
 * waiting then name this process, not a pid that the host may have reaped
 * and the kernel handed to another one. -1 where the kernel has none.
 */
static int lurk_rpc_pidfd(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void lurk_rpc_kill(pid_t pid, int pidfd)
{
    if (pidfd >= 0)
        (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    else
        kill(pid, SIGKILL);
}

/*
 * Reaps the helper: it gets until the deadline to exit once its answer is
 * in, then it is killed. With a pidfd this waits for the exit itself (the
 * fd becomes readable); without one it looks every 2 ms. Returns its wait
 * status, or -1 if the host reaped it first (SIGCHLD ignored, a
 * waitpid(-1) loop in another thread).
 */
static int lurk_rpc_reap(pid_t pid, int pidfd, const struct timespec *start, int timeout_ms)
{
    int status;
    pid_t r;

    for (;;) {
        long left = timeout_ms - lurk_ms_since(start);

        r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (r == 0 && left <= 0)
            break;
        if (r == 0 && pidfd >= 0) {
            struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

            (void)poll(&pfd, 1, (int)left);
        } else if (r == 0) {
            struct timespec nap = { 0, 2 * 1000 * 1000 };

            nanosleep(&nap, NULL);
        }
    }
    lurk_rpc_kill(pid, pidfd);
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    return r == pid ? status : -1;
}

/* The helper's command line: the channel settings (paths, never secrets). */
static int lurk_rpc_helper_argv(const LURK_PROV_CTX *prov, const char *helper, const char *key_id,
                                char *argv[LURK_HELPER_MAX_ARGS], char timeout[16],
                                char attempt[16])
{
    int n = 0;

    argv[n++] = (char *)helper;
    for (char *const *u = prov->servers; *u != NULL; u++) {
        if (n + 2 + LURK_HELPER_TAIL_ARGS > LURK_HELPER_MAX_ARGS)
            return 0;
        argv[n++] = "--server";
        argv[n++] = *u;
    }
#define LURK_ARG(opt, value)         \
    if ((value) != NULL) {           \
        argv[n++] = opt;             \
        argv[n++] = (char *)(value); \
    }
    LURK_ARG("--cert", prov->tls_cert);
    LURK_ARG("--key", prov->tls_key);
    LURK_ARG("--ca", prov->tls_ca);
    LURK_ARG("--server-name", prov->server_name);
    LURK_ARG("--tls-min-version", prov->tls_min_version);
    LURK_ARG("--tls-providers", prov->tls_providers);
#undef LURK_ARG
    snprintf(timeout, 16, "%d", prov->timeout_ms);
    argv[n++] = "--timeout-ms";
    argv[n++] = timeout;
    if (prov->attempt_timeout_ms > 0) {
        snprintf(attempt, 16, "%d", prov->attempt_timeout_ms);
        argv[n++] = "--attempt-timeout-ms";
        argv[n++] = attempt;
    }
    if (prov->allow_insecure)
        argv[n++] = "--allow-insecure";
    argv[n++] = "--";
    argv[n++] = (char *)key_id;
    argv[n] = NULL;
    return 1;
}

/*
 * A clean, explicit environment: nothing of the host's (OPENSSL_CONF
 * above all) except the sanitizer settings of a test build, which only
 * say where reports go, and tpm2-openssl's TPM2OPENSSL_TCTI: the helper
 * loads the channel key (tls_providers = tpm2 ...) as this process did at
 * activation, and that provider finds its TPM only there.
 */
static void lurk_rpc_helper_envp(char *envp[8])
{
    static const char *const pass[] = { "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS",
                                        "TPM2OPENSSL_TCTI" };
    int n = 0;

    envp[n++] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    envp[n++] = "LC_ALL=C";
    for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
        /* getenv, not settings: only sanitizer report options pass */
        char *const *e;
        size_t len = strlen(pass[i]);

        for (e = environ; e != NULL && *e != NULL; e++)
            if (strncmp(*e, pass[i], len) == 0 && (*e)[len] == '=') {
                envp[n++] = *e;
                break;
            }
    }
    envp[n] = NULL;
}

/*
 * Starts the helper with posix_spawn: stdout to our pipe, stdin from
 * /dev/null, stderr inherited (for a test build's sanitizer reports),
 * every other descriptor closed, default signal dispositions and an empty
 * signal mask. No code of ours runs between fork and exec, so a lock held
 * by another thread of the host cannot block it.
 */
static int lurk_rpc_spawn(LURK_PROV_CTX *prov, const char *helper, char *const argv[],
                          char *const envp[], int out_fd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int rc;

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        goto fail;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        goto fail;
    }
    sigemptyset(&none);
    sigfillset(&all);
    if ((rc = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO)) == 0
        && (out_fd == STDERR_FILENO
                ? posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0)
                : 0)
            == 0
        && (rc = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0)) == 0
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
        && (rc = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1)) == 0
#endif
        && (rc = posix_spawnattr_setsigmask(&attr, &none)) == 0
        && (rc = posix_spawnattr_setsigdefault(&attr, &all)) == 0
        && (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            == 0)
        rc = posix_spawn(pid, helper, &fa, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc == 0)
        return 1;
    if (rc == ENOENT || rc == EACCES || rc == ENOEXEC || rc == ENOTDIR || rc == ELOOP) {
        lurk_raise(prov, LURK_R_CONFIG,
                   "pubkey_helper = \"%s\": cannot run it: %s (set "
                   "pubkey_helper in the lurk provider's section of openssl.cnf to the "
                   "lurk-pubkey program)",
                   helper, strerror(rc));
        return 0;
    }
fail:
    lurk_raise(prov, LURK_R_INTERNAL, "cannot start the key lookup helper %s: %s", helper,
               strerror(rc));
    return 0;
}

static int lurk_rpc_pubkey_spawned(LURK_PROV_CTX *prov, const char *key_id, Lurk__V1__KeyType *type,
                                   unsigned char **spki, size_t *spki_len)
{
    const char *helper = prov->pubkey_helper != NULL ? prov->pubkey_helper : LURK_PUBKEY_HELPER;
    char *argv[LURK_HELPER_MAX_ARGS], *envp[8], timeout[16], attempt[16];
    int fds[2], status, eof, pidfd, deadline = prov->timeout_ms + 1000;
    struct timespec start;
    pid_t pid;
    unsigned char *buf;
    size_t len;
    int ok = 0;

    /* A clear error before anything starts: the setting, not ENOENT. */
    if (access(helper, X_OK) != 0) {
        lurk_raise(prov, LURK_R_CONFIG,
                   "pubkey_helper = \"%s\": cannot run it: %s (set "
                   "pubkey_helper in the lurk provider's section of openssl.cnf to the "
                   "lurk-pubkey program)",
                   helper, strerror(errno));
        return 0;
    }
    if (!lurk_rpc_helper_argv(prov, helper, key_id, argv, timeout, attempt)) {
        lurk_raise(prov, LURK_R_INTERNAL, "too many key servers for the key lookup helper");
        return 0;
    }
    lurk_rpc_helper_envp(envp);
    /* On the heap: an ASYNC job's stack is only 32 KiB. */
    if ((buf = malloc(LURK_MAX_MESSAGE)) == NULL) {
        lurk_raise(prov, LURK_R_INTERNAL, "out of memory");
        return 0;
    }
    /* O_CLOEXEC: a fork+exec in another thread must not inherit our pipe. */
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        lurk_raise(prov, LURK_R_INTERNAL, "cannot start the key lookup: %s", strerror(errno));
        free(buf);
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (!lurk_rpc_spawn(prov, helper, argv, envp, fds[1], &pid)) {
        close(fds[0]);
        close(fds[1]);
        free(buf);
        return 0;
    }
    close(fds[1]);
    pidfd = lurk_rpc_pidfd(pid);
    len = lurk_rpc_read_all(fds[0], buf, LURK_MAX_MESSAGE, &start, deadline, &eof);
    close(fds[0]);
    if (!eof)
        lurk_rpc_kill(pid, pidfd); /* out of time: no reason to wait any longer */
    status = lurk_rpc_reap(pid, pidfd, &start, deadline);
    if (pidfd >= 0)
        close(pidfd);
    if (len > LURK_MAX_MESSAGE) {
        lurk_raise(prov, LURK_R_KEY_SERVER_BAD_REPLY,
                   "key \"%s\": the key lookup helper %s "
                   "answered more than %u bytes",
                   key_id, helper, LURK_MAX_MESSAGE);
    } else if (eof && len >= 2 && buf[0] == 0) {
        *type = (Lurk__V1__KeyType)buf[1];
        *spki_len = len - 2;
        if ((*spki = malloc(*spki_len + 1)) == NULL)
            lurk_raise(prov, LURK_R_INTERNAL, "out of memory");
        else
            memcpy(*spki, buf + 2, *spki_len);
        ok = *spki != NULL;
    } else if (eof && len >= 1 && buf[0] >= 1 && buf[0] <= 3) {
        static const int reasons[] = { 0, LURK_R_KEY_SERVER_UNREACHABLE, LURK_R_KEY_SERVER_REFUSED,
                                       LURK_R_CONFIG };

        lurk_raise(prov, reasons[buf[0]], "key \"%s\": %.*s", key_id, (int)(len - 1),
                   (const char *)buf + 1);
    } else if (!eof) {
        lurk_raise(prov, LURK_R_KEY_SERVER_UNREACHABLE,
                   "key \"%s\": no answer from the key server within %d ms (key lookup helper "
                   "%s stopped)",
                   key_id, prov->timeout_ms, helper);
    } else if (status != -1 && WIFSIGNALED(status)) {
        lurk_raise(prov, LURK_R_KEY_SERVER_UNREACHABLE,
                   "key \"%s\": the key lookup helper %s died of signal %d", key_id, helper,
                   WTERMSIG(status));
    } else {
        lurk_raise(prov, LURK_R_KEY_SERVER_UNREACHABLE,
                   "key \"%s\": the key lookup helper %s gave no answer (exit status %d; is "
                   "pubkey_helper the lurk-pubkey program?)",
                   key_id, helper, status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    free(buf);
    return ok;
}

int lurk_rpc_get_public_key(LURK_PROV_CTX *prov, const char *key_id, Lurk__V1__KeyType *type,
                            unsigned char **spki, size_t *spki_len)
{
    int started;

    if (!lurk_prov_usable(prov))
        return 0;
    if (prov->servers == NULL) {
        lurk_raise(prov, LURK_R_CONFIG,
                   "no key server configured: set servers = tls+tcp://host:port "
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
    return lurk_rpc_pubkey_spawned(prov, key_id, type, spki, spki_len);
}
