/* test_dm.c -- direct messages below the session: DM room names
 * (dm_room_name), a loop's connections by user id (online.c) and the
 * delivery of a DM room's change to every connection of its pair
 * (dm_push).
 *
 * The expected room names were computed outside Parley, e.g.
 *   printf 'a\0b' | sha256sum | cut -c1-32
 * and written here as constants: a change of the hash input (order, the
 * separator, truncation) changes every DM room of every deployment.
 *
 * online.c needs no socket: a session here is a zeroed struct session with
 * its loop and user id, and wire_push() only queues on its outbound queue
 * (and notes it on the loop's flush list), which the test reads.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "hub.h"
#include "loop.h"
#include "online.h"
#include "outq.h"
#include "protocol.h"
#include "ranks.h"
#include "session_impl.h"

/* ---- dm_room_name ---- */

static const char *name_of(const char *a, const char *b)
{
    static char out[PROTO_DM_ROOM_LEN + 1 + 8];
    memset(out, 'Z', sizeof out);
    dm_room_name(a, b, out);
    ck_assert_int_eq(out[PROTO_DM_ROOM_LEN], 0);
    ck_assert_int_eq(out[PROTO_DM_ROOM_LEN + 1], 'Z'); /* nothing written past it */
    return out;
}

/* Checks the name of (a, b) and of (b, a) is `want`. */
static void expect_name(const char *a, const char *b, const char *want)
{
    char ab[PROTO_DM_ROOM_LEN + 1];
    snprintf(ab, sizeof ab, "%s", name_of(a, b));
    ck_assert_str_eq(ab, want);
    ck_assert_str_eq(name_of(b, a), want);
}

START_TEST(test_name_known_values)
{
    /* SHA-256("a\0b") = 59b271ae1bbcb1d31d41929817f4b16f b439eb4f... */
    expect_name("a", "b", "dm-59b271ae1bbcb1d31d41929817f4b16f");
    expect_name("alice", "bob", "dm-141a4cd242b67e82edf4a78bb418d40a");
    /* Byte order, not case-insensitive: "B" (0x42) sorts before "a". */
    expect_name("a", "B", "dm-0de786620dea637563edf84161cda61c");
    /* Bytes above 0x7f sort after ASCII (unsigned, as SQLite's BINARY
     * collation compares user_a < user_b): SHA-256("z\0\xc3\xa9"). */
    expect_name("\xc3\xa9", "z", "dm-e7a21fe059142621c048072a6c8d4ef1");
    expect_name("g_0123456789abcdef", "g_fedcba9876543210",
                "dm-f10868d74feb3f4ab76269889ca0f293");
    /* Two ids of PROTO_MAX_USER bytes: the whole of both is hashed. */
    char x[PROTO_MAX_USER + 1], y[PROTO_MAX_USER + 1];
    memset(x, 'x', PROTO_MAX_USER);
    memset(y, 'y', PROTO_MAX_USER);
    x[PROTO_MAX_USER] = y[PROTO_MAX_USER] = 0;
    expect_name(x, y, "dm-fe9e7a22d842362f0dcd26bd38fef32b");
}
END_TEST

START_TEST(test_name_format)
{
    const char *ids[][2] = {{"a", "b"},   {"u1", "u2"},          {"bob", "alice"},
                            {"x", "x y"}, {"\xe2\x82\xac", "$"}, {"1", "10"}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        const char *n = name_of(ids[i][0], ids[i][1]);
        ck_assert_uint_eq(strlen(n), PROTO_DM_ROOM_LEN);
        ck_assert_int_eq(strncmp(n, "dm-", 3), 0);
        for (int k = 3; k < PROTO_DM_ROOM_LEN; k++)
            ck_assert_msg((n[k] >= '0' && n[k] <= '9') || (n[k] >= 'a' && n[k] <= 'f'),
                          "%s: not lowercase hex at %d", n, k);
        /* What the parser takes as a DM room, and a valid room name. */
        ck_assert_int_eq(proto_room_is_dm(n), 1);
        ck_assert_int_eq(proto_room_valid(n), 1);
    }
}
END_TEST

START_TEST(test_name_symmetric_and_stable)
{
    char first[PROTO_DM_ROOM_LEN + 1];
    snprintf(first, sizeof first, "%s", name_of("carol", "dave"));
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(name_of("carol", "dave"), first);
        ck_assert_str_eq(name_of("dave", "carol"), first);
    }
}
END_TEST

START_TEST(test_name_pairs_differ)
{
    /* The separator keeps ("ab","c") and ("a","bc") apart: both would hash
     * "abc" without it. */
    char ab_c[PROTO_DM_ROOM_LEN + 1];
    snprintf(ab_c, sizeof ab_c, "%s", name_of("ab", "c"));
    ck_assert_str_eq(ab_c, "dm-6c032e631d39a14d85aff7e319546af7");
    ck_assert_str_eq(name_of("a", "bc"), "dm-40bb547d936bbd31318ee37ac8799e7e");
    ck_assert_str_ne(name_of("a", "bc"), ab_c);
    /* Another pair with one user in common: another room. */
    char ab[PROTO_DM_ROOM_LEN + 1];
    snprintf(ab, sizeof ab, "%s", name_of("a", "b"));
    ck_assert_str_ne(name_of("a", "c"), ab);
    ck_assert_str_ne(name_of("b", "c"), ab);
    /* A prefix is not the id. */
    char alice_bob[PROTO_DM_ROOM_LEN + 1];
    snprintf(alice_bob, sizeof alice_bob, "%s", name_of("alice", "bob"));
    ck_assert_str_ne(name_of("alice", "bo"), alice_bob);
    ck_assert_str_ne(name_of("alic", "ebob"), alice_bob);
}
END_TEST

/* ---- online.c: the loop's connections by user id ---- */

#define MAXS 300

static struct server srv;
static struct hub hub; /* only its ranks: online.c counts roles there */
static struct session *ss[MAXS];
static int nss;

static void online_setup(void)
{
    memset(&srv, 0, sizeof srv);
    hub.ranks = ranks_new();
    ck_assert_ptr_nonnull(hub.ranks);
    srv.hub = &hub;
    srv.outq_lim.max_msgs = 1000;
    srv.outq_lim.max_bytes = 1u << 20;
    nss = 0;
}

/* A welcomed session of user `id` on the test loop (not yet indexed). */
static struct session *sess(const char *id)
{
    ck_assert_int_lt(nss, MAXS);
    struct session *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    s->srv = &srv;
    s->refs = 1;
    s->welcomed = 1;
    s->user_id = strdup(id);
    ck_assert_ptr_nonnull(s->user_id);
    ss[nss++] = s;
    return s;
}

static struct session *online(const char *id)
{
    struct session *s = sess(id);
    ck_assert_int_eq(online_add(s), 0);
    ck_assert_int_eq(s->online, 1);
    return s;
}

/* Frames queued for s, emptied. */
static unsigned taken(struct session *s, const struct buf *want)
{
    unsigned n = s->out.count;
    for (unsigned i = 0; i < n; i++) {
        ck_assert_ptr_eq(outq_peek(&s->out), want);
        outq_pop(&s->out);
    }
    return n;
}

static void online_teardown(void)
{
    for (int i = 0; i < nss; i++) {
        online_remove(ss[i]);
        outq_clear(&ss[i]->out);
        free(ss[i]->user_id);
        free(ss[i]);
    }
    nss = 0;
    ck_assert_uint_eq(srv.online_n, 0);
    online_free(&srv);
    ranks_free(hub.ranks);
    hub.ranks = NULL;
    ck_assert_ptr_null(srv.online);
    ck_assert_uint_eq(srv.online_cap, 0);
}

static struct buf *frame_buf(void)
{
    struct buf *b = buf_new(32);
    buf_puts(&b, "{\"type\":\"message\"}");
    ck_assert_ptr_nonnull(b);
    return b;
}

START_TEST(test_online_empty)
{
    struct buf *b = frame_buf();
    online_push(&srv, "alice", b, NULL); /* no table yet: nothing, no crash */
    ck_assert_uint_eq(b->refs, 1);
    struct session *s = sess("alice"); /* never indexed */
    online_remove(s);                  /* a no-op */
    ck_assert_int_eq(s->online, 0);
    ck_assert_uint_eq(srv.online_n, 0);
    buf_unref(b);
}
END_TEST

START_TEST(test_online_push)
{
    struct session *a1 = online("alice"), *a2 = online("alice"), *b1 = online("bob"),
                   *al = online("al"), *alice2 = online("alice2");
    struct session *off = sess("alice"); /* welcomed here but not indexed */
    ck_assert_uint_eq(srv.online_n, 5);
    struct buf *b = frame_buf();
    online_push(&srv, "alice", b, NULL);
    /* Every connection of alice, one reference each; no one else. */
    ck_assert_uint_eq(b->refs, 3);
    ck_assert_uint_eq(taken(a1, b), 1);
    ck_assert_uint_eq(taken(a2, b), 1);
    ck_assert_uint_eq(taken(b1, b), 0);
    ck_assert_uint_eq(taken(al, b), 0);
    ck_assert_uint_eq(taken(alice2, b), 0);
    ck_assert_uint_eq(taken(off, b), 0);
    ck_assert_uint_eq(b->refs, 1);
    /* except: the requester's own connection gets its own reply instead. */
    online_push(&srv, "alice", b, a2);
    ck_assert_uint_eq(taken(a1, b), 1);
    ck_assert_uint_eq(taken(a2, b), 0);
    online_push(&srv, "bob", b, a1); /* an except of another user: no effect */
    ck_assert_uint_eq(taken(b1, b), 1);
    online_push(&srv, "nobody", b, NULL);
    online_push(&srv, "", b, NULL);
    ck_assert_uint_eq(b->refs, 1);
    /* A removed connection gets nothing more; the others still do. */
    online_remove(a1);
    ck_assert_int_eq(a1->online, 0);
    ck_assert_ptr_null(a1->online_next);
    ck_assert_uint_eq(srv.online_n, 4);
    online_remove(a1); /* twice: a no-op */
    ck_assert_uint_eq(srv.online_n, 4);
    online_push(&srv, "alice", b, NULL);
    ck_assert_uint_eq(taken(a1, b), 0);
    ck_assert_uint_eq(taken(a2, b), 1);
    /* A closed or closing connection is skipped by wire_push. */
    a2->close_code = 1000;
    online_push(&srv, "alice", b, NULL);
    ck_assert_uint_eq(taken(a2, b), 0);
    ck_assert_uint_eq(b->refs, 1);
    buf_unref(b);
}
END_TEST

START_TEST(test_online_many)
{
    /* Enough users to share buckets and to grow the table several times:
     * every user's connections, and only them, get each push. */
    enum { USERS = 130 };
    static char ids[USERS][16];
    struct session *one[USERS], *two[USERS];
    for (int i = 0; i < USERS; i++) {
        snprintf(ids[i], sizeof ids[i], "u%d", i);
        one[i] = online(ids[i]);
    }
    for (int i = 0; i < USERS; i += 3)
        two[i] = online(ids[i]);
    uint32_t n = srv.online_n;
    ck_assert_uint_eq(n, USERS + (USERS + 2) / 3);
    ck_assert_uint_ge(srv.online_cap, n); /* grown with the entries */
    ck_assert_uint_eq(srv.online_cap & (srv.online_cap - 1), 0);
    struct buf *b = frame_buf();
    for (int i = 0; i < USERS; i++) {
        online_push(&srv, ids[i], b, NULL);
        for (int k = 0; k < USERS; k++) {
            ck_assert_uint_eq(one[k]->out.count, k == i);
            if (k % 3 == 0) ck_assert_uint_eq(two[k]->out.count, k == i);
        }
        ck_assert_uint_eq(taken(one[i], b), 1);
        if (i % 3 == 0) ck_assert_uint_eq(taken(two[i], b), 1);
    }
    /* Removing every other user's first connection keeps the rest reachable. */
    for (int i = 0; i < USERS; i += 2)
        online_remove(one[i]);
    for (int i = 0; i < USERS; i++) {
        online_push(&srv, ids[i], b, NULL);
        ck_assert_uint_eq(taken(one[i], b), i % 2 ? 1 : 0);
        if (i % 3 == 0) ck_assert_uint_eq(taken(two[i], b), 1);
    }
    ck_assert_uint_eq(b->refs, 1);
    buf_unref(b);
}
END_TEST

/* ---- dm_push: a DM room's change to both users' connections ---- */

static struct buf *pair_of(const char *a, const char *b)
{
    struct buf *p = buf_new(64);
    buf_put(&p, a, strlen(a) + 1);
    buf_put(&p, b, strlen(b) + 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

START_TEST(test_dm_push)
{
    struct session *a1 = online("alice"), *a2 = online("alice"), *b1 = online("bob"),
                   *c1 = online("carol");
    struct buf *pair = pair_of("alice", "bob"), *b = frame_buf();
    /* Every connection of both, joined or not, except the requester's. */
    dm_push(&srv, pair, b, a1);
    ck_assert_uint_eq(taken(a1, b), 0);
    ck_assert_uint_eq(taken(a2, b), 1);
    ck_assert_uint_eq(taken(b1, b), 1);
    ck_assert_uint_eq(taken(c1, b), 0);
    dm_push(&srv, pair, b, NULL);
    ck_assert_uint_eq(taken(a1, b), 1);
    ck_assert_uint_eq(taken(a2, b), 1);
    ck_assert_uint_eq(taken(b1, b), 1);
    ck_assert_uint_eq(taken(c1, b), 0);
    /* A user with no connection on this loop: the other still gets it. */
    online_remove(b1);
    dm_push(&srv, pair, b, NULL);
    ck_assert_uint_eq(taken(a1, b), 1);
    ck_assert_uint_eq(taken(a2, b), 1);
    ck_assert_uint_eq(taken(b1, b), 0);
    ck_assert_uint_eq(b->refs, 1);
    buf_unref(pair);
    buf_unref(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dm");
    TCase *tn = tcase_create("room_name");
    tcase_add_test(tn, test_name_known_values);
    tcase_add_test(tn, test_name_format);
    tcase_add_test(tn, test_name_symmetric_and_stable);
    tcase_add_test(tn, test_name_pairs_differ);
    suite_add_tcase(s, tn);
    TCase *to = tcase_create("online");
    tcase_add_checked_fixture(to, online_setup, online_teardown);
    tcase_add_test(to, test_online_empty);
    tcase_add_test(to, test_online_push);
    tcase_add_test(to, test_online_many);
    tcase_add_test(to, test_dm_push);
    suite_add_tcase(s, to);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
