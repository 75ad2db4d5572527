/* outq.h -- a connection's bounded outbound queue of shared frame buffers.
 *
 * The queue holds references (struct buf) in FIFO order. It is bounded both
 * by count and by bytes; a push over either bound fails and leaves the queue
 * unaltered, and the caller closes the connection as a slow consumer (1013).
 * Storage grows on demand, so an idle connection costs no ring at all.
 * Event-loop thread only.
 */
#ifndef PARLEY_OUTQ_H
#define PARLEY_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct outq_limits {
    uint32_t max_msgs;
    size_t max_bytes;
};

struct outq {
    struct buf **ring; /* NULL until the first push */
    uint32_t head;     /* index of the oldest entry */
    uint32_t count;
    uint32_t cap; /* a power of two, or 0 */
    /* 32 bits: max_bytes is at most 1 GiB and one frame is a buf (32-bit
     * length), so neither can wrap. */
    uint32_t bytes; /* payload bytes queued */
    uint32_t held;  /* bytes already written but held back outside the queue
                     (libwebsockets' buffer of a partial write): they count
                     against max_bytes too */
};

/* Appends b and takes a reference to it. Returns 0, or -1 when the queue is
 * full (by count, or by bytes queued plus held) or memory ran out; then
 * nothing changed. A single buffer larger than max_bytes is still accepted
 * when nothing at all is queued or held, so any one reply can be sent. */
int outq_push(struct outq *q, struct buf *b, const struct outq_limits *lim);
/* Returns the oldest buffer (the queue keeps its reference), or NULL. */
struct buf *outq_peek(const struct outq *q);
/* Removes the oldest buffer and drops the queue's reference to it. */
void outq_pop(struct outq *q);
/* Writes the header of a final, unmasked text frame of `len` payload bytes
 * into h (room for OUTQ_HEADER_MAX) and returns its length. */
#define OUTQ_HEADER_MAX 10
size_t outq_ws_header(unsigned char *h, size_t len);
/* Moves the oldest frames, as many whole ones as fit in `cap` bytes, into
 * `out` as unmasked WebSocket text frames (header + payload) and pops them.
 * Returns the bytes written (0 when the queue is empty or its oldest frame
 * alone does not fit) and the frame count in *frames. */
size_t outq_gather(struct outq *q, unsigned char *out, size_t cap, unsigned *frames);
/* Drops every reference and frees the ring. */
void outq_clear(struct outq *q);

#endif
