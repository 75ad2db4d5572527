/* cluster.c -- the cluster's state, its table of pending writes and the
 * database worker's hooks (cluster.h). The threads are cluster_write.c's
 * and cluster_read.c's.
 */
#include "cluster_impl.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "remote.h"
#include "log.h"

/* ---- the pending table (under the lock) ---- */

static struct pend **bucket(struct cluster *c, uint64_t token)
{
    return &c->pend[token % CLUSTER_PEND_BUCKETS];
}

struct pend *cluster__find(struct cluster *c, uint64_t token)
{
    struct pend *p = *bucket(c, token);
    while (p && p->token != token)
        p = p->next;
    return p;
}

struct pend *cluster__take(struct cluster *c, uint64_t token)
{
    for (struct pend **pp = bucket(c, token); *pp; pp = &(*pp)->next)
        if ((*pp)->token == token) {
            struct pend *p = *pp;
            *pp = p->next;
            c->npend--;
            c->ndup -= p->state == PEND_DUP;
            return p;
        }
    return NULL;
}

void cluster__answer(struct cluster *c, struct db_req *r, enum db_status st, int64_t id,
                     int64_t ts)
{
    r->status = st;
    if (st == DB_OK) r->duplicate = 1, r->id = id, r->ts = ts;
    db_complete(c->db, r);
}

void cluster__fail(struct cluster *c, uint64_t token, enum db_status st)
{
    pthread_mutex_lock(&c->lock);
    struct pend *p = cluster__take(c, token);
    pthread_mutex_unlock(&c->lock);
    if (!p) return;
    cluster__answer(c, p->r, st, 0, 0);
    free(p);
}

void cluster__recheck(struct cluster *c, struct db_req *r)
{
    r->dup_check = 1;
    if (db_submit(c->db, r)) {
        r->dup_check = 0;
        cluster__answer(c, r, DB_BUSY, 0, 0);
    }
}

/* Moves out of the table every entry `due` says is done, onto *out. */
static void collect(struct cluster *c, int (*due)(const struct pend *, int64_t, int64_t),
                    int64_t now, int64_t pos, struct pend **out)
{
    for (int i = 0; i < CLUSTER_PEND_BUCKETS; i++)
        for (struct pend **pp = &c->pend[i]; *pp;) {
            struct pend *p = *pp;
            if (!due(p, now, pos)) {
                pp = &p->next;
                continue;
            }
            *pp = p->next;
            c->npend--;
            c->ndup -= p->state == PEND_DUP;
            p->next = *out;
            *out = p;
        }
}

static int dup_applied(const struct pend *p, int64_t now, int64_t pos)
{
    return p->state == PEND_DUP && p->dup_id <= pos;
}

static int past_time(const struct pend *p, int64_t now, int64_t pos)
{
    return dup_applied(p, now, pos) || p->until_ms < now;
}

/* Answers what collect() moved out: a duplicate applied is answered from
 * SQLite (cluster__recheck: Redis's dedup key may name an event that was
 * refused, or that stored nothing, once the key expired), one whose first
 * is not applied here within CLUSTER_APPLY_MS is internal; a write
 * with no answer from Redis in time was dropped there (its deadline) and
 * is overloaded; one Redis took but we did not apply in time, or whose
 * connection broke before the answer, is internal (it is in the log, or
 * may be: a resend with its client_id is one message). */
static void answer_all(struct cluster *c, struct pend *list, enum db_status dflt)
{
    while (list) {
        struct pend *p = list;
        list = p->next;
        enum db_status st = p->state == PEND_SENT ? dflt : DB_FAILED; /* TAKEN, UNKNOWN */
        if (p->state == PEND_TAKEN)
            plog(LOG_WARN, "cluster-apply-late", "token=%llu",
                 (unsigned long long)p->token);
        if (p->state == PEND_DUP && p->dup_id <= db_log_pos(c->db))
            cluster__recheck(c, p->r);
        else if (p->state == PEND_DUP) /* the first is in the log, not applied here */
            cluster__answer(c, p->r, DB_FAILED, 0, 0);
        else
            cluster__answer(c, p->r, st, 0, 0);
        free(p);
    }
}

void cluster__expire(struct cluster *c)
{
    struct pend *out = NULL;
    int64_t pos = db_log_pos(c->db);
    pthread_mutex_lock(&c->lock);
    if (c->npend) collect(c, past_time, wall_ms(), pos, &out);
    pthread_mutex_unlock(&c->lock);
    answer_all(c, out, DB_BUSY);
}

/* The watch thread: every 50 ms, the writes past their deadlines are
 * answered, those still queued (the writer may be blocked on a stalled
 * Redis for a while) and those waiting for Redis or the apply, so an
 * answer comes within --redis-timeout + CLUSTER_MARGIN_MS whatever Redis
 * does. No Redis call here. */
void *cluster__watch(void *arg)
{
    struct cluster *c = arg;
    for (;;) {
        usleep(50 * 1000);
        struct event_out *late = NULL, **pp;
        int64_t now = wall_ms();
        pthread_mutex_lock(&c->lock);
        int stopping = c->stopping;
        for (pp = &c->q_head, c->q_tail = NULL; *pp;) {
            struct event_out *o = *pp;
            if (o->deadline_ms >= now) {
                c->q_tail = o;
                pp = &o->next;
                continue;
            }
            *pp = o->next;
            o->next = late;
            late = o;
        }
        pthread_mutex_unlock(&c->lock);
        while (late) {
            struct event_out *o = late;
            late = o->next;
            cluster__fail(c, o->token, DB_BUSY); /* never sent: not stored */
            free(o);
        }
        cluster__expire(c);
        if (stopping) break;
    }
    return NULL;
}

void cluster__behind(struct cluster *c, const char *why)
{
    pthread_mutex_lock(&c->lock);
    int first = !c->st.behind;
    c->st.behind = 1;
    snprintf(c->st.reason, sizeof c->st.reason, "%s", why);
    pthread_mutex_unlock(&c->lock);
    if (first) plog(LOG_ERROR, "cluster-behind", "reason=\"%s\"", why);
}

void cluster__seen(struct cluster *c, int up, int64_t head)
{
    pthread_mutex_lock(&c->lock);
    if (c->told_up != up) /* the first state too: a wrong address says so */
        plog(up ? LOG_INFO : LOG_WARN, up ? "redis-up" : "redis-down", "redis=%s:%d",
             c->addr.host, c->addr.port); /* never the URL: it may hold a password */
    c->st.redis_up = c->told_up = up;
    if (head > c->st.head) c->st.head = head;
    pthread_mutex_unlock(&c->lock);
}

/* ---- the database worker's hooks (worker thread) ---- */

static int forward(void *arg, struct db_req *r)
{
    struct cluster *c = arg;
    if (!event_op_logged(r->op)) return -1;
    int64_t deadline = wall_ms() + c->opt.timeout_ms;
    uint64_t token = ++c->next_token;
    struct event_out *o = event_encode(r, c->node, token, deadline);
    r->no_dedup = 0; /* it was for this encoding */
    struct pend *p = malloc(sizeof(*p));
    if (!o || !p) goto err;
    *p = (struct pend){.token = token, .r = r, .until_ms = deadline + CLUSTER_MARGIN_MS};
    pthread_mutex_lock(&c->lock);
    if (c->stopping || !c->st.redis_up || c->st.behind) { /* overloaded, promptly */
        pthread_mutex_unlock(&c->lock);
        goto err;
    }
    struct pend **b = bucket(c, token);
    p->next = *b;
    *b = p;
    c->npend++;
    if (c->q_tail)
        c->q_tail->next = o;
    else
        c->q_head = o;
    c->q_tail = o;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return 0;
err:
    free(o);
    free(p);
    return -1;
}

static struct db_req *claim(void *arg, struct event *e)
{
    struct cluster *c = arg;
    if (strcmp(e->origin, c->node)) return NULL;
    pthread_mutex_lock(&c->lock);
    struct pend *p = cluster__take(c, e->token);
    pthread_mutex_unlock(&c->lock);
    if (!p) return NULL; /* answered already (late): the event is anyone's */
    assert(p->state != PEND_DUP);
    struct db_req *r = p->r;
    free(p);
    return r;
}

static void applied(void *arg, int64_t pos, int ok)
{
    struct cluster *c = arg;
    struct pend *out = NULL;
    pthread_mutex_lock(&c->lock);
    c->st.position = pos;
    if (c->st.head < pos) c->st.head = pos;
    if (!ok) c->rewind = pos;
    if (!c->st.ready && c->start_head >= 0 && pos >= c->start_head) {
        c->st.ready = 1;
        plog(LOG_INFO, "cluster-ready", "position=%lld", (long long)pos);
    }
    if (ok && c->ndup) collect(c, dup_applied, 0, pos, &out);
    pthread_mutex_unlock(&c->lock);
    answer_all(c, out, DB_BUSY);
}

void cluster_hooks(struct cluster *c, struct db_options *dbo)
{
    dbo->forward = forward;
    dbo->claim = claim;
    dbo->applied = applied;
    dbo->cluster_arg = c;
}

/* ---- life ---- */

struct cluster *cluster_new(const struct cluster_options *o, char *err, size_t errlen)
{
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->opt = *o;
    c->rewind = c->start_head = c->told_up = -1;
    c->wake_fd = -1;
    if (rconn_parse(o->url, &c->addr, err, errlen)) goto err;
    /* Per process, never stored: a node seeded from another's backup must
     * not take that node's events for its own. */
    if (crypto_random_hex(c->node, 8)) {
        snprintf(err, errlen, "no entropy for the node id");
        goto err;
    }
    if ((c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        !(c->remote = remote_new())) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    return c;
err:
    if (c->wake_fd >= 0) close(c->wake_fd);
    free(c);
    return NULL;
}

/* Tells every thread to stop and wakes the ones that wait. */
static void tell_stop(struct cluster *c)
{
    uint64_t one = 1;
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (write(c->wake_fd, &one, sizeof one) < 0) { /* awake already */
    }
}

int cluster_start(struct cluster *c, struct db *db)
{
    pthread_t *th[] = {&c->writer, &c->reader, &c->presence, &c->watch};
    void *(*fn[])(void *) = {cluster__writer, cluster__reader, cluster__presence,
                             cluster__watch};
    c->db = db;
    c->st.position = db_log_pos(db);
    for (int i = 0; i < 4; i++)
        if (pthread_create(th[i], NULL, fn[i], c)) {
            tell_stop(c);
            while (i--)
                pthread_join(*th[i], NULL);
            return -1;
        }
    c->started = 1;
    plog(LOG_INFO, "cluster", "node=%s redis=%s:%d position=%lld", c->node, c->addr.host,
         c->addr.port, (long long)c->st.position);
    return 0;
}

void cluster_stop(struct cluster *c)
{
    if (!c || !c->started) return;
    tell_stop(c);
    pthread_join(c->writer, NULL);
    pthread_join(c->reader, NULL);
    pthread_join(c->presence, NULL);
    pthread_join(c->watch, NULL);
    c->started = 0;
    struct pend *out = NULL;
    pthread_mutex_lock(&c->lock);
    collect(c, past_time, INT64_MAX, INT64_MAX, &out); /* every entry */
    for (struct pend *p = out; p; p = p->next)
        if (p->state == PEND_DUP) p->state = PEND_SENT; /* not applied here */
    while (c->q_head) {
        struct event_out *o = c->q_head;
        c->q_head = o->next;
        free(o);
    }
    c->q_tail = NULL;
    pthread_mutex_unlock(&c->lock);
    answer_all(c, out, DB_BUSY);
}

void cluster_free(struct cluster *c)
{
    if (!c) return;
    assert(!c->started && !c->npend);
    while (c->n_head) {
        struct note *n = c->n_head;
        c->n_head = n->next;
        free(n);
    }
    remote_free(c->remote);
    close(c->wake_fd);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}
