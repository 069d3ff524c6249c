/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replay window: a signature (or a premaster decryption) over identical
 * TLS context bytes is issued once within `window_us`.
 *
 * Pure: the caller computes the digest (keyed with a per-process secret,
 * so that nobody can grind inputs into one hash chain), passes the time,
 * and serialises calls. A retry is the same request again: same edge
 * group, same LURK request id, same digest; nng's req socket resends a
 * request unchanged (to the same or another key server) when a
 * connection drops or an answer is late, so a retry is answered again
 * (the caller re-signs), never refused as a replay.
 *
 * Bounded: at most `capacity` live entries. When every entry is still
 * inside the window the cache is full (KS_REPLAY_FULL): failing open would
 * let a flood switch the defense off.
 *
 * What a verdict means for the answer depends on the operation
 * (ks_replay_action_of): a Sign is refused, but a Decrypt is answered like
 * a local key would answer it, see there.
 */
#ifndef KS_REPLAY_H
#define KS_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#define KS_REPLAY_DIGEST_LEN   32u
#define KS_REPLAY_MAX_CAPACITY (16u * 1024u * 1024u)

typedef enum {
    KS_REPLAY_FRESH = 0, /* first time: recorded, go ahead */
    KS_REPLAY_RETRY,     /* the same request again: go ahead, not recorded twice */
    KS_REPLAY_REPLAY,    /* seen within the window from another request */
    KS_REPLAY_FULL       /* no room: not recorded */
} ks_replay_verdict;

typedef enum { KS_REPLAY_OP_SIGN = 0, KS_REPLAY_OP_DECRYPT } ks_replay_op;

typedef enum {
    KS_REPLAY_ANSWER = 0,    /* do the operation, answer its result */
    KS_REPLAY_ANSWER_RANDOM, /* decrypt anyway, answer 48 fresh random bytes instead */
    KS_REPLAY_REFUSE,        /* STATUS_NOT_PERMITTED, reason "replay" */
    KS_REPLAY_REFUSE_FULL    /* STATUS_OVERLOADED, reason "replay_cache_full" */
} ks_replay_action;

typedef struct ks_replay ks_replay;

/* capacity 1..KS_REPLAY_MAX_CAPACITY entries; NULL on a bad size or no memory. */
ks_replay *ks_replay_new(size_t capacity);
void ks_replay_free(ks_replay *r);

/*
 * Check and record. `window_us` 0 disables the check (always FRESH, nothing
 * kept). The window may change between calls (a reload): each entry keeps
 * the expiry it was given.
 */
ks_replay_verdict ks_replay_check(ks_replay *r, const uint8_t digest[KS_REPLAY_DIGEST_LEN],
                                  uint32_t group, uint64_t request_id, uint64_t now_us,
                                  uint64_t window_us);

/*
 * The answer for a verdict. A Sign that is a replay or finds the cache full
 * is refused. A Decrypt in either case is answered as a local key answers
 * any ClientKeyExchange, with STATUS_OK and 48 bytes, but random ones: the
 * premaster of a ciphertext is never given out twice within the window, and
 * the TLS client sees no difference that depends on earlier connections
 * (the handshake fails at Finished, as for a bad ciphertext). A full cache
 * cannot say whether the ciphertext was seen, so it takes the safe side.
 */
ks_replay_action ks_replay_action_of(ks_replay_verdict v, ks_replay_op op);

/* Live entries (after dropping the expired ones at `now_us`). */
size_t ks_replay_count(ks_replay *r, uint64_t now_us);

const char *ks_replay_verdict_name(ks_replay_verdict v);

#endif
