/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk-ops-client: drives a key server the way the operations tests need
 * (tests/integration/test_ops*.sh): signatures over chosen TLS contexts
 * with chosen request ids (retries, replays), sequential floods (rate
 * limits) and concurrent bursts (in-flight limits). Prints one result per
 * line; exit 0 unless the transport failed.
 *
 *   lurk-ops-client CONN... sign KEY          one fresh TLS 1.3 context
 *   lurk-ops-client CONN... replay KEY        first, retry (same bytes, same id),
 *                                             replay (same context, new id)
 *   lurk-ops-client CONN... flood KEY N       N fresh signatures in a row
 *   lurk-ops-client CONN... burst KEY N       N fresh signatures at once
 *   lurk-ops-client CONN... caps              the key ids Capabilities lists
 *
 *   The scheme follows the test key names: p384, ed25519, rsa, else P-256.
 *
 *   CONN: --server URL --cert FILE --key FILE --ca FILE [--server-name N]
 *         [--timeout-ms N]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "lurk_transport.h"
#include "lurk_wire.h"

static size_t tls13_cv(uint8_t *buf)
{
    static const char label[] = "TLS 1.3, server CertificateVerify";
    size_t n = 64;

    memset(buf, 0x20, 64);
    memcpy(buf + n, label, sizeof(label));
    n += sizeof(label);
    RAND_bytes(buf + n, 32);
    return n + 32;
}

/* Pack a Sign request for (key, tbs) with this id. */
static uint8_t *pack_sign(const char *key, const uint8_t *tbs, size_t tbs_len, uint64_t id,
                          size_t *len)
{
    Lurk__V1__Request req;
    Lurk__V1__SignRequest sr;
    uint8_t *buf;

    lurk__v1__request__init(&req);
    lurk__v1__sign_request__init(&sr);
    req.version = LURK_PROTOCOL_VERSION;
    req.id = id;
    req.op_case = LURK__V1__REQUEST__OP_SIGN;
    req.sign = &sr;
    sr.key_id = (char *)key;
    /* The test keys are named after their type (lib.sh: rsa, p256, p384, ed25519). */
    if (strstr(key, "p384") != NULL)
        sr.scheme = LURK_SCHEME_ECDSA_SECP384R1_SHA384;
    else if (strstr(key, "ed25519") != NULL)
        sr.scheme = LURK_SCHEME_ED25519;
    else if (strstr(key, "rsa") != NULL)
        sr.scheme = LURK_SCHEME_RSA_PSS_RSAE_SHA256;
    else
        sr.scheme = LURK_SCHEME_ECDSA_SECP256R1_SHA256;
    sr.tbs.data = (uint8_t *)tbs;
    sr.tbs.len = tbs_len;
    *len = lurk__v1__request__get_packed_size(&req);
    if ((buf = malloc(*len)) != NULL)
        lurk__v1__request__pack(&req, buf);
    return buf;
}

/* Send raw bytes; print "<label>: <STATUS> <detail>"; returns the status or -1. */
static int call_raw(lurk_client *c, const char *label, const uint8_t *buf, size_t len, int quiet)
{
    uint8_t *out = NULL;
    size_t outlen = 0;
    char err[512] = "";
    Lurk__V1__Response *resp;
    int st;

    if (lurk_client_call_raw(c, buf, len, &out, &outlen, err, sizeof(err)) != LURK_CALL_OK) {
        if (!quiet)
            printf("%s: TRANSPORT %s\n", label, err);
        return -1;
    }
    resp = lurk__v1__response__unpack(NULL, outlen, out);
    free(out);
    if (resp == NULL) {
        if (!quiet)
            printf("%s: BAD_REPLY\n", label);
        return -1;
    }
    st = (int)resp->status;
    if (!quiet)
        printf("%s: %s%s%s\n", label, lurk_status_name(resp->status),
               resp->detail != NULL && resp->detail[0] ? " " : "",
               resp->detail != NULL ? resp->detail : "");
    lurk__v1__response__free_unpacked(resp, NULL);
    return st;
}

static uint64_t rand_id(void)
{
    uint64_t id = 0;

    RAND_bytes((unsigned char *)&id, sizeof(id));
    return id | 1;
}

static int cmd_sign(lurk_client *c, const char *key)
{
    uint8_t tbs[200], *buf;
    size_t len, tlen = tls13_cv(tbs);
    int st;

    buf = pack_sign(key, tbs, tlen, rand_id(), &len);
    st = call_raw(c, "sign", buf, len, 0);
    free(buf);
    return st < 0 ? 1 : 0;
}

static int cmd_replay(lurk_client *c, const char *key)
{
    uint8_t tbs[200], *a, *b;
    size_t la, lb, tlen = tls13_cv(tbs);
    uint64_t id = rand_id();
    int bad = 0;

    a = pack_sign(key, tbs, tlen, id, &la);
    b = pack_sign(key, tbs, tlen, id + 2, &lb);
    bad |= call_raw(c, "first", a, la, 0) < 0;
    bad |= call_raw(c, "retry", a, la, 0) < 0;  /* nng resend: identical bytes */
    bad |= call_raw(c, "replay", b, lb, 0) < 0; /* the same context, another request */
    free(a);
    free(b);
    return bad;
}

static void tally(int st, unsigned long *counts)
{
    counts[st < 0 || st > 8 ? 9 : st]++;
}

static void print_tally(const char *what, const unsigned long *counts)
{
    printf("%s: ok=%lu not_permitted=%lu overloaded=%lu not_tls_context=%lu other=%lu "
           "transport=%lu\n",
           what, counts[0], counts[2], counts[6], counts[3],
           counts[1] + counts[4] + counts[5] + counts[7] + counts[8], counts[9]);
}

static int cmd_flood(lurk_client *c, const char *key, int n)
{
    unsigned long counts[10] = { 0 };

    for (int i = 0; i < n; i++) {
        uint8_t tbs[200], *buf;
        size_t len, tlen = tls13_cv(tbs);

        buf = pack_sign(key, tbs, tlen, rand_id(), &len);
        tally(call_raw(c, "flood", buf, len, 1), counts);
        free(buf);
    }
    print_tally("flood", counts);
    return 0;
}

typedef struct {
    lurk_client *c;
    const char *key;
    int status;
} burst_arg;

static void *burst_one(void *p)
{
    burst_arg *a = p;
    uint8_t tbs[200], *buf;
    size_t len, tlen = tls13_cv(tbs);

    buf = pack_sign(a->key, tbs, tlen, rand_id(), &len);
    a->status = call_raw(a->c, "burst", buf, len, 1);
    free(buf);
    return NULL;
}

static int cmd_burst(lurk_client *c, const char *key, int n)
{
    pthread_t *t = calloc((size_t)n, sizeof(*t));
    burst_arg *a = calloc((size_t)n, sizeof(*a));
    unsigned long counts[10] = { 0 };

    if (t == NULL || a == NULL)
        return 1;
    for (int i = 0; i < n; i++) {
        a[i].c = c;
        a[i].key = key;
        pthread_create(&t[i], NULL, burst_one, &a[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        tally(a[i].status, counts);
    }
    print_tally("burst", counts);
    free(t);
    free(a);
    return 0;
}

static int cmd_caps(lurk_client *c)
{
    Lurk__V1__Request req;
    Lurk__V1__CapabilitiesRequest cr;
    Lurk__V1__Response *resp = NULL;
    char err[512] = "";

    lurk__v1__request__init(&req);
    lurk__v1__capabilities_request__init(&cr);
    req.op_case = LURK__V1__REQUEST__OP_CAPABILITIES;
    req.capabilities = &cr;
    if (lurk_client_call(c, &req, LURK__V1__RESPONSE__RESULT_CAPABILITIES, &resp, err, sizeof(err))
        != LURK_CALL_OK) {
        printf("caps: failed: %s\n", err);
        if (resp != NULL)
            lurk__v1__response__free_unpacked(resp, NULL);
        return 1;
    }
    printf("caps: epoch %016llx keys", (unsigned long long)resp->capabilities->config_epoch);
    for (size_t i = 0; i < resp->capabilities->n_keys; i++)
        printf(" %s", resp->capabilities->keys[i]->key_id);
    printf("\n");
    lurk__v1__response__free_unpacked(resp, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    lurk_client_conf conf;
    lurk_client *c;
    char *urls[2] = { NULL, NULL };
    char err[512] = "";
    int i, rv;

    memset(&conf, 0, sizeof(conf));
    conf.timeout_ms = 3000;
    for (i = 1; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--server") == 0)
            urls[0] = argv[i + 1];
        else if (strcmp(argv[i], "--cert") == 0)
            conf.tls.cert = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            conf.tls.key = argv[i + 1];
        else if (strcmp(argv[i], "--ca") == 0)
            conf.tls.ca = argv[i + 1];
        else if (strcmp(argv[i], "--server-name") == 0)
            conf.tls.server_name = argv[i + 1];
        else if (strcmp(argv[i], "--timeout-ms") == 0)
            conf.timeout_ms = atoi(argv[i + 1]);
        else
            break;
    }
    if (urls[0] == NULL || i >= argc) {
        fprintf(stderr,
                "usage: lurk-ops-client --server URL [--cert F --key F --ca F "
                "--server-name N --timeout-ms N] sign|replay|flood|burst|caps [KEY] [N]\n");
        return 2;
    }
    conf.urls = urls;
    if (lurk_client_new(&conf, &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "lurk-ops-client: %s\n", err);
        return 1;
    }
    if (strcmp(argv[i], "caps") == 0)
        rv = cmd_caps(c);
    else if (i + 1 < argc && strcmp(argv[i], "sign") == 0)
        rv = cmd_sign(c, argv[i + 1]);
    else if (i + 1 < argc && strcmp(argv[i], "replay") == 0)
        rv = cmd_replay(c, argv[i + 1]);
    else if (i + 2 < argc && strcmp(argv[i], "flood") == 0)
        rv = cmd_flood(c, argv[i + 1], atoi(argv[i + 2]));
    else if (i + 2 < argc && strcmp(argv[i], "burst") == 0)
        rv = cmd_burst(c, argv[i + 1], atoi(argv[i + 2]));
    else {
        fprintf(stderr, "lurk-ops-client: unknown command %s\n", argv[i]);
        rv = 2;
    }
    lurk_client_free(c);
    return rv;
}
