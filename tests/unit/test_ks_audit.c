/*
 * Audit lines (ks_audit_format), the file with rotation, and the metrics
 * exposition (ks_metrics).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    assert_non_null(strstr(line, " reason=replay detail=\"a \\\"quoted\\\" word\\x0aand a "
                                 "newline\\\\\"\n"));
    assert_int_equal(strchr(line, '\n') - line, (long)strlen(line) - 1); /* one line */
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
    ks_audit_write(a, &r);                 /* still into the renamed file */
    assert_int_equal(ks_audit_reopen(a, err, sizeof(err)), 0);
    ks_audit_write(a, &r);                 /* into a new file */
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
    assert_non_null(strstr(text, "lurk_keyserver_requests_total{op=\"sign\",key=\"www\","
                                 "group=\"cdn1\",result=\"OK\"} 2\n"));
    assert_non_null(strstr(text, "lurk_keyserver_refusals_total{reason=\"not_permitted\"} 1\n"));
    assert_non_null(strstr(text, "lurk_keyserver_request_duration_seconds_bucket{op=\"sign\","
                                 "le=\"0.001\"} 2\n"));
    assert_non_null(strstr(text, "lurk_keyserver_request_duration_seconds_bucket{op=\"sign\","
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
        cmocka_unit_test(test_format_truncates_to_one_line),
        cmocka_unit_test(test_file_and_reopen),
        cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
