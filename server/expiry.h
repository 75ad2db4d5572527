/* expiry.h -- a token is valid for the connection's life only until its
 * `exp`: each loop keeps its token sessions in a min-heap by exp, and the
 * tick closes those whose exp has passed with `unauthorized` and 1008
 * "token expired". O(log n) per hello or refresh, O(1) per tick when none
 * is due; guests are never in it. Event-loop thread only.
 */
#ifndef PARLEY_EXPIRY_H
#define PARLEY_EXPIRY_H

#include <stdint.h>

struct server;
struct session;

/* Puts s in its loop's heap keyed by s->claims->exp (Unix seconds), or
 * moves it there after its claims changed. Returns 0, or -1 when memory
 * ran out (s not in). s->claims must stay while s is in: take it out
 * (expiry_remove) before freeing them. */
int expiry_set(struct session *s);
/* Takes s out of the heap (CLOSED); nothing when it is not in. */
void expiry_remove(struct session *s);
/* From the tick: closes every session whose exp <= now (Unix seconds). */
void expiry_sweep(struct server *srv, int64_t now);
/* Frees the heap (server_destroy, after every session closed). */
void expiry_free(struct server *srv);

#endif
