/* roomlist.c -- the `rooms` listing (roomlist.h). Rooms are shared by
 * every loop: the listing is copied under the rooms lock and written
 * outside it. */
#include "roomlist.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "hub.h"
#include "roomreq.h"
#include "session_impl.h"
#include "wire.h"

/* One line of the listing, copied out under the rooms lock. */
struct room_row {
    char name[PROTO_MAX_ROOM + 1];
    uint32_t members;
    int64_t last_id;
};

struct rooms_copy {
    struct room_row *rows;
    size_t n, cap;
};

static void copy_row(struct rooms_copy *c, const struct room *r)
{
    if (c->n == c->cap || proto_room_is_dm(r->name)) return; /* DMs: from the db */
    struct room_row *w = &c->rows[c->n++];
    memcpy(w->name, r->name, sizeof w->name);
    w->members = r->nmembers;
    w->last_id = r->last_id;
}

static void copy_if_online(struct room *r, void *arg)
{
    if (r->nmembers) copy_row(arg, r);
}

/* Copies the rooms with members online and s's remembered rooms without
 * any, DM rooms left out. Returns 0, or -1 out of memory. */
static int copy_rooms(struct session *s, struct rooms_copy *c)
{
    struct hub *h = s->srv->hub;
    hub_lock_rooms(h);
    c->cap = h->rooms.count + s->nmem;
    c->n = 0;
    c->rows = malloc((c->cap ? c->cap : 1) * sizeof(*c->rows));
    if (c->rows) {
        rooms_each(&h->rooms, copy_if_online, c);
        for (uint32_t i = 0; i < s->nmem; i++)
            if (!s->mem[i].room->nmembers) copy_row(c, s->mem[i].room);
    }
    hub_unlock_rooms(h);
    return c->rows ? 0 : -1;
}

static void put_entry(struct buf **b, int *n, const char *name, size_t len,
                      uint32_t members, int64_t last_id)
{
    buf_puts(b, (*n)++ ? ",{\"name\":\"" : "{\"name\":\"");
    buf_put(b, name, len);
    buf_puts(b, "\",\"members\":");
    buf_put_i64(b, members);
    buf_puts(b, ",\"last_id\":");
    buf_put_i64(b, last_id);
}

/* A DM room's line from db_dm_list: "ROOM\tLAST_ID\tPEER\n". */
struct dm_line {
    const char *room, *peer;
    size_t peer_len;
    int64_t last_id;
    uint32_t members;
};

/* Splits the database's lines into an array (malloc'd; *n lines), and
 * fills each room's members and newest id from memory under one lock.
 * Returns NULL with *n 0 when there are none or memory ran out (*oom). */
static struct dm_line *dm_lines(struct session *s, int *n, int *oom)
{
    struct buf *rows = s->dbr.rows;
    *n = 0, *oom = 0;
    if (!s->dbr.nrows) return NULL;
    struct dm_line *l = calloc((size_t)s->dbr.nrows, sizeof(*l));
    if (!l) return *oom = 1, NULL;
    char *p = (char *)BUF_PAYLOAD(rows), *end = p + rows->len;
    while (p < end && *n < s->dbr.nrows) {
        struct dm_line *d = &l[(*n)++];
        char *tab = memchr(p, '\t', (size_t)(end - p)), *nl;
        d->room = p;
        *tab = 0; /* the rows are this read's alone */
        d->last_id = strtoll(tab + 1, &p, 10);
        p++; /* the second tab */
        nl = memchr(p, '\n', (size_t)(end - p));
        d->peer = p, d->peer_len = (size_t)(nl - p);
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
    return l;
}

/* Never lists a room s may not use. Its cost counts against the read
 * budget: with thousands of rooms online the listing is large. */
void roomlist_answer(struct session *s)
{
    struct rooms_copy c;
    int ndm, oom, n = 0;
    struct dm_line *dm = dm_lines(s, &ndm, &oom);
    if (oom || copy_rooms(s, &c)) {
        free(dm);
        return wire_error(s, E_INTERNAL, "out of memory");
    }
    struct buf *b = buf_new(64 + c.n * 48 + (s->dbr.rows ? s->dbr.rows->len * 2 : 0));
    buf_puts(&b, "{\"type\":\"rooms\",\"rooms\":[");
    for (size_t i = 0; i < c.n; i++) {
        if (!access_room_allowed(s, c.rows[i].name, NULL)) continue; /* never listed */
        put_entry(&b, &n, c.rows[i].name, strlen(c.rows[i].name), c.rows[i].members,
                  c.rows[i].last_id);
        buf_put(&b, "}", 1);
    }
    for (int i = 0; i < ndm; i++) {
        put_entry(&b, &n, dm[i].room, strlen(dm[i].room), dm[i].members, dm[i].last_id);
        buf_puts(&b, ",\"peer\":");
        buf_put(&b, dm[i].peer, dm[i].peer_len);
        buf_put(&b, "}", 1);
    }
    free(c.rows);
    free(dm);
    buf_put(&b, "]", 1);
    if (b) roomreq_read_spent(s, b->len);
    wire_reply(s, proto_msg_end(b, s->req.ref));
}
