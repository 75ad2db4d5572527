/* api.h -- the HTTP API (shared/spec/http-api.md, docs/api.md) on the
 * event loop: authentication, the request body read through libwebsockets'
 * HTTP body callbacks, the database request, and the answer.
 *
 * Ownership. A request under way is a struct api_call on the heap. The
 * connection's struct api_conn points to it from LWS_CALLBACK_HTTP until
 * the answer is written or the connection closes. While its database
 * request is queued (stage API_WAITING) the call is also the database's
 * (db.h: the request and the strings it points to stay alive until the
 * completion comes back). So:
 *  - the connection closing while the call waits (LWS_CALLBACK_CLOSED_HTTP)
 *    only marks it orphaned (call->wsi = NULL) and forgets it; the
 *    completion (api_on_done) finds it orphaned, delivers what was
 *    committed to this loop's members all the same, and frees it;
 *  - the connection closing at any other stage frees the call at once:
 *    nothing else points to it;
 *  - the completion of a call that is not orphaned writes the answer on
 *    the connection, which is still open (else it would be orphaned).
 * Nothing is ever written to a closed wsi, and nothing a queued request
 * points to is freed before its completion. Event-loop thread only: the
 * call lives and dies on the loop that made it (completions come back to
 * the submitting loop, hub.h).
 */
#ifndef PARLEY_API_H
#define PARLEY_API_H

#include <stddef.h>
#include <libwebsockets.h>

struct db_req;
struct server;
struct api_call;

/* Per-connection state (inside server.c's struct conn, zeroed by lws). */
struct api_conn {
    struct api_call *call; /* the request under way, or NULL */
};

/* Returns 1 when the request on wsi is the API's: its path, whatever the
 * method, is /api or under /api/. LWS_CALLBACK_HTTP. */
int api_claims(struct lws *wsi);
/* LWS_CALLBACK_HTTP for an API path: checks the key, the route and the
 * method; answers a GET, or starts reading a POST's body. Returns 0, or -1
 * to close the connection. */
int api_request(struct server *srv, struct lws *wsi, struct api_conn *ac);
/* Whether the connection's API request is reading its body: the only
 * state in which libwebsockets' body callbacks are expected. */
int api_reading(const struct api_conn *ac);
/* A body callback when not reading (a refused request's body, or a
 * request pipelined behind it, which libwebsockets 4.1.6 repeats as body
 * completions until the connection closes). A completion marks the
 * connection to close once the answer is out; returns 0 to go on, -1 to
 * close: no API request at all, or the answer written whole. */
int api_unread_body(struct api_conn *ac, int completion);
/* LWS_CALLBACK_HTTP_BODY: len more bytes of the body. */
int api_body(struct lws *wsi, struct api_conn *ac, const void *in, size_t len);
/* LWS_CALLBACK_HTTP_BODY_COMPLETION: the body is complete; answers it. */
int api_body_done(struct lws *wsi, struct api_conn *ac);
/* LWS_CALLBACK_HTTP_WRITEABLE while ac->call is set: writes the answer. */
int api_writeable(struct lws *wsi, struct api_conn *ac);
/* LWS_CALLBACK_CLOSED_HTTP: frees or orphans the call (see above). */
void api_closed(struct api_conn *ac);
/* A completion of a request the API submitted (db_req.api): see above. */
void api_on_done(struct server *srv, struct db_req *r);

#endif
