/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging for lurk-keyserver: one line per event on stderr, so that a
 * service manager (systemd, runit, a container runtime) can collect and
 * timestamp it.
 *
 * Nothing that reaches this module may contain key material: callers log
 * key ids, public-key hashes, peers and reasons only.
 */
#ifndef KS_LOG_H
#define KS_LOG_H

#include <stddef.h>

typedef enum { KS_LOG_ERROR = 0, KS_LOG_WARN, KS_LOG_INFO, KS_LOG_DEBUG } ks_log_level;

/* Messages above `level` are dropped; the default is KS_LOG_INFO. */
void ks_log_set_level(ks_log_level level);

/* Whether a message at `level` would be written, to skip costly formatting. */
int ks_log_enabled(ks_log_level level);

void ks_log_set_ident(const char *ident);

/* `lurk-keyserver[pid]: <level>: <message>`; the newline is added. */
void ks_log(ks_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Append OpenSSL's queued errors (in the order raised, "; "-separated) to
 * buf and clear the thread's error queue. For messages that explain why a
 * key or a signature failed.
 */
void ks_log_openssl_errors(char *buf, size_t len);

#endif
