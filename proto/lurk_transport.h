/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The nng side of the contract: how mutual TLS is set up
 * (lurk_transport.c), and the req/rep client shared by the
 * provider, the admin tool and the tests, with failover across several key
 * servers (lurk_client.c).
 *
 * Creating a client starts nng. Never do that in a process that may fork
 * afterwards (nginx, HAProxy masters): nng aborts in the child.
 */
#ifndef LURK_TRANSPORT_H
#define LURK_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "lurk_tls.h"
#include "lurk_url.h"
#include "lurk_wire.h"

typedef struct lurk_client lurk_client;

typedef struct {
    char *const *urls;         /* NULL-terminated, 1 to 32 key servers */
    lurk_tls_files tls;        /* read when the client is made, unless: */
    const lurk_tls_cred *cred; /* loaded beforehand (a provider's, at activation) */
    int timeout_ms;            /* whole call, all attempts: default 2000 */
    int attempt_timeout_ms;    /* one attempt on one server: default timeout_ms / 2 */
    int keepalive_ms;          /* ping an idle server this often: default 1000, < 0 never */
} lurk_client_conf;

typedef enum {
    LURK_CALL_OK = 0,
    LURK_CALL_TIMEOUT,   /* no key server answered in time */
    LURK_CALL_TRANSPORT, /* nng failure */
    LURK_CALL_BAD_REPLY, /* undecodable or mismatched answer */
    LURK_CALL_REFUSED    /* the key server answered with a non-OK status */
} lurk_call_result;

int lurk_client_new(const lurk_client_conf *conf, lurk_client **out, char *err, size_t errlen);
/*
 * Calls in flight end at once with LURK_CALL_TRANSPORT ("shut down"); a
 * lurk_pending may still be finished or abandoned afterwards.
 */
void lurk_client_free(lurk_client *c);

/*
 * One request, one answer, on a context of its own so that calls from
 * several threads run concurrently. The calling thread waits on the nng
 * aio itself and takes each step (send, receive, retry), with no hand-off
 * to a callback thread. Fills in req->version and req->id.
 * On LURK_CALL_OK and LURK_CALL_REFUSED *resp holds the answer (free with
 * lurk__v1__response__free_unpacked); err says why otherwise.
 */
lurk_call_result lurk_client_call(lurk_client *c, Lurk__V1__Request *req,
                                  Lurk__V1__Response__ResultCase expect, Lurk__V1__Response **resp,
                                  char *err, size_t errlen);

/*
 * The same without blocking, for callers that wait their own way (an
 * OpenSSL ASYNC job pausing on a wait fd). `done(arg)` runs once on an nng
 * thread when the answer, an error or the deadline arrives; it must be
 * quick and must not call back into the client (done must not be NULL:
 * blocking callers use lurk_client_call). Then lurk_pending_finish()
 * gives the result exactly as lurk_client_call() would. A caller that
 * cannot wait any more calls lurk_pending_abandon(): after it returns,
 * `done` is never called.
 */
typedef struct lurk_pending lurk_pending;
typedef void (*lurk_done_fn)(void *arg);

lurk_pending *lurk_client_start(lurk_client *c, Lurk__V1__Request *req, lurk_done_fn done,
                                void *arg, char *err, size_t errlen);
int lurk_pending_done(const lurk_pending *p);
lurk_call_result lurk_pending_finish(lurk_pending *p, Lurk__V1__Response__ResultCase expect,
                                     Lurk__V1__Response **resp, char *err, size_t errlen);
void lurk_pending_abandon(lurk_pending *p);

/* The same with caller-built bytes, for tests that send hostile input. */
lurk_call_result lurk_client_call_raw(lurk_client *c, const void *buf, size_t len, uint8_t **out,
                                      size_t *outlen, char *err, size_t errlen);

#endif
