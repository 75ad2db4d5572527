/* send.c -- the writes a connection makes (send, and edit and delete,
 * edit.c): a window of SEND_WINDOW in flight per connection, each in a
 * pooled slot that owns its parsed request until the commit; the answer,
 * written from the completion. */
#include "send.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "edit.h"
#include "fanout.h"
#include "log.h"
#include "readmark.h"
#include "session_impl.h"
#include "wire.h"

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
    buf_unref(sl->r.pair);
    sl->r.frame = sl->r.pair = NULL;
    sl->next_free = srv->slot_pool;
    srv->slot_pool = sl;
}

void send_pool_free(struct server *srv)
{
    while (srv->slot_pool) {
        struct send_slot *next = srv->slot_pool->next_free;
        free(srv->slot_pool);
        srv->slot_pool = next;
    }
}

void send_failed(struct session *s, const struct db_req *r, const char *ref)
{
    /* Not wire_error(): s->req may be a read the coroutine still waits on. */
    if (r->sanctioned) /* muted or banned where the log applied it (db.h) */
        return wire_reply(
            s, proto_error_sanction(
                   r->sanctioned == SANCTIONED_BAN ? "you are banned from this room"
                                                   : "you are muted in this room",
                   r->sanctioned == SANCTIONED_BAN ? "ban" : "mute", r->ts, ref));
    if (r->status == DB_FORBIDDEN) /* a DM room of two other users (db.h) */
        return wire_error_ref(s, E_FORBIDDEN,
                              "this direct message is between two other users", ref);
    wire_error_ref(s, r->status == DB_BUSY ? E_OVERLOADED : E_INTERNAL,
                   r->status == DB_BUSY ? "the server is busy; retry later"
                                        : "database error; retry with the same client_id",
                   ref);
}

/* Answers a committed send: ack, or the error that refused it. */
static void send_ack(struct session *s, const struct db_req *r, const char *ref)
{
    if (r->status != DB_OK) return send_failed(s, r, ref);
    if (log_enabled(LOG_DEBUG)) /* message text is logged at debug only */
        plog(LOG_DEBUG, "send", "user=%s room=%s id=%lld dup=%d text=\"%.200s\"",
             s->user_id, r->room, (long long)r->id, r->duplicate, r->text);
    struct buf *b = proto_msg_start("ack", r->room, 128);
    buf_puts(&b, ",\"client_id\":");
    buf_put_jstrz(&b, r->client_id);
    buf_puts(&b, ",\"id\":");
    buf_put_i64(&b, r->id);
    buf_puts(&b, ",\"ts\":");
    buf_put_i64(&b, r->ts);
    wire_reply(s, proto_msg_end(b, ref));
}

/* Moves the current send into a slot and queues it. Replies overloaded
 * when the database queue is full. */
void send_submit(struct session *s)
{
    struct proto_req *q = &s->req;
    struct send_slot *sl = slot_get(s->srv);
    if (!sl) return wire_error(s, E_INTERNAL, "out of memory");
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
    if (q->type == REQ_READ)
        readmark_prepare(s, r);
    else if (q->type != REQ_SEND)
        edit_prepare(s, r);
    if (db_submit(s->srv->db, r)) {
        wire_error(s, E_OVERLOADED, "the server is busy; retry later");
        return slot_put(s->srv, sl);
    }
    sl->json = q->json; /* the strings above now belong to the slot */
    sl->ref = q->ref;
    memset(q, 0, sizeof(*q));
    s->refs++;
    s->inflight++;
}

void send_on_done(struct server *srv, struct db_req *r)
{
    struct send_slot *sl = (struct send_slot *)r; /* r is its first member */
    struct session *s = r->owner;
    if (r->op == DB_MARK)
        readmark_on_done(srv, s, r, sl->ref);
    else if (r->op != DB_SEND)
        edit_on_done(srv, s, r, sl->ref);
    else {
        fanout_stored(srv, r, NULL);
        if (!s->closed) send_ack(s, r, sl->ref);
    }
    slot_put(s->srv, sl);
    assert(s->inflight > 0);
    s->inflight--;
}
