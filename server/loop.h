/* loop.h -- one event loop's state.
 *
 * There is one struct server per event loop (--threads), each with its own
 * lws context on the same port. Everything in it belongs to that loop's
 * thread, except what is marked otherwise. Other threads reach the loop
 * only through its inbox and lws_cancel_service() (hub.h); what the loops
 * share (rooms, the database) is in the hub. This header is data only: the
 * code that runs a loop is server.c (server.h), which no module below it
 * needs, so session, http, hub and listen code include this and never
 * server.h.
 */
#ifndef PARLEY_LOOP_H
#define PARLEY_LOOP_H

#include <signal.h>
#include <stdint.h>
#include <libwebsockets.h>

#include "config.h"
#include "metrics.h"
#include "outq.h"
#include "protocol.h"
#include "room.h"

struct db;
struct hub;
struct session;
struct send_slot;

struct server {
    const struct config *cfg;
    struct lws_context *ctx;
    struct db *db;
    struct hub *hub;
    int index;                               /* this loop's number, 0..hub->nloops-1 */
    struct session *sessions;                /* this loop's open sessions, for shutdown */
    struct session *hello_head, *hello_tail; /* awaiting hello, oldest first */
    struct session *flush_head, *flush_tail; /* queues to write before the event ends */
    struct session *presence_head;           /* presence to tell (member.c) */
    struct session *wait_head, *wait_tail;   /* output waiting, oldest first (wire.c) */
    /* alive.c: sessions by last sign of life, not pinged since / pinged */
    struct session *quiet_head, *quiet_tail, *pinged_head, *pinged_tail;
    struct session **exp_heap; /* expiry.c: token sessions, min-heap by exp */
    struct session **online;   /* online.c: welcomed sessions by user id */
    uint32_t online_cap, online_n;
    uint32_t nexp, capexp;
    int nsessions;               /* this loop's; the hub counts all */
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

/* Monotonic microseconds (server.c). */
int64_t server_now_us(void);

#endif
