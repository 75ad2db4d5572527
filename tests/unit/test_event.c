/* test_event.c -- a write as a log entry and back (event.c), the URL of
 * --redis (rconn.c), and the other nodes' members (remote.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "rconn.h"
#include "remote.h"

/* Decodes o's fields as the reader gets them, with the script's ts. */
static struct event *roundtrip(const struct event_out *o, const char *id, int *oom)
{
    const char *fv[EVENT_MAX_FIELDS + 2];
    size_t len[EVENT_MAX_FIELDS + 2];
    int n = 0;
    fv[n] = "ts", len[n++] = 2;
    fv[n] = "1700000000123", len[n++] = 13;
    for (int i = 0; i < o->nf; i++, n++)
        fv[n] = o->f[i], len[n] = o->flen[i];
    return event_decode(id, fv, len, n, oom);
}

START_TEST(test_send_roundtrip)
{
    struct db_req r = {.op = DB_SEND,
                       .room = "lobby",
                       .user_id = "u1",
                       .user_name = "Ann",
                       .client_id = "c-9",
                       .text = "hello\nworld",
                       .text_len = 11,
                       .api = 1};
    struct event_out *o = event_encode(&r, "node1", 42, 1000);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(o->dedup, "parley:dedup:lobby\x1fu1\x1f"
                               "c-9");
    int oom;
    struct event *e = roundtrip(o, "17-0", &oom);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->seq, 17);
    ck_assert_int_eq(e->ts, 1700000000123);
    ck_assert_uint_eq(e->token, 42);
    ck_assert_str_eq(e->origin, "node1");
    ck_assert_int_eq(e->req.op, DB_SEND);
    ck_assert_str_eq(e->req.room, "lobby");
    ck_assert_str_eq(e->req.user_name, "Ann");
    ck_assert_str_eq(e->req.client_id, "c-9");
    ck_assert_int_eq(e->req.text_len, 11);
    ck_assert_mem_eq(e->req.text, "hello\nworld", 11);
    ck_assert_int_eq(e->req.api, 1);
    ck_assert_int_eq(e->req.any_author, 0);
    ck_assert_int_eq(e->req.logged, 1);
    ck_assert_int_eq(e->req.loop, -1);
    event_free(e);
    free(o);
}
END_TEST

START_TEST(test_mod_roundtrip)
{
    /* a server-wide ban: no room, no reason; the flags carry the action */
    struct db_req r = {.op = DB_MOD,
                       .user_id = "mod",
                       .user_name = "M",
                       .peer_id = "bad",
                       .msg_id = 1234567890123,
                       .mod_action = DB_MOD_BAN,
                       .role = 2,
                       .target_role = 1};
    struct event_out *o = event_encode(&r, "n", 1, 0);
    ck_assert_ptr_null(o->dedup);
    int oom;
    struct event *e = roundtrip(o, "5-0", &oom);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_null(e->req.room);
    ck_assert_ptr_null(e->req.text);
    ck_assert_str_eq(e->req.peer_id, "bad");
    ck_assert_int_eq(e->req.msg_id, 1234567890123);
    ck_assert_int_eq(e->req.mod_action, DB_MOD_BAN);
    ck_assert_int_eq(e->req.role, 2);
    ck_assert_int_eq(e->req.target_role, 1);
    event_free(e);
    free(o);
}
END_TEST

START_TEST(test_bad_entries_refused)
{
    int oom;
    const char *fv[] = {"op", "send", "o", "n:1", "ts", "5", "room", "r", "user", "u"};
    size_t len[] = {2, 4, 1, 3, 2, 1, 4, 1, 4, 1};
    /* a send with no name nor text is incomplete */
    ck_assert_ptr_null(event_decode("3-0", fv, len, 10, &oom));
    ck_assert_int_eq(oom, 0);
    const char *op[] = {"op", "drop-table", "o", "n:1", "ts", "5"};
    size_t oplen[] = {2, 10, 1, 3, 2, 1};
    ck_assert_ptr_null(event_decode("3-0", op, oplen, 6, &oom));
    const char *ok[] = {"op", "user", "o", "n:1", "ts", "5", "user", "u", "name", "N"};
    size_t oklen[] = {2, 4, 1, 3, 2, 1, 4, 1, 4, 1};
    ck_assert_ptr_null(event_decode("x-0", ok, oklen, 10, &oom)); /* bad id */
    ck_assert_ptr_null(event_decode("0-0", ok, oklen, 10, &oom)); /* seq 0 */
    ck_assert_ptr_null(event_decode("3-0", ok, oklen, 9, &oom));  /* odd count */
    const char *noorig[] = {"op", "user", "o", "n1", "ts", "5", "user", "u", "name", "N"};
    ck_assert_ptr_null(
        event_decode("3-0", noorig, oklen, 10, &oom)); /* origin lacks ':' */
    struct event *e = event_decode("3-0", ok, oklen, 10, &oom);
    ck_assert_ptr_nonnull(e);
    event_free(e);
}
END_TEST

START_TEST(test_redis_url)
{
    struct rconn_addr a;
    char err[128];
    ck_assert_int_eq(rconn_parse("redis://10.0.0.5:7000/3", &a, err, sizeof err), 0);
    ck_assert_str_eq(a.host, "10.0.0.5");
    ck_assert_int_eq(a.port, 7000);
    ck_assert_int_eq(a.dbnum, 3);
    ck_assert_int_eq(rconn_parse("redis://cache", &a, err, sizeof err), 0);
    ck_assert_str_eq(a.host, "cache");
    ck_assert_int_eq(a.port, 6379);
    ck_assert_int_eq(a.dbnum, 0);
    ck_assert_str_eq(a.pass, "");
    ck_assert_int_eq(rconn_parse("redis://:s3cr%t@cache:6390", &a, err, sizeof err), 0);
    ck_assert_str_eq(a.host, "cache");
    ck_assert_str_eq(a.user, "");
    ck_assert_str_eq(a.pass, "s3cr%t");
    ck_assert_int_eq(rconn_parse("redis://parley:pw@10.1.1.1/2", &a, err, sizeof err), 0);
    ck_assert_str_eq(a.user, "parley");
    ck_assert_str_eq(a.pass, "pw");
    ck_assert_int_eq(a.dbnum, 2);
    ck_assert_int_eq(rconn_parse("redis://nopass@h", &a, err, sizeof err), -1);
    ck_assert_int_eq(rconn_parse("redis://:secret@", &a, err, sizeof err), -1);
    ck_assert_ptr_null(strstr(err, "secret")); /* never repeated */
    ck_assert_int_eq(rconn_parse("redis://[::1]:6380/", &a, err, sizeof err), 0);
    ck_assert_str_eq(a.host, "::1");
    ck_assert_int_eq(a.port, 6380);
    const char *bad[] = {"http://x:1",      "redis://",      "redis://h:0",
                         "redis://h:99999", "redis://h:12x", "redis://h/abc",
                         "redis://[::1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(rconn_parse(bad[i], &a, err, sizeof err) == -1, "%s accepted",
                      bad[i]);
}
END_TEST

START_TEST(test_remote_members)
{
    struct remote *m = remote_new();
    struct buf *stack[4], **u;
    const char *ann = "{\"id\":\"a\",\"name\":\"Ann\"}";
    ck_assert_int_eq(remote_set(m, "n1", "r", "c1", ann, strlen(ann), 1), 1);
    ck_assert_int_eq(remote_set(m, "n1", "r", "c1", ann, strlen(ann), 1), 0); /* again */
    ck_assert_int_eq(remote_set(m, "n2", "r", "c1", ann, strlen(ann), 1),
                     1); /* other node */
    ck_assert_int_eq(remote_set(m, "n1", "r", "c2", ann, strlen(ann), 1),
                     1); /* 2nd tab */
    ck_assert_uint_eq(remote_count(m, "r"), 3);
    ck_assert_uint_eq(remote_count(m, "other"), 0);
    ck_assert_int_eq(remote_set(m, "n1", "r", "c9", ann, strlen(ann), 0),
                     0); /* unknown */
    ck_assert_int_eq(remote_set(m, "n1", "nowhere", "c9", ann, strlen(ann), 0), 0);
    ck_assert_int_eq(remote_set(m, "n1", "r", "c2", ann, strlen(ann), 0), 1);
    ck_assert_uint_eq(remote_count(m, "r"), 2);
    int n = remote_users(m, "r", stack, 4, &u);
    ck_assert_int_eq(n, 2);
    ck_assert_ptr_eq(u, stack);
    for (int i = 0; i < n; i++) {
        ck_assert_mem_eq(BUF_PAYLOAD(u[i]), ann, strlen(ann));
        buf_unref(u[i]);
    }
    remote_drop_node(m, "n1", NULL, NULL);
    ck_assert_uint_eq(remote_count(m, "r"), 1);
    remote_free(m);
}
END_TEST

static void count_leave(void *arg, const char *room, struct buf *user)
{
    (void)user;
    if (!strcmp(room, "r") || !strcmp(room, "s")) ++*(int *)arg;
}

START_TEST(test_remote_node_gone)
{
    struct remote *m = remote_new();
    const char *u = "{\"id\":\"x\"}";
    for (int i = 0; i < 40; i++) { /* more than the caller's stack */
        char conn[8];
        snprintf(conn, sizeof conn, "c%d", i);
        remote_set(m, "dead", i % 2 ? "r" : "s", conn, u, strlen(u), 1);
    }
    remote_set(m, "live", "r", "c0", u, strlen(u), 1);
    struct buf *stack[4], **list;
    int n = remote_users(m, "r", stack, 4, &list);
    ck_assert_int_eq(n, 21);
    ck_assert_ptr_ne(list, stack);
    for (int i = 0; i < n; i++)
        buf_unref(list[i]);
    free(list);
    int told = 0;
    remote_drop_node(m, "dead", count_leave, &told);
    ck_assert_int_eq(told, 40);
    ck_assert_uint_eq(remote_count(m, "r"), 1);
    ck_assert_uint_eq(remote_count(m, "s"), 0);
    remote_free(m);
}
END_TEST

static void note_leave(void *arg, const char *room, struct buf *user)
{
    char *out = arg;
    strcat(out, room);
    strncat(out, (const char *)BUF_PAYLOAD(user), user->len);
    strcat(out, ";");
}

/* A node's membership read again (its resync): what is still there stays
 * without a change; what is new is a change (a join to tell); what is no
 * longer there goes, told; other nodes' entries are untouched. */
START_TEST(test_remote_resync_diff)
{
    struct remote *m = remote_new();
    const char *a = "{\"id\":\"a\"}", *b = "{\"id\":\"b\"}", *c = "{\"id\":\"c\"}";
    ck_assert_int_eq(remote_set(m, "n1", "r", "c1", a, strlen(a), 1), 1);
    ck_assert_int_eq(remote_set(m, "n1", "s", "c2", b, strlen(b), 1), 1);
    ck_assert_int_eq(remote_set(m, "n2", "r", "c1", c, strlen(c), 1), 1);
    remote_mark_node(m, "n1");
    ck_assert_int_eq(remote_set(m, "n1", "r", "c1", a, strlen(a), 1), 0); /* kept */
    ck_assert_int_eq(remote_set(m, "n1", "t", "c3", c, strlen(c), 1), 1); /* new */
    char gone[128] = "";
    remote_drop_stale(m, "n1", note_leave, gone);
    ck_assert_str_eq(gone, "s{\"id\":\"b\"};");
    ck_assert_uint_eq(remote_count(m, "r"), 2);
    ck_assert_uint_eq(remote_count(m, "s"), 0);
    ck_assert_uint_eq(remote_count(m, "t"), 1);
    ck_assert_uint_eq(remote_nrooms(m), 2);
    gone[0] = 0; /* a second pass drops nothing: the marks were cleared */
    remote_drop_stale(m, "n1", note_leave, gone);
    ck_assert_str_eq(gone, "");
    remote_free(m);
}
END_TEST

static Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_send_roundtrip);
    tcase_add_test(tc, test_mod_roundtrip);
    tcase_add_test(tc, test_bad_entries_refused);
    tcase_add_test(tc, test_redis_url);
    tcase_add_test(tc, test_remote_members);
    tcase_add_test(tc, test_remote_node_gone);
    tcase_add_test(tc, test_remote_resync_diff);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(event_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
