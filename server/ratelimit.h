/* ratelimit.h -- token bucket. Pure arithmetic on caller-owned state. */
#ifndef PARLEY_RATELIMIT_H
#define PARLEY_RATELIMIT_H

#include <stdint.h>

/* 8 bytes: a connection has four of these. Milliseconds in 32 bits wrap
 * after 49 days; the refill uses the wrapped difference. A time that looks
 * earlier than the last refill (a clock stepping back, or a bucket left
 * untouched for over 24 days) refills nothing and the count restarts from
 * it. Float tokens are exact for whole numbers up to 2^24 (16 MiB). */
struct tbucket {
    float tokens;
    uint32_t last_ms; /* time of the last refill, truncated */
};

/* A fresh bucket is full: a new connection may spend `burst` at once. */
void tb_init(struct tbucket *b, double burst, int64_t now_us);
/* Refills at `rate` tokens per second up to `burst`, then takes one token.
 * Returns 1 when a token was taken, 0 when the bucket is empty. */
int tb_take(struct tbucket *b, double rate, double burst, int64_t now_us);

/* For costs known only afterwards (bytes of a reply): refills as tb_take
 * does and says whether the bucket is not in debt (1) or is (0). */
int tb_ready(struct tbucket *b, double rate, double burst, int64_t now_us);
/* Takes `n` tokens, going into debt if need be: later requests wait until
 * the refill has paid it back (tb_ready). */
void tb_spend(struct tbucket *b, double n);

#endif
