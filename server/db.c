/* db.c -- the SQLite worker thread, its bounded queue and group commit:
 * requests queued by db_submit(), taken as batches whose writes run in one
 * transaction (db_write.c) and whose reads run after the commit
 * (db_read.c), completions delivered in order to the done list for
 * db_take_done(), retention pruning while the queue is empty, and the
 * statistics. db_open() opens the database on the main thread
 * (db_schema.c) and starts the worker; the rest runs on the worker thread,
 * except the entry points of db.h, which say their thread.
 */
#include "db_impl.h"
#include "db_search.h"
#include "event.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sqlite3.h>

#include "log.h"
#include "protocol.h"

#define PRUNE_STEP 500 /* rows deleted per transaction: short, so writes wait little */

static double mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* ---- the worker ---- */

enum db_status db_status_of(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED || rc == SQLITE_FULL ||
                   rc == SQLITE_IOERR || rc == SQLITE_CANTOPEN ||
                   rc == SQLITE_INTERRUPT /* a search or listing past its time */
               ? DB_BUSY
               : DB_FAILED;
}

/* Logs why a request failed: the client only hears "overloaded" or
 * "internal", the operator needs SQLite's own words. Worker thread. */
void db__log_failure(struct db *db, const char *what, int rc)
{
    plog(LOG_WARN, "db-failed", "op=%s rc=%d reason=\"%s\"", what, rc,
         sqlite3_errmsg(db->conn));
}

static int bucket(double v, const double *bounds, int n)
{
    int i = 0;
    while (i < n && v > bounds[i])
        i++;
    return i;
}

/* Runs the writes of a batch (reads skipped) in one write transaction and
 * commits. Some errors (disk full, I/O error, out of
 * memory) make SQLite roll the whole transaction back itself and return to
 * autocommit: the rest of the batch must not run then, or each statement
 * would commit on its own while the batch is reported failed. Returns
 * SQLITE_OK, or the error that failed the batch, and then every request of
 * it has failed; *lost says whether SQLite rolled it back mid-batch. */
static int run_writes(struct db *db, struct db_req **batch, int *lost)
{
    int64_t max_id = db->max_id;
    int rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (struct db_req **slot = batch; *slot && rc == SQLITE_OK; slot = &(*slot)->next) {
        struct db_req *r = *slot;
        if (r->op == DB_READ) continue;
        int src =
            r->logged ? db__apply(db, slot, &max_id) : db__run_write(db, r, &max_id);
        if (src != SQLITE_OK && sqlite3_get_autocommit(db->conn)) {
            db__log_failure(db, "transaction lost", src);
            rc = src, *lost = 1;
        }
    }
    if (rc == SQLITE_OK) rc = db__pos_store(db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        db->max_id = max_id;
        db__index_committed(db);
        db__pos_done(db, 1);
        return SQLITE_OK;
    }
    if (!*lost) db__log_failure(db, "transaction", rc);
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    db__pos_done(db, 0);
    /* The reads still run, on what was committed before the batch (a full
     * disk refuses writes, not reads). */
    for (struct db_req *r = *batch; r; r = r->next) {
        if (r->op == DB_READ) continue;
        if (r->status == DB_OK) r->status = db_status_of(rc);
        /* Cluster mode: one of ours here took its event's place; the event
         * stays in the log and is applied when the batch comes again, so
         * the write is not undone: internal (a resend with its client_id
         * is one message), never overloaded ("not stored"). */
        if (db->opt.forward && !r->logged) r->status = DB_FAILED;
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

/* Moves the reads of *batch, in order, to a list of their own, which it
 * returns; *batch keeps the rest, in order. */
static struct db_req *split_reads(struct db_req **batch)
{
    struct db_req *reads = NULL, **rt = &reads, **wt = batch, *r = *batch, *next;
    for (; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->op == DB_READ)
            *rt = r, rt = &r->next;
        else
            *wt = r, wt = &r->next;
    }
    *wt = NULL;
    return reads;
}

/* Runs one batch: its writes in one transaction, committed and completed
 * first, in order; then each read in its own read transaction, bounded to
 * the ids committed so far, completed one by one: a long read holds
 * neither the commit nor any ack of its batch. A read sees the whole batch
 * and completes after every write of it, so a join's rows (an edited
 * message in its latest state too) and the live events routed before its
 * completion never overlap. When the write transaction fails, every write
 * of the batch fails and the reads run on what was committed before it. */
static void run_batch(struct db *db, struct db_req *batch, int n)
{
    double t0 = mono_us();
    if (db->opt.forward && !(db__forward_writes(db, &batch), batch)) return;
    struct db_req *reads = split_reads(&batch), *tail, *next;
    int lost = 0;
    if (batch) { /* when it fails, the reads below still run (db.h) */
        pthread_mutex_lock(&db->conn_lock);
        run_writes(db, &batch, &lost);
        pthread_mutex_unlock(&db->conn_lock);
    }
    /* Counted before any completion goes out: whoever sees one sees the
     * statistics of its batch. */
    count_batch(db, n, batch != NULL, lost, mono_us() - t0);
    if (batch) {
        for (tail = batch; tail->next;)
            tail = tail->next;
        deliver(db, batch, tail);
    }
    for (struct db_req *r = reads; r; r = next) {
        next = r->next;
        r->next = NULL;
        pthread_mutex_lock(&db->conn_lock);
        r->last_id = db->max_id;
        db__run_read(db, r, r->last_id);
        pthread_mutex_unlock(&db->conn_lock);
        deliver(db, r, r);
    }
}

static int prune_enabled(const struct db *db)
{
    return db->opt.retention_ms > 0 || db->opt.max_per_room > 0;
}

/* Takes up to batch_max requests off the queue, waiting while it is empty
 * (when pruning is on, at most until the next prune is due; not at all
 * while the search index is behind). Returns NULL when stopping with
 * nothing left, or when a prune or the index is due. */
static struct db_req *take_batch(struct db *db, int *n, int *stopping)
{
    pthread_mutex_lock(&db->lock);
    while (!db->q_head && !db->stopping && !db__index_due(db, 1)) {
        int64_t idx = db__index_wait_ms(db), now = wall_ms();
        if (!prune_enabled(db) && idx < 0) {
            pthread_cond_wait(&db->cond, &db->lock);
            continue;
        }
        if (prune_enabled(db) && now >= db->next_prune_ms) break;
        /* the sooner of the index's chunk and a second (the prune's check) */
        int64_t ms = idx >= 0 && idx < 1000 ? idx + 1 : 1000;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
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

/* Binds `st` and runs it in its own short transaction, all under the
 * connection lock (binding touches the connection too): with a room name,
 * (room, v = rows to keep, PRUNE_STEP); without, (v = cutoff, PRUNE_STEP).
 * Returns rows deleted, or -1. */
static int prune_step(struct db *db, sqlite3_stmt *st, const char *room, int64_t v)
{
    pthread_mutex_lock(&db->conn_lock);
    int k = room ? 2 : 1;
    if (room) sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, k, v);
    sqlite3_bind_int(st, k + 1, PRUNE_STEP);
    int rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = db__step_done(st);
    int n = rc == SQLITE_OK ? sqlite3_changes(db->conn) : -1;
    if (rc == SQLITE_OK) rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        db__log_failure(db, "prune", rc);
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
    db->next_prune_ms = wall_ms() + db->opt.prune_interval_ms;
    while (db->opt.retention_ms > 0 && n > 0 && !(more = !queue_empty(db))) {
        n = prune_step(db, age, NULL, wall_ms() - db->opt.retention_ms);
        pruned += (uint64_t)(n > 0 ? n : 0);
    }
    char name[PROTO_MAX_ROOM + 1];
    while (db->opt.max_per_room > 0 && !more && next_room(db, rooms, name)) {
        n = 1;
        while (n > 0 && !(more = !queue_empty(db))) {
            n = prune_step(db, room, name, db->opt.max_per_room);
            pruned += (uint64_t)(n > 0 ? n : 0);
        }
    }
    pthread_mutex_lock(&db->conn_lock);
    sqlite3_reset(rooms); /* interrupted: close its read */
    pthread_mutex_unlock(&db->conn_lock);
    if (more) /* interrupted by requests: continue soon */
        db->next_prune_ms = wall_ms() + 100;
    return pruned;
}

static void *db_worker(void *arg)
{
    struct db *db = arg;
    struct db_req *batch;
    int n, stopping;
    for (;;) {
        batch = take_batch(db, &n, &stopping);
        if (batch) {
            run_batch(db, batch, n);
            /* Until a waiting search is covered, or the lag is bounded. */
            while (db__index_due(db, 0))
                db__index_chunk(db);
        } else if (stopping)
            break; /* the index resumes from its watermark next time */
        else if (db__index_due(db, 1))
            db__index_chunk(db);
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

/* The watermark's kick: a search waits for the index while the worker
 * sleeps on an empty queue. Search thread. */
static void kick_worker(void *arg)
{
    struct db *db = arg;
    pthread_mutex_lock(&db->lock);
    pthread_cond_signal(&db->cond);
    pthread_mutex_unlock(&db->lock);
}

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
    db_watermark_init(&db->wm);
    db->wm.kick = kick_worker;
    db->wm.kick_arg = db;
    if (db__setup(db, err, errlen)) goto err;
    /* After the migrations: its read-only connection needs the schema. */
    /* Two readers beside the worker: searches, and listings, so a page
     * load's `rooms` never waits behind anyone's search. */
    if (opt->search_done && (!(db->search = db_search_open(opt, &db->wm, err, errlen)) ||
                             !(db->lists = db_search_open(opt, NULL, err, errlen))))
        goto err;
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

/* Clears a submitted request's outputs: they are the db's from here. */
static void clear_outputs(struct db_req *r)
{
    r->status = DB_OK;
    r->id = r->ts = r->last_id = 0;
    r->duplicate = r->nrows = r->more = 0;
    r->sanctioned = SANCTIONED_NONE;
    r->rows = r->updates = NULL;
    r->frame = NULL;
    r->dest = NULL;
    r->pair = r->peer = NULL;
    r->read_id = 0;
}

/* Appends r to the queue (a request, bounded by queue_max, its outputs
 * cleared; or an event, unbounded, as it is), unless the db is stopping.
 * Returns 0, or -1 with r untouched. Any thread. */
static int enqueue(struct db *db, struct db_req *r, int request)
{
    int rc = -1;
    pthread_mutex_lock(&db->lock);
    if (!db->stopping && (!request || db->q_len < db->opt.queue_max)) {
        if (request) clear_outputs(r);
        r->next = NULL;
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

int db_submit(struct db *db, struct db_req *r)
{
    /* Reads that need no place in the commit order go beside the worker. */
    if (r->op == DB_READ && r->dms && db->lists) return db_search_submit(db->lists, r);
    if (r->op == DB_SEARCH) { /* it must see what was acked before it */
        r->last_id = db_watermark_committed(&db->wm);
        return db->search ? db_search_submit(db->search, r) : -1;
    }
    return enqueue(db, r, 1);
}

int db_submit_event(struct db *db, struct db_req *r)
{
    assert(r->logged);
    return enqueue(db, r, 0);
}

void db_complete(struct db *db, struct db_req *r)
{
    r->next = NULL;
    deliver(db, r, r);
}

int64_t db_log_pos(struct db *db)
{
    return __atomic_load_n(&db->pos_shared, __ATOMIC_ACQUIRE);
}

int64_t db_high_id(struct db *db)
{
    return db->max_id;
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
    pthread_mutex_lock(&db->wm.lock);
    out->index_lag = db->wm.committed - db->wm.indexed;
    pthread_mutex_unlock(&db->wm.lock);
}

char *db_setting(struct db *db, const char *key, const char *fresh)
{
    pthread_mutex_lock(&db->conn_lock);
    char *out = db__setting(db, key, fresh);
    pthread_mutex_unlock(&db->conn_lock);
    return out;
}

int db_setting_set(struct db *db, const char *key, const char *value)
{
    pthread_mutex_lock(&db->conn_lock);
    int rc = db__setting_set(db, key, value);
    pthread_mutex_unlock(&db->conn_lock);
    return rc;
}

void db_stop(struct db *db)
{
    db_search_close(db->search); /* its queued searches complete as DB_BUSY */
    db_search_close(db->lists);
    db->search = db->lists = NULL;
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
    assert(!db->started);        /* db_stop() first */
    db_search_close(db->search); /* a failed db_open's, else NULL already */
    db_search_close(db->lists);
    for (struct db_req *r = db->d_head, *next; r; r = next) {
        next = r->next;
        if (r->logged && r->loop < 0) { /* nobody else frees an event */
            event_free(event_of(r));
            continue;
        }
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
    db_mark_finalize(&db->mark);
    db_mod_finalize(&db->mod);
    if (db->conn) {
        sqlite3_exec(db->conn, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_close(db->conn);
    }
    pthread_mutex_destroy(&db->lock);
    pthread_mutex_destroy(&db->conn_lock);
    pthread_cond_destroy(&db->cond);
    db_watermark_destroy(&db->wm);
    free(db);
}
