/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Percentiles for the bench programs: sort the samples with cmp_double,
 * then pct() takes the nearest rank, so every figure reported is a sample
 * that was measured, never an interpolation.
 */
#ifndef LURK_BENCH_STATS_H
#define LURK_BENCH_STATS_H

#include <stddef.h>

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* p in [0, 100] of n sorted samples; 0 without samples. */
static inline double pct(const double *v, size_t n, double p)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return v[i - 1];
}

#endif
