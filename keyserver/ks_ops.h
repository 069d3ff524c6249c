/*
 * The operations: one decoded request in, one response out.
 *
 * No I/O and no nng, so that the unit tests and fuzzers can drive the
 * whole decision without a socket. Thread-safe: a ks_ops is read-only
 * once built, and each call makes its own OpenSSL contexts.
 */
#ifndef KS_OPS_H
#define KS_OPS_H

#include <stddef.h>
#include <stdint.h>

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
    } r;
    unsigned char *sig;                     /* OPENSSL_malloc'ed signature */
    unsigned char premaster[LURK_PREMASTER_LEN];
    char detail[256];
} ks_ops_answer;

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

/* An error answer with no result, for requests that never reach an operation. */
void ks_ops_refuse(ks_ops_answer *ans, uint64_t id, Lurk__V1__Status status,
                   const char *detail);

/* Whether an operation is one that uses a private key (for delays, stats). */
int ks_ops_is_private(const Lurk__V1__Request *req);

/* Short name of the request's operation for logs: "sign", "decrypt", ... */
const char *ks_ops_name(const Lurk__V1__Request *req);

void ks_ops_answer_clear(ks_ops_answer *ans);

#endif
