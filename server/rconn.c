/* rconn.c -- a blocking Redis connection (rconn.h). */
#include "rconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int parse_num(const char *s, size_t n, long max, long *out)
{
    char tmp[16], *end;
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    long v = strtol(tmp, &end, 10);
    if (*end || v < 0 || v > max) return -1;
    *out = v;
    return 0;
}

int rconn_parse(const char *url, struct rconn_addr *a, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    const char *p = url, *host, *hend, *q;
    long port = 6379, dbnum = 0;
    if (strncmp(p, scheme, sizeof scheme - 1)) goto bad;
    p += sizeof scheme - 1;
    a->user[0] = a->pass[0] = 0;
    const char *at = strchr(p, '@'),
               *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (at) { /* user:password@ or :password@ */
        size_t ul = colon ? (size_t)(colon - p) : 0,
               pl = colon ? (size_t)(at - colon - 1) : 0;
        if (!colon || ul >= sizeof a->user || pl == 0 || pl >= sizeof a->pass) goto bad;
        memcpy(a->user, p, ul), a->user[ul] = 0;
        memcpy(a->pass, colon + 1, pl), a->pass[pl] = 0;
        p = at + 1;
    }
    if (*p == '[') { /* [v6]:port */
        host = p + 1;
        if (!(hend = strchr(host, ']'))) goto bad;
        q = hend + 1;
    } else {
        host = p;
        hend = host + strcspn(host, ":/");
        q = hend;
    }
    if (hend == host || (size_t)(hend - host) >= sizeof a->host) goto bad;
    if (*q == ':') {
        size_t n = strcspn(q + 1, "/");
        if (parse_num(q + 1, n, 65535, &port) || port == 0) goto bad;
        q += 1 + n;
    }
    if (*q == '/' && q[1] && parse_num(q + 1, strlen(q + 1), 1 << 20, &dbnum)) goto bad;
    if (*q && strcmp(q, "/") && *q != '/') goto bad;
    memcpy(a->host, host, (size_t)(hend - host));
    a->host[hend - host] = 0;
    a->port = (int)port;
    a->dbnum = (int)dbnum;
    return 0;
bad:
    snprintf(err, errlen,
             "invalid --redis URL (want redis://[[USER]:PASSWORD@]HOST:PORT[/DB])");
    return -1;
}

redisReply *rconn_call(redisContext *c, int argc, const char **argv, const size_t *len)
{
    return redisCommandArgv(c, argc, argv, len);
}

redisContext *rconn_open(const struct rconn_addr *a, int timeout_ms, char *err,
                         size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "%s", c ? c->errstr : "out of memory");
        goto err;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, errlen, "cannot set the timeout");
        goto err;
    }
    if (a->pass[0]) {
        const char *auth[] = {"AUTH", a->user, a->pass};
        int n = a->user[0] ? 3 : 2;
        if (n == 2) auth[1] = a->pass;
        redisReply *ar = rconn_call(c, n, auth, NULL);
        int ok = ar && ar->type == REDIS_REPLY_STATUS;
        snprintf(err, errlen, "AUTH: %s", ar && ar->str ? ar->str : c->errstr);
        if (ar) freeReplyObject(ar);
        if (!ok) goto err;
    }
    char num[16];
    snprintf(num, sizeof num, "%d", a->dbnum);
    const char *argv[] = {"SELECT", num};
    redisReply *r = a->dbnum ? rconn_call(c, 2, argv, NULL) : NULL;
    if (a->dbnum && (!r || r->type == REDIS_REPLY_ERROR)) {
        snprintf(err, errlen, "SELECT %d: %s", a->dbnum, r ? r->str : c->errstr);
        if (r) freeReplyObject(r);
        goto err;
    }
    if (r) freeReplyObject(r);
    return c;
err:
    if (c) redisFree(c);
    return NULL;
}
