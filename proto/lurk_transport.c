/*
 * nng transport for LURK: URL rules, mutual TLS and the req/rep client.
 */
#include "lurk_transport.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

struct lurk_client {
    nng_socket sock;
    int timeout_ms;
};

static void lurk_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int lurk_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

lurk_url_kind lurk_url_classify(const char *url)
{
    const char *rest;

    if (url == NULL)
        return LURK_URL_INVALID;
    if (lurk_has_prefix(url, "tls+tcp://") || lurk_has_prefix(url, "tls+tcp4://")
        || lurk_has_prefix(url, "tls+tcp6://")) {
        rest = strstr(url, "://") + 3;
        /* host:port with a port; nng itself validates the rest. */
        return strrchr(rest, ':') != NULL && rest[0] != '\0' ? LURK_URL_TLS : LURK_URL_INVALID;
    }
    if (lurk_has_prefix(url, "ipc://"))
        return url[6] != '\0' ? LURK_URL_IPC : LURK_URL_INVALID;
    if (lurk_has_prefix(url, "tcp://") || lurk_has_prefix(url, "tcp4://")
        || lurk_has_prefix(url, "tcp6://")) {
        rest = strstr(url, "://") + 3;
        return strrchr(rest, ':') != NULL && rest[0] != '\0' ? LURK_URL_TCP : LURK_URL_INVALID;
    }
    return LURK_URL_INVALID;
}

void lurk_url_list_free(char **urls)
{
    if (urls == NULL)
        return;
    for (char **u = urls; *u != NULL; u++)
        free(*u);
    free(urls);
}

char **lurk_url_list_parse(const char *text, int allow_insecure, char *err, size_t errlen)
{
    static const char seps[] = " \t,";
    char **urls = NULL;
    size_t n = 0;
    const char *p = text;

    if (text == NULL) {
        lurk_errf(err, errlen, "no URL given");
        return NULL;
    }
    while (*p != '\0') {
        size_t len;
        char *url, **grown;
        lurk_url_kind kind;

        p += strspn(p, seps);
        len = strcspn(p, seps);
        if (len == 0)
            break;
        url = strndup(p, len);
        grown = url != NULL ? realloc(urls, (n + 2) * sizeof(*urls)) : NULL;
        if (grown == NULL) {
            free(url);
            lurk_errf(err, errlen, "out of memory");
            goto fail;
        }
        urls = grown;
        urls[n++] = url;
        urls[n] = NULL;
        p += len;
        kind = lurk_url_classify(url);
        if (kind == LURK_URL_INVALID) {
            lurk_errf(err, errlen, "\"%s\" is not a LURK URL (tls+tcp://host:port, ipc:///path, "
                      "or tcp://host:port with allow_insecure)", url);
            goto fail;
        }
        if (kind == LURK_URL_TCP && !allow_insecure) {
            lurk_errf(err, errlen, "\"%s\" is cleartext TCP: use tls+tcp://, or set "
                      "allow_insecure = yes if you really mean it", url);
            goto fail;
        }
    }
    if (n == 0) {
        lurk_errf(err, errlen, "no URL given");
        goto fail;
    }
    return urls;
fail:
    lurk_url_list_free(urls);
    return NULL;
}

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

int lurk_tls_config_make(int server, const lurk_tls_files *files, nng_tls_config **out,
                         char *err, size_t errlen)
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
    if ((rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT)) != 0) {
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

/* The host part of tls+tcp://host:port, used as the expected server name. */
static char *lurk_url_host(const char *url)
{
    const char *h = strstr(url, "://"), *end;

    if (h == NULL)
        return NULL;
    h += 3;
    if (*h == '[') {
        end = strchr(h, ']');
        return end != NULL ? strndup(h + 1, (size_t)(end - h - 1)) : NULL;
    }
    end = strrchr(h, ':');
    return end != NULL ? strndup(h, (size_t)(end - h)) : NULL;
}

int lurk_client_new(const lurk_client_conf *conf, lurk_client **out, char *err, size_t errlen)
{
    lurk_client *c;
    int rv;

    *out = NULL;
    if (conf->urls == NULL || conf->urls[0] == NULL) {
        lurk_errf(err, errlen, "no key server URL configured");
        return -1;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        lurk_errf(err, errlen, "out of memory");
        return -1;
    }
    c->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 2000;
    if ((rv = nng_req0_open(&c->sock)) != 0) {
        lurk_errf(err, errlen, "cannot open nng socket: %s", nng_strerror(rv));
        free(c);
        return -1;
    }
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, LURK_MAX_MESSAGE);
    /*
     * nng resends a request that got no answer; within one call's deadline a
     * resend only doubles the work on a slow key server, so leave it to the
     * deadline (the caller's retry policy decides).
     */
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 100);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 2000);

    for (char *const *u = conf->urls; *u != NULL; u++) {
        nng_dialer d;
        nng_tls_config *tls = NULL;
        char *host = NULL;

        if ((rv = nng_dialer_create(&d, c->sock, *u)) != 0) {
            lurk_errf(err, errlen, "key server URL %s: %s", *u, nng_strerror(rv));
            goto fail;
        }
        if (lurk_url_classify(*u) == LURK_URL_TLS) {
            lurk_tls_files f = conf->tls;

            if (f.server_name == NULL)
                f.server_name = host = lurk_url_host(*u);
            rv = lurk_tls_config_make(0, &f, &tls, err, errlen);
            free(host);
            if (rv != 0)
                goto fail;
            rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls);
            nng_tls_config_free(tls); /* the dialer holds its own reference */
            if (rv != 0) {
                lurk_errf(err, errlen, "key server URL %s: %s", *u, nng_strerror(rv));
                goto fail;
            }
        }
        /*
         * Non-blocking: a key server that is down now must not fail the
         * client; nng keeps redialling and each call has its deadline.
         */
        if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
            lurk_errf(err, errlen, "key server URL %s: %s", *u, nng_strerror(rv));
            goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    nng_close(c->sock);
    free(c);
    return -1;
}

void lurk_client_free(lurk_client *c)
{
    if (c == NULL)
        return;
    nng_close(c->sock);
    free(c);
}

static uint64_t lurk_next_id(void)
{
    static _Atomic uint32_t counter;

    /* Random high half so that two edges' ids do not collide in logs. */
    return ((uint64_t)nng_random() << 32) | (uint32_t)(++counter);
}

/* One round trip on its own context; consumes msg. */
static lurk_call_result lurk_roundtrip(lurk_client *c, nng_msg *msg, nng_msg **reply,
                                       char *err, size_t errlen)
{
    nng_ctx ctx;
    nng_aio *aio = NULL;
    nng_time deadline = nng_clock() + (nng_time)c->timeout_ms;
    lurk_call_result res = LURK_CALL_TRANSPORT;
    int rv;

    *reply = NULL;
    if ((rv = nng_ctx_open(&ctx, c->sock)) != 0) {
        nng_msg_free(msg);
        lurk_errf(err, errlen, "nng context: %s", nng_strerror(rv));
        return LURK_CALL_TRANSPORT;
    }
    if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
        nng_msg_free(msg);
        lurk_errf(err, errlen, "nng aio: %s", nng_strerror(rv));
        goto out;
    }
    nng_aio_set_msg(aio, msg);
    nng_aio_set_timeout(aio, c->timeout_ms);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) {
        nng_msg_free(nng_aio_get_msg(aio));
        goto fail;
    }
    {
        nng_time now = nng_clock();
        nng_aio_set_timeout(aio, now < deadline ? (nng_duration)(deadline - now) : 1);
    }
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0)
        goto fail;
    *reply = nng_aio_get_msg(aio);
    res = LURK_CALL_OK;
    goto out;
fail:
    if (rv == NNG_ETIMEDOUT) {
        res = LURK_CALL_TIMEOUT;
        lurk_errf(err, errlen, "no key server answered within %d ms (is one running and "
                  "does it accept this edge's certificate?)", c->timeout_ms);
    } else {
        lurk_errf(err, errlen, "key server transport: %s", nng_strerror(rv));
    }
out:
    nng_aio_free(aio);
    nng_ctx_close(ctx);
    return res;
}

lurk_call_result lurk_client_call_raw(lurk_client *c, const void *buf, size_t len,
                                      uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
    nng_msg *msg, *reply;
    lurk_call_result res;

    *out = NULL;
    *outlen = 0;
    if (nng_msg_alloc(&msg, 0) != 0 || nng_msg_append(msg, buf, len) != 0) {
        lurk_errf(err, errlen, "out of memory");
        return LURK_CALL_TRANSPORT;
    }
    if ((res = lurk_roundtrip(c, msg, &reply, err, errlen)) != LURK_CALL_OK)
        return res;
    *outlen = nng_msg_len(reply);
    if ((*out = malloc(*outlen + 1)) == NULL) {
        nng_msg_free(reply);
        lurk_errf(err, errlen, "out of memory");
        return LURK_CALL_TRANSPORT;
    }
    memcpy(*out, nng_msg_body(reply), *outlen);
    nng_msg_free(reply);
    return LURK_CALL_OK;
}

lurk_call_result lurk_client_call(lurk_client *c, Lurk__V1__Request *req,
                                  Lurk__V1__Response__ResultCase expect,
                                  Lurk__V1__Response **resp, char *err, size_t errlen)
{
    nng_msg *msg, *reply;
    size_t len;
    const char *why = NULL;
    lurk_call_result res;

    *resp = NULL;
    req->version = LURK_PROTOCOL_VERSION;
    req->id = lurk_next_id();
    len = lurk__v1__request__get_packed_size(req);
    if (nng_msg_alloc(&msg, len) != 0) {
        lurk_errf(err, errlen, "out of memory");
        return LURK_CALL_TRANSPORT;
    }
    lurk__v1__request__pack(req, nng_msg_body(msg));
    if ((res = lurk_roundtrip(c, msg, &reply, err, errlen)) != LURK_CALL_OK)
        return res;
    *resp = lurk_response_decode(nng_msg_body(reply), nng_msg_len(reply), req->id, expect, &why);
    nng_msg_free(reply);
    if (*resp == NULL) {
        lurk_errf(err, errlen, "bad answer from the key server: %s", why);
        return LURK_CALL_BAD_REPLY;
    }
    if ((*resp)->status != LURK__V1__STATUS__STATUS_OK) {
        lurk_errf(err, errlen, "key server refused: %s%s%s",
                  lurk_status_name((*resp)->status),
                  (*resp)->detail != NULL && (*resp)->detail[0] != '\0' ? ": " : "",
                  (*resp)->detail != NULL ? (*resp)->detail : "");
        return LURK_CALL_REFUSED;
    }
    return LURK_CALL_OK;
}
