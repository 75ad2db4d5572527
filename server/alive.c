/* alive.c -- pings for idle connections and the idle timeout (alive.h). */
#include "alive.h"

#include <string.h>

#include "log.h"
#include "session_impl.h"
#include "wire.h"

enum { ALIVE_NONE, ALIVE_QUIET, ALIVE_PINGED };

static struct session **head(struct server *srv, int list)
{
    return list == ALIVE_QUIET ? &srv->quiet_head : &srv->pinged_head;
}

static struct session **tail(struct server *srv, int list)
{
    return list == ALIVE_QUIET ? &srv->quiet_tail : &srv->pinged_tail;
}

static void unlink_alive(struct session *s)
{
    struct server *srv = s->srv;
    if (s->alive_list == ALIVE_NONE) return;
    if (s->alive_prev)
        s->alive_prev->alive_next = s->alive_next;
    else
        *head(srv, s->alive_list) = s->alive_next;
    if (s->alive_next)
        s->alive_next->alive_prev = s->alive_prev;
    else
        *tail(srv, s->alive_list) = s->alive_prev;
    s->alive_prev = s->alive_next = NULL;
    s->alive_list = ALIVE_NONE;
}

/* Appends s to `list`. Its order stays that of alive_us: a session enters
 * `quiet` stamped now, and `pinged` in the order it leaves `quiet`. */
static void append(struct session *s, int list)
{
    struct server *srv = s->srv;
    s->alive_prev = *tail(srv, list);
    s->alive_next = NULL;
    if (*tail(srv, list))
        (*tail(srv, list))->alive_next = s;
    else
        *head(srv, list) = s;
    *tail(srv, list) = s;
    s->alive_list = (unsigned)list;
}

void alive_add(struct session *s, int64_t now_us)
{
    s->alive_us = now_us;
    append(s, ALIVE_QUIET);
}

void alive_touch(struct session *s, int64_t now_us)
{
    if (!s || s->alive_list == ALIVE_NONE) return; /* closing: no longer watched */
    s->alive_us = now_us;
    if (s->alive_list == ALIVE_QUIET && !s->alive_next) return; /* already last */
    unlink_alive(s);
    append(s, ALIVE_QUIET);
}

void alive_remove(struct session *s)
{
    unlink_alive(s);
}

void alive_sweep(struct server *srv, int64_t now_us)
{
    int64_t ping_us = srv->cfg->ping_interval * 1000000;
    int64_t idle_us = srv->cfg->idle_timeout * 1000000;
    struct session *s;
    while ((s = srv->quiet_head) && s->alive_us + ping_us <= now_us) {
        unlink_alive(s);
        if (s->closed || s->close_code) continue; /* closing on its own timeout */
        /* Written on WRITEABLE, between whole frames of the queue (wire.c
         * writes frames whole, so a ping never lands inside one). */
        s->ping_due = 1;
        lws_callback_on_writable(s->wsi);
        append(s, ALIVE_PINGED);
    }
    while ((s = srv->pinged_head) && s->alive_us + idle_us <= now_us) {
        unlink_alive(s);
        if (s->closed || s->close_code) continue;
        plog(LOG_INFO, "idle-timeout", "user=%s silent_s=%lld", who(s),
             (long long)((now_us - s->alive_us) / 1000000));
        /* Whatever is queued would go to a peer that is not reading. */
        wire_close(s, 1001, "idle timeout", 1);
    }
}

int alive_on_writeable(struct session *s)
{
    /* FIN | ping, one byte of payload: libwebsockets 4.1 hands us a PONG
     * (LWS_CALLBACK_RECEIVE_PONG) only when it carries a payload; the
     * answer to an empty ping would never reach alive_touch(). */
    static const unsigned char ping[3] = {0x89, 0x01, 'p'};
    unsigned char f[LWS_PRE + sizeof ping];
    if (!s->ping_due || s->close_code) return 0;
    s->ping_due = 0;
    memcpy(f + LWS_PRE, ping, sizeof ping);
    return lws_write(s->wsi, f + LWS_PRE, sizeof ping, LWS_WRITE_RAW) < (int)sizeof ping
               ? -1
               : 0;
}
