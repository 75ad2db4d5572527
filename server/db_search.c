/* db_search.c -- the search thread (db_search.h). */
#include "db_search.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>

#include "buf.h"
#include "db.h"
#include "db_dm.h"
#include "db_index.h"
#include "db_impl.h" /* db__put_row */
#include "db_mark.h"
#include "log.h"
#include "protocol.h"

/* How long one search may run: a query matching most of a large history,
 * in rooms the user may not read, scans all of it. Past this it is
 * interrupted and answered overloaded (narrow it, or page with before). */
#define SEARCH_MAX_MS 2000
/* The same for a `rooms` listing (a user with a thousand busy rooms). */
#define LISTING_MAX_MS 1000
/* How long a search waits for the index to reach what was committed
 * before it (db_index.h); past it, it searches what is indexed. */
#define INDEX_WAIT_MS 1000

struct db_search {
    int64_t deadline_us; /* the running search's (search thread only) */
    sqlite3 *conn;       /* the search thread's only, once started */
    struct db_mark mark; /* the listing's statements, on conn */
    struct db_dm dm;
    struct db_watermark *wm; /* the search index's, or NULL (listings) */
    pthread_t thread;
    int started, queue_max;
    void (*done)(void *arg, struct db_req *r);
    void *done_arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct db_req *head, *tail; /* guarded by lock */
    int len, stopping;          /* guarded by lock */
    int abort;                  /* atomic: stopping, the running query ends now */
};

/* The query for a scope: matches newest first, below `before`, in the rooms
 * the user may read. Parameters: ?1 the match, ?2 before, ?3 the room or
 * the user (for the DM rooms), then the names and prefixes from ?4 on.
 * Returns an sqlite3_malloc'd text (sqlite3_free it) or NULL. */
static char *query_text(const struct db_req *r, int no_guests)
{
    const struct db_search_scope *sc = r->scope;
    sqlite3_str *q = sqlite3_str_new(NULL);
    sqlite3_str_appendall(q,
                          "SELECT m.id,m.ts,m.user_id,m.user_name,m.text,m.client_id,"
                          "m.rev,m.edited_ts,m.deleted,m.bot,m.room FROM messages_fts f "
                          "JOIN messages m ON m.id=f.rowid WHERE messages_fts MATCH ?1 "
                          "AND f.rowid<?2 AND m.deleted=0 AND ");
    if (r->room)
        sqlite3_str_appendall(q, "m.room=?3");
    else {
        /* The user's DM rooms; with --no-guest-dms, only those without a
         * guest (as db_dm_check closes the others). */
        sqlite3_str_appendall(q, no_guests
                                     ? "(m.room IN (SELECT d.room FROM dm_rooms d "
                                       "JOIN users ua ON ua.id=d.user_a JOIN users ub "
                                       "ON ub.id=d.user_b WHERE ?3 IN (d.user_a,"
                                       "d.user_b) AND ua.guest=0 AND ub.guest=0)"
                                     : "(m.room IN (SELECT room FROM dm_rooms WHERE "
                                       "user_a=?3 UNION ALL SELECT room FROM dm_rooms "
                                       "WHERE user_b=?3)");
        sqlite3_str_appendf(q, " OR (m.room NOT GLOB 'dm-*' AND (%d", sc->all_rooms);
        for (int i = 0; i < sc->nnames; i++)
            sqlite3_str_appendf(q, " OR m.room=?%d", 4 + i);
        for (int i = 0; i < sc->nprefixes; i++)
            sqlite3_str_appendf(q, " OR m.room GLOB ?%d", 4 + sc->nnames + i);
        sqlite3_str_appendall(q, ")))");
        for (int i = 0; i < sc->nexcluded; i++)
            sqlite3_str_appendf(q, " AND m.room<>?%d",
                                4 + sc->nnames + sc->nprefixes + i);
    }
    sqlite3_str_appendall(q, " ORDER BY f.rowid DESC");
    return sqlite3_str_finish(q); /* NULL when memory ran out */
}

/* A room with fewer than ROOM_WALK rows (below `before`) is searched by
 * checking its rows one by one against the index, newest first: for one
 * plain word about 14 us a row, so a small room is searched in a
 * millisecond however common the word is elsewhere, where walking its
 * doclist through a million other rooms' rows took 100 ms and more. A
 * larger room holds enough of the matches for the doclists to find a
 * page soon, and goes to them directly. A check re-reads every term's
 * doclist, though: a prefix or several words can cost milliseconds a
 * row. So the walk stops after WALK_MAX_US, and the doclists take over
 * below the last row checked: the walk adds at most that to what the
 * doclists alone cost.
 * Parameters: ?1 the match, ?2 before, ?3 the room, ?4 rows at most. */
#define ROOM_WALK 1000
#define WALK_MAX_US 20000
static const char *const sql_walk_size =
    "SELECT count(*) FROM (SELECT 1 FROM messages WHERE room=?3 AND id<?2 LIMIT ?4)";
static const char *const sql_walk_ids =
    "SELECT id FROM messages WHERE room=?3 AND id<?2 AND deleted=0 "
    "ORDER BY id DESC LIMIT ?4";
static const char *const sql_walk_check =
    "SELECT 1 FROM messages_fts WHERE messages_fts MATCH ?1 AND rowid=?2";
static const char *const sql_walk_row =
    "SELECT id,ts,user_id,user_name,text,client_id,rev,edited_ts,deleted,bot,room "
    "FROM messages WHERE id=?1";

/* Binds the scope's parameters (prefixes as GLOB patterns "p*"). */
static int bind_scope(sqlite3_stmt *st, const struct db_req *r, int64_t before)
{
    const struct db_search_scope *sc = r->scope;
    sqlite3_bind_text(st, 1, sc->match, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, before);
    sqlite3_bind_text(st, 3, r->room ? r->room : r->user_id, -1, SQLITE_STATIC);
    if (r->room) return SQLITE_OK; /* the names are for the all-rooms query */
    for (int i = 0; i < sc->nnames; i++)
        sqlite3_bind_text(st, 4 + i, sc->names[i], -1, SQLITE_STATIC);
    for (int i = 0; i < sc->nprefixes; i++) {
        char *g = sqlite3_mprintf("%s*", sc->prefixes[i]);
        if (!g) return SQLITE_NOMEM;
        sqlite3_bind_text(st, 4 + sc->nnames + i, g, -1, sqlite3_free);
    }
    for (int i = 0; i < sc->nexcluded; i++)
        sqlite3_bind_text(st, 4 + sc->nnames + sc->nprefixes + i, sc->excluded[i], -1,
                          SQLITE_STATIC);
    return SQLITE_OK;
}

/* In a DM room, whether r's user is one of its pair, and (--no-guest-dms)
 * no guest is: the worker's own check (db_dm_check), on this connection.
 * Returns SQLITE_OK with r->status DB_FORBIDDEN when not, or the error. */
static int dm_allowed(struct db_search *s, struct db_req *r)
{
    if (!r->room || !proto_room_is_dm(r->room)) return SQLITE_OK;
    return db_dm_check(&s->dm, r, 0);
}

static int64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* SQLite's progress handler: non-zero interrupts the running statement. */
static int past_deadline(void *arg)
{
    const struct db_search *s = arg;
    return mono_us() > s->deadline_us || __atomic_load_n(&s->abort, __ATOMIC_RELAXED);
}

/* Prepares sql, binds the scope (below `before`) and, when low >= 0, ?4;
 * NULL with *rc set on failure. */
static sqlite3_stmt *prepared(struct db_search *s, struct db_req *r, const char *sql,
                              int64_t before, int64_t low, int *rc)
{
    sqlite3_stmt *st = NULL;
    if ((*rc = sqlite3_prepare_v2(s->conn, sql, -1, &st, NULL)) != SQLITE_OK) return NULL;
    if ((*rc = bind_scope(st, r, before)) != SQLITE_OK) return sqlite3_finalize(st), NULL;
    if (low >= 0) sqlite3_bind_int64(st, 4, low);
    return st;
}

/* Appends st's current row (the search's columns, the room last) to
 * *rows, or sets r->more when the page is already full. */
static void put_found(sqlite3_stmt *st, struct db_req *r, struct buf **rows)
{
    if (r->nrows == r->limit) {
        r->more = 1;
        return;
    }
    if (r->nrows) buf_put(rows, ",", 1);
    db__put_row(rows, st, (const char *)sqlite3_column_text(st, 10));
    r->nrows++;
}

/* Appends the rows of st to *rows until r->limit (then r->more). Returns
 * SQLITE_OK or the error; finalizes st. */
static int collect(sqlite3_stmt *st, struct db_req *r, struct buf **rows)
{
    int rc = SQLITE_OK;
    while (!r->more && (rc = sqlite3_step(st)) == SQLITE_ROW)
        put_found(st, r, rows);
    if (r->more || rc == SQLITE_DONE) rc = (*rows)->oom ? SQLITE_NOMEM : SQLITE_OK;
    sqlite3_finalize(st);
    return rc;
}

/* Whether message `id` matches: ?1 is bound, ?2 the id. */
static int matches(sqlite3_stmt *check, int64_t id, int *rc)
{
    sqlite3_bind_int64(check, 2, id);
    *rc = sqlite3_step(check);
    int hit = *rc == SQLITE_ROW;
    if (*rc == SQLITE_ROW || *rc == SQLITE_DONE) *rc = SQLITE_OK;
    sqlite3_reset(check);
    return hit;
}

/* Appends message `id` (it matched) to *rows, or sets r->more when the
 * page is full. */
static int take_row(sqlite3_stmt *row, struct db_req *r, int64_t id, struct buf **rows)
{
    if (r->nrows == r->limit) return r->more = 1, SQLITE_OK; /* no lookup */
    sqlite3_bind_int64(row, 1, id);
    int rc = sqlite3_step(row);
    if (rc == SQLITE_ROW) {
        put_found(row, r, rows);
        rc = (*rows)->oom ? SQLITE_NOMEM : SQLITE_OK;
    } else if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    sqlite3_reset(row);
    return rc;
}

/* A small room's rows below *before, newest first, each checked against
 * the index, for at most WALK_MAX_US. *before becomes 0 when the room has
 * no more rows (or the page is full), else the last id checked: the
 * doclists go on below it. A big room is left to the doclists. */
static int walk_room(struct db_search *s, struct db_req *r, int64_t *before,
                     struct buf **rows)
{
    int rc, n = 0, done = 0;
    int64_t t0 = mono_us(), id = 0;
    sqlite3_stmt *size = prepared(s, r, sql_walk_size, *before, ROOM_WALK, &rc);
    if (!size) return rc;
    rc = sqlite3_step(size);
    int big = rc == SQLITE_ROW && sqlite3_column_int(size, 0) >= ROOM_WALK;
    sqlite3_finalize(size);
    if (rc != SQLITE_ROW) return rc;
    if (big) return SQLITE_OK; /* the doclists, from *before */
    sqlite3_stmt *ids = prepared(s, r, sql_walk_ids, *before, ROOM_WALK, &rc),
                 *check = ids ? prepared(s, r, sql_walk_check, 0, -1, &rc) : NULL,
                 *row = NULL;
    if (check && sqlite3_prepare_v2(s->conn, sql_walk_row, -1, &row, NULL) != SQLITE_OK)
        rc = sqlite3_errcode(s->conn);
    while (row && !r->more && mono_us() - t0 < WALK_MAX_US) {
        if ((rc = sqlite3_step(ids)) == SQLITE_DONE) {
            done = n < ROOM_WALK; /* else the walk's LIMIT: more rows below */
            rc = SQLITE_OK;
            break;
        }
        if (rc != SQLITE_ROW) break;
        id = sqlite3_column_int64(ids, 0), n++;
        if (matches(check, id, &rc) && rc == SQLITE_OK) rc = take_row(row, r, id, rows);
        if (rc != SQLITE_OK) break;
    }
    if (rc == SQLITE_OK && (r->more || done))
        *before = 0;
    else if (rc == SQLITE_OK && n > 0)
        *before = id; /* out of time or rows: the doclists go on below it */
    /* (out of time before the first row: the doclists do it all) */
    sqlite3_finalize(ids);
    sqlite3_finalize(check);
    sqlite3_finalize(row);
    return rc;
}

static int search_rows(struct db_search *s, struct db_req *r);

/* Runs one search into r->rows (newest first, commas between), r->nrows
 * and r->more, and notes its time in r->ts. Returns SQLITE_OK or the
 * error (then r->status is set). */
static int run_search(struct db_search *s, struct db_req *r)
{
    if (s->wm) db_watermark_wait(s->wm, r->last_id, INDEX_WAIT_MS);
    int64_t t0 = mono_us();
    s->deadline_us = t0 + SEARCH_MAX_MS * 1000;
    int rc = search_rows(s, r);
    r->ts = mono_us() - t0;
    return rc;
}

static int search_rows(struct db_search *s, struct db_req *r)
{
    int64_t before = r->before >= 0 ? r->before : INT64_MAX;
    sqlite3_stmt *st;
    struct buf *rows = buf_new(4096);
    char *sql = query_text(r, s->dm.no_guests);
    int rc = SQLITE_NOMEM;
    if (!rows || !sql) goto out;
    if ((rc = dm_allowed(s, r)) != SQLITE_OK || r->status != DB_OK) goto out;
    if (r->room && (rc = walk_room(s, r, &before, &rows)) != SQLITE_OK) goto out;
    if (!r->more && before > 0 && (st = prepared(s, r, sql, before, -1, &rc)))
        rc = collect(st, r, &rows);
out:
    sqlite3_free(sql);
    if (rc == SQLITE_OK && r->status == DB_OK) {
        r->rows = rows;
        return SQLITE_OK;
    }
    buf_unref(rows);
    r->nrows = r->more = 0;
    if (rc != SQLITE_OK) {
        plog(LOG_WARN, "db-failed", "op=search rc=%d reason=\"%s\"", rc,
             sqlite3_errmsg(s->conn));
        int busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ||
                   (rc & 0xff) == SQLITE_INTERRUPT; /* past SEARCH_MAX_MS */
        r->status = busy ? DB_BUSY : DB_FAILED;
    }
    return rc;
}

static void *search_main(void *arg)
{
    struct db_search *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
        struct db_req *r = s->head;
        if (r) {
            s->head = r->next;
            if (!s->head) s->tail = NULL;
            s->len--;
        }
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (!r) break; /* stopping, nothing left */
        r->next = NULL;
        if (stopping)
            r->status = DB_BUSY;
        else if (r->op == DB_READ) { /* dms: it sees everything committed */
            s->deadline_us = mono_us() + LISTING_MAX_MS * 1000;
            db_mark_rooms(&s->mark, &s->dm, r, INT64_MAX);
        } else
            run_search(s, r);
        s->done(s->done_arg, r); /* r is the submitter's again */
    }
    return NULL;
}

struct db_search *db_search_open(const struct db_options *opt, struct db_watermark *wm,
                                 char *err, size_t errlen)
{
    const char *path = opt->path;
    struct db_search *s = calloc(1, sizeof(*s));
    if (!s) return snprintf(err, errlen, "out of memory"), NULL;
    s->queue_max = opt->queue_max;
    s->done = opt->search_done;
    s->done_arg = opt->search_arg;
    s->dm.no_guests = opt->no_guest_dms;
    s->wm = wm;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->conn, flags, opt->vfs) != SQLITE_OK ||
        db_mark_prepare(&s->mark, s->conn) != SQLITE_OK ||
        db_dm_prepare(&s->dm, s->conn) != SQLITE_OK) {
        snprintf(err, errlen, "%s: search: %s", path,
                 s->conn ? sqlite3_errmsg(s->conn) : "cannot open");
        goto err;
    }
    sqlite3_busy_timeout(s->conn, 1000);
    s->deadline_us = INT64_MAX; /* listings run without one */
    sqlite3_progress_handler(s->conn, 10000, past_deadline, s);
    if (pthread_create(&s->thread, NULL, search_main, s)) {
        snprintf(err, errlen, "cannot start the search thread");
        goto err;
    }
    s->started = 1;
    return s;
err:
    db_search_close(s);
    return NULL;
}

int db_search_submit(struct db_search *s, struct db_req *r)
{
    int rc = -1;
    pthread_mutex_lock(&s->lock);
    if (!s->stopping && s->len < s->queue_max) {
        r->next = NULL;
        r->status = DB_OK;
        r->rows = r->updates = r->frame = r->pair = r->peer = NULL;
        r->nrows = r->more = 0;
        /* Listings go ahead of searches (after the listings already
         * waiting): a page load's `rooms` never waits behind anyone's
         * searches. */
        struct db_req **at = &s->head;
        if (r->op == DB_READ)
            while (*at && (*at)->op == DB_READ)
                at = &(*at)->next;
        else
            at = s->tail ? &s->tail->next : &s->head;
        r->next = *at;
        *at = r;
        if (!r->next) s->tail = r;
        s->len++;
        rc = 0;
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void db_search_close(struct db_search *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    /* A search may run for seconds: a stop must not wait for it (its
     * client gets overloaded, as a search past its time does). */
    __atomic_store_n(&s->abort, 1, __ATOMIC_RELAXED);
    if (s->conn) sqlite3_interrupt(s->conn);
    if (s->started) pthread_join(s->thread, NULL);
    db_mark_finalize(&s->mark);
    db_dm_finalize(&s->dm);
    sqlite3_close(s->conn);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}
