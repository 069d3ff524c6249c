/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replay window: see ks_replay.h.
 *
 * Entries live in a ring in arrival order (so the oldest expire first)
 * and are found through an open-addressing index (linear probing with
 * backward-shift deletion) over the first bytes of the digest. The digest
 * is keyed by the caller, so its bits are uniform even for chosen inputs.
 */
#include "ks_replay.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t digest[KS_REPLAY_DIGEST_LEN];
    uint64_t request_id;
    uint64_t expires_us;
    uint32_t group;
} ks_replay_entry;

struct ks_replay {
    ks_replay_entry *ring;
    size_t capacity;
    size_t head; /* oldest entry */
    size_t count;
    uint32_t *index;   /* ring position + 1, 0 = empty */
    size_t index_mask; /* index size - 1, a power of two >= 2 x capacity */
};

ks_replay *ks_replay_new(size_t capacity)
{
    ks_replay *r;
    size_t n = 2;

    if (capacity == 0 || capacity > KS_REPLAY_MAX_CAPACITY)
        return NULL;
    while (n < 2 * capacity)
        n *= 2;
    if ((r = calloc(1, sizeof(*r))) == NULL
        || (r->ring = calloc(capacity, sizeof(*r->ring))) == NULL
        || (r->index = calloc(n, sizeof(*r->index))) == NULL) {
        ks_replay_free(r);
        return NULL;
    }
    r->capacity = capacity;
    r->index_mask = n - 1;
    return r;
}

void ks_replay_free(ks_replay *r)
{
    if (r == NULL)
        return;
    free(r->ring);
    free(r->index);
    free(r);
}

static size_t ks_replay_slot(const ks_replay *r, const uint8_t *digest)
{
    uint64_t h = 0;

    for (int i = 0; i < 8; i++)
        h = (h << 8) | digest[i];
    return (size_t)h & r->index_mask;
}

/* Index slot of the entry with `digest`, or (size_t)-1. */
static size_t ks_replay_find(const ks_replay *r, const uint8_t *digest)
{
    size_t s = ks_replay_slot(r, digest);

    while (r->index[s] != 0) {
        const ks_replay_entry *e = &r->ring[r->index[s] - 1];

        if (memcmp(e->digest, digest, KS_REPLAY_DIGEST_LEN) == 0)
            return s;
        s = (s + 1) & r->index_mask;
    }
    return (size_t)-1;
}

/* Remove index slot `s` and shift the following cluster back (Knuth 6.4 R). */
static void ks_replay_unindex(ks_replay *r, size_t s)
{
    size_t j = s;

    r->index[s] = 0;
    for (;;) {
        size_t home;

        j = (j + 1) & r->index_mask;
        if (r->index[j] == 0)
            return;
        home = ks_replay_slot(r, r->ring[r->index[j] - 1].digest);
        /* Move j to s unless its home lies cyclically in (s, j]. */
        if ((s <= j) ? (s < home && home <= j) : (s < home || home <= j))
            continue;
        r->index[s] = r->index[j];
        r->index[j] = 0;
        s = j;
    }
}

static void ks_replay_expire(ks_replay *r, uint64_t now_us)
{
    while (r->count > 0 && r->ring[r->head].expires_us <= now_us) {
        size_t s = ks_replay_find(r, r->ring[r->head].digest);

        if (s != (size_t)-1 && r->index[s] - 1 == r->head)
            ks_replay_unindex(r, s);
        r->head = (r->head + 1) % r->capacity;
        r->count--;
    }
}

ks_replay_verdict ks_replay_check(ks_replay *r, const uint8_t digest[KS_REPLAY_DIGEST_LEN],
                                  uint32_t group, uint64_t request_id, uint64_t now_us,
                                  uint64_t window_us)
{
    size_t s, pos;
    ks_replay_entry *e;

    if (window_us == 0)
        return KS_REPLAY_FRESH;
    ks_replay_expire(r, now_us);
    if ((s = ks_replay_find(r, digest)) != (size_t)-1) {
        e = &r->ring[r->index[s] - 1];
        if (e->group == group && e->request_id == request_id)
            return KS_REPLAY_RETRY;
        return KS_REPLAY_REPLAY;
    }
    if (r->count == r->capacity)
        return KS_REPLAY_FULL;
    pos = (r->head + r->count) % r->capacity;
    e = &r->ring[pos];
    memcpy(e->digest, digest, KS_REPLAY_DIGEST_LEN);
    e->group = group;
    e->request_id = request_id;
    e->expires_us = now_us + window_us;
    r->count++;
    s = ks_replay_slot(r, digest);
    while (r->index[s] != 0)
        s = (s + 1) & r->index_mask;
    r->index[s] = (uint32_t)(pos + 1);
    return KS_REPLAY_FRESH;
}

size_t ks_replay_count(ks_replay *r, uint64_t now_us)
{
    ks_replay_expire(r, now_us);
    return r->count;
}

ks_replay_action ks_replay_action_of(ks_replay_verdict v, ks_replay_op op)
{
    switch (v) {
    case KS_REPLAY_FRESH:
    case KS_REPLAY_RETRY:
        /* A retry decrypts again, which gives the same premaster for a
         * well-formed ciphertext: the edge gets the answer it asked for. */
        return KS_REPLAY_ANSWER;
    case KS_REPLAY_REPLAY:
        return op == KS_REPLAY_OP_DECRYPT ? KS_REPLAY_ANSWER_RANDOM : KS_REPLAY_REFUSE;
    case KS_REPLAY_FULL: break;
    }
    /* Unknown verdicts fail closed like a full cache. */
    return op == KS_REPLAY_OP_DECRYPT ? KS_REPLAY_ANSWER_RANDOM : KS_REPLAY_REFUSE_FULL;
}

const char *ks_replay_verdict_name(ks_replay_verdict v)
{
    switch (v) {
    case KS_REPLAY_FRESH: return "fresh";
    case KS_REPLAY_RETRY: return "retry";
    case KS_REPLAY_REPLAY: return "replay";
    case KS_REPLAY_FULL: return "full";
    }
    return "?";
}
