/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the edge's side of the wire, lurk_response_decode(), which
 * the provider runs on whatever a key server (or something in its place)
 * answers. For each kind of result an edge can wait for, it checks the
 * decoder's promises: an accepted answer carries the request id asked
 * for, and either status OK with the protocol version and exactly the
 * result expected, or an error status with no result at all.
 */
#include "fuzz.h"
#include "lurk_wire.h"

/* The id the edge waits for: the fuzzer finds it through CMP tracing. */
#define FUZZ_ID 0x4c55524b00000001ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const Lurk__V1__Response__ResultCase expect[] = {
        LURK__V1__RESPONSE__RESULT_PING,           LURK__V1__RESPONSE__RESULT_CAPABILITIES,
        LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY, LURK__V1__RESPONSE__RESULT_SIGN,
        LURK__V1__RESPONSE__RESULT_DECRYPT,
    };

    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        const char *why = NULL;
        Lurk__V1__Response *r = lurk_response_decode(data, size, FUZZ_ID, expect[i], &why);

        if (r == NULL) {
            FUZZ_CHECK(why != NULL);
            continue;
        }
        FUZZ_CHECK(size <= LURK_MAX_MESSAGE);
        FUZZ_CHECK(r->id == FUZZ_ID);
        if (r->status == LURK__V1__STATUS__STATUS_OK) {
            FUZZ_CHECK(r->version == LURK_PROTOCOL_VERSION);
            FUZZ_CHECK(r->result_case == expect[i]);
            switch (r->result_case) {
            case LURK__V1__RESPONSE__RESULT_PING: FUZZ_CHECK(r->ping != NULL); break;
            case LURK__V1__RESPONSE__RESULT_CAPABILITIES:
                FUZZ_CHECK(r->capabilities != NULL);
                for (size_t k = 0; k < r->capabilities->n_keys; k++)
                    FUZZ_CHECK(r->capabilities->keys[k] != NULL);
                break;
            case LURK__V1__RESPONSE__RESULT_GET_PUBLIC_KEY:
                FUZZ_CHECK(r->get_public_key != NULL);
                break;
            case LURK__V1__RESPONSE__RESULT_SIGN: FUZZ_CHECK(r->sign != NULL); break;
            case LURK__V1__RESPONSE__RESULT_DECRYPT: FUZZ_CHECK(r->decrypt != NULL); break;
            default: FUZZ_CHECK(!"unexpected result case");
            }
        } else {
            FUZZ_CHECK(r->result_case == LURK__V1__RESPONSE__RESULT__NOT_SET);
            FUZZ_CHECK(lurk_status_name(r->status) != NULL);
        }
        lurk__v1__response__free_unpacked(r, NULL);
    }
    return 0;
}
