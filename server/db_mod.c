/* db_mod.c -- moderation in the database (db_mod.h). */
#include "db_mod.h"

#include <string.h>

#include "db.h"
#include "db_impl.h" /* db_status_of */
#include "jwt.h"     /* JWT_ROLE_* */
#include "log.h"

static const char *const sql_log =
    "INSERT INTO mod_log(ts,actor,actor_name,action,target,room,message_id,reason,until) "
    "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)";
static const char *const sql_set =
    "INSERT INTO sanctions(user_id,room,kind,until,reason,by_user,ts) "
    "VALUES(?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(user_id,room,kind) DO UPDATE SET "
    "until=excluded.until, reason=excluded.reason, by_user=excluded.by_user, "
    "ts=excluded.ts";
static const char *const sql_lift =
    "DELETE FROM sanctions WHERE user_id=?1 AND room=?2 AND kind=?3";
static const char *const sql_role = "SELECT role FROM users WHERE id=?1";
static const char *const sql_load =
    "SELECT user_id, room, kind, coalesce(until,0) FROM sanctions "
    "WHERE until IS NULL OR until > ?1";

static const char *const action_names[] = {"kick", "mute", "ban", "unmute", "unban"};

int db_mod_prepare(struct db_mod *m, sqlite3 *conn)
{
    const char *sql[] = {sql_log, sql_set, sql_lift, sql_load, sql_role};
    sqlite3_stmt **st[] = {&m->log, &m->set, &m->lift, &m->load, &m->role};
    for (int i = 0; i < 5; i++) {
        int rc =
            sqlite3_prepare_v3(conn, sql[i], -1, SQLITE_PREPARE_PERSISTENT, st[i], NULL);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

void db_mod_finalize(struct db_mod *m)
{
    sqlite3_finalize(m->log);
    sqlite3_finalize(m->set);
    sqlite3_finalize(m->lift);
    sqlite3_finalize(m->load);
    sqlite3_finalize(m->role);
    memset(m, 0, sizeof(*m));
}

static int step(sqlite3_stmt *st, struct db_req *r, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return SQLITE_OK;
    r->status = db_status_of(rc);
    plog(LOG_WARN, "db-failed", "op=%s rc=%d reason=\"%s\"", what, rc,
         sqlite3_errmsg(sqlite3_db_handle(st)));
    return rc;
}

/* Binds one mod_log row; NULLs where a value is absent. */
static void bind_log(sqlite3_stmt *st, const struct db_req *r, const char *action,
                     const char *target, int64_t msg, int64_t now_ms)
{
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_text(st, 2, r->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->user_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, r->room, -1, SQLITE_STATIC); /* NULL binds NULL */
    if (msg > 0)
        sqlite3_bind_int64(st, 7, msg);
    else
        sqlite3_bind_null(st, 7);
}

/* Sets *role to the target's: the higher of the one stored at its last
 * welcome and r->target_role (its open connections', ranks.h). Worker
 * thread. Returns SQLITE_OK, or the read's error (r->status set). */
static int target_role(struct db_mod *m, struct db_req *r, int *role)
{
    sqlite3_bind_text(m->role, 1, r->peer_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(m->role);
    const char *s =
        rc == SQLITE_ROW ? (const char *)sqlite3_column_text(m->role, 0) : NULL;
    *role = !s                    ? JWT_ROLE_NONE
            : !strcmp(s, "admin") ? JWT_ROLE_ADMIN
            : !strcmp(s, "mod")   ? JWT_ROLE_MOD
                                  : JWT_ROLE_NONE;
    if (*role < (int)r->target_role) *role = (int)r->target_role;
    sqlite3_reset(m->role);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return SQLITE_OK;
    r->status = db_status_of(rc);
    return rc;
}

int db_mod_run(struct db_mod *m, struct db_req *r, int64_t now_ms)
{
    int a = r->mod_action, timed = a == DB_MOD_MUTE || a == DB_MOD_BAN;
    int t, rc;
    if (!r->api) { /* the hierarchy: only on a lower role (db.h) */
        if ((rc = target_role(m, r, &t)) != SQLITE_OK) return rc;
        if (t >= (int)r->role) return r->status = DB_FORBIDDEN, SQLITE_OK;
    }
    const char *kind = a == DB_MOD_MUTE || a == DB_MOD_UNMUTE ? "mute" : "ban";
    const char *room = r->room ? r->room : "";
    bind_log(m->log, r, action_names[a], r->peer_id, 0, now_ms);
    sqlite3_bind_text(m->log, 8, r->text, -1, SQLITE_STATIC);
    if (timed && r->msg_id > 0)
        sqlite3_bind_int64(m->log, 9, r->msg_id);
    else
        sqlite3_bind_null(m->log, 9);
    rc = step(m->log, r, "mod-log");
    if (rc != SQLITE_OK || a == DB_MOD_KICK) return rc;
    sqlite3_stmt *st = timed ? m->set : m->lift;
    sqlite3_bind_text(st, 1, r->peer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, room, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    if (timed) {
        if (r->msg_id > 0)
            sqlite3_bind_int64(st, 4, r->msg_id);
        else
            sqlite3_bind_null(st, 4);
        sqlite3_bind_text(st, 5, r->text, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, r->user_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, now_ms);
    }
    if ((rc = step(st, r, timed ? "sanction" : "sanction-lift")) != SQLITE_OK) return rc;
    r->duplicate = !timed && sqlite3_changes(sqlite3_db_handle(st)) == 0;
    return SQLITE_OK;
}

int db_mod_log_delete(struct db_mod *m, const struct db_req *r, const char *author,
                      int64_t now_ms)
{
    bind_log(m->log, r, "delete", author, r->msg_id, now_ms);
    sqlite3_bind_null(m->log, 8);
    sqlite3_bind_null(m->log, 9);
    int rc = sqlite3_step(m->log);
    sqlite3_reset(m->log);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int db_sanctions_load(struct db *db, int64_t now_ms,
                      void (*fn)(void *arg, const char *user, const char *room, int ban,
                                 int64_t until),
                      void *arg)
{
    pthread_mutex_lock(&db->conn_lock);
    sqlite3_stmt *st = db->mod.load;
    sqlite3_bind_int64(st, 1, now_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(arg, (const char *)sqlite3_column_text(st, 0),
           (const char *)sqlite3_column_text(st, 1),
           !strcmp((const char *)sqlite3_column_text(st, 2), "ban"),
           sqlite3_column_int64(st, 3));
    sqlite3_reset(st);
    pthread_mutex_unlock(&db->conn_lock);
    return rc == SQLITE_DONE ? 0 : -1;
}
