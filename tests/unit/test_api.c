/* test_api.c -- the HTTP API's pure part (api_parse.h): routes, the Bearer
 * key check, credentials in URLs, Content-Type, the chunked decoder,
 * bodies and queries validated into requests, token claims. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_parse.h"
#include "jwt.h"

static char *keys[] = {"first-key-0123456789", "second-key-abcdefghij"};
static const size_t lens[] = {20, 21};
static const struct proto_limits lim = {.max_text = 10};

START_TEST(test_routes)
{
    ck_assert_int_eq(api_route("/api/publish"), API_PUBLISH);
    ck_assert_int_eq(api_route("/api/delete"), API_DELETE);
    ck_assert_int_eq(api_route("/api/history"), API_HISTORY);
    ck_assert_int_eq(api_route("/api/rooms"), API_ROOMS);
    ck_assert_int_eq(api_route("/api/token"), API_TOKEN);
    ck_assert_int_eq(api_route("/api/publish/"), API_UNKNOWN);
    ck_assert_int_eq(api_route("/api/kick"), API_KICK);
    ck_assert_int_eq(api_route("/api/mute"), API_MUTE);
    ck_assert_int_eq(api_route("/api/unmute"), API_UNMUTE);
    ck_assert_int_eq(api_route("/api/ban"), API_BAN);
    ck_assert_int_eq(api_route("/api/unban"), API_UNBAN);
    ck_assert_int_eq(api_route("/api/kicks"), API_UNKNOWN);
    ck_assert_str_eq(api_method(API_BAN), "POST");
    ck_assert_int_eq(api_route("/api/Publish"), API_UNKNOWN);
    ck_assert_int_eq(api_route("/api"), API_UNKNOWN);
    ck_assert_str_eq(api_method(API_PUBLISH), "POST");
    ck_assert_str_eq(api_method(API_ROOMS), "GET");
    ck_assert_str_eq(api_method(API_HISTORY), "GET");
}
END_TEST

START_TEST(test_keys)
{
    ck_assert_int_eq(api_key_matches("Bearer first-key-0123456789", keys, lens, 2), 1);
    ck_assert_int_eq(api_key_matches("bearer second-key-abcdefghij", keys, lens, 2), 1);
    ck_assert_int_eq(api_key_matches("BEARER   first-key-0123456789  ", keys, lens, 2),
                     1);
    ck_assert_int_eq(api_key_matches("Bearer first-key-012345678", keys, lens, 2), 0);
    ck_assert_int_eq(api_key_matches("Bearer first-key-01234567890", keys, lens, 2), 0);
    ck_assert_int_eq(api_key_matches("Bearer second-key-abcdefghij", keys, lens, 1), 0);
    ck_assert_int_eq(api_key_matches("Basic first-key-0123456789", keys, lens, 2), 0);
    ck_assert_int_eq(api_key_matches("first-key-0123456789", keys, lens, 2), 0);
    ck_assert_int_eq(api_key_matches("Bearer ", keys, lens, 2), 0);
    ck_assert_int_eq(api_key_matches("Bearer", keys, lens, 2), 0);
    ck_assert_int_eq(api_key_matches("", keys, lens, 2), 0);
    ck_assert_int_eq(api_key_matches(NULL, keys, lens, 2), 0);
    ck_assert_int_eq(api_key_matches("Bearer first-key-0123456789", keys, lens, 0), 0);
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big, "Bearer ", 7);
    ck_assert_int_eq(api_key_matches(big, keys, lens, 2), 0);
}
END_TEST

START_TEST(test_url_and_content_type)
{
    ck_assert_int_eq(api_query_secret("key=abc"), 1);
    ck_assert_int_eq(api_query_secret("API_KEY=abc"), 1);
    ck_assert_int_eq(api_query_secret("access_token=abc"), 1);
    ck_assert_int_eq(api_query_secret("token"), 1);
    ck_assert_int_eq(api_query_secret("room=key"), 0);
    ck_assert_int_eq(api_query_secret("keys=1"), 0);
    ck_assert_int_eq(api_query_secret("limit=5"), 0);
    ck_assert_int_eq(api_content_type_json("application/json"), 1);
    ck_assert_int_eq(api_content_type_json("Application/JSON; charset=utf-8"), 1);
    ck_assert_int_eq(api_content_type_json("application/jsonx"), 0);
    ck_assert_int_eq(api_content_type_json("text/plain"), 0);
    ck_assert_int_eq(api_content_type_json(NULL), 0);
    ck_assert_int_eq(api_chunked_te("chunked"), 1);
    ck_assert_int_eq(api_chunked_te("Chunked"), 1);
    ck_assert_int_eq(api_chunked_te("gzip, CHUNKED"), 1);
    ck_assert_int_eq(api_chunked_te("identity"), 0);
    ck_assert_int_eq(api_chunked_te(NULL), 0);
}
END_TEST

/* Feeds s to a fresh decoder in pieces of `step` bytes. */
static int dechunk(const char *s, size_t step, size_t max, struct buf **out)
{
    struct api_chunked st = {0};
    *out = buf_new(16);
    size_t n = strlen(s), off = 0;
    int rc = API_CHUNK_MORE;
    while (off < n && rc == API_CHUNK_MORE) {
        size_t used, k = n - off < step ? n - off : step;
        rc = api_chunked_feed(&st, s + off, k, out, max, &used);
        ck_assert_uint_le(used, k);
        off += used;
    }
    return rc;
}

START_TEST(test_chunked)
{
    struct buf *b;
    const char *enc = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
    for (size_t step = 1; step < 40; step++) {
        ck_assert_int_eq(dechunk(enc, step, 100, &b), API_CHUNK_DONE);
        ck_assert_uint_eq(b->len, 12);
        ck_assert_int_eq(memcmp(BUF_PAYLOAD(b), "hello, world", 12), 0);
        buf_unref(b);
    }
    ck_assert_int_eq(dechunk("A\r\n0123456789\r\n", 3, 100, &b), API_CHUNK_MORE);
    buf_unref(b);
    ck_assert_int_eq(dechunk("A\r\n0123456789\r\n", 3, 9, &b), API_CHUNK_TOO_LARGE);
    ck_assert_uint_eq(b->len, 0); /* refused at the size line, nothing buffered */
    buf_unref(b);
    ck_assert_int_eq(dechunk("5\r\nab", 100, 8, &b), API_CHUNK_MORE);
    buf_unref(b);
    ck_assert_int_eq(dechunk("5\r\nhello\r\n5\r\nhello\r\n", 100, 8, &b),
                     API_CHUNK_TOO_LARGE);
    buf_unref(b);
    ck_assert_int_eq(dechunk("x\r\n", 1, 100, &b), API_CHUNK_BAD);
    buf_unref(b);
    ck_assert_int_eq(dechunk("\r\n", 1, 100, &b), API_CHUNK_BAD);
    buf_unref(b);
    ck_assert_int_eq(dechunk("123456789\r\n", 1, 1u << 30, &b), API_CHUNK_BAD);
    buf_unref(b);
    ck_assert_int_eq(dechunk("2\r\nabX\n", 1, 100, &b), API_CHUNK_BAD);
    buf_unref(b);
    ck_assert_int_eq(dechunk("2\rX", 1, 100, &b), API_CHUNK_BAD);
    buf_unref(b);
}
END_TEST

static enum api_code body(enum api_ep ep, const char *s, struct api_req *r)
{
    const char *msg = NULL;
    enum api_code c = api_parse_body(ep, s, strlen(s), &lim, "api-fresh", r, &msg);
    if (c) ck_assert_ptr_nonnull(msg);
    return c;
}

#define BODY(ep, s, want)                                                                \
    do {                                                                                 \
        struct api_req r_;                                                               \
        ck_assert_int_eq(body(ep, s, &r_), want);                                        \
        api_req_free(&r_);                                                               \
    } while (0)

START_TEST(test_publish)
{
    struct api_req r;
    ck_assert_int_eq(
        body(
            API_PUBLISH,
            "{\"room\":\"lobby\",\"text\":\"hi\",\"user\":{\"id\":\"b\",\"name\":\"B\"}}",
            &r),
        API_OK);
    ck_assert_str_eq(r.p.room, "lobby");
    ck_assert_str_eq(r.p.text, "hi");
    ck_assert_str_eq(r.p.client_id, "api-fresh");
    ck_assert_str_eq(r.user_id, "b");
    ck_assert_str_eq(r.user_name, "B");
    api_req_free(&r);
    ck_assert_int_eq(
        body(API_PUBLISH,
             "{\"room\":\"r\",\"text\":\"hi\",\"client_id\":\"c1\",\"user\":{\"id\":"
             "\"b\",\"name\":\"B\"}}",
             &r),
        API_OK);
    ck_assert_str_eq(r.p.client_id, "c1");
    api_req_free(&r);
    BODY(API_PUBLISH, "", API_BAD_JSON);
    BODY(API_PUBLISH, "[]", API_BAD_JSON);
    BODY(API_PUBLISH, "{} x", API_BAD_JSON);
    BODY(API_PUBLISH, "{\"room\":\"\xff\"}", API_BAD_JSON);
    BODY(API_PUBLISH, "{}", API_BAD_REQUEST);
    BODY(API_PUBLISH,
         "{\"room\":\"A\",\"text\":\"x\",\"user\":{\"id\":\"b\",\"name\":\"B\"}}",
         API_BAD_ROOM);
    BODY(API_PUBLISH,
         "{\"room\":\"a\",\"text\":\"\",\"user\":{\"id\":\"b\",\"name\":\"B\"}}",
         API_TOO_LONG);
    BODY(API_PUBLISH,
         "{\"room\":\"a\",\"text\":\"12345678901\",\"user\":{\"id\":\"b\",\"name\":\"B\"}"
         "}",
         API_TOO_LONG);
    BODY(API_PUBLISH, "{\"room\":\"a\",\"text\":\"x\"}", API_BAD_REQUEST);
    BODY(API_PUBLISH,
         "{\"room\":\"a\",\"text\":\"x\",\"user\":{\"id\":\"g_0123456789abcdef\","
         "\"name\":\"B\"}}",
         API_BAD_REQUEST);
    BODY(API_PUBLISH,
         "{\"room\":\"a\",\"text\":\"x\",\"user\":{\"id\":\"b\",\"name\":\" \"}}",
         API_BAD_REQUEST);
    BODY(API_PUBLISH,
         "{\"room\":\"a\",\"text\":\"a\\u0000\",\"user\":{\"id\":\"b\",\"name\":\"B\"}}",
         API_BAD_REQUEST);
}
END_TEST

START_TEST(test_delete_and_query)
{
    struct api_req r;
    ck_assert_int_eq(body(API_DELETE, "{\"room\":\"lobby\",\"id\":7}", &r), API_OK);
    ck_assert_int_eq(r.p.id, 7);
    api_req_free(&r);
    BODY(API_DELETE, "{\"room\":\"lobby\",\"id\":0}", API_BAD_REQUEST);
    BODY(API_DELETE, "{\"room\":\"lobby\"}", API_BAD_REQUEST);

    const char *msg;
    const char *ok[] = {"room=lobby", "before=10", "limit=5"};
    ck_assert_int_eq(api_parse_query(API_HISTORY, ok, 3, &r, &msg), API_OK);
    ck_assert_str_eq(r.p.room, "lobby");
    ck_assert_int_eq(r.p.before, 10);
    ck_assert_int_eq(r.p.after, -1);
    ck_assert_int_eq(r.p.limit, 5);
    api_req_free(&r);
    const char *dflt[] = {"room=lobby"};
    ck_assert_int_eq(api_parse_query(API_HISTORY, dflt, 1, &r, &msg), API_OK);
    ck_assert_int_eq(r.p.limit, PROTO_HISTORY_DEFAULT);
    api_req_free(&r);
    const char *const bad[][3] = {
        {"room=lobby", "limit=0", NULL},
        {"room=lobby", "limit=201", NULL},
        {"room=lobby", "limit=-1", NULL},
        {"room=lobby", "before", NULL},
        {"room=lobby", "x=1", NULL},
        {"room=lobby", "room=b", NULL},
        {"limit=5", NULL, NULL},
        {"room=lobby", "before=1", "after=1"},
        {"room=lobby", "after=1e3", NULL},
        {"room=lobby", "after=99999999999999999", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = bad[i][2] ? 3 : bad[i][1] ? 2 : 1;
        ck_assert_int_eq(api_parse_query(API_HISTORY, bad[i], n, &r, &msg),
                         API_BAD_REQUEST);
        api_req_free(&r);
    }
    const char *badroom[] = {"room=Lobby"};
    ck_assert_int_eq(api_parse_query(API_HISTORY, badroom, 1, &r, &msg), API_BAD_ROOM);
    api_req_free(&r);
    ck_assert_int_eq(api_parse_query(API_ROOMS, NULL, 0, &r, &msg), API_OK);
    api_req_free(&r);
    ck_assert_int_eq(api_parse_query(API_ROOMS, dflt, 1, &r, &msg), API_BAD_REQUEST);
    api_req_free(&r);
}
END_TEST

START_TEST(test_moderation_bodies)
{
    struct api_req r;
    ck_assert_int_eq(body(API_MUTE,
                          "{\"room\":\"lobby\",\"user\":\"u1\",\"minutes\":5,"
                          "\"reason\":\"calm\"}",
                          &r),
                     API_OK);
    ck_assert_str_eq(r.p.room, "lobby");
    ck_assert_str_eq(r.p.user, "u1");
    ck_assert_int_eq(r.p.minutes, 5);
    ck_assert_str_eq(r.p.reason, "calm");
    api_req_free(&r);
    ck_assert_int_eq(body(API_BAN, "{\"user\":\"u1\"}", &r), API_OK); /* server-wide */
    ck_assert_ptr_null(r.p.room);
    ck_assert_int_eq(r.p.minutes, -1);
    api_req_free(&r);
    ck_assert_int_eq(body(API_UNBAN, "{\"user\":\"u1\",\"room\":\"a\"}", &r), API_OK);
    api_req_free(&r);
    BODY(API_KICK, "{\"user\":\"u1\"}", API_BAD_REQUEST);    /* a room is needed */
    BODY(API_MUTE, "{\"room\":\"lobby\"}", API_BAD_REQUEST); /* a user too */
    BODY(API_KICK, "{\"room\":\"lobby\",\"user\":\"u\",\"minutes\":1}", API_BAD_REQUEST);
    BODY(API_MUTE, "{\"room\":\"lobby\",\"user\":\"u\",\"minutes\":0}", API_BAD_REQUEST);
    BODY(API_BAN, "{\"user\":\"u\",\"minutes\":525601}", API_BAD_REQUEST);
    BODY(API_BAN, "{\"user\":\"u\",\"room\":\"No\"}", API_BAD_ROOM);
    BODY(API_BAN, "[]", API_BAD_JSON);
}
END_TEST

START_TEST(test_token)
{
    struct api_req r;
    ck_assert_int_eq(
        body(API_TOKEN,
             "{\"sub\":\"u1\",\"name\":\"Ann\",\"ttl\":60,\"rooms\":[\"a\",\"b\"],"
             "\"role\":\"admin\",\"dm\":false}",
             &r),
        API_OK);
    char *claims = api_token_claims(&r, 1000);
    ck_assert_str_eq(claims,
                     "{\"sub\":\"u1\",\"name\":\"Ann\",\"exp\":1060,\"rooms\":[\"a\","
                     "\"b\"],\"role\":\"admin\",\"dm\":false}");
    char *tok = jwt_sign_payload("sec", 3, claims, strlen(claims));
    struct jwt_claims c;
    const char *why;
    ck_assert_int_eq(jwt_verify(tok, "sec", 3, 1000, &c, &why), 0);
    ck_assert_str_eq(c.sub, "u1");
    ck_assert_int_eq(c.exp, 1060);
    ck_assert_int_eq(c.no_dm, 1);
    ck_assert_int_eq(jwt_allows_room(&c, "b"), 1);
    ck_assert_int_eq(jwt_allows_room(&c, "z"), 0);
    jwt_claims_free(&c);
    free(tok);
    free(claims);
    api_req_free(&r);
    ck_assert_int_eq(body(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\"}", &r), API_OK);
    ck_assert_int_eq(r.ttl, API_TTL_DEFAULT);
    claims = api_token_claims(&r, 0);
    ck_assert_str_eq(claims, "{\"sub\":\"u1\",\"name\":\"Ann\",\"exp\":3600}");
    free(claims);
    api_req_free(&r);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"ttl\":2592000}", API_OK);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"rooms\":\"*\"}", API_OK);
    BODY(API_TOKEN, "[]", API_BAD_JSON);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"ttl\":2592001}", API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"ttl\":0}", API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"ttl\":-1}", API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"ttl\":1.5}", API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"ttl\":1e300}", API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"role\":\"root\"}",
         API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"rooms\":[\"A\"]}",
         API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"sub\":\"u1\",\"name\":\"Ann\",\"dm\":0}", API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"sub\":\"g_0123456789abcdef\",\"name\":\"Ann\"}", API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"sub\":\"u\\u0000x\",\"name\":\"Ann\"}", API_BAD_REQUEST);
    BODY(API_TOKEN, "{\"name\":\"Ann\"}", API_BAD_REQUEST);
}
END_TEST

START_TEST(test_errors)
{
    struct buf *b = api_error_json(API_TOO_LARGE, "big \"body\"");
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(
        memcmp(BUF_PAYLOAD(b),
               "{\"error\":{\"code\":\"too_large\",\"message\":\"big \\\"body\\\"\"}}\n",
               b->len),
        0);
    buf_unref(b);
    ck_assert_uint_eq(api_status(API_UNAUTHORIZED), 401);
    ck_assert_uint_eq(api_status(API_METHOD_NOT_ALLOWED), 405);
    ck_assert_uint_eq(api_status(API_CONFLICT), 409);
    ck_assert_uint_eq(api_status(API_OVERLOADED), 503);
    ck_assert_str_eq(api_code_name(API_BAD_JSON), "bad_json");
    ck_assert_str_eq(api_code_name(API_FORBIDDEN), "forbidden");
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_routes);
    tcase_add_test(tc, test_keys);
    tcase_add_test(tc, test_url_and_content_type);
    tcase_add_test(tc, test_chunked);
    tcase_add_test(tc, test_publish);
    tcase_add_test(tc, test_delete_and_query);
    tcase_add_test(tc, test_token);
    tcase_add_test(tc, test_moderation_bodies);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    proto_init();
    SRunner *sr = srunner_create(api_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
