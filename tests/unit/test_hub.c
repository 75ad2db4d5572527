/* test_hub.c -- routing between event loops: completions go to the loop
 * that asked, every stored message to every other loop, all in commit
 * order (hub.h's ordering contract). No loop runs: the inboxes are read
 * with hub_take(); no loop is awake, so nothing is woken. */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <string.h>

#include "hub.h"

static struct db_req send_req(int loop, int64_t id, int status, int dup)
{
    struct db_req r;
    memset(&r, 0, sizeof r);
    r.op = DB_SEND;
    r.loop = loop;
    r.room = "lobby";
    r.user_id = "u1";
    r.user_name = "Ann";
    r.text = "hi";
    r.text_len = 2;
    r.client_id = "c1";
    r.status = status;
    r.duplicate = dup;
    r.id = id;
    r.ts = 1700000000000;
    return r;
}

/* What a loop's inbox held, in order. */
struct seen {
    struct db_req *items[16];
    int n;
};

static void collect(struct db_req *r, void *arg)
{
    struct seen *s = arg;
    ck_assert_int_lt(s->n, 16);
    s->items[s->n++] = r;
}

static int frame_has(const struct buf *b, const char *needle)
{
    return b && memmem(BUF_PAYLOAD(b), b->len, needle, strlen(needle)) != NULL;
}

START_TEST(test_routing_order)
{
    struct hub h;
    ck_assert_int_eq(hub_init(&h, 3), 0);
    struct room *lobby = hub_room_hold(&h, "lobby", 1); /* a join made it */
    ck_assert_ptr_nonnull(lobby);
    struct db_req a = send_req(0, 7, DB_OK, 0); /* stored: every loop */
    struct db_req rd;                           /* a join's read on loop 1 */
    memset(&rd, 0, sizeof rd);
    rd.op = DB_READ;
    rd.loop = 1;
    rd.room = "lobby";
    struct db_req dup = send_req(1, 7, DB_OK, 1);   /* duplicate: ack only */
    struct db_req bad = send_req(2, 0, DB_BUSY, 0); /* failed: error only */
    struct db_req b = send_req(2, 8, DB_OK, 0);
    struct db_req *order[] = {&a, &rd, &dup, &bad, &b};
    for (int i = 0; i < 5; i++)
        hub_complete(&h, order[i]);

    struct seen s0 = {0}, s1 = {0}, s2 = {0};
    hub_take(&h, 0, collect, &s0);
    hub_take(&h, 1, collect, &s1);
    hub_take(&h, 2, collect, &s2);

    /* Loop 0: its own send (with the frame made once), then b's message. */
    ck_assert_int_eq(s0.n, 2);
    ck_assert_ptr_eq(s0.items[0], &a);
    ck_assert(frame_has(a.frame, "\"id\":7") &&
              frame_has(a.frame, "\"type\":\"message\""));
    ck_assert_int_eq(s0.items[1]->op, DB_POST);
    ck_assert(frame_has(s0.items[1]->frame, "\"id\":8"));
    /* Loop 1: a's message before its read (commit order), then its dup. */
    ck_assert_int_eq(s1.n, 4);
    ck_assert_int_eq(s1.items[0]->op, DB_POST);
    ck_assert_ptr_eq(s1.items[0]->frame, a.frame); /* shared, not copied */
    ck_assert_str_eq(s1.items[0]->room, "lobby");
    ck_assert_ptr_eq(s1.items[0]->dest, lobby); /* found once, by the router */
    ck_assert_ptr_eq(a.dest, lobby);
    ck_assert_int_eq(lobby->last_id, 8);
    ck_assert_ptr_eq(s1.items[1], &rd);
    ck_assert_ptr_eq(s1.items[2], &dup);
    ck_assert_ptr_null(dup.frame); /* a duplicate is not broadcast again */
    ck_assert_int_eq(s1.items[3]->op, DB_POST);
    ck_assert_ptr_eq(s1.items[3]->frame, b.frame);
    /* Loop 2: a's message, its failed send (no frame), its stored send. */
    ck_assert_int_eq(s2.n, 3);
    ck_assert_int_eq(s2.items[0]->op, DB_POST);
    ck_assert_ptr_eq(s2.items[1], &bad);
    ck_assert_ptr_null(bad.frame);
    ck_assert_ptr_eq(s2.items[2], &b);

    /* References: the origin's plus one per post. */
    ck_assert_uint_eq(a.frame->refs, 3);
    hub_post_free(s1.items[0]);
    hub_post_free(s2.items[0]);
    hub_post_free(s0.items[1]);
    hub_post_free(s1.items[3]);
    ck_assert_uint_eq(a.frame->refs, 1);
    buf_unref(a.frame);
    buf_unref(b.frame);
    hub_free(&h);
}
END_TEST

START_TEST(test_unknown_room_no_broadcast)
{
    struct hub h;
    ck_assert_int_eq(hub_init(&h, 2), 0);
    struct db_req a = send_req(0, 3, DB_OK, 0); /* "lobby" was never joined */
    hub_complete(&h, &a);
    struct seen s0 = {0}, s1 = {0};
    hub_take(&h, 0, collect, &s0);
    hub_take(&h, 1, collect, &s1);
    ck_assert_int_eq(s0.n, 1); /* the ack still goes */
    ck_assert_ptr_null(a.frame);
    ck_assert_int_eq(s1.n, 0);
    hub_free(&h);
}
END_TEST

START_TEST(test_post_skips_sender_and_one_loop)
{
    struct hub h;
    ck_assert_int_eq(hub_init(&h, 2), 0);
    struct buf *f = buf_new(16);
    buf_puts(&f, "{\"type\":\"typing\"}");
    struct room *lobby = hub_room_hold(&h, "lobby", 1);
    hub_post(&h, 1, lobby, f);
    struct seen s0 = {0}, s1 = {0};
    hub_take(&h, 0, collect, &s0);
    hub_take(&h, 1, collect, &s1);
    ck_assert_int_eq(s0.n, 1);
    ck_assert_int_eq(s1.n, 0); /* never to the loop that posted */
    ck_assert_ptr_eq(s0.items[0]->frame, f);
    ck_assert_ptr_eq(s0.items[0]->dest, lobby);
    hub_post_free(s0.items[0]);
    hub_free(&h);

    ck_assert_int_eq(hub_init(&h, 1), 0);
    hub_post(&h, 0, hub_room_hold(&h, "lobby", 1), f); /* one loop: nobody else */
    hub_take(&h, 0, collect, &s1);
    ck_assert_int_eq(s1.n, 0);
    ck_assert_uint_eq(f->refs, 1);
    buf_unref(f);
    hub_free(&h);
}
END_TEST

START_TEST(test_free_drops_queued_posts)
{
    struct hub h;
    ck_assert_int_eq(hub_init(&h, 2), 0);
    struct buf *f = buf_new(16);
    buf_puts(&f, "{\"type\":\"x\"}");
    hub_post(&h, 0, hub_room_hold(&h, "r", 1), f);
    ck_assert_uint_eq(f->refs, 2);
    hub_free(&h); /* the loop never took it: the hub drops it */
    ck_assert_uint_eq(f->refs, 1);
    buf_unref(f);
}
END_TEST

START_TEST(test_init_bounds)
{
    struct hub h;
    ck_assert_int_eq(hub_init(&h, 0), -1);
    ck_assert_int_eq(hub_init(&h, HUB_MAX_LOOPS + 1), -1);
    ck_assert_int_eq(hub_init(&h, HUB_MAX_LOOPS), 0);
    ck_assert_int_eq(h.rooms.nloops, HUB_MAX_LOOPS);
    hub_free(&h);
}
END_TEST

static Suite *hub_suite(void)
{
    Suite *s = suite_create("hub");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_routing_order);
    tcase_add_test(tc, test_post_skips_sender_and_one_loop);
    tcase_add_test(tc, test_unknown_room_no_broadcast);
    tcase_add_test(tc, test_free_drops_queued_posts);
    tcase_add_test(tc, test_init_bounds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hub_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
