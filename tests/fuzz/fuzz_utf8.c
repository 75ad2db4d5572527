/* fuzz_utf8.c -- utf8_valid(), utf8_count() and utf8_next() against a
 * reference decoder written from RFC 3629 (decode, then reject overlong
 * forms, surrogates and anything above U+10FFFF), and the WebSocket rule the
 * server enforces with it (close 1007 for a text frame that is not UTF-8).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Decodes one sequence at s[i]; returns its length, or 0 when ill-formed. */
static size_t ref_decode(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
    unsigned c = s[i];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) return *cp = c, 1;
    if ((c & 0xE0) == 0xC0)
        len = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: a read past the end is an ASan report. */
    char *s = malloc(size ? size : 1);
    memcpy(s, data, size);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, count = 0;
    int valid = 1;
    uint32_t cps[64];
    while (i < size) {
        uint32_t cp;
        size_t len = ref_decode(u, size, i, &cp);
        if (!len) {
            valid = 0;
            break;
        }
        if (count < 64) cps[count] = cp;
        count++;
        i += len;
    }
    assert(utf8_valid(s, size) == valid);
    if (valid) {
        assert(utf8_count(s, size) == count);
        size_t j = 0, k = 0;
        while (j < size) {
            unsigned cp = utf8_next(s, size, &j);
            if (k < 64) assert(cp == cps[k]);
            k++;
        }
        assert(j == size && k == count);
    } else {
        /* utf8_count() and utf8_next() must stay in bounds on any input
         * (the contract asks for valid UTF-8, but be safe). */
        size_t j = 0;
        (void)utf8_count(s, size);
        while (j < size)
            (void)utf8_next(s, size, &j);
    }
    free(s);
    return 0;
}
