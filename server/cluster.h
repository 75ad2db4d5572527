/* cluster.h -- several nodes as one chat, on one Redis (docs/cluster.md).
 *
 * Redis holds the one ordered log: a stream (parley:log) whose entries are
 * events (event.h) with ids "<seq>-0" from one counter (parley:seq). A
 * write of this node is one Lua script run by Redis (cluster_write.c): it
 * drops a write past its deadline, deduplicates a send by its client_id,
 * takes the next seq and appends the event, atomically; many scripts go in
 * one pipelined round trip. Every node, this one included, reads the
 * whole log (cluster_read.c) and its database worker applies it in seq
 * order to its own SQLite, with the position, in one transaction per
 * batch (db_apply.c). A write of this node is answered when its own event
 * is applied here: an ack then means the write is in Redis and in this
 * node's history, and live delivery comes from the applied log, through
 * the same routing as a single node's commits.
 *
 * Presence and typing travel over Redis pub/sub, and each node's joined
 * connections are kept in a hash with a heartbeat, so the others list them
 * and drop a dead node's within CLUSTER_ALIVE_MS (cluster_presence.c).
 *
 * Threads: the writer and the reader each own one Redis connection, the
 * presence thread two (publish and subscribe); the
 * hooks (cluster_hooks) run on the database worker; cluster_status on any
 * thread. The pending table (this node's writes between the worker's
 * hand-off and their answer) is guarded by the cluster's lock; a request
 * in it is the cluster's until it leaves it (claimed by the worker, or
 * completed through db_complete).
 */
#ifndef PARLEY_CLUSTER_H
#define PARLEY_CLUSTER_H

#include <stdint.h>

#include "buf.h"
#include "db.h"

struct cluster;

/* fn's view of one joined connection of this node (cluster_options). */
typedef void (*cluster_member_fn)(void *arg, const char *room, const void *conn,
                                  const struct buf *user);

struct cluster_options {
    const char *url;   /* redis://host:port[/db] */
    int timeout_ms;    /* a write's deadline in Redis */
    long long log_max; /* the stream's MAXLEN ~; 0: never trimmed */
    /* Presence thread: delivers frame (a presence or typing of another
     * node; the callee takes its own references) to room's members on
     * every loop; and calls fn on every joined connection of this node. */
    void (*deliver)(void *arg, const char *room, struct buf *frame);
    void (*each_member)(void *arg, cluster_member_fn fn, void *fn_arg);
    void *hub;
};

struct cluster_status {
    int redis_up;     /* the last call to Redis answered */
    int ready;        /* caught up with the log as it was at start */
    int behind;       /* the log was trimmed past our position */
    int64_t position; /* the last event applied and committed here */
    int64_t head;     /* the last event Redis is known to hold */
    char reason[200]; /* why not serving, for /healthz and the log */
};

/* Makes a cluster (no thread, no connection yet). Returns NULL with a
 * reason in err (a bad URL, or no memory). Main thread. */
struct cluster *cluster_new(const struct cluster_options *o, char *err, size_t errlen);
/* Sets the database hooks (db_options.forward, claim, applied). */
void cluster_hooks(struct cluster *c, struct db_options *dbo);
/* Starts the writer and the reader on db (opened with the hooks). Returns
 * 0, or -1 when a thread cannot start. Main thread. */
int cluster_start(struct cluster *c, struct db *db);
/* Stops both threads and answers every write still pending (DB_BUSY).
 * Call after db_stop() (the worker may forward until then) and before
 * the loops' last take of their inboxes. Main thread. */
void cluster_stop(struct cluster *c);
/* Frees the cluster. Main thread, after cluster_stop. */
void cluster_free(struct cluster *c);
/* A copy of the node's state. Any thread. */
void cluster_status(struct cluster *c, struct cluster_status *out);
/* Tells the other nodes that connection conn (this node's) joined room as
 * user, or left it (!join); they list it among the room's members and
 * tell their members. Event loop threads; never blocks (queued for the
 * presence thread; under a long Redis outage dropped, and the whole
 * membership sent again once Redis is back). */
void cluster_presence(struct cluster *c, const char *room, const void *conn,
                      const struct buf *user, int join);
/* As cluster_presence, but the other nodes only list it (or stop listing
 * it) and tell nobody: a membership whose presence this node tells later,
 * at its paced rate (member.c), or never (a join and leave within one
 * interval); the counts and `joined.members` must not wait for that. */
void cluster_member(struct cluster *c, const char *room, const void *conn,
                    const struct buf *user, int join);
/* Tells the other nodes' members of room that user is typing. Event loops. */
void cluster_typing(struct cluster *c, const char *room, const struct buf *user);
/* The other nodes' members (remote.h). */
struct remote *cluster_remote(struct cluster *c);

/* Whether the node serves: caught up, and not behind the log. Any thread;
 * NULL (one node) serves. */
int cluster_serving(struct cluster *c);
/* The cluster's value of `name` (cluster_shared.c): the first node's to
 * offer one; `mine` is offered. Returns 0 with it in out (NUL-terminated,
 * shorter than cap), or -1 (Redis unreachable within the timeout, or a
 * bad reply; logged) with out untouched. Main thread, blocking. */
int cluster_shared(struct cluster *c, const char *name, const char *mine, char *out,
                   size_t cap);

#endif
