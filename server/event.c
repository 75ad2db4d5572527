/* event.c -- a write as a log entry's fields and back (event.h). Any
 * thread: it touches only what it is given. */
#include "event.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static_assert(offsetof(struct event, req) == 0, "event_of needs req first");

static const char *const op_names[] = {
    [DB_SEND] = "send", [DB_EDIT] = "edit", [DB_DELETE] = "delete", [DB_USER] = "user",
    [DB_DM] = "dm",     [DB_MARK] = "mark", [DB_MOD] = "mod",
};
#define NOPS (int)(sizeof op_names / sizeof op_names[0])

/* flags: bits 0-4 single flags, 5-7 mod_action, 8-9 role, 10-11 target_role */
enum {
    F_ANY = 1,
    F_ADMIN = 2,
    F_API = 4,
    F_GUEST = 8,
    F_NO_GUEST_DMS = 16,
    F_ACTION = 5,
    F_ROLE = 8,
    F_TARGET_ROLE = 10
};

int event_op_logged(enum db_op op)
{
    return (int)op < NOPS && op_names[op];
}

static unsigned flags_of(const struct db_req *r)
{
    return (r->any_author ? F_ANY : 0) | (r->admin ? F_ADMIN : 0) | (r->api ? F_API : 0) |
           (r->guest ? F_GUEST : 0) | (r->no_guest_dms ? F_NO_GUEST_DMS : 0) |
           ((unsigned)r->mod_action << F_ACTION) | ((unsigned)r->role << F_ROLE) |
           ((unsigned)r->target_role << F_TARGET_ROLE);
}

/* The fields a request sets, as (name, value, length) triples; NULL values
 * are left out. Returns how many. */
static int fields_of(const struct db_req *r, const char *names[], const char *vals[],
                     size_t lens[], char nums[2][24])
{
    int n = 0;
#define PUT(name, v, len)                                                                \
    do {                                                                                 \
        if (v) names[n] = name, vals[n] = v, lens[n] = (len), n++;                       \
    } while (0)
    PUT("room", r->room, strlen(r->room ? r->room : ""));
    PUT("user", r->user_id, strlen(r->user_id ? r->user_id : ""));
    PUT("name", r->user_name, strlen(r->user_name ? r->user_name : ""));
    PUT("cid", r->client_id, strlen(r->client_id ? r->client_id : ""));
    PUT("text", r->text, r->op == DB_MOD ? strlen(r->text ? r->text : "") : r->text_len);
    PUT("peer", r->peer_id, strlen(r->peer_id ? r->peer_id : ""));
    snprintf(nums[0], 24, "%" PRId64, r->msg_id);
    snprintf(nums[1], 24, "%u", flags_of(r));
    PUT("msg", nums[0], strlen(nums[0]));
    PUT("flags", nums[1], strlen(nums[1]));
#undef PUT
    return n;
}

/* Copies s (len bytes) to *p as o's next field, NUL-terminated. */
static void put(struct event_out *o, char **p, const char *s, size_t len)
{
    memcpy(*p, s, len);
    (*p)[len] = 0;
    o->f[o->nf] = *p;
    o->flen[o->nf++] = len;
    *p += len + 1;
}

struct event_out *event_encode(const struct db_req *r, const char *origin, uint64_t token,
                               int64_t deadline_ms)
{
    assert(event_op_logged(r->op));
    const char *names[10], *vals[10];
    size_t lens[10], size = 64 + strlen(origin);
    char nums[2][24], o_val[64];
    int n = fields_of(r, names, vals, lens, nums);
    for (int i = 0; i < n; i++)
        size += strlen(names[i]) + 1 + lens[i] + 1;
    int dedup = r->op == DB_SEND && r->client_id && r->user_id && !r->no_dedup;
    size_t dlen =
        dedup ? strlen(r->room) + strlen(r->user_id) + strlen(r->client_id) + 16 : 0;
    struct event_out *o = malloc(sizeof(*o) + size + dlen);
    if (!o) return NULL;
    *o = (struct event_out){.token = token, .deadline_ms = deadline_ms};
    char *p = o->data;
    int olen = snprintf(o_val, sizeof o_val, "%s:%" PRIu64, origin, token);
    put(o, &p, "op", 2);
    put(o, &p, op_names[r->op], strlen(op_names[r->op]));
    put(o, &p, "o", 1);
    put(o, &p, o_val, (size_t)olen);
    for (int i = 0; i < n; i++) {
        put(o, &p, names[i], strlen(names[i]));
        put(o, &p, vals[i], lens[i]);
    }
    if (dedup) { /* 0x1f: no room, user id or client_id holds one */
        o->dedup = p;
        sprintf(p, "parley:dedup:%s\x1f%s\x1f%s", r->room, r->user_id, r->client_id);
    }
    assert(o->nf <= EVENT_MAX_FIELDS);
    return o;
}

/* Copies a field's value into *p for the request (NUL-terminated). */
static const char *keep(char **p, const char *v, size_t len)
{
    char *s = *p;
    memcpy(s, v, len);
    s[len] = 0;
    *p += len + 1;
    return s;
}

static int parse_i64(const char *s, size_t len, int64_t *out)
{
    char tmp[24];
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static int op_of(const char *v, size_t len)
{
    for (int i = 0; i < NOPS; i++)
        if (op_names[i] && strlen(op_names[i]) == len && !memcmp(op_names[i], v, len))
            return i;
    return -1;
}

/* Sets one field of e (strings copied to *p). Returns 0, or -1 when the
 * field is malformed. Unknown names are skipped: a newer node may add. */
static int set_field(struct event *e, char **p, const char *f, size_t flen, const char *v,
                     size_t len)
{
    struct db_req *r = &e->req;
    int64_t n;
#define IS(name) (flen == sizeof name - 1 && !memcmp(f, name, flen))
    if (IS("op")) {
        int op = op_of(v, len);
        if (op < 0) return -1;
        r->op = (enum db_op)op, e->has_op = 1;
    } else if (IS("room"))
        r->room = keep(p, v, len);
    else if (IS("user"))
        r->user_id = keep(p, v, len);
    else if (IS("name"))
        r->user_name = keep(p, v, len);
    else if (IS("cid"))
        r->client_id = keep(p, v, len);
    else if (IS("text"))
        r->text = keep(p, v, len), r->text_len = len;
    else if (IS("peer"))
        r->peer_id = keep(p, v, len);
    else if (IS("msg"))
        return parse_i64(v, len, &r->msg_id);
    else if (IS("ts"))
        return parse_i64(v, len, &e->ts);
    else if (IS("flags")) {
        if (parse_i64(v, len, &n) || n < 0) return -1;
        r->any_author = !!(n & F_ANY), r->admin = !!(n & F_ADMIN), r->api = !!(n & F_API);
        r->guest = !!(n & F_GUEST), r->no_guest_dms = !!(n & F_NO_GUEST_DMS);
        r->mod_action = (unsigned)(n >> F_ACTION) & 7;
        r->role = (unsigned)(n >> F_ROLE) & 3;
        r->target_role = (unsigned)(n >> F_TARGET_ROLE) & 3;
    } else if (IS("o")) {
        const char *colon = memchr(v, ':', len);
        int64_t t;
        if (!colon || (size_t)(colon - v) >= sizeof e->origin ||
            parse_i64(colon + 1, len - (size_t)(colon - v) - 1, &t))
            return -1;
        memcpy(e->origin, v, (size_t)(colon - v));
        e->token = (uint64_t)t;
    }
#undef IS
    return 0;
}

/* Whether a decoded event has what its op needs. */
static int complete(const struct event *e)
{
    const struct db_req *r = &e->req;
    if (!e->has_op || e->ts <= 0 || !e->origin[0]) return 0;
    switch (r->op) {
    case DB_SEND:
        return r->room && r->user_id && r->user_name && r->text;
    case DB_EDIT:
        return r->room && r->user_id && r->text && r->msg_id > 0;
    case DB_DELETE:
        return r->room && r->user_id && r->msg_id > 0;
    case DB_USER:
        return r->user_id && r->user_name;
    case DB_DM:
    case DB_MARK:
        return r->room && r->user_id;
    case DB_MOD:
        return r->user_id && r->peer_id;
    default:
        return 0;
    }
}

struct event *event_decode(const char *id, const char *const *fv, const size_t *fvlen,
                           int n, int *oom)
{
    size_t size = 0;
    int64_t seq;
    const char *dash = strchr(id, '-');
    *oom = 0;
    if (!dash || parse_i64(id, (size_t)(dash - id), &seq) || seq <= 0 || n % 2)
        return NULL;
    for (int i = 1; i < n; i += 2)
        size += fvlen[i] + 1;
    struct event *e = calloc(1, sizeof(*e) + size);
    if (!e) return *oom = 1, NULL;
    e->seq = seq;
    e->req.logged = 1;
    e->req.loop = -1;
    char *p = e->data;
    for (int i = 0; i + 1 < n; i += 2)
        if (set_field(e, &p, fv[i], fvlen[i], fv[i + 1], fvlen[i + 1])) goto bad;
    if (!complete(e)) goto bad;
    return e;
bad:
    free(e);
    return NULL;
}

void event_free(struct event *e)
{
    if (!e) return;
    buf_unref(e->req.frame);
    buf_unref(e->req.pair);
    buf_unref(e->req.peer);
    buf_unref(e->req.rows);
    buf_unref(e->req.updates);
    free(e);
}
