/* db_apply.c -- the worker's side of cluster mode (cluster.h): a batch's
 * own writes go to the log instead of SQLite, and the log's events are
 * applied here, in seq order, each through the same code a single node
 * runs (db_write.c), with the event's seq as its id and its ts. The
 * position applied is stored in the batch's transaction, so a restart
 * resumes exactly after the last event committed. Worker thread.
 */
#include "db_impl.h"

#include <assert.h>

#include "clock.h"
#include "event.h"
#include "jwt.h"
#include "log.h"

#define USER_SEEN_MS (3600 * 1000) /* users.last_seen, at least this fine */

/* A send Redis called a duplicate (db.h dup_check): 1 with the stored
 * message's id and ts in r, 0 when none is stored, -1 on an error. */
static int find_sent(struct db *db, struct db_req *r)
{
    sqlite3_stmt *find = db->st[ST_FIND];
    pthread_mutex_lock(&db->conn_lock);
    db__bind_text(find, 1, r->room, -1);
    db__bind_text(find, 2, r->user_id, -1);
    db__bind_text(find, 3, r->client_id, -1);
    int rc = sqlite3_step(find), found = rc == SQLITE_ROW    ? 1
                                         : rc == SQLITE_DONE ? 0
                                                             : -1;
    if (found == 1) {
        r->id = sqlite3_column_int64(find, 0);
        r->ts = sqlite3_column_int64(find, 1);
        r->duplicate = 1;
    }
    sqlite3_reset(find);
    pthread_mutex_unlock(&db->conn_lock);
    return found;
}

/* A welcome that changes nothing stored (name, guest, role) within
 * USER_SEEN_MS of the last recorded one: 1, and it needs no event, so
 * reconnects cost the log nothing (users.last_seen is then as fine as
 * USER_SEEN_MS). 0 otherwise, or on an error (then it is logged). */
static int user_unchanged(struct db *db, const struct db_req *r)
{
    sqlite3_stmt *st = db->st[ST_USER_SAME];
    pthread_mutex_lock(&db->conn_lock);
    db__bind_text(st, 1, r->user_id, -1);
    db__bind_text(st, 2, r->user_name, -1);
    sqlite3_bind_int(st, 3, r->guest);
    sqlite3_bind_int64(st, 4, wall_ms() - USER_SEEN_MS);
    db__bind_text(st, 5, jwt_role_name(r->role), -1);
    int same = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    pthread_mutex_unlock(&db->conn_lock);
    return same;
}

void db__forward_writes(struct db *db, struct db_req **batch)
{
    struct db_req **slot = batch;
    while (*slot) {
        struct db_req *r = *slot;
        if (r->op == DB_READ || r->logged) {
            slot = &r->next;
            continue;
        }
        *slot = r->next; /* out of the batch: the cluster's until it answers */
        r->next = NULL;
        if (r->op == DB_USER && user_unchanged(db, r)) {
            db_complete(db, r);
            continue;
        }
        int check = r->dup_check, found = check ? find_sent(db, r) : 0;
        r->dup_check = 0;
        if (check && found == 0) r->no_dedup = 1; /* the first stored nothing */
        if (found == 1 || found < 0) {            /* the stored message, or an error */
            if (found < 0) r->status = DB_BUSY;
            db_complete(db, r);
        } else if (db->opt.forward(db->opt.cluster_arg, r)) {
            r->status = DB_BUSY;
            db_complete(db, r);
        }
    }
}

/* An event that is not the next of the log: applied before (a reader that
 * read again after a rollback, or a restart), or past a gap (the events
 * before it were rolled back and come again). It changes nothing; a
 * request of ours waiting for it waits for the event's next delivery. */
static int skip(struct db *db, struct event *e)
{
    if (e->seq > db->pos_next + 1)
        plog(LOG_DEBUG, "log-gap", "seq=%lld applied=%lld", (long long)e->seq,
             (long long)db->pos_next);
    e->req.status = DB_OK;
    e->req.duplicate = 1; /* so nobody routes it */
    return SQLITE_OK;
}

/* 1 when r's user was muted or banned where r writes, at event time ts
 * (db.h: sanctioned), with r refused; 0 when it may write; -1 on an
 * error. The API, above every role, and the user records, the DM rooms,
 * the markers and the moderation actions are not checked here (a mod's
 * own ban is checked where it acts). */
static int sanctioned(struct db *db, struct db_req *r, int64_t ts)
{
    int speaks = r->op == DB_SEND || r->op == DB_EDIT;
    if (r->api || !r->user_id || !r->room || !(speaks || r->op == DB_DELETE)) return 0;
    sqlite3_stmt *st = db->st[ST_SANCTIONED];
    db__bind_text(st, 1, r->user_id, -1);
    db__bind_text(st, 2, r->room, -1);
    sqlite3_bind_int64(st, 3, ts);
    sqlite3_bind_int(st, 4, speaks);
    int rc = sqlite3_step(st), found = rc == SQLITE_ROW;
    if (found) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        r->sanctioned = kind && kind[0] == 'b' ? SANCTIONED_BAN : SANCTIONED_MUTE;
        r->ts = sqlite3_column_int64(st, 1);
        r->id = 0;
        r->status = DB_FORBIDDEN;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? found : -1;
}

int db__apply(struct db *db, struct db_req **slot, int64_t *max_id)
{
    struct db_req *r = *slot;
    struct event *e = event_of(r);
    assert(r->logged && r->loop < 0);
    if (e->seq != db->pos_next + 1) return skip(db, e);
    int64_t seq = e->seq, m = seq - 1;
    struct db_req *w = db->opt.claim ? db->opt.claim(db->opt.cluster_arg, e) : NULL;
    db->event_ts = e->ts;
    if (w) { /* ours: the request answers in the event's place */
        w->next = r->next;
        *slot = w;
        event_free(e); /* e is gone: its time is in db->event_ts */
    } else
        w = r;
    int rc = sanctioned(db, w, db->event_ts);
    if (rc < 0)
        rc = sqlite3_errcode(db->conn), w->status = db_status_of(rc);
    else
        rc = rc ? SQLITE_OK : db__run_write(db, w, &m);
    db->event_ts = 0;
    db->pos_next = *max_id = seq;
    return rc;
}

int db__pos_store(struct db *db)
{
    if (db->pos_next == db->pos) return SQLITE_OK;
    sqlite3_stmt *st = db->st[ST_POS_SET];
    sqlite3_bind_int64(st, 1, db->pos_next);
    int rc = db__step_done(st);
    if (rc != SQLITE_OK) db__log_failure(db, "log position", rc);
    return rc;
}

void db__pos_done(struct db *db, int ok)
{
    if (db->pos_next == db->pos) return;
    if (ok)
        db->pos = db->pos_next;
    else
        db->pos_next = db->pos;
    __atomic_store_n(&db->pos_shared, db->pos, __ATOMIC_RELEASE);
    if (db->opt.applied) db->opt.applied(db->opt.cluster_arg, db->pos, ok);
}
