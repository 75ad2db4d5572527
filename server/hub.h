/* hub.h -- what the event loops share: the rooms, each loop's inbox, and
 * the route from the database worker to the loops.
 *
 * With --threads N there are N event loops, each its own libwebsockets
 * context on the same port (the kernel spreads connections over them with
 * SO_REUSEPORT). A loop reaches another only through that loop's inbox: a
 * FIFO of struct db_req holding the completions of its own requests, the
 * messages stored for every room, and frames other loops post (presence,
 * typing); the sender then wakes the loop with lws_cancel_service(), the
 * one lws call another thread may make.
 *
 * Order: the database worker routes each batch in commit order, and every
 * stored message is put on every loop's inbox at its place in that order.
 * So each loop sees its joins' reads and every room's messages in the one
 * order the database committed them: history plus live delivery has no gap
 * and no duplicate on any loop, and a room's order is the same on all.
 */
#ifndef PARLEY_HUB_H
#define PARLEY_HUB_H

#include <pthread.h>
#include <signal.h>

#include "buf.h"
#include "db.h"
#include "room.h"

#define HUB_MAX_LOOPS 64

struct server;
struct iplimit;
struct cluster;

struct hub_inbox {
    struct db_req *head, *tail; /* guarded by hub.inbox_lock */
};

struct hub {
    int nloops;
    struct server *loops[HUB_MAX_LOOPS]; /* set before any loop runs */
    struct db *db;
    pthread_mutex_t rooms_lock; /* guards rooms, see room.h */
    struct rooms rooms;
    struct room *zombies;       /* rooms kept until exit (no memory for markers) */
    pthread_mutex_t inbox_lock; /* guards inbox[] and awake[] */
    struct hub_inbox inbox[HUB_MAX_LOOPS];
    int awake[HUB_MAX_LOOPS];    /* the loop's context may be woken */
    int sessions;                /* open WebSockets, all loops; atomic */
    struct sanctions *sanctions; /* mutes and bans in force (its own lock) */
    struct ranks *ranks;         /* roles of the open connections (its own lock) */
    int stop_requested;          /* set by the signal handler; atomic */
    /* Per-client-address limits (iplimit.h, its own lock); NULL when every
     * per-address limit is off. Set before any loop runs. */
    struct iplimit *iplimit;
    /* The cluster this node is one of (cluster.h); NULL: a single node.
     * Set before any loop runs. */
    struct cluster *cluster;
};

/* Sets up an empty hub for `nloops` loops (1..HUB_MAX_LOOPS). Main thread.
 * Returns 0, or -1 (nothing to free). */
int hub_init(struct hub *h, int nloops);
/* Frees the rooms and any posts still queued. Main thread, after every loop
 * and the database worker stopped. */
void hub_free(struct hub *h);

/* The rooms lock: see room.h for what it guards. Any thread. */
void hub_lock_rooms(struct hub *h);
void hub_unlock_rooms(struct hub *h);

/* Room lifetime. A room is in memory while it has holders: each holder
 * took one reference with hub_room_hold() (or hub_room_ref() on a room it
 * already holds) and gives it back with hub_room_release(). The release of
 * the last one takes the room out of the table and puts a free marker on
 * every loop's inbox; the room's memory goes when the last loop has taken
 * its marker. Inboxes are FIFOs, so every item queued before the release
 * that points to the room (a message, a presence) is handled before the
 * memory goes, and no item made after it can point to it: only holders
 * post to a room. Any thread; each takes the rooms lock. */

/* Returns room `name` with a reference for the caller, creating it when
 * `create`; NULL when it is not in memory (and !create) or memory ran out
 * (then nothing was created). */
struct room *hub_room_hold(struct hub *h, const char *name, int create);
/* Takes one more reference on a room the caller holds. */
void hub_room_ref(struct hub *h, struct room *r);
/* Gives one reference back; r must not be used after. */
void hub_room_release(struct hub *h, struct room *r);
/* A loop took r's free marker from its inbox (DB_ROOM_FREE); the last
 * loop frees the room. The loop's thread. */
void hub_room_pass(struct db_req *marker);

/* Marks loop `i` as able (1) or no longer able (0) to be woken: its context
 * exists. A loop is marked 0 before its context is destroyed, so no thread
 * wakes a freed context. Any thread. */
void hub_set_awake(struct hub *h, int i, int awake);

/* The database worker's wake hook (db_options.wake): takes the finished
 * batch, makes each stored message's frame once, and appends the
 * completions and messages to the loops' inboxes in commit order, then
 * wakes them. Database worker thread. */
void hub_route(void *hub);

/* Routes one finished request as hub_route() does each of a batch: for
 * requests finished out of the worker's order (the search thread's) and
 * for stand-in databases (the session fuzzer). Any thread, also while
 * another routes: each route is its own, and the inboxes are locked. */
void hub_complete(struct hub *h, struct db_req *r);
/* hub_complete for db_options.search_done (arg: the hub). */
void hub_search_done(void *hub, struct db_req *r);

/* Appends `frame` for `room` (a reference is taken per loop) to every
 * loop's inbox except `from`'s, and wakes them. No-op with one loop. Event
 * loop `from`'s thread; from -1: every loop, any thread holding room. */
void hub_post(struct hub *h, int from, struct room *room, struct buf *frame);
/* Posts frame to the members of room `name` on every loop, when the room
 * is in memory (cluster_options.deliver: a presence or typing of another
 * node). Any thread. */
void hub_post_room(void *hub, const char *name, struct buf *frame);
/* Appends a DB_MOD_EFFECT item (references to who and frame, which may be
 * NULL) to every loop's inbox except `from`'s, and wakes them. No-op with
 * one loop. Event loop `from`'s thread. */
void hub_post_effect(struct hub *h, int from, int action, struct buf *who,
                     struct buf *frame);

/* Moves loop i's inbox out under the lock, then calls fn on each item in
 * order, outside it. fn owns DB_POST items (free them with hub_post_free);
 * the others belong to their submitters. Loop i's thread (or main, after
 * the loops stopped). */
void hub_take(struct hub *h, int i, void (*fn)(struct db_req *r, void *arg), void *arg);
/* Drops a DB_POST item's frame and frees it. */
void hub_post_free(struct db_req *r);

#endif
