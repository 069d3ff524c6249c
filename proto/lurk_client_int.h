/*
 * What the client (lurk_client.c) and its health checks (lurk_health.c)
 * share: the per-server and per-client state. Not an API: nothing outside
 * proto/ includes this.
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
    pthread_mutex_t lock;      /* the fields below */
    int pipes;
    int down;
    int backoff_ms;
    int64_t next_probe;        /* lurk_now_ms() */
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
    pthread_mutex_t lock;      /* live, closed; cond signals their changes */
    pthread_cond_t cond;       /* on CLOCK_MONOTONIC */
    int live;                  /* calls with I/O resources (RELEASE_IO not yet done) */
    int closed;                /* every socket closed */
    struct lurk_client *grave_next;
    pthread_mutex_t aio_lock;  /* idle_aio */
    nng_aio *idle_aio[LURK_AIO_CACHE]; /* callback-less, for blocking calls */
    unsigned int nidle_aio;
};

/* Milliseconds on CLOCK_MONOTONIC: every deadline of the client uses it. */
int64_t lurk_now_ms(void);

/* An attempt or probe on s ended: ok, it answered; else it failed. */
void lurk_server_mark(lurk_server *s, int ok);

/* The health tick (nng aio callback, arg: the client), every LURK_TICK_MS. */
#define LURK_TICK_MS 200
void lurk_health_tick(void *arg);

/*
 * A call nobody waits for, on server `server` only (a probe): consumes msg;
 * done(arg) runs once at its end. 0 when started; else done is not called.
 */
int lurk_client_probe(lurk_client *c, unsigned int server, nng_msg *msg, int timeout_ms,
                      lurk_done_fn done, void *arg);

#endif
