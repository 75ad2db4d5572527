/* fuzz_searchq.c -- every string a user can type as a search's q becomes
 * either "no words" (bad_request) or an expression SQLite's FTS5 accepts:
 * never a syntax error, so never `internal`. The expression is run for
 * real against an index built with the server's tokenizer. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "searchq.h"
#include "utf8.h"

static sqlite3 *db;
static sqlite3_stmt *st;

static void setup(void)
{
    assert(sqlite3_open(":memory:", &db) == SQLITE_OK);
    assert(sqlite3_exec(db,
                        "CREATE VIRTUAL TABLE t USING fts5(text, tokenize='unicode61 "
                        "remove_diacritics 2');"
                        "INSERT INTO t VALUES('Café deploy friday'),('NEAR and OR'),"
                        "('日本語 テキスト'),('x');",
                        NULL, NULL, NULL) == SQLITE_OK);
    assert(sqlite3_prepare_v2(db,
                              "SELECT rowid FROM t WHERE t MATCH ?1 ORDER BY rowid DESC",
                              -1, &st, NULL) == SQLITE_OK);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (!db) setup();
    const char *q = (const char *)data;
    /* The server hands it valid UTF-8 of at most 256 code points, no NUL. */
    if (!utf8_valid(q, size) || memchr(q, 0, size) ||
        utf8_count(q, size) > SEARCHQ_MAX_LEN)
        return 0;
    size_t cap = SEARCHQ_OUT_MAX(size);
    char *out = malloc(cap);
    assert(out);
    assert(searchq_build(q, size, out, cap - 1) == -1); /* too small: refused */
    int terms = searchq_build(q, size, out, cap);
    assert(terms >= 0 && terms <= SEARCHQ_MAX_TERMS);
    assert(strlen(out) < cap);
    if (terms > 0) {
        sqlite3_bind_text(st, 1, out, -1, SQLITE_STATIC);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            ;
        if (rc != SQLITE_DONE) {
            fprintf(stderr, "q=[%.*s] match=[%s]: %s\n", (int)size, q, out,
                    sqlite3_errmsg(db));
            abort();
        }
        sqlite3_reset(st);
    } else
        assert(out[0] == 0);
    free(out);
    return 0;
}
