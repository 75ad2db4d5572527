/* readmark.c -- the read request (readmark.h). */
#include "readmark.h"

#include "fanout.h"
#include "send.h"
#include "session_impl.h"
#include "wire.h"

void readmark_prepare(struct session *s, struct db_req *r)
{
    r->op = DB_MARK;
    r->msg_id = s->req.id;
    r->client_id = NULL;
    r->text = NULL;
    r->text_len = 0;
}

void readmark_on_done(struct server *srv, struct session *s, struct db_req *r,
                      const char *ref)
{
    if (r->status == DB_OK && !r->duplicate)
        fanout_stored(srv, r, s); /* the user's other connections here */
    if (s->closed) return;
    if (r->status != DB_OK) return send_failed(s, r, ref);
    wire_reply(s, proto_read(r->room, r->id, ref));
}
