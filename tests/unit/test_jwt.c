/* test_jwt.c -- HS256 token verification and signing, and the crypto helpers
 * they stand on (base64url, HMAC-SHA256, constant-time comparison). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "jwt.h"

#define NOW 1763766000LL
static const char SECRET[] = "s3cret-key-for-tests";
#define SLEN (sizeof SECRET - 1)

/* Hand-builds header.payload.signature. sig: NULL = HS256 over the first two
 * segments with `secret`; otherwise that literal signature segment. */
static char *build(const char *header, const char *payload, const char *secret,
                   const char *sig)
{
    size_t hl = strlen(header), pl = strlen(payload);
    char *out = malloc(hl * 2 + pl * 2 + 128 + (sig ? strlen(sig) : 0));
    ck_assert_ptr_nonnull(out);
    size_t o = crypto_b64url_encode(header, hl, out);
    out[o++] = '.';
    o += crypto_b64url_encode(payload, pl, out + o);
    if (sig) {
        out[o++] = '.';
        strcpy(out + o, sig);
        return out;
    }
    unsigned char mac[CRYPTO_HMAC_LEN];
    crypto_hmac_sha256(secret, strlen(secret), out, o, mac);
    out[o++] = '.';
    crypto_b64url_encode(mac, sizeof mac, out + o);
    return out;
}

static const char HS256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Verifies with SECRET at NOW; returns the result and frees the claims. */
static int verify(const char *tok)
{
    struct jwt_claims c;
    const char *why = NULL;
    int rc = jwt_verify(tok, SECRET, SLEN, NOW, &c, &why);
    if (rc) {
        ck_assert_ptr_nonnull(why);
        ck_assert_int_eq(c.nrooms, 0);
        ck_assert_ptr_null(c.rooms);
    }
    jwt_claims_free(&c);
    return rc;
}

/* Verifies a hand-built HS256 token with the given payload. */
static int verify_payload(const char *payload)
{
    char *t = build(HS256, payload, SECRET, NULL);
    int rc = verify(t);
    free(t);
    return rc;
}

START_TEST(test_sign_verify_good)
{
    char *t = jwt_sign(SECRET, SLEN, "user-1", "Ann \xc3\xa9", NOW + 3600, NULL);
    ck_assert_ptr_nonnull(t);
    /* Three segments. */
    char *d1 = strchr(t, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    ck_assert_ptr_nonnull(d2);
    ck_assert_ptr_null(strchr(d2 + 1, '.'));
    struct jwt_claims c;
    const char *why = NULL;
    ck_assert_int_eq(jwt_verify(t, SECRET, SLEN, NOW, &c, &why), 0);
    ck_assert_str_eq(c.sub, "user-1");
    ck_assert_str_eq(c.name, "Ann \xc3\xa9");
    ck_assert_int_eq(c.exp, NOW + 3600);
    ck_assert_int_eq(c.all_rooms, 1);
    ck_assert_int_eq(c.nrooms, 0);
    ck_assert_int_eq(jwt_allows_room(&c, "anything"), 1);
    jwt_claims_free(&c);
    free(t);
}
END_TEST

START_TEST(test_hand_built_good)
{
    /* Interoperability: a token built independently of jwt_sign verifies. */
    ck_assert_int_eq(verify_payload("{\"sub\":\"u\",\"name\":\"N\",\"exp\":1763769600}"),
                     0);
    /* typ is optional; extra claims are ignored. */
    char *t =
        build("{\"alg\":\"HS256\"}",
              "{\"sub\":\"u\",\"name\":\"N\",\"exp\":1763769600,\"iat\":1,\"x\":[1]}",
              SECRET, NULL);
    ck_assert_int_eq(verify(t), 0);
    free(t);
}
END_TEST

START_TEST(test_bad_signature)
{
    char *t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(verify(t), 0);
    char *sig = strrchr(t, '.') + 1;
    /* Flip one character in the middle of the signature. */
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify(t), -1);
    free(t);
    /* Flip a character of the payload: the signature no longer matches. */
    t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, NULL);
    char *pay = strchr(t, '.') + 1;
    pay[3] = pay[3] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify(t), -1);
    free(t);
    /* A truncated signature, an empty one, one too long. */
    t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, NULL);
    size_t n = strlen(t);
    t[n - 4] = 0;
    ck_assert_int_eq(verify(t), -1);
    strrchr(t, '.')[1] = 0;
    ck_assert_int_eq(verify(t), -1);
    free(t);
    t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, NULL);
    char *longer = malloc(strlen(t) + 8);
    strcpy(longer, t);
    strcat(longer, "AAAA");
    ck_assert_int_eq(verify(longer), -1);
    free(longer);
    free(t);
}
END_TEST

START_TEST(test_wrong_secret)
{
    char *t = jwt_sign("other", 5, "u", "N", NOW + 60, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
    /* A secret that is a prefix of the right one. */
    t = jwt_sign(SECRET, SLEN - 1, "u", "N", NOW + 60, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
}
END_TEST

START_TEST(test_expiry)
{
    char *t = jwt_sign(SECRET, SLEN, "u", "N", NOW - 1, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
    t = jwt_sign(SECRET, SLEN, "u", "N", NOW, NULL); /* exp is exclusive */
    ck_assert_int_eq(verify(t), -1);
    free(t);
    t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 1, NULL);
    ck_assert_int_eq(verify(t), 0);
    free(t);
    t = jwt_sign(SECRET, SLEN, "u", "N", 0, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
}
END_TEST

START_TEST(test_missing_or_bad_exp)
{
    ck_assert_int_eq(verify_payload("{\"sub\":\"u\",\"name\":\"N\"}"), -1);
    ck_assert_int_eq(
        verify_payload("{\"sub\":\"u\",\"name\":\"N\",\"exp\":\"1763769600\"}"), -1);
    ck_assert_int_eq(verify_payload("{\"sub\":\"u\",\"name\":\"N\",\"exp\":null}"), -1);
}
END_TEST

START_TEST(test_exp_out_of_range)
{
    /* A signed token with an exp beyond int64 seconds: either refused, or
     * accepted with an exp still in the future -- never a wrapped value. */
    static const char *const exps[] = {"1e300", "9.3e18", "1e19"};
    for (size_t i = 0; i < sizeof exps / sizeof exps[0]; i++) {
        char payload[128];
        snprintf(payload, sizeof payload, "{\"sub\":\"u\",\"name\":\"N\",\"exp\":%s}",
                 exps[i]);
        char *t = build(HS256, payload, SECRET, NULL);
        struct jwt_claims c;
        const char *why;
        int rc = jwt_verify(t, SECRET, SLEN, NOW, &c, &why);
        int64_t exp = c.exp;
        jwt_claims_free(&c);
        free(t);
        if (rc == 0 && exp <= NOW)
            ck_abort_msg("exp %s accepted as %lld", exps[i], (long long)exp);
    }
}
END_TEST

START_TEST(test_refused_claims_empty)
{
    /* jwt.h: on -1, "*c empty" -- nothing of a refused token is left in it. */
    static const char *const payloads[] = {
        "{\"sub\":\"u\",\"name\":\"N\",\"exp\":1763769600,\"rooms\":[\"Bad\"]}",
        "{\"sub\":\"u\",\"name\":\"\",\"exp\":1763769600}",
        "{\"name\":\"N\",\"exp\":1763769600}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *t = build(HS256, payloads[i], SECRET, NULL);
        struct jwt_claims c;
        const char *why;
        int rc = jwt_verify(t, SECRET, SLEN, NOW, &c, &why);
        free(t);
        struct jwt_claims seen = c;
        jwt_claims_free(&c);
        ck_assert_int_eq(rc, -1);
        if (seen.sub[0] || seen.name[0] || seen.exp || seen.all_rooms || seen.nrooms)
            ck_abort_msg(
                "refused token left claims: sub=\"%s\" name=\"%s\" exp=%lld (%s)",
                seen.sub, seen.name, (long long)seen.exp, payloads[i]);
    }
}
END_TEST

START_TEST(test_alg_none)
{
    const char *p = "{\"sub\":\"u\",\"name\":\"N\",\"exp\":1763769600}";
    char *t = build("{\"alg\":\"none\",\"typ\":\"JWT\"}", p, NULL, "");
    ck_assert_int_eq(verify(t), -1);
    free(t);
    t = build("{\"alg\":\"none\"}", p, NULL, "AAAA");
    ck_assert_int_eq(verify(t), -1);
    free(t);
    /* alg none, but signed with HS256 under the right secret: still refused. */
    t = build("{\"alg\":\"none\"}", p, SECRET, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
}
END_TEST

START_TEST(test_other_algs)
{
    const char *p = "{\"sub\":\"u\",\"name\":\"N\",\"exp\":1763769600}";
    static const char *const headers[] = {
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\"}",
        "{\"alg\":\"RS256\"}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":256}",
        "{\"alg\":null}",
        "[\"HS256\"]",
        "not json",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        /* A valid HS256 MAC over these bytes: only the header refuses it. */
        char *t = build(headers[i], p, SECRET, NULL);
        if (verify(t) != -1) ck_abort_msg("accepted header %s", headers[i]);
        free(t);
    }
}
END_TEST

START_TEST(test_malformed)
{
    char *t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, NULL);
    ck_assert_int_eq(verify(t), 0);
    char buf[1024];
    /* 2 segments: drop the signature with its dot. */
    strcpy(buf, t);
    *strrchr(buf, '.') = 0;
    ck_assert_int_eq(verify(buf), -1);
    /* 4 segments. */
    snprintf(buf, sizeof buf, "%s.AAAA", t);
    ck_assert_int_eq(verify(buf), -1);
    snprintf(buf, sizeof buf, "%s.", t);
    ck_assert_int_eq(verify(buf), -1);
    /* Bad base64 in the payload, the header, the signature. */
    strcpy(buf, t);
    strchr(buf, '.')[2] = '*';
    ck_assert_int_eq(verify(buf), -1);
    strcpy(buf, t);
    buf[1] = '+';
    ck_assert_int_eq(verify(buf), -1);
    strcpy(buf, t);
    strrchr(buf, '.')[3] = '/';
    ck_assert_int_eq(verify(buf), -1);
    /* Padding is not base64url. */
    snprintf(buf, sizeof buf, "%s=", t);
    ck_assert_int_eq(verify(buf), -1);
    ck_assert_int_eq(verify(""), -1);
    ck_assert_int_eq(verify("."), -1);
    ck_assert_int_eq(verify(".."), -1);
    ck_assert_int_eq(verify("abc"), -1);
    /* Payload that is not a JSON object. */
    char *u = build(HS256, "[1,2]", SECRET, NULL);
    ck_assert_int_eq(verify(u), -1);
    free(u);
    u = build(HS256, "{\"sub\":\"u\"", SECRET, NULL);
    ck_assert_int_eq(verify(u), -1);
    free(u);
    free(t);
}
END_TEST

START_TEST(test_too_long_token)
{
    size_t n = JWT_MAX_LEN + 10;
    char *t = malloc(n + 1);
    memset(t, 'A', n);
    t[100] = '.';
    t[200] = '.';
    t[n] = 0;
    ck_assert_int_eq(verify(t), -1);
    free(t);
}
END_TEST

/* The role claim of a hand-built token with the given extra claims, and
 * whether it moderates the rooms named. */
static int role_of(const char *extra, struct jwt_claims *c)
{
    char payload[256];
    snprintf(payload, sizeof payload,
             "{\"sub\":\"u\",\"name\":\"N\",\"exp\":1763769600%s}", extra);
    char *t = build(HS256, payload, SECRET, NULL);
    const char *why = NULL;
    ck_assert_int_eq(jwt_verify(t, SECRET, SLEN, NOW, c, &why), 0);
    free(t);
    return c->role;
}

START_TEST(test_role_claim)
{
    struct jwt_claims c;
    static const char *const none[] = {"",
                                       ",\"role\":\"owner\"",
                                       ",\"role\":\"MOD\"",
                                       ",\"role\":\"admin \"",
                                       ",\"role\":[\"admin\"]",
                                       ",\"role\":1",
                                       ",\"role\":null",
                                       ",\"role\":\"\""};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        ck_assert_msg(role_of(none[i], &c) == JWT_ROLE_NONE, "%s", none[i]);
        ck_assert_int_eq(jwt_moderates(&c, "lobby"), 0);
        jwt_claims_free(&c);
    }
    /* A moderator: the rooms its token allows, never a DM room. */
    ck_assert_int_eq(role_of(",\"role\":\"mod\",\"rooms\":[\"a\"]", &c), JWT_ROLE_MOD);
    ck_assert_int_eq(jwt_moderates(&c, "a"), 1);
    ck_assert_int_eq(jwt_moderates(&c, "b"), 0);
    ck_assert_int_eq(jwt_moderates(&c, "dm-0123456789abcdef0123456789abcdef"), 0);
    ck_assert_str_eq(jwt_role_name(c.role), "mod");
    jwt_claims_free(&c);
    ck_assert_int_eq(role_of(",\"role\":\"mod\"", &c), JWT_ROLE_MOD);
    ck_assert_int_eq(jwt_moderates(&c, "anything"), 1);
    ck_assert_int_eq(jwt_moderates(&c, "dm-0123456789abcdef0123456789abcdef"), 0);
    jwt_claims_free(&c);
    /* An admin: everywhere, whatever its rooms claim, DM rooms too. */
    ck_assert_int_eq(role_of(",\"role\":\"admin\",\"rooms\":[\"a\"]", &c),
                     JWT_ROLE_ADMIN);
    ck_assert_int_eq(jwt_moderates(&c, "b"), 1);
    ck_assert_int_eq(jwt_moderates(&c, "dm-0123456789abcdef0123456789abcdef"), 1);
    ck_assert_str_eq(jwt_role_name(c.role), "admin");
    jwt_claims_free(&c);
    ck_assert_int_eq(jwt_moderates(NULL, "a"), 0); /* a guest */
    ck_assert_ptr_null(jwt_role_name(JWT_ROLE_NONE));
}
END_TEST

START_TEST(test_rooms_claim)
{
    struct jwt_claims c;
    const char *why;
    char *t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, "\"*\"");
    ck_assert_int_eq(jwt_verify(t, SECRET, SLEN, NOW, &c, &why), 0);
    ck_assert_int_eq(c.all_rooms, 1);
    ck_assert_int_eq(jwt_allows_room(&c, "zzz"), 1);
    jwt_claims_free(&c);
    free(t);

    t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, "[\"a\",\"b\"]");
    ck_assert_int_eq(jwt_verify(t, SECRET, SLEN, NOW, &c, &why), 0);
    ck_assert_int_eq(c.all_rooms, 0);
    ck_assert_int_eq(c.nrooms, 2);
    ck_assert_str_eq(c.rooms[0], "a");
    ck_assert_str_eq(c.rooms[1], "b");
    ck_assert_int_eq(jwt_allows_room(&c, "a"), 1);
    ck_assert_int_eq(jwt_allows_room(&c, "b"), 1);
    ck_assert_int_eq(jwt_allows_room(&c, "c"), 0);
    ck_assert_int_eq(jwt_allows_room(&c, "ab"), 0);
    ck_assert_int_eq(jwt_allows_room(&c, ""), 0);
    jwt_claims_free(&c);
    ck_assert_int_eq(c.nrooms, 0);
    ck_assert_ptr_null(c.rooms);
    free(t);

    /* An empty list allows nothing. */
    t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, "[]");
    ck_assert_int_eq(jwt_verify(t, SECRET, SLEN, NOW, &c, &why), 0);
    ck_assert_int_eq(c.all_rooms, 0);
    ck_assert_int_eq(jwt_allows_room(&c, "a"), 0);
    jwt_claims_free(&c);
    free(t);
}
END_TEST

START_TEST(test_rooms_claim_invalid)
{
    static const char *const bad[] = {
        "[\"a\",\"Bad\"]", "[\"a\",\"-x\"]", "[\"a\",5]", "[\"\"]",
        "\"lobby\"",       "\"**\"",         "5",         "{\"a\":1}",
        "[[\"a\"]]",       "null",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, bad[i]);
        ck_assert_ptr_nonnull(t);
        if (verify(t) != -1) ck_abort_msg("accepted rooms %s", bad[i]);
        free(t);
    }
}
END_TEST

START_TEST(test_rooms_claim_too_many)
{
    /* JWT_MAX_ROOMS names are fine, one more is refused. */
    size_t cap = (JWT_MAX_ROOMS + 1) * 8 + 8;
    char *ok = malloc(cap), *over = malloc(cap);
    size_t o = 0;
    ok[o++] = '[';
    for (int i = 0; i < JWT_MAX_ROOMS; i++)
        o += (size_t)sprintf(ok + o, "%s\"r%d\"", i ? "," : "", i);
    strcpy(ok + o, "]");
    memcpy(over, ok, o);
    sprintf(over + o, ",\"r%d\"]", JWT_MAX_ROOMS);
    char *t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, ok);
    struct jwt_claims c;
    const char *why;
    ck_assert_int_eq(jwt_verify(t, SECRET, SLEN, NOW, &c, &why), 0);
    ck_assert_int_eq(c.nrooms, JWT_MAX_ROOMS);
    ck_assert_int_eq(jwt_allows_room(&c, "r255"), 1);
    jwt_claims_free(&c);
    free(t);
    t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, over);
    ck_assert_int_eq(verify(t), -1);
    free(t);
    free(ok);
    free(over);
}
END_TEST

START_TEST(test_name_claim)
{
    char n32[32 * 4 + 1] = "", n33[33 * 4 + 1] = "";
    for (int i = 0; i < 32; i++)
        strcat(n32, "\xf0\x9f\x98\x80");
    strcpy(n33, n32);
    strcat(n33, "x");
    char *t = jwt_sign(SECRET, SLEN, "u", n32, NOW + 60, NULL);
    struct jwt_claims c;
    const char *why;
    ck_assert_int_eq(jwt_verify(t, SECRET, SLEN, NOW, &c, &why), 0);
    ck_assert_str_eq(c.name, n32); /* 128 bytes fit */
    jwt_claims_free(&c);
    free(t);
    t = jwt_sign(SECRET, SLEN, "u", n33, NOW + 60, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
    t = jwt_sign(SECRET, SLEN, "u", "", NOW + 60, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
    t = jwt_sign(SECRET, SLEN, "u", "   ", NOW + 60, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
    t = jwt_sign(SECRET, SLEN, "u", "a\x07", NOW + 60, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
    ck_assert_int_eq(verify_payload("{\"sub\":\"u\",\"exp\":1763769600}"), -1);
    ck_assert_int_eq(verify_payload("{\"sub\":\"u\",\"name\":7,\"exp\":1763769600}"), -1);
}
END_TEST

START_TEST(test_sub_claim)
{
    ck_assert_int_eq(verify_payload("{\"name\":\"N\",\"exp\":1763769600}"), -1);
    ck_assert_int_eq(verify_payload("{\"sub\":\"\",\"name\":\"N\",\"exp\":1763769600}"),
                     -1);
    ck_assert_int_eq(verify_payload("{\"sub\":42,\"name\":\"N\",\"exp\":1763769600}"),
                     -1);
    ck_assert_int_eq(verify_payload("{\"sub\":null,\"name\":\"N\",\"exp\":1763769600}"),
                     -1);
    char s128[JWT_MAX_SUB + 2];
    memset(s128, 's', JWT_MAX_SUB);
    s128[JWT_MAX_SUB] = 0;
    char *t = jwt_sign(SECRET, SLEN, s128, "N", NOW + 60, NULL);
    struct jwt_claims c;
    const char *why;
    ck_assert_int_eq(jwt_verify(t, SECRET, SLEN, NOW, &c, &why), 0);
    ck_assert_str_eq(c.sub, s128);
    jwt_claims_free(&c);
    free(t);
    s128[JWT_MAX_SUB] = 's';
    s128[JWT_MAX_SUB + 1] = 0;
    t = jwt_sign(SECRET, SLEN, s128, "N", NOW + 60, NULL);
    ck_assert_int_eq(verify(t), -1);
    free(t);
}
END_TEST

START_TEST(test_no_secret)
{
    char *t = jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, NULL);
    struct jwt_claims c;
    const char *why = NULL;
    ck_assert_int_eq(jwt_verify(t, NULL, 0, NOW, &c, &why), -1);
    ck_assert_ptr_nonnull(why);
    jwt_claims_free(&c);
    ck_assert_int_eq(jwt_verify(t, SECRET, 0, NOW, &c, &why), -1);
    jwt_claims_free(&c);
    /* A token signed with an empty key does not pass with an absent secret. */
    char *e = jwt_sign("", 0, "u", "N", NOW + 60, NULL);
    ck_assert_int_eq(jwt_verify(e, NULL, 0, NOW, &c, &why), -1);
    jwt_claims_free(&c);
    ck_assert_int_eq(jwt_verify(e, "", 0, NOW, &c, &why), -1);
    jwt_claims_free(&c);
    free(e);
    free(t);
}
END_TEST

START_TEST(test_sign_bad_rooms_json)
{
    ck_assert_ptr_null(jwt_sign(SECRET, SLEN, "u", "N", NOW + 60, "[not json"));
}
END_TEST

/* ---- crypto ---- */

START_TEST(test_b64url_vectors)
{
    static const struct {
        const char *in, *out;
    } v[] = {
        {"", ""},
        {"f", "Zg"},
        {"fo", "Zm8"},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"},
        {"fooba", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy"},
        {"\xfb\xff", "-_8"},
        {"\xff\xff\xff", "____"},
        {"\xfb\xef\xbe", "----"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[32];
        size_t n = crypto_b64url_encode(v[i].in, strlen(v[i].in), out);
        ck_assert_uint_eq(n, strlen(v[i].out));
        ck_assert_str_eq(out, v[i].out);
        unsigned char back[32];
        long m = crypto_b64url_decode(v[i].out, strlen(v[i].out), back, sizeof back);
        ck_assert_int_eq(m, (long)strlen(v[i].in));
        ck_assert_mem_eq(back, v[i].in, (size_t)m);
    }
}
END_TEST

START_TEST(test_b64url_round_trip)
{
    unsigned char in[300], back[300];
    char enc[4 * 100 + 8];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= 300; n += (n < 40 ? 1 : 37)) {
        size_t e = crypto_b64url_encode(in, n, enc);
        ck_assert_uint_eq(e, (4 * n + 2) / 3);
        ck_assert_uint_eq(strlen(enc), e);
        ck_assert_ptr_null(strpbrk(enc, "+/="));
        long d = crypto_b64url_decode(enc, e, back, sizeof back);
        ck_assert_int_eq(d, (long)n);
        ck_assert_mem_eq(back, in, n);
    }
}
END_TEST

START_TEST(test_b64url_decode_errors)
{
    unsigned char out[16];
    ck_assert_int_eq(crypto_b64url_decode("Zm9v", 4, out, sizeof out), 3);
    ck_assert_int_eq(crypto_b64url_decode("Zm+v", 4, out, sizeof out), -1); /* '+' */
    ck_assert_int_eq(crypto_b64url_decode("Zm/v", 4, out, sizeof out), -1); /* '/' */
    ck_assert_int_eq(crypto_b64url_decode("Zg==", 4, out, sizeof out), -1); /* padding */
    ck_assert_int_eq(crypto_b64url_decode("Zm9 ", 4, out, sizeof out), -1);
    ck_assert_int_eq(crypto_b64url_decode("Z", 1, out, sizeof out), -1); /* bad length */
    ck_assert_int_eq(crypto_b64url_decode("Zm9vY", 5, out, sizeof out), -1);
    ck_assert_int_eq(crypto_b64url_decode("Zh", 2, out, sizeof out),
                     -1); /* trailing bits */
    ck_assert_int_eq(crypto_b64url_decode("Zm9", 3, out, sizeof out),
                     -1); /* trailing bits */
    ck_assert_int_eq(crypto_b64url_decode("Zm8", 3, out, sizeof out), 2);
    ck_assert_int_eq(crypto_b64url_decode("Zm9v", 4, out, 2), -1); /* outcap */
    ck_assert_int_eq(crypto_b64url_decode("Zm9v", 4, out, 3), 3);
    ck_assert_int_eq(crypto_b64url_decode("", 0, out, 0), 0);
}
END_TEST

START_TEST(test_hmac_sha256_rfc4231)
{
    /* RFC 4231 test case 2. */
    static const unsigned char want[CRYPTO_HMAC_LEN] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
        0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
        0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
    };
    unsigned char mac[CRYPTO_HMAC_LEN];
    const char *msg = "what do ya want for nothing?";
    crypto_hmac_sha256("Jefe", 4, msg, strlen(msg), mac);
    ck_assert_mem_eq(mac, want, sizeof want);
}
END_TEST

START_TEST(test_equal)
{
    unsigned char a[32], b[32];
    for (int i = 0; i < 32; i++)
        a[i] = b[i] = (unsigned char)i;
    ck_assert_int_eq(crypto_equal(a, b, 32), 1);
    ck_assert_int_eq(crypto_equal(a, b, 0), 1);
    b[0] ^= 1;
    ck_assert_int_eq(crypto_equal(a, b, 32), 0);
    ck_assert_int_eq(crypto_equal(a + 1, b + 1, 31), 1);
    b[0] ^= 1;
    b[31] ^= 0x80;
    ck_assert_int_eq(crypto_equal(a, b, 32), 0);
    ck_assert_int_eq(crypto_equal(a, b, 31), 1);
    ck_assert_int_eq(crypto_equal("abc", "abd", 3), 0);
}
END_TEST

START_TEST(test_random_hex)
{
    char a[33], b[33];
    ck_assert_int_eq(crypto_init(), 0);
    ck_assert_int_eq(crypto_random_hex(a, 16), 0);
    ck_assert_int_eq(crypto_random_hex(b, 16), 0);
    ck_assert_uint_eq(strlen(a), 32);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 32);
    ck_assert_str_ne(a, b);
    unsigned char r[8] = {0};
    ck_assert_int_eq(crypto_random(r, sizeof r), 0);
}
END_TEST

static Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("jwt");
    tcase_add_test(tc, test_sign_verify_good);
    tcase_add_test(tc, test_hand_built_good);
    tcase_add_test(tc, test_bad_signature);
    tcase_add_test(tc, test_wrong_secret);
    tcase_add_test(tc, test_expiry);
    tcase_add_test(tc, test_missing_or_bad_exp);
    tcase_add_test(tc, test_exp_out_of_range);
    tcase_add_test(tc, test_refused_claims_empty);
    tcase_add_test(tc, test_alg_none);
    tcase_add_test(tc, test_other_algs);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_too_long_token);
    tcase_add_test(tc, test_rooms_claim);
    tcase_add_test(tc, test_role_claim);
    tcase_add_test(tc, test_rooms_claim_invalid);
    tcase_add_test(tc, test_rooms_claim_too_many);
    tcase_add_test(tc, test_name_claim);
    tcase_add_test(tc, test_sub_claim);
    tcase_add_test(tc, test_no_secret);
    tcase_add_test(tc, test_sign_bad_rooms_json);
    suite_add_tcase(s, tc);
    TCase *tcr = tcase_create("crypto");
    tcase_add_test(tcr, test_b64url_vectors);
    tcase_add_test(tcr, test_b64url_round_trip);
    tcase_add_test(tcr, test_b64url_decode_errors);
    tcase_add_test(tcr, test_hmac_sha256_rfc4231);
    tcase_add_test(tcr, test_equal);
    tcase_add_test(tcr, test_random_hex);
    suite_add_tcase(s, tcr);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jwt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
