/* searchq.h -- a user's search text turned into an FTS5 MATCH expression
 * (protocol 1.1, "Search").
 *
 * The syntax users type: words that must all appear, in any order; "a
 * phrase" in double quotes; a trailing `*` on a word matches it as a
 * prefix. Words are runs of letters and digits; everything else separates
 * them, and AND, OR, NOT, NEAR are plain words. The user's text never
 * reaches FTS5's own query syntax: each word and phrase is written as an
 * FTS5 string (a double-quoted token list, where no character but `"` has
 * a meaning), so `NEAR(`, `col:`, `^`, `+`, `-`, parentheses and stray
 * quotes are text or separators, never syntax. An unbalanced quote opens a
 * phrase that runs to the end. Matching ignores case and diacritics through
 * the index's tokenizer (`unicode61 remove_diacritics 2`, schema/005).
 *
 * Pure functions: any thread, no allocation.
 */
#ifndef PARLEY_SEARCHQ_H
#define PARLEY_SEARCHQ_H

#include <stddef.h>

/* Words and phrases at most: every one a q of SEARCHQ_MAX_LEN code points
 * can hold (one letter and one separator each). */
#define SEARCHQ_MAX_TERMS 128
#define SEARCHQ_MAX_LEN 256  /* code points of q */
/* Bytes an expression for q of `len` bytes needs at most, NUL included. */
#define SEARCHQ_OUT_MAX(len) (2 * (len) + 6 * SEARCHQ_MAX_TERMS + 1)

/* Writes the MATCH expression for q[0..len) (valid UTF-8) into out, which
 * holds cap >= SEARCHQ_OUT_MAX(len) bytes, NUL-terminated. Returns the
 * number of terms written (1..SEARCHQ_MAX_TERMS), 0 when q has no word at
 * all (nothing to search: the caller answers bad_request), or -1 when cap
 * is too small (out is then empty). Every word of q is used. */
int searchq_build(const char *q, size_t len, char *out, size_t cap);

#endif
