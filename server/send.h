/* send.h -- the send request and its window of commits in flight.
 * Event-loop thread only. */
#ifndef PARLEY_SEND_H
#define PARLEY_SEND_H

struct db_req;
struct server;
struct session;

#define SEND_WINDOW 32 /* sends one connection may have uncommitted at once */

/* Moves s's current (valid, checked) send, edit or delete into a slot and
 * submits it: s->req is emptied, s->inflight and s->refs grow by one.
 * Answers overloaded (nothing submitted) when the database queue is full. */
void send_submit(struct session *s);
/* A send's completion: delivers the stored message to this loop's members,
 * answers the sender (unless its connection is gone) and frees the slot.
 * The caller drops the reference the send held. */
void send_on_done(struct server *srv, struct db_req *r);
/* Answers, with the request's ref, a write the database could not do
 * (overloaded, internal) or refused outside a DM room's pair (forbidden). */
void send_failed(struct session *s, const struct db_req *r, const char *ref);
/* Frees the loop's pool of send slots; at exit, after every session is
 * gone. */
void send_pool_free(struct server *srv);

#endif
