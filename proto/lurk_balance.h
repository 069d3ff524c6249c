/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which key server gets the next attempt: a pure decision over a snapshot
 * of each server's state, so that the failover rules can be read and unit
 * tested without sockets.
 */
#ifndef LURK_BALANCE_H
#define LURK_BALANCE_H

#include <stddef.h>
#include <stdint.h>

#define LURK_BALANCE_MAX_SERVERS 32

typedef struct {
    int connected; /* nng has at least one pipe to it */
    int down;      /* it failed an attempt or a probe and has not answered since */
    int inflight;  /* attempts waiting on it now */
} lurk_balance_view;

/*
 * The server for the next attempt, skipping those whose bit is set in
 * `tried`; -1 when every server was tried. Preference: connected and up,
 * then up but still connecting, then down; within that, the fewest attempts
 * in flight; ties rotate with `rr` so that load spreads.
 */
int lurk_balance_pick(const lurk_balance_view *v, size_t n, uint32_t tried, unsigned int rr);

/* Probe interval after another failed probe: doubles from 250 ms to 5 s. */
int lurk_balance_backoff(int prev_ms);

#define LURK_BALANCE_BACKOFF_MIN_MS 250
#define LURK_BALANCE_BACKOFF_MAX_MS 5000

#endif
