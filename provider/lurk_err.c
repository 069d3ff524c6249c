/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Errors go through the core's error functions so that they carry this
 * provider's reason strings: the operator reads "lurk: key server refused:
 * not a TLS handshake context ..." instead of a bare number.
 */
#include <stdarg.h>

#include <openssl/core_dispatch.h>

#include "lurk_prov.h"

static OSSL_FUNC_core_new_error_fn *lurk_core_new_error;
static OSSL_FUNC_core_set_error_debug_fn *lurk_core_set_error_debug;
static OSSL_FUNC_core_vset_error_fn *lurk_core_vset_error;

static const OSSL_ITEM lurk_reasons[] = {
    { LURK_R_CONFIG, "lurk provider configuration" },
    { LURK_R_BAD_URI, "bad lurk URI" },
    { LURK_R_KEY_SERVER_UNREACHABLE, "key server unreachable" },
    { LURK_R_KEY_SERVER_REFUSED, "key server refused" },
    { LURK_R_KEY_SERVER_BAD_REPLY, "bad reply from key server" },
    { LURK_R_FORKED, "key server connection unusable after fork" },
    { LURK_R_UNSUPPORTED, "operation not supported for a lurk key" },
    { LURK_R_BAD_KEY, "bad lurk key" },
    { LURK_R_BUFFER_TOO_SMALL, "output buffer too small" },
    { LURK_R_INTERNAL, "lurk internal error" },
    { 0, NULL }
};

void lurk_err_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in)
{
    (void)handle;
    for (; in->function_id != 0; in++) {
        switch (in->function_id) {
        case OSSL_FUNC_CORE_NEW_ERROR: lurk_core_new_error = OSSL_FUNC_core_new_error(in); break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
            lurk_core_set_error_debug = OSSL_FUNC_core_set_error_debug(in);
            break;
        case OSSL_FUNC_CORE_VSET_ERROR: lurk_core_vset_error = OSSL_FUNC_core_vset_error(in); break;
        default: break;
        }
    }
}

void lurk_raise_at(const LURK_PROV_CTX *prov, int reason, const char *file, int line,
                   const char *func, const char *fmt, ...)
{
    va_list ap;

    if (prov == NULL || lurk_core_new_error == NULL || lurk_core_vset_error == NULL)
        return;
    lurk_core_new_error(prov->handle);
    if (lurk_core_set_error_debug != NULL)
        lurk_core_set_error_debug(prov->handle, file, line, func);
    va_start(ap, fmt);
    lurk_core_vset_error(prov->handle, (uint32_t)reason, fmt, ap);
    va_end(ap);
}

const OSSL_ITEM *lurk_reason_strings(void)
{
    return lurk_reasons;
}
