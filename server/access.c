/* access.c -- which rooms a session may use (access.h). */
#include "access.h"

#include "jwt.h"
#include "session_impl.h"

int access_room_allowed(const struct session *s, const char *room, const char **why)
{
    const char *no;
    if (proto_room_is_dm(room)) return 1; /* the database checks the pair (dm.h) */
    if (s->guest) {
        if (config_guest_room(s->srv->cfg, room)) return 1;
        no = "guests may not use this room";
    } else {
        if (s->claims && jwt_allows_room(s->claims, room)) return 1;
        no = "your token does not allow this room";
    }
    if (why) *why = no;
    return 0;
}
