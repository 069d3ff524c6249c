/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk-signcore: the key server's signing path without the network.
 *
 * T threads sign TLS 1.3 server CertificateVerify contexts with one private
 * key exactly as keyserver/ks_ops.c does (EVP_DigestSignInit_ex + padding
 * parameters + EVP_DigestSign, per request), for S seconds. It separates the
 * cost of the cryptography from that of the RPC, and tries the two obvious
 * ways to make the crypto path itself cheaper:
 *
 *   --mode shared   every thread signs with the same EVP_PKEY, a context set up
 *                   per signature (the key server before 6c1fcb7)
 *   --mode dup      each thread signs with its own EVP_PKEY_dup() copy
 *   --mode reuse    each thread keeps one initialised EVP_MD_CTX per key and
 *                   copies it per request (EVP_MD_CTX_copy_ex) instead of
 *                   fetching algorithms and building contexts every time
 *
 * Output: one line: signs= seconds= rate= threads= mode= key=
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

enum { M_SHARED, M_DUP, M_REUSE };

static EVP_PKEY *key;
static const char *md_name;
static int pss, mode, nthreads = 2;
static double duration = 3.0;
static atomic_int go, stop;
static atomic_ulong total;

#define CV_LEN (64 + 33 + 1 + 32)

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int init_ctx(EVP_MD_CTX *m, EVP_PKEY *k)
{
    EVP_PKEY_CTX *pc = NULL;

    if (EVP_DigestSignInit_ex(m, &pc, md_name, NULL, NULL, k, NULL) != 1)
        return 0;
    if (pss)
        return EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0
            && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) > 0
            && EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, md_name, NULL) > 0;
    return 1;
}

static void *worker(void *arg)
{
    EVP_PKEY *k = key;
    EVP_MD_CTX *tmpl = NULL;
    unsigned char tbs[CV_LEN], sig[1024];
    unsigned long n = 0;

    (void)arg;
    memset(tbs, 0x20, 64);
    memcpy(tbs + 64, "TLS 1.3, server CertificateVerify", 33);
    tbs[97] = 0;
    if (mode == M_DUP && (k = EVP_PKEY_dup(key)) == NULL)
        abort();
    if (mode == M_REUSE) {
        if ((k = EVP_PKEY_dup(key)) == NULL || (tmpl = EVP_MD_CTX_new()) == NULL
            || !init_ctx(tmpl, k))
            abort();
    }
    while (!atomic_load(&go))
        ;
    while (!atomic_load(&stop)) {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        size_t len = sizeof(sig);

        memcpy(tbs + 98, &n, sizeof(n));
        if (m == NULL || (mode == M_REUSE ? EVP_MD_CTX_copy_ex(m, tmpl) != 1 : !init_ctx(m, k))
            || EVP_DigestSign(m, sig, &len, tbs, sizeof(tbs)) != 1) {
            ERR_print_errors_fp(stderr);
            abort();
        }
        EVP_MD_CTX_free(m);
        n++;
    }
    atomic_fetch_add(&total, n);
    EVP_MD_CTX_free(tmpl);
    if (k != key)
        EVP_PKEY_free(k);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *file = NULL, *m = "shared";
    pthread_t th[64];
    FILE *f;
    double t0, t1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            nthreads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            duration = atof(argv[++i]);
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
            m = argv[++i];
        else {
            fprintf(stderr,
                    "Usage: lurk-signcore --key PEM [--threads T] [--seconds S] "
                    "[--mode shared|dup|reuse]\n");
            return 2;
        }
    }
    mode = strcmp(m, "dup") == 0 ? M_DUP : strcmp(m, "reuse") == 0 ? M_REUSE : M_SHARED;
    if (file == NULL || nthreads < 1 || nthreads > 64 || (f = fopen(file, "r")) == NULL) {
        fprintf(stderr, "lurk-signcore: need --key FILE and 1..64 threads\n");
        return 2;
    }
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    /* The schemes of the benchmarks: RSA-PSS-SHA256, ECDSA-SHA256, Ed25519. */
    if (EVP_PKEY_is_a(key, "RSA")) {
        md_name = "SHA256";
        pss = 1;
    } else if (EVP_PKEY_is_a(key, "EC")) {
        md_name = "SHA256";
    }
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    t0 = now_s();
    atomic_store(&go, 1);
    while ((t1 = now_s()) - t0 < duration) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };

        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    t1 = now_s();
    printf("signs=%lu seconds=%.3f rate=%.1f threads=%d mode=%s key=%s\n",
           (unsigned long)atomic_load(&total), t1 - t0, (double)atomic_load(&total) / (t1 - t0),
           nthreads, m, EVP_PKEY_get0_type_name(key));
    EVP_PKEY_free(key);
    return 0;
}
