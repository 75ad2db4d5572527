/* roomreq.h -- join, leave, history, typing and rooms; membership and
 * presence; delivery of stored messages to a loop's members. Event-loop
 * thread only.
 */
#ifndef PARLEY_ROOMREQ_H
#define PARLEY_ROOMREQ_H

#include <stddef.h>

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
/* What a microsecond of the search thread costs a connection's read
 * budget past the first 10 ms of a search (which cost only what they
 * answer): one that runs to its 2 s limit costs 32 MiB, half a minute of
 * that connection's reads. */
#define ROOMREQ_SEARCH_FREE_US 10000
#define ROOMREQ_SEARCH_BYTES_PER_US 16

enum roomreq_kind {
    ROOMREQ_ANSWERED = -1, /* refused: the error is queued */
    ROOMREQ_LOCAL = 0,     /* not a database request: call roomreq_dispatch */
    ROOMREQ_READ = 1,      /* a read is ready in s->dbr: submit, then finish */
    ROOMREQ_SEND = 2,      /* a valid send: hand it to send_submit */
    /* a dm: s->dbr makes the pair's room; submit, then dm_made, then (when
     * it returns 1) submit the join read it prepared and finish */
    ROOMREQ_DM = 3,
    /* a moderation request: s->dbr (DB_MOD) stores it; submit, then
     * moderate_finish */
    ROOMREQ_MOD = 4,
};

/* Checks s's current request and says what it needs. */
enum roomreq_kind roomreq_prepare(struct session *s);
/* Answers a finished read (join, dm, history, rooms, a DM check) from
 * s->dbr. */
void roomreq_finish(struct session *s);
/* Answers leave, typing, rooms and ping. */
void roomreq_dispatch(struct session *s);
/* Lets go of what a read holds (its rows, the room a join holds): the
 * read's completion found the connection gone. roomreq_finish calls it. */
void roomreq_abandon(struct session *s);

/* Whether s may start another read now: its budget is not in debt
 * (ROOMREQ_READ_RATE), and what it has not taken yet of earlier replies is
 * under half its outbound bound, so replies asked for in one burst are
 * answered rate_limited before they could overflow the queue (1013).
 * Answers rate_limited when not. */
int roomreq_read_budget(struct session *s);
/* Charges a reply of `bytes` to s's read budget (a minimum per read). */
void roomreq_read_spent(struct session *s, size_t bytes);
/* Whether s may join s->req.room (the rooms-per-connection limit and the
 * read budget); answers the refusal when not. */
int roomreq_join_ok(struct session *s);
/* Holds s->req.room (s->req_room, created when new) and prepares its join
 * read in s->dbr. Returns 0, or -1 after answering out of memory. */
int roomreq_join_read(struct session *s);
/* Empties s->dbr (dropping what a finished read left) for a new request
 * of s. */
void roomreq_reset_dbr(struct session *s);

#endif
