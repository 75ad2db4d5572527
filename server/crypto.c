/* crypto.c -- mbedtls-backed HMAC, base64url and random bytes. */
#include "crypto.h"

#include <pthread.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>

static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER;
static mbedtls_entropy_context entropy; /* guarded by rng_lock */
static mbedtls_ctr_drbg_context drbg;   /* guarded by rng_lock */
static int rng_ready;                   /* guarded by rng_lock */

int crypto_init(void)
{
    int rc = 0;
    pthread_mutex_lock(&rng_lock);
    if (!rng_ready) {
        mbedtls_entropy_init(&entropy);
        mbedtls_ctr_drbg_init(&drbg);
        static const char pers[] = "parley";
        rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                                   (const unsigned char *)pers, sizeof pers - 1);
        rng_ready = rc == 0;
    }
    pthread_mutex_unlock(&rng_lock);
    return rc ? -1 : 0;
}

int crypto_random(void *out, size_t n)
{
    if (crypto_init()) return -1;
    pthread_mutex_lock(&rng_lock);
    int rc = mbedtls_ctr_drbg_random(&drbg, out, n);
    pthread_mutex_unlock(&rng_lock);
    return rc ? -1 : 0;
}

int crypto_random_hex(char *out, size_t n)
{
    unsigned char raw[64];
    if (n > sizeof raw || crypto_random(raw, n)) return -1;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = "0123456789abcdef"[raw[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
    }
    out[2 * n] = 0;
    return 0;
}

void crypto_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                        unsigned char out[CRYPTO_HMAC_LEN])
{
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, klen, msg, mlen,
                    out);
}

void crypto_sha256(const void *msg, size_t mlen, unsigned char out[CRYPTO_HMAC_LEN])
{
    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), msg, mlen, out);
}

int crypto_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t crypto_b64url_encode(const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
    }
    out[o] = 0;
    return o;
}

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

long crypto_b64url_decode(const char *in, size_t n, void *out, size_t outcap)
{
    unsigned char *o = out;
    size_t len = 0;
    unsigned acc = 0;
    int bits = 0;
    if (n % 4 == 1) return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len >= outcap) return -1;
            o[len++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-canonical trailing bits */
        return -1;
    return (long)len;
}
