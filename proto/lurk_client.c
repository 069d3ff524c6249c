/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The LURK client: one request, one answer, across one or more key servers.
 *
 * Each key server gets its own nng req socket, so that the client, not nng,
 * decides where a request goes: nng's own round robin keeps feeding a key
 * server that is connected but hung (docs/provider.md, KEY SERVERS AND
 * FAILOVER). Per server we track
 * whether it is connected (pipe events), whether it is down (it failed an
 * attempt or a probe) and how many attempts wait on it.
 *
 * What happens to a call (which server, when it moves on, what the caller
 * is told, what a late answer or an abandoned call becomes) is decided by
 * the state machine in lurk_attempt.c. This file is its adapter: nng
 * callbacks and blocking waits become events, and the machine's actions
 * become nng calls. Each key server's socket, connection and health are in
 * lurk_server.c.
 *
 * Locks: a call's machine is stepped under the call's lock, and its actions
 * are carried out under it too; they take a server's lock inside it, never
 * the other way round. nng never runs an aio callback inline, so sending
 * under the call's lock is safe.
 */
#include "lurk_client_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/supplemental/util/platform.h>

#include "lurk_attempt.h"

#define LURK_CLOSE_WAIT_MS 2000

/*
 * A call in flight. Two parties hold it: its I/O (until RELEASE_IO) and
 * its caller (until FINISH or ABANDON); the machine says when both are
 * gone (FREE), so that a caller may walk away, as an ASYNC job freed by
 * SSL_free does, without a late answer touching freed memory. After
 * RELEASE_IO it no longer refers to the client, which may then be freed.
 */
struct lurk_pending {
    lurk_client *client;  /* NULL after RELEASE_IO */
    pthread_mutex_t lock; /* everything below */
    lurk_attempt sm;
    lurk_done_fn done_fn;
    void *done_arg;
    _Atomic int done; /* COMPLETE was carried out */
    int sync;         /* driven by the caller's thread, aio without callback */
    int sending;      /* the aio holds our copy of the request */
    uint64_t id;
    nng_msg *request; /* kept to resend on another server */
    nng_msg *reply;
    nng_aio *aio;
    nng_ctx ctx;
    lurk_server *server;              /* of the current attempt, and of ctx */
    struct lurk_pending *next, *prev; /* in server->attempts */
};

/* ---- reused aios of blocking calls -------------------------------------- */

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

/* ---- the client's count of calls with I/O, waited for by lurk_client_free */

static void lurk_client_enter(lurk_client *c)
{
    pthread_mutex_lock(&c->lock);
    c->live++;
    pthread_mutex_unlock(&c->lock);
}

static void lurk_client_leave(lurk_client *c)
{
    pthread_mutex_lock(&c->lock);
    if (--c->live == 0)
        pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
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

/*
 * The server lost its last connection (lurk_server.c, under s->lock):
 * every attempt waiting on it moves on now (DISCONNECT). Under that lock
 * each listed attempt is still on this server, so the abort cannot hit the
 * call's next attempt elsewhere, and nng_aio_abort only schedules the
 * completion: no cap on how many, no references to take.
 */
void lurk_client_server_lost(lurk_server *s)
{
    for (lurk_pending *p = s->attempts; p != NULL; p = p->next)
        nng_aio_abort(p->aio, NNG_ECONNSHUT);
}

/* ---- the adapter: events in, actions out -------------------------------- */

static void lurk_pending_destroy(lurk_pending *p)
{
    nng_msg_free(p->reply);
    nng_msg_free(p->request);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* SEND: 0, or the error that kept the request from reaching nng (NOT_SENT). */
static int lurk_pending_send(lurk_pending *p, unsigned int i)
{
    lurk_server *s = &p->client->servers[i];
    nng_msg *msg;
    int rv;

    if ((rv = nng_msg_dup(&msg, p->request)) != 0)
        return rv;
    if ((rv = lurk_server_ctx_get(s, &p->ctx)) != 0) {
        nng_msg_free(msg);
        return rv;
    }
    lurk_server_attach(s, p);
    p->sending = 1;
    nng_aio_set_msg(p->aio, msg);
    nng_ctx_send(p->ctx, p->aio);
    return 0;
}

static void lurk_pending_leave(lurk_pending *p, int reusable)
{
    lurk_server_detach(p->server, p);
    lurk_server_ctx_put(p->server, p->ctx, reusable);
}

static void lurk_pending_release_io(lurk_pending *p)
{
    lurk_client *c = p->client;

    if (p->sync)
        lurk_aio_put(c, p->aio);
    else
        nng_aio_reap(p->aio); /* reap, not free: this may run inside its own callback */
    p->aio = NULL;
    p->client = NULL;
    lurk_client_leave(c); /* last: lurk_client_free may proceed from here */
}

typedef struct {
    nng_msg *answer; /* of the event, until KEEP_ANSWER or DROP_ANSWER */
    int not_sent;    /* SEND failed before nng: its error, fed back as NOT_SENT */
    int free_call;   /* FREE: after the call's lock is released */
} lurk_run;

static void lurk_pending_act(lurk_pending *p, const lurk_attempt_action *act, lurk_run *run)
{
    switch (act->type) {
    case LURK_ATTEMPT_ACT_ARM_TIMER: nng_aio_set_timeout(p->aio, act->ms); break;
    case LURK_ATTEMPT_ACT_SEND:
        run->not_sent = lurk_pending_send(p, (unsigned int)act->server);
        break;
    case LURK_ATTEMPT_ACT_RECV: nng_ctx_recv(p->ctx, p->aio); break;
    case LURK_ATTEMPT_ACT_LEAVE: lurk_pending_leave(p, act->reusable); break;
    case LURK_ATTEMPT_ACT_MARK_UP:
    case LURK_ATTEMPT_ACT_MARK_DOWN:
        lurk_server_mark(&p->client->servers[act->server], act->type == LURK_ATTEMPT_ACT_MARK_UP);
        break;
    case LURK_ATTEMPT_ACT_ABORT_IO: nng_aio_cancel(p->aio); break;
    case LURK_ATTEMPT_ACT_KEEP_ANSWER:
        p->reply = run->answer;
        run->answer = NULL;
        break;
    case LURK_ATTEMPT_ACT_DROP_ANSWER:
        nng_msg_free(run->answer);
        run->answer = NULL;
        break;
    case LURK_ATTEMPT_ACT_COMPLETE:
        p->done = 1;
        if (p->done_fn != NULL)
            p->done_fn(p->done_arg);
        break;
    case LURK_ATTEMPT_ACT_RELEASE_IO: lurk_pending_release_io(p); break;
    case LURK_ATTEMPT_ACT_FREE: run->free_call = 1; break;
    default: break;
    }
}

/*
 * Steps the machine with ev (answer: the message of an ANSWER event) and
 * carries out the actions, under p->lock. Returns 1 when p must be
 * destroyed once the lock is released.
 */
static int lurk_pending_feed(lurk_pending *p, lurk_attempt_event *ev, nng_msg *answer)
{
    lurk_balance_view view[LURK_BALANCE_MAX_SERVERS];
    lurk_attempt_actions acts;
    lurk_run run = { answer, 0, 0 };

    for (;;) {
        if (p->client != NULL && p->sm.fixed < 0
            && lurk_attempt_needs_view(ev->type, ev->overloaded)) {
            lurk_server_view(p->client, view);
            ev->view = view;
            ev->rr = atomic_fetch_add(&p->client->rr, 1);
        }
        lurk_attempt_step(&p->sm, ev, &acts);
        for (size_t k = 0; k < acts.n; k++)
            lurk_pending_act(p, &acts.a[k], &run);
        if (run.not_sent == 0)
            break;
        ev->type = LURK_ATTEMPT_EV_NOT_SENT;
        ev->server = p->sm.server;
        ev->err = run.not_sent;
        ev->view = NULL;
        run.not_sent = 0;
    }
    nng_msg_free(run.answer); /* NULL: the machine keeps or drops every answer */
    return run.free_call;
}

/* A step of a call once lurk_client_free has begun: CLIENT_FREE first. */
static void lurk_pending_note_closing(lurk_pending *p)
{
    lurk_attempt_event ev = { .type = LURK_ATTEMPT_EV_CLIENT_FREE };

    if (p->client != NULL && p->client->closing && !p->sm.closing)
        (void)lurk_pending_feed(p, &ev, NULL); /* never FREE */
}

/*
 * Decodes the answer only when its status matters (another server could
 * take an OVERLOADED request), so a single-server edge decodes each answer
 * once, in lurk_pending_finish.
 */
static void lurk_pending_classify(const lurk_pending *p, nng_msg *answer, lurk_attempt_event *ev)
{
    Lurk__V1__Response *r;

    ev->type = LURK_ATTEMPT_EV_ANSWER;
    if (!lurk_attempt_wants_status(&p->sm))
        return;
    r = lurk__v1__response__unpack(NULL, nng_msg_len(answer), nng_msg_body(answer));
    if (r != NULL && p->id != 0 && r->id != p->id)
        ev->type = LURK_ATTEMPT_EV_ANSWER_OTHER_ID;
    else
        ev->overloaded = r != NULL && r->status == LURK__V1__STATUS__STATUS_OVERLOADED;
    lurk__v1__response__free_unpacked(r, NULL);
}

static lurk_attempt_event_type lurk_event_of(int rv, int sending)
{
    switch (rv) {
    case 0: return sending ? LURK_ATTEMPT_EV_SENT : LURK_ATTEMPT_EV_ANSWER;
    case NNG_ETIMEDOUT: return LURK_ATTEMPT_EV_TIMEOUT;
    case NNG_ECONNSHUT: /* only ever from lurk_client_server_lost */
        return LURK_ATTEMPT_EV_DISCONNECT;
    case NNG_ECANCELED: return LURK_ATTEMPT_EV_CANCELED;
    default: return sending ? LURK_ATTEMPT_EV_SEND_FAILED : LURK_ATTEMPT_EV_RECV_FAILED;
    }
}

/*
 * The aio finished: on nng's thread for callers that wait their own way;
 * on the caller's thread for blocking calls, which saves the hand-offs to
 * a callback thread and back.
 */
static void lurk_pending_io_done(void *arg)
{
    lurk_pending *p = arg;
    lurk_attempt_event ev = { 0 };
    nng_msg *answer = NULL;
    int rv, free_call;

    pthread_mutex_lock(&p->lock);
    lurk_pending_note_closing(p);
    rv = nng_aio_result(p->aio);
    ev.type = lurk_event_of(rv, p->sending);
    ev.now_ms = lurk_now_ms();
    ev.server = p->sm.server;
    ev.err = rv;
    if (rv == 0 && !p->sending) {
        answer = nng_aio_get_msg(p->aio);
        nng_aio_set_msg(p->aio, NULL);
        lurk_pending_classify(p, answer, &ev);
    } else if (rv != 0 && p->sending) {
        nng_msg_free(nng_aio_get_msg(p->aio));
        nng_aio_set_msg(p->aio, NULL);
    }
    p->sending = 0;
    free_call = lurk_pending_feed(p, &ev, answer);
    pthread_mutex_unlock(&p->lock);
    if (free_call)
        lurk_pending_destroy(p);
}

/* A blocking call: the caller's thread waits on the aio and feeds each event. */
static void lurk_pending_drive(lurk_pending *p)
{
    while (!p->done) {
        nng_aio_wait(p->aio);
        lurk_pending_io_done(p);
    }
}

/*
 * Consumes msg. server < 0: any, as the machine picks; else that one only,
 * detached (a probe: *out is not set, done runs at its end). done == NULL:
 * a blocking call, driven by lurk_pending_drive(). Returns 0 when started;
 * then done() is called (a probe may already be over and gone).
 */
static int lurk_pending_start(lurk_client *c, nng_msg *msg, uint64_t id, int server, int timeout_ms,
                              lurk_done_fn done, void *arg, lurk_pending **out, char *err,
                              size_t errlen)
{
    lurk_pending *p = calloc(1, sizeof(*p));
    lurk_attempt_event ev = { .type = LURK_ATTEMPT_EV_START };
    int rv, free_call;

    if (p == NULL) {
        nng_msg_free(msg);
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->id = id;
    p->request = msg;
    p->done_fn = done;
    p->done_arg = arg;
    p->sync = done == NULL;
    lurk_attempt_init(&p->sm, c->n, timeout_ms, c->attempt_ms, server, server >= 0);
    rv = p->sync ? lurk_aio_get(c, &p->aio) : nng_aio_alloc(&p->aio, lurk_pending_io_done, p);
    if (rv != 0) {
        lurk_errf(err, errlen, "nng: %s", nng_strerror(rv));
        lurk_pending_destroy(p);
        return -1;
    }
    p->client = c;
    lurk_client_enter(c);
    if (out != NULL)
        *out = p;
    pthread_mutex_lock(&p->lock);
    lurk_pending_note_closing(p);
    ev.now_ms = lurk_now_ms();
    free_call = lurk_pending_feed(p, &ev, NULL);
    pthread_mutex_unlock(&p->lock);
    if (free_call)
        lurk_pending_destroy(p);
    return 0;
}

int lurk_client_probe(lurk_client *c, unsigned int server, nng_msg *msg, int timeout_ms,
                      lurk_done_fn done, void *arg)
{
    return lurk_pending_start(c, msg, 0, (int)server, timeout_ms, done, arg, NULL, NULL, 0);
}

/* ---- client ------------------------------------------------------------ */

/*
 * Clients that could not be freed (a socket that would not close, a call
 * whose I/O never ended): kept reachable, never freed, however many.
 */
static pthread_mutex_t lurk_graveyard_lock = PTHREAD_MUTEX_INITIALIZER;
static lurk_client *lurk_graveyard;

static void lurk_client_bury(lurk_client *c)
{
    pthread_mutex_lock(&lurk_graveyard_lock);
    c->grave_next = lurk_graveyard;
    lurk_graveyard = c;
    pthread_mutex_unlock(&lurk_graveyard_lock);
}

/* Until every socket is closed (closed) or no call has I/O left; 0 at the deadline. */
static int lurk_client_wait(lurk_client *c, int closed, int64_t deadline_ms)
{
    struct timespec until = { .tv_sec = deadline_ms / 1000,
                              .tv_nsec = (long)(deadline_ms % 1000) * 1000000 };
    int ok;

    pthread_mutex_lock(&c->lock);
    while (!(ok = closed ? c->closed : c->live == 0)
           && pthread_cond_timedwait(&c->cond, &c->lock, &until) != ETIMEDOUT)
        ;
    ok = closed ? c->closed : c->live == 0;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

static void *lurk_client_close_sockets(void *arg)
{
    lurk_client *c = arg;

    for (unsigned int i = 0; i < c->n; i++)
        if (c->servers[i].sock.id != 0)
            nng_close(c->servers[i].sock);
    pthread_mutex_lock(&c->lock);
    c->closed = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

void lurk_client_free(lurk_client *c)
{
    pthread_t closer;

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
    if (pthread_create(&closer, NULL, lurk_client_close_sockets, c) != 0) {
        lurk_client_close_sockets(c);
    } else if (!lurk_client_wait(c, 1, lurk_now_ms() + LURK_CLOSE_WAIT_MS)) {
        pthread_detach(closer);
        lurk_client_bury(c);
        return;
    } else {
        pthread_join(closer, NULL);
    }
    /*
     * Closing ended the I/O of every call (CLIENT_FREE, then CLOSED); each
     * leaves the client when its completion has run. A call whose caller
     * never comes back (an abandoned or forgotten ASYNC job) no longer
     * refers to the client after that, so it does not hold the client up.
     */
    if (!lurk_client_wait(c, 0, lurk_now_ms() + 2 * c->timeout_ms + 1000)) {
        lurk_client_bury(c);
        return;
    }
    for (unsigned int i = 0; i < c->n; i++) {
        free(c->servers[i].url);
        pthread_mutex_destroy(&c->servers[i].lock);
    }
    while (c->nidle_aio > 0)
        nng_aio_free(c->idle_aio[--c->nidle_aio]);
    pthread_mutex_destroy(&c->aio_lock);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c->servers);
    free(c);
}

static lurk_client *lurk_client_alloc(unsigned int n)
{
    lurk_client *c = calloc(1, sizeof(*c));
    pthread_condattr_t attr;

    if (c == NULL || (c->servers = calloc(n, sizeof(*c->servers))) == NULL) {
        free(c);
        return NULL;
    }
    c->n = n;
    pthread_mutex_init(&c->aio_lock, NULL);
    pthread_mutex_init(&c->lock, NULL);
    /* Deadlines are on CLOCK_MONOTONIC: a wall clock step must not cut a wait short. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &attr);
    pthread_condattr_destroy(&attr);
    for (unsigned int i = 0; i < n; i++) {
        c->servers[i].client = c;
        c->servers[i].index = i;
        c->servers[i].last_ok = lurk_now_ms();
        pthread_mutex_init(&c->servers[i].lock, NULL);
    }
    return c;
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
    if ((c = lurk_client_alloc(n)) == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    c->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 2000;
    /* Room for a second attempt on another server within the deadline. */
    c->attempt_ms = conf->attempt_timeout_ms > 0 ? conf->attempt_timeout_ms : c->timeout_ms / 2;
    c->keepalive_ms = conf->keepalive_ms == 0 ? 1000 : conf->keepalive_ms;
    for (unsigned int i = 0; i < n; i++) {
        if ((c->servers[i].url = strdup(conf->urls[i])) == NULL) {
            lurk_errf(err, errlen, "out of memory");
            goto fail;
        }
    }
    for (unsigned int i = 0; i < n; i++)
        if (lurk_server_open(&c->servers[i], conf, err, errlen) != 0)
            goto fail;
    if ((rv = nng_aio_alloc(&c->tick, lurk_server_tick, c)) != 0) {
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
static lurk_pending *lurk_request_start(lurk_client *c, Lurk__V1__Request *req, lurk_done_fn done,
                                        void *arg, char *err, size_t errlen)
{
    lurk_pending *p = NULL;
    nng_msg *msg;

    req->version = LURK_PROTOCOL_VERSION;
    req->id = lurk_next_id();
    if (nng_msg_alloc(&msg, lurk__v1__request__get_packed_size(req)) != 0) {
        lurk_errf(err, errlen, "out of memory");
        return NULL;
    }
    lurk__v1__request__pack(req, nng_msg_body(msg));
    (void)lurk_pending_start(c, msg, req->id, -1, c->timeout_ms, done, arg, &p, err, errlen);
    return p;
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

/* Feeds a caller's event (ABANDON, FINISH) and frees the call if that was the last hold. */
static void lurk_pending_caller(lurk_pending *p, lurk_attempt_event_type type)
{
    lurk_attempt_event ev = { .type = type };
    int free_call;

    pthread_mutex_lock(&p->lock);
    ev.now_ms = lurk_now_ms();
    free_call = lurk_pending_feed(p, &ev, NULL);
    pthread_mutex_unlock(&p->lock);
    if (free_call)
        lurk_pending_destroy(p);
}

void lurk_pending_abandon(lurk_pending *p)
{
    lurk_pending_caller(p, LURK_ATTEMPT_EV_ABANDON);
}

/* The transport outcome, under p->lock; on success *reply is the answer. */
static lurk_call_result lurk_pending_outcome(lurk_pending *p, nng_msg **reply, char *err,
                                             size_t errlen)
{
    const lurk_attempt *a = &p->sm;

    *reply = NULL;
    switch (p->done ? a->result : LURK_ATTEMPT_RES_NONE) {
    case LURK_ATTEMPT_RES_ANSWER:
        *reply = p->reply;
        p->reply = NULL;
        return LURK_CALL_OK;
    case LURK_ATTEMPT_RES_TIMEOUT:
        lurk_errf(err, errlen,
                  "no key server answered within %d ms (tried %d of %u; is one "
                  "running, and does it accept this edge's certificate?)",
                  a->timeout_ms, __builtin_popcount(a->tried), a->nservers);
        return LURK_CALL_TIMEOUT;
    case LURK_ATTEMPT_RES_TRANSPORT:
        lurk_errf(err, errlen, "key server transport: %s", nng_strerror(a->err));
        return LURK_CALL_TRANSPORT;
    case LURK_ATTEMPT_RES_LOCAL:
        lurk_errf(err, errlen, "nng: %s", a->err != 0 ? nng_strerror(a->err) : "no key server");
        return LURK_CALL_TRANSPORT;
    case LURK_ATTEMPT_RES_CLOSED:
        lurk_errf(err, errlen,
                  "the key server client was shut down (provider unloaded) during "
                  "the call");
        return LURK_CALL_TRANSPORT;
    default:
        lurk_errf(err, errlen, "internal: the call was finished before it was done");
        return LURK_CALL_TRANSPORT;
    }
}

/* The transport outcome; on success *reply is the answer. Ends the caller's hold. */
static lurk_call_result lurk_pending_take(lurk_pending *p, nng_msg **reply, char *err,
                                          size_t errlen)
{
    lurk_call_result res;

    pthread_mutex_lock(&p->lock);
    res = lurk_pending_outcome(p, reply, err, errlen);
    pthread_mutex_unlock(&p->lock);
    lurk_pending_caller(p, LURK_ATTEMPT_EV_FINISH);
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
                                  Lurk__V1__Response__ResultCase expect, Lurk__V1__Response **resp,
                                  char *err, size_t errlen)
{
    lurk_pending *p;

    *resp = NULL;
    if ((p = lurk_request_start(c, req, NULL, NULL, err, errlen)) == NULL)
        return LURK_CALL_TRANSPORT;
    lurk_pending_drive(p);
    return lurk_pending_finish(p, expect, resp, err, errlen);
}

lurk_call_result lurk_client_call_raw(lurk_client *c, const void *buf, size_t len, uint8_t **out,
                                      size_t *outlen, char *err, size_t errlen)
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
    if (lurk_pending_start(c, msg, 0, -1, c->timeout_ms, NULL, NULL, &p, err, errlen) != 0)
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
