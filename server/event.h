/* event.h -- a change as an entry of the cluster's log (cluster.h): every
 * write a node makes (a send, an edit, a delete, a read marker, a user, a DM
 * room, a moderation action) becomes one event, with an id (its `seq`)
 * from the log's one sequence, and every node applies the events in seq
 * order through the same code that runs the write on a single node
 * (db_write.c). So a node's SQLite is a replica of the log, and what a
 * write answers (stored, forbidden, not found, a duplicate) is decided
 * the same way on every node.
 *
 * An event travels as the field/value pairs of one Redis stream entry:
 * op, o (the origin: node and token), ts (added by the log's script:
 * Redis's clock, so every node stores the same), and the request's inputs
 * that are set (room, user, name, cid, text, msg, peer, flags). Names and
 * values are strings; numbers are decimal.
 */
#ifndef PARLEY_EVENT_H
#define PARLEY_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define EVENT_MAX_FIELDS 20 /* names and values */

/* A write on its way to the log: the fields of its entry, copied out of the
 * request, so the writer thread never touches the request. */
struct event_out {
    struct event_out *next;
    uint64_t token;      /* the origin's request number (cluster.c's pending) */
    int64_t deadline_ms; /* wall clock: answered overloaded past it */
    const char *dedup;   /* a send's dedup key (Redis), or NULL */
    int nf;
    const char *f[EVENT_MAX_FIELDS];
    size_t flen[EVENT_MAX_FIELDS];
    char data[]; /* the strings f[] and dedup point to */
};

/* An event read from the log, as a request the database worker applies.
 * req is first: the worker gets the event back from &req (req.logged). */
struct event {
    struct db_req req;
    int64_t seq;     /* its id in the log (the stream entry "<seq>-0") */
    int64_t ts;      /* Unix ms from the log's script */
    uint64_t token;  /* the origin's request number */
    char origin[24]; /* the origin node's id */
    int has_op;      /* event_decode's: the entry named its op */
    char data[];     /* the strings req points to */
};

/* Which writes go to the log: every op db__run_write runs. */
int event_op_logged(enum db_op op);

/* Copies r's inputs into a new event_out for the node `origin`, with token
 * and deadline. r is the caller's (it is only read). Returns NULL when
 * memory ran out. Free with free(). */
struct event_out *event_encode(const struct db_req *r, const char *origin, uint64_t token,
                               int64_t deadline_ms);

/* Parses one stream entry: its id string and its field/value strings
 * (n of them, names and values alternating, with lengths). Returns a new
 * event (free with event_free), or NULL when the entry is not a valid
 * event (logged by the caller) or memory ran out (*oom set). */
struct event *event_decode(const char *id, const char *const *fv, const size_t *fvlen,
                           int n, int *oom);

/* The event a request with req.logged belongs to. */
static inline struct event *event_of(struct db_req *r)
{
    return (struct event *)r;
}

/* Frees an event and the references its request holds (frame, pair). */
void event_free(struct event *e);

#endif
