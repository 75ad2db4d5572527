/* test_config.c -- flags, PARLEY_* variables and the Origin allow-list. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

extern char **environ;

/* Removes every PARLEY_* variable, so the tests see only what they set. */
static void clear_env(void)
{
    for (;;) {
        char **e = environ;
        while (*e && strncmp(*e, "PARLEY_", 7))
            e++;
        if (!*e) return;
        char name[256];
        size_t n = strcspn(*e, "=");
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, *e, n);
        name[n] = 0;
        unsetenv(name);
    }
}

static void setup(void)
{
    clear_env();
}

/* Parses a NULL-terminated argument list (argv[0] is added). */
#define PARSE(c, ...)                                                                    \
    ({                                                                                   \
        char *argv_[] = {"parley", __VA_ARGS__, NULL};                                   \
        config_parse(c, (int)(sizeof argv_ / sizeof argv_[0]) - 1, argv_);               \
    })

START_TEST(test_defaults)
{
    struct config c;
    char *argv[] = {"parley", NULL};
    ck_assert_int_eq(config_parse(&c, 1, argv), CONFIG_OK);
    ck_assert_int_eq(c.port, 8080);
    ck_assert_ptr_null(c.bind);
    ck_assert_str_eq(c.db, "parley.db");
    ck_assert_ptr_null(c.web_root);
    ck_assert_ptr_null(c.jwt_secret);
    ck_assert_int_eq(c.no_guests, 0);
    ck_assert_ptr_null(c.origins);
    ck_assert_int_eq(c.norigins, 0);
    ck_assert_int_eq(c.max_connections, 10000);
    ck_assert_int_eq(c.max_text, 4000);
    ck_assert_double_eq(c.rate, 10);
    ck_assert_double_eq(c.burst, 20);
    ck_assert_str_eq(c.log_level, "info");
    ck_assert_str_eq(c.log_format, "text");
    ck_assert_int_eq(c.hello_timeout, 10);
    ck_assert_int_eq(c.max_frame, 65536);
    ck_assert_int_eq(c.outq_max_msgs, 4096);
    ck_assert_int_eq(c.outq_max_bytes, 4L << 20);
    ck_assert_int_eq(c.db_queue, 16384);
    ck_assert_int_eq(c.db_batch, 1024);
    ck_assert_str_eq(c.db_sync, "full");
    ck_assert_ptr_null(c.tls_cert);
    ck_assert_ptr_null(c.tls_key);
    ck_assert_int_eq(c.retention_days, 0);
    ck_assert_int_eq(c.max_messages_per_room, 0);
    ck_assert_int_eq(c.max_conns_per_ip, 100);
    ck_assert_int_eq(c.guests_per_ip_minute, 60);
    ck_assert_int_eq(c.api_auth_fails_per_ip, 10);
    ck_assert_ptr_null(c.trust_proxy);
    ck_assert_int_eq(c.ntrusted, 0);
    config_free(&c);
}
END_TEST

START_TEST(test_ip_limits)
{
    struct config c;
    ck_assert_int_eq(PARSE(&c, "--max-conns-per-ip", "0", "--guests-per-ip-minute", "5",
                           "--api-auth-fails-per-ip", "3", "--trust-proxy",
                           "127.0.0.1, ::1,[2001:db8::5],::ffff:10.0.0.1"),
                     CONFIG_OK);
    ck_assert_int_eq(c.max_conns_per_ip, 0);
    ck_assert_int_eq(c.guests_per_ip_minute, 5);
    ck_assert_int_eq(c.api_auth_fails_per_ip, 3);
    ck_assert_int_eq(c.ntrusted, 4);
    ck_assert_int_eq(c.trusted[0].fam, 4);
    ck_assert_int_eq(c.trusted[1].fam, 6);
    ck_assert_int_eq(c.trusted[3].fam, 4); /* mapped: its IPv4 address */
    config_free(&c);
    setenv("PARLEY_MAX_CONNS_PER_IP", "7", 1);
    setenv("PARLEY_TRUST_PROXY", "10.0.0.9", 1);
    ck_assert_int_eq(PARSE(&c, "--port", "1"), CONFIG_OK);
    ck_assert_int_eq(c.max_conns_per_ip, 7);
    ck_assert_int_eq(c.ntrusted, 1);
    config_free(&c);
    clear_env();
    static const char *bad[] = {"proxy.example", "10.0.0.0/8",       "1.2.3.4,",
                                ",1.2.3.4",      "1.2.3.4,,5.6.7.8", "  "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(PARSE(&c, "--trust-proxy", (char *)bad[i]) == CONFIG_ERROR, "'%s'",
                      bad[i]);
    ck_assert_int_eq(PARSE(&c, "--max-conns-per-ip", "-1"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--guests-per-ip-minute", "x"), CONFIG_ERROR);
}
END_TEST

START_TEST(test_each_flag)
{
    struct config c;
    int rc =
        PARSE(&c, "--port", "9000", "--bind", "127.0.0.1", "--db", "/tmp/x.db",
              "--web-root", "/srv/web", "--jwt-secret", "k", "--no-guests", "--origins",
              "https://a.example", "--max-connections", "5", "--max-text", "100",
              "--rate", "2.5", "--burst", "3", "--log-level", "debug", "--log-format",
              "json", "--hello-timeout", "30", "--max-frame", "2048", "--outq-max-msgs",
              "64", "--outq-max-bytes", "4096", "--db-queue", "7", "--db-batch", "8",
              "--db-sync", "normal", "--tls-cert", "c.pem", "--tls-key", "k.pem",
              "--retention-days", "30", "--max-messages-per-room", "1000");
    ck_assert_int_eq(rc, CONFIG_OK);
    ck_assert_int_eq(c.port, 9000);
    ck_assert_str_eq(c.bind, "127.0.0.1");
    ck_assert_str_eq(c.db, "/tmp/x.db");
    ck_assert_str_eq(c.web_root, "/srv/web");
    ck_assert_str_eq(c.jwt_secret, "k");
    ck_assert_int_eq(c.no_guests, 1);
    ck_assert_str_eq(c.origins, "https://a.example");
    ck_assert_int_eq(c.max_connections, 5);
    ck_assert_int_eq(c.max_text, 100);
    ck_assert_double_eq(c.rate, 2.5);
    ck_assert_double_eq(c.burst, 3);
    ck_assert_str_eq(c.log_level, "debug");
    ck_assert_str_eq(c.log_format, "json");
    ck_assert_int_eq(c.hello_timeout, 30);
    ck_assert_int_eq(c.max_frame, 2048);
    ck_assert_int_eq(c.outq_max_msgs, 64);
    ck_assert_int_eq(c.outq_max_bytes, 4096);
    ck_assert_int_eq(c.db_queue, 7);
    ck_assert_int_eq(c.db_batch, 8);
    ck_assert_str_eq(c.db_sync, "normal");
    ck_assert_str_eq(c.tls_cert, "c.pem");
    ck_assert_str_eq(c.tls_key, "k.pem");
    ck_assert_int_eq(c.retention_days, 30);
    ck_assert_int_eq(c.max_messages_per_room, 1000);
    config_free(&c);
}
END_TEST

START_TEST(test_equals_form)
{
    struct config c;
    int rc = PARSE(&c, "--port=1234", "--db=a=b.db", "--rate=0.5", "--log-level=warn",
                   "--no-guests=1", "--jwt-secret=x=y");
    ck_assert_int_eq(rc, CONFIG_OK);
    ck_assert_int_eq(c.port, 1234);
    ck_assert_str_eq(c.db, "a=b.db"); /* split at the first '=' */
    ck_assert_double_eq(c.rate, 0.5);
    ck_assert_str_eq(c.log_level, "warn");
    ck_assert_int_eq(c.no_guests, 1);
    ck_assert_str_eq(c.jwt_secret, "x=y");
    config_free(&c);
    ck_assert_int_eq(PARSE(&c, "--no-guests=0"), CONFIG_OK);
    ck_assert_int_eq(c.no_guests, 0);
    config_free(&c);
    ck_assert_int_eq(PARSE(&c, "--no-guests=false"), CONFIG_OK);
    ck_assert_int_eq(c.no_guests, 0);
    config_free(&c);
}
END_TEST

START_TEST(test_last_flag_wins)
{
    struct config c;
    ck_assert_int_eq(PARSE(&c, "--port", "1", "--port=2"), CONFIG_OK);
    ck_assert_int_eq(c.port, 2);
    config_free(&c);
}
END_TEST

START_TEST(test_bounds_accepted)
{
    struct config c;
    ck_assert_int_eq(PARSE(&c, "--port", "1"), CONFIG_OK);
    ck_assert_int_eq(c.port, 1);
    config_free(&c);
    ck_assert_int_eq(PARSE(&c, "--port", "65535"), CONFIG_OK);
    ck_assert_int_eq(c.port, 65535);
    config_free(&c);
}
END_TEST

START_TEST(test_bad_values)
{
    struct config c;
    ck_assert_int_eq(PARSE(&c, "--port", "0"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port", "70000"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port", "65536"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port", "abc"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port", "80x"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port", ""), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port", "-1"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port", "99999999999999999999999"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port=abc"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--rate", "-1"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--rate", "0"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--rate", "fast"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--rate", "nan"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--burst", "0.5"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--max-text", "0"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--log-level", "verbose"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--log-level", "info|debug"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--log-level", ""), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--db-sync", "off"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--db", ""), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--no-guests=maybe"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--max-frame", "100"), CONFIG_ERROR);
}
END_TEST

START_TEST(test_unknown_and_missing)
{
    struct config c;
    ck_assert_int_eq(PARSE(&c, "--nope"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--nope=1"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "port"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "-p", "80"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--por", "80"), CONFIG_ERROR); /* no prefix matching */
    ck_assert_int_eq(PARSE(&c, "--portx", "80"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port"), CONFIG_ERROR); /* missing value */
    ck_assert_int_eq(PARSE(&c, "--db"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--port", "80", "--rate"), CONFIG_ERROR);
}
END_TEST

START_TEST(test_tls_pair_and_exit)
{
    struct config c;
    ck_assert_int_eq(PARSE(&c, "--tls-cert", "c.pem"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--tls-key", "k.pem"), CONFIG_ERROR);
    ck_assert_int_eq(PARSE(&c, "--version"), CONFIG_EXIT);
    ck_assert_int_eq(PARSE(&c, "--help"), CONFIG_EXIT);
    ck_assert_int_eq(PARSE(&c, "-h"), CONFIG_EXIT);
}
END_TEST

START_TEST(test_env)
{
    struct config c;
    setenv("PARLEY_PORT", "7777", 1);
    setenv("PARLEY_JWT_SECRET", "envsecret", 1);
    setenv("PARLEY_MAX_TEXT", "123", 1);
    setenv("PARLEY_DB_SYNC", "normal", 1);
    ck_assert_int_eq(PARSE(&c, "--db", "x.db"), CONFIG_OK);
    ck_assert_int_eq(c.port, 7777);
    ck_assert_str_eq(c.jwt_secret, "envsecret");
    ck_assert_int_eq(c.max_text, 123);
    ck_assert_str_eq(c.db_sync, "normal");
    ck_assert_str_eq(c.db, "x.db");
    config_free(&c);
    /* argv wins over the environment. */
    ck_assert_int_eq(PARSE(&c, "--port", "8081", "--max-text=9"), CONFIG_OK);
    ck_assert_int_eq(c.port, 8081);
    ck_assert_int_eq(c.max_text, 9);
    ck_assert_str_eq(c.jwt_secret, "envsecret");
    config_free(&c);
    /* A bad environment value is an error, even when argv would override it. */
    setenv("PARLEY_PORT", "0", 1);
    ck_assert_int_eq(PARSE(&c, "--db", "x.db"), CONFIG_ERROR);
    clear_env();
}
END_TEST

START_TEST(test_env_flag)
{
    struct config c;
    static const char *const on[] = {"1", "true", "yes", "TRUE", "Yes"};
    static const char *const off[] = {"0", "false", "no", "NO"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        setenv("PARLEY_NO_GUESTS", on[i], 1);
        ck_assert_int_eq(PARSE(&c, "--db", "x"), CONFIG_OK);
        ck_assert_int_eq(c.no_guests, 1);
        config_free(&c);
    }
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        setenv("PARLEY_NO_GUESTS", off[i], 1);
        ck_assert_int_eq(PARSE(&c, "--db", "x"), CONFIG_OK);
        ck_assert_int_eq(c.no_guests, 0);
        config_free(&c);
    }
    setenv("PARLEY_NO_GUESTS", "perhaps", 1);
    ck_assert_int_eq(PARSE(&c, "--db", "x"), CONFIG_ERROR);
    /* The flag on the command line overrides an env "0". */
    setenv("PARLEY_NO_GUESTS", "0", 1);
    ck_assert_int_eq(PARSE(&c, "--no-guests"), CONFIG_OK);
    ck_assert_int_eq(c.no_guests, 1);
    config_free(&c);
    clear_env();
}
END_TEST

START_TEST(test_origins)
{
    struct config c;
    ck_assert_int_eq(
        PARSE(&c, "--origins",
              "https://a.example, http://b.example:8080/,,  https://C.example  "),
        CONFIG_OK);
    ck_assert_int_eq(c.norigins, 3);
    ck_assert_str_eq(c.origin_list[0], "https://a.example");
    ck_assert_str_eq(c.origin_list[1], "http://b.example:8080");
    ck_assert_str_eq(c.origin_list[2], "https://C.example");
    ck_assert_int_eq(config_origin_allowed(&c, "https://a.example"), 1);
    ck_assert_int_eq(config_origin_allowed(&c, "http://b.example:8080"), 1);
    ck_assert_int_eq(config_origin_allowed(&c, "https://c.example"),
                     1); /* case-insensitive */
    ck_assert_int_eq(config_origin_allowed(&c, "http://a.example"),
                     0); /* scheme matters */
    ck_assert_int_eq(config_origin_allowed(&c, "https://a.example:443"), 0);
    ck_assert_int_eq(config_origin_allowed(&c, "http://b.example"), 0); /* port matters */
    ck_assert_int_eq(config_origin_allowed(&c, "https://a.example.evil"), 0);
    ck_assert_int_eq(config_origin_allowed(&c, "https://a.exampl"), 0);
    ck_assert_int_eq(config_origin_allowed(&c, ""), 0);
    config_free(&c);
    ck_assert_int_eq(c.norigins, 0);
}
END_TEST

START_TEST(test_no_origins)
{
    struct config c;
    char *argv[] = {"parley", NULL};
    ck_assert_int_eq(config_parse(&c, 1, argv), CONFIG_OK);
    ck_assert_int_eq(c.norigins, 0);
    /* The list itself is empty; "any origin" is the caller's rule for norigins == 0. */
    ck_assert_int_eq(config_origin_allowed(&c, "https://a.example"), 0);
    config_free(&c);
}
END_TEST

/* A value that parses to no origin must not mean "any origin" (the meaning of
 * an empty list): it is refused like any other bad value. */
START_TEST(test_origins_naming_none)
{
    const char *bad[] = {",", " , ", ",,,", "/", " / ,/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct config c;
        ck_assert_msg(PARSE(&c, "--origins", (char *)bad[i]) == CONFIG_ERROR,
                      "--origins '%s' accepted", bad[i]);
        config_free(&c);
        setenv("PARLEY_ORIGINS", bad[i], 1);
        char *argv[] = {"parley", NULL};
        ck_assert_msg(config_parse(&c, 1, argv) == CONFIG_ERROR,
                      "PARLEY_ORIGINS='%s' accepted", bad[i]);
        config_free(&c);
        clear_env();
    }
}
END_TEST

START_TEST(test_too_many_origins)
{
    struct config c;
    char list[64 * 40] = "";
    for (int i = 0; i < CONFIG_MAX_ORIGINS; i++) {
        char one[40];
        snprintf(one, sizeof one, "%shttp://h%d.example", i ? "," : "", i);
        strcat(list, one);
    }
    ck_assert_int_eq(PARSE(&c, "--origins", list), CONFIG_OK);
    ck_assert_int_eq(c.norigins, CONFIG_MAX_ORIGINS);
    ck_assert_int_eq(config_origin_allowed(&c, "http://h31.example"), 1);
    config_free(&c);
    strcat(list, ",http://one-more.example");
    ck_assert_int_eq(PARSE(&c, "--origins", list), CONFIG_ERROR);
    config_free(&c); /* frees what was split before the error */
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_each_flag);
    tcase_add_test(tc, test_equals_form);
    tcase_add_test(tc, test_last_flag_wins);
    tcase_add_test(tc, test_bounds_accepted);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_unknown_and_missing);
    tcase_add_test(tc, test_tls_pair_and_exit);
    tcase_add_test(tc, test_env);
    tcase_add_test(tc, test_env_flag);
    tcase_add_test(tc, test_origins);
    tcase_add_test(tc, test_no_origins);
    tcase_add_test(tc, test_origins_naming_none);
    tcase_add_test(tc, test_too_many_origins);
    tcase_add_test(tc, test_ip_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
