/* db_index.c -- the search index behind its watermark (db_index.h): the
 * worker's chunks, and the wait of the search thread. */
#include "db_impl.h"

#include <assert.h>
#include <errno.h>
#include <time.h>

/* Rows per chunk: big enough that FTS5's per-transaction work is shared
 * by many rows, small enough (a few ms) that a request arriving meanwhile
 * waits little. */
#define INDEX_CHUNK 1000
/* Under a load that never leaves the worker idle, the index still follows
 * one chunk per batch once it is this many ids behind. */
#define INDEX_LAG_MAX 20000
#define INDEX_RETRY_MS 1000
/* An idle worker indexes what is behind once it is this old, or a chunk's
 * worth: a chunk is a transaction, and at a trickle of messages one per
 * message cost more than the sends themselves (callgrind: 185k
 * instructions per 100-byte message, 45 % of a fan-out server's, in
 * docs/performance.md). A search never waits for it: it asks for the rows
 * it needs at once (db_watermark_wait). */
#define INDEX_IDLE_MS 500

void db_watermark_init(struct db_watermark *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->moved, NULL);
    w->indexed = w->committed = w->want = 0;
}

void db_watermark_destroy(struct db_watermark *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->moved);
}

int64_t db_watermark_committed(struct db_watermark *w)
{
    pthread_mutex_lock(&w->lock);
    int64_t v = w->committed;
    pthread_mutex_unlock(&w->lock);
    return v;
}

int db_watermark_wait(struct db_watermark *w, int64_t need, int max_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += max_ms / 1000;
    until.tv_nsec += (long)(max_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&w->lock);
    int covered = w->indexed >= need, kick = !covered && w->want < need;
    if (kick) w->want = need;
    pthread_mutex_unlock(&w->lock);
    if (kick && w->kick) w->kick(w->kick_arg); /* the worker may be asleep */
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (w->indexed < need && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->moved, &w->lock, &until);
    covered = w->indexed >= need;
    pthread_mutex_unlock(&w->lock);
    return covered;
}

/* ---- the worker's side ---- */

int db__index_load(struct db *db)
{
    sqlite3_stmt *st = db->st[ST_IDX_GET];
    int rc = sqlite3_step(st);
    db->indexed = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
    db->wm.indexed = db->indexed;
    db->wm.committed = db->max_id;
    return SQLITE_OK;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int db__index_due(struct db *db, int idle)
{
    int64_t now = mono_ms(), lag = db->max_id - db->indexed;
    if (lag <= 0 || now < db->idx_retry_ms) return 0;
    if (lag > INDEX_LAG_MAX) return 1;
    if (idle && (lag >= INDEX_CHUNK || now - db->idx_behind_ms >= INDEX_IDLE_MS))
        return 1;
    pthread_mutex_lock(&db->wm.lock);
    int wanted = db->wm.want > db->indexed;
    pthread_mutex_unlock(&db->wm.lock);
    return wanted;
}

int64_t db__index_wait_ms(struct db *db)
{
    if (db->indexed >= db->max_id) return -1;
    int64_t t = db->idx_behind_ms + INDEX_IDLE_MS, r = db->idx_retry_ms;
    t = (r > t ? r : t) - mono_ms();
    return t > 0 ? t : 0;
}

void db__index_committed(struct db *db)
{
    if (db->indexed == db->wm.committed && db->max_id > db->indexed)
        db->idx_behind_ms = mono_ms(); /* it falls behind now */
    pthread_mutex_lock(&db->wm.lock);
    db->wm.committed = db->max_id;
    pthread_mutex_unlock(&db->wm.lock);
}

/* Finds the chunk's end: the last row of the next INDEX_CHUNK, or the
 * committed end when fewer rows are left. Returns SQLITE_OK or the error. */
static int chunk_end(struct db *db, int64_t *end)
{
    sqlite3_stmt *st = db->st[ST_IDX_END];
    sqlite3_bind_int64(st, 1, db->indexed);
    sqlite3_bind_int64(st, 2, db->max_id);
    sqlite3_bind_int(st, 3, INDEX_CHUNK);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) return sqlite3_reset(st), rc;
    int full = sqlite3_column_int(st, 0) == INDEX_CHUNK;
    *end = full ? sqlite3_column_int64(st, 1) : db->max_id;
    sqlite3_reset(st);
    return SQLITE_OK;
}

/* The chunk's statements, inside the transaction. */
static int index_range(struct db *db, int64_t end)
{
    sqlite3_stmt *add = db->st[ST_IDX_ADD], *set = db->st[ST_IDX_SET];
    sqlite3_bind_int64(add, 1, db->indexed);
    sqlite3_bind_int64(add, 2, end);
    int rc = db__step_done(add);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(set, 1, end);
    return db__step_done(set);
}

/* The index can be rebuilt from the messages, and its watermark moves in
 * the same transaction: losing a chunk to a power cut loses nothing but
 * the work. So its commit skips the fsync; the next durable commit
 * (synchronous=FULL) syncs the WAL, this chunk with it. */
static void relaxed_sync(struct db *db, int on)
{
    if (!db->opt.sync_full) return;
    sqlite3_exec(db->conn, on ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
                 NULL, NULL, NULL);
}

void db__index_chunk(struct db *db)
{
    int64_t end = db->indexed;
    pthread_mutex_lock(&db->conn_lock);
    relaxed_sync(db, 1);
    int rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = chunk_end(db, &end);
    if (rc == SQLITE_OK) rc = index_range(db, end);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        db__log_failure(db, "search-index", rc);
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        db->idx_retry_ms = mono_ms() + INDEX_RETRY_MS;
    }
    relaxed_sync(db, 0);
    pthread_mutex_unlock(&db->conn_lock);
    if (rc != SQLITE_OK) return;
    assert(end > db->indexed && end <= db->max_id);
    db->indexed = end;
    db->idx_behind_ms = mono_ms(); /* what is left is as old as now, at most */
    pthread_mutex_lock(&db->wm.lock);
    db->wm.indexed = end;
    pthread_cond_broadcast(&db->wm.moved);
    pthread_mutex_unlock(&db->wm.lock);
}
