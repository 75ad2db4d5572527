/* test_protocol.c -- request parsing/validation and the message writers. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static const struct proto_limits lim = {.max_text = 4000};

/* Parses `s` (its strlen) with limits `l`; checks the error code; frees. */
static void expect_l(const char *s, const struct proto_limits *l, enum proto_err want,
                     const char *file, int line)
{
    struct proto_req r;
    const char *msg = NULL;
    enum proto_err e = proto_parse(s, strlen(s), l, &r, &msg);
    if (e != want)
        ck_abort_msg("%s:%d: %s: got %s, want %s (%s)", file, line, s, proto_err_code(e),
                     proto_err_code(want), msg ? msg : "");
    if (e != PROTO_OK) {
        ck_assert_ptr_nonnull(msg);
        ck_assert_int_gt(strlen(msg), 0);
    }
    proto_req_free(&r);
}
#define EXPECT(s, want) expect_l(s, &lim, want, __FILE__, __LINE__)

/* A string of n copies of the UTF-8 sequence `unit`. */
static char *rep(const char *unit, int n)
{
    size_t u = strlen(unit);
    char *s = malloc(u * (size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < n; i++)
        memcpy(s + u * (size_t)i, unit, u);
    s[u * (size_t)n] = 0;
    return s;
}

/* Formats a frame into a malloc'd string. */
static char *frame(const char *fmt, const char *arg)
{
    size_t n = strlen(fmt) + strlen(arg) + 1;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    snprintf(s, n, fmt, arg);
    return s;
}

/* ---- bad_json ---- */

START_TEST(test_bad_json)
{
    EXPECT("", E_BAD_JSON);
    EXPECT("not json", E_BAD_JSON);
    EXPECT("{\"type\":\"ping\"", E_BAD_JSON);    /* truncated */
    EXPECT("[{\"type\":\"ping\"}]", E_BAD_JSON); /* array */
    EXPECT("\"ping\"", E_BAD_JSON);
    EXPECT("42", E_BAD_JSON);
    EXPECT("null", E_BAD_JSON);
    EXPECT("{}", E_BAD_JSON); /* missing type */
    EXPECT("{\"room\":\"a\"}", E_BAD_JSON);
    EXPECT("{\"type\":5}", E_BAD_JSON); /* non-string type */
    EXPECT("{\"type\":null}", E_BAD_JSON);
    EXPECT("{\"type\":[\"ping\"]}", E_BAD_JSON);
    EXPECT("{\"type\":{\"a\":1}}", E_BAD_JSON);
    EXPECT("{\"Type\":\"ping\"}", E_BAD_JSON); /* keys are case-sensitive */
}
END_TEST

START_TEST(test_bad_json_nul_byte)
{
    static const char f[] = "{\"type\":\"ping\"}\0";
    struct proto_req r;
    const char *msg = NULL;
    /* The NUL is inside the frame (len counts it). */
    ck_assert_int_eq(proto_parse(f, sizeof f - 1, &lim, &r, &msg), E_BAD_JSON);
    proto_req_free(&r);
    static const char g[] = "{\"type\":\"p\0ing\"}";
    ck_assert_int_eq(proto_parse(g, sizeof g - 1, &lim, &r, &msg), E_BAD_JSON);
    proto_req_free(&r);
    /* Without it the same frame is fine. */
    ck_assert_int_eq(proto_parse(f, sizeof f - 2, &lim, &r, &msg), PROTO_OK);
    ck_assert_int_eq(r.type, REQ_PING);
    proto_req_free(&r);
}
END_TEST

START_TEST(test_parse_uses_len)
{
    /* Bytes past len are not part of the frame. */
    const char *s = "{\"type\":\"ping\"}garbage";
    struct proto_req r;
    const char *msg;
    ck_assert_int_eq(proto_parse(s, 15, &lim, &r, &msg), PROTO_OK);
    proto_req_free(&r);
}
END_TEST

/* ---- unknown_type ---- */

START_TEST(test_unknown_type)
{
    EXPECT("{\"type\":\"\"}", E_UNKNOWN_TYPE);
    EXPECT("{\"type\":\"chat\"}", E_UNKNOWN_TYPE);
    EXPECT("{\"type\":\"PING\"}", E_UNKNOWN_TYPE);
    EXPECT("{\"type\":\"ping \"}", E_UNKNOWN_TYPE);
    EXPECT("{\"type\":\"welcome\"}", E_UNKNOWN_TYPE); /* a server type */
}
END_TEST

/* ---- bad_request ---- */

START_TEST(test_bad_request_room_field)
{
    EXPECT("{\"type\":\"join\"}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":5}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":null}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":[\"lobby\"]}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"leave\"}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"typing\",\"room\":true}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\"}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"send\",\"text\":\"hi\",\"client_id\":\"c\"}", E_BAD_REQUEST);
}
END_TEST

START_TEST(test_bad_request_history)
{
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"before\":5,\"after\":3}",
           E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"before\":0,\"after\":0}",
           E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"limit\":0}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"limit\":201}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"limit\":-1}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"limit\":1.5}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"limit\":\"10\"}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"limit\":null}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"before\":-1}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"after\":\"3\"}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"after\":2.5}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"before\":1e400}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"before\":9007199254740992}",
           E_BAD_REQUEST);
    /* The bounds themselves are fine. */
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"limit\":1}", PROTO_OK);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"limit\":200}", PROTO_OK);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"limit\":10.0}", PROTO_OK);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"after\":0}", PROTO_OK);
    EXPECT("{\"type\":\"history\",\"room\":\"a\",\"before\":9007199254740991}", PROTO_OK);
}
END_TEST

START_TEST(test_bad_request_join_since)
{
    EXPECT("{\"type\":\"join\",\"room\":\"a\",\"since\":-1}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":\"a\",\"since\":1e400}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":\"a\",\"since\":-1e400}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":\"a\",\"since\":0.5}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":\"a\",\"since\":\"7\"}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":\"a\",\"since\":true}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":\"a\",\"since\":0}", PROTO_OK);
}
END_TEST

START_TEST(test_bad_request_client_id)
{
    char *c64 = rep("c", 64), *c65 = rep("c", 65), *e64 = rep("\xc3\xa9", 64);
    char *f;
    EXPECT("{\"type\":\"send\",\"room\":\"a\",\"text\":\"hi\"}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"send\",\"room\":\"a\",\"text\":\"hi\",\"client_id\":\"\"}",
           E_BAD_REQUEST);
    EXPECT("{\"type\":\"send\",\"room\":\"a\",\"text\":\"hi\",\"client_id\":7}",
           E_BAD_REQUEST);
    EXPECT("{\"type\":\"send\",\"room\":\"a\",\"text\":\"hi\",\"client_id\":null}",
           E_BAD_REQUEST);
    f = frame("{\"type\":\"send\",\"room\":\"a\",\"text\":\"hi\",\"client_id\":\"%s\"}",
              c65);
    EXPECT(f, E_BAD_REQUEST);
    free(f);
    f = frame("{\"type\":\"send\",\"room\":\"a\",\"text\":\"hi\",\"client_id\":\"%s\"}",
              c64);
    EXPECT(f, PROTO_OK);
    free(f);
    /* 64 characters, 128 bytes: characters count. */
    f = frame("{\"type\":\"send\",\"room\":\"a\",\"text\":\"hi\",\"client_id\":\"%s\"}",
              e64);
    EXPECT(f, PROTO_OK);
    free(f);
    free(c64);
    free(c65);
    free(e64);
}
END_TEST

START_TEST(test_bad_request_ref)
{
    char *r64 = rep("r", 64), *r65 = rep("r", 65);
    char *f = frame("{\"type\":\"ping\",\"ref\":\"%s\"}", r65);
    EXPECT(f, E_BAD_REQUEST);
    free(f);
    f = frame("{\"type\":\"ping\",\"ref\":\"%s\"}", r64);
    EXPECT(f, PROTO_OK);
    free(f);
    EXPECT("{\"type\":\"ping\",\"ref\":1}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"ping\",\"ref\":null}", E_BAD_REQUEST);
    free(r64);
    free(r65);
}
END_TEST

START_TEST(test_bad_request_text)
{
    EXPECT("{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\"}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":5}",
           E_BAD_REQUEST);
    EXPECT("{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":[\"x\"]}",
           E_BAD_REQUEST);
    EXPECT(
        "{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"a\\u0000b\"}",
        E_BAD_REQUEST);
    EXPECT("{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"\\u0000\"}",
           E_BAD_REQUEST);
    /* An escaped backslash followed by "u0000" is plain text. */
    EXPECT(
        "{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"a\\\\u0000\"}",
        PROTO_OK);
    /* ...but an escaped backslash then a real \u0000 is not. */
    EXPECT(
        "{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"\\\\\\u0000\"}",
        E_BAD_REQUEST);
}
END_TEST

START_TEST(test_bad_request_hello)
{
    EXPECT("{\"type\":\"hello\",\"name\":5}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"hello\",\"token\":{}}", E_BAD_REQUEST);
    EXPECT("{\"type\":\"hello\",\"name\":\"a\",\"resume\":1}", E_BAD_REQUEST);
    char *c65 = rep("x", 65);
    char *f = frame("{\"type\":\"hello\",\"name\":\"a\",\"client\":\"%s\"}", c65);
    EXPECT(f, E_BAD_REQUEST);
    free(f);
    free(c65);
}
END_TEST

/* ---- bad_room ---- */

START_TEST(test_bad_room)
{
    EXPECT("{\"type\":\"join\",\"room\":\"Lobby\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"join\",\"room\":\"-lobby\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"join\",\"room\":\"_lobby\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"join\",\"room\":\"\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"join\",\"room\":\"caf\xc3\xa9\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"join\",\"room\":\"a b\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"join\",\"room\":\"a.b\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"leave\",\"room\":\"A\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"typing\",\"room\":\"A\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"history\",\"room\":\"A\"}", E_BAD_ROOM);
    EXPECT("{\"type\":\"send\",\"room\":\"A\",\"text\":\"x\",\"client_id\":\"c\"}",
           E_BAD_ROOM);
    char *r65 = rep("r", 65), *r64 = rep("r", 64);
    char *f = frame("{\"type\":\"join\",\"room\":\"%s\"}", r65);
    EXPECT(f, E_BAD_ROOM);
    free(f);
    f = frame("{\"type\":\"join\",\"room\":\"%s\"}", r64);
    EXPECT(f, PROTO_OK);
    free(f);
    free(r65);
    free(r64);
}
END_TEST

/* ---- too_long ---- */

START_TEST(test_too_long)
{
    const struct proto_limits small = {.max_text = 10};
    expect_l("{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"\"}",
             &small, E_TOO_LONG, __FILE__, __LINE__);
    expect_l(
        "{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"12345678901\"}",
        &small, E_TOO_LONG, __FILE__, __LINE__);
    expect_l(
        "{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"1234567890\"}",
        &small, PROTO_OK, __FILE__, __LINE__);
    /* Code points, not bytes: 10 emoji (40 bytes) fit, 11 do not. */
    char *e10 = rep("\xf0\x9f\x98\x80", 10), *e11 = rep("\xf0\x9f\x98\x80", 11);
    char *f = frame(
        "{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"%s\"}", e10);
    expect_l(f, &small, PROTO_OK, __FILE__, __LINE__);
    free(f);
    f = frame("{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"%s\"}",
              e11);
    expect_l(f, &small, E_TOO_LONG, __FILE__, __LINE__);
    free(f);
    free(e10);
    free(e11);
    /* Escapes count as the character they stand for. */
    expect_l(
        "{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":"
        "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}",
        &small, PROTO_OK, __FILE__, __LINE__);
}
END_TEST

START_TEST(test_too_long_default_limit)
{
    /* 4000 two-byte characters: accepted; 4001 ASCII: too long. */
    char *ok = rep("\xc3\xa9", 4000), *over = rep("x", 4001);
    char *f = frame(
        "{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"%s\"}", ok);
    struct proto_req r;
    const char *msg;
    ck_assert_int_eq(proto_parse(f, strlen(f), &lim, &r, &msg), PROTO_OK);
    ck_assert_uint_eq(r.text_len, 8000);
    proto_req_free(&r);
    free(f);
    f = frame("{\"type\":\"send\",\"room\":\"a\",\"client_id\":\"c\",\"text\":\"%s\"}",
              over);
    EXPECT(f, E_TOO_LONG);
    free(f);
    free(ok);
    free(over);
}
END_TEST

/* ---- ref comes back with errors ---- */

static void expect_ref(const char *s, enum proto_err want, const char *ref)
{
    struct proto_req r;
    const char *msg;
    ck_assert_int_eq(proto_parse(s, strlen(s), &lim, &r, &msg), want);
    if (ref) {
        ck_assert_ptr_nonnull(r.ref);
        ck_assert_str_eq(r.ref, ref);
    } else
        ck_assert_ptr_null(r.ref);
    proto_req_free(&r);
}

START_TEST(test_ref_returned_on_error)
{
    expect_ref("{\"type\":\"join\",\"ref\":\"r1\"}", E_BAD_REQUEST, "r1");
    expect_ref("{\"type\":\"join\",\"ref\":\"r2\",\"room\":\"Bad\"}", E_BAD_ROOM, "r2");
    expect_ref("{\"type\":\"nope\",\"ref\":\"r3\"}", E_UNKNOWN_TYPE, "r3");
    expect_ref("{\"type\":\"send\",\"ref\":\"r4\",\"room\":\"a\",\"client_id\":\"c\","
               "\"text\":\"\"}",
               E_TOO_LONG, "r4");
    expect_ref("{\"type\":\"history\",\"ref\":\"r5\",\"room\":\"a\",\"limit\":0}",
               E_BAD_REQUEST, "r5");
    expect_ref("{\"type\":\"ping\",\"ref\":\"\xc3\xa9\\\"x\"}", PROTO_OK, "\xc3\xa9\"x");
    expect_ref("{\"type\":\"ping\"}", PROTO_OK, NULL);
    expect_ref("{\"ref\":\"r6\"}", E_BAD_JSON, NULL); /* no type: no ref either */
}
END_TEST

/* ---- valid requests and their fields ---- */

START_TEST(test_valid_hello)
{
    const char *s =
        "{\"type\":\"hello\",\"name\":\"Ann\",\"client\":\"web/1\",\"ref\":\"h\"}";
    struct proto_req r;
    const char *msg;
    ck_assert_int_eq(proto_parse(s, strlen(s), &lim, &r, &msg), PROTO_OK);
    ck_assert_int_eq(r.type, REQ_HELLO);
    ck_assert_str_eq(r.name, "Ann");
    ck_assert_str_eq(r.client, "web/1");
    ck_assert_str_eq(r.ref, "h");
    ck_assert_ptr_null(r.token);
    ck_assert_ptr_null(r.resume);
    proto_req_free(&r);
    s = "{\"type\":\"hello\",\"token\":\"a.b.c\",\"resume\":\"xyz\"}";
    ck_assert_int_eq(proto_parse(s, strlen(s), &lim, &r, &msg), PROTO_OK);
    ck_assert_str_eq(r.token, "a.b.c");
    ck_assert_str_eq(r.resume, "xyz");
    ck_assert_ptr_null(r.name);
    proto_req_free(&r);
    /* A bad name is not the parser's call (E_BAD_NAME only via proto_check_name). */
    EXPECT("{\"type\":\"hello\",\"name\":\"\"}", PROTO_OK);
    EXPECT("{\"type\":\"hello\"}", PROTO_OK);
}
END_TEST

START_TEST(test_valid_join)
{
    const char *s = "{\"type\":\"join\",\"room\":\"lobby\"}";
    struct proto_req r;
    const char *msg;
    ck_assert_int_eq(proto_parse(s, strlen(s), &lim, &r, &msg), PROTO_OK);
    ck_assert_int_eq(r.type, REQ_JOIN);
    ck_assert_str_eq(r.room, "lobby");
    ck_assert_int_eq(r.since, -1);
    ck_assert_ptr_null(r.ref);
    proto_req_free(&r);
    s = "{\"room\":\"a-1_b\",\"since\":124,\"type\":\"join\"}"; /* type need not be first
                                                                 */
    ck_assert_int_eq(proto_parse(s, strlen(s), &lim, &r, &msg), PROTO_OK);
    ck_assert_str_eq(r.room, "a-1_b");
    ck_assert_int_eq(r.since, 124);
    proto_req_free(&r);
}
END_TEST

START_TEST(test_valid_history)
{
    const char *s = "{\"type\":\"history\",\"room\":\"lobby\"}";
    struct proto_req r;
    const char *msg;
    ck_assert_int_eq(proto_parse(s, strlen(s), &lim, &r, &msg), PROTO_OK);
    ck_assert_int_eq(r.type, REQ_HISTORY);
    ck_assert_int_eq(r.limit, 50);
    ck_assert_int_eq(r.before, -1);
    ck_assert_int_eq(r.after, -1);
    ck_assert_int_eq(r.since, -1);
    proto_req_free(&r);
    s = "{\"type\":\"history\",\"room\":\"lobby\",\"before\":77,\"limit\":3}";
    ck_assert_int_eq(proto_parse(s, strlen(s), &lim, &r, &msg), PROTO_OK);
    ck_assert_int_eq(r.before, 77);
    ck_assert_int_eq(r.after, -1);
    ck_assert_int_eq(r.limit, 3);
    proto_req_free(&r);
    s = "{\"type\":\"history\",\"room\":\"lobby\",\"after\":0,\"limit\":200}";
    ck_assert_int_eq(proto_parse(s, strlen(s), &lim, &r, &msg), PROTO_OK);
    ck_assert_int_eq(r.before, -1);
    ck_assert_int_eq(r.after, 0);
    ck_assert_int_eq(r.limit, 200);
    proto_req_free(&r);
}
END_TEST

START_TEST(test_valid_send)
{
    const char *s = "{\"type\":\"send\",\"room\":\"lobby\",\"text\":\"h\\u00e9\\n\\\"x\","
                    "\"client_id\":\"c1\",\"ref\":\"s\"}";
    struct proto_req r;
    const char *msg;
    ck_assert_int_eq(proto_parse(s, strlen(s), &lim, &r, &msg), PROTO_OK);
    ck_assert_int_eq(r.type, REQ_SEND);
    ck_assert_str_eq(r.room, "lobby");
    ck_assert_str_eq(r.text, "h\xc3\xa9\n\"x");
    ck_assert_uint_eq(r.text_len, 6);
    ck_assert_str_eq(r.client_id, "c1");
    ck_assert_str_eq(r.ref, "s");
    proto_req_free(&r);
}
END_TEST

START_TEST(test_valid_others)
{
    static const struct {
        const char *s;
        enum proto_type t;
    } cases[] = {
        {"{\"type\":\"leave\",\"room\":\"x\"}", REQ_LEAVE},
        {"{\"type\":\"typing\",\"room\":\"x\"}", REQ_TYPING},
        {"{\"type\":\"rooms\"}", REQ_ROOMS},
        {"{\"type\":\"ping\"}", REQ_PING},
        {" { \"type\" : \"ping\" , \"extra\" : [1,2,{}] } ",
         REQ_PING}, /* unknown fields ok */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proto_req r;
        const char *msg;
        ck_assert_int_eq(proto_parse(cases[i].s, strlen(cases[i].s), &lim, &r, &msg),
                         PROTO_OK);
        ck_assert_int_eq(r.type, cases[i].t);
        if (cases[i].t == REQ_LEAVE || cases[i].t == REQ_TYPING)
            ck_assert_str_eq(r.room, "x");
        proto_req_free(&r);
    }
}
END_TEST

/* ---- proto_check_name ---- */

static enum proto_err name_err(const char *n)
{
    const char *msg = NULL;
    enum proto_err e = proto_check_name(n, &msg);
    if (e != PROTO_OK) ck_assert_ptr_nonnull(msg);
    return e;
}

START_TEST(test_check_name)
{
    ck_assert_int_eq(name_err("Ann"), PROTO_OK);
    ck_assert_int_eq(name_err(" Ann "), PROTO_OK);
    ck_assert_int_eq(name_err("J\xc3\xb6rg \xe5\xa4\xaa\xe9\x83\x8e"), PROTO_OK);
    ck_assert_int_eq(name_err(""), E_BAD_NAME);
    ck_assert_int_eq(name_err(" "), E_BAD_NAME);
    ck_assert_int_eq(name_err("    "), E_BAD_NAME);
    ck_assert_int_eq(name_err("\xe3\x80\x80"), E_BAD_NAME); /* U+3000 */
    ck_assert_int_eq(name_err("\xe3\x80\x80\xe3\x80\x80 "), E_BAD_NAME);
    ck_assert_int_eq(name_err("\xc2\xa0"), E_BAD_NAME);     /* U+00A0 */
    ck_assert_int_eq(name_err("\xe2\x80\x8b"), E_BAD_NAME); /* U+200B */
    ck_assert_int_eq(name_err("a\x07"
                              "b"),
                     E_BAD_NAME); /* U+0007 */
    ck_assert_int_eq(name_err("a\tb"), E_BAD_NAME);
    ck_assert_int_eq(name_err("a\nb"), E_BAD_NAME);
    ck_assert_int_eq(name_err("a\xc2\x85"
                              "b"),
                     E_BAD_NAME);                        /* U+0085 */
    ck_assert_int_eq(name_err("a\xc2\x9f"), E_BAD_NAME); /* U+009F */
    ck_assert_int_eq(name_err("a\x7f"), E_BAD_NAME);     /* DEL */
    ck_assert_int_eq(name_err("a\xc2\xa1"), PROTO_OK);   /* U+00A1 */
}
END_TEST

START_TEST(test_check_name_length)
{
    char *a32 = rep("a", 32), *a33 = rep("a", 33);
    char *e32 = rep("\xf0\x9f\x98\x80", 32), *e33 = rep("\xf0\x9f\x98\x80", 33);
    char *j33 = rep("\xe5\xa4\xaa", 33);
    ck_assert_int_eq(name_err(a32), PROTO_OK);
    ck_assert_int_eq(name_err(a33), E_BAD_NAME);
    ck_assert_int_eq(name_err(e32), PROTO_OK); /* 32 emoji, 128 bytes */
    ck_assert_int_eq(name_err(e33), E_BAD_NAME);
    ck_assert_int_eq(name_err(j33), E_BAD_NAME);
    free(a32);
    free(a33);
    free(e32);
    free(e33);
    free(j33);
}
END_TEST

/* ---- proto_room_valid ---- */

START_TEST(test_room_valid)
{
    ck_assert_int_eq(proto_room_valid("lobby"), 1);
    ck_assert_int_eq(proto_room_valid("a"), 1);
    ck_assert_int_eq(proto_room_valid("0"), 1);
    ck_assert_int_eq(proto_room_valid("a-b_c-9"), 1);
    ck_assert_int_eq(proto_room_valid("a--"), 1);
    ck_assert_int_eq(proto_room_valid(""), 0);
    ck_assert_int_eq(proto_room_valid("-a"), 0);
    ck_assert_int_eq(proto_room_valid("_a"), 0);
    ck_assert_int_eq(proto_room_valid("Lobby"), 0);
    ck_assert_int_eq(proto_room_valid("lobbY"), 0);
    ck_assert_int_eq(proto_room_valid("a b"), 0);
    ck_assert_int_eq(proto_room_valid("a/b"), 0);
    ck_assert_int_eq(proto_room_valid("a.b"), 0);
    ck_assert_int_eq(proto_room_valid("caf\xc3\xa9"), 0);
    ck_assert_int_eq(proto_room_valid("\xc3\xa9"), 0);
    char *r64 = rep("z", 64), *r65 = rep("z", 65);
    ck_assert_int_eq(proto_room_valid(r64), 1);
    ck_assert_int_eq(proto_room_valid(r65), 0);
    free(r64);
    free(r65);
}
END_TEST

/* ---- writers ---- */

#define ck_buf_eq(b, want)                                                               \
    do {                                                                                 \
        const char *w_ = (want);                                                         \
        ck_assert_ptr_nonnull(b);                                                        \
        ck_assert_int_eq((b)->oom, 0);                                                   \
        ck_assert_uint_eq((b)->refs, 1);                                                 \
        if ((b)->len != strlen(w_) || memcmp(BUF_PAYLOAD(b), w_, (b)->len))              \
            ck_abort_msg("got %.*s\nwant %s", (int)(b)->len, (char *)BUF_PAYLOAD(b),     \
                         w_);                                                            \
    } while (0)

START_TEST(test_error_writer)
{
    struct buf *b = proto_error(E_RATE_LIMITED, "slow down", "r1");
    ck_buf_eq(b,
              "{\"type\":\"error\",\"code\":\"rate_limited\",\"message\":\"slow down\","
              "\"ref\":\"r1\"}");
    buf_unref(b);
    b = proto_error(E_BAD_JSON, "bad \"json\"\n", NULL);
    ck_buf_eq(
        b,
        "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"bad \\\"json\\\"\\n\"}");
    buf_unref(b);
    b = proto_error(E_NOT_MEMBER, "m", "q\"\\\x01");
    ck_buf_eq(b, "{\"type\":\"error\",\"code\":\"not_member\",\"message\":\"m\","
                 "\"ref\":\"q\\\"\\\\\\u0001\"}");
    buf_unref(b);
}
END_TEST

START_TEST(test_error_codes)
{
    static const char *const want[] = {
        [E_BAD_JSON] = "bad_json",         [E_UNKNOWN_TYPE] = "unknown_type",
        [E_BAD_REQUEST] = "bad_request",   [E_NEED_HELLO] = "need_hello",
        [E_BAD_NAME] = "bad_name",         [E_UNAUTHORIZED] = "unauthorized",
        [E_FORBIDDEN] = "forbidden",       [E_BAD_ROOM] = "bad_room",
        [E_NOT_MEMBER] = "not_member",     [E_TOO_LONG] = "too_long",
        [E_RATE_LIMITED] = "rate_limited", [E_OVERLOADED] = "overloaded",
        [E_INTERNAL] = "internal",
    };
    for (int e = E_BAD_JSON; e <= E_INTERNAL; e++) {
        ck_assert_str_eq(proto_err_code((enum proto_err)e), want[e]);
        struct buf *b = proto_error((enum proto_err)e, "x", NULL);
        char exp[128];
        snprintf(exp, sizeof exp,
                 "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"x\"}", want[e]);
        ck_buf_eq(b, exp);
        buf_unref(b);
    }
}
END_TEST

START_TEST(test_message_writer)
{
    const struct proto_msg m = {
        .room = "lobby",
        .id = 124,
        .ts = 1763766000123LL,
        .user_id = "u\"1",
        .user_name = "Ann \xc3\xa9",
        .text = "hello\nworld\\ and more",
        .text_len = 12, /* "hello\nworld\\" */
        .client_id = "c1",
    };
    struct buf *b = buf_new(0);
    proto_put_message(&b, &m);
    ck_buf_eq(b,
              "{\"type\":\"message\",\"room\":\"lobby\",\"id\":124,\"ts\":1763766000123,"
              "\"user\":{\"id\":\"u\\\"1\",\"name\":\"Ann \xc3\xa9\"},\"rev\":124,"
              "\"text\":\"hello\\nworld\\\\\",\"client_id\":\"c1\"}");
    buf_unref(b);
}
END_TEST

START_TEST(test_message_writer_revisions)
{
    /* Edited: rev and edited_ts. A tombstone: rev, deleted, empty text, no
     * client_id and no edited_ts, whatever the row still holds. */
    const struct proto_msg e = {.room = "r",
                                .id = 5,
                                .ts = 6,
                                .user_id = "u",
                                .user_name = "n",
                                .text = "new",
                                .text_len = 3,
                                .client_id = "c",
                                .rev = 9,
                                .edited_ts = 77};
    const struct proto_msg d = {.room = "r",
                                .id = 5,
                                .ts = 6,
                                .user_id = "u",
                                .user_name = "n",
                                .text = "gone",
                                .text_len = 4,
                                .client_id = "c",
                                .rev = 10,
                                .edited_ts = 77,
                                .deleted = 1};
    struct buf *b = buf_new(0);
    proto_put_message(&b, &e);
    ck_buf_eq(b,
              "{\"type\":\"message\",\"room\":\"r\",\"id\":5,\"ts\":6,\"user\":{\"id\":"
              "\"u\",\"name\":\"n\"},\"rev\":9,\"text\":\"new\",\"client_id\":\"c\","
              "\"edited_ts\":77}");
    buf_unref(b);
    b = buf_new(0);
    proto_put_message(&b, &d);
    ck_buf_eq(b,
              "{\"type\":\"message\",\"room\":\"r\",\"id\":5,\"ts\":6,\"user\":{\"id\":"
              "\"u\",\"name\":\"n\"},\"rev\":10,\"text\":\"\",\"deleted\":true}");
    buf_unref(b);
    b = proto_edited("r", 5, 9, "x\"y", 3, 77, "q1");
    ck_buf_eq(
        b, "{\"type\":\"edited\",\"room\":\"r\",\"id\":5,\"rev\":9,\"text\":\"x\\\"y\","
           "\"edited_ts\":77,\"ref\":\"q1\"}");
    buf_unref(b);
    b = proto_deleted("r", 5, 10, "u", "N", NULL);
    ck_buf_eq(b,
              "{\"type\":\"deleted\",\"room\":\"r\",\"id\":5,\"rev\":10,\"by\":{\"id\":"
              "\"u\",\"name\":\"N\"}}");
    buf_unref(b);
}
END_TEST

START_TEST(test_parse_edit_delete)
{
    struct proto_req r;
    const char *msg;
    struct proto_limits five = {.max_text = 5};
#define P(s) proto_parse(s, strlen(s), &five, &r, &msg)
    ck_assert_int_eq(P("{\"type\":\"edit\",\"room\":\"a\",\"id\":7,\"text\":\"hi\"}"),
                     PROTO_OK);
    ck_assert_int_eq(r.type, REQ_EDIT);
    ck_assert_int_eq(r.id, 7);
    ck_assert_str_eq(r.text, "hi");
    proto_req_free(&r);
    ck_assert_int_eq(P("{\"type\":\"delete\",\"room\":\"a\",\"id\":1}"), PROTO_OK);
    ck_assert_int_eq(r.type, REQ_DELETE);
    proto_req_free(&r);
    /* id: a positive integer; text checked as for send; room as always. */
    const char *bad[] = {
        "{\"type\":\"delete\",\"room\":\"a\"}",
        "{\"type\":\"delete\",\"room\":\"a\",\"id\":0}",
        "{\"type\":\"delete\",\"room\":\"a\",\"id\":-3}",
        "{\"type\":\"delete\",\"room\":\"a\",\"id\":1.5}",
        "{\"type\":\"delete\",\"room\":\"a\",\"id\":\"7\"}",
        "{\"type\":\"delete\",\"room\":\"a\",\"id\":9007199254740992}",
        "{\"type\":\"edit\",\"room\":\"a\",\"id\":1}",
        "{\"type\":\"edit\",\"room\":\"a\",\"id\":1,\"text\":7}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(P(bad[i]), E_BAD_REQUEST);
        proto_req_free(&r);
    }
    ck_assert_int_eq(P("{\"type\":\"edit\",\"room\":\"a\",\"id\":1,\"text\":\"\"}"),
                     E_TOO_LONG);
    proto_req_free(&r);
    ck_assert_int_eq(
        P("{\"type\":\"edit\",\"room\":\"a\",\"id\":1,\"text\":\"toolong\"}"),
        E_TOO_LONG);
    proto_req_free(&r);
    ck_assert_int_eq(P("{\"type\":\"edit\",\"room\":\"A\",\"id\":1,\"text\":\"x\"}"),
                     E_BAD_ROOM);
    proto_req_free(&r);
    ck_assert_str_eq(proto_err_code(E_NOT_FOUND), "not_found");
#undef P
}
END_TEST

START_TEST(test_message_writer_appends)
{
    const struct proto_msg m1 = {"a", 1, 2, "u", "n", "t", 1, "c", 0, 0, 0, 0};
    const struct proto_msg m2 = {"a", 3, 4, "u", "n", "", 0, "d", 0, 0, 0, 0};
    struct buf *b = buf_new(0);
    buf_puts(&b, "[");
    proto_put_message(&b, &m1);
    buf_puts(&b, ",");
    proto_put_message(&b, &m2);
    buf_puts(&b, "]");
    ck_buf_eq(
        b,
        "[{\"type\":\"message\",\"room\":\"a\",\"id\":1,\"ts\":2,\"user\":{\"id\":\"u\","
        "\"name\":\"n\"},\"rev\":1,\"text\":\"t\",\"client_id\":\"c\"},{\"type\":"
        "\"message\","
        "\"room\":\"a\",\"id\":3,\"ts\":4,\"user\":{\"id\":\"u\",\"name\":\"n\"},\"rev\":"
        "3,"
        "\"text\":\"\",\"client_id\":\"d\"}]");
    buf_unref(b);
}
END_TEST

START_TEST(test_ref_end)
{
    struct buf *b = buf_new(0);
    buf_puts(&b, "{\"type\":\"pong\"");
    proto_put_ref_end(&b, "abc");
    ck_buf_eq(b, "{\"type\":\"pong\",\"ref\":\"abc\"}");
    buf_unref(b);
    b = buf_new(0);
    buf_puts(&b, "{\"type\":\"pong\"");
    proto_put_ref_end(&b, NULL);
    ck_buf_eq(b, "{\"type\":\"pong\"}");
    buf_unref(b);
}
END_TEST

/* ---- dm (1.1) and DM room names ---- */

START_TEST(test_parse_dm)
{
    struct proto_req r;
    const char *msg;
#define P(s) proto_parse(s, strlen(s), &lim, &r, &msg)
    ck_assert_int_eq(P("{\"type\":\"dm\",\"user\":\"bob\",\"ref\":\"d1\"}"), PROTO_OK);
    ck_assert_int_eq(r.type, REQ_DM);
    ck_assert_str_eq(r.user, "bob");
    ck_assert_str_eq(r.ref, "d1");
    ck_assert_ptr_null(r.room); /* the server names the room, not the client */
    proto_req_free(&r);
    /* An id is bytes, any of them but NUL: spaces, escapes, non-ASCII. */
    ck_assert_int_eq(P("{\"type\":\"dm\",\"user\":\" g_\\u00e9\\\"x \"}"), PROTO_OK);
    ck_assert_str_eq(r.user, " g_\xc3\xa9\"x ");
    ck_assert_ptr_null(r.ref);
    proto_req_free(&r);
    /* Missing, not a string, empty: bad_request, the ref kept. */
    const char *bad[] = {
        "{\"type\":\"dm\",\"ref\":\"x\"}",
        "{\"type\":\"dm\",\"ref\":\"x\",\"user\":null}",
        "{\"type\":\"dm\",\"ref\":\"x\",\"user\":7}",
        "{\"type\":\"dm\",\"ref\":\"x\",\"user\":true}",
        "{\"type\":\"dm\",\"ref\":\"x\",\"user\":[\"bob\"]}",
        "{\"type\":\"dm\",\"ref\":\"x\",\"user\":{\"id\":\"bob\"}}",
        "{\"type\":\"dm\",\"ref\":\"x\",\"user\":\"\"}",
        "{\"type\":\"dm\",\"ref\":\"x\",\"user\":\"b\\u0000b\"}",
        "{\"type\":\"dm\",\"ref\":\"x\",\"User\":\"bob\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg = NULL;
        if (P(bad[i]) != E_BAD_REQUEST) ck_abort_msg("%s: not bad_request", bad[i]);
        ck_assert_ptr_nonnull(msg);
        ck_assert_ptr_nonnull(r.ref);
        ck_assert_str_eq(r.ref, "x");
        proto_req_free(&r);
    }
#undef P
}
END_TEST

/* A dm frame for `user`, parsed: returns the error, and checks r.user on OK. */
static enum proto_err dm_user(const char *user)
{
    char *f = frame("{\"type\":\"dm\",\"user\":\"%s\",\"ref\":\"q\"}", user);
    struct proto_req r;
    const char *msg;
    enum proto_err e = proto_parse(f, strlen(f), &lim, &r, &msg);
    if (e == PROTO_OK) ck_assert_str_eq(r.user, user);
    ck_assert_ptr_nonnull(r.ref);
    ck_assert_str_eq(r.ref, "q");
    proto_req_free(&r);
    free(f);
    return e;
}

START_TEST(test_parse_dm_length)
{
    /* 1 to 128 bytes (PROTO_MAX_USER), counted in bytes, not characters. */
    char *u1 = rep("u", 1), *u128 = rep("u", 128), *u129 = rep("u", 129);
    char *e64 = rep("\xc3\xa9", 64);        /* 64 characters, 128 bytes */
    char *euro43 = rep("\xe2\x82\xac", 43); /* 43 characters, 129 bytes */
    ck_assert_int_eq(dm_user(u1), PROTO_OK);
    ck_assert_int_eq(dm_user(u128), PROTO_OK);
    ck_assert_int_eq(dm_user(u129), E_BAD_REQUEST);
    ck_assert_int_eq(dm_user(e64), PROTO_OK);
    ck_assert_int_eq(dm_user(euro43), E_BAD_REQUEST);
    free(u1);
    free(u128);
    free(u129);
    free(e64);
    free(euro43);
}
END_TEST

#define HEX32 "0123456789abcdef0123456789abcdef"

START_TEST(test_room_is_dm)
{
    ck_assert_int_eq(PROTO_DM_ROOM_LEN, 35);
    ck_assert_int_eq(proto_room_is_dm("dm-" HEX32), 1);
    ck_assert_int_eq(proto_room_is_dm("dm-00000000000000000000000000000000"), 1);
    ck_assert_int_eq(proto_room_is_dm("dm-ffffffffffffffffffffffffffffffff"), 1);
    ck_assert_int_eq(proto_room_is_dm("dm-59b271ae1bbcb1d31d41929817f4b16f"), 1);
    /* Uppercase hex, one digit too few or too many, non-hex digits. */
    ck_assert_int_eq(proto_room_is_dm("dm-0123456789ABCDEF0123456789ABCDEF"), 0);
    ck_assert_int_eq(proto_room_is_dm("dm-0123456789abcdef0123456789abcdeF"), 0);
    ck_assert_int_eq(proto_room_is_dm("dm-0123456789abcdef0123456789abcde"), 0);
    ck_assert_int_eq(proto_room_is_dm("dm-" HEX32 "0"), 0);
    ck_assert_int_eq(proto_room_is_dm("dm-0123456789abcdef0123456789abcdeg"), 0);
    ck_assert_int_eq(proto_room_is_dm("dm-g123456789abcdef0123456789abcdef"), 0);
    ck_assert_int_eq(proto_room_is_dm("dm-0123456789abcdef-123456789abcdef"), 0);
    ck_assert_int_eq(proto_room_is_dm("dm-0123456789abcdef_123456789abcdef"), 0);
    /* The prefix exactly: "dm-", lowercase, at the start. */
    ck_assert_int_eq(proto_room_is_dm("dm_" HEX32), 0);
    ck_assert_int_eq(proto_room_is_dm("Dm-" HEX32), 0);
    ck_assert_int_eq(proto_room_is_dm("dx-" HEX32), 0);
    ck_assert_int_eq(proto_room_is_dm("xdm-" HEX32), 0);
    ck_assert_int_eq(proto_room_is_dm("dm" HEX32 "0"), 0);
    ck_assert_int_eq(proto_room_is_dm("dm-"), 0);
    ck_assert_int_eq(proto_room_is_dm("dm"), 0);
    ck_assert_int_eq(proto_room_is_dm(""), 0);
    ck_assert_int_eq(proto_room_is_dm("lobby"), 0);
}
END_TEST

/* Every request that takes a room, with room `room` and whatever else it
 * needs valid. */
static const char *const room_frames[] = {
    "{\"type\":\"join\",\"room\":\"%s\",\"ref\":\"k\"}",
    "{\"type\":\"join\",\"room\":\"%s\",\"since\":3,\"ref\":\"k\"}",
    "{\"type\":\"leave\",\"room\":\"%s\",\"ref\":\"k\"}",
    "{\"type\":\"send\",\"room\":\"%s\",\"text\":\"hi\",\"client_id\":\"c\",\"ref\":"
    "\"k\"}",
    "{\"type\":\"history\",\"room\":\"%s\",\"ref\":\"k\"}",
    "{\"type\":\"typing\",\"room\":\"%s\",\"ref\":\"k\"}",
    "{\"type\":\"edit\",\"room\":\"%s\",\"id\":1,\"text\":\"x\",\"ref\":\"k\"}",
    "{\"type\":\"delete\",\"room\":\"%s\",\"id\":1,\"ref\":\"k\"}",
    "{\"type\":\"read\",\"room\":\"%s\",\"id\":0,\"ref\":\"k\"}",
    "{\"type\":\"search\",\"room\":\"%s\",\"q\":\"x\",\"ref\":\"k\"}",
};

static void expect_room(const char *room, enum proto_err want)
{
    for (size_t i = 0; i < sizeof room_frames / sizeof room_frames[0]; i++) {
        char *f = frame(room_frames[i], room);
        struct proto_req r;
        const char *msg = NULL;
        enum proto_err e = proto_parse(f, strlen(f), &lim, &r, &msg);
        if (e != want)
            ck_abort_msg("%s: got %s, want %s (%s)", f, proto_err_code(e),
                         proto_err_code(want), msg ? msg : "");
        ck_assert_ptr_nonnull(r.ref);
        ck_assert_str_eq(r.ref, "k");
        if (e == PROTO_OK)
            ck_assert_str_eq(r.room, room);
        else
            ck_assert_ptr_nonnull(msg);
        proto_req_free(&r);
        free(f);
    }
}

START_TEST(test_dm_room_names_in_requests)
{
    /* Names starting with dm- are DM rooms' only: anything else is bad_room. */
    expect_room("dm-x", E_BAD_ROOM);
    expect_room("dm-", E_BAD_ROOM);
    expect_room("dm-lobby", E_BAD_ROOM);
    expect_room("dm-0123456789ABCDEF0123456789ABCDEF", E_BAD_ROOM);
    expect_room("dm-0123456789abcdef0123456789abcde", E_BAD_ROOM);
    expect_room("dm-" HEX32 "0", E_BAD_ROOM);
    expect_room("dm-0123456789abcdef0123456789abcdeg", E_BAD_ROOM);
    expect_room("dm-" HEX32 "-x", E_BAD_ROOM);
    /* A proper DM room name parses (who may use it is the database's call). */
    expect_room("dm-" HEX32, PROTO_OK);
    expect_room("dm-59b271ae1bbcb1d31d41929817f4b16f", PROTO_OK);
    /* Only the exact prefix is reserved. */
    expect_room("dmx", PROTO_OK);
    expect_room("dm", PROTO_OK);
    expect_room("adm-x", PROTO_OK);
    expect_room("dm_x", PROTO_OK);
    expect_room("dmdm-x", PROTO_OK);
    expect_room("d-m-x", PROTO_OK);
    expect_room("dm" HEX32, PROTO_OK);
}
END_TEST

/* ---- read and search (1.1) ---- */

START_TEST(test_parse_read)
{
    struct proto_req r;
    const char *msg;
#define P(s) proto_parse(s, strlen(s), &lim, &r, &msg)
    ck_assert_int_eq(P("{\"type\":\"read\",\"room\":\"lobby\",\"id\":130,\"ref\":\"r\"}"),
                     PROTO_OK);
    ck_assert_int_eq(r.type, REQ_READ);
    ck_assert_str_eq(r.room, "lobby");
    ck_assert_int_eq(r.id, 130);
    ck_assert_str_eq(r.ref, "r");
    proto_req_free(&r);
    /* 0 (nothing read yet) and the largest exact JSON integer are fine. */
    ck_assert_int_eq(P("{\"type\":\"read\",\"room\":\"lobby\",\"id\":0}"), PROTO_OK);
    ck_assert_int_eq(r.id, 0);
    ck_assert_ptr_null(r.ref);
    proto_req_free(&r);
    ck_assert_int_eq(P("{\"type\":\"read\",\"room\":\"lobby\",\"id\":9007199254740991}"),
                     PROTO_OK);
    ck_assert_int_eq(r.id, 9007199254740991LL);
    proto_req_free(&r);
    ck_assert_int_eq(P("{\"type\":\"read\",\"room\":\"lobby\",\"id\":1e2}"), PROTO_OK);
    ck_assert_int_eq(r.id, 100);
    proto_req_free(&r);
    /* id: missing, negative, fractional, a string, null, 2^53: bad_request. */
    const char *bad[] = {
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\"}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"id\":-1}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"id\":-0.5}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"id\":1.5}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"id\":\"7\"}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"id\":null}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"id\":true}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"id\":[1]}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"id\":9007199254740992}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"id\":1e300}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":\"lobby\",\"Id\":1}",
        /* room: missing or not a string */
        "{\"type\":\"read\",\"ref\":\"x\",\"id\":1}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":7,\"id\":1}",
        "{\"type\":\"read\",\"ref\":\"x\",\"room\":null,\"id\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg = NULL;
        enum proto_err e = P(bad[i]);
        if (e != E_BAD_REQUEST)
            ck_abort_msg("%s: got %s, want bad_request", bad[i], proto_err_code(e));
        ck_assert_ptr_nonnull(msg);
        ck_assert_str_eq(r.ref, "x");
        proto_req_free(&r);
    }
    /* The room rules of every room request: bad names, the dm- prefix. */
    const char *bad_room[] = {
        "{\"type\":\"read\",\"room\":\"Lobby\",\"id\":1}",
        "{\"type\":\"read\",\"room\":\"\",\"id\":1}",
        "{\"type\":\"read\",\"room\":\"-x\",\"id\":1}",
        "{\"type\":\"read\",\"room\":\"dm-lobby\",\"id\":1}",
        "{\"type\":\"read\",\"room\":\"dm-" HEX32 "0\",\"id\":1}",
    };
    for (size_t i = 0; i < sizeof bad_room / sizeof bad_room[0]; i++) {
        if (P(bad_room[i]) != E_BAD_ROOM) ck_abort_msg("%s: not bad_room", bad_room[i]);
        proto_req_free(&r);
    }
    ck_assert_int_eq(P("{\"type\":\"read\",\"room\":\"dm-" HEX32 "\",\"id\":5}"),
                     PROTO_OK);
    ck_assert_str_eq(r.room, "dm-" HEX32);
    ck_assert_int_eq(r.id, 5);
    proto_req_free(&r);
#undef P
}
END_TEST

/* A search frame with q = the string `q` (already JSON-escaped) and `rest`
 * (",…" or ""), parsed: returns the error, frees. */
static enum proto_err search_q(const char *q, const char *rest)
{
    size_t n = strlen(q) + strlen(rest) + 64;
    char *f = malloc(n);
    ck_assert_ptr_nonnull(f);
    snprintf(f, n, "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"%s\"%s}", q, rest);
    struct proto_req r;
    const char *msg = NULL;
    enum proto_err e = proto_parse(f, strlen(f), &lim, &r, &msg);
    if (e == PROTO_OK) ck_assert_int_eq(r.type, REQ_SEARCH);
    if (e != PROTO_OK) ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(r.ref);
    ck_assert_str_eq(r.ref, "s");
    proto_req_free(&r);
    free(f);
    return e;
}

START_TEST(test_parse_search)
{
    struct proto_req r;
    const char *msg;
#define P(s) proto_parse(s, strlen(s), &lim, &r, &msg)
    ck_assert_int_eq(P("{\"type\":\"search\",\"q\":\"deploy friday\",\"ref\":\"s1\"}"),
                     PROTO_OK);
    ck_assert_int_eq(r.type, REQ_SEARCH);
    ck_assert_str_eq(r.q, "deploy friday");
    ck_assert_ptr_null(r.room); /* every room the user may read */
    ck_assert_int_eq(r.before, -1);
    ck_assert_int_eq(r.limit, 20);
    ck_assert_int_eq(r.limit, PROTO_SEARCH_DEFAULT);
    ck_assert_str_eq(r.ref, "s1");
    proto_req_free(&r);
    ck_assert_int_eq(P("{\"type\":\"search\",\"q\":\"\\\"a b\\\" c* \\u00e9\",\"room\":"
                       "\"lobby\",\"before\":99,\"limit\":50}"),
                     PROTO_OK);
    ck_assert_str_eq(r.q, "\"a b\" c* \xc3\xa9");
    ck_assert_str_eq(r.room, "lobby");
    ck_assert_int_eq(r.before, 99);
    ck_assert_int_eq(r.limit, 50);
    proto_req_free(&r);
    ck_assert_int_eq(P("{\"type\":\"search\",\"q\":\"x\",\"limit\":1,\"before\":0}"),
                     PROTO_OK);
    ck_assert_int_eq(r.limit, 1);
    ck_assert_int_eq(r.before, 0);
    proto_req_free(&r);
    /* A DM room by its name: the parser takes it (who may is the db's call). */
    ck_assert_int_eq(P("{\"type\":\"search\",\"q\":\"x\",\"room\":\"dm-" HEX32 "\"}"),
                     PROTO_OK);
    ck_assert_str_eq(r.room, "dm-" HEX32);
    proto_req_free(&r);
    /* q: missing, not a string, empty: bad_request. A q of only separators
     * parses (search.c answers it: no words to search for). */
    const char *bad[] = {
        "{\"type\":\"search\",\"ref\":\"s\"}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"\"}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":null}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":7}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":true}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":[\"a\"]}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":{\"a\":1}}",
        "{\"type\":\"search\",\"ref\":\"s\",\"Q\":\"a\"}",
        /* room present: validated */
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"room\":null}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"room\":5}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"room\":[\"lobby\"]}",
        /* before: a message id */
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"before\":-1}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"before\":1.5}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"before\":\"9\"}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"before\":9007199254740992}",
        /* limit: 1 to 50 */
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"limit\":0}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"limit\":51}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"limit\":-1}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"limit\":2.5}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"limit\":\"5\"}",
        "{\"type\":\"search\",\"ref\":\"s\",\"q\":\"a\",\"limit\":null}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg = NULL;
        enum proto_err e = P(bad[i]);
        if (e != E_BAD_REQUEST)
            ck_abort_msg("%s: got %s, want bad_request", bad[i], proto_err_code(e));
        ck_assert_ptr_nonnull(msg);
        ck_assert_str_eq(r.ref, "s");
        proto_req_free(&r);
    }
    const char *bad_room[] = {
        "{\"type\":\"search\",\"q\":\"a\",\"room\":\"\"}",
        "{\"type\":\"search\",\"q\":\"a\",\"room\":\"Lobby\"}",
        "{\"type\":\"search\",\"q\":\"a\",\"room\":\"dm-x\"}",
        "{\"type\":\"search\",\"q\":\"a\",\"room\":\"dm-" HEX32 "0\"}",
    };
    for (size_t i = 0; i < sizeof bad_room / sizeof bad_room[0]; i++) {
        if (P(bad_room[i]) != E_BAD_ROOM) ck_abort_msg("%s: not bad_room", bad_room[i]);
        proto_req_free(&r);
    }
    ck_assert_int_eq(search_q("!?", ""), PROTO_OK);
    ck_assert_int_eq(search_q("*", ""), PROTO_OK);
#undef P
}
END_TEST

START_TEST(test_parse_search_length)
{
    /* 1 to 256 code points, counted in code points, not bytes. */
    char *a256 = rep("a", 256), *a257 = rep("a", 257);
    char *e256 = rep("\xc3\xa9", 256), *e257 = rep("\xc3\xa9", 257);
    char *r256 = rep("\xf0\x9f\x9a\x80", 256), *r257 = rep("\xf0\x9f\x9a\x80", 257);
    char *u256 = rep("\\u00e9", 256), *u257 = rep("\\u00e9", 257);
    ck_assert_int_eq(search_q("a", ""), PROTO_OK);
    ck_assert_int_eq(search_q(a256, ""), PROTO_OK);
    ck_assert_int_eq(search_q(a257, ""), E_BAD_REQUEST);
    ck_assert_int_eq(search_q(e256, ""), PROTO_OK);
    ck_assert_int_eq(search_q(e257, ""), E_BAD_REQUEST);
    ck_assert_int_eq(search_q(r256, ""), PROTO_OK);
    ck_assert_int_eq(search_q(r257, ""), E_BAD_REQUEST);
    ck_assert_int_eq(search_q(u256, ""), PROTO_OK); /* escapes count once decoded */
    ck_assert_int_eq(search_q(u257, ""), E_BAD_REQUEST);
    ck_assert_int_eq(search_q(a256, ",\"room\":\"lobby\",\"limit\":50"), PROTO_OK);
    free(a256);
    free(a257);
    free(e256);
    free(e257);
    free(r256);
    free(r257);
    free(u256);
    free(u257);
}
END_TEST

START_TEST(test_read_writer)
{
    struct buf *b = proto_read("lobby", 130, NULL);
    ck_buf_eq(b, "{\"type\":\"read\",\"room\":\"lobby\",\"id\":130}");
    buf_unref(b);
    b = proto_read("lobby", 130, "r\"1");
    ck_buf_eq(b, "{\"type\":\"read\",\"room\":\"lobby\",\"id\":130,\"ref\":\"r\\\"1\"}");
    buf_unref(b);
    b = proto_read("dm-" HEX32, 0, "x");
    ck_buf_eq(b, "{\"type\":\"read\",\"room\":\"dm-" HEX32 "\",\"id\":0,\"ref\":\"x\"}");
    buf_unref(b);
    b = proto_read("a", 9007199254740991LL, NULL);
    ck_buf_eq(b, "{\"type\":\"read\",\"room\":\"a\",\"id\":9007199254740991}");
    buf_unref(b);
}
END_TEST

static Suite *protocol_suite(void)
{
    Suite *s = suite_create("protocol");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_bad_json);
    tcase_add_test(tc, test_bad_json_nul_byte);
    tcase_add_test(tc, test_parse_uses_len);
    tcase_add_test(tc, test_unknown_type);
    tcase_add_test(tc, test_bad_request_room_field);
    tcase_add_test(tc, test_bad_request_history);
    tcase_add_test(tc, test_bad_request_join_since);
    tcase_add_test(tc, test_bad_request_client_id);
    tcase_add_test(tc, test_bad_request_ref);
    tcase_add_test(tc, test_bad_request_text);
    tcase_add_test(tc, test_bad_request_hello);
    tcase_add_test(tc, test_bad_room);
    tcase_add_test(tc, test_too_long);
    tcase_add_test(tc, test_too_long_default_limit);
    tcase_add_test(tc, test_ref_returned_on_error);
    tcase_add_test(tc, test_valid_hello);
    tcase_add_test(tc, test_valid_join);
    tcase_add_test(tc, test_valid_history);
    tcase_add_test(tc, test_valid_send);
    tcase_add_test(tc, test_valid_others);
    suite_add_tcase(s, tc);
    TCase *tn = tcase_create("names");
    tcase_add_test(tn, test_check_name);
    tcase_add_test(tn, test_check_name_length);
    tcase_add_test(tn, test_room_valid);
    suite_add_tcase(s, tn);
    TCase *tw = tcase_create("writers");
    tcase_add_test(tw, test_error_writer);
    tcase_add_test(tw, test_error_codes);
    tcase_add_test(tw, test_message_writer);
    tcase_add_test(tw, test_message_writer_appends);
    tcase_add_test(tw, test_message_writer_revisions);
    tcase_add_test(tw, test_parse_edit_delete);
    tcase_add_test(tw, test_ref_end);
    suite_add_tcase(s, tw);
    TCase *td = tcase_create("dm");
    tcase_add_test(td, test_parse_dm);
    tcase_add_test(td, test_parse_dm_length);
    tcase_add_test(td, test_room_is_dm);
    tcase_add_test(td, test_dm_room_names_in_requests);
    suite_add_tcase(s, td);
    TCase *trs = tcase_create("read_search");
    tcase_add_test(trs, test_parse_read);
    tcase_add_test(trs, test_parse_search);
    tcase_add_test(trs, test_parse_search_length);
    tcase_add_test(trs, test_read_writer);
    suite_add_tcase(s, trs);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(protocol_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
