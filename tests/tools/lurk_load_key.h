/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The first private key an OSSL_STORE URI (lurk://ID, a file) yields, as
 * `openssl s_server -key` loads it; NULL if none. For the test programs.
 */
#ifndef LURK_LOAD_KEY_H
#define LURK_LOAD_KEY_H

#include <openssl/evp.h>
#include <openssl/store.h>

static inline EVP_PKEY *lurk_load_key(const char *uri)
{
    OSSL_STORE_CTX *st = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
    EVP_PKEY *pkey = NULL;

    if (st == NULL)
        return NULL;
    OSSL_STORE_expect(st, OSSL_STORE_INFO_PKEY);
    while (pkey == NULL && !OSSL_STORE_eof(st)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(st);

        if (info == NULL)
            break;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(st);
    return pkey;
}

#endif
