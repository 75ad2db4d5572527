/* searchq.c -- search text to an FTS5 expression (searchq.h). */
#include "searchq.h"

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

/* Whether code point c is part of a word: ASCII letters and digits, and
 * beyond ASCII everything but the blocks of spaces, punctuation and
 * symbols. A symbol taken for a letter is harmless: inside an FTS5 string
 * the tokenizer splits it off again, so the word becomes a phrase. */
static int word_cp(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (c < 0xc0) /* Latin-1 punctuation, but for its letters and digits */
        return c == 0xaa || c == 0xb2 || c == 0xb3 || c == 0xb5 || c == 0xb9 ||
               c == 0xba || (c >= 0xbc && c <= 0xbe);
    if (c == 0xd7 || c == 0xf7) return 0;     /* × ÷ */
    if (c >= 0x2000 && c <= 0x2bff) return 0; /* punctuation, symbols, arrows */
    if (c >= 0x3000 && c <= 0x303f) return c >= 0x3005 && c <= 0x3007;
    if (c >= 0xfe00 && c <= 0xfe0f) return 0; /* variation selectors */
    if (c >= 0xff00 && c <= 0xff65)           /* fullwidth forms: keep letters, digits */
        return (c >= 0xff10 && c <= 0xff19) || (c >= 0xff21 && c <= 0xff3a) ||
               (c >= 0xff41 && c <= 0xff5a);
    if (c >= 0x1f000 && c <= 0x1faff) return 0; /* emoji and pictographs */
    return 1;
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
                if (!word_cp(c)) continue;
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
        } else if (word_cp(c)) {
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
