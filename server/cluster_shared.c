/* cluster_shared.c -- values every node of a cluster must share, agreed
 * through Redis: the first node's value is kept (SET NX), every node uses
 * it. Today one: the guest key, which signs guests' resume tokens, so a
 * guest resumes its id on any node (and a resend after a reconnect stays
 * one message wherever it lands). Main thread, at start.
 */
#include "cluster_impl.h"

#include <string.h>

#include "log.h"

#define SHARED_PREFIX "parley:shared:"

/* SET NX, then GET: atomic, so two nodes starting at once agree. */
static const char shared_script[] = "redis.call('SET', KEYS[1], ARGV[1], 'NX') "
                                    "return redis.call('GET', KEYS[1])";

int cluster_shared(struct cluster *c, const char *name, const char *mine, char *out,
                   size_t cap)
{
    char err[256], key[96];
    int rc = -1;
    redisContext *rd = rconn_open(&c->addr, c->opt.timeout_ms, err, sizeof err);
    if (!rd) goto done;
    snprintf(key, sizeof key, SHARED_PREFIX "%s", name);
    const char *argv[] = {"EVAL", shared_script, "1", key, mine};
    redisReply *r = rconn_call(rd, 5, argv, NULL);
    if (r && r->type == REDIS_REPLY_STRING && r->len < cap) {
        memcpy(out, r->str, r->len);
        out[r->len] = 0;
        rc = 0;
    } else
        snprintf(err, sizeof err, "%s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str
                 : r                               ? "unexpected reply"
                                                   : rd->errstr);
    if (r) freeReplyObject(r);
    redisFree(rd);
done:
    if (rc)
        plog(LOG_WARN, "cluster-shared",
             "name=%s reason=\"%s\" (this node's own is used)", name, err);
    return rc;
}
