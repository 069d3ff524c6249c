/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which key server URLs LURK accepts: pure string rules, shared by the
 * provider, the key server's configuration and lurkctl, and kept apart from
 * the nng code so that the configuration parsers and their fuzzer need no
 * transport.
 */
#include "lurk_url.h"

#include <stdlib.h>
#include <string.h>

#include "lurk_wire.h"

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
            lurk_errf(err, errlen,
                      "\"%s\" is not a LURK URL (tls+tcp://host:port, ipc:///path, "
                      "or tcp://host:port with allow_insecure)",
                      url);
            goto fail;
        }
        if (kind == LURK_URL_TCP && !allow_insecure) {
            lurk_errf(err, errlen,
                      "\"%s\" is cleartext TCP: use tls+tcp://, or set "
                      "allow_insecure = yes if you really mean it",
                      url);
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
