/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key server URLs: which forms LURK accepts (lurk_url.c). Pure: no nng.
 */
#ifndef LURK_URL_H
#define LURK_URL_H

#include <stddef.h>

typedef enum {
    LURK_URL_INVALID = 0,
    LURK_URL_TLS, /* tls+tcp://host:port, mutual TLS: the recommended form */
    LURK_URL_IPC, /* ipc:///path, same host only */
    LURK_URL_TCP  /* tcp://host:port, cleartext: only when marked insecure */
} lurk_url_kind;

lurk_url_kind lurk_url_classify(const char *url);

/*
 * Parse a list of URLs separated by spaces or commas into a NULL-terminated
 * array (free with lurk_url_list_free). Fails on an empty list, an invalid
 * URL, or tcp:// unless allow_insecure.
 */
char **lurk_url_list_parse(const char *text, int allow_insecure, char *err, size_t errlen);
void lurk_url_list_free(char **urls);

#endif
