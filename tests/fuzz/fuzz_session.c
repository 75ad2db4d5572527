/* fuzz_session.c -- request parsing, validation and dispatch, without sockets.
 *
 * Drives server/session.c (with the real protocol, rooms, outbound queues,
 * rate limits, JWT and crypto code) through fake libwebsockets calls
 * (fake_lws.c) and a fake database that completes requests when the input
 * says so, with the status the input picks. The input is a little program:
 * connections open, deliver frames (raw bytes or well-formed requests built
 * from the input, fragmented or not, text or binary), become writeable, fire
 * timers, time out, drop, and the database completes, refuses or fails.
 *
 * Checked: no memory error, leak or undefined behaviour (ASan, LSan, UBSan);
 * the server's own asserts; every frame written is valid UTF-8 and a JSON
 * object with "type" first (fake_lws.c); every database request carries a
 * valid room, text and client_id and stays readable until it completes; room
 * member lists hold only open sessions; everything is freed once every
 * connection is gone, and (with the first byte's bit 1: per-address limits
 * of 2 connections and 2 new guests a minute) every counted connection was
 * released exactly once.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "db_search.h"
#include "fake_lws.h"
#include "log.h"
#include "protocol.h"
#include "room.h"
#include "hub.h"
#include "iplimit.h"
#include "online.h"
#include "loop.h"
#include "expiry.h"
#include "member.h"
#include "send.h"
#include "session.h"
#include "wire.h"
#include "utf8.h"

#define NCONN 4
#define MAXQ 64
#define SECRET "fuzz-secret"

static struct config cfg_guests, cfg_tokens;
static struct server srv;
static struct hub hub; /* one loop: the harness runs it */
static int64_t now_us = 1000000;

int64_t server_now_us(void)
{
    return now_us;
}

/* ---- the fake database ---- */

static struct db_req *pending[MAXQ];
static int npending, queue_max, next_id;

static void check_req(const struct db_req *r)
{
    if (r->op == DB_USER) { /* a welcomed user's record: no owner, no room */
        assert(r->user_id && r->user_id[0] && r->user_name && r->user_name[0]);
        return;
    }
    assert(r->owner);
    if (r->dms) { /* the rooms listing: a user, the loop's names, no room */
        assert(r->op == DB_READ && r->user_id && !r->room && r->nrooms_in >= 0);
        for (int i = 0; i < r->nrooms_in; i++)
            assert(proto_room_valid(r->rooms_in[i]) && !proto_room_is_dm(r->rooms_in[i]));
        return;
    }
    if (r->op == DB_SEARCH) { /* a room or none, a built expression */
        assert(r->user_id && r->scope && r->scope->match && r->scope->match[0]);
        assert(!r->room || proto_room_valid(r->room));
        assert(r->limit >= 1 && r->limit <= PROTO_SEARCH_MAX);
        return;
    }
    if (r->op == DB_MOD) { /* a moderator's action; room none: server-wide ban */
        assert(r->user_id && r->peer_id && r->peer_id[0] &&
               r->mod_action <= DB_MOD_UNBAN);
        assert(!r->room || (proto_room_valid(r->room) && !proto_room_is_dm(r->room)));
        assert(r->room || r->mod_action == DB_MOD_BAN || r->mod_action == DB_MOD_UNBAN);
        return;
    }
    assert(r->room && proto_room_valid(r->room));
    if (r->op == DB_EDIT || r->op == DB_DELETE) {
        assert(r->msg_id >= 1 && r->user_id && r->user_name);
        if (r->op == DB_EDIT) assert(r->text && utf8_valid(r->text, r->text_len));
        return;
    }
    if (r->op == DB_SEND) {
        assert(r->user_id && r->user_id[0] && r->user_name && r->user_name[0]);
        assert(r->client_id && r->client_id[0]);
        assert(utf8_count(r->client_id, strlen(r->client_id)) <= PROTO_MAX_CLIENT_ID);
        assert(r->text && r->text_len == strlen(r->text));
        assert(utf8_valid(r->text, r->text_len));
        size_t n = utf8_count(r->text, r->text_len);
        assert(n >= 1 && n <= (size_t)srv.cfg->max_text);
    } else if (r->op == DB_DM) {
        assert(r->user_id && r->peer_id && strcmp(r->user_id, r->peer_id));
        assert(proto_room_is_dm(r->room));
    } else if (r->op == DB_MARK) {
        assert(r->user_id && r->msg_id >= 0);
    } else {
        assert(r->op == DB_READ);
        assert(r->limit >= 1 && r->limit <= PROTO_SINCE_MAX);
        assert(!(r->before >= 0 && r->after >= 0));
    }
}

int db_submit(struct db *db, struct db_req *r)
{
    (void)db;
    for (int i = 0; i < npending; i++)
        assert(pending[i] != r); /* submitted twice while in flight */
    check_req(r);
    if (npending >= queue_max || npending >= MAXQ) return -1;
    r->next = NULL;
    r->status = DB_OK;
    r->id = r->ts = r->last_id = 0;
    r->duplicate = r->nrows = r->more = 0;
    r->rows = NULL;
    pending[npending++] = r;
    return 0;
}

/* hub_route() is linked in but never runs here: completions go through
 * hub_complete(), as the worker's router would route them. */
void db_take_done(struct db *db, void (*fn)(struct db_req *r, void *arg), void *arg)
{
    (void)db, (void)fn, (void)arg;
}

void db_stats(struct db *db, struct db_stats *out)
{
    (void)db;
    memset(out, 0, sizeof(*out));
    out->queue_depth = npending;
}

/* A request on a DM room: refused (not one of the pair), or the pair for
 * a write and the peer for a read, as the worker's db_dm_check does. */
static void dm_answer(struct db_req *r, unsigned how)
{
    if ((how >> 8) & 1) {
        r->status = DB_FORBIDDEN;
        buf_unref(r->rows), buf_unref(r->updates);
        r->rows = r->updates = NULL;
        r->nrows = 0;
        return;
    }
    if (r->check) return;
    struct buf *b = buf_new(64);
    if (r->op == DB_READ) {
        buf_puts(&b, "{\"id\":\"u1\",\"name\":\"N\\\"\"}");
        r->peer = b;
    } else if (r->op != DB_SEARCH && r->op != DB_MARK) { /* a mark: check only */
        buf_put(&b, "u1", 3);
        buf_put(&b, r->user_id, strlen(r->user_id) + 1);
        r->pair = b;
    } else {
        buf_unref(b);
        return;
    }
    assert(!b->oom);
}

/* Completes the oldest request; `how` picks the outcome. */
static void db_complete_one(unsigned how)
{
    if (!npending) return;
    struct db_req *r = pending[0];
    memmove(pending, pending + 1, (size_t)(--npending) * sizeof(*pending));
    check_req(r); /* the inputs must still be alive and unchanged */
    unsigned st = how & 7;
    r->status = st < 6 ? DB_OK : st == 6 ? DB_BUSY : DB_FAILED;
    if (r->op == DB_USER) {
        r->status = DB_OK;
    } else if (r->op == DB_MOD) {
        r->duplicate = (how >> 3) & 1; /* an unmute or unban of nothing */
    } else if (r->op == DB_MARK) {
        r->duplicate = (how >> 3) & 1; /* unmoved: no echo */
        if (r->status == DB_OK) r->id = r->msg_id;
    } else if (r->op == DB_EDIT || r->op == DB_DELETE) {
        /* Refusals too: not found, not the author. */
        unsigned k = (how >> 3) & 3;
        if (r->status == DB_OK && k) r->status = k == 1 ? DB_NOT_FOUND : DB_FORBIDDEN;
        if (r->status == DB_OK) r->id = ++next_id, r->ts = now_us / 1000;
    } else if (r->status == DB_OK && r->op == DB_SEND) {
        r->duplicate = (how >> 3) & 1;
        r->id = r->duplicate && next_id ? 1 + (int)(how >> 4) % next_id : ++next_id;
        r->ts = now_us / 1000;
    } else if (r->op == DB_DM) {
        unsigned k = (how >> 3) & 3; /* refusals: never seen, a guest */
        if (r->status == DB_OK && k) r->status = k == 1 ? DB_NOT_FOUND : DB_FORBIDDEN;
    } else if (r->status == DB_OK && r->dms) { /* db_dm_list's lines */
        r->rows = buf_new(256);
        int n = (int)((how >> 3) & 3);
        for (int i = 0; i < n; i++) {
            buf_puts(&r->rows, i & 1 ? "dm-0123456789abcdef0123456789abcdef\t7\t3\t1000\t"
                                     : "lobby\t0\t0\t0\t");
            buf_puts(&r->rows, i & 1 ? "{\"id\":\"u\\\"1\",\"name\":\"N\"}\n" : "\n");
            r->nrows++;
        }
        assert(!r->rows->oom);
    } else if (r->status == DB_OK) {
        r->rows = buf_new(256);
        int n = (int)((how >> 3) & 3);
        if (n > r->limit) n = r->limit;
        for (int i = 0; i < n; i++) {
            struct proto_msg m = {.room =
                                      r->room ? r->room : "z-9", /* a search: its own */
                                  .id = ++next_id,
                                  .ts = now_us / 1000,
                                  .user_id = "u1",
                                  .user_name = "N\"ame\n",
                                  .text = "t\x01\xc3\xa9\\",
                                  .text_len = 5,
                                  .client_id = "c\"1",
                                  .rev = (how >> 6) & 1 ? next_id + 1 : 0,
                                  .deleted = (how >> 7) & 1};
            if (r->nrows++) buf_put(&r->rows, ",", 1);
            proto_put_message(&r->rows, &m);
        }
        assert(!r->rows->oom);
        r->more = (how >> 5) & 1;
        r->last_id = next_id;
    }
    if (r->status == DB_OK && r->room && proto_room_is_dm(r->room) && r->op != DB_DM)
        dm_answer(r, how);
    hub_complete(&hub, r); /* the router: frame made, then the loop's inbox */
    hub_take(&hub, 0, session_on_db_done, &srv);
}

/* ---- connections ---- */

struct conn {
    struct lws *wsi;
    struct session *s;
};
static struct conn conns[NCONN];

static void conn_closed(struct conn *c)
{
    /* lws: LWS_CALLBACK_CLOSED, then the wsi is gone. */
    session_on_closed(c->s);
    fake_wsi_free(c->wsi);
    free(c->wsi);
    c->wsi = NULL;
    c->s = NULL;
}

static void check_rooms_cb(struct room *r, void *arg)
{
    (void)arg;
    assert(r->nmembers == r->part[0].n); /* one loop */
    for (uint32_t i = 0; i < r->part[0].n; i++) {
        int found = 0;
        for (int k = 0; k < NCONN; k++)
            found |= conns[k].s == r->part[0].members[i];
        assert(found); /* a member that is not an open connection */
    }
}

/* ---- input reading ---- */

struct in {
    const uint8_t *p;
    size_t n;
};

static unsigned u8(struct in *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

/* Up to `max` bytes, length-prefixed. */
static size_t bytes(struct in *in, const uint8_t **out, size_t max)
{
    size_t n = u8(in);
    if (n == 255) n = 255 + u8(in) * 8;
    if (n > max) n = max;
    if (n > in->n) n = in->n;
    *out = in->p;
    in->p += n;
    in->n -= n;
    return n;
}

static char *str(struct in *in, size_t max)
{
    const uint8_t *p;
    size_t n = bytes(in, &p, max);
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static const char *const room_names[] = {
    "lobby", "a", "b_2", "z-9", "A", "", "lobby-", "dm-0123456789abcdef0123456789abcdef",
    "dm-x"};

static void add_room(cJSON *o, struct in *in)
{
    unsigned k = u8(in) % 10;
    if (k < 9)
        cJSON_AddStringToObject(o, "room", room_names[k]);
    else {
        char *s = str(in, 80);
        cJSON_AddStringToObject(o, "room", s);
        free(s);
    }
}

static void add_maybe_ref(cJSON *o, struct in *in)
{
    if (u8(in) & 1) {
        char *s = str(in, 70);
        cJSON_AddStringToObject(o, "ref", s);
        free(s);
    }
}

static double number(struct in *in)
{
    static const double vals[] = {0,
                                  1,
                                  -1,
                                  5,
                                  50,
                                  200,
                                  201,
                                  1000,
                                  1e15,
                                  9007199254740991.0,
                                  9007199254740992.0,
                                  1.5,
                                  1e300,
                                  -1e300,
                                  3,
                                  2};
    return vals[u8(in) % 16];
}

static char *b64(const void *p, size_t n)
{
    char *out = malloc(n * 4 / 3 + 8);
    crypto_b64url_encode(p, n, out);
    return out;
}

/* A token signed with the server's secret over payload bytes from the input
 * (mostly a sensible payload with fields from the input). */
static char *signed_token(struct in *in)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *payload;
    if (u8(in) & 1) {
        payload = str(in, 600);
    } else {
        cJSON *p = cJSON_CreateObject();
        char *sub = str(in, 140), *name = str(in, 40);
        cJSON_AddStringToObject(p, "sub", sub[0] ? sub : "user");
        cJSON_AddStringToObject(p, "name", name[0] ? name : "Name");
        cJSON_AddNumberToObject(p, "exp", (u8(in) & 3) ? 4e9 : 1.0);
        unsigned rk = u8(in) % 4;
        if (rk == 1)
            cJSON_AddStringToObject(p, "rooms", "*");
        else if (rk == 2) {
            cJSON *a = cJSON_AddArrayToObject(p, "rooms");
            cJSON_AddItemToArray(a, cJSON_CreateString("lobby"));
            cJSON_AddItemToArray(a, cJSON_CreateString("a"));
        }
        static const char *const roles[] = {NULL, "mod", "admin", "owner"};
        const char *role = roles[u8(in) % 4];
        if (role) cJSON_AddStringToObject(p, "role", role);
        free(sub);
        free(name);
        payload = cJSON_PrintUnformatted(p);
        cJSON_Delete(p);
    }
    char *h = b64(hdr, strlen(hdr)), *pl = b64(payload, strlen(payload));
    size_t n = strlen(h) + strlen(pl) + 64;
    char *tok = malloc(n);
    snprintf(tok, n, "%s.%s", h, pl);
    unsigned char mac[CRYPTO_HMAC_LEN];
    crypto_hmac_sha256(SECRET, strlen(SECRET), tok, strlen(tok), mac);
    char *sig = b64(mac, sizeof mac);
    strcat(tok, ".");
    strcat(tok, sig);
    free(h);
    free(pl);
    free(sig);
    free(payload);
    return tok;
}

/* A request built from the input: mostly well-formed, so the fuzzer gets
 * past hello and join quickly. Returns a malloc'd JSON text. */
static char *request(struct in *in)
{
    cJSON *o = cJSON_CreateObject();
    static const char *const types[] = {"hello",  "join",  "leave",  "send",   "history",
                                        "typing", "rooms", "ping",   "bogus",  "edit",
                                        "delete", "dm",    "read",   "search", "kick",
                                        "mute",   "ban",   "unmute", "unban"};
    unsigned t = u8(in) % 19;
    cJSON_AddStringToObject(o, "type", types[t]);
    add_maybe_ref(o, in);
    char *s;
    switch (t) {
    case 0: {
        unsigned k = u8(in) % 4;
        if (k == 0 || k == 3) {
            s = str(in, 60);
            cJSON_AddStringToObject(o, "name", s);
            free(s);
        }
        if (k == 1 || k == 3) {
            s = signed_token(in);
            cJSON_AddStringToObject(o, "token", s);
            free(s);
        }
        if (k == 2) {
            s = str(in, 300);
            cJSON_AddStringToObject(o, "token", s);
            free(s);
        }
        if (u8(in) & 1) {
            s = str(in, 80);
            cJSON_AddStringToObject(o, "resume", s);
            free(s);
        }
        break;
    }
    case 1:
        add_room(o, in);
        if (u8(in) & 1) cJSON_AddNumberToObject(o, "since", number(in));
        break;
    case 3:
        add_room(o, in);
        s = str(in, 200);
        cJSON_AddStringToObject(o, "text", s);
        free(s);
        s = str(in, 70);
        cJSON_AddStringToObject(o, "client_id", s);
        free(s);
        break;
    case 4: {
        add_room(o, in);
        unsigned k = u8(in);
        if (k & 1) cJSON_AddNumberToObject(o, "before", number(in));
        if (k & 2) cJSON_AddNumberToObject(o, "after", number(in));
        if (k & 4) cJSON_AddNumberToObject(o, "limit", number(in));
        break;
    }
    case 2:
    case 5:
        add_room(o, in);
        break;
    case 9:
    case 10: /* edit, delete (1.1) */
        add_room(o, in);
        cJSON_AddNumberToObject(o, "id", number(in));
        if (t == 9) {
            s = str(in, 200);
            cJSON_AddStringToObject(o, "text", s);
            free(s);
        }
        break;
    case 12: /* read (1.1) */
        add_room(o, in);
        cJSON_AddNumberToObject(o, "id", number(in));
        break;
    case 13: { /* search (1.1): words, phrases, prefixes, FTS5 syntax, junk */
        static const char *const qs[] = {
            "deploy", "\"a phrase\" x*", "NEAR(a b)", "col:x ^y", "\"",
            "*",      "AND OR",          ""};
        unsigned k = u8(in) % 9;
        if (k < 8)
            cJSON_AddStringToObject(o, "q", qs[k]);
        else {
            s = str(in, 300);
            cJSON_AddStringToObject(o, "q", s);
            free(s);
        }
        if (u8(in) & 1) add_room(o, in);
        if (u8(in) & 1) cJSON_AddNumberToObject(o, "before", number(in));
        if (u8(in) & 1) cJSON_AddNumberToObject(o, "limit", number(in));
        break;
    }
    case 14:
    case 15:
    case 16:
    case 17:
    case 18: { /* moderation (1.1): a room or none, a user, minutes, reason */
        unsigned k = u8(in);
        if (k & 1) add_room(o, in);
        if (k & 2)
            cJSON_AddStringToObject(o, "user", (k & 4) ? "u1" : "user");
        else if (k & 4)
            cJSON_AddNumberToObject(o, "user", number(in));
        if (k & 8) cJSON_AddNumberToObject(o, "minutes", number(in));
        if (k & 16) {
            s = str(in, 240);
            cJSON_AddStringToObject(o, "reason", s);
            free(s);
        }
        break;
    }
    case 11: { /* dm (1.1): a seen-looking id, the sender's own, or junk */
        unsigned k = u8(in) % 4;
        if (k == 0) cJSON_AddStringToObject(o, "user", "u1");
        if (k == 1) cJSON_AddNumberToObject(o, "user", number(in));
        if (k == 2) {
            s = str(in, 140);
            cJSON_AddStringToObject(o, "user", s);
            free(s);
        }
        break;
    }
    default:
        break;
    }
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* Delivers `n` bytes as one message, in `parts` fragments (lws hands the
 * server one RECEIVE per fragment, and also splits large frames). */
static void deliver(struct conn *c, const char *data, size_t n, unsigned parts,
                    int binary)
{
    if (!parts) parts = 1;
    size_t step = n / parts + 1, off = 0;
    do {
        size_t k = n - off < step ? n - off : step;
        c->wsi->binary = binary;
        c->wsi->final = off + k == n;
        if (session_on_receive(c->s, data + off, k) < 0) {
            conn_closed(c);
            return;
        }
        off += k;
    } while (off < n);
}

static void writeable(struct conn *c)
{
    if (!c->wsi || !c->wsi->want_writable) return;
    c->wsi->want_writable = 0;
    if (wire_on_writeable(c->s) < 0) conn_closed(c);
}

static void op(struct in *in)
{
    unsigned o = u8(in), k = u8(in) % NCONN;
    struct conn *c = &conns[k];
    switch (o % 15) {
    case 0: /* open, with URL arguments */
        if (c->wsi) break;
        c->wsi = malloc(sizeof(*c->wsi));
        fake_wsi_init(c->wsi, (int)k);
        if (u8(in) & 1) {
            char *a = u8(in) & 1 ? str(in, 400) : NULL;
            if (!a) {
                char *t = signed_token(in);
                a = malloc(strlen(t) + 16);
                sprintf(a, "x=1&token=%s", t);
                free(t);
            }
            c->wsi->urlargs = a;
        }
        c->s = session_open(&srv, c->wsi);
        if (!c->s) {
            fake_wsi_free(c->wsi);
            free(c->wsi);
            c->wsi = NULL;
        }
        break;
    case 1: { /* raw frame */
        if (!c->wsi) break;
        unsigned f = u8(in);
        const uint8_t *p;
        size_t n = bytes(in, &p, 3000);
        deliver(c, (const char *)p, n, f >> 2, f & 1);
        break;
    }
    case 2:
    case 3:
    case 4: { /* a built request */
        if (!c->wsi) break;
        unsigned f = u8(in);
        char *j = request(in);
        deliver(c, j, strlen(j), (f & 7) == 7 ? f >> 3 : 1, 0);
        free(j);
        break;
    }
    case 5:
        writeable(c);
        break;
    case 6: /* time passes every deadline: the server's tick sweeps */
        session_sweep_hello(&srv, INT64_MAX);
        member_sweep(&srv, INT64_MAX);
        wire_sweep(&srv, INT64_MAX);
        break;
    case 7: /* the client drops */
        if (c->wsi) conn_closed(c);
        break;
    case 8: /* lws's pending timeout (the close grace period) */
        if (c->wsi && c->wsi->timeout_secs) conn_closed(c);
        break;
    case 9:
    case 10: { /* database completions */
        unsigned n = u8(in) % 4 + 1;
        while (n--)
            db_complete_one(u8(in) | u8(in) << 8);
        break;
    }
    case 11:
        now_us += (int64_t)u8(in) * 20000;
        break;
    case 12:
        queue_max = (int)(u8(in) % 8);
        if (c->wsi) {
            unsigned f = u8(in);
            c->wsi->fail_writes = f % 8 == 0;
            c->wsi->partial = f % 5 == 0; /* lws holds unsent bytes */
        }
        break;
    case 14: /* the client's close frame (LWS_CALLBACK_WS_PEER_INITIATED_CLOSE) */
        if (c->wsi) {
            /* Nonzero: lws hangs up; 0: lws echoes a close and hangs up. */
            (void)session_on_peer_close(c->s);
            conn_closed(c);
        }
        break;
    case 13: /* shutdown: everyone gets 1001 */
        if (!srv.stopping) {
            srv.stopping = 1;
            for (struct session *s = srv.sessions; s; s = session_next(s))
                wire_close(s, 1001, "server shutting down", 0);
        }
        break;
    }
    wire_flush_all(&srv); /* as server.c does after every event */
    rooms_each(&hub.rooms, check_rooms_cb, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char *a1[] = {
        "parley", "--jwt-secret",    SECRET, "--max-frame",      "2048", "--max-text",
        "40",     "--outq-max-msgs", "6",    "--outq-max-bytes", "4096", "--burst",
        "3",      "--rate",          "2",    "--log-level",      "error"};
    static char *a2[] = {"parley",      "--jwt-secret", SECRET,        "--no-guests",
                         "--max-frame", "1024",         "--log-level", "error"};
    if (config_parse(&cfg_guests, sizeof a1 / sizeof *a1, a1) ||
        config_parse(&cfg_tokens, sizeof a2 / sizeof *a2, a2))
        abort();
    log_init("error", "text");
    crypto_init();
    fake_raw_is_websocket = 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size};
    now_us = 1000000; /* each input alone: a reproducer reproduces */
    memset(&srv, 0, sizeof srv);
    hub_init(&hub, 1);
    hub.loops[0] = &srv;
    srv.hub = &hub;
    unsigned mode = u8(&in);
    srv.cfg = mode & 1 ? &cfg_tokens : &cfg_guests;
    /* Bit 1: per-address limits, tight enough to be met (every fake
     * connection has the "unknown" address, so all share one key). */
    struct iplimit_config ic = {2, 2, 2, 16};
    if (mode & 2) hub.iplimit = iplimit_new(&ic);
    srv.db = (struct db *)&srv; /* never dereferenced by the fakes */
    srv.outq_lim.max_msgs = (uint32_t)srv.cfg->outq_max_msgs;
    srv.outq_lim.max_bytes = (size_t)srv.cfg->outq_max_bytes;
    srv.plim.max_text = (int)srv.cfg->max_text;
    memset(srv.guest_key, 7, sizeof srv.guest_key);
    npending = 0;
    queue_max = 8;
    next_id = 0;

    while (in.n)
        op(&in);

    /* Let every connection write what it has queued (checks every frame). */
    for (int round = 0; round < 64; round++)
        for (int k = 0; k < NCONN; k++) {
            if (conns[k].wsi) conns[k].wsi->partial = 0;
            writeable(&conns[k]);
            wire_flush_all(&srv);
        }
    /* Everyone leaves; the database finishes; all must be freed. */
    for (int k = 0; k < NCONN; k++)
        if (conns[k].wsi) {
            conn_closed(&conns[k]);
            wire_flush_all(&srv);
        }
    while (npending) {
        db_complete_one(0);
        wire_flush_all(&srv);
    }
    member_sweep(&srv, INT64_MAX); /* the tick lets go of closed sessions */
    assert(srv.flush_head == NULL && srv.presence_head == NULL);
    assert(srv.nsessions == 0 && srv.sessions == NULL);
    assert(srv.hello_head == NULL && srv.hello_tail == NULL); /* closed ones unlinked */
    assert(hub.sessions == 0);
    /* Every counted connection was released exactly once. */
    struct iplimit_stats ist;
    iplimit_stats(hub.iplimit, &ist);
    assert(ist.conns == 0 && iplimit_check(hub.iplimit) == 0);
    iplimit_free(hub.iplimit);
    hub_free(&hub);
    send_pool_free(&srv);
    online_free(&srv);
    expiry_free(&srv); /* as server_destroy() does */
    return 0;
}
