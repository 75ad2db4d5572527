/* test_iplimit.c -- client address keys, X-Forwarded-For, and the
 * per-key table (connections, guest and auth windows, the memory bound),
 * on a fake clock. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iplimit.h"

#define SEC 1000000LL

static struct iplimit_addr addr(const char *s)
{
    struct iplimit_addr a;
    memset(&a, 0xee, sizeof a);
    ck_assert_msg(!iplimit_addr_parse(s, strlen(s), &a), "parse %s", s);
    return a;
}

static struct iplimit_key key(const char *s)
{
    struct iplimit_addr a = addr(s);
    struct iplimit_key k;
    iplimit_key_of(&a, &k);
    return k;
}

static int key_eq(const char *a, const char *b)
{
    struct iplimit_key x = key(a), y = key(b);
    return !memcmp(&x, &y, sizeof x);
}

static const char *kstr(const char *s)
{
    static char out[64];
    struct iplimit_key k = key(s);
    iplimit_key_str(&k, out, sizeof out);
    return out;
}

START_TEST(test_v4_full_address)
{
    ck_assert(key_eq("203.0.113.7", "203.0.113.7"));
    ck_assert(!key_eq("203.0.113.7", "203.0.113.8"));
    ck_assert_str_eq(kstr("203.0.113.7"), "203.0.113.7");
    ck_assert(key_eq("203.0.113.7:5555", "203.0.113.7"));
    ck_assert(key_eq(" 203.0.113.7\t", "203.0.113.7"));
}
END_TEST

START_TEST(test_v6_by_64)
{
    ck_assert(key_eq("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
    ck_assert(!key_eq("2001:db8:1:2::1", "2001:db8:1:3::1"));
    ck_assert(key_eq("[2001:db8:1:2::1]:443", "2001:db8:1:2::9"));
    ck_assert(key_eq("[2001:db8:1:2::1]", "2001:db8:1:2::9"));
    ck_assert_str_eq(kstr("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    /* The full addresses differ (trust-proxy compares those). */
    struct iplimit_addr a = addr("2001:db8:1:2::1"), b = addr("2001:db8:1:2::2");
    ck_assert(!iplimit_addr_eq(&a, &b));
}
END_TEST

START_TEST(test_v4_mapped_is_v4)
{
    ck_assert(key_eq("::ffff:198.51.100.4", "198.51.100.4"));
    ck_assert(key_eq("[::ffff:198.51.100.4]:80", "198.51.100.4"));
    ck_assert_str_eq(kstr("::ffff:198.51.100.4"), "198.51.100.4");
    /* Not every ::/96 is mapped: ::198.51.100.4 (compatible) stays IPv6. */
    ck_assert(!key_eq("::198.51.100.4", "198.51.100.4"));
    struct iplimit_addr a = addr("::ffff:10.0.0.1");
    ck_assert_int_eq(a.fam, 4);
}
END_TEST

START_TEST(test_not_addresses)
{
    static const char *bad[] = {"",
                                " ",
                                "1.2.3",
                                "1.2.3.4.5",
                                "256.1.1.1",
                                "1.2.3.4:",
                                "1.2.3.4:123456",
                                "1.2.3.4:x",
                                "[1.2.3.4]",
                                "[::1",
                                "[::1]x",
                                "[::1]:",
                                "::1::2",
                                "unknown",
                                "_hidden",
                                "1.2.3.4 5.6.7.8",
                                "fe80::1%eth0",
                                "::ffff:1.2.3.4:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct iplimit_addr a;
        ck_assert_msg(iplimit_addr_parse(bad[i], strlen(bad[i]), &a) == -1, "'%s'",
                      bad[i]);
    }
    struct iplimit_addr a;
    ck_assert_int_eq(iplimit_addr_parse("1.2.3.4\0x", 9, &a), -1); /* an embedded NUL */
    char huge[200];
    memset(huge, '1', sizeof huge);
    ck_assert_int_eq(iplimit_addr_parse(huge, sizeof huge, &a), -1);
}
END_TEST

/* ---- X-Forwarded-For ---- */

static int xff(const char *v, const char *trusted_csv, char *out)
{
    struct iplimit_addr tr[8], a;
    int n = 0;
    const char *p = trusted_csv;
    while (p && *p) {
        size_t len = strcspn(p, ",");
        ck_assert(!iplimit_addr_parse(p, len, &tr[n++]));
        p += len + (p[len] == ',');
    }
    if (!iplimit_xff_client(v, strlen(v), tr, n, &a)) return 0;
    struct iplimit_key k;
    iplimit_key_of(&a, &k);
    iplimit_key_str(&k, out, 64);
    return 1;
}

START_TEST(test_xff_rightmost_untrusted)
{
    char out[64];
    ck_assert(xff("198.51.100.4", "127.0.0.1", out));
    ck_assert_str_eq(out, "198.51.100.4");
    /* A client's own claim on the left is never believed. */
    ck_assert(xff("1.1.1.1, 198.51.100.4", "127.0.0.1", out));
    ck_assert_str_eq(out, "198.51.100.4");
    /* Trusted proxies on the right are skipped. */
    ck_assert(xff("1.1.1.1, 198.51.100.4, 10.0.0.2", "127.0.0.1,10.0.0.2", out));
    ck_assert_str_eq(out, "198.51.100.4");
    /* Every hop is ours: the leftmost. */
    ck_assert(xff("10.0.0.2,127.0.0.1", "127.0.0.1,10.0.0.2", out));
    ck_assert_str_eq(out, "10.0.0.2");
    ck_assert(xff("[2001:db8::1]:4711 ,\t::ffff:10.0.0.2", "10.0.0.2", out));
    ck_assert_str_eq(out, "2001:db8::/64");
}
END_TEST

START_TEST(test_xff_garbage_falls_back)
{
    char out[64];
    static const char *bad[] = {
        "",       ",",           "198.51.100.4,",   "unknown",
        " ",      "1.2.3.4 ,, ", "\"1.2.3.4\"",     "1.2.3.4;5.6.7.8",
        "1.2.3.", "::1]",        "10.0.0.2,garbage"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!xff(bad[i], "10.0.0.2", out), "'%s' gave %s", bad[i], out);
    /* Garbage left of the client is never read. */
    ck_assert(xff("garbage,%%%,198.51.100.4", "10.0.0.2", out));
    ck_assert_str_eq(out, "198.51.100.4");
    /* Truncated (a header cut mid-address) is an address or nothing. */
    const char *full = "198.51.100.4, 2001:db8::77";
    for (size_t n = 0; n <= strlen(full); n++) {
        struct iplimit_addr a;
        (void)iplimit_xff_client(full, n, NULL, 0, &a);
    }
}
END_TEST

START_TEST(test_xff_huge)
{
    /* 100000 bytes of commas and addresses: read from the right only. */
    size_t n = 100000;
    char *v = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = i % 8 == 7 ? ',' : "10.0.0.2"[i % 8];
    memcpy(v + n - 12, ",203.0.113.9", 12);
    v[n] = 0;
    char out[64];
    ck_assert(xff(v, "10.0.0.2", out));
    ck_assert_str_eq(out, "203.0.113.9");
    /* An empty element on the right: nothing to believe. */
    memcpy(v + n - 12, ",10.0.0.2,,,", 12);
    ck_assert(!xff(v, "10.0.0.2", out));
    /* All trusted: walks every one, answers the leftmost. */
    for (size_t i = 0; i < n; i++)
        v[i] = i % 9 == 8 ? ',' : "10.0.0.2"[i % 9];
    v[n - n % 9 - 1] = 0;
    ck_assert(xff(v, "10.0.0.2", out));
    ck_assert_str_eq(out, "10.0.0.2");
    memset(v, ',', n);
    ck_assert(!xff(v, "10.0.0.2", out));
    memset(v, 'x', n);
    ck_assert(!xff(v, "10.0.0.2", out));
    free(v);
}
END_TEST

/* ---- The table ---- */

static struct iplimit *table(long conns, long guests, long auth, size_t max_keys)
{
    struct iplimit_config c = {conns, guests, auth, max_keys};
    struct iplimit *t = iplimit_new(&c);
    ck_assert_ptr_nonnull(t);
    return t;
}

START_TEST(test_conns_count_and_release)
{
    struct iplimit *t = table(3, 0, 0, 100);
    struct iplimit_key a = key("192.0.2.1"), b = key("192.0.2.2");
    struct iplimit_stats st;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(iplimit_conn_full(t, &a), 0);
        ck_assert_int_eq(iplimit_conn_acquire(t, &a, 0), 1);
    }
    ck_assert_int_eq(iplimit_conn_full(t, &a), 1);
    ck_assert_int_eq(iplimit_conn_acquire(t, &a, 0), -1);
    ck_assert_int_eq(iplimit_conn_acquire(t, &b, 0), 1); /* another key: its own count */
    iplimit_stats(t, &st);
    ck_assert_int_eq(st.conns, 4);
    ck_assert_int_eq(st.keys, 2);
    ck_assert_int_eq(st.conn_refused, 2);
    ck_assert_int_eq(iplimit_check(t), 0);
    iplimit_conn_release(t, &a, 0);
    ck_assert_int_eq(iplimit_conn_full(t, &a), 0);
    ck_assert_int_eq(iplimit_conn_acquire(t, &a, 0), 1);
    for (int i = 0; i < 3; i++)
        iplimit_conn_release(t, &a, 0);
    iplimit_conn_release(t, &b, 0);
    iplimit_stats(t, &st);
    ck_assert_int_eq(st.conns, 0);
    ck_assert_int_eq(st.keys, 0); /* nothing left to remember */
    ck_assert_int_eq(iplimit_check(t), 0);
    iplimit_free(t);
}
END_TEST

START_TEST(test_zero_means_unlimited)
{
    struct iplimit *t = table(0, 0, 0, 100);
    struct iplimit_key a = key("192.0.2.1");
    long retry = 0;
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(iplimit_conn_full(t, &a), 0);
        ck_assert_int_eq(iplimit_conn_acquire(t, &a, 0), 1); /* still counted */
        ck_assert_int_eq(iplimit_guest_take(t, &a, 0, &retry), 1);
        iplimit_auth_failed(t, &a, 0);
        ck_assert_int_eq(iplimit_auth_blocked(t, &a, 0), 0);
    }
    for (int i = 0; i < 1000; i++)
        iplimit_conn_release(t, &a, 0);
    ck_assert_int_eq(iplimit_check(t), 0);
    iplimit_free(t);
    /* No table: nothing counted, nothing refused. */
    ck_assert_int_eq(iplimit_conn_acquire(NULL, &a, 0), 0);
    ck_assert_int_eq(iplimit_conn_full(NULL, &a), 0);
    ck_assert_int_eq(iplimit_guest_take(NULL, &a, 0, &retry), 1);
    ck_assert_int_eq(iplimit_auth_blocked(NULL, &a, 0), 0);
}
END_TEST

START_TEST(test_guest_window)
{
    struct iplimit *t = table(0, 60, 0, 100);
    struct iplimit_key a = key("192.0.2.1"), b = key("2001:db8::1");
    int64_t now = 1000 * SEC;
    long retry = 0;
    for (int i = 0; i < 60; i++)
        ck_assert_int_eq(iplimit_guest_take(t, &a, now, &retry), 1);
    ck_assert_int_eq(iplimit_guest_take(t, &a, now, &retry), 0);
    ck_assert_int_eq(retry, 1); /* one per second comes back */
    ck_assert_int_eq(iplimit_guest_take(t, &b, now, &retry), 1);
    ck_assert_int_eq(iplimit_guest_take(t, &a, now + SEC / 2, &retry), 0);
    ck_assert_int_eq(iplimit_guest_take(t, &a, now + SEC, &retry), 1);
    ck_assert_int_eq(iplimit_guest_take(t, &a, now + SEC, &retry), 0);
    /* A quiet minute refills it all. */
    int n = 0;
    while (iplimit_guest_take(t, &a, now + 62 * SEC, &retry))
        n++;
    ck_assert_int_eq(n, 60);
    struct iplimit_stats st;
    iplimit_stats(t, &st);
    ck_assert_int_eq(st.guest_refused, 4);
    iplimit_free(t);
}
END_TEST

START_TEST(test_auth_window)
{
    struct iplimit *t = table(0, 0, 10, 100);
    struct iplimit_key a = key("192.0.2.1");
    int64_t now = 50 * SEC;
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(iplimit_auth_blocked(t, &a, now), 0);
        iplimit_auth_failed(t, &a, now);
    }
    ck_assert_int_eq(iplimit_auth_blocked(t, &a, now), 1);
    ck_assert_int_eq(iplimit_auth_blocked(t, &a, now + 5 * SEC), 1);
    ck_assert_int_eq(iplimit_auth_blocked(t, &a, now + 6 * SEC), 0); /* one of ten back */
    struct iplimit_key b = key("192.0.2.2");
    ck_assert_int_eq(iplimit_auth_blocked(t, &b, now), 0);
    struct iplimit_stats st;
    iplimit_stats(t, &st);
    ck_assert_int_eq(st.auth_refused, 2);
    iplimit_free(t);
}
END_TEST

START_TEST(test_expiry_frees_entries)
{
    struct iplimit *t = table(10, 60, 10, 1000);
    int64_t now = 10 * SEC;
    char s[32];
    long retry;
    for (int i = 0; i < 500; i++) {
        snprintf(s, sizeof s, "10.1.%d.%d", i / 256, i % 256);
        struct iplimit_key k = key(s);
        ck_assert(iplimit_guest_take(t, &k, now, &retry));
    }
    struct iplimit_stats st;
    iplimit_stats(t, &st);
    ck_assert_int_eq(st.keys, 500);
    /* A minute later every window is full again: the sweep (a few buckets
     * per call) forgets them as calls go by. */
    struct iplimit_key other = key("192.0.2.99");
    for (int i = 0; i < 2000; i++)
        (void)iplimit_conn_full(t, &other),
            iplimit_auth_blocked(t, &other, now + 61 * SEC);
    iplimit_stats(t, &st);
    ck_assert_int_eq(st.keys, 0);
    ck_assert_int_eq(iplimit_check(t), 0);
    iplimit_free(t);
}
END_TEST

START_TEST(test_bound_holds)
{
    struct iplimit *t = table(10, 60, 0, 64);
    int64_t now = 10 * SEC;
    char s[32];
    long retry;
    /* 40 connected keys, then 1000 guest-only keys within the same second. */
    for (int i = 0; i < 40; i++) {
        snprintf(s, sizeof s, "10.2.0.%d", i);
        struct iplimit_key k = key(s);
        ck_assert_int_eq(iplimit_conn_acquire(t, &k, now), 1);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(s, sizeof s, "10.3.%d.%d", i / 256, i % 256);
        struct iplimit_key k = key(s);
        ck_assert(iplimit_guest_take(t, &k, now, &retry)); /* evicts an idle key */
        struct iplimit_stats st;
        iplimit_stats(t, &st);
        ck_assert_uint_le(st.keys, 64);
    }
    ck_assert_int_eq(iplimit_check(t), 0);
    /* Connected keys are never evicted: all 40 still count. */
    struct iplimit_stats st;
    iplimit_stats(t, &st);
    ck_assert_int_eq(st.conns, 40);
    /* A table full of connected keys refuses a new one rather than grow. */
    struct iplimit *u = table(10, 0, 0, 4);
    for (int i = 0; i < 4; i++) {
        snprintf(s, sizeof s, "10.4.0.%d", i);
        struct iplimit_key k = key(s);
        ck_assert_int_eq(iplimit_conn_acquire(u, &k, now), 1);
    }
    struct iplimit_key k5 = key("10.4.0.5");
    ck_assert_int_eq(iplimit_conn_acquire(u, &k5, now), -1);
    for (int i = 0; i < 4; i++) {
        snprintf(s, sizeof s, "10.4.0.%d", i);
        struct iplimit_key k = key(s);
        iplimit_conn_release(u, &k, now);
    }
    iplimit_free(u);
    for (int i = 0; i < 40; i++) {
        snprintf(s, sizeof s, "10.2.0.%d", i);
        struct iplimit_key k = key(s);
        iplimit_conn_release(t, &k, now);
    }
    iplimit_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("iplimit");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, test_v4_full_address);
    tcase_add_test(tc, test_v6_by_64);
    tcase_add_test(tc, test_v4_mapped_is_v4);
    tcase_add_test(tc, test_not_addresses);
    suite_add_tcase(s, tc);
    tc = tcase_create("xff");
    tcase_add_test(tc, test_xff_rightmost_untrusted);
    tcase_add_test(tc, test_xff_garbage_falls_back);
    tcase_add_test(tc, test_xff_huge);
    suite_add_tcase(s, tc);
    tc = tcase_create("table");
    tcase_add_test(tc, test_conns_count_and_release);
    tcase_add_test(tc, test_zero_means_unlimited);
    tcase_add_test(tc, test_guest_window);
    tcase_add_test(tc, test_auth_window);
    tcase_add_test(tc, test_expiry_frees_entries);
    tcase_add_test(tc, test_bound_holds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
