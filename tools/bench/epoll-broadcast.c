/*
 * epoll-broadcast: a deliberately trivial single-threaded epoll WebSocket
 * broadcast server.  It is NOT a chat server: it exists to measure the load
 * generator's own ceiling and to give an upper bound for what one core can
 * push through loopback TCP.  It speaks only what parley-loadgen needs:
 *
 *   hello -> welcome, join -> joined (members list empty, no presence),
 *   send -> ack + message to every member of the room, ping -> pong.
 *
 * Fields are picked out of the JSON with string searches, not parsed.
 * Outgoing frames are appended to per-connection buffers and flushed once
 * per epoll iteration, so a busy connection gets many frames per write().
 * Listens on 127.0.0.1 only.
 *
 * usage: epoll-broadcast [--port 8092]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../loadgen/sha1.h"

#define MAX_OUT (64u << 20)
#define MAX_IN (1u << 20)

typedef struct {
    char *b;
    size_t len, off, cap;
} buf_t;

typedef struct conn {
    int fd;
    bool ws, dirty, epollout, dead;
    int room;       /* -1 = none */
    int room_pos;   /* index in the room's member array */
    unsigned user;
    char name[40];
    buf_t in, out;
} conn_t;

typedef struct {
    char name[72];
    int *members;
    int n, cap;
} room_t;

static conn_t **conns; /* by fd */
static int max_fds;
static room_t *rooms;
static int nrooms, roomcap;
static int *dirty;
static int ndirty;
static int epfd;
static uint64_t next_id = 1;
static unsigned next_user = 1;
static volatile sig_atomic_t stop;

static void buf_need(buf_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    if (b->off) {
        memmove(b->b, b->b + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + n <= b->cap)
            return;
    }
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + n)
        nc *= 2;
    b->b = realloc(b->b, nc);
    if (!b->b)
        abort();
    b->cap = nc;
}

static void mark_dirty(conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        dirty[ndirty++] = c->fd;
    }
}

/* append one unmasked text frame */
static void out_frame(conn_t *c, const char *p, size_t n)
{
    if (c->dead)
        return;
    if (c->out.len - c->out.off > MAX_OUT) {
        c->dead = true; /* slow consumer */
        mark_dirty(c);
        return;
    }
    buf_need(&c->out, n + 10);
    uint8_t *h = (uint8_t *)c->out.b + c->out.len;
    size_t hl;
    h[0] = 0x81;
    if (n < 126) {
        h[1] = (uint8_t)n;
        hl = 2;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    memcpy(h + hl, p, n);
    c->out.len += hl + n;
    mark_dirty(c);
}

static void conn_free(conn_t *c)
{
    if (c->room >= 0) {
        room_t *r = &rooms[c->room];
        int last = r->members[--r->n];
        r->members[c->room_pos] = last;
        conns[last]->room_pos = c->room_pos;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->in.b);
    free(c->out.b);
    free(c);
}

static void flush(conn_t *c)
{
    while (c->out.off < c->out.len) {
        ssize_t n = write(c->fd, c->out.b + c->out.off, c->out.len - c->out.off);
        if (n > 0) {
            c->out.off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            if (!c->epollout) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = c->fd};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->epollout = true;
            }
            return;
        } else {
            c->dead = true;
            return;
        }
    }
    c->out.off = c->out.len = 0;
    if (c->epollout) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->fd};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->epollout = false;
    }
}

/* value of "key":"...." (raw, still JSON-escaped); handles \" inside */
static bool field(const char *p, size_t n, const char *key, const char **v, size_t *vl)
{
    size_t kl = strlen(key);
    const char *q = memmem(p, n, key, kl);
    if (!q)
        return false;
    q += kl;
    const char *end = p + n, *s = q;
    while (q < end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= end)
        return false;
    *v = s;
    *vl = (size_t)(q - s);
    return true;
}

static int room_get(const char *name, size_t nl)
{
    for (int i = 0; i < nrooms; i++)
        if (strlen(rooms[i].name) == nl && !memcmp(rooms[i].name, name, nl))
            return i;
    if (nrooms == roomcap) {
        roomcap = roomcap ? roomcap * 2 : 64;
        rooms = realloc(rooms, (size_t)roomcap * sizeof *rooms);
        if (!rooms)
            abort();
    }
    room_t *r = &rooms[nrooms];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%.*s", (int)(nl < 64 ? nl : 64), name);
    return nrooms++;
}

static void on_text(conn_t *c, const char *p, size_t n)
{
    char buf[70000];
    const char *t, *v, *v2;
    size_t tl, vl, vl2;
    if (!field(p, n, "\"type\":\"", &t, &tl))
        return;
    if (tl == 5 && !memcmp(t, "hello", 5)) {
        if (!field(p, n, "\"name\":\"", &v, &vl))
            v = "?", vl = 1;
        snprintf(c->name, sizeof c->name, "%.*s", (int)(vl < 32 ? vl : 32), v);
        c->user = next_user++;
        int k = snprintf(buf, sizeof buf,
                         "{\"type\":\"welcome\",\"user\":{\"id\":\"g%u\",\"name\":\"%s\",\"guest\":true},"
                         "\"server\":\"epoll-broadcast/1\",\"limits\":{\"max_text\":4000,\"rate_per_s\":1000000,"
                         "\"burst\":1000000,\"history_page\":200}}",
                         c->user, c->name);
        out_frame(c, buf, (size_t)k);
    } else if (tl == 4 && !memcmp(t, "join", 4) && field(p, n, "\"room\":\"", &v, &vl) && vl <= 64) {
        int ri = room_get(v, vl);
        if (c->room != ri) {
            if (c->room >= 0) {
                room_t *o = &rooms[c->room];
                int last = o->members[--o->n];
                o->members[c->room_pos] = last;
                conns[last]->room_pos = c->room_pos;
            }
            room_t *r = &rooms[ri];
            if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 16;
                r->members = realloc(r->members, (size_t)r->cap * sizeof *r->members);
                if (!r->members)
                    abort();
            }
            c->room = ri;
            c->room_pos = r->n;
            r->members[r->n++] = c->fd;
        }
        int k = snprintf(buf, sizeof buf, "{\"type\":\"joined\",\"room\":\"%s\",\"members\":[],\"messages\":[],\"complete\":true}",
                         rooms[ri].name);
        out_frame(c, buf, (size_t)k);
    } else if (tl == 4 && !memcmp(t, "send", 4) && c->room >= 0 && field(p, n, "\"text\":\"", &v, &vl) &&
               field(p, n, "\"client_id\":\"", &v2, &vl2) && vl < 65000 && vl2 <= 64) {
        room_t *r = &rooms[c->room];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long ms = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
        unsigned long long id = next_id++;
        int k = snprintf(buf, sizeof buf, "{\"type\":\"ack\",\"room\":\"%s\",\"client_id\":\"%.*s\",\"id\":%llu,\"ts\":%llu}",
                         r->name, (int)vl2, v2, id, ms);
        out_frame(c, buf, (size_t)k);
        k = snprintf(buf, sizeof buf,
                     "{\"type\":\"message\",\"room\":\"%s\",\"id\":%llu,\"ts\":%llu,\"user\":{\"id\":\"g%u\",\"name\":\"%s\"},"
                     "\"text\":\"%.*s\",\"client_id\":\"%.*s\"}",
                     r->name, id, ms, c->user, c->name, (int)vl, v, (int)vl2, v2);
        for (int i = 0; i < r->n; i++)
            out_frame(conns[r->members[i]], buf, (size_t)k);
    } else if (tl == 4 && !memcmp(t, "ping", 4)) {
        out_frame(c, "{\"type\":\"pong\"}", 15);
    } else {
        static const char e[] = "{\"type\":\"error\",\"code\":\"unknown_type\",\"message\":\"not supported\"}";
        out_frame(c, e, sizeof e - 1);
    }
}

static void on_http(conn_t *c)
{
    char *e = memmem(c->in.b + c->in.off, c->in.len - c->in.off, "\r\n\r\n", 4);
    if (!e) {
        if (c->in.len - c->in.off > 16384)
            c->dead = true;
        return;
    }
    *e = 0;
    const char *k = strcasestr(c->in.b + c->in.off, "\r\nSec-WebSocket-Key:");
    if (!k) {
        static const char r[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        buf_need(&c->out, sizeof r);
        memcpy(c->out.b + c->out.len, r, sizeof r - 1);
        c->out.len += sizeof r - 1;
        mark_dirty(c);
        c->dead = true;
        return;
    }
    k += 20;
    while (*k == ' ')
        k++;
    size_t kl = strcspn(k, "\r\n ");
    char acc[29], resp[256];
    ws_accept_key(k, kl, acc);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    buf_need(&c->out, (size_t)n);
    memcpy(c->out.b + c->out.len, resp, (size_t)n);
    c->out.len += (size_t)n;
    mark_dirty(c);
    c->in.off = (size_t)(e - c->in.b) + 4;
    c->ws = true;
}

static void on_frames(conn_t *c)
{
    for (;;) {
        uint8_t *p = (uint8_t *)c->in.b + c->in.off;
        size_t avail = c->in.len - c->in.off;
        if (avail < 2)
            break;
        uint64_t pl = p[1] & 0x7f;
        size_t h = 2;
        if (pl == 126) {
            if (avail < 4)
                break;
            pl = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (pl == 127) {
            if (avail < 10)
                break;
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = pl << 8 | p[2 + i];
            h = 10;
        }
        if (!(p[1] & 0x80) || pl > MAX_IN) {
            c->dead = true;
            return;
        }
        if (avail < h + 4 + pl)
            break;
        uint8_t *key = p + h, *d = p + h + 4;
        for (uint64_t i = 0; i < pl; i++)
            d[i] ^= key[i & 3];
        int op = p[0] & 0x0f;
        c->in.off += h + 4 + pl;
        if (op == 1)
            on_text(c, (char *)d, pl);
        else if (op == 8) {
            c->dead = true;
            return;
        }
        /* ping, pong, binary, fragments: ignored (loadgen never sends them) */
    }
}

static void on_read(conn_t *c)
{
    buf_need(&c->in, 65536);
    ssize_t n = read(c->fd, c->in.b + c->in.len, c->in.cap - c->in.len - 1);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        c->dead = true;
        mark_dirty(c);
        return;
    }
    c->in.len += (size_t)n;
    c->in.b[c->in.len] = 0;
    if (!c->ws)
        on_http(c);
    if (c->ws && !c->dead)
        on_frames(c);
    if (c->in.off == c->in.len)
        c->in.off = c->in.len = 0;
    if (c->dead)
        mark_dirty(c);
}

static void on_sig(int s)
{
    (void)s;
    stop = 1;
}

int main(int argc, char **argv)
{
    int port = 8092;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: epoll-broadcast [--port N]\n");
            return 2;
        }
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    max_fds = (int)rl.rlim_cur;
    conns = calloc((size_t)max_fds, sizeof *conns);
    dirty = calloc((size_t)max_fds, sizeof *dirty);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) {
        perror("epoll-broadcast: bind/listen");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &ev);
    fprintf(stderr, "epoll-broadcast: listening on 127.0.0.1:%d\n", port);

    struct epoll_event evs[1024];
    while (!stop) {
        int n = epoll_wait(epfd, evs, 1024, 100);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                for (;;) {
                    int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0)
                        break;
                    if (cfd >= max_fds) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *c = calloc(1, sizeof *c);
                    if (!c)
                        abort();
                    c->fd = cfd;
                    c->room = -1;
                    conns[cfd] = c;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            conn_t *c = conns[fd];
            if (!c || c->dead)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_read(c);
            if ((evs[i].events & EPOLLOUT) && !c->dead)
                mark_dirty(c);
        }
        /* flush everything written during this iteration */
        for (int i = 0; i < ndirty; i++) {
            conn_t *c = conns[dirty[i]];
            if (!c)
                continue;
            c->dirty = false;
            if (!c->dead)
                flush(c);
            else if (c->out.len > c->out.off && c->ws == false)
                flush(c); /* the 400 answer */
            if (c->dead)
                conn_free(c);
        }
        ndirty = 0;
    }
    return 0;
}
