/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics endpoint: see ks_http.h.
 */
#include "ks_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

struct ks_http {
    nng_http_server *server;
    nng_url *url;
    ks_http_render_fn render;
    void *arg;
};

static void ks_http_metrics(nng_aio *aio)
{
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    ks_http *hs = nng_http_handler_get_data(h);
    nng_http_res *res = NULL;
    size_t len = 0;
    char *body = hs->render(hs->arg, &len);
    int rv;

    if (body == NULL) {
        if ((rv = nng_http_res_alloc_error(&res, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR)) != 0) {
            nng_aio_finish(aio, rv);
            return;
        }
    } else if ((rv = nng_http_res_alloc(&res)) != 0
               || (rv = nng_http_res_set_header(res, "Content-Type",
                                                "text/plain; version=0.0.4; charset=utf-8"))
                   != 0
               || (rv = nng_http_res_copy_data(res, body, len)) != 0) {
        free(body);
        if (res != NULL)
            nng_http_res_free(res);
        nng_aio_finish(aio, rv);
        return;
    }
    free(body);
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

int ks_http_start(const char *url, ks_http_render_fn render, void *arg, ks_http **out, char *err,
                  size_t errlen)
{
    static const char index_html[] = "lurk-keyserver: Prometheus metrics at /metrics\n";
    ks_http *hs = calloc(1, sizeof(*hs));
    nng_http_handler *h = NULL, *root = NULL;
    int rv;

    *out = NULL;
    if (hs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    hs->render = render;
    hs->arg = arg;
    if ((rv = nng_url_parse(&hs->url, url)) != 0) {
        snprintf(err, errlen, "metrics_listen %s: %s", url, nng_strerror(rv));
        free(hs);
        return -1;
    }
    if ((rv = nng_http_server_hold(&hs->server, hs->url)) != 0) {
        snprintf(err, errlen, "metrics_listen %s: %s", url, nng_strerror(rv));
        nng_url_free(hs->url);
        free(hs);
        return -1;
    }
    if ((rv = nng_http_handler_alloc(&h, "/metrics", ks_http_metrics)) != 0
        || (rv = nng_http_handler_set_method(h, "GET")) != 0
        || (rv = nng_http_handler_set_data(h, hs, NULL)) != 0
        || (rv = nng_http_server_add_handler(hs->server, h)) != 0) {
        if (h != NULL)
            nng_http_handler_free(h);
        goto fail;
    }
    if ((rv = nng_http_handler_alloc_static(&root, "/", index_html, sizeof(index_html) - 1,
                                            "text/plain"))
            != 0
        || (rv = nng_http_server_add_handler(hs->server, root)) != 0) {
        if (root != NULL)
            nng_http_handler_free(root);
        goto fail;
    }
    if ((rv = nng_http_server_start(hs->server)) != 0)
        goto fail;
    *out = hs;
    return 0;
fail:
    snprintf(err, errlen, "metrics_listen %s: %s", url, nng_strerror(rv));
    nng_http_server_release(hs->server);
    nng_url_free(hs->url);
    free(hs);
    return -1;
}

void ks_http_stop(ks_http *h)
{
    if (h == NULL)
        return;
    nng_http_server_stop(h->server);
    nng_http_server_release(h->server);
    nng_url_free(h->url);
    free(h);
}
