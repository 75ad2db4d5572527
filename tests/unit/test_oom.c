/* test_oom.c -- out-of-memory paths, tested SQLite's way: an allocator that
 * fails on demand.
 *
 * The test executable is linked with -Wl,--wrap=malloc,calloc,realloc,
 * strdup,free (tests/CMakeLists.txt), so every allocation parley_core's
 * objects make goes through the counter below; so do cJSON's, through the
 * hooks proto_init() installs (protocol.c's own malloc and free). A realistic scenario
 * (hellos as guest, with a token in the hello and in the URL, a refused hello then a good
 * one, joins with and without since, history, sends completed through a stand-in
 * database, typing, rooms, leave, a slow consumer, closes while requests are in flight,
 * shutdown) drives the real session code over the fake libwebsockets of the fuzzers
 * (tests/fuzz/fake_lws.c), on two event loops run by hand, with the hub routing
 * completions and posts between them.
 *
 * The loop: run the scenario failing the Nth counted allocation, for N = 1,
 * 2, 3, ... until a run completes with no failure injected; once with only
 * the Nth failing, once with every one from the Nth on. After every step:
 * every frame written is a valid protocol message (fake_lws.c), every
 * room's member lists hold only open sessions that know they are members,
 * every open session is consistent. After every run, once everything is torn
 * down: no allocation made during the run is still live (and, under ASan,
 * no memory error; LeakSanitizer checks again at exit).
 *
 * OOM_N=n OOM_PERSIST=0|1 runs one case (to debug a failure it reports).
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "fake_lws.h"
#include "expiry.h"
#include "dm.h"
#include "hub.h"
#include "online.h"
#include "jwt.h"
#include "log.h"
#include "loop.h"
#include "room.h"
#include "send.h"
#include "session.h"
#include "session_impl.h"
#include "wire.h"

/* ---- the failing allocator ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void __real_free(void *p);

static int armed;      /* counting: the scenario is running */
static int paused;     /* the harness's own allocations: not counted */
static long nalloc;    /* allocations counted this run */
static long fail_at;   /* the first to fail; 0: none */
static int persistent; /* and every one after it */
static long nfailed;   /* failures injected this run */

static void pause_alloc(int on)
{
    paused += on ? 1 : -1;
}

static int should_fail(void)
{
    if (!armed || paused) return 0;
    nalloc++;
    if (fail_at && (nalloc == fail_at || (persistent && nalloc > fail_at))) {
        nfailed++;
        return 1;
    }
    return 0;
}

/* The allocations made (counted) during a run and not yet freed: an
 * open-addressing set keyed by address, with where each was made. */
#define LIVE_CAP (1u << 16)
struct live {
    void *p;    /* NULL: empty; TOMB: deleted */
    long seq;   /* its number in the run */
    void *site; /* the caller, for addr2line */
};
#define TOMB ((void *)1)
static struct live live[LIVE_CAP];
static long nlive;

static size_t slot_of(const void *p)
{
    return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 48 & (LIVE_CAP - 1);
}

static void live_add(void *p, void *site)
{
    if (!p || !armed || paused) return;
    size_t i = slot_of(p);
    while (live[i].p && live[i].p != TOMB)
        i = (i + 1) & (LIVE_CAP - 1);
    live[i] = (struct live){p, nalloc, site};
    if (++nlive >= (long)LIVE_CAP / 2) abort(); /* the table is too small */
}

static void live_del(void *p)
{
    if (!p || !nlive) return;
    for (size_t i = slot_of(p); live[i].p; i = (i + 1) & (LIVE_CAP - 1))
        if (live[i].p == p) {
            live[i].p = TOMB;
            nlive--;
            return;
        }
}

static void live_clear(void)
{
    memset(live, 0, sizeof live);
    nlive = 0;
}

void *__wrap_malloc(size_t n)
{
    if (should_fail()) return NULL;
    void *p = __real_malloc(n);
    live_add(p, __builtin_return_address(0));
    return p;
}

void *__wrap_calloc(size_t n, size_t m)
{
    if (should_fail()) return NULL;
    void *p = __real_calloc(n, m);
    live_add(p, __builtin_return_address(0));
    return p;
}

void *__wrap_realloc(void *old, size_t n)
{
    if (should_fail()) return NULL; /* old stays valid, as realloc's does */
    void *p = __real_realloc(old, n);
    if (p) {
        live_del(old);
        live_add(p, __builtin_return_address(0));
    }
    return p;
}

char *__wrap_strdup(const char *s)
{
    if (should_fail()) return NULL;
    char *p = __real_strdup(s);
    live_add(p, __builtin_return_address(0));
    return p;
}

void __wrap_free(void *p)
{
    live_del(p);
    __real_free(p);
}

/* ---- the harness's clock and checks ---- */

#define SECRET "oom-secret"
#define NCONN 6

static struct config conf;
static struct server srv[2];
static struct hub hub;
static int64_t now_us;
static char bob_token[1024], carol_args[1100];
static char failure[512]; /* the first broken invariant of this run */

int64_t server_now_us(void)
{
    return now_us;
}

#define REQUIRE(c)                                                                       \
    do {                                                                                 \
        if (!(c) && !failure[0])                                                         \
            snprintf(failure, sizeof failure, "line %d: %s (after %ld allocations)",     \
                     __LINE__, #c, nalloc);                                              \
    } while (0)

/* ---- the stand-in database: completes what the harness says, in order ---- */

#define MAXQ 32
static struct db_req *pending[MAXQ];
static int npending, next_id;
static const char *row_text = "old"; /* the text of the messages reads return */

int db_submit(struct db *db, struct db_req *r)
{
    (void)db;
    REQUIRE(r->op == DB_USER || (r->owner && (r->room || r->dms)));
    if (npending >= MAXQ) return -1;
    r->next = NULL;
    r->status = DB_OK;
    r->id = r->ts = r->last_id = 0;
    r->duplicate = r->nrows = r->more = 0;
    r->rows = NULL;
    pending[npending++] = r;
    return 0;
}

void db_take_done(struct db *db, void (*fn)(struct db_req *r, void *arg), void *arg)
{
    (void)db, (void)fn, (void)arg; /* completions go through hub_complete() */
}

void db_stats(struct db *db, struct db_stats *out)
{
    (void)db;
    memset(out, 0, sizeof(*out));
    out->queue_depth = npending;
}

/* ---- connections ---- */

struct conn {
    struct lws wsi;
    struct session *s; /* NULL: closed (or never opened) */
    int loop;
    int stalled;       /* the client reads nothing: no WRITEABLE for it */
    int closed_with;   /* the close code when it closed (0: the client's) */
    char refs[64][16]; /* the refs of the replies it received, in order */
    char what[64][32]; /* and what each was: its type, or error:CODE */
    int nrefs;
};
static struct conn conns[NCONN];
enum { A, B, C, D, E, F };

/* The answers of the run without failures: every other run's must match
 * them, or be `internal` (after which that connection may differ). */
static char golden_refs[NCONN][64][16], golden_what[NCONN][64][32];
static int golden_n[NCONN];

/* Copies the string value after `key` in p[0..n) into out. */
static void string_after(const unsigned char *p, size_t n, const char *key, char *out,
                         size_t cap, int last)
{
    const unsigned char *end = p + n, *q = NULL, *f = p;
    size_t kl = strlen(key), k = 0;
    while ((f = memmem(f, (size_t)(end - f), key, kl))) {
        q = f += kl;
        if (!last) break;
    }
    if (q)
        while (q + k < end && q[k] != '"' && k < cap - 1)
            k++;
    if (q) memcpy(out, q, k);
    out[k] = 0;
}

/* What a client receives: each text frame's ref and type (the frames
 * themselves were checked by fake_lws.c). */
static void on_write(struct lws *wsi, const unsigned char *p, size_t n)
{
    struct conn *c = &conns[wsi->id];
    size_t i = 0;
    while (i + 2 <= n) {
        size_t len = p[i + 1] & 127, hdr = 2;
        if (len == 126) len = (size_t)p[i + 2] << 8 | p[i + 3], hdr = 4;
        if (len == 127) {
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | p[i + 2 + k];
            hdr = 10;
        }
        const unsigned char *pl = p + i + hdr;
        char ref[16], type[16], code[16];
        if (p[i] == 0x81 && c->nrefs < 64) {
            /* ref is the reply's last member (proto_put_ref_end) */
            string_after(pl, len, "\"ref\":\"", ref, sizeof ref, 1);
            string_after(pl, len, "{\"type\":\"", type, sizeof type, 0);
            string_after(pl, len, "\"code\":\"", code, sizeof code, 0);
            if (ref[0]) {
                strcpy(c->refs[c->nrefs], ref);
                snprintf(c->what[c->nrefs++], sizeof c->what[0], "%s%s%s", type,
                         strcmp(type, "error") ? "" : ":",
                         strcmp(type, "error") ? "" : code);
            }
        }
        i += hdr + len;
    }
}

static void keep_golden(void)
{
    for (int k = 0; k < NCONN; k++) {
        golden_n[k] = conns[k].nrefs;
        memcpy(golden_refs[k], conns[k].refs, sizeof conns[k].refs);
        memcpy(golden_what[k], conns[k].what, sizeof conns[k].what);
    }
}

/* Out of memory is never reported as anything but `internal` (or a close):
 * not as a bad request, a bad token, a missing room... */
static void check_answers(void)
{
    for (int k = 0; k < NCONN; k++) {
        struct conn *c = &conns[k];
        for (int i = 0; i < c->nrefs; i++) {
            const char *want = "(no answer)";
            for (int g = 0; g < golden_n[k]; g++)
                if (!strcmp(golden_refs[k][g], c->refs[i])) want = golden_what[k][g];
            if (!strcmp(c->what[i], want)) continue;
            if (!strcmp(c->what[i], "error:internal")) break; /* the rest may differ */
            if (!failure[0])
                snprintf(failure, sizeof failure,
                         "connection %c: ref %s answered %s, without failures %s",
                         'A' + k, c->refs[i], c->what[i], want);
            break;
        }
    }
}

/* Every request is answered (an error, `internal` included, will do), or
 * its connection closes: a client is never left waiting. */
static void expect(int k, const char *ref)
{
    struct conn *c = &conns[k];
    int got = 0;
    for (int i = 0; i < c->nrefs; i++)
        got |= !strcmp(c->refs[i], ref);
    if (!got && c->s && !c->s->close_code && !failure[0])
        snprintf(failure, sizeof failure,
                 "connection %c: no answer to ref %s and still open (after %ld "
                 "allocations)",
                 'A' + k, ref, nalloc);
}

static int is_open(const struct session *s, int loop)
{
    for (int k = 0; k < NCONN; k++)
        if (conns[k].s == s) return conns[k].loop == loop && !s->closed;
    return 0;
}

static void check_room(struct room *r, void *arg)
{
    (void)arg;
    uint32_t n = 0;
    for (int l = 0; l < hub.nloops; l++)
        for (uint32_t i = 0; i < r->part[l].n; i++) {
            struct session *s = r->part[l].members[i];
            n++;
            REQUIRE(is_open(s, l)); /* a dangling member */
            int joined = 0;
            for (uint32_t k = 0; is_open(s, l) && k < s->nmem; k++)
                joined |= s->mem[k].room == r && s->mem[k].joined;
            REQUIRE(joined); /* a member that does not know it is one */
        }
    REQUIRE(n == r->nmembers);
}

static void check_session(struct session *s, int loop)
{
    REQUIRE(s->srv == &srv[loop] && s->refs >= 1);
    if (s->welcomed) {
        REQUIRE(s->user_id && s->user_name && s->user_json);
        REQUIRE(s->guest ? !s->claims : s->claims != NULL);
    }
    for (uint32_t k = 0; k < s->nmem; k++) {
        struct room_part *p = &s->mem[k].room->part[loop];
        int n = 0;
        for (uint32_t i = 0; i < p->n; i++)
            n += p->members[i] == s;
        REQUIRE(n == (s->mem[k].joined ? 1 : 0)); /* membership both ways */
    }
}

static void check_all(void)
{
    rooms_each(&hub.rooms, check_room, NULL);
    int open[2] = {0, 0};
    for (int k = 0; k < NCONN; k++)
        if (conns[k].s) {
            open[conns[k].loop]++;
            check_session(conns[k].s, conns[k].loop);
        }
    for (int l = 0; l < 2; l++) {
        int n = 0;
        for (struct session *s = srv[l].sessions; s; s = session_next(s))
            n++;
        REQUIRE(n == open[l] && srv[l].nsessions == open[l]);
    }
}

/* lws: LWS_CALLBACK_CLOSED; the wsi is gone after it. */
static void conn_closed(struct conn *c)
{
    c->closed_with = c->s->close_code;
    session_on_closed(c->s);
    c->s = NULL;
    c->stalled = 0;
}

static void conn_open(int k, int loop, const char *urlargs)
{
    struct conn *c = &conns[k];
    fake_wsi_init(&c->wsi, k);
    c->wsi.urlargs = (char *)urlargs; /* not freed: fake_wsi_free is not called */
    c->loop = loop;
    c->stalled = 0;
    c->nrefs = 0;
    c->s = session_open(&srv[loop], &c->wsi); /* NULL: lws closes it */
}

/* Writes what each client reads, answers the close frames, and writes the
 * queues each event filled, until nothing moves. */
static void settle(void)
{
    for (int round = 0; round < 16; round++) {
        int moved = 0;
        for (int l = 0; l < 2; l++)
            wire_flush_all(&srv[l]);
        for (int k = 0; k < NCONN; k++) {
            struct conn *c = &conns[k];
            if (!c->s || c->stalled) continue;
            if (c->wsi.want_writable) {
                c->wsi.want_writable = 0;
                moved = 1;
                if (wire_on_writeable(c->s) < 0) {
                    conn_closed(c);
                    continue;
                }
            }
            if (c->s->close_sent) { /* the client answers our close frame */
                (void)session_on_peer_close(c->s);
                conn_closed(c);
                moved = 1;
            }
            for (int l = 0; l < 2; l++)
                wire_flush_all(&srv[l]);
        }
        if (!moved) break;
    }
}

/* Each loop's turn: its inbox (completions, other loops' posts), then the
 * writes. */
static void pump(void)
{
    for (int l = 0; l < 2; l++) {
        hub_take(&hub, l, session_on_db_done, &srv[l]);
        wire_flush_all(&srv[l]);
    }
    settle();
    check_all();
}

/* The client sends `text` in `parts` fragments. */
static void say_parts(int k, const char *text, int parts)
{
    struct conn *c = &conns[k];
    size_t n = strlen(text), step = n / (size_t)parts + 1, off = 0;
    now_us += 50000; /* well within the rate limits */
    while (c->s && off < n) {
        size_t len = n - off < step ? n - off : step;
        c->wsi.binary = 0;
        c->wsi.final = off + len == n;
        if (session_on_receive(c->s, text + off, len) < 0) conn_closed(c);
        off += len;
        for (int l = 0; l < 2; l++)
            wire_flush_all(&srv[l]);
    }
    pump();
}

static void say(int k, const char *text)
{
    say_parts(k, text, 1);
}

/* A DM room's pair (every DM here is between A and bob), as the worker's
 * db_dm_check gives it: the pair for a write, the peer for a read. */
static void dm_answer(struct db_req *r)
{
    pause_alloc(1);
    struct buf *b = buf_new(64);
    if (r->op == DB_READ && !r->check) {
        buf_puts(&b, "{\"id\":\"bob\",\"name\":\"Bob\"}");
        r->peer = b;
    } else if (r->op != DB_READ && r->op != DB_SEARCH && r->op != DB_MARK) {
        buf_put(&b, "bob", 4);
        buf_put(&b, conns[A].s->user_id, strlen(conns[A].s->user_id) + 1);
        r->pair = b;
    } else
        buf_unref(b);
    pause_alloc(0);
}

/* The database finishes everything queued, in order; reads return `rows`
 * messages. Its own allocations are not the server's. */
static void complete(int rows, int dup)
{
    while (npending) {
        struct db_req *r = pending[0];
        memmove(pending, pending + 1, (size_t)(--npending) * sizeof(*pending));
        if (r->op == DB_USER) {
            /* recorded */
        } else if (r->op == DB_MARK) {
            r->id = r->msg_id; /* stored as asked */
        } else if (r->op == DB_SEND || r->op == DB_EDIT || r->op == DB_DELETE) {
            r->duplicate = r->op == DB_SEND && dup && next_id;
            r->id = r->duplicate ? next_id : ++next_id;
            r->ts = now_us / 1000;
        } else if (r->op == DB_DM) {
            /* the pair's room made */
        } else if (r->dms) { /* the user's rooms, as db_mark_rooms writes them */
            pause_alloc(1);
            r->rows = buf_new(128);
            buf_puts(&r->rows, "dm-0123456789abcdef0123456789abcdef\t3\t1\t2\t"
                               "{\"id\":\"bob\",\"name\":\"Bob\"}\nlobby\t9\t4\t5\t\n");
            r->nrows = 2;
            pause_alloc(0);
        } else {
            pause_alloc(1);
            r->rows = buf_new(256);
            for (int i = 0; i < rows && i < r->limit; i++) {
                struct proto_msg m = {.room = r->room ? r->room : "lobby",
                                      .id = ++next_id,
                                      .ts = now_us / 1000,
                                      .user_id = "u1",
                                      .user_name = "Una",
                                      .text = row_text,
                                      .text_len = strlen(row_text),
                                      .client_id = "c"};
                if (r->nrows++) buf_put(&r->rows, ",", 1);
                proto_put_message(&r->rows, &m);
            }
            pause_alloc(0);
            r->more = rows > r->limit;
            r->last_id = next_id;
        }
        if (r->room && proto_room_is_dm(r->room) && r->op != DB_DM) dm_answer(r);
        hub_complete(&hub, r); /* the router: frame made, then the loops' inboxes */
        pump();
    }
}

/* ---- the scenario ---- */

static void scenario(void)
{
    char m[1400];
    int clean = !fail_at;

    conn_open(A, 0, NULL);
    say(A, "{\"type\":\"hello\",\"name\":\"alice\",\"ref\":\"a0\"}");
    expect(A, "a0");
    conn_open(B, 1, NULL);
    say(B, "{\"type\":\"hello\",\"name\":\"  \",\"ref\":\"b0\"}"); /* refused */
    expect(B, "b0");
    snprintf(m, sizeof m, "{\"type\":\"hello\",\"token\":\"%s\",\"ref\":\"b1\"}",
             bob_token);
    say(B, m);
    expect(B, "b1");
    /* A client that got `internal` retries; one that got in is told it
     * already said hello. */
    snprintf(m, sizeof m, "{\"type\":\"hello\",\"token\":\"%s\",\"ref\":\"b2\"}",
             bob_token);
    say(B, m);
    expect(B, "b2");
    REQUIRE(!clean || (conns[B].s->welcomed && !conns[B].s->guest && conns[B].s->claims));
    conn_open(C, 0, carol_args); /* the token in the URL */
    say(C, "{\"type\":\"hello\",\"ref\":\"c0\"}");
    expect(C, "c0");
    REQUIRE(!clean || (conns[C].s->welcomed && !conns[C].s->guest));
    conn_open(D, 1, NULL);
    say(D, "{\"type\":\"hello\",\"name\":\"dave\",\"resume\":\"g_0123456789abcdef.x\","
           "\"ref\":\"d0\"}");
    expect(D, "d0");
    REQUIRE(!clean || (conns[D].s->welcomed && conns[D].s->guest));
    conn_open(E, 0, NULL); /* never says hello */

    say(A, "{\"type\":\"join\",\"room\":\"lobby\",\"ref\":\"a1\"}");
    complete(2, 0);
    expect(A, "a1");
    say(A, "{\"type\":\"join\",\"room\":\"b\",\"since\":0,\"ref\":\"a2\"}");
    complete(1, 0);
    expect(A, "a2");
    say_parts(B, "{\"type\":\"join\",\"room\":\"lobby\",\"since\":1,\"ref\":\"b3\"}", 3);
    say(C, "{\"type\":\"join\",\"room\":\"lobby\",\"ref\":\"c1\"}");
    say(C,
        "{\"type\":\"join\",\"room\":\"zz\",\"ref\":\"c2\"}"); /* not in carol's token */
    say(D, "{\"type\":\"join\",\"room\":\"lobby\",\"ref\":\"d1\"}");
    complete(3, 0);
    expect(B, "b3");
    expect(C, "c1");
    expect(C, "c2");
    expect(D, "d1");
    say(B, "{\"type\":\"join\",\"room\":\"b\",\"ref\":\"b4\"}");
    complete(0, 0);
    expect(B, "b4");
    REQUIRE(!clean || hub.rooms.count == 2);

    say(A, "{\"type\":\"history\",\"room\":\"lobby\",\"limit\":5,\"ref\":\"a3\"}");
    complete(2, 0);
    expect(A, "a3");
    say(C, "{\"type\":\"history\",\"room\":\"b\",\"before\":3,\"ref\":\"c3\"}");
    complete(0, 0);
    expect(C, "c3");
    /* A reply bigger than one write (WIRE_WRITE_MAX) goes alone, from a copy. */
    static char long_text[501];
    memset(long_text, 'x', 500);
    row_text = long_text;
    say(A, "{\"type\":\"history\",\"room\":\"lobby\",\"limit\":200,\"ref\":\"a7\"}");
    complete(200, 0);
    row_text = "old";
    expect(A, "a7");

    say(A, "{\"type\":\"send\",\"room\":\"lobby\",\"text\":\"hello "
           "all\",\"client_id\":\"a1\","
           "\"ref\":\"a4\"}");
    say(A,
        "{\"type\":\"send\",\"room\":\"lobby\",\"text\":\"again\",\"client_id\":\"a2\","
        "\"ref\":\"a5\"}");
    say(B, "{\"type\":\"send\",\"room\":\"b\",\"text\":\"in b\",\"client_id\":\"b1\","
           "\"ref\":\"b5\"}");
    complete(0, 0);
    expect(A, "a4");
    expect(A, "a5");
    expect(B, "b5");
    say(B, "{\"type\":\"send\",\"room\":\"b\",\"text\":\"in b\",\"client_id\":\"b1\","
           "\"ref\":\"b6\"}");
    complete(0, 1); /* a duplicate: acked, not broadcast */
    expect(B, "b6");

    now_us += 3000000;
    say(C, "{\"type\":\"typing\",\"room\":\"lobby\"}");
    say(A, "{\"type\":\"typing\",\"room\":\"lobby\"}");
    say(A, "{\"type\":\"typing\",\"room\":\"lobby\"}"); /* too soon: dropped */
    say(B, "{\"type\":\"rooms\",\"ref\":\"b7\"}");
    complete(0, 0);
    expect(B, "b7");
    /* A DM: the pair's room made, then joined; bob's connection gets the
     * message without having joined. */
    say(A, "{\"type\":\"dm\",\"user\":\"bob\",\"ref\":\"a8\"}");
    complete(1, 0);
    expect(A, "a8");
    if (conns[A].s && conns[A].s->user_id) {
        char dm[PROTO_DM_ROOM_LEN + 1];
        dm_room_name(conns[A].s->user_id, "bob", dm);
        snprintf(m, sizeof m,
                 "{\"type\":\"send\",\"room\":\"%s\",\"text\":\"psst\","
                 "\"client_id\":\"d1\",\"ref\":\"a9\"}",
                 dm);
        say(A, m);
        complete(0, 0);
        expect(A, "a9");
    }
    say(A, "{\"type\":\"ping\",\"ref\":\"a6\"}");
    expect(A, "a6");

    /* D stops reading: the room's traffic fills its queue (8 frames) until
     * it is closed as a slow consumer. */
    conns[D].stalled = 1;
    conns[D].wsi.partial = 1;
    for (int i = 0; i < 10; i++) {
        snprintf(m, sizeof m,
                 "{\"type\":\"send\",\"room\":\"lobby\",\"text\":\"flood %d\","
                 "\"client_id\":\"f%d\"}",
                 i, i);
        say(A, m);
        complete(0, 0);
    }
    REQUIRE(!clean || (conns[D].s && conns[D].s->close_code == 1013));
    if (conns[D].s && conns[D].s->close_code) { /* closed: the client reads again */
        conns[D].stalled = 0;
        conns[D].wsi.partial = 0;
        pump();
    }
    REQUIRE(!clean || (!conns[D].s && conns[D].closed_with == 1013));

    say(B, "{\"type\":\"leave\",\"room\":\"lobby\",\"ref\":\"b8\"}");
    expect(B, "b8");
    say(B, "{\"type\":\"leave\",\"room\":\"lobby\",\"ref\":\"b9\"}");
    expect(B, "b9");
    say(B,
        "{\"type\":\"typing\",\"room\":\"lobby\",\"ref\":\"ba\"}"); /* not a member now */
    expect(B, "ba");

    /* Requests in flight when their connection goes. */
    say(C,
        "{\"type\":\"send\",\"room\":\"lobby\",\"text\":\"bye\",\"client_id\":\"c1\"}");
    if (conns[C].s) conn_closed(&conns[C]);
    say(A, "{\"type\":\"join\",\"room\":\"c\"}");
    if (conns[A].s) conn_closed(&conns[A]);
    conn_open(F, 0, NULL);
    say(F, "{\"type\":\"hello\",\"name\":\"fay\",\"ref\":\"f0\"}");
    expect(F, "f0");
    say(F, "{\"type\":\"join\",\"room\":\"lobby\",\"ref\":\"f1\"}");
    complete(1, 0);
    expect(F, "f1");
    /* c: its only joiner left before the read completed: freed, not kept. */
    REQUIRE(!clean || (hub.rooms.count == 2 && !rooms_get(&hub.rooms, "c", 0)));

    /* The hello deadline passes: E, and any hello the server refused. */
    now_us += 60 * 1000000LL;
    for (int l = 0; l < 2; l++)
        session_sweep_hello(&srv[l], now_us);
    pump();
    REQUIRE(!clean || (!conns[E].s && conns[E].closed_with == 1008));

    /* Shutdown: everyone gets 1001. */
    for (int l = 0; l < 2; l++) {
        srv[l].stopping = 1;
        for (struct session *s = srv[l].sessions; s; s = session_next(s))
            wire_close(s, 1001, "server shutting down", 0);
    }
    pump();
    REQUIRE(!clean || (!conns[B].s && conns[B].closed_with == 1001));
}

/* One run: the scenario with the Nth allocation failing (and every one after
 * it, when `persist`), then everything torn down. Returns the allocations
 * counted; sets nfailed. */
static long run(long n, int persist)
{
    memset(srv, 0, sizeof srv);
    memset(conns, 0, sizeof conns);
    hub_init(&hub, 2);
    for (int l = 0; l < 2; l++) {
        hub.loops[l] = &srv[l];
        srv[l].index = l;
        srv[l].hub = &hub;
        srv[l].cfg = &conf;
        srv[l].db = (struct db *)&hub; /* never dereferenced by the stand-in */
        srv[l].outq_lim.max_msgs = (uint32_t)conf.outq_max_msgs;
        srv[l].outq_lim.max_bytes = (size_t)conf.outq_max_bytes;
        srv[l].plim.max_text = (int)conf.max_text;
        memset(srv[l].guest_key, 7, sizeof srv[l].guest_key);
    }
    npending = next_id = 0;
    now_us = 1000000;
    failure[0] = 0;
    live_clear();
    nalloc = nfailed = 0;
    fail_at = n;
    persistent = persist;
    armed = 1;

    scenario();

    /* Everyone leaves; the database finishes; all must be freed. */
    for (int k = 0; k < NCONN; k++)
        if (conns[k].s) {
            conn_closed(&conns[k]);
            pump();
        }
    complete(0, 0);
    REQUIRE(npending == 0);
    for (int l = 0; l < 2; l++) {
        REQUIRE(srv[l].sessions == NULL && srv[l].nsessions == 0);
        REQUIRE(srv[l].flush_head == NULL && srv[l].hello_head == NULL);
    }
    REQUIRE(hub.sessions == 0);
    if (!n)
        keep_golden();
    else
        check_answers();
    hub_free(&hub);
    for (int l = 0; l < 2; l++) {
        send_pool_free(&srv[l]);
        online_free(&srv[l]);
        expiry_free(&srv[l]); /* as server_destroy() does */
    }
    armed = 0;
    return nalloc;
}

extern char __executable_start; /* the linker's: where the executable is loaded */

static void report_leaks(long n, int persist)
{
    int shown = 0;
    fprintf(stderr, "N=%ld persist=%d: %ld allocation(s) still live after teardown:\n", n,
            persist, nlive);
    for (size_t i = 0; i < LIVE_CAP && shown < 10; i++)
        if (live[i].p && live[i].p != TOMB) {
            fprintf(stderr, "  allocation #%ld from %p (addr2line -e test_oom %#lx)\n",
                    live[i].seq, live[i].site,
                    (unsigned long)((char *)live[i].site - &__executable_start));
            shown++;
        }
}

static void oom_loop(int persist)
{
    const char *only = getenv("OOM_N");
    long first = only ? atol(only) : 1, n;
    long total = run(0, 0); /* no failure: how many allocations there are */
    ck_assert_msg(!failure[0], "without failures: %s", failure);
    if (nlive) report_leaks(0, persist);
    ck_assert_int_eq(nlive, 0);
    ck_assert_int_gt(total, 100);
    for (n = first;; n++) {
        run(n, persist);
        if (nlive) report_leaks(n, persist);
        ck_assert_msg(!failure[0], "N=%ld persist=%d: %s", n, persist, failure);
        ck_assert_msg(nlive == 0, "N=%ld persist=%d: %ld allocation(s) leaked", n,
                      persist, nlive);
        if (!nfailed || only) break; /* the run got past its Nth allocation */
    }
    printf("oom: persist=%d: %ld allocation points, runs N=%ld..%ld all clean\n", persist,
           total, first, n);
}

START_TEST(test_fail_once)
{
    oom_loop(0);
}
END_TEST

START_TEST(test_fail_from_then_on)
{
    oom_loop(1);
}
END_TEST

static void setup(void)
{
    static char *argv[] = {"parley", "--jwt-secret", SECRET,  "--outq-max-msgs",
                           "8",      "--burst",      "50",    "--rate",
                           "50",     "--log-level",  "error", "--max-text",
                           "200"};
    ck_assert_int_eq(config_parse(&conf, sizeof argv / sizeof *argv, argv), 0);
    log_init("error", "text");
    crypto_init();
    fake_raw_is_websocket = 1;
    fake_alloc_pause = pause_alloc;
    fake_on_write = on_write;
    /* cJSON's allocations go through protocol.c's hook, which calls the
     * (wrapped) malloc and free: they are counted and failed too. */
    proto_init();
    char *t = jwt_sign(SECRET, strlen(SECRET), "bob", "Bob", 4000000000, NULL);
    ck_assert_ptr_nonnull(t);
    snprintf(bob_token, sizeof bob_token, "%s", t);
    free(t);
    t = jwt_sign(SECRET, strlen(SECRET), "carol", "Carol", 4000000000,
                 "[\"lobby\",\"b\"]");
    ck_assert_ptr_nonnull(t);
    snprintf(carol_args, sizeof carol_args, "x=1&token=%s", t);
    free(t);
}

static void teardown(void)
{
    cJSON_InitHooks(NULL);
    fake_alloc_pause = NULL;
    fake_on_write = NULL;
    config_free(&conf);
}

int main(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fail_once);
    tcase_add_test(tc, test_fail_from_then_on);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
