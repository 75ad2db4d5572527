/* searchq.c -- search text to an FTS5 expression (searchq.h). */
#include "searchq.h"
#include "searchq_tab.h"

#include <stdint.h>
#include <string.h>

/* Decodes the code point at q[*i] (valid UTF-8) and moves *i past it. */
static uint32_t next_cp(const unsigned char *q, size_t len, size_t *i)
{
    uint32_t c = q[(*i)++];
    int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    c &= more == 3 ? 0x07 : more == 2 ? 0x0f : more == 1 ? 0x1f : 0x7f;
    while (more-- && *i < len)
        c = c << 6 | (q[(*i)++] & 0x3f);
    return c;
}

/* Whether c lies in one of the n sorted ranges of t. */
static int in_ranges(uint32_t c, const uint32_t (*t)[2], size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < t[mid][0])
            hi = mid;
        else if (c > t[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* Whether code point c is part of a word: a letter, a number, a mark (an
 * accent: the index drops them) or private use, as the index's tokenizer
 * sees it. */
static int word_cp(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return !in_ranges(c, searchq_sep, sizeof searchq_sep / sizeof searchq_sep[0]);
}

/* Whether c may start a word: a mark only continues one (an emoji's
 * variation selector after a separator is no word). */
static int word_start(uint32_t c)
{
    return word_cp(c) &&
           (c < 0x80 ||
            !in_ranges(c, searchq_mark, sizeof searchq_mark / sizeof searchq_mark[0]));
}

struct out {
    char *p;
    size_t n, cap;
    int terms;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->n + n < o->cap) memcpy(o->p + o->n, s, n);
    o->n += n;
}

/* Starts a term: a space between terms (FTS5's implicit AND), a quote. */
static void term_open(struct out *o)
{
    put(o, o->terms ? " \"" : "\"", o->terms ? 2 : 1);
}

int searchq_build(const char *q, size_t len, char *out, size_t cap)
{
    const unsigned char *u = (const unsigned char *)q;
    struct out o = {out, 0, cap, 0};
    size_t i = 0;
    if (cap < SEARCHQ_OUT_MAX(len)) return cap ? (*out = 0, -1) : -1;
    while (i < len && o.terms < SEARCHQ_MAX_TERMS) {
        size_t at = i;
        uint32_t c = next_cp(u, len, &i);
        if (c == '"') { /* a phrase: its words, one space apart */
            size_t start = o.n, words = 0;
            term_open(&o);
            while (i < len) {
                size_t w = i;
                c = next_cp(u, len, &i);
                if (c == '"') break;
                if (!word_start(c)) continue;
                if (words++ && o.n > start) put(&o, " ", 1);
                put(&o, q + w, i - w);
                while (i < len) { /* the rest of the word */
                    size_t k = i;
                    if (!word_cp(next_cp(u, len, &k))) break;
                    put(&o, q + i, k - i);
                    i = k;
                }
            }
            if (!words) { /* "" or only separators: no term */
                o.n = start;
                continue;
            }
            put(&o, "\"", 1);
            o.terms++;
        } else if (word_start(c)) {
            term_open(&o);
            put(&o, q + at, i - at);
            while (i < len) {
                size_t k = i;
                c = next_cp(u, len, &k);
                if (!word_cp(c)) break;
                put(&o, q + i, k - i);
                i = k;
            }
            put(&o, "\"", 1);
            if (i < len && u[i] == '*') put(&o, " *", 2), i++;
            o.terms++;
        }
    }
    if (o.n >= cap) return *out = 0, -1; /* cannot happen: SEARCHQ_OUT_MAX */
    out[o.n] = 0;
    return o.terms;
}
