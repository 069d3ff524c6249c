/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operations: see ks_ops.h.
 *
 * The key server signs exactly the bytes ks_policy_check_sign() accepted,
 * hashing them itself, and decrypts only with the TLS premaster padding,
 * whose answer is 48 bytes whatever the padding says. Those two rules are
 * what keep it from being a general signing or decryption oracle.
 *
 * The Capabilities answer, and ks_ops_new/ks_ops_free that build it, are
 * in ks_ops_caps.c.
 */
#include "ks_ops_int.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "ks_log.h"

/* ---- building answers -------------------------------------------------- */

void ks_ops_answer_init(ks_ops_answer *ans, uint64_t id)
{
    memset(ans, 0, sizeof(*ans));
    lurk__v1__response__init(&ans->resp);
    ans->resp.version = LURK_PROTOCOL_VERSION;
    ans->resp.id = id;
    ans->resp.status = ST(OK);
}

static void ks_ops_set_detail(ks_ops_answer *ans, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ks_ops_set_detail(ks_ops_answer *ans, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ans->detail, sizeof(ans->detail), fmt, ap);
    va_end(ap);
    ans->resp.detail = ans->detail;
}

void ks_ops_refuse(ks_ops_answer *ans, uint64_t id, Lurk__V1__Status status, const char *detail)
{
    ks_ops_answer_init(ans, id);
    ans->resp.status = status;
    ans->reason = lurk_status_label(status);
    ks_ops_set_detail(ans, "%s", detail != NULL ? detail : lurk_status_name(status));
}

/*
 * Refuse with a reason for the edge and one info line for the operator:
 * `refused <op> key "<id>" from <peer>: <status name>: <reason>`.
 */
static void ks_ops_deny(ks_ops_answer *ans, const Lurk__V1__Request *req, const char *key_id,
                        const char *peer, Lurk__V1__Status status, const char *reason)
{
    ks_ops_refuse(ans, req->id, status, reason);
    if (key_id != NULL)
        ks_log(KS_LOG_INFO, "refused %s key \"%s\" from %s: %s: %s", ks_ops_name(req), key_id, peer,
               lurk_status_name(status), ans->detail);
    else
        ks_log(KS_LOG_INFO, "refused %s from %s: %s: %s", ks_ops_name(req), peer,
               lurk_status_name(status), ans->detail);
}

static const ks_key *ks_ops_key(const ks_ops *ops, const ks_ops_call *call,
                                const Lurk__V1__Request *req, const char *key_id,
                                ks_ops_answer *ans)
{
    const char *peer = call->peer;
    const ks_key *k;
    char why[128];

    /* Before the lookup: a group must not learn which ids other groups use. */
    if (call->grant != NULL && !ks_authz_permits(call->grant, key_id)) {
        snprintf(why, sizeof(why), "key \"%s\" is not granted to this edge group", key_id);
        ks_ops_deny(ans, req, key_id, peer, ST(NOT_PERMITTED), why);
        return NULL;
    }
    k = ks_keys_find(ops->keys, key_id);
    if (k == NULL) {
        snprintf(why, sizeof(why), "no key \"%s\" on this key server", key_id);
        ks_ops_deny(ans, req, key_id, peer, ST(UNKNOWN_KEY), why);
    }
    return k;
}

/* An OpenSSL failure on a key we hold: the edge learns "internal", the log why. */
static void ks_ops_fault(ks_ops_answer *ans, const Lurk__V1__Request *req, const ks_key *k,
                         const char *peer, const char *what)
{
    char why[512] = "";

    ks_log_openssl_errors(why, sizeof(why));
    ks_log(KS_LOG_ERROR, "%s key \"%s\" for %s: %s failed: %s", ks_ops_name(req), k->id, peer, what,
           why[0] ? why : "no OpenSSL error");
    ks_ops_refuse(ans, req->id, ST(INTERNAL),
                  "the key operation failed; the key server log "
                  "says why");
}

/* A go-ahead from the gate that says to answer random bytes, and why. */
typedef struct {
    int random; /* 0, KS_OPS_RANDOM_WARN or KS_OPS_RANDOM_QUIET */
    const char *reason;
    char detail[192];
} ks_ops_gated;

/*
 * The daemon's gate; 1 when the operation may go ahead. `out` NULL: a Sign,
 * which is never answered with random bytes (they would not verify, and
 * the policy has no such rule for signatures), so a gate asking for it is
 * a bug, refused as internal.
 */
static int ks_ops_gate(const ks_ops_call *call, const Lurk__V1__Request *req, const ks_key *k,
                       ks_ops_answer *ans, ks_ops_gated *out)
{
    const char *reason = NULL;
    char detail[192] = "";
    int random = 0;
    Lurk__V1__Status st;

    if (call->gate == NULL)
        return 1;
    st = call->gate(call->gate_arg, req, k, &reason, detail, sizeof(detail), &random);
    if (st == ST(OK) && random && out == NULL) {
        ks_log(KS_LOG_ERROR,
               "%s key \"%s\" from %s: the gate asked for a random answer, "
               "which only a decryption can have",
               ks_ops_name(req), k->id, call->peer);
        ks_ops_refuse(ans, req->id, ST(INTERNAL), "internal error; the key server log says why");
        return 0;
    }
    if (st == ST(OK)) {
        if (out != NULL && random) {
            out->random = random == KS_OPS_RANDOM_QUIET ? KS_OPS_RANDOM_QUIET : KS_OPS_RANDOM_WARN;
            out->reason = reason != NULL ? reason : "replay";
            snprintf(out->detail, sizeof(out->detail), "%s", detail);
        }
        return 1;
    }
    ks_ops_refuse(ans, req->id, st, detail[0] != '\0' ? detail : NULL);
    if (reason != NULL)
        ans->reason = reason;
    /* Overload is logged by the daemon once per interval, not per request. */
    if (st != ST(OVERLOADED))
        ks_log(KS_LOG_WARN, "refused %s key \"%s\" from %s: %s: %s", ks_ops_name(req), k->id,
               call->peer, lurk_status_name(st), ans->detail);
    return 0;
}

/* ---- operations -------------------------------------------------------- */

static void ks_ops_ping(const Lurk__V1__Request *req, ks_ops_answer *ans)
{
    ks_ops_answer_init(ans, req->id);
    lurk__v1__ping_response__init(&ans->r.ping);
    ans->r.ping.payload = req->ping->payload; /* the request outlives the packing */
    ans->resp.result_case = LURK__V1__RESPONSE__RESULT_PING;
    ans->resp.ping = &ans->r.ping;
}

static void ks_ops_get_public_key(const ks_ops *ops, const ks_ops_call *call,
                                  const Lurk__V1__Request *req, ks_ops_answer *ans)
{
    const ks_key *k = ks_ops_key(ops, call, req, req->get_public_key->key_id, ans);

    if (k == NULL)
        return;
    ks_ops_answer_init(ans, req->id);
    lurk__v1__get_public_key_response__init(&ans->r.get_public_key);
    ans->r.get_public_key.type = k->desc.type;
    ans->r.get_public_key.spki.data = k->spki;
    ans->r.get_public_key.spki.len = k->spki_len;
    ans->resp.result_case = LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY;
    ans->resp.get_public_key = &ans->r.get_public_key;
}

/*
 * Prefer the key's own provider: OpenSSL 3.0 otherwise takes the default
 * provider's signature, which cannot use a key held by a TPM or an HSM
 * ("missing private key").
 */
static void ks_ops_propq(const ks_key *k, char *buf, size_t len)
{
    const OSSL_PROVIDER *prov = EVP_PKEY_get0_provider(k->pkey);
    const char *name = prov != NULL ? OSSL_PROVIDER_get0_name(prov) : NULL;

    if (name != NULL && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-.") == strlen(name))
        snprintf(buf, len, "?provider=%s", name);
    else
        buf[0] = '\0';
}

/* Hashing and padding as the scheme says, on a fresh context. */
static int ks_ops_sign_init(EVP_MD_CTX *mctx, const ks_key *k, const lurk_scheme *scheme)
{
    EVP_PKEY_CTX *pctx = NULL;
    char propq[96];

    ks_ops_propq(k, propq, sizeof(propq));
    if (EVP_DigestSignInit_ex(mctx, &pctx, scheme->md, NULL, propq, k->pkey, NULL) != 1)
        return 0;
    if (scheme->padding == LURK_PAD_PSS)
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0
            && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0
            && EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, scheme->md, NULL) > 0;
    if (scheme->padding == LURK_PAD_PKCS1)
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    return 1;
}

/* ---- per-thread signing templates ---------------------------------------- */

/*
 * EVP_DigestSignInit_ex() fetches the algorithms and builds the provider
 * context on every call, which costs ECDSA P-256 about a quarter of its
 * rate; copying a context initialised once is much cheaper. One set per
 * thread: no lock, and no context is ever used by two threads.
 */
#define KS_SIGN_CACHE_SLOTS 16

typedef struct {
    uint64_t serial; /* ks_key.serial; 0: a free slot */
    uint32_t scheme;
    uint64_t last_use;
    /*
     * NULL: this (key, scheme) signs on a fresh context every time. Its
     * EVP_PKEY_CTX holds a reference on the key, so a template outlives
     * the keyring that a reload frees.
     */
    EVP_MD_CTX *tmpl;
} ks_sign_slot;

typedef struct {
    ks_sign_slot slots[KS_SIGN_CACHE_SLOTS];
    uint64_t clock;
    uint64_t retired; /* ks_keys_retired() when last looked at */
} ks_sign_cache;

static pthread_once_t ks_sign_once = PTHREAD_ONCE_INIT;
static pthread_key_t ks_sign_key;
static int ks_sign_key_ok;

#ifdef KS_OPS_TEST_HOOKS
/* Tests: copies fail as with a provider that cannot duplicate its contexts. */
int ks_ops_test_copy_fails;

static int ks_ops_copy(EVP_MD_CTX *out, const EVP_MD_CTX *in)
{
    if (ks_ops_test_copy_fails) {
        ERR_raise(ERR_LIB_EVP, ERR_R_UNSUPPORTED);
        return 0;
    }
    return EVP_MD_CTX_copy_ex(out, in);
}
#else
#define ks_ops_copy EVP_MD_CTX_copy_ex
#endif

static void ks_sign_cache_flush(ks_sign_cache *c)
{
    for (size_t i = 0; i < KS_SIGN_CACHE_SLOTS; i++) {
        EVP_MD_CTX_free(c->slots[i].tmpl);
        memset(&c->slots[i], 0, sizeof(c->slots[i]));
    }
}

static void ks_sign_cache_free(void *arg)
{
    ks_sign_cache *c = arg;

    if (c == NULL)
        return;
    ks_sign_cache_flush(c);
    free(c);
}

static void ks_sign_key_create(void)
{
    ks_sign_key_ok = pthread_key_create(&ks_sign_key, ks_sign_cache_free) == 0;
}

static ks_sign_cache *ks_sign_cache_get(void)
{
    ks_sign_cache *c;
    uint64_t retired = ks_keys_retired();

    if (pthread_once(&ks_sign_once, ks_sign_key_create) != 0 || !ks_sign_key_ok)
        return NULL;
    if ((c = pthread_getspecific(ks_sign_key)) == NULL) {
        if ((c = calloc(1, sizeof(*c))) == NULL)
            return NULL;
        if (pthread_setspecific(ks_sign_key, c) != 0) {
            free(c);
            return NULL;
        }
        c->retired = retired;
    }
    if (c->retired != retired) {
        /*
         * A keyring was freed. Its templates would never match again (the
         * serials are gone) but would keep its private keys in memory until
         * evicted: drop them all, reloads are rare.
         */
        ks_sign_cache_flush(c);
        c->retired = retired;
    }
    return c;
}

void ks_ops_thread_cleanup(void)
{
    ks_sign_cache *c;

    if (pthread_once(&ks_sign_once, ks_sign_key_create) != 0 || !ks_sign_key_ok)
        return;
    if ((c = pthread_getspecific(ks_sign_key)) != NULL) {
        pthread_setspecific(ks_sign_key, NULL);
        ks_sign_cache_free(c);
    }
}

/*
 * A context ready to sign, copied from this thread's template for (key,
 * scheme), which is made on first use; NULL: initialise one afresh. Every
 * failure here only costs the fast path, so its errors are dropped: the
 * fresh init reports any that matter.
 */
static EVP_MD_CTX *ks_ops_sign_ctx_cached(const ks_key *k, const lurk_scheme *scheme)
{
    ks_sign_cache *c;
    ks_sign_slot *slot = NULL;
    EVP_MD_CTX *mctx, *tmpl = NULL;

    if (k->serial == 0 || (c = ks_sign_cache_get()) == NULL)
        return NULL;
    for (size_t i = 0; i < KS_SIGN_CACHE_SLOTS; i++) {
        ks_sign_slot *e = &c->slots[i];

        if (e->serial == k->serial && e->scheme == scheme->code) {
            slot = e;
            break;
        }
        if (slot == NULL || e->last_use < slot->last_use)
            slot = e; /* free slots have last_use 0, so they go first */
    }
    if (slot->serial == k->serial && slot->scheme == scheme->code) {
        slot->last_use = ++c->clock;
        if (slot->tmpl == NULL)
            return NULL;
        ERR_set_mark();
        if ((mctx = EVP_MD_CTX_new()) != NULL && ks_ops_copy(mctx, slot->tmpl) == 1) {
            ERR_clear_last_mark();
            return mctx;
        }
        /* It copied before: out of memory, which the next request may not be. */
        ERR_pop_to_mark();
        EVP_MD_CTX_free(mctx);
        return NULL;
    }
    EVP_MD_CTX_free(slot->tmpl);
    memset(slot, 0, sizeof(*slot));
    /*
     * Templates only for keys that OpenSSL's own providers hold: a TPM or
     * HSM provider may keep a device session open for as long as its
     * context lives, and its signature takes milliseconds anyway, next to
     * which the set-up is noise.
     */
    if (!ks_keys_in_process(k)) {
        slot->serial = k->serial;
        slot->scheme = scheme->code;
        slot->last_use = ++c->clock;
        return NULL;
    }
    ERR_set_mark();
    if ((tmpl = EVP_MD_CTX_new()) == NULL || !ks_ops_sign_init(tmpl, k, scheme)) {
        /* Not remembered: the fresh init will fail the same way and say why. */
        ERR_pop_to_mark();
        EVP_MD_CTX_free(tmpl);
        return NULL;
    }
    slot->serial = k->serial;
    slot->scheme = scheme->code;
    slot->last_use = ++c->clock;
    if ((mctx = EVP_MD_CTX_new()) != NULL && ks_ops_copy(mctx, tmpl) == 1) {
        ERR_clear_last_mark();
        slot->tmpl = tmpl;
        return mctx;
    }
    /* A context that cannot be duplicated: remember, so as not to retry per request. */
    ERR_pop_to_mark();
    EVP_MD_CTX_free(mctx);
    EVP_MD_CTX_free(tmpl);
    return NULL;
}

/* Sign `tbs` as TLS does for this scheme: hash it here, pad as the scheme says. */
static int ks_ops_sign_bytes(const ks_key *k, const lurk_scheme *scheme, const uint8_t *tbs,
                             size_t tbs_len, unsigned char **sig, size_t *sig_len)
{
    EVP_MD_CTX *mctx = ks_ops_sign_ctx_cached(k, scheme);
    size_t len = 0;
    int ok = 0;

    *sig = NULL;
    if (mctx == NULL && ((mctx = EVP_MD_CTX_new()) == NULL || !ks_ops_sign_init(mctx, k, scheme)))
        goto out;
    /*
     * Used for one signature: let EVP_DigestSignFinal() finish this context
     * in place instead of signing on a duplicate of it.
     */
    EVP_MD_CTX_set_flags(mctx, EVP_MD_CTX_FLAG_FINALISE);
    if (EVP_DigestSign(mctx, NULL, &len, tbs, tbs_len) != 1 || len == 0
        || (*sig = OPENSSL_malloc(len)) == NULL
        || EVP_DigestSign(mctx, *sig, &len, tbs, tbs_len) != 1)
        goto out;
    *sig_len = len;
    ok = 1;
out:
    if (!ok) {
        OPENSSL_free(*sig);
        *sig = NULL;
    }
    EVP_MD_CTX_free(mctx); /* frees its EVP_PKEY_CTX too */
    return ok;
}

static void ks_ops_sign(const ks_ops *ops, const ks_ops_call *call, const Lurk__V1__Request *req,
                        ks_ops_answer *ans)
{
    const char *peer = call->peer;
    const Lurk__V1__SignRequest *s = req->sign;
    const ks_key *k = ks_ops_key(ops, call, req, s->key_id, ans);
    const lurk_scheme *scheme;
    ks_verdict v;
    size_t len = 0;

    if (k == NULL)
        return;
    v = ks_policy_check_sign(ops->policy, &k->desc, s->scheme, s->tbs.data, s->tbs.len);
    if (v.status != ST(OK)) {
        char why[192];

        scheme = lurk_scheme_find(s->scheme);
        if (scheme != NULL)
            snprintf(why, sizeof(why), "%s: %s", scheme->name, v.reason);
        else
            snprintf(why, sizeof(why), "scheme 0x%04x: %s", (unsigned int)s->scheme, v.reason);
        ks_ops_deny(ans, req, k->id, peer, v.status, why);
        return;
    }
    if ((scheme = lurk_scheme_find(s->scheme)) == NULL) {
        /* The policy accepted a scheme the table does not know: never sign blind. */
        ks_ops_deny(ans, req, k->id, peer, ST(UNSUPPORTED_SCHEME), "unknown signature scheme");
        return;
    }
    if (!ks_ops_gate(call, req, k, ans, NULL))
        return;
    ks_ops_answer_init(ans, req->id);
    if (!ks_ops_sign_bytes(k, scheme, s->tbs.data, s->tbs.len, &ans->sig, &len)) {
        ks_ops_fault(ans, req, k, peer, "signing");
        return;
    }
    lurk__v1__sign_response__init(&ans->r.sign);
    ans->r.sign.signature.data = ans->sig;
    ans->r.sign.signature.len = len;
    ans->resp.result_case = LURK__V1__RESPONSE__RESULT_SIGN;
    ans->resp.sign = &ans->r.sign;
    if (ks_log_enabled(KS_LOG_DEBUG))
        ks_log(KS_LOG_DEBUG, "signed %s with key \"%s\" for %s (%zu bytes of %s)", scheme->name,
               k->id, peer, s->tbs.len, ks_ctx_kind_name(v.kind));
}

/*
 * OpenSSL refuses a ciphertext numerically >= n: a public fact about
 * public bytes, so the edge may hear it. Without the modulus (an HSM that
 * keeps it), take the failure for that, as the decrypt call is the only
 * other thing that could have failed on public input.
 */
static int ks_ops_out_of_range(const ks_key *k, const uint8_t *ct, size_t len)
{
    if (k->modulus == NULL)
        return 1;
    return len != k->max_size || memcmp(ct, k->modulus, len) >= 0;
}

/*
 * The gate said to answer random bytes (a replayed ciphertext): the real
 * premaster has been computed, so that the time taken does not tell, and
 * is overwritten here, never sent. The answer then has the status, size
 * and shape of any other; the reason reaches the audit log and metrics
 * only, the response carries no detail, as no successful one does.
 */
static int ks_ops_random_premaster(ks_ops_answer *ans, const ks_ops_gated *g,
                                   const Lurk__V1__Request *req, const ks_key *k, const char *peer)
{
    if (RAND_priv_bytes(ans->premaster, LURK_PREMASTER_LEN) != 1)
        return 0;
    ans->reason = g->reason;
    snprintf(ans->detail, sizeof(ans->detail), "%s", g->detail);
    if (g->random == KS_OPS_RANDOM_WARN)
        ks_log(KS_LOG_WARN, "%s key \"%s\" from %s: %s", ks_ops_name(req), k->id, peer, g->detail);
    return 1;
}

static void ks_ops_decrypt(const ks_ops *ops, const ks_ops_call *call, const Lurk__V1__Request *req,
                           ks_ops_answer *ans)
{
    const char *peer = call->peer;
    const Lurk__V1__DecryptRequest *d = req->decrypt;
    const ks_key *k = ks_ops_key(ops, call, req, d->key_id, ans);
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM params[4], *p = params;
    int pad = RSA_PKCS1_WITH_TLS_PADDING;
    unsigned int client_version, negotiated_version;
    size_t outlen = LURK_PREMASTER_LEN;
    ks_verdict v;
    ks_ops_gated gated;
    char propq[96];

    if (k == NULL)
        return;
    v = ks_policy_check_decrypt(ops->policy, &k->desc, d->ciphertext.len, k->max_size,
                                d->client_version);
    if (v.status != ST(OK)) {
        ks_ops_deny(ans, req, k->id, peer, v.status, v.reason);
        return;
    }
    memset(&gated, 0, sizeof(gated));
    if (!ks_ops_gate(call, req, k, ans, &gated))
        return;
    ks_ops_answer_init(ans, req->id);
    client_version = d->client_version;
    negotiated_version = d->negotiated_version;
    *p++ = OSSL_PARAM_construct_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, &pad);
    *p++ = OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, &client_version);
    if (negotiated_version != 0)
        *p++ = OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION,
                                         &negotiated_version);
    *p = OSSL_PARAM_construct_end();
    ks_ops_propq(k, propq, sizeof(propq));
    if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, propq)) == NULL
        || EVP_PKEY_decrypt_init(ctx) != 1 || EVP_PKEY_CTX_set_params(ctx, params) != 1) {
        ks_ops_fault(ans, req, k, peer, "decrypt setup");
        goto out;
    }
    /*
     * With TLS padding this succeeds with 48 bytes for every in-range
     * ciphertext (random ones on bad padding or version, chosen in constant
     * time); nothing here may branch on which.
     */
    if (EVP_PKEY_decrypt(ctx, ans->premaster, &outlen, d->ciphertext.data, d->ciphertext.len)
        != 1) {
        if (ks_ops_out_of_range(k, d->ciphertext.data, d->ciphertext.len)) {
            ERR_clear_error();
            ks_ops_deny(ans, req, k->id, peer, ST(MALFORMED), "ciphertext out of range");
        } else {
            ks_ops_fault(ans, req, k, peer, "decryption");
        }
        OPENSSL_cleanse(ans->premaster, sizeof(ans->premaster));
        goto out;
    }
    if (outlen != LURK_PREMASTER_LEN) {
        OPENSSL_cleanse(ans->premaster, sizeof(ans->premaster));
        ks_ops_fault(ans, req, k, peer, "decryption (wrong premaster length)");
        goto out;
    }
    if (gated.random && !ks_ops_random_premaster(ans, &gated, req, k, peer)) {
        OPENSSL_cleanse(ans->premaster, sizeof(ans->premaster));
        ks_ops_fault(ans, req, k, peer, "random premaster for a replay");
        goto out;
    }
    lurk__v1__decrypt_response__init(&ans->r.decrypt);
    ans->r.decrypt.premaster.data = ans->premaster;
    ans->r.decrypt.premaster.len = LURK_PREMASTER_LEN;
    ans->resp.result_case = LURK__V1__RESPONSE__RESULT_DECRYPT;
    ans->resp.decrypt = &ans->r.decrypt;
    if (ks_log_enabled(KS_LOG_DEBUG))
        ks_log(KS_LOG_DEBUG, "decrypted a premaster with key \"%s\" for %s%s", k->id, peer,
               gated.random ? " (answered with random bytes)" : "");
out:
    EVP_PKEY_CTX_free(ctx);
}

void ks_ops_handle_call(const ks_ops *ops, const ks_ops_call *call_in, const Lurk__V1__Request *req,
                        ks_ops_answer *ans)
{
    ks_ops_call call = *call_in;

    if (call.peer == NULL)
        call.peer = "unknown peer";
    switch (req->op_case) {
    case LURK__V1__REQUEST__OP_PING: ks_ops_ping(req, ans); break;
    case LURK__V1__REQUEST__OP_CAPABILITIES: ks_ops_capabilities(ops, &call, req, ans); break;
    case LURK__V1__REQUEST__OP_GET_PUBLIC_KEY: ks_ops_get_public_key(ops, &call, req, ans); break;
    case LURK__V1__REQUEST__OP_SIGN: ks_ops_sign(ops, &call, req, ans); break;
    case LURK__V1__REQUEST__OP_DECRYPT: ks_ops_decrypt(ops, &call, req, ans); break;
    default:
        /* lurk_request_check() lets no such request through. */
        ks_ops_deny(ans, req, NULL, call.peer, ST(MALFORMED), "no or unknown operation");
        break;
    }
}

void ks_ops_handle(const ks_ops *ops, const Lurk__V1__Request *req, const char *peer,
                   ks_ops_answer *ans)
{
    ks_ops_call call;

    memset(&call, 0, sizeof(call));
    call.peer = peer;
    ks_ops_handle_call(ops, &call, req, ans);
}

const char *ks_ops_key_id(const Lurk__V1__Request *req)
{
    switch (req->op_case) {
    case LURK__V1__REQUEST__OP_GET_PUBLIC_KEY:
        return req->get_public_key != NULL ? req->get_public_key->key_id : NULL;
    case LURK__V1__REQUEST__OP_SIGN: return req->sign != NULL ? req->sign->key_id : NULL;
    case LURK__V1__REQUEST__OP_DECRYPT: return req->decrypt != NULL ? req->decrypt->key_id : NULL;
    default: return NULL;
    }
}

int ks_ops_is_private(const Lurk__V1__Request *req)
{
    return req->op_case == LURK__V1__REQUEST__OP_SIGN
        || req->op_case == LURK__V1__REQUEST__OP_DECRYPT;
}

const char *ks_ops_name(const Lurk__V1__Request *req)
{
    return lurk_op_name(req->op_case);
}

void ks_ops_answer_clear(ks_ops_answer *ans)
{
    OPENSSL_free(ans->sig);
    OPENSSL_cleanse(ans->premaster, sizeof(ans->premaster));
    ans->sig = NULL;
    free(ans->capkeys);
    ans->capkeys = NULL;
}
