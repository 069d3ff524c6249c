/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A multi-threaded host loading lurk:// keys:
 *
 *   lurk-mt-load URI COUNT
 *
 * While the main thread loads URI COUNT times through OSSL_STORE, other
 * threads keep the host busy the way a real server's do:
 *   - one holds a host lock most of the time, in a loop; the host also has
 *     a pthread_atfork child handler that takes that lock, as libraries
 *     that make themselves "fork-safe" do. A fork() while the lock is held
 *     gives a child that blocks forever in that handler: a key lookup that
 *     forks would hang there. posix_spawn runs no atfork handler.
 *   - one allocates and fetches OpenSSL algorithms in a loop (malloc's and
 *     libcrypto's own locks);
 *   - one reaps any child of the process (waitpid(-1)), as hosts with a
 *     SIGCHLD handler do, so the provider may find its helper gone.
 * Exit 0 when every load gave a key; prints what failed otherwise.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/store.h>

#include "lurk_load_key.h"

static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int stop;

static void nap_us(long us)
{
    struct timespec t = { 0, us * 1000 };

    nanosleep(&t, NULL);
}

static void atfork_child(void)
{
    pthread_mutex_lock(&host_lock); /* blocks forever if another thread held it */
    pthread_mutex_unlock(&host_lock);
}

static void *holder(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        pthread_mutex_lock(&host_lock);
        nap_us(2000);
        pthread_mutex_unlock(&host_lock);
        nap_us(10);
    }
    return NULL;
}

static void *churner(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        EVP_MD *md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
        void *p = malloc(4096);

        EVP_MD_free(md);
        free(p);
    }
    return NULL;
}

static void *reaper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        nap_us(500);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t t[3];
    int count, loaded = 0;

    if (argc != 3 || (count = atoi(argv[2])) <= 0) {
        fprintf(stderr, "usage: lurk-mt-load URI COUNT\n");
        return 2;
    }
    pthread_atfork(NULL, NULL, atfork_child);
    pthread_create(&t[0], NULL, holder, NULL);
    pthread_create(&t[1], NULL, churner, NULL);
    pthread_create(&t[2], NULL, reaper, NULL);
    for (int i = 0; i < count; i++) {
        EVP_PKEY *pkey = lurk_load_key(argv[1]);

        if (pkey == NULL) {
            printf("load %d of %s failed\n", i + 1, argv[1]);
            ERR_print_errors_fp(stdout);
            continue;
        }
        loaded++;
        EVP_PKEY_free(pkey);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("loaded %d of %d\n", loaded, count);
    return loaded == count ? 0 : 1;
}
