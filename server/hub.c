/* hub.c -- the loops' shared rooms and inboxes; routing of database
 * completions to the loop that asked and of stored messages to every loop. */
#include "hub.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "protocol.h"
#include "loop.h"

int hub_init(struct hub *h, int nloops)
{
    memset(h, 0, sizeof(*h));
    if (nloops < 1 || nloops > HUB_MAX_LOOPS) return -1;
    h->nloops = nloops;
    h->rooms.nloops = nloops;
    pthread_mutex_init(&h->rooms_lock, NULL);
    pthread_mutex_init(&h->inbox_lock, NULL);
    return 0;
}

void hub_free(struct hub *h)
{
    for (int i = 0; i < h->nloops; i++) {
        struct db_req *r = h->inbox[i].head, *next;
        for (; r; r = next) {
            next = r->next;
            if (r->op == DB_POST) hub_post_free(r); /* the rest are their owners' */
        }
        h->inbox[i].head = h->inbox[i].tail = NULL;
    }
    rooms_free(&h->rooms);
    pthread_mutex_destroy(&h->rooms_lock);
    pthread_mutex_destroy(&h->inbox_lock);
}

void hub_lock_rooms(struct hub *h)
{
    pthread_mutex_lock(&h->rooms_lock);
}

void hub_unlock_rooms(struct hub *h)
{
    pthread_mutex_unlock(&h->rooms_lock);
}

void hub_set_awake(struct hub *h, int i, int awake)
{
    pthread_mutex_lock(&h->inbox_lock);
    h->awake[i] = awake;
    pthread_mutex_unlock(&h->inbox_lock);
}

/* A list of items bound for one loop, built outside the lock. */
struct chain {
    struct db_req *head, *tail;
};

static void chain_add(struct chain *c, struct db_req *r)
{
    r->next = NULL;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
}

/* Splices each loop's chain onto its inbox and wakes the loops that got
 * something, all under the inbox lock (so a loop cannot be destroyed
 * between the check and the wake-up). */
static void deliver(struct hub *h, struct chain *c)
{
    pthread_mutex_lock(&h->inbox_lock);
    for (int i = 0; i < h->nloops; i++) {
        if (!c[i].head) continue;
        struct hub_inbox *in = &h->inbox[i];
        if (in->tail)
            in->tail->next = c[i].head;
        else
            in->head = c[i].head;
        in->tail = c[i].tail;
        if (h->awake[i]) lws_cancel_service(h->loops[i]->ctx);
    }
    pthread_mutex_unlock(&h->inbox_lock);
}

/* Returns a DB_POST item for `room` holding a reference to frame, or NULL. */
static struct db_req *post_new(struct room *room, struct buf *frame, int loop)
{
    struct db_req *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->op = DB_POST;
    r->room = room->name;
    r->dest = room;
    r->loop = loop;
    r->frame = buf_ref(frame);
    return r;
}

void hub_post_free(struct db_req *r)
{
    assert(r->op == DB_POST);
    buf_unref(r->frame);
    free(r);
}

/* The message frame for a stored send, or NULL when memory ran out (the
 * message is stored and acked; members get it from history on rejoin). */
static struct buf *message_frame(const struct db_req *r)
{
    struct buf *b = buf_new(200 + r->text_len);
    struct proto_msg m = {r->room,      r->id,   r->ts,       r->user_id,
                          r->user_name, r->text, r->text_len, r->client_id};
    if (b) proto_put_message(&b, &m);
    if (b && b->oom) buf_unref(b), b = NULL;
    if (!b)
        plog(LOG_ERROR, "broadcast-failed", "room=%s id=%lld reason=\"out of memory\"",
             r->room, (long long)r->id);
    return b;
}

/* Finds a stored message's room and records its id as the room's newest.
 * Returns the room; NULL only if nobody ever joined it, and then nobody can
 * be joining it either (a join creates the room before its read). */
static struct room *note_last_id(struct hub *h, const struct db_req *r)
{
    hub_lock_rooms(h);
    struct room *room = rooms_get(&h->rooms, r->room, 0);
    if (room && r->id > room->last_id) room->last_id = r->id;
    hub_unlock_rooms(h);
    return room;
}

struct route {
    struct hub *h;
    struct chain c[HUB_MAX_LOOPS];
};

static void route_one(struct db_req *r, void *arg)
{
    struct route *rt = arg;
    struct hub *h = rt->h;
    assert(r->loop >= 0 && r->loop < h->nloops && !r->frame);
    if (r->op == DB_SEND && r->status == DB_OK && !r->duplicate) {
        /* Every loop, members or not: a join in flight on a loop with no
         * member yet must still find this message after its read. */
        if ((r->dest = note_last_id(h, r)) && (r->frame = message_frame(r)))
            for (int i = 0; i < h->nloops; i++) {
                struct db_req *p = i == r->loop ? NULL : post_new(r->dest, r->frame, i);
                if (p) chain_add(&rt->c[i], p);
            }
    }
    chain_add(&rt->c[r->loop], r);
}

void hub_route(void *arg)
{
    struct route rt;
    rt.h = arg;
    memset(rt.c, 0, sizeof(rt.c[0]) * (size_t)rt.h->nloops);
    db_take_done(rt.h->db, route_one, &rt);
    deliver(rt.h, rt.c);
}

void hub_complete(struct hub *h, struct db_req *r)
{
    struct route rt;
    rt.h = h;
    memset(rt.c, 0, sizeof(rt.c[0]) * (size_t)h->nloops);
    r->next = NULL;
    route_one(r, &rt);
    deliver(h, rt.c);
}

void hub_post(struct hub *h, int from, struct room *room, struct buf *frame)
{
    if (h->nloops == 1 || !frame) return;
    struct chain c[HUB_MAX_LOOPS];
    memset(c, 0, sizeof(c[0]) * (size_t)h->nloops);
    for (int i = 0; i < h->nloops; i++) {
        struct db_req *p = i == from ? NULL : post_new(room, frame, i);
        if (p) chain_add(&c[i], p);
    }
    deliver(h, c);
}

void hub_take(struct hub *h, int i, void (*fn)(struct db_req *r, void *arg), void *arg)
{
    pthread_mutex_lock(&h->inbox_lock);
    struct db_req *r = h->inbox[i].head;
    h->inbox[i].head = h->inbox[i].tail = NULL;
    pthread_mutex_unlock(&h->inbox_lock);
    while (r) {
        struct db_req *next = r->next; /* fn may reuse or free r */
        r->next = NULL;
        fn(r, arg);
        r = next;
    }
}
