/* db_mark.h -- the database worker's read markers (schema/005): moving a
 * user's marker forward, reading it for a join, and the per-user part of
 * the `rooms` listing (each room's marker and unread count, the user's DM
 * rooms, the rooms where the user has a marker).
 *
 * db_write.c and db_read.c call these; they never begin or end a
 * transaction. Worker thread only.
 */
#ifndef PARLEY_DB_MARK_H
#define PARLEY_DB_MARK_H

#include <stdint.h>
#include <sqlite3.h>

#include "db.h"

/* Unread messages counted at most per room ("1000 means 1000 or more"). */
#define DB_UNREAD_MAX 1000
/* Rooms listed at most from the user's markers, and from its DMs. */
#define DB_MARK_LIST_MAX 1000

struct db_dm;

struct db_mark {
    sqlite3_stmt *last, *set, *get, *unread, *mine;
};

/* Prepares the statements. Returns SQLITE_OK or the error (then call
 * db_mark_finalize). */
int db_mark_prepare(struct db_mark *m, sqlite3 *conn);
void db_mark_finalize(struct db_mark *m);

/* DB_MARK: moves r->user_id's marker in r->room to r->msg_id, clamped to
 * the room's highest id or rev (at most hi), never backwards. r->id gets
 * the marker as stored; r->duplicate is set when it did not move. Returns
 * SQLITE_OK or the failing statement's error (r->status set). */
int db_mark_set(struct db_mark *m, struct db_req *r, int64_t hi, int64_t now_ms);

/* r->read_id = r->user_id's marker in r->room (0: none). Returns SQLITE_OK
 * or the error (r->status set). */
int db_mark_get(struct db_mark *m, struct db_req *r);

/* DB_READ with dms: r->rows gets one line per room, in this order: each of
 * r->rooms_in, then the user's DM rooms (newest pair first), then the other
 * rooms where the user has a marker. A line is
 * "ROOM\tLAST_ID\tREAD\tUNREAD\tPEER\n": the room's newest id or rev (at
 * most hi), the marker (0: none), the messages above it that are not
 * deleted and not the user's (at most DB_UNREAD_MAX), and for a DM room
 * the other user as USER JSON (JSON escapes every tab and newline), else
 * nothing. Returns SQLITE_OK or the error (r->rows NULL, r->status set). */
int db_mark_rooms(struct db_mark *m, struct db_dm *d, struct db_req *r, int64_t hi);

#endif
