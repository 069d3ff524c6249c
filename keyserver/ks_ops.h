/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operations: one decoded request in, one response out.
 *
 * No I/O and no nng, so that the unit tests and fuzzers can drive the
 * whole decision without a socket. Thread-safe: a ks_ops is read-only
 * once built, and each call signs on its own OpenSSL context, copied from
 * a template that its thread keeps per (key, scheme) for the software keys.
 */
#ifndef KS_OPS_H
#define KS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ks_authz.h"
#include "ks_keys.h"
#include "ks_policy.h"
#include "lurk_wire.h"

typedef struct ks_ops ks_ops;

/*
 * Everything a response points into. It lives on the caller's stack from
 * ks_ops_handle() until the response is packed, then ks_ops_answer_clear()
 * wipes it (a premaster secret is in there).
 */
typedef struct {
    Lurk__V1__Response resp;
    union {
        Lurk__V1__PingResponse ping;
        Lurk__V1__GetPublicKeyResponse get_public_key;
        Lurk__V1__SignResponse sign;
        Lurk__V1__DecryptResponse decrypt;
        Lurk__V1__CapabilitiesResponse capabilities; /* a group's view */
    } r;
    unsigned char *sig; /* OPENSSL_malloc'ed signature */
    unsigned char premaster[LURK_PREMASTER_LEN];
    char detail[256];
    Lurk__V1__KeyInfo **capkeys; /* malloc'ed: a group's keys */
    /*
     * Why a request was refused, as a short token for metrics and the
     * audit log (not_permitted, not_tls_context, replay, rate_key, ...);
     * NULL when answered with STATUS_OK, except for a Decrypt answered
     * with random bytes (replay, replay_cache_full), whose `detail` then
     * says why for the audit log only: the response carries no detail.
     */
    const char *reason;
} ks_ops_answer;

/*
 * Called for Sign and Decrypt once the key is found, permitted and the
 * request passed the policy, right before the private-key operation: the
 * daemon's limits and replay window. Anything but STATUS_OK refuses with
 * that status, `*reason` (a static token) and `detail`. STATUS_OK with
 * `*answer_random` set (Decrypt only): decrypt as usual, then answer 48
 * fresh random bytes instead of the result, recording `*reason`; with
 * KS_OPS_RANDOM_WARN the operation logs `detail` at warn once it has so
 * answered (a failed decryption is refused as usual and logs that
 * instead), with KS_OPS_RANDOM_QUIET the gate has logged it (rate-limited).
 */
#define KS_OPS_RANDOM_WARN  1
#define KS_OPS_RANDOM_QUIET 2

typedef Lurk__V1__Status (*ks_ops_gate_fn)(void *arg, const Lurk__V1__Request *req,
                                           const ks_key *key, const char **reason, char *detail,
                                           size_t detail_len, int *answer_random);

/* Who asks, and what applies to them. */
typedef struct {
    const ks_authz_grant *grant; /* NULL: every key */
    const char *peer;            /* names the edge in logs */
    ks_ops_gate_fn gate;         /* NULL: none */
    void *gate_arg;
} ks_ops_call;

/*
 * `keys` and `policy` must outlive the ks_ops. `server_id` NULL: the host
 * name. The Capabilities answer is built here once: the table never changes.
 */
ks_ops *ks_ops_new(const ks_keyring *keys, const ks_policy *policy, const char *server_id);
void ks_ops_free(ks_ops *ops);

/*
 * Answer a request that lurk_request_decode() returned with STATUS_OK.
 * `peer` names the edge in refusal logs ("127.0.0.1:40512").
 */
void ks_ops_handle(const ks_ops *ops, const Lurk__V1__Request *req, const char *peer,
                   ks_ops_answer *ans);

/*
 * The same for one edge group: a key outside call->grant is refused as
 * NOT_PERMITTED (whether or not it exists: no group learns another's key
 * ids) and logged; Capabilities lists only the granted keys.
 */
void ks_ops_handle_call(const ks_ops *ops, const ks_ops_call *call, const Lurk__V1__Request *req,
                        ks_ops_answer *ans);

/* The key id a request names, NULL for ping and capabilities. */
const char *ks_ops_key_id(const Lurk__V1__Request *req);

/* An error answer with no result, for requests that never reach an operation. */
void ks_ops_refuse(ks_ops_answer *ans, uint64_t id, Lurk__V1__Status status, const char *detail);

/* Whether an operation is one that uses a private key (for delays, stats). */
int ks_ops_is_private(const Lurk__V1__Request *req);

/* Short name of the request's operation for logs: "sign", "decrypt", ... (lurk_op_name) */
const char *ks_ops_name(const Lurk__V1__Request *req);

void ks_ops_answer_clear(ks_ops_answer *ans);

/*
 * Free the calling thread's signing templates (and its references on the
 * keys). A thread that exits has them freed anyway; call it from one that
 * signed and lives on, e.g. before main() returns, so that nothing is left
 * for a leak checker or for OpenSSL's cleanup at exit.
 */
void ks_ops_thread_cleanup(void);

#endif
