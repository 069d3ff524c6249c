/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a byte stream stands in nng's SP framing over TCP and TLS: an
 * 8-byte protocol header once (00 'S' 'P' 00, the protocol number, 00 00),
 * then messages, each an 8-byte big-endian length and that many bytes.
 *
 * The channel's TLS engine follows what nng sends with it: nng hands a
 * message over in pieces (length, message header, body), and knowing where
 * a message ends lets the engine seal it as one record. Pure: no I/O.
 */
#ifndef LURK_SPFRAME_H
#define LURK_SPFRAME_H

#include <stddef.h>
#include <stdint.h>

enum { LURK_SP_NEGO, LURK_SP_LEN, LURK_SP_BODY, LURK_SP_OFF };

typedef struct {
    int state;            /* LURK_SP_*; zeroed: at the start of a stream */
    size_t have;          /* bytes of the header or length seen */
    unsigned char len[8]; /* the length being read */
    uint64_t need;        /* body bytes still to come */
} lurk_spframe;

/*
 * Follows n more bytes of the stream. 1 when they end the protocol header
 * or a message, or when the stream turns out not to be SP framing (state
 * LURK_SP_OFF from then on, and always 1): whatever was held for the
 * message must go out now. 0 while a message is incomplete.
 */
int lurk_spframe_feed(lurk_spframe *t, const uint8_t *p, size_t n);

#endif
