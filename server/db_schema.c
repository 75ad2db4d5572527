/* db_schema.c -- opening the database: the file opened and checked
 * (PRAGMA quick_check), the pragmas, the migrations (schema/NNN_*.sql), the
 * highest id assigned so far, and every statement prepared (their SQL is
 * here). Runs on the main thread in db_open(), before the worker starts;
 * db__setting() also runs on any thread later, under the connection lock
 * (db_setting()).
 */
#include "db_impl.h"

#include <stdio.h>
#include <string.h>

#include "assets.h"

/* The columns put_row() (db_read.c) reads, in its order. */
#define MSG_COLS "id,ts,user_id,user_name,text,client_id,rev,edited_ts,deleted,bot"

static const char *const sql_text[ST_COUNT] = {
    /* Ids are assigned by the worker (db->max_id + 1), from the one
     * sequence that edits and deletes take theirs from too. */
    [ST_INSERT] =
        "INSERT INTO messages(id,room,user_id,user_name,text,ts,client_id,rev,bot) "
        "VALUES(?7,?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(room,user_id,client_id) DO "
        "NOTHING",
    [ST_FIND] =
        "SELECT id, ts FROM messages WHERE room=?1 AND user_id=?2 AND client_id=?3",
    /* A join's `since`: every change after ?2 to a message the read may
     * see (id <= ?4), oldest change first: one range of the (room, rev)
     * index. A message changed by a later request of the same batch comes
     * in its current state (rev > ?4); that change's own event follows the
     * join and applies again. */
    [ST_SINCE] = "SELECT " MSG_COLS " FROM messages WHERE room=?1 AND rev>?2 AND id<=?4 "
                 "ORDER BY rev LIMIT ?3",
    [ST_MSG_GET] =
        "SELECT user_id, deleted, text, bot FROM messages WHERE id=?1 AND room=?2",
    [ST_EDIT_LOG] = "INSERT INTO edits(id,msg_id,room,kind,old_text,new_text,by_user,ts) "
                    "VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [ST_EDIT_APPLY] = "UPDATE messages SET text=?1, rev=?2, edited_ts=?3 WHERE id=?4",
    [ST_DELETE_APPLY] = "UPDATE messages SET text='', rev=?1, deleted=1 WHERE id=?2",
    [ST_USER] = "INSERT INTO users(id,name,guest,first_seen,last_seen,role) "
                "VALUES(?1,?2,?3,?4,?4,?5) ON CONFLICT(id) DO UPDATE SET "
                "name=excluded.name, last_seen=excluded.last_seen, role=excluded.role",
    /* Reads are bounded by ?4 (or ?2): the highest id assigned before the
     * read was submitted, as they run after the commit of later sends. */
    [ST_AFTER] = "SELECT " MSG_COLS " FROM messages "
                 "WHERE room=?1 AND id>?2 AND id<=?4 ORDER BY id ASC LIMIT ?3",
    /* The newest `limit` below ?2, newest first (run_read reverses them). */
    [ST_BEFORE] = "SELECT " MSG_COLS " FROM messages "
                  "WHERE room=?1 AND id<?2 ORDER BY id DESC LIMIT ?3",
    [ST_OLDER] = "SELECT EXISTS(SELECT 1 FROM messages WHERE room=?1 AND id<?2)",
    /* A room's newest id or rev: the (room, rev) index's last entry. */
    [ST_LAST] = "SELECT coalesce(max(rev),0) FROM messages WHERE room=?1 AND rev<=?2",
    [ST_PRUNE_AGE] = "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                     "WHERE ts < ?1 ORDER BY id LIMIT ?2)",
    [ST_ROOMS] = "SELECT room FROM messages GROUP BY room",
    /* Deletes the oldest rows of room ?1 beyond the newest ?2, ?3 at a time. */
    [ST_PRUNE_ROOM] = "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                      "WHERE room=?1 AND id <= (SELECT id FROM messages WHERE room=?1 "
                      "ORDER BY id DESC LIMIT 1 OFFSET ?2) ORDER BY id LIMIT ?3)",
    /* The search index's next chunk above the watermark ?1, up to the
     * committed ?2, at most ?3 rows: how many, and where it ends. */
    [ST_IDX_END] = "SELECT count(*), max(id) FROM (SELECT id FROM messages "
                   "WHERE id>?1 AND id<=?2 ORDER BY id LIMIT ?3)",
    [ST_IDX_ADD] = "INSERT INTO messages_fts(rowid,text) SELECT id,text FROM messages "
                   "WHERE id>?1 AND id<=?2",
    [ST_IDX_SET] = "UPDATE search_index SET indexed=?1",
    [ST_IDX_GET] = "SELECT indexed FROM search_index",
    /* An HTTP API write (db.h: api), in the transaction of the change. */
    [ST_MODLOG] =
        "INSERT INTO mod_log(ts,actor,actor_name,action,target,room,message_id) "
        "VALUES(?1,'api','API',?2,?3,?4,?5)",
    /* The API's rooms listing: each room found by a seek past the one
     * before (a loose index scan), its newest rev by one more seek, so it
     * costs two seeks a room, not a scan of every message (1M messages in
     * 2000 rooms: 0.28 s as a GROUP BY, which would hold the writes). */
    [ST_ALL_ROOMS] =
        "WITH RECURSIVE r(room) AS (SELECT min(room) FROM messages UNION ALL "
        "SELECT (SELECT min(room) FROM messages WHERE room > r.room) FROM r "
        "WHERE r.room IS NOT NULL) "
        "SELECT room, (SELECT coalesce(max(rev),0) FROM messages m "
        "WHERE m.room=r.room AND m.rev<=?1) FROM r WHERE room IS NOT NULL",
    /* Cluster mode: the log position applied, with the batch's changes. */
    [ST_POS_SET] = "INSERT INTO settings(key,value) VALUES('cluster_pos',?1) "
                   "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
    /* Cluster mode: user ?1's ban (or, when ?4, mute too) in room ?2 or
     * server-wide ('') at event time ?3, a ban first; 'ban' sorts first. */
    [ST_SANCTIONED] = "SELECT kind, coalesce(until,0) FROM sanctions WHERE user_id=?1 "
                      "AND room IN (?2,'') AND (until IS NULL OR until>?3) "
                      "AND (kind='ban' OR ?4) ORDER BY kind LIMIT 1",
    /* Cluster mode: user ?1 stored as welcomed now (name ?2, guest ?3,
     * role ?5), seen since ?4: its record needs no event. */
    [ST_USER_SAME] = "SELECT 1 FROM users WHERE id=?1 AND name=?2 AND guest=?3 "
                     "AND last_seen>?4 AND role IS ?5",
};

/* ---- opening and migrating (main thread) ---- */

static int db_exec(struct db *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db->conn, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    snprintf(err, errlen, "%s: %s", db->opt.path, msg ? msg : sqlite3_errmsg(db->conn));
    sqlite3_free(msg);
    return -1;
}

static int user_version(struct db *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db->conn, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A migration's version: the number its file name starts with ("007_x.sql"
 * is 7), or -1. */
static int file_version(const char *path)
{
    int v = 0, digits = 0;
    for (; path[digits] >= '0' && path[digits] <= '9' && digits < 6; digits++)
        v = v * 10 + (path[digits] - '0');
    return digits && path[digits] == '_' ? v : -1;
}

/* Runs `sql` (with ?1 bound to arg, when it has one); returns its first
 * column as an integer (0 when no row), or -1 on error. */
static int64_t int_query(struct db *db, const char *sql, int64_t arg)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, arg);
        int rc = sqlite3_step(st);
        v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : rc == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    return v;
}

/* Makes sure schema_applied lists every migration already applied. A
 * database from before the table was migrated by position, 1 to
 * user_version without a gap: those are listed once, when the table is
 * made. */
static int applied_table(struct db *db, int have, char *err, size_t errlen)
{
    if (int_query(db, "SELECT count(*) FROM sqlite_master WHERE name='schema_applied'",
                  0) > 0)
        return 0;
    char seed[200];
    snprintf(seed, sizeof seed,
             "WITH RECURSIVE v(n) AS (SELECT 1 WHERE %d >= 1 UNION ALL SELECT n+1 FROM v "
             "WHERE n < %d) INSERT INTO schema_applied SELECT n FROM v;COMMIT;",
             have, have);
    if (db_exec(db, "BEGIN IMMEDIATE", err, errlen)) return -1;
    if (db_exec(db, "CREATE TABLE schema_applied(version INTEGER PRIMARY KEY)", err,
                errlen) ||
        db_exec(db, seed, err, errlen)) {
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

/* Applies every schema/NNN_*.sql file (sorted by name) not yet listed in
 * schema_applied, each in its own transaction that lists it and sets
 * PRAGMA user_version to the highest number applied. A migration's number
 * comes from its file name, not its position, and each is recorded on its
 * own, so a number left free for a feature still in the making (006 while
 * 007 is merged) is applied whenever it arrives, even to a database
 * already at 7. Returns 0 or -1 with err set. */
static int db_migrate(struct db *db, char *err, size_t errlen)
{
    int have = user_version(db), top = 0;
    if (have < 0) return snprintf(err, errlen, "%s: not a database", db->opt.path), -1;
    for (int i = 0; assets_schema[i].path; i++) {
        int v = file_version(assets_schema[i].path);
        if (v <= top)
            return snprintf(err, errlen, "schema file %s: bad or repeated number",
                            assets_schema[i].path),
                   -1;
        top = v;
    }
    if (have > top)
        return snprintf(err, errlen,
                        "%s: schema version %d is newer than this server's %d",
                        db->opt.path, have, top),
               -1;
    if (applied_table(db, have, err, errlen)) return -1;
    for (int i = 0; assets_schema[i].path; i++) {
        int v = file_version(assets_schema[i].path);
        int64_t done =
            int_query(db, "SELECT count(*) FROM schema_applied WHERE version=?1", v);
        if (done < 0)
            return snprintf(err, errlen, "%s: %s", db->opt.path,
                            sqlite3_errmsg(db->conn)),
                   -1;
        if (done) continue;
        char sql[120];
        snprintf(sql, sizeof sql,
                 ";INSERT INTO schema_applied VALUES(%d);PRAGMA user_version=%d;COMMIT;",
                 v, v > have ? v : have);
        if (v > have) have = v;
        if (db_exec(db, "BEGIN IMMEDIATE", err, errlen)) return -1;
        if (db_exec(db, (const char *)assets_schema[i].data, err, errlen) ||
            db_exec(db, sql + 1, err, errlen)) {
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

/* A damaged file is refused at start rather than found mid-write. */
static int quick_check(struct db *db, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int ok = 0;
    if (sqlite3_prepare_v2(db->conn, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        ok = !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
    if (!ok)
        snprintf(err, errlen, "%s: %s", db->opt.path,
                 sqlite3_errcode(db->conn) == SQLITE_ROW ||
                         sqlite3_errcode(db->conn) == SQLITE_OK
                     ? "damaged (PRAGMA quick_check failed)"
                     : sqlite3_errmsg(db->conn));
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* Reads the highest id ever assigned: the sequence's start, and the
 * reads' bound until the first write. Deleted rows (retention) still count
 * through sqlite_sequence; edits through their own table. */
static int max_id(struct db *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db->conn,
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name='messages'),0),"
        "coalesce((SELECT max(rev) FROM messages),0),"
        "coalesce((SELECT max(id) FROM edits),0))",
        -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        db->max_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return 0;
    snprintf(err, errlen, "%s: %s", db->opt.path, sqlite3_errmsg(db->conn));
    return -1;
}

/* Reads the cluster's log position this file has applied (0: none). The
 * reads' bound is at least it: every seq applied took an id or passed. */
static int log_pos(struct db *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db->conn,
        "SELECT coalesce((SELECT value FROM settings WHERE key='cluster_pos'),0)", -1,
        &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        db->pos = db->pos_next = db->pos_shared = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        snprintf(err, errlen, "%s: %s", db->opt.path, sqlite3_errmsg(db->conn));
        return -1;
    }
    if (db->pos > db->max_id) db->max_id = db->pos;
    /* A single node's file turning into a cluster's first node: its log
     * starts after its ids (cluster_read.c sets an empty Redis's counter
     * there), so no event takes an id it holds. */
    if (db->opt.forward && db->pos < db->max_id)
        db->pos = db->pos_next = db->pos_shared = db->max_id;
    return 0;
}

/* Opens, checks, migrates and prepares (db_impl.h). */
int db__setup(struct db *db, char *err, size_t errlen)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(db->opt.path, &db->conn, flags, db->opt.vfs) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db->opt.path,
                 db->conn ? sqlite3_errmsg(db->conn) : "cannot open");
        return -1;
    }
    sqlite3_busy_timeout(db->conn, db->opt.busy_ms);
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;",
             db->opt.sync_full ? "FULL" : "NORMAL");
    if (quick_check(db, err, errlen) || db_exec(db, pragmas, err, errlen) ||
        db_migrate(db, err, errlen))
        return -1;
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(db->conn, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &db->st[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: %s", db->opt.path, sqlite3_errmsg(db->conn));
            return -1;
        }
    db->dm.no_guests = db->opt.no_guest_dms;
    if (db_dm_prepare(&db->dm, db->conn) != SQLITE_OK ||
        db_mark_prepare(&db->mark, db->conn) != SQLITE_OK ||
        db_mod_prepare(&db->mod, db->conn) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db->opt.path, sqlite3_errmsg(db->conn));
        return -1;
    }
    if (max_id(db, err, errlen) || log_pos(db, err, errlen)) return -1;
    if (db__index_load(db) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db->opt.path, sqlite3_errmsg(db->conn));
        return -1;
    }
    return 0;
}

/* ---- settings (any thread, under the connection lock) ---- */

/* Stores key = value, replacing the old value or keeping it. Returns 0 or
 * -1. Under the connection lock. */
static int put_setting(struct db *db, const char *key, const char *value, int replace)
{
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db->conn,
                       replace ? "INSERT INTO settings(key,value) VALUES(?1,?2) "
                                 "ON CONFLICT(key) DO UPDATE SET value=excluded.value"
                               : "INSERT INTO settings(key,value) VALUES(?1,?2) "
                                 "ON CONFLICT(key) DO NOTHING",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int db__setting_set(struct db *db, const char *key, const char *value)
{
    return put_setting(db, key, value, 1);
}

char *db__setting(struct db *db, const char *key, const char *fresh)
{
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (put_setting(db, key, fresh, 0)) return NULL;
    sqlite3_prepare_v2(db->conn, "SELECT value FROM settings WHERE key=?1", -1, &st,
                       NULL);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}
