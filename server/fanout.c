/* fanout.c -- a frame to every member of a room, on every loop. */
#include "fanout.h"

#include "db.h"
#include "dm.h"
#include "hub.h"
#include "room.h"
#include "session_impl.h"
#include "wire.h"

void fanout_local(struct server *srv, struct room *r, struct buf *b,
                  struct session *except)
{
    const struct room_part *p = &r->part[srv->index];
    for (uint32_t i = 0; i < p->n; i++)
        if (p->members[i] != except) wire_push(p->members[i], b);
}

void fanout_room(struct session *s, struct room *r, struct buf *b)
{
    if (!b) return;
    fanout_local(s->srv, r, b, s);
    hub_post(s->srv->hub, s->srv->index, r, b);
    buf_unref(b);
}

void fanout_stored(struct server *srv, const struct db_req *r, struct session *except)
{
    if (!r->frame) return;
    if (r->pair) /* a DM: its members are connections of its two users */
        dm_push(srv, r->pair, r->frame, except);
    else if (r->dest)
        fanout_local(srv, r->dest, r->frame, except);
}
