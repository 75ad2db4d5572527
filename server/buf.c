/* buf.c -- reference-counted frame buffers and the JSON string writer. */
#include "buf.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf *buf_new(size_t cap)
{
    if (cap < 64) cap = 64;
    if (cap > UINT32_MAX / 2) return NULL;
    struct buf *b = malloc(sizeof(*b) + LWS_PRE + cap);
    if (!b) return NULL;
    b->refs = 1;
    b->len = 0;
    b->cap = (uint32_t)cap;
    b->oom = 0;
    return b;
}

void buf_unref(struct buf *b)
{
    if (!b) return;
    assert(__atomic_load_n(&b->refs, __ATOMIC_RELAXED) > 0);
    /* acq_rel: the last owner sees every other thread's use finished. */
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) free(b);
}

/* Makes room for n more bytes; returns 0, or -1 with oom set. */
static int buf_reserve(struct buf **bp, size_t n)
{
    struct buf *b = *bp;
    if (!b) /* a failed buf_new(): writes are dropped, callers check NULL */
        return -1;
    assert(__atomic_load_n(&b->refs, __ATOMIC_RELAXED) == 1); /* shared: read-only */
    if (b->oom) return -1;
    if ((size_t)b->len + n <= b->cap) return 0;
    size_t cap = (size_t)b->cap * 2;
    while (cap < (size_t)b->len + n)
        cap *= 2;
    struct buf *nb = cap > UINT32_MAX / 2 ? NULL : realloc(b, sizeof(*b) + LWS_PRE + cap);
    if (!nb) {
        b->oom = 1;
        return -1;
    }
    nb->cap = (uint32_t)cap;
    *bp = nb;
    return 0;
}

void buf_put(struct buf **bp, const void *p, size_t n)
{
    if (buf_reserve(bp, n)) return;
    memcpy(BUF_PAYLOAD(*bp) + (*bp)->len, p, n);
    (*bp)->len += (uint32_t)n;
}

void buf_puts(struct buf **bp, const char *s)
{
    buf_put(bp, s, strlen(s));
}

void buf_put_i64(struct buf **bp, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    buf_put(bp, tmp, (size_t)n);
}

void buf_put_jstr(struct buf **bp, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX. */
    if (buf_reserve(bp, n * 6 + 2)) return;
    unsigned char *o = BUF_PAYLOAD(*bp) + (*bp)->len, *start = o;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = (unsigned char)hex[c >> 4];
            *o++ = (unsigned char)hex[c & 15];
        }
    }
    *o++ = '"';
    (*bp)->len += (uint32_t)(o - start);
}

void buf_put_jstrz(struct buf **bp, const char *s)
{
    buf_put_jstr(bp, s, strlen(s));
}

struct buf *buf_pair(const char *a, const char *b)
{
    size_t na = strlen(a) + 1, nb = strlen(b) + 1;
    struct buf *p = buf_new(na + nb);
    buf_put(&p, a, na);
    buf_put(&p, b, nb);
    if (p && p->oom) buf_unref(p), p = NULL;
    return p;
}
