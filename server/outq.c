/* outq.c -- bounded FIFO of buffer references on a growable ring. */
#include "outq.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static int outq_grow(struct outq *q)
{
    uint32_t cap = q->cap ? q->cap * 2 : 4;
    struct buf **ring = malloc(cap * sizeof(*ring));
    if (!ring) return -1;
    for (uint32_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
    free(q->ring);
    q->ring = ring;
    q->head = 0;
    q->cap = cap;
    return 0;
}

int outq_push(struct outq *q, struct buf *b, const struct outq_limits *lim)
{
    int empty = !q->count && !q->held;
    if (!empty && (q->count >= lim->max_msgs ||
                   (size_t)q->bytes + q->held + b->len > lim->max_bytes))
        return -1;
    if (q->count == q->cap && outq_grow(q)) return -1;
    q->ring[(q->head + q->count) & (q->cap - 1)] = buf_ref(b);
    q->count++;
    q->bytes += b->len;
    return 0;
}

struct buf *outq_peek(const struct outq *q)
{
    return q->count ? q->ring[q->head] : NULL;
}

void outq_pop(struct outq *q)
{
    assert(q->count > 0);
    struct buf *b = q->ring[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    q->bytes -= b->len;
    buf_unref(b);
}

size_t outq_ws_header(unsigned char *h, size_t len)
{
    h[0] = 0x81; /* FIN | text */
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

size_t outq_gather(struct outq *q, unsigned char *out, size_t cap, unsigned *frames)
{
    size_t n = 0;
    *frames = 0;
    for (struct buf *b; (b = outq_peek(q)) && n + b->len + 10 <= cap; (*frames)++) {
        n += outq_ws_header(out + n, b->len);
        memcpy(out + n, BUF_PAYLOAD(b), b->len);
        n += b->len;
        outq_pop(q);
    }
    return n;
}

void outq_clear(struct outq *q)
{
    while (q->count)
        outq_pop(q);
    free(q->ring);
    q->ring = NULL;
    q->cap = q->head = 0;
    q->held = 0;
}
