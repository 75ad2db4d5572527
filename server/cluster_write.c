/* cluster_write.c -- the writer thread: this node's writes, as events, to
 * Redis. It takes everything queued (event_out), sends one script call per
 * write in one pipelined round trip, and records each answer in the
 * pending table: taken (its event's apply answers it), a duplicate (answered
 * once the first is applied here), or late (overloaded). A write whose
 * answer never comes is answered overloaded past its deadline: the script
 * checks the deadline on Redis's own clock, so one that runs later does
 * nothing. Writer thread, with its own connection.
 */
#include "cluster_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* KEYS: the counter, the stream, the send's dedup key ('' for none).
 * ARGV: the deadline (Redis ms), MAXLEN ('0': none), the dedup TTL, the
 * position this node applied, then the event's fields. A counter below
 * that position means Redis lost its data: 'lost', and nothing is
 * written (ids are never given twice). The next seq is the counter + 1,
 * set only after the entry is added: a failed XADD leaves no hole. */
static const char script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if now > tonumber(ARGV[1]) then return {'late'} end\n"
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if cur < tonumber(ARGV[4]) then return {'lost', cur} end\n"
    "if KEYS[3] ~= '' then\n"
    "  local d = redis.call('GET', KEYS[3])\n"
    "  if d then return {'dup', d} end\n"
    "end\n"
    "local id = cur + 1\n"
    "local sid = string.format('%d', id)\n"
    "local snow = string.format('%d', now)\n"
    "local a = {'XADD', KEYS[2]}\n"
    "if ARGV[2] ~= '0' then a[#a+1] = 'MAXLEN'; a[#a+1] = '~'; a[#a+1] = ARGV[2] end\n"
    "a[#a+1] = sid .. '-0'; a[#a+1] = 'ts'; a[#a+1] = snow\n"
    "for i = 5, #ARGV do a[#a+1] = ARGV[i] end\n"
    "redis.call(unpack(a))\n"
    "redis.call('SET', KEYS[1], sid)\n"
    "if KEYS[3] ~= '' then redis.call('SET', KEYS[3], sid .. ' ' .. snow, 'EX', ARGV[3]) "
    "end\n"
    "return {'ok', id, now}\n";

struct wconn {
    redisContext *rc;
    char sha[48];
    int64_t offset_ms; /* Redis's clock minus ours */
    int64_t last_ok;   /* wall ms of the last answer */
};

/* Redis's clock against ours, from TIME: half the round trip is the error
 * bound, well inside CLUSTER_MARGIN_MS on one network. */
static int clock_offset(redisContext *rc, int64_t *out)
{
    int64_t t0 = wall_ms();
    const char *argv[] = {"TIME"};
    redisReply *r = rconn_call(rc, 1, argv, NULL);
    int64_t t1 = wall_ms();
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2;
    if (ok)
        *out = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000 -
               (t0 + t1) / 2;
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Connects, loads the script and measures the clocks. Returns 0 or -1. */
static int wconnect(struct cluster *c, struct wconn *w)
{
    char err[256];
    w->rc = rconn_open(&c->addr, c->opt.timeout_ms + CLUSTER_MARGIN_MS, err, sizeof err);
    if (!w->rc) goto err;
    const char *argv[] = {"SCRIPT", "LOAD", script};
    redisReply *r = rconn_call(w->rc, 3, argv, NULL);
    int ok = r && r->type == REDIS_REPLY_STRING && r->len < sizeof w->sha;
    if (ok) memcpy(w->sha, r->str, r->len + 1);
    snprintf(err, sizeof err, "%s", r ? (r->str ? r->str : "bad reply") : w->rc->errstr);
    if (r) freeReplyObject(r);
    if (!ok || clock_offset(w->rc, &w->offset_ms)) goto err;
    pthread_mutex_lock(&c->lock);
    c->offset_ms = w->offset_ms;
    pthread_mutex_unlock(&c->lock);
    cluster__seen(c, 1, -1);
    w->last_ok = wall_ms();
    return 0;
err:
    plog(LOG_DEBUG, "redis-connect", "role=writer reason=\"%s\"", err);
    if (w->rc) redisFree(w->rc);
    w->rc = NULL;
    cluster__seen(c, 0, -1);
    return -1;
}

/* Takes the queue, waiting up to 100 ms for a write. NULL: nothing. */
static struct event_out *take_queue(struct cluster *c, int *stopping)
{
    pthread_mutex_lock(&c->lock);
    if (!c->q_head && !c->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&c->cond, &c->lock, &until);
    }
    struct event_out *q = c->q_head;
    c->q_head = c->q_tail = NULL;
    *stopping = c->stopping;
    pthread_mutex_unlock(&c->lock);
    return q;
}

/* Records Redis's answer to one write (pending.h states). */
static void record(struct cluster *c, const struct event_out *o, redisReply *r)
{
    const char *kind = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                               r->element[0]->type == REDIS_REPLY_STRING
                           ? r->element[0]->str
                           : NULL;
    long long id = 0, ts = 0;
    if (kind && !strcmp(kind, "ok") && r->elements == 3) {
        id = r->element[1]->integer;
        pthread_mutex_lock(&c->lock);
        struct pend *p = cluster__find(c, o->token);
        if (p) p->state = PEND_TAKEN, p->until_ms = wall_ms() + CLUSTER_APPLY_MS;
        pthread_mutex_unlock(&c->lock);
        cluster__seen(c, 1, id);
    } else if (kind && !strcmp(kind, "dup") && r->elements == 2 &&
               sscanf(r->element[1]->str, "%lld %lld", &id, &ts) == 2) {
        pthread_mutex_lock(&c->lock);
        struct pend *p = cluster__find(c, o->token);
        if (p)
            p->state = PEND_DUP, p->dup_id = id, p->dup_ts = ts, c->ndup++,
            p->until_ms = wall_ms() + CLUSTER_APPLY_MS;
        if (p && id <= db_log_pos(c->db)) /* the first is here already */
            p = cluster__take(c, o->token);
        else
            p = NULL;
        pthread_mutex_unlock(&c->lock);
        if (p) cluster__recheck(c, p->r), free(p);
    } else if (kind && !strcmp(kind, "late")) {
        cluster__fail(c, o->token, DB_BUSY);
    } else if (kind && !strcmp(kind, "lost")) {
        char why[200];
        snprintf(why, sizeof why,
                 "Redis's log ends at %lld, before this node's position %" PRId64
                 ": Redis lost its data (docs/cluster.md)",
                 r->elements > 1 ? r->element[1]->integer : -1LL, db_log_pos(c->db));
        cluster__behind(c, why);
        cluster__fail(c, o->token, DB_FAILED);
    } else {
        plog(LOG_ERROR, "redis-write-failed", "reason=\"%s\"",
             r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        cluster__fail(c, o->token, DB_FAILED);
    }
}

/* Appends one write's script call. Returns 0, or -1 (hiredis: no memory). */
static int append(struct cluster *c, struct wconn *w, const struct event_out *o)
{
    const char *argv[8 + EVENT_MAX_FIELDS];
    size_t len[8 + EVENT_MAX_FIELDS];
    char deadline[24], maxlen[24], min[24];
    snprintf(deadline, sizeof deadline, "%" PRId64, o->deadline_ms + w->offset_ms);
    snprintf(maxlen, sizeof maxlen, "%lld", c->opt.log_max);
    snprintf(min, sizeof min, "%" PRId64, db_log_pos(c->db));
    const char *head[] = {"EVALSHA",
                          w->sha,
                          "3",
                          CLUSTER_SEQ_KEY,
                          CLUSTER_LOG_KEY,
                          o->dedup ? o->dedup : "",
                          deadline,
                          maxlen,
                          CLUSTER_DEDUP_TTL,
                          min};
    int n = 0;
    for (; n < 10; n++)
        argv[n] = head[n], len[n] = strlen(head[n]);
    for (int i = 0; i < o->nf; i++, n++)
        argv[n] = o->f[i], len[n] = o->flen[i];
    return redisAppendCommandArgv(w->rc, n, argv, len) == REDIS_OK ? 0 : -1;
}

/* The writes handed to Redis: from here their outcome is unknown until
 * Redis answers (a script may run before a pause, its answer waiting
 * behind the fsync): past their deadlines they are internal, never
 * overloaded, which promises the write is not stored. */
static void handed(struct cluster *c, struct event_out *q)
{
    pthread_mutex_lock(&c->lock);
    for (struct event_out *o = q; o; o = o->next) {
        struct pend *p = o->token ? cluster__find(c, o->token) : NULL;
        if (p && p->state == PEND_SENT) p->state = PEND_UNKNOWN;
    }
    pthread_mutex_unlock(&c->lock);
}

/* Sends the writes in one round trip and records the answers. Returns 0,
 * or -1 when the connection failed (the writes with no answer are unknown:
 * handed()). */
static int send_all(struct cluster *c, struct wconn *w, struct event_out *q)
{
    int64_t now = wall_ms();
    for (struct event_out *o = q; o; o = o->next)
        if (o->deadline_ms < now || append(c, w, o)) {
            cluster__fail(c, o->token, DB_BUSY); /* waited past its time here */
            o->token = 0;
        }
    handed(c, q);
    for (struct event_out *o = q; o; o = o->next) {
        if (!o->token) continue;
        void *reply = NULL;
        if (redisGetReply(w->rc, &reply) != REDIS_OK) {
            plog(LOG_WARN, "redis-write-failed", "reason=\"%s\"", w->rc->errstr);
            return -1;
        }
        record(c, o, reply);
        freeReplyObject(reply);
    }
    return 0;
}

/* A connection idle for a second may have been closed by Redis (its
 * `timeout`, a restart): a PING checks it before writes go on it, so they
 * are not lost with it. Returns 0, or -1 (reconnect). */
static int still_open(struct wconn *w)
{
    if (wall_ms() - w->last_ok < 1000) return 0;
    const char *argv[] = {"PING"};
    redisReply *r = rconn_call(w->rc, 1, argv, NULL);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    if (ok) w->last_ok = wall_ms();
    return ok ? 0 : -1;
}

static void free_queue(struct event_out *q)
{
    while (q) {
        struct event_out *next = q->next;
        free(q);
        q = next;
    }
}

void *cluster__writer(void *arg)
{
    struct cluster *c = arg;
    struct wconn w = {0};
    int64_t next_try = 0;
    for (;;) {
        int stopping;
        struct event_out *q = take_queue(c, &stopping); /* expiry: the watch thread's */
        if (!q && stopping) break;
        if (q && w.rc && still_open(&w)) { /* closed while idle: again, now */
            redisFree(w.rc);
            w.rc = NULL;
            next_try = 0;
        }
        /* writes waiting try at once (the reader may have found Redis back
         * first); with none, every 200 ms, so redis_up follows Redis */
        if (!w.rc && (q || wall_ms() >= next_try) && wconnect(c, &w))
            next_try = wall_ms() + 200;
        if (!q) continue;
        if (!w.rc) {
            for (struct event_out *o = q; o; o = o->next)
                cluster__fail(c, o->token, DB_BUSY);
        } else if (send_all(c, &w, q)) {
            redisFree(w.rc);
            w.rc = NULL;
            cluster__seen(c, 0, -1);
        } else
            w.last_ok = wall_ms();
        free_queue(q);
    }
    if (w.rc) redisFree(w.rc);
    return NULL;
}
