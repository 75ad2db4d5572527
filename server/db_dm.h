/* db_dm.h -- the database worker's direct-message queries: which pair owns
 * a DM room, making a pair's room, and a user's DM rooms (schema/004).
 *
 * db_write.c and db_read.c call these; they never begin or end a
 * transaction. Writes run them inside the batch's; a read's pair check runs
 * just before the read's own, which is the same answer: a dm_rooms row is
 * never changed or removed. Worker thread only, like every statement on
 * the connection.
 */
#ifndef PARLEY_DB_DM_H
#define PARLEY_DB_DM_H

#include <stdint.h>
#include <sqlite3.h>

#include "db.h"

struct db_dm {
    sqlite3_stmt *pair, *make, *user, *list, *touch;
    int no_guests; /* --no-guest-dms: a DM room with a guest in it is closed */
};

/* A DM room as db_dm_each lists it. */
struct db_dm_row {
    const char *room, *peer_json; /* the other user as USER JSON */
    int64_t read;                 /* the listing user's marker (0: none) */
};

/* Prepares the statements. Returns SQLITE_OK or the error (then call
 * db_dm_finalize). */
int db_dm_prepare(struct db_dm *d, sqlite3 *conn);
void db_dm_finalize(struct db_dm *d);

/* Checks that r->user_id is one of the two users of DM room r->room.
 * Returns SQLITE_OK with r->status DB_OK, or DB_FORBIDDEN when the room
 * belongs to no pair or to another one, or (d->no_guests) a guest is one
 * of its pair; or the failing statement's error
 * with r->status set. With `want`, on DB_OK it also fills (new references,
 * owned by r's submitter): for writes r->pair ("a\0b\0", both ids), for
 * reads r->peer (the other user as USER JSON). */
int db_dm_check(struct db_dm *d, struct db_req *r, int want);

/* DB_DM: makes the room of the pair (r->user_id, r->peer_id) unless it
 * exists. The peer must have been welcomed once (else DB_NOT_FOUND), and
 * not as a guest when r->no_guest_dms or d->no_guests (else DB_FORBIDDEN). Returns
 * SQLITE_OK (refusals included) or the failing statement's error. */
int db_dm_make(struct db_dm *d, struct db_req *r, int64_t now_ms);

/* A message or change (id) in DM room r->room: the room's newest activity,
 * which orders the listing. Returns SQLITE_OK or the error (r->status). */
int db_dm_touch(struct db_dm *d, struct db_req *r, int64_t id);

/* Calls fn(arg, row) for each DM room of r->user_id, the most recently
 * active first, at most `limit`: the rooms with a message, and the empty
 * ones r->user_id asked for (nobody else can fill its list). None with a
 * guest in it when d->no_guests (r->guest: the user is one). fn's non-zero
 * return stops the walk and is returned. Returns SQLITE_OK, or the error
 * (r->status set). */
int db_dm_each(struct db_dm *d, struct db_req *r, int limit,
               int (*fn)(void *arg, const struct db_dm_row *row), void *arg);

#endif
