/*
 * lurkctl: talk to a LURK key server as an edge does.
 *
 * Reads the same settings as the provider (servers, tls_cert, tls_key,
 * tls_ca, server_name, timeout_ms, allow_insecure), from the provider's
 * section of an openssl.cnf or from the command line, so that an operator
 * can check connectivity and certificates with exactly what nginx will use.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lurk_transport.h"

#include <nng/supplemental/util/platform.h>

#define EXIT_USAGE 2

typedef struct {
    const char *servers;
    const char *cert, *key, *ca, *server_name;
    int timeout_ms;
    int allow_insecure;
    const char *out;
} lurkctl_opts;

static void lurkctl_usage(FILE *f)
{
    fprintf(f,
"Usage: lurkctl [OPTIONS] COMMAND [ARGS]\n"
"\n"
"Talk to a LURK key server with an edge's credentials.\n"
"\n"
"Commands:\n"
"  ping                 round trip to the key server, prints the latency\n"
"  capabilities         protocol version, configuration epoch, and the keys\n"
"                       this edge may use with their signature schemes\n"
"  pubkey KEY-ID        print the key's public key (PEM SubjectPublicKeyInfo)\n"
"\n"
"Options:\n"
"  -C, --config FILE    read settings from the lurk provider's section of this\n"
"                       openssl.cnf (the section named by `lurk = ...` under the\n"
"                       providers section, or --section)\n"
"      --section NAME   the section to read instead\n"
"  -s, --server URLS    key server URL(s): tls+tcp://host:port, ipc:///path\n"
"      --cert FILE      this edge's client certificate (PEM)\n"
"      --key FILE       its private key (PEM)\n"
"      --ca FILE        CA the key server's certificate must chain to\n"
"      --server-name N  name expected in the key server certificate\n"
"                       (default: the host of the URL)\n"
"      --timeout-ms N   per request deadline (default 2000)\n"
"      --allow-insecure permit tcp:// (cleartext) URLs\n"
"  -o, --out FILE       write output to FILE instead of standard output\n"
"  -h, --help           this text\n"
"\n"
"Command-line options override the config file.\n"
"Exit status: 0 success, 1 the key server refused or could not be reached,\n"
"2 usage or configuration error.\n");
}

/* The lurk provider's section: `lurk = <section>` in the providers list. */
static const char *lurkctl_find_section(CONF *conf)
{
    const char *init = NCONF_get_string(conf, NULL, "openssl_conf");
    const char *provs = init ? NCONF_get_string(conf, init, "providers") : NULL;
    const char *sect = provs ? NCONF_get_string(conf, provs, "lurk") : NULL;

    ERR_clear_error();
    return sect;
}

static int lurkctl_read_config(const char *path, const char *section, lurkctl_opts *o,
                               CONF **confp)
{
    CONF *conf = NCONF_new(NULL);
    long line = -1;
    const char *v;

    if (conf == NULL || NCONF_load(conf, path, &line) <= 0) {
        fprintf(stderr, "lurkctl: cannot load %s (line %ld)\n", path, line);
        NCONF_free(conf);
        return 0;
    }
    if (section == NULL && (section = lurkctl_find_section(conf)) == NULL) {
        fprintf(stderr, "lurkctl: %s has no `lurk = <section>` in its providers section; "
                "use --section\n", path);
        NCONF_free(conf);
        return 0;
    }
#define LURKCTL_GET(field, name)                                             \
    if (o->field == NULL && (v = NCONF_get_string(conf, section, name)) != NULL) \
        o->field = v;
    LURKCTL_GET(servers, "servers");
    LURKCTL_GET(cert, "tls_cert");
    LURKCTL_GET(key, "tls_key");
    LURKCTL_GET(ca, "tls_ca");
    LURKCTL_GET(server_name, "server_name");
#undef LURKCTL_GET
    if (o->timeout_ms == 0 && (v = NCONF_get_string(conf, section, "timeout_ms")) != NULL)
        o->timeout_ms = atoi(v);
    if ((v = NCONF_get_string(conf, section, "allow_insecure")) != NULL
        && (strcmp(v, "yes") == 0 || strcmp(v, "1") == 0 || strcmp(v, "true") == 0))
        o->allow_insecure = 1;
    ERR_clear_error();
    *confp = conf; /* the strings above live in it */
    return 1;
}

static lurk_call_result lurkctl_call(lurk_client *c, Lurk__V1__Request *req,
                                     Lurk__V1__Response__ResultCase expect,
                                     Lurk__V1__Response **resp)
{
    char err[512];
    lurk_call_result res = lurk_client_call(c, req, expect, resp, err, sizeof(err));

    if (res != LURK_CALL_OK)
        fprintf(stderr, "lurkctl: %s\n", err);
    return res;
}

static int lurkctl_ping(lurk_client *c, FILE *out)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__PingRequest ping = LURK__V1__PING_REQUEST__INIT;
    Lurk__V1__Response *resp;
    nng_time t0 = nng_clock();

    req.op_case = LURK__V1__REQUEST__OP_PING;
    req.ping = &ping;
    ping.payload.data = (uint8_t *)"lurkctl";
    ping.payload.len = 7;
    if (lurkctl_call(c, &req, LURK__V1__RESPONSE__RESULT_PING, &resp) != LURK_CALL_OK)
        return 1;
    fprintf(out, "pong in %llu ms\n", (unsigned long long)(nng_clock() - t0));
    lurk__v1__response__free_unpacked(resp, NULL);
    return 0;
}

static void lurkctl_hex(FILE *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%02x", p[i]);
}

static int lurkctl_capabilities(lurk_client *c, FILE *out)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__CapabilitiesRequest caps = LURK__V1__CAPABILITIES_REQUEST__INIT;
    Lurk__V1__Response *resp;
    Lurk__V1__CapabilitiesResponse *r;

    req.op_case = LURK__V1__REQUEST__OP_CAPABILITIES;
    req.capabilities = &caps;
    if (lurkctl_call(c, &req, LURK__V1__RESPONSE__RESULT_CAPABILITIES, &resp) != LURK_CALL_OK)
        return 1;
    r = resp->capabilities;
    fprintf(out, "server: %s\nprotocol: %u\nconfig-epoch: %016llx\nkeys: %zu\n",
            r->server_id ? r->server_id : "", r->protocol_version,
            (unsigned long long)r->config_epoch, r->n_keys);
    for (size_t i = 0; i < r->n_keys; i++) {
        Lurk__V1__KeyInfo *k = r->keys[i];

        fprintf(out, "key %s: %s %u%s%s%s\n  schemes:", k->key_id, lurk_key_type_name(k->type),
                k->bits, k->group && k->group[0] ? " " : "", k->group ? k->group : "",
                k->decrypt ? ", rsa-key-exchange" : "");
        for (size_t j = 0; j < k->n_schemes; j++) {
            const lurk_scheme *s = lurk_scheme_find(k->schemes[j]);

            fprintf(out, " %s", s != NULL ? s->name : "?");
        }
        fprintf(out, "\n  spki-sha256: ");
        lurkctl_hex(out, k->spki_sha256.data, k->spki_sha256.len);
        fprintf(out, "\n");
    }
    lurk__v1__response__free_unpacked(resp, NULL);
    return 0;
}

static int lurkctl_pubkey(lurk_client *c, const char *key_id, FILE *out)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__GetPublicKeyRequest get = LURK__V1__GET_PUBLIC_KEY_REQUEST__INIT;
    Lurk__V1__Response *resp;
    const unsigned char *p;
    EVP_PKEY *pub;
    int rc = 1;

    req.op_case = LURK__V1__REQUEST__OP_GET_PUBLIC_KEY;
    req.get_public_key = &get;
    get.key_id = (char *)key_id;
    if (lurkctl_call(c, &req, LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY, &resp) != LURK_CALL_OK)
        return 1;
    p = resp->get_public_key->spki.data;
    pub = d2i_PUBKEY(NULL, &p, (long)resp->get_public_key->spki.len);
    if (pub == NULL)
        fprintf(stderr, "lurkctl: key server sent an undecodable public key\n");
    else if (PEM_write_PUBKEY(out, pub))
        rc = 0;
    EVP_PKEY_free(pub);
    lurk__v1__response__free_unpacked(resp, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'C' },
        { "section", required_argument, NULL, 'S' },
        { "server", required_argument, NULL, 's' },
        { "cert", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "ca", required_argument, NULL, 'a' },
        { "server-name", required_argument, NULL, 'n' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "allow-insecure", no_argument, NULL, 'I' },
        { "out", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    lurkctl_opts o = { 0 };
    const char *config = NULL, *section = NULL, *cmd;
    CONF *conf = NULL;
    char **urls = NULL;
    char err[512];
    lurk_client *client = NULL;
    lurk_client_conf cc;
    FILE *out = stdout;
    int opt, rc = EXIT_USAGE;

    while ((opt = getopt_long(argc, argv, "C:s:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'C': config = optarg; break;
        case 'S': section = optarg; break;
        case 's': o.servers = optarg; break;
        case 'c': o.cert = optarg; break;
        case 'k': o.key = optarg; break;
        case 'a': o.ca = optarg; break;
        case 'n': o.server_name = optarg; break;
        case 't': o.timeout_ms = atoi(optarg); break;
        case 'I': o.allow_insecure = 1; break;
        case 'o': o.out = optarg; break;
        case 'h': lurkctl_usage(stdout); return 0;
        default: lurkctl_usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        lurkctl_usage(stderr);
        return EXIT_USAGE;
    }
    cmd = argv[optind];
    if (config != NULL && !lurkctl_read_config(config, section, &o, &conf))
        return EXIT_USAGE;
    if ((urls = lurk_url_list_parse(o.servers, o.allow_insecure, err, sizeof(err))) == NULL) {
        fprintf(stderr, "lurkctl: servers: %s\n", err);
        goto done;
    }
    memset(&cc, 0, sizeof(cc));
    cc.urls = urls;
    cc.tls.cert = o.cert;
    cc.tls.key = o.key;
    cc.tls.ca = o.ca;
    cc.tls.server_name = o.server_name;
    cc.timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : 2000;
    if (lurk_client_new(&cc, &client, err, sizeof(err)) != 0) {
        fprintf(stderr, "lurkctl: %s\n", err);
        goto done;
    }
    if (o.out != NULL && (out = fopen(o.out, "w")) == NULL) {
        fprintf(stderr, "lurkctl: cannot write %s\n", o.out);
        goto done;
    }
    if (strcmp(cmd, "ping") == 0 && optind + 1 == argc)
        rc = lurkctl_ping(client, out);
    else if ((strcmp(cmd, "capabilities") == 0 || strcmp(cmd, "caps") == 0) && optind + 1 == argc)
        rc = lurkctl_capabilities(client, out);
    else if (strcmp(cmd, "pubkey") == 0 && optind + 2 == argc)
        rc = lurkctl_pubkey(client, argv[optind + 1], out);
    else
        lurkctl_usage(stderr);
    if (out != stdout && fclose(out) != 0 && rc == 0)
        rc = 1;
done:
    lurk_client_free(client);
    lurk_url_list_free(urls);
    NCONF_free(conf);
    return rc;
}
