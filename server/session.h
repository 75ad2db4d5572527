/* session.h -- one WebSocket connection, driven by one coroutine.
 *
 * The session struct is the coroutine's frame: everything the session's
 * logic keeps across an await lives here. libwebsockets events (a frame, a
 * timer, a database completion) are fed in by the functions below, which
 * resume the coroutine. Event-loop thread only.
 *
 * Lifetime: a session is allocated at ESTABLISHED and holds one reference
 * for the connection plus one while a database request is in flight. When
 * the connection closes, the session is cancelled (never resumed again) and
 * freed when the last reference goes, which may be in a later database
 * completion (a deferred free; never from inside the coroutine).
 */
#ifndef PARLEY_SESSION_H
#define PARLEY_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <libwebsockets.h>

#include "buf.h"

struct server;
struct session;
struct db_req;

/* LWS_CALLBACK_ESTABLISHED. Returns the new session, or NULL (refuse). */
struct session *session_open(struct server *srv, struct lws *wsi);
/* LWS_CALLBACK_RECEIVE: one fragment. Returns -1 to close the connection
 * (the close code is already set with lws_close_reason). */
int session_on_receive(struct session *s, const void *in, size_t len);
/* LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: nonzero when the peer's close
 * answers ours (lws then just closes). */
int session_on_peer_close(struct session *s);
/* From the server's tick: sessions whose hello is overdue are resumed to
 * close with 1008. */
void session_sweep_hello(struct server *srv, int64_t now_us);
/* LWS_CALLBACK_CLOSED: cancels the coroutine, leaves every room. */
void session_on_closed(struct session *s);
/* An item of the loop's inbox (hub.h): a database completion for request
 * r, whose owner is a session, or a frame for a room (DB_POST, freed here). */
void session_on_db_done(struct db_req *r, void *srv);

struct session *session_next(const struct session *s);

#endif
