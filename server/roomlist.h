/* roomlist.h -- the `rooms` listing: the rooms with members online, the
 * rooms this connection joined or remembers, and this user's DM rooms
 * (read from the database: they are listed online or not). Another pair's
 * DM room is never listed. Event-loop thread only.
 */
#ifndef PARLEY_ROOMLIST_H
#define PARLEY_ROOMLIST_H

struct session;

/* Answers `rooms` from s->dbr, a finished read of the user's DM rooms
 * (db_dm_list's lines). */
void roomlist_answer(struct session *s);

#endif
