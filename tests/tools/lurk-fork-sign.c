/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fork pattern of nginx and HAProxy, reduced to one program:
 *   lurk-fork-sign URI child   load, fork, sign in the child (must work)
 *   lurk-fork-sign URI parent  load, sign, fork, sign in the child
 *                              (the child must fail cleanly, not abort)
 * Each signature is over a well-formed TLS 1.3 server CertificateVerify
 * context and is verified with the public key. Exit 0 when the outcome is
 * the expected one; prints the OpenSSL errors either way.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/store.h>

#include "lurk_load_key.h"

/* 64 spaces, the context string, 0, and a 32-byte transcript hash. */
static size_t tls13_context(unsigned char *buf)
{
    static const char label[] = "TLS 1.3, server CertificateVerify";
    size_t n = 0;

    memset(buf, 0x20, 64);
    n = 64;
    memcpy(buf + n, label, sizeof(label)); /* with its NUL */
    n += sizeof(label);
    /*
     * A fresh "transcript hash" each time, as in a real handshake: the key
     * server signs identical context bytes only once within its replay
     * window.
     */
    if (RAND_bytes(buf + n, 32) != 1)
        for (int i = 0; i < 32; i++)
            buf[n + i] = (unsigned char)(0xa0 + i);
    n += 32;
    return n;
}

/* The public half as a default-provider key, for an independent check. */
static EVP_PKEY *public_copy(EVP_PKEY *pkey)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    int len = i2d_PUBKEY(pkey, &der);
    EVP_PKEY *pub = NULL;

    if (len > 0) {
        p = der;
        pub = d2i_PUBKEY_ex(NULL, &p, len, NULL, "provider=default");
    }
    OPENSSL_free(der);
    return pub;
}

static int sign_and_verify(EVP_PKEY *pkey)
{
    unsigned char tbs[200], sig[1024];
    size_t tbslen = tls13_context(tbs), siglen = sizeof(sig);
    const char *md = EVP_PKEY_is_a(pkey, "ED25519") ? NULL : "SHA256";
    int rsa = EVP_PKEY_is_a(pkey, "RSA");
    EVP_MD_CTX *m = EVP_MD_CTX_new(), *v = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pub = public_copy(pkey);
    int ok = 0;

    if (m == NULL || v == NULL || pub == NULL)
        fprintf(stderr, "setup failed\n");
    else if (EVP_DigestSignInit_ex(m, &pctx, md, NULL, NULL, pkey, NULL) <= 0
             || (rsa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0)
             || EVP_DigestSign(m, sig, &siglen, tbs, tbslen) <= 0)
        fprintf(stderr, "sign failed\n");
    else if (EVP_DigestVerifyInit_ex(v, &pctx, md, NULL, NULL, pub, NULL) <= 0
             || (rsa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0)
             || EVP_DigestVerify(v, sig, siglen, tbs, tbslen) != 1)
        fprintf(stderr, "signature does not verify\n");
    else
        ok = 1;
    EVP_PKEY_free(pub);
    EVP_MD_CTX_free(m);
    EVP_MD_CTX_free(v);
    return ok;
}

int main(int argc, char **argv)
{
    EVP_PKEY *pkey;
    int parent_first, status;
    pid_t pid;

    if (argc != 3 || (strcmp(argv[2], "child") != 0 && strcmp(argv[2], "parent") != 0)) {
        fprintf(stderr, "usage: lurk-fork-sign URI child|parent\n");
        return 2;
    }
    parent_first = strcmp(argv[2], "parent") == 0;
    if ((pkey = lurk_load_key(argv[1])) == NULL) {
        fprintf(stderr, "load failed\n");
        ERR_print_errors_fp(stderr);
        return 1;
    }
    if (parent_first) {
        if (!sign_and_verify(pkey)) {
            fprintf(stderr, "parent: sign failed\n");
            ERR_print_errors_fp(stderr);
            return 1;
        }
        printf("parent: signed\n");
    }
    fflush(stdout);
    if ((pid = fork()) == 0) {
        int ok = sign_and_verify(pkey);

        printf("child: %s\n", ok ? "signed" : "sign failed");
        ERR_print_errors_fp(stdout);
        fflush(stdout);
        _exit(ok ? 0 : 3);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        perror("fork");
        return 1;
    }
    if (!WIFEXITED(status)) {
        printf("child died with signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return 1;
    }
    EVP_PKEY_free(pkey);
    /* Signing in the child works unless the parent already started nng. */
    if (parent_first)
        return WEXITSTATUS(status) == 3 ? 0 : 1;
    return WEXITSTATUS(status) == 0 ? 0 : 1;
}
