/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to the operations: what ks_ops.c and ks_ops_caps.c share. Not
 * installed; included by those two files (and their unit tests) only.
 */
#ifndef KS_OPS_INT_H
#define KS_OPS_INT_H

#include "ks_ops.h"

/* Read-only once built: every worker thread answers from it without a lock. */
struct ks_ops {
    const ks_keyring *keys;
    const ks_policy *policy;
    char server_id[256];
    Lurk__V1__CapabilitiesResponse caps; /* built by ks_ops_new (ks_ops_caps.c) */
    Lurk__V1__KeyInfo *infos;
    Lurk__V1__KeyInfo **infop;
    uint32_t *schemes;              /* all keys' scheme lists, back to back */
    Lurk__V1__PssRestrictions *pss; /* one per key, used by restricted RSA-PSS keys */
};

#define ST(x) LURK__V1__STATUS__STATUS_##x

/* A fresh answer to request `id`: STATUS_OK, no result yet. */
void ks_ops_answer_init(ks_ops_answer *ans, uint64_t id);

/* The Capabilities answer: the shared one, or a copy with only the granted keys. */
void ks_ops_capabilities(const ks_ops *ops, const ks_ops_call *call, const Lurk__V1__Request *req,
                         ks_ops_answer *ans);

#endif /* KS_OPS_INT_H */
