/* member.c -- a session's rooms: membership, coalesced presence, and the
 * rooms it remembers having left. */
#include "member.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "fanout.h"
#include "hub.h"
#include "room.h"
#include "session_impl.h"

/* Presence changes one connection may cause per second, over all its
 * rooms, and at once: beyond, changes wait (coalesced) for member_sweep.
 * A connection toggling join/leave across many rooms can then make the
 * server send at most this many presence frames per second per member. */
#define PRESENCE_RATE 2.0
/* Presence changes told per second in one room, and at once, whoever makes
 * them: connections that come and go (each with a fresh budget) cannot
 * flood a room's members either. The rest waits, coalesced, as above. */
#define ROOM_PRESENCE_RATE 5.0
#define ROOM_PRESENCE_BURST 20.0
/* Entries at most, joined and remembered, before a pending leave is told
 * at once to make room (bounds the memory of a connection that keeps
 * joining new rooms faster than its presence may be told). */
#define MEMBER_MAX_ENTRIES (MEMBER_MAX_JOINED + 2 * MEMBER_KEEP_LEFT)

struct membership *member_find(struct session *s, const char *name)
{
    for (uint32_t i = 0; i < s->nmem; i++)
        if (!strcmp(s->mem[i].room->name, name)) return &s->mem[i];
    return NULL;
}

static void send_presence(struct session *s, struct room *r, const char *event)
{
    if (s->srv->hub->cluster) /* the other nodes list it and tell theirs */
        cluster_presence(s->srv->hub->cluster, r->name, s, s->user_json, event[0] == 'j');
    struct buf *b = proto_msg_start("presence", r->name, 128);
    buf_puts(&b, ",\"event\":\"");
    buf_puts(&b, event);
    buf_puts(&b, "\",\"user\":");
    buf_put(&b, BUF_PAYLOAD(s->user_json), s->user_json->len);
    fanout_room(s, r, proto_msg_end(b, NULL));
}

/* Puts s on its loop's list of sessions with presence still to tell. The
 * list holds a reference. */
static void pending_add(struct session *s)
{
    struct server *srv = s->srv;
    if (s->presence_queued) return;
    s->presence_queued = 1;
    s->refs++;
    s->presence_next = srv->presence_head;
    srv->presence_head = s;
}

/* Takes one presence change from r's budget (ROOM_PRESENCE_RATE): 1 when
 * there was one. Under the rooms lock, since every loop's members tell. */
static int room_allows(struct session *s, struct room *r, int64_t now)
{
    hub_lock_rooms(s->srv->hub);
    if (!r->presence_set) {
        tb_init(&r->presence_tb, ROOM_PRESENCE_BURST, now);
        r->presence_set = 1;
    }
    int ok = tb_take(&r->presence_tb, ROOM_PRESENCE_RATE, ROOM_PRESENCE_BURST, now);
    hub_unlock_rooms(s->srv->hub);
    return ok;
}

/* Whether m's change may be told now: the interval since the last one here,
 * the connection's budget and the room's all allow it. */
static int may_tell(struct session *s, struct membership *m, int64_t now)
{
    if (member_recent(m->presence_ms, now, MEMBER_PRESENCE_MS)) return 0;
    if (!tb_take(&s->presence_tb, PRESENCE_RATE, MEMBER_PRESENCE_BURST, now)) return 0;
    return room_allows(s, m->room, now);
}

/* In a cluster, has the other nodes list m's state now, without telling
 * anyone (cluster_member): their counts and joined.members follow the
 * membership itself, their presence frames follow tell()'s pace. */
static void list_quietly(struct session *s, struct membership *m)
{
    struct cluster *c = s->srv->hub->cluster;
    if (!c || m->listed == m->joined) return;
    cluster_member(c, m->room->name, s, s->user_json, m->joined);
    m->listed = m->joined;
}

/* Tells the others m's state if it is not what they last heard: now when
 * `force`, or when may_tell() allows; otherwise later, from member_sweep. */
static void tell(struct session *s, struct membership *m, int64_t now, int force)
{
    if (m->told == m->joined) return list_quietly(s, m);
    if (!force && !may_tell(s, m, now)) {
        list_quietly(s, m);
        pending_add(s);
        return;
    }
    send_presence(s, m->room, m->joined ? "join" : "leave");
    m->told = m->listed = m->joined;
    m->presence_ms = member_stamp(now);
}

/* Lets go of entry i (not joined), telling a pending leave first. */
static void forget(struct session *s, uint32_t i)
{
    struct membership *m = &s->mem[i];
    assert(!m->joined);
    tell(s, m, server_now_us(), 1);
    hub_room_release(s->srv->hub, m->room);
    memmove(m, m + 1, (s->nmem - i - 1) * sizeof(*m));
    s->nmem--;
}

/* Forgets the oldest left rooms beyond MEMBER_KEEP_LEFT whose presence is
 * told (a pending leave stays until it is told), and beyond
 * MEMBER_MAX_ENTRIES the oldest left room whatever its state. */
static void forget_old(struct session *s)
{
    uint32_t left = s->nmem - s->njoined;
    for (uint32_t i = 0; i < s->nmem && left > MEMBER_KEEP_LEFT;) {
        struct membership *m = &s->mem[i];
        if (m->joined || (m->told && s->nmem < MEMBER_MAX_ENTRIES)) {
            i++;
            continue;
        }
        forget(s, i);
        left--;
    }
}

/* Returns a new entry for r (taking a reference), or NULL out of memory. */
static struct membership *entry_new(struct session *s, struct room *r)
{
    if (s->nmem == s->capmem) {
        uint32_t cap = s->capmem ? s->capmem * 2 : 2; /* most are in one or two */
        struct membership *nm = realloc(s->mem, cap * sizeof(*nm));
        if (!nm) return NULL;
        s->mem = nm;
        s->capmem = cap;
    }
    struct membership *m = &s->mem[s->nmem++];
    memset(m, 0, sizeof(*m));
    m->room = r;
    hub_room_ref(s->srv->hub, r);
    return m;
}

int member_join(struct session *s, struct room *r)
{
    struct membership *m = member_find(s, r->name);
    if (m && m->joined) return 0;
    if (!m && !(m = entry_new(s, r))) return -1;
    hub_lock_rooms(s->srv->hub);
    int oom = room_add(r, s->srv->index, s);
    hub_unlock_rooms(s->srv->hub);
    if (oom) {
        if (!m->told && !m->presence_ms) forget(s, (uint32_t)(m - s->mem));
        return -1;
    }
    m->joined = 1;
    s->njoined++;
    tell(s, m, server_now_us(), 0);
    return 0;
}

/* Takes s out of m's room (on this loop's part). */
static void unlist(struct session *s, struct membership *m)
{
    hub_lock_rooms(s->srv->hub);
    room_remove(m->room, s->srv->index, s);
    hub_unlock_rooms(s->srv->hub);
    m->joined = 0;
    s->njoined--;
}

void member_leave(struct session *s, struct membership *m)
{
    if (!m->joined) return;
    unlist(s, m);
    tell(s, m, server_now_us(), 0);
    forget_old(s);
}

void member_leave_all(struct session *s)
{
    int64_t now = server_now_us();
    for (uint32_t i = 0; i < s->nmem; i++) {
        struct membership *m = &s->mem[i];
        if (m->joined) unlist(s, m);
        if (!s->srv->stopping) tell(s, m, now, 1);
        hub_room_release(s->srv->hub, m->room);
    }
    s->nmem = 0;
    assert(s->njoined == 0);
}

void member_sweep(struct server *srv, int64_t now_us)
{
    struct session *s = srv->presence_head, *next;
    srv->presence_head = NULL; /* tell() may queue again, on a new list */
    for (; s; s = next) {
        next = s->presence_next;
        s->presence_queued = 0;
        for (uint32_t i = 0; i < s->nmem; i++)
            tell(s, &s->mem[i], now_us, 0);
        if (!s->closed) forget_old(s);
        session_unref(s); /* may free s */
    }
}

struct each {
    cluster_member_fn fn;
    void *arg;
};

static void each_room(struct room *r, void *arg)
{
    struct each *e = arg;
    for (uint32_t l = 0; l < r->nparts; l++)
        for (uint32_t i = 0; i < r->part[l].n; i++) {
            struct session *s = r->part[l].members[i];
            e->fn(e->arg, r->name, s, s->user_json);
        }
}

void member_each_joined(void *hub, cluster_member_fn fn, void *arg)
{
    struct each e = {fn, arg};
    hub_lock_rooms(hub);
    rooms_each(&((struct hub *)hub)->rooms, each_room, &e);
    hub_unlock_rooms(hub);
}
