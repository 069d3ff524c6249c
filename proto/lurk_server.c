/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Each key server as the client sees it: its socket and dialer, whether it
 * is connected (pipe events), whether it is down, and its health, so that
 * a hung one is noticed even without traffic: a tick every LURK_TICK_MS
 * probes each down server whose back-off has expired with Ping, and pings
 * servers that have been idle for keepalive_ms. A probe is an ordinary call
 * on that server only and marks it up or down like any attempt.
 */
#include "lurk_client_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/protocol/reqrep0/req.h>

#define LURK_PROBE_TIMEOUT_MS 1000

int64_t lurk_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lurk_server_mark(lurk_server *s, int ok)
{
    int64_t now = lurk_now_ms();

    pthread_mutex_lock(&s->lock);
    if (ok) {
        s->down = 0;
        s->backoff_ms = 0;
        s->last_ok = now;
    } else {
        s->backoff_ms = s->down ? lurk_balance_backoff(s->backoff_ms) : LURK_BALANCE_BACKOFF_MIN_MS;
        s->down = 1;
        s->next_probe = now + s->backoff_ms;
    }
    pthread_mutex_unlock(&s->lock);
}

/*
 * Opening and closing a context per request costs locks and a reaper
 * thread wake-up each; a context whose request was answered carries no
 * state into the next one (a new send replaces the old request id), so it
 * goes back to its server. Any other context is closed: after a timeout or
 * a lost connection, a fresh one is the simple way to be sure.
 */
int lurk_server_ctx_get(lurk_server *s, nng_ctx *ctx)
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

void lurk_server_ctx_put(lurk_server *s, nng_ctx ctx, int reusable)
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

static void lurk_server_probe_done(void *arg)
{
    lurk_server *s = arg;

    pthread_mutex_lock(&s->lock);
    s->probing = 0;
    pthread_mutex_unlock(&s->lock);
}

static nng_msg *lurk_server_ping_msg(void)
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

static void lurk_server_probe(lurk_server *s)
{
    lurk_client *c = s->client;
    int64_t now = lurk_now_ms();
    int due;
    nng_msg *msg;

    pthread_mutex_lock(&s->lock);
    due = !s->probing
        && ((s->down && now >= s->next_probe)
            || (!s->down && c->keepalive_ms > 0 && s->inflight == 0
                && now >= s->last_ok + c->keepalive_ms));
    if (due)
        s->probing = 1;
    pthread_mutex_unlock(&s->lock);
    if (!due)
        return;
    if ((msg = lurk_server_ping_msg()) == NULL
        || lurk_client_probe(c, s->index, msg, LURK_PROBE_TIMEOUT_MS, lurk_server_probe_done, s)
            != 0)
        lurk_server_probe_done(s);
}

void lurk_server_tick(void *arg)
{
    lurk_client *c = arg;

    if (c->closing || nng_aio_result(c->tick) != 0)
        return;
    for (unsigned int i = 0; i < c->n; i++)
        lurk_server_probe(&c->servers[i]);
    nng_sleep_aio(LURK_TICK_MS, c->tick);
}

void lurk_server_view(lurk_client *c, lurk_balance_view *v)
{
    for (unsigned int i = 0; i < c->n; i++) {
        pthread_mutex_lock(&c->servers[i].lock);
        v[i].connected = c->servers[i].pipes > 0;
        v[i].down = c->servers[i].down;
        v[i].inflight = c->servers[i].inflight;
        pthread_mutex_unlock(&c->servers[i].lock);
    }
}

static void lurk_server_pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    lurk_server *s = arg;

    (void)pipe;
    pthread_mutex_lock(&s->lock);
    s->pipes += ev == NNG_PIPE_EV_ADD_POST ? 1 : -1;
    /* Back after a restart: probe at the next tick, not after the backoff. */
    if (ev == NNG_PIPE_EV_ADD_POST && s->down)
        s->next_probe = lurk_now_ms();
    if (ev == NNG_PIPE_EV_REM_POST && s->pipes == 0)
        lurk_client_server_lost(s);
    pthread_mutex_unlock(&s->lock);
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

int lurk_server_open(lurk_server *s, const lurk_client_conf *conf, char *err, size_t errlen)
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
    nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, lurk_server_pipe_event, s);
    nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, lurk_server_pipe_event, s);
    if ((rv = nng_dialer_create(&d, s->sock, s->url)) != 0) {
        lurk_errf(err, errlen, "key server URL %s: %s", s->url, nng_strerror(rv));
        return -1;
    }
    if (lurk_url_classify(s->url) == LURK_URL_TLS) {
        const char *name = conf->tls.server_name;

        if (conf->cred != NULL)
            rv = lurk_tls_config_make(0, conf->cred, &tls, err, errlen);
        else
            rv = lurk_tls_config_from_files(0, &conf->tls, &tls, err, errlen);
        if (rv != 0)
            return -1;
        if (name == NULL)
            name = host = lurk_url_host(s->url);
        if (name != NULL)
            rv = nng_tls_config_server_name(tls, name);
        if (rv == 0)
            rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls);
        free(host);
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
