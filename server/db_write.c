/* db_write.c -- the write requests of a batch: a message stored (DB_SEND),
 * edited or deleted by its author or a moderator (DB_EDIT, DB_DELETE), a
 * welcomed user recorded (DB_USER), a pair's DM room made (DB_DM); a send,
 * edit or delete in a DM room is first checked against the room's pair.
 * Worker thread, inside the batch's write transaction (db.c's run_writes),
 * which they never begin or end; sends and changes take their ids from the
 * batch's running max_id.
 */
#include "db_impl.h"
#include "db_mod.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h" /* jwt_role_name */
#include "protocol.h"

/* In a DM room, checks that r's user is one of its pair (db_dm.h): a
 * refusal is r->status with SQLITE_OK, costing the batch nothing. Other
 * rooms pass. Returns SQLITE_OK or the failing statement's error. */
int db__dm_checked(struct db *db, struct db_req *r, int want)
{
    return proto_room_is_dm(r->room) ? db_dm_check(&db->dm, r, want) : SQLITE_OK;
}

/* An HTTP API write (db.h: api): its mod_log row, in the batch's
 * transaction, so the change and its record are stored together or not at
 * all. Returns SQLITE_OK or the statement's error (r->status set). */
static int log_api(struct db *db, struct db_req *r, const char *action,
                   const char *target, int64_t msg_id, int64_t ts)
{
    sqlite3_stmt *st = db->st[ST_MODLOG];
    sqlite3_bind_int64(st, 1, ts);
    db__bind_text(st, 2, action, -1);
    db__bind_text(st, 3, target, -1);
    db__bind_text(st, 4, r->room, -1);
    sqlite3_bind_int64(st, 5, msg_id);
    int rc = db__step_done(st);
    if (rc != SQLITE_OK) {
        db__log_failure(db, "mod_log", rc);
        r->status = db_status_of(rc);
    }
    return rc;
}

/* Stores one message. Returns SQLITE_OK, or the error of the statement that
 * failed (r->status says how); the caller checks whether it cost the
 * transaction. */
static int run_send(struct db *db, struct db_req *r, int64_t *max_id)
{
    sqlite3_stmt *ins = db->st[ST_INSERT], *find = db->st[ST_FIND];
    int64_t ts = db__write_ts(db);
    int rc = db__dm_checked(db, r, 1);
    if (rc != SQLITE_OK || r->status != DB_OK) return rc;
    sqlite3_bind_int64(ins, 7, *max_id + 1);
    sqlite3_bind_text(ins, 1, r->room, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, r->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, r->user_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, r->text, (int)r->text_len, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 5, ts);
    sqlite3_bind_text(ins, 6, r->client_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 8, r->api);
    rc = db__step_done(ins);
    if (rc != SQLITE_OK) {
        db__log_failure(db, "insert", rc);
        r->status = db_status_of(rc);
        return rc;
    }
    if (sqlite3_changes(db->conn) == 1) {
        /* The id is taken only once everything of the request is stored:
         * a failed mod_log insert leaves max_id as it was. */
        if (r->api && (rc = log_api(db, r, "publish", r->user_id, *max_id + 1, ts)))
            return rc;
        r->id = ++*max_id;
        r->ts = ts;
        return proto_room_is_dm(r->room) ? db_dm_touch(&db->dm, r, r->id) : SQLITE_OK;
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
        db__log_failure(db, "find", rc);
        r->status = rc == SQLITE_DONE ? DB_FAILED : db_status_of(rc);
        rc = rc == SQLITE_DONE ? SQLITE_ERROR : rc;
    }
    sqlite3_reset(find);
    return rc;
}

/* Checks that r->msg_id is a live message of r->room that r's user may
 * change, and copies its text (the edits log keeps it) into *old, which
 * the caller frees. Returns SQLITE_OK, or an error with r->status set:
 * DB_NOT_FOUND, DB_FORBIDDEN, or the statement's failure. */
static int change_allowed(struct db *db, struct db_req *r, char **old, char **other)
{
    sqlite3_stmt *get = db->st[ST_MSG_GET];
    sqlite3_bind_int64(get, 1, r->msg_id);
    db__bind_text(get, 2, r->room, -1);
    int rc = sqlite3_step(get);
    *old = *other = NULL;
    if (rc == SQLITE_ROW && !sqlite3_column_int(get, 1)) {
        const char *author = (const char *)sqlite3_column_text(get, 0);
        /* A bot's message is never a token user's own, whatever its id:
         * a user whose id a bot took changes it only as a moderator. */
        int mine = !strcmp(author, r->user_id) && sqlite3_column_int(get, 3) == r->api;
        if (!mine && !(r->op == DB_DELETE && r->any_author))
            r->status = DB_FORBIDDEN;
        else if (!(*old = strdup((const char *)sqlite3_column_text(get, 2))) ||
                 (!mine && !(*other = strdup(author))))
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
    char *old, *other; /* other: the author, when a moderator deletes */
    int rc = db__dm_checked(db, r, 1);
    if (rc != SQLITE_OK || r->status != DB_OK) return rc;
    if ((rc = change_allowed(db, r, &old, &other)) != SQLITE_OK || r->status != DB_OK) {
        free(old);
        free(other);
        return rc;
    }
    int edit = r->op == DB_EDIT;
    int64_t id = *max_id + 1, ts = db__write_ts(db);
    sqlite3_stmt *log = db->st[ST_EDIT_LOG],
                 *apply = db->st[edit ? ST_EDIT_APPLY : ST_DELETE_APPLY];
    sqlite3_bind_int64(log, 1, id);
    sqlite3_bind_int64(log, 2, r->msg_id);
    db__bind_text(log, 3, r->room, -1);
    db__bind_text(log, 4, edit ? "edit" : "delete", -1);
    db__bind_text(log, 5, old, -1);
    db__bind_text(log, 6, edit ? r->text : NULL, (int)r->text_len);
    db__bind_text(log, 7, r->user_id, -1);
    sqlite3_bind_int64(log, 8, ts);
    if (edit) {
        db__bind_text(apply, 1, r->text, (int)r->text_len);
        sqlite3_bind_int64(apply, 2, id);
        sqlite3_bind_int64(apply, 3, ts);
        sqlite3_bind_int64(apply, 4, r->msg_id);
    } else {
        sqlite3_bind_int64(apply, 1, id);
        sqlite3_bind_int64(apply, 2, r->msg_id);
    }
    if ((rc = db__step_done(log)) == SQLITE_OK) rc = db__step_done(apply);
    if (rc == SQLITE_OK && r->api)
        rc = log_api(db, r, edit ? "edit" : "delete", other, r->msg_id, ts);
    else if (rc == SQLITE_OK && other)
        rc = db_mod_log_delete(&db->mod, r, other, ts);
    free(old);
    free(other);
    if (rc != SQLITE_OK) {
        db__log_failure(db, edit ? "edit" : "delete", rc);
        r->status = db_status_of(rc);
        return rc;
    }
    r->id = *max_id = id;
    r->ts = ts;
    return proto_room_is_dm(r->room) ? db_dm_touch(&db->dm, r, id) : SQLITE_OK;
}

/* Records a welcomed user (first seen, latest name, last seen, role). */
static int run_user(struct db *db, struct db_req *r)
{
    sqlite3_stmt *st = db->st[ST_USER];
    db__bind_text(st, 1, r->user_id, -1);
    db__bind_text(st, 2, r->user_name, -1);
    sqlite3_bind_int(st, 3, r->guest);
    sqlite3_bind_int64(st, 4, db__write_ts(db));
    db__bind_text(st, 5, jwt_role_name(r->role), -1); /* NULL: none */
    int rc = db__step_done(st);
    if (rc != SQLITE_OK) {
        db__log_failure(db, "user", rc);
        r->status = db_status_of(rc);
    }
    return rc;
}

/* Moves a user's read marker: in a DM room only its two users may. */
static int run_mark(struct db *db, struct db_req *r, int64_t max_id)
{
    int rc = db__dm_checked(db, r, 0);
    if (rc != SQLITE_OK || r->status != DB_OK) return rc;
    return db_mark_set(&db->mark, r, max_id, db__write_ts(db));
}

/* Runs one write request of a batch. */
int db__run_write(struct db *db, struct db_req *r, int64_t *max_id)
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
        return db_dm_make(&db->dm, r, db__write_ts(db));
    case DB_MARK:
        return run_mark(db, r, *max_id);
    case DB_MOD:
        return db_mod_run(&db->mod, r, db__write_ts(db));
    default:
        assert(!"not a write");
        return SQLITE_MISUSE;
    }
}
