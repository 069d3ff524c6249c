/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Audit lines (ks_audit_format), the file with rotation, and the metrics
 * exposition (ks_metrics).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ks_audit.h"
#include "ks_metrics.h"

static ks_audit_rec sample(void)
{
    ks_audit_rec r;

    memset(&r, 0, sizeof(r));
    r.when.tv_sec = 1700000000;
    r.when.tv_nsec = 123456789;
    r.group = "cdn1";
    r.peer = "127.0.0.1:40512";
    r.conn = 7;
    r.request_id = 0xabcdef;
    r.op = "sign";
    r.key = "www";
    r.scheme = "rsa_pss_rsae_sha256";
    r.result = "OK";
    r.latency_us = 1234;
    r.epoch = 0x0123456789abcdefull;
    return r;
}

static void test_format_ok(void **state)
{
    ks_audit_rec r = sample();
    char line[1024];
    size_t n;

    (void)state;
    n = ks_audit_format(line, sizeof(line), &r);
    assert_int_equal(n, strlen(line));
    assert_string_equal(line,
                        "ts=2023-11-14T22:13:20.123456Z group=cdn1 peer=127.0.0.1:40512 conn=7 "
                        "id=0000000000abcdef op=sign key=www scheme=rsa_pss_rsae_sha256 result=OK "
                        "latency_us=1234 epoch=0123456789abcdef\n");
}

static void test_format_refusal_quotes(void **state)
{
    ks_audit_rec r = sample();
    char line[1024];

    (void)state;
    r.key = NULL;
    r.scheme = NULL;
    r.result = "NOT_PERMITTED";
    r.reason = "replay";
    r.detail = "a \"quoted\" word\nand a newline\\";
    ks_audit_format(line, sizeof(line), &r);
    assert_non_null(strstr(line, " key=- scheme=- result=NOT_PERMITTED "));
    assert_non_null(strstr(line,
                           " reason=replay detail=\"a \\\"quoted\\\" word\\x0aand a "
                           "newline\\\\\"\n"));
    assert_int_equal(strchr(line, '\n') - line, (long)strlen(line) - 1); /* one line */
}

/* The edge's identity comes after every older field: their positions stay. */
static void test_format_edge(void **state)
{
    ks_audit_rec r = sample();
    char line[1024];

    (void)state;
    r.edge = "edge1.cdn.example/spki:1a2b3c4d5e6f7a8b";
    ks_audit_format(line, sizeof(line), &r);
    assert_string_equal(line,
                        "ts=2023-11-14T22:13:20.123456Z group=cdn1 peer=127.0.0.1:40512 conn=7 "
                        "id=0000000000abcdef op=sign key=www scheme=rsa_pss_rsae_sha256 result=OK "
                        "latency_us=1234 epoch=0123456789abcdef "
                        "edge=edge1.cdn.example/spki:1a2b3c4d5e6f7a8b\n");
    r.edge = "-";
    r.result = "NOT_PERMITTED";
    r.reason = "not_permitted";
    ks_audit_format(line, sizeof(line), &r);
    assert_non_null(strstr(line, " epoch=0123456789abcdef edge=- reason=not_permitted\n"));
}

static void test_format_truncates_to_one_line(void **state)
{
    ks_audit_rec r = sample();
    char line[64];
    size_t n;

    (void)state;
    n = ks_audit_format(line, sizeof(line), &r);
    assert_int_equal(n, sizeof(line) - 1);
    assert_int_equal(line[n - 1], '\n');
    assert_int_equal(line[n], '\0');
}

static void test_file_and_reopen(void **state)
{
    char dir[] = "/tmp/ks-audit-XXXXXX", path[256], rotated[256], err[256], buf[4096];
    ks_audit *a;
    ks_audit_rec r = sample();
    uint64_t written, failed;
    FILE *f;
    size_t n;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/audit.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/audit.log.1", dir);
    assert_int_equal(ks_audit_open(path, &a, err, sizeof(err)), 0);
    ks_audit_write(a, &r);
    assert_int_equal(rename(path, rotated), 0);
    ks_audit_write(a, &r); /* still into the renamed file */
    assert_int_equal(ks_audit_reopen(a, err, sizeof(err)), 0);
    ks_audit_write(a, &r); /* into a new file */
    ks_audit_stats(a, &written, &failed);
    assert_int_equal(written, 3);
    assert_int_equal(failed, 0);
    ks_audit_close(a);
    assert_non_null(f = fopen(rotated, "r"));
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(strstr(buf, "op=sign") + 1, "op=sign"));
    assert_non_null(f = fopen(path, "r"));
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "op=sign"));
    assert_null(strstr(strstr(buf, "op=sign") + 1, "op=sign"));
    assert_int_equal(ks_audit_open("/nonexistent-dir/x.log", &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.log"));
    unlink(path);
    unlink(rotated);
    rmdir(dir);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static size_t count_in(const char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle), hits = 0;

    for (size_t i = 0; i + k <= n; i++)
        hits += memcmp(p + i, needle, k) == 0;
    return hits;
}

/* Every line whole: one ts= at its start, and the epoch that comes late in it. */
static size_t count_whole_lines(const char *buf, size_t len)
{
    size_t lines = 0;

    for (const char *p = buf; p < buf + len;) {
        const char *nl = memchr(p, '\n', (size_t)(buf + len - p));

        assert_non_null(nl);
        assert_memory_equal(p, "ts=", 3);
        assert_int_equal(count_in(p, (size_t)(nl - p), "ts="), 1);
        assert_int_equal(count_in(p, (size_t)(nl - p), " epoch=0123456789abcdef"), 1);
        lines++;
        p = nl + 1;
    }
    return lines;
}

/* Lines wait in the batch until a flush, a reopen or the close. */
static void test_batched_until_flush(void **state)
{
    char dir[] = "/tmp/ks-audit-XXXXXX", path[256], err[256];
    ks_audit *a;
    ks_audit_rec r = sample();
    uint64_t written, failed;
    struct stat st;
    size_t len = 0;
    char *buf;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/audit.log", dir);
    assert_int_equal(ks_audit_open(path, &a, err, sizeof(err)), 0);
    for (int i = 0; i < 10; i++)
        ks_audit_write(a, &r);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    ks_audit_flush(a);
    assert_non_null(buf = slurp(path, &len));
    assert_int_equal(count_whole_lines(buf, len), 10);
    free(buf);
    /* Past the threshold a batch goes out on its own, ending on a line. */
    for (int i = 0; i < 1000; i++)
        ks_audit_write(a, &r);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 10 * 100);
    assert_non_null(buf = slurp(path, &len));
    assert_int_equal(buf[len - 1], '\n');
    assert_true(count_whole_lines(buf, len) < 1010);
    free(buf);
    ks_audit_stats(a, &written, &failed); /* flushes */
    assert_int_equal(written, 1010);
    assert_int_equal(failed, 0);
    ks_audit_write(a, &r);
    ks_audit_close(a); /* flushes too */
    assert_non_null(buf = slurp(path, &len));
    assert_int_equal(count_whole_lines(buf, len), 1011);
    free(buf);
    unlink(path);
    rmdir(dir);
}

typedef struct {
    ks_audit *a;
    int n;
} writer_arg;

static void *writer(void *arg)
{
    writer_arg *w = arg;
    ks_audit_rec r = sample();
    char detail[120];

    for (int i = 0; i < w->n; i++) {
        /* Lines of varying length, so that batches end anywhere. */
        memset(detail, 'x', sizeof(detail));
        detail[(size_t)i % (sizeof(detail) - 1)] = '\0';
        detail[sizeof(detail) - 1] = '\0';
        r.reason = "replay";
        r.detail = detail;
        r.conn = (uint32_t)i;
        ks_audit_write(w->a, &r);
        if (i % 97 == 0)
            ks_audit_flush(w->a);
    }
    return NULL;
}

/* Concurrent writers and rotations: no line lost, none cut or interleaved. */
static void test_concurrent_writes_and_reopen(void **state)
{
    char dir[] = "/tmp/ks-audit-XXXXXX", path[256], rotated[8][256], err[256];
    ks_audit *a;
    pthread_t th[4];
    writer_arg w = { NULL, 20000 };
    uint64_t written, failed;
    size_t total = 0, len;
    char *buf;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/audit.log", dir);
    assert_int_equal(ks_audit_open(path, &a, err, sizeof(err)), 0);
    w.a = a;
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, &w), 0);
    for (int i = 0; i < 8; i++) {
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
        snprintf(rotated[i], sizeof(rotated[i]), "%s/audit.log.%d", dir, i);
        assert_int_equal(rename(path, rotated[i]), 0);
        assert_int_equal(ks_audit_reopen(a, err, sizeof(err)), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ks_audit_stats(a, &written, &failed);
    assert_int_equal(written, 4 * 20000);
    assert_int_equal(failed, 0);
    ks_audit_close(a);
    for (int i = 0; i < 8; i++) {
        assert_non_null(buf = slurp(rotated[i], &len));
        total += count_whole_lines(buf, len);
        free(buf);
        unlink(rotated[i]);
    }
    assert_non_null(buf = slurp(path, &len));
    total += count_whole_lines(buf, len);
    free(buf);
    assert_int_equal(total, 4 * 20000);
    unlink(path);
    rmdir(dir);
}

typedef struct {
    const char *path;
    char *buf;
    size_t len;
} fifo_reader;

static void *read_fifo(void *arg)
{
    fifo_reader *r = arg;
    FILE *f = fopen(r->path, "r");
    size_t cap = 1 << 20;

    r->buf = malloc(cap);
    r->len = 0;
    if (f == NULL)
        return NULL;
    for (size_t n; (n = fread(r->buf + r->len, 1, cap - r->len, f)) > 0;)
        r->len += n;
    fclose(f);
    return NULL;
}

/* To a pipe a batch goes out in pieces of at most PIPE_BUF, each whole lines. */
static void test_pipe_in_whole_lines(void **state)
{
    char dir[] = "/tmp/ks-audit-XXXXXX", path[256], err[256];
    fifo_reader rd;
    pthread_t th;
    ks_audit *a;
    ks_audit_rec r = sample();

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/audit.fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    rd.path = path;
    assert_int_equal(pthread_create(&th, NULL, read_fifo, &rd), 0);
    assert_int_equal(ks_audit_open(path, &a, err, sizeof(err)), 0);
    for (int i = 0; i < 500; i++)
        ks_audit_write(a, &r);
    ks_audit_close(a);
    pthread_join(th, NULL);
    assert_int_equal(count_whole_lines(rd.buf, rd.len), 500);
    free(rd.buf);
    unlink(path);
    rmdir(dir);
}

static void test_metrics_render(void **state)
{
    ks_metrics *m = ks_metrics_new();
    ks_metrics_gauges g;
    const char *names[] = { "cdn1", "we\"ird" };
    unsigned int conns[] = { 2, 0 };
    size_t len = 0;
    char *text;

    (void)state;
    assert_non_null(m);
    ks_metrics_request(m, "sign", "www", "cdn1", "OK", 800);
    ks_metrics_request(m, "sign", "www", "cdn1", "OK", 3000);
    ks_metrics_request(m, "sign", "api", "cdn1", "NOT_PERMITTED", 20);
    ks_metrics_request(m, "ping", "", "cdn1", "OK", 10);
    ks_metrics_refusal(m, "not_permitted");
    assert_int_equal(ks_metrics_requests(m, "sign", "www", "cdn1", "OK"), 2);
    assert_int_equal(ks_metrics_requests(m, "sign", "www", "cdn2", "OK"), 0);
    assert_int_equal(ks_metrics_refusals(m, "not_permitted"), 1);
    memset(&g, 0, sizeof(g));
    g.in_flight = 3;
    g.keys = 4;
    g.epoch = 0xfedcba9876543210ull;
    g.config_loads = 2;
    g.n_groups = 2;
    g.group_names = names;
    g.group_connections = conns;
    text = ks_metrics_render(m, &g, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_non_null(strstr(text, "# TYPE lurk_keyserver_requests_total counter\n"));
    assert_non_null(strstr(text,
                           "lurk_keyserver_requests_total{op=\"sign\",key=\"www\","
                           "group=\"cdn1\",result=\"OK\"} 2\n"));
    assert_non_null(strstr(text, "lurk_keyserver_refusals_total{reason=\"not_permitted\"} 1\n"));
    assert_non_null(strstr(text,
                           "lurk_keyserver_request_duration_seconds_bucket{op=\"sign\","
                           "le=\"0.001\"} 2\n"));
    assert_non_null(strstr(text,
                           "lurk_keyserver_request_duration_seconds_bucket{op=\"sign\","
                           "le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "lurk_keyserver_request_duration_seconds_count{op=\"sign\"} 3\n"));
    assert_non_null(strstr(text, "lurk_keyserver_in_flight 3\n"));
    assert_non_null(strstr(text, "lurk_keyserver_keys 4\n"));
    assert_non_null(strstr(text, "lurk_keyserver_config_info{epoch=\"fedcba9876543210\"} 1\n"));
    assert_non_null(strstr(text, "lurk_keyserver_connections{group=\"we\\\"ird\"} 0\n"));
    assert_null(strstr(text, "op=\"decrypt\",le")); /* no empty histograms */
    free(text);
    ks_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_ok),
        cmocka_unit_test(test_format_refusal_quotes),
        cmocka_unit_test(test_format_edge),
        cmocka_unit_test(test_format_truncates_to_one_line),
        cmocka_unit_test(test_file_and_reopen),
        cmocka_unit_test(test_batched_until_flush),
        cmocka_unit_test(test_concurrent_writes_and_reopen),
        cmocka_unit_test(test_pipe_in_whole_lines),
        cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
