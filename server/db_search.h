/* db_search.h -- full-text search, and the other reads that need no place
 * in the commit order (the `rooms` listing's database part), on a thread
 * and a read-only connection of their own (the database opens two: one
 * for searches, one for listings).
 *
 * A search can take tens of milliseconds on a large history. Run on the
 * database worker, it would hold every commit (and so every ack) behind
 * it; here it runs beside the worker: SQLite's WAL lets one connection
 * read while another writes, so writes keep flowing. A search sees what
 * was committed when it began, and completes on its own, in no order
 * with the worker's requests (nothing depends on that order: a search
 * changes nothing and is answered by itself).
 *
 * Ownership as for db.h: the request (DB_SEARCH) and its inputs belong to
 * the submitter from db_search_submit() until the done hook hands it back;
 * the hook runs on the search thread and must only pass it on (the server
 * puts it on the submitter loop's inbox, hub_deliver_one).
 */
#ifndef PARLEY_DB_SEARCH_H
#define PARLEY_DB_SEARCH_H

#include <stddef.h>

struct db_options;
struct db_req;
struct db_search;
struct db_watermark;

/* What a search may look at, made by the submitter and kept alive with
 * the request. Without a room: every room the user may read (all rooms,
 * or only the listed names and name prefixes) and the user's DM rooms. */
struct db_search_scope {
    const char *match;        /* the FTS5 expression (searchq.h) */
    int all_rooms;            /* every room that is not a DM room */
    int nnames, nprefixes;    /* else only these, by name or by prefix */
    const char *const *names; /* [nnames] */
    const char *const *prefixes;
    int nexcluded;               /* rooms never searched: the user is banned there */
    const char *const *excluded; /* [nexcluded] */
};

/* Opens opt->path read-only and starts the thread. With wm, each search
 * first waits (at most a second) until the search index covers r->last_id,
 * the id committed when it was submitted (db_index.h); wm must outlive the
 * thread. opt->queue_max bounds
 * the requests waiting; opt->search_done(opt->search_arg, r) is called on
 * the thread for each finished one. Returns NULL with a reason in err.
 * Main thread, after the database is migrated. */
struct db_search *db_search_open(const struct db_options *opt, struct db_watermark *wm,
                                 char *err, size_t errlen);
/* Queues r (DB_SEARCH, or DB_READ with dms: db_mark_rooms). Returns 0, or -1 when the
 * queue is full or the thread is stopping (r untouched). Any thread. */
int db_search_submit(struct db_search *s, struct db_req *r);
/* Stops the thread: searches still queued complete through done with
 * DB_BUSY, the running one finishes. Then frees everything. Main thread. */
void db_search_close(struct db_search *s);

#endif
