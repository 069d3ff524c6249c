/*
 * The LURK client: one request, one answer, across one or more key servers.
 *
 * Each key server gets its own nng req socket, so that the client, not nng,
 * decides where a request goes: nng's own round robin keeps feeding a key
 * server that is connected but hung (FIELD-NOTES 10). Per server we track
 * whether it is connected (pipe events), whether it is down (it failed an
 * attempt or a probe) and how many attempts wait on it; lurk_balance.c
 * picks. An attempt that times out or loses its connection marks the server
 * down and moves the request to another server within the same deadline.
 * A health tick probes down servers with Ping (backing off) and pings idle
 * ones, so a hung key server is noticed even without traffic.
 */
#include "lurk_transport.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "lurk_balance.h"

#define LURK_TICK_MS 200
#define LURK_PROBE_TIMEOUT_MS 1000
#define LURK_MIN_ATTEMPT_MS 20
#define LURK_CLOSE_WAIT_MS 2000
/* Idle nng contexts kept per server, and idle aios of blocking calls per client. */
#define LURK_CTX_CACHE 32
#define LURK_AIO_CACHE 32

typedef struct lurk_server {
    lurk_client *client;
    unsigned int index;
    char *url;
    nng_socket sock;
    pthread_mutex_t lock;      /* the fields below */
    int pipes;
    int down;
    int backoff_ms;
    nng_time next_probe;
    nng_time last_ok;
    int probing;
    int inflight;
    struct lurk_pending *attempts; /* on this server now, for abort on disconnect */
    nng_ctx idle[LURK_CTX_CACHE]; /* contexts whose last request was answered */
    unsigned int nidle;
} lurk_server;

struct lurk_client {
    lurk_server *servers;
    unsigned int n;
    int timeout_ms;
    int attempt_ms;
    int keepalive_ms;
    _Atomic unsigned int rr;
    _Atomic int live;          /* pendings not yet freed */
    _Atomic int closing;
    _Atomic int closed;        /* every socket closed */
    nng_aio *tick;
    pthread_mutex_t aio_lock;  /* idle_aio */
    nng_aio *idle_aio[LURK_AIO_CACHE]; /* callback-less, for blocking calls */
    unsigned int nidle_aio;
};

/*
 * A call in flight. References: the caller's (dropped by finish or
 * abandon) and the callback chain's (dropped when the answer, an error or
 * the deadline arrives), so that a caller may walk away, as an ASYNC job
 * freed by SSL_free does, without a late answer touching freed memory.
 */
struct lurk_pending {
    lurk_client *client;
    _Atomic int refs;
    _Atomic int done;
    pthread_mutex_t lock;      /* done_fn, done_arg, abandoned */
    lurk_done_fn done_fn;      /* NULL once abandoned */
    void *done_arg;
    int abandoned;
    int sync;                  /* driven by the caller's thread, aio without callback */
    int rv;
    uint64_t id;
    nng_time deadline;
    nng_msg *request;          /* kept to resend on another server */
    nng_msg *reply;
    nng_aio *aio;
    nng_ctx ctx;
    int ctx_reusable;          /* its last request was answered */
    lurk_server *server;       /* of the current attempt, and of ctx */
    int fixed;                 /* a probe: this server only */
    int sending;
    uint32_t tried;
    struct lurk_pending *next, *prev; /* in server->attempts */
};

static void lurk_pending_cb(void *arg);

/* ---- reused nng objects ------------------------------------------------ */

/*
 * Opening and closing a context per request costs locks and a reaper
 * thread wake-up each; a context whose request was answered carries no
 * state into the next one (a new send replaces the old request id), so it
 * goes back to its server. Any other context is closed: after a timeout or
 * a lost connection, a fresh one is the simple way to be sure.
 */
static int lurk_ctx_get(lurk_server *s, nng_ctx *ctx)
{
    int found = 0;

    pthread_mutex_lock(&s->lock);
    if (s->nidle > 0) {
        *ctx = s->idle[--s->nidle];
        found = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return found ? 0 : nng_ctx_open(ctx, s->sock);
}

static void lurk_ctx_put(lurk_server *s, nng_ctx ctx, int reusable)
{
    if (reusable && !s->client->closing) {
        pthread_mutex_lock(&s->lock);
        if (s->nidle < LURK_CTX_CACHE) {
            s->idle[s->nidle++] = ctx;
            reusable = 2;
        }
        pthread_mutex_unlock(&s->lock);
    }
    if (reusable != 2)
        nng_ctx_close(ctx);
}

static int lurk_aio_get(lurk_client *c, nng_aio **aio)
{
    *aio = NULL;
    pthread_mutex_lock(&c->aio_lock);
    if (c->nidle_aio > 0)
        *aio = c->idle_aio[--c->nidle_aio];
    pthread_mutex_unlock(&c->aio_lock);
    return *aio != NULL ? 0 : nng_aio_alloc(aio, NULL, NULL);
}

/* A callback-less aio, never inside a callback of its own: freed at once, no reaper. */
static void lurk_aio_put(lurk_client *c, nng_aio *aio)
{
    pthread_mutex_lock(&c->aio_lock);
    if (!c->closing && c->nidle_aio < LURK_AIO_CACHE) {
        c->idle_aio[c->nidle_aio++] = aio;
        aio = NULL;
    }
    pthread_mutex_unlock(&c->aio_lock);
    if (aio != NULL)
        nng_aio_free(aio);
}

/* ---- pending lifetime ------------------------------------------------ */

static void lurk_pending_release(lurk_pending *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    nng_msg_free(p->reply);
    nng_msg_free(p->request);
    if (p->ctx.id != 0)
        lurk_ctx_put(p->server, p->ctx, p->ctx_reusable);
    if (p->aio != NULL) {
        if (p->sync)
            lurk_aio_put(p->client, p->aio);
        else
            nng_aio_reap(p->aio); /* reap, not free: this may run inside its own callback */
    }
    pthread_mutex_destroy(&p->lock);
    atomic_fetch_sub(&p->client->live, 1);
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

/* ---- server state ---------------------------------------------------- */

static void lurk_server_attach(lurk_server *s, lurk_pending *p)
{
    pthread_mutex_lock(&s->lock);
    p->server = s;
    p->prev = NULL;
    p->next = s->attempts;
    if (s->attempts != NULL)
        s->attempts->prev = p;
    s->attempts = p;
    s->inflight++;
    pthread_mutex_unlock(&s->lock);
}

static void lurk_server_detach(lurk_server *s, lurk_pending *p)
{
    pthread_mutex_lock(&s->lock);
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        s->attempts = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
    s->inflight--;
    pthread_mutex_unlock(&s->lock);
}

static void lurk_server_mark(lurk_server *s, int ok)
{
    nng_time now = nng_clock();

    pthread_mutex_lock(&s->lock);
    if (ok) {
        s->down = 0;
        s->backoff_ms = 0;
        s->last_ok = now;
    } else {
        s->backoff_ms = s->down ? lurk_balance_backoff(s->backoff_ms) : LURK_BALANCE_BACKOFF_MIN_MS;
        s->down = 1;
        s->next_probe = now + (nng_time)s->backoff_ms;
    }
    pthread_mutex_unlock(&s->lock);
}

static int lurk_pick(lurk_client *c, uint32_t tried)
{
    lurk_balance_view v[LURK_BALANCE_MAX_SERVERS];

    for (unsigned int i = 0; i < c->n; i++) {
        pthread_mutex_lock(&c->servers[i].lock);
        v[i].connected = c->servers[i].pipes > 0;
        v[i].down = c->servers[i].down;
        v[i].inflight = c->servers[i].inflight;
        pthread_mutex_unlock(&c->servers[i].lock);
    }
    return lurk_balance_pick(v, c->n, tried, atomic_fetch_add(&c->rr, 1));
}

/* A server lost its last connection: its waiting attempts move on now. */
static void lurk_server_abort_all(lurk_server *s)
{
    lurk_pending *batch[64];
    size_t n = 0;

    pthread_mutex_lock(&s->lock);
    for (lurk_pending *p = s->attempts; p != NULL && n < 64; p = p->next) {
        atomic_fetch_add(&p->refs, 1);
        batch[n++] = p;
    }
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        nng_aio_abort(batch[i]->aio, NNG_ECONNSHUT);
        lurk_pending_release(batch[i]);
    }
}

static void lurk_pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    lurk_server *s = arg;
    int gone;

    (void)pipe;
    pthread_mutex_lock(&s->lock);
    s->pipes += ev == NNG_PIPE_EV_ADD_POST ? 1 : -1;
    gone = ev == NNG_PIPE_EV_REM_POST && s->pipes == 0;
    /* Back after a restart: probe at the next tick, not after the backoff. */
    if (ev == NNG_PIPE_EV_ADD_POST && s->down)
        s->next_probe = nng_clock();
    pthread_mutex_unlock(&s->lock);
    if (gone)
        lurk_server_abort_all(s);
}

/* ---- attempts --------------------------------------------------------- */

static int lurk_attempt_timeout(const lurk_pending *p, nng_time now)
{
    const lurk_client *c = p->client;
    int left = p->deadline > now ? (int)(p->deadline - now) : 0;

    if (p->fixed || c->n == 1)
        return left;
    return left < c->attempt_ms ? left : c->attempt_ms;
}

/* Sends the kept request on server `i`; returns nng's error, 0 on success. */
static int lurk_attempt_start(lurk_pending *p, unsigned int i)
{
    lurk_server *s = &p->client->servers[i];
    nng_msg *msg;
    int rv;

    if (p->ctx.id != 0) {
        lurk_ctx_put(p->server, p->ctx, p->ctx_reusable);
        p->ctx.id = 0;
    }
    p->ctx_reusable = 0;
    if ((rv = nng_msg_dup(&msg, p->request)) != 0)
        return rv;
    if ((rv = lurk_ctx_get(s, &p->ctx)) != 0) {
        p->ctx.id = 0;
        nng_msg_free(msg);
        return rv;
    }
    p->tried |= 1u << i;
    p->sending = 1;
    lurk_server_attach(s, p);
    nng_aio_set_msg(p->aio, msg);
    nng_aio_set_timeout(p->aio, lurk_attempt_timeout(p, nng_clock()));
    nng_ctx_send(p->ctx, p->aio);
    return 0;
}

/* After a failed attempt: another server if one is left and time is too. */
static int lurk_attempt_retry(lurk_pending *p)
{
    nng_time now = nng_clock();
    int i;

    if (p->fixed || p->client->closing || p->deadline <= now + LURK_MIN_ATTEMPT_MS)
        return 0;
    pthread_mutex_lock(&p->lock);
    i = !p->abandoned; /* abandoned: stop here */
    pthread_mutex_unlock(&p->lock);
    if (!i || (i = lurk_pick(p->client, p->tried)) < 0)
        return 0;
    return lurk_attempt_start(p, (unsigned int)i) == 0;
}

static int lurk_reply_overloaded(nng_msg *reply)
{
    Lurk__V1__Response *r = lurk__v1__response__unpack(NULL, nng_msg_len(reply),
                                                       nng_msg_body(reply));
    int overloaded = r != NULL && r->status == LURK__V1__STATUS__STATUS_OVERLOADED;

    lurk__v1__response__free_unpacked(r, NULL);
    return overloaded;
}

/*
 * One step, after the aio finished: send done -> receive; receive done ->
 * complete or retry. On nng's thread for callers that wait their own way;
 * on the caller's thread for blocking calls, which saves the hand-offs to
 * a callback thread and back.
 */
static void lurk_pending_step(lurk_pending *p)
{
    lurk_server *s = p->server;
    int rv = nng_aio_result(p->aio);

    if (p->sending && rv == 0) {
        p->sending = 0;
        nng_aio_set_timeout(p->aio, lurk_attempt_timeout(p, nng_clock()));
        nng_ctx_recv(p->ctx, p->aio);
        return;
    }
    if (p->sending) {
        nng_msg_free(nng_aio_get_msg(p->aio));
        nng_aio_set_msg(p->aio, NULL);
    }
    lurk_server_detach(s, p);
    if (rv == 0) {
        nng_msg *reply = nng_aio_get_msg(p->aio);

        lurk_server_mark(s, 1);
        /*
         * Over its limits, that key server is alive: another may have room.
         * Peek at the status only when another server could take it, so a
         * single-server edge decodes each answer once.
         */
        if (!p->fixed && __builtin_popcount(p->tried) < (int)p->client->n
            && lurk_reply_overloaded(reply)
            && lurk_attempt_retry(p)) {
            nng_msg_free(reply);
            return;
        }
        p->reply = reply;
        p->ctx_reusable = 1;
        lurk_pending_complete(p, 0);
        return;
    }
    /* The caller's own cancel says nothing about the server. */
    if (rv != NNG_ECANCELED)
        lurk_server_mark(s, 0);
    if (rv != NNG_ECANCELED && lurk_attempt_retry(p))
        return;
    lurk_pending_complete(p, rv == NNG_ECONNSHUT ? NNG_ETIMEDOUT : rv);
}

static void lurk_pending_cb(void *arg)
{
    lurk_pending_step(arg);
}

/* A blocking call: the caller's thread waits on the aio and takes each step. */
static void lurk_pending_drive(lurk_pending *p)
{
    while (!p->done) {
        nng_aio_wait(p->aio);
        lurk_pending_step(p);
    }
}

/*
 * Consumes msg. server < 0: any, by lurk_pick; else that one only.
 * done == NULL: a blocking call, driven by lurk_pending_drive().
 */
static lurk_pending *lurk_pending_start(lurk_client *c, nng_msg *msg, uint64_t id, int server,
                                        int timeout_ms, lurk_done_fn done, void *arg,
                                        char *err, size_t errlen)
{
    lurk_pending *p = calloc(1, sizeof(*p));
    int rv, i;

    if (p == NULL) {
        nng_msg_free(msg);
        lurk_errf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    atomic_fetch_add(&c->live, 1);
    p->client = c;
    p->refs = 1; /* the caller's; the callback chain takes one below */
    p->id = id;
    p->request = msg;
    p->deadline = nng_clock() + (nng_time)timeout_ms;
    p->done_fn = done;
    p->done_arg = arg;
    p->fixed = server >= 0;
    p->sync = done == NULL;
    i = server >= 0 ? server : lurk_pick(c, 0);
    rv = p->sync ? lurk_aio_get(c, &p->aio) : nng_aio_alloc(&p->aio, lurk_pending_cb, p);
    if (rv != 0) {
        lurk_errf(err, errlen, "nng: %s", nng_strerror(rv));
        lurk_pending_release(p);
        return NULL;
    }
    atomic_fetch_add(&p->refs, 1);
    if ((rv = lurk_attempt_start(p, (unsigned int)i)) != 0) {
        atomic_fetch_sub(&p->refs, 1);
        lurk_errf(err, errlen, "nng: %s", nng_strerror(rv));
        lurk_pending_release(p);
        return NULL;
    }
    return p;
}

/* ---- health: probes of down servers, keep-alive of idle ones ------------ */

static void lurk_probe_done(void *arg)
{
    lurk_server *s = arg;

    pthread_mutex_lock(&s->lock);
    s->probing = 0;
    pthread_mutex_unlock(&s->lock);
}

static nng_msg *lurk_ping_msg(void)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__PingRequest ping = LURK__V1__PING_REQUEST__INIT;
    nng_msg *msg;

    req.version = LURK_PROTOCOL_VERSION;
    req.op_case = LURK__V1__REQUEST__OP_PING;
    req.ping = &ping;
    if (nng_msg_alloc(&msg, lurk__v1__request__get_packed_size(&req)) != 0)
        return NULL;
    lurk__v1__request__pack(&req, nng_msg_body(msg));
    return msg;
}

static void lurk_health_probe(lurk_server *s)
{
    lurk_client *c = s->client;
    nng_time now = nng_clock();
    int due;
    nng_msg *msg;
    lurk_pending *p;

    pthread_mutex_lock(&s->lock);
    due = !s->probing
          && ((s->down && now >= s->next_probe)
              || (!s->down && c->keepalive_ms > 0 && s->inflight == 0
                  && now >= s->last_ok + (nng_time)c->keepalive_ms));
    if (due)
        s->probing = 1;
    pthread_mutex_unlock(&s->lock);
    if (!due)
        return;
    /* The probe marks the server up or down like any attempt. */
    if ((msg = lurk_ping_msg()) == NULL
        || (p = lurk_pending_start(c, msg, 0, (int)s->index, LURK_PROBE_TIMEOUT_MS,
                                   lurk_probe_done, s, NULL, 0)) == NULL) {
        lurk_probe_done(s);
        return;
    }
    lurk_pending_release(p); /* nobody waits for a probe */
}

static void lurk_health_tick(void *arg)
{
    lurk_client *c = arg;

    if (c->closing || nng_aio_result(c->tick) != 0)
        return;
    for (unsigned int i = 0; i < c->n; i++)
        lurk_health_probe(&c->servers[i]);
    nng_sleep_aio(LURK_TICK_MS, c->tick);
}

/* ---- client ------------------------------------------------------------ */

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

static int lurk_server_open(lurk_server *s, const lurk_client_conf *conf, char *err,
                            size_t errlen)
{
    nng_dialer d;
    nng_tls_config *tls = NULL;
    char *host = NULL;
    int rv;

    if ((rv = nng_req0_open(&s->sock)) != 0) {
        lurk_errf(err, errlen, "cannot open nng socket: %s", nng_strerror(rv));
        return -1;
    }
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, LURK_MAX_MESSAGE + 64);
    /* Resending is our decision (another server), not nng's (the same one). */
    nng_socket_set_ms(s->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(s->sock, NNG_OPT_RECONNMINT, 100);
    nng_socket_set_ms(s->sock, NNG_OPT_RECONNMAXT, 2000);
    nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, lurk_pipe_event, s);
    nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, lurk_pipe_event, s);
    if ((rv = nng_dialer_create(&d, s->sock, s->url)) != 0) {
        lurk_errf(err, errlen, "key server URL %s: %s", s->url, nng_strerror(rv));
        return -1;
    }
    if (lurk_url_classify(s->url) == LURK_URL_TLS) {
        lurk_tls_files f = conf->tls;

        if (f.server_name == NULL)
            f.server_name = host = lurk_url_host(s->url);
        rv = lurk_tls_config_make(0, &f, &tls, err, errlen);
        free(host);
        if (rv != 0)
            return -1;
        rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls);
        nng_tls_config_free(tls); /* the dialer holds its own reference */
        if (rv != 0) {
            lurk_errf(err, errlen, "key server URL %s: %s", s->url, nng_strerror(rv));
            return -1;
        }
    }
    /* Non-blocking: a key server that is down now must not fail the client. */
    if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
        lurk_errf(err, errlen, "key server URL %s: %s", s->url, nng_strerror(rv));
        return -1;
    }
    return 0;
}

/* Clients whose sockets would not close: kept reachable, never freed. */
static lurk_client *_Atomic lurk_client_graveyard;

static void *lurk_client_close_sockets(void *arg)
{
    lurk_client *c = arg;

    for (unsigned int i = 0; i < c->n; i++)
        if (c->servers[i].sock.id != 0)
            nng_close(c->servers[i].sock);
    c->closed = 1;
    return NULL;
}

void lurk_client_free(lurk_client *c)
{
    pthread_t closer;
    int waited;

    if (c == NULL)
        return;
    c->closing = 1;
    if (c->tick != NULL) {
        nng_aio_stop(c->tick);
        nng_aio_free(c->tick);
    }
    /*
     * nng_close() waits for every pipe to finish, and a pipe stuck writing
     * to a peer that stopped reading (seen with a 1 MiB request the key
     * server refused) never does. At process exit (provider teardown) that
     * would hang an nginx worker's graceful stop; bound it and leave such a
     * client to the operating system.
     */
    if (pthread_create(&closer, NULL, lurk_client_close_sockets, c) != 0)
        lurk_client_close_sockets(c);
    else {
        for (waited = 0; !c->closed && waited < LURK_CLOSE_WAIT_MS; waited += 5)
            nng_msleep(5);
        if (!c->closed) {
            pthread_detach(closer);
            lurk_client_graveyard = c;
            return;
        }
        pthread_join(closer, NULL);
    }
    /*
     * Closing fails every attempt; their callbacks still touch the client.
     * Wait for them, but not forever: a pending held by a caller that never
     * comes back (an abandoned ASYNC job) is leaked rather than crashed on.
     */
    for (waited = 0; c->live > 0 && waited < 2 * c->timeout_ms + 1000; waited += 5)
        nng_msleep(5);
    if (c->live > 0) {
        lurk_client_graveyard = c;
        return;
    }
    for (unsigned int i = 0; i < c->n; i++) {
        free(c->servers[i].url);
        pthread_mutex_destroy(&c->servers[i].lock);
    }
    while (c->nidle_aio > 0)
        nng_aio_free(c->idle_aio[--c->nidle_aio]);
    pthread_mutex_destroy(&c->aio_lock);
    free(c->servers);
    free(c);
}

int lurk_client_new(const lurk_client_conf *conf, lurk_client **out, char *err, size_t errlen)
{
    lurk_client *c;
    unsigned int n = 0;
    int rv;

    *out = NULL;
    while (conf->urls != NULL && conf->urls[n] != NULL)
        n++;
    if (n == 0 || n > LURK_BALANCE_MAX_SERVERS) {
        lurk_errf(err, errlen, "give 1 to %d key server URLs", LURK_BALANCE_MAX_SERVERS);
        return -1;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL || (c->servers = calloc(n, sizeof(*c->servers))) == NULL) {
        free(c);
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    c->n = n;
    pthread_mutex_init(&c->aio_lock, NULL);
    c->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 2000;
    /* Room for a second attempt on another server within the deadline. */
    c->attempt_ms = conf->attempt_timeout_ms > 0 ? conf->attempt_timeout_ms : c->timeout_ms / 2;
    c->keepalive_ms = conf->keepalive_ms == 0 ? 1000 : conf->keepalive_ms;
    for (unsigned int i = 0; i < n; i++) {
        lurk_server *s = &c->servers[i];

        s->client = c;
        s->index = i;
        s->last_ok = nng_clock();
        pthread_mutex_init(&s->lock, NULL);
        if ((s->url = strdup(conf->urls[i])) == NULL) {
            lurk_errf(err, errlen, "out of memory");
            goto fail;
        }
    }
    for (unsigned int i = 0; i < n; i++)
        if (lurk_server_open(&c->servers[i], conf, err, errlen) != 0)
            goto fail;
    if ((rv = nng_aio_alloc(&c->tick, lurk_health_tick, c)) != 0) {
        lurk_errf(err, errlen, "nng: %s", nng_strerror(rv));
        goto fail;
    }
    nng_sleep_aio(LURK_TICK_MS, c->tick);
    *out = c;
    return 0;
fail:
    lurk_client_free(c);
    return -1;
}

/* ---- calls --------------------------------------------------------------- */

static uint64_t lurk_next_id(void)
{
    static _Atomic uint32_t counter;

    /* Random high half so that two edges' ids do not collide in logs. */
    return ((uint64_t)nng_random() << 32) | (uint32_t)(++counter);
}

/* done == NULL: a blocking call (lurk_pending_drive). */
static lurk_pending *lurk_request_start(lurk_client *c, Lurk__V1__Request *req,
                                        lurk_done_fn done, void *arg, char *err, size_t errlen)
{
    nng_msg *msg;

    req->version = LURK_PROTOCOL_VERSION;
    req->id = lurk_next_id();
    if (nng_msg_alloc(&msg, lurk__v1__request__get_packed_size(req)) != 0) {
        lurk_errf(err, errlen, "out of memory");
        return NULL;
    }
    lurk__v1__request__pack(req, nng_msg_body(msg));
    return lurk_pending_start(c, msg, req->id, -1, c->timeout_ms, done, arg, err, errlen);
}

lurk_pending *lurk_client_start(lurk_client *c, Lurk__V1__Request *req, lurk_done_fn done,
                                void *arg, char *err, size_t errlen)
{
    if (done == NULL) {
        lurk_errf(err, errlen, "lurk_client_start needs a done callback");
        return NULL;
    }
    return lurk_request_start(c, req, done, arg, err, errlen);
}

int lurk_pending_done(const lurk_pending *p)
{
    return p->done;
}

void lurk_pending_abandon(lurk_pending *p)
{
    pthread_mutex_lock(&p->lock);
    p->done_fn = NULL;
    p->abandoned = 1;
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
        lurk_errf(err, errlen, "no key server answered within %d ms (tried %d of %u; is one "
                  "running, and does it accept this edge's certificate?)",
                  p->client->timeout_ms, __builtin_popcount(p->tried), p->client->n);
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

lurk_call_result lurk_client_call(lurk_client *c, Lurk__V1__Request *req,
                                  Lurk__V1__Response__ResultCase expect,
                                  Lurk__V1__Response **resp, char *err, size_t errlen)
{
    lurk_pending *p;

    *resp = NULL;
    if ((p = lurk_request_start(c, req, NULL, NULL, err, errlen)) == NULL)
        return LURK_CALL_TRANSPORT;
    lurk_pending_drive(p);
    return lurk_pending_finish(p, expect, resp, err, errlen);
}

lurk_call_result lurk_client_call_raw(lurk_client *c, const void *buf, size_t len,
                                      uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
    lurk_pending *p;
    nng_msg *msg, *reply;
    lurk_call_result res;

    *out = NULL;
    *outlen = 0;
    if (nng_msg_alloc(&msg, len) != 0) {
        lurk_errf(err, errlen, "out of memory");
        return LURK_CALL_TRANSPORT;
    }
    if (len > 0)
        memcpy(nng_msg_body(msg), buf, len);
    p = lurk_pending_start(c, msg, 0, -1, c->timeout_ms, NULL, NULL, err, errlen);
    if (p == NULL)
        return LURK_CALL_TRANSPORT;
    lurk_pending_drive(p);
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
