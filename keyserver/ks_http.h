/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics endpoint: nng's own HTTP server (nng/supplemental/http)
 * answering GET /metrics with what `render` produces.
 */
#ifndef KS_HTTP_H
#define KS_HTTP_H

#include <stddef.h>

typedef struct ks_http ks_http;

/* Returns a malloc'ed body (the caller frees it) or NULL (answered 500). */
typedef char *(*ks_http_render_fn)(void *arg, size_t *len);

/* Listen on http://HOST:PORT and serve /metrics (and / with a pointer to it). */
int ks_http_start(const char *url, ks_http_render_fn render, void *arg, ks_http **out, char *err,
                  size_t errlen);

void ks_http_stop(ks_http *h);

#endif
