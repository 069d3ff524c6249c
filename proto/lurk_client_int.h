/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the client's calls (lurk_client.c) and its view of each key server
 * (lurk_server.c) share. Not an API: nothing outside proto/ includes this.
 */
#ifndef LURK_CLIENT_INT_H
#define LURK_CLIENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "lurk_balance.h"
#include "lurk_transport.h"

/* Idle nng contexts kept per server, and idle aios of blocking calls per client. */
#define LURK_CTX_CACHE 32
#define LURK_AIO_CACHE 32

typedef struct lurk_server {
    lurk_client *client;
    unsigned int index;
    char *url;
    nng_socket sock;
    pthread_mutex_t lock; /* the fields below */
    int pipes;
    int down;
    int backoff_ms;
    int64_t next_probe; /* lurk_now_ms() */
    int64_t last_ok;
    int probing;
    int inflight;
    struct lurk_pending *attempts; /* on this server now, for abort on disconnect */
    nng_ctx idle[LURK_CTX_CACHE];  /* contexts whose last request was answered */
    unsigned int nidle;
} lurk_server;

struct lurk_client {
    lurk_server *servers;
    unsigned int n;
    int timeout_ms;
    int attempt_ms;
    int keepalive_ms;
    _Atomic unsigned int rr;
    _Atomic int closing;
    nng_aio *tick;
    pthread_mutex_t lock; /* live, closed; cond signals their changes */
    pthread_cond_t cond;  /* on CLOCK_MONOTONIC */
    int live;             /* calls with I/O resources (RELEASE_IO not yet done) */
    int closed;           /* every socket closed */
    struct lurk_client *grave_next;
    pthread_mutex_t aio_lock;          /* idle_aio */
    nng_aio *idle_aio[LURK_AIO_CACHE]; /* callback-less, for blocking calls */
    unsigned int nidle_aio;
};

/* Milliseconds on CLOCK_MONOTONIC: every deadline of the client uses it. */
int64_t lurk_now_ms(void);

/* An attempt or probe on s ended: ok, it answered; else it failed. */
void lurk_server_mark(lurk_server *s, int ok);

/* Opens s's socket and starts dialing (without waiting for a connection). */
int lurk_server_open(lurk_server *s, const lurk_client_conf *conf, char *err, size_t errlen);

/* Contexts: a cached one whose last request was answered, else a new one. */
int lurk_server_ctx_get(lurk_server *s, nng_ctx *ctx);
/* reusable: its last request was answered, so it may serve another. */
void lurk_server_ctx_put(lurk_server *s, nng_ctx ctx, int reusable);

/* A snapshot of every server for lurk_balance_pick. */
void lurk_server_view(lurk_client *c, lurk_balance_view *v);

/* The health tick (nng aio callback, arg: the client), every LURK_TICK_MS. */
#define LURK_TICK_MS 200
void lurk_server_tick(void *arg);

/* s lost its last connection: abort the attempts on it. Called with s->lock held. */
void lurk_client_server_lost(lurk_server *s);

/*
 * A call nobody waits for, on server `server` only (a probe): consumes msg;
 * done(arg) runs once at its end. 0 when started; else done is not called.
 */
int lurk_client_probe(lurk_client *c, unsigned int server, nng_msg *msg, int timeout_ms,
                      lurk_done_fn done, void *arg);

#endif
