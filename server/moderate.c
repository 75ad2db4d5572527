/* moderate.c -- moderation over the WebSocket (moderate.h). */
#include "moderate.h"

#include <string.h>

#include "clock.h"
#include "db.h"
#include "hub.h"
#include "jwt.h"
#include "log.h"
#include "member.h"
#include "online.h"
#include "ranks.h"
#include "sanction.h"
#include "send.h"
#include "session_impl.h"
#include "wire.h"

static const enum db_mod_action actions[] = {
    [REQ_KICK] = DB_MOD_KICK,     [REQ_MUTE] = DB_MOD_MUTE,   [REQ_BAN] = DB_MOD_BAN,
    [REQ_UNMUTE] = DB_MOD_UNMUTE, [REQ_UNBAN] = DB_MOD_UNBAN,
};

/* The refusal of a request by its role or room, or NULL when allowed. */
static const char *refusal(const struct session *s, enum proto_err *e)
{
    const struct proto_req *q = &s->req;
    *e = E_FORBIDDEN;
    if (q->room && proto_room_is_dm(q->room)) {
        *e = E_BAD_REQUEST;
        return "kick, mute and room bans do not apply to direct messages";
    }
    if (!q->room)
        return s->claims && s->claims->role == JWT_ROLE_ADMIN
                   ? NULL
                   : "only an admin bans server-wide";
    return jwt_moderates(s->claims, q->room) ? NULL : "only a moderator of this room may";
}

/* sanction: "mute" or "ban", for the client's logic (the message is for
 * people). */
static void refuse(struct session *s, const char *why, const char *sanction,
                   int64_t until)
{
    wire_reply(s, proto_error_sanction(why, sanction, until, s->req.ref));
}

/* A moderator banned from the room, or server-wide (closed at the ban,
 * but a request read before it may follow), moderates nothing there: 1
 * after answering forbidden with the sanction. A mute does not stop it: a
 * mute silences, the muted still holds the room. */
static int banned_moderator(struct session *s)
{
    struct sanctions *t = s->srv->hub->sanctions;
    const char *room = s->req.room, *why = NULL;
    int64_t until, now = wall_ms();
    if (room && sanctions_active(t, s->user_id, room, SANCTION_BAN, now, &until))
        why = "you are banned from this room: you may not moderate it";
    else if (sanctions_active(t, s->user_id, "", SANCTION_BAN, now, &until))
        why = "you are banned from this server";
    if (why) refuse(s, why, "ban", until);
    return why != NULL;
}

enum roomreq_kind moderate_prepare(struct session *s)
{
    const struct proto_req *q = &s->req;
    enum proto_err e;
    const char *why = refusal(s, &e);
    if (why) return wire_error(s, e, why), ROOMREQ_ANSWERED;
    if (banned_moderator(s)) return ROOMREQ_ANSWERED;
    struct db_req *r = &s->dbr;
    roomreq_reset_dbr(s);
    r->op = DB_MOD;
    r->mod_action = actions[q->type];
    r->room = q->room; /* NULL: server-wide */
    r->user_name = s->user_name;
    r->peer_id = q->user;
    r->text = q->reason;
    r->msg_id = q->minutes > 0 ? wall_ms() + q->minutes * 60000 : 0;
    r->role = s->claims->role; /* refusal() let only a role through */
    /* Every loop's open connections count; in a cluster only the role
     * stored at the target's last welcome (replicated with the log), so
     * every node decides alike (docs/cluster.md). */
    r->target_role =
        s->srv->hub->cluster ? 0 : ranks_highest(s->srv->hub->ranks, q->user);
    return ROOMREQ_MOD;
}

struct effect {
    const char *room; /* "": server-wide */
    int action;
    struct buf *frame;
};

static void affect(struct session *s, void *arg)
{
    const struct effect *e = arg;
    if (!e->room[0]) {
        wire_close(s, 1008, "banned", 0);
        return;
    }
    struct membership *m = member_find(s, e->room);
    if (!m || !m->joined) return;
    wire_push(s, e->frame);
    member_leave(s, m); /* the members get presence leave */
}

static void apply(struct server *srv, const char *user, const struct effect *e)
{
    if (e->action == DB_MOD_KICK || e->action == DB_MOD_BAN)
        online_each(srv, user, affect, (void *)e);
}

void moderate_apply(struct server *srv, const struct db_req *r)
{
    const char *user = (const char *)BUF_PAYLOAD(r->pair);
    struct effect e = {user + strlen(user) + 1, r->mod_action, r->frame};
    apply(srv, user, &e);
}

int moderate_commit(struct server *srv, const struct db_req *r)
{
    sanctions_follow(srv->hub->sanctions, r);
    int removes = r->mod_action == DB_MOD_KICK || r->mod_action == DB_MOD_BAN;
    struct effect e = {r->room ? r->room : "", r->mod_action, NULL};
    if (!removes) return 0;
    struct buf *w = buf_pair(r->peer_id, e.room); /* who, for the other loops */
    if (!w || (r->room && !(e.frame = proto_removed(r->room, r->text)))) {
        buf_unref(w);
        plog(LOG_ERROR, "effect-lost", "user=%s reason=\"out of memory\"", r->peer_id);
        return -1;
    }
    hub_post_effect(srv->hub, srv->index, r->mod_action, w, e.frame);
    apply(srv, r->peer_id, &e);
    buf_unref(w);
    buf_unref(e.frame);
    return 0;
}

void moderate_finish(struct session *s)
{
    struct db_req *r = &s->dbr;
    if (r->status == DB_FORBIDDEN) /* the hierarchy (db.h: role) */
        return wire_error(s, E_FORBIDDEN,
                          !strcmp(s->req.user, s->user_id) ? "you may not act on yourself"
                          : r->role == JWT_ROLE_ADMIN
                              ? "an admin may not act on another admin"
                              : "a moderator may not act on a moderator or an admin");
    if (r->status != DB_OK) return send_failed(s, r, s->req.ref);
    if (moderate_commit(s->srv, r)) return wire_error(s, E_INTERNAL, "out of memory");
    if (!s->close_code) wire_reply(s, proto_ok(s->req.ref));
}

int moderate_allows(struct session *s, const char *room)
{
    struct sanctions *t = s->srv->hub->sanctions;
    enum proto_type k = s->req.type;
    int64_t until, now = wall_ms();
    if (!room || k == REQ_LEAVE || proto_is_moderation(k)) return 1;
    if (sanctions_active(t, s->user_id, room, SANCTION_BAN, now, &until))
        return refuse(s, "you are banned from this room", "ban", until), 0;
    int speaks = k == REQ_SEND || k == REQ_EDIT || k == REQ_TYPING;
    if (speaks && sanctions_active(t, s->user_id, room, SANCTION_MUTE, now, &until))
        return refuse(s, "you are muted in this room", "mute", until), 0;
    return 1;
}

int moderate_banned(struct server *srv, const char *user_id, int64_t *until)
{
    return sanctions_active(srv->hub->sanctions, user_id, "", SANCTION_BAN, wall_ms(),
                            until);
}
