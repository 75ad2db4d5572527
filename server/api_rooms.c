/* api_rooms.c -- the API's rooms listing (api_rooms.h). */
#include "api_rooms.h"

#include "cluster.h"
#include "remote.h"

#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "protocol.h"

/* One room of the database's list: its name (within rows), newest id. */
struct entry {
    const char *name;
    size_t len;
    int64_t last_id;
};

/* Splits rows into entries (names are not NUL-terminated). Returns how
 * many, or -1 when memory ran out; *out is malloc'd. */
static int split(const struct buf *rows, struct entry **out)
{
    const char *p = rows ? (const char *)BUF_PAYLOAD(rows) : NULL;
    const char *end = p ? p + rows->len : NULL;
    int n = 0, cap = 0;
    *out = NULL;
    while (p && p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *nl = sp ? memchr(sp, '\n', (size_t)(end - sp)) : NULL;
        if (!nl) break; /* the database writes whole lines */
        if (n == cap) {
            struct entry *e =
                realloc(*out, (size_t)(cap = cap ? 2 * cap : 64) * sizeof(*e));
            if (!e) return free(*out), *out = NULL, -1;
            *out = e;
        }
        int64_t v = 0;
        for (const char *d = sp + 1; d < nl && *d >= '0' && *d <= '9'; d++)
            v = v * 10 + (*d - '0');
        (*out)[n++] = (struct entry){p, (size_t)(sp - p), v};
        p = nl + 1;
    }
    return n;
}

static void put_room(struct buf **b, int *first, const char *name, size_t len,
                     uint32_t members, int64_t last_id)
{
    char tmp[PROTO_MAX_ROOM + 1];
    if (len > PROTO_MAX_ROOM) return; /* never: names are validated before storing */
    memcpy(tmp, name, len);
    tmp[len] = 0;
    buf_puts(b, *first ? "{\"name\":\"" : ",{\"name\":\"");
    *first = 0;
    buf_put(b, name, len); /* [a-z0-9_-] only */
    buf_puts(b, "\",\"members\":");
    buf_put_i64(b, members);
    buf_puts(b, ",\"last_id\":");
    buf_put_i64(b, last_id);
    buf_puts(b, proto_room_is_dm(tmp) ? ",\"dm\":true}" : "}");
}

static int by_name(const void *k, const void *e)
{
    const char *key = k;
    const struct entry *x = e;
    int c = strncmp(key, x->name, x->len);
    return c ? c : (key[x->len] != 0);
}

struct walk {
    struct buf **b;
    int *first;
    const struct entry *e;
    int n;
    struct remote *rm;
};

/* Members other nodes of the cluster hold (remote.h takes its own lock,
 * never the rooms lock: safe under it). */
static uint32_t remote_count_of(struct remote *rm, const char *room)
{
    return rm ? remote_count(rm, room) : 0;
}

/* Rooms in memory with members whose name the database did not list. */
static void add_live(struct room *r, void *arg)
{
    struct walk *w = arg;
    if (!r->nmembers ||
        (w->n && bsearch(r->name, w->e, (size_t)w->n, sizeof(*w->e), by_name)))
        return; /* (bsearch over no rows: its NULL base is undefined behaviour) */
    put_room(w->b, w->first, r->name, strlen(r->name),
             r->nmembers + remote_count_of(w->rm, r->name), r->last_id);
}

struct buf *api_rooms_json(struct hub *h, const struct buf *rows)
{
    struct remote *rm = cluster_remote(h->cluster);
    struct entry *e;
    int n = split(rows, &e), first = 1;
    if (n < 0) return NULL;
    struct buf *b = buf_new(64 + (rows ? rows->len * 2 : 0));
    buf_puts(&b, "{\"rooms\":[");
    hub_lock_rooms(h);
    for (int i = 0; i < n; i++) {
        char name[PROTO_MAX_ROOM + 1];
        if (e[i].len > PROTO_MAX_ROOM) continue;
        memcpy(name, e[i].name, e[i].len);
        name[e[i].len] = 0;
        struct room *r = rooms_get(&h->rooms, name, 0);
        int64_t last = r && r->last_id > e[i].last_id ? r->last_id : e[i].last_id;
        put_room(&b, &first, e[i].name, e[i].len,
                 (r ? r->nmembers : 0) + remote_count_of(rm, name), last);
    }
    struct walk w = {&b, &first, e, n, rm};
    rooms_each(&h->rooms, add_live, &w);
    hub_unlock_rooms(h);
    buf_puts(&b, "]}\n");
    free(e);
    if (b && b->oom) buf_unref(b), b = NULL;
    return b;
}
