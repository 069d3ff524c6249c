/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging: see ks_log.h.
 */
#include "ks_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

/* lurkctl reuses the key loading code and logs under its own name. */
static const char *ks_log_ident = "lurk-keyserver";

void ks_log_set_ident(const char *ident)
{
    ks_log_ident = ident;
}

static atomic_int ks_log_level_cur = KS_LOG_INFO;

static const char *ks_log_level_name(ks_log_level level)
{
    switch (level) {
    case KS_LOG_ERROR: return "error";
    case KS_LOG_WARN: return "warn";
    case KS_LOG_INFO: return "info";
    case KS_LOG_DEBUG: return "debug";
    }
    return "?";
}

void ks_log_set_level(ks_log_level level)
{
    atomic_store(&ks_log_level_cur, (int)level);
}

int ks_log_enabled(ks_log_level level)
{
    return (int)level <= atomic_load(&ks_log_level_cur);
}

void ks_log(ks_log_level level, const char *fmt, ...)
{
    char line[1024];
    int n, m;
    va_list ap;

    if (!ks_log_enabled(level))
        return;
    n = snprintf(line, sizeof(line), "%s[%ld]: %s: ", ks_log_ident, (long)getpid(),
                 ks_log_level_name(level));
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2; /* truncated: still one whole line */
    line[n++] = '\n';
    /*
     * One write per line: stdio locks the stream for the call, so lines
     * from concurrent workers never interleave.
     */
    fwrite(line, 1, (size_t)n, stderr);
}

void ks_log_openssl_errors(char *buf, size_t len)
{
    unsigned long e;
    size_t used;
    const char *data;
    int flags;

    if (buf == NULL || len == 0) {
        ERR_clear_error();
        return;
    }
    used = strlen(buf);
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char one[256];
        const char *reason = ERR_reason_error_string(e);
        int w;

        if (reason == NULL) {
            ERR_error_string_n(e, one, sizeof(one));
            reason = one;
        }
        w = snprintf(buf + used, len - used, "%s%s%s%s", used > 0 ? "; " : "", reason,
                     (flags & ERR_TXT_STRING) && data[0] != '\0' ? ": " : "",
                     (flags & ERR_TXT_STRING) ? data : "");
        if (w < 0 || (size_t)w >= len - used) {
            ERR_clear_error();
            break;
        }
        used += (size_t)w;
    }
}
