/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk-rawclient: an edge that says what it likes. Sends arbitrary bytes,
 * or requests no honest edge would build, over a real (mutual TLS)
 * connection to a key server and prints what came back, so that the
 * security tests can check every refusal and that no refusal ever carries
 * a signature or a plaintext.
 *
 *   lurk-rawclient [OPTIONS] raw HEX|@FILE
 *   lurk-rawclient [OPTIONS] case NAME          (lurk-rawclient cases lists them)
 *   lurk-rawclient [OPTIONS] sign KEY-ID SCHEME HEX|@FILE
 *   lurk-rawclient [OPTIONS] decrypt KEY-ID HEX|@FILE [CLIENT-VERSION]
 *   lurk-rawclient [OPTIONS] ping
 *
 * Options: --server URL --cert FILE --key FILE --ca FILE --server-name NAME
 * --timeout-ms N --allow-insecure, as lurkctl; --out FILE writes the
 * result bytes (signature, premaster, public key) to FILE; --repeat N sends
 * the request N times and prints one line each; --id N gives the request
 * that id instead of the fixed one (a replay is the same bytes under
 * another id, a retry the same bytes under the same id).
 *
 * Output, one line per answer:
 *   status=<n> <name> id=<echoed|other|none> result=<none|kind:bytes> detail="..."
 * Exit status: 0 an answer was decoded (whatever its status), 3 no answer
 * (timeout or transport failure, printed as "no-answer: why"), 4 an
 * undecodable answer, 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lurk_transport.h"
#include "lurk_wire.h"

#define EXIT_NO_ANSWER  3
#define EXIT_BAD_ANSWER 4
#define RAW_ID          0x5241570000000001ull /* "RAW": the id of every request built here */

static uint64_t raw_id = RAW_ID; /* --id */

typedef struct {
    uint8_t *p;
    size_t len;
} buf;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: lurk-rawclient [OPTIONS] raw HEX|@FILE\n"
            "       lurk-rawclient [OPTIONS] case NAME\n"
            "       lurk-rawclient [OPTIONS] sign KEY-ID SCHEME HEX|@FILE\n"
            "       lurk-rawclient [OPTIONS] decrypt KEY-ID HEX|@FILE [CLIENT-VERSION]\n"
            "       lurk-rawclient [OPTIONS] ping\n"
            "       lurk-rawclient cases\n"
            "Options: --server URL --cert FILE --key FILE --ca FILE --server-name NAME\n"
            "         --timeout-ms N --allow-insecure --out FILE --repeat N --id N\n");
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL) {
        fprintf(stderr, "lurk-rawclient: out of memory\n");
        exit(1);
    }
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* HEX (white space ignored) or @FILE; exits on a bad argument. */
static buf read_bytes(const char *arg)
{
    buf b = { NULL, 0 };

    if (arg[0] == '@') {
        FILE *f = fopen(arg + 1, "rb");
        size_t cap = 0, n;

        if (f == NULL) {
            perror(arg + 1);
            exit(2);
        }
        for (;;) {
            if (cap - b.len < 65536) {
                cap = cap ? cap * 2 : 65536;
                b.p = realloc(b.p, cap);
                if (b.p == NULL)
                    exit(1);
            }
            if ((n = fread(b.p + b.len, 1, cap - b.len, f)) == 0)
                break;
            b.len += n;
        }
        fclose(f);
        return b;
    }
    b.p = xmalloc(strlen(arg) / 2 + 1);
    for (const char *s = arg; *s != '\0';) {
        int hi, lo;

        if (*s == ' ' || *s == ':' || *s == '\n') {
            s++;
            continue;
        }
        if ((hi = hexval(s[0])) < 0 || (lo = hexval(s[1])) < 0) {
            fprintf(stderr, "lurk-rawclient: not hex: %s\n", arg);
            exit(2);
        }
        b.p[b.len++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    return b;
}

static buf pack_request(Lurk__V1__Request *req)
{
    buf b;

    b.len = lurk__v1__request__get_packed_size(req);
    b.p = xmalloc(b.len);
    lurk__v1__request__pack(req, b.p);
    return b;
}

/* ---- requests no honest edge sends --------------------------------------- */

static void init_request(Lurk__V1__Request *req)
{
    lurk__v1__request__init(req);
    req->version = LURK_PROTOCOL_VERSION;
    req->id = raw_id;
}

static buf sign_request(const char *key_id, uint32_t scheme, const uint8_t *tbs, size_t len)
{
    Lurk__V1__Request req;
    Lurk__V1__SignRequest s = LURK__V1__SIGN_REQUEST__INIT;

    init_request(&req);
    req.op_case = LURK__V1__REQUEST__OP_SIGN;
    req.sign = &s;
    s.key_id = (char *)key_id;
    s.scheme = scheme;
    s.tbs.data = (uint8_t *)tbs;
    s.tbs.len = len;
    return pack_request(&req);
}

static buf decrypt_request(const char *key_id, const uint8_t *ct, size_t len, uint32_t version)
{
    Lurk__V1__Request req;
    Lurk__V1__DecryptRequest d = LURK__V1__DECRYPT_REQUEST__INIT;

    init_request(&req);
    req.op_case = LURK__V1__REQUEST__OP_DECRYPT;
    req.decrypt = &d;
    d.key_id = (char *)key_id;
    d.ciphertext.data = (uint8_t *)ct;
    d.ciphertext.len = len;
    d.client_version = version;
    return pack_request(&req);
}

static buf ping_request(uint32_t version, size_t payload)
{
    Lurk__V1__Request req;
    Lurk__V1__PingRequest ping = LURK__V1__PING_REQUEST__INIT;
    uint8_t data[4096];
    buf b;

    init_request(&req);
    req.version = version;
    req.op_case = LURK__V1__REQUEST__OP_PING;
    req.ping = &ping;
    memset(data, 'p', sizeof(data));
    ping.payload.data = data;
    ping.payload.len = payload < sizeof(data) ? payload : sizeof(data);
    b = pack_request(&req);
    return b;
}

static void put_varint(buf *b, uint64_t v)
{
    while (v >= 0x80) {
        b->p[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->len++] = (uint8_t)v;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A valid ping, then unknown field 100 (length-delimited) padding it to `total` bytes. */
static buf padded_ping(size_t total)
{
    buf ping = ping_request(LURK_PROTOCOL_VERSION, 8), b;
    size_t pad;

    b.p = xmalloc(total + 16);
    memcpy(b.p, ping.p, ping.len);
    b.len = ping.len;
    free(ping.p);
    /* tag (100 << 3 | 2) takes 2 bytes, then the length as a varint */
    pad = total > b.len + 3 ? total - b.len - 3 : 0;
    while (pad > 0 && b.len + 2 + varint_len(pad) + pad > total)
        pad--;
    put_varint(&b, 100u << 3 | 2u);
    put_varint(&b, pad);
    memset(b.p + b.len, 0xaa, pad);
    b.len += pad;
    return b;
}

/* A valid ping followed by `n` two-byte unknown varint fields: what it costs to keep them. */
static buf many_unknown_fields(size_t n)
{
    buf ping = ping_request(LURK_PROTOCOL_VERSION, 8), b;

    b.p = xmalloc(ping.len + 3 * n);
    memcpy(b.p, ping.p, ping.len);
    b.len = ping.len;
    free(ping.p);
    for (size_t i = 0; i < n; i++) {
        put_varint(&b, 1000u << 3 | 0u); /* field 1000, varint */
        b.p[b.len++] = 0x01;
    }
    return b;
}

typedef struct {
    const char *name;
    const char *what;
} rawcase;

static const rawcase cases[] = {
    { "garbage", "64 bytes of 0xff: not protobuf" },
    { "empty", "zero bytes: a request of version 0" },
    { "truncated", "a Sign request cut in the middle of its to-be-signed bytes" },
    { "version-2", "a ping of protocol version 2" },
    { "no-operation", "version and id, no operation" },
    { "unknown-operation", "field 15, an operation version 1 does not have" },
    { "wrong-wire-type", "the version field sent as a length-delimited field" },
    { "length-overflow", "a field whose length claims 2^35 bytes" },
    { "key-id-65", "Sign with a 65-character key id" },
    { "key-id-path", "Sign with key id ../../etc/shadow" },
    { "tbs-4097", "Sign with 4097 bytes to sign" },
    { "ping-65", "a ping with a 65-byte payload" },
    { "ciphertext-1025", "Decrypt with a 1025-byte ciphertext" },
    { "scheme-32-bits", "Sign with scheme 0x10804" },
    { "client-version-17-bits", "Decrypt with client version 0x10303" },
    { "message-max", "a ping padded to exactly LURK_MAX_MESSAGE bytes" },
    { "message-max+1", "a ping padded to LURK_MAX_MESSAGE + 1 bytes" },
    { "message-1mib", "a ping padded to 1 MiB" },
    { "unknown-fields-20000", "a ping followed by 20000 unknown fields (60 KB)" },
};

static buf build_case(const char *name)
{
    uint8_t tbs[LURK_MAX_TBS + 1], ct[LURK_MAX_CIPHERTEXT + 1];
    char id[LURK_MAX_KEY_ID + 2];
    buf b;

    memset(tbs, 0x20, sizeof(tbs));
    memset(ct, 0x42, sizeof(ct));
    if (strcmp(name, "garbage") == 0) {
        b.p = xmalloc(64);
        memset(b.p, 0xff, 64);
        b.len = 64;
    } else if (strcmp(name, "empty") == 0) {
        b.p = xmalloc(0);
        b.len = 0;
    } else if (strcmp(name, "truncated") == 0) {
        b = sign_request("rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA256, tbs, 130);
        b.len -= 40;
    } else if (strcmp(name, "version-2") == 0) {
        b = ping_request(2, 8);
    } else if (strcmp(name, "no-operation") == 0) {
        Lurk__V1__Request req;

        init_request(&req);
        b = pack_request(&req);
    } else if (strcmp(name, "unknown-operation") == 0) {
        Lurk__V1__Request req;

        init_request(&req);
        b = pack_request(&req);
        b.p = realloc(b.p, b.len + 8);
        memcpy(b.p + b.len, "\x7a\x03\x0a\x01\x78", 5); /* field 15, 3 bytes */
        b.len += 5;
    } else if (strcmp(name, "wrong-wire-type") == 0) {
        b.p = xmalloc(8);
        memcpy(b.p, "\x0a\x02\x01\x01\x10\x01", 6);
        b.len = 6;
    } else if (strcmp(name, "length-overflow") == 0) {
        b.p = xmalloc(16);
        b.len = 0;
        memcpy(b.p, "\x08\x01\x10\x01\x6a", 5); /* version 1, id 1, field 13 (sign) */
        b.len = 5;
        put_varint(&b, (uint64_t)1 << 35);
    } else if (strcmp(name, "key-id-65") == 0) {
        memset(id, 'k', LURK_MAX_KEY_ID + 1);
        id[LURK_MAX_KEY_ID + 1] = '\0';
        b = sign_request(id, LURK_SCHEME_RSA_PSS_RSAE_SHA256, tbs, 130);
    } else if (strcmp(name, "key-id-path") == 0) {
        b = sign_request("../../etc/shadow", LURK_SCHEME_RSA_PSS_RSAE_SHA256, tbs, 130);
    } else if (strcmp(name, "tbs-4097") == 0) {
        b = sign_request("rsa", LURK_SCHEME_RSA_PSS_RSAE_SHA256, tbs, LURK_MAX_TBS + 1);
    } else if (strcmp(name, "ping-65") == 0) {
        b = ping_request(LURK_PROTOCOL_VERSION, LURK_MAX_PING + 1);
    } else if (strcmp(name, "ciphertext-1025") == 0) {
        b = decrypt_request("rsa", ct, LURK_MAX_CIPHERTEXT + 1, 0x0303);
    } else if (strcmp(name, "scheme-32-bits") == 0) {
        b = sign_request("rsa", 0x10804, tbs, 130);
    } else if (strcmp(name, "client-version-17-bits") == 0) {
        b = decrypt_request("rsa", ct, 256, 0x10303);
    } else if (strcmp(name, "message-max") == 0) {
        b = padded_ping(LURK_MAX_MESSAGE);
    } else if (strcmp(name, "message-max+1") == 0) {
        b = padded_ping(LURK_MAX_MESSAGE + 1);
    } else if (strcmp(name, "message-1mib") == 0) {
        b = padded_ping(1024 * 1024);
    } else if (strcmp(name, "unknown-fields-20000") == 0) {
        b = many_unknown_fields(20000);
    } else {
        fprintf(stderr, "lurk-rawclient: no case \"%s\" (lurk-rawclient cases)\n", name);
        exit(2);
    }
    return b;
}

/* ---- scheme names ------------------------------------------------------- */

static uint32_t parse_scheme(const char *s)
{
    const lurk_scheme *sc;
    char *end;
    unsigned long v;

    for (size_t i = 0; (sc = lurk_scheme_at(i)) != NULL; i++)
        if (strcmp(sc->name, s) == 0)
            return sc->code;
    v = strtoul(s, &end, 0);
    if (*s == '\0' || *end != '\0' || v > 0xffffffffUL) {
        fprintf(stderr, "lurk-rawclient: \"%s\" is not a scheme (name or number)\n", s);
        exit(2);
    }
    return (uint32_t)v;
}

/* ---- the answer --------------------------------------------------------- */

static int report(const uint8_t *ans, size_t len, const char *out)
{
    Lurk__V1__Response *r = lurk__v1__response__unpack(NULL, len, ans);
    const ProtobufCBinaryData *bytes = NULL;
    const char *kind = "none";
    size_t n = 0;

    if (r == NULL) {
        printf("undecodable-answer: %zu bytes\n", len);
        return EXIT_BAD_ANSWER;
    }
    switch (r->result_case) {
    case LURK__V1__RESPONSE__RESULT_PING:
        kind = "ping";
        bytes = &r->ping->payload;
        break;
    case LURK__V1__RESPONSE__RESULT_CAPABILITIES:
        kind = "capabilities";
        n = r->capabilities->n_keys;
        break;
    case LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY:
        kind = "public-key";
        bytes = &r->get_public_key->spki;
        break;
    case LURK__V1__RESPONSE__RESULT_SIGN:
        kind = "signature";
        bytes = &r->sign->signature;
        break;
    case LURK__V1__RESPONSE__RESULT_DECRYPT:
        kind = "premaster";
        bytes = &r->decrypt->premaster;
        break;
    default: break;
    }
    if (bytes != NULL)
        n = bytes->len;
    printf("status=%d %s id=%s result=%s", (int)r->status, lurk_status_name(r->status),
           r->id == raw_id  ? "echoed"
               : r->id == 0 ? "none"
                            : "other",
           kind);
    if (strcmp(kind, "none") != 0)
        printf(":%zu", n);
    if (bytes != NULL && strcmp(kind, "premaster") == 0) {
        printf(" premaster=");
        for (size_t i = 0; i < bytes->len; i++)
            printf("%02x", bytes->data[i]);
    }
    printf(" detail=\"%s\"\n", r->detail != NULL ? r->detail : "");
    if (out != NULL && bytes != NULL) {
        FILE *f = fopen(out, "wb");

        if (f == NULL || fwrite(bytes->data, 1, bytes->len, f) != bytes->len || fclose(f) != 0)
            perror(out);
    }
    lurk__v1__response__free_unpacked(r, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = { { "server", required_argument, NULL, 's' },
                                              { "cert", required_argument, NULL, 'c' },
                                              { "key", required_argument, NULL, 'k' },
                                              { "ca", required_argument, NULL, 'a' },
                                              { "server-name", required_argument, NULL, 'n' },
                                              { "timeout-ms", required_argument, NULL, 't' },
                                              { "allow-insecure", no_argument, NULL, 'I' },
                                              { "out", required_argument, NULL, 'o' },
                                              { "repeat", required_argument, NULL, 'r' },
                                              { "id", required_argument, NULL, 'i' },
                                              { "help", no_argument, NULL, 'h' },
                                              { NULL, 0, NULL, 0 } };
    const char *servers = NULL, *out = NULL, *cmd;
    lurk_client_conf cc;
    lurk_client *client = NULL;
    char **urls = NULL, err[512];
    int opt, allow_insecure = 0, timeout_ms = 3000, repeat = 1, rc = 0;
    buf req;

    memset(&cc, 0, sizeof(cc));
    while ((opt = getopt_long(argc, argv, "s:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': servers = optarg; break;
        case 'c': cc.tls.cert = optarg; break;
        case 'k': cc.tls.key = optarg; break;
        case 'a': cc.tls.ca = optarg; break;
        case 'n': cc.tls.server_name = optarg; break;
        case 't': timeout_ms = atoi(optarg); break;
        case 'I': allow_insecure = 1; break;
        case 'o': out = optarg; break;
        case 'r': repeat = atoi(optarg); break;
        case 'i': raw_id = strtoull(optarg, NULL, 0); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = argv[optind];
    if (strcmp(cmd, "cases") == 0) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            printf("%-24s %s\n", cases[i].name, cases[i].what);
        return 0;
    }
    if (strcmp(cmd, "raw") == 0 && optind + 2 == argc) {
        req = read_bytes(argv[optind + 1]);
    } else if (strcmp(cmd, "case") == 0 && optind + 2 == argc) {
        req = build_case(argv[optind + 1]);
    } else if (strcmp(cmd, "sign") == 0 && optind + 4 == argc) {
        buf tbs = read_bytes(argv[optind + 3]);

        req = sign_request(argv[optind + 1], parse_scheme(argv[optind + 2]), tbs.p, tbs.len);
        free(tbs.p);
    } else if (strcmp(cmd, "decrypt") == 0 && (optind + 3 == argc || optind + 4 == argc)) {
        buf ct = read_bytes(argv[optind + 2]);
        uint32_t version = optind + 4 == argc ? (uint32_t)strtoul(argv[optind + 3], NULL, 0)
                                              : 0x0303u;

        req = decrypt_request(argv[optind + 1], ct.p, ct.len, version);
        free(ct.p);
    } else if (strcmp(cmd, "ping") == 0 && optind + 1 == argc) {
        req = ping_request(LURK_PROTOCOL_VERSION, 8);
    } else {
        usage(stderr);
        return 2;
    }
    if ((urls = lurk_url_list_parse(servers, allow_insecure, err, sizeof(err))) == NULL) {
        fprintf(stderr, "lurk-rawclient: --server: %s\n", err);
        free(req.p);
        return 2;
    }
    cc.urls = urls;
    cc.timeout_ms = timeout_ms;
    cc.attempt_timeout_ms = timeout_ms; /* one server, one attempt: no resend */
    cc.keepalive_ms = -1;               /* only the requests asked for */
    if (lurk_client_new(&cc, &client, err, sizeof(err)) != 0) {
        fprintf(stderr, "lurk-rawclient: %s\n", err);
        rc = 2;
        goto done;
    }
    for (int i = 0; i < repeat; i++) {
        uint8_t *ans = NULL;
        size_t len = 0;
        lurk_call_result res = lurk_client_call_raw(client, req.p, req.len, &ans, &len, err,
                                                    sizeof(err));

        if (res != LURK_CALL_OK) {
            printf("no-answer: %s\n", err);
            rc = EXIT_NO_ANSWER;
        } else {
            int r = report(ans, len, out);

            if (r != 0)
                rc = r;
        }
        free(ans);
    }
done:
    lurk_client_free(client);
    lurk_url_list_free(urls);
    free(req.p);
    return rc;
}
