/* server.h -- one event loop's state and the libwebsockets glue.
 *
 * There is one struct server per event loop (--threads), each with its own
 * lws context on the same port. Everything in it belongs to that loop's
 * thread, except what is marked otherwise. Other threads reach the loop
 * only through its inbox and lws_cancel_service() (hub.h); what the loops
 * share (rooms, the database) is in the hub.
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
struct hub;
struct session;
struct send_slot;

/* Counters written only by their loop's thread and summed by whichever
 * loop serves /metrics: stored and read with relaxed atomics (the writer
 * is alone, so no locked add is needed). All uint64_t. */
struct metrics {
    uint64_t connections_total, frames_in, frames_out, bytes_out, rate_limited,
        slow_closes, upgrades_refused, http_requests;
};

#define OWN_ADD(var, n)                                                                  \
    __atomic_store_n(&(var), __atomic_load_n(&(var), __ATOMIC_RELAXED) + (n),            \
                     __ATOMIC_RELAXED)
#define METRIC_ADD(srv, field, n) OWN_ADD((srv)->m.field, (uint64_t)(n))

struct server {
    const struct config *cfg;
    struct lws_context *ctx;
    struct db *db;
    struct hub *hub;
    int index;                               /* this loop's number, 0..hub->nloops-1 */
    struct session *sessions;                /* this loop's open sessions, for shutdown */
    struct session *hello_head, *hello_tail; /* awaiting hello, oldest first */
    struct session *flush_head, *flush_tail; /* queues to write before the event ends */
    int nsessions;                           /* this loop's; the hub counts all */
    uint64_t queued;             /* frames on this loop's outbound queues (OWN_ADD) */
    struct send_slot *slot_pool; /* session.c's free send slots */
    struct metrics m;
    struct outq_limits outq_lim;
    struct proto_limits plim;
    unsigned char guest_key[32]; /* signs guests' resume tokens */
    int stopping;
    int loop_done;
    int64_t stop_deadline_us;
    struct lws_sorted_usec_list tick; /* hello deadlines, shutdown progress */
    struct uv_loop_s *uv_loop;        /* the libuv loop, unless --event-loop poll */
    void *foreign_loops[1];           /* lws' view of uv_loop */
    /* Our own listener (listen.c), with several loops; else fd -1. */
    int listen_fd;
    struct uv_poll_s *listen_poll;
    struct lws_vhost *vhost; /* where accepted sockets are adopted */
    int accept_resume;       /* accepting paused out of descriptors */
};

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

/* Monotonic microseconds. */
int64_t server_now_us(void);

#endif
