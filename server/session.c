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
#include <time.h>

#include "coro.h"
#include "crypto.h"
#include "db.h"
#include "hub.h"
#include "jwt.h"
#include "log.h"
#include "protocol.h"
#include "ratelimit.h"
#include "room.h"
#include "server.h"
#include "utf8.h"

#define MAX_ROOMS_PER_SESSION 1000
#define INBOX_MAX_MSGS 32  /* frames read ahead before reading pauses */
#define GENERAL_RATE 100.0 /* non-send requests per second */
#define TYPING_INTERVAL_US 2000000
#define CLOSE_GRACE_S 3  /* a closing client gets this long to take the close */
#define CLOSE_ANSWER_S 1 /* and this long to answer it once it is sent */
#define SEND_WINDOW 32   /* sends one connection may have uncommitted at once */

/* A send waiting for its commit. The coroutine goes on reading while up to
 * SEND_WINDOW of these are in flight, so one connection's messages share a
 * group commit; its acks leave in submission order (the database completes
 * in order). The request's parsed JSON moves here, so every string the
 * db_req points to lives until the completion. */
struct send_slot {
    struct db_req r;
    cJSON *json; /* owns r.room, r.text, r.client_id and ref */
    const char *ref;
    struct send_slot *next_free;
};

/* Free slots are kept per loop (srv->slot_pool): a slot goes back to the
 * loop that took it, since its completion comes back there. */
static struct send_slot *slot_get(struct server *srv)
{
    struct send_slot *sl = srv->slot_pool;
    if (sl)
        srv->slot_pool = sl->next_free;
    else if (!(sl = malloc(sizeof(*sl))))
        return NULL;
    memset(sl, 0, sizeof(*sl));
    return sl;
}

static void slot_put(struct server *srv, struct send_slot *sl)
{
    cJSON_Delete(sl->json);
    sl->json = NULL;
    buf_unref(sl->r.frame);
    sl->r.frame = NULL;
    sl->next_free = srv->slot_pool;
    srv->slot_pool = sl;
}

void session_pool_free(struct server *srv)
{
    while (srv->slot_pool) {
        struct send_slot *next = srv->slot_pool->next_free;
        free(srv->slot_pool);
        srv->slot_pool = next;
    }
}

struct inmsg {
    struct inmsg *next;
    int64_t at_us; /* arrival: rate limits judge the client's pace, not ours */
    size_t len;
    char data[]; /* NUL-terminated */
};

struct membership {
    struct room *room;
    int64_t typing_us; /* when this session last sent typing here */
    int joined;
};

struct session {
    struct coro co;  /* the session's main coroutine */
    struct coro sub; /* the database query sub-coroutine */
    struct server *srv;
    struct lws *wsi;                         /* NULL once closed */
    struct session *prev, *next;             /* srv->sessions, while open */
    struct session *hello_prev, *hello_next; /* srv->hello_*, until welcomed */
    struct session *flush_next;              /* srv->flush_head, while flush_queued */
    int64_t hello_deadline_us;
    int refs;               /* 1 for the connection, 1 per request in flight */
    unsigned closed : 1;    /* the connection is gone: never resume again */
    unsigned in_resume : 1; /* the coroutine is running */
    unsigned welcomed : 1, guest : 1, hello_late : 1, db_busy : 1, rx_paused : 1;
    unsigned hello_waiting : 1; /* on the server's hello FIFO */
    unsigned rx_discard : 1;    /* skipping the rest of an oversized message */
    unsigned close_sent : 1;    /* our close frame is out; awaiting the peer's */
    unsigned flush_queued : 1;  /* on srv->flush_head: its queue is written soon */
    int close_code;             /* set: closing once the queue is flushed */
    char close_reason[64];

    struct inmsg *in_head, *in_tail; /* frames waiting for the coroutine */
    int in_count;
    char *rx; /* reassembly of a fragmented message */
    size_t rx_len;

    struct proto_req req; /* the request being handled */
    struct db_req dbr;    /* its read query (join, history) */
    int inflight;         /* sends awaiting their commit (send_slot) */
    struct room *req_room;

    /* One allocation, sized to fit, made at welcome (user_name points into
     * it); NULL before. Sends point into it until their completion. */
    char *user_id, *user_name;
    struct buf *user_json;     /* {"id":…,"name":…}, made at welcome */
    struct jwt_claims *claims; /* token users only: guests pay nothing for it */
    char *url_token;

    struct outq out;
    struct tbucket send_tb, req_tb;
    struct membership *mem; /* rooms this connection ever joined */
    uint32_t nmem, capmem;
};

/* ---- small helpers ---- */

static const struct config *cfg(struct session *s)
{
    return s->srv->cfg;
}

/* The user id for logs: "-" before the welcome. */
static const char *who(const struct session *s)
{
    return s->user_id ? s->user_id : "-";
}

struct session *session_next(const struct session *s)
{
    return s->next;
}

/* Empties s's outbound queue, keeping the loop's gauge of queued frames. */
static void drop_queue(struct session *s)
{
    OWN_ADD(s->srv->queued, -(uint64_t)s->out.count);
    outq_clear(&s->out);
}

static void session_free(struct session *s)
{
    assert(s->refs == 0 && s->closed && !s->in_resume);
    assert(!s->db_busy && s->inflight == 0); /* each held a reference */
    proto_req_free(&s->req);
    if (s->claims) jwt_claims_free(s->claims);
    free(s->claims);
    buf_unref(s->user_json);
    free(s->user_id); /* user_name lives in the same block */
    buf_unref(s->dbr.rows);
    free(s->url_token);
    free(s->rx);
    free(s->mem);
    free(s);
}

static void session_unref(struct session *s)
{
    assert(s->refs > 0);
    if (--s->refs == 0) session_free(s);
}

/* Appends s to the server's flush list, written at the end of the current
 * event (session_flush_all): every frame this event queued for s leaves in
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

void session_push(struct session *s, struct buf *b)
{
    if (!b || s->closed || s->close_code) return;
    if (outq_push(&s->out, b, &s->srv->outq_lim)) {
        METRIC_ADD(s->srv, slow_closes, 1);
        plog(LOG_INFO, "slow-consumer", "user=%s queued=%u bytes=%zu", who(s),
             s->out.count, s->out.bytes);
        drop_queue(s);
        session_close(s, 1013, "slow consumer: reconnect and join with since", 0);
        return;
    }
    OWN_ADD(s->srv->queued, 1);
    /* Invariant: a non-empty queue is on the flush list or has a writable
     * callback pending; only the first frame needs to ask. */
    if (s->out.count == 1) flush_defer(s);
}

/* Queues a buf made for this session alone and drops the maker's reference. */
static void reply(struct session *s, struct buf *b)
{
    session_push(s, b);
    buf_unref(b);
}

static void reply_error(struct session *s, enum proto_err e, const char *msg)
{
    if (e == E_RATE_LIMITED) METRIC_ADD(s->srv, rate_limited, 1);
    reply(s, proto_error(e, msg, s->req.ref));
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

void session_close(struct session *s, int code, const char *reason, int now)
{
    if (s->closed || s->close_code) return;
    s->close_code = code;
    snprintf(s->close_reason, sizeof s->close_reason, "%s", reason);
    inbox_clear(s);
    if (now) drop_queue(s);
    /* The close frame goes out after the queue; the timeout drops a client
     * that does not read at all. */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_S);
    lws_callback_on_writable(s->wsi);
}

static struct membership *membership(struct session *s, struct room *r)
{
    for (uint32_t i = 0; i < s->nmem; i++)
        if (s->mem[i].room == r) return &s->mem[i];
    return NULL;
}

/* ---- messages this file writes ---- */

/* Starts `{"type":"<type>","room":"<room>"`. */
static struct buf *start_msg(const char *type, const char *room, size_t cap)
{
    struct buf *b = buf_new(cap);
    if (!b) return NULL;
    buf_puts(&b, "{\"type\":\"");
    buf_puts(&b, type);
    buf_puts(&b, "\",\"room\":\"");
    buf_puts(&b, room);
    buf_put(&b, "\"", 1);
    return b;
}

/* Finishes b and returns it, or NULL when a write ran out of memory. */
static struct buf *end_msg(struct buf *b, const char *ref)
{
    if (!b) return NULL;
    proto_put_ref_end(&b, ref);
    if (b->oom) {
        buf_unref(b);
        return NULL;
    }
    return b;
}

/* ---- rooms, shared by every loop (room.h: what the lock guards) ---- */

static struct room *room_find(struct server *srv, const char *name, int create)
{
    hub_lock_rooms(srv->hub);
    struct room *r = rooms_get(&srv->hub->rooms, name, create);
    hub_unlock_rooms(srv->hub);
    return r;
}

/* Sends b to this loop's members of r except `except`. The loop's own part
 * is written only by this loop, so no lock is needed to read it. */
static void room_send_local(struct server *srv, struct room *r, struct buf *b,
                            struct session *except)
{
    const struct room_part *p = &r->part[srv->index];
    for (uint32_t i = 0; i < p->n; i++)
        if (p->members[i] != except) session_push(p->members[i], b);
}

/* Sends b to every member of r on every loop except `except` (presence,
 * typing: not stored, so not ordered by the database); drops the maker's
 * reference. */
static void room_send(struct session *s, struct room *r, struct buf *b)
{
    if (!b) return;
    room_send_local(s->srv, r, b, s);
    hub_post(s->srv->hub, s->srv->index, r, b);
    buf_unref(b);
}

static void send_presence(struct session *s, struct room *r, const char *event)
{
    struct buf *b = start_msg("presence", r->name, 128);
    buf_puts(&b, ",\"event\":\"");
    buf_puts(&b, event);
    buf_puts(&b, "\",\"user\":");
    buf_put(&b, BUF_PAYLOAD(s->user_json), s->user_json->len);
    room_send(s, r, end_msg(b, NULL));
}

/* Lists every loop's members: other loops' sessions stay in their parts,
 * user_json intact, until they remove themselves under the lock. */
static void put_members(struct server *srv, struct buf **b, struct room *r)
{
    int n = 0;
    buf_puts(b, ",\"members\":[");
    hub_lock_rooms(srv->hub);
    for (int l = 0; l < srv->hub->nloops; l++)
        for (uint32_t i = 0; i < r->part[l].n; i++) {
            if (n++) buf_put(b, ",", 1);
            struct buf *u = r->part[l].members[i]->user_json;
            buf_put(b, BUF_PAYLOAD(u), u->len);
        }
    hub_unlock_rooms(srv->hub);
    buf_put(b, "]", 1);
}

/* ---- hello ---- */

/* Writes the resume token for guest id `id` into out (>= 100 bytes). */
static void resume_token(struct session *s, const char *id, char *out)
{
    unsigned char mac[CRYPTO_HMAC_LEN];
    crypto_hmac_sha256(s->srv->guest_key, sizeof s->srv->guest_key, id, strlen(id), mac);
    size_t n = strlen(id);
    memcpy(out, id, n);
    out[n] = '.';
    crypto_b64url_encode(mac, 16, out + n + 1); /* 128 bits are plenty */
}

/* Writes into id (>= 19 bytes) the guest id inside a valid resume token,
 * or a fresh one. Returns 0, or -1 when no random id could be made. */
static int guest_id(struct session *s, const char *resume, char *id)
{
    char want[128];
    const char *dot = resume ? strchr(resume, '.') : NULL;
    if (dot && dot - resume == 18 && !strncmp(resume, "g_", 2) && strlen(resume) < 64) {
        memcpy(id, resume, 18);
        id[18] = 0;
        resume_token(s, id, want);
        if (strlen(want) == strlen(resume) && crypto_equal(want, resume, strlen(want)))
            return 0;
    }
    strcpy(id, "g_");
    return crypto_random_hex(id + 2, 8);
}

/* Sets the user's id and name, copied into one block that fits them.
 * Returns 0, or -1 (out of memory; nothing changed). */
static int set_user(struct session *s, const char *id, const char *name)
{
    size_t a = strlen(id) + 1, b = strlen(name) + 1;
    char *m = malloc(a + b);
    if (!m) return -1;
    memcpy(m, id, a);
    memcpy(m + a, name, b);
    free(s->user_id);
    s->user_id = m;
    s->user_name = m + a;
    return 0;
}

static void unauthorized(struct session *s, const char *why)
{
    reply_error(s, E_UNAUTHORIZED, why);
    plog(LOG_INFO, "unauthorized", "reason=\"%s\"", why);
    session_close(s, 1008, "unauthorized", 0);
}

/* Authenticates a hello. Returns 0 when the user is set, -1 after replying
 * an error (and closing, for unauthorized). */
static int hello_auth(struct session *s)
{
    const char *token = s->req.token ? s->req.token : s->url_token, *why;
    if (token) {
        const char *secret = cfg(s)->jwt_secret;
        struct jwt_claims c;
        memset(&c, 0, sizeof c);
        if (jwt_verify(token, secret, secret ? strlen(secret) : 0, (int64_t)time(NULL),
                       &c, &why)) {
            jwt_claims_free(&c);
            return unauthorized(s, why), -1;
        }
        if (!(s->claims = malloc(sizeof(c)))) {
            jwt_claims_free(&c);
            return reply_error(s, E_INTERNAL, "out of memory"), -1;
        }
        *s->claims = c; /* the rooms list moves with it */
        if (set_user(s, c.sub, c.name))
            return reply_error(s, E_INTERNAL, "out of memory"), -1;
        return 0;
    }
    if (!s->req.name)
        return reply_error(s, E_BAD_REQUEST, "hello needs a name or a token"), -1;
    if (cfg(s)->no_guests)
        return unauthorized(s, "guests are not allowed on this server"), -1;
    enum proto_err e = proto_check_name(s->req.name, &why);
    if (e) return reply_error(s, e, why), -1;
    char id[32];
    if (guest_id(s, s->req.resume, id))
        return reply_error(s, E_INTERNAL, "cannot make an id"), -1;
    if (set_user(s, id, s->req.name))
        return reply_error(s, E_INTERNAL, "out of memory"), -1;
    s->guest = 1;
    return 0;
}

static void session_hello(struct session *s)
{
    if (s->req.type != REQ_HELLO) return reply_error(s, E_NEED_HELLO, "say hello first");
    if (hello_auth(s)) return;
    struct buf *u = buf_new(96), *b = buf_new(320);
    buf_puts(&u, "{\"id\":");
    buf_put_jstrz(&u, s->user_id);
    buf_puts(&u, ",\"name\":");
    buf_put_jstrz(&u, s->user_name);
    buf_put(&u, "}", 1);
    s->user_json = u;
    buf_puts(&b, "{\"type\":\"welcome\",\"user\":");
    buf_put(&b, BUF_PAYLOAD(u), u->len - 1);
    buf_puts(&b, s->guest ? ",\"guest\":true}" : ",\"guest\":false}");
    char limits[200], tok[128];
    snprintf(limits, sizeof limits,
             ",\"server\":\"parley/%s\",\"limits\":{\"max_text\":%ld,\"rate_per_s\":%g,"
             "\"burst\":%g,\"history_page\":%d}",
             PARLEY_VERSION, cfg(s)->max_text, cfg(s)->rate, cfg(s)->burst,
             PROTO_HISTORY_MAX);
    buf_puts(&b, limits);
    if (s->guest) {
        resume_token(s, s->user_id, tok);
        buf_puts(&b, ",\"resume\":");
        buf_put_jstrz(&b, tok);
    }
    if (u->oom || b->oom) {
        buf_unref(b);
        return reply_error(s, E_INTERNAL, "out of memory");
    }
    s->welcomed = 1;
    free(s->url_token); /* only hello reads it: not kept for the connection's life */
    s->url_token = NULL;
    reply(s, end_msg(b, s->req.ref));
    plog(LOG_INFO, "hello", "user=%s guest=%d", s->user_id, s->guest);
}

/* ---- requests ---- */

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
    int is_send = !e && s->welcomed && s->req.type == REQ_SEND;
    int ok = is_send ? tb_take(&s->send_tb, cfg(s)->rate, cfg(s)->burst, now)
                     : tb_take(&s->req_tb, GENERAL_RATE, GENERAL_RATE, now);
    if (!ok && !e)
        e = E_RATE_LIMITED, msg = is_send ? "sending too fast" : "too many requests";
    if (!e && !s->welcomed && s->req.type != REQ_HELLO)
        e = E_NEED_HELLO, msg = "say hello first";
    if (!e && s->welcomed && s->req.type == REQ_HELLO)
        e = E_BAD_REQUEST, msg = "already said hello";
    if (e) reply_error(s, e, msg);
    return e;
}

static int allowed_room(struct session *s, const char *room)
{
    if (s->guest || jwt_allows_room(s->claims, room)) return 1;
    reply_error(s, E_FORBIDDEN, "your token does not allow this room");
    return 0;
}

/* Checks a request that needs the database. Returns 2 for a valid send, 1
 * when a read is ready in s->dbr, 0 for a request handled without the
 * database, -1 after an error reply. */
static int session_prepare_query(struct session *s)
{
    struct proto_req *q = &s->req;
    struct db_req *r = &s->dbr;
    if (q->type != REQ_JOIN && q->type != REQ_SEND && q->type != REQ_HISTORY) return 0;
    if (!allowed_room(s, q->room)) return -1;
    s->req_room = room_find(s->srv, q->room, q->type == REQ_JOIN);
    struct membership *m = s->req_room ? membership(s, s->req_room) : NULL;
    if (q->type == REQ_SEND && !(m && m->joined))
        return reply_error(s, E_NOT_MEMBER, "join the room first"), -1;
    if (q->type == REQ_JOIN && !s->req_room)
        return reply_error(s, E_INTERNAL, "out of memory"), -1;
    if (q->type == REQ_JOIN && !m && s->nmem >= MAX_ROOMS_PER_SESSION)
        return reply_error(s, E_BAD_REQUEST, "too many rooms on one connection"), -1;
    if (q->type == REQ_SEND) return 2;
    buf_unref(r->rows);
    memset(r, 0, sizeof(*r));
    r->owner = s;
    r->loop = s->srv->index;
    r->room = q->room;
    r->op = DB_READ;
    r->before = q->type == REQ_HISTORY ? q->before : -1;
    r->after = q->type == REQ_HISTORY ? q->after : q->since;
    r->limit = q->type == REQ_HISTORY ? q->limit
               : q->since >= 0        ? PROTO_SINCE_MAX
                                      : PROTO_HISTORY_DEFAULT;
    return 1;
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

static int add_membership(struct session *s, struct room *r)
{
    struct membership *m = membership(s, r);
    if (m && m->joined) return 0;
    if (!m && s->nmem == s->capmem) {
        uint32_t cap = s->capmem ? s->capmem * 2 : 4;
        struct membership *nm = realloc(s->mem, cap * sizeof(*nm));
        if (!nm) return -1;
        s->mem = nm;
        s->capmem = cap;
    }
    hub_lock_rooms(s->srv->hub);
    int oom = room_add(r, s->srv->index, s);
    hub_unlock_rooms(s->srv->hub);
    if (oom) return -1;
    if (!m) {
        m = &s->mem[s->nmem++];
        m->room = r;
        m->typing_us = 0;
    }
    m->joined = 1;
    send_presence(s, r, "join");
    return 0;
}

static void finish_join(struct session *s)
{
    struct room *r = s->req_room;
    struct db_req *q = &s->dbr;
    hub_lock_rooms(s->srv->hub);
    if (q->last_id > r->last_id) r->last_id = q->last_id;
    hub_unlock_rooms(s->srv->hub);
    if (add_membership(s, r)) return reply_error(s, E_INTERNAL, "out of memory");
    struct buf *b = start_msg("joined", r->name, 256 + q->rows->len);
    put_members(s->srv, &b, r);
    buf_puts(&b, ",\"messages\":[");
    buf_put(&b, BUF_PAYLOAD(q->rows), q->rows->len);
    buf_puts(&b, s->req.since >= 0 && q->more ? "],\"complete\":false"
                                              : "],\"complete\":true");
    reply(s, end_msg(b, s->req.ref));
}

static void finish_history(struct session *s)
{
    struct buf *b = start_msg("history", s->req.room, 64 + s->dbr.rows->len);
    buf_puts(&b, ",\"messages\":[");
    buf_put(&b, BUF_PAYLOAD(s->dbr.rows), s->dbr.rows->len);
    buf_puts(&b, s->dbr.more ? "],\"has_more\":true" : "],\"has_more\":false");
    reply(s, end_msg(b, s->req.ref));
}

/* Answers a committed send: ack, or the error that refused it. */
static void send_ack(struct session *s, const struct db_req *r, const char *ref)
{
    if (r->status != DB_OK) {
        /* reply_error() takes the ref from s->req, which may be a read the
         * coroutine is still waiting on: lend it this send's ref. */
        const char *current = s->req.ref;
        s->req.ref = ref;
        reply_error(s, r->status == DB_BUSY ? E_OVERLOADED : E_INTERNAL,
                    r->status == DB_BUSY
                        ? "the server is busy; retry later"
                        : "database error; retry with the same client_id");
        s->req.ref = current;
        return;
    }
    if (log_enabled(LOG_DEBUG)) /* message text is logged at debug only */
        plog(LOG_DEBUG, "send", "user=%s room=%s id=%lld dup=%d text=\"%.200s\"",
             s->user_id, r->room, (long long)r->id, r->duplicate, r->text);
    struct buf *b = start_msg("ack", r->room, 128);
    buf_puts(&b, ",\"client_id\":");
    buf_put_jstrz(&b, r->client_id);
    buf_puts(&b, ",\"id\":");
    buf_put_i64(&b, r->id);
    buf_puts(&b, ",\"ts\":");
    buf_put_i64(&b, r->ts);
    reply(s, end_msg(b, ref));
}

/* Moves the current send into a slot and queues it. Replies overloaded
 * when the database queue is full. */
static void session_submit_send(struct session *s)
{
    struct proto_req *q = &s->req;
    struct send_slot *sl = slot_get(s->srv);
    if (!sl) return reply_error(s, E_INTERNAL, "out of memory");
    struct db_req *r = &sl->r;
    r->op = DB_SEND;
    r->owner = s;
    r->loop = s->srv->index;
    r->room = q->room;
    r->user_id = s->user_id;
    r->user_name = s->user_name;
    r->client_id = q->client_id;
    r->text = q->text;
    r->text_len = q->text_len;
    if (db_submit(s->srv->db, r)) {
        reply_error(s, E_OVERLOADED, "the server is busy; retry later");
        return slot_put(s->srv, sl);
    }
    sl->json = q->json; /* the strings above now belong to the slot */
    sl->ref = q->ref;
    memset(q, 0, sizeof(*q));
    s->refs++;
    s->inflight++;
}

static void session_finish_query(struct session *s)
{
    struct db_req *q = &s->dbr;
    if (q->status != DB_OK)
        reply_error(s, q->status == DB_BUSY ? E_OVERLOADED : E_INTERNAL,
                    q->status == DB_BUSY
                        ? "the server is busy; retry later"
                        : "database error; retry with the same client_id");
    else if (s->req.type == REQ_JOIN)
        finish_join(s);
    else
        finish_history(s);
    buf_unref(q->rows);
    q->rows = NULL;
}

/* Takes s out of r's member list (on this loop's part). */
static void leave_room(struct session *s, struct room *r)
{
    hub_lock_rooms(s->srv->hub);
    room_remove(r, s->srv->index, s);
    hub_unlock_rooms(s->srv->hub);
}

static void do_leave(struct session *s)
{
    struct room *r = room_find(s->srv, s->req.room, 0);
    struct membership *m = r ? membership(s, r) : NULL;
    if (m && m->joined) {
        m->joined = 0;
        leave_room(s, r);
        send_presence(s, r, "leave");
    }
    reply(s, end_msg(start_msg("left", s->req.room, 64), s->req.ref));
}

static void do_typing(struct session *s)
{
    struct room *r = room_find(s->srv, s->req.room, 0);
    struct membership *m = r ? membership(s, r) : NULL;
    int64_t now = server_now_us();
    if (!m || !m->joined) return reply_error(s, E_NOT_MEMBER, "join the room first");
    if (m->typing_us && now - m->typing_us < TYPING_INTERVAL_US)
        return; /* dropped silently, per the protocol */
    m->typing_us = now;
    struct buf *b = start_msg("typing", r->name, 128);
    buf_puts(&b, ",\"user\":");
    buf_put(&b, BUF_PAYLOAD(s->user_json), s->user_json->len);
    room_send(s, r, end_msg(b, NULL));
}

struct rooms_walk {
    struct session *s;
    struct buf *b;
    int n;
};

static void put_room(struct rooms_walk *w, struct room *r)
{
    if (w->n++) buf_put(&w->b, ",", 1);
    buf_puts(&w->b, "{\"name\":\"");
    buf_puts(&w->b, r->name);
    buf_puts(&w->b, "\",\"members\":");
    buf_put_i64(&w->b, r->nmembers);
    buf_puts(&w->b, ",\"last_id\":");
    buf_put_i64(&w->b, r->last_id);
    buf_put(&w->b, "}", 1);
}

static void put_room_if_online(struct room *r, void *arg)
{
    if (r->nmembers) put_room(arg, r);
}

static void do_rooms(struct session *s)
{
    struct rooms_walk w = {s, buf_new(256), 0};
    buf_puts(&w.b, "{\"type\":\"rooms\",\"rooms\":[");
    hub_lock_rooms(s->srv->hub); /* counts and last ids of every loop */
    rooms_each(&s->srv->hub->rooms, put_room_if_online, &w);
    for (uint32_t i = 0; i < s->nmem; i++)
        if (!s->mem[i].room->nmembers) put_room(&w, s->mem[i].room);
    hub_unlock_rooms(s->srv->hub);
    buf_put(&w.b, "]", 1);
    reply(s, end_msg(w.b, s->req.ref));
}

static void session_dispatch(struct session *s)
{
    switch (s->req.type) {
    case REQ_LEAVE:
        do_leave(s);
        break;
    case REQ_TYPING:
        do_typing(s);
        break;
    case REQ_ROOMS:
        do_rooms(s);
        break;
    case REQ_PING: {
        struct buf *b = buf_new(32);
        buf_puts(&b, "{\"type\":\"pong\"");
        reply(s, end_msg(b, s->req.ref));
        break;
    }
    default:
        reply_error(s, E_INTERNAL, "unhandled request");
        break;
    }
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
            session_close(s, 1008, "no hello in time", 0);
            CORO_EXIT(&s->co);
        }
        if (session_read_request(s) == PROTO_OK) session_hello(s);
        if (s->close_code) CORO_EXIT(&s->co);
    }
    hello_unlink(s);
    for (;;) {
        CORO_AWAIT(&s->co, s->in_head);
        if (session_read_request(s) != PROTO_OK) continue;
        int q = session_prepare_query(s);
        if (q == 2) {
            CORO_AWAIT(&s->co, s->inflight < SEND_WINDOW);
            session_submit_send(s);
        } else if (q == 1) {
            CORO_CALL(&s->co, &s->sub, session_query(s));
            session_finish_query(s);
        } else if (q == 0)
            session_dispatch(s);
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
    if (s->closed || s->close_code || s->in_resume) return;
    s->in_resume = 1;
    int rc = session_run(s);
    s->in_resume = 0;
    if (rc == CORO_DONE) session_close(s, 1000, "", 0);
}

/* ---- events from libwebsockets and the database ---- */

static char *url_token(struct lws *wsi)
{
    char v[JWT_MAX_LEN + 8];
    /* Copies "token=VALUE" into v and returns a pointer to VALUE. */
    const char *tok = lws_get_urlarg_by_name(wsi, "token=", v, sizeof v);
    return tok && *tok ? strdup(tok) : NULL;
}

struct session *session_open(struct server *srv, struct lws *wsi)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->srv = srv;
    s->wsi = wsi;
    s->refs = 1;
    s->url_token = url_token(wsi);
    int64_t now = server_now_us();
    tb_init(&s->send_tb, srv->cfg->burst, now);
    tb_init(&s->req_tb, GENERAL_RATE, now);
    s->next = srv->sessions;
    if (s->next) s->next->prev = s;
    srv->sessions = s;
    OWN_ADD(srv->nsessions, 1); /* /metrics reads it from any loop */
    __atomic_add_fetch(&srv->hub->sessions, 1, __ATOMIC_RELAXED);
    METRIC_ADD(srv, connections_total, 1);
    hello_append(s, now + srv->cfg->hello_timeout * 1000000);
    return s;
}

/* Writes our close frame as raw bytes, like every other frame, and waits
 * for the client's answer (session_on_peer_close) or the close timeout set
 * by session_close(). Owning the close handshake keeps it the same under
 * every event loop: the frame goes out before the socket is closed. */
static int send_close(struct session *s)
{
    unsigned char frame[LWS_PRE + 2 + 2 + sizeof s->close_reason], *f = frame + LWS_PRE;
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
    session_close(s, code, why, 1);
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
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_S);
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

/* Frames for one connection are gathered here and go out in one write. One
 * per loop thread. */
static __thread unsigned char wire[LWS_PRE + SESSION_WRITE_MAX];

/* Sends the oldest queued frames, as many as fit in one write. Returns -1
 * when the socket failed. Whatever the kernel does not take, lws keeps and
 * sends first when the socket drains (lws_partial_buffered). */
static int write_queue(struct session *s)
{
    struct buf *b = outq_peek(&s->out);
    unsigned frames = 1;
    size_t n;
    int rc;
    assert(b);
    if ((n = outq_gather(&s->out, wire + LWS_PRE, SESSION_WRITE_MAX, &frames))) {
        /* Whole frames, headers included: RAW sends the bytes as they are,
         * with TLS too (no extension is ever negotiated). */
        rc = lws_write(s->wsi, wire + LWS_PRE, n, LWS_WRITE_RAW) < (int)n;
    } else {
        /* A frame bigger than the batch goes alone, from a copy: the buf
         * may be shared with other loops, so its headroom is not ours to
         * write the header into. Rare (a join reply of long messages). */
        size_t cap = (size_t)b->len + 10;
        unsigned char *big = malloc(LWS_PRE + cap);
        unsigned one;
        frames = 1;
        n = big ? outq_gather(&s->out, big + LWS_PRE, cap, &one) : 0;
        rc = !n || lws_write(s->wsi, big + LWS_PRE, n, LWS_WRITE_RAW) < (int)n;
        free(big);
        if (!n) outq_pop(&s->out); /* out of memory: the connection closes */
    }
    OWN_ADD(s->srv->queued, -(uint64_t)frames); /* off the queue either way */
    if (rc) return -1;
    METRIC_ADD(s->srv, frames_out, frames);
    METRIC_ADD(s->srv, bytes_out, n);
    return 0;
}

int session_on_writeable(struct session *s)
{
    if (!outq_peek(&s->out)) return s->close_code && !s->close_sent ? send_close(s) : 0;
    if (write_queue(s)) return -1;
    if (s->out.count || (s->close_code && !s->close_sent))
        lws_callback_on_writable(s->wsi);
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
        lws_callback_on_writable(s->wsi);
        return;
    }
    if (write_queue(s)) {
        /* The socket is dead: lws closes it on its next turn (not here,
         * inside another connection's event). */
        drop_queue(s);
        s->close_code = 1006;
        s->close_sent = 1;
        snprintf(s->close_reason, sizeof s->close_reason, "write failed");
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    if (s->out.count) lws_callback_on_writable(s->wsi);
}

void session_flush_all(struct server *srv)
{
    struct session *s;
    while ((s = srv->flush_head)) {
        if (!(srv->flush_head = s->flush_next)) srv->flush_tail = NULL;
        s->flush_queued = 0;
        flush_one(s);
        session_unref(s); /* may free s */
    }
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
    s->closed = 1;
    s->wsi = NULL;
    for (uint32_t i = 0; i < s->nmem; i++)
        if (s->mem[i].joined) {
            s->mem[i].joined = 0;
            leave_room(s, s->mem[i].room);
            if (!srv->stopping) send_presence(s, s->mem[i].room, "leave");
        }
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    OWN_ADD(srv->nsessions, -1);
    __atomic_sub_fetch(&srv->hub->sessions, 1, __ATOMIC_RELAXED);
    inbox_clear(s);
    drop_queue(s);
    plog(LOG_INFO, "disconnect", "user=%s code=%d reason=\"%s\"", who(s), s->close_code,
         s->close_code ? s->close_reason : "client closed");
    session_unref(s);
}

/* Delivers a stored message to this loop's members of its room. The frame
 * was made once, after the commit, and the room found once, by the router
 * (hub.c), which queues them on every loop in commit order: no lookup, no
 * lock here. Runs whether or not the sender is still there. */
static void broadcast(struct server *srv, struct db_req *r)
{
    if (r->frame && r->dest) room_send_local(srv, r->dest, r->frame, NULL);
}

void session_on_db_done(struct db_req *r, void *arg)
{
    struct session *s = r->owner;
    if (r->op == DB_POST) { /* a message or presence from another loop */
        broadcast(arg, r);
        hub_post_free(r);
        return;
    }
    if (r->op == DB_SEND) {
        struct send_slot *sl = (struct send_slot *)r; /* r is its first member */
        broadcast(arg, r);
        if (!s->closed) send_ack(s, r, sl->ref);
        slot_put(s->srv, sl);
        assert(s->inflight > 0);
        s->inflight--;
    } else {
        assert(s->db_busy && r == &s->dbr);
        s->db_busy = 0;
        if (s->closed) {
            buf_unref(r->rows);
            r->rows = NULL;
        }
    }
    session_resume(s);
    session_unref(s); /* may free s: touch nothing after */
}
