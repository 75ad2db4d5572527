/* search.h -- the search request (protocol 1.1): the user's text made an
 * FTS5 expression (searchq.h), the rooms it may look in, and the answer.
 * The search itself runs on the search thread (db_search.h). Event-loop
 * thread only.
 */
#ifndef PARLEY_SEARCH_H
#define PARLEY_SEARCH_H

#include "roomreq.h"

struct session;

/* Checks s's search (q has words, the room is one s may read) and prepares
 * s->dbr with its scope. Returns ROOMREQ_READ, or ROOMREQ_ANSWERED after
 * answering the refusal. */
enum roomreq_kind search_prepare(struct session *s);
/* Answers a finished search from s->dbr. */
void search_finish(struct session *s);
/* Frees what search_prepare made for s->dbr (idempotent). */
void search_abandon(struct session *s);

#endif
