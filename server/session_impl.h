/* session_impl.h -- the session struct (the coroutine's frame) and what
 * the files that handle a session's requests share: session.c (lifecycle,
 * the coroutine), wire.c (the write path), hello.c (hello and auth),
 * roomreq.c (room requests), roomlist.c (the rooms listing), dm.c (direct
 * messages), online.c (connections by user), send.c (the send window). Private to them;
 * everything else uses session.h. Event-loop thread only.
 */
#ifndef PARLEY_SESSION_IMPL_H
#define PARLEY_SESSION_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "coro.h"
#include "db.h"
#include "iplimit.h"
#include "loop.h"
#include "member.h"
#include "outq.h"
#include "protocol.h"
#include "ratelimit.h"

struct jwt_claims;

struct inmsg {
    struct inmsg *next;
    int64_t at_us; /* arrival: rate limits judge the client's pace, not ours */
    size_t len;
    char data[]; /* NUL-terminated */
};

struct session {
    struct coro co;  /* the session's main coroutine */
    struct coro sub; /* the database query sub-coroutine */
    struct server *srv;
    struct lws *wsi;                         /* NULL once closed */
    struct session *prev, *next;             /* srv->sessions, while open */
    struct session *hello_prev, *hello_next; /* srv->hello_*, until welcomed */
    struct session *flush_next;              /* srv->flush_head, while flush_queued */
    struct session *presence_next;           /* srv->presence_head, while queued */
    struct session *wait_prev, *wait_next;   /* srv->wait_*, while waiting_out */
    int64_t wait_since_us; /* waiting for WRITEABLE since (waiting_out) */
    struct session *alive_prev, *alive_next; /* alive.c's lists, while watched */
    struct session *online_next;             /* online.c's bucket, while online */
    int64_t alive_us;                        /* the peer's last sign of life */
    int64_t hello_deadline_us;
    int refs;               /* 1 for the connection, 1 per request in flight */
    unsigned closed : 1;    /* the connection is gone: never resume again */
    unsigned in_resume : 1; /* the coroutine is running */
    unsigned welcomed : 1, guest : 1, hello_late : 1, db_busy : 1, rx_paused : 1;
    unsigned hello_waiting : 1;   /* on the server's hello FIFO */
    unsigned rx_discard : 1;      /* skipping the rest of an oversized message */
    unsigned close_sent : 1;      /* our close frame is out; awaiting the peer's */
    unsigned flush_queued : 1;    /* on srv->flush_head: its queue is written soon */
    unsigned presence_queued : 1; /* on srv->presence_head: presence to tell */
    unsigned waiting_out : 1;     /* output pending, on srv->wait_* */
    unsigned alive_list : 2;      /* alive.c: which list it is on */
    unsigned ping_due : 1;        /* alive.c: a ping goes out on WRITEABLE */
    unsigned online : 1;          /* in online.c's index (welcomed, open) */
    unsigned ranked : 2;          /* the role online.c counted in hub->ranks */
    unsigned ip_counted : 1;      /* holds a connection of ipkey (iplimit.h) */
    int close_code;               /* set: closing once the queue is flushed */
    int in_count;                 /* frames on in_head */
    const char *close_reason;     /* a static string (wire_close) */

    struct inmsg *in_head, *in_tail; /* frames waiting for the coroutine */
    char *rx;                        /* reassembly of a fragmented message */
    size_t rx_len;

    struct proto_req req; /* the request being handled */
    struct db_req dbr;    /* its read query (join, history) */
    int inflight;         /* sends awaiting their commit (send_slot) */
    uint32_t exp_slot;    /* expiry.c: heap index + 1; 0: out */
    struct room *req_room;

    /* One allocation, sized to fit, made at welcome (user_name points into
     * it); NULL before. Sends point into it until their completion. */
    char *user_id, *user_name;
    struct buf *user_json;     /* {"id":…,"name":…}, made at welcome */
    struct jwt_claims *claims; /* token users only: guests pay nothing for it */
    char *url_token;

    struct iplimit_key ipkey; /* the client's address key, from the upgrade */

    struct outq out;
    struct tbucket send_tb, req_tb;
    struct tbucket read_tb;     /* bytes of reads and listings (roomreq.c) */
    struct tbucket presence_tb; /* presence changes told (member.c) */
    struct membership *mem;     /* joined and remembered rooms (member.h) */
    uint32_t nmem, capmem, njoined;
};

static inline const struct config *cfg(struct session *s)
{
    return s->srv->cfg;
}

/* The user id for logs: "-" before the welcome. */
static inline const char *who(const struct session *s)
{
    return s->user_id ? s->user_id : "-";
}

/* Drops one reference; the last frees the session (never call it from
 * inside the session's own coroutine with the connection's reference). */
void session_unref(struct session *s);

#endif
