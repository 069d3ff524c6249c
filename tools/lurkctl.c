/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurkctl: talk to a LURK key server as an edge does.
 *
 * Reads the same settings as the provider, with the provider's own reading
 * of them (lurk_edge.c), from the provider's section of an openssl.cnf or
 * from the command line, so that an operator can check connectivity and
 * certificates with exactly what nginx will use.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ks_config.h"
#include "ks_keys.h"
#include "ks_log.h"
#include "lurk_edge.h"
#include "lurk_keyref.h"
#include "lurk_transport.h"

#include <nng/supplemental/util/platform.h>

#define EXIT_USAGE 2

typedef struct {
    lurk_edge_text edge; /* from the command line, then the config file */
    const char *out;
    /* keyref */
    const char *keyserver_config, *match_cert, *servers_hint;
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
            "  capabilities, caps   protocol version, configuration epoch, and the keys\n"
            "                       this edge may use with their signature schemes\n"
            "  pubkey KEY-ID        print the key's public key (PEM SubjectPublicKeyInfo)\n"
            "  keyref KEY-ID        write a key reference file (PEM \"LURK KEY REFERENCE\"):\n"
            "                       what nginx, HAProxy or any OpenSSL 3 program with the\n"
            "                       lurk provider loads as the key's private key file. It\n"
            "                       holds the key id and the public key, no secret. The\n"
            "                       public key comes from the key server, or with\n"
            "                       --keyserver-config from the key itself, without network\n"
            "\n"
            "Options:\n"
            "  -C, --config FILE    read settings from the lurk provider's section of this\n"
            "                       openssl.cnf (the section named by `lurk = ...` under the\n"
            "                       providers section, or --section)\n"
            "      --section NAME   the section to read instead\n"
            "  -s, --server URLS    key server URL(s): tls+tcp://host:port, ipc:///path\n"
            "      --cert FILE      this edge's client certificate (PEM)\n"
            "      --key FILE|URI   its private key (PEM file, or an OSSL_STORE URI)\n"
            "      --ca FILE        CA the key server's certificate must chain to\n"
            "      --server-name N  name expected in the key server certificate\n"
            "                       (default: the host of the URL)\n"
            "      --tls-min-version V  lowest TLS version of the channel: 1.2 or 1.3\n"
            "                       (default 1.3)\n"
            "      --tls-providers NAMES  OpenSSL providers that load --key, as the\n"
            "                       provider's tls_providers (default: \"default\"; a key\n"
            "                       in a TPM: \"tpm2 default\")\n"
            "      --timeout-ms N   per request deadline (default 2000)\n"
            "      --allow-insecure permit tcp:// (cleartext) URLs\n"
            "  -o, --out FILE       write output to FILE instead of standard output\n"
            "  -h, --help           this text\n"
            "\n"
            "keyref options:\n"
            "      --keyserver-config FILE\n"
            "                       on the key server host: load the key named in this\n"
            "                       lurk-keyserver configuration and take its public half\n"
            "                       (no network; needs read access to the key)\n"
            "      --match-cert FILE refuse to write the reference unless its public key is\n"
            "                       the one in this certificate (PEM or DER)\n"
            "      --servers-hint URLS  key server URLs to note in the file (informational;\n"
            "                       the provider's openssl.cnf section decides)\n"
            "\n"
            "Command-line options override the config file.\n"
            "Exit status: 0 success, 1 the key server refused or could not be reached,\n"
            "the key could not be loaded or does not match --match-cert, 2 usage or\n"
            "configuration error.\n");
}

/* Milliseconds, 10 to 600000 as the provider takes them; -1 if not. */
/* The lurk provider's section: `lurk = <section>` in the providers list. */
static const char *lurkctl_find_section(CONF *conf)
{
    const char *init = NCONF_get_string(conf, NULL, "openssl_conf");
    const char *provs = init ? NCONF_get_string(conf, init, "providers") : NULL;
    const char *sect = provs ? NCONF_get_string(conf, provs, "lurk") : NULL;

    ERR_clear_error();
    return sect;
}

static int lurkctl_read_config(const char *path, const char *section, lurkctl_opts *o, CONF **confp)
{
    CONF *conf = NCONF_new(NULL);
    long line = -1;
    const char *v;
    const lurk_edge_field *fields;
    size_t n;

    if (conf == NULL || NCONF_load(conf, path, &line) <= 0) {
        fprintf(stderr, "lurkctl: cannot load %s (line %ld)\n", path, line);
        NCONF_free(conf);
        return 0;
    }
    if (section == NULL && (section = lurkctl_find_section(conf)) == NULL) {
        fprintf(stderr,
                "lurkctl: %s has no `lurk = <section>` in its providers section; "
                "use --section\n",
                path);
        NCONF_free(conf);
        return 0;
    }
    /* What the command line gave wins; the provider's own reading of the rest. */
    fields = lurk_edge_fields(&n);
    for (size_t i = 0; i < n; i++) {
        const char **slot = lurk_edge_slot(&o->edge, &fields[i]);

        if (*slot == NULL && (v = NCONF_get_string(conf, section, fields[i].name)) != NULL)
            *slot = v;
    }
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

/* Why an RSA-PSS key lists fewer schemes: its restrictions, if any. */
static void lurkctl_pss(FILE *out, const Lurk__V1__KeyInfo *k)
{
    if (k->type != LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS)
        return;
    if (k->pss == NULL) {
        fprintf(out, "  rsa-pss: unrestricted\n");
        return;
    }
    fprintf(out, "  rsa-pss: hash %s, mgf1 %s, min-salt %u\n",
            k->pss->hash && k->pss->hash[0] ? k->pss->hash : "(not a TLS hash)",
            k->pss->mgf1_hash && k->pss->mgf1_hash[0] ? k->pss->mgf1_hash : "(not a TLS hash)",
            k->pss->min_salt_len);
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
        lurkctl_pss(out, k);
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

/* --- keyref ------------------------------------------------------------------ */

typedef struct {
    Lurk__V1__KeyType type;
    unsigned char *spki;
    size_t spki_len;
} lurkctl_pub;

static int lurkctl_pub_set(lurkctl_pub *pub, Lurk__V1__KeyType type, const unsigned char *spki,
                           size_t spki_len)
{
    if (spki_len == 0 || (pub->spki = malloc(spki_len)) == NULL) {
        fprintf(stderr, "lurkctl: no public key\n");
        return 0;
    }
    memcpy(pub->spki, spki, spki_len);
    pub->spki_len = spki_len;
    pub->type = type;
    return 1;
}

/* Over the network, as an edge: the same question the lurk:// store asks. */
static int lurkctl_pub_from_server(lurk_client *c, const char *key_id, lurkctl_pub *pub)
{
    Lurk__V1__Request req = LURK__V1__REQUEST__INIT;
    Lurk__V1__GetPublicKeyRequest get = LURK__V1__GET_PUBLIC_KEY_REQUEST__INIT;
    Lurk__V1__Response *resp;
    int ok;

    req.op_case = LURK__V1__REQUEST__OP_GET_PUBLIC_KEY;
    req.get_public_key = &get;
    get.key_id = (char *)key_id;
    if (lurkctl_call(c, &req, LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY, &resp) != LURK_CALL_OK)
        return 0;
    ok = lurkctl_pub_set(pub, resp->get_public_key->type, resp->get_public_key->spki.data,
                         resp->get_public_key->spki.len);
    lurk__v1__response__free_unpacked(resp, NULL);
    return ok;
}

/*
 * On the key server host: load the one key exactly as lurk-keyserver does
 * (same file checks, same OSSL_STORE loading), so that a reference made
 * here is byte for byte the one an edge would make. Returns an exit status.
 */
static int lurkctl_pub_from_keyserver_config(const char *path, const char *key_id, lurkctl_pub *pub)
{
    ks_config *cfg = NULL, one;
    ks_keyring *kr = NULL;
    char err[1024];
    int rc = 1;

    if (ks_config_load(path, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "lurkctl: %s\n", err);
        return EXIT_USAGE;
    }
    one = *cfg;
    one.keys = NULL;
    for (size_t i = 0; i < cfg->n_keys; i++)
        if (strcmp(cfg->keys[i].id, key_id) == 0)
            one.keys = &cfg->keys[i];
    if (one.keys == NULL) {
        fprintf(stderr, "lurkctl: key \"%s\" is not in the [%s] section of %s\n", key_id,
                cfg->keys_section != NULL ? cfg->keys_section : "keys", path);
        goto done;
    }
    /* Only this key: another key's problem is not this reference's. */
    one.n_keys = 1;
    ks_log_set_level(KS_LOG_WARN);
    ks_log_set_ident("lurkctl");
    if (ks_keys_load(&one, &kr, err, sizeof(err)) != 0) {
        fprintf(stderr, "lurkctl: %s\n", err);
        goto done;
    }
    if (lurkctl_pub_set(pub, kr->keys[0].desc.type, kr->keys[0].spki, kr->keys[0].spki_len))
        rc = 0;
done:
    ks_keys_free(kr);
    ks_config_free(cfg);
    return rc;
}

static X509 *lurkctl_read_cert(const char *path)
{
    BIO *in = BIO_new_file(path, "rb");
    X509 *x = NULL;

    if (in != NULL && (x = PEM_read_bio_X509(in, NULL, NULL, NULL)) == NULL && BIO_reset(in) == 0)
        x = d2i_X509_bio(in, NULL);
    BIO_free(in);
    ERR_clear_error();
    return x;
}

/*
 * A reference for the wrong key would only fail later, at the first
 * handshake. Returns an exit status.
 */
static int lurkctl_match_cert(const char *path, const char *key_id, const lurkctl_pub *pub)
{
    const unsigned char *p = pub->spki;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)pub->spki_len);
    X509 *x = lurkctl_read_cert(path);
    int rc = 1;

    if (x == NULL) {
        fprintf(stderr, "lurkctl: cannot read a certificate from %s\n", path);
        rc = EXIT_USAGE;
    } else if (key == NULL) {
        fprintf(stderr, "lurkctl: key \"%s\": undecodable public key\n", key_id);
    } else if (EVP_PKEY_eq(key, X509_get0_pubkey(x)) == 1) {
        rc = 0;
    } else {
        fprintf(stderr,
                "lurkctl: key \"%s\" does not match the certificate %s (their public "
                "keys differ); no reference written\n",
                key_id, path);
    }
    X509_free(x);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rc;
}

/* Encoded in memory first, so that a failure leaves no half-written file. */
static int lurkctl_keyref_write(const lurkctl_opts *o, const char *key_id, const lurkctl_pub *pub)
{
    lurk_keyref ref = { pub->type, key_id, pub->spki, pub->spki_len, o->servers_hint };
    BIO *mem = BIO_new(BIO_s_mem());
    const char *why = "out of memory";
    char *text;
    long len;
    FILE *out = stdout;
    int ok = 0;

    if (mem == NULL || !lurk_keyref_write_pem(mem, &ref, NULL, &why)) {
        fprintf(stderr, "lurkctl: key \"%s\": cannot make a reference: %s\n", key_id, why);
        goto done;
    }
    len = BIO_get_mem_data(mem, &text);
    if (o->out != NULL && (out = fopen(o->out, "w")) == NULL) {
        fprintf(stderr, "lurkctl: cannot write %s\n", o->out);
        goto done;
    }
    ok = fwrite(text, 1, (size_t)len, out) == (size_t)len;
    if (out != stdout)
        ok = fclose(out) == 0 && ok;
    else
        ok = fflush(out) == 0 && ok;
    if (!ok)
        fprintf(stderr, "lurkctl: cannot write %s\n", o->out != NULL ? o->out : "to stdout");
done:
    BIO_free(mem);
    return ok;
}

/* client is NULL with --keyserver-config. */
static int lurkctl_keyref(lurk_client *client, const lurkctl_opts *o, const char *key_id)
{
    lurkctl_pub pub = { LURK__V1__KEY_TYPE__KEY_TYPE_UNSPECIFIED, NULL, 0 };
    int rc;

    if (!lurk_key_id_valid(key_id)) {
        fprintf(stderr,
                "lurkctl: \"%s\" is not a key id (1 to %u characters of A-Z a-z 0-9 "
                ". _ -, not starting with . or -)\n",
                key_id, LURK_MAX_KEY_ID);
        return EXIT_USAGE;
    }
    if (client != NULL)
        rc = lurkctl_pub_from_server(client, key_id, &pub) ? 0 : 1;
    else
        rc = lurkctl_pub_from_keyserver_config(o->keyserver_config, key_id, &pub);
    if (rc == 0 && o->match_cert != NULL)
        rc = lurkctl_match_cert(o->match_cert, key_id, &pub);
    if (rc == 0 && !lurkctl_keyref_write(o, key_id, &pub))
        rc = 1;
    free(pub.spki);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = { { "config", required_argument, NULL, 'C' },
                                              { "section", required_argument, NULL, 'S' },
                                              { "server", required_argument, NULL, 's' },
                                              { "cert", required_argument, NULL, 'c' },
                                              { "key", required_argument, NULL, 'k' },
                                              { "ca", required_argument, NULL, 'a' },
                                              { "server-name", required_argument, NULL, 'n' },
                                              { "timeout-ms", required_argument, NULL, 't' },
                                              { "allow-insecure", no_argument, NULL, 'I' },
                                              { "tls-min-version", required_argument, NULL, 'V' },
                                              { "tls-providers", required_argument, NULL, 'P' },
                                              { "out", required_argument, NULL, 'o' },
                                              { "keyserver-config", required_argument, NULL, 'K' },
                                              { "match-cert", required_argument, NULL, 'M' },
                                              { "servers-hint", required_argument, NULL, 'H' },
                                              { "help", no_argument, NULL, 'h' },
                                              { NULL, 0, NULL, 0 } };
    lurkctl_opts o = { 0 };
    const char *config = NULL, *section = NULL, *cmd;
    CONF *conf = NULL;
    char **urls = NULL;
    char err[512], tmp[4096];
    lurk_client *client = NULL;
    lurk_tls_cred *cred = NULL;
    lurk_client_conf cc;
    lurk_edge_values ev;
    FILE *out = stdout;
    int opt, rc = EXIT_USAGE, keyref;

    while ((opt = getopt_long(argc, argv, "C:s:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'C': config = optarg; break;
        case 'S': section = optarg; break;
        case 's': o.edge.servers = optarg; break;
        case 'c': o.edge.tls_cert = optarg; break;
        case 'k': o.edge.tls_key = optarg; break;
        case 'a': o.edge.tls_ca = optarg; break;
        case 'n': o.edge.server_name = optarg; break;
        case 't': o.edge.timeout_ms = optarg; break;
        case 'I': o.edge.allow_insecure = "yes"; break;
        case 'V': o.edge.tls_min_version = optarg; break;
        case 'P': o.edge.tls_providers = optarg; break;
        case 'o': o.out = optarg; break;
        case 'K': o.keyserver_config = optarg; break;
        case 'M': o.match_cert = optarg; break;
        case 'H': o.servers_hint = optarg; break;
        case 'h': lurkctl_usage(stdout); return 0;
        default: lurkctl_usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        lurkctl_usage(stderr);
        return EXIT_USAGE;
    }

    cmd = argv[optind];
    keyref = strcmp(cmd, "keyref") == 0;
    if (keyref && optind + 2 != argc) {
        lurkctl_usage(stderr);
        return EXIT_USAGE;
    }
    if (o.servers_hint != NULL) {
        /* Only a note: the provider's own settings decide what is allowed. */
        char **hint = lurk_url_list_parse(o.servers_hint, 1, err, sizeof(err));

        if (hint == NULL) {
            fprintf(stderr, "lurkctl: --servers-hint: %s\n", err);
            return EXIT_USAGE;
        }
        lurk_url_list_free(hint);
    }
    /* On the key server host: no network, no nng. */
    if (keyref && o.keyserver_config != NULL)
        return lurkctl_keyref(NULL, &o, argv[optind + 1]);
    if (config != NULL && !lurkctl_read_config(config, section, &o, &conf))
        return EXIT_USAGE;
    if (lurk_edge_parse(&o.edge, &ev, err, sizeof(err)) != 0) {
        fprintf(stderr, "lurkctl: %s\n", err);
        NCONF_free(conf);
        return EXIT_USAGE;
    }
    if ((urls = ev.servers) == NULL) {
        fprintf(stderr,
                "lurkctl: servers: no URL given (--servers, or servers = in the "
                "provider's section of --config)\n");
        goto done;
    }
    memset(&cc, 0, sizeof(cc));
    cc.urls = urls;
    cc.tls.cert = o.edge.tls_cert;
    cc.tls.key = o.edge.tls_key;
    cc.tls.ca = o.edge.tls_ca;
    cc.tls.server_name = o.edge.server_name;
    cc.tls.min_version = ev.tls_min_version;
    cc.timeout_ms = ev.timeout_ms;
    /* As the provider loads it: with tls_providers, so the key may be a TPM's. */
    for (char **u = urls; *u != NULL && cred == NULL; u++) {
        if (lurk_url_classify(*u) != LURK_URL_TLS)
            continue;
        if (lurk_tls_cred_load_ex(&cc.tls, o.edge.tls_providers, &cred, err, sizeof(err)) != 0) {
            fprintf(stderr, "lurkctl: channel credentials (tls_cert, tls_key, tls_ca): %s\n", err);
            goto done;
        }
    }
    cc.cred = cred;
    if (lurk_client_new(&cc, &client, err, sizeof(err)) != 0) {
        fprintf(stderr, "lurkctl: %s\n", err);
        goto done;
    }
    if (keyref) {
        rc = lurkctl_keyref(client, &o, argv[optind + 1]);
        goto done;
    }
    /* Into a temporary file renamed at the end: a failure leaves no file. */
    if (o.out != NULL) {
        snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", o.out, (long)getpid());
        if ((out = fopen(tmp, "w")) == NULL) {
            fprintf(stderr, "lurkctl: cannot write %s\n", tmp);
            goto done;
        }
    }
    if (strcmp(cmd, "ping") == 0 && optind + 1 == argc)
        rc = lurkctl_ping(client, out);
    else if ((strcmp(cmd, "capabilities") == 0 || strcmp(cmd, "caps") == 0) && optind + 1 == argc)
        rc = lurkctl_capabilities(client, out);
    else if (strcmp(cmd, "pubkey") == 0 && optind + 2 == argc)
        rc = lurkctl_pubkey(client, argv[optind + 1], out);
    else
        lurkctl_usage(stderr);
    if (out != stdout) {
        if (fclose(out) != 0 && rc == 0)
            rc = 1;
        if (rc != 0 || rename(tmp, o.out) != 0) {
            if (rc == 0)
                fprintf(stderr, "lurkctl: cannot write %s\n", o.out);
            rc = rc != 0 ? rc : 1;
            unlink(tmp);
        }
    }
done:
    lurk_client_free(client);
    lurk_tls_cred_free(cred);
    lurk_url_list_free(urls);
    NCONF_free(conf);
    return rc;
}
