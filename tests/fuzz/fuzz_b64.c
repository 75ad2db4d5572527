/* fuzz_b64.c -- crypto_b64url_decode() (used on every JWT segment) against a
 * reference decoder; decode(encode(x)) == x; and only canonical input (the
 * encoder's own output) decodes, so two spellings of one token cannot both
 * verify.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

static int val(unsigned char c)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = c ? memchr(a, c, 64) : NULL;
    return p ? (int)(p - a) : -1;
}

/* Reference: unpadded base64url; length % 4 != 1; zero trailing bits. */
static long ref_decode(const unsigned char *in, size_t n, unsigned char *out)
{
    if (n % 4 == 1) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        size_t k = n - i < 4 ? n - i : 4;
        for (size_t j = 0; j < 4; j++) {
            int x = j < k ? val(in[i + j]) : 0;
            if (x < 0) return -1;
            v = v << 6 | (uint32_t)x;
        }
        size_t bytes = k == 4 ? 3 : k - 1;
        for (size_t j = 0; j < bytes; j++)
            out[o++] = (unsigned char)(v >> (16 - 8 * j));
        if (bytes < 3 && (v & (0xFFFFFFu >> (8 * bytes))))
            return -1; /* non-zero trailing bits */
    }
    return (long)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    size_t cap = data[0] < 200 ? (size_t)data[0] : 4096;
    const unsigned char *in = data + 1;
    size_t n = size - 1;
    char *inp = malloc(n ? n : 1);
    memcpy(inp, in, n);
    unsigned char *out = malloc(cap ? cap : 1), *ref = malloc(n + 3);
    long got = crypto_b64url_decode(inp, n, out, cap);
    long want = ref_decode(in, n, ref);
    if (want >= 0 && (size_t)want <= cap) {
        assert(got == want);
        assert(!memcmp(out, ref, (size_t)want));
        /* canonical: re-encoding gives the input back */
        char *enc = malloc(n + 8);
        size_t en = crypto_b64url_encode(out, (size_t)got, enc);
        assert(en == n && !memcmp(enc, in, n));
        free(enc);
    } else {
        assert(got == -1);
    }
    /* round trip of arbitrary bytes */
    char *enc = malloc(n * 4 / 3 + 8);
    size_t en = crypto_b64url_encode(in, n, enc);
    assert(en == (n * 4 + 2) / 3);
    unsigned char *back = malloc(n + 1);
    assert(crypto_b64url_decode(enc, en, back, n) == (long)n);
    assert(!memcmp(back, in, n));
    if (n) assert(crypto_b64url_decode(enc, en, back, n - 1) == -1);
    free(back);
    free(enc);
    free(inp);
    free(out);
    free(ref);
    return 0;
}
