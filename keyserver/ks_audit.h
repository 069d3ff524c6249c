/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log: one structured line per operation, logfmt style
 * (key=value, values with spaces or quotes quoted), never key material:
 *
 *   ts=2025-01-31T12:00:00.123456Z group=cdn1 peer=10.0.0.7:40512 conn=12
 *   id=9f3a.. op=sign key=www scheme=rsa_pss_rsae_sha256 result=OK
 *   latency_us=1234 epoch=0123456789abcdef
 *   [edge=edge1.cdn.example/spki:1a2b3c4d5e6f7a8b] [reason=replay detail="..."]
 *
 * (one line). Written to a file (appended) or to standard error. Lines
 * are collected whole under a lock and written in batches, each write(2)
 * ending on a line, so lines from concurrent workers never interleave: a
 * batch goes out once about 16 KiB wait, on ks_audit_flush() (the server
 * calls it whenever it runs out of requests), on reopen and on close. A
 * crash can therefore lose the lines of the last moments of a busy server.
 * ks_audit_reopen() reopens the file for log rotation (SIGHUP, SIGUSR1).
 */
#ifndef KS_AUDIT_H
#define KS_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct {
    struct timespec when; /* CLOCK_REALTIME at the request's arrival */
    const char *group;    /* edge group */
    const char *peer;     /* address, or "ipc pid N uid N" */
    uint32_t conn;        /* nng pipe id */
    uint64_t request_id;
    const char *op;     /* sign, decrypt, ping, ... */
    const char *key;    /* NULL: none */
    const char *scheme; /* NULL: none */
    const char *result; /* status name: OK, NOT_PERMITTED, ... */
    const char *reason; /* short refusal reason token, NULL when OK */
    const char *detail; /* free text, NULL when OK */
    uint64_t latency_us;
    uint64_t epoch;
    /*
     * The edge's certificate (ks_ident_label), "-" without one (ipc://,
     * tcp://), "?" for a connection already gone; NULL: no field. After
     * the older fields, so that their positions stay as they were.
     */
    const char *edge;
} ks_audit_rec;

/* Format one line (with '\n') into buf; returns its length, truncated to fit. */
size_t ks_audit_format(char *buf, size_t len, const ks_audit_rec *rec);

/* Append `value` to buf as a logfmt value (quoted and escaped when needed). */
size_t ks_audit_value(char *buf, size_t len, const char *value);

typedef struct ks_audit ks_audit;

/* path NULL, "" , "-" or "stderr": standard error. -1 with err on failure. */
int ks_audit_open(const char *path, ks_audit **out, char *err, size_t errlen);

/* Reopen the same path (rotation). Keeps the old file on failure. */
int ks_audit_reopen(ks_audit *a, char *err, size_t errlen);

/* Switch to another path (a reload changed audit_log). */
int ks_audit_retarget(ks_audit *a, const char *path, char *err, size_t errlen);

/* Queue one line; written with the next batch. */
void ks_audit_write(ks_audit *a, const ks_audit_rec *rec);

/* Write every queued line now. */
void ks_audit_flush(ks_audit *a);

/* Lines written and lines lost (write errors) so far; flushes first. */
void ks_audit_stats(ks_audit *a, uint64_t *written, uint64_t *failed);

void ks_audit_close(ks_audit *a);

#endif
