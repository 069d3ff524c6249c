/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The edge's settings: one table of names, one reading of the values
 * (lurk_edge.h says why).
 */
#include "lurk_edge.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lurk_url.h"
#include "lurk_wire.h"

#define LURK_EDGE_FIELD(n)              \
    {                                   \
#n, offsetof(lurk_edge_text, n) \
    }

static const lurk_edge_field lurk_edge_table[] = {
    LURK_EDGE_FIELD(servers),
    LURK_EDGE_FIELD(tls_cert),
    LURK_EDGE_FIELD(tls_key),
    LURK_EDGE_FIELD(tls_ca),
    LURK_EDGE_FIELD(server_name),
    LURK_EDGE_FIELD(timeout_ms),
    LURK_EDGE_FIELD(attempt_timeout_ms),
    LURK_EDGE_FIELD(keepalive_ms),
    LURK_EDGE_FIELD(allow_insecure),
    LURK_EDGE_FIELD(verify_signatures),
    LURK_EDGE_FIELD(pubkey_helper),
    LURK_EDGE_FIELD(tls_min_version),
    LURK_EDGE_FIELD(tls_providers),
};

const lurk_edge_field *lurk_edge_fields(size_t *n)
{
    *n = sizeof(lurk_edge_table) / sizeof(lurk_edge_table[0]);
    return lurk_edge_table;
}

const char **lurk_edge_slot(lurk_edge_text *t, const lurk_edge_field *f)
{
    return (const char **)(void *)((char *)t + f->offset);
}

int lurk_bool_parse(const char *text, int *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };

    for (size_t i = 0; text != NULL && i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int lurk_edge_bool(const char *name, const char *text, int *out, char *err, size_t errlen)
{
    *out = 0;
    if (text == NULL || lurk_bool_parse(text, out) == 0)
        return 0;
    lurk_errf(err, errlen, "%s = \"%s\": give yes or no", name, text);
    return -1;
}

/* Milliseconds in [min, max]; absent keeps *out. */
static int lurk_edge_ms(const char *name, const char *text, long min, long max, int *out, char *err,
                        size_t errlen)
{
    char *end;
    long ms;

    if (text == NULL)
        return 0;
    ms = strtol(text, &end, 10);
    if (end == text || *end != '\0' || ms < min || ms > max) {
        lurk_errf(err, errlen, "%s = \"%s\": give milliseconds, %ld to %ld", name, text, min, max);
        return -1;
    }
    *out = (int)ms;
    return 0;
}

int lurk_edge_parse(const lurk_edge_text *t, lurk_edge_values *v, char *err, size_t errlen)
{
    char why[256];

    v->servers = NULL;
    v->timeout_ms = LURK_EDGE_DEFAULT_TIMEOUT_MS;
    v->attempt_timeout_ms = 0;
    v->keepalive_ms = LURK_EDGE_DEFAULT_KEEPALIVE_MS;
    v->tls_min_version = "1.3";
    if (lurk_edge_bool("allow_insecure", t->allow_insecure, &v->allow_insecure, err, errlen) != 0
        || lurk_edge_bool("verify_signatures", t->verify_signatures, &v->verify_signatures, err,
                          errlen)
            != 0
        || lurk_edge_ms("timeout_ms", t->timeout_ms, 10, 600000, &v->timeout_ms, err, errlen) != 0
        || lurk_edge_ms("attempt_timeout_ms", t->attempt_timeout_ms, 10, 600000,
                        &v->attempt_timeout_ms, err, errlen)
            != 0
        || lurk_edge_ms("keepalive_ms", t->keepalive_ms, 0, 3600000, &v->keepalive_ms, err, errlen)
            != 0)
        return -1;
    /* The channel has no TLS below 1.2 (lurk_tls.c); 1.3 unless told. */
    if (t->tls_min_version != NULL)
        v->tls_min_version = t->tls_min_version;
    if (strcmp(v->tls_min_version, "1.2") != 0 && strcmp(v->tls_min_version, "1.3") != 0) {
        lurk_errf(err, errlen, "tls_min_version = \"%s\": give 1.2 or 1.3", t->tls_min_version);
        return -1;
    }
    if (t->servers != NULL
        && (v->servers = lurk_url_list_parse(t->servers, v->allow_insecure, why, sizeof(why)))
            == NULL) {
        lurk_errf(err, errlen, "servers: %s", why);
        return -1;
    }
    return 0;
}
