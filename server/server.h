/* server.h -- the event loop's shared state and the libwebsockets glue.
 *
 * Everything in struct server belongs to the event-loop thread, except what
 * is marked otherwise. Other threads talk to the loop only through
 * lws_cancel_service() (the database worker's wake-up, the signal handler).
 */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include <signal.h>
#include <stdint.h>
#include <libwebsockets.h>

#include "config.h"
#include "outq.h"
#include "protocol.h"
#include "room.h"

struct db;
struct session;

struct metrics {
    uint64_t connections_total, frames_in, frames_out, bytes_out, rate_limited,
        slow_closes, upgrades_refused, http_requests;
};

struct server {
    const struct config *cfg;
    struct lws_context *ctx;
    struct db *db;
    struct rooms rooms;
    struct session *sessions; /* every open session, for shutdown */
    struct session *hello_head, *hello_tail; /* awaiting hello, oldest first */
    struct session *flush_head, *flush_tail; /* queues to write before the event ends */
    int nsessions;
    struct metrics m;
    struct outq_limits outq_lim;
    struct proto_limits plim;
    unsigned char guest_key[32];          /* signs guests' resume tokens */
    volatile sig_atomic_t stop_requested; /* set by the signal handler */
    int stopping;
    int loop_done;
    int64_t stop_deadline_us;
    struct lws_sorted_usec_list tick; /* hello deadlines, shutdown progress */
    struct uv_loop_s *uv_loop;        /* the libuv loop, unless --event-loop poll */
};

/* Creates the lws context (listening socket, mounts, TLS). Main thread.
 * Returns 0, or -1 after logging why. */
int server_start(struct server *srv);
/* Runs the loop until a stop was requested and every client is gone (or the
 * grace period is over). Main thread (which becomes the loop thread). */
void server_run(struct server *srv);
void server_destroy(struct server *srv);
/* Async-signal-safe: asks the loop to shut down. */
void server_request_stop(struct server *srv);

/* The database worker's wake hook: lws_cancel_service(), the one lws call
 * another thread may make. Any thread. */
void server_wake(void *srv);

/* Monotonic microseconds. */
int64_t server_now_us(void);

#endif
