/* room.h -- rooms and their member lists. Event-loop thread only.
 *
 * A room exists from its first join until the process ends (rooms are never
 * deleted, per the protocol). Members are sessions; a session is in a room's
 * list exactly while it is joined, and the session keeps the reverse link.
 */
#ifndef PARLEY_ROOM_H
#define PARLEY_ROOM_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct session;

struct room {
    struct room *next_in_bucket;
    struct session **members; /* not owned */
    uint32_t nmembers, cap;
    int64_t last_id; /* newest message id known, 0 when none */
    char name[PROTO_MAX_ROOM + 1];
};

struct rooms {
    struct room **buckets;
    size_t nbuckets, count;
};

/* Returns the room, creating it when `create`; NULL when absent or OOM. */
struct room *rooms_get(struct rooms *rs, const char *name, int create);
/* Calls fn on every room. */
void rooms_each(struct rooms *rs, void (*fn)(struct room *r, void *arg), void *arg);
void rooms_free(struct rooms *rs);

/* Adds s (not yet a member). Returns 0 or -1 on OOM, then unaltered. */
int room_add(struct room *r, struct session *s);
/* Removes s when it is a member; otherwise does nothing. */
void room_remove(struct room *r, struct session *s);

#endif
