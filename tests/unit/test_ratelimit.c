/* test_ratelimit.c -- the token bucket, on a fake clock. */
#include <check.h>

#include "ratelimit.h"

#define SEC 1000000LL

/* Takes tokens at time `now` until refused; returns how many were taken. */
static int drain(struct tbucket *b, double rate, double burst, int64_t now)
{
    int n = 0;
    while (tb_take(b, rate, burst, now))
        if (++n > 1000000) break;
    return n;
}

START_TEST(test_fresh_bucket_allows_burst)
{
    struct tbucket b;
    int64_t t = 1000 * SEC;
    tb_init(&b, 20, t);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(tb_take(&b, 10, 20, t), 1);
    ck_assert_int_eq(tb_take(&b, 10, 20, t), 0);
    ck_assert_int_eq(tb_take(&b, 10, 20, t), 0);
}
END_TEST

START_TEST(test_burst_one)
{
    struct tbucket b;
    tb_init(&b, 1, 0);
    ck_assert_int_eq(tb_take(&b, 1, 1, 0), 1);
    ck_assert_int_eq(tb_take(&b, 1, 1, 0), 0);
    ck_assert_int_eq(tb_take(&b, 1, 1, SEC / 2), 0);
    ck_assert_int_eq(tb_take(&b, 1, 1, SEC), 1);
}
END_TEST

START_TEST(test_refill_at_rate)
{
    struct tbucket b;
    int64_t t = 5 * SEC;
    tb_init(&b, 20, t);
    ck_assert_int_eq(drain(&b, 10, 20, t), 20);
    /* 10 per second: one token every 100 ms. */
    ck_assert_int_eq(tb_take(&b, 10, 20, t + 50000), 0);
    ck_assert_int_eq(tb_take(&b, 10, 20, t + 100000), 1);
    ck_assert_int_eq(tb_take(&b, 10, 20, t + 100000), 0);
    /* Half a second later: five more. */
    ck_assert_int_eq(drain(&b, 10, 20, t + 600000), 5);
    /* A refused take costs nothing: the partial token keeps accruing. */
    ck_assert_int_eq(tb_take(&b, 10, 20, t + 650000), 0);
    ck_assert_int_eq(tb_take(&b, 10, 20, t + 700000), 1);
}
END_TEST

START_TEST(test_steady_rate_over_time)
{
    /* Taking as fast as allowed for 10 s at 8/s after the burst: 80 more.
     * (Steps of 1/64 s add exactly 0.125 tokens: no rounding drift.) */
    struct tbucket b;
    tb_init(&b, 20, 0);
    int taken = 0;
    for (int64_t t = 0; t <= 10 * SEC; t += 15625)
        taken += drain(&b, 8, 20, t);
    ck_assert_int_eq(taken, 20 + 80);
}
END_TEST

START_TEST(test_never_exceeds_burst)
{
    struct tbucket b;
    tb_init(&b, 5, 0);
    ck_assert_int_eq(drain(&b, 10, 5, 0), 5);
    /* An hour idle refills to burst, not to 36000. */
    ck_assert_int_eq(drain(&b, 10, 5, 3600 * SEC), 5);
    ck_assert(b.tokens >= 0.0 && b.tokens < 1.0);
    /* A partly used bucket is capped too. */
    ck_assert_int_eq(tb_take(&b, 10, 5, 7200 * SEC), 1);
    ck_assert(b.tokens <= 5.0);
    ck_assert_int_eq(drain(&b, 10, 5, 7200 * SEC), 4);
}
END_TEST

START_TEST(test_fractional_rate)
{
    struct tbucket b;
    tb_init(&b, 1, 0);
    ck_assert_int_eq(tb_take(&b, 0.5, 1, 0), 1);
    ck_assert_int_eq(tb_take(&b, 0.5, 1, SEC), 0);         /* half a token */
    ck_assert_int_eq(tb_take(&b, 0.5, 1, 3 * SEC / 2), 0); /* 0.75 */
    ck_assert_int_eq(tb_take(&b, 0.5, 1, 2 * SEC), 1);     /* one every 2 s */
    ck_assert_int_eq(tb_take(&b, 0.5, 1, 3 * SEC), 0);
    ck_assert_int_eq(tb_take(&b, 0.5, 1, 4 * SEC), 1);
}
END_TEST

START_TEST(test_fractional_burst)
{
    /* burst 2.5: two at once, not three. */
    struct tbucket b;
    tb_init(&b, 2.5, 0);
    ck_assert_int_eq(drain(&b, 1, 2.5, 0), 2);
    ck_assert(b.tokens > 0.49 && b.tokens < 0.51);
    ck_assert_int_eq(tb_take(&b, 1, 2.5, SEC / 2), 1); /* 0.5 + 0.5 */
}
END_TEST

START_TEST(test_clock_going_back)
{
    struct tbucket b;
    tb_init(&b, 2, 10 * SEC);
    ck_assert_int_eq(drain(&b, 1, 2, 10 * SEC), 2);
    /* An earlier time adds nothing; the count restarts from it. */
    ck_assert_int_eq(tb_take(&b, 1, 2, 5 * SEC), 0);
    ck_assert_int_eq(b.last_ms, 5 * 1000);
    ck_assert_int_eq(tb_take(&b, 1, 2, 5 * SEC + SEC / 2), 0); /* half a token */
    ck_assert_int_eq(tb_take(&b, 1, 2, 6 * SEC), 1);
}
END_TEST

START_TEST(test_debt)
{
    /* A byte budget: 1000 per second, 4000 at once; costs known afterwards. */
    struct tbucket b;
    tb_init(&b, 4000, 0);
    ck_assert(tb_ready(&b, 1000, 4000, 0));
    tb_spend(&b, 6000); /* a reply bigger than what was left: debt */
    ck_assert(!tb_ready(&b, 1000, 4000, SEC));    /* -1000 */
    ck_assert(tb_ready(&b, 1000, 4000, 2 * SEC)); /* paid back */
    ck_assert(b.tokens >= 0.0f && b.tokens < 1.0f);
    ck_assert(tb_ready(&b, 1000, 4000, 3600 * SEC)); /* capped at burst */
    ck_assert(b.tokens == 4000.0f);
}
END_TEST

START_TEST(test_millisecond_clock_wraps)
{
    /* 2^32 ms is 49.7 days: the bucket keeps refilling across the wrap. */
    struct tbucket b;
    int64_t wrap = (int64_t)UINT32_MAX * 1000;
    tb_init(&b, 2, wrap - SEC / 2);
    ck_assert_int_eq(drain(&b, 1, 2, wrap - SEC / 2), 2);
    ck_assert_int_eq(tb_take(&b, 1, 2, wrap + SEC / 2 + 1000), 1);
    ck_assert_int_eq(tb_take(&b, 1, 2, wrap + SEC / 2 + 1000), 0);
}
END_TEST

START_TEST(test_untouched_for_weeks)
{
    /* 30 days idle (over 2^31 ms): no refill that once, never stuck after. */
    struct tbucket b;
    tb_init(&b, 2, 0);
    ck_assert_int_eq(drain(&b, 1, 2, 0), 2);
    int64_t later = 30LL * 86400 * SEC;
    ck_assert_int_eq(tb_take(&b, 1, 2, later), 0);
    ck_assert_int_eq(tb_take(&b, 1, 2, later + SEC), 1);
}
END_TEST

static Suite *ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fresh_bucket_allows_burst);
    tcase_add_test(tc, test_burst_one);
    tcase_add_test(tc, test_refill_at_rate);
    tcase_add_test(tc, test_steady_rate_over_time);
    tcase_add_test(tc, test_never_exceeds_burst);
    tcase_add_test(tc, test_fractional_rate);
    tcase_add_test(tc, test_fractional_burst);
    tcase_add_test(tc, test_clock_going_back);
    tcase_add_test(tc, test_debt);
    tcase_add_test(tc, test_millisecond_clock_wraps);
    tcase_add_test(tc, test_untouched_for_weeks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ratelimit_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
