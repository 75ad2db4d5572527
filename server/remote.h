/* remote.h -- the room members other nodes of the cluster hold, as this
 * node last heard of them (cluster_presence.c keeps it from Redis): per
 * room, each connection of another node that joined it, with its user. `joined.members`
 * and the `rooms` counts add them to the local members. Every function takes the table's
 * own lock: any thread.
 */
#ifndef PARLEY_REMOTE_H
#define PARLEY_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct remote;

struct remote *remote_new(void);
void remote_free(struct remote *m);

/* Records that connection `conn` of node joined room as user (USER JSON,
 * len bytes), or left it (!join). Both are idempotent: a join known or a
 * leave of what is not there changes nothing. A join clears the entry's
 * stale mark (remote_mark_node). Returns 1 when the table changed, 0 when
 * not, or -1 out of memory (the table is unaltered). */
int remote_set(struct remote *m, const char *node, const char *room, const char *conn,
               const char *user, size_t len, int join);
/* Takes every entry of node out, calling fn on each (room, user) first,
 * under the table's lock (fn must not call remote_*). */
void remote_drop_node(struct remote *m, const char *node,
                      void (*fn)(void *arg, const char *room, struct buf *user),
                      void *arg);
/* A node's whole membership read again: remote_mark_node marks its
 * entries stale, a remote_set join of each member read clears the mark,
 * and remote_drop_stale takes out, as remote_drop_node, those still
 * marked: the members it no longer has. */
void remote_mark_node(struct remote *m, const char *node);
void remote_drop_stale(struct remote *m, const char *node,
                       void (*fn)(void *arg, const char *room, struct buf *user),
                       void *arg);
/* References to the users in room, one per connection (*out
 * malloc'd unless it fits `stack`). Returns the count, or -1 out of
 * memory. The caller unrefs each and frees *out when it is not stack. */
int remote_users(struct remote *m, const char *room, struct buf **stack, int nstack,
                 struct buf ***out);
/* How many rooms other nodes have members in. */
size_t remote_nrooms(struct remote *m);
/* Calls fn on each room other nodes have members in, under the table's
 * lock (fn must not call remote_*). */
void remote_each_room(struct remote *m, void (*fn)(void *arg, const char *room),
                      void *arg);
/* How many users other nodes have in room (as remote_users lists). */
uint32_t remote_count(struct remote *m, const char *room);

#endif
