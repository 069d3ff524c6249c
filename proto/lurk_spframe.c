/* SPDX-License-Identifier: Apache-2.0 */
#include "lurk_spframe.h"

/* The header nng sends first; bytes 4 and 5 are the protocol number. */
static const unsigned char lurk_sp_nego[8] = { 0, 'S', 'P', 0, 0, 0, 0, 0 };

static void lurk_spframe_nego(lurk_spframe *t, uint8_t b, int *end)
{
    if (t->have != 4 && t->have != 5 && b != lurk_sp_nego[t->have]) {
        t->state = LURK_SP_OFF;
        return;
    }
    if (++t->have == 8) {
        t->state = LURK_SP_LEN;
        t->have = 0;
        *end = 1;
    }
}

static void lurk_spframe_len(lurk_spframe *t, uint8_t b, int *end)
{
    t->len[t->have++] = b;
    if (t->have < 8)
        return;
    t->need = 0;
    for (int i = 0; i < 8; i++)
        t->need = (t->need << 8) | t->len[i];
    t->have = 0;
    if (t->need == 0)
        *end = 1;
    else
        t->state = LURK_SP_BODY;
}

int lurk_spframe_feed(lurk_spframe *t, const uint8_t *p, size_t n)
{
    int end = 0;

    while (n > 0 && t->state != LURK_SP_OFF) {
        end = 0;
        if (t->state == LURK_SP_BODY) {
            size_t k = (uint64_t)n < t->need ? n : (size_t)t->need;

            p += k;
            n -= k;
            t->need -= k;
            if (t->need == 0) {
                t->state = LURK_SP_LEN;
                end = 1;
            }
            continue;
        }
        if (t->state == LURK_SP_NEGO)
            lurk_spframe_nego(t, *p, &end);
        else
            lurk_spframe_len(t, *p, &end);
        p++;
        n--;
    }
    return t->state == LURK_SP_OFF ? 1 : end;
}
