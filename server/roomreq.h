/* roomreq.h -- join, leave, history, typing and rooms; membership and
 * presence; delivery of stored messages to a loop's members. Event-loop
 * thread only.
 */
#ifndef PARLEY_ROOMREQ_H
#define PARLEY_ROOMREQ_H

struct db_req;
struct room;
struct server;
struct session;

enum roomreq_kind {
    ROOMREQ_ANSWERED = -1, /* refused: the error is queued */
    ROOMREQ_LOCAL = 0,     /* not a database request: call roomreq_dispatch */
    ROOMREQ_READ = 1,      /* a read is ready in s->dbr: submit, then finish */
    ROOMREQ_SEND = 2,      /* a valid send: hand it to send_submit */
};

/* Checks s's current request and says what it needs. */
enum roomreq_kind roomreq_prepare(struct session *s);
/* Answers a finished read (join or history) from s->dbr. */
void roomreq_finish(struct session *s);
/* Answers leave, typing, rooms and ping. */
void roomreq_dispatch(struct session *s);
/* The connection is gone: leaves every room (presence to the others unless
 * the server is stopping). */
void roomreq_leave_all(struct session *s);
/* Queues a stored message (r->frame) for this loop's members of r->dest. */
void roomreq_deliver(struct server *srv, struct db_req *r);

#endif
