/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-edge identity (ks_ident): parsing `edges`, matching a verified peer
 * to a member and to one of a listener's groups, and the names logs use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ks_ident.h"

#define PIN_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define PIN_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static const unsigned char spki_a[32] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                          0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
                                          0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                          0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
static const unsigned char spki_c[32] = { 1 };

static ks_ident_members parse_ok(const char *text)
{
    ks_ident_members m;
    char bad[256] = "";

    if (ks_ident_members_parse(text, &m, bad, sizeof(bad)) != 0) {
        print_error("\"%s\" refused: %s\n", text, bad);
        fail();
    }
    return m;
}

static void test_parse_canonical(void **state)
{
    ks_ident_members m = parse_ok(" dns:Edge1.CDN.example, dns:*.Pop.cdn.example\tspki:" PIN_A
                                  " spki:" PIN_B);
    char t[128];

    (void)state;
    assert_int_equal(m.n, 4);
    ks_ident_member_text(&m.v[0], t, sizeof(t));
    assert_string_equal(t, "dns:edge1.cdn.example");
    assert_int_equal(m.v[1].kind, KS_IDENT_DNS_WILDCARD);
    ks_ident_member_text(&m.v[1], t, sizeof(t));
    assert_string_equal(t, "dns:*.pop.cdn.example");
    ks_ident_member_text(&m.v[2], t, sizeof(t));
    assert_string_equal(t, "spki:" PIN_A);
    assert_memory_equal(m.v[2].spki, spki_a, 32);
    ks_ident_member_text(&m.v[3], t, sizeof(t));
    assert_string_equal(t, "spki:" PIN_B);
    ks_ident_members_clear(&m);
    assert_int_equal(m.n, 0);
    /* Upper-case hex is the same pin. */
    m = parse_ok("spki:00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF");
    assert_memory_equal(m.v[0].spki, spki_a, 32);
    ks_ident_members_clear(&m);
}

static void test_parse_refusals(void **state)
{
    static const struct {
        const char *text;
        const char *why;
    } cases[] = {
        { "", "no member" },
        { " , ", "no member" },
        { NULL, "no member" },
        { "edge1.example", "is neither dns:NAME nor spki:HEX" },
        { "cn:edge1", "is neither dns:NAME nor spki:HEX" },
        { "DNS:edge1.example", "is neither dns:NAME nor spki:HEX" },
        { "dns:", "is not a DNS name" },
        { "dns:.example", "is not a DNS name" },
        { "dns:a..example", "is not a DNS name" },
        { "dns:edge1.example.", "is not a DNS name" },
        { "dns:ed*ge.example", "is not a DNS name" },
        { "dns:a.*.example", "is not a DNS name" },
        { "dns:edge\x01.example", "is not a DNS name" },
        { "dns:\xc3\xa9.example", "is not a DNS name" },
        { "dns:*", "is not a DNS name" },
        { "dns:*.", "a wildcard is" },
        { "dns:*.com", "a wildcard is" },
        { "dns:**.a.example", "is not a DNS name" },
        { "dns:*.*.example", "a wildcard is" },
        { "dns:x.0123456789012345678901234567890123456789012345678901234567890123.example",
          "is not a DNS name" },
        { "spki:", "64 hex digits" },
        { "spki:00112233", "64 hex digits" },
        { "spki:" PIN_A "00", "64 hex digits" },
        { "spki:0011223344556677889gaabbccddeeff00112233445566778899aabbccddeeff",
          "64 hex digits" },
        { "dns:a.example dns:A.EXAMPLE", "\"dns:a.example\" is listed twice" },
        { "spki:" PIN_A ",spki:" PIN_A, "is listed twice" },
        { "dns:*.b.example dns:*.B.example", "\"dns:*.b.example\" is listed twice" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ks_ident_members m;
        char bad[256] = "";

        if (ks_ident_members_parse(cases[i].text, &m, bad, sizeof(bad)) != -1) {
            print_error("case %zu \"%s\" accepted\n", i, cases[i].text);
            fail();
        }
        assert_int_equal(m.n, 0);
        assert_null(m.v);
        if (strstr(bad, cases[i].why) == NULL) {
            print_error("case %zu: \"%s\" lacks \"%s\"\n", i, bad, cases[i].why);
            fail();
        }
    }
}

static void test_long_names(void **state)
{
    char name[300] = "dns:", a63[64], b61[62];
    ks_ident_members m;

    (void)state;
    /* 63-character labels are fine; 253 characters in all is the limit. */
    memset(a63, 'a', 63);
    a63[63] = '\0';
    memset(b61, 'b', 61);
    b61[61] = '\0';
    snprintf(name + 4, sizeof(name) - 4, "%s.%s.%s.%s", a63, a63, a63, b61);
    assert_int_equal(strlen(name + 4), 253);
    assert_int_equal(ks_ident_members_parse(name, &m, NULL, 0), 0);
    ks_ident_members_clear(&m);
    strcat(name, "b");
    assert_int_equal(ks_ident_members_parse(name, &m, NULL, 0), -1);
}

/* Each member kind against peers: name, pin, case, wildcard depth, '*' in a peer name. */
static void test_member_matches(void **state)
{
    static const struct {
        const char *member;
        const char *dns[3];
        int with_spki; /* 1: spki_a, 2: spki_c */
        int want;
    } cases[] = {
        { "dns:edge1.example", { "edge1.example" }, 0, 1 },
        { "dns:edge1.example", { "EDGE1.Example" }, 0, 1 },
        { "dns:edge1.example", { "other.example", "edge1.example" }, 0, 1 },
        { "dns:edge1.example", { "edge1.example." }, 0, 0 },
        { "dns:edge1.example", { "xedge1.example" }, 0, 0 },
        { "dns:edge1.example", { "edge1.example.evil" }, 0, 0 },
        { "dns:edge1.example", { "a.edge1.example" }, 0, 0 },
        { "dns:edge1.example", { NULL }, 1, 0 },
        { "dns:*.pop.example", { "a.pop.example" }, 0, 1 },
        { "dns:*.pop.example", { "A.POP.example" }, 0, 1 },
        { "dns:*.pop.example", { "pop.example" }, 0, 0 },
        { "dns:*.pop.example", { "b.a.pop.example" }, 0, 0 },
        { "dns:*.pop.example", { ".pop.example" }, 0, 0 },
        { "dns:*.pop.example", { "*.pop.example" }, 0, 0 },
        { "dns:*.pop.example", { "a*.pop.example" }, 0, 0 },
        { "dns:*.pop.example", { "a.xpop.example" }, 0, 0 },
        { "dns:*.pop.example", { "x.example", "c.pop.example" }, 0, 1 },
        { "spki:" PIN_A, { NULL }, 1, 1 },
        { "spki:" PIN_A, { NULL }, 2, 0 },
        { "spki:" PIN_A, { "edge1.example" }, 0, 0 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ks_ident_members m = parse_ok(cases[i].member);
        ks_ident_peer p;

        memset(&p, 0, sizeof(p));
        for (size_t j = 0; j < 3 && cases[i].dns[j] != NULL; j++)
            p.dns[p.n_dns++] = cases[i].dns[j];
        p.spki = cases[i].with_spki == 1 ? spki_a : cases[i].with_spki == 2 ? spki_c : NULL;
        if (ks_ident_member_matches(&m.v[0], &p) != cases[i].want) {
            print_error("case %zu: %s against %s: want %d\n", i, cases[i].member,
                        cases[i].dns[0] != NULL ? cases[i].dns[0] : "(spki)", cases[i].want);
            fail();
        }
        ks_ident_members_clear(&m);
    }
}

/* Which group of a shared listener takes a peer. */
static void test_pick(void **state)
{
    ks_ident_members g[4];
    ks_ident_members none = { NULL, 0 };
    static const struct {
        const char *dns;
        int spki; /* 1: spki_a */
        long want_with_catchall, want_without;
    } cases[] = {
        { "edge1.cdn.example", 0, 0, 0 }, /* named by group 0 */
        { "edge2.cdn.example", 0, 1, 1 }, /* named by group 1 */
        { "x.pop.cdn.example", 0, 1, 1 }, /* group 1's wildcard */
        /* Named by group 0 and by group 1's wildcard: the first group in order. */
        { "edge1.pop.cdn.example", 0, 0, 0 },
        { "stranger.example", 0, 2, -1 }, /* nobody names it: the catch-all */
        { "stranger.example", 1, 3, 3 },  /* its pin is named by group 3 */
        { NULL, 0, 2, -1 },
    };

    (void)state;
    g[0] = parse_ok("dns:edge1.cdn.example dns:edge1.pop.cdn.example");
    g[1] = parse_ok("dns:edge2.cdn.example dns:*.pop.cdn.example");
    g[2] = none; /* a catch-all listed before a naming group still comes last */
    g[3] = parse_ok("spki:" PIN_A);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ks_ident_peer p;
        ks_ident_members without[3] = { g[0], g[1], g[3] };
        long got, want_without = cases[i].want_without;

        memset(&p, 0, sizeof(p));
        if (cases[i].dns != NULL)
            p.dns[p.n_dns++] = cases[i].dns;
        p.spki = cases[i].spki ? spki_a : NULL;
        got = ks_ident_pick(g, 4, &p);
        if (got != cases[i].want_with_catchall) {
            print_error("case %zu (%s): group %ld, want %ld\n", i, cases[i].dns, got,
                        cases[i].want_with_catchall);
            fail();
        }
        /* Without the catch-all (indexes shift: group 3 is at 2). */
        if (want_without == 3)
            want_without = 2;
        got = ks_ident_pick(without, 3, &p);
        if (got != want_without) {
            print_error("case %zu (%s) without catch-all: group %ld, want %ld\n", i, cases[i].dns,
                        got, want_without);
            fail();
        }
    }
    /* A lone catch-all takes everyone, a listener with no group no one. */
    assert_int_equal(ks_ident_pick(&none, 1, &(ks_ident_peer){ .n_dns = 0 }), 0);
    assert_int_equal(ks_ident_pick(NULL, 0, &(ks_ident_peer){ .n_dns = 0 }), -1);
    for (int i = 0; i < 4; i++)
        ks_ident_members_clear(&g[i]);
}

static void test_copy_and_common(void **state)
{
    ks_ident_members a = parse_ok("dns:a.example spki:" PIN_A " dns:*.w.example");
    ks_ident_members b = parse_ok("dns:B.example dns:*.W.example");
    ks_ident_members c = parse_ok("dns:c.example spki:" PIN_B);
    ks_ident_members copy;
    char t[128];

    (void)state;
    assert_int_equal(ks_ident_members_common(&a, &b, t, sizeof(t)), 1);
    assert_string_equal(t, "dns:*.w.example");
    assert_int_equal(ks_ident_members_common(&a, &c, t, sizeof(t)), 0);
    assert_int_equal(ks_ident_members_copy(&a, &copy), 0);
    assert_int_equal(copy.n, 3);
    assert_ptr_not_equal(copy.v[0].dns, a.v[0].dns);
    assert_int_equal(ks_ident_members_common(&copy, &a, t, sizeof(t)), 1);
    assert_string_equal(t, "dns:a.example");
    assert_null(copy.v[1].dns);
    assert_memory_equal(copy.v[1].spki, spki_a, 32);
    ks_ident_members_clear(&copy);
    assert_int_equal(ks_ident_members_copy(NULL, &copy), 0);
    assert_int_equal(copy.n, 0);
    ks_ident_members_clear(&a);
    ks_ident_members_clear(&b);
    ks_ident_members_clear(&c);
}

static void test_subject_cn(void **state)
{
    static const struct {
        const char *subject, *cn;
    } cases[] = {
        { "/CN=edge1.example", "edge1.example" },
        { "/C=FR/O=CDN/CN=edge1", "edge1" },
        { "/CN=first/OU=x/CN=last", "last" },
        { "/O=CNx=1/OU=CN=no", "" },
        { "CN=edge1,O=CDN", "edge1" },
        { "CN=a\\,b,O=CDN", "a\\,b" },
        { "O=CDN,CN=second", "second" },
        { "/O=CDN", "" },
        { "", "" },
        { NULL, "" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char cn[64] = "junk";

        ks_ident_subject_cn(cases[i].subject, cn, sizeof(cn));
        if (strcmp(cn, cases[i].cn) != 0) {
            print_error("case %zu: \"%s\" gave \"%s\", want \"%s\"\n", i, cases[i].subject, cn,
                        cases[i].cn);
            fail();
        }
    }
}

static void test_label(void **state)
{
    static const struct {
        const char *dns, *subject;
        int spki;
        const char *want;
    } cases[] = {
        { "edge1.example", "/CN=other", 1, "edge1.example/spki:0011223344556677" },
        { NULL, "/O=x/CN=edge-cn", 1, "edge-cn/spki:0011223344556677" },
        { NULL, "/O=x", 1, "-/spki:0011223344556677" },
        { NULL, "/O=x", 0, "-" },
        { "edge1.example", NULL, 0, "edge1.example" },
        /* The peer's bytes cannot break a line, a logfmt value or the label's shape. */
        { "a\nb c\"d\\e\x7f\xc3\xa9", NULL, 0, "a?b?c?d?e???" },
        { NULL, "/CN=evil\r\nerror: forged", 1, "evil??error:?forged/spki:0011223344556677" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ks_ident_peer p;
        char label[KS_IDENT_LABEL];

        memset(&p, 0, sizeof(p));
        if (cases[i].dns != NULL)
            p.dns[p.n_dns++] = cases[i].dns;
        p.spki = cases[i].spki ? spki_a : NULL;
        ks_ident_label(&p, cases[i].subject, label, sizeof(label));
        if (strcmp(label, cases[i].want) != 0) {
            print_error("case %zu: \"%s\", want \"%s\"\n", i, label, cases[i].want);
            fail();
        }
    }
}

static void test_label_keeps_pin_of_long_names(void **state)
{
    char name[200], label[KS_IDENT_LABEL], small[8];
    ks_ident_peer p;

    (void)state;
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    memset(&p, 0, sizeof(p));
    p.dns[p.n_dns++] = name;
    p.spki = spki_a;
    ks_ident_label(&p, NULL, label, sizeof(label));
    assert_true(strlen(label) < KS_IDENT_LABEL);
    assert_non_null(strstr(label, "/spki:0011223344556677"));
    assert_int_equal(label[strlen(label) - 1], '7');
    /* A tiny buffer is cut, never overrun. */
    ks_ident_label(&p, NULL, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void test_describe(void **state)
{
    ks_ident_peer p;
    char d[512];

    (void)state;
    memset(&p, 0, sizeof(p));
    p.dns[p.n_dns++] = "a.example";
    p.dns[p.n_dns++] = "b\n.example";
    p.spki = spki_a;
    ks_ident_describe(&p, "/O=My CDN/CN=a", d, sizeof(d));
    assert_string_equal(d,
                        "subject \"/O=My CDN/CN=a\", dns a.example b?.example, spki sha256 " PIN_A);
    memset(&p, 0, sizeof(p));
    ks_ident_describe(&p, NULL, d, sizeof(d));
    assert_string_equal(d, "subject \"\", dns (none), spki sha256 (unknown)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_canonical),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_member_matches),
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_copy_and_common),
        cmocka_unit_test(test_subject_cn),
        cmocka_unit_test(test_label),
        cmocka_unit_test(test_label_keeps_pin_of_long_names),
        cmocka_unit_test(test_describe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
