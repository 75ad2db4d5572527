/* moderate.h -- moderation over the WebSocket (protocol 1.1): kick, mute,
 * ban, unmute, unban by a moderator or an admin, and the checks that make
 * mutes and bans hold on every request. Event-loop thread only.
 *
 * A request is checked here (role, room, DM rooms), stored by the database
 * (mod_log, sanctions), and only then takes effect: the registry of the
 * mutes and bans in force (sanction.h) changes, the target's connections
 * on every loop are removed from the room (`removed`, and `presence` leave
 * to the members) or, for a server-wide ban, closed with 1008, and the
 * moderator gets `ok`.
 */
#ifndef PARLEY_MODERATE_H
#define PARLEY_MODERATE_H

#include <stdint.h>

#include "roomreq.h"

struct db_req;
struct server;
struct session;

/* Checks s's moderation request and prepares s->dbr (DB_MOD). Returns
 * ROOMREQ_MOD, or ROOMREQ_ANSWERED when refused (the error is queued). */
enum roomreq_kind moderate_prepare(struct session *s);
/* The request's completion: applies it and answers. */
void moderate_finish(struct session *s);
/* A committed DB_MOD (r; from a moderator's session or the HTTP API):
 * the registry changes and the target's connections on every loop are
 * removed or closed. Returns 0, or -1 when out of memory (the action is
 * stored: it holds after a restart; its effect on connections is lost). */
int moderate_commit(struct server *srv, const struct db_req *r);
/* A DB_MOD_EFFECT from another loop: applies it to this loop's
 * connections of the target. Frees nothing (the caller does). */
void moderate_apply(struct server *srv, const struct db_req *r);
/* Whether s may make its current request in `room` (NULL: none): a room
 * ban refuses everything in the room, a mute send, edit and typing. When
 * not, the `forbidden` (with `until` when it ends) is queued and 0 is
 * returned. */
int moderate_allows(struct session *s, const char *room);
/* Whether a welcomed-to-be user is banned server-wide: 1 with *until set
 * (0: until lifted). */
int moderate_banned(struct server *srv, const char *user_id, int64_t *until);

#endif
