/* utf8.h -- UTF-8 validation and counting. No allocation; thread-safe. */
#ifndef PARLEY_UTF8_H
#define PARLEY_UTF8_H

#include <stddef.h>

/* Returns 1 when s[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), else 0. */
int utf8_valid(const char *s, size_t n);

/* Returns the number of code points in s[0..n), which must be valid UTF-8. */
size_t utf8_count(const char *s, size_t n);

/* Decodes the code point at s[*i] (valid UTF-8, *i < n) and advances *i. */
unsigned utf8_next(const char *s, size_t n, size_t *i);

#endif
