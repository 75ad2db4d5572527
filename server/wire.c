/* wire.c -- the write path: a session's bounded outbound queue, written
 * in one lws_write per event when the socket is idle, otherwise on
 * WRITEABLE; and our own close frame. */
#include "wire.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session_impl.h"

#define CLOSE_ANSWER_S 1 /* a client gets this long to answer our close frame */

/* Empties s's outbound queue, keeping the loop's gauge of queued frames. */
void wire_drop(struct session *s)
{
    OWN_ADD(s->srv->queued, -(uint64_t)s->out.count);
    outq_clear(&s->out);
}

/* Appends s to the server's flush list, written at the end of the current
 * event (wire_flush_all): every frame this event queued for s leaves in
 * one write. First queued, first written: a fan-out reaches the room in
 * member order and the requester's own reply after it. The list holds a
 * reference. */
static void flush_defer(struct session *s)
{
    struct server *srv = s->srv;
    if (s->flush_queued) return;
    s->flush_queued = 1;
    s->refs++;
    s->flush_next = NULL;
    if (srv->flush_tail)
        srv->flush_tail->flush_next = s;
    else
        srv->flush_head = s;
    srv->flush_tail = s;
}

void wire_push(struct session *s, struct buf *b)
{
    if (!b || s->closed || s->close_code) return;
    if (outq_push(&s->out, b, &s->srv->outq_lim)) {
        METRIC_ADD(s->srv, slow_closes, 1);
        plog(LOG_INFO, "slow-consumer", "user=%s queued=%u bytes=%u", who(s),
             s->out.count, s->out.bytes);
        wire_drop(s);
        wire_close(s, 1013, "slow consumer: reconnect and join with since", 0);
        return;
    }
    OWN_ADD(s->srv->queued, 1);
    /* Invariant: a non-empty queue is on the flush list or has a writable
     * callback pending; only the first frame needs to ask. */
    if (s->out.count == 1) flush_defer(s);
}

/* Queues a buf made for this session alone and drops the maker's reference.
 * NULL is a reply lost to out of memory: the connection closes, since a
 * client waiting for it would wait forever. */
void wire_reply(struct session *s, struct buf *b)
{
    if (!b) return wire_close(s, 1011, "out of memory", 0);
    wire_push(s, b);
    buf_unref(b);
}

void wire_error(struct session *s, enum proto_err e, const char *msg)
{
    wire_error_ref(s, e, msg, s->req.ref);
}

void wire_error_ref(struct session *s, enum proto_err e, const char *msg, const char *ref)
{
    if (e == E_RATE_LIMITED) METRIC_ADD(s->srv, rate_limited, 1);
    wire_reply(s, proto_error(e, msg, ref));
}

/* Writes our close frame as raw bytes, like every other frame, and waits
 * for the client's answer (session_on_peer_close) or the close timeout set
 * by wire_close(). Owning the close handshake keeps it the same under
 * every event loop: the frame goes out before the socket is closed. */
static int send_close(struct session *s)
{
    unsigned char frame[LWS_PRE + 2 + 2 + 123], *f = frame + LWS_PRE;
    size_t rlen = strlen(s->close_reason);
    if (rlen > 123) rlen = 123; /* a control frame's payload is at most 125 bytes */
    f[0] = 0x88;                /* FIN | close */
    f[1] = (unsigned char)(2 + rlen);
    f[2] = (unsigned char)(s->close_code >> 8);
    f[3] = (unsigned char)s->close_code;
    memcpy(f + 4, s->close_reason, rlen);
    s->close_sent = 1;
    if (lws_write(s->wsi, f, 4 + rlen, LWS_WRITE_RAW) < (int)(4 + rlen)) return -1;
    /* A client that reads the close but never answers it is dropped soon;
     * by then the frame has long been delivered. */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_ANSWER_S);
    return 0;
}

/* s has output that only WRITEABLE can send: asks for it and, the first
 * time, notes since when, on the loop's wait list (oldest first), so a
 * client that stops reading is found by wire_sweep without a scan. */
static void wait_writable(struct session *s)
{
    struct server *srv = s->srv;
    lws_callback_on_writable(s->wsi);
    if (s->waiting_out || s->close_code) return;
    s->waiting_out = 1;
    s->wait_since_us = server_now_us();
    s->wait_next = NULL;
    s->wait_prev = srv->wait_tail;
    if (srv->wait_tail)
        srv->wait_tail->wait_next = s;
    else
        srv->wait_head = s;
    srv->wait_tail = s;
}

/* The socket took what lws held: s is no longer waiting. */
static void wait_done(struct session *s)
{
    struct server *srv = s->srv;
    if (!s->waiting_out) return;
    if (s->wait_prev)
        s->wait_prev->wait_next = s->wait_next;
    else
        srv->wait_head = s->wait_next;
    if (s->wait_next)
        s->wait_next->wait_prev = s->wait_prev;
    else
        srv->wait_tail = s->wait_prev;
    s->wait_prev = s->wait_next = NULL;
    s->waiting_out = 0;
}

void wire_forget(struct session *s)
{
    wait_done(s);
}

void wire_sweep(struct server *srv, int64_t now_us)
{
    int64_t limit = (int64_t)srv->cfg->send_timeout * 1000000;
    struct session *s;
    while ((s = srv->wait_head) && now_us - s->wait_since_us >= limit) {
        wait_done(s);
        METRIC_ADD(srv, slow_closes, 1);
        plog(LOG_INFO, "slow-consumer", "user=%s stalled_s=%lld queued=%u", who(s),
             (long long)((now_us - s->wait_since_us) / 1000000), s->out.count);
        wire_close(s, 1013, "slow consumer: reconnect and join with since", 1);
    }
}

/* Frames for one connection are gathered here and go out in one write. One
 * per loop thread. */
static __thread unsigned char wire[LWS_PRE + WIRE_WRITE_MAX];

_Static_assert(LWS_PRE >= OUTQ_HEADER_MAX, "a frame header fits the headroom");

/* Sends the oldest frame alone: it is bigger than one batch (a long join
 * or history reply). A buf that is ours alone (a reply) takes its header
 * in its own headroom, with no copy; a shared one (a message other loops
 * send too) is copied, since its headroom is not ours to write. Sets *n to
 * the bytes written; returns nonzero when the write failed. */
static int write_big(struct session *s, size_t *n)
{
    struct buf *b = outq_peek(&s->out);
    unsigned char hdr[OUTQ_HEADER_MAX], *p, *copy = NULL;
    size_t h = outq_ws_header(hdr, b->len);
    *n = h + b->len;
    if (__atomic_load_n(&b->refs, __ATOMIC_ACQUIRE) == 1)
        p = BUF_PAYLOAD(b) - h;
    else if ((copy = malloc(LWS_PRE + *n)))
        p = copy + LWS_PRE;
    else
        p = NULL; /* out of memory: the connection closes */
    if (p) {
        memcpy(p, hdr, h);
        if (copy) memcpy(p + h, BUF_PAYLOAD(b), b->len);
    }
    int rc = !p || lws_write(s->wsi, p, *n, LWS_WRITE_RAW) < (int)*n;
    free(copy);
    outq_pop(&s->out);
    return rc;
}

/* Sends the oldest queued frames, as many as fit in one write. Returns -1
 * when the socket failed. Whatever the kernel does not take, lws keeps and
 * sends first when the socket drains (lws_partial_buffered): that much is
 * counted as held against the queue's byte bound until then. */
static int write_queue(struct session *s)
{
    unsigned frames;
    size_t n;
    int rc;
    assert(outq_peek(&s->out));
    if ((n = outq_gather(&s->out, wire + LWS_PRE, WIRE_WRITE_MAX, &frames)))
        /* Whole frames, headers included: RAW sends the bytes as they are,
         * with TLS too (no extension is ever negotiated). */
        rc = lws_write(s->wsi, wire + LWS_PRE, n, LWS_WRITE_RAW) < (int)n;
    else {
        frames = 1;
        rc = write_big(s, &n);
    }
    OWN_ADD(s->srv->queued, -(uint64_t)frames); /* off the queue either way */
    if (rc) return -1;
    s->out.held = lws_partial_buffered(s->wsi) ? (uint32_t)n : 0;
    METRIC_ADD(s->srv, frames_out, frames);
    METRIC_ADD(s->srv, bytes_out, n);
    return 0;
}

int wire_on_writeable(struct session *s)
{
    wait_done(s);
    /* A ping written in this same WRITEABLE (alive.c) may be held back:
     * one more write now would go behind it into lws' buffer. */
    if (lws_partial_buffered(s->wsi)) return wait_writable(s), 0;
    s->out.held = 0; /* lws calls us once what it held has gone */
    if (!outq_peek(&s->out)) return s->close_code && !s->close_sent ? send_close(s) : 0;
    if (write_queue(s)) return -1;
    if (s->out.count || (s->close_code && !s->close_sent)) wait_writable(s);
    return 0;
}

/* Writes s's queue now if its socket is idle: nothing of ours queued
 * before this event, nothing lws holds back. Most deliveries take this
 * path: one send() each, where a WRITEABLE round trip would add two
 * epoll_ctl() calls and a wake-up (docs/performance.md). A socket that
 * holds bytes back, or a closing session, waits for WRITEABLE as before. */
static void flush_one(struct session *s)
{
    if (s->closed || !s->out.count) return;
    if (s->close_code || lws_partial_buffered(s->wsi)) {
        wait_writable(s);
        return;
    }
    if (write_queue(s)) {
        /* The socket is dead: lws closes it on its next turn (not here,
         * inside another connection's event). */
        wire_drop(s);
        s->close_code = 1006;
        s->close_sent = 1;
        s->close_reason = "write failed";
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    if (s->out.count || s->out.held) wait_writable(s);
}

void wire_flush_all(struct server *srv)
{
    struct session *s;
    while ((s = srv->flush_head)) {
        if (!(srv->flush_head = s->flush_next)) srv->flush_tail = NULL;
        s->flush_queued = 0;
        flush_one(s);
        session_unref(s); /* may free s */
    }
}

void wire_close(struct session *s, int code, const char *reason, int now)
{
    if (s->closed || s->close_code) return;
    s->close_code = code;
    s->close_reason = reason;
    if (now) wire_drop(s);
    /* The close frame goes out after the queue; the timeout drops a client
     * that does not read at all. */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, WIRE_CLOSE_GRACE_S);
    lws_callback_on_writable(s->wsi);
}
