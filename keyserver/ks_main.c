/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk-keyserver: holds TLS private keys and answers LURK requests from
 * TLS edge servers. Runs in the foreground; a service manager supervises.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <nng/nng.h>
#include <openssl/crypto.h>

#include "ks_config.h"
#include "ks_keys.h"
#include "ks_log.h"
#include "ks_ops.h"
#include "ks_server.h"
#include "lurk_wire.h"

#ifndef KS_VERSION
#define KS_VERSION "unknown"
#endif

#define KS_EXIT_OK    0
#define KS_EXIT_FAIL  1
#define KS_EXIT_USAGE 2

/* The longest --debug-delay-ms: one minute is beyond any test's timeout. */
#define KS_MAX_DEBUG_DELAY_MS 60000

typedef struct {
    const char *config;
    int check;
    int verbose;
    int debug_delay_ms;
} ks_args;

static void ks_usage(FILE *out)
{
    fputs("Usage: lurk-keyserver -c FILE [--check] [-v] [--debug-delay-ms N]\n"
          "       lurk-keyserver --help | --version\n"
          "\n"
          "Hold TLS private keys and sign or decrypt for TLS edge servers (nginx,\n"
          "HAProxy, openssl s_server...) that use the LURK OpenSSL provider. Only\n"
          "TLS handshake signatures (TLS 1.3 CertificateVerify, TLS 1.2\n"
          "ServerKeyExchange) and TLS 1.2 RSA premaster decryption are performed:\n"
          "the key server is not a general signing or decryption oracle.\n"
          "Runs in the foreground and logs to standard error.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE     configuration file (required)\n"
          "      --check           load and validate the configuration, the TLS files\n"
          "                        and every key, print a summary, exit; do not listen\n"
          "  -v, --verbose         log at debug level (every operation, without secrets)\n"
          "      --debug-delay-ms N\n"
          "                        wait N ms before answering each Sign and Decrypt\n"
          "                        (testing timeouts and concurrency; never in production)\n"
          "  -h, --help            show this help\n"
          "  -V, --version         show the version\n"
          "\n"
          "Configuration (OpenSSL config syntax; relative paths are relative to the\n"
          "directory of FILE; a name given twice in a section is an error):\n"
          "  [keyserver]\n"
          "  listen = URL...       tls+tcp://HOST:PORT (mutual TLS, recommended),\n"
          "                        ipc:///PATH (same host; file permissions decide),\n"
          "                        tcp://HOST:PORT (cleartext; needs allow_insecure);\n"
          "                        several URLs separated by spaces or commas\n"
          "  tls_cert = FILE       PEM certificate chain presented to edges   (tls+tcp)\n"
          "  tls_key = FILE        its private key, PEM, unencrypted          (tls+tcp)\n"
          "  client_ca = FILE      CA the edges' certificates must chain to   (tls+tcp)\n"
          "  client_crl = FILE     optional PEM CRL for edge certificates\n"
          "  allow_insecure = no   yes to allow tcp:// listeners\n"
          "  workers = 0           worker threads for TPM/HSM keys; 0 = 4 x online CPUs\n"
          "                        (keys from files are signed on the receiving thread)\n"
          "  server_id = NAME      name reported in Capabilities (default: host name)\n"
          "  keys = keys           name of the section listing the keys\n"
          "  tls13 = yes           sign TLS 1.3 CertificateVerify\n"
          "  tls12 = yes           sign (D)TLS 1.2 ServerKeyExchange\n"
          "  ffdhe = yes           ... including finite-field DHE parameters\n"
          "  rsa_decrypt = no      yes: decrypt TLS 1.2 RSA key exchange premasters\n"
          "  legacy_hashes = no    yes: also sign TLS 1.2 with SHA-1 and SHA-224 (old clients)\n"
          "                        (off by default: see docs/security.md)\n"
          "  rate = 0, burst = 0   Sign+Decrypt per second (and bucket size) for all\n"
          "                        edges of the single [keyserver] form; 0 = unlimited\n"
          "  key_rate = 0          default per-key limit (requests/s); 0 = unlimited\n"
          "  key_burst = 0         default per-key burst; 0 = the rate\n"
          "  replay_window = 60    seconds during which identical TLS context bytes are\n"
          "                        signed (or decrypted) once; 0 = off\n"
          "  replay_cache = 2097152\n"
          "                        entries the replay window holds (size it to peak\n"
          "                        signatures per second x replay_window); when full,\n"
          "                        refuse Sign, answer Decrypt with random bytes\n"
          "  max_message = 65536   largest request in bytes (larger: connection closed)\n"
          "  max_inflight = 2 x workers\n"
          "                        requests received and not answered, all edges;\n"
          "                        beyond it: OVERLOADED at once\n"
          "  max_inflight_per_conn = workers\n"
          "                        the same for one edge connection\n"
          "  max_connections = 1024\n"
          "                        edge connections, all groups; beyond: closed\n"
          "  drain_timeout = 10    seconds SIGTERM waits for requests in flight\n"
          "  audit_log = FILE      one line per operation; default: standard error\n"
          "  metrics_listen = URL  http://HOST:PORT serving Prometheus /metrics\n"
          "\n"
          "  [edge.NAME]           one edge group (instead of listen/client_ca/\n"
          "                        client_crl/rate/burst in [keyserver]):\n"
          "  listen = URL...       this group's listeners (groups that name their\n"
          "                        edges may share a tls+tcp:// URL, same CA and CRL)\n"
          "  client_ca = FILE      the CA this group's edge certificates chain to\n"
          "  client_crl = FILE     optional PEM CRL for them\n"
          "  edges = MEMBER...     optional: the edges of this group, by certificate:\n"
          "                        dns:NAME (a DNS subjectAltName; dns:*.NAME for one\n"
          "                        more label) or spki:HEX (SHA-256 of the public key);\n"
          "                        without it: any certificate verified on its listeners\n"
          "  keys = ID...          the key ids this group may use, or *\n"
          "  rate = 0, burst = 0   Sign+Decrypt per second for the group; 0 = unlimited\n"
          "  max_inflight = 0      requests in flight for the whole group; 0 = only the\n"
          "                        key server's limits\n"
          "\n"
          "  [key_limits]\n"
          "  ID = RATE [BURST]     per-key limit overriding key_rate/key_burst\n"
          "\n"
          "  [keys]\n"
          "  ID = FILE-OR-URI      one line per key: ID is 1-64 of A-Z a-z 0-9 . _ -\n"
          "                        (not starting with . or -);\n"
          "                        a PEM/DER file (must not be readable by others:\n"
          "                        chmod 600) or any OSSL_STORE URI (pkcs11:...,\n"
          "                        handle:0x81000001, ...); RSA and RSA-PSS\n"
          "                        2048-8192 bits, EC P-256/P-384/P-521, Ed25519\n"
          "\n"
          "Signals:\n"
          "  SIGTERM, SIGINT       stop taking connections and requests, answer those\n"
          "                        in flight (up to drain_timeout), exit 0\n"
          "  SIGHUP                reload the configuration and keys, all or nothing: a\n"
          "                        broken one is logged and the running one stays;\n"
          "                        reopen the audit log\n"
          "  SIGUSR1               reopen the audit log (log rotation)\n"
          "\n"
          "Exit status:\n"
          "  0  clean stop after a signal, or --check found no problem\n"
          "  1  configuration, key, TLS or listen error (the message names it)\n"
          "  2  usage error\n",
          out);
}

static void ks_version(void)
{
    printf("lurk-keyserver %s (LURK protocol %u, %s, nng %s)\n", KS_VERSION, LURK_PROTOCOL_VERSION,
           OpenSSL_version(OPENSSL_VERSION), nng_version());
}

static int ks_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int ks_usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("lurk-keyserver: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'lurk-keyserver --help'.\n", stderr);
    return KS_EXIT_USAGE;
}

/* "--name=value" or "--name value"; NULL when `arg` is another option. */
static const char *ks_opt_value(int argc, char **argv, int *i, const char *arg, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(arg, name, n) == 0 && arg[n] == '=')
        return arg + n + 1;
    if (strcmp(arg, name) != 0)
        return NULL;
    if (*i + 1 >= argc)
        return "";
    return argv[++*i];
}

/* -1 on a usage error (already reported), 1 when --help/--version ran. */
static int ks_parse_args(int argc, char **argv, ks_args *a, int *exit_code)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            ks_usage(stdout);
            *exit_code = KS_EXIT_OK;
            return 1;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            ks_version();
            *exit_code = KS_EXIT_OK;
            return 1;
        }
        if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
            a->verbose = 1;
        } else if (strcmp(arg, "--check") == 0) {
            a->check = 1;
        } else if ((v = ks_opt_value(argc, argv, &i, arg, "--config")) != NULL
                   || (v = ks_opt_value(argc, argv, &i, arg, "-c")) != NULL) {
            if (v[0] == '\0') {
                *exit_code = ks_usage_error("%s needs a file name", arg);
                return -1;
            }
            a->config = v;
        } else if ((v = ks_opt_value(argc, argv, &i, arg, "--debug-delay-ms")) != NULL) {
            char *end;
            long ms;

            errno = 0;
            ms = strtol(v, &end, 10);
            if (v[0] == '\0' || *end != '\0' || errno != 0 || ms < 0
                || ms > KS_MAX_DEBUG_DELAY_MS) {
                *exit_code = ks_usage_error("--debug-delay-ms needs a number of "
                                            "milliseconds from 0 to 60000, not \"%s\"",
                                            v);
                return -1;
            }
            a->debug_delay_ms = (int)ms;
        } else {
            *exit_code = ks_usage_error(
                "%s %s", arg[0] == '-' ? "unknown option" : "unexpected argument", arg);
            return -1;
        }
    }
    if (a->config == NULL) {
        *exit_code = ks_usage_error("%s", "a configuration file is required (-c FILE)");
        return -1;
    }
    return 0;
}

/* An RSA-PSS key's restrictions: why it lists fewer schemes than another. */
static void ks_check_pss(const ks_pss_desc *pss)
{
    if (!pss->restricted) {
        printf("      RSA-PSS parameters: unrestricted\n");
        return;
    }
    printf("      RSA-PSS parameters: hash %s, MGF1 %s, salt length >= %u\n",
           pss->md[0] ? pss->md : "(not a TLS hash)",
           pss->mgf1_md[0] ? pss->mgf1_md : "(not a TLS hash)", pss->min_saltlen);
}

static void ks_check_summary(const ks_config *cfg, const ks_keyring *kr, const ks_ops *ops)
{
    char hex[65];

    (void)ops;
    printf("configuration %s: OK\n", cfg->name);
    for (size_t i = 0; i < cfg->n_listen; i++)
        printf("  listen      %s\n", cfg->listen[i]);
    if (cfg->has_tls)
        printf("  tls_cert    %s\n  tls_key     %s\n", cfg->tls_cert, cfg->tls_key);
    for (size_t i = 0; i < cfg->n_groups; i++) {
        const ks_config_group *g = &cfg->groups[i];

        printf("  edge group  %s%s\n", g->name, g->implicit ? " (the [keyserver] listeners)" : "");
        for (size_t j = 0; j < g->n_listen; j++)
            printf("    listen      %s\n", g->listen[j]);
        if (g->has_tls) {
            printf("    client_ca   %s\n", g->client_ca);
            printf("    client_crl  %s\n", g->client_crl != NULL ? g->client_crl : "(none)");
        }
        if (g->edges.n > 0) {
            char t[KS_IDENT_DNS_MAX + 8];

            for (size_t j = 0; j < g->edges.n; j++) {
                ks_ident_member_text(&g->edges.v[j], t, sizeof(t));
                printf("    edge        %s\n", t);
            }
        } else if (g->has_tls) {
            printf("    edges       any certificate of client_ca\n");
        }
        printf("    keys       ");
        if (g->grant.all)
            printf(" * (all)");
        for (size_t j = 0; j < g->grant.n; j++)
            printf(" %s", g->grant.ids[j]);
        printf("\n");
        if (g->rate != 0)
            printf("    rate        %u/s, burst %u\n", g->rate, g->burst ? g->burst : g->rate);
        else
            printf("    rate        unlimited\n");
        if (g->max_inflight != 0)
            printf("    max_inflight %u\n", g->max_inflight);
    }
    printf("  limits      max_inflight %u, per connection %u, max_connections %u, "
           "max_message %zu\n",
           cfg->max_inflight, cfg->max_inflight_per_conn, cfg->max_connections, cfg->max_message);
    if (cfg->replay_window != 0)
        printf("  replay      window %u s, cache %zu entries\n", cfg->replay_window,
               cfg->replay_cache);
    else
        printf("  replay      off\n");
    printf("  audit_log   %s\n", cfg->audit_log != NULL ? cfg->audit_log : "(standard error)");
    printf("  metrics     %s\n", cfg->metrics_listen != NULL ? cfg->metrics_listen : "(off)");
    printf("  workers     %u%s\n", cfg->workers, cfg->workers_set == 0 ? " (automatic)" : "");
    printf("  policy      tls13 %s, tls12 %s, ffdhe %s, rsa_decrypt %s, legacy_hashes %s\n",
           cfg->policy.allow_tls13 ? "yes" : "no", cfg->policy.allow_tls12 ? "yes" : "no",
           cfg->policy.allow_ffdhe ? "yes" : "no", cfg->policy.allow_decrypt ? "yes" : "no",
           cfg->policy.allow_legacy_hashes ? "yes" : "no");
    printf("  epoch       %016llx\n", (unsigned long long)kr->epoch);
    printf("  keys        %zu\n", kr->n);
    for (size_t i = 0; i < kr->n; i++) {
        const ks_key *k = &kr->keys[i];
        const lurk_scheme *s;
        int first = 1;

        ks_keys_hex(k->spki_sha256, sizeof(k->spki_sha256), hex);
        printf("    %s: %s %d bits%s%s, spki sha256 %s\n      from %s\n", k->id,
               lurk_key_type_name(k->desc.type), k->desc.bits, k->group[0] ? " " : "", k->group,
               hex, k->uri);
        if (k->desc.type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS)
            ks_check_pss(&k->desc.pss);
        printf("      schemes");
        for (size_t j = 0; (s = lurk_scheme_at(j)) != NULL; j++) {
            if (ks_policy_check_scheme(&cfg->policy, &k->desc, s).status
                != LURK__V1__STATUS__STATUS_OK)
                continue;
            printf("%s%s", first ? " " : ", ", s->name);
            first = 0;
        }
        if (k->desc.type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA && cfg->policy.allow_decrypt)
            printf("%sTLS 1.2 RSA key exchange", first ? " " : ", ");
        for (size_t j = 0; j < cfg->n_keys; j++)
            if (strcmp(cfg->keys[j].id, k->id) == 0 && cfg->keys[j].rate != 0)
                printf("\n      rate %u/s, burst %u", cfg->keys[j].rate,
                       cfg->keys[j].burst ? cfg->keys[j].burst : cfg->keys[j].rate);
        printf("\n");
    }
}

/* Configuration, keys and operations, all or nothing. */
static int ks_load_all(const char *path, ks_config **cfg, ks_keyring **kr, ks_ops **ops, char *err,
                       size_t errlen)
{
    char one[1024] = "";

    *cfg = NULL;
    *kr = NULL;
    *ops = NULL;
    if (ks_config_load(path, cfg, err, errlen) != 0)
        return -1;
    if (ks_keys_load(*cfg, kr, one, sizeof(one)) != 0) {
        snprintf(err, errlen, "%s: %s", (*cfg)->name, one);
        ks_config_free(*cfg);
        *cfg = NULL;
        return -1;
    }
    if ((*ops = ks_ops_new(*kr, &(*cfg)->policy, (*cfg)->server_id)) == NULL) {
        snprintf(err, errlen, "out of memory");
        ks_keys_free(*kr);
        ks_config_free(*cfg);
        *kr = NULL;
        *cfg = NULL;
        return -1;
    }
    return 0;
}

/* SIGHUP: a new configuration and keys, or the old ones and the reason. */
static void ks_reload(ks_server *srv, const char *path, uint64_t *epoch)
{
    ks_config *cfg;
    ks_keyring *kr;
    ks_ops *ops;
    char err[1024] = "";

    ks_log(KS_LOG_INFO, "SIGHUP: reloading %s", path);
    ks_server_reopen_audit(srv);
    if (ks_load_all(path, &cfg, &kr, &ops, err, sizeof(err)) != 0) {
        ks_log(KS_LOG_ERROR,
               "reload rejected, the running configuration stays (epoch "
               "%016llx): %s",
               (unsigned long long)*epoch, err);
        ks_server_reload_failed(srv);
        return;
    }
    {
        uint64_t new_epoch = kr->epoch;
        size_t nkeys = kr->n, ngroups = cfg->n_groups;

        if (ks_server_reload(srv, cfg, kr, ops, err, sizeof(err)) != 0) {
            ks_log(KS_LOG_ERROR,
                   "reload rejected, the running configuration stays (epoch "
                   "%016llx): %s",
                   (unsigned long long)*epoch, err);
            ks_server_reload_failed(srv);
            ks_ops_free(ops);
            ks_keys_free(kr);
            ks_config_free(cfg);
            return;
        }
        ks_log(KS_LOG_INFO, "reloaded: epoch %016llx -> %016llx, %zu keys, %zu edge groups",
               (unsigned long long)*epoch, (unsigned long long)new_epoch, nkeys, ngroups);
        *epoch = new_epoch;
    }
}

static int ks_serve(ks_server *srv, const sigset_t *set, const char *path, uint64_t epoch)
{
    for (;;) {
        int sig = 0;

        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            ks_reload(srv, path, &epoch);
            continue;
        }
        if (sig == SIGUSR1) {
            ks_server_reopen_audit(srv);
            continue;
        }
        return sig;
    }
}

static void ks_log_ready(const ks_config *cfg, const ks_keyring *kr)
{
    char groups[512];
    size_t gused = 0;

    char urls[1024];
    size_t used = 0;

    urls[0] = '\0';
    for (size_t i = 0; i < cfg->n_listen && used < sizeof(urls); i++) {
        int n = snprintf(urls + used, sizeof(urls) - used, "%s%s", i ? " " : "", cfg->listen[i]);

        if (n < 0)
            break;
        used += (size_t)n;
    }
    groups[0] = '\0';
    for (size_t i = 0; i < cfg->n_groups && gused < sizeof(groups); i++) {
        int n = snprintf(groups + gused, sizeof(groups) - gused, "%s%s", i ? " " : "",
                         cfg->groups[i].name);

        if (n < 0)
            break;
        gused += (size_t)n;
    }
    ks_log(KS_LOG_INFO,
           "ready: listening on %s, %zu keys, %zu edge groups (%s), %u workers, "
           "epoch %016llx%s%s",
           urls, kr->n, cfg->n_groups, groups, cfg->workers, (unsigned long long)kr->epoch,
           cfg->metrics_listen != NULL ? ", metrics on " : "",
           cfg->metrics_listen != NULL ? cfg->metrics_listen : "");
}

/*
 * A TLS handshake that never completes holds a descriptor, and nng 1.5.2
 * has no handshake timeout: with the usual soft limit of 1024 a few hundred
 * idle connections from anyone who can reach the port starve real edges.
 * Take the hard limit (systemd's LimitNOFILE, 65536 in dist/) and firewall
 * the port to the edges.
 */
static void ks_main_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        ks_log(KS_LOG_WARN, "cannot raise the open files limit: %s", strerror(errno));
}

int main(int argc, char **argv)
{
    ks_args args;
    ks_config *cfg = NULL;
    ks_keyring *kr = NULL;
    ks_ops *ops = NULL;
    ks_server *srv = NULL;
    sigset_t set;
    struct sigaction ign;
    char err[1024] = "";
    int code = KS_EXIT_FAIL, sig;
    uint64_t epoch;

    if (ks_parse_args(argc, argv, &args, &code) != 0)
        return code;
    ks_log_set_level(args.verbose ? KS_LOG_DEBUG : KS_LOG_INFO);

    /*
     * Block the stop signals before any thread exists (nng's included), so
     * every thread inherits the mask and only sigwait() below sees them.
     */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, NULL);
    ks_main_raise_nofile();

    if (ks_load_all(args.config, &cfg, &kr, &ops, err, sizeof(err)) != 0) {
        ks_log(KS_LOG_ERROR, "%s", err);
        goto out;
    }
    if (args.check) {
        if (ks_server_check_tls(cfg, err, sizeof(err)) != 0) {
            ks_log(KS_LOG_ERROR, "%s", err);
            goto out;
        }
        ks_check_summary(cfg, kr, ops);
        code = KS_EXIT_OK;
        goto out;
    }
    if (args.debug_delay_ms > 0)
        ks_log(KS_LOG_WARN,
               "--debug-delay-ms %d: every Sign and Decrypt is delayed (testing "
               "only)",
               args.debug_delay_ms);
    if (ks_server_start(cfg, kr, ops, args.debug_delay_ms, &srv, err, sizeof(err)) != 0) {
        ks_log(KS_LOG_ERROR, "%s", err);
        goto out;
    }
    ks_log_ready(cfg, kr);
    epoch = kr->epoch;
    /* The server owns them now (a reload replaces them). */
    cfg = NULL;
    kr = NULL;
    ops = NULL;
    sig = ks_serve(srv, &set, args.config, epoch);
    ks_log(KS_LOG_INFO, "stopping on %s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ks_server_stop(srv);
    code = KS_EXIT_OK;
out:
    ks_ops_free(ops);
    ks_keys_free(kr);
    ks_config_free(cfg);
    return code;
}
