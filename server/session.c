/* session.c -- a connection's life as one coroutine: hello, then a loop of
 * read a request, dispatch, await the database, reply.
 *
 * Reads (join, history) await their completion in a sub-coroutine before
 * the next request is read: a join's reply and its membership take effect at
 * the completion, which the database orders against every commit. A send
 * awaits only a free slot in its window (SEND_WINDOW): its ack is written by
 * the completion, so one connection's messages can share a group commit.
 *
 * Cancellation: the connection's CLOSED sets `closed`, and nothing resumes a
 * closed session. Requests in flight hold references, so the frame outlives
 * them; the last reference frees it, never from inside the coroutine. */
#include "session.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "expiry.h"
#include "fanout.h"
#include "hello.h"
#include "hub.h"
#include "jwt.h"
#include "log.h"
#include "member.h"
#include "moderate.h"
#include "online.h"
#include "peer.h"
#include "roomreq.h"
#include "send.h"
#include "session_impl.h"
#include "utf8.h"
#include "wire.h"

#define INBOX_MAX_MSGS 32  /* frames read ahead before reading pauses */
#define GENERAL_RATE 100.0 /* non-send requests per second */

struct session *session_next(const struct session *s)
{
    return s->next;
}

static void session_free(struct session *s)
{
    assert(s->refs == 0 && s->closed && !s->in_resume);
    assert(!s->db_busy && s->inflight == 0); /* each held a reference */
    assert(!s->req_room && s->nmem == 0 && !s->waiting_out);
    proto_req_free(&s->req);
    if (s->claims) jwt_claims_free(s->claims);
    free(s->claims);
    buf_unref(s->user_json);
    free(s->user_id); /* user_name lives in the same block */
    buf_unref(s->dbr.rows);
    buf_unref(s->dbr.updates);
    buf_unref(s->dbr.peer);
    free(s->url_token);
    free(s->rx);
    free(s->mem);
    free(s);
}

void session_unref(struct session *s)
{
    assert(s->refs > 0);
    if (--s->refs == 0) session_free(s);
}

static void inbox_clear(struct session *s)
{
    while (s->in_head) {
        struct inmsg *m = s->in_head;
        s->in_head = m->next;
        free(m);
    }
    s->in_tail = NULL;
    s->in_count = 0;
}

/* Takes the next frame off the inbox and parses it into s->req, applying
 * the rate limits. Returns PROTO_OK, or an error already answered (or, for
 * a typing over its limit, dropped). */
static enum proto_err session_read_request(struct session *s)
{
    struct inmsg *m = s->in_head;
    const char *msg;
    s->in_head = m->next;
    if (!s->in_head) s->in_tail = NULL;
    if (--s->in_count < INBOX_MAX_MSGS / 2 && s->rx_paused) {
        s->rx_paused = 0;
        lws_rx_flow_control(s->wsi, 1);
    }
    proto_req_free(&s->req);
    enum proto_err e = proto_parse(m->data, m->len, &s->srv->plim, &s->req, &msg);
    int64_t now = m->at_us;
    free(m);
    /* Sends have their own bucket; everything else, garbage included,
     * shares the general one. */
    /* Edits and deletes take from the send bucket too (protocol 1.1), and
     * so does dm: it stores a pair, so it is paced like the writes. */
    enum proto_type t = s->req.type;
    int is_send = !e && s->welcomed &&
                  (t == REQ_SEND || t == REQ_EDIT || t == REQ_DELETE || t == REQ_DM);
    int ok = is_send ? tb_take(&s->send_tb, cfg(s)->rate, cfg(s)->burst, now)
                     : tb_take(&s->req_tb, GENERAL_RATE, GENERAL_RATE, now);
    if (!ok && !e)
        e = E_RATE_LIMITED, msg = is_send ? "sending too fast" : "too many requests";
    if (!e && !s->welcomed && s->req.type != REQ_HELLO)
        e = E_NEED_HELLO, msg = "say hello first";
    if (!e && s->welcomed && s->req.type == REQ_HELLO)
        e = E_BAD_REQUEST, msg = "already said hello";
    if (e == E_UNKNOWN_TYPE && ok && hello_is_auth(&s->req))
        return hello_refresh(s), e; /* an extension protocol.c does not parse */
    if (e) wire_error(s, e, msg);
    /* Out of memory while parsing: the ref is unknown, so no answer can be
     * matched to the request; closing beats leaving the client waiting. */
    if (e == E_INTERNAL) wire_close(s, 1011, "out of memory", 0);
    return e;
}

/* Sub-coroutine: submits s->dbr and waits for its completion. A full queue
 * completes at once with DB_BUSY. */
static int session_query(struct session *s)
{
    CORO_BEGIN(&s->sub);
    if (db_submit(s->srv->db, &s->dbr)) {
        s->dbr.status = DB_BUSY;
        CORO_EXIT(&s->sub);
    }
    s->refs++; /* the request points into this frame */
    s->db_busy = 1;
    CORO_AWAIT(&s->sub, !s->db_busy);
    CORO_END(&s->sub);
}

/* ---- the hello deadline ----
 * Every connection must say hello within --hello-timeout. The deadlines are
 * in order of arrival, so a FIFO swept by the server's tick finds the late
 * ones at its head: O(1) per connection, where a libwebsockets timer each
 * would cost an insertion into one sorted list (O(n) with n connections,
 * which made accepting 10,000 clients take 13 s). */

static void hello_append(struct session *s, int64_t deadline_us)
{
    struct server *srv = s->srv;
    s->hello_deadline_us = deadline_us;
    s->hello_prev = srv->hello_tail;
    s->hello_next = NULL;
    if (srv->hello_tail)
        srv->hello_tail->hello_next = s;
    else
        srv->hello_head = s;
    srv->hello_tail = s;
    s->hello_waiting = 1;
}

static void hello_unlink(struct session *s)
{
    struct server *srv = s->srv;
    if (!s->hello_waiting) return;
    if (s->hello_prev)
        s->hello_prev->hello_next = s->hello_next;
    else
        srv->hello_head = s->hello_next;
    if (s->hello_next)
        s->hello_next->hello_prev = s->hello_prev;
    else
        srv->hello_tail = s->hello_prev;
    s->hello_prev = s->hello_next = NULL;
    s->hello_waiting = 0;
}

/* ---- the coroutine ---- */

static int session_run(struct session *s)
{
    CORO_BEGIN(&s->co);
    while (!s->welcomed) {
        CORO_AWAIT(&s->co, s->in_head || s->hello_late);
        if (!s->in_head) {
            wire_close(s, 1008, "no hello in time", 0);
            CORO_EXIT(&s->co);
        }
        if (session_read_request(s) == PROTO_OK) hello_handle(s);
        if (s->close_code) CORO_EXIT(&s->co);
    }
    hello_unlink(s);
    for (;;) {
        CORO_AWAIT(&s->co, s->in_head);
        if (session_read_request(s) != PROTO_OK) continue;
        /* q is read only before the awaits below: locals do not survive
         * one. */
        enum roomreq_kind q = roomreq_prepare(s);
        if (q == ROOMREQ_SEND) {
            CORO_AWAIT(&s->co, s->inflight < SEND_WINDOW);
            send_submit(s);
        } else if (q == ROOMREQ_READ) {
            CORO_CALL(&s->co, &s->sub, session_query(s));
            roomreq_finish(s);
        } else if (q == ROOMREQ_DM) { /* make the pair's room, then join it */
            CORO_CALL(&s->co, &s->sub, session_query(s));
            if (dm_made(s)) {
                CORO_CALL(&s->co, &s->sub, session_query(s));
                roomreq_finish(s);
            }
        } else if (q == ROOMREQ_MOD) {
            CORO_CALL(&s->co, &s->sub, session_query(s));
            moderate_finish(s);
        } else if (q == ROOMREQ_LOCAL)
            roomreq_dispatch(s);
        /* Answered: an idle connection keeps no parsed request (and no
         * pointer into one). */
        proto_req_free(&s->req);
        memset(&s->req, 0, sizeof(s->req));
    }
    CORO_END(&s->co);
}

/* Resumes the coroutine unless the session is closing; the check after
 * every event is what makes cancellation safe. */
static void session_resume(struct session *s)
{
    if (s->close_code) inbox_clear(s); /* closing: what was read is moot */
    if (s->closed || s->close_code || s->in_resume) return;
    s->in_resume = 1;
    int rc = session_run(s);
    s->in_resume = 0;
    if (rc == CORO_DONE) wire_close(s, 1000, "", 0);
}

/* ---- events from libwebsockets and the database ---- */

/* Sets *out to a copy of the URL's token, or NULL when there is none.
 * Returns -1 when out of memory: a token silently dropped would turn the
 * hello into a guest's or a "needs a token" refusal. */
static int url_token(struct lws *wsi, char **out)
{
    char v[JWT_MAX_LEN + 8];
    /* Copies "token=VALUE" into v and returns a pointer to VALUE. */
    const char *tok = lws_get_urlarg_by_name(wsi, "token=", v, sizeof v);
    *out = tok && *tok ? strdup(tok) : NULL;
    return tok && *tok && !*out ? -1 : 0;
}

struct session *session_open(struct server *srv, struct lws *wsi)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->srv = srv;
    s->wsi = wsi;
    s->refs = 1;
    if (url_token(wsi, &s->url_token)) { /* lws closes the connection */
        free(s);
        return NULL;
    }
    int64_t now = server_now_us();
    /* The last step that can fail: from here on the count is released by
     * session_on_closed, the one CLOSED every ESTABLISHED connection gets
     * (server_destroy's included). A refusal here is a race with another
     * loop for the key's last slot since http_confirm_upgrade (or no
     * memory): the client sees its connection closed instead of a 429. */
    if (srv->hub->iplimit) peer_client_key(srv, wsi, &s->ipkey); /* else unused */
    int counted = iplimit_conn_acquire(srv->hub->iplimit, &s->ipkey, now);
    if (counted < 0) {
        char ks[64];
        iplimit_key_str(&s->ipkey, ks, sizeof ks);
        plog(LOG_INFO, "ip-conn-limit",
             "client=%s reason=\"at the limit when established\"", ks);
        free(s->url_token);
        free(s);
        return NULL;
    }
    s->ip_counted = counted == 1;
    tb_init(&s->send_tb, srv->cfg->burst, now);
    tb_init(&s->req_tb, GENERAL_RATE, now);
    tb_init(&s->read_tb, ROOMREQ_READ_BURST, now);
    tb_init(&s->presence_tb, MEMBER_PRESENCE_BURST, now);
    s->next = srv->sessions;
    if (s->next) s->next->prev = s;
    srv->sessions = s;
    OWN_ADD(srv->nsessions, 1); /* /metrics reads it from any loop */
    __atomic_add_fetch(&srv->hub->sessions, 1, __ATOMIC_RELAXED);
    METRIC_ADD(srv, connections_total, 1);
    hello_append(s, now + srv->cfg->hello_timeout * 1000000);
    return s;
}

int session_on_peer_close(struct session *s)
{
    /* Our close went first: the peer's is the answer, so just hang up
     * (returning 0 would make lws echo a second close frame). */
    return s && s->close_sent;
}

static int inbox_push(struct session *s, const char *data, size_t len)
{
    struct inmsg *m = malloc(sizeof(*m) + len + 1);
    if (!m) return -1;
    m->next = NULL;
    m->at_us = server_now_us();
    m->len = len;
    memcpy(m->data, data, len);
    m->data[len] = 0;
    if (s->in_tail)
        s->in_tail->next = m;
    else
        s->in_head = m;
    s->in_tail = m;
    if (++s->in_count >= INBOX_MAX_MSGS && !s->rx_paused) {
        s->rx_paused = 1;
        lws_rx_flow_control(s->wsi, 0);
    }
    return 0;
}

/* Closes for bad input: the close frame goes out next, and what the client
 * still sends is ignored (closing the socket on unread input would reset
 * the connection and lose the close frame). */
static int refuse_input(struct session *s, int code, const char *why)
{
    free(s->rx);
    s->rx = NULL;
    s->rx_len = 0;
    wire_close(s, code, why, 1);
    return 0;
}

int session_on_receive(struct session *s, const void *in, size_t len)
{
    int final = lws_is_final_fragment(s->wsi);
    if (s->close_code) return 0; /* closing: input is ignored */
    if (lws_frame_is_binary(s->wsi))
        return refuse_input(s, 1003, "binary frames are not accepted");
    if (s->rx_discard || s->rx_len + len > (size_t)cfg(s)->max_frame) {
        /* The close waits for the end of the message: a client still
         * sending when the close frame arrives may never read it. */
        if (final) return refuse_input(s, 1009, "message too big");
        if (!s->rx_discard)
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, WIRE_CLOSE_GRACE_S);
        s->rx_discard = 1;
        free(s->rx);
        s->rx = NULL;
        s->rx_len = 0;
        return 0;
    }
    const char *data = in;
    if (!final || s->rx_len) {
        char *rx = realloc(s->rx, s->rx_len + len + 1);
        if (!rx) return refuse_input(s, 1011, "out of memory");
        memcpy(rx + s->rx_len, in, len);
        s->rx = rx;
        s->rx_len += len;
        if (!final) return 0;
        data = s->rx, len = s->rx_len;
    }
    METRIC_ADD(s->srv, frames_in, 1);
    int bad = !utf8_valid(data, len), oom = !bad && inbox_push(s, data, len);
    free(s->rx);
    s->rx = NULL;
    s->rx_len = 0;
    if (bad) return refuse_input(s, 1007, "invalid UTF-8");
    if (oom) return refuse_input(s, 1011, "out of memory");
    session_resume(s);
    return 0;
}

void session_sweep_hello(struct server *srv, int64_t now_us)
{
    struct session *s;
    while ((s = srv->hello_head) && s->hello_deadline_us <= now_us) {
        hello_unlink(s);
        s->hello_late = 1;
        session_resume(s);
    }
}

void session_on_closed(struct session *s)
{
    struct server *srv = s->srv;
    hello_unlink(s);
    expiry_remove(s);
    online_remove(s);
    s->closed = 1;
    s->wsi = NULL;
    member_leave_all(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    OWN_ADD(srv->nsessions, -1);
    __atomic_sub_fetch(&srv->hub->sessions, 1, __ATOMIC_RELAXED);
    if (s->ip_counted) /* exactly once: CLOSED comes once, and the bit goes */
        iplimit_conn_release(srv->hub->iplimit, &s->ipkey, server_now_us());
    s->ip_counted = 0;
    inbox_clear(s);
    wire_drop(s);
    wire_forget(s);
    plog(LOG_INFO, "disconnect", "user=%s code=%d reason=\"%s\"", who(s), s->close_code,
         s->close_code ? s->close_reason : "client closed");
    session_unref(s);
}

void session_on_db_done(struct db_req *r, void *arg)
{
    struct session *s = r->owner;
    if (r->op == DB_POST) { /* a message or presence from another loop */
        fanout_stored(arg, r, NULL);
        hub_post_free(r);
        return;
    }
    if (r->op == DB_MOD_EFFECT) { /* a kick or ban from another loop */
        moderate_apply(arg, r);
        hub_post_free(r);
        return;
    }
    if (r->op == DB_USER) { /* recorded; nobody waits for it */
        free(r);
        return;
    }
    if (r->op == DB_ROOM_FREE) { /* nothing of this loop points to it now */
        hub_room_pass(r);
        return;
    }
    if (r->op == DB_SEND || r->op == DB_EDIT || r->op == DB_DELETE ||
        r->op == DB_MARK) { /* the send window's writes: send.h */
        send_on_done(arg, r);
    } else {
        assert(s->db_busy && r == &s->dbr);
        s->db_busy = 0;
        /* A closing session is never resumed: its read is finished here,
         * and a committed moderation action still takes effect. */
        if ((s->closed || s->close_code) && r->op == DB_MOD && r->status == DB_OK)
            moderate_commit(arg, r);
        if (s->closed || s->close_code) roomreq_abandon(s);
    }
    session_resume(s);
    session_unref(s); /* may free s: touch nothing after */
}
