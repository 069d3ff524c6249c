/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A key server that answers wrongly, for testing how the provider copes:
 *   lurk-fake-keyserver URL CERT KEY CA MODE
 * MODE: wrong-id        a valid Sign answer for another request id
 *       huge-signature  a 60000-byte signature
 *       bad-signature   a signature of the right size that does not verify
 *       garbage         bytes that are not protobuf
 *       silent          never answers
 * Listens with mutual TLS like the real one, prints "ready", serves until
 * killed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include "lurk_transport.h"

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(nng_random() & 0xff);
}

static nng_msg *answer(const char *mode, const uint8_t *body, size_t len)
{
    Lurk__V1__Status st;
    const char *why;
    Lurk__V1__Request *req = lurk_request_decode(body, len, &st, &why);
    Lurk__V1__Response resp = LURK__V1__RESPONSE__INIT;
    Lurk__V1__SignResponse sign = LURK__V1__SIGN_RESPONSE__INIT;
    static uint8_t sig[60000];
    nng_msg *msg = NULL;

    if (strcmp(mode, "garbage") == 0) {
        uint8_t junk[64];

        fill(junk, sizeof(junk));
        if (nng_msg_alloc(&msg, 0) == 0)
            nng_msg_append(msg, junk, sizeof(junk));
        lurk__v1__request__free_unpacked(req, NULL);
        return msg;
    }
    resp.version = LURK_PROTOCOL_VERSION;
    resp.id = req != NULL ? req->id : 0;
    resp.status = LURK__V1__STATUS__STATUS_OK;
    resp.result_case = LURK__V1__RESPONSE__RESULT_SIGN;
    resp.sign = &sign;
    sign.signature.data = sig;
    sign.signature.len = 256;
    fill(sig, sizeof(sig));
    if (strcmp(mode, "wrong-id") == 0)
        resp.id++;
    else if (strcmp(mode, "huge-signature") == 0)
        sign.signature.len = sizeof(sig);
    if (nng_msg_alloc(&msg, lurk__v1__response__get_packed_size(&resp)) == 0)
        lurk__v1__response__pack(&resp, nng_msg_body(msg));
    lurk__v1__request__free_unpacked(req, NULL);
    return msg;
}

int main(int argc, char **argv)
{
    nng_socket sock;
    nng_listener l;
    nng_tls_config *tls;
    lurk_tls_files files = { 0 };
    char err[256];
    const char *mode;

    if (argc != 6) {
        fprintf(stderr, "usage: lurk-fake-keyserver URL CERT KEY CA MODE\n");
        return 2;
    }
    files.cert = argv[2];
    files.key = argv[3];
    files.ca = argv[4];
    mode = argv[5];
    if (nng_rep0_open(&sock) != 0 || nng_listener_create(&l, sock, argv[1]) != 0
        || lurk_tls_config_from_files(1, &files, &tls, err, sizeof(err)) != 0
        || nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls) != 0 || nng_listener_start(l, 0) != 0) {
        fprintf(stderr, "lurk-fake-keyserver: cannot listen on %s\n", argv[1]);
        return 1;
    }
    nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 1 << 20);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        nng_msg *req, *resp;

        if (nng_recvmsg(sock, &req, 0) != 0)
            break;
        if (strcmp(mode, "silent") == 0) {
            nng_msg_free(req);
            continue;
        }
        resp = answer(mode, nng_msg_body(req), nng_msg_len(req));
        nng_msg_free(req);
        if (resp != NULL && nng_sendmsg(sock, resp, 0) != 0)
            nng_msg_free(resp);
    }
    return 0;
}
