/* sanction.h -- the mutes and bans in force, in memory, for every event
 * loop: what the send, join and hello paths check without asking the
 * database. The database (schema 007, `sanctions`) keeps them across
 * restarts; the registry is filled from it at start and changed once each
 * moderation request is committed.
 *
 * Thread-safe: one mutex guards the table. Checks take it briefly; they
 * run per request, never per delivered message.
 */
#ifndef PARLEY_SANCTION_H
#define PARLEY_SANCTION_H

#include <stdint.h>

enum sanction_kind { SANCTION_MUTE, SANCTION_BAN };

struct sanctions;

struct sanctions *sanctions_new(void);
void sanctions_free(struct sanctions *t);
/* Puts (user, room, kind) in force until `until` (Unix ms; 0: until
 * lifted), replacing what was there. room "" is server-wide (bans only).
 * Returns 0, or -1 when out of memory (the table is unchanged). */
int sanctions_set(struct sanctions *t, const char *user, const char *room,
                  enum sanction_kind kind, int64_t until);
/* Lifts (user, room, kind); nothing when it is not there. */
void sanctions_lift(struct sanctions *t, const char *user, const char *room,
                    enum sanction_kind kind);
/* Whether (user, room, kind) is in force at now_ms; a room ban also
 * answers for a server-wide one. Sets *until (0: until lifted). */
struct db_req;
/* Follows a committed moderation action (a DB_MOD request: mute or ban
 * set, unmute or unban lifted, kick nothing). Out of memory it logs: the
 * action is stored and holds after a restart. Any thread. */
void sanctions_follow(struct sanctions *t, const struct db_req *r);
int sanctions_active(struct sanctions *t, const char *user, const char *room,
                     enum sanction_kind kind, int64_t now_ms, int64_t *until);
/* Copies into rooms the names of the rooms (never "") where user is
 * banned at now_ms, up to max; returns how many. */
int sanctions_banned_rooms(struct sanctions *t, const char *user, int64_t now_ms,
                           char (*rooms)[65], int max); /* [PROTO_MAX_ROOM + 1] */

#endif
