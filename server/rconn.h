/* rconn.h -- one blocking connection to Redis (hiredis), for a thread of
 * its own: the address parsed from a redis:// URL, and a connection opened
 * with a deadline on every call, the database selected. Whoever opens a
 * connection owns it (redisFree). Any thread.
 */
#ifndef PARLEY_RCONN_H
#define PARLEY_RCONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

struct rconn_addr {
    char host[256];
    int port;
    int dbnum;
    char user[128], pass[256]; /* "" when absent: no AUTH */
};

/* Parses redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (PORT 6379, DB 0 by
 * default; HOST may be a [bracketed] IPv6 address). Returns 0, or -1 with
 * a reason in err (which never repeats the password). */
int rconn_parse(const char *url, struct rconn_addr *a, char *err, size_t errlen);

/* Connects within timeout_ms, sets timeout_ms as every later call's
 * deadline, authenticates when the URL has a password, and selects the
 * database. Returns the connection, or NULL with
 * the reason in err. */
redisContext *rconn_open(const struct rconn_addr *a, int timeout_ms, char *err,
                         size_t errlen);

/* Runs one command (argv, lengths) and returns its reply (freeReplyObject
 * it), or NULL when the connection failed (then it is unusable: redisFree
 * it). */
redisReply *rconn_call(redisContext *c, int argc, const char **argv, const size_t *len);

#endif
