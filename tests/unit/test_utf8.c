/* test_utf8.c -- UTF-8 validation, counting and decoding. */
#include <check.h>
#include <string.h>

#include "utf8.h"

#define VALID(lit) utf8_valid(lit, sizeof(lit) - 1)

START_TEST(test_valid_sequences)
{
    ck_assert_int_eq(utf8_valid("", 0), 1);
    ck_assert_int_eq(VALID("hello"), 1);
    ck_assert_int_eq(VALID("\x00"), 1); /* U+0000 is well-formed */
    ck_assert_int_eq(VALID("\x7f"), 1);
    ck_assert_int_eq(VALID("\xc2\x80"), 1);         /* U+0080 */
    ck_assert_int_eq(VALID("\xdf\xbf"), 1);         /* U+07FF */
    ck_assert_int_eq(VALID("\xe0\xa0\x80"), 1);     /* U+0800 */
    ck_assert_int_eq(VALID("\xed\x9f\xbf"), 1);     /* U+D7FF */
    ck_assert_int_eq(VALID("\xee\x80\x80"), 1);     /* U+E000 */
    ck_assert_int_eq(VALID("\xef\xbf\xbf"), 1);     /* U+FFFF */
    ck_assert_int_eq(VALID("\xf0\x90\x80\x80"), 1); /* U+10000 */
    ck_assert_int_eq(VALID("\xf4\x8f\xbf\xbf"), 1); /* U+10FFFF */
    ck_assert_int_eq(VALID("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 1);
}
END_TEST

START_TEST(test_overlong)
{
    ck_assert_int_eq(VALID("\xc0\x80"), 0);
    ck_assert_int_eq(VALID("\xc1\xbf"), 0);
    ck_assert_int_eq(VALID("\xe0\x80\x80"), 0);
    ck_assert_int_eq(VALID("\xe0\x9f\xbf"), 0);
    ck_assert_int_eq(VALID("\xf0\x80\x80\x80"), 0);
    ck_assert_int_eq(VALID("\xf0\x8f\xbf\xbf"), 0);
}
END_TEST

START_TEST(test_surrogates)
{
    ck_assert_int_eq(VALID("\xed\xa0\x80"), 0);             /* U+D800 */
    ck_assert_int_eq(VALID("\xed\xbf\xbf"), 0);             /* U+DFFF */
    ck_assert_int_eq(VALID("\xed\xa0\xbd\xed\xb8\x80"), 0); /* CESU pair */
}
END_TEST

START_TEST(test_above_max)
{
    ck_assert_int_eq(VALID("\xf4\x90\x80\x80"), 0); /* U+110000 */
    ck_assert_int_eq(VALID("\xf5\x80\x80\x80"), 0);
    ck_assert_int_eq(VALID("\xf8\x88\x80\x80\x80"), 0);
    ck_assert_int_eq(VALID("\xff"), 0);
    ck_assert_int_eq(VALID("\xfe"), 0);
}
END_TEST

START_TEST(test_truncated)
{
    ck_assert_int_eq(VALID("\xc3"), 0);
    ck_assert_int_eq(VALID("\xe2\x82"), 0);
    ck_assert_int_eq(VALID("\xf0\x9f\x98"), 0);
    ck_assert_int_eq(VALID("abc\xf0\x9f"), 0);
    /* Truncated by n, even when the bytes after are there. */
    ck_assert_int_eq(utf8_valid("\xe2\x82\xac", 2), 0);
    ck_assert_int_eq(utf8_valid("\xe2\x82\xac", 3), 1);
    /* A lead byte followed by a non-continuation. */
    ck_assert_int_eq(VALID("\xc3("), 0);
    ck_assert_int_eq(VALID("\xe2\x82("), 0);
    ck_assert_int_eq(VALID("\xf0\x9f\x98("), 0);
}
END_TEST

START_TEST(test_stray_continuation)
{
    ck_assert_int_eq(VALID("\x80"), 0);
    ck_assert_int_eq(VALID("\xbf"), 0);
    ck_assert_int_eq(VALID("a\x80"
                           "b"),
                     0);
    ck_assert_int_eq(VALID("\xc3\xa9\xa9"), 0); /* one continuation too many */
}
END_TEST

START_TEST(test_count)
{
    ck_assert_uint_eq(utf8_count("", 0), 0);
    ck_assert_uint_eq(utf8_count("abc", 3), 3);
    ck_assert_uint_eq(utf8_count("\xc3\xa9", 2), 1);
    ck_assert_uint_eq(utf8_count("\xe2\x82\xac", 3), 1);
    ck_assert_uint_eq(utf8_count("\xf0\x9f\x98\x80", 4), 1);
    const char *mix = "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80!"; /* h é _ € _ 😀 ! */
    ck_assert_uint_eq(utf8_count(mix, strlen(mix)), 7);
    ck_assert_uint_eq(utf8_count("a\0b", 3), 3);
}
END_TEST

START_TEST(test_next)
{
    const char *s = "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
    size_t n = strlen(s), i = 0;
    ck_assert_uint_eq(utf8_next(s, n, &i), 0x41);
    ck_assert_uint_eq(i, 1);
    ck_assert_uint_eq(utf8_next(s, n, &i), 0xE9);
    ck_assert_uint_eq(i, 3);
    ck_assert_uint_eq(utf8_next(s, n, &i), 0x20AC);
    ck_assert_uint_eq(i, 6);
    ck_assert_uint_eq(utf8_next(s, n, &i), 0x1F600);
    ck_assert_uint_eq(i, 10);
    ck_assert_uint_eq(utf8_next(s, n, &i), 0x10FFFF);
    ck_assert_uint_eq(i, n);
}
END_TEST

static Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_valid_sequences);
    tcase_add_test(tc, test_overlong);
    tcase_add_test(tc, test_surrogates);
    tcase_add_test(tc, test_above_max);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_stray_continuation);
    tcase_add_test(tc, test_count);
    tcase_add_test(tc, test_next);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
