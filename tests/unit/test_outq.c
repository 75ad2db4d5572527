/* test_outq.c -- the bounded outbound queue of shared buffers. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "outq.h"

static const struct outq_limits big = {.max_msgs = 1u << 20,
                                       .max_bytes = (size_t)1 << 30};

/* A buffer with `len` payload bytes (content: the byte `fill`). */
static struct buf *mkbuf(size_t len, int fill)
{
    struct buf *b = buf_new(len);
    ck_assert_ptr_nonnull(b);
    memset(BUF_PAYLOAD(b), fill, len);
    b->len = (uint32_t)len;
    return b;
}

START_TEST(test_empty)
{
    struct outq q = {0};
    ck_assert_ptr_null(outq_peek(&q));
    ck_assert_ptr_null(q.ring); /* an idle queue costs no ring */
    outq_clear(&q);             /* clearing an empty queue is fine */
    ck_assert_ptr_null(q.ring);
    ck_assert_uint_eq(q.count, 0);
}
END_TEST

START_TEST(test_fifo_order)
{
    struct outq q = {0};
    struct buf *b[3] = {mkbuf(1, 'a'), mkbuf(2, 'b'), mkbuf(3, 'c')};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(outq_push(&q, b[i], &big), 0);
    ck_assert_uint_eq(q.count, 3);
    ck_assert_uint_eq(q.bytes, 6);
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_eq(outq_peek(&q), b[i]);
        ck_assert_ptr_eq(outq_peek(&q), b[i]); /* peek does not remove */
        outq_pop(&q);
        ck_assert_uint_eq(q.count, (uint32_t)(2 - i));
    }
    ck_assert_ptr_null(outq_peek(&q));
    ck_assert_uint_eq(q.bytes, 0);
    outq_clear(&q);
    for (int i = 0; i < 3; i++)
        buf_unref(b[i]);
}
END_TEST

START_TEST(test_refcounts_push_pop)
{
    struct outq q = {0};
    struct buf *b = mkbuf(10, 'x');
    ck_assert_uint_eq(b->refs, 1);
    ck_assert_int_eq(outq_push(&q, b, &big), 0);
    ck_assert_uint_eq(b->refs, 2);
    ck_assert_int_eq(outq_push(&q, b, &big), 0); /* the same buf twice */
    ck_assert_uint_eq(b->refs, 3);
    ck_assert_uint_eq(q.bytes, 20);
    outq_pop(&q);
    ck_assert_uint_eq(b->refs, 2);
    outq_pop(&q);
    ck_assert_uint_eq(b->refs, 1);
    outq_clear(&q);
    buf_unref(b);
}
END_TEST

START_TEST(test_refcounts_clear)
{
    struct outq q = {0};
    struct buf *b1 = mkbuf(5, '1'), *b2 = mkbuf(7, '2');
    ck_assert_int_eq(outq_push(&q, b1, &big), 0);
    ck_assert_int_eq(outq_push(&q, b2, &big), 0);
    ck_assert_int_eq(outq_push(&q, b1, &big), 0);
    ck_assert_uint_eq(b1->refs, 3);
    ck_assert_uint_eq(b2->refs, 2);
    outq_clear(&q);
    ck_assert_uint_eq(b1->refs, 1);
    ck_assert_uint_eq(b2->refs, 1);
    ck_assert_uint_eq(q.count, 0);
    ck_assert_uint_eq(q.bytes, 0);
    buf_unref(b1);
    buf_unref(b2);
}
END_TEST

START_TEST(test_shared_survives_one_clear)
{
    struct outq q1 = {0}, q2 = {0};
    struct buf *b = mkbuf(16, 'z');
    ck_assert_int_eq(outq_push(&q1, b, &big), 0);
    ck_assert_int_eq(outq_push(&q2, b, &big), 0);
    ck_assert_uint_eq(b->refs, 3);
    buf_unref(b); /* the builder lets go; the two queues hold it */
    ck_assert_uint_eq(b->refs, 2);
    outq_clear(&q1);
    struct buf *p = outq_peek(&q2);
    ck_assert_ptr_eq(p, b);
    ck_assert_uint_eq(p->refs, 1);
    ck_assert_uint_eq(p->len, 16);
    ck_assert_int_eq(BUF_PAYLOAD(p)[15], 'z'); /* still readable (ASan would tell) */
    outq_clear(&q2); /* the last reference: freed (ASan checks for leaks) */
    ck_assert_ptr_null(outq_peek(&q2));
}
END_TEST

START_TEST(test_bound_by_count)
{
    const struct outq_limits lim = {.max_msgs = 3, .max_bytes = 1 << 20};
    struct outq q = {0};
    struct buf *b = mkbuf(4, 'c'), *extra = mkbuf(1, 'e');
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(outq_push(&q, b, &lim), 0);
    struct outq before = q;
    ck_assert_int_eq(outq_push(&q, extra, &lim), -1);
    ck_assert_uint_eq(extra->refs, 1);
    ck_assert_uint_eq(b->refs, 4);
    ck_assert_uint_eq(q.count, before.count);
    ck_assert_uint_eq(q.bytes, before.bytes);
    ck_assert_uint_eq(q.head, before.head);
    ck_assert_uint_eq(q.cap, before.cap);
    ck_assert_ptr_eq(q.ring, before.ring);
    /* After a pop there is room again. */
    outq_pop(&q);
    ck_assert_int_eq(outq_push(&q, extra, &lim), 0);
    ck_assert_uint_eq(q.count, 3);
    ck_assert_uint_eq(q.bytes, 4 + 4 + 1);
    outq_clear(&q);
    ck_assert_uint_eq(b->refs, 1);
    ck_assert_uint_eq(extra->refs, 1);
    buf_unref(b);
    buf_unref(extra);
}
END_TEST

START_TEST(test_bound_by_bytes)
{
    const struct outq_limits lim = {.max_msgs = 100, .max_bytes = 100};
    struct outq q = {0};
    struct buf *b60 = mkbuf(60, 'a'), *b41 = mkbuf(41, 'b'), *b40 = mkbuf(40, 'c');
    ck_assert_int_eq(outq_push(&q, b60, &lim), 0);
    ck_assert_int_eq(outq_push(&q, b41, &lim), -1); /* 101 > 100 */
    ck_assert_uint_eq(q.count, 1);
    ck_assert_uint_eq(q.bytes, 60);
    ck_assert_uint_eq(b41->refs, 1);
    ck_assert_int_eq(outq_push(&q, b40, &lim), 0); /* exactly 100 fits */
    ck_assert_uint_eq(q.bytes, 100);
    struct buf *b1 = mkbuf(1, 'd');
    ck_assert_int_eq(outq_push(&q, b1, &lim), -1);
    ck_assert_uint_eq(q.count, 2);
    ck_assert_uint_eq(q.bytes, 100);
    ck_assert_ptr_eq(outq_peek(&q), b60);
    outq_clear(&q);
    buf_unref(b60);
    buf_unref(b41);
    buf_unref(b40);
    buf_unref(b1);
}
END_TEST

START_TEST(test_oversized_into_empty)
{
    const struct outq_limits lim = {.max_msgs = 10, .max_bytes = 100};
    struct outq q = {0};
    struct buf *huge = mkbuf(1000, 'h'), *empty = mkbuf(0, 0);
    ck_assert_int_eq(outq_push(&q, huge, &lim), 0);
    ck_assert_uint_eq(q.count, 1);
    ck_assert_uint_eq(q.bytes, 1000);
    ck_assert_uint_eq(huge->refs, 2);
    /* Nothing more fits behind it, not even an empty frame: 1000 > 100. */
    ck_assert_int_eq(outq_push(&q, empty, &lim), -1);
    ck_assert_int_eq(outq_push(&q, huge, &lim), -1);
    ck_assert_uint_eq(huge->refs, 2);
    ck_assert_uint_eq(empty->refs, 1);
    ck_assert_uint_eq(q.count, 1);
    outq_pop(&q);
    ck_assert_uint_eq(q.bytes, 0);
    ck_assert_int_eq(outq_push(&q, huge, &lim), 0); /* empty again: accepted */
    outq_clear(&q);
    buf_unref(huge);
    buf_unref(empty);
}
END_TEST

START_TEST(test_growth_keeps_order)
{
    enum { N = 5000 };
    static struct buf *bs[N];
    struct outq q = {0};
    for (int i = 0; i < N; i++) {
        bs[i] = mkbuf(8, 0);
        snprintf((char *)BUF_PAYLOAD(bs[i]), 8, "%d", i);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(outq_push(&q, bs[i], &big), 0);
    ck_assert_uint_eq(q.count, N);
    ck_assert_uint_eq(q.bytes, (size_t)N * 8);
    ck_assert_uint_ge(q.cap, N);
    ck_assert_uint_eq(q.cap & (q.cap - 1), 0); /* power of two */
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_eq(outq_peek(&q), bs[i]);
        outq_pop(&q);
    }
    ck_assert_uint_eq(q.count, 0);
    outq_clear(&q);
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(bs[i]->refs, 1);
        buf_unref(bs[i]);
    }
}
END_TEST

START_TEST(test_growth_when_wrapped)
{
    enum { N = 3000 };
    static struct buf *bs[N];
    struct outq q = {0};
    for (int i = 0; i < N; i++)
        bs[i] = mkbuf(1, 0);
    /* Fill the first ring (4), pop some so the head moves, then push past
     * the end so entries wrap around, then grow while wrapped; repeat with
     * interleaved pops so every growth happens with head != 0. */
    int pushed = 0, popped = 0;
    while (pushed < N) {
        for (int k = 0; k < 7 && pushed < N; k++)
            ck_assert_int_eq(outq_push(&q, bs[pushed++], &big), 0);
        for (int k = 0; k < 3 && popped < pushed; k++) {
            ck_assert_ptr_eq(outq_peek(&q), bs[popped]);
            outq_pop(&q);
            popped++;
        }
        ck_assert_uint_eq(q.count, (uint32_t)(pushed - popped));
    }
    while (popped < N) {
        ck_assert_ptr_eq(outq_peek(&q), bs[popped]);
        outq_pop(&q);
        popped++;
    }
    ck_assert_ptr_null(outq_peek(&q));
    outq_clear(&q);
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(bs[i]->refs, 1);
        buf_unref(bs[i]);
    }
}
END_TEST

START_TEST(test_wrap_exact)
{
    /* Ring of 4: push 4, pop 2, push 2 (wrapped), push 1 (grows while
     * wrapped): order must be 2,3,4,5,6. */
    struct outq q = {0};
    struct buf *bs[7];
    for (int i = 0; i < 7; i++)
        bs[i] = mkbuf(1, i);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(outq_push(&q, bs[i], &big), 0);
    ck_assert_uint_eq(q.cap, 4);
    outq_pop(&q);
    outq_pop(&q);
    ck_assert_uint_eq(q.head, 2);
    ck_assert_int_eq(outq_push(&q, bs[4], &big), 0);
    ck_assert_int_eq(outq_push(&q, bs[5], &big), 0);
    ck_assert_uint_eq(q.cap, 4);
    ck_assert_int_eq(outq_push(&q, bs[6], &big), 0);
    ck_assert_uint_eq(q.cap, 8);
    for (int i = 2; i < 7; i++) {
        ck_assert_ptr_eq(outq_peek(&q), bs[i]);
        outq_pop(&q);
    }
    outq_clear(&q);
    for (int i = 0; i < 7; i++)
        buf_unref(bs[i]);
}
END_TEST

START_TEST(test_clear_frees_ring)
{
    struct outq q = {0};
    struct buf *b = mkbuf(3, 'r');
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(outq_push(&q, b, &big), 0);
    ck_assert_ptr_nonnull(q.ring);
    outq_clear(&q);
    ck_assert_ptr_null(q.ring);
    ck_assert_uint_eq(q.cap, 0);
    ck_assert_uint_eq(q.count, 0);
    ck_assert_uint_eq(q.head, 0);
    ck_assert_uint_eq(q.bytes, 0);
    ck_assert_uint_eq(b->refs, 1);
    /* Usable again after a clear. */
    ck_assert_int_eq(outq_push(&q, b, &big), 0);
    ck_assert_ptr_eq(outq_peek(&q), b);
    outq_clear(&q);
    ck_assert_ptr_null(q.ring);
    buf_unref(b);
}
END_TEST

static Suite *outq_suite(void)
{
    Suite *s = suite_create("outq");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_fifo_order);
    tcase_add_test(tc, test_refcounts_push_pop);
    tcase_add_test(tc, test_refcounts_clear);
    tcase_add_test(tc, test_shared_survives_one_clear);
    tcase_add_test(tc, test_bound_by_count);
    tcase_add_test(tc, test_bound_by_bytes);
    tcase_add_test(tc, test_oversized_into_empty);
    tcase_add_test(tc, test_growth_keeps_order);
    tcase_add_test(tc, test_growth_when_wrapped);
    tcase_add_test(tc, test_wrap_exact);
    tcase_add_test(tc, test_clear_frees_ring);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(outq_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
