/* db_impl.h -- the database's internals, shared by the files that make it:
 * db.c (the worker: queue, batches, group commit, delivery, pruning, the
 * public entry points), db_schema.c (opening, migrating, preparing, the
 * settings), db_write.c (a batch's writes), db_read.c (the reads) and
 * db_dm.c (the DM queries). Private to them; everything else uses db.h.
 * The statements and the connection are the worker thread's once it runs;
 * db_schema.c uses them on the main thread before it starts.
 */
#ifndef PARLEY_DB_IMPL_H
#define PARLEY_DB_IMPL_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <sqlite3.h>

#include "clock.h" /* wall_ms: messages' and changes' ts, retention */
#include "db.h"
#include "db_dm.h"
#include "db_index.h"
#include "db_mark.h"
#include "db_mod.h"

/* The prepared statements; their SQL is db_schema.c's table. */
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
    ST_IDX_END,
    ST_IDX_ADD,
    ST_IDX_SET,
    ST_IDX_GET,
    ST_MODLOG,
    ST_ALL_ROOMS,
    ST_POS_SET,
    ST_SANCTIONED,
    ST_USER_SAME,
    ST_COUNT
};

struct db {
    struct db_options opt;
    sqlite3 *conn;              /* under conn_lock once the worker runs */
    sqlite3_stmt *st[ST_COUNT]; /* worker thread only */
    struct db_dm dm;            /* worker thread only: the DM statements */
    struct db_mark mark;        /* worker thread only: read markers, the listing */
    struct db_mod mod;          /* worker thread only: moderation log, sanctions */
    struct db_search *search;   /* the search thread; NULL without one */
    struct db_search *lists;    /* another, for the rooms listings */
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
    int64_t max_id;         /* worker thread only: the highest message id assigned */
    int64_t indexed;        /* worker thread only: the search index's watermark */
    int64_t idx_retry_ms;   /* worker thread only: after a failed chunk, not before */
    int64_t idx_behind_ms;  /* worker thread only: since when the index is behind */
    struct db_watermark wm; /* indexed and committed, for the search thread */
    /* Cluster mode (db_apply.c), worker thread only: the log position
     * applied and committed (the settings' cluster_pos), the next one the
     * open transaction reaches, and the applied event's ts while it runs. */
    int64_t pos, pos_next, event_ts;
    int64_t pos_shared; /* pos for any thread (atomic) */
};

/* A write's time: the applied event's (its log's clock, the same on every
 * node) while the worker applies one, else now. Worker thread. */
static inline int64_t db__write_ts(const struct db *db)
{
    return db->event_ts ? db->event_ts : wall_ms();
}

/* Steps st once (a write, or a row nobody reads) and resets it. Returns
 * SQLITE_OK, or the error. */
static inline int db__step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Binds text parameter i of st: NULL binds SQL NULL. */
static inline void db__bind_text(sqlite3_stmt *st, int i, const char *v, int n)
{
    sqlite3_bind_text(st, i, v, n, SQLITE_STATIC);
}

/* ---- db.c ---- */

/* The status a failed SQLite call means for its request. */
enum db_status db_status_of(int rc);
/* Logs why a request failed (op `what`, SQLite's rc and message). Worker
 * thread, under conn_lock. */
void db__log_failure(struct db *db, const char *what, int rc);

/* ---- db_schema.c (main thread, before the worker starts) ---- */

/* Opens db->opt.path, checks it, sets the pragmas, migrates, prepares
 * every statement and reads the highest id. Returns 0, or -1 with a
 * one-line reason in err; the caller then db_close()s what is open. */
int db__setup(struct db *db, char *err, size_t errlen);
/* db_setting() under the connection lock (the caller holds it). */
char *db__setting(struct db *db, const char *key, const char *fresh);
int db__setting_set(struct db *db, const char *key, const char *value);

/* ---- db_write.c (worker thread, inside a batch's write transaction) ---- */

/* In a DM room, checks that r's user is one of its pair; `want` fills
 * r->pair or r->peer (db_dm_check). A refusal is r->status with SQLITE_OK.
 * Returns SQLITE_OK or the failing statement's error. Reads use it too. */
int db__dm_checked(struct db *db, struct db_req *r, int want);
/* Runs one write request of a batch, taking its ids from *max_id. Returns
 * SQLITE_OK (refusals included, in r->status), or the error of the
 * statement that failed; the caller checks whether it cost the
 * transaction. */
int db__run_write(struct db *db, struct db_req *r, int64_t *max_id);

/* ---- db_apply.c (worker thread; cluster mode: db_options.forward set) ---- */

/* Hands the batch's own writes to the cluster (db_options.forward), in
 * order, and takes them out of *batch: they come back as events. A write
 * the cluster refuses fails DB_BUSY and is delivered at once. */
void db__forward_writes(struct db *db, struct db_req **batch);
/* Applies the logged event in *slot, the next of the log (else it is
 * skipped: already applied, or after a gap the reader fills again), with
 * the event's seq as its id and its ts; a request of this node waiting for
 * it (db_options.claim) takes its place in the batch. Returns SQLITE_OK,
 * or the failing statement's error. */
int db__apply(struct db *db, struct db_req **slot, int64_t *max_id);
/* Stores pos_next as cluster_pos in the open transaction, when it moved. */
int db__pos_store(struct db *db);
/* After the commit (ok) or the rollback (!ok) of a batch with events. */
void db__pos_done(struct db *db, int ok);

/* ---- db_index.c (worker thread) ---- */

/* Reads the watermark (db__setup, main thread). Returns SQLITE_OK or the
 * error. */
int db__index_load(struct db *db);
/* Whether to index a chunk now: the index is behind and either the worker
 * is idle and it is INDEX_IDLE_MS or a chunk behind, or a search waits for
 * it, or it is INDEX_LAG_MAX ids behind.
 * Worker thread (under db->lock or not: it takes only wm.lock). */
int db__index_due(struct db *db, int idle);
/* Milliseconds until an idle worker's next chunk is due (0: now), or -1
 * when the index is caught up. */
int64_t db__index_wait_ms(struct db *db);
/* Indexes the next chunk of committed rows above the watermark and moves
 * it, in one transaction. On failure the index stays as it was (the
 * watermark with it) and the next try waits a second. */
void db__index_chunk(struct db *db);
/* Publishes the highest committed id (after each commit). */
void db__index_committed(struct db *db);

/* ---- db_read.c (worker thread, each read in its own transaction) ---- */

/* Appends the current row of st, whose first columns are MSG_COLS's
 * (db_schema.c: id, ts, user_id, user_name, text, client_id, rev,
 * edited_ts, deleted, bot), as a MESSAGE of `room`. Any thread with its own
 * statement (the search thread's too). */
void db__put_row(struct buf **b, sqlite3_stmt *st, const char *room);

/* Runs one read into r, seeing ids up to hi only. Returns SQLITE_OK, or the
 * error with r->status set and no rows. */
int db__run_read(struct db *db, struct db_req *r, int64_t hi);

#endif
