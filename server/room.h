/* room.h -- rooms in memory and their member lists, shared by every event
 * loop.
 *
 * A room lives on in the database forever (the protocol never deletes
 * one), but in memory only while something refers to it: a session that
 * joined it (or remembers having joined it), a join in flight, the
 * router delivering a message to it. Its members are kept per event loop:
 * part[i] lists the sessions of loop i, and a message is delivered by each
 * loop to its own part. hub.h says how a room whose last reference went is
 * freed only after every loop has stopped using it.
 *
 * Locking: the table, every room's nmembers, refs and last_id, and every
 * part are guarded by the caller's lock (hub.h: hub_lock_rooms). Part i is
 * written only by loop i, so loop i may read its own part without the
 * lock; any other reader takes it. This file takes no lock itself.
 */
#ifndef PARLEY_ROOM_H
#define PARLEY_ROOM_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "ratelimit.h"

struct session;

struct room_part {
    struct session **members; /* not owned */
    uint32_t n, cap;
};

struct room {
    struct room *next_in_bucket;
    uint32_t nmembers;          /* on every loop: the sum of the parts' n */
    uint32_t refs;              /* holders (hub_room_hold); 0: unlinked, being freed */
    int free_left;              /* loops yet to pass its free marker (atomic) */
    struct tbucket presence_tb; /* member.c: presence changes told here */
    unsigned presence_set : 1;  /* presence_tb initialised */
    uint32_t nparts;
    int64_t last_id; /* newest message id known, 0 when none */
    char name[PROTO_MAX_ROOM + 1];
    struct room_part part[]; /* one per loop */
};

struct rooms {
    struct room **buckets;
    size_t nbuckets, count;
    int nloops; /* parts per room; 0 means 1 */
};

/* Returns the room, creating it (refs 0, no members) when `create`; NULL
 * when absent or out of memory (then the table is unaltered). */
struct room *rooms_get(struct rooms *rs, const char *name, int create);
/* Takes r out of the table; lookups no longer find it. */
void rooms_unlink(struct rooms *rs, struct room *r);
/* Frees a room taken out of the table, with its member arrays. */
void room_free(struct room *r);
/* Calls fn on every room. */
void rooms_each(struct rooms *rs, void (*fn)(struct room *r, void *arg), void *arg);
void rooms_free(struct rooms *rs);

/* Adds s (not yet a member) to loop's part. Returns 0 or -1 on OOM, then
 * unaltered. */
int room_add(struct room *r, int loop, struct session *s);
/* Removes s from loop's part when it is there; otherwise does nothing. An
 * emptied part frees its array: an idle room costs only its struct. */
void room_remove(struct room *r, int loop, struct session *s);

#endif
