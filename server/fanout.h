/* fanout.h -- a frame to every member of a room.
 *
 * A member list is kept per event loop (room.h): each loop writes to its
 * own members, and reaches the others' through their inboxes (hub_post).
 * Stored messages do not come this way: the router queues them on every
 * loop in commit order (hub.c), and each loop calls fanout_local. Frames
 * are shared, never copied: each member's queue takes a reference.
 * Event-loop thread only.
 */
#ifndef PARLEY_FANOUT_H
#define PARLEY_FANOUT_H

struct buf;
struct db_req;
struct room;
struct server;
struct session;

/* Queues b for this loop's members of r except `except` (may be NULL). The
 * loop's own part is written only by this loop: no lock is needed. */
void fanout_local(struct server *srv, struct room *r, struct buf *b,
                  struct session *except);
/* Queues a committed change (r->frame: a message, edited or deleted) for
 * this loop's members of its room (r->dest) except `except`; in a DM room
 * (r->pair), for every connection of its two users on this loop instead,
 * joined or not (which includes every member). The frame
 * was made once, after the commit, and the room found once, by the router
 * (hub.c), which queues them on every loop in commit order: no lookup, no
 * lock here. NULL frame or room (out of memory, nobody in it): nothing. */
void fanout_stored(struct server *srv, const struct db_req *r, struct session *except);
/* Queues b for every member of r on every loop except s itself, then
 * drops the maker's reference to b (NULL is ignored). For frames that are
 * not stored (presence, typing), so not ordered by the database. The
 * caller holds r (hub.h: room lifetime). */
void fanout_room(struct session *s, struct room *r, struct buf *b);

#endif
