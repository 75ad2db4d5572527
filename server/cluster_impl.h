/* cluster_impl.h -- the cluster's internals, shared by cluster.c (the
 * state, the pending table, the worker's hooks), cluster_write.c (the
 * writer thread) and cluster_read.c (the reader thread). Private to them.
 */
#ifndef PARLEY_CLUSTER_IMPL_H
#define PARLEY_CLUSTER_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "clock.h"
#include "cluster.h"
#include "event.h"
#include "rconn.h"

#define CLUSTER_LOG_KEY "parley:log"
#define CLUSTER_SEQ_KEY "parley:seq"
#define CLUSTER_DEDUP_TTL "604800" /* s a send's client_id is checked in Redis */
#define CLUSTER_PEND_BUCKETS 4096
#define CLUSTER_MARGIN_MS 250   /* past a deadline, before "overloaded" */
#define CLUSTER_APPLY_MS 10000  /* from Redis's answer to our apply, at most */
#define CLUSTER_READ_AHEAD 8192 /* events read but not yet applied, at most */
#define CLUSTER_CHANNEL "parley:presence"
#define CLUSTER_NODES_KEY "parley:nodes"
#define CLUSTER_ALIVE_PREFIX "parley:alive:"
#define CLUSTER_MEMBERS_PREFIX "parley:members:"
#define CLUSTER_ALIVE_MS 10000  /* a node not heard of for this long is gone */
#define CLUSTER_BEAT_MS 2000    /* heartbeats and checks for gone nodes */
#define CLUSTER_NOTES_MAX 65536 /* presence notes queued at most (then resync) */

/* A presence or typing change of this node, for the others: kind 'J' (a
 * connection joined), 'L' (left), 'j' and 'l' (the same, listed but not
 * told), 'T' (typing); data "room\x1fconn\x1fuser" for J, L, j and l,
 * "room\x1fuser" for T. */
struct note {
    struct note *next;
    char kind;
    size_t len;
    char data[];
};

enum pend_state {
    PEND_SENT,  /* queued for the writer: past its deadline, overloaded */
    PEND_TAKEN, /* Redis appended it: its event's apply answers it */
    PEND_DUP,   /* a duplicate of dup_id: answered once that is applied, or
                   internal past CLUSTER_APPLY_MS */
    /* handed to Redis, no answer yet: Redis may have run it, so if its
     * event is applied by the deadline it is acked, else internal (a
     * resend with its client_id is safe) */
    PEND_UNKNOWN,
};

/* A write of this node between forward and its answer. */
struct pend {
    struct pend *next;
    uint64_t token;
    struct db_req *r;
    int64_t until_ms; /* wall clock: answered as failed past it */
    int64_t dup_id, dup_ts;
    enum pend_state state;
};

struct cluster {
    struct cluster_options opt;
    struct rconn_addr addr;
    char node[24]; /* this process's id in the events' origin */
    struct db *db;

    pthread_mutex_t lock;
    pthread_cond_t cond;                     /* the writer's queue, and stopping */
    struct event_out *q_head, *q_tail;       /* guarded by lock */
    struct pend *pend[CLUSTER_PEND_BUCKETS]; /* guarded by lock */
    int npend, ndup;                         /* guarded by lock */
    int stopping;                            /* guarded by lock */
    int64_t rewind;           /* guarded by lock: the reader reads again after it; -1 */
    struct cluster_status st; /* guarded by lock */
    int64_t start_head;       /* guarded by lock: the log's end at start; -1 unknown */
    int64_t offset_ms;        /* guarded by lock: Redis's clock minus ours */
    int told_up;              /* guarded by lock: redis_up as last logged; -1 none */
    uint64_t next_token;      /* worker thread only */
    struct note *n_head, *n_tail; /* guarded by lock */
    int n_len;                    /* guarded by lock */
    int n_lost;            /* guarded by lock: notes dropped, the others must resync */
    int wake_fd;           /* eventfd: a note is queued, or stopping */
    struct remote *remote; /* other nodes' members (its own lock) */

    pthread_t writer, reader, presence, watch;
    int started;
};

/* ---- cluster.c ---- */

/* Takes the pending entry of token out of the table; NULL if gone. Under
 * the lock. */
struct pend *cluster__take(struct cluster *c, uint64_t token);
/* The pending entry of token, left in the table; NULL if gone. Under the
 * lock. */
struct pend *cluster__find(struct cluster *c, uint64_t token);
/* Answers a request the cluster holds: status, and for a duplicate its id
 * and ts. Any thread, outside the lock. */
void cluster__answer(struct cluster *c, struct db_req *r, enum db_status st, int64_t id,
                     int64_t ts);
/* Answers token's write with st now, if it is still pending. Any thread. */
void cluster__fail(struct cluster *c, uint64_t token, enum db_status st);
/* Answers the entries past their time, and the duplicates now applied.
 * The watch thread. */
void cluster__expire(struct cluster *c);
/* The node stops serving, for good: an operator must act (docs/cluster.md).
 * Any thread. */
void cluster__behind(struct cluster *c, const char *why);
/* A duplicate's first is applied here: the database answers it from
 * SQLite (db.h dup_check). Any thread, outside the lock. */
void cluster__recheck(struct cluster *c, struct db_req *r);
/* Records whether Redis answered, and the log's end when known (>= 0). */
void cluster__seen(struct cluster *c, int up, int64_t head);

/* ---- cluster_write.c, cluster_read.c: the threads ---- */

void *cluster__writer(void *arg);
void *cluster__reader(void *arg);
void *cluster__presence(void *arg);
void *cluster__watch(void *arg);

#endif
