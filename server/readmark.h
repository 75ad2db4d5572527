/* readmark.h -- the read request (protocol 1.1): a user's read marker in a
 * room, moved forward through the send window (a write, committed with the
 * batch), answered to the requester and echoed to every other connection
 * of the same user, on every loop, when it moved. Event-loop thread only.
 */
#ifndef PARLEY_READMARK_H
#define PARLEY_READMARK_H

struct db_req;
struct server;
struct session;

/* Fills r (a send slot's request) for s's current read. */
void readmark_prepare(struct session *s, struct db_req *r);
/* A read's completion on the requester's loop: its answer (with ref), and
 * the echo to the user's other connections here when the marker moved
 * (the router posted it to the other loops). */
void readmark_on_done(struct server *srv, struct session *s, struct db_req *r,
                      const char *ref);

#endif
