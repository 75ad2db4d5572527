/* test_searchq.c -- a user's search text turned into an FTS5 MATCH
 * expression (searchq.h): the exact expressions, the term cap, a cap too
 * small, and every expression run against a real in-memory FTS5 table with
 * the index's tokenizer (schema/005), with the matches the spec promises. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "searchq.h"

static sqlite3 *fts;

/* The rows of the table every expression is run against. */
static const char *const rows[] = {
    NULL,
    "Caf\xc3\xa9 au lait",                       /* 1 */
    "deploy on friday",                          /* 2 */
    "friday we deploy",                          /* 3 */
    "deployment freeze",                         /* 4 */
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e text", /* 5: 日本語 */
    "NEAR the AND gate OR NOT",                  /* 6 */
    "say hello world",                           /* 7 */
    "text: col value",                           /* 8 */
    /* 9: x⁴ ℂ Ⅻ 〻, tokens of their own for unicode61 (categories L* N*) */
    "x\xe2\x81\xb4 plus \xe2\x84\x82 numbers \xe2\x85\xab chapter \xe3\x80\xbb mark",
};
#define NROWS ((int)(sizeof rows / sizeof rows[0]) - 1)

static void fts_open(void)
{
    ck_assert_int_eq(sqlite3_open(":memory:", &fts), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(fts,
                                  "CREATE VIRTUAL TABLE t USING fts5(text, "
                                  "tokenize='unicode61 remove_diacritics 2')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(
        sqlite3_prepare_v2(fts, "INSERT INTO t(rowid,text) VALUES(?1,?2)", -1, &st, NULL),
        SQLITE_OK);
    for (int i = 1; i <= NROWS; i++) {
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_text(st, 2, rows[i], -1, SQLITE_STATIC);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
}

static void fts_close(void)
{
    sqlite3_close(fts);
    fts = NULL;
}

/* Runs expr against the table: *set gets the matching rowids as a bit set
 * (bit i: row i). Returns NULL, or FTS5's reason when it refused expr
 * (the caller fails the test once it has freed what it holds). */
static const char *fts_match(const char *expr, unsigned *set)
{
    static char err[256];
    sqlite3_stmt *st;
    *set = 0;
    if (sqlite3_prepare_v2(fts, "SELECT rowid FROM t WHERE t MATCH ?1", -1, &st, NULL))
        return snprintf(err, sizeof err, "%s", sqlite3_errmsg(fts)), err;
    sqlite3_bind_text(st, 1, expr, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        *set |= 1u << sqlite3_column_int(st, 0);
    if (rc != SQLITE_DONE) snprintf(err, sizeof err, "%s", sqlite3_errmsg(fts));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? NULL : err;
}

#define ROW(i) (1u << (i))

/* Builds q (its strlen) with a cap of exactly SEARCHQ_OUT_MAX; checks the
 * terms and the expression; and, when there is one, that FTS5 takes it
 * and matches exactly `want` (a set of rows; ~0u: do not check). */
static void expect_q(const char *q, size_t len, int terms, const char *expr,
                     unsigned want, const char *file, int line)
{
    size_t cap = SEARCHQ_OUT_MAX(len);
    char *out = malloc(cap + 1);
    ck_assert_ptr_nonnull(out);
    memset(out, 'X', cap + 1);
    int n = searchq_build(q, len, out, cap);
    static char why[2048];
    why[0] = 0;
    if (n != terms || strcmp(out, expr))
        snprintf(why, sizeof why, "%s:%d: [%.*s]: got %d [%s], want %d [%s]", file, line,
                 (int)len, q, n, out, terms, expr);
    else if (out[cap] != 'X')
        snprintf(why, sizeof why, "%s:%d: [%.*s]: written past cap", file, line, (int)len,
                 q);
    else if (terms > 0) {
        unsigned got;
        const char *err = fts_match(out, &got);
        if (err)
            snprintf(why, sizeof why, "%s:%d: FTS5 refused [%s]: %s", file, line, out,
                     err);
        else if (want != ~0u && got != want)
            snprintf(why, sizeof why, "%s:%d: [%s] matched rows 0x%x, want 0x%x", file,
                     line, out, got, want);
    }
    free(out); /* before failing: the suite runs under LSan */
    if (why[0]) ck_abort_msg("%s", why);
}
#define EXPECT_Q(q, terms, expr, want)                                                   \
    expect_q(q, strlen(q), terms, expr, want, __FILE__, __LINE__)
#define ANY (~0u)

START_TEST(test_words)
{
    EXPECT_Q("deploy", 1, "\"deploy\"", ROW(2) | ROW(3));
    EXPECT_Q("deploy friday", 2, "\"deploy\" \"friday\"", ROW(2) | ROW(3));
    EXPECT_Q("friday deploy", 2, "\"friday\" \"deploy\"", ROW(2) | ROW(3));
    EXPECT_Q("  deploy \t\n friday  ", 2, "\"deploy\" \"friday\"", ROW(2) | ROW(3));
    EXPECT_Q("DEPLOY", 1, "\"DEPLOY\"", ROW(2) | ROW(3)); /* case by the tokenizer */
    EXPECT_Q("deploy,friday.", 2, "\"deploy\" \"friday\"", ROW(2) | ROW(3));
    EXPECT_Q("x1 2y", 2, "\"x1\" \"2y\"", 0);
    EXPECT_Q("deploy nothing", 2, "\"deploy\" \"nothing\"", 0);
    EXPECT_Q("a_b", 2, "\"a\" \"b\"", 0); /* _ separates */
}
END_TEST

START_TEST(test_phrases)
{
    /* A phrase: its words in that order; the same words apart match both. */
    EXPECT_Q("\"deploy friday\"", 1, "\"deploy friday\"", 0);
    EXPECT_Q("\"on friday\"", 1, "\"on friday\"", ROW(2));
    EXPECT_Q("\"friday we\"", 1, "\"friday we\"", ROW(3));
    EXPECT_Q("\"  on ,, friday \"", 1, "\"on friday\"", ROW(2));
    EXPECT_Q("deploy \"on friday\"", 2, "\"deploy\" \"on friday\"", ROW(2));
    EXPECT_Q("\"on friday\" deploy", 2, "\"on friday\" \"deploy\"", ROW(2));
    EXPECT_Q("a\"b c\"", 2, "\"a\" \"b c\"", 0);
    /* A * inside a phrase separates; after a phrase it is dropped. */
    EXPECT_Q("\"dep* fri\"", 1, "\"dep fri\"", 0);
    EXPECT_Q("\"deploy on\"*", 1, "\"deploy on\"", ROW(2));
    /* Unbalanced: the phrase runs to the end. */
    EXPECT_Q("say \"hello world", 2, "\"say\" \"hello world\"", ROW(7));
    EXPECT_Q("\"hello", 1, "\"hello\"", ROW(7));
    EXPECT_Q("\"", 0, "", 0);
    EXPECT_Q("\"\"", 0, "", 0);
    EXPECT_Q("\"\"\"\"\"", 0, "", 0);
    EXPECT_Q("\" !? \"", 0, "", 0);
    EXPECT_Q("hello \"\" world", 2, "\"hello\" \"world\"", ROW(7));
    EXPECT_Q("hello \"", 1, "\"hello\"", ROW(7));
    EXPECT_Q("\"\"hello", 1, "\"hello\"", ROW(7));
    EXPECT_Q("a\\\"b", 2, "\"a\" \"b\"", 0); /* a backslash escapes nothing */
}
END_TEST

START_TEST(test_prefix)
{
    EXPECT_Q("dep*", 1, "\"dep\" *", ROW(2) | ROW(3) | ROW(4));
    EXPECT_Q("deploy*", 1, "\"deploy\" *", ROW(2) | ROW(3) | ROW(4));
    EXPECT_Q("deploym*", 1, "\"deploym\" *", ROW(4));
    EXPECT_Q("dep* fri*", 2, "\"dep\" * \"fri\" *", ROW(2) | ROW(3));
    EXPECT_Q("dep**", 1, "\"dep\" *", ROW(2) | ROW(3) | ROW(4));
    EXPECT_Q("dep*fri", 2, "\"dep\" * \"fri\"", 0);
    EXPECT_Q("dep *", 1, "\"dep\"", 0); /* a * apart from the word: a separator */
    EXPECT_Q("*dep", 1, "\"dep\"", 0);
    EXPECT_Q("*", 0, "", 0);
    EXPECT_Q("***", 0, "", 0);
    EXPECT_Q(" * * ", 0, "", 0);
}
END_TEST

START_TEST(test_syntax_is_text)
{
    /* FTS5's operators are plain words. */
    EXPECT_Q("AND", 1, "\"AND\"", ROW(6));
    EXPECT_Q("OR", 1, "\"OR\"", ROW(6));
    EXPECT_Q("NOT", 1, "\"NOT\"", ROW(6));
    EXPECT_Q("NEAR", 1, "\"NEAR\"", ROW(6));
    EXPECT_Q("deploy OR cafe", 3, "\"deploy\" \"OR\" \"cafe\"", 0);
    EXPECT_Q("deploy AND friday", 3, "\"deploy\" \"AND\" \"friday\"", 0);
    EXPECT_Q("deploy NOT friday", 3, "\"deploy\" \"NOT\" \"friday\"", 0);
    EXPECT_Q("gate AND NEAR", 3, "\"gate\" \"AND\" \"NEAR\"", ROW(6));
    EXPECT_Q("NEAR(deploy friday)", 3, "\"NEAR\" \"deploy\" \"friday\"", 0);
    EXPECT_Q("NEAR(deploy friday, 2)", 4, "\"NEAR\" \"deploy\" \"friday\" \"2\"", 0);
    /* Column filters, initial-token and other operators: separators. */
    EXPECT_Q("text:value", 2, "\"text\" \"value\"", ROW(8));
    EXPECT_Q("col:value", 2, "\"col\" \"value\"", ROW(8));
    EXPECT_Q("{text}:deploy", 2, "\"text\" \"deploy\"", 0);
    EXPECT_Q("-text:deploy", 2, "\"text\" \"deploy\"", 0);
    EXPECT_Q("^deploy", 1, "\"deploy\"", ROW(2) | ROW(3));
    EXPECT_Q("deploy + friday", 2, "\"deploy\" \"friday\"", ROW(2) | ROW(3));
    EXPECT_Q("deploy+friday", 2, "\"deploy\" \"friday\"", ROW(2) | ROW(3));
    EXPECT_Q("-deploy", 1, "\"deploy\"", ROW(2) | ROW(3));
    EXPECT_Q("(deploy OR cafe)", 3, "\"deploy\" \"OR\" \"cafe\"", 0);
    EXPECT_Q("((deploy)) (friday", 2, "\"deploy\" \"friday\"", ROW(2) | ROW(3));
    EXPECT_Q(")(", 0, "", 0);
    EXPECT_Q("'deploy'", 1, "\"deploy\"", ROW(2) | ROW(3));
}
END_TEST

START_TEST(test_only_separators)
{
    const char *qs[] = {"", " ", "\t\n\r", ",.;:!?", "-+^()[]{}", "'\\/|&%$#@~`", "_=<>"};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        char out[256];
        memset(out, 'X', sizeof out);
        ck_assert_int_eq(searchq_build(qs[i], strlen(qs[i]), out, sizeof out), 0);
        ck_assert_str_eq(out, "");
    }
    /* NUL bytes inside q (len counts them) are separators too. */
    EXPECT_Q("", 0, "", 0);
    expect_q("a\0b", 3, 2, "\"a\" \"b\"", 0, __FILE__, __LINE__);
    expect_q("\0\0", 2, 0, "", 0, __FILE__, __LINE__);
    /* len bounds the text: what follows is not read. */
    expect_q("deploy friday", 6, 1, "\"deploy\"", ROW(2) | ROW(3), __FILE__, __LINE__);
}
END_TEST

START_TEST(test_unicode)
{
    /* Letters beyond ASCII are word letters, copied as they are; the
     * tokenizer folds case and diacritics: cafe finds Café, and back. */
    EXPECT_Q("cafe", 1, "\"cafe\"", ROW(1));
    EXPECT_Q("Caf\xc3\xa9", 1, "\"Caf\xc3\xa9\"", ROW(1));
    EXPECT_Q("CAF\xc3\x89", 1, "\"CAF\xc3\x89\"", ROW(1));
    EXPECT_Q("caf\xc3\xa8*", 1, "\"caf\xc3\xa8\" *", ROW(1));
    EXPECT_Q("na\xc3\xafve r\xc3\xa9sum\xc3\xa9", 2,
             "\"na\xc3\xafve\" \"r\xc3\xa9sum\xc3\xa9\"", 0);
    EXPECT_Q("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 1,
             "\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\"", ROW(5));
    EXPECT_Q("\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e text\"", 1,
             "\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e text\"", ROW(5));
    EXPECT_Q("\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", 1, /* привет */
             "\"\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\"", 0);
    /* CJK punctuation separates; the iteration mark 々 is a letter. */
    EXPECT_Q("\xe6\x97\xa5\xe3\x80\x82\xe6\x9c\xac", 2,
             "\"\xe6\x97\xa5\" \"\xe6\x9c\xac\"", 0);
    EXPECT_Q("\xe4\xba\xba\xe3\x80\x85", 1, "\"\xe4\xba\xba\xe3\x80\x85\"", 0);
    /* Latin-1: µ ½ are word characters, × ÷ « » ¿ and NBSP separate. */
    EXPECT_Q("2\xc3\x97"
             "3",
             2, "\"2\" \"3\"", 0);
    EXPECT_Q("6\xc3\xb7"
             "3",
             2, "\"6\" \"3\"", 0);
    EXPECT_Q("\xc2\xab"
             "deploy\xc2\xbb",
             1, "\"deploy\"", ROW(2) | ROW(3));
    EXPECT_Q("\xc2\xbf"
             "deploy\xc2\xa0"
             "friday?",
             2, "\"deploy\" \"friday\"", ROW(2) | ROW(3));
    EXPECT_Q("5\xc2\xb5m", 1, "\"5\xc2\xb5m\"", 0);
    /* General punctuation and fullwidth punctuation separate; fullwidth
     * letters are letters. */
    EXPECT_Q("deploy\xe2\x80\x94"
             "friday",
             2, "\"deploy\" \"friday\"", ROW(2) | ROW(3));
    EXPECT_Q("\xe2\x80\x9c"
             "deploy\xe2\x80\x9d",
             1, "\"deploy\"", ROW(2) | ROW(3));
    EXPECT_Q("\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\x81", 1, "\"\xef\xbc\xa1\xef\xbc\xa2\"",
             0);
}
END_TEST

START_TEST(test_emoji_separate)
{
    /* 🚀 (U+1F680), ❤️ (U+2764 U+FE0F), 👍🏽 (with a skin tone), a ZWJ
     * family: separators, between words and alone. */
    EXPECT_Q("deploy\xf0\x9f\x9a\x80"
             "friday",
             2, "\"deploy\" \"friday\"", ROW(2) | ROW(3));
    EXPECT_Q("\xf0\x9f\x9a\x80", 0, "", 0);
    EXPECT_Q("\xe2\x9d\xa4\xef\xb8\x8f", 0, "", 0);
    EXPECT_Q("\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd"
             "cafe",
             1, "\"cafe\"", ROW(1));
    EXPECT_Q("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
             0, "", 0);
    EXPECT_Q("\"deploy\xf0\x9f\x9a\x80on\"", 1, "\"deploy on\"", ROW(2));
    EXPECT_Q("\"\xf0\x9f\x9a\x80\"", 0, "", 0);
    EXPECT_Q("dep\xf0\x9f\x9a\x80*", 1, "\"dep\"", 0); /* the * is not after the word */
}
END_TEST

START_TEST(test_term_cap)
{
    /* 20 words: the first SEARCHQ_MAX_TERMS are used, the rest ignored. */
    char q[256] = "", want[512] = "";
    for (int i = 1; i <= 20; i++) {
        char w[16];
        snprintf(w, sizeof w, "%sw%d", i > 1 ? " " : "", i);
        strcat(q, w);
        if (i <= SEARCHQ_MAX_TERMS) {
            snprintf(w, sizeof w, "%s\"w%d\"", i > 1 ? " " : "", i);
            strcat(want, w);
        }
    }
    ck_assert_int_eq(SEARCHQ_MAX_TERMS, 16);
    EXPECT_Q(q, SEARCHQ_MAX_TERMS, want, 0);
    /* Phrases and prefixes count as one term each. */
    char q2[512] = "", want2[1024] = "";
    for (int i = 1; i <= 18; i++) {
        char w[32];
        snprintf(w, sizeof w, i % 2 ? "\"p%d q\" " : "x%d* ", i);
        strcat(q2, w);
        if (i <= SEARCHQ_MAX_TERMS) {
            snprintf(w, sizeof w, i % 2 ? "%s\"p%d q\"" : "%s\"x%d\" *", i > 1 ? " " : "",
                     i);
            strcat(want2, w);
        }
    }
    EXPECT_Q(q2, SEARCHQ_MAX_TERMS, want2, 0);
    /* Empty phrases are no terms: 16 words after them still fit. */
    char q3[256] = "\"\" \"!\" ";
    strcat(q3, q);
    EXPECT_Q(q3, SEARCHQ_MAX_TERMS, want, 0);
}
END_TEST

START_TEST(test_cap_too_small)
{
    const char *q = "deploy friday";
    size_t len = strlen(q), need = SEARCHQ_OUT_MAX(len);
    char *out = malloc(need);
    ck_assert_ptr_nonnull(out);
    /* One byte short of SEARCHQ_OUT_MAX: -1 and an empty out. */
    memset(out, 'X', need);
    ck_assert_int_eq(searchq_build(q, len, out, need - 1), -1);
    ck_assert_int_eq(out[0], 0);
    memset(out, 'X', need);
    ck_assert_int_eq(searchq_build(q, len, out, 1), -1);
    ck_assert_int_eq(out[0], 0);
    /* A cap of 0: out is not written at all. */
    memset(out, 'X', need);
    ck_assert_int_eq(searchq_build(q, len, out, 0), -1);
    ck_assert_int_eq(out[0], 'X');
    /* Even an empty q needs its bound (its terms' room). */
    ck_assert_int_eq(searchq_build("", 0, out, SEARCHQ_OUT_MAX(0) - 1), -1);
    ck_assert_int_eq(searchq_build("", 0, out, SEARCHQ_OUT_MAX(0)), 0);
    ck_assert_str_eq(out, "");
    /* Exactly the bound: fine. */
    ck_assert_int_eq(searchq_build(q, len, out, need), 2);
    ck_assert_str_eq(out, "\"deploy\" \"friday\"");
    free(out);
}
END_TEST

/* The worst cases for the bound: every byte a one-byte word between
 * separators, every word a prefix, phrases of one-letter words; at the
 * longest q (256 code points of 4 bytes). Each fits and FTS5 takes it. */
START_TEST(test_bound_worst_cases)
{
    static const char *const units[] = {
        "a ",  "a* ", "\"a b\" ", "\"a", "a\"", "\xf0\x9f\x9a\x80", "\xf0\xa0\x80\x80 ",
        "\"\""};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        char q[1100] = "";
        size_t n = 0, ul = strlen(units[u]);
        while (n + ul < SEARCHQ_MAX_LEN) {
            memcpy(q + n, units[u], ul);
            n += ul;
        }
        q[n] = 0;
        size_t cap = SEARCHQ_OUT_MAX(n);
        char *out = malloc(cap);
        ck_assert_ptr_nonnull(out);
        int t = searchq_build(q, n, out, cap);
        size_t olen = strlen(out);
        unsigned got;
        const char *err = t > 0 ? fts_match(out, &got) : NULL;
        static char why[1400];
        if (err) snprintf(why, sizeof why, "FTS5 refused [%s]: %s", out, err);
        free(out);
        ck_assert_int_ge(t, 0);
        ck_assert_int_le(t, SEARCHQ_MAX_TERMS);
        ck_assert_uint_lt(olen, cap);
        if (err) ck_abort_msg("%s", why);
    }
}
END_TEST

START_TEST(test_letters_in_symbol_blocks)
{
    /* The spec: "Search words are runs of letters and digits (Unicode)".
     * Some letters and numbers live in the blocks searchq.c treats as all
     * punctuation and symbols (U+2000-2BFF, U+3000-303F), and unicode61
     * indexes them as tokens (the table's row 9): ℂ (U+2102, Lu), Ⅻ
     * (U+216B, Nl), 〻 (U+303B, Lm), the superscript digit ⁴ (U+2074). */
    EXPECT_Q("\xe2\x84\x82", 1, "\"\xe2\x84\x82\"", ROW(9));
    EXPECT_Q("\xe2\x85\xab", 1, "\"\xe2\x85\xab\"", ROW(9));
    EXPECT_Q("\xe3\x80\xbb", 1, "\"\xe3\x80\xbb\"", ROW(9));
    EXPECT_Q("x\xe2\x81\xb4", 1, "\"x\xe2\x81\xb4\"", ROW(9));
}
END_TEST

static Suite *searchq_suite(void)
{
    Suite *s = suite_create("searchq");
    TCase *tc = tcase_create("build");
    tcase_add_checked_fixture(tc, fts_open, fts_close);
    tcase_add_test(tc, test_words);
    tcase_add_test(tc, test_phrases);
    tcase_add_test(tc, test_prefix);
    tcase_add_test(tc, test_syntax_is_text);
    tcase_add_test(tc, test_only_separators);
    tcase_add_test(tc, test_unicode);
    tcase_add_test(tc, test_emoji_separate);
    tcase_add_test(tc, test_term_cap);
    tcase_add_test(tc, test_cap_too_small);
    tcase_add_test(tc, test_bound_worst_cases);
    tcase_add_test(tc, test_letters_in_symbol_blocks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(searchq_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
