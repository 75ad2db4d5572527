/* test_buf.c -- reference-counted buffers and the JSON writers. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

/* Asserts that b's payload is exactly `want`. */
#define ck_payload_eq(b, want)                                                           \
    do {                                                                                 \
        const char *w_ = (want);                                                         \
        ck_assert_ptr_nonnull(b);                                                        \
        ck_assert_int_eq((b)->oom, 0);                                                   \
        ck_assert_uint_eq((b)->len, strlen(w_));                                         \
        ck_assert_mem_eq(BUF_PAYLOAD(b), w_, strlen(w_));                                \
    } while (0)

static struct buf *jstr(const char *s, size_t n)
{
    struct buf *b = buf_new(0);
    ck_assert_ptr_nonnull(b);
    buf_put_jstr(&b, s, n);
    return b;
}

START_TEST(test_new)
{
    struct buf *b = buf_new(10);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(b->refs, 1);
    ck_assert_uint_eq(b->len, 0);
    ck_assert_uint_ge(b->cap, 10);
    ck_assert_int_eq(b->oom, 0);
    ck_assert_ptr_eq(BUF_PAYLOAD(b), b->mem + LWS_PRE);
    buf_unref(b);
}
END_TEST

START_TEST(test_ref_unref)
{
    struct buf *b = buf_new(0);
    ck_assert_ptr_eq(buf_ref(b), b);
    ck_assert_uint_eq(b->refs, 2);
    buf_unref(b);
    ck_assert_uint_eq(b->refs, 1);
    buf_unref(b); /* freed; ASan reports a leak otherwise */
}
END_TEST

START_TEST(test_put_puts)
{
    struct buf *b = buf_new(0);
    buf_puts(&b, "abc");
    buf_put(&b, "defg", 2);
    buf_puts(&b, "");
    buf_put(&b, "\0x", 2);
    ck_assert_uint_eq(b->len, 7);
    ck_assert_mem_eq(BUF_PAYLOAD(b), "abcde\0x", 7);
    buf_unref(b);
}
END_TEST

START_TEST(test_jstr_plain)
{
    struct buf *b = jstr("hello", 5);
    ck_payload_eq(b, "\"hello\"");
    buf_unref(b);
    b = jstr("", 0);
    ck_payload_eq(b, "\"\"");
    buf_unref(b);
}
END_TEST

START_TEST(test_jstr_quotes_backslash)
{
    struct buf *b = jstr("a\"b\\c", 5);
    ck_payload_eq(b, "\"a\\\"b\\\\c\"");
    buf_unref(b);
    b = jstr("/", 1); /* a slash needs no escape */
    ck_payload_eq(b, "\"/\"");
    buf_unref(b);
}
END_TEST

START_TEST(test_jstr_control)
{
    struct buf *b = jstr("\n\t\r\x01\x1f\b\f", 7);
    ck_payload_eq(b, "\"\\n\\t\\r\\u0001\\u001f\\u0008\\u000c\"");
    buf_unref(b);
    /* An embedded NUL (n counts it) becomes \u0000. */
    b = jstr("a\0b", 3);
    ck_payload_eq(b, "\"a\\u0000b\"");
    buf_unref(b);
    /* 0x20 and DEL pass through. */
    b = jstr(" \x7f", 2);
    ck_payload_eq(b, "\" \x7f\"");
    buf_unref(b);
}
END_TEST

START_TEST(test_jstr_utf8_passthrough)
{
    const char *s =
        "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xe3\x80\x80"; /* é € 😀 U+3000 */
    struct buf *b = jstr(s, strlen(s));
    char want[64];
    strcpy(want, "\"");
    strcat(want, s);
    strcat(want, "\"");
    ck_payload_eq(b, want);
    buf_unref(b);
}
END_TEST

START_TEST(test_jstrz_and_length)
{
    struct buf *b = buf_new(0);
    buf_put_jstrz(&b, "x\"y");
    buf_put(&b, ",", 1);
    buf_put_jstr(&b, "abcdef", 3); /* only n bytes */
    ck_payload_eq(b, "\"x\\\"y\",\"abc\"");
    buf_unref(b);
}
END_TEST

START_TEST(test_i64)
{
    static const struct {
        int64_t v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {-1, "-1"},
        {-42, "-42"},
        {1763766000123LL, "1763766000123"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf *b = buf_new(0);
        buf_put_i64(&b, cases[i].v);
        ck_payload_eq(b, cases[i].s);
        buf_unref(b);
    }
    struct buf *b = buf_new(0);
    buf_put_i64(&b, -7);
    buf_put(&b, ",", 1);
    buf_put_i64(&b, INT64_MIN);
    ck_payload_eq(b, "-7,-9223372036854775808");
    buf_unref(b);
}
END_TEST

START_TEST(test_growth)
{
    struct buf *b = buf_new(0);
    uint32_t cap0 = b->cap;
    ck_assert_uint_eq(cap0, 64);
    char chunk[100];
    for (int i = 0; i < 100; i++)
        chunk[i] = (char)('a' + i % 26);
    for (int i = 0; i < 100; i++)
        buf_put(&b, chunk, sizeof chunk);
    ck_assert_int_eq(b->oom, 0);
    ck_assert_uint_eq(b->len, 10000);
    ck_assert_uint_ge(b->cap, 10000);
    for (int i = 0; i < 100; i++)
        ck_assert_mem_eq(BUF_PAYLOAD(b) + i * 100, chunk, 100);
    buf_unref(b);
}
END_TEST

START_TEST(test_jstr_growth_worst_case)
{
    /* 1000 control bytes become 6000 + 2 bytes. */
    char in[1000];
    memset(in, 1, sizeof in);
    struct buf *b = buf_new(0);
    buf_puts(&b, "[");
    buf_put_jstr(&b, in, sizeof in);
    buf_puts(&b, "]");
    ck_assert_int_eq(b->oom, 0);
    ck_assert_uint_eq(b->len, 1 + 6000 + 2 + 1);
    ck_assert_mem_eq(BUF_PAYLOAD(b), "[\"\\u0001\\u0001", 14);
    ck_assert_mem_eq(BUF_PAYLOAD(b) + b->len - 8, "\\u0001\"]", 8);
    buf_unref(b);
}
END_TEST

START_TEST(test_null_buf_noop)
{
    struct buf *b = NULL;
    buf_put(&b, "abc", 3);
    buf_puts(&b, "abc");
    buf_put_i64(&b, 42);
    buf_put_jstr(&b, "x", 1);
    buf_put_jstrz(&b, "y");
    ck_assert_ptr_null(b);
    buf_unref(NULL);
}
END_TEST

START_TEST(test_oom_flag_drops_writes)
{
    struct buf *b = buf_new(0);
    buf_puts(&b, "ok");
    b->oom = 1; /* as after a failed growth */
    buf_puts(&b, "more");
    buf_put_i64(&b, 5);
    buf_put_jstrz(&b, "s");
    ck_assert_uint_eq(b->len, 2);
    ck_assert_mem_eq(BUF_PAYLOAD(b), "ok", 2);
    buf_unref(b);
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_new);
    tcase_add_test(tc, test_ref_unref);
    tcase_add_test(tc, test_put_puts);
    tcase_add_test(tc, test_jstr_plain);
    tcase_add_test(tc, test_jstr_quotes_backslash);
    tcase_add_test(tc, test_jstr_control);
    tcase_add_test(tc, test_jstr_utf8_passthrough);
    tcase_add_test(tc, test_jstrz_and_length);
    tcase_add_test(tc, test_i64);
    tcase_add_test(tc, test_growth);
    tcase_add_test(tc, test_jstr_growth_worst_case);
    tcase_add_test(tc, test_null_buf_noop);
    tcase_add_test(tc, test_oom_flag_drops_writes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(buf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
