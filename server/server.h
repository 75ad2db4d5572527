/* server.h -- an event loop's libwebsockets context and its one callback:
 * start, run, destroy. The loop's state is struct server (loop.h). */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include "loop.h"

/* Creates the loop's lws context (listening socket, shared with the other
 * loops' when there are several; mounts; TLS). Main thread, before any
 * loop runs. Returns 0, or -1 after logging why. */
int server_start(struct server *srv);
/* Runs the loop until a stop was requested (hub.stop_requested, seen by
 * the loop's tick) and every client is gone (or the grace period is over).
 * The loop's own thread. */
void server_run(struct server *srv);
/* Closes what is left (CLOSED per session) and destroys the context. Main
 * thread, once every loop has returned from server_run(): contexts are
 * destroyed one after another. Idempotent. */
void server_destroy(struct server *srv);
/* Every completion and post taken from a loop's inbox (hub_take's fn):
 * the HTTP API's requests (db_req.api) go to api_on_done, the rest to
 * session_on_db_done. The loop's thread, or main after the loops stopped. */
struct db_req;
void server_on_db_done(struct db_req *r, void *srv);

#endif
