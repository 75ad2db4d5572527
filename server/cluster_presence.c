/* cluster_presence.c -- presence, typing and membership across nodes.
 *
 * Each node keeps its joined connections in Redis, in the hash
 * parley:members:<node> (field "room\x1fconn", value the USER JSON), and
 * says every change on the channel parley:presence ("J|L|T\x1fnode\x1f…";
 * a typing carries the user, and each node writes the frame itself).
 * A node is alive while parley:alive:<node> exists (a heartbeat every
 * CLUSTER_BEAT_MS, expiring after CLUSTER_ALIVE_MS); every node looks for
 * the gone ones, and the first to remove one's hash announces it ('G'), so
 * the others tell its members' leaves. After any reconnection a node writes
 * its whole hash again and announces it ('S'); the others then read it
 * again. Joins and leaves are idempotent (per connection), so a change
 * that arrives twice, or both in a hash and on the channel, counts once.
 *
 * Presence thread, with two connections: `pub` for commands and `sub` in
 * subscribe mode. The loops queue notes (cluster_presence, cluster_typing)
 * and wake it through an eventfd.
 */
#include "cluster_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "protocol.h"
#include "remote.h"

#define SEP "\x1f"

/* ---- telling this node's members ---- */

static void tell_presence(struct cluster *c, const char *room, const char *user,
                          size_t len, int join)
{
    struct buf *b = proto_msg_start("presence", room, 64 + len);
    buf_puts(&b,
             join ? ",\"event\":\"join\",\"user\":" : ",\"event\":\"leave\",\"user\":");
    buf_put(&b, user, len);
    b = proto_msg_end(b, NULL);
    if (b && !b->oom) c->opt.deliver(c->opt.hub, room, b);
    buf_unref(b);
}

/* Another node's word on a member: a room name the protocol allows and a
 * USER object with an id, or it is not taken (Redis is trusted, but a
 * bad entry must not make every `joined` or `rooms` answer invalid). */
static int member_ok(const char *room, const char *user, size_t len)
{
    if (!proto_room_valid(room) || len > 4096) return 0;
    cJSON *u = json_parse_all(user, len);
    int ok = cJSON_IsObject(u) && cJSON_IsString(cJSON_GetObjectItem(u, "id"));
    cJSON_Delete(u);
    return ok;
}

static void tell_typing(struct cluster *c, const char *room, const char *user, size_t len)
{
    struct buf *b = proto_msg_start("typing", room, 64 + len);
    buf_puts(&b, ",\"user\":");
    buf_put(&b, user, len);
    b = proto_msg_end(b, NULL);
    if (b && !b->oom) c->opt.deliver(c->opt.hub, room, b);
    buf_unref(b);
}

static void tell_leave(void *arg, const char *room, struct buf *user)
{
    tell_presence(arg, room, (const char *)BUF_PAYLOAD(user), user->len, 0);
}

/* ---- the publish connection ---- */

struct pconn {
    redisContext *pub, *sub;
    char sha[48];
    int64_t next_beat;
};

/* J, j: the field set; L, l: removed; both published, in one script. */
static const char note_script[] =
    "if ARGV[1] == 'J' or ARGV[1] == 'j' then redis.call('HSET', KEYS[1], ARGV[2], "
    "ARGV[3])\n"
    "elseif ARGV[1] == 'L' or ARGV[1] == 'l' then redis.call('HDEL', KEYS[1], ARGV[2]) "
    "end\n"
    "redis.call('PUBLISH', KEYS[2], ARGV[4])\n";

/* A gone node's hash removed and announced, by whoever sees it first. */
static const char gone_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('SREM', KEYS[2], ARGV[1]) == 1 "
    "then redis.call('DEL', KEYS[3]); redis.call('PUBLISH', KEYS[4], 'G' .. ARGV[2]) "
    "return 1 end return 0";

static redisReply *call(redisContext *rc, int argc, const char **argv, const size_t *len)
{
    redisReply *r = rconn_call(rc, argc, argv, len);
    if (r && r->type == REDIS_REPLY_ERROR)
        plog(LOG_WARN, "redis-presence", "reason=\"%s\"", r->str);
    return r;
}

static int call_ok(redisContext *rc, int argc, const char **argv, const size_t *len)
{
    redisReply *r = call(rc, argc, argv, len);
    if (r) freeReplyObject(r);
    return r ? 0 : -1;
}

static void key_of(char *out, size_t n, const char *prefix, const char *node)
{
    snprintf(out, n, "%s%s", prefix, node);
}

/* The heartbeat: this node is alive for CLUSTER_ALIVE_MS more. Returns 0,
 * 1 when this node was no longer listed (another node found its heartbeat
 * expired, during a stall, and removed its members: they must be written
 * again), or -1 when the connection failed. */
static int beat(struct cluster *c, struct pconn *p)
{
    char alive[64], ms[16];
    key_of(alive, sizeof alive, CLUSTER_ALIVE_PREFIX, c->node);
    snprintf(ms, sizeof ms, "%d", CLUSTER_ALIVE_MS);
    const char *set[] = {"SET", alive, "1", "PX", ms};
    const char *add[] = {"SADD", CLUSTER_NODES_KEY, c->node};
    if (call_ok(p->pub, 5, set, NULL)) return -1;
    redisReply *r = call(p->pub, 3, add, NULL);
    int added = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r) freeReplyObject(r);
    return r ? added : -1;
}

struct sync {
    redisContext *rc;
    const char *key;
    int n, failed;
};

static void sync_one(void *arg, const char *room, const void *conn,
                     const struct buf *user)
{
    struct sync *s = arg;
    char field[PROTO_MAX_ROOM + 32];
    int n = snprintf(field, sizeof field, "%s" SEP "%" PRIxPTR, room, (uintptr_t)conn);
    const char *argv[] = {"HSET", s->key, field, (const char *)BUF_PAYLOAD(user)};
    size_t len[] = {4, strlen(s->key), (size_t)n, user->len};
    s->failed |= redisAppendCommandArgv(s->rc, 4, argv, len) != REDIS_OK;
    s->n++;
}

/* Writes this node's whole membership again and announces it ('S'): after
 * any reconnection, or notes dropped, the others may have missed changes,
 * or removed us as gone. The notes queued meanwhile follow; they are
 * idempotent. */
static int resync(struct cluster *c, struct pconn *p)
{
    char key[64], msg[40];
    key_of(key, sizeof key, CLUSTER_MEMBERS_PREFIX, c->node);
    const char *del[] = {"DEL", key};
    if (beat(c, p) < 0 || call_ok(p->pub, 2, del, NULL)) return -1;
    struct sync s = {p->pub, key, 0, 0};
    c->opt.each_member(c->opt.hub, sync_one, &s);
    for (int i = 0; i < s.n && !s.failed; i++) {
        void *r = NULL;
        if (redisGetReply(p->pub, &r) != REDIS_OK) return -1;
        freeReplyObject(r);
    }
    snprintf(msg, sizeof msg, "S" SEP "%s", c->node);
    const char *pubm[] = {"PUBLISH", CLUSTER_CHANNEL, msg};
    return s.failed || call_ok(p->pub, 3, pubm, NULL) ? -1 : 0;
}

/* Sends the queued notes, pipelined. Returns 0, or -1 (connection lost). */
static int send_notes(struct cluster *c, struct pconn *p, struct note *n)
{
    char key[64];
    key_of(key, sizeof key, CLUSTER_MEMBERS_PREFIX, c->node);
    int sent = 0, failed = 0;
    for (struct note *x = n; x && !failed; x = x->next, sent++) {
        char kind[2] = {x->kind, 0}, *msg = malloc(x->len + 32);
        if (!msg) return -1;
        int ml = sprintf(msg, "%c" SEP "%s" SEP, x->kind, c->node);
        memcpy(msg + ml, x->data, x->len);
        /* field: "room\x1fconn" (up to the second separator); value: the user */
        const char *s1 = memchr(x->data, SEP[0], x->len);
        const char *s2 = s1 && x->kind != 'T'
                             ? memchr(s1 + 1, SEP[0], x->len - (size_t)(s1 + 1 - x->data))
                             : NULL;
        size_t flen = s2 ? (size_t)(s2 - x->data) : 0;
        const char *argv[] = {"EVALSHA", p->sha,           "2",
                              key,       CLUSTER_CHANNEL,  kind,
                              x->data,   s2 ? s2 + 1 : "", msg};
        size_t len[] = {7,
                        strlen(p->sha),
                        1,
                        strlen(key),
                        strlen(CLUSTER_CHANNEL),
                        1,
                        flen,
                        s2 ? x->len - flen - 1 : 0,
                        (size_t)ml + x->len};
        failed = redisAppendCommandArgv(p->pub, 9, argv, len) != REDIS_OK;
        free(msg);
    }
    for (int i = 0; i < sent; i++) {
        void *r = NULL;
        if (redisGetReply(p->pub, &r) != REDIS_OK) return -1;
        freeReplyObject(r);
    }
    return failed ? -1 : 0;
}

/* Removes the nodes whose heartbeat expired (the script lets one node win
 * each; the 'G' it publishes tells everyone). */
static int reap(struct cluster *c, struct pconn *p)
{
    const char *argv[] = {"SMEMBERS", CLUSTER_NODES_KEY};
    redisReply *r = call(p->pub, 2, argv, NULL);
    if (!r) return -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *node = r->element[i]->str;
        if (!strcmp(node, c->node)) continue;
        char alive[64], members[64], g[40];
        key_of(alive, sizeof alive, CLUSTER_ALIVE_PREFIX, node);
        key_of(members, sizeof members, CLUSTER_MEMBERS_PREFIX, node);
        snprintf(g, sizeof g, SEP "%s", node);
        const char *ev[] = {"EVAL",  gone_script,     "4",  alive, CLUSTER_NODES_KEY,
                            members, CLUSTER_CHANNEL, node, g};
        if (call_ok(p->pub, 9, ev, NULL)) {
            freeReplyObject(r);
            return -1;
        }
    }
    freeReplyObject(r);
    return 0;
}

/* Reads another node's hash into the table (after its 'S', or at start).
 * What changed since this node last heard is told as presence: after a
 * stall the others reaped (leaves told), its members come back with a
 * join; members whose leave we missed go with a leave. */
static int load_node(struct cluster *c, redisContext *rc, const char *node)
{
    char key[64];
    key_of(key, sizeof key, CLUSTER_MEMBERS_PREFIX, node);
    const char *argv[] = {"HGETALL", key};
    redisReply *r = call(rc, 2, argv, NULL);
    if (!r) return -1;
    remote_mark_node(c->remote, node);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        char room[PROTO_MAX_ROOM + 1];
        const char *f = r->element[i]->str, *sep = strchr(f, SEP[0]), *u;
        if (!sep || (size_t)(sep - f) > PROTO_MAX_ROOM) continue;
        memcpy(room, f, (size_t)(sep - f));
        room[sep - f] = 0;
        u = r->element[i + 1]->str;
        size_t ulen = r->element[i + 1]->len;
        if (member_ok(room, u, ulen) &&
            remote_set(c->remote, node, room, sep + 1, u, ulen, 1) == 1)
            tell_presence(c, room, u, ulen, 1);
    }
    freeReplyObject(r);
    remote_drop_stale(c->remote, node, tell_leave, c);
    return 0;
}

/* Every live node's members, at (re)subscription. */
static int load_all(struct cluster *c, struct pconn *p)
{
    const char *argv[] = {"SMEMBERS", CLUSTER_NODES_KEY};
    redisReply *r = call(p->pub, 2, argv, NULL);
    if (!r) return -1;
    int rc = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && !rc; i++)
        if (strcmp(r->element[i]->str, c->node))
            rc = load_node(c, p->pub, r->element[i]->str);
    freeReplyObject(r);
    return rc;
}

/* ---- the subscription ---- */

/* One message of the channel, from another node. */
static void on_message(struct cluster *c, struct pconn *p, const char *m, size_t len)
{
    char node[24], room[PROTO_MAX_ROOM + 1], conn[24];
    const char *end = m + len, *a = m + 2, *b, *d;
    if (len < 3 || m[1] != SEP[0] || !(b = memchr(a, SEP[0], (size_t)(end - a)))) {
        if (len >= 2 && (m[0] == 'G') && (size_t)(end - m - 2) < sizeof node) {
            memcpy(node, m + 2, (size_t)(end - m - 2));
            node[end - m - 2] = 0;
            if (strcmp(node, c->node)) remote_drop_node(c->remote, node, tell_leave, c);
        } else if (len >= 2 && m[0] == 'S' && (size_t)(end - m - 2) < sizeof node) {
            memcpy(node, m + 2, (size_t)(end - m - 2));
            node[end - m - 2] = 0;
            if (strcmp(node, c->node)) load_node(c, p->pub, node);
        }
        return;
    }
    if ((size_t)(b - a) >= sizeof node) return;
    memcpy(node, a, (size_t)(b - a));
    node[b - a] = 0;
    if (!strcmp(node, c->node)) return; /* our own, told here already */
    a = b + 1;
    if (!(b = memchr(a, SEP[0], (size_t)(end - a))) || (size_t)(b - a) > PROTO_MAX_ROOM)
        return;
    memcpy(room, a, (size_t)(b - a));
    room[b - a] = 0;
    if (m[0] == 'T') {
        if (member_ok(room, b + 1, (size_t)(end - b - 1)))
            tell_typing(c, room, b + 1, (size_t)(end - b - 1));
        return;
    }
    a = b + 1;
    if (!(d = memchr(a, SEP[0], (size_t)(end - a))) || (size_t)(d - a) >= sizeof conn)
        return;
    memcpy(conn, a, (size_t)(d - a));
    conn[d - a] = 0;
    /* J, L: listed, and told (the origin paced it); j, l: only listed. */
    int join = m[0] == 'J' || m[0] == 'j', tell = m[0] == 'J' || m[0] == 'L';
    if ((!join && m[0] != 'L' && m[0] != 'l') ||
        !member_ok(room, d + 1, (size_t)(end - d - 1)))
        return;
    remote_set(c->remote, node, room, conn, d + 1, (size_t)(end - d - 1), join);
    if (tell) tell_presence(c, room, d + 1, (size_t)(end - d - 1), join);
}

/* Handles every message the subscription has buffered or can read now.
 * Returns 0, or -1 when the connection failed. */
static int drain_sub(struct cluster *c, struct pconn *p, int readable)
{
    if (readable && redisBufferRead(p->sub) != REDIS_OK) return -1;
    for (;;) {
        void *v = NULL;
        if (redisGetReplyFromReader(p->sub, &v) != REDIS_OK) return -1;
        if (!v) return 0;
        redisReply *r = v;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING &&
            !strcmp(r->element[0]->str, "message"))
            on_message(c, p, r->element[2]->str, r->element[2]->len);
        freeReplyObject(r);
    }
}

static void pdrop(struct pconn *p)
{
    if (p->pub) redisFree(p->pub);
    if (p->sub) redisFree(p->sub);
    p->pub = p->sub = NULL;
}

/* Both connections, the script, the subscription, our hash written and the
 * others' read. Returns 0 or -1 (then nothing is open). */
static int pconnect(struct cluster *c, struct pconn *p)
{
    char err[256];
    p->pub = rconn_open(&c->addr, 2000, err, sizeof err);
    p->sub = p->pub ? rconn_open(&c->addr, 2000, err, sizeof err) : NULL;
    if (!p->sub) goto err;
    const char *load[] = {"SCRIPT", "LOAD", note_script};
    redisReply *r = call(p->pub, 3, load, NULL);
    int ok = r && r->type == REDIS_REPLY_STRING && r->len < sizeof p->sha;
    if (ok) memcpy(p->sha, r->str, r->len + 1);
    if (r) freeReplyObject(r);
    const char *subscribe[] = {"SUBSCRIBE", CLUSTER_CHANNEL};
    if (!ok || !(r = call(p->sub, 2, subscribe, NULL))) goto err;
    freeReplyObject(r);
    pthread_mutex_lock(&c->lock);
    c->n_lost = 0;
    pthread_mutex_unlock(&c->lock);
    if (resync(c, p) || load_all(c, p)) goto err;
    p->next_beat = wall_ms() + CLUSTER_BEAT_MS;
    return 0;
err:
    plog(LOG_DEBUG, "redis-connect", "role=presence reason=\"%s\"",
         p->pub && p->pub->err ? p->pub->errstr : err);
    pdrop(p);
    return -1;
}

static struct note *take_notes(struct cluster *c, int *stopping, int *lost)
{
    pthread_mutex_lock(&c->lock);
    struct note *n = c->n_head;
    c->n_head = c->n_tail = NULL;
    c->n_len = 0;
    *stopping = c->stopping;
    *lost = c->n_lost;
    c->n_lost = 0;
    pthread_mutex_unlock(&c->lock);
    return n;
}

static void free_notes(struct note *n)
{
    while (n) {
        struct note *next = n->next;
        free(n);
        n = next;
    }
}

/* One round: notes out, heartbeat and reaping when due, messages in.
 * Returns 0, or -1 when a connection failed. */
static int round_once(struct cluster *c, struct pconn *p, struct note *n, int lost)
{
    if (n && send_notes(c, p, n)) return -1;
    if (lost && resync(c, p)) return -1;
    int64_t now = wall_ms();
    if (now >= p->next_beat) {
        p->next_beat = now + CLUSTER_BEAT_MS;
        int b = beat(c, p);
        if (b < 0 || (b == 1 && resync(c, p)) || reap(c, p)) return -1;
    }
    struct pollfd fds[2] = {{p->sub->fd, POLLIN, 0}, {c->wake_fd, POLLIN, 0}};
    int k = poll(fds, 2, (int)(p->next_beat - now));
    if (k > 0 && (fds[1].revents & POLLIN)) {
        uint64_t v;
        if (read(c->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN) return -1;
    }
    return drain_sub(c, p, k > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)));
}

/* A clean stop: the others drop our members now, not after the expiry. */
static void say_goodbye(struct cluster *c, struct pconn *p)
{
    char alive[64], members[64], g[40];
    key_of(alive, sizeof alive, CLUSTER_ALIVE_PREFIX, c->node);
    key_of(members, sizeof members, CLUSTER_MEMBERS_PREFIX, c->node);
    snprintf(g, sizeof g, "G" SEP "%s", c->node);
    const char *del[] = {"DEL", alive, members};
    const char *srem[] = {"SREM", CLUSTER_NODES_KEY, c->node};
    const char *pubm[] = {"PUBLISH", CLUSTER_CHANNEL, g};
    if (!call_ok(p->pub, 3, del, NULL) && !call_ok(p->pub, 3, srem, NULL))
        call_ok(p->pub, 3, pubm, NULL);
}

void *cluster__presence(void *arg)
{
    struct cluster *c = arg;
    struct pconn p = {0};
    for (;;) {
        int stopping, lost;
        struct note *n = take_notes(c, &stopping, &lost);
        if (stopping) {
            free_notes(n);
            break;
        }
        if (!p.pub && pconnect(c, &p)) {
            free_notes(n); /* the resync at the next connection covers them */
            usleep(200 * 1000);
            continue;
        }
        if (round_once(c, &p, n, lost)) {
            plog(LOG_WARN, "redis-presence-failed", "reason=\"%s\"",
                 p.pub->err ? p.pub->errstr : p.sub->errstr);
            pdrop(&p);
        }
        free_notes(n);
    }
    if (p.pub) say_goodbye(c, &p);
    pdrop(&p);
    return NULL;
}
