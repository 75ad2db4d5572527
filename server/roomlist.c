/* roomlist.c -- the `rooms` listing (roomlist.h). Rooms are shared by
 * every loop: their names are copied under the rooms lock when the
 * listing is asked for, their member counts looked up again under it when
 * it is answered, and the JSON is written outside it. */
#include "roomlist.h"

#include "cluster.h"
#include "remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "hub.h"
#include "session_impl.h"
#include "wire.h"

/* The names the loop lists, handed to the database as r->rooms_in: the
 * pointer array first, the names after it, one allocation. */
struct names {
    size_t n, cap;
    const char **ptr;
    char (*name)[PROTO_MAX_ROOM + 1];
};

static void add_name(struct names *c, const struct room *r)
{
    if (c->n == c->cap || proto_room_is_dm(r->name)) return; /* DMs: from the db */
    memcpy(c->name[c->n], r->name, sizeof c->name[0]);
    c->ptr[c->n] = c->name[c->n];
    c->n++;
}

static void add_if_online(struct room *r, void *arg)
{
    if (r->nmembers) add_name(arg, r);
}

struct remote_walk {
    struct names *c;
    struct hub *h;
};

/* A room only other nodes have members in (the caller holds the rooms
 * lock: a room online here is listed already). */
static void add_remote(void *arg, const char *name)
{
    struct remote_walk *w = arg;
    struct room *r = rooms_get(&w->h->rooms, name, 0);
    if (w->c->n == w->c->cap || proto_room_is_dm(name)) return;
    /* in memory: online here, or a room the session remembers, listed */
    for (size_t i = 0; r && i < w->c->n; i++)
        if (!strcmp(w->c->ptr[i], name)) return;
    snprintf(w->c->name[w->c->n], sizeof w->c->name[0], "%s", name);
    w->c->ptr[w->c->n] = w->c->name[w->c->n];
    w->c->n++;
}

/* Copies the names of the rooms with members online and of s's remembered
 * rooms without any, DM rooms left out, and never a room s may not read.
 * Returns the block (r->rooms_in), or NULL out of memory. */
static const char **copy_names(struct session *s, int *n)
{
    struct hub *h = s->srv->hub;
    struct names c = {0};
    struct remote *rm = cluster_remote(h->cluster);
    struct remote_walk w = {&c, h};
    void *block = NULL;
    size_t nremote = rm ? remote_nrooms(rm) + 16 : 0; /* a few may come meanwhile */
    hub_lock_rooms(h);
    c.cap = h->rooms.count + s->nmem + nremote;
    block = malloc((c.cap ? c.cap : 1) * (sizeof(*c.ptr) + sizeof(*c.name)));
    if (block) {
        c.ptr = block;
        c.name = (void *)(c.ptr + c.cap);
        rooms_each(&h->rooms, add_if_online, &c);
        for (uint32_t i = 0; i < s->nmem; i++)
            if (!s->mem[i].room->nmembers) add_name(&c, s->mem[i].room);
        if (rm) remote_each_room(rm, add_remote, &w); /* lock order: rooms, remote */
    }
    hub_unlock_rooms(h);
    size_t k = 0;
    for (size_t i = 0; i < c.n; i++) /* outside the lock: never listed */
        if (access_room_allowed(s, c.ptr[i], NULL)) c.ptr[k++] = c.ptr[i];
    *n = (int)k;
    return block;
}

enum roomreq_kind roomlist_prepare(struct session *s)
{
    int n;
    if (!roomreq_read_budget(s)) return ROOMREQ_ANSWERED;
    const char **names = copy_names(s, &n);
    if (!names) return wire_error(s, E_INTERNAL, "out of memory"), ROOMREQ_ANSWERED;
    roomreq_reset_dbr(s);
    s->dbr.op = DB_READ;
    s->dbr.dms = 1;
    s->dbr.guest = s->guest;
    s->dbr.rooms_in = names;
    s->dbr.nrooms_in = n;
    return ROOMREQ_READ;
}

void roomlist_abandon(struct session *s)
{
    if (!s->dbr.dms) return;
    free((void *)s->dbr.rooms_in);
    s->dbr.rooms_in = NULL;
    s->dbr.nrooms_in = 0;
}

/* One line of db_mark_rooms: "ROOM\tLAST_ID\tREAD\tUNREAD\tPEER\n". */
struct line {
    const char *room, *peer;
    size_t peer_len;
    int64_t last_id, read, unread;
    uint32_t members;
};

/* Reads the decimal digits at *p (before end) and moves *p past them. Not
 * strtoll: the rows are not NUL-terminated. */
static int64_t number(char **p, const char *end)
{
    int64_t v = 0;
    for (; *p < end && **p >= '0' && **p <= '9'; (*p)++)
        v = v * 10 + (**p - '0');
    return v;
}

/* Splits the database's lines (the rows are this read's alone: the tabs
 * after names become NULs), then fills each room's members and newest id
 * from memory under one lock. Returns the array (malloc'd), or NULL with
 * *n 0 when there are no lines or memory ran out (*oom). */
static struct line *parse_lines(struct session *s, int *n, int *oom)
{
    struct buf *rows = s->dbr.rows;
    *n = 0, *oom = 0;
    if (!s->dbr.nrows || !rows) return NULL;
    struct line *l = calloc((size_t)s->dbr.nrows, sizeof(*l));
    if (!l) return *oom = 1, NULL;
    char *p = (char *)BUF_PAYLOAD(rows), *end = p + rows->len;
    while (p < end && *n < s->dbr.nrows) {
        char *nl = memchr(p, '\n', (size_t)(end - p)),
             *tab = memchr(p, '\t', (size_t)(end - p));
        if (!nl || !tab || tab > nl) break; /* not db_mark_rooms' format: no more */
        struct line *d = &l[(*n)++];
        d->room = p;
        *tab = 0;
        p = tab + 1;
        d->last_id = number(&p, nl);
        d->read = *p == '\t' ? (p++, number(&p, nl)) : 0;
        d->unread = *p == '\t' ? (p++, number(&p, nl)) : 0;
        if (*p == '\t') p++; /* the tab before the peer */
        d->peer = p, d->peer_len = p < nl ? (size_t)(nl - p) : 0;
        p = nl + 1;
    }
    hub_lock_rooms(s->srv->hub);
    for (int i = 0; i < *n; i++) {
        struct room *r = rooms_get(&s->srv->hub->rooms, l[i].room, 0);
        if (!r) continue;
        l[i].members = r->nmembers;
        if (r->last_id > l[i].last_id) l[i].last_id = r->last_id;
    }
    hub_unlock_rooms(s->srv->hub);
    struct remote *rm = cluster_remote(s->srv->hub->cluster);
    for (int i = 0; rm && i < *n; i++) /* the cluster's other nodes */
        l[i].members += remote_count(rm, l[i].room);
    return l;
}

static void put_line(struct buf **b, const struct line *l, int first)
{
    buf_puts(b, first ? "{\"name\":\"" : ",{\"name\":\"");
    buf_puts(b, l->room);
    buf_puts(b, "\",\"members\":");
    buf_put_i64(b, l->members);
    buf_puts(b, ",\"last_id\":");
    buf_put_i64(b, l->last_id);
    buf_puts(b, ",\"read\":");
    buf_put_i64(b, l->read);
    buf_puts(b, ",\"unread\":");
    buf_put_i64(b, l->unread);
    if (l->peer_len) {
        buf_puts(b, ",\"peer\":");
        buf_put(b, l->peer, l->peer_len);
    }
    buf_put(b, "}", 1);
}

/* Its cost counts against the read budget: with thousands of rooms online
 * the listing is large. */
void roomlist_answer(struct session *s)
{
    int n, oom, k = 0;
    struct line *l = parse_lines(s, &n, &oom);
    if (oom) return wire_error(s, E_INTERNAL, "out of memory");
    struct buf *b = buf_new(64 + (s->dbr.rows ? s->dbr.rows->len * 2 : 0));
    buf_puts(&b, "{\"type\":\"rooms\",\"rooms\":[");
    for (int i = 0; i < n; i++) /* a marker's room the token no longer allows */
        if (access_room_allowed(s, l[i].room, NULL)) put_line(&b, &l[i], !k++);
    free(l);
    buf_put(&b, "]", 1);
    /* Each listed room cost the database a few lookups: that is charged
     * too, so looping on `rooms` with a thousand rooms is paced. */
    size_t work = (size_t)n * 512; /* 1000 rooms: 0.5 MiB of the 4 MiB burst */
    if (b) roomreq_read_spent(s, b->len > work ? b->len : work);
    wire_reply(s, proto_msg_end(b, s->req.ref));
}
