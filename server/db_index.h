/* db_index.h -- the search index's watermark (schema 006): the database
 * worker indexes committed messages behind it, in chunks, off the commit
 * path; a search waits until it covers what was committed before the
 * search was asked.
 *
 * Why behind and not in each insert: FTS5 charged ~25 us per row when a
 * trigger indexed every insert inside the group commit (acks/s fell by
 * two thirds); a chunk of a thousand rows in one statement costs ~4 us per
 * row, and no ack waits for it (docs/performance.md).
 */
#ifndef PARLEY_DB_INDEX_H
#define PARLEY_DB_INDEX_H

#include <pthread.h>
#include <stdint.h>

/* Shared by the worker (which moves it) and the search thread (which waits
 * on it). Every field is guarded by lock. */
struct db_watermark {
    pthread_mutex_t lock;
    pthread_cond_t moved;    /* broadcast when indexed moves */
    int64_t indexed;         /* every message with id <= this is in the index */
    int64_t committed;       /* the highest id committed */
    int64_t want;            /* the highest id a waiting search needs */
    void (*kick)(void *arg); /* wakes the worker (set by db.c), called unlocked */
    void *kick_arg;
};

void db_watermark_init(struct db_watermark *w);
void db_watermark_destroy(struct db_watermark *w);
/* The id a search submitted now must see indexed. Any thread. */
int64_t db_watermark_committed(struct db_watermark *w);
/* Waits until every id up to need is indexed, or max_ms passed. Returns 1
 * when covered, 0 on timeout (the search then runs on what is indexed: it
 * may miss the newest messages, never shows a wrong one). Search thread. */
int db_watermark_wait(struct db_watermark *w, int64_t need, int max_ms);

#endif
