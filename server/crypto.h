/* crypto.h -- the few primitives Parley needs, on mbedtls: HMAC-SHA256,
 * constant-time comparison, base64url, and random bytes for ids.
 *
 * crypto_random() uses a process-wide CTR_DRBG guarded by a mutex, so any
 * thread may call it; the rest keep no state.
 */
#ifndef PARLEY_CRYPTO_H
#define PARLEY_CRYPTO_H

#include <stddef.h>

#define CRYPTO_HMAC_LEN 32

/* Seeds the generator from the OS. Returns 0, or -1 when there is no entropy. */
int crypto_init(void);
/* Fills out[0..n) with random bytes; returns 0 or -1. */
int crypto_random(void *out, size_t n);
/* Writes n random bytes as 2n lowercase hex chars plus NUL into out. */
int crypto_random_hex(char *out, size_t n);

void crypto_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                        unsigned char out[CRYPTO_HMAC_LEN]);
/* SHA-256 of msg[0..mlen) into out. */
void crypto_sha256(const void *msg, size_t mlen, unsigned char out[CRYPTO_HMAC_LEN]);
/* Returns 1 when a[0..n) equals b[0..n), in time independent of the data. */
int crypto_equal(const void *a, const void *b, size_t n);

/* base64url without padding. encode writes at most 4*ceil(n/3)+1 bytes
 * (NUL-terminated) and returns the length. decode returns the decoded length,
 * or -1 on a bad character, bad length or when it would exceed outcap. */
size_t crypto_b64url_encode(const void *in, size_t n, char *out);
long crypto_b64url_decode(const char *in, size_t n, void *out, size_t outcap);

#endif
