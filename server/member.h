/* member.h -- a session's rooms: membership, presence, and the rooms it
 * remembers having left.
 *
 * Each entry of s->mem holds a reference on its room (hub_room_hold), so a
 * room stays in memory while any session is in it or remembers it. A
 * connection may be in MEMBER_MAX_JOINED rooms at once; rooms it left are
 * remembered (the `rooms` listing shows them) up to MEMBER_KEEP_LEFT, the
 * oldest forgotten first, so joining and leaving never exhausts the limit
 * and never pins unbounded memory.
 *
 * Presence is coalesced per connection and room: the others hear at most
 * one change per MEMBER_PRESENCE_MS, and always the latest state (a join
 * and a leave within the interval cancel out; a leave still pending when
 * the interval ends is sent then, by member_sweep). Each connection and
 * each room also has a budget of changes per second (member.c), so neither
 * one client across many rooms nor many short-lived connections in one
 * room can flood its members. A connection that closes sends its leaves at
 * once: only joins that were told need one, and those were budgeted.
 *
 * Event-loop thread only; the room member lists are changed under the
 * rooms lock (room.h).
 */
#ifndef PARLEY_MEMBER_H
#define PARLEY_MEMBER_H

#include <stdint.h>

#include "cluster.h"

struct room;
struct server;
struct session;

#define MEMBER_MAX_JOINED 1000 /* rooms one connection may be in at once */
#define MEMBER_KEEP_LEFT 64    /* rooms it left that it still remembers */
#define MEMBER_PRESENCE_MS 1000
#define MEMBER_PRESENCE_BURST 20.0 /* changes a connection may tell at once */

/* 16 bytes and a pointer: a connection has one per room. Times are
 * member_stamp()s: milliseconds in 32 bits, never 0 once set. */
struct membership {
    struct room *room;    /* a reference held while the entry exists */
    uint32_t typing_ms;   /* when this session last sent typing here */
    uint32_t presence_ms; /* when the others were last told of it here */
    unsigned joined : 1;  /* a member now */
    unsigned told : 1;    /* the others were last told "join" (else "leave") */
    unsigned listed : 1;  /* a cluster's other nodes list it (cluster_member) */
};

/* A time for a membership field: `now_us` in milliseconds, odd so never 0. */
static inline uint32_t member_stamp(int64_t now_us)
{
    return (uint32_t)(now_us / 1000) | 1u;
}

/* Whether stamp t (0: never) is less than `ms` milliseconds before now_us.
 * The difference wraps with the stamps, so it holds across 49 days too; it
 * is signed because a stamp made this millisecond may be one ahead of it
 * (the odd bit), which is recent, not 49 days old. */
static inline int member_recent(uint32_t t, int64_t now_us, uint32_t ms)
{
    return t && (int32_t)((uint32_t)(now_us / 1000) - t) < (int32_t)ms;
}

/* Returns s's entry for room `name`, joined or remembered, or NULL. */
struct membership *member_find(struct session *s, const char *name);
/* Makes s a member of r (held by the caller; the entry takes its own
 * reference). Returns 0 (also when already a member), or -1 when memory
 * ran out: then s is not a member and nothing changed. */
int member_join(struct session *s, struct room *r);
/* s leaves m's room (a no-op when not joined); the entry is remembered. */
void member_leave(struct session *s, struct membership *m);
/* The connection is gone: leaves every room, tells the others at once
 * (unless the server is stopping), and lets go of every entry. */
void member_leave_all(struct session *s);
/* Sends the presence changes whose interval has passed. The loop's tick. */
void member_sweep(struct server *srv, int64_t now_us);

/* Calls fn on every joined connection of every loop, under the rooms lock
 * (fn must not take it): the cluster's whole membership of this node
 * (cluster_options.each_member; hub is the struct hub). Any thread. */
void member_each_joined(void *hub, cluster_member_fn fn, void *arg);

#endif
