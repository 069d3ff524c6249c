/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nng transport for LURK: mutual TLS. The URL rules are in lurk_url.c, the
 * client in lurk_client.c.
 */
#include "lurk_transport.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whole file, NUL-terminated, as mbed TLS wants PEM. */
static char *lurk_read_file(const char *path, size_t *lenp, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;

    if (f == NULL) {
        lurk_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || len > (1L << 20)
        || fseek(f, 0, SEEK_SET) != 0) {
        lurk_errf(err, errlen, "cannot read %s (or larger than 1 MiB)", path);
        goto out;
    }
    buf = malloc((size_t)len + 1);
    if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        lurk_errf(err, errlen, "cannot read %s", path);
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[len] = '\0';
    if (lenp != NULL)
        *lenp = (size_t)len;
out:
    fclose(f);
    return buf;
}

static void lurk_free_secret(char *buf)
{
    if (buf == NULL)
        return;
    /* volatile so the wipe of key bytes is not optimised away */
    for (volatile char *p = buf; *p != '\0'; p++)
        *p = 0;
    free(buf);
}

int lurk_tls_config_make(int server, const lurk_tls_files *files, nng_tls_config **out, char *err,
                         size_t errlen)
{
    nng_tls_config *cfg = NULL;
    char *cert = NULL, *key = NULL, *ca = NULL, *crl = NULL;
    int rv;

    *out = NULL;
    /*
     * A client without a certificate is allowed here only so that the key
     * server's refusal of such an edge can be tested and diagnosed.
     */
    if (files->ca == NULL || (server && (files->cert == NULL || files->key == NULL))
        || ((files->cert == NULL) != (files->key == NULL))) {
        lurk_errf(err, errlen, "mutual TLS needs a certificate, its key and a CA file");
        return -1;
    }
    if ((files->cert != NULL && (cert = lurk_read_file(files->cert, NULL, err, errlen)) == NULL)
        || (files->key != NULL && (key = lurk_read_file(files->key, NULL, err, errlen)) == NULL)
        || (ca = lurk_read_file(files->ca, NULL, err, errlen)) == NULL
        || (files->crl != NULL && (crl = lurk_read_file(files->crl, NULL, err, errlen)) == NULL))
        goto fail;
    if ((rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT))
        != 0) {
        lurk_errf(err, errlen, "TLS setup: %s", nng_strerror(rv));
        goto fail;
    }
    if (cert != NULL && (rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
        lurk_errf(err, errlen, "certificate %s with key %s: %s (RSA or ECDSA, PEM, unencrypted)",
                  files->cert, files->key, nng_strerror(rv));
        goto fail;
    }
    if ((rv = nng_tls_config_ca_chain(cfg, ca, crl)) != 0) {
        lurk_errf(err, errlen, "CA file %s%s%s: %s", files->ca, crl ? " with CRL " : "",
                  crl ? files->crl : "", nng_strerror(rv));
        goto fail;
    }
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0
        || (!server && files->server_name != NULL
            && (rv = nng_tls_config_server_name(cfg, files->server_name)) != 0)) {
        lurk_errf(err, errlen, "TLS setup: %s", nng_strerror(rv));
        goto fail;
    }
    lurk_free_secret(key);
    free(cert);
    free(ca);
    free(crl);
    *out = cfg;
    return 0;
fail:
    if (cfg != NULL)
        nng_tls_config_free(cfg);
    lurk_free_secret(key);
    free(cert);
    free(ca);
    free(crl);
    return -1;
}
