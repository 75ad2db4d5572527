/* db_read.c -- the reads: a room's history (the latest, or before or after
 * an id), a join's `since` (the changes after it, split into new rows and
 * updates), a user's DM rooms, and the DM check alone. Worker thread, after
 * its batch's commit and under the connection lock (db.c's run_batch); a
 * history or since read runs in its own read transaction, and every read
 * sees only the ids assigned before it was submitted (hi).
 */
#include "db_impl.h"

#include <stdlib.h>

#include "protocol.h"

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

void db__put_row(struct buf **b, sqlite3_stmt *st, const char *room)
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
        .bot = sqlite3_column_int(st, 9),
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
    db__bind_text(st, 1, r->room, -1);
    sqlite3_bind_int64(st, 2, r->since);
    sqlite3_bind_int(st, 3, r->limit + 1);
    sqlite3_bind_int64(st, 4, hi);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < r->limit) {
        size_t at = scratch->len;
        db__put_row(&scratch, st, r->room);
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

/* run_since() in its own read transaction, with the room's last id. */
static int read_since(struct db *db, struct db_req *r, int64_t hi)
{
    int rc = sqlite3_exec(db->conn, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = run_since(db, r, hi);
    if (rc == SQLITE_OK && (r->last_id = scalar(db, ST_LAST, r->room, hi)) < 0)
        rc = SQLITE_ERROR;
    if (rc == SQLITE_OK) rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK) return SQLITE_OK;
    db__log_failure(db, "read", rc);
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

/* Runs one read into r in its own read transaction, seeing ids up to hi
 * only. Its rows stop before passing read_max_bytes (one row always goes
 * in), and `more` is then set. Ascending reads keep the oldest rows that
 * fit, written in order. Descending ones (before, latest) keep the newest
 * that fit, those nearest the bound: they are read newest first, each row's
 * offset noted, and copied out oldest first once. Returns SQLITE_OK or the
 * error that failed the read. */
static int run_messages(struct db *db, struct db_req *r, int64_t hi)
{
    int rc, asc = r->after >= 0;
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
        db__put_row(&rows, st, r->room);
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
    db__log_failure(db, "read", rc);
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    free(at);
    buf_unref(rows);
    r->status = db_status_of(rc);
    r->nrows = r->more = 0;
    r->last_id = 0;
    return rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_ERROR : rc;
}

/* The API's rooms listing (db.h: all_rooms), as lines "name last_id\n". */
static int read_all_rooms(struct db *db, struct db_req *r, int64_t hi)
{
    sqlite3_stmt *st = db->st[ST_ALL_ROOMS];
    struct buf *rows = buf_new(4096);
    int rc = SQLITE_NOMEM;
    if (!rows) goto err;
    if ((rc = sqlite3_exec(db->conn, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK) goto err;
    sqlite3_bind_int64(st, 1, hi);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        buf_put(&rows, sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        buf_put(&rows, " ", 1);
        buf_put_i64(&rows, sqlite3_column_int64(st, 1));
        buf_put(&rows, "\n", 1);
        r->nrows++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) goto err;
    rc = rows->oom ? SQLITE_NOMEM : sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto err;
    r->rows = rows;
    return SQLITE_OK;
err:
    db__log_failure(db, "rooms", rc);
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    buf_unref(rows);
    r->status = db_status_of(rc);
    r->nrows = 0;
    return rc == SQLITE_OK || rc == SQLITE_DONE ? SQLITE_ERROR : rc;
}

int db__run_read(struct db *db, struct db_req *r, int64_t hi)
{
    if (r->all_rooms) return read_all_rooms(db, r, hi);
    if (r->dms) return db_mark_rooms(&db->mark, &db->dm, r, hi);
    int rc = db__dm_checked(db, r, !r->check);
    if (rc != SQLITE_OK || r->status != DB_OK || r->check) return rc;
    rc = r->since >= 0 ? read_since(db, r, hi) : run_messages(db, r, hi);
    /* A join's marker: read after the rows, as the same worker moves it. */
    if (rc == SQLITE_OK && r->mark) rc = db_mark_get(&db->mark, r);
    return rc;
}
