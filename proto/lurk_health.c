/*
 * Health of the key servers, so that a hung one is noticed even without
 * traffic: a tick every LURK_TICK_MS probes each down server whose back-off
 * has expired with Ping, and pings servers that have been idle for
 * keepalive_ms. A probe is an ordinary call on that server only and marks
 * it up or down like any attempt.
 */
#include "lurk_client_int.h"

#include <time.h>

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
    if ((msg = lurk_ping_msg()) == NULL
        || lurk_client_probe(c, s->index, msg, LURK_PROBE_TIMEOUT_MS, lurk_probe_done, s) != 0)
        lurk_probe_done(s);
}

void lurk_health_tick(void *arg)
{
    lurk_client *c = arg;

    if (c->closing || nng_aio_result(c->tick) != 0)
        return;
    for (unsigned int i = 0; i < c->n; i++)
        lurk_health_probe(&c->servers[i]);
    nng_sleep_aio(LURK_TICK_MS, c->tick);
}
