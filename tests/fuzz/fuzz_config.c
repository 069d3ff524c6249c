/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the key server configuration parser, from memory
 * (ks_config_parse_text, the entry point the unit tests use; it opens no
 * file). OpenSSL's NCONF does the parsing and ks_config.c scans the same
 * text line by line to catch what NCONF forgives, so both see every input.
 *
 * Besides memory errors, it checks what the key server relies on after a
 * successful parse: listeners and keys are there and valid, and cleartext
 * tcp:// is only ever accepted with allow_insecure; and that a failure
 * always comes with a message.
 */
#include <string.h>

#include <openssl/err.h>

#include "fuzz.h"
#include "ks_config.h"
#include "ks_log.h"
#include "lurk_transport.h"
#include "lurk_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    ks_config *cfg = NULL;
    char err[1024];
    int rv;

    if (!quiet) {
        ks_log_set_level(KS_LOG_ERROR); /* warnings about odd settings are expected */
        quiet = 1;
    }
    if (size > 64 * 1024)
        return 0; /* the 1 MiB limit is a length check; big inputs only slow the run */
    memset(err, 'x', sizeof(err));
    rv = ks_config_parse_text((const char *)data, size, "fuzz.cnf", "/fuzz", &cfg, err,
                              sizeof(err));
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (rv != 0) {
        FUZZ_CHECK(cfg == NULL);
        FUZZ_CHECK(err[0] != '\0');
        ERR_clear_error();
        return 0;
    }
    FUZZ_CHECK(cfg != NULL);
    FUZZ_CHECK(cfg->listen != NULL && cfg->n_listen >= 1);
    for (size_t i = 0; i < cfg->n_listen; i++) {
        lurk_url_kind kind = lurk_url_classify(cfg->listen[i]);

        FUZZ_CHECK(kind != LURK_URL_INVALID);
        FUZZ_CHECK(kind != LURK_URL_TCP || cfg->allow_insecure);
        if (kind == LURK_URL_TLS)
            FUZZ_CHECK(cfg->has_tls);
    }
    FUZZ_CHECK(cfg->listen[cfg->n_listen] == NULL);
    if (cfg->has_tls)
        FUZZ_CHECK(cfg->tls_cert != NULL && cfg->tls_key != NULL);
    FUZZ_CHECK(cfg->workers >= 1 && cfg->workers <= KS_CONFIG_MAX_WORKERS);
    FUZZ_CHECK(cfg->n_keys >= 1 && cfg->keys != NULL);
    for (size_t i = 0; i < cfg->n_keys; i++) {
        FUZZ_CHECK(lurk_key_id_valid(cfg->keys[i].id));
        FUZZ_CHECK(cfg->keys[i].uri != NULL && cfg->keys[i].uri[0] != '\0');
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(cfg->keys[i].id, cfg->keys[j].id) != 0);
    }
    ks_config_free(cfg);
    ERR_clear_error();
    return 0;
}
