/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The parts of the wire contract that protobuf cannot say: which schemes
 * exist, how big a field may be, which request kinds answer which.
 */
#include "lurk_wire.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One row per scheme reads best as a table. */
/* clang-format off */
static const lurk_scheme lurk_schemes[] = {
    { LURK_SCHEME_RSA_PKCS1_SHA256, LURK__V1__KEY_TYPE__KEY_TYPE_RSA, "SHA256", 32, LURK_PAD_PKCS1, NULL, "rsa_pkcs1_sha256", 0 },
    { LURK_SCHEME_RSA_PKCS1_SHA384, LURK__V1__KEY_TYPE__KEY_TYPE_RSA, "SHA384", 48, LURK_PAD_PKCS1, NULL, "rsa_pkcs1_sha384", 0 },
    { LURK_SCHEME_RSA_PKCS1_SHA512, LURK__V1__KEY_TYPE__KEY_TYPE_RSA, "SHA512", 64, LURK_PAD_PKCS1, NULL, "rsa_pkcs1_sha512", 0 },
    { LURK_SCHEME_RSA_PSS_RSAE_SHA256, LURK__V1__KEY_TYPE__KEY_TYPE_RSA, "SHA256", 32, LURK_PAD_PSS, NULL, "rsa_pss_rsae_sha256", 0 },
    { LURK_SCHEME_RSA_PSS_RSAE_SHA384, LURK__V1__KEY_TYPE__KEY_TYPE_RSA, "SHA384", 48, LURK_PAD_PSS, NULL, "rsa_pss_rsae_sha384", 0 },
    { LURK_SCHEME_RSA_PSS_RSAE_SHA512, LURK__V1__KEY_TYPE__KEY_TYPE_RSA, "SHA512", 64, LURK_PAD_PSS, NULL, "rsa_pss_rsae_sha512", 0 },
    { LURK_SCHEME_RSA_PSS_PSS_SHA256, LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS, "SHA256", 32, LURK_PAD_PSS, NULL, "rsa_pss_pss_sha256", 0 },
    { LURK_SCHEME_RSA_PSS_PSS_SHA384, LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS, "SHA384", 48, LURK_PAD_PSS, NULL, "rsa_pss_pss_sha384", 0 },
    { LURK_SCHEME_RSA_PSS_PSS_SHA512, LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS, "SHA512", 64, LURK_PAD_PSS, NULL, "rsa_pss_pss_sha512", 0 },
    { LURK_SCHEME_ECDSA_SECP256R1_SHA256, LURK__V1__KEY_TYPE__KEY_TYPE_EC, "SHA256", 32, LURK_PAD_NONE, "prime256v1", "ecdsa_secp256r1_sha256", 0 },
    { LURK_SCHEME_ECDSA_SECP384R1_SHA384, LURK__V1__KEY_TYPE__KEY_TYPE_EC, "SHA384", 48, LURK_PAD_NONE, "secp384r1", "ecdsa_secp384r1_sha384", 0 },
    { LURK_SCHEME_ECDSA_SECP521R1_SHA512, LURK__V1__KEY_TYPE__KEY_TYPE_EC, "SHA512", 64, LURK_PAD_NONE, "secp521r1", "ecdsa_secp521r1_sha512", 0 },
    { LURK_SCHEME_ED25519, LURK__V1__KEY_TYPE__KEY_TYPE_ED25519, NULL, 0, LURK_PAD_NONE, NULL, "ed25519", 0 },
    { LURK_SCHEME_RSA_PKCS1_SHA1, LURK__V1__KEY_TYPE__KEY_TYPE_RSA, "SHA1", 20, LURK_PAD_PKCS1, NULL, "rsa_pkcs1_sha1", 1 },
    { LURK_SCHEME_ECDSA_SHA1, LURK__V1__KEY_TYPE__KEY_TYPE_EC, "SHA1", 20, LURK_PAD_NONE, NULL, "ecdsa_sha1", 1 },
    { LURK_SCHEME_RSA_PKCS1_SHA224, LURK__V1__KEY_TYPE__KEY_TYPE_RSA, "SHA224", 28, LURK_PAD_PKCS1, NULL, "rsa_pkcs1_sha224", 1 },
    { LURK_SCHEME_ECDSA_SHA224, LURK__V1__KEY_TYPE__KEY_TYPE_EC, "SHA224", 28, LURK_PAD_NONE, NULL, "ecdsa_sha224", 1 },
};
/* clang-format on */

const lurk_scheme *lurk_scheme_find(uint32_t code)
{
    for (size_t i = 0; i < sizeof(lurk_schemes) / sizeof(lurk_schemes[0]); i++)
        if (lurk_schemes[i].code == code)
            return &lurk_schemes[i];
    return NULL;
}

const lurk_scheme *lurk_scheme_at(size_t i)
{
    return i < sizeof(lurk_schemes) / sizeof(lurk_schemes[0]) ? &lurk_schemes[i] : NULL;
}

void lurk_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *lurk_status_name(Lurk__V1__Status status)
{
    switch (status) {
    case LURK__V1__STATUS__STATUS_OK: return "ok";
    case LURK__V1__STATUS__STATUS_UNKNOWN_KEY: return "unknown key";
    case LURK__V1__STATUS__STATUS_NOT_PERMITTED: return "not permitted";
    case LURK__V1__STATUS__STATUS_NOT_TLS_CONTEXT: return "not a TLS handshake context";
    case LURK__V1__STATUS__STATUS_UNSUPPORTED_SCHEME: return "unsupported signature scheme";
    case LURK__V1__STATUS__STATUS_MALFORMED: return "malformed request";
    case LURK__V1__STATUS__STATUS_OVERLOADED: return "overloaded";
    case LURK__V1__STATUS__STATUS_INTERNAL: return "internal error";
    case LURK__V1__STATUS__STATUS_UNSUPPORTED_VERSION: return "unsupported protocol version";
    default: return "unknown status";
    }
}

/* ---- names from the contract -------------------------------------------- */

#define LURK_STATUS_PREFIX "STATUS_"
/* Room for the labels; test_wire fails if the contract ever outgrows it. */
#define LURK_STATUS_LABELS    32
#define LURK_STATUS_LABEL_LEN 40

static pthread_once_t lurk_status_once = PTHREAD_ONCE_INIT;
static char lurk_status_labels[LURK_STATUS_LABELS][LURK_STATUS_LABEL_LEN];

/* The enum value's name without the prefix, NULL for a value not in the contract. */
static const char *lurk_status_enum_name(Lurk__V1__Status status, size_t *index)
{
    const ProtobufCEnumDescriptor *d = &lurk__v1__status__descriptor;
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, (int)status);

    if (v == NULL || strncmp(v->name, LURK_STATUS_PREFIX, strlen(LURK_STATUS_PREFIX)) != 0)
        return NULL;
    if (index != NULL)
        *index = (size_t)(v - d->values);
    return v->name + strlen(LURK_STATUS_PREFIX);
}

/* Lower-cased once: the labels must outlive any caller, as the enum names do. */
static void lurk_status_labels_init(void)
{
    const ProtobufCEnumDescriptor *d = &lurk__v1__status__descriptor;

    for (unsigned int i = 0; i < d->n_values && i < LURK_STATUS_LABELS; i++) {
        const char *n = lurk_status_enum_name((Lurk__V1__Status)d->values[i].value, NULL);
        size_t k = 0;

        for (; n != NULL && n[k] != '\0' && k + 1 < LURK_STATUS_LABEL_LEN; k++)
            lurk_status_labels[i][k] = (char)tolower((unsigned char)n[k]);
        lurk_status_labels[i][k] = '\0';
    }
}

const char *lurk_status_token(Lurk__V1__Status status)
{
    const char *n = lurk_status_enum_name(status, NULL);

    return n != NULL ? n : "UNKNOWN_STATUS";
}

const char *lurk_status_label(Lurk__V1__Status status)
{
    size_t i = 0;

    if (lurk_status_enum_name(status, &i) == NULL || i >= LURK_STATUS_LABELS
        || pthread_once(&lurk_status_once, lurk_status_labels_init) != 0
        || lurk_status_labels[i][0] == '\0')
        return "other";
    return lurk_status_labels[i];
}

/* In the order of the metrics output; the catch-all last. */
static const struct {
    Lurk__V1__Request__OpCase op;
    const char *name;
} lurk_ops[LURK_OP_NAMES] = {
    { LURK__V1__REQUEST__OP_PING, "ping" },
    { LURK__V1__REQUEST__OP_CAPABILITIES, "capabilities" },
    { LURK__V1__REQUEST__OP_GET_PUBLIC_KEY, "get-public-key" },
    { LURK__V1__REQUEST__OP_SIGN, "sign" },
    { LURK__V1__REQUEST__OP_DECRYPT, "decrypt" },
    { LURK__V1__REQUEST__OP__NOT_SET, "request" },
};

const char *lurk_op_name(Lurk__V1__Request__OpCase op)
{
    for (size_t i = 0; i < LURK_OP_NAMES - 1; i++)
        if (lurk_ops[i].op == op)
            return lurk_ops[i].name;
    return lurk_ops[LURK_OP_NAMES - 1].name;
}

const char *lurk_op_name_at(size_t i)
{
    return i < LURK_OP_NAMES ? lurk_ops[i].name : NULL;
}

const char *lurk_key_type_name(Lurk__V1__KeyType type)
{
    switch (type) {
    case LURK__V1__KEY_TYPE__KEY_TYPE_RSA: return "RSA";
    case LURK__V1__KEY_TYPE__KEY_TYPE_EC: return "EC";
    case LURK__V1__KEY_TYPE__KEY_TYPE_ED25519: return "ED25519";
    case LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS: return "RSA-PSS";
    default: return "unknown";
    }
}

int lurk_key_id_valid(const char *id)
{
    size_t n = 0;

    if (id == NULL)
        return 0;
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || c == '.' || c == '_' || c == '-';
        if (!ok || n >= LURK_MAX_KEY_ID)
            return 0;
    }
    /* No leading dot or dash: an id must never read as "..", a hidden file or an option. */
    return n > 0 && id[0] != '.' && id[0] != '-';
}

int lurk_tls_version_valid(uint32_t v)
{
    return (v >= 0x0300u && v <= 0x0304u) || v == 0xfeffu || v == 0xfefdu;
}

#define CHECK(cond, text)                              \
    do {                                               \
        if (!(cond)) {                                 \
            *why = (text);                             \
            return LURK__V1__STATUS__STATUS_MALFORMED; \
        }                                              \
    } while (0)

Lurk__V1__Status lurk_request_check(const Lurk__V1__Request *req, const char **why)
{
    *why = NULL;
    if (req->version != LURK_PROTOCOL_VERSION) {
        *why = "protocol version not supported";
        return LURK__V1__STATUS__STATUS_UNSUPPORTED_VERSION;
    }
    switch (req->op_case) {
    case LURK__V1__REQUEST__OP_PING:
        CHECK(req->ping->payload.len <= LURK_MAX_PING, "ping payload over 64 bytes");
        break;
    case LURK__V1__REQUEST__OP_CAPABILITIES: break;
    case LURK__V1__REQUEST__OP_GET_PUBLIC_KEY:
        CHECK(lurk_key_id_valid(req->get_public_key->key_id), "bad key id syntax");
        break;
    case LURK__V1__REQUEST__OP_SIGN:
        CHECK(lurk_key_id_valid(req->sign->key_id), "bad key id syntax");
        CHECK(req->sign->tbs.len > 0, "empty to-be-signed data");
        CHECK(req->sign->tbs.len <= LURK_MAX_TBS, "to-be-signed data over the size limit");
        CHECK(req->sign->scheme <= 0xffffu, "scheme is not a 16-bit code point");
        break;
    case LURK__V1__REQUEST__OP_DECRYPT:
        CHECK(lurk_key_id_valid(req->decrypt->key_id), "bad key id syntax");
        CHECK(req->decrypt->ciphertext.len > 0, "empty ciphertext");
        CHECK(req->decrypt->ciphertext.len <= LURK_MAX_CIPHERTEXT,
              "ciphertext over the size limit");
        CHECK(req->decrypt->client_version <= 0xffffu, "client version is not 16 bits");
        CHECK(req->decrypt->negotiated_version == 0
                  || lurk_tls_version_valid(req->decrypt->negotiated_version),
              "negotiated version is not a TLS or DTLS version");
        break;
    default: *why = "no or unknown operation"; return LURK__V1__STATUS__STATUS_MALFORMED;
    }
    return LURK__V1__STATUS__STATUS_OK;
}

Lurk__V1__Request *lurk_request_decode(const uint8_t *buf, size_t len, Lurk__V1__Status *status,
                                       const char **why)
{
    Lurk__V1__Request *req;

    *status = LURK__V1__STATUS__STATUS_MALFORMED;
    if (len > LURK_MAX_MESSAGE) {
        *why = "message over the size limit";
        return NULL;
    }
    req = lurk__v1__request__unpack(NULL, len, buf);
    if (req == NULL) {
        *why = "undecodable protobuf";
        return NULL;
    }
    *status = lurk_request_check(req, why);
    return req;
}

Lurk__V1__Response *lurk_response_decode(const uint8_t *buf, size_t len, uint64_t id,
                                         Lurk__V1__Response__ResultCase expect, const char **why)
{
    Lurk__V1__Response *r;

    if (len > LURK_MAX_MESSAGE) {
        *why = "response over the size limit";
        return NULL;
    }
    r = lurk__v1__response__unpack(NULL, len, buf);
    if (r == NULL) {
        *why = "undecodable response";
        return NULL;
    }
    if (r->id != id) {
        *why = "response answers another request id";
        goto bad;
    }
    if (r->status == LURK__V1__STATUS__STATUS_OK) {
        if (r->version != LURK_PROTOCOL_VERSION) {
            *why = "response has an unknown protocol version";
            goto bad;
        }
        if (r->result_case != expect) {
            *why = "response carries the wrong kind of result";
            goto bad;
        }
    } else if (r->result_case != LURK__V1__RESPONSE__RESULT__NOT_SET) {
        *why = "error response carries a result";
        goto bad;
    }
    return r;
bad:
    lurk__v1__response__free_unpacked(r, NULL);
    return NULL;
}
