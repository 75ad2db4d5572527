/* Unit tests for ranks.c: the roles of the open connections, counted. */
#include <check.h>

#include "jwt.h"
#include "ranks.h"

START_TEST(test_counts)
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
    Suite *s = suite_create("ranks");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_counts);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
