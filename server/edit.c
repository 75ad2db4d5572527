/* edit.c -- edits and deletes of messages (protocol 1.1). */
#include "edit.h"

#include "fanout.h"
#include "jwt.h"
#include "send.h"
#include "session_impl.h"
#include "wire.h"

void edit_prepare(struct session *s, struct db_req *r)
{
    const struct proto_req *q = &s->req;
    r->op = q->type == REQ_EDIT ? DB_EDIT : DB_DELETE;
    r->msg_id = q->id;
    r->client_id = NULL;
    /* A moderator of this room (not of a DM: there only an admin) deletes
     * anyone's message; an admin also in a DM of others. */
    r->any_author = q->type == REQ_DELETE && jwt_moderates(s->claims, q->room);
    r->admin = r->any_author && s->claims->role == JWT_ROLE_ADMIN;
}

/* The error for a change the database refused or could not make. */
static void refused(struct session *s, const struct db_req *r, const char *ref)
{
    if (r->status == DB_NOT_FOUND)
        wire_error_ref(s, E_NOT_FOUND, "no such message in this room (or it was deleted)",
                       ref);
    else if (r->sanctioned ||
             (r->status == DB_FORBIDDEN && !r->pair && proto_room_is_dm(r->room)))
        send_failed(s, r, ref); /* muted or banned; or not one of the DM's pair */
    else if (r->status == DB_FORBIDDEN)
        wire_error_ref(s, E_FORBIDDEN,
                       r->op == DB_EDIT ? "only the author may edit a message"
                                        : "only the author or a moderator may delete it",
                       ref);
    else
        send_failed(s, r, ref);
}

void edit_on_done(struct server *srv, struct session *s, struct db_req *r,
                  const char *ref)
{
    int ok = r->status == DB_OK;
    /* Everyone else here gets the shared frame; the requester its own. */
    if (ok) fanout_stored(srv, r, s);
    if (s->closed) return;
    if (!ok) return refused(s, r, ref);
    wire_reply(
        s, r->op == DB_EDIT
               ? proto_edited(r->room, r->msg_id, r->id, r->text, r->text_len, r->ts, ref)
               : proto_deleted(r->room, r->msg_id, r->id, r->user_id, r->user_name, ref));
}
