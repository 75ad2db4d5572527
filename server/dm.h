/* dm.h -- direct messages (protocol 1.1): the `dm` request, DM room names,
 * and delivery of a DM room's changes to every connection of its two users.
 *
 * A DM room is an ordinary room (messages, history, since, edits) whose
 * name is derived from the pair, so the same two users always meet in the
 * same room. Who may use it is the database's to say: every request on a
 * DM room carries the requester's id, and the worker checks it against the
 * room's pair (db_dm.h), so no check here can be bypassed by a request
 * that skips it. Event-loop thread only, unless said otherwise.
 */
#ifndef PARLEY_DM_H
#define PARLEY_DM_H

#include "protocol.h"
#include "roomreq.h"

struct buf;
struct server;
struct session;

/* Writes the DM room name of users a and b (either order): "dm-" and the
 * first 16 bytes of SHA-256(min "\0" max) in hex. Any thread. */
void dm_room_name(const char *a, const char *b, char out[PROTO_DM_ROOM_LEN + 1]);

/* Checks s's `dm` request (self, the token's "dm" claim, --no-guest-dms,
 * the join limits) and prepares s->dbr to make the pair's room (DB_DM).
 * Returns ROOMREQ_DM, or ROOMREQ_ANSWERED after answering the refusal. */
enum roomreq_kind dm_prepare(struct session *s);
/* After DB_DM completed: answers its refusal and returns 0, or prepares the
 * join read of the pair's room in s->dbr (as a join does) and returns 1. */
int dm_made(struct session *s);

/* Queues b for every connection of pair's two users on this loop except
 * `except`. pair is a DM write's "a\0b\0" (db.h). */
void dm_push(struct server *srv, const struct buf *pair, struct buf *b,
             struct session *except);

#endif
