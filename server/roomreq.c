/* roomreq.c -- the room requests: join, leave, history, typing, rooms;
 * membership, presence, and delivery of stored messages to this loop's
 * members. Rooms are shared by every loop (room.h says what the lock
 * guards). */
#include "roomreq.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "hub.h"
#include "jwt.h"
#include "room.h"
#include "session_impl.h"
#include "wire.h"

#define MAX_ROOMS_PER_SESSION 1000
#define TYPING_INTERVAL_US 2000000

static struct membership *membership(struct session *s, struct room *r)
{
    for (uint32_t i = 0; i < s->nmem; i++)
        if (s->mem[i].room == r) return &s->mem[i];
    return NULL;
}

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
        if (p->members[i] != except) wire_push(p->members[i], b);
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
    struct buf *b = proto_msg_start("presence", r->name, 128);
    buf_puts(&b, ",\"event\":\"");
    buf_puts(&b, event);
    buf_puts(&b, "\",\"user\":");
    buf_put(&b, BUF_PAYLOAD(s->user_json), s->user_json->len);
    room_send(s, r, proto_msg_end(b, NULL));
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

static int allowed_room(struct session *s, const char *room)
{
    const char *why;
    if (access_room_allowed(s, room, &why)) return 1;
    wire_error(s, E_FORBIDDEN, why);
    return 0;
}

/* Checks a request that needs the database. Returns 2 for a valid send, 1
 * when a read is ready in s->dbr, 0 for a request handled without the
 * database, -1 after an error reply. */
enum roomreq_kind roomreq_prepare(struct session *s)
{
    struct proto_req *q = &s->req;
    struct db_req *r = &s->dbr;
    if (q->type != REQ_JOIN && q->type != REQ_SEND && q->type != REQ_HISTORY) return 0;
    if (!allowed_room(s, q->room)) return -1;
    s->req_room = room_find(s->srv, q->room, q->type == REQ_JOIN);
    struct membership *m = s->req_room ? membership(s, s->req_room) : NULL;
    if (q->type == REQ_SEND && !(m && m->joined))
        return wire_error(s, E_NOT_MEMBER, "join the room first"), -1;
    if (q->type == REQ_JOIN && !s->req_room)
        return wire_error(s, E_INTERNAL, "out of memory"), -1;
    if (q->type == REQ_JOIN && !m && s->nmem >= MAX_ROOMS_PER_SESSION)
        return wire_error(s, E_BAD_REQUEST, "too many rooms on one connection"), -1;
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
    if (add_membership(s, r)) return wire_error(s, E_INTERNAL, "out of memory");
    struct buf *b = proto_msg_start("joined", r->name, 256 + q->rows->len);
    put_members(s->srv, &b, r);
    buf_puts(&b, ",\"messages\":[");
    buf_put(&b, BUF_PAYLOAD(q->rows), q->rows->len);
    buf_puts(&b, s->req.since >= 0 && q->more ? "],\"complete\":false"
                                              : "],\"complete\":true");
    wire_reply(s, proto_msg_end(b, s->req.ref));
}

static void finish_history(struct session *s)
{
    struct buf *b = proto_msg_start("history", s->req.room, 64 + s->dbr.rows->len);
    buf_puts(&b, ",\"messages\":[");
    buf_put(&b, BUF_PAYLOAD(s->dbr.rows), s->dbr.rows->len);
    buf_puts(&b, s->dbr.more ? "],\"has_more\":true" : "],\"has_more\":false");
    wire_reply(s, proto_msg_end(b, s->req.ref));
}

void roomreq_finish(struct session *s)
{
    struct db_req *q = &s->dbr;
    if (q->status != DB_OK)
        wire_error(s, q->status == DB_BUSY ? E_OVERLOADED : E_INTERNAL,
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
    wire_reply(s, proto_msg_end(proto_msg_start("left", s->req.room, 64), s->req.ref));
}

static void do_typing(struct session *s)
{
    struct room *r = room_find(s->srv, s->req.room, 0);
    struct membership *m = r ? membership(s, r) : NULL;
    int64_t now = server_now_us();
    if (!m || !m->joined) return wire_error(s, E_NOT_MEMBER, "join the room first");
    if (m->typing_us && now - m->typing_us < TYPING_INTERVAL_US)
        return; /* dropped silently, per the protocol */
    m->typing_us = now;
    struct buf *b = proto_msg_start("typing", r->name, 128);
    buf_puts(&b, ",\"user\":");
    buf_put(&b, BUF_PAYLOAD(s->user_json), s->user_json->len);
    room_send(s, r, proto_msg_end(b, NULL));
}

struct rooms_walk {
    struct session *s;
    struct buf *b;
    int n;
};

static void put_room(struct rooms_walk *w, struct room *r)
{
    if (!access_room_allowed(w->s, r->name, NULL)) return; /* never list a refused room */
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
    wire_reply(s, proto_msg_end(w.b, s->req.ref));
}

/* Delivers a stored message to this loop's members of its room. The frame
 * was made once, after the commit, and the room found once, by the router
 * (hub.c), which queues them on every loop in commit order: no lookup, no
 * lock here. Runs whether or not the sender is still there. */
void roomreq_deliver(struct server *srv, struct db_req *r)
{
    if (r->frame && r->dest) room_send_local(srv, r->dest, r->frame, NULL);
}

void roomreq_dispatch(struct session *s)
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
        wire_reply(s, proto_msg_end(b, s->req.ref));
        break;
    }
    default:
        wire_error(s, E_INTERNAL, "unhandled request");
        break;
    }
}

void roomreq_leave_all(struct session *s)
{
    for (uint32_t i = 0; i < s->nmem; i++)
        if (s->mem[i].joined) {
            s->mem[i].joined = 0;
            leave_room(s, s->mem[i].room);
            if (!s->srv->stopping) send_presence(s, s->mem[i].room, "leave");
        }
}
