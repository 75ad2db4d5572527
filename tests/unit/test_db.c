/* test_db.c -- the database worker on a temporary file: migrations, sends and
 * reads, group commit, ordering, idempotency, restart, the queue bound and
 * failures. Completions are collected through a test-side wake hook. */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <glob.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "assets.h"
#include "db.h"
#include "db_search.h"
#include "dm.h"

/* ---- harness ---- */

#define MAX_DONE 4096

static char dir[64];
static char path[128];

static struct {
    pthread_mutex_t m;
    pthread_cond_t c;
    int flag; /* set by the worker after each batch */
    int calls;
    int gate; /* while set, the worker waits in the hook (held = 1) */
    int held;
    /* While `record` is set the hook itself takes the completions, noting
     * for each the hook call that delivered it and whether `watch` (a
     * read) had run by then. */
    int record;
    const struct db_req *watch;
} waker = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, NULL};

static struct noted {
    const struct db_req *r;
    int call;
    int watch_ran;
} noted[64];
static int nseen;

static sqlite3 *locker; /* a second connection holding a write lock */
static struct db_req *done[MAX_DONE];
static int ndone;

/* Runs on the worker thread: no Check assertions here. */
static void note(struct db_req *r, void *arg)
{
    pthread_mutex_lock(&waker.m);
    if (nseen < (int)(sizeof noted / sizeof noted[0])) {
        const struct db_req *w = waker.watch;
        noted[nseen++] = (struct noted){r, (int)(intptr_t)arg, w && w->rows != NULL};
    }
    r->next = NULL;
    pthread_cond_broadcast(&waker.c);
    pthread_mutex_unlock(&waker.m);
}

static struct db *db;

static void wake(void *arg)
{
    if (arg != &waker) abort();
    pthread_mutex_lock(&waker.m);
    waker.flag = 1;
    int call = ++waker.calls, record = waker.record;
    pthread_cond_broadcast(&waker.c);
    while (waker.gate) {
        waker.held = 1;
        pthread_cond_broadcast(&waker.c);
        pthread_cond_wait(&waker.c, &waker.m);
    }
    waker.held = 0;
    pthread_mutex_unlock(&waker.m);
    if (record) db_take_done(db, note, (void *)(intptr_t)call);
}

static void collect(struct db_req *r, void *arg)
{
    ck_assert_ptr_eq(arg, &ndone);
    ck_assert_int_lt(ndone, MAX_DONE);
    ck_assert_ptr_null(r->next);
    done[ndone++] = r;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Waits (through the wake hook) until `n` requests in all have completed. */
static void wait_done(int n)
{
    double deadline = mono_s() + 30;
    while (ndone < n) {
        pthread_mutex_lock(&waker.m);
        while (!waker.flag) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&waker.c, &waker.m, &ts);
            if (mono_s() > deadline) break;
        }
        waker.flag = 0;
        pthread_mutex_unlock(&waker.m);
        db_take_done(db, collect, &ndone);
        if (ndone < n && mono_s() > deadline)
            ck_abort_msg("only %d of %d requests completed in 30 s", ndone, n);
    }
}

static struct db_options options(int queue_max, int batch_max, int busy_ms)
{
    struct db_options o = {
        .path = path,
        .queue_max = queue_max,
        .batch_max = batch_max,
        .sync_full = 0,
        .busy_ms = busy_ms,
        .wake = wake,
        .wake_arg = &waker,
    };
    return o;
}

static void open_db(int queue_max, int batch_max, int busy_ms)
{
    char err[256] = "";
    struct db_options o = options(queue_max, batch_max, busy_ms);
    db = db_open(&o, err, sizeof err);
    if (!db) ck_abort_msg("db_open: %s", err);
}

/* Drops the outputs of every completed request (rows, and a DM room's
 * updates, pair and peer), and frees the requests a test allocated for
 * itself (their owner is themselves). */
static void free_done_rows(void)
{
    for (int i = 0; i < ndone; i++) {
        struct db_req *r = done[i];
        buf_unref(r->rows);
        buf_unref(r->updates);
        buf_unref(r->pair);
        buf_unref(r->peer);
        r->rows = r->updates = r->pair = r->peer = NULL;
        if (r->owner == r) free(r);
    }
    ndone = 0;
}

static void close_db(void)
{
    if (!db) return;
    db_stop(db);
    db_take_done(db, collect, &ndone);
    free_done_rows();
    db_close(db);
    db = NULL;
}

static void setup(void)
{
    strcpy(dir, "/tmp/parley-test-db-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/chat.db", dir);
    ndone = 0;
    waker.flag = 0;
    waker.calls = 0;
    waker.gate = waker.held = waker.record = 0;
    waker.watch = NULL;
    nseen = 0;
}

static void unlock_writer(void)
{
    if (locker) {
        sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(locker);
        locker = NULL;
    }
}

static void release_worker(void);
static void free_search_rows(void);

static void teardown(void)
{
    release_worker(); /* a failed test may have left the worker held */
    unlock_writer();
    close_db();
    free_search_rows();
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* Takes the database's write lock from a second connection. */
static void lock_writer(void)
{
    ck_assert_int_eq(sqlite3_open(path, &locker), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
}

/* Waits until the worker has taken everything queued (it is then blocked on
 * the writer's lock). */
static void wait_queue_empty(void)
{
    double deadline = mono_s() + 10;
    struct db_stats st;
    for (;;) {
        db_stats(db, &st);
        if (st.queue_depth == 0) return;
        ck_assert(mono_s() < deadline);
        usleep(1000);
    }
}

/* Holds the worker in the wake hook after the batch of a read submitted
 * here, so that everything submitted next forms one batch; the read itself
 * writes nothing (it never touches the fault counter below). */
static void hold_worker(void)
{
    static struct db_req hold;
    memset(&hold, 0, sizeof(hold));
    hold.op = DB_READ;
    hold.room = "hold";
    hold.before = hold.after = hold.since = -1;
    hold.limit = 1;
    pthread_mutex_lock(&waker.m);
    waker.gate = 1;
    pthread_mutex_unlock(&waker.m);
    ck_assert_int_eq(db_submit(db, &hold), 0);
    double deadline = mono_s() + 10;
    pthread_mutex_lock(&waker.m);
    while (!waker.held && mono_s() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&waker.c, &waker.m, &ts);
    }
    int held = waker.held;
    pthread_mutex_unlock(&waker.m);
    ck_assert(held);
}

static void release_worker(void)
{
    pthread_mutex_lock(&waker.m);
    waker.gate = 0;
    pthread_cond_broadcast(&waker.c);
    pthread_mutex_unlock(&waker.m);
}

/* ---- a VFS over the default one whose writes fail on demand ---- */

/* The countdown-th xWrite/xSync/xTruncate from when the test sets it fails
 * with rc, once (a transient fault); hits counts the failures. Touched by
 * the worker thread: atomics. */
static struct {
    int countdown, rc, hits;
} fault;

struct shim_file {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, right after this struct */
};

static sqlite3_vfs shim_vfs, *real_vfs;

static int fault_now(void)
{
    int c = __atomic_load_n(&fault.countdown, __ATOMIC_SEQ_CST);
    if (c <= 0 || __atomic_sub_fetch(&fault.countdown, 1, __ATOMIC_SEQ_CST) != 0)
        return 0;
    __atomic_add_fetch(&fault.hits, 1, __ATOMIC_SEQ_CST);
    return 1;
}

#define REAL(f) (((struct shim_file *)(f))->real)

static int shim_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int shim_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int shim_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    if (fault_now()) return fault.rc;
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (fault_now()) return fault.rc;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int shim_sync(sqlite3_file *f, int flags)
{
    if (fault_now()) return fault.rc;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int shim_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int shim_lock(sqlite3_file *f, int lv)
{
    return REAL(f)->pMethods->xLock(REAL(f), lv);
}
static int shim_unlock(sqlite3_file *f, int lv)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), lv);
}
static int shim_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int shim_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int shim_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int shim_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int shim_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int shim_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void shim_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int shim_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int shim_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shim_io = {
    3,
    shim_close,
    shim_read,
    shim_write,
    shim_truncate,
    shim_sync,
    shim_size,
    shim_lock,
    shim_unlock,
    shim_reserved,
    shim_fcntl,
    shim_sector,
    shim_devchar,
    shim_shm_map,
    shim_shm_lock,
    shim_shm_barrier,
    shim_shm_unmap,
    shim_fetch,
    shim_unfetch,
};

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                     int *out)
{
    (void)vfs;
    struct shim_file *sf = (struct shim_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out);
    /* The default VFS's files all have version 3 methods. */
    sf->base.pMethods = sf->real->pMethods ? &shim_io : NULL;
    return rc;
}

/* Registers "faulty": the default VFS with its files wrapped. */
static void shim_register(void)
{
    if (real_vfs) return;
    real_vfs = sqlite3_vfs_find(NULL);
    shim_vfs = *real_vfs; /* the other methods do not use the vfs's own fields */
    shim_vfs.zName = "faulty";
    shim_vfs.szOsFile = (int)sizeof(struct shim_file) + real_vfs->szOsFile;
    shim_vfs.xOpen = shim_open;
    shim_vfs.pNext = NULL;
    ck_assert_int_eq(sqlite3_vfs_register(&shim_vfs, 0), SQLITE_OK);
}

static void set_send(struct db_req *r, const char *room, const char *user,
                     const char *cid, const char *text)
{
    memset(r, 0, sizeof(*r));
    r->op = DB_SEND;
    r->room = room;
    r->user_id = user;
    r->user_name = "Name";
    r->client_id = cid;
    r->text = text;
    r->text_len = strlen(text);
}

static void set_read(struct db_req *r, const char *room, int64_t before, int64_t after,
                     int limit)
{
    memset(r, 0, sizeof(*r));
    r->op = DB_READ;
    r->room = room;
    r->before = before;
    r->after = after;
    r->since = -1; /* not a join's `since` read */
    r->limit = limit;
}

/* Submits and waits for one request. */
static void set_change(struct db_req *r, enum db_op op, const char *room,
                       const char *user, int64_t id, const char *text);

static void run1(struct db_req *r)
{
    int before = ndone;
    ck_assert_int_eq(db_submit(db, r), 0);
    wait_done(before + 1);
    ck_assert_ptr_eq(done[before], r);
}

/* The ids in a read's rows, checked to be MESSAGE objects of r->room. */
static int row_ids(const struct db_req *r, int64_t *ids, int max)
{
    ck_assert_int_eq(r->status, DB_OK);
    if (r->nrows == 0) {
        ck_assert(r->rows == NULL || r->rows->len == 0);
        return 0;
    }
    ck_assert_ptr_nonnull(r->rows);
    size_t n = r->rows->len;
    char *s = malloc(n + 3);
    s[0] = '[';
    memcpy(s + 1, BUF_PAYLOAD(r->rows), n);
    s[n + 1] = ']';
    s[n + 2] = 0;
    cJSON *a = cJSON_Parse(s);
    free(s);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(cJSON_GetArraySize(a), r->nrows);
    int k = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, a)
    {
        ck_assert_str_eq(cJSON_GetObjectItem(m, "type")->valuestring, "message");
        ck_assert_str_eq(cJSON_GetObjectItem(m, "room")->valuestring, r->room);
        if (k < max) ids[k] = (int64_t)cJSON_GetObjectItem(m, "id")->valuedouble;
        k++;
    }
    cJSON_Delete(a);
    return k;
}

/* ---- opening and migrating ---- */

static int schema_files(void)
{
    char src[512], pat[600];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(pat, sizeof pat, "%s/../../schema/*.sql", dirname(src));
    glob_t g;
    int n = glob(pat, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
    globfree(&g);
    return n;
}

static int64_t query_int(sqlite3 *c, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

START_TEST(test_open_migrates)
{
    open_db(100, 100, 1000);
    close_db();
    int nfiles = schema_files();
    ck_assert_int_ge(nfiles, 1);
    int nembedded = 0;
    while (assets_schema[nembedded].path)
        nembedded++;
    ck_assert_int_eq(nembedded, nfiles);
    /* The version is the last file's number (db_schema.c), not the count:
     * a number may be left free for a feature still being made. */
    int top = atoi(assets_schema[nembedded - 1].path);

    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "PRAGMA user_version"), top);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(c, "PRAGMA journal_mode", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    static const char *const cols[] = {"id",        "room",    "user_id",   "user_name",
                                       "text",      "ts",      "client_id", "rev",
                                       "edited_ts", "deleted", "bot"};
    ck_assert_int_eq(sqlite3_prepare_v2(c, "PRAGMA table_info(messages)", -1, &st, NULL),
                     SQLITE_OK);
    int i = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        ck_assert_int_lt(i, 11);
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 1), cols[i]);
        i++;
    }
    sqlite3_finalize(st);
    ck_assert_int_eq(i, 11);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM messages"), 0);
    sqlite3_close(c);

    /* Reopening an up-to-date file applies nothing and keeps the version. */
    open_db(100, 100, 1000);
    close_db();
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "PRAGMA user_version"), top);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM schema_applied"), nfiles);
    /* A migration numbered below the version that arrives late (a 006
     * merged after 007) is still applied: here 008, listed as missing. */
    ck_assert_int_eq(sqlite3_exec(c,
                                  "DELETE FROM schema_applied WHERE version=8;"
                                  "ALTER TABLE messages DROP COLUMN bot;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(c);
    open_db(100, 100, 1000);
    close_db();
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "PRAGMA user_version"), top);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM schema_applied WHERE version=8"),
                     1);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM pragma_table_info('messages') "
                                  "WHERE name='bot'"),
                     1);
    sqlite3_close(c);
}
END_TEST

START_TEST(test_open_newer_schema)
{
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(c, "PRAGMA user_version=99", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(c);
    char err[256] = "";
    struct db_options o = options(10, 10, 100);
    ck_assert_ptr_null(db_open(&o, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "99"));
}
END_TEST

START_TEST(test_open_unwritable)
{
    char err[256] = "";
    struct db_options o = options(10, 10, 100);
    o.path = "/proc/x/parley.db";
    ck_assert_ptr_null(db_open(&o, err, sizeof err));
    ck_assert_int_gt(strlen(err), 0);
    ck_assert_ptr_nonnull(strstr(err, "/proc/x/parley.db"));
    ck_assert_ptr_null(strchr(err, '\n'));
    /* A directory. */
    err[0] = 0;
    o.path = dir;
    ck_assert_ptr_null(db_open(&o, err, sizeof err));
    ck_assert_int_gt(strlen(err), 0);
    ck_assert_ptr_nonnull(strstr(err, dir));
    /* A short buffer still gets a NUL-terminated message. */
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    o.path = "/proc/x/parley.db";
    ck_assert_ptr_null(db_open(&o, tiny, sizeof tiny));
    ck_assert_uint_lt(strlen(tiny), sizeof tiny);
}
END_TEST

START_TEST(test_open_corrupt)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 8192; i++)
        fputc((i * 131 + 7) & 0xff, f);
    fclose(f);
    char err[256] = "";
    struct db_options o = options(10, 10, 100);
    ck_assert_ptr_null(db_open(&o, err, sizeof err));
    ck_assert_int_gt(strlen(err), 0);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(test_open_damaged_pages)
{
    /* A real database whose table pages were overwritten: PRAGMA quick_check
     * reports the damage in its result rows, and db_open must refuse it. */
    enum { N = 400 };
    static struct db_req r[N];
    static char cid[N][16];
    static char text[200];
    memset(text, 'w', sizeof text - 1);
    open_db(1000, 1024, 1000);
    for (int i = 0; i < N; i++) {
        snprintf(cid[i], sizeof cid[i], "d%d", i);
        set_send(&r[i], "lobby", "u", cid[i], text);
        ck_assert_int_eq(db_submit(db, &r[i]), 0);
    }
    wait_done(N);
    close_db();
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_gt(size, 4096 * 12);
    /* Pages in the middle of the file: the messages table's, whatever the
     * schema's first pages hold. */
    for (long pg = size / 4096 / 2 - 2; pg < size / 4096 / 2 + 3; pg++) {
        ck_assert_int_eq(fseek(f, pg * 4096 + 20, SEEK_SET), 0);
        for (int i = 0; i < 2000; i++)
            fputc((i * 131 + 7) & 0xff, f);
    }
    fclose(f);
    /* The damage is real: quick_check does not answer "ok". */
    sqlite3 *c;
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(c, "PRAGMA quick_check", -1, &st, NULL),
                     SQLITE_OK);
    int rc = sqlite3_step(st);
    int ok = rc == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(c);
    ck_assert_int_eq(ok, 0);
    char err[256] = "";
    struct db_options o = options(10, 10, 100);
    db = db_open(&o, err, sizeof err);
    if (db) ck_abort_msg("db_open accepted a database that fails PRAGMA quick_check");
    ck_assert_int_gt(strlen(err), 0);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(test_setting)
{
    open_db(10, 10, 1000);
    char *v = db_setting(db, "resume_key", "first");
    ck_assert_str_eq(v, "first");
    free(v);
    v = db_setting(db, "resume_key", "second"); /* kept, not replaced */
    ck_assert_str_eq(v, "first");
    free(v);
    close_db();
    open_db(10, 10, 1000);
    v = db_setting(db, "resume_key", "third");
    ck_assert_str_eq(v, "first");
    free(v);
}
END_TEST

/* A setting read while the worker prunes (at start, with retention on, it
 * prunes at once): the two share one connection, and each must see only
 * its own transactions. */
START_TEST(test_setting_while_pruning)
{
    enum { OLD = 20000 };
    open_db(10, 10, 1000);
    close_db();
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    char sql[512];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<%d) "
             "INSERT INTO messages(room,user_id,user_name,text,ts,client_id) "
             "SELECT 'r'||(i%%7),'u','U','old',%lld,'c'||i FROM n",
             OLD, (long long)(wall_ms() - 10LL * 86400000));
    ck_assert_int_eq(sqlite3_exec(c, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(c);

    char err[256] = "";
    struct db_options o = options(10, 10, 1000);
    o.retention_ms = 7LL * 86400000;
    o.prune_interval_ms = 1000;
    ck_assert_ptr_nonnull(db = db_open(&o, err, sizeof err));
    for (int i = 0; i < 200; i++) {
        char key[32], fresh[32];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(fresh, sizeof fresh, "v%d", i);
        char *v = db_setting(db, key, fresh);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v, fresh);
        free(v);
    }
    struct db_stats st;
    double until = mono_s() + 30;
    do {
        db_stats(db, &st);
        if (st.pruned < OLD) usleep(20000);
    } while (st.pruned < OLD && mono_s() < until);
    ck_assert_uint_eq(st.pruned, OLD);
    ck_assert_uint_eq(st.failures, 0);
    close_db();
}
END_TEST

/* ---- sends and reads ---- */

START_TEST(test_send_and_read)
{
    static struct db_req s1, s2, rd;
    open_db(100, 100, 1000);
    int64_t t0 = wall_ms();
    set_send(&s1, "lobby", "u1", "c1", "hello world");
    s1.text_len = 5; /* only "hello" */
    s1.user_name = "Ann \"A\"";
    s1.owner = &s2; /* opaque to the db */
    run1(&s1);
    int64_t t1 = wall_ms();
    ck_assert_int_eq(s1.status, DB_OK);
    ck_assert_int_gt(s1.id, 0);
    ck_assert_int_eq(s1.duplicate, 0);
    ck_assert_int_ge(s1.ts, t0);
    ck_assert_int_le(s1.ts, t1);
    ck_assert_ptr_eq(s1.owner, &s2);
    ck_assert_ptr_null(s1.rows);
    ck_assert_int_ge(waker.calls, 1);

    set_send(&s2, "lobby", "u2", "c1", "caf\xc3\xa9\n\"q\"");
    run1(&s2);
    ck_assert_int_eq(s2.status, DB_OK);
    ck_assert_int_eq(s2.id, s1.id + 1);

    set_read(&rd, "lobby", -1, -1, 50);
    run1(&rd);
    ck_assert_int_eq(rd.status, DB_OK);
    ck_assert_int_eq(rd.nrows, 2);
    ck_assert_int_eq(rd.more, 0);
    ck_assert_int_eq(rd.last_id, s2.id);
    char want[512];
    snprintf(want, sizeof want,
             "{\"type\":\"message\",\"room\":\"lobby\",\"id\":%lld,\"ts\":%lld,"
             "\"user\":{\"id\":\"u1\",\"name\":\"Ann "
             "\\\"A\\\"\"},\"rev\":%lld,\"text\":\"hello\","
             "\"client_id\":\"c1\"},"
             "{\"type\":\"message\",\"room\":\"lobby\",\"id\":%lld,\"ts\":%lld,"
             "\"user\":{\"id\":\"u2\",\"name\":\"Name\"},\"rev\":%lld,"
             "\"text\":\"caf\xc3\xa9\\n\\\"q\\\"\",\"client_id\":\"c1\"}",
             (long long)s1.id, (long long)s1.ts, (long long)s1.id, (long long)s2.id,
             (long long)s2.ts, (long long)s2.id);
    ck_assert_uint_eq(rd.rows->len, strlen(want));
    ck_assert_mem_eq(BUF_PAYLOAD(rd.rows), want, strlen(want));
    buf_unref(rd.rows);
    rd.rows = NULL;

    struct db_stats st;
    db_stats(db, &st);
    ck_assert_uint_eq(st.stored, 2);
    ck_assert_uint_eq(st.duplicates, 0);
    ck_assert_uint_eq(st.failures, 0);
    ck_assert_uint_eq(st.batches, 3);
    ck_assert_int_eq(st.queue_depth, 0);
}
END_TEST

START_TEST(test_read_empty_room)
{
    static struct db_req s, rd;
    open_db(100, 100, 1000);
    set_send(&s, "elsewhere", "u", "c", "x");
    run1(&s);
    set_read(&rd, "empty", -1, -1, 50);
    run1(&rd);
    ck_assert_int_eq(rd.status, DB_OK);
    ck_assert_int_eq(rd.nrows, 0);
    ck_assert_int_eq(rd.more, 0);
    ck_assert_int_eq(rd.last_id, 0);
    ck_assert(rd.rows == NULL || rd.rows->len == 0);
    buf_unref(rd.rows);
    rd.rows = NULL;
    set_read(&rd, "empty", -1, 0, 50);
    run1(&rd);
    ck_assert_int_eq(rd.nrows, 0);
    ck_assert_int_eq(rd.more, 0);
    ck_assert_int_eq(rd.last_id, 0);
    buf_unref(rd.rows);
    rd.rows = NULL;
}
END_TEST

/* 10 messages in "r", interleaved with 5 in "other". */
static int64_t rid[10];

static void fill_rooms(void)
{
    static struct db_req s[15];
    static char cid[15][16];
    int k = 0;
    for (int i = 0; i < 15; i++) {
        snprintf(cid[i], sizeof cid[i], "c%d", i);
        set_send(&s[i], i % 3 == 2 ? "other" : "r", "u", cid[i], "t");
        ck_assert_int_eq(db_submit(db, &s[i]), 0);
    }
    wait_done(ndone + 15);
    for (int i = 0; i < 15; i++) {
        ck_assert_int_eq(s[i].status, DB_OK);
        if (i % 3 != 2) rid[k++] = s[i].id;
    }
    ck_assert_int_eq(k, 10);
    ndone = 0;
}

/* Runs a read and checks its ids are rid[first..first+n), more and last_id. */
static void check_read(int64_t before, int64_t after, int limit, int first, int n,
                       int more)
{
    static struct db_req rd;
    set_read(&rd, "r", before, after, limit);
    run1(&rd);
    ck_assert_int_eq(rd.status, DB_OK);
    int64_t ids[64];
    int got = row_ids(&rd, ids, 64);
    if (got != n || rd.more != more)
        ck_abort_msg(
            "read before=%lld after=%lld limit=%d: %d rows more=%d, want %d more=%d",
            (long long)before, (long long)after, limit, got, rd.more, n, more);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(ids[i], rid[first + i]);
    ck_assert_int_eq(rd.last_id, rid[9]);
    buf_unref(rd.rows);
    rd.rows = NULL;
    ndone = 0;
}

START_TEST(test_read_after)
{
    open_db(100, 100, 1000);
    fill_rooms();
    check_read(-1, 0, 3, 0, 3, 1);   /* from the first, ascending */
    check_read(-1, 0, 10, 0, 10, 0); /* exactly all: no more */
    check_read(-1, 0, 200, 0, 10, 0);
    check_read(-1, rid[2], 3, 3, 3, 1); /* strictly after */
    check_read(-1, rid[6], 3, 7, 3, 0); /* the last three */
    check_read(-1, rid[7], 5, 8, 2, 0);
    check_read(-1, rid[9], 5, 0, 0, 0);     /* nothing newer */
    check_read(rid[5], rid[2], 2, 3, 2, 1); /* after wins over before */
}
END_TEST

START_TEST(test_read_latest_and_before)
{
    open_db(100, 100, 1000);
    fill_rooms();
    check_read(-1, -1, 3, 7, 3, 1); /* latest three, oldest first */
    check_read(-1, -1, 10, 0, 10, 0);
    check_read(-1, -1, 50, 0, 10, 0);
    check_read(rid[5], -1, 3, 2, 3, 1); /* just below rid[5] */
    check_read(rid[3], -1, 3, 0, 3, 0); /* reaches the first: no more */
    check_read(rid[3], -1, 10, 0, 3, 0);
    check_read(rid[0], -1, 10, 0, 0, 0); /* nothing older */
    check_read(0, -1, 10, 0, 0, 0);
    check_read(rid[9] + 1000, -1, 1, 9, 1, 1);
}
END_TEST

START_TEST(test_ids_and_completion_order)
{
    enum { N = 300 };
    static struct db_req r[N];
    static char cid[N][16];
    static const char *const rooms[] = {"a", "b", "c"};
    open_db(1000, 16, 1000);
    for (int i = 0; i < N; i++) {
        if (i % 7 == 6)
            set_read(&r[i], rooms[i % 3], -1, -1, 5);
        else {
            snprintf(cid[i], sizeof cid[i], "id-%d", i);
            set_send(&r[i], rooms[i % 3], "u", cid[i], "x");
        }
        ck_assert_int_eq(db_submit(db, &r[i]), 0);
        if (i % 50 == 0) usleep(2000); /* spread over several batches */
    }
    wait_done(N);
    /* Writes complete in submission order, each read after every send
     * submitted before it, and a read sees exactly the sends of its room
     * that completed before it (db.h's ordering contract). */
    int pos[N], next_send = 0;
    int64_t last = 0, newest[3] = {0, 0, 0};
    for (int k = 0; k < N; k++)
        pos[done[k] - r] = k;
    for (int k = 0; k < N; k++) {
        struct db_req *q = done[k];
        int i = (int)(q - r), room = i % 3;
        ck_assert_int_eq(q->status, DB_OK);
        if (q->op == DB_SEND) {
            while (next_send < N && r[next_send].op != DB_SEND)
                next_send++;
            ck_assert_int_eq(i, next_send++); /* sends in submission order */
            ck_assert_int_gt(q->id, last);    /* ids increase in that order */
            last = newest[room] = q->id;
            continue;
        }
        for (int j = 0; j < i; j++)
            if (r[j].op == DB_SEND) ck_assert_int_lt(pos[j], k);
        int64_t ids[5];
        int n = row_ids(q, ids, 5);
        ck_assert_int_eq(q->last_id, newest[room]);
        if (newest[room]) ck_assert_int_eq(ids[n - 1], newest[room]);
    }
    free_done_rows();
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_uint_eq(st.stored, N - N / 7);
    ck_assert_uint_eq(st.batch_sum, N);
}
END_TEST

/* ---- group commit ---- */

START_TEST(test_batching_natural)
{
    enum { N = 500 };
    static struct db_req r[N];
    static char cid[N][16];
    open_db(1000, 1024, 1000);
    for (int i = 0; i < N; i++) {
        snprintf(cid[i], sizeof cid[i], "b%d", i);
        set_send(&r[i], "lobby", "u", cid[i], "batched");
        ck_assert_int_eq(db_submit(db, &r[i]), 0);
    }
    wait_done(N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(r[i].status, DB_OK);
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_uint_eq(st.stored, N);
    ck_assert_uint_eq(st.batch_sum, N);
    ck_assert_uint_lt(st.batches, N);
    uint64_t multi = 0, total = 0;
    for (int i = 0; i < 8; i++) {
        total += st.batch_hist[i];
        if (i > 0) multi += st.batch_hist[i];
    }
    ck_assert_uint_eq(total, st.batches);
    ck_assert_uint_gt(multi, 0); /* some batch held more than one request */
    close_db();
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM messages"), N);
    sqlite3_close(c);
}
END_TEST

START_TEST(test_batching_exact)
{
    /* With the worker held on a lock, everything queued behind the first
     * request goes into one transaction when the lock is released. */
    enum { N = 500 };
    static struct db_req r[N];
    static char cid[N][16];
    open_db(1000, 1024, 20000);
    lock_writer();
    for (int i = 0; i < N; i++) {
        snprintf(cid[i], sizeof cid[i], "x%d", i);
        set_send(&r[i], "lobby", "u", cid[i], "batched");
    }
    ck_assert_int_eq(db_submit(db, &r[0]), 0);
    wait_queue_empty();
    for (int i = 1; i < N; i++)
        ck_assert_int_eq(db_submit(db, &r[i]), 0);
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_int_eq(st.queue_depth, N - 1);
    unlock_writer();
    wait_done(N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(r[i].status, DB_OK);
        ck_assert_ptr_eq(done[i], &r[i]);
    }
    db_stats(db, &st);
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_uint_eq(st.batch_hist[0], 1); /* size 1 */
    ck_assert_uint_eq(st.batch_hist[5], 1); /* 257-1024: the 499 */
    ck_assert_uint_eq(st.stored, N);
    ck_assert_uint_eq(st.batch_sum, N);
    uint64_t commits = 0;
    for (int i = 0; i < 8; i++)
        commits += st.commit_hist[i];
    ck_assert_uint_eq(commits, 2);
}
END_TEST

START_TEST(test_batch_max)
{
    enum { N = 501 };
    static struct db_req r[N];
    static char cid[N][16];
    open_db(1000, 100, 20000);
    lock_writer();
    for (int i = 0; i < N; i++) {
        snprintf(cid[i], sizeof cid[i], "m%d", i);
        set_send(&r[i], "lobby", "u", cid[i], "capped");
    }
    ck_assert_int_eq(db_submit(db, &r[0]), 0);
    wait_queue_empty();
    for (int i = 1; i < N; i++)
        ck_assert_int_eq(db_submit(db, &r[i]), 0);
    unlock_writer();
    wait_done(N);
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_uint_eq(st.batches, 6); /* 1, then 100 x 5 */
    ck_assert_uint_eq(st.batch_hist[0], 1);
    ck_assert_uint_eq(st.batch_hist[4], 5); /* 65-256 */
    ck_assert_uint_eq(st.stored, N);
}
END_TEST

START_TEST(test_read_after_send_same_batch)
{
    static struct db_req first, s, rd;
    open_db(100, 100, 20000);
    lock_writer();
    set_send(&first, "lobby", "u", "c0", "zero");
    ck_assert_int_eq(db_submit(db, &first), 0);
    wait_queue_empty();
    set_send(&s, "lobby", "u", "c1", "one");
    set_read(&rd, "lobby", -1, -1, 50);
    ck_assert_int_eq(db_submit(db, &s), 0);
    ck_assert_int_eq(db_submit(db, &rd), 0);
    unlock_writer();
    wait_done(3);
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_uint_eq(st.batch_hist[1], 1); /* send + read together */
    ck_assert_int_eq(s.status, DB_OK);
    int64_t ids[4];
    ck_assert_int_eq(row_ids(&rd, ids, 4), 2);
    ck_assert_int_eq(ids[0], first.id);
    ck_assert_int_eq(ids[1], s.id);
    ck_assert_int_eq(rd.last_id, s.id);
    free_done_rows();
}
END_TEST

/* ---- a transaction lost mid-batch ---- */

static int64_t stored_rows(sqlite3 *c, const char *cid)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(
        sqlite3_prepare_v2(c, "SELECT count(*) FROM messages WHERE client_id=?1", -1, &st,
                           NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* A write fails inside a batch in a way that makes SQLite roll the whole
 * transaction back (disk full, I/O error). A request may be reported DB_OK
 * only if its row is stored and every stored row must have been reported
 * DB_OK; a retry with the same client_ids then stores each message once. */
START_TEST(test_batch_rollback)
{
    enum { N = 8, BIG = 600 * 1024 };
    static const int codes[] = {SQLITE_FULL, SQLITE_IOERR_WRITE};
    static struct db_req r[N], again[N], seed, rd;
    static char cid[N][16];
    static char text[BIG + 1];
    memset(text, 'x', BIG);
    shim_register();
    char err[256] = "";
    struct db_options o = options(100, 100, 1000);
    o.vfs = "faulty";
    ck_assert_ptr_nonnull(db = db_open(&o, err, sizeof err));
    set_send(&seed, "lobby", "u", "seed", "before the fault");
    run1(&seed);
    ck_assert_int_eq(seed.status, DB_OK);
    hold_worker();
    for (int i = 0; i < N; i++) {
        snprintf(cid[i], sizeof cid[i], "rb%d", i);
        set_send(&r[i], "lobby", "u", cid[i], text);
        ck_assert_int_eq(db_submit(db, &r[i]), 0);
        if (i == N / 2 - 1) { /* a read inside the batch */
            set_read(&rd, "lobby", -1, -1, 50);
            ck_assert_int_eq(db_submit(db, &rd), 0);
        }
    }
    /* 4.8 MB of rows overflow SQLite's 2 MB page cache, so its first write
     * is a cache spill in the middle of the batch, not the COMMIT. */
    fault.rc = codes[_i];
    fault.hits = 0;
    __atomic_store_n(&fault.countdown, 1, __ATOMIC_SEQ_CST);
    release_worker();
    wait_done(N + 3);
    __atomic_store_n(&fault.countdown, 0, __ATOMIC_SEQ_CST);
    ck_assert_int_eq(__atomic_load_n(&fault.hits, __ATOMIC_SEQ_CST), 1);
    /* The read is still served, on what was committed before the batch: a
     * full disk refuses writes, not reads. */
    ck_assert_int_eq(rd.status, DB_OK);
    ck_assert_int_eq(rd.nrows, 1);
    ck_assert_int_eq(rd.last_id, seed.id);
    buf_unref(rd.rows);
    rd.rows = NULL;
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_uint_eq(st.aborted, 1); /* lost at a statement, not at COMMIT */

    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    int ok_first[N];
    for (int i = 0; i < N; i++) {
        int64_t n = stored_rows(c, cid[i]);
        ok_first[i] = r[i].status == DB_OK;
        if (ok_first[i] != n)
            ck_abort_msg("request %d: status %d but %lld rows stored", i, r[i].status,
                         (long long)n);
    }
    /* The contract: the whole batch fails alike (disk full, I/O: retry). */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(r[i].status, DB_BUSY);
    for (int i = 0; i < N; i++) {
        set_send(&again[i], "lobby", "u", cid[i], text);
        ck_assert_int_eq(db_submit(db, &again[i]), 0);
    }
    wait_done(2 * N + 3);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(again[i].status, DB_OK);
        ck_assert_int_eq(stored_rows(c, cid[i]), 1);
        /* A duplicate ack only for a message the first attempt acked. */
        if (again[i].duplicate != ok_first[i])
            ck_abort_msg("retry %d: duplicate=%d, first attempt status %d", i,
                         again[i].duplicate, r[i].status);
    }
    sqlite3_close(c);
}
END_TEST

/* Waits until the recording hook has seen n completions. */
static void wait_seen(int n)
{
    double deadline = mono_s() + 30;
    pthread_mutex_lock(&waker.m);
    while (nseen < n && mono_s() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&waker.c, &waker.m, &ts);
    }
    int got = nseen;
    pthread_mutex_unlock(&waker.m);
    if (got < n) ck_abort_msg("only %d of %d completions seen in 30 s", got, n);
}

static const struct noted *noted_of(const struct db_req *r)
{
    for (int i = 0; i < nseen; i++)
        if (noted[i].r == r) return &noted[i];
    ck_abort_msg("request never completed");
    return NULL;
}

/* Sends A1, A2, reads R (after C) and L (latest), send B, in one batch.
 * Every ack reaches the wake hook before R has even run, not behind it;
 * the reads complete after B and see it (db.h's ordering contract). */
START_TEST(test_reads_after_commit)
{
    static struct db_req a1, a2, rd, latest, b, c;
    open_db(100, 100, 1000);
    set_send(&c, "lobby", "u", "c0", "before the batch");
    run1(&c);
    ndone = 0;
    hold_worker();
    wait_done(1); /* the read that holds the worker: done before recording */
    set_send(&a1, "lobby", "u", "a1", "one");
    set_send(&a2, "lobby", "u", "a2", "two");
    set_read(&rd, "lobby", -1, c.id, 2);
    set_read(&latest, "lobby", -1, -1, 50);
    set_send(&b, "lobby", "u", "b", "after the reads");
    struct db_req *batch[] = {&a1, &a2, &rd, &latest, &b};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(db_submit(db, batch[i]), 0);
    pthread_mutex_lock(&waker.m);
    waker.record = 1;
    waker.watch = &rd;
    pthread_mutex_unlock(&waker.m);
    release_worker();
    wait_seen(5);
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_uint_eq(st.batch_hist[2], 1); /* one batch of five */

    struct db_req *order[] = {&a1, &a2, &b, &rd, &latest};
    for (int i = 0; i < 5; i++) {
        ck_assert_ptr_eq(noted[i].r, order[i]); /* writes first, then the reads */
        ck_assert_int_eq(batch[i]->status, DB_OK);
    }
    ck_assert_int_gt(b.id, a2.id);
    int64_t ids[8];
    ck_assert_int_eq(row_ids(&rd, ids, 8), 2);
    ck_assert_int_eq(ids[0], a1.id);
    ck_assert_int_eq(ids[1], a2.id);
    ck_assert_int_eq(rd.more, 1); /* b completed before rd: rd sees it */
    ck_assert_int_eq(rd.last_id, b.id);
    ck_assert_int_eq(row_ids(&latest, ids, 8), 4);
    ck_assert_int_eq(ids[0], c.id);
    ck_assert_int_eq(ids[3], b.id);
    ck_assert_int_eq(latest.more, 0);
    ck_assert_int_eq(latest.last_id, b.id);

    /* Every ack of the batch was handed over before the first read ran. */
    const struct noted *s1 = noted_of(&a1), *s2 = noted_of(&a2), *s3 = noted_of(&b),
                       *sr = noted_of(&rd);
    if (s1->watch_ran || s3->watch_ran || s1->call >= sr->call)
        ck_abort_msg("acks waited for the read: a1 in wake %d (read ran: %d), read in "
                     "wake %d",
                     s1->call, s1->watch_ran, sr->call);
    ck_assert_int_eq(s2->call, s1->call);
    ck_assert_int_eq(s3->call, s1->call);
    ck_assert_int_eq(sr->watch_ran, 1);
    for (int i = 0; i < 5; i++) {
        buf_unref(batch[i]->rows);
        batch[i]->rows = NULL;
    }
}
END_TEST

/* A join's read and an edit of an older message submitted after it, in one
 * batch: the read completes after the edit and shows the message at the
 * edit's rev, so the joiner sees that rev once, in its answer, and never
 * again live (the edit is routed before the member joins). Before, the read
 * completed first, showed that rev too, and the edit came again live. */
START_TEST(test_read_completes_after_edits_it_shows)
{
    static struct db_req m, rd, ed, mid;
    static char want[64];
    open_db(100, 100, 1000);
    set_send(&m, "lobby", "u", "m", "first text");
    run1(&m);
    ndone = 0;
    hold_worker();
    wait_done(1);
    set_read(&rd, "lobby", -1, -1, 50);
    set_change(&ed, DB_EDIT, "lobby", "u", m.id, "second text");
    set_send(&mid, "lobby", "u", "mid", "after the read");
    ck_assert_int_eq(db_submit(db, &rd), 0);
    ck_assert_int_eq(db_submit(db, &ed), 0);
    ck_assert_int_eq(db_submit(db, &mid), 0);
    pthread_mutex_lock(&waker.m);
    waker.record = 1;
    pthread_mutex_unlock(&waker.m);
    release_worker();
    wait_seen(3);
    ck_assert_ptr_eq(noted[0].r, &ed);
    ck_assert_ptr_eq(noted[1].r, &mid);
    ck_assert_ptr_eq(noted[2].r, &rd);
    ck_assert_int_eq(ed.status, DB_OK);
    ck_assert_int_eq(rd.status, DB_OK);
    ck_assert_int_gt(ed.id, m.id);
    ck_assert_int_eq(rd.last_id, mid.id);
    int64_t ids[4];
    ck_assert_int_eq(row_ids(&rd, ids, 4), 2);
    char *rows = calloc(1, rd.rows->len + 1);
    ck_assert_ptr_nonnull(rows);
    memcpy(rows, BUF_PAYLOAD(rd.rows), rd.rows->len);
    snprintf(want, sizeof want, "\"rev\":%lld", (long long)ed.id);
    ck_assert_ptr_nonnull(strstr(rows, want));
    ck_assert_ptr_nonnull(strstr(rows, "second text"));
    ck_assert_ptr_null(strstr(rows, "first text"));
    free(rows);
    buf_unref(rd.rows);
    rd.rows = NULL;
}
END_TEST

/* ---- the size bound of a read ---- */

/* Stores n messages of 4,000 control characters in room "big": 24 KB each
 * once escaped to JSON. */
static void fill_big(int64_t *ids, int n)
{
    static struct db_req s[64];
    static char cid[64][16];
    static char text[4001];
    memset(text, 1, 4000);
    ck_assert_int_le(n, 64);
    for (int i = 0; i < n; i++) {
        snprintf(cid[i], sizeof cid[i], "g%d", i);
        set_send(&s[i], "big", "u", cid[i], text);
        ck_assert_int_eq(db_submit(db, &s[i]), 0);
    }
    wait_done(ndone + n);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(s[i].status, DB_OK);
        ids[i] = s[i].id;
    }
    ndone = 0;
}

/* Runs a read of "big"; returns its ids (in ids) and count, checking that
 * its rows stay within cap unless there is only one. */
static int big_read(int64_t before, int64_t after, int limit, size_t cap, int64_t *ids,
                    int *more)
{
    static struct db_req rd;
    set_read(&rd, "big", before, after, limit);
    run1(&rd);
    int n = row_ids(&rd, ids, 64);
    ck_assert_int_ge(n, 1);
    if (n > 1) ck_assert_uint_le(rd.rows->len, cap);
    /* The next row (of the same size) would not have fitted. */
    if (rd.more && n > 1) ck_assert_uint_gt(rd.rows->len + rd.rows->len / n + 1, cap);
    *more = rd.more;
    buf_unref(rd.rows);
    rd.rows = NULL;
    ndone = 0;
    return n;
}

START_TEST(test_read_size_bound)
{
    enum { N = 30 };
    int64_t ids[N], got[64];
    int more, n;
    open_db(100, 100, 1000);
    fill_big(ids, N);

    /* since/after: the oldest rows that fit, then the client continues
     * from the last id it got, and gets every row once, in order. */
    n = big_read(-1, 0, 1000, DB_READ_MAX_BYTES, got, &more);
    ck_assert_int_lt(n, N);
    ck_assert_int_eq(more, 1);
    int k = 0;
    for (;;) {
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(got[i], ids[k + i]);
        k += n;
        if (!more) break;
        ck_assert_int_lt(k, N);
        n = big_read(-1, got[n - 1], 1000, DB_READ_MAX_BYTES, got, &more);
    }
    ck_assert_int_eq(k, N);

    /* latest and before: the newest that fit, oldest first, more = 1. */
    n = big_read(-1, -1, 200, DB_READ_MAX_BYTES, got, &more);
    ck_assert_int_lt(n, N);
    ck_assert_int_eq(more, 1);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(got[i], ids[N - n + i]);
    n = big_read(ids[N - 5], -1, 200, DB_READ_MAX_BYTES, got, &more);
    ck_assert_int_lt(n, N - 5);
    ck_assert_int_eq(more, 1);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(got[i], ids[N - 5 - n + i]);
    /* Within the cap, nothing changes. */
    n = big_read(ids[3], -1, 200, DB_READ_MAX_BYTES, got, &more);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(more, 0);
    close_db();

    /* A cap below one row: one row each way, the nearest to the bound. */
    char err[256] = "";
    struct db_options o = options(100, 100, 1000);
    o.read_max_bytes = 1000;
    ck_assert_ptr_nonnull(db = db_open(&o, err, sizeof err));
    ck_assert_int_eq(big_read(-1, ids[4], 1000, 1000, got, &more), 1);
    ck_assert_int_eq(got[0], ids[5]);
    ck_assert_int_eq(more, 1);
    ck_assert_int_eq(big_read(ids[4], -1, 200, 1000, got, &more), 1);
    ck_assert_int_eq(got[0], ids[3]);
    ck_assert_int_eq(more, 1);
    ck_assert_int_eq(big_read(-1, -1, 50, 1000, got, &more), 1);
    ck_assert_int_eq(got[0], ids[N - 1]);
    ck_assert_int_eq(more, 1);
}
END_TEST

/* ---- idempotency ---- */

START_TEST(test_idempotency)
{
    static struct db_req a, b, c, d, e, f;
    open_db(100, 100, 20000); /* held on the lock below however slow this thread */
    set_send(&a, "lobby", "u1", "k1", "first");
    run1(&a);
    ck_assert_int_eq(a.duplicate, 0);
    usleep(5000); /* a later ts, were it a new message */
    set_send(&b, "lobby", "u1", "k1", "second text");
    run1(&b);
    ck_assert_int_eq(b.status, DB_OK);
    ck_assert_int_eq(b.duplicate, 1);
    ck_assert_int_eq(b.id, a.id);
    ck_assert_int_eq(b.ts, a.ts);
    /* Another user with the same client_id: a new message. */
    set_send(&c, "lobby", "u2", "k1", "third");
    run1(&c);
    ck_assert_int_eq(c.duplicate, 0);
    ck_assert_int_gt(c.id, a.id);
    /* The same user in another room: a new message. */
    set_send(&d, "other", "u1", "k1", "fourth");
    run1(&d);
    ck_assert_int_eq(d.duplicate, 0);
    ck_assert_int_gt(d.id, c.id);
    /* Two identical sends in one batch: the second is the duplicate. */
    lock_writer();
    static struct db_req hold;
    set_send(&hold, "lobby", "u9", "h", "hold");
    ck_assert_int_eq(db_submit(db, &hold), 0);
    wait_queue_empty();
    set_send(&e, "lobby", "u3", "k2", "x");
    set_send(&f, "lobby", "u3", "k2", "x");
    ck_assert_int_eq(db_submit(db, &e), 0);
    ck_assert_int_eq(db_submit(db, &f), 0);
    unlock_writer();
    wait_done(ndone + 3);
    ck_assert_int_eq(e.duplicate, 0);
    ck_assert_int_eq(f.duplicate, 1);
    ck_assert_int_eq(f.id, e.id);
    ck_assert_int_eq(f.ts, e.ts);
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_uint_eq(st.stored, 5);
    ck_assert_uint_eq(st.duplicates, 2);
    /* The first text is the one kept. */
    static struct db_req rd;
    set_read(&rd, "lobby", a.id + 1, -1, 1);
    run1(&rd);
    ck_assert_int_eq(rd.nrows, 1);
    ck_assert_ptr_nonnull(
        memmem(BUF_PAYLOAD(rd.rows), rd.rows->len, "\"text\":\"first\"", 14));
    free_done_rows();
}
END_TEST

START_TEST(test_restart_keeps_idempotency)
{
    static struct db_req a, b, c;
    open_db(100, 100, 1000);
    set_send(&a, "lobby", "u1", "k1", "before restart");
    run1(&a);
    ck_assert_int_eq(a.status, DB_OK);
    close_db();
    usleep(5000);
    open_db(100, 100, 1000);
    set_send(&b, "lobby", "u1", "k1", "before restart");
    run1(&b);
    ck_assert_int_eq(b.status, DB_OK);
    ck_assert_int_eq(b.duplicate, 1);
    ck_assert_int_eq(b.id, a.id);
    ck_assert_int_eq(b.ts, a.ts);
    set_send(&c, "lobby", "u1", "k2", "new");
    run1(&c);
    ck_assert_int_eq(c.duplicate, 0);
    ck_assert_int_gt(c.id, a.id); /* ids may have gaps (a duplicate can use one up) */
}
END_TEST

START_TEST(test_stop_commits_queued)
{
    enum { N = 50 };
    static struct db_req r[N], late;
    static char cid[N][16];
    open_db(100, 8, 1000);
    for (int i = 0; i < N; i++) {
        snprintf(cid[i], sizeof cid[i], "s%d", i);
        set_send(&r[i], "lobby", "u", cid[i], "x");
        ck_assert_int_eq(db_submit(db, &r[i]), 0);
    }
    db_stop(db);
    set_send(&late, "lobby", "u", "late", "x");
    late.id = 12345;
    ck_assert_int_eq(db_submit(db, &late), -1); /* stopping: refused */
    db_take_done(db, collect, &ndone);
    ck_assert_int_eq(ndone, N);
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_eq(done[i], &r[i]);
        ck_assert_int_eq(r[i].status, DB_OK);
    }
    ndone = 0;
    db_close(db);
    db = NULL;
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM messages"), N);
    sqlite3_close(c);
}
END_TEST

START_TEST(test_close_drops_done_rows)
{
    /* Completed reads never taken: db_close frees their rows (ASan checks). */
    static struct db_req s, rd[3];
    open_db(100, 100, 1000);
    set_send(&s, "lobby", "u", "c", "x");
    run1(&s);
    ndone = 0;
    for (int i = 0; i < 3; i++) {
        set_read(&rd[i], "lobby", -1, -1, 10);
        ck_assert_int_eq(db_submit(db, &rd[i]), 0);
    }
    db_stop(db);
    db_close(db);
    db = NULL;
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_null(rd[i].rows);
}
END_TEST

/* ---- the queue bound, and a locked database ---- */

START_TEST(test_queue_bound_and_busy)
{
    static struct db_req r[3], after, rd;
    open_db(2, 1, 200);
    /* The worker is held in the wake hook after a read (which needs no
     * lock): it takes nothing while the queue fills, however late this
     * thread is. Held on the write lock instead, it failed its request
     * after busy_ms and took the next, and a thread 200 ms late found a
     * free slot. The held read is in flight: it does not count. */
    hold_worker();
    wait_done(1);
    int base = ndone;
    lock_writer();
    for (int i = 0; i < 3; i++)
        set_send(&r[i], "lobby", "u", i == 0 ? "q0" : i == 1 ? "q1" : "q2", "x");
    ck_assert_int_eq(db_submit(db, &r[0]), 0);
    ck_assert_int_eq(db_submit(db, &r[1]), 0);
    ck_assert_int_eq(db_submit(db, &r[2]), -1); /* full */
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_int_eq(st.queue_depth, 2);
    /* The queued requests fail with DB_BUSY after busy_ms each: no hang. */
    double t0 = mono_s();
    release_worker();
    wait_done(base + 2);
    ck_assert(mono_s() - t0 < 10.0);
    for (int i = 0; i < 2; i++) {
        ck_assert_ptr_eq(done[base + i], &r[i]);
        ck_assert_int_eq(r[i].status, DB_BUSY);
        ck_assert_ptr_null(r[i].rows);
    }
    db_stats(db, &st);
    ck_assert_uint_eq(st.failures, 2);
    ck_assert_uint_eq(st.stored, 0);
    /* Reads still work while another connection writes (WAL). */
    set_read(&rd, "lobby", -1, -1, 10);
    run1(&rd);
    ck_assert_int_eq(rd.status, DB_OK);
    ck_assert_int_eq(rd.nrows, 0);
    /* Once the lock is gone, sends succeed again; the refused one was never
     * queued and can be submitted now. */
    unlock_writer();
    set_send(&after, "lobby", "u", "q9", "x");
    run1(&after);
    ck_assert_int_eq(after.status, DB_OK);
    run1(&r[2]);
    ck_assert_int_eq(r[2].status, DB_OK);
    ck_assert_int_eq(r[2].id, after.id + 1);
    free_done_rows();
}
END_TEST

START_TEST(test_refused_submit_leaves_request_untouched)
{
    /* db.h: when db_submit returns -1, "r is untouched and stays the
     * caller's" -- its fields, outputs included, are as the caller left them. */
    static struct db_req r;
    open_db(1, 1, 1000);
    db_stop(db);
    struct buf *mine = buf_new(16);
    set_read(&r, "lobby", -1, -1, 10);
    r.rows = mine;
    r.status = DB_FAILED;
    r.id = 7;
    r.nrows = 3;
    r.last_id = 9;
    ck_assert_int_eq(db_submit(db, &r), -1);
    struct db_req seen = r;
    buf_unref(mine); /* free it before asserting, so a failure does not leak */
    ck_assert_ptr_eq(seen.rows, mine);
    ck_assert_int_eq(seen.status, DB_FAILED);
    ck_assert_int_eq(seen.id, 7);
    ck_assert_int_eq(seen.nrows, 3);
    ck_assert_int_eq(seen.last_id, 9);
}
END_TEST

/* ---- direct messages (protocol 1.1): DM rooms and their pair ---- */

static void set_user(struct db_req *r, const char *id, const char *name, int guest)
{
    memset(r, 0, sizeof(*r));
    r->op = DB_USER;
    r->user_id = id;
    r->user_name = name;
    r->guest = guest ? 1 : 0;
}

/* DB_DM as dm_prepare() makes it: the room named from the pair. */
static void set_dm(struct db_req *r, char room[PROTO_DM_ROOM_LEN + 1], const char *user,
                   const char *peer, int no_guest_dms)
{
    memset(r, 0, sizeof(*r));
    dm_room_name(user, peer, room);
    r->op = DB_DM;
    r->room = room;
    r->user_id = user;
    r->peer_id = peer;
    r->no_guest_dms = no_guest_dms ? 1 : 0;
}

static void set_change(struct db_req *r, enum db_op op, const char *room,
                       const char *user, int64_t id, const char *text)
{
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->room = room;
    r->user_id = user;
    r->user_name = "Name";
    r->msg_id = id;
    r->text = text;
    r->text_len = text ? strlen(text) : 0;
}

/* A read of a room by `user` (DM rooms check it). */
static void set_read_by(struct db_req *r, const char *room, const char *user)
{
    set_read(r, room, -1, -1, 50);
    r->user_id = user;
}

/* The `rooms` listing's read: user's DM rooms (roomreq.c's rooms_read). */
static void set_dms(struct db_req *r, const char *user)
{
    memset(r, 0, sizeof(*r));
    r->op = DB_READ;
    r->user_id = user;
    r->dms = 1;
    r->since = r->before = r->after = -1;
}

/* Records users (as hello does) and makes the pair's room; checks it. */
static void user1(const char *id, const char *name, int guest)
{
    struct db_req *r = calloc(1, sizeof(*r)); /* freed by free_done_rows (owner) */
    set_user(r, id, name, guest);
    r->owner = r;
    run1(r);
    ck_assert_int_eq(r->status, DB_OK);
}

static void dm1(char room[PROTO_DM_ROOM_LEN + 1], const char *user, const char *peer)
{
    struct db_req *r = calloc(1, sizeof(*r));
    set_dm(r, room, user, peer, 0);
    r->owner = r;
    run1(r);
    ck_assert_int_eq(r->status, DB_OK);
}

static int64_t send1(const char *room, const char *user, const char *cid,
                     const char *text)
{
    struct db_req *r = calloc(1, sizeof(*r));
    set_send(r, room, user, cid, text);
    r->owner = r;
    run1(r);
    ck_assert_int_eq(r->status, DB_OK);
    return r->id;
}

/* Copies p[0..n) into out for a failure message, each NUL (a pair's
 * separator) written as \0. */
static const char *shown(const unsigned char *p, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 3 < cap; i++)
        if (p[i])
            out[k++] = (char)p[i];
        else
            out[k++] = '\\', out[k++] = '0';
    out[k] = 0;
    return out;
}

/* Checks that b holds exactly the n bytes of want. */
static void expect_buf(const struct buf *b, const void *want, size_t n)
{
    static char g[2048], w[2048];
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->oom, 0);
    if (b->len != n || memcmp(BUF_PAYLOAD(b), want, n))
        ck_abort_msg("got %s (%u bytes), want %s (%zu bytes)",
                     shown(BUF_PAYLOAD(b), b->len, g, sizeof g), b->len,
                     shown(want, n, w, sizeof w), n);
}
#define EXPECT_PAIR(r, lit) expect_buf((r)->pair, lit, sizeof lit - 1)
#define EXPECT_JSON(b, s) expect_buf(b, s, strlen(s))

static int64_t count_where(sqlite3 *c, const char *fmt, const char *arg)
{
    char sql[256];
    snprintf(sql, sizeof sql, fmt, arg);
    return query_int(c, sql);
}

/* The one dm_rooms row of room: its pair and creation time. */
static void dm_row(sqlite3 *c, const char *room, char *a, char *b, int64_t *created)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(c,
                                        "SELECT user_a, user_b, created FROM dm_rooms "
                                        "WHERE room=?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    snprintf(a, 64, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(b, 64, "%s", (const char *)sqlite3_column_text(st, 1));
    *created = sqlite3_column_int64(st, 2);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

START_TEST(test_dm_make)
{
    static struct db_req ua, ub, uz, mk, again, rev, same_batch_user, same_batch_dm;
    static char room[PROTO_DM_ROOM_LEN + 1], room2[PROTO_DM_ROOM_LEN + 1],
        room3[PROTO_DM_ROOM_LEN + 1], room4[PROTO_DM_ROOM_LEN + 1];
    open_db(100, 100, 1000);
    set_user(&ua, "alice", "Alice", 0);
    set_user(&ub, "bob", "Bob", 1);
    set_user(&uz, "zed", "Zed", 0);
    run1(&ua);
    run1(&ub);
    run1(&uz);
    ck_assert_int_eq(ua.status, DB_OK);
    ck_assert_int_eq(ub.status, DB_OK);
    int64_t t0 = wall_ms();
    set_dm(&mk, room, "alice", "bob", 0);
    run1(&mk);
    int64_t t1 = wall_ms();
    ck_assert_int_eq(mk.status, DB_OK);
    ck_assert_ptr_null(mk.pair);
    ck_assert_ptr_null(mk.peer);
    ck_assert_ptr_null(mk.rows);
    /* The other way round: the same room, still one row, the first's. */
    usleep(3000);
    set_dm(&again, room2, "bob", "alice", 0);
    ck_assert_str_eq(room2, room);
    run1(&again);
    ck_assert_int_eq(again.status, DB_OK);
    /* The pair sorted whoever asks: zed asking bob stores (bob, zed). */
    set_dm(&rev, room3, "zed", "bob", 0);
    run1(&rev);
    ck_assert_int_eq(rev.status, DB_OK);
    /* The peer's hello and the dm in one batch: the user is recorded first
     * (submission order), so the dm finds it. */
    hold_worker();
    set_user(&same_batch_user, "carl", "Carl", 1);
    set_dm(&same_batch_dm, room4, "alice", "carl", 0);
    ck_assert_int_eq(db_submit(db, &same_batch_user), 0);
    ck_assert_int_eq(db_submit(db, &same_batch_dm), 0);
    int before = ndone;
    release_worker();
    wait_done(before + 3);
    ck_assert_int_eq(same_batch_user.status, DB_OK);
    ck_assert_int_eq(same_batch_dm.status, DB_OK);

    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM dm_rooms"), 3);
    char a[64], b[64];
    int64_t created;
    dm_row(c, room, a, b, &created);
    ck_assert_str_eq(a, "alice");
    ck_assert_str_eq(b, "bob");
    ck_assert_int_ge(created, t0);
    ck_assert_int_le(created, t1); /* the second dm changed nothing */
    dm_row(c, room3, a, b, &created);
    ck_assert_str_eq(a, "bob");
    ck_assert_str_eq(b, "zed");
    dm_row(c, room4, a, b, &created);
    ck_assert_str_eq(a, "alice");
    ck_assert_str_eq(b, "carl");
    /* Making a room stores no message. */
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM messages"), 0);
    sqlite3_close(c);
    free_done_rows();
}
END_TEST

START_TEST(test_dm_unknown_peer)
{
    static struct db_req ua, s, mk, self_known;
    static char room[PROTO_DM_ROOM_LEN + 1], room2[PROTO_DM_ROOM_LEN + 1];
    open_db(100, 100, 1000);
    set_user(&ua, "alice", "Alice", 0);
    run1(&ua);
    /* ghost wrote a message once, but was never welcomed (no users row). */
    set_send(&s, "lobby", "ghost", "c1", "boo");
    run1(&s);
    ck_assert_int_eq(s.status, DB_OK);
    set_dm(&mk, room, "alice", "ghost", 0);
    run1(&mk);
    ck_assert_int_eq(mk.status, DB_NOT_FOUND);
    /* With no_guest_dms too: not found is what it is. */
    set_dm(&self_known, room2, "alice", "nobody", 1);
    run1(&self_known);
    ck_assert_int_eq(self_known.status, DB_NOT_FOUND);
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM dm_rooms"), 0);
    sqlite3_close(c);
    /* The refusal cost the worker nothing: later writes go on. */
    static struct db_req after;
    set_send(&after, "lobby", "alice", "c2", "still here");
    run1(&after);
    ck_assert_int_eq(after.status, DB_OK);
    ck_assert_int_eq(after.id, s.id + 1);
    free_done_rows();
}
END_TEST

START_TEST(test_dm_guest_peer)
{
    static struct db_req ug, ut, ua, off, on, tok, guest_asks;
    static char r1[PROTO_DM_ROOM_LEN + 1], r2[PROTO_DM_ROOM_LEN + 1],
        r3[PROTO_DM_ROOM_LEN + 1], r4[PROTO_DM_ROOM_LEN + 1];
    open_db(100, 100, 1000);
    set_user(&ug, "g_guest", "Guest", 1);
    set_user(&ut, "tara", "Tara", 0);
    set_user(&ua, "alice", "Alice", 0);
    run1(&ug);
    run1(&ut);
    run1(&ua);
    /* --no-guest-dms: a guest peer is refused, and no room is made. */
    set_dm(&off, r1, "alice", "g_guest", 1);
    run1(&off);
    ck_assert_int_eq(off.status, DB_FORBIDDEN);
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM dm_rooms"), 0);
    /* A token user peer is fine with the option. */
    set_dm(&tok, r2, "alice", "tara", 1);
    run1(&tok);
    ck_assert_int_eq(tok.status, DB_OK);
    /* Whether the requester is a guest is the session's check, not this. */
    set_dm(&guest_asks, r3, "g_guest", "tara", 1);
    run1(&guest_asks);
    ck_assert_int_eq(guest_asks.status, DB_OK);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM dm_rooms"), 2);
    /* Without the option, guests DM like anyone. */
    set_dm(&on, r4, "alice", "g_guest", 0);
    ck_assert_str_eq(r4, r1);
    run1(&on);
    ck_assert_int_eq(on.status, DB_OK);
    ck_assert_int_eq(count_where(c, "SELECT count(*) FROM dm_rooms WHERE room='%s'", r1),
                     1);
    sqlite3_close(c);
    free_done_rows();
}
END_TEST

START_TEST(test_dm_send)
{
    static struct db_req sa, sb, sc, snone, slobby, ba, bc, bb;
    static char room[PROTO_DM_ROOM_LEN + 1], other[PROTO_DM_ROOM_LEN + 1];
    open_db(100, 100, 1000);
    user1("alice", "Alice", 0);
    user1("bob", "Bob", 0);
    user1("carol", "Carol", 0);
    dm1(room, "bob", "alice");
    /* Either of the pair: stored, with the pair sorted for delivery. */
    set_send(&sa, room, "alice", "c1", "hi bob");
    run1(&sa);
    ck_assert_int_eq(sa.status, DB_OK);
    ck_assert_int_gt(sa.id, 0);
    EXPECT_PAIR(&sa, "alice\0bob\0");
    ck_assert_uint_eq(sa.pair->refs, 1);
    set_send(&sb, room, "bob", "c1", "hi alice");
    run1(&sb);
    ck_assert_int_eq(sb.status, DB_OK);
    ck_assert_int_eq(sb.id, sa.id + 1);
    EXPECT_PAIR(&sb, "alice\0bob\0");
    /* A third user: forbidden, nothing stored, no pair, no id. */
    set_send(&sc, room, "carol", "c1", "let me in");
    run1(&sc);
    ck_assert_int_eq(sc.status, DB_FORBIDDEN);
    ck_assert_ptr_null(sc.pair);
    ck_assert_int_eq(sc.id, 0);
    ck_assert_int_eq(sc.duplicate, 0);
    /* A dm- name no pair owns: forbidden for anyone. */
    dm_room_name("alice", "carol", other); /* never made */
    set_send(&snone, other, "alice", "c2", "hello?");
    run1(&snone);
    ck_assert_int_eq(snone.status, DB_FORBIDDEN);
    ck_assert_ptr_null(snone.pair);
    /* An ordinary room: no pair check, no pair. */
    set_send(&slobby, "lobby", "carol", "c3", "lobby");
    run1(&slobby);
    ck_assert_int_eq(slobby.status, DB_OK);
    ck_assert_ptr_null(slobby.pair);
    ck_assert_int_eq(slobby.id, sb.id + 1);
    /* In one batch, the refused send in the middle costs the others
     * nothing: they commit with consecutive ids. */
    hold_worker();
    set_send(&ba, room, "alice", "b1", "one");
    set_send(&bc, room, "carol", "b2", "two");
    set_send(&bb, room, "bob", "b3", "three");
    ck_assert_int_eq(db_submit(db, &ba), 0);
    ck_assert_int_eq(db_submit(db, &bc), 0);
    ck_assert_int_eq(db_submit(db, &bb), 0);
    int before = ndone;
    release_worker();
    wait_done(before + 4);
    ck_assert_int_eq(ba.status, DB_OK);
    ck_assert_int_eq(bc.status, DB_FORBIDDEN);
    ck_assert_int_eq(bb.status, DB_OK);
    ck_assert_int_eq(ba.id, slobby.id + 1);
    ck_assert_int_eq(bb.id, ba.id + 1);
    EXPECT_PAIR(&bb, "alice\0bob\0");
    ck_assert_ptr_null(bc.pair);

    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(
        count_where(c, "SELECT count(*) FROM messages WHERE room='%s'", room), 4);
    ck_assert_int_eq(
        count_where(c, "SELECT count(*) FROM messages WHERE user_id='%s'", "carol"), 1);
    ck_assert_int_eq(
        count_where(c, "SELECT count(*) FROM messages WHERE room='%s'", other), 0);
    sqlite3_close(c);
    struct db_stats st;
    db_stats(db, &st);
    ck_assert_uint_eq(st.stored, 5); /* sa, sb, slobby, ba, bb */
    free_done_rows();
}
END_TEST

START_TEST(test_dm_edit_delete)
{
    static struct db_req e_third, e_third_none, d_third, d_third_any, d_third_none,
        e_peer, e_peer_none, d_peer, e_author, d_author, rd;
    static char room[PROTO_DM_ROOM_LEN + 1];
    open_db(100, 100, 1000);
    user1("alice", "Alice", 0);
    user1("bob", "Bob", 0);
    user1("carol", "Carol", 0);
    dm1(room, "alice", "bob");
    int64_t m1 = send1(room, "alice", "c1", "original");
    /* A third user: forbidden, whether the message exists or not (not
     * not_found: that would tell an outsider what the room holds), and
     * with no pair (edit.c tells this refusal from "not the author" by it). */
    set_change(&e_third, DB_EDIT, room, "carol", m1, "hijacked");
    set_change(&e_third_none, DB_EDIT, room, "carol", 999999, "x");
    set_change(&d_third, DB_DELETE, room, "carol", m1, NULL);
    set_change(&d_third_any, DB_DELETE, room, "carol", m1, NULL);
    /* any_author (a moderator's delete) does not reach into a DM either: a
     * room moderator has no power there. (The spec lets an admin delete in
     * any DM; db.h cannot tell an admin from a moderator yet, so this case
     * must change when moderation lands.) */
    d_third_any.any_author = 1;
    set_change(&d_third_none, DB_DELETE, room, "carol", 999999, NULL);
    struct db_req *third[] = {&e_third, &e_third_none, &d_third, &d_third_any,
                              &d_third_none};
    for (size_t i = 0; i < sizeof third / sizeof third[0]; i++) {
        run1(third[i]);
        ck_assert_msg(third[i]->status == DB_FORBIDDEN, "request %zu: status %d", i,
                      third[i]->status);
        ck_assert_ptr_null(third[i]->pair);
        ck_assert_int_eq(third[i]->id, 0);
    }
    /* The peer, not the author: forbidden as for any room, but one of the
     * pair (the pair is filled); a missing id is not_found for the pair. */
    set_change(&e_peer, DB_EDIT, room, "bob", m1, "bob's words");
    run1(&e_peer);
    ck_assert_int_eq(e_peer.status, DB_FORBIDDEN);
    EXPECT_PAIR(&e_peer, "alice\0bob\0");
    set_change(&d_peer, DB_DELETE, room, "bob", m1, NULL);
    run1(&d_peer);
    ck_assert_int_eq(d_peer.status, DB_FORBIDDEN);
    set_change(&e_peer_none, DB_EDIT, room, "bob", 999999, "x");
    run1(&e_peer_none);
    ck_assert_int_eq(e_peer_none.status, DB_NOT_FOUND);
    /* The author: the edit and the delete take the next ids. */
    set_change(&e_author, DB_EDIT, room, "alice", m1, "edited");
    run1(&e_author);
    ck_assert_int_eq(e_author.status, DB_OK);
    ck_assert_int_eq(e_author.id, m1 + 1);
    EXPECT_PAIR(&e_author, "alice\0bob\0");
    set_change(&d_author, DB_DELETE, room, "alice", m1, NULL);
    run1(&d_author);
    ck_assert_int_eq(d_author.status, DB_OK);
    ck_assert_int_eq(d_author.id, m1 + 2);
    EXPECT_PAIR(&d_author, "alice\0bob\0");

    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM edits"), 2);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM edits WHERE by_user<>'alice'"),
                     0);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM messages"), 1);
    sqlite3_close(c);
    set_read_by(&rd, room, "bob");
    run1(&rd);
    ck_assert_int_eq(rd.status, DB_OK);
    ck_assert_int_eq(rd.nrows, 1);
    ck_assert_int_eq(rd.last_id, m1 + 2);
    ck_assert_ptr_nonnull(
        memmem(BUF_PAYLOAD(rd.rows), rd.rows->len, "\"deleted\":true", 14));
    free_done_rows();
}
END_TEST

START_TEST(test_dm_read)
{
    static struct db_req ra, rb, rc, rs, rsc, rafter, rcheck_a, rcheck_c, rnone,
        rnone_check, rlobby;
    static char room[PROTO_DM_ROOM_LEN + 1], other[PROTO_DM_ROOM_LEN + 1];
    open_db(100, 100, 1000);
    user1("alice", "Alice", 0);
    user1("bob", "Bob", 0);
    user1("carol", "Carol", 0);
    dm1(room, "alice", "bob");
    int64_t m1 = send1(room, "alice", "c1", "one");
    int64_t m2 = send1(room, "bob", "c1", "two");
    send1("lobby", "carol", "c1", "elsewhere");
    user1("bob", "Bobby \"B\"", 0); /* a later hello: the latest name */

    /* A member: the rows, and the other user as USER JSON. */
    set_read_by(&ra, room, "alice");
    run1(&ra);
    int64_t ids[4];
    ck_assert_int_eq(row_ids(&ra, ids, 4), 2);
    ck_assert_int_eq(ids[0], m1);
    ck_assert_int_eq(ids[1], m2);
    ck_assert_int_eq(ra.last_id, m2);
    EXPECT_JSON(ra.peer, "{\"id\":\"bob\",\"name\":\"Bobby \\\"B\\\"\"}");
    ck_assert_uint_eq(ra.peer->refs, 1);
    ck_assert_ptr_null(ra.pair);
    set_read_by(&rb, room, "bob");
    run1(&rb);
    ck_assert_int_eq(row_ids(&rb, ids, 4), 2);
    EXPECT_JSON(rb.peer, "{\"id\":\"alice\",\"name\":\"Alice\"}");
    /* A join with since, by a member: the same check, the same peer. */
    set_read_by(&rs, room, "bob");
    rs.since = m1;
    rs.limit = 1000;
    run1(&rs);
    ck_assert_int_eq(row_ids(&rs, ids, 4), 1);
    ck_assert_int_eq(ids[0], m2);
    EXPECT_JSON(rs.peer, "{\"id\":\"alice\",\"name\":\"Alice\"}");
    /* A third user: forbidden, no rows, no peer -- every kind of read. */
    set_read_by(&rc, room, "carol");
    set_read_by(&rsc, room, "carol");
    rsc.since = 0;
    rsc.limit = 1000;
    set_read_by(&rafter, room, "carol");
    rafter.after = 0;
    struct db_req *third[] = {&rc, &rsc, &rafter};
    for (size_t i = 0; i < sizeof third / sizeof third[0]; i++) {
        run1(third[i]);
        ck_assert_msg(third[i]->status == DB_FORBIDDEN, "read %zu: status %d", i,
                      third[i]->status);
        ck_assert_ptr_null(third[i]->rows);
        ck_assert_ptr_null(third[i]->updates);
        ck_assert_ptr_null(third[i]->peer);
        ck_assert_int_eq(third[i]->nrows, 0);
        ck_assert_int_eq(third[i]->more, 0);
    }
    /* check: only whether the user is one of the pair; nothing read. */
    set_read_by(&rcheck_a, room, "alice");
    rcheck_a.check = 1;
    run1(&rcheck_a);
    ck_assert_int_eq(rcheck_a.status, DB_OK);
    ck_assert_ptr_null(rcheck_a.rows);
    ck_assert_ptr_null(rcheck_a.peer);
    ck_assert_int_eq(rcheck_a.nrows, 0);
    set_read_by(&rcheck_c, room, "carol");
    rcheck_c.check = 1;
    run1(&rcheck_c);
    ck_assert_int_eq(rcheck_c.status, DB_FORBIDDEN);
    ck_assert_ptr_null(rcheck_c.rows);
    ck_assert_ptr_null(rcheck_c.peer);
    ck_assert_int_eq(rcheck_c.nrows, 0);
    /* A dm- room no pair owns: forbidden, checked or read. */
    dm_room_name("alice", "carol", other);
    set_read_by(&rnone, other, "alice");
    run1(&rnone);
    ck_assert_int_eq(rnone.status, DB_FORBIDDEN);
    ck_assert_ptr_null(rnone.rows);
    set_read_by(&rnone_check, other, "alice");
    rnone_check.check = 1;
    run1(&rnone_check);
    ck_assert_int_eq(rnone_check.status, DB_FORBIDDEN);
    /* An ordinary room: anyone reads it, and there is no peer. */
    set_read_by(&rlobby, "lobby", "alice");
    run1(&rlobby);
    ck_assert_int_eq(row_ids(&rlobby, ids, 4), 1);
    ck_assert_ptr_null(rlobby.peer);
    free_done_rows();
}
END_TEST

START_TEST(test_dm_read_peer_without_users_row)
{
    /* The peer's USER falls back to its id for a name when it has no
     * users row (its hello's DB_USER failed, say). */
    static struct db_req rd;
    static char room[PROTO_DM_ROOM_LEN + 1];
    open_db(100, 100, 1000);
    user1("bob", "Bob", 0); /* alice is never recorded */
    dm1(room, "alice", "bob");
    set_read_by(&rd, room, "bob");
    run1(&rd);
    ck_assert_int_eq(rd.status, DB_OK);
    ck_assert_int_eq(rd.nrows, 0);
    EXPECT_JSON(rd.peer, "{\"id\":\"alice\",\"name\":\"alice\"}");
    free_done_rows();
}
END_TEST

/* The `rooms` listing of user: checks its lines are exactly want (in order). */
static struct db_req *list_of(const char *user, const char *want, int nwant)
{
    struct db_req *r = calloc(1, sizeof(*r));
    set_dms(r, user);
    r->owner = r;
    run1(r);
    ck_assert_int_eq(r->status, DB_OK);
    ck_assert_int_eq(r->nrows, nwant);
    if (nwant == 0)
        ck_assert(r->rows == NULL || r->rows->len == 0);
    else
        EXPECT_JSON(r->rows, want);
    ck_assert_ptr_null(r->peer);
    ck_assert_ptr_null(r->pair);
    return r;
}

START_TEST(test_dm_list)
{
    static char ab[PROTO_DM_ROOM_LEN + 1], ac[PROTO_DM_ROOM_LEN + 1],
        de[PROTO_DM_ROOM_LEN + 1];
    static struct db_req edit;
    char want[1024];
    open_db(100, 100, 1000);
    user1("alice", "Alice", 0);
    user1("bob", "Bob", 0);
    user1("carol", "C\tx\ny", 0); /* JSON escapes the tab and newline */
    user1("dave", "Dave", 1);
    user1("erin", "Erin", 1);
    user1("frank", "Frank", 0);
    /* Nobody has a DM yet. */
    list_of("alice", "", 0);
    dm1(ab, "bob", "alice");
    usleep(5000); /* the newest pairs first: created in distinct ms */
    dm1(ac, "alice", "carol");
    usleep(5000);
    dm1(de, "erin", "dave");
    int64_t m1 = send1(ab, "alice", "c1", "one");
    int64_t m2 = send1(ab, "bob", "c1", "two");
    int64_t m3 = send1(de, "dave", "c1", "three");
    set_change(&edit, DB_EDIT, ab, "alice", m1, "one, edited");
    run1(&edit);
    ck_assert_int_eq(edit.status, DB_OK);
    ck_assert_int_gt(edit.id, m3);
    send1("lobby", "alice", "c9", "not a DM"); /* ordinary rooms are not listed */

    /* alice: both of hers, the most recently active first, as db_mark_rooms
     * writes them (room, last_id, read, unread, peer); ab's last_id is its
     * edit's rev (above m2), its unread bob's one message; ac, empty, is
     * listed to alice who asked for it. Never dave and erin's. */
    snprintf(want, sizeof want,
             "%s\t%lld\t0\t1\t{\"id\":\"bob\",\"name\":\"Bob\"}\n"
             "%s\t0\t0\t0\t{\"id\":\"carol\",\"name\":\"C\\tx\\ny\"}\n",
             ab, (long long)edit.id, ac);
    list_of("alice", want, 2);
    snprintf(want, sizeof want, "%s\t%lld\t0\t1\t{\"id\":\"alice\",\"name\":\"Alice\"}\n",
             ab, (long long)edit.id);
    list_of("bob", want, 1);
    list_of("carol", "", 0); /* empty, and alice asked for it: not carol's yet */
    (void)ac;
    snprintf(want, sizeof want, "%s\t%lld\t0\t0\t{\"id\":\"erin\",\"name\":\"Erin\"}\n",
             de, (long long)m3);
    list_of("dave", want, 1);
    snprintf(want, sizeof want, "%s\t%lld\t0\t1\t{\"id\":\"dave\",\"name\":\"Dave\"}\n",
             de, (long long)m3);
    list_of("erin", want, 1);
    list_of("frank", "", 0);  /* a user without DMs */
    list_of("nobody", "", 0); /* nor an unknown one */
    (void)m2;

    /* The peer's latest name. */
    user1("bob", "Robert", 0);
    snprintf(want, sizeof want,
             "%s\t%lld\t0\t1\t{\"id\":\"bob\",\"name\":\"Robert\"}\n"
             "%s\t0\t0\t0\t{\"id\":\"carol\",\"name\":\"C\\tx\\ny\"}\n",
             ab, (long long)edit.id, ac);
    list_of("alice", want, 2);
    free_done_rows();
}
END_TEST

START_TEST(test_dm_list_bounded)
{
    /* A listing sees exactly the writes completed before it, like any read
     * (db.h): its whole batch, a send after it in the same batch too. */
    static char ab[PROTO_DM_ROOM_LEN + 1];
    static struct db_req before, list, after, list2;
    char want[256];
    open_db(100, 100, 1000);
    user1("alice", "Alice", 0);
    user1("bob", "Bob", 0);
    dm1(ab, "alice", "bob");
    int64_t m1 = send1(ab, "alice", "c1", "one");
    hold_worker();
    set_send(&before, ab, "bob", "c2", "two");
    set_dms(&list, "alice");
    set_send(&after, ab, "bob", "c3", "three");
    set_dms(&list2, "bob");
    ck_assert_int_eq(db_submit(db, &before), 0);
    ck_assert_int_eq(db_submit(db, &list), 0);
    ck_assert_int_eq(db_submit(db, &after), 0);
    ck_assert_int_eq(db_submit(db, &list2), 0);
    int n = ndone;
    release_worker();
    wait_done(n + 5);
    ck_assert_int_eq(before.status, DB_OK);
    ck_assert_int_eq(after.status, DB_OK);
    ck_assert_int_eq(before.id, m1 + 1);
    ck_assert_int_eq(after.id, m1 + 2);
    snprintf(want, sizeof want, "%s\t%lld\t0\t2\t{\"id\":\"bob\",\"name\":\"Bob\"}\n", ab,
             (long long)after.id);
    ck_assert_int_eq(list.status, DB_OK);
    ck_assert_int_eq(list.nrows, 1);
    EXPECT_JSON(list.rows, want);
    snprintf(want, sizeof want, "%s\t%lld\t0\t1\t{\"id\":\"alice\",\"name\":\"Alice\"}\n",
             ab, (long long)after.id);
    ck_assert_int_eq(list2.nrows, 1);
    EXPECT_JSON(list2.rows, want);
    free_done_rows();
}
END_TEST

/* ---- read markers (protocol 1.1): DB_MARK, a join's marker, the listing ---- */

static void set_mark(struct db_req *r, const char *room, const char *user, int64_t id)
{
    memset(r, 0, sizeof(*r));
    r->op = DB_MARK;
    r->room = room;
    r->user_id = user;
    r->msg_id = id;
}

/* Moves user's marker in room to id; returns the request (owned by the
 * test's done list), checked to have completed with `want`. */
static struct db_req *mark1(const char *room, const char *user, int64_t id,
                            enum db_status want)
{
    struct db_req *r = calloc(1, sizeof(*r));
    set_mark(r, room, user, id);
    r->owner = r;
    run1(r);
    ck_assert_msg(r->status == want, "mark %s %s %lld: status %d, want %d", room, user,
                  (long long)id, r->status, want);
    ck_assert_ptr_null(r->rows);
    ck_assert_ptr_null(r->peer);
    return r;
}

/* The stored marker of (user, room), or -1 when there is none. */
static int64_t stored_marker(const char *user, const char *room)
{
    sqlite3 *c;
    sqlite3_stmt *st;
    int64_t v = -1;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(c,
                                        "SELECT id FROM read_markers WHERE user_id=?1 "
                                        "AND room=?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, room, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(c);
    return v;
}

static int64_t change1(enum db_op op, const char *room, const char *user, int64_t id,
                       const char *text)
{
    struct db_req *r = calloc(1, sizeof(*r));
    set_change(r, op, room, user, id, text);
    r->owner = r;
    run1(r);
    ck_assert_int_eq(r->status, DB_OK);
    return r->id;
}

START_TEST(test_mark_forward_only)
{
    open_db(100, 100, 1000);
    int64_t m1 = send1("lobby", "bob", "c1", "one");
    int64_t m2 = send1("lobby", "bob", "c2", "two");
    int64_t m3 = send1("lobby", "bob", "c3", "three");
    int64_t t0 = wall_ms();
    struct db_req *r = mark1("lobby", "alice", m2, DB_OK);
    ck_assert_int_eq(r->id, m2);
    ck_assert_int_eq(r->duplicate, 0);
    ck_assert_int_eq(stored_marker("alice", "lobby"), m2);
    /* Lower: left as it is; the answer is the marker as stored. */
    r = mark1("lobby", "alice", m1, DB_OK);
    ck_assert_int_eq(r->id, m2);
    ck_assert_int_eq(r->duplicate, 1);
    r = mark1("lobby", "alice", 0, DB_OK);
    ck_assert_int_eq(r->id, m2);
    ck_assert_int_eq(r->duplicate, 1);
    /* Equal: unmoved too. */
    r = mark1("lobby", "alice", m2, DB_OK);
    ck_assert_int_eq(r->id, m2);
    ck_assert_int_eq(r->duplicate, 1);
    ck_assert_int_eq(stored_marker("alice", "lobby"), m2);
    /* Higher: moves. */
    r = mark1("lobby", "alice", m3, DB_OK);
    ck_assert_int_eq(r->id, m3);
    ck_assert_int_eq(r->duplicate, 0);
    ck_assert_int_eq(stored_marker("alice", "lobby"), m3);
    /* Per user: bob's first marker, at 0, is stored (and moved, once). */
    r = mark1("lobby", "bob", 0, DB_OK);
    ck_assert_int_eq(r->id, 0);
    ck_assert_int_eq(r->duplicate, 0);
    ck_assert_int_eq(stored_marker("bob", "lobby"), 0);
    r = mark1("lobby", "bob", 0, DB_OK);
    ck_assert_int_eq(r->duplicate, 1);
    ck_assert_int_eq(stored_marker("alice", "lobby"), m3);
    ck_assert_int_eq(stored_marker("carol", "lobby"), -1);
    /* ts: when it last moved. */
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    int64_t ts = query_int(c, "SELECT ts FROM read_markers WHERE user_id='alice'");
    ck_assert_int_ge(ts, t0);
    ck_assert_int_le(ts, wall_ms());
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM read_markers"), 2);
    /* A marker is not a message: no id taken. */
    ck_assert_int_eq(query_int(c, "SELECT max(id) FROM messages"), m3);
    sqlite3_close(c);
    ck_assert_int_eq(send1("lobby", "bob", "c4", "four"), m3 + 1);
    free_done_rows();
}
END_TEST

START_TEST(test_mark_clamped)
{
    static struct db_req held_mark, held_send, held_mark2;
    open_db(100, 100, 1000);
    int64_t m1 = send1("lobby", "bob", "c1", "one");
    int64_t m2 = send1("lobby", "bob", "c2", "two");
    /* Above the room's highest id: stored as that. */
    struct db_req *r = mark1("lobby", "alice", 9007199254740991LL, DB_OK);
    ck_assert_int_eq(r->id, m2);
    ck_assert_int_eq(r->duplicate, 0);
    /* Another room's newer ids do not count for this one. */
    int64_t o1 = send1("other", "bob", "c1", "elsewhere");
    r = mark1("lobby", "alice", o1, DB_OK);
    ck_assert_int_eq(r->id, m2);
    ck_assert_int_eq(r->duplicate, 1);
    /* An edit's rev is the room's highest id/rev. */
    int64_t rev = change1(DB_EDIT, "lobby", "bob", m1, "one, edited");
    ck_assert_int_gt(rev, o1);
    r = mark1("lobby", "alice", rev + 100, DB_OK);
    ck_assert_int_eq(r->id, rev);
    ck_assert_int_eq(r->duplicate, 0);
    int64_t drev = change1(DB_DELETE, "lobby", "bob", m2, NULL);
    r = mark1("lobby", "alice", drev, DB_OK);
    ck_assert_int_eq(r->id, drev);
    /* A room without messages: 0. */
    r = mark1("empty", "alice", 50, DB_OK);
    ck_assert_int_eq(r->id, 0);
    ck_assert_int_eq(r->duplicate, 1);
    /* Nothing stored: `rooms` would list a name nobody uses. */
    ck_assert_int_eq(stored_marker("alice", "empty"), -1);
    /* Only the ids assigned before it count: a send after it in the same
     * batch is not yet the room's highest. */
    hold_worker();
    set_mark(&held_mark, "lobby", "carol", 1000000);
    set_send(&held_send, "lobby", "bob", "c9", "late");
    set_mark(&held_mark2, "lobby", "dave", 1000000);
    ck_assert_int_eq(db_submit(db, &held_mark), 0);
    ck_assert_int_eq(db_submit(db, &held_send), 0);
    ck_assert_int_eq(db_submit(db, &held_mark2), 0);
    int n = ndone;
    release_worker();
    wait_done(n + 4);
    ck_assert_int_eq(held_send.status, DB_OK);
    ck_assert_int_eq(held_mark.status, DB_OK);
    ck_assert_int_eq(held_mark.id, drev);
    ck_assert_int_eq(held_mark2.status, DB_OK);
    ck_assert_int_eq(held_mark2.id, held_send.id);
    free_done_rows();
}
END_TEST

START_TEST(test_mark_dm)
{
    static char room[PROTO_DM_ROOM_LEN + 1], other[PROTO_DM_ROOM_LEN + 1];
    open_db(100, 100, 1000);
    user1("alice", "Alice", 0);
    user1("bob", "Bob", 0);
    user1("carol", "Carol", 0);
    dm1(room, "alice", "bob");
    int64_t m1 = send1(room, "bob", "c1", "hi");
    struct db_req *r = mark1(room, "alice", m1, DB_OK);
    ck_assert_int_eq(r->id, m1);
    ck_assert_ptr_null(r->pair);
    r = mark1(room, "bob", m1, DB_OK);
    ck_assert_int_eq(r->id, m1);
    /* A third user: forbidden, nothing stored. */
    r = mark1(room, "carol", m1, DB_FORBIDDEN);
    ck_assert_int_eq(r->id, 0);
    ck_assert_int_eq(r->duplicate, 0);
    ck_assert_ptr_null(r->pair);
    ck_assert_int_eq(stored_marker("carol", room), -1);
    /* A dm- room no pair owns: forbidden for anyone. */
    dm_room_name("alice", "carol", other);
    r = mark1(other, "alice", 0, DB_FORBIDDEN);
    ck_assert_int_eq(stored_marker("alice", other), -1);
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM read_markers"), 2);
    sqlite3_close(c);
    free_done_rows();
}
END_TEST

START_TEST(test_mark_on_join)
{
    static struct db_req j1, j2, j3, j4, j5;
    static char room[PROTO_DM_ROOM_LEN + 1];
    open_db(100, 100, 1000);
    user1("alice", "Alice", 0);
    user1("bob", "Bob", 0);
    int64_t m1 = send1("lobby", "bob", "c1", "one");
    send1("lobby", "bob", "c2", "two");
    /* No marker yet: 0. */
    set_read_by(&j1, "lobby", "alice");
    j1.mark = 1;
    run1(&j1);
    ck_assert_int_eq(j1.status, DB_OK);
    ck_assert_int_eq(j1.nrows, 2);
    ck_assert_int_eq(j1.read_id, 0);
    mark1("lobby", "alice", m1, DB_OK);
    set_read_by(&j2, "lobby", "alice");
    j2.mark = 1;
    run1(&j2);
    ck_assert_int_eq(j2.read_id, m1);
    /* With since, too. */
    set_read_by(&j3, "lobby", "alice");
    j3.mark = 1;
    j3.since = m1;
    j3.limit = 1000;
    run1(&j3);
    ck_assert_int_eq(j3.status, DB_OK);
    ck_assert_int_eq(j3.nrows, 1);
    ck_assert_int_eq(j3.read_id, m1);
    /* Without mark: not read. */
    set_read_by(&j4, "lobby", "alice");
    run1(&j4);
    ck_assert_int_eq(j4.read_id, 0);
    /* A DM room's join: the member's own marker, and the peer. */
    dm1(room, "alice", "bob");
    int64_t d1 = send1(room, "bob", "c1", "hi");
    mark1(room, "alice", d1, DB_OK);
    set_read_by(&j5, room, "alice");
    j5.mark = 1;
    run1(&j5);
    ck_assert_int_eq(j5.status, DB_OK);
    ck_assert_int_eq(j5.read_id, d1);
    EXPECT_JSON(j5.peer, "{\"id\":\"bob\",\"name\":\"Bob\"}");
    free_done_rows();
}
END_TEST

/* The `rooms` listing of user with the loop's names `in`: checks its lines
 * are exactly want. */
static struct db_req *listing(const char *user, const char *const *in, int nin,
                              const char *want, int nwant)
{
    struct db_req *r = calloc(1, sizeof(*r));
    set_dms(r, user);
    r->rooms_in = in;
    r->nrooms_in = nin;
    r->owner = r;
    run1(r);
    ck_assert_int_eq(r->status, DB_OK);
    if (nwant == 0)
        ck_assert(r->rows == NULL || r->rows->len == 0);
    else
        EXPECT_JSON(r->rows, want);
    ck_assert_int_eq(r->nrows, nwant);
    return r;
}

START_TEST(test_mark_listing)
{
    static char ab[PROTO_DM_ROOM_LEN + 1], bc[PROTO_DM_ROOM_LEN + 1];
    char want[2048];
    open_db(100, 100, 1000);
    user1("alice", "Alice", 0);
    user1("bob", "Bob", 0);
    user1("carol", "Carol", 0);
    /* lobby: bob's, alice's own, bob's, and bob's deleted one. */
    int64_t l1 = send1("lobby", "bob", "c1", "one");
    send1("lobby", "alice", "c1", "mine");
    int64_t l3 = send1("lobby", "bob", "c2", "three");
    int64_t l4 = send1("lobby", "bob", "c3", "four");
    int64_t ldel = change1(DB_DELETE, "lobby", "bob", l4, NULL);
    /* dev and zzz: carol's; ops: none. */
    send1("dev", "carol", "c1", "d1");
    int64_t d2 = send1("dev", "carol", "c2", "d2");
    int64_t z1 = send1("zzz", "carol", "c1", "z1");
    dm1(ab, "alice", "bob");
    int64_t a1 = send1(ab, "bob", "c1", "dm one");
    int64_t a2 = send1(ab, "bob", "c2", "dm two");
    usleep(5000);            /* the newest pairs first: created in distinct ms */
    dm1(bc, "bob", "carol"); /* not alice's */
    send1(bc, "carol", "c1", "not for alice");

    /* No markers: the loop's rooms, then the DM room; unread counts every
     * message not deleted and not alice's. */
    const char *in[] = {"lobby", "ops"};
    snprintf(want, sizeof want,
             "lobby\t%lld\t0\t2\t\n"
             "ops\t0\t0\t0\t\n"
             "%s\t%lld\t0\t2\t{\"id\":\"bob\",\"name\":\"Bob\"}\n",
             (long long)ldel, ab, (long long)a2);
    listing("alice", in, 2, want, 3);

    /* Markers: lobby (listed from `in`), the DM room (listed with the DMs,
     * once), then dev and zzz, not in `in`: listed after, newest marker
     * first. */
    mark1("lobby", "alice", l1, DB_OK);
    mark1(ab, "alice", a1, DB_OK);
    mark1("dev", "alice", 0, DB_OK);
    usleep(5000);
    mark1("zzz", "alice", z1, DB_OK);
    snprintf(want, sizeof want,
             "lobby\t%lld\t%lld\t1\t\n"
             "ops\t0\t0\t0\t\n"
             "%s\t%lld\t%lld\t1\t{\"id\":\"bob\",\"name\":\"Bob\"}\n"
             "zzz\t%lld\t%lld\t0\t\n"
             "dev\t%lld\t0\t2\t\n",
             (long long)ldel, (long long)l1, ab, (long long)a2, (long long)a1,
             (long long)z1, (long long)z1, (long long)d2);
    listing("alice", in, 2, want, 5);
    (void)l3;

    /* A marker that moves is the newest again; dev listed from `in` is not
     * repeated. */
    usleep(5000);
    mark1("dev", "alice", d2, DB_OK);
    const char *in2[] = {"zzz", "dev"};
    snprintf(want, sizeof want,
             "zzz\t%lld\t%lld\t0\t\n"
             "dev\t%lld\t%lld\t0\t\n"
             "%s\t%lld\t%lld\t1\t{\"id\":\"bob\",\"name\":\"Bob\"}\n"
             "lobby\t%lld\t%lld\t1\t\n",
             (long long)z1, (long long)z1, (long long)d2, (long long)d2, ab,
             (long long)a2, (long long)a1, (long long)ldel, (long long)l1);
    listing("alice", in2, 2, want, 4);

    /* Without names from the loop: the DMs, then every marker room, newest
     * first. */
    snprintf(want, sizeof want,
             "%s\t%lld\t%lld\t1\t{\"id\":\"bob\",\"name\":\"Bob\"}\n"
             "dev\t%lld\t%lld\t0\t\n"
             "zzz\t%lld\t%lld\t0\t\n"
             "lobby\t%lld\t%lld\t1\t\n",
             ab, (long long)a2, (long long)a1, (long long)d2, (long long)d2,
             (long long)z1, (long long)z1, (long long)ldel, (long long)l1);
    listing("alice", NULL, 0, want, 4);

    /* bob: his own messages are never unread; alice's one in lobby is. */
    const char *in3[] = {"lobby"};
    /* bc's last id is carol's message: find it from the database. */
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    int64_t b1 = count_where(c, "SELECT max(id) FROM messages WHERE room='%s'", bc);
    sqlite3_close(c);
    snprintf(want, sizeof want,
             "lobby\t%lld\t0\t1\t\n"
             "%s\t%lld\t0\t1\t{\"id\":\"carol\",\"name\":\"Carol\"}\n"
             "%s\t%lld\t0\t0\t{\"id\":\"alice\",\"name\":\"Alice\"}\n",
             (long long)ldel, bc, (long long)b1, ab, (long long)a2);
    listing("bob", in3, 1, want, 3);
    /* A user with nothing: the loop's rooms only. */
    snprintf(want, sizeof want, "lobby\t%lld\t0\t3\t\n", (long long)ldel);
    listing("nobody", in3, 1, want, 1);
    listing("nobody", NULL, 0, "", 0);
    free_done_rows();
}
END_TEST

START_TEST(test_mark_unread_cap)
{
    enum { N = 1005 };
    static struct db_req s[N];
    static char cid[N][16];
    char want[256];
    open_db(2000, 500, 1000);
    for (int i = 0; i < N; i++) {
        snprintf(cid[i], sizeof cid[i], "c%d", i);
        set_send(&s[i], "big", "bob", cid[i], "x");
        ck_assert_int_eq(db_submit(db, &s[i]), 0);
    }
    wait_done(N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(s[i].status, DB_OK);
    int64_t last = s[N - 1].id;
    const char *in[] = {"big"};
    /* 1005 unread: counted up to 1000. */
    snprintf(want, sizeof want, "big\t%lld\t0\t1000\t\n", (long long)last);
    listing("alice", in, 1, want, 1);
    /* 1000 above the marker: 1000; 999: 999. */
    mark1("big", "alice", s[4].id, DB_OK);
    snprintf(want, sizeof want, "big\t%lld\t%lld\t1000\t\n", (long long)last,
             (long long)s[4].id);
    listing("alice", in, 1, want, 1);
    mark1("big", "alice", s[5].id, DB_OK);
    snprintf(want, sizeof want, "big\t%lld\t%lld\t999\t\n", (long long)last,
             (long long)s[5].id);
    listing("alice", in, 1, want, 1);
    /* bob wrote them all: none unread for him. */
    snprintf(want, sizeof want, "big\t%lld\t0\t0\t\n", (long long)last);
    listing("bob", in, 1, want, 1);
    free_done_rows();
}
END_TEST

/* ---- search (protocol 1.1): the search thread through db.h ---- */

/* Completions of DB_SEARCH, recorded by the search thread's hook. */
static struct {
    pthread_mutex_t m;
    pthread_cond_t c;
    struct db_req *got[256];
    int n;
} shook = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0};

/* Runs on the search thread: no Check assertions here. */
static void search_done(void *arg, struct db_req *r)
{
    if (arg != &shook) abort();
    pthread_mutex_lock(&shook.m);
    if (shook.n < (int)(sizeof shook.got / sizeof shook.got[0])) shook.got[shook.n++] = r;
    pthread_cond_broadcast(&shook.c);
    pthread_mutex_unlock(&shook.m);
}

/* Frees the rows of every search completed, and the requests the test
 * allocated (owner == itself). */
static void free_search_rows(void)
{
    pthread_mutex_lock(&shook.m);
    for (int i = 0; i < shook.n; i++) {
        struct db_req *r = shook.got[i];
        buf_unref(r->rows);
        r->rows = NULL;
        if (r->owner == r) free(r);
    }
    shook.n = 0;
    pthread_mutex_unlock(&shook.m);
}

static void open_db_search(int64_t max_per_room, int64_t prune_interval_ms)
{
    char err[256] = "";
    struct db_options o = options(100, 100, 1000);
    o.search_done = search_done;
    o.search_arg = &shook;
    o.max_per_room = max_per_room;
    o.prune_interval_ms = prune_interval_ms;
    db = db_open(&o, err, sizeof err);
    if (!db) ck_abort_msg("db_open: %s", err);
}

/* Submits a search and waits for its completion through the hook. */
static void run_search(struct db_req *r)
{
    pthread_mutex_lock(&shook.m);
    int before = shook.n;
    pthread_mutex_unlock(&shook.m);
    ck_assert_int_eq(db_submit(db, r), 0);
    double deadline = mono_s() + 30;
    pthread_mutex_lock(&shook.m);
    while (shook.n == before && mono_s() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&shook.c, &shook.m, &ts);
    }
    struct db_req *got = shook.n > before ? shook.got[before] : NULL;
    pthread_mutex_unlock(&shook.m);
    ck_assert_msg(got != NULL, "the search did not complete in 30 s");
    ck_assert_ptr_eq(got, r);
}

/* A scope over every room, or (all 0) only the user's DM rooms. */
static struct db_search_scope scope_all(const char *match, int all)
{
    struct db_search_scope sc = {.match = match, .all_rooms = all};
    return sc;
}

/* Searches as `user` (room: NULL or one room) and returns the request,
 * owned by the hook's list. */
static struct db_req *search1(const char *user, const char *room,
                              const struct db_search_scope *sc, int64_t before, int limit)
{
    struct db_req *r = calloc(1, sizeof(*r));
    r->op = DB_SEARCH;
    r->user_id = user;
    r->room = room;
    r->scope = sc;
    r->before = before;
    r->after = r->since = -1;
    r->limit = limit;
    r->owner = r;
    r->status = DB_FAILED; /* the search sets it */
    r->nrows = 77, r->more = 1;
    run_search(r);
    return r;
}

/* Checks a search's rows: MESSAGE objects, none deleted, ids strictly
 * decreasing (newest first); returns how many, their ids and rooms. */
static int found(const struct db_req *r, int64_t *ids, const char **rooms, int max)
{
    static char room_buf[64][PROTO_MAX_ROOM + 1];
    ck_assert_int_eq(r->status, DB_OK);
    ck_assert_ptr_nonnull(r->rows);
    ck_assert_int_eq(r->rows->oom, 0);
    size_t n = r->rows->len;
    char *s = malloc(n + 3);
    s[0] = '[';
    memcpy(s + 1, BUF_PAYLOAD(r->rows), n);
    s[n + 1] = ']';
    s[n + 2] = 0;
    cJSON *a = cJSON_Parse(s);
    free(s);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(cJSON_GetArraySize(a), r->nrows);
    int k = 0;
    int64_t prev = INT64_MAX;
    const cJSON *m;
    cJSON_ArrayForEach(m, a)
    {
        ck_assert_str_eq(cJSON_GetObjectItem(m, "type")->valuestring, "message");
        ck_assert_ptr_null(cJSON_GetObjectItem(m, "deleted"));
        int64_t id = (int64_t)cJSON_GetObjectItem(m, "id")->valuedouble;
        ck_assert_int_lt(id, prev);
        prev = id;
        if (k < max) {
            ids[k] = id;
            if (rooms && k < 64) {
                snprintf(room_buf[k], sizeof room_buf[k], "%s",
                         cJSON_GetObjectItem(m, "room")->valuestring);
                rooms[k] = room_buf[k];
            }
        }
        k++;
    }
    cJSON_Delete(a);
    return k;
}

/* Checks a search found exactly the ids in want (newest first). */
static void expect_found(const struct db_req *r, const int64_t *want, int nwant, int more)
{
    int64_t ids[64];
    int n = found(r, ids, NULL, 64);
    ck_assert_int_eq(n, nwant);
    for (int i = 0; i < n; i++)
        ck_assert_msg(ids[i] == want[i], "result %d: id %lld, want %lld", i,
                      (long long)ids[i], (long long)want[i]);
    ck_assert_int_eq(r->more, more);
}
#define FOUND(r, more, ...)                                                              \
    do {                                                                                 \
        const int64_t w_[] = {__VA_ARGS__};                                              \
        expect_found(r, w_, (int)(sizeof w_ / sizeof w_[0]), more);                      \
    } while (0)
#define FOUND_NONE(r) expect_found(r, NULL, 0, 0)

/* The search index's watermark and the highest message id, as another
 * connection sees them. */
static void index_state(sqlite3 *c, int64_t *indexed, int64_t *top)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(c,
                                        "SELECT (SELECT indexed FROM search_index),"
                                        "(SELECT coalesce(max(id),0) FROM messages)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    *indexed = sqlite3_column_int64(st, 0);
    *top = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
}

/* Waits until the worker has indexed every message (db_index.h). */
static void wait_indexed(sqlite3 *c)
{
    int64_t indexed, top;
    double deadline = mono_s() + 10;
    for (index_state(c, &indexed, &top); indexed < top; index_state(c, &indexed, &top)) {
        ck_assert_msg(mono_s() < deadline, "index stuck at %lld of %lld",
                      (long long)indexed, (long long)top);
        usleep(5000);
    }
}

/* FTS5's own check of the index against messages, from another connection,
 * once the index has caught up (rows above the watermark are not in it
 * yet, and the check would count them missing). */
static void fts_integrity(void)
{
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    sqlite3_busy_timeout(c, 5000);
    wait_indexed(c);
    int rc = sqlite3_exec(
        c, "INSERT INTO messages_fts(messages_fts, rank) VALUES('integrity-check', 1)",
        NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(c));
        sqlite3_close(c);
        ck_abort_msg("integrity-check: %s", msg);
    }
    sqlite3_close(c);
}

START_TEST(test_search_order_limit_before)
{
    open_db_search(0, 0);
    int64_t m1 = send1("lobby", "bob", "c1", "deploy on friday");
    int64_t m2 = send1("lobby", "alice", "c2", "Caf\xc3\xa9 au lait");
    int64_t m3 = send1("lobby", "bob", "c3", "friday we deploy");
    int64_t m4 = send1("lobby", "bob", "c4", "deployment freeze");
    send1("lobby", "bob", "c5", "nothing here");
    int64_t m6 = send1("dev", "carol", "c1", "deploy dev FRIDAY");
    struct db_search_scope words = scope_all("\"deploy\" \"friday\"", 1);
    struct db_search_scope phrase = scope_all("\"on friday\"", 1);
    struct db_search_scope phrase2 = scope_all("\"deploy friday\"", 1);
    struct db_search_scope prefix = scope_all("\"dep\" *", 1);
    struct db_search_scope cafe = scope_all("\"cafe\"", 1);
    /* Newest first, across rooms. */
    struct db_req *r = search1("alice", NULL, &words, -1, 20);
    FOUND(r, 0, m6, m3, m1);
    const char *rooms[8];
    int64_t ids[8];
    ck_assert_int_eq(found(r, ids, rooms, 8), 3);
    ck_assert_str_eq(rooms[0], "dev");
    ck_assert_str_eq(rooms[1], "lobby");
    /* A limit: the newest `limit`, has_more; exactly the count: no more. */
    FOUND(search1("alice", NULL, &words, -1, 1), 1, m6);
    FOUND(search1("alice", NULL, &words, -1, 2), 1, m6, m3);
    FOUND(search1("alice", NULL, &words, -1, 3), 0, m6, m3, m1);
    /* before: strictly below. */
    FOUND(search1("alice", NULL, &words, m6, 20), 0, m3, m1);
    FOUND(search1("alice", NULL, &words, m6, 1), 1, m3);
    FOUND(search1("alice", NULL, &words, m3, 1), 0, m1); /* the last one: no more */
    FOUND(search1("alice", NULL, &words, m1 + 1, 20), 0, m1);
    FOUND_NONE(search1("alice", NULL, &words, m1, 20));
    FOUND_NONE(search1("alice", NULL, &words, 0, 20));
    /* One room. */
    FOUND(search1("alice", "lobby", &words, -1, 20), 0, m3, m1);
    FOUND(search1("alice", "dev", &words, -1, 20), 0, m6);
    FOUND_NONE(search1("alice", "ops", &words, -1, 20));
    /* Phrases, prefixes, diacritics. */
    FOUND(search1("alice", NULL, &phrase, -1, 20), 0, m1);
    FOUND_NONE(search1("alice", NULL, &phrase2, -1, 20));
    FOUND(search1("alice", NULL, &prefix, -1, 20), 0, m6, m4, m3, m1);
    FOUND(search1("alice", NULL, &cafe, -1, 20), 0, m2);
    /* A full MESSAGE, with its room. */
    r = search1("bob", "lobby", &cafe, -1, 20);
    ck_assert_int_eq(r->nrows, 1);
    ck_assert_ptr_nonnull(
        memmem(BUF_PAYLOAD(r->rows), r->rows->len, "\"room\":\"lobby\"", 14));
    ck_assert_ptr_nonnull(memmem(BUF_PAYLOAD(r->rows), r->rows->len,
                                 "\"text\":\"Caf\xc3\xa9 au lait\"", 22));
    ck_assert_ptr_nonnull(
        memmem(BUF_PAYLOAD(r->rows), r->rows->len, "\"client_id\":\"c2\"", 16));
    free_search_rows();
    free_done_rows();
}
END_TEST

START_TEST(test_search_scope)
{
    static char ab[PROTO_DM_ROOM_LEN + 1], bc[PROTO_DM_ROOM_LEN + 1],
        none[PROTO_DM_ROOM_LEN + 1];
    open_db_search(0, 0);
    user1("alice", "Alice", 0);
    user1("bob", "Bob", 0);
    user1("carol", "Carol", 0);
    dm1(ab, "alice", "bob");
    dm1(bc, "bob", "carol");
    int64_t l1 = send1("lobby", "bob", "c1", "secret plan");
    int64_t p1 = send1("project-x", "bob", "c1", "secret plan x");
    int64_t p2 = send1("project-y", "bob", "c1", "secret plan y");
    int64_t s1 = send1("staff", "bob", "c1", "secret plan staff");
    int64_t a1 = send1(ab, "bob", "c1", "secret plan for alice");
    int64_t b1 = send1(bc, "carol", "c1", "secret plan for bob");
    struct db_search_scope all = scope_all("\"secret\"", 1);
    /* Every room: the ordinary ones and the user's DM rooms, never others'. */
    FOUND(search1("alice", NULL, &all, -1, 50), 0, a1, s1, p2, p1, l1);
    FOUND(search1("bob", NULL, &all, -1, 50), 0, b1, a1, s1, p2, p1, l1);
    FOUND(search1("carol", NULL, &all, -1, 50), 0, b1, s1, p2, p1, l1);
    FOUND(search1("dave", NULL, &all, -1, 50), 0, s1, p2, p1, l1);
    /* Only names and prefixes (a token's rooms, --guest-rooms), and the
     * user's DM rooms. */
    const char *names[] = {"lobby", "staff"};
    const char *prefixes[] = {"project-"};
    struct db_search_scope named = {.match = "\"secret\"", .nnames = 2, .names = names};
    FOUND(search1("alice", NULL, &named, -1, 50), 0, a1, s1, l1);
    struct db_search_scope pref = {
        .match = "\"secret\"", .nprefixes = 1, .prefixes = prefixes};
    FOUND(search1("alice", NULL, &pref, -1, 50), 0, a1, p2, p1);
    FOUND(search1("dave", NULL, &pref, -1, 50), 0, p2, p1);
    struct db_search_scope both = {.match = "\"secret\"",
                                   .nnames = 1,
                                   .names = names,
                                   .nprefixes = 1,
                                   .prefixes = prefixes};
    FOUND(search1("carol", NULL, &both, -1, 50), 0, b1, p2, p1, l1);
    const char *pre2[] = {"project-y", "sta"};
    struct db_search_scope pref2 = {
        .match = "\"secret\"", .nprefixes = 2, .prefixes = pre2};
    FOUND(search1("dave", NULL, &pref2, -1, 50), 0, s1, p2);
    /* No rooms at all: only the DM rooms. */
    struct db_search_scope dms = scope_all("\"secret\"", 0);
    FOUND(search1("alice", NULL, &dms, -1, 50), 0, a1);
    FOUND_NONE(search1("dave", NULL, &dms, -1, 50));
    /* A name given as a DM room's does not reach another pair's room. */
    const char *dm_names[] = {bc};
    const char *dm_prefixes[] = {"dm-"};
    struct db_search_scope sneaky = {.match = "\"secret\"",
                                     .nnames = 1,
                                     .names = dm_names,
                                     .nprefixes = 1,
                                     .prefixes = dm_prefixes};
    FOUND(search1("alice", NULL, &sneaky, -1, 50), 0, a1);
    /* room=: a DM room of the user's searched; of others, forbidden. */
    FOUND(search1("alice", ab, &all, -1, 50), 0, a1);
    FOUND(search1("bob", ab, &all, -1, 50), 0, a1);
    struct db_req *r = search1("alice", bc, &all, -1, 50);
    ck_assert_int_eq(r->status, DB_FORBIDDEN);
    ck_assert_ptr_null(r->rows);
    ck_assert_int_eq(r->nrows, 0);
    ck_assert_int_eq(r->more, 0);
    dm_room_name("alice", "carol", none); /* no pair owns it */
    r = search1("alice", none, &all, -1, 50);
    ck_assert_int_eq(r->status, DB_FORBIDDEN);
    ck_assert_ptr_null(r->rows);
    free_search_rows();
    free_done_rows();
}
END_TEST

START_TEST(test_search_changes)
{
    open_db_search(0, 0);
    int64_t m1 = send1("lobby", "bob", "c1", "release on monday");
    int64_t m2 = send1("lobby", "bob", "c2", "release on tuesday");
    int64_t m3 = send1("lobby", "bob", "c3", "release candidate");
    struct db_search_scope rel = scope_all("\"release\"", 1);
    struct db_search_scope mon = scope_all("\"monday\"", 1);
    struct db_search_scope post = scope_all("\"postponed\"", 1);
    FOUND(search1("alice", NULL, &rel, -1, 20), 0, m3, m2, m1);
    /* An edit: the old text no longer matches, the new one does (same id). */
    int64_t e1 = change1(DB_EDIT, "lobby", "bob", m1, "postponed, sorry");
    FOUND(search1("alice", NULL, &rel, -1, 20), 0, m3, m2);
    FOUND_NONE(search1("alice", NULL, &mon, -1, 20));
    struct db_req *r = search1("alice", NULL, &post, -1, 20);
    FOUND(r, 0, m1);
    /* In its current state: the new text, its rev and edited_ts. */
    char key[64];
    snprintf(key, sizeof key, "\"rev\":%lld", (long long)e1);
    ck_assert_ptr_nonnull(memmem(BUF_PAYLOAD(r->rows), r->rows->len, key, strlen(key)));
    ck_assert_ptr_nonnull(
        memmem(BUF_PAYLOAD(r->rows), r->rows->len, "\"edited_ts\":", 12));
    ck_assert_ptr_nonnull(
        memmem(BUF_PAYLOAD(r->rows), r->rows->len, "\"text\":\"postponed, sorry\"", 25));
    /* A second edit back. */
    change1(DB_EDIT, "lobby", "bob", m1, "release on monday after all");
    FOUND(search1("alice", NULL, &rel, -1, 20), 0, m3, m2, m1);
    FOUND_NONE(search1("alice", NULL, &post, -1, 20));
    /* A delete: never matches again. */
    change1(DB_DELETE, "lobby", "bob", m2, NULL);
    FOUND(search1("alice", NULL, &rel, -1, 20), 0, m3, m1);
    FOUND(search1("alice", "lobby", &rel, -1, 20), 0, m3, m1);
    fts_integrity();
    free_search_rows();
    free_done_rows();
}
END_TEST

START_TEST(test_search_bad_match)
{
    /* An expression FTS5 cannot take (searchq never writes one) fails the
     * search, it does not crash or hang it; the next one runs. */
    open_db_search(0, 0);
    int64_t m1 = send1("lobby", "bob", "c1", "hello");
    struct db_search_scope bad = scope_all("NEAR(", 1);
    struct db_search_scope good = scope_all("\"hello\"", 1);
    struct db_req *r = search1("alice", NULL, &bad, -1, 20);
    ck_assert_int_eq(r->status, DB_FAILED);
    ck_assert_ptr_null(r->rows);
    ck_assert_int_eq(r->nrows, 0);
    ck_assert_int_eq(r->more, 0);
    FOUND(search1("alice", NULL, &good, -1, 20), 0, m1);
    free_search_rows();
    free_done_rows();
}
END_TEST

START_TEST(test_search_retention)
{
    /* Retention's deletes take the rows out of the index too. */
    open_db_search(0, 0);
    int64_t ids[6];
    char cid[8];
    for (int i = 0; i < 6; i++) {
        snprintf(cid, sizeof cid, "c%d", i);
        ids[i] = send1("lobby", "bob", cid, i % 2 ? "alpha beta" : "alpha gamma");
    }
    change1(DB_EDIT, "lobby", "bob", ids[5], "alpha delta");
    change1(DB_DELETE, "lobby", "bob", ids[4], NULL);
    fts_integrity();
    free_search_rows();
    close_db();
    /* Keep the newest 2 per room. */
    open_db_search(2, 50);
    struct db_stats st;
    double until = mono_s() + 30;
    do {
        db_stats(db, &st);
        if (st.pruned < 4) usleep(20000);
    } while (st.pruned < 4 && mono_s() < until);
    ck_assert_uint_eq(st.pruned, 4);
    fts_integrity();
    struct db_search_scope alpha = scope_all("\"alpha\"", 1);
    struct db_search_scope beta = scope_all("\"beta\"", 1);
    struct db_search_scope delta = scope_all("\"delta\"", 1);
    FOUND(search1("alice", NULL, &alpha, -1, 20), 0, ids[5]); /* ids[4]: deleted */
    FOUND_NONE(search1("alice", NULL, &beta, -1, 20));
    FOUND(search1("alice", "lobby", &delta, -1, 20), 0, ids[5]);
    /* And new messages are indexed as before. */
    int64_t n1 = send1("lobby", "bob", "c9", "alpha again");
    FOUND(search1("alice", NULL, &alpha, -1, 20), 0, n1, ids[5]);
    free_search_rows();
    free_done_rows();
}
END_TEST

START_TEST(test_search_without_thread)
{
    /* Without search_done there is no search thread: DB_SEARCH is refused,
     * and the request is left as the caller had it (db.h). */
    static struct db_req r;
    struct db_search_scope sc = scope_all("\"x\"", 1);
    open_db(10, 10, 1000);
    memset(&r, 0, sizeof r);
    r.op = DB_SEARCH;
    r.user_id = "alice";
    r.scope = &sc;
    r.before = -1;
    r.limit = 20;
    struct buf *mine = buf_new(16);
    r.frame = mine;
    r.pair = mine;
    r.peer = mine;
    r.status = DB_FAILED;
    ck_assert_int_eq(db_submit(db, &r), -1);
    struct db_req seen = r;
    buf_unref(mine);
    ck_assert_int_eq(seen.status, DB_FAILED);
    ck_assert_ptr_eq(seen.frame, mine);
    ck_assert_ptr_eq(seen.pair, mine);
    ck_assert_ptr_eq(seen.peer, mine);
}
END_TEST

START_TEST(test_search_stop)
{
    /* db_stop closes the search thread: later searches are refused. */
    static struct db_req r;
    struct db_search_scope sc = scope_all("\"x\"", 1);
    open_db_search(0, 0);
    db_stop(db);
    memset(&r, 0, sizeof r);
    r.op = DB_SEARCH;
    r.user_id = "alice";
    r.scope = &sc;
    r.before = -1;
    r.limit = 20;
    ck_assert_int_eq(db_submit(db, &r), -1);
    ck_assert_ptr_null(r.rows);
}
END_TEST

START_TEST(test_search_beside_writer)
{
    /* The search thread reads on its own connection (WAL): another
     * connection's open write transaction does not hold it up, and it sees
     * what was committed, not the writer's uncommitted rows. */
    open_db_search(0, 0);
    int64_t m1 = send1("lobby", "bob", "c1", "committed words");
    fts_integrity(); /* indexed: the worker will not write while locked out */
    lock_writer();
    ck_assert_int_eq(sqlite3_exec(locker,
                                  "INSERT INTO messages(room,user_id,user_name,text,ts,"
                                  "client_id) VALUES('lobby','x','X','uncommitted words',"
                                  "1,'zz')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    struct db_search_scope w = scope_all("\"words\"", 1);
    FOUND(search1("alice", NULL, &w, -1, 20), 0, m1); /* DB_OK: not DB_BUSY */
    unlock_writer();                                  /* rolled back */
    FOUND(search1("alice", NULL, &w, -1, 20), 0, m1);
    fts_integrity();
    free_search_rows();
    free_done_rows();
}
END_TEST

/* One search of the many-rooms test, checked without Check (it runs in a
 * child): DB_OK, exactly `want` rows, and the rooms named in them. */
static int many_ok(const struct db_search_scope *sc, int want, const char *room1,
                   const char *room2)
{
    struct db_req *r = search1("alice", NULL, sc, -1, 20);
    if (r->status != DB_OK || !r->rows || r->nrows != want || r->more) return 0;
    const char *rooms[] = {room1, room2};
    for (int i = 0; i < want; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"room\":\"%s\"", rooms[i]);
        if (!memmem(BUF_PAYLOAD(r->rows), r->rows->len, key, strlen(key))) return 0;
    }
    return 1;
}

static int many_rooms_child(void)
{
    enum { NP = 400, NN = 400 };
    static char pre[NP][16], nam[NN][16];
    static const char *prefixes[NP], *names[NN];
    open_db_search(0, 0);
    for (int i = 0; i < NP; i++) {
        snprintf(pre[i], sizeof pre[i], "p%d-", i);
        prefixes[i] = pre[i];
    }
    for (int i = 0; i < NN; i++) {
        snprintf(nam[i], sizeof nam[i], "n%d", i);
        names[i] = nam[i];
    }
    send1("p399-x", "bob", "c1", "needle");
    send1("n399", "bob", "c1", "needle");
    send1("q1", "bob", "c1", "needle");
    struct db_search_scope sn = {.match = "\"needle\"", .nnames = NN, .names = names};
    if (!many_ok(&sn, 1, "n399", NULL)) return 2;
    struct db_search_scope sp = {
        .match = "\"needle\"", .nprefixes = NP, .prefixes = prefixes};
    if (!many_ok(&sp, 1, "p399-x", NULL)) return 3;
    struct db_search_scope sb = {.match = "\"needle\"",
                                 .nnames = NN,
                                 .names = names,
                                 .nprefixes = NP,
                                 .prefixes = prefixes};
    if (!many_ok(&sb, 2, "n399", "p399-x")) return 4;
    close_db();
    free_search_rows();
    return 0;
}

/* Submits n requests in slices the queue (100) takes, waiting for each. */
static void submit_all(struct db_req *reqs, int n)
{
    for (int i = 0; i < n; i += 50) {
        int k = n - i < 50 ? n - i : 50, base = ndone;
        for (int j = 0; j < k; j++)
            ck_assert_int_eq(db_submit(db, &reqs[i + j]), 0);
        wait_done(base + k);
    }
}

/* Searches `match` in room (or everywhere) page by page (limit 50, each
 * page below the last) and checks the ids found are newest first, in that
 * room, without repeats; returns how many. */
static int search_pages(const char *room, const char *match)
{
    struct db_search_scope sc = scope_all(match, 1);
    int64_t before = -1, prev = INT64_MAX;
    int total = 0;
    for (int page = 0; page < 100; page++) {
        struct db_req *r = search1("alice", room, &sc, before, 50);
        ck_assert_int_eq(r->status, DB_OK);
        int64_t ids[64];
        const char *rooms[64];
        int n = found(r, ids, rooms, 64);
        for (int i = 0; i < n; i++) {
            ck_assert_msg(ids[i] < prev, "page %d: %lld after %lld", page,
                          (long long)ids[i], (long long)prev);
            if (room) ck_assert_str_eq(rooms[i], room);
            prev = ids[i];
        }
        total += n;
        if (!r->more) return total;
        ck_assert_int_eq(n, 50);
        before = prev;
    }
    ck_abort_msg("more than 100 pages");
    return total;
}

START_TEST(test_search_room_walk)
{
    /* One room is searched by walking its newest 1000 rows, then the
     * index's doclists below them: pages across that boundary lose and
     * repeat nothing, and words only in the oldest rows are found. */
    open_db_search(0, 0);
    enum { N = 1100 };
    static struct db_req reqs[N + 60];
    static char cids[N + 60][16], texts[N + 60][64];
    for (int i = 0; i < N + 60; i++) {
        int big = i < N;
        snprintf(cids[i], sizeof cids[i], "c%d", i);
        snprintf(texts[i], sizeof texts[i], "alpha w%d%s%s", i,
                 big && i < 100 ? " beta" : (!big ? " beta omega" : ""),
                 big && (i < 102 || i == N - 1) ? " gamma" : "");
        set_send(&reqs[i], big ? "big" : "other", "bob", cids[i], texts[i]);
    }
    submit_all(reqs, N + 60);
    ck_assert_int_eq(search_pages("big", "\"alpha\""), N);
    ck_assert_int_eq(search_pages("big", "\"beta\""), 100); /* below the walk */
    ck_assert_int_eq(search_pages("big", "\"omega\""), 0);  /* only elsewhere */
    /* Rows 100 and 101 are the walk's last two, 1099 its first. */
    ck_assert_int_eq(search_pages("big", "\"gamma\""), 103);
    ck_assert_int_eq(search_pages("other", "\"beta\""), 60);
    ck_assert_int_eq(search_pages(NULL, "\"beta\""), 160);
    /* A page that starts inside the walk's reach and ends below it. */
    struct db_search_scope beta = scope_all("\"beta\"", 1);
    struct db_req *r = search1("alice", "big", &beta, reqs[50].id + 1, 20);
    int64_t ids[64];
    ck_assert_int_eq(found(r, ids, NULL, 64), 20);
    ck_assert_int_eq(ids[0], reqs[50].id);
    ck_assert_int_eq(ids[19], reqs[31].id);
    fts_integrity();
    free_search_rows();
    free_done_rows();
}
END_TEST

START_TEST(test_search_index_behind)
{
    /* Changes to rows the index has not reached yet: an edit and a delete
     * in the batch of the send itself. The row is indexed later with its
     * current text; the old text never matches. */
    open_db_search(0, 0);
    int64_t m0 = send1("lobby", "bob", "c0", "first words");
    static struct db_req s1, s2, e1, d2;
    hold_worker();
    set_send(&s1, "lobby", "bob", "c1", "original wording");
    set_send(&s2, "lobby", "bob", "c2", "doomed wording");
    set_change(&e1, DB_EDIT, "lobby", "bob", m0 + 1, "replacement text");
    set_change(&d2, DB_DELETE, "lobby", "bob", m0 + 2, NULL);
    struct db_req *all[] = {&s1, &s2, &e1, &d2};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(db_submit(db, all[i]), 0);
    int before = ndone;
    release_worker();
    wait_done(before + 1 + 4); /* the hold's own completion too */
    ck_assert_int_eq(s1.id, m0 + 1);
    ck_assert_int_eq(e1.status, DB_OK);
    ck_assert_int_eq(d2.status, DB_OK);
    struct db_search_scope old = scope_all("\"original\"", 1),
                           doomed = scope_all("\"doomed\"", 1),
                           now = scope_all("\"replacement\"", 1),
                           any = scope_all("\"wording\"", 1);
    FOUND_NONE(search1("alice", NULL, &old, -1, 20));
    FOUND_NONE(search1("alice", NULL, &doomed, -1, 20));
    FOUND_NONE(search1("alice", NULL, &any, -1, 20));
    FOUND(search1("alice", "lobby", &now, -1, 20), 0, m0 + 1);
    fts_integrity();
    /* Many sends in a row: the index follows in chunks, and a search right
     * after the last ack finds the first and the last. */
    enum { N = 2500 };
    static struct db_req many[N];
    static char cids[N][16], texts[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(cids[i], sizeof cids[i], "m%d", i);
        snprintf(texts[i], sizeof texts[i], "bulk%d common", i);
        set_send(&many[i], "lobby", "carol", cids[i], texts[i]);
    }
    submit_all(many, N);
    struct db_search_scope first = scope_all("\"bulk0\"", 1),
                           last = scope_all("\"bulk2499\"", 1);
    FOUND(search1("alice", NULL, &last, -1, 20), 0, many[N - 1].id);
    FOUND(search1("alice", "lobby", &first, -1, 20), 0, many[0].id);
    fts_integrity();
    free_search_rows();
    free_done_rows();
}
END_TEST

START_TEST(test_search_many_rooms)
{
    /* db_search.h sets no bound on names and prefixes: a scope of many of
     * each still finds exactly its rooms. (query_text allows 16 bytes per
     * name or prefix; " OR m.room GLOB ?N" takes 18 to 20, so from about
     * 195 prefixes the SQL text overruns its heap buffer. The server passes
     * at most CONFIG_MAX_GUEST_ROOMS = 64 today, so only the API is
     * exposed.) Run in a child, so that heap damage fails this test alone
     * even with CK_FORK=no. */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) _exit(many_rooms_child());
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        ck_abort_msg("search with 400 names and prefixes: killed by signal %d",
                     WTERMSIG(status));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "search with 400 names and prefixes: child exit %d (2: names, 3: "
                  "prefixes, 4: both; else a sanitizer report)",
                  WEXITSTATUS(status));
}
END_TEST

static Suite *db_suite(void)
{
    Suite *s = suite_create("db");
    TCase *tc = tcase_create("db");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_open_migrates);
    tcase_add_test(tc, test_open_newer_schema);
    tcase_add_test(tc, test_open_unwritable);
    tcase_add_test(tc, test_open_corrupt);
    tcase_add_test(tc, test_open_damaged_pages);
    tcase_add_test(tc, test_setting);
    tcase_add_test(tc, test_setting_while_pruning);
    tcase_add_test(tc, test_send_and_read);
    tcase_add_test(tc, test_read_empty_room);
    tcase_add_test(tc, test_read_after);
    tcase_add_test(tc, test_read_latest_and_before);
    tcase_add_test(tc, test_ids_and_completion_order);
    tcase_add_test(tc, test_batching_natural);
    tcase_add_test(tc, test_batching_exact);
    tcase_add_test(tc, test_batch_max);
    tcase_add_test(tc, test_read_after_send_same_batch);
    tcase_add_loop_test(tc, test_batch_rollback, 0, 2);
    tcase_add_test(tc, test_reads_after_commit);
    tcase_add_test(tc, test_read_completes_after_edits_it_shows);
    tcase_add_test(tc, test_read_size_bound);
    tcase_add_test(tc, test_idempotency);
    tcase_add_test(tc, test_restart_keeps_idempotency);
    tcase_add_test(tc, test_stop_commits_queued);
    tcase_add_test(tc, test_close_drops_done_rows);
    tcase_add_test(tc, test_queue_bound_and_busy);
    tcase_add_test(tc, test_refused_submit_leaves_request_untouched);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("dm");
    tcase_set_timeout(td, 60);
    tcase_add_checked_fixture(td, setup, teardown);
    tcase_add_test(td, test_dm_make);
    tcase_add_test(td, test_dm_unknown_peer);
    tcase_add_test(td, test_dm_guest_peer);
    tcase_add_test(td, test_dm_send);
    tcase_add_test(td, test_dm_edit_delete);
    tcase_add_test(td, test_dm_read);
    tcase_add_test(td, test_dm_read_peer_without_users_row);
    tcase_add_test(td, test_dm_list);
    tcase_add_test(td, test_dm_list_bounded);
    suite_add_tcase(s, td);
    TCase *tm = tcase_create("marks");
    tcase_set_timeout(tm, 60);
    tcase_add_checked_fixture(tm, setup, teardown);
    tcase_add_test(tm, test_mark_forward_only);
    tcase_add_test(tm, test_mark_clamped);
    tcase_add_test(tm, test_mark_dm);
    tcase_add_test(tm, test_mark_on_join);
    tcase_add_test(tm, test_mark_listing);
    tcase_add_test(tm, test_mark_unread_cap);
    suite_add_tcase(s, tm);
    TCase *ts = tcase_create("search");
    tcase_set_timeout(ts, 60);
    tcase_add_checked_fixture(ts, setup, teardown);
    tcase_add_test(ts, test_search_order_limit_before);
    tcase_add_test(ts, test_search_scope);
    tcase_add_test(ts, test_search_changes);
    tcase_add_test(ts, test_search_bad_match);
    tcase_add_test(ts, test_search_retention);
    tcase_add_test(ts, test_search_without_thread);
    tcase_add_test(ts, test_search_stop);
    tcase_add_test(ts, test_search_beside_writer);
    tcase_add_test(ts, test_search_room_walk);
    tcase_add_test(ts, test_search_index_behind);
    tcase_add_test(ts, test_search_many_rooms);
    suite_add_tcase(s, ts);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(db_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
