/* hub.c -- the loops' shared rooms and inboxes; routing of database
 * completions to the loop that asked and of stored messages to every loop. */
#include "hub.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "log.h"
#include "protocol.h"
#include "ranks.h"
#include "sanction.h"
#include "loop.h"

int hub_init(struct hub *h, int nloops)
{
    memset(h, 0, sizeof(*h));
    if (nloops < 1 || nloops > HUB_MAX_LOOPS) return -1;
    h->nloops = nloops;
    h->rooms.nloops = nloops;
    if (!(h->sanctions = sanctions_new()) || !(h->ranks = ranks_new())) return -1;
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
            if (r->op == DB_POST || r->op == DB_MOD_EFFECT)
                hub_post_free(r);
            else if (r->op == DB_ROOM_FREE)
                hub_room_pass(r); /* the rest are their owners' */
        }
        h->inbox[i].head = h->inbox[i].tail = NULL;
    }
    rooms_free(&h->rooms);
    sanctions_free(h->sanctions);
    h->sanctions = NULL;
    ranks_free(h->ranks);
    h->ranks = NULL;
    for (struct room *r = h->zombies, *next; r; r = next) {
        next = r->next_in_bucket;
        room_free(r);
    }
    h->zombies = NULL;
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

struct room *hub_room_hold(struct hub *h, const char *name, int create)
{
    hub_lock_rooms(h);
    struct room *r = rooms_get(&h->rooms, name, create);
    if (r) r->refs++;
    hub_unlock_rooms(h);
    return r;
}

void hub_room_ref(struct hub *h, struct room *r)
{
    hub_lock_rooms(h);
    assert(r->refs > 0);
    r->refs++;
    hub_unlock_rooms(h);
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

/* Returns a DB_POST item holding a reference to frame, or NULL: for
 * `room`'s members, or, with a DM pair, for every connection of its two
 * users (then room may be NULL: no one joined it). */
static struct db_req *post_new(struct room *room, struct buf *pair, struct buf *frame,
                               int loop)
{
    struct db_req *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->op = DB_POST;
    r->room = room ? room->name : NULL;
    r->dest = room;
    r->loop = loop;
    r->frame = frame ? buf_ref(frame) : NULL;
    r->pair = pair ? buf_ref(pair) : NULL;
    return r;
}

/* Puts r's free marker on every loop's inbox (hub.h: room lifetime). Out
 * of memory, the room is kept until exit instead: never freed early. */
static void room_retire(struct hub *h, struct room *r)
{
    struct chain c[HUB_MAX_LOOPS];
    memset(c, 0, sizeof(c[0]) * (size_t)h->nloops);
    __atomic_store_n(&r->free_left, h->nloops, __ATOMIC_RELAXED);
    for (int i = 0; i < h->nloops; i++) {
        struct db_req *m = calloc(1, sizeof(*m));
        if (!m) goto err;
        m->op = DB_ROOM_FREE;
        m->dest = r;
        m->loop = i;
        chain_add(&c[i], m);
    }
    deliver(h, c);
    return;
err:
    for (int i = 0; i < h->nloops; i++)
        free(c[i].head);
    plog(LOG_ERROR, "room-kept", "room=%s reason=\"out of memory\"", r->name);
    hub_lock_rooms(h);
    r->next_in_bucket = h->zombies;
    h->zombies = r;
    hub_unlock_rooms(h);
}

void hub_room_release(struct hub *h, struct room *r)
{
    hub_lock_rooms(h);
    assert(r->refs > 0);
    int last = --r->refs == 0;
    if (last) rooms_unlink(&h->rooms, r);
    hub_unlock_rooms(h);
    if (last) room_retire(h, r);
}

void hub_room_pass(struct db_req *marker)
{
    assert(marker->op == DB_ROOM_FREE);
    struct room *r = marker->dest;
    /* acq_rel: the last loop sees every other loop's use finished. */
    if (__atomic_sub_fetch(&r->free_left, 1, __ATOMIC_ACQ_REL) == 0) room_free(r);
    free(marker);
}

void hub_post_free(struct db_req *r)
{
    assert(r->op == DB_POST || r->op == DB_MOD_EFFECT);
    buf_unref(r->frame);
    buf_unref(r->pair);
    free(r);
}

/* The frame of a committed change as every member gets it: `message` for a
 * send, `edited` or `deleted`; NULL when memory ran out (the change is
 * stored and answered; members get it from history or `since` on rejoin). */
static struct buf *message_frame(const struct db_req *r)
{
    struct buf *b = buf_new(200 + r->text_len);
    struct proto_msg m = {.room = r->room,
                          .id = r->id,
                          .ts = r->ts,
                          .user_id = r->user_id,
                          .user_name = r->user_name,
                          .text = r->text,
                          .text_len = r->text_len,
                          .client_id = r->client_id,
                          .bot = r->op == DB_SEND && r->api};
    if (r->op == DB_EDIT)
        buf_unref(b), b = proto_edited(r->room, r->msg_id, r->id, r->text, r->text_len,
                                       r->ts, NULL);
    else if (r->op == DB_DELETE)
        buf_unref(b),
            b = proto_deleted(r->room, r->msg_id, r->id, r->user_id, r->user_name, NULL);
    else if (b)
        proto_put_message(&b, &m);
    if (b && b->oom) buf_unref(b), b = NULL;
    if (!b)
        plog(LOG_ERROR, "broadcast-failed", "room=%s id=%lld reason=\"out of memory\"",
             r->room, (long long)r->id);
    return b;
}

struct route {
    struct hub *h;
    struct chain c[HUB_MAX_LOOPS];
    struct room **held; /* rooms referenced until the route is delivered */
    size_t nheld, capheld;
    struct room *held_stack[64]; /* held's storage for most batches: no malloc */
};

/* Finds a stored message's room, records its id as the room's newest and
 * holds the room until the route is delivered (route_release), so its
 * free marker can only queue behind this message. Returns the room; NULL
 * when it is not in memory: then nobody is in it or joining it (a join
 * holds the room from before its read), or memory ran out (the message is
 * stored and acked; members get it from history). */
static struct room *note_last_id(struct route *rt, const struct db_req *r)
{
    if (rt->nheld == rt->capheld) {
        size_t cap = rt->capheld * 2;
        struct room **n = malloc(cap * sizeof(*n));
        if (!n) return NULL;
        memcpy(n, rt->held, rt->nheld * sizeof(*n));
        if (rt->held != rt->held_stack) free(rt->held);
        rt->held = n;
        rt->capheld = cap;
    }
    hub_lock_rooms(rt->h);
    struct room *room = rooms_get(&rt->h->rooms, r->room, 0);
    if (room) {
        if (r->id > room->last_id) room->last_id = r->id;
        room->refs++;
        rt->held[rt->nheld++] = room;
    }
    hub_unlock_rooms(rt->h);
    return room;
}

/* Gives back the rooms the route held, once its items are on the inboxes:
 * under one lock for the whole batch; the rooms whose last reference this
 * was are retired after it (hub.h: room lifetime). */
static void route_release(struct route *rt)
{
    size_t ngone = 0;
    hub_lock_rooms(rt->h);
    for (size_t i = 0; i < rt->nheld; i++) {
        struct room *r = rt->held[i];
        assert(r->refs > 0);
        if (--r->refs == 0) {
            rooms_unlink(&rt->h->rooms, r);
            rt->held[ngone++] = r; /* i >= ngone: reuses slots already read */
        }
    }
    hub_unlock_rooms(rt->h);
    for (size_t i = 0; i < ngone; i++)
        room_retire(rt->h, rt->held[i]);
    if (rt->held != rt->held_stack) free(rt->held);
}

/* A read marker that moved: the user's other connections, on every loop,
 * get it (`pair` names the user twice: dm_push delivers to one user). */
static void route_mark(struct route *rt, struct db_req *r)
{
    assert(!r->pair); /* the worker only checks a DM room's pair for a mark */
    struct buf *p = buf_pair(r->user_id, r->user_id);
    if (!p || !(r->frame = proto_read(r->room, r->id, NULL))) {
        buf_unref(p);
        return; /* stored and answered; the others see it on their next rooms */
    }
    r->pair = p;
    for (int i = 0; i < rt->h->nloops; i++) {
        struct db_req *post = i == r->loop ? NULL : post_new(NULL, p, r->frame, i);
        if (post) chain_add(&rt->c[i], post);
    }
}

/* A moderation action another node applied: this node's registry follows
 * it, and a kick or ban reaches the target's connections on every loop
 * (as DB_MOD_EFFECT items, in the batch's order). */
static void route_mod(struct route *rt, struct db_req *r)
{
    sanctions_follow(rt->h->sanctions, r);
    if (r->mod_action != DB_MOD_KICK && r->mod_action != DB_MOD_BAN) return;
    const char *room = r->room ? r->room : "";
    struct buf *who = buf_pair(r->peer_id, room),
               *frame = r->room ? proto_removed(r->room, r->text) : NULL;
    for (int i = 0; who && (frame || !r->room) && i < rt->h->nloops; i++) {
        struct db_req *p = post_new(NULL, who, frame, i);
        if (!p) continue; /* out of memory: that loop's connections stay */
        p->op = DB_MOD_EFFECT;
        p->mod_action = r->mod_action;
        chain_add(&rt->c[i], p);
    }
    buf_unref(who);
    buf_unref(frame);
}

static void route_one(struct db_req *r, void *arg)
{
    struct route *rt = arg;
    struct hub *h = rt->h;
    /* loop -1: an event of the cluster's log no session here waits for */
    assert(r->loop >= -1 && r->loop < h->nloops && !r->frame);
    assert(r->loop >= 0 || r->logged);
    int change = r->op == DB_SEND || r->op == DB_EDIT || r->op == DB_DELETE;
    if (change && r->status == DB_OK && !r->duplicate) {
        /* Every loop, members or not: a join in flight on a loop with no
         * member yet must still find this message after its read. A DM's
         * users get it on every loop even when nobody joined its room. */
        r->dest = note_last_id(rt, r);
        if ((r->dest || r->pair) && (r->frame = message_frame(r)))
            for (int i = 0; i < h->nloops; i++) {
                struct db_req *p =
                    i == r->loop ? NULL : post_new(r->dest, r->pair, r->frame, i);
                if (p) chain_add(&rt->c[i], p);
            }
    }
    if (r->op == DB_MARK && r->status == DB_OK && !r->duplicate) route_mark(rt, r);
    if (r->loop < 0) {
        if (r->op == DB_MOD && r->status == DB_OK && !r->duplicate) route_mod(rt, r);
        event_free(event_of(r)); /* the posts hold their own references */
        return;
    }
    chain_add(&rt->c[r->loop], r);
}

static void route_init(struct route *rt, struct hub *h)
{
    rt->h = h;
    memset(rt->c, 0, sizeof(rt->c[0]) * (size_t)h->nloops);
    rt->held = rt->held_stack;
    rt->nheld = 0;
    rt->capheld = sizeof rt->held_stack / sizeof rt->held_stack[0];
}

void hub_route(void *arg)
{
    struct route rt;
    route_init(&rt, arg);
    db_take_done(rt.h->db, route_one, &rt);
    deliver(rt.h, rt.c);
    route_release(&rt);
}

void hub_complete(struct hub *h, struct db_req *r)
{
    struct route rt;
    route_init(&rt, h);
    r->next = NULL;
    route_one(r, &rt);
    deliver(h, rt.c);
    route_release(&rt);
}

void hub_search_done(void *hub, struct db_req *r)
{
    hub_complete(hub, r);
}

void hub_post(struct hub *h, int from, struct room *room, struct buf *frame)
{
    if ((h->nloops == 1 && from >= 0) || !frame) return;
    struct chain c[HUB_MAX_LOOPS];
    memset(c, 0, sizeof(c[0]) * (size_t)h->nloops);
    for (int i = 0; i < h->nloops; i++) {
        struct db_req *p = i == from ? NULL : post_new(room, NULL, frame, i);
        if (p) chain_add(&c[i], p);
    }
    deliver(h, c);
}

void hub_post_room(void *hub, const char *name, struct buf *frame)
{
    struct hub *h = hub;
    struct room *r = hub_room_hold(h, name, 0);
    if (!r) return; /* nobody here is in it */
    hub_post(h, -1, r, frame);
    hub_room_release(h, r);
}

void hub_post_effect(struct hub *h, int from, int action, struct buf *who,
                     struct buf *frame)
{
    if (h->nloops == 1) return;
    struct chain c[HUB_MAX_LOOPS];
    memset(c, 0, sizeof(c[0]) * (size_t)h->nloops);
    for (int i = 0; i < h->nloops; i++) {
        struct db_req *p = i == from ? NULL : post_new(NULL, who, frame, i);
        if (!p) continue; /* out of memory: that loop's connections stay */
        p->op = DB_MOD_EFFECT;
        p->mod_action = (unsigned)action & 7;
        chain_add(&c[i], p);
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
