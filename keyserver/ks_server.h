/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The nng side of the key server: one rep0 socket; one or more listeners
 * per edge group (mutual TLS with the group's CA and CRL for tls+tcp://;
 * groups that name their edges may share one, and each connection then
 * goes to the group that names its certificate, ks_ident.h);
 * a fixed set of receiving contexts that admit or refuse each request at
 * once; and a pool of workers that answer the admitted ones.
 *
 * Everything a request depends on (configuration, keys, grants, rate
 * buckets) is one reference-counted "runtime": a reload builds a new one
 * and swaps it in; requests already admitted finish on the one they
 * started with.
 *
 * Lock order. Each lock guards:
 *
 *   conn_lock   the connection table: peers, groups, edge labels,
 *               per-connection and per-group in-flight counts, n_conns;
 *               conn_cond with it (an edge left: the stop's linger waits
 *               on it).
 *   slot_lock   the slots' state machine (srv->sm, ks_slot.h): each slot's
 *               state, the in-flight total, busy slots, peak, drain, the
 *               limits of the reload generation; slot_cond with it.
 *   lst_lock    the list of listeners.
 *   rt_lock     the pointer to the current runtime (and taking a reference).
 *   q_lock      the work queue, q_active, q_shutdown; q_cond with it.
 *   rt->lock    one runtime's rate buckets and their log limiters.
 *   lim_lock    the server-wide refusal log limiters.
 *   replay_lock the replay window.
 *   (inside ks_audit and ks_metrics: their own lock each.)
 *
 * The one nesting is conn_lock, then slot_lock: a request's admission
 * reads its connection's count, steps the machine and counts it on the
 * connection as one decision. Every other lock is a leaf: nothing else is
 * taken while it is held (the audit and metrics locks included: a line is
 * written after the lock that decided it is released).
 *
 * No nng call is made with one of these locks held. nng runs our pipe and
 * aio callbacks, which take conn_lock, lst_lock and slot_lock, and some
 * nng calls wait for those callbacks (nng_listener_close, nng_close,
 * nng_aio_stop); actions decided under a lock are carried out after it is
 * released. The same holds for waiting on workers (pthread_join).
 */
#ifndef KS_SERVER_H
#define KS_SERVER_H

#include <stddef.h>

#include "ks_config.h"
#include "ks_keys.h"
#include "ks_ops.h"

typedef struct ks_server ks_server;

/*
 * Listen on every URL of the configuration, open the audit log, serve
 * metrics when configured, and start cfg->workers threads. Block the
 * signals the caller wants to handle before calling: nng's threads and the
 * workers inherit the mask. On success the server owns cfg, kr and ops.
 * `debug_delay_ms` > 0 delays every Sign and Decrypt answer (tests only).
 */
int ks_server_start(ks_config *cfg, ks_keyring *kr, ks_ops *ops, int debug_delay_ms,
                    ks_server **out, char *err, size_t errlen);

/*
 * Apply a new configuration with its keys (SIGHUP). All or nothing: on
 * failure (-1, err says why) the old configuration and listeners stay and
 * the caller still owns cfg, kr and ops; on success the server owns them,
 * new requests use them and requests in flight finish on the old ones.
 * New listeners open and listeners whose group, CA, CRL, certificate or
 * key changed are restarted (their connections drop; edges reconnect),
 * both before the switch: if one fails, those opened are closed and those
 * restarted are opened again as they were. Removed listeners close after
 * the switch. The one thing that cannot be undone: a restarted listener
 * whose address is taken by someone else between its close and its
 * reopening stays closed (logged at error).
 */
int ks_server_reload(ks_server *srv, ks_config *cfg, ks_keyring *kr, ks_ops *ops, char *err,
                     size_t errlen);

/* Note a rejected reload (for the metrics). */
void ks_server_reload_failed(ks_server *srv);

/* Requests admitted and not yet answered (the in-flight gauge). */
unsigned int ks_server_in_flight(ks_server *srv);

/* Reopen the audit log file (log rotation). */
void ks_server_reopen_audit(ks_server *srv);

/*
 * Stop: refuse new connections, stop taking new requests, wait up to the
 * configured drain_timeout for the admitted ones to be answered, then
 * close everything, join the workers and log totals. Frees srv.
 */
void ks_server_stop(ks_server *srv);

/* Build (and drop) every TLS configuration, to validate the files for --check. */
int ks_server_check_tls(const ks_config *cfg, char *err, size_t errlen);

#endif
