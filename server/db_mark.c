/* db_mark.c -- read markers and the listing's per-user part (db_mark.h). */
#include "db_mark.h"

#include <stdlib.h>
#include <string.h>

#include "db_dm.h"
#include "db_impl.h" /* db_status_of */
#include "log.h"
#include "protocol.h"

static const char *const sql_last =
    "SELECT coalesce(max(rev),0) FROM messages WHERE room=?1 AND rev<=?2";
/* Forward only: the update applies when the new marker is higher. */
static const char *const sql_set =
    "INSERT INTO read_markers(user_id,room,id,ts) VALUES(?1,?2,?3,?4) "
    "ON CONFLICT(user_id,room) DO UPDATE SET id=excluded.id, ts=excluded.ts "
    "WHERE excluded.id > read_markers.id";
static const char *const sql_get =
    "SELECT id FROM read_markers WHERE user_id=?1 AND room=?2";
/* One range of the (room, id) index, stopped at the cap. */
static const char *const sql_unread =
    "SELECT count(*) FROM (SELECT 1 FROM messages WHERE room=?1 AND id>?2 AND id<=?3 "
    "AND deleted=0 AND user_id<>?4 LIMIT 1000)";
static const char *const sql_mine =
    "SELECT room, id FROM read_markers WHERE user_id=?1 ORDER BY ts DESC LIMIT 1000";

int db_mark_prepare(struct db_mark *m, sqlite3 *conn)
{
    const char *sql[] = {sql_last, sql_set, sql_get, sql_unread, sql_mine};
    sqlite3_stmt **st[] = {&m->last, &m->set, &m->get, &m->unread, &m->mine};
    for (int i = 0; i < 5; i++) {
        int rc =
            sqlite3_prepare_v3(conn, sql[i], -1, SQLITE_PREPARE_PERSISTENT, st[i], NULL);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

void db_mark_finalize(struct db_mark *m)
{
    sqlite3_finalize(m->last);
    sqlite3_finalize(m->set);
    sqlite3_finalize(m->get);
    sqlite3_finalize(m->unread);
    sqlite3_finalize(m->mine);
    memset(m, 0, sizeof(*m));
}

/* Sets r's status for a failed statement, logs it, resets st. Returns rc. */
static int failed(sqlite3_stmt *st, struct db_req *r, const char *what, int rc)
{
    r->status = db_status_of(rc);
    plog(LOG_WARN, "db-failed", "op=%s rc=%d reason=\"%s\"", what, rc,
         rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(sqlite3_db_handle(st)));
    sqlite3_reset(st);
    return rc;
}

/* Runs a one-number statement already bound; *out gets it. */
static int number(sqlite3_stmt *st, int64_t *out)
{
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
    if (rc == SQLITE_OK) sqlite3_reset(st);
    return rc;
}

static int last_id(struct db_mark *m, const char *room, int64_t hi, int64_t *out)
{
    sqlite3_bind_text(m->last, 1, room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(m->last, 2, hi);
    return number(m->last, out);
}

static int marker(struct db_mark *m, const char *user, const char *room, int64_t *out)
{
    sqlite3_bind_text(m->get, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(m->get, 2, room, -1, SQLITE_STATIC);
    return number(m->get, out);
}

int db_mark_set(struct db_mark *m, struct db_req *r, int64_t hi, int64_t now_ms)
{
    int64_t top;
    int rc = last_id(m, r->room, hi, &top);
    if (rc != SQLITE_OK) return failed(m->last, r, "read-last", rc);
    r->duplicate = 1;
    /* A room with nothing in it: the marker would be 0, as without one, and
     * only make `rooms` list a name nobody uses. */
    if (top == 0) goto answer;
    sqlite3_bind_text(m->set, 1, r->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(m->set, 2, r->room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(m->set, 3, r->msg_id < top ? r->msg_id : top);
    sqlite3_bind_int64(m->set, 4, now_ms);
    if ((rc = sqlite3_step(m->set)) != SQLITE_DONE) return failed(m->set, r, "read", rc);
    sqlite3_reset(m->set);
    r->duplicate = sqlite3_changes(sqlite3_db_handle(m->set)) == 0;
answer:
    if ((rc = marker(m, r->user_id, r->room, &r->id)) != SQLITE_OK)
        return failed(m->get, r, "read-get", rc);
    return SQLITE_OK;
}

int db_mark_get(struct db_mark *m, struct db_req *r)
{
    int rc = marker(m, r->user_id, r->room, &r->read_id);
    return rc == SQLITE_OK ? rc : failed(m->get, r, "read-get", rc);
}

/* Appends one listing line for room; peer is USER JSON or NULL. */
static int put_line(struct db_mark *m, struct db_req *r, struct buf **b, const char *room,
                    int64_t read, const char *peer, int64_t hi)
{
    int64_t last, unread;
    int rc = last_id(m, room, hi, &last);
    if (rc != SQLITE_OK) return failed(m->last, r, "rooms-last", rc);
    unread = 0; /* nothing newer than the marker: no count to make */
    sqlite3_bind_text(m->unread, 1, room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(m->unread, 2, read);
    sqlite3_bind_int64(m->unread, 3, hi);
    sqlite3_bind_text(m->unread, 4, r->user_id, -1, SQLITE_STATIC);
    if (last > read && (rc = number(m->unread, &unread)) != SQLITE_OK)
        return failed(m->unread, r, "rooms-unread", rc);
    if (last <= read) sqlite3_reset(m->unread);
    buf_puts(b, room);
    buf_put(b, "\t", 1);
    buf_put_i64(b, last);
    buf_put(b, "\t", 1);
    buf_put_i64(b, read);
    buf_put(b, "\t", 1);
    buf_put_i64(b, unread);
    buf_put(b, "\t", 1);
    if (peer) buf_puts(b, peer);
    buf_put(b, "\n", 1);
    r->nrows++;
    return SQLITE_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct dm_walk {
    struct db_mark *m;
    struct db_req *r;
    struct buf **b;
    int64_t hi;
    int rc;
};

static int dm_line(void *arg, const struct db_dm_row *row)
{
    struct dm_walk *w = arg;
    return w->rc =
               put_line(w->m, w->r, w->b, row->room, row->read, row->peer_json, w->hi);
}

/* The rooms with a marker that are not listed yet (not in `sorted`, the
 * loop's names, and not DM rooms, listed with the DMs). */
static int marker_lines(struct db_mark *m, struct db_req *r, struct buf **b,
                        const char **sorted, int64_t hi)
{
    sqlite3_stmt *st = m->mine;
    int rc;
    sqlite3_bind_text(st, 1, r->user_id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *room = (const char *)sqlite3_column_text(st, 0);
        if (proto_room_is_dm(room) ||
            bsearch(&room, sorted, (size_t)r->nrooms_in, sizeof(*sorted), by_name))
            continue;
        if ((rc = put_line(m, r, b, room, sqlite3_column_int64(st, 1), NULL, hi)))
            return sqlite3_reset(st), rc;
    }
    if (rc == SQLITE_DONE) return sqlite3_reset(st), SQLITE_OK;
    return failed(st, r, "rooms-markers", rc);
}

int db_mark_rooms(struct db_mark *m, struct db_dm *d, struct db_req *r, int64_t hi)
{
    struct buf *b = buf_new(1024);
    const char **sorted = malloc(((size_t)r->nrooms_in + 1) * sizeof(*sorted));
    int rc = SQLITE_NOMEM;
    if (!b || !sorted) goto out;
    for (int i = 0; i < r->nrooms_in; i++) {
        int64_t read;
        if ((rc = marker(m, r->user_id, r->rooms_in[i], &read)) != SQLITE_OK) {
            failed(m->get, r, "rooms-read", rc);
            goto out;
        }
        if ((rc = put_line(m, r, &b, r->rooms_in[i], read, NULL, hi))) goto out;
        sorted[i] = r->rooms_in[i];
    }
    qsort(sorted, (size_t)r->nrooms_in, sizeof(*sorted), by_name);
    struct dm_walk w = {m, r, &b, hi, SQLITE_OK};
    if ((rc = db_dm_each(d, r, DB_MARK_LIST_MAX, dm_line, &w)) || (rc = w.rc)) goto out;
    if ((rc = marker_lines(m, r, &b, sorted, hi))) goto out;
    rc = b->oom ? SQLITE_NOMEM : SQLITE_OK;
out:
    free(sorted);
    if (rc == SQLITE_OK) {
        r->rows = b;
        return SQLITE_OK;
    }
    buf_unref(b);
    r->nrows = 0;
    if (r->status == DB_OK) r->status = db_status_of(rc);
    return rc;
}
