/* expiry.c -- closing connections whose token expired (expiry.h). The heap
 * holds session pointers; each session keeps its slot (index + 1, 0 when
 * out), so removal at CLOSED is O(log n) too. */
#include "expiry.h"

#include <stdlib.h>

#include "jwt.h"
#include "log.h"
#include "session_impl.h"
#include "wire.h"

/* A session's key: its token's exp (token sessions only are in the heap). */
#define EXP(s) ((s)->claims->exp)

static void put(struct server *srv, uint32_t i, struct session *s)
{
    srv->exp_heap[i] = s;
    s->exp_slot = i + 1;
}

static void sift_up(struct server *srv, uint32_t i)
{
    struct session *s = srv->exp_heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (EXP(srv->exp_heap[p]) <= EXP(s)) break;
        put(srv, i, srv->exp_heap[p]);
        i = p;
    }
    put(srv, i, s);
}

static void sift_down(struct server *srv, uint32_t i)
{
    struct session *s = srv->exp_heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= srv->nexp) break;
        if (c + 1 < srv->nexp && EXP(srv->exp_heap[c + 1]) < EXP(srv->exp_heap[c])) c++;
        if (EXP(s) <= EXP(srv->exp_heap[c])) break;
        put(srv, i, srv->exp_heap[c]);
        i = c;
    }
    put(srv, i, s);
}

int expiry_set(struct session *s)
{
    struct server *srv = s->srv;
    if (s->exp_slot) { /* a refresh: move it */
        sift_up(srv, s->exp_slot - 1);
        sift_down(srv, s->exp_slot - 1);
        return 0;
    }
    if (srv->nexp == srv->capexp) {
        uint32_t cap = srv->capexp ? srv->capexp * 2 : 64;
        struct session **h = realloc(srv->exp_heap, cap * sizeof(*h));
        if (!h) return -1;
        srv->exp_heap = h;
        srv->capexp = cap;
    }
    put(srv, srv->nexp++, s);
    sift_up(srv, srv->nexp - 1);
    return 0;
}

void expiry_remove(struct session *s)
{
    struct server *srv = s->srv;
    if (!s->exp_slot) return;
    uint32_t i = s->exp_slot - 1;
    s->exp_slot = 0;
    struct session *last = srv->exp_heap[--srv->nexp];
    if (last == s) return;
    put(srv, i, last);
    sift_up(srv, i);
    sift_down(srv, last->exp_slot - 1);
}

void expiry_sweep(struct server *srv, int64_t now)
{
    struct session *s;
    while (srv->nexp && EXP(s = srv->exp_heap[0]) <= now) {
        expiry_remove(s);
        if (s->closed || s->close_code) continue;
        plog(LOG_INFO, "token-expired", "user=%s exp=%lld", who(s), (long long)EXP(s));
        /* No ref: this answers no request of the client's. */
        wire_reply(s, proto_error(E_UNAUTHORIZED, "token expired", NULL));
        wire_close(s, 1008, "token expired", 0);
    }
}

void expiry_free(struct server *srv)
{
    free(srv->exp_heap);
    srv->exp_heap = NULL;
    srv->nexp = srv->capexp = 0;
}
