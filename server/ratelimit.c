/* ratelimit.c -- token bucket. */
#include "ratelimit.h"

void tb_init(struct tbucket *b, double burst, int64_t now_us)
{
    b->tokens = burst;
    b->last_us = now_us;
}

static void refill(struct tbucket *b, double rate, double burst, int64_t now_us)
{
    if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) * rate / 1e6;
        if (b->tokens > burst) b->tokens = burst;
        b->last_us = now_us;
    }
}

int tb_take(struct tbucket *b, double rate, double burst, int64_t now_us)
{
    refill(b, rate, burst, now_us);
    if (b->tokens < 1.0) return 0;
    b->tokens -= 1.0;
    return 1;
}

int tb_ready(struct tbucket *b, double rate, double burst, int64_t now_us)
{
    refill(b, rate, burst, now_us);
    return b->tokens >= 0.0;
}

void tb_spend(struct tbucket *b, double n)
{
    b->tokens -= n;
}
