/* buf.h -- reference-counted frame buffers and a JSON writer over them.
 *
 * A buf holds one outgoing WebSocket payload with LWS_PRE bytes of headroom
 * in front, so lws_write() can put the frame header there without a copy.
 * A buf is written by one owner (refs == 1) and then shared read-only by
 * reference: broadcast puts the same buf on every member's outbound queue.
 *
 * Thread use: any thread may build a buf. Once shared, references may be
 * taken and dropped on several threads (a message built by the database
 * worker is queued by every event loop), so refs is atomic; the payload is
 * read-only by then.
 */
#ifndef PARLEY_BUF_H
#define PARLEY_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <libwebsockets.h>

struct buf {
    uint32_t refs;
    uint32_t len;        /* payload bytes after the headroom */
    uint32_t cap;        /* payload capacity */
    int oom;             /* set when a write could not grow the buffer */
    unsigned char mem[]; /* LWS_PRE headroom, then the payload */
};

#define BUF_PAYLOAD(b) ((b)->mem + LWS_PRE)

/* Returns a buffer with refs == 1 and room for `cap` payload bytes, or NULL. */
struct buf *buf_new(size_t cap);
/* Drops one reference; frees on the last. NULL is ignored. */
void buf_unref(struct buf *b);
static inline struct buf *buf_ref(struct buf *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

/* Writers. They grow the buffer (*bp may move); a failed growth sets
 * (*bp)->oom and drops the write, so callers check oom once at the end. */
void buf_put(struct buf **bp, const void *p, size_t n);
void buf_puts(struct buf **bp, const char *s);
void buf_put_i64(struct buf **bp, int64_t v);
/* Writes `s` (n bytes of valid UTF-8) as a quoted JSON string. */
void buf_put_jstr(struct buf **bp, const char *s, size_t n);
/* Same, for a NUL-terminated string. */
void buf_put_jstrz(struct buf **bp, const char *s);
/* Returns a new buf holding "a\0b\0" (two names for the routers: a DM's
 * pair, a user and a room), or NULL out of memory. */
struct buf *buf_pair(const char *a, const char *b);

#endif
