/* online.h -- this loop's welcomed connections, by user id: how a direct
 * message reaches every connection of its two users, joined or not.
 *
 * A chained hash table per loop (struct server), sized to the number of
 * connections indexed: a lookup walks the connections whose ids share a
 * bucket, so about one per user. Each loop indexes only its own sessions;
 * a DM reaches the other loops through their inboxes (hub.c), and each
 * loop delivers to its own. Event-loop thread only: no lock.
 */
#ifndef PARLEY_ONLINE_H
#define PARLEY_ONLINE_H

struct buf;
struct server;
struct session;

/* Indexes a welcomed session under its user id. Returns 0, or -1 when
 * memory ran out (then s is not indexed and nothing changed). */
int online_add(struct session *s);
/* Takes s out of the index; a no-op when it is not in it. */
void online_remove(struct session *s);
/* Counts s's connection under `role` instead of the one it was counted
 * with (an `auth` refresh's token). Returns 0, or -1 when memory ran out
 * (then the old role stays counted). */
int online_rerank(struct session *s, int role);
/* Queues b (a reference each) for every connection of user `id` on this
 * loop except `except` (may be NULL). */
void online_push(struct server *srv, const char *id, struct buf *b,
                 struct session *except);
/* Calls fn(s, arg) for every connection of user `id` on this loop. fn may
 * close s (wire_close) but must not take it out of the index. */
void online_each(struct server *srv, const char *id,
                 void (*fn)(struct session *s, void *arg), void *arg);
/* Frees the table (every session already removed). Loop teardown. */
void online_free(struct server *srv);

#endif
