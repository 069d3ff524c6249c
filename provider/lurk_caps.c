/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the key server lets each key do, as its Capabilities answer says:
 * the signature schemes it signs for a key and whether it decrypts RSA
 * premasters with it.
 *
 * Only libssl's capability probe for a SHA-1 or SHA-224 digest asks here.
 * Those schemes are off on a key server unless it sets legacy_hashes = yes,
 * and a probe must answer as the key server would sign: a "yes" it then
 * refuses fails a handshake that a "no" would have steered to SHA-256.
 * Modern handshakes never ask, so they never pay for a Capabilities call.
 *
 * The answer is fetched once in the process that signs (a probe runs during
 * a handshake, after any fork, exactly where the first signature would
 * start the client) and kept for LURK_CAPS_TTL_MS; a failed fetch is not
 * retried for LURK_CAPS_RETRY_MS, so a key server that is down costs one
 * deadline, not one per probe.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lurk_prov.h"

#define LURK_CAPS_TTL_MS   60000u
#define LURK_CAPS_RETRY_MS 5000u

typedef struct {
    char *key_id;
    uint32_t *schemes;
    size_t n_schemes;
    int decrypt;
} lurk_caps_key;

struct lurk_caps {
    lurk_caps_key *keys; /* NULL after a failed fetch: every answer is "no" */
    size_t n;
    uint64_t expiry_ms; /* CLOCK_MONOTONIC */
};

static uint64_t lurk_caps_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void lurk_caps_free(lurk_caps *caps)
{
    if (caps == NULL)
        return;
    for (size_t i = 0; i < caps->n; i++) {
        free(caps->keys[i].key_id);
        free(caps->keys[i].schemes);
    }
    free(caps->keys);
    free(caps);
}

void lurk_caps_teardown(LURK_PROV_CTX *prov)
{
    lurk_caps_free(prov->caps);
    prov->caps = NULL;
}

/* A copy that outlives the protobuf answer; NULL keys on a failed fetch. */
static lurk_caps *lurk_caps_from(const Lurk__V1__CapabilitiesResponse *r, uint64_t expiry_ms)
{
    lurk_caps *caps = calloc(1, sizeof(*caps));

    if (caps == NULL)
        return NULL;
    caps->expiry_ms = expiry_ms;
    if (r == NULL || r->n_keys == 0)
        return caps;
    if ((caps->keys = calloc(r->n_keys, sizeof(*caps->keys))) == NULL) {
        free(caps);
        return NULL;
    }
    for (size_t i = 0; i < r->n_keys; i++) {
        const Lurk__V1__KeyInfo *ki = r->keys[i];
        lurk_caps_key *k = &caps->keys[i];

        caps->n = i + 1; /* freed with the rest, even if only partly filled */
        if ((k->key_id = strdup(ki->key_id != NULL ? ki->key_id : "")) == NULL
            || (ki->n_schemes > 0
                && (k->schemes = calloc(ki->n_schemes, sizeof(*k->schemes))) == NULL))
            goto oom;
        if (ki->n_schemes > 0)
            memcpy(k->schemes, ki->schemes, ki->n_schemes * sizeof(*k->schemes));
        k->n_schemes = ki->n_schemes;
        k->decrypt = ki->decrypt;
    }
    return caps;
oom:
    lurk_caps_free(caps);
    return NULL;
}

/* A fresh answer, or NULL when the cached one still holds. */
static lurk_caps *lurk_caps_fetch(LURK_PROV_CTX *prov, const char *key_id, uint64_t now)
{
    Lurk__V1__Response *resp = lurk_rpc_capabilities(prov, key_id);
    lurk_caps *caps;

    if (resp == NULL)
        return lurk_caps_from(NULL, now + LURK_CAPS_RETRY_MS);
    caps = lurk_caps_from(resp->capabilities, now + LURK_CAPS_TTL_MS);
    lurk__v1__response__free_unpacked(resp, NULL);
    return caps;
}

static const lurk_caps_key *lurk_caps_find(const lurk_caps *caps, const char *key_id)
{
    for (size_t i = 0; caps != NULL && i < caps->n; i++)
        if (strcmp(caps->keys[i].key_id, key_id) == 0)
            return &caps->keys[i];
    return NULL;
}

static int lurk_caps_key_says(const lurk_caps_key *k, uint32_t scheme, int want_decrypt)
{
    if (k == NULL)
        return 0;
    if (want_decrypt)
        return k->decrypt;
    for (size_t i = 0; i < k->n_schemes; i++)
        if (k->schemes[i] == scheme)
            return 1;
    return 0;
}

/* Refresh if stale (the call runs without the lock), then answer. */
static int lurk_caps_ask(LURK_PROV_CTX *prov, const char *key_id, uint32_t scheme, int want_decrypt)
{
    uint64_t now = lurk_caps_now_ms();
    lurk_caps *fresh = NULL;
    int stale, yes;

    pthread_mutex_lock(&prov->lock);
    stale = prov->caps == NULL || now >= prov->caps->expiry_ms;
    pthread_mutex_unlock(&prov->lock);
    if (stale)
        fresh = lurk_caps_fetch(prov, key_id, now);
    pthread_mutex_lock(&prov->lock);
    if (fresh != NULL) {
        lurk_caps_free(prov->caps);
        prov->caps = fresh;
    }
    yes = lurk_caps_key_says(lurk_caps_find(prov->caps, key_id), scheme, want_decrypt);
    pthread_mutex_unlock(&prov->lock);
    return yes;
}

int lurk_caps_signs(LURK_PROV_CTX *prov, const char *key_id, uint32_t scheme)
{
    return lurk_caps_ask(prov, key_id, scheme, 0);
}

int lurk_caps_decrypts(LURK_PROV_CTX *prov, const char *key_id)
{
    return lurk_caps_ask(prov, key_id, 0, 1);
}
