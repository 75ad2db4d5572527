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

/* The work one connection may ask of the database and the rooms table, in
 * bytes of reply per second and at once (s->read_tb): a join catching up
 * on 1000 long messages fits the burst; a client asking for megabytes again
 * and again is answered rate_limited until the refill has paid its debt. */
#define ROOMREQ_READ_RATE (1024.0 * 1024)
#define ROOMREQ_READ_BURST (4.0 * 1024 * 1024)

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
/* Lets go of what a read holds (its rows, the room a join holds): the
 * read's completion found the connection gone. roomreq_finish calls it. */
void roomreq_abandon(struct session *s);

#endif
