/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capabilities: the answer built once per keyring when the operations are
 * set up (ks_ops_new), and served per request, filtered by the edge
 * group's grant. See ks_ops.h.
 */
#include "ks_ops_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Capabilities, answered ---------------------------------------------- */

void ks_ops_capabilities(const ks_ops *ops, const ks_ops_call *call, const Lurk__V1__Request *req,
                         ks_ops_answer *ans)
{
    size_t n = 0;

    ks_ops_answer_init(ans, req->id);
    ans->resp.result_case = LURK__V1__RESPONSE__RESULT_CAPABILITIES;
    if (call->grant == NULL || call->grant->all) {
        /* Shared and read-only: packing never writes to a message. */
        ans->resp.capabilities = (Lurk__V1__CapabilitiesResponse *)&ops->caps;
        return;
    }
    if (ops->caps.n_keys > 0
        && (ans->capkeys = calloc(ops->caps.n_keys, sizeof(*ans->capkeys))) == NULL) {
        ks_ops_refuse(ans, req->id, ST(INTERNAL), "out of memory");
        return;
    }
    for (size_t i = 0; i < ops->caps.n_keys; i++)
        if (ks_authz_permits(call->grant, ops->caps.keys[i]->key_id))
            ans->capkeys[n++] = ops->caps.keys[i];
    ans->r.capabilities = ops->caps;
    ans->r.capabilities.keys = ans->capkeys;
    ans->r.capabilities.n_keys = n;
    ans->resp.capabilities = &ans->r.capabilities;
}

/* ---- Capabilities, built once ------------------------------------------ */

static size_t ks_ops_fill_schemes(const ks_policy *pol, const ks_key *k, uint32_t *out)
{
    size_t n = 0;
    const lurk_scheme *s;

    for (size_t i = 0; (s = lurk_scheme_at(i)) != NULL; i++)
        if (ks_policy_check_scheme(pol, &k->desc, s).status == ST(OK))
            out[n++] = s->code;
    return n;
}

/*
 * The schemes list already says what the key signs; the restrictions tell
 * an operator why (the strings are static, see lurk_pss_restrictions_of).
 */
static Lurk__V1__PssRestrictions *ks_ops_pss_info(Lurk__V1__PssRestrictions *out,
                                                  const ks_pss_desc *pss)
{
    lurk__v1__pss_restrictions__init(out);
    out->hash = (char *)pss->md;
    out->mgf1_hash = (char *)pss->mgf1_md;
    out->min_salt_len = pss->min_saltlen;
    return out;
}

static void ks_ops_server_id(ks_ops *ops, const char *server_id)
{
    if (server_id != NULL && server_id[0] != '\0') {
        snprintf(ops->server_id, sizeof(ops->server_id), "%s", server_id);
        return;
    }
    if (gethostname(ops->server_id, sizeof(ops->server_id) - 1) != 0 || ops->server_id[0] == '\0')
        snprintf(ops->server_id, sizeof(ops->server_id), "lurk-keyserver");
    ops->server_id[sizeof(ops->server_id) - 1] = '\0';
}

ks_ops *ks_ops_new(const ks_keyring *keys, const ks_policy *policy, const char *server_id)
{
    ks_ops *ops = calloc(1, sizeof(*ops));
    size_t nschemes = 0, used = 0;

    if (ops == NULL)
        return NULL;
    ops->keys = keys;
    ops->policy = policy;
    ks_ops_server_id(ops, server_id);
    while (lurk_scheme_at(nschemes) != NULL)
        nschemes++;
    if (keys->n > 0
        && ((ops->infos = calloc(keys->n, sizeof(*ops->infos))) == NULL
            || (ops->infop = calloc(keys->n, sizeof(*ops->infop))) == NULL
            || (ops->schemes = calloc(keys->n * nschemes + 1, sizeof(*ops->schemes))) == NULL
            || (ops->pss = calloc(keys->n, sizeof(*ops->pss))) == NULL)) {
        ks_ops_free(ops);
        return NULL;
    }
    for (size_t i = 0; i < keys->n; i++) {
        const ks_key *k = &keys->keys[i];
        Lurk__V1__KeyInfo *ki = &ops->infos[i];

        lurk__v1__key_info__init(ki);
        ki->key_id = k->id;
        ki->type = k->desc.type;
        ki->bits = (uint32_t)k->desc.bits;
        if (k->group[0] != '\0')
            ki->group = (char *)k->group;
        ki->schemes = &ops->schemes[used];
        ki->n_schemes = ks_ops_fill_schemes(policy, k, ki->schemes);
        used += ki->n_schemes;
        ki->decrypt = k->desc.type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA && policy->allow_decrypt;
        ki->spki_sha256.data = (uint8_t *)k->spki_sha256;
        ki->spki_sha256.len = sizeof(k->spki_sha256);
        if (k->desc.type == LURK__V1__KEY_TYPE__KEY_TYPE_RSA_PSS && k->desc.pss.restricted)
            ki->pss = ks_ops_pss_info(&ops->pss[i], &k->desc.pss);
        ops->infop[i] = ki;
    }
    lurk__v1__capabilities_response__init(&ops->caps);
    ops->caps.protocol_version = LURK_PROTOCOL_VERSION;
    ops->caps.config_epoch = keys->epoch;
    ops->caps.server_id = ops->server_id;
    ops->caps.n_keys = keys->n;
    ops->caps.keys = ops->infop;
    return ops;
}

void ks_ops_free(ks_ops *ops)
{
    if (ops == NULL)
        return;
    free(ops->infos);
    free(ops->infop);
    free(ops->schemes);
    free(ops->pss);
    free(ops);
}
