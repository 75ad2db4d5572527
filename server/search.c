/* search.c -- the search request (search.h). */
#include "search.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "clock.h"
#include "db_search.h"
#include "hub.h"
#include "jwt.h"
#include "sanction.h"
#include "searchq.h"
#include "session_impl.h"
#include "wire.h"

/* Rooms a user is banned from that a search of all rooms leaves out, at
 * most: past them, it is refused (forbidden; a search of one room works). */
#define SEARCH_MAX_BANNED 64

/* The scope and its strings in one block, so the search thread never
 * reads the session's claims (an `auth` refresh may replace them while
 * the search runs). */
struct scope_block {
    struct db_search_scope sc;
    const char *ptrs[]; /* names, then prefixes; the strings follow */
};

/* Copies n strings after the pointers; returns where the copies end. */
static char *copy_all(const char **dst, char *at, char *const *src, int n)
{
    for (int i = 0; i < n; i++) {
        size_t k = strlen(src[i]) + 1;
        dst[i] = memcpy(at, src[i], k);
        at += k;
    }
    return at;
}

/* Makes the scope of s's search: its room alone, or every room s may read
 * (a token's rooms claim, --guest-rooms), with the MATCH text. Returns
 * NULL out of memory, or with *terms 0 when q has no words. */
static struct scope_block *make_scope(struct session *s, int *terms)
{
    const struct config *c = cfg(s);
    const struct jwt_claims *cl = s->claims;
    int guest = s->guest, all = guest ? !c->guest_rooms : !cl || cl->all_rooms;
    int nstr = s->req.room || all ? 0 : guest ? c->nguest_rooms : cl->nrooms;
    char *const *src = nstr ? (guest ? c->guest_room : cl->rooms) : NULL;
    /* A room where the user is banned is not searched (one named in the
     * request was refused before). */
    char banned[SEARCH_MAX_BANNED + 1][PROTO_MAX_ROOM + 1];
    int nb = s->req.room
                 ? 0
                 : sanctions_banned_rooms(s->srv->hub->sanctions, s->user_id, wall_ms(),
                                          banned, SEARCH_MAX_BANNED + 1);
    if (nb > SEARCH_MAX_BANNED) return *terms = -2, NULL;
    size_t qlen = strlen(s->req.q), bytes = SEARCHQ_OUT_MAX(qlen);
    for (int i = 0; i < nstr; i++)
        bytes += strlen(src[i]) + 1;
    bytes += (size_t)nb * sizeof banned[0];
    struct scope_block *b =
        malloc(sizeof(*b) + (size_t)(nstr + nb) * sizeof(char *) + bytes);
    if (!b) return NULL;
    char *match = (char *)(b->ptrs + nstr + nb);
    *terms = searchq_build(s->req.q, qlen, match, SEARCHQ_OUT_MAX(qlen));
    memset(&b->sc, 0, sizeof b->sc);
    b->sc.match = match;
    b->sc.all_rooms = all;
    char *at = match + strlen(match) + 1;
    for (int i = 0; i < nb; i++) {
        b->ptrs[nstr + i] = memcpy(at, banned[i], sizeof banned[i]);
        at += sizeof banned[i];
    }
    b->sc.nexcluded = nb;
    b->sc.excluded = b->ptrs + nstr;
    if (!guest) { /* a token's rooms: names */
        copy_all(b->ptrs, at, src, nstr);
        b->sc.nnames = nstr;
        b->sc.names = b->ptrs;
        return b;
    }
    for (int i = 0; i < nstr; i++) { /* --guest-rooms: names first, then prefixes */
        int k = c->guest_prefix[i] ? nstr - 1 - b->sc.nprefixes++ : b->sc.nnames++;
        size_t n = strlen(src[i]) + 1;
        b->ptrs[k] = memcpy(at, src[i], n);
        at += n;
    }
    b->sc.names = b->ptrs;
    b->sc.prefixes = b->ptrs + b->sc.nnames;
    return b;
}

enum roomreq_kind search_prepare(struct session *s)
{
    const char *why;
    int terms = 0;
    if (s->req.room && !access_room_allowed(s, s->req.room, &why))
        return wire_error(s, E_FORBIDDEN, why), ROOMREQ_ANSWERED;
    if (!roomreq_read_budget(s)) return ROOMREQ_ANSWERED;
    struct scope_block *b = make_scope(s, &terms);
    if (!b && terms == -2) { /* the bans' own ends differ: no until */
        wire_reply(s, proto_error_sanction("banned from too many rooms: name a room",
                                           "ban", 0, s->req.ref));
        return ROOMREQ_ANSWERED;
    }
    if (!b) return wire_error(s, E_INTERNAL, "out of memory"), ROOMREQ_ANSWERED;
    if (terms <= 0) {
        free(b);
        wire_error(s, E_BAD_REQUEST, "q has no words to search for");
        return ROOMREQ_ANSWERED;
    }
    struct db_req *r = &s->dbr;
    roomreq_reset_dbr(s);
    r->op = DB_SEARCH;
    r->room = s->req.room;
    r->before = s->req.before;
    r->limit = s->req.limit;
    r->scope = &b->sc; /* the block starts with it: search_abandon frees it */
    return ROOMREQ_READ;
}

void search_finish(struct session *s)
{
    const struct db_req *r = &s->dbr;
    struct buf *b = buf_new(96 + (r->rows ? r->rows->len : 0));
    buf_puts(&b, "{\"type\":\"search\",\"q\":");
    buf_put_jstrz(&b, s->req.q);
    if (s->req.room) {
        buf_puts(&b, ",\"room\":\"");
        buf_puts(&b, s->req.room);
        buf_put(&b, "\"", 1);
    }
    buf_puts(&b, ",\"messages\":[");
    if (r->rows) buf_put(&b, BUF_PAYLOAD(r->rows), r->rows->len);
    buf_puts(&b, r->more ? "],\"has_more\":true" : "],\"has_more\":false");
    if (b) roomreq_read_spent(s, b->len);
    wire_reply(s, proto_msg_end(b, s->req.ref));
}

void search_abandon(struct session *s)
{
    if (s->dbr.op != DB_SEARCH) return;
    free((void *)s->dbr.scope);
    s->dbr.scope = NULL;
}
