/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the fuzz targets: an assertion that survives NDEBUG and names
 * the broken invariant, so that a libFuzzer crash report says what went
 * wrong, not just where.
 */
#ifndef LURK_FUZZ_H
#define LURK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
