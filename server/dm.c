/* dm.c -- direct messages (dm.h). */
#include "dm.h"

#include <string.h>

#include "crypto.h"
#include "jwt.h"
#include "member.h"
#include "online.h"
#include "session_impl.h"
#include "wire.h"

void dm_room_name(const char *a, const char *b, char out[PROTO_DM_ROOM_LEN + 1])
{
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b, b = t;
    }
    /* NUL separates the two ids: no id contains one, so no two pairs
     * hash the same input. */
    size_t na = strlen(a) + 1, nb = strlen(b);
    char in[2 * PROTO_MAX_USER + 2];
    unsigned char h[CRYPTO_HMAC_LEN];
    if (na + nb > sizeof in) nb = sizeof in - na; /* ids are checked shorter */
    memcpy(in, a, na);
    memcpy(in + na, b, nb);
    crypto_sha256(in, na + nb, h);
    memcpy(out, PROTO_DM_PREFIX, 3);
    for (int i = 0; i < 16; i++) {
        out[3 + 2 * i] = "0123456789abcdef"[h[i] >> 4];
        out[4 + 2 * i] = "0123456789abcdef"[h[i] & 15];
    }
    out[PROTO_DM_ROOM_LEN] = 0;
}

/* Why s may not start a DM, or NULL. */
static const char *refusal(struct session *s)
{
    if (s->claims && s->claims->no_dm) return "your token does not allow direct messages";
    if (s->guest && cfg(s)->no_guest_dms)
        return "direct messages need a signed-in user on this server";
    return NULL;
}

/* Sets s->req.room to the pair's room name, kept in the request's JSON so
 * it lives exactly as long as the request. Returns 0, or -1 out of memory. */
static int name_room(struct session *s)
{
    char name[PROTO_DM_ROOM_LEN + 1];
    dm_room_name(s->user_id, s->req.user, name);
    cJSON *v = cJSON_CreateString(name);
    if (!v || !cJSON_AddItemToObject(s->req.json, "", v)) {
        cJSON_Delete(v);
        return -1;
    }
    s->req.room = v->valuestring;
    return 0;
}

enum roomreq_kind dm_prepare(struct session *s)
{
    struct proto_req *q = &s->req;
    const char *no = refusal(s);
    if (no) return wire_error(s, E_FORBIDDEN, no), ROOMREQ_ANSWERED;
    if (!strcmp(q->user, s->user_id))
        return wire_error(s, E_BAD_REQUEST, "a direct message needs another user"),
               ROOMREQ_ANSWERED;
    if (name_room(s)) return wire_error(s, E_INTERNAL, "out of memory"), ROOMREQ_ANSWERED;
    if (!roomreq_join_ok(s)) return ROOMREQ_ANSWERED;
    struct db_req *r = &s->dbr;
    roomreq_reset_dbr(s);
    r->op = DB_DM;
    r->room = q->room;
    r->user_id = s->user_id;
    r->peer_id = q->user;
    r->no_guest_dms = cfg(s)->no_guest_dms;
    return ROOMREQ_DM;
}

int dm_made(struct session *s)
{
    enum db_status st = s->dbr.status;
    if (st == DB_OK) return roomreq_join_read(s) == 0;
    if (st == DB_NOT_FOUND)
        wire_error(s, E_NOT_FOUND, "no such user");
    else if (st == DB_FORBIDDEN)
        wire_error(s, E_FORBIDDEN, "direct messages with guests are off on this server");
    else
        wire_error(s, st == DB_BUSY ? E_OVERLOADED : E_INTERNAL,
                   st == DB_BUSY ? "the server is busy; retry later" : "database error");
    return 0;
}

void dm_push(struct server *srv, const struct buf *pair, struct buf *b,
             struct session *except)
{
    const char *a = (const char *)BUF_PAYLOAD(pair), *u = a + strlen(a) + 1;
    online_push(srv, a, b, except);
    if (strcmp(a, u)) online_push(srv, u, b, except);
}
