/* ranks.h -- the roles of the connections open now, every loop's: how a
 * moderation request knows that its target is a moderator or an admin
 * while the target is connected (the database knows the role of its last
 * welcome, db.h: role; a user may be connected with several tokens).
 *
 * Only connections with a role are counted (a few moderators), so the
 * table stays small. Thread-safe: one mutex, taken at a welcome, a close
 * and a moderation request, never per message.
 */
#ifndef PARLEY_RANKS_H
#define PARLEY_RANKS_H

struct ranks;

struct ranks *ranks_new(void);
void ranks_free(struct ranks *t);
/* Counts a connection of `user` with `role` (jwt.h JWT_ROLE_*; none is not
 * counted). Returns 0, or -1 when out of memory (nothing counted). */
int ranks_add(struct ranks *t, const char *user, int role);
/* Uncounts what ranks_add counted. */
void ranks_remove(struct ranks *t, const char *user, int role);
/* The highest role among user's counted connections (JWT_ROLE_NONE when
 * none). */
int ranks_highest(struct ranks *t, const char *user);

#endif
