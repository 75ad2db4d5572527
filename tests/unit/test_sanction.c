/* Unit tests for the registries every loop reads: the mutes and bans in
 * force (server/sanction.c) and the roles of the open connections
 * (server/ranks.c). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/jwt.h"
#include "../../server/ranks.h"
#include "../../server/sanction.h"

#define NOW 1763766000000LL

START_TEST(test_set_lift_expire)
{
    struct sanctions *t = sanctions_new();
    int64_t until = -1;
    ck_assert_int_eq(sanctions_active(t, "u", "lobby", SANCTION_MUTE, NOW, &until), 0);
    ck_assert_int_eq(until, 0);
    ck_assert_int_eq(sanctions_set(t, "u", "lobby", SANCTION_MUTE, NOW + 1000), 0);
    ck_assert_int_eq(sanctions_active(t, "u", "lobby", SANCTION_MUTE, NOW, &until), 1);
    ck_assert_int_eq(until, NOW + 1000);
    /* Another kind, room or user is not it. */
    ck_assert_int_eq(sanctions_active(t, "u", "lobby", SANCTION_BAN, NOW, &until), 0);
    ck_assert_int_eq(sanctions_active(t, "u", "other", SANCTION_MUTE, NOW, &until), 0);
    ck_assert_int_eq(sanctions_active(t, "v", "lobby", SANCTION_MUTE, NOW, &until), 0);
    ck_assert_int_eq(sanctions_active(t, "uu", "lobby", SANCTION_MUTE, NOW, &until), 0);
    /* Ended: at until exactly, and after. */
    ck_assert_int_eq(sanctions_active(t, "u", "lobby", SANCTION_MUTE, NOW + 1000, &until),
                     0);
    /* Replaced: until lifted (0). */
    ck_assert_int_eq(sanctions_set(t, "u", "lobby", SANCTION_MUTE, 0), 0);
    ck_assert_int_eq(sanctions_active(t, "u", "lobby", SANCTION_MUTE, NOW * 2, &until),
                     1);
    ck_assert_int_eq(until, 0);
    sanctions_lift(t, "u", "lobby", SANCTION_MUTE);
    ck_assert_int_eq(sanctions_active(t, "u", "lobby", SANCTION_MUTE, NOW, &until), 0);
    sanctions_lift(t, "u", "lobby", SANCTION_MUTE); /* nothing there: no-op */
    /* A room name too long for the table is refused, nothing stored. */
    char longroom[80];
    snprintf(longroom, sizeof longroom, "%070d", 0);
    ck_assert_int_eq(sanctions_set(t, "u", longroom, SANCTION_BAN, 0), -1);
    sanctions_free(t);
}
END_TEST

START_TEST(test_server_wide_ban)
{
    struct sanctions *t = sanctions_new();
    int64_t until;
    ck_assert_int_eq(sanctions_set(t, "u", "", SANCTION_BAN, NOW + 5), 0);
    /* A server-wide ban answers for every room's ban check, not a mute's. */
    ck_assert_int_eq(sanctions_active(t, "u", "", SANCTION_BAN, NOW, &until), 1);
    ck_assert_int_eq(sanctions_active(t, "u", "lobby", SANCTION_BAN, NOW, &until), 1);
    ck_assert_int_eq(until, NOW + 5);
    ck_assert_int_eq(sanctions_active(t, "u", "lobby", SANCTION_MUTE, NOW, &until), 0);
    /* It is not one of the rooms listed as banned. */
    char rooms[4][65];
    ck_assert_int_eq(sanctions_banned_rooms(t, "u", NOW, rooms, 4), 0);
    /* A room ban beside it answers with its own until. */
    ck_assert_int_eq(sanctions_set(t, "u", "lobby", SANCTION_BAN, NOW + 9), 0);
    ck_assert_int_eq(sanctions_active(t, "u", "lobby", SANCTION_BAN, NOW, &until), 1);
    ck_assert_int_eq(until, NOW + 9);
    sanctions_lift(t, "u", "", SANCTION_BAN);
    ck_assert_int_eq(sanctions_active(t, "u", "other", SANCTION_BAN, NOW, &until), 0);
    sanctions_free(t);
}
END_TEST

START_TEST(test_banned_rooms)
{
    struct sanctions *t = sanctions_new();
    char rooms[8][65];
    ck_assert_int_eq(sanctions_set(t, "u", "a", SANCTION_BAN, 0), 0);
    ck_assert_int_eq(sanctions_set(t, "u", "b", SANCTION_BAN, NOW + 1), 0);
    ck_assert_int_eq(sanctions_set(t, "u", "c", SANCTION_BAN, NOW - 1), 0); /* ended */
    ck_assert_int_eq(sanctions_set(t, "u", "d", SANCTION_MUTE, 0), 0);      /* a mute */
    ck_assert_int_eq(sanctions_set(t, "v", "e", SANCTION_BAN, 0), 0);       /* another */
    int n = sanctions_banned_rooms(t, "u", NOW, rooms, 8);
    ck_assert_int_eq(n, 2);
    int a = 0, b = 0;
    for (int i = 0; i < n; i++)
        a += !strcmp(rooms[i], "a"), b += !strcmp(rooms[i], "b");
    ck_assert(a == 1 && b == 1);
    ck_assert_int_eq(sanctions_banned_rooms(t, "u", NOW, rooms, 1), 1); /* at most max */
    sanctions_free(t);
}
END_TEST

START_TEST(test_many_users)
{
    /* Thousands of users over the buckets: each finds its own only. */
    struct sanctions *t = sanctions_new();
    char u[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(u, sizeof u, "user-%d", i);
        ck_assert_int_eq(sanctions_set(t, u, i % 2 ? "x" : "", SANCTION_BAN, 0), 0);
    }
    int64_t until;
    for (int i = 0; i < 5000; i++) {
        snprintf(u, sizeof u, "user-%d", i);
        ck_assert_int_eq(sanctions_active(t, u, "x", SANCTION_BAN, NOW, &until), 1);
        ck_assert_int_eq(sanctions_active(t, u, "", SANCTION_BAN, NOW, &until), !(i % 2));
        if (i % 3 == 0) sanctions_lift(t, u, i % 2 ? "x" : "", SANCTION_BAN);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(u, sizeof u, "user-%d", i);
        ck_assert_int_eq(sanctions_active(t, u, "x", SANCTION_BAN, NOW, &until),
                         i % 3 != 0);
    }
    sanctions_free(t);
}
END_TEST

static struct sanctions *shared;

/* One thread's work: its own 50 users (no other thread touches them, so
 * it knows what each must be), set, checked and lifted in turn, plus
 * bans of 100 users every thread shares and none lifts. Returns how many
 * checks disagreed with what the thread itself did. */
static void *hammer(void *arg)
{
    char u[32];
    int64_t until;
    long me = (long)(intptr_t)arg, wrong = 0;
    int on[50] = {0};
    for (int i = 0; i < 20000; i++) {
        int k = i % 50;
        snprintf(u, sizeof u, "t%ld-%d", me, k);
        if (i % 3 == 0) on[k] = !sanctions_set(shared, u, "r", SANCTION_MUTE, 0);
        if (i % 3 == 1)
            wrong +=
                sanctions_active(shared, u, "r", SANCTION_MUTE, NOW, &until) != on[k];
        if (i % 3 == 2) sanctions_lift(shared, u, "r", SANCTION_MUTE), on[k] = 0;
        if (i % 7 == 0) {
            snprintf(u, sizeof u, "c-%d", i % 100);
            wrong += sanctions_set(shared, u, "r", SANCTION_BAN, 0) != 0;
        }
    }
    return (void *)(intptr_t)wrong;
}

START_TEST(test_threads)
{
    /* Every loop checks and changes it at once (run under TSan/ASan too):
     * no check sees another thread's change, none is lost. */
    shared = sanctions_new();
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++) {
        void *wrong;
        pthread_join(th[i], &wrong);
        ck_assert_int_eq((long)(intptr_t)wrong, 0);
    }
    char u[32];
    int64_t until;
    for (int k = 0; k < 100; k++) { /* 20000 / 7 sets reach every k */
        snprintf(u, sizeof u, "c-%d", k);
        ck_assert_int_eq(sanctions_active(shared, u, "r", SANCTION_BAN, NOW, &until), 1);
    }
    /* The last operation on user k was at the last i < 20000 with i % 50
     * == k: a set (on) when that i % 3 == 0, a lift when 2, a check (the
     * state of the one before) when 1. */
    for (int k = 0; k < 50; k++) {
        int last = 19950 + k,
            on = last % 3 == 0 || (last % 3 == 1 && (last - 50) % 3 == 0);
        for (long t = 0; t < 4; t++) {
            snprintf(u, sizeof u, "t%ld-%d", t, k);
            ck_assert_int_eq(sanctions_active(shared, u, "r", SANCTION_MUTE, NOW, &until),
                             on);
        }
    }
    sanctions_free(shared);
}
END_TEST

/* ---- ranks.c: the roles of the open connections, the other registry
 * every loop reads ---- */

START_TEST(test_ranks)
{
    struct ranks *t = ranks_new();
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(ranks_highest(t, "u"), JWT_ROLE_NONE);
    ck_assert_int_eq(ranks_add(t, "u", JWT_ROLE_NONE), 0); /* not counted */
    ck_assert_int_eq(ranks_highest(t, "u"), JWT_ROLE_NONE);
    ck_assert_int_eq(ranks_add(t, "u", JWT_ROLE_MOD), 0);
    ck_assert_int_eq(ranks_add(t, "u", JWT_ROLE_ADMIN), 0);
    ck_assert_int_eq(ranks_add(t, "u", JWT_ROLE_ADMIN), 0);
    ck_assert_int_eq(ranks_highest(t, "u"), JWT_ROLE_ADMIN);
    ck_assert_int_eq(ranks_highest(t, "uu"), JWT_ROLE_NONE); /* another id */
    ranks_remove(t, "u", JWT_ROLE_ADMIN);
    ck_assert_int_eq(ranks_highest(t, "u"), JWT_ROLE_ADMIN); /* one admin left */
    ranks_remove(t, "u", JWT_ROLE_ADMIN);
    ck_assert_int_eq(ranks_highest(t, "u"), JWT_ROLE_MOD);
    ranks_remove(t, "u", JWT_ROLE_ADMIN); /* not there: nothing */
    ranks_remove(t, "u", JWT_ROLE_MOD);
    ck_assert_int_eq(ranks_highest(t, "u"), JWT_ROLE_NONE);
    ck_assert_int_eq(ranks_add(t, "u", JWT_ROLE_MOD), 0); /* the entry comes back */
    ck_assert_int_eq(ranks_highest(t, "u"), JWT_ROLE_MOD);
    ranks_free(t); /* with an entry left: freed too (ASan) */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sanction");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_set_lift_expire);
    tcase_add_test(tc, test_server_wide_ban);
    tcase_add_test(tc, test_banned_rooms);
    tcase_add_test(tc, test_many_users);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_ranks);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
