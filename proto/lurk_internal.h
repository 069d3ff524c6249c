/* Helpers shared by the files of the proto library; not part of its API. */
#ifndef LURK_INTERNAL_H
#define LURK_INTERNAL_H

#include <stddef.h>

void lurk_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
