/* cluster_read.c -- the reader thread: the whole log, from the position
 * this node applied, to the database worker, in seq order (XREAD BLOCK on
 * its own connection). At its first connection it learns where the log
 * ends: the node serves once it applied that far, and refuses to (behind)
 * when the log no longer holds the events after its position (trimmed, or
 * a Redis that lost its data). Reader thread.
 */
#include "cluster_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define READ_COUNT "512"
#define READ_BLOCK_MS "500"
#define READ_TIMEOUT_MS 2000

static int stopping(struct cluster *c)
{
    pthread_mutex_lock(&c->lock);
    int s = c->stopping;
    pthread_mutex_unlock(&c->lock);
    return s;
}

/* An integer reply (or a decimal string; nil is 0); -1 on failure. */
static int64_t call_int(redisContext *rc, int argc, const char **argv)
{
    redisReply *r = rconn_call(rc, argc, argv, NULL);
    int64_t v = !r                               ? -1
                : r->type == REDIS_REPLY_INTEGER ? r->integer
                : r->type == REDIS_REPLY_STRING  ? atoll(r->str)
                : r->type == REDIS_REPLY_NIL     ? 0
                                                 : -1;
    if (r) freeReplyObject(r);
    return v;
}

/* The first seq the stream holds, 0 when it is empty; -1 on failure. */
static int64_t first_seq(redisContext *rc)
{
    const char *argv[] = {"XRANGE", CLUSTER_LOG_KEY, "-", "+", "COUNT", "1"};
    redisReply *r = rconn_call(rc, 6, argv, NULL);
    int64_t v = !r || r->type != REDIS_REPLY_ARRAY ? -1
                : r->elements == 0                 ? 0
                                   : atoll(r->element[0]->element[0]->str);
    if (r) freeReplyObject(r);
    return v;
}

/* A node that holds history but no log yet (a single node turning into the
 * first of a cluster): the empty log starts after its ids. */
static int64_t adopt(redisContext *rc, int64_t pos)
{
    char p[24];
    snprintf(p, sizeof p, "%" PRId64, pos);
    const char *argv[] = {
        "EVAL",
        "if redis.call('XLEN', KEYS[2]) == 0 and "
        "tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then "
        "redis.call('SET', KEYS[1], ARGV[1]) end "
        "return tonumber(redis.call('GET', KEYS[1]) or '0')",
        "2",
        CLUSTER_SEQ_KEY,
        CLUSTER_LOG_KEY,
        p};
    return call_int(rc, 6, argv);
}

/* Checks, at each connection, that the log still holds what follows pos;
 * at the first, also where it ends (start_head). Returns 0, or -1 when
 * Redis failed to answer. */
static int check_log(struct cluster *c, redisContext *rc, int64_t pos, int first)
{
    const char *get[] = {"GET", CLUSTER_SEQ_KEY};
    int64_t head = call_int(rc, 2, get), start = first_seq(rc);
    if (first && head >= 0 && head < pos && pos > 0) head = adopt(rc, pos);
    if (head < 0 || start < 0) return -1;
    char why[200];
    if (head < pos) {
        snprintf(why, sizeof why,
                 "the log ends at %" PRId64 " but this node applied %" PRId64
                 ": Redis lost its data, or is another cluster's",
                 head, pos);
        cluster__behind(c, why);
    } else if (head > pos && (start == 0 || start > pos + 1)) {
        snprintf(why, sizeof why,
                 "the log starts at %" PRId64 " but this node applied only %" PRId64
                 ": seed it from another node's backup (docs/cluster.md)",
                 start ? start : head + 1, pos);
        cluster__behind(c, why);
    }
    pthread_mutex_lock(&c->lock);
    if (first) c->start_head = head;
    /* ready by what is applied, not by pos (the periodic check passes the
     * read cursor, which runs ahead of the worker) */
    if (!c->st.ready && c->start_head >= 0 && db_log_pos(c->db) >= c->start_head)
        c->st.ready = 1;
    pthread_mutex_unlock(&c->lock);
    cluster__seen(c, 1, head);
    return 0;
}

static redisContext *rconnect(struct cluster *c, int64_t pos, int *first)
{
    char err[256];
    redisContext *rc = rconn_open(&c->addr, READ_TIMEOUT_MS, err, sizeof err);
    if (rc && !check_log(c, rc, pos, *first)) {
        *first = 0;
        return rc;
    }
    /* the reader's reason is the operator's, once per outage: a wrong
     * password, a refused connection (the other threads' say the same, at
     * debug) */
    pthread_mutex_lock(&c->lock);
    int first_failure = c->told_up != 0;
    pthread_mutex_unlock(&c->lock);
    plog(first_failure ? LOG_WARN : LOG_DEBUG, "redis-connect", "reason=\"%s\"",
         rc && rc->err ? rc->errstr : err);
    if (rc) redisFree(rc);
    cluster__seen(c, 0, -1);
    return NULL;
}

/* Hands one stream entry to the worker. Returns 1 when it was the next,
 * 0 when skipped (applied before), -1 when the reader must stop reading
 * (a gap, a bad entry, no memory, stopping). */
static int hand(struct cluster *c, redisReply *ent, int64_t *cursor)
{
    redisReply *fields = ent->element[1];
    const char *fv[EVENT_MAX_FIELDS + 2];
    size_t len[EVENT_MAX_FIELDS + 2];
    int n = 0, oom;
    for (size_t i = 0; i < fields->elements && n < EVENT_MAX_FIELDS + 2; i++, n++)
        fv[n] = fields->element[i]->str, len[n] = fields->element[i]->len;
    struct event *e = event_decode(ent->element[0]->str, fv, len, n, &oom);
    if (!e) {
        char why[200];
        snprintf(why, sizeof why, "log entry %s is not an event%s", ent->element[0]->str,
                 oom ? " (out of memory)" : "");
        if (oom)
            return plog(LOG_ERROR, "cluster-oom", "entry=%s", ent->element[0]->str), -1;
        cluster__behind(c, why);
        return -1;
    }
    if (e->seq <= *cursor) return event_free(e), 0;
    if (e->seq != *cursor + 1) {
        char why[200];
        snprintf(why, sizeof why,
                 "the log skips from %" PRId64 " to %" PRId64
                 " (trimmed past this node): seed it from another node's backup",
                 *cursor, e->seq);
        event_free(e);
        cluster__behind(c, why);
        return -1;
    }
    int64_t seq = e->seq; /* e is the worker's once submitted (it may free it) */
    if (db_submit_event(c->db, &e->req)) return event_free(e), -1;
    *cursor = seq;
    return 1;
}

/* One XREAD from cursor. Returns 0, or -1 when the connection failed. */
static int read_once(struct cluster *c, redisContext *rc, int64_t *cursor)
{
    char from[32];
    snprintf(from, sizeof from, "%" PRId64 "-0", *cursor);
    const char *argv[] = {"XREAD",       "COUNT",   READ_COUNT,      "BLOCK",
                          READ_BLOCK_MS, "STREAMS", CLUSTER_LOG_KEY, from};
    redisReply *r = rconn_call(rc, 8, argv, NULL);
    if (!r) return -1;
    int64_t start = *cursor;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        redisReply *ents = r->element[0]->element[1];
        for (size_t i = 0; i < ents->elements; i++)
            if (hand(c, ents->element[i], cursor) < 0) break;
    }
    freeReplyObject(r);
    if (*cursor > start) cluster__seen(c, 1, *cursor);
    return 0;
}

/* Where to read from: after a rolled-back batch, again from what was
 * committed. */
static void rewound(struct cluster *c, int64_t *cursor)
{
    pthread_mutex_lock(&c->lock);
    if (c->rewind >= 0) *cursor = c->rewind, c->rewind = -1;
    pthread_mutex_unlock(&c->lock);
}

static int is_behind(struct cluster *c)
{
    pthread_mutex_lock(&c->lock);
    int b = c->st.behind;
    pthread_mutex_unlock(&c->lock);
    return b;
}

void *cluster__reader(void *arg)
{
    struct cluster *c = arg;
    redisContext *rc = NULL;
    int first = 1;
    int64_t cursor = db_log_pos(c->db), last_check = 0;
    while (!stopping(c)) {
        if (!rc && !(rc = rconnect(c, db_log_pos(c->db), &first))) {
            usleep(200 * 1000);
            continue;
        }
        rewound(c, &cursor);
        if (is_behind(c) || cursor - db_log_pos(c->db) > CLUSTER_READ_AHEAD) {
            usleep(10 * 1000); /* the worker catches up (or an operator acts) */
            continue;
        }
        int64_t now = wall_ms();
        if (now - last_check >= 1000) { /* the log's end, for the lag; a lost log */
            last_check = now;
            if (check_log(c, rc, cursor, 0)) goto lost;
        }
        if (read_once(c, rc, &cursor) == 0) continue;
    lost:
        plog(LOG_WARN, "redis-read-failed", "reason=\"%s\"", rc->errstr);
        redisFree(rc);
        rc = NULL;
        cluster__seen(c, 0, -1);
        cursor = db_log_pos(c->db); /* what was read but not applied comes again */
    }
    if (rc) redisFree(rc);
    return NULL;
}
