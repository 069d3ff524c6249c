/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The LURK wire contract in C: protocol constants, limits, the TLS
 * SignatureScheme table and validation of decoded messages.
 *
 * Pure functions only: no I/O and no OpenSSL, so that both ends and the
 * fuzzers share exactly one reading of the contract.
 */
#ifndef LURK_WIRE_H
#define LURK_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "lurk.pb-c.h"

#define LURK_PROTOCOL_VERSION 1u

/* Limits that bound what a peer can make the other side allocate. */
#define LURK_MAX_MESSAGE    (64u * 1024u) /* encoded request or response */
#define LURK_MAX_KEY_ID     64u
#define LURK_MAX_TBS        4096u /* FFDHE-8192 SKE is about 2.1 KiB */
#define LURK_MAX_CIPHERTEXT 1024u /* RSA-8192 */
#define LURK_MAX_PING       64u
#define LURK_PREMASTER_LEN  48u

/* TLS SignatureScheme code points (RFC 8446 4.2.3). */
#define LURK_SCHEME_RSA_PKCS1_SHA256       0x0401u
#define LURK_SCHEME_RSA_PKCS1_SHA384       0x0501u
#define LURK_SCHEME_RSA_PKCS1_SHA512       0x0601u
#define LURK_SCHEME_ECDSA_SECP256R1_SHA256 0x0403u
#define LURK_SCHEME_ECDSA_SECP384R1_SHA384 0x0503u
#define LURK_SCHEME_ECDSA_SECP521R1_SHA512 0x0603u
#define LURK_SCHEME_RSA_PSS_RSAE_SHA256    0x0804u
#define LURK_SCHEME_RSA_PSS_RSAE_SHA384    0x0805u
#define LURK_SCHEME_RSA_PSS_RSAE_SHA512    0x0806u
#define LURK_SCHEME_ED25519                0x0807u
#define LURK_SCHEME_RSA_PSS_PSS_SHA256     0x0809u
#define LURK_SCHEME_RSA_PSS_PSS_SHA384     0x080au
#define LURK_SCHEME_RSA_PSS_PSS_SHA512     0x080bu
/* TLS 1.2 only (RFC 5246 7.4.1.4.1 hash/signature pairs): SHA-1 and
 * SHA-224, which the key server signs only with legacy_hashes = yes. */
#define LURK_SCHEME_RSA_PKCS1_SHA1   0x0201u
#define LURK_SCHEME_ECDSA_SHA1       0x0203u
#define LURK_SCHEME_RSA_PKCS1_SHA224 0x0301u
#define LURK_SCHEME_ECDSA_SHA224     0x0303u

typedef enum {
    LURK_PAD_NONE = 0, /* ECDSA, EdDSA */
    LURK_PAD_PKCS1,    /* RSASSA-PKCS1-v1_5 */
    LURK_PAD_PSS       /* RSASSA-PSS, MGF1 with the same hash, salt = hash length */
} lurk_padding;

typedef struct {
    uint16_t code;
    Lurk__V1__KeyType key_type;
    const char *md; /* OpenSSL digest name, NULL for EdDSA */
    size_t md_len;  /* digest length in bytes, 0 for EdDSA */
    lurk_padding padding;
    /*
     * In TLS 1.3 an ECDSA scheme names its curve; in TLS 1.2 the same code
     * point only means (hash, ecdsa) and any curve may use it. NULL when
     * the scheme does not name a curve.
     */
    const char *tls13_group; /* OpenSSL group name, e.g. "prime256v1" */
    const char *name;        /* IANA name, for logs */
    int legacy;              /* hash weaker than SHA-256: TLS 1.2 only, off by default */
} lurk_scheme;

/* NULL for a code point LURK does not sign with. */
const lurk_scheme *lurk_scheme_find(uint32_t code);

/* Iterate: returns the i-th scheme or NULL past the end. */
const lurk_scheme *lurk_scheme_at(size_t i);

/* SSL 3.0 to TLS 1.3, DTLS 1.0 and 1.2: a version libssl may pass. */
int lurk_tls_version_valid(uint32_t v);

/* snprintf into an optional error buffer (err may be NULL). */
void lurk_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * "unknown key", "not permitted", ... for an operator: prose that says
 * more than the enum name. test_wire checks that every status has one.
 */
const char *lurk_status_name(Lurk__V1__Status status);

/*
 * A status's enum name from the contract (lurk.proto) without "STATUS_":
 * "OK", "UNKNOWN_KEY", ...; "UNKNOWN_STATUS" for a value it does not have.
 */
const char *lurk_status_token(Lurk__V1__Status status);

/*
 * The same in lower case, for metric labels and audit reasons:
 * "ok", "unknown_key", ...; "other" for a value the contract does not have.
 */
const char *lurk_status_label(Lurk__V1__Status status);

/* "RSA", "EC", "ED25519", "RSA-PSS"; "unknown" otherwise. */
const char *lurk_key_type_name(Lurk__V1__KeyType type);

/* The operation names below, "request" last; LURK_OP_NAMES of them. */
#define LURK_OP_NAMES 6

/*
 * An operation's name for logs and metric labels: "ping", "capabilities",
 * "get-public-key", "sign", "decrypt"; "request" for none or an unknown one.
 */
const char *lurk_op_name(Lurk__V1__Request__OpCase op);

/* The i-th of those names in a fixed order, "request" last; NULL past the end. */
const char *lurk_op_name_at(size_t i);

/*
 * A key id is 1..LURK_MAX_KEY_ID characters of [A-Za-z0-9._-], not starting
 * with '.' or '-', so that it can appear in URIs, file names, command lines
 * and logs without escaping.
 */
int lurk_key_id_valid(const char *id);

/*
 * Structural checks of a decoded request that protobuf cannot express:
 * version, exactly one operation, field sizes, key id syntax. Returns a
 * status (STATUS_OK when acceptable) and sets *why to a static reason.
 */
Lurk__V1__Status lurk_request_check(const Lurk__V1__Request *req, const char **why);

/*
 * Decode a request from untrusted bytes. NULL when the bytes are over
 * LURK_MAX_MESSAGE or are not protobuf (*status MALFORMED, *why set).
 * Otherwise the decoded request, with *status the verdict of
 * lurk_request_check(): STATUS_OK, or the status to answer with (*why set),
 * so that a refusal can still echo the request id. Free with
 * lurk__v1__request__free_unpacked.
 */
Lurk__V1__Request *lurk_request_decode(const uint8_t *buf, size_t len, Lurk__V1__Status *status,
                                       const char **why);

/*
 * Decode a response from untrusted bytes and check that it answers the
 * request `id` with a result of the kind `expect` (or an error status with
 * no result). NULL with *why on any mismatch.
 */
Lurk__V1__Response *lurk_response_decode(const uint8_t *buf, size_t len, uint64_t id,
                                         Lurk__V1__Response__ResultCase expect, const char **why);

#endif
