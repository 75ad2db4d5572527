/* ratelimit.c -- token bucket. */
#include "ratelimit.h"

void tb_init(struct tbucket *b, double burst, int64_t now_us)
{
    b->tokens = (float)burst;
    b->last_ms = (uint32_t)(now_us / 1000);
}

static void refill(struct tbucket *b, double rate, double burst, int64_t now_us)
{
    uint32_t now_ms = (uint32_t)(now_us / 1000), dt = now_ms - b->last_ms;
    if (dt >= UINT32_MAX / 2) { /* earlier (a step back) or idle > 24 days */
        b->last_ms = now_ms;    /* refill nothing; count from now */
        return;
    }
    double t = b->tokens + (double)dt * rate / 1e3;
    b->tokens = (float)(t > burst ? burst : t);
    b->last_ms = now_ms;
}

int tb_take(struct tbucket *b, double rate, double burst, int64_t now_us)
{
    refill(b, rate, burst, now_us);
    if (b->tokens < 1.0) return 0;
    b->tokens -= 1.0f;
    return 1;
}

int tb_ready(struct tbucket *b, double rate, double burst, int64_t now_us)
{
    refill(b, rate, burst, now_us);
    return b->tokens >= 0.0;
}

void tb_spend(struct tbucket *b, double n)
{
    b->tokens = (float)(b->tokens - n);
}
