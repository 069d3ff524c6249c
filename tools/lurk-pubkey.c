/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk-pubkey: the lurk provider's key lookup helper.
 *
 * Loading a `lurk://<key-id>` URI needs the key's public half, which only
 * the key server has, while the loading process (an nginx or HAProxy
 * master, any multi-threaded host) must not start nng (it aborts in any
 * child forked afterwards) and must not fork() from inside libcrypto
 * either (the child could block on a lock another thread held). So the
 * provider posix_spawn()s this program with a clean environment, and it
 * asks the one question:
 *
 *   lurk-pubkey --server URL [--server URL...] [--cert FILE --key FILE]
 *               [--ca FILE] [--server-name NAME] [--tls-min-version V]
 *               [--tls-providers NAMES] [--timeout-ms N]
 *               [--attempt-timeout-ms N] [--allow-insecure] [--] KEY-ID
 *
 * Every argument is a setting of the provider's openssl.cnf section: URLs,
 * file paths, numbers, never key material. The answer goes to standard
 * output in the provider's format: one status byte, then
 *
 *   0  ok:          the key type byte (lurk.proto KeyType) and the DER SPKI
 *   1  failed:      error text (no answer, transport error, bad reply)
 *   2  refused:     error text (the key server's status and reason)
 *   3  bad settings or usage: error text (an unreadable tls_cert, ...)
 *
 * and the exit status is that same number. Standard input is not read.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lurk_transport.h"

enum { ST_OK = 0, ST_FAILED = 1, ST_REFUSED = 2, ST_CONFIG = 3 };

static int write_all(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);

        if (n <= 0)
            return 0;
        p += n;
        len -= (size_t)n;
    }
    return 1;
}

/* Status byte and error text, and the same status as exit code. */
static int answer_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int answer_error(int status, const char *fmt, ...)
{
    char text[600];
    unsigned char st = (unsigned char)status;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (write_all(&st, 1))
        (void)write_all(text, strlen(text));
    return status;
}

static int parse_ms(const char *text, int *out)
{
    char *end;
    long ms = strtol(text, &end, 10);

    if (end == text || *end != '\0' || ms < 10 || ms > 600000)
        return 0;
    *out = (int)ms;
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = { { "server", required_argument, NULL, 's' },
                                              { "cert", required_argument, NULL, 'c' },
                                              { "key", required_argument, NULL, 'k' },
                                              { "ca", required_argument, NULL, 'a' },
                                              { "server-name", required_argument, NULL, 'n' },
                                              { "timeout-ms", required_argument, NULL, 't' },
                                              { "attempt-timeout-ms", required_argument, NULL,
                                                'T' },
                                              { "allow-insecure", no_argument, NULL, 'i' },
                                              { "tls-min-version", required_argument, NULL, 'V' },
                                              { "tls-providers", required_argument, NULL, 'P' },
                                              { NULL, 0, NULL, 0 } };
    lurk_client_conf conf;
    lurk_client *c = NULL;
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__GetPublicKeyRequest get = LURK__V1__GET_PUBLIC_KEY_REQUEST__INIT;
    Lurk__V1__Response *resp = NULL;
    lurk_call_result res;
    lurk_tls_cred *cred = NULL;
    const char *providers = NULL;
    char *servers = NULL, **urls = NULL, err[512];
    size_t servers_len = 0;
    int opt, allow_insecure = 0, tls = 0, status;

    memset(&conf, 0, sizeof(conf));
    conf.timeout_ms = 2000;
    conf.keepalive_ms = -1; /* one question, then exit */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': {
            size_t n = strlen(optarg);
            char *grown = realloc(servers, servers_len + n + 2);

            if (grown == NULL)
                return answer_error(ST_FAILED, "%s", "out of memory");
            servers = grown;
            if (servers_len > 0)
                servers[servers_len++] = ' ';
            memcpy(servers + servers_len, optarg, n + 1);
            servers_len += n;
            break;
        }
        case 'c': conf.tls.cert = optarg; break;
        case 'k': conf.tls.key = optarg; break;
        case 'a': conf.tls.ca = optarg; break;
        case 'n': conf.tls.server_name = optarg; break;
        case 'V': conf.tls.min_version = optarg; break;
        case 'P': providers = optarg; break;
        case 't':
            if (!parse_ms(optarg, &conf.timeout_ms))
                return answer_error(ST_CONFIG,
                                    "lurk-pubkey: --timeout-ms \"%s\": give "
                                    "milliseconds, 10 to 600000",
                                    optarg);
            break;
        case 'T':
            if (!parse_ms(optarg, &conf.attempt_timeout_ms))
                return answer_error(ST_CONFIG,
                                    "lurk-pubkey: --attempt-timeout-ms \"%s\": give "
                                    "milliseconds, 10 to 600000",
                                    optarg);
            break;
        case 'i': allow_insecure = 1; break;
        default:
            return answer_error(ST_CONFIG, "lurk-pubkey: unknown option or missing value: %s",
                                argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return answer_error(ST_CONFIG, "%s",
                            "usage: lurk-pubkey --server URL [--cert FILE "
                            "--key FILE --ca FILE --server-name NAME --tls-min-version V "
                            "--tls-providers NAMES --timeout-ms N --attempt-timeout-ms N "
                            "--allow-insecure] KEY-ID");
    if (servers == NULL)
        return answer_error(ST_CONFIG, "%s", "lurk-pubkey: no --server given");
    if ((urls = lurk_url_list_parse(servers, allow_insecure, err, sizeof(err))) == NULL) {
        free(servers);
        return answer_error(ST_CONFIG, "servers: %s", err);
    }
    free(servers);
    conf.urls = urls;
    /* The channel's key may be another provider's (a TPM's): loaded as the provider does. */
    for (char **u = urls; *u != NULL; u++)
        tls |= lurk_url_classify(*u) == LURK_URL_TLS;
    if (tls && lurk_tls_cred_load_ex(&conf.tls, providers, &cred, err, sizeof(err)) != 0) {
        lurk_url_list_free(urls);
        return answer_error(ST_CONFIG, "channel credentials (tls_cert, tls_key, tls_ca): %s", err);
    }
    conf.cred = cred;
    if (lurk_client_new(&conf, &c, err, sizeof(err)) != 0) {
        lurk_tls_cred_free(cred);
        lurk_url_list_free(urls);
        return answer_error(ST_CONFIG, "%s", err);
    }
    get.key_id = argv[optind];
    req.op_case = LURK__V1__REQUEST__OP_GET_PUBLIC_KEY;
    req.get_public_key = &get;
    res = lurk_client_call(c, &req, LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY, &resp, err,
                           sizeof(err));
    if (res == LURK_CALL_OK) {
        unsigned char hdr[2] = { ST_OK, (unsigned char)resp->get_public_key->type };

        status = write_all(hdr, 2)
                && write_all(resp->get_public_key->spki.data, resp->get_public_key->spki.len)
            ? ST_OK
            : ST_FAILED;
    } else {
        status = answer_error(res == LURK_CALL_REFUSED ? ST_REFUSED : ST_FAILED, "%s", err);
    }
    if (resp != NULL)
        lurk__v1__response__free_unpacked(resp, NULL);
    lurk_client_free(c);
    lurk_tls_cred_free(cred);
    lurk_url_list_free(urls);
    return status;
}
