/*
 * The nng side of the key server: one rep0 socket, one listener per
 * configured URL (mutual TLS for tls+tcp://), and a pool of workers each
 * answering one request at a time on its own nng context.
 */
#ifndef KS_SERVER_H
#define KS_SERVER_H

#include <stddef.h>

#include "ks_config.h"
#include "ks_ops.h"

typedef struct ks_server ks_server;

/*
 * Listen on every URL of the configuration and start cfg->workers
 * threads. Block the signals the caller wants to handle before calling:
 * nng's threads and the workers inherit the mask. `cfg` and `ops` must
 * outlive the server. `debug_delay_ms` > 0 delays every Sign and Decrypt
 * answer (tests of timeouts and concurrency only).
 */
int ks_server_start(const ks_config *cfg, const ks_ops *ops, int debug_delay_ms,
                    ks_server **out, char *err, size_t errlen);

/* Close the socket (in-flight answers are dropped), join the workers, log totals. */
void ks_server_stop(ks_server *srv);

/* Build (and drop) the TLS configuration, to validate the files for --check. */
int ks_server_check_tls(const ks_config *cfg, char *err, size_t errlen);

#endif
