/* test_room.c -- the rooms hash table and member lists. Sessions are opaque
 * here: small integers cast to pointers stand in for them. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "room.h"

#define S(n) ((struct session *)(uintptr_t)(n))

static int is_member(const struct room *r, struct session *s)
{
    int n = 0;
    for (uint32_t i = 0; i < r->part[0].n; i++)
        n += r->part[0].members[i] == s;
    return n;
}

START_TEST(test_get_create_find)
{
    struct rooms rs = {0};
    ck_assert_ptr_null(rooms_get(&rs, "lobby", 0)); /* empty table */
    struct room *r = rooms_get(&rs, "lobby", 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->name, "lobby");
    ck_assert_uint_eq(r->nmembers, 0);
    ck_assert_int_eq(r->last_id, 0);
    ck_assert_uint_eq(rs.count, 1);
    ck_assert_ptr_eq(rooms_get(&rs, "lobby", 0), r);
    ck_assert_ptr_eq(rooms_get(&rs, "lobby", 1), r); /* no duplicate */
    ck_assert_uint_eq(rs.count, 1);
    ck_assert_ptr_null(rooms_get(&rs, "other", 0));
    ck_assert_ptr_null(rooms_get(&rs, "Lobby", 0));
    ck_assert_ptr_null(rooms_get(&rs, "lobb", 0));
    struct room *o = rooms_get(&rs, "other", 1);
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_ne(o, r);
    ck_assert_uint_eq(rs.count, 2);
    r->last_id = 42;
    ck_assert_int_eq(rooms_get(&rs, "lobby", 0)->last_id, 42);
    rooms_free(&rs);
    ck_assert_ptr_null(rs.buckets);
    ck_assert_uint_eq(rs.count, 0);
}
END_TEST

START_TEST(test_name_lengths)
{
    struct rooms rs = {0};
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = 0;
    memset(n65, 'b', 65);
    n65[65] = 0;
    struct room *r = rooms_get(&rs, n64, 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->name, n64);
    ck_assert_ptr_null(rooms_get(&rs, n65, 1)); /* would not fit */
    ck_assert_uint_eq(rs.count, 1);
    rooms_free(&rs);
}
END_TEST

START_TEST(test_many_rooms_rehash)
{
    enum { N = 5000 };
    struct rooms rs = {0};
    static struct room *made[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "room-%d", i);
        made[i] = rooms_get(&rs, name, 1);
        ck_assert_ptr_nonnull(made[i]);
        made[i]->last_id = i;
    }
    ck_assert_uint_eq(rs.count, N);
    ck_assert_uint_ge(rs.nbuckets, N); /* grew past the first 64 buckets */
    ck_assert_uint_eq(rs.nbuckets & (rs.nbuckets - 1), 0);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "room-%d", i);
        struct room *r = rooms_get(&rs, name, 0);
        ck_assert_ptr_eq(r, made[i]); /* same object: rehash moved no room */
        ck_assert_str_eq(r->name, name);
        ck_assert_int_eq(r->last_id, i);
    }
    ck_assert_ptr_null(rooms_get(&rs, "room-5000", 0));
    ck_assert_uint_eq(rs.count, N);
    rooms_free(&rs);
}
END_TEST

static void count_fn(struct room *r, void *arg)
{
    long *sum = arg;
    sum[0]++;
    sum[1] += r->last_id;
}

START_TEST(test_each)
{
    struct rooms rs = {0};
    long sum[2] = {0, 0};
    rooms_each(&rs, count_fn, sum); /* empty: no calls */
    ck_assert_int_eq(sum[0], 0);
    char name[16];
    for (int i = 1; i <= 100; i++) {
        snprintf(name, sizeof name, "r%d", i);
        rooms_get(&rs, name, 1)->last_id = i;
    }
    rooms_each(&rs, count_fn, sum);
    ck_assert_int_eq(sum[0], 100);
    ck_assert_int_eq(sum[1], 5050);
    rooms_free(&rs);
}
END_TEST

START_TEST(test_add_remove)
{
    struct rooms rs = {0};
    struct room *r = rooms_get(&rs, "lobby", 1);
    ck_assert_int_eq(room_add(r, 0, S(1)), 0);
    ck_assert_int_eq(room_add(r, 0, S(2)), 0);
    ck_assert_int_eq(room_add(r, 0, S(3)), 0);
    ck_assert_uint_eq(r->nmembers, 3);
    ck_assert_int_eq(is_member(r, S(1)), 1);
    ck_assert_int_eq(is_member(r, S(2)), 1);
    ck_assert_int_eq(is_member(r, S(3)), 1);
    room_remove(r, 0, S(2));
    ck_assert_uint_eq(r->nmembers, 2);
    ck_assert_int_eq(is_member(r, S(2)), 0);
    ck_assert_int_eq(is_member(r, S(1)), 1);
    ck_assert_int_eq(is_member(r, S(3)), 1);
    room_remove(r, 0, S(1));
    room_remove(r, 0, S(3));
    ck_assert_uint_eq(r->nmembers, 0);
    ck_assert_int_eq(room_add(r, 0, S(1)), 0); /* re-join after leaving */
    ck_assert_uint_eq(r->nmembers, 1);
    ck_assert_ptr_eq(r->part[0].members[0], S(1));
    rooms_free(&rs);
}
END_TEST

START_TEST(test_remove_non_member)
{
    struct rooms rs = {0};
    struct room *r = rooms_get(&rs, "lobby", 1);
    room_remove(r, 0, S(9)); /* empty room */
    ck_assert_uint_eq(r->nmembers, 0);
    room_add(r, 0, S(1));
    room_add(r, 0, S(2));
    room_remove(r, 0, S(9));
    ck_assert_uint_eq(r->nmembers, 2);
    ck_assert_int_eq(is_member(r, S(1)), 1);
    ck_assert_int_eq(is_member(r, S(2)), 1);
    room_remove(r, 0, S(1));
    room_remove(r, 0, S(1)); /* twice: the second is a no-op */
    ck_assert_uint_eq(r->nmembers, 1);
    ck_assert_ptr_eq(r->part[0].members[0], S(2));
    /* Rooms' lists are independent. */
    struct room *o = rooms_get(&rs, "other", 1);
    room_add(o, 0, S(2));
    room_remove(o, 0, S(2));
    ck_assert_uint_eq(o->nmembers, 0);
    ck_assert_uint_eq(r->nmembers, 1);
    rooms_free(&rs);
}
END_TEST

START_TEST(test_parts_per_loop)
{
    struct rooms rs = {.nloops = 3};
    struct room *r = rooms_get(&rs, "spread", 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(room_add(r, 0, S(1)), 0);
    ck_assert_int_eq(room_add(r, 2, S(2)), 0);
    ck_assert_int_eq(room_add(r, 2, S(3)), 0);
    ck_assert_uint_eq(r->nmembers, 3); /* every loop's members */
    ck_assert_uint_eq(r->part[0].n, 1);
    ck_assert_uint_eq(r->part[1].n, 0);
    ck_assert_uint_eq(r->part[2].n, 2);
    room_remove(r, 1, S(2)); /* not on loop 1: nothing changes */
    ck_assert_uint_eq(r->nmembers, 3);
    ck_assert_uint_eq(r->part[2].n, 2);
    room_remove(r, 2, S(2));
    ck_assert_uint_eq(r->nmembers, 2);
    ck_assert_ptr_eq(r->part[2].members[0], S(3));
    rooms_free(&rs); /* frees every part: LSan would see a leak */
}
END_TEST

START_TEST(test_many_members)
{
    enum { N = 1000 };
    struct rooms rs = {0};
    struct room *r = rooms_get(&rs, "big", 1);
    for (int i = 1; i <= N; i++)
        ck_assert_int_eq(room_add(r, 0, S(i)), 0);
    ck_assert_uint_eq(r->nmembers, N);
    ck_assert_uint_ge(r->part[0].cap, N);
    /* Remove the even ones; the odd ones all stay, once each. */
    for (int i = 2; i <= N; i += 2)
        room_remove(r, 0, S(i));
    ck_assert_uint_eq(r->nmembers, N / 2);
    for (int i = 1; i <= N; i++)
        ck_assert_int_eq(is_member(r, S(i)), i % 2);
    rooms_free(&rs);
}
END_TEST

static Suite *room_suite(void)
{
    Suite *s = suite_create("room");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_get_create_find);
    tcase_add_test(tc, test_name_lengths);
    tcase_add_test(tc, test_many_rooms_rehash);
    tcase_add_test(tc, test_each);
    tcase_add_test(tc, test_add_remove);
    tcase_add_test(tc, test_remove_non_member);
    tcase_add_test(tc, test_many_members);
    tcase_add_test(tc, test_parts_per_loop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(room_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
