/* api_rooms.h -- GET /api/rooms's answer: the database's rooms (every room
 * with a message, and its newest id or rev) merged with the rooms in
 * memory (their members on every loop). Any event-loop thread: it takes
 * the rooms lock (hub.h) while it reads the member counts.
 */
#ifndef PARLEY_API_ROOMS_H
#define PARLEY_API_ROOMS_H

#include "buf.h"

struct hub;

/* `{"rooms":[{"name","members","last_id"[,"dm":true]}…]}`: every room of
 * `rows` (db.h: all_rooms, lines "name last_id\n" sorted by name; NULL:
 * none) with its members now, then every room in memory with members and
 * no message yet (last_id 0). A new buf, or NULL when memory ran out. */
struct buf *api_rooms_json(struct hub *h, const struct buf *rows);

#endif
