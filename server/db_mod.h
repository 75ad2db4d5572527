/* db_mod.h -- moderation in the database: the log (mod_log) and the mutes
 * and bans (sanctions), schema 007. Worker thread (db_mod_run, inside a
 * batch's write transaction), or the main thread at start (loading). */
#ifndef PARLEY_DB_MOD_H
#define PARLEY_DB_MOD_H

#include <stdint.h>
#include <sqlite3.h>

struct db_req;

struct db_mod {
    sqlite3_stmt *log, *set, *lift, *load, *role;
};

int db_mod_prepare(struct db_mod *m, sqlite3 *conn);
void db_mod_finalize(struct db_mod *m);
/* Runs a DB_MOD request: logs it and stores or lifts its sanction. An
 * unmute or unban of nothing is still logged, with r->duplicate set. A
 * target whose role is not below the actor's (db.h: role) is refused,
 * r->status DB_FORBIDDEN, nothing stored.
 * Returns SQLITE_OK, or the failing statement's error (r->status set). */
int db_mod_run(struct db_mod *m, struct db_req *r, int64_t now_ms);
/* Logs a moderator's delete of someone else's message (r: the DB_DELETE,
 * whose msg_id is the message and author its author). */
int db_mod_log_delete(struct db_mod *m, const struct db_req *r, const char *author,
                      int64_t now_ms);

#endif
