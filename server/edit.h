/* edit.h -- the edit and delete requests (protocol 1.1): a change to a
 * message takes the next id from the one sequence (db.h), is committed
 * through the send window (send.h), and reaches every member as `edited`
 * or `deleted` through the same path as messages. Event-loop thread only.
 */
#ifndef PARLEY_EDIT_H
#define PARLEY_EDIT_H

struct db_req;
struct server;
struct session;

/* Fills r (a send slot's request) for s's current edit or delete. */
void edit_prepare(struct session *s, struct db_req *r);
/* An edit's or a delete's completion on the requester's loop: the other
 * members of this loop get the change (the router posted it to the other
 * loops), the requester gets it with its ref, or the error. */
void edit_on_done(struct server *srv, struct session *s, struct db_req *r,
                  const char *ref);

#endif
