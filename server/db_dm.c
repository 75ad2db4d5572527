/* db_dm.c -- the direct-message queries of the database worker (db_dm.h). */
#include "db_dm.h"

#include <string.h>

#include "db_impl.h" /* db_status_of */
#include "log.h"

/* Sets r's status for a failed statement and logs SQLite's own words, as
 * the worker does for every failure. Returns rc. */
static int failed(sqlite3_stmt *st, struct db_req *r, const char *what, int rc)
{
    r->status = db_status_of(rc);
    plog(LOG_WARN, "db-failed", "op=%s rc=%d reason=\"%s\"", what, rc,
         rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(sqlite3_db_handle(st)));
    return rc;
}

/* The pair, and whether either is a guest (a user never recorded counts
 * as one: --no-guest-dms must not open for lack of a row). */
static const char *const sql_pair =
    "SELECT d.user_a, d.user_b, coalesce(ua.guest,1) OR coalesce(ub.guest,1) "
    "FROM dm_rooms d LEFT JOIN users ua ON ua.id=d.user_a "
    "LEFT JOIN users ub ON ub.id=d.user_b WHERE d.room=?1";
static const char *const sql_make =
    "INSERT INTO dm_rooms(room,user_a,user_b,created,created_by) VALUES(?1,?2,?3,?4,?5) "
    "ON CONFLICT(room) DO NOTHING";
static const char *const sql_user = "SELECT name, guest FROM users WHERE id=?1";
static const char *const sql_touch =
    "UPDATE dm_rooms SET last_id=?2 WHERE room=?1 AND last_id<?2";
/* The user's DM rooms, the most recently active first, each with the
 * peer's latest name and whether it is a guest, and the user's marker. A
 * room without messages only for the user who asked for it. */
static const char *const sql_list =
    "SELECT p.room, p.peer, coalesce(u.name, p.peer), coalesce(u.guest,1),"
    " coalesce(rm.id,0) FROM"
    " (SELECT room, user_b AS peer, last_id FROM dm_rooms"
    "   WHERE user_a=?1 AND (last_id>0 OR created_by=?1)"
    "  UNION ALL SELECT room, user_a, last_id FROM dm_rooms"
    "   WHERE user_b=?1 AND (last_id>0 OR created_by=?1)) p"
    " LEFT JOIN users u ON u.id=p.peer"
    " LEFT JOIN read_markers rm ON rm.user_id=?1 AND rm.room=p.room"
    " ORDER BY p.last_id DESC LIMIT ?2";

int db_dm_prepare(struct db_dm *d, sqlite3 *conn)
{
    const char *sql[] = {sql_pair, sql_make, sql_user, sql_list, sql_touch};
    sqlite3_stmt **st[] = {&d->pair, &d->make, &d->user, &d->list, &d->touch};
    for (int i = 0; i < 5; i++) {
        int rc =
            sqlite3_prepare_v3(conn, sql[i], -1, SQLITE_PREPARE_PERSISTENT, st[i], NULL);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

void db_dm_finalize(struct db_dm *d)
{
    sqlite3_finalize(d->pair);
    sqlite3_finalize(d->make);
    sqlite3_finalize(d->user);
    sqlite3_finalize(d->list);
    sqlite3_finalize(d->touch);
    int no_guests = d->no_guests;
    memset(d, 0, sizeof(*d));
    d->no_guests = no_guests;
}

/* Returns `{"id":…,"name":…}` for user id (name: the users table's, or the
 * id when it has none), or NULL out of memory; *rc gets a failed lookup's
 * error. */
static struct buf *user_json(struct db_dm *d, const char *id, int *rc)
{
    sqlite3_bind_text(d->user, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(d->user);
    const char *name =
        step == SQLITE_ROW ? (const char *)sqlite3_column_text(d->user, 0) : id;
    struct buf *b = buf_new(32 + 2 * strlen(id) + strlen(name));
    buf_puts(&b, "{\"id\":");
    buf_put_jstrz(&b, id);
    buf_puts(&b, ",\"name\":");
    buf_put_jstrz(&b, name);
    buf_put(&b, "}", 1);
    sqlite3_reset(d->user);
    *rc = step == SQLITE_ROW || step == SQLITE_DONE ? SQLITE_OK : step;
    if (b && b->oom) buf_unref(b), b = NULL;
    return b;
}

static int fill(struct db_dm *d, struct db_req *r, const char *a, const char *b)
{
    int rc = SQLITE_OK;
    if (r->op == DB_READ)
        r->peer = user_json(d, strcmp(a, r->user_id) ? a : b, &rc);
    else
        r->pair = buf_pair(a, b);
    if (rc != SQLITE_OK) buf_unref(r->peer), r->peer = NULL;
    if (r->peer || r->pair) return SQLITE_OK;
    return failed(d->pair, r, "dm-peer", rc == SQLITE_OK ? SQLITE_NOMEM : rc);
}

int db_dm_check(struct db_dm *d, struct db_req *r, int want)
{
    sqlite3_bind_text(d->pair, 1, r->room, -1, SQLITE_STATIC);
    int rc = sqlite3_step(d->pair);
    if (rc == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(d->pair, 0),
                   *b = (const char *)sqlite3_column_text(d->pair, 1);
        /* An admin's delete is moderation: it reaches a DM of others, even
         * one --no-guest-dms closed. The API (db.h: api) may use any DM
         * room, as an admin may. */
        int admin = (r->op == DB_DELETE && r->admin) || r->api;
        if (strcmp(a, r->user_id) && strcmp(b, r->user_id) && !admin)
            r->status = DB_FORBIDDEN;
        if (d->no_guests && sqlite3_column_int(d->pair, 2) &&
            !(r->op == DB_DELETE && r->admin))
            r->status = DB_FORBIDDEN;
        rc = r->status == DB_OK && want ? fill(d, r, a, b) : SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        r->status = DB_FORBIDDEN, rc = SQLITE_OK;
    } else
        failed(d->pair, r, "dm-check", rc);
    sqlite3_reset(d->pair);
    return rc;
}

int db_dm_make(struct db_dm *d, struct db_req *r, int64_t now_ms)
{
    sqlite3_bind_text(d->user, 1, r->peer_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(d->user);
    if (rc == SQLITE_DONE)
        r->status = DB_NOT_FOUND;
    else if (rc == SQLITE_ROW && (r->no_guest_dms || d->no_guests) &&
             sqlite3_column_int(d->user, 1))
        r->status = DB_FORBIDDEN;
    else if (rc != SQLITE_ROW)
        failed(d->user, r, "dm-user", rc);
    sqlite3_reset(d->user);
    if (r->status != DB_OK) return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    int lo = strcmp(r->user_id, r->peer_id) < 0;
    sqlite3_bind_text(d->make, 1, r->room, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->make, 2, lo ? r->user_id : r->peer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->make, 3, lo ? r->peer_id : r->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d->make, 4, now_ms);
    sqlite3_bind_text(d->make, 5, r->user_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(d->make);
    sqlite3_reset(d->make);
    return rc == SQLITE_DONE ? SQLITE_OK : failed(d->make, r, "dm-make", rc);
}

int db_dm_touch(struct db_dm *d, struct db_req *r, int64_t id)
{
    sqlite3_bind_text(d->touch, 1, r->room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d->touch, 2, id);
    int rc = sqlite3_step(d->touch);
    if (rc != SQLITE_DONE) failed(d->touch, r, "dm-touch", rc);
    sqlite3_reset(d->touch);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int db_dm_each(struct db_dm *d, struct db_req *r, int limit,
               int (*fn)(void *arg, const struct db_dm_row *row), void *arg)
{
    sqlite3_stmt *st = d->list;
    int rc;
    sqlite3_bind_text(st, 1, r->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (d->no_guests && (r->guest || sqlite3_column_int(st, 3)))
            continue; /* closed by --no-guest-dms */
        struct buf *peer = buf_new(96);
        buf_puts(&peer, "{\"id\":");
        buf_put_jstrz(&peer, (const char *)sqlite3_column_text(st, 1));
        buf_puts(&peer, ",\"name\":");
        buf_put_jstrz(&peer, (const char *)sqlite3_column_text(st, 2));
        buf_put(&peer, "}", 2); /* the NUL too: fn gets a C string */
        struct db_dm_row row = {(const char *)sqlite3_column_text(st, 0),
                                peer ? (const char *)BUF_PAYLOAD(peer) : NULL,
                                sqlite3_column_int64(st, 4)};
        int frc = peer && !peer->oom ? fn(arg, &row) : SQLITE_NOMEM;
        buf_unref(peer);
        if (frc != SQLITE_OK) return sqlite3_reset(st), frc;
    }
    if (rc != SQLITE_DONE) failed(st, r, "dm-list", rc);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}
