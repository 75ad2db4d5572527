/* access.h -- the one answer to "may this session use this room": every
 * request that names a room (join, send, history) and the `rooms` listing
 * ask it, so what a guest or a token may reach is decided in one place.
 * Event-loop thread only (it reads the session); no allocation.
 */
#ifndef PARLEY_ACCESS_H
#define PARLEY_ACCESS_H

struct session;

/* Returns 1 when s may join, read and post in `room`; else 0 and, when
 * `why` is not NULL, a static reason for the `forbidden` error. Guests are
 * judged by --guest-rooms (any room without it), token users by their
 * token's rooms claim alone. */
int access_room_allowed(const struct session *s, const char *room, const char **why);

#endif
