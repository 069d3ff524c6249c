/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authorization: see ks_authz.h.
 */
#include "ks_authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lurk_wire.h"

static int ks_authz_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ks_authz_grant_all(ks_authz_grant *out)
{
    memset(out, 0, sizeof(*out));
    out->all = 1;
}

void ks_authz_grant_clear(ks_authz_grant *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->ids[i]);
    free(g->ids);
    memset(g, 0, sizeof(*g));
}

int ks_authz_grant_parse(const char *text, ks_authz_grant *out, char *bad, size_t badlen)
{
    const char *p = text;
    size_t cap = 0;

    memset(out, 0, sizeof(*out));
    if (bad != NULL && badlen > 0)
        bad[0] = '\0';
    if (text == NULL) {
        if (bad != NULL && badlen > 0)
            snprintf(bad, badlen, "no key id");
        return -1;
    }
    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    if (strcmp(p, "*") == 0 || (p[0] == '*' && strspn(p + 1, " \t,") == strlen(p + 1))) {
        out->all = 1;
        return 0;
    }
    while (*p != '\0') {
        size_t len = strcspn(p, " \t,");
        char *id;

        if (len > 0) {
            if ((id = strndup(p, len)) == NULL)
                goto fail;
            if (!lurk_key_id_valid(id)) {
                if (bad != NULL && badlen > 0)
                    snprintf(bad, badlen, "\"%.64s\" is not a valid key id", id);
                free(id);
                goto fail;
            }
            if (out->n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                char **v = realloc(out->ids, ncap * sizeof(*v));

                if (v == NULL) {
                    free(id);
                    goto fail;
                }
                out->ids = v;
                cap = ncap;
            }
            out->ids[out->n++] = id;
        }
        p += len;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
    }
    if (out->n == 0) {
        if (bad != NULL && badlen > 0)
            snprintf(bad, badlen, "no key id");
        goto fail;
    }
    qsort(out->ids, out->n, sizeof(*out->ids), ks_authz_cmp);
    for (size_t i = 1; i < out->n; i++) {
        if (strcmp(out->ids[i - 1], out->ids[i]) == 0) {
            if (bad != NULL && badlen > 0)
                snprintf(bad, badlen, "\"%s\" is listed twice", out->ids[i]);
            goto fail;
        }
    }
    return 0;
fail:
    ks_authz_grant_clear(out);
    return -1;
}

int ks_authz_permits(const ks_authz_grant *g, const char *key_id)
{
    if (g == NULL || key_id == NULL)
        return 0;
    if (g->all)
        return 1;
    return g->n > 0 && bsearch(&key_id, g->ids, g->n, sizeof(*g->ids), ks_authz_cmp) != NULL;
}
