/* roomreq.c -- the room requests: join, leave, history, typing, rooms;
 * membership, presence, and delivery of stored messages to this loop's
 * members. Rooms are shared by every loop (room.h says what the lock
 * guards). */
#include "roomreq.h"

#include "cluster.h"
#include "remote.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "dm.h"
#include "fanout.h"
#include "hub.h"
#include "jwt.h"
#include "member.h"
#include "moderate.h"
#include "room.h"
#include "roomlist.h"
#include "search.h"
#include "session_impl.h"
#include "wire.h"

#define TYPING_INTERVAL_MS 2000
/* Every read costs at least this much of the read budget (roomreq.h). */
#define READ_COST_MIN 2048.0

/* Takes a reference to every member's user JSON, every loop's: under the
 * rooms lock only for the copy of pointers, so a crowded room's list is
 * written outside it. Returns the count (*out malloc'd, or `stack` when it
 * fits), or -1 out of memory. */
static int member_refs(struct server *srv, struct room *r, struct buf **stack, int nstack,
                       struct buf ***out)
{
    struct buf **u = stack;
    int cap = nstack, n = 0;
    hub_lock_rooms(srv->hub);
    while ((int)r->nmembers > cap) { /* allocate outside the lock, then look again */
        cap = (int)r->nmembers;
        hub_unlock_rooms(srv->hub);
        if (u != stack) free(u);
        if (!(u = malloc((size_t)cap * sizeof(*u)))) return -1;
        hub_lock_rooms(srv->hub);
    }
    for (int l = 0; l < srv->hub->nloops; l++)
        for (uint32_t i = 0; i < r->part[l].n; i++)
            u[n++] = buf_ref(r->part[l].members[i]->user_json);
    hub_unlock_rooms(srv->hub);
    *out = u;
    return n;
}

/* Appends the users u[0..n) to the list, dropping the references. */
static void put_users(struct buf **b, struct buf **u, int n, int *first)
{
    for (int i = 0; i < n; i++, *first = 0) {
        if (!*first) buf_put(b, ",", 1);
        buf_put(b, BUF_PAYLOAD(u[i]), u[i]->len);
        buf_unref(u[i]);
    }
}

/* Writes `,"members":[…]`: everyone in the room on every loop, and on the
 * cluster's other nodes. */
static void put_members(struct server *srv, struct buf **b, struct room *r)
{
    struct buf *stack[64], *rstack[64], **u = stack, **ru = rstack;
    int n = member_refs(srv, r, stack, 64, &u), first = 1, rn = 0;
    struct remote *rm = cluster_remote(srv->hub->cluster);
    if (n >= 0 && rm && (rn = remote_users(rm, r->name, rstack, 64, &ru)) < 0) {
        for (int i = 0; i < n; i++)
            buf_unref(u[i]);
        if (u != stack) free(u);
        n = -1;
    }
    if (n < 0) {
        if (*b) (*b)->oom = 1;
        return;
    }
    buf_puts(b, ",\"members\":[");
    put_users(b, u, n, &first);
    put_users(b, ru, rn, &first);
    buf_put(b, "]", 1);
    if (u != stack) free(u);
    if (ru != rstack) free(ru);
}

/* The room a DM-room request names is checked by the database (dm.h). */
static int allowed_room(struct session *s, const char *room)
{
    const char *why;
    if (access_room_allowed(s, room, &why)) return 1;
    wire_error(s, E_FORBIDDEN, why);
    return 0;
}

int roomreq_read_budget(struct session *s)
{
    int room = (size_t)s->out.bytes + s->out.held <= s->srv->outq_lim.max_bytes / 2;
    if (room &&
        tb_ready(&s->read_tb, ROOMREQ_READ_RATE, ROOMREQ_READ_BURST, server_now_us()))
        return 1;
    wire_error(s, E_RATE_LIMITED, "reading too fast; retry in a moment");
    return 0;
}

void roomreq_read_spent(struct session *s, size_t bytes)
{
    tb_spend(&s->read_tb, bytes > READ_COST_MIN ? (double)bytes : READ_COST_MIN);
}

void roomreq_reset_dbr(struct session *s)
{
    struct db_req *r = &s->dbr;
    buf_unref(r->rows);
    buf_unref(r->updates);
    buf_unref(r->peer);
    search_abandon(s);
    roomlist_abandon(s);
    memset(r, 0, sizeof(*r));
    r->owner = s;
    r->loop = s->srv->index;
    r->user_id = s->user_id; /* a DM room's reads check it (db.h) */
}

/* Prepares s->dbr for a join (or dm) or history read of s->req. */
static void prepare_read(struct session *s)
{
    struct proto_req *q = &s->req;
    struct db_req *r = &s->dbr;
    roomreq_reset_dbr(s);
    r->room = q->room;
    r->op = DB_READ;
    r->before = q->type == REQ_HISTORY ? q->before : -1;
    r->after = q->type == REQ_HISTORY ? q->after : -1;
    r->since = q->type == REQ_JOIN ? q->since : -1;
    r->limit = q->type == REQ_HISTORY ? q->limit
               : q->since >= 0        ? PROTO_SINCE_MAX
                                      : PROTO_HISTORY_DEFAULT;
    r->mark = q->type != REQ_HISTORY; /* a join (or dm) answers with `read` */
}

int roomreq_join_ok(struct session *s)
{
    struct membership *m = member_find(s, s->req.room);
    if (!(m && m->joined) && s->njoined >= MEMBER_MAX_JOINED)
        return wire_error(s, E_BAD_REQUEST, "too many rooms on one connection"), 0;
    return roomreq_read_budget(s);
}

int roomreq_join_read(struct session *s)
{
    if (!(s->req_room = hub_room_hold(s->srv->hub, s->req.room, 1)))
        return wire_error(s, E_INTERNAL, "out of memory"), -1;
    prepare_read(s);
    return 0;
}

/* A request on a DM room from a connection that has not joined it: a send
 * goes to the database, which checks the pair; a typing asks it whether
 * this user is one of the pair (not_member) or not (forbidden). */
static enum roomreq_kind unjoined_dm(struct session *s)
{
    if (s->req.type == REQ_SEND) return ROOMREQ_SEND;
    if (!roomreq_read_budget(s)) return ROOMREQ_ANSWERED;
    prepare_read(s);
    s->dbr.check = 1;
    return ROOMREQ_READ;
}

/* Limits are checked before anything is made: a refused join creates no
 * room. A join holds its room (s->req_room) until roomreq_finish, so the
 * room stays in memory, and receives every message, while it is read. */
enum roomreq_kind roomreq_prepare(struct session *s)
{
    struct proto_req *q = &s->req;
    int change = q->type == REQ_EDIT || q->type == REQ_DELETE || q->type == REQ_READ;
    if (proto_is_moderation(q->type)) return moderate_prepare(s);
    if (!moderate_allows(s, q->room)) return ROOMREQ_ANSWERED;
    if (q->type == REQ_DM) return dm_prepare(s);
    if (q->type == REQ_ROOMS) return roomlist_prepare(s);
    if (q->type == REQ_SEARCH) return search_prepare(s);
    if (q->type == REQ_TYPING) {
        struct membership *m = member_find(s, q->room);
        int dm = proto_room_is_dm(q->room) && !(m && m->joined);
        return dm ? unjoined_dm(s) : ROOMREQ_LOCAL;
    }
    if (q->type != REQ_JOIN && q->type != REQ_SEND && q->type != REQ_HISTORY && !change)
        return ROOMREQ_LOCAL;
    /* An admin moderates every room, whatever its rooms claim. */
    int moderation = q->type == REQ_DELETE && jwt_moderates(s->claims, q->room);
    if (!moderation && !allowed_room(s, q->room)) return ROOMREQ_ANSWERED;
    /* The database judges author and message, and a DM room's pair. */
    if (change) return ROOMREQ_SEND;
    struct membership *m = member_find(s, q->room);
    int joined = m && m->joined;
    if (q->type == REQ_SEND && !joined && proto_room_is_dm(q->room))
        return unjoined_dm(s);
    if (q->type == REQ_SEND) {
        if (joined) return ROOMREQ_SEND;
        return wire_error(s, E_NOT_MEMBER, "join the room first"), ROOMREQ_ANSWERED;
    }
    if (q->type == REQ_JOIN)
        return roomreq_join_ok(s) && !roomreq_join_read(s) ? ROOMREQ_READ
                                                           : ROOMREQ_ANSWERED;
    if (!roomreq_read_budget(s)) return ROOMREQ_ANSWERED;
    prepare_read(s);
    return ROOMREQ_READ;
}

static void finish_join(struct session *s)
{
    struct room *r = s->req_room;
    struct db_req *q = &s->dbr;
    hub_lock_rooms(s->srv->hub);
    if (q->last_id > r->last_id) r->last_id = q->last_id;
    hub_unlock_rooms(s->srv->hub);
    if (!moderate_allows(s, r->name)) return; /* banned while it read */
    if (member_join(s, r)) return wire_error(s, E_INTERNAL, "out of memory");
    struct buf *b = proto_msg_start(
        "joined", r->name, 256 + q->rows->len + (q->updates ? q->updates->len : 0));
    put_members(s->srv, &b, r);
    if (q->peer) { /* a DM room: the other user */
        buf_puts(&b, ",\"peer\":");
        buf_put(&b, BUF_PAYLOAD(q->peer), q->peer->len);
    }
    buf_puts(&b, ",\"messages\":[");
    buf_put(&b, BUF_PAYLOAD(q->rows), q->rows->len);
    if (q->updates) { /* a join with since: the older messages changed since */
        buf_puts(&b, "],\"updates\":[");
        buf_put(&b, BUF_PAYLOAD(q->updates), q->updates->len);
    }
    buf_puts(&b, s->req.since >= 0 && q->more ? "],\"complete\":false"
                                              : "],\"complete\":true");
    buf_puts(&b, ",\"read\":");
    buf_put_i64(&b, q->read_id);
    if (b) roomreq_read_spent(s, b->len); /* the whole reply: the members list too */
    wire_reply(s, proto_msg_end(b, s->req.ref));
}

static void finish_history(struct session *s)
{
    struct buf *b = proto_msg_start("history", s->req.room, 64 + s->dbr.rows->len);
    buf_puts(&b, ",\"messages\":[");
    buf_put(&b, BUF_PAYLOAD(s->dbr.rows), s->dbr.rows->len);
    buf_puts(&b, s->dbr.more ? "],\"has_more\":true" : "],\"has_more\":false");
    if (b) roomreq_read_spent(s, b->len);
    wire_reply(s, proto_msg_end(b, s->req.ref));
}

void roomreq_finish(struct session *s)
{
    struct db_req *q = &s->dbr;
    if (q->status != DB_OK) roomreq_read_spent(s, 0); /* the attempt costs the minimum */
    /* A search's time, answered or not (one past its deadline too), so one
     * connection's costly searches pace it, not everyone's (db.h: ts). */
    if (q->op == DB_SEARCH && q->ts > ROOMREQ_SEARCH_FREE_US)
        roomreq_read_spent(s, (size_t)(q->ts - ROOMREQ_SEARCH_FREE_US) *
                                  ROOMREQ_SEARCH_BYTES_PER_US);
    if (q->status == DB_FORBIDDEN)
        wire_error(s, E_FORBIDDEN, "this direct message is between two other users");
    else if (q->status != DB_OK)
        wire_error(s, q->status == DB_BUSY ? E_OVERLOADED : E_INTERNAL,
                   q->status == DB_BUSY ? "the server is busy; retry later"
                                        : "database error; retry later");
    else if (q->check) /* one of the pair, not joined (unjoined_dm) */
        wire_error(s, E_NOT_MEMBER, "join the room first");
    else if (q->dms)
        roomlist_answer(s);
    else if (s->req.type == REQ_SEARCH)
        search_finish(s);
    else if (s->req.type == REQ_HISTORY)
        finish_history(s);
    else
        finish_join(s);
    roomreq_abandon(s);
}

void roomreq_abandon(struct session *s)
{
    buf_unref(s->dbr.rows);
    buf_unref(s->dbr.updates);
    buf_unref(s->dbr.peer);
    s->dbr.rows = s->dbr.updates = s->dbr.peer = NULL;
    search_abandon(s);
    roomlist_abandon(s);
    if (s->req_room) hub_room_release(s->srv->hub, s->req_room);
    s->req_room = NULL;
}

static void do_leave(struct session *s)
{
    struct membership *m = member_find(s, s->req.room);
    if (m) member_leave(s, m);
    wire_reply(s, proto_msg_end(proto_msg_start("left", s->req.room, 64), s->req.ref));
}

static void do_typing(struct session *s)
{
    struct membership *m = member_find(s, s->req.room);
    int64_t now = server_now_us();
    if (!m || !m->joined) return wire_error(s, E_NOT_MEMBER, "join the room first");
    if (member_recent(m->typing_ms, now, TYPING_INTERVAL_MS))
        return; /* dropped silently, per the protocol */
    m->typing_ms = member_stamp(now);
    struct buf *b = proto_msg_start("typing", m->room->name, 128);
    buf_puts(&b, ",\"user\":");
    buf_put(&b, BUF_PAYLOAD(s->user_json), s->user_json->len);
    b = proto_msg_end(b, NULL);
    if (s->srv->hub->cluster)
        cluster_typing(s->srv->hub->cluster, m->room->name, s->user_json);
    fanout_room(s, m->room, b);
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
