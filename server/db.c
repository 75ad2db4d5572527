/* db.c -- the SQLite worker thread, its bounded queue and group commit. */
#include "db.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>

#include "assets.h"
#include "db_dm.h"
#include "log.h"
#include "protocol.h"

enum {
    ST_INSERT,
    ST_FIND,
    ST_SINCE,
    ST_MSG_GET,
    ST_EDIT_LOG,
    ST_EDIT_APPLY,
    ST_DELETE_APPLY,
    ST_USER,
    ST_AFTER,
    ST_BEFORE,
    ST_OLDER,
    ST_LAST,
    ST_PRUNE_AGE,
    ST_ROOMS,
    ST_PRUNE_ROOM,
    ST_COUNT
};

#define PRUNE_STEP 500 /* rows deleted per transaction: short, so writes wait little */

/* The columns put_row() reads, in its order. */
#define MSG_COLS "id,ts,user_id,user_name,text,client_id,rev,edited_ts,deleted"

static const char *const sql_text[ST_COUNT] = {
    /* Ids are assigned by the worker (db->max_id + 1), from the one
     * sequence that edits and deletes take theirs from too. */
    [ST_INSERT] =
        "INSERT INTO messages(id,room,user_id,user_name,text,ts,client_id,rev) "
        "VALUES(?7,?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(room,user_id,client_id) DO NOTHING",
    [ST_FIND] =
        "SELECT id, ts FROM messages WHERE room=?1 AND user_id=?2 AND client_id=?3",
    /* A join's `since`: every change after ?2 to a message the read may
     * see (id <= ?4), oldest change first: one range of the (room, rev)
     * index. A message changed by a later request of the same batch comes
     * in its current state (rev > ?4); that change's own event follows the
     * join and applies again. */
    [ST_SINCE] = "SELECT " MSG_COLS " FROM messages WHERE room=?1 AND rev>?2 AND id<=?4 "
                 "ORDER BY rev LIMIT ?3",
    [ST_MSG_GET] = "SELECT user_id, deleted, text FROM messages WHERE id=?1 AND room=?2",
    [ST_EDIT_LOG] = "INSERT INTO edits(id,msg_id,room,kind,old_text,new_text,by_user,ts) "
                    "VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [ST_EDIT_APPLY] = "UPDATE messages SET text=?1, rev=?2, edited_ts=?3 WHERE id=?4",
    [ST_DELETE_APPLY] = "UPDATE messages SET text='', rev=?1, deleted=1 WHERE id=?2",
    [ST_USER] = "INSERT INTO users(id,name,guest,first_seen,last_seen) "
                "VALUES(?1,?2,?3,?4,?4) ON CONFLICT(id) DO UPDATE SET "
                "name=excluded.name, last_seen=excluded.last_seen",
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
};

struct db {
    struct db_options opt;
    sqlite3 *conn;              /* under conn_lock once the worker runs */
    sqlite3_stmt *st[ST_COUNT]; /* worker thread only */
    struct db_dm dm;            /* worker thread only: the DM statements */
    pthread_t thread;
    int started;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled on submit and stop */
    /* Held by the worker for each transaction (a batch's writes, a read, a
     * prune step) and by db_setting(): one connection, one user at a time,
     * so a setting read at start never lands inside the worker's first
     * prune transaction. */
    pthread_mutex_t conn_lock;
    struct db_req *q_head, *q_tail; /* guarded by lock */
    int q_len;                      /* guarded by lock */
    struct db_req *d_head, *d_tail; /* done list, guarded by lock */
    int stopping;                   /* guarded by lock */
    struct db_stats stats;          /* guarded by lock */
    int64_t next_prune_ms;          /* worker thread only */
    int64_t max_id; /* worker thread only: the highest message id assigned */
};

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static double mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

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

/* Applies schema/NNN_*.sql files numbered above PRAGMA user_version, each in
 * its own transaction. Returns 0 or -1 with err set. */
static int db_migrate(struct db *db, char *err, size_t errlen)
{
    int have = user_version(db), n = 0;
    if (have < 0) return snprintf(err, errlen, "%s: not a database", db->opt.path), -1;
    while (assets_schema[n].path)
        n++;
    if (have > n)
        return snprintf(err, errlen,
                        "%s: schema version %d is newer than this server's %d",
                        db->opt.path, have, n),
               -1;
    for (int v = have + 1; v <= n; v++) {
        char sql[64];
        snprintf(sql, sizeof sql, ";PRAGMA user_version=%d;COMMIT;", v);
        if (db_exec(db, "BEGIN IMMEDIATE", err, errlen)) return -1;
        if (db_exec(db, (const char *)assets_schema[v - 1].data, err, errlen) ||
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

static int db_setup(struct db *db, char *err, size_t errlen)
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
    if (db_dm_prepare(&db->dm, db->conn) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db->opt.path, sqlite3_errmsg(db->conn));
        return -1;
    }
    return max_id(db, err, errlen);
}

/* db_setting() under the connection lock. */
static char *setting(struct db *db, const char *key, const char *fresh)
{
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    sqlite3_prepare_v2(db->conn,
                       "INSERT INTO settings(key,value) VALUES(?1,?2) "
                       "ON CONFLICT(key) DO NOTHING",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fresh, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return NULL;
    sqlite3_prepare_v2(db->conn, "SELECT value FROM settings WHERE key=?1", -1, &st,
                       NULL);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

char *db_setting(struct db *db, const char *key, const char *fresh)
{
    pthread_mutex_lock(&db->conn_lock);
    char *out = setting(db, key, fresh);
    pthread_mutex_unlock(&db->conn_lock);
    return out;
}

/* ---- the worker ---- */

enum db_status db_status_of(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED || rc == SQLITE_FULL ||
                   rc == SQLITE_IOERR || rc == SQLITE_CANTOPEN
               ? DB_BUSY
               : DB_FAILED;
}

/* Logs why a request failed: the client only hears "overloaded" or
 * "internal", the operator needs SQLite's own words. Worker thread. */
static void log_failure(struct db *db, const char *what, int rc)
{
    plog(LOG_WARN, "db-failed", "op=%s rc=%d reason=\"%s\"", what, rc,
         sqlite3_errmsg(db->conn));
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* In a DM room, checks that r's user is one of its pair (db_dm.h): a
 * refusal is r->status with SQLITE_OK, costing the batch nothing. Other
 * rooms pass. Returns SQLITE_OK or the failing statement's error. */
static int dm_checked(struct db *db, struct db_req *r, int want)
{
    return proto_room_is_dm(r->room) ? db_dm_check(&db->dm, r, want) : SQLITE_OK;
}

/* Stores one message. Returns SQLITE_OK, or the error of the statement that
 * failed (r->status says how); the caller checks whether it cost the
 * transaction. */
static int run_send(struct db *db, struct db_req *r, int64_t *max_id)
{
    sqlite3_stmt *ins = db->st[ST_INSERT], *find = db->st[ST_FIND];
    int64_t ts = now_ms();
    int rc = dm_checked(db, r, 1);
    if (rc != SQLITE_OK || r->status != DB_OK) return rc;
    sqlite3_bind_int64(ins, 7, *max_id + 1);
    sqlite3_bind_text(ins, 1, r->room, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, r->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, r->user_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, r->text, (int)r->text_len, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 5, ts);
    sqlite3_bind_text(ins, 6, r->client_id, -1, SQLITE_STATIC);
    rc = step_done(ins);
    if (rc != SQLITE_OK) {
        log_failure(db, "insert", rc);
        r->status = db_status_of(rc);
        return rc;
    }
    if (sqlite3_changes(db->conn) == 1) {
        r->id = ++*max_id;
        r->ts = ts;
        return SQLITE_OK;
    }
    sqlite3_bind_text(find, 1, r->room, -1, SQLITE_STATIC);
    sqlite3_bind_text(find, 2, r->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(find, 3, r->client_id, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(find)) == SQLITE_ROW) {
        r->id = sqlite3_column_int64(find, 0);
        r->ts = sqlite3_column_int64(find, 1);
        r->duplicate = 1;
        rc = SQLITE_OK;
    } else {
        log_failure(db, "find", rc);
        r->status = rc == SQLITE_DONE ? DB_FAILED : db_status_of(rc);
        rc = rc == SQLITE_DONE ? SQLITE_ERROR : rc;
    }
    sqlite3_reset(find);
    return rc;
}

/* Binds text parameter i of st: NULL binds SQL NULL. */
static void bind_text(sqlite3_stmt *st, int i, const char *v, int n)
{
    sqlite3_bind_text(st, i, v, n, SQLITE_STATIC);
}

/* Checks that r->msg_id is a live message of r->room that r's user may
 * change, and copies its text (the edits log keeps it) into *old, which
 * the caller frees. Returns SQLITE_OK, or an error with r->status set:
 * DB_NOT_FOUND, DB_FORBIDDEN, or the statement's failure. */
static int change_allowed(struct db *db, struct db_req *r, char **old)
{
    sqlite3_stmt *get = db->st[ST_MSG_GET];
    sqlite3_bind_int64(get, 1, r->msg_id);
    bind_text(get, 2, r->room, -1);
    int rc = sqlite3_step(get);
    *old = NULL;
    if (rc == SQLITE_ROW && !sqlite3_column_int(get, 1)) {
        int mine = !strcmp((const char *)sqlite3_column_text(get, 0), r->user_id);
        if (!mine && !(r->op == DB_DELETE && r->any_author))
            r->status = DB_FORBIDDEN;
        else if (!(*old = strdup((const char *)sqlite3_column_text(get, 2))))
            r->status = DB_FAILED, rc = SQLITE_NOMEM;
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        r->status = DB_NOT_FOUND;
    else
        r->status = db_status_of(rc);
    sqlite3_reset(get);
    return r->status == DB_OK                      ? SQLITE_OK
           : rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK
                                                   : rc;
}

/* An edit or a delete: takes the next id as the change's (the message's
 * new rev), logs the text it replaces and applies it. A refusal (not
 * found, not the author) is r->status with SQLITE_OK: it costs the batch
 * nothing. Returns the failing statement's error otherwise. */
static int run_change(struct db *db, struct db_req *r, int64_t *max_id)
{
    char *old;
    int rc = dm_checked(db, r, 1);
    if (rc != SQLITE_OK || r->status != DB_OK) return rc;
    if ((rc = change_allowed(db, r, &old)) != SQLITE_OK || r->status != DB_OK) return rc;
    int edit = r->op == DB_EDIT;
    int64_t id = *max_id + 1, ts = now_ms();
    sqlite3_stmt *log = db->st[ST_EDIT_LOG],
                 *apply = db->st[edit ? ST_EDIT_APPLY : ST_DELETE_APPLY];
    sqlite3_bind_int64(log, 1, id);
    sqlite3_bind_int64(log, 2, r->msg_id);
    bind_text(log, 3, r->room, -1);
    bind_text(log, 4, edit ? "edit" : "delete", -1);
    bind_text(log, 5, old, -1);
    bind_text(log, 6, edit ? r->text : NULL, (int)r->text_len);
    bind_text(log, 7, r->user_id, -1);
    sqlite3_bind_int64(log, 8, ts);
    if (edit) {
        bind_text(apply, 1, r->text, (int)r->text_len);
        sqlite3_bind_int64(apply, 2, id);
        sqlite3_bind_int64(apply, 3, ts);
        sqlite3_bind_int64(apply, 4, r->msg_id);
    } else {
        sqlite3_bind_int64(apply, 1, id);
        sqlite3_bind_int64(apply, 2, r->msg_id);
    }
    if ((rc = step_done(log)) == SQLITE_OK) rc = step_done(apply);
    free(old);
    if (rc != SQLITE_OK) {
        log_failure(db, edit ? "edit" : "delete", rc);
        r->status = db_status_of(rc);
        return rc;
    }
    r->id = *max_id = id;
    r->ts = ts;
    return SQLITE_OK;
}

/* Records a welcomed user (first seen, latest name, last seen). */
static int run_user(struct db *db, struct db_req *r)
{
    sqlite3_stmt *st = db->st[ST_USER];
    bind_text(st, 1, r->user_id, -1);
    bind_text(st, 2, r->user_name, -1);
    sqlite3_bind_int(st, 3, r->guest);
    sqlite3_bind_int64(st, 4, now_ms());
    int rc = step_done(st);
    if (rc != SQLITE_OK) {
        log_failure(db, "user", rc);
        r->status = db_status_of(rc);
    }
    return rc;
}

/* Runs one write request of a batch. */
static int run_write(struct db *db, struct db_req *r, int64_t *max_id)
{
    switch (r->op) {
    case DB_SEND:
        return run_send(db, r, max_id);
    case DB_EDIT:
    case DB_DELETE:
        return run_change(db, r, max_id);
    case DB_USER:
        return run_user(db, r);
    case DB_DM:
        return db_dm_make(&db->dm, r, now_ms());
    default:
        assert(!"not a write");
        return SQLITE_MISUSE;
    }
}

/* Runs a one-value query bound to (room, v); returns the value or -1. */
static int64_t scalar(struct db *db, int which, const char *room, int64_t v)
{
    sqlite3_stmt *st = db->st[which];
    int64_t out = -1;
    sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    if (sqlite3_step(st) == SQLITE_ROW) out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return out;
}

/* Appends the current row of a history statement as a MESSAGE object. */
static void put_row(struct buf **b, sqlite3_stmt *st, const char *room)
{
    struct proto_msg m = {
        .room = room,
        .id = sqlite3_column_int64(st, 0),
        .ts = sqlite3_column_int64(st, 1),
        .user_id = (const char *)sqlite3_column_text(st, 2),
        .user_name = (const char *)sqlite3_column_text(st, 3),
        .text = (const char *)sqlite3_column_text(st, 4),
        .text_len = (size_t)sqlite3_column_bytes(st, 4),
        .client_id = (const char *)sqlite3_column_text(st, 5),
        .rev = sqlite3_column_int64(st, 6),
        .edited_ts = sqlite3_column_int64(st, 7),
        .deleted = sqlite3_column_int(st, 8),
    };
    proto_put_message(b, &m);
}

/* Returns rows n-1 .. 0 of `in` (row k at at[k] .. at[k + 1]) joined by
 * commas, or NULL when memory runs out. */
static struct buf *reversed(const struct buf *in, const size_t *at, int n)
{
    struct buf *out = buf_new(in->len + (size_t)n);
    for (int k = n - 1; out && k >= 0; k--) {
        if (k < n - 1) buf_put(&out, ",", 1);
        buf_put(&out, BUF_PAYLOAD(in) + at[k], at[k + 1] - at[k]);
    }
    if (out && out->oom) buf_unref(out), out = NULL;
    return out;
}

/* A row of a since-read, noted while the rows are read in rev order. */
struct since_row {
    size_t at, len; /* in the scratch buffer */
    int64_t id;
};

static int by_id(const void *a, const void *b)
{
    int64_t x = ((const struct since_row *)a)->id, y = ((const struct since_row *)b)->id;
    return (x > y) - (x < y);
}

/* Joins rows [0, n) of scratch, commas between, into a new buf; NULL when
 * memory runs out. */
static struct buf *join_rows(const struct buf *scratch, const struct since_row *rows,
                             int n)
{
    struct buf *out = buf_new(64 + scratch->len);
    for (int k = 0; out && k < n; k++) {
        if (k) buf_put(&out, ",", 1);
        buf_put(&out, BUF_PAYLOAD(scratch) + rows[k].at, rows[k].len);
    }
    if (out && out->oom) buf_unref(out), out = NULL;
    return out;
}

/* Moves rows (in rev order) into r->updates (id <= since, rev order kept)
 * and r->rows (id > since, sorted by id), in place: a stable partition
 * through a second array. Returns SQLITE_OK or SQLITE_NOMEM. */
static int split_since(struct db_req *r, const struct buf *scratch,
                       struct since_row *rows, int n)
{
    struct since_row *order = malloc(((size_t)n + 1) * sizeof(*order));
    int nupd = 0, nnew = 0;
    if (!order) return SQLITE_NOMEM;
    for (int k = 0; k < n; k++)
        if (rows[k].id <= r->since) order[nupd++] = rows[k];
    for (int k = 0; k < n; k++)
        if (rows[k].id > r->since) order[nupd + nnew++] = rows[k];
    qsort(order + nupd, (size_t)nnew, sizeof(*order), by_id);
    r->updates = join_rows(scratch, order, nupd);
    r->rows = join_rows(scratch, order + nupd, nnew);
    r->nrows = nnew;
    free(order);
    return r->updates && r->rows ? SQLITE_OK : SQLITE_NOMEM;
}

/* A join's `since` (the caller's read transaction is open): the changes
 * after it with the lowest revs, up to `limit` and read_max_bytes, each
 * message once in its current state: in r->rows (id > since), oldest id
 * first, or in r->updates (older messages changed since), in rev order.
 * `more` when changes were left out. Returns SQLITE_OK or the error. */
static int run_since(struct db *db, struct db_req *r, int64_t hi)
{
    sqlite3_stmt *st = db->st[ST_SINCE];
    size_t cap = db->opt.read_max_bytes;
    struct buf *scratch = buf_new(4096);
    struct since_row *rows = malloc((size_t)r->limit * sizeof(*rows));
    int n = 0, rc = SQLITE_NOMEM;
    if (!scratch || !rows) goto out;
    bind_text(st, 1, r->room, -1);
    sqlite3_bind_int64(st, 2, r->since);
    sqlite3_bind_int(st, 3, r->limit + 1);
    sqlite3_bind_int64(st, 4, hi);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < r->limit) {
        size_t at = scratch->len;
        put_row(&scratch, st, r->room);
        if (n && scratch->len + (size_t)n > cap) { /* commas included */
            scratch->len = (uint32_t)at;
            break;
        }
        rows[n++] =
            (struct since_row){at, scratch->len - at, sqlite3_column_int64(st, 0)};
    }
    r->more = rc == SQLITE_ROW;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto out;
    rc = SQLITE_NOMEM;
    if (scratch->oom) goto out;
    rc = SQLITE_OK;
out:
    if (rc == SQLITE_OK) rc = split_since(r, scratch, rows, n);
    buf_unref(scratch);
    free(rows);
    return rc;
}

/* Runs one read into r in its own read transaction, seeing ids up to hi
 * only. Its rows stop before passing read_max_bytes (one row always goes
 * in), and `more` is then set. Ascending reads keep the oldest rows that
 * fit, written in order. Descending ones (before, latest) keep the newest
 * that fit, those nearest the bound: they are read newest first, each row's
 * offset noted, and copied out oldest first once. Returns SQLITE_OK or the
 * error that failed the read. */
/* run_since() in its own read transaction, with the room's last id. */
static int read_since(struct db *db, struct db_req *r, int64_t hi)
{
    int rc = sqlite3_exec(db->conn, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = run_since(db, r, hi);
    if (rc == SQLITE_OK && (r->last_id = scalar(db, ST_LAST, r->room, hi)) < 0)
        rc = SQLITE_ERROR;
    if (rc == SQLITE_OK) rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK) return SQLITE_OK;
    log_failure(db, "read", rc);
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    buf_unref(r->rows);
    buf_unref(r->updates);
    r->rows = r->updates = NULL;
    r->status = db_status_of(rc);
    r->nrows = r->more = 0;
    r->last_id = 0;
    return rc;
}

static int run_read(struct db *db, struct db_req *r, int64_t hi)
{
    if (r->dms) return db_dm_list(&db->dm, r, hi);
    int rc = dm_checked(db, r, !r->check);
    if (rc != SQLITE_OK || r->status != DB_OK || r->check) return rc;
    if (r->since >= 0) return read_since(db, r, hi);
    int asc = r->after >= 0;
    sqlite3_stmt *st = db->st[asc ? ST_AFTER : ST_BEFORE];
    size_t cap = db->opt.read_max_bytes;
    int64_t bound = asc                                 ? r->after
                    : r->before >= 0 && r->before <= hi ? r->before
                                                        : hi + 1;
    int64_t oldest = 0;
    size_t guess = (size_t)r->limit * 160;
    struct buf *rows = buf_new(guess < cap ? guess : cap);
    size_t *at = asc ? NULL : malloc(((size_t)r->limit + 1) * sizeof(*at));
    rc = SQLITE_NOMEM;
    if (!rows || (!asc && !at)) goto err;
    if ((rc = sqlite3_exec(db->conn, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK) goto err;
    sqlite3_bind_text(st, 1, r->room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, bound);
    /* Ascending reads ask for one row more to learn whether there is more. */
    sqlite3_bind_int(st, 3, r->limit + asc);
    if (asc) sqlite3_bind_int64(st, 4, hi);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && r->nrows < r->limit) {
        size_t mark = rows->len;
        if (asc && r->nrows) buf_put(&rows, ",", 1);
        if (!asc) at[r->nrows] = rows->len;
        put_row(&rows, st, r->room);
        /* Descending rows get their commas (one per row before) when copied. */
        if (r->nrows && rows->len + (asc ? 0 : (size_t)r->nrows) > cap) {
            rows->len = (uint32_t)mark;
            break;
        }
        oldest = sqlite3_column_int64(st, 0);
        r->nrows++;
    }
    r->more = rc == SQLITE_ROW; /* ascending: stopped by limit + 1 or the cap */
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto err;
    if (rows->oom) goto err;
    if (!asc) {
        /* Descending: more when anything older than the oldest row kept. */
        int64_t older = r->nrows ? scalar(db, ST_OLDER, r->room, oldest) : 0;
        at[r->nrows] = rows->len;
        struct buf *out = reversed(rows, at, r->nrows);
        buf_unref(rows);
        rows = out;
        if (older < 0 || !rows) goto err;
        r->more = older > 0;
    }
    r->last_id = scalar(db, ST_LAST, r->room, hi);
    if (r->last_id < 0) goto err;
    if ((rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) goto err;
    free(at);
    r->rows = rows;
    return SQLITE_OK;
err:
    log_failure(db, "read", rc);
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    free(at);
    buf_unref(rows);
    r->status = db_status_of(rc);
    r->nrows = r->more = 0;
    r->last_id = 0;
    return rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_ERROR : rc;
}

static int batch_has_writes(struct db_req *r)
{
    for (; r; r = r->next)
        if (r->op != DB_READ) return 1;
    return 0;
}

static int bucket(double v, const double *bounds, int n)
{
    int i = 0;
    while (i < n && v > bounds[i])
        i++;
    return i;
}

/* Runs the sends of a batch in one write transaction and commits. Each read
 * keeps in its last_id, until it runs, the highest id assigned before it:
 * the bound of what it may see. Some errors (disk full, I/O error, out of
 * memory) make SQLite roll the whole transaction back itself and return to
 * autocommit: the rest of the batch must not run then, or each statement
 * would commit on its own while the batch is reported failed. Returns
 * SQLITE_OK, or the error that failed the batch, and then every request of
 * it has failed; *lost says whether SQLite rolled it back mid-batch. */
static int run_writes(struct db *db, struct db_req *batch, int *lost)
{
    int64_t max_id = db->max_id;
    int rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (struct db_req *r = batch; r && rc == SQLITE_OK; r = r->next) {
        if (r->op == DB_READ) {
            r->last_id = max_id;
            continue;
        }
        int src = run_write(db, r, &max_id);
        if (src != SQLITE_OK && sqlite3_get_autocommit(db->conn)) {
            log_failure(db, "transaction lost", src);
            rc = src, *lost = 1;
        }
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        db->max_id = max_id;
        return SQLITE_OK;
    }
    if (!*lost) log_failure(db, "transaction", rc);
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    /* The reads still run, bounded by what was committed before the batch:
     * none of its writes happened, so they see exactly what precedes them
     * (a full disk refuses writes, not reads). */
    for (struct db_req *r = batch; r; r = r->next) {
        if (r->op == DB_READ) {
            r->last_id = db->max_id;
            continue;
        }
        if (r->status == DB_OK) r->status = db_status_of(rc);
        r->id = r->ts = r->last_id = 0;
        r->duplicate = 0;
    }
    return rc;
}

static void count_batch(struct db *db, int n, int writes, int lost, double us)
{
    static const double sizes[] = {1, 4, 16, 64, 256, 1024},
                        lat[] = {100, 1e3, 5e3, 1e4, 5e4, 1e5, 1e6};
    pthread_mutex_lock(&db->lock);
    db->stats.batches++;
    db->stats.batch_sum += (uint64_t)n;
    db->stats.batch_hist[bucket(n, sizes, 6)]++;
    db->stats.aborted += (uint64_t)lost;
    if (writes) {
        db->stats.commit_hist[bucket(us, lat, 7)]++;
        db->stats.commit_sum_us += us;
    }
    pthread_mutex_unlock(&db->lock);
}

/* Counts the chain head .. tail, appends it to the done list and calls the
 * wake hook. From then on those requests are the loop's again: the worker
 * must not touch them (it read the link past tail before). */
static void deliver(struct db *db, struct db_req *head, struct db_req *tail)
{
    pthread_mutex_lock(&db->lock);
    for (struct db_req *r = head; r; r = r->next) {
        if (r->op == DB_SEND && r->status == DB_OK)
            r->duplicate ? db->stats.duplicates++ : db->stats.stored++;
        db->stats.failures += r->status != DB_OK;
    }
    if (db->d_tail)
        db->d_tail->next = head;
    else
        db->d_head = head;
    db->d_tail = tail;
    pthread_mutex_unlock(&db->lock);
    if (db->opt.wake) db->opt.wake(db->opt.wake_arg);
}

/* Runs one batch: its sends in one transaction, committed first; then each
 * read in its own read transaction, bounded to the ids assigned before it,
 * so it sees exactly the sends submitted before it. Completions go out in
 * order, in chunks that end before each read: a long read holds neither
 * the commit nor the acks of the requests ahead of it. When the write
 * transaction fails, every write of the batch fails and the reads run on
 * what was committed before it. */
static void run_batch(struct db *db, struct db_req *batch, int n)
{
    double t0 = mono_us();
    int writes = batch_has_writes(batch), lost = 0;
    pthread_mutex_lock(&db->conn_lock);
    if (writes) /* when it fails, the reads below still run (db.h) */
        run_writes(db, batch, &lost);
    else
        for (struct db_req *r = batch; r; r = r->next)
            r->last_id = db->max_id;
    pthread_mutex_unlock(&db->conn_lock);
    count_batch(db, n, writes, lost, mono_us() - t0);
    for (struct db_req *r = batch, *tail, *next; r; r = next) {
        if (r->op == DB_READ) {
            pthread_mutex_lock(&db->conn_lock);
            run_read(db, r, r->last_id);
            pthread_mutex_unlock(&db->conn_lock);
        }
        for (tail = r; tail->next && tail->next->op != DB_READ;)
            tail = tail->next;
        next = tail->next;
        tail->next = NULL;
        deliver(db, r, tail);
    }
}

static int prune_enabled(const struct db *db)
{
    return db->opt.retention_ms > 0 || db->opt.max_per_room > 0;
}

/* Takes up to batch_max requests off the queue, waiting while it is empty
 * (when pruning is on, at most until the next prune is due). Returns NULL
 * when stopping with nothing left, or when a prune is due. */
static struct db_req *take_batch(struct db *db, int *n, int *stopping)
{
    pthread_mutex_lock(&db->lock);
    while (!db->q_head && !db->stopping) {
        if (!prune_enabled(db)) {
            pthread_cond_wait(&db->cond, &db->lock);
            continue;
        }
        if (now_ms() >= db->next_prune_ms) break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&db->cond, &db->lock, &until);
    }
    struct db_req *head = db->q_head, *r = head;
    *n = 0;
    *stopping = db->stopping;
    if (head) {
        for (*n = 1; *n < db->opt.batch_max && r->next; (*n)++)
            r = r->next;
        db->q_head = r->next;
        if (!db->q_head) db->q_tail = NULL;
        r->next = NULL;
        db->q_len -= *n;
    }
    pthread_mutex_unlock(&db->lock);
    return head;
}

static int queue_empty(struct db *db)
{
    pthread_mutex_lock(&db->lock);
    int empty = !db->q_head;
    pthread_mutex_unlock(&db->lock);
    return empty;
}

/* Runs `st` (already bound) in its own short transaction; returns rows
 * deleted, or -1. */
static int prune_step(struct db *db, sqlite3_stmt *st)
{
    pthread_mutex_lock(&db->conn_lock);
    int rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = step_done(st);
    int n = rc == SQLITE_OK ? sqlite3_changes(db->conn) : -1;
    if (rc == SQLITE_OK) rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        log_failure(db, "prune", rc);
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        n = -1;
    }
    pthread_mutex_unlock(&db->conn_lock);
    return n;
}

/* Steps the rooms query to the next room name (copied into name); 0 at the
 * end. The query's read stays open between prune steps. */
static int next_room(struct db *db, sqlite3_stmt *rooms, char name[PROTO_MAX_ROOM + 1])
{
    pthread_mutex_lock(&db->conn_lock);
    int more = sqlite3_step(rooms) == SQLITE_ROW;
    if (more)
        snprintf(name, PROTO_MAX_ROOM + 1, "%s",
                 (const char *)sqlite3_column_text(rooms, 0));
    else
        sqlite3_reset(rooms);
    pthread_mutex_unlock(&db->conn_lock);
    return more;
}

/* Deletes what retention says to, in steps of PRUNE_STEP rows, yielding to
 * queued requests between steps (they run first; pruning resumes later). */
static uint64_t prune(struct db *db)
{
    uint64_t pruned = 0;
    sqlite3_stmt *age = db->st[ST_PRUNE_AGE], *rooms = db->st[ST_ROOMS],
                 *room = db->st[ST_PRUNE_ROOM];
    int n = 1, more = 0;
    db->next_prune_ms = now_ms() + db->opt.prune_interval_ms;
    while (db->opt.retention_ms > 0 && n > 0 && !(more = !queue_empty(db))) {
        sqlite3_bind_int64(age, 1, now_ms() - db->opt.retention_ms);
        sqlite3_bind_int(age, 2, PRUNE_STEP);
        pruned += (uint64_t)((n = prune_step(db, age)) > 0 ? n : 0);
    }
    char name[PROTO_MAX_ROOM + 1];
    while (db->opt.max_per_room > 0 && !more && next_room(db, rooms, name)) {
        n = 1;
        while (n > 0 && !(more = !queue_empty(db))) {
            sqlite3_bind_text(room, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(room, 2, db->opt.max_per_room);
            sqlite3_bind_int(room, 3, PRUNE_STEP);
            pruned += (uint64_t)((n = prune_step(db, room)) > 0 ? n : 0);
        }
    }
    pthread_mutex_lock(&db->conn_lock);
    sqlite3_reset(rooms); /* interrupted: close its read */
    pthread_mutex_unlock(&db->conn_lock);
    if (more) /* interrupted by requests: continue soon */
        db->next_prune_ms = now_ms() + 100;
    return pruned;
}

static void *db_worker(void *arg)
{
    struct db *db = arg;
    struct db_req *batch;
    int n, stopping;
    for (;;) {
        batch = take_batch(db, &n, &stopping);
        if (batch)
            run_batch(db, batch, n);
        else if (stopping)
            break;
        else {
            uint64_t pruned = prune(db);
            pthread_mutex_lock(&db->lock);
            db->stats.pruned += pruned;
            pthread_mutex_unlock(&db->lock);
        }
    }
    return NULL;
}

/* ---- the loop's side ---- */

struct db *db_open(const struct db_options *opt, char *err, size_t errlen)
{
    struct db *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    db->opt = *opt;
    if (db->opt.prune_interval_ms <= 0) db->opt.prune_interval_ms = 60000;
    if (db->opt.read_max_bytes == 0) db->opt.read_max_bytes = DB_READ_MAX_BYTES;
    pthread_mutex_init(&db->lock, NULL);
    pthread_cond_init(&db->cond, NULL);
    pthread_mutex_init(&db->conn_lock, NULL);
    if (db_setup(db, err, errlen)) goto err;
    if (pthread_create(&db->thread, NULL, db_worker, db)) {
        snprintf(err, errlen, "cannot start the database thread");
        goto err;
    }
    db->started = 1;
    return db;
err:
    db_close(db);
    return NULL;
}

int db_submit(struct db *db, struct db_req *r)
{
    int rc = -1;
    pthread_mutex_lock(&db->lock);
    if (!db->stopping && db->q_len < db->opt.queue_max) {
        r->next = NULL;
        r->status = DB_OK;
        r->id = r->ts = r->last_id = 0;
        r->duplicate = r->nrows = r->more = 0;
        r->rows = r->updates = NULL;
        r->frame = NULL;
        r->dest = NULL;
        r->pair = r->peer = NULL;
        if (db->q_tail)
            db->q_tail->next = r;
        else
            db->q_head = r;
        db->q_tail = r;
        db->q_len++;
        rc = 0;
        pthread_cond_signal(&db->cond);
    }
    pthread_mutex_unlock(&db->lock);
    return rc;
}

void db_take_done(struct db *db, void (*fn)(struct db_req *r, void *arg), void *arg)
{
    pthread_mutex_lock(&db->lock);
    struct db_req *r = db->d_head;
    db->d_head = db->d_tail = NULL;
    pthread_mutex_unlock(&db->lock);
    while (r) {
        struct db_req *next = r->next; /* fn may reuse r */
        r->next = NULL;
        fn(r, arg);
        r = next;
    }
}

void db_stats(struct db *db, struct db_stats *out)
{
    pthread_mutex_lock(&db->lock);
    *out = db->stats;
    out->queue_depth = db->q_len;
    pthread_mutex_unlock(&db->lock);
}

void db_stop(struct db *db)
{
    pthread_mutex_lock(&db->lock);
    db->stopping = 1;
    pthread_cond_broadcast(&db->cond);
    pthread_mutex_unlock(&db->lock);
    if (db->started) {
        pthread_join(db->thread, NULL);
        db->started = 0;
    }
}

void db_close(struct db *db)
{
    if (!db) return;
    assert(!db->started); /* db_stop() first */
    for (struct db_req *r = db->d_head; r; r = r->next) {
        buf_unref(r->rows);
        buf_unref(r->updates);
        buf_unref(r->frame);
        buf_unref(r->pair);
        buf_unref(r->peer);
        r->rows = r->updates = r->frame = r->pair = r->peer = NULL;
    }
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(db->st[i]);
    db_dm_finalize(&db->dm);
    if (db->conn) {
        sqlite3_exec(db->conn, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_close(db->conn);
    }
    pthread_mutex_destroy(&db->lock);
    pthread_mutex_destroy(&db->conn_lock);
    pthread_cond_destroy(&db->cond);
    free(db);
}
