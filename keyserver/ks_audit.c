/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log: see ks_audit.h.
 */
#include "ks_audit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KS_AUDIT_LINE 2048
/*
 * Lines are collected and written once this much is waiting: one write(2)
 * per line under the lock cost more than the formatting. The server also
 * flushes whenever its workers run out of requests (ks_audit_flush()), so
 * an idle server has written every line.
 */
#define KS_AUDIT_FLUSH_AT (16 * 1024)

struct ks_audit {
    pthread_mutex_t lock; /* guards fd, path and the buffer */
    int fd;               /* 2 for standard error */
    char *path;           /* NULL: standard error */
    /*
     * Largest single write(2): the whole buffer to a regular file, where
     * O_APPEND keeps it in one piece; PIPE_BUF to a pipe or terminal,
     * where only that much is atomic against other writers (ks_log).
     */
    size_t chunk;
    char buf[KS_AUDIT_FLUSH_AT + KS_AUDIT_LINE];
    size_t used;  /* bytes waiting in buf: whole lines only */
    size_t lines; /* lines waiting in buf */
    atomic_ullong written;
    atomic_ullong failed;
};

static int ks_audit_needs_quotes(const char *v)
{
    if (*v == '\0')
        return 1;
    for (; *v != '\0'; v++) {
        unsigned char c = (unsigned char)*v;

        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            return 1;
    }
    return 0;
}

size_t ks_audit_value(char *buf, size_t len, const char *value)
{
    size_t used = 0;

#define PUT(ch)               \
    do {                      \
        if (used + 1 < len)   \
            buf[used] = (ch); \
        used++;               \
    } while (0)
    if (value == NULL)
        value = "-";
    if (!ks_audit_needs_quotes(value)) {
        for (; *value != '\0'; value++)
            PUT(*value);
    } else {
        PUT('"');
        for (; *value != '\0'; value++) {
            unsigned char c = (unsigned char)*value;

            if (c == '"' || c == '\\') {
                PUT('\\');
                PUT((char)c);
            } else if (c < 0x20 || c == 0x7f) {
                static const char hex[] = "0123456789abcdef";

                PUT('\\');
                PUT('x');
                PUT(hex[c >> 4]);
                PUT(hex[c & 0xf]);
            } else {
                PUT((char)c);
            }
        }
        PUT('"');
    }
#undef PUT
    if (len > 0)
        buf[used < len ? used : len - 1] = '\0';
    return used < len ? used : (len > 0 ? len - 1 : 0);
}

typedef struct {
    char *buf;
    size_t len;
    size_t used;
} ks_line;

static void ks_line_raw(ks_line *l, const char *s)
{
    int n = snprintf(l->buf + l->used, l->len - l->used, "%s", s);

    if (n > 0)
        l->used += (size_t)n < l->len - l->used ? (size_t)n : l->len - l->used - 1;
}

static void ks_line_kv(ks_line *l, const char *k, const char *v)
{
    if (l->used > 0)
        ks_line_raw(l, " ");
    ks_line_raw(l, k);
    ks_line_raw(l, "=");
    l->used += ks_audit_value(l->buf + l->used, l->len - l->used, v);
}

size_t ks_audit_format(char *buf, size_t len, const ks_audit_rec *rec)
{
    ks_line l = { buf, len, 0 };
    char tmp[64];
    struct tm tm;
    time_t t = rec->when.tv_sec;

    if (len < 2)
        return 0;
    buf[0] = '\0';
    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(rec->when.tv_nsec / 1000));
    ks_line_kv(&l, "ts", tmp);
    ks_line_kv(&l, "group", rec->group);
    ks_line_kv(&l, "peer", rec->peer);
    snprintf(tmp, sizeof(tmp), "%u", (unsigned int)rec->conn);
    ks_line_kv(&l, "conn", tmp);
    snprintf(tmp, sizeof(tmp), "%016llx", (unsigned long long)rec->request_id);
    ks_line_kv(&l, "id", tmp);
    ks_line_kv(&l, "op", rec->op);
    ks_line_kv(&l, "key", rec->key);
    ks_line_kv(&l, "scheme", rec->scheme);
    ks_line_kv(&l, "result", rec->result);
    snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)rec->latency_us);
    ks_line_kv(&l, "latency_us", tmp);
    snprintf(tmp, sizeof(tmp), "%016llx", (unsigned long long)rec->epoch);
    ks_line_kv(&l, "epoch", tmp);
    if (rec->edge != NULL)
        ks_line_kv(&l, "edge", rec->edge);
    if (rec->reason != NULL)
        ks_line_kv(&l, "reason", rec->reason);
    if (rec->detail != NULL && rec->detail[0] != '\0')
        ks_line_kv(&l, "detail", rec->detail);
    /* Always one whole line, even truncated. */
    if (l.used >= len - 1)
        l.used = len - 2;
    buf[l.used++] = '\n';
    buf[l.used] = '\0';
    return l.used;
}

static int ks_audit_is_stderr(const char *path)
{
    return path == NULL || path[0] == '\0' || strcmp(path, "-") == 0 || strcmp(path, "stderr") == 0;
}

static int ks_audit_open_fd(const char *path, int *fd, size_t *chunk, char *err, size_t errlen)
{
    struct stat st;

    if (ks_audit_is_stderr(path)) {
        *fd = STDERR_FILENO;
    } else {
        *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (*fd < 0) {
            snprintf(err, errlen, "audit_log %s: cannot open: %s", path, strerror(errno));
            return -1;
        }
    }
    *chunk = fstat(*fd, &st) == 0 && S_ISREG(st.st_mode) ? KS_AUDIT_FLUSH_AT + KS_AUDIT_LINE
                                                         : PIPE_BUF;
    return 0;
}

/* Hand the waiting lines to the kernel; with a->lock held. */
static void ks_audit_flush_locked(ks_audit *a)
{
    size_t off = 0, done = 0;

    while (off < a->used) {
        size_t n = a->used - off;
        ssize_t w;

        if (n > a->chunk) {
            /* End on a line: a line is shorter than any chunk. */
            n = a->chunk;
            while (n > 0 && a->buf[off + n - 1] != '\n')
                n--;
            if (n == 0)
                n = a->chunk;
        }
        do {
            w = write(a->fd, a->buf + off, n);
        } while (w < 0 && errno == EINTR);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (off == a->used) {
        done = a->lines;
    } else {
        /* Count the whole lines that made it; the rest are lost. */
        for (size_t i = 0; i < off; i++)
            done += a->buf[i] == '\n';
    }
    if (done > 0)
        atomic_fetch_add(&a->written, done);
    if (a->lines > done)
        atomic_fetch_add(&a->failed, a->lines - done);
    a->used = 0;
    a->lines = 0;
}

int ks_audit_open(const char *path, ks_audit **out, char *err, size_t errlen)
{
    ks_audit *a = calloc(1, sizeof(*a));

    *out = NULL;
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (ks_audit_open_fd(path, &a->fd, &a->chunk, err, errlen) != 0) {
        free(a);
        return -1;
    }
    if (!ks_audit_is_stderr(path) && (a->path = strdup(path)) == NULL) {
        close(a->fd);
        free(a);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&a->lock, NULL);
    *out = a;
    return 0;
}

int ks_audit_retarget(ks_audit *a, const char *path, char *err, size_t errlen)
{
    int fd, old;
    size_t chunk;
    char *copy = NULL;

    if (ks_audit_open_fd(path, &fd, &chunk, err, errlen) != 0)
        return -1;
    if (!ks_audit_is_stderr(path) && (copy = strdup(path)) == NULL) {
        if (fd != STDERR_FILENO)
            close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_lock(&a->lock);
    /* What was logged before the rotation belongs to the old file. */
    ks_audit_flush_locked(a);
    old = a->fd;
    a->fd = fd;
    a->chunk = chunk;
    free(a->path);
    a->path = copy;
    pthread_mutex_unlock(&a->lock);
    if (old != STDERR_FILENO && old != fd)
        close(old);
    return 0;
}

int ks_audit_reopen(ks_audit *a, char *err, size_t errlen)
{
    char *path;
    int rv;

    pthread_mutex_lock(&a->lock);
    path = a->path != NULL ? strdup(a->path) : NULL;
    if (path == NULL)
        ks_audit_flush_locked(a); /* standard error: nothing to reopen, but flush */
    pthread_mutex_unlock(&a->lock);
    if (path == NULL)
        return 0;
    rv = ks_audit_retarget(a, path, err, errlen);
    free(path);
    return rv;
}

void ks_audit_write(ks_audit *a, const ks_audit_rec *rec)
{
    char line[KS_AUDIT_LINE];
    size_t n = ks_audit_format(line, sizeof(line), rec);

    pthread_mutex_lock(&a->lock);
    memcpy(a->buf + a->used, line, n);
    a->used += n;
    a->lines++;
    if (a->used >= KS_AUDIT_FLUSH_AT)
        ks_audit_flush_locked(a);
    pthread_mutex_unlock(&a->lock);
}

void ks_audit_flush(ks_audit *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    if (a->used > 0)
        ks_audit_flush_locked(a);
    pthread_mutex_unlock(&a->lock);
}

void ks_audit_stats(ks_audit *a, uint64_t *written, uint64_t *failed)
{
    /* Counted when they reach the kernel: flush, so the counts are current. */
    ks_audit_flush(a);
    *written = atomic_load(&a->written);
    *failed = atomic_load(&a->failed);
}

void ks_audit_close(ks_audit *a)
{
    if (a == NULL)
        return;
    ks_audit_flush(a);
    if (a->fd != STDERR_FILENO)
        close(a->fd);
    free(a->path);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
