/* http.h -- the plain HTTP side: the built-in page, /healthz, /metrics, and
 * the checks made before a WebSocket upgrade. Event-loop thread only. */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stddef.h>
#include <libwebsockets.h>

struct server;
struct buf;

/* Per-connection state of an HTTP response being written. */
struct http_body {
    const unsigned char *data;
    size_t len, off;
    struct buf *owned; /* the body, when generated; freed at the end */
    int close_after;   /* close once the body is out (a refused method) */
};

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 lets the upgrade proceed; 1 means a
 * refusal (403 Origin, 404 path, 503 limit or shutting down, 429 too many
 * connections from the client's address) was sent. */
int http_confirm_upgrade(struct server *srv, struct lws *wsi);
/* LWS_CALLBACK_HTTP: starts a response. Returns 0, or -1 to close. */
int http_request(struct server *srv, struct lws *wsi, struct http_body *hb);
/* LWS_CALLBACK_HTTP_WRITEABLE: writes the next piece of the body. */
int http_writeable(struct lws *wsi, struct http_body *hb);
/* LWS_CALLBACK_CLOSED_HTTP / HTTP_DROP_PROTOCOL: frees the body. */
void http_done(struct http_body *hb);
/* LWS_CALLBACK_RAW_*: a CONNECT request, which libwebsockets turns into a
 * raw socket without asking: answered 405 and closed. Returns what the
 * callback returns (-1: close). */
int http_raw(struct lws *wsi, int reason);

#endif
