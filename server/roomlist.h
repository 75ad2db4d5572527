/* roomlist.h -- the `rooms` listing: the rooms with members online, the
 * rooms this connection joined or remembers, this user's DM rooms and the
 * rooms where it has a read marker (read from the database: listed online
 * or not), each with the user's marker and unread count. Another pair's
 * DM room, and a room the user may not read, is never listed.
 * Event-loop thread only.
 */
#ifndef PARLEY_ROOMLIST_H
#define PARLEY_ROOMLIST_H

#include "roomreq.h"

struct session;

/* Copies the rooms the loop knows of and prepares s->dbr to read the
 * user's part (db_mark_rooms). Returns ROOMREQ_READ, or ROOMREQ_ANSWERED
 * after answering the refusal. */
enum roomreq_kind roomlist_prepare(struct session *s);
/* Answers `rooms` from s->dbr, the finished read. */
void roomlist_answer(struct session *s);
/* Frees what roomlist_prepare made for s->dbr (idempotent). */
void roomlist_abandon(struct session *s);

#endif
