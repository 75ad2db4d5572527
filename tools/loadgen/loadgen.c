/*
 * parley-loadgen: a load generator for the Parley wire protocol.
 *
 * Single-threaded, epoll, hand-written minimal WebSocket client (RFC 6455):
 * HTTP upgrade with Sec-WebSocket-Accept check, masked client frames, server
 * frames with 7/16/64-bit lengths, continuation reassembly, ping/pong, close
 * frames and codes.  No per-message allocation on the hot path: one large
 * shared read buffer, per-connection buffers only for partial frames and for
 * unsent output.
 *
 * Scenario: N clients in R rooms (client i joins room "r<i % R>"), S of them
 * (spread over the rooms) send paced messages whose text starts with
 * "t=<CLOCK_MONOTONIC ns>;"; every client parses `message` frames cheaply and
 * records send->receipt latency in a log-linear histogram.
 *
 * Only loopback destinations are accepted.  Every run stops by itself.
 * See docs/benchmarks-howto.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define SHARED_RBUF (4u << 20)  /* one read buffer for all connections */
#define MAX_FRAME (64u << 20)   /* refuse server frames larger than this */
#define MAX_WBUF (8u << 20)     /* per-connection unsent bytes before skipping sends */
#define MAX_ROOMS 100000
#define MAX_ERR_CODES 32
#define MAX_CLOSE_CODES 32

/* ------------------------------------------------------------------ time */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- histogram */
/* Log-linear: values < 64 us exact, then 64 sub-buckets per power of two
 * (relative error <= 1.6%).  Values in microseconds. */

#define H_SUB_BITS 6
#define H_SUB (1u << H_SUB_BITS)
#define H_BUCKETS (H_SUB * 58)

typedef struct {
    uint64_t c[H_BUCKETS];
    uint64_t n, max, sum;
} hist_t;

static inline unsigned hist_index(uint64_t v)
{
    if (v < H_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - H_SUB_BITS;
    unsigned idx = ((shift + 1) << H_SUB_BITS) | (unsigned)((v >> shift) & (H_SUB - 1));
    return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

static inline uint64_t hist_value(unsigned idx) /* midpoint of bucket */
{
    if (idx < H_SUB)
        return idx;
    unsigned shift = (idx >> H_SUB_BITS) - 1;
    uint64_t lo = (uint64_t)(H_SUB | (idx & (H_SUB - 1))) << shift;
    return lo + ((1ull << shift) >> 1);
}

static inline void hist_add(hist_t *h, uint64_t us)
{
    h->c[hist_index(us)]++;
    h->n++;
    h->sum += us;
    if (us > h->max)
        h->max = us;
}

static uint64_t hist_pct(const hist_t *h, double p)
{
    if (!h->n)
        return 0;
    uint64_t target = (uint64_t)(p * (double)h->n + 0.999999);
    if (target < 1)
        target = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        cum += h->c[i];
        if (cum >= target) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

static void hist_reset(hist_t *h) { memset(h, 0, sizeof *h); }

#include "sha1.h"

/* ---------------------------------------------------------------- random */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* --------------------------------------------------------------- options */

static struct {
    char host[64];
    int port;
    char path[256];
    int clients, rooms, senders;
    double rate; /* total messages/s in; 0 = as fast as --window allows */
    int size;
    double duration, warmup, drain, setup_timeout, idle_wait, interval, settle;
    int server_pid;
    bool idle, json, capacity;
    int src_addrs;
    int window; /* max unacked per sender; 0 = unlimited (only with --rate > 0) */
    int connect_batch, max_pending;
    /* capacity */
    double step_seconds, step_factor, refine_factor, max_rate, p99_limit_ms;
    int max_steps;
    char label[64];
    char room_prefix[16]; /* rooms are <prefix><i % rooms> */
} opt = {
    .host = "127.0.0.1",
    .port = 8080,
    .path = "/ws",
    .clients = 100,
    .rooms = 1,
    .senders = 1,
    .rate = 10,
    .size = 100,
    .duration = 10,
    .warmup = 2,
    .drain = 5,
    .setup_timeout = 120,
    .idle_wait = 3,
    .settle = 30,
    .interval = 0,
    .server_pid = 0,
    .src_addrs = 8,
    .room_prefix = "r",
    .window = 0,
    .connect_batch = 200,
    .max_pending = 1000,
    .step_seconds = 3,
    .step_factor = 1.25,
    .max_rate = 1e7,
    .p99_limit_ms = 100,
    .max_steps = 40,
};

/* ------------------------------------------------------------ connection */

enum { C_FREE, C_CONNECTING, C_UPGRADING, C_HELLO, C_JOINING, C_READY, C_CLOSED };

typedef struct conn {
    int fd;
    uint8_t state;
    bool sender;
    bool epollout;
    bool close_sent;
    uint8_t fragop;
    int idx, room;
    uint32_t inflight;
    uint64_t seq;
    uint64_t received; /* `message` deliveries, duplicates excluded */
    int64_t last_id;
    char *rbuf; /* partial frame carried between reads */
    uint32_t rlen, rcap;
    char *wbuf; /* unsent output */
    uint32_t wlen, woff, wcap;
    char *frag; /* continuation reassembly (rare) */
    uint32_t fraglen, fragcap;
    char key[25];
} conn_t;

static conn_t *conns;
static int epfd;
static char *shared_rbuf;
static int *sender_idx; /* indices of sender connections */
static int nsenders;
static uint64_t *room_acked;
static int *room_members;
static struct sockaddr_in dst;

/* phases */
enum { P_SETUP, P_SETTLE, P_RUN, P_DRAIN, P_IDLE_WAIT, P_DONE };
static int phase = P_SETUP;
static uint64_t t_start, t_setup_done, t_send_start, t_measure_start, t_measure_end, t_drain_end, t_idle_end;
static uint64_t hard_deadline, last_frame_ns, settle_deadline;
static bool sending;
static bool measure_started;
static int pending; /* connections between connect() and `joined` */
static volatile sig_atomic_t interrupted;

/* counters */
static struct {
    uint64_t connect_started, connect_failed, upgrade_failed, setup_failed, ready;
    uint64_t sent, acked, send_errors, skipped_backlog, skipped_window;
    uint64_t deliveries, deliveries_window, duplicates, no_timestamp;
    uint64_t closed_by_server, dropped, closed_during_run;
    uint64_t other_frames, bytes_in, bytes_out, reads, frames;
    uint64_t http_status[6]; /* by first digit */
} st;

static hist_t lat_hist, ack_hist, ivl_hist;
static char steps_json[8192]; /* capacity steps: [rate, deliveries/s, p99 us, missing, server cpu %, loadgen cpu %, pass] */
static size_t steps_json_len;
static uint64_t max_stall_ns; /* longest gap between two loop iterations while measuring */

static struct {
    char code[32];
    uint64_t n;
} err_codes[MAX_ERR_CODES];
static int n_err_codes;

static struct {
    int code;
    uint64_t n;
} close_codes[MAX_CLOSE_CODES];
static int n_close_codes;

static void count_error(const char *code, size_t len)
{
    if (len >= sizeof err_codes[0].code)
        len = sizeof err_codes[0].code - 1;
    for (int i = 0; i < n_err_codes; i++)
        if (strlen(err_codes[i].code) == len && !memcmp(err_codes[i].code, code, len)) {
            err_codes[i].n++;
            return;
        }
    if (n_err_codes < MAX_ERR_CODES) {
        memcpy(err_codes[n_err_codes].code, code, len);
        err_codes[n_err_codes].code[len] = 0;
        err_codes[n_err_codes++].n = 1;
    }
}

static void count_close(int code)
{
    for (int i = 0; i < n_close_codes; i++)
        if (close_codes[i].code == code) {
            close_codes[i].n++;
            return;
        }
    if (n_close_codes < MAX_CLOSE_CODES) {
        close_codes[n_close_codes].code = code;
        close_codes[n_close_codes++].n = 1;
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "parley-loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        die("out of memory");
    return p;
}

/* ------------------------------------------------------------ /proc/PID */

typedef struct {
    long rss_kb;
    double cpu_s;
    double all_busy_s; /* every CPU's non-idle time, from /proc/stat */
    bool ok;
} proc_stat_t;

static double all_cpus_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return 0;
    /* user nice system [idle] [iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static proc_stat_t read_proc(int pid)
{
    proc_stat_t r = {0, 0, all_cpus_busy_s(), false};
    if (pid <= 0)
        return r;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return r;
    while (fgets(buf, sizeof buf, f))
        if (!strncmp(buf, "VmRSS:", 6))
            r.rss_kb = strtol(buf + 6, NULL, 10);
    fclose(f);
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return r;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    if (!p)
        return r;
    p += 2;
    /* fields after comm: state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    unsigned long ut = 0, stt = 0;
    if (sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) == 2) {
        r.cpu_s = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
        r.ok = true;
    }
    return r;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------- output */

static void conn_close(conn_t *c, bool by_error);

static void epoll_mod(conn_t *c, bool want_out)
{
    if (c->epollout == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u32 = (uint32_t)c->idx};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->epollout = want_out;
}

/* Queue or write bytes; returns false if the connection died. */
static bool conn_write(conn_t *c, const void *data, size_t len)
{
    if (c->fd < 0)
        return false;
    size_t off = 0;
    if (c->wlen == c->woff) {
        c->wlen = c->woff = 0;
        while (off < len) {
            ssize_t n = write(c->fd, (const char *)data + off, len - off);
            if (n > 0) {
                off += (size_t)n;
                st.bytes_out += (uint64_t)n;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            } else {
                st.dropped++;
                conn_close(c, true);
                return false;
            }
        }
        if (off == len)
            return true;
    }
    size_t rest = len - off;
    if (c->woff > 0 && c->woff == c->wlen)
        c->woff = c->wlen = 0;
    if (c->wlen + rest > c->wcap) {
        if (c->woff > 0) {
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        if (c->wlen + rest > c->wcap) {
            size_t nc = c->wcap ? c->wcap : 4096;
            while (nc < c->wlen + rest)
                nc *= 2;
            c->wbuf = xrealloc(c->wbuf, nc);
            c->wcap = (uint32_t)nc;
        }
    }
    memcpy(c->wbuf + c->wlen, (const char *)data + off, rest);
    c->wlen += (uint32_t)rest;
    epoll_mod(c, true);
    return true;
}

static void conn_flush(conn_t *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0) {
            c->woff += (uint32_t)n;
            st.bytes_out += (uint64_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            st.dropped++;
            conn_close(c, true);
            return;
        }
    }
    c->woff = c->wlen = 0;
    epoll_mod(c, false);
}

/* Build a masked client frame into out (must have len + 14 bytes). */
static size_t ws_frame(uint8_t *out, int op, const void *payload, size_t len)
{
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | op);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t k = (uint32_t)rng();
    uint8_t key[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)(k >> 16), (uint8_t)(k >> 24)};
    memcpy(out + h, key, 4);
    h += 4;
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[h + i] = p[i] ^ key[i & 3];
    return h + len;
}

static bool send_text(conn_t *c, const char *json, size_t len)
{
    uint8_t stackbuf[2048];
    uint8_t *buf = len + 14 <= sizeof stackbuf ? stackbuf : malloc(len + 14);
    if (!buf)
        die("out of memory");
    size_t n = ws_frame(buf, 1, json, len);
    bool ok = conn_write(c, buf, n);
    if (buf != stackbuf)
        free(buf);
    return ok;
}

static void send_close(conn_t *c, int code)
{
    if (c->close_sent || c->fd < 0 || c->wlen > c->woff)
        return; /* never interleave with a partly written frame */
    uint8_t pl[2] = {(uint8_t)(code >> 8), (uint8_t)code}, buf[16];
    size_t n = ws_frame(buf, 8, pl, 2);
    c->close_sent = true;
    /* best effort, no queueing */
    if (write(c->fd, buf, n) < 0) {
    }
}

/* ------------------------------------------------------------- lifecycle */

static int ready_alive(void);

static void conn_close(conn_t *c, bool by_error)
{
    if (c->fd < 0)
        return;
    if (c->state == C_READY) {
        room_members[c->room]--;
        if (phase != P_DONE)
            st.closed_during_run++;
    } else if (c->state >= C_CONNECTING && c->state <= C_JOINING) {
        pending--;
        if (phase == P_SETUP)
            st.setup_failed++;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = C_CLOSED;
    free(c->rbuf);
    free(c->wbuf);
    free(c->frag);
    c->rbuf = c->wbuf = c->frag = NULL;
    c->rlen = c->rcap = c->wlen = c->woff = c->wcap = c->fraglen = c->fragcap = 0;
    (void)by_error;
}

static uint32_t src_base;

static void conn_start(conn_t *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    st.connect_started++;
    if (fd < 0) {
        st.connect_failed++;
        count_error(errno == EMFILE ? "local:EMFILE" : "local:socket", strlen(errno == EMFILE ? "local:EMFILE" : "local:socket"));
        c->state = C_CLOSED;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.src_addrs > 1) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
        src.sin_addr.s_addr = htonl(src_base + (uint32_t)(c->idx % opt.src_addrs));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            count_error("local:bind", 10);
            st.connect_failed++;
            close(fd);
            c->state = C_CLOSED;
            return;
        }
    }
    int r = connect(fd, (struct sockaddr *)&dst, sizeof dst);
    if (r < 0 && errno != EINPROGRESS) {
        char e[48];
        snprintf(e, sizeof e, "local:connect:%s", strerror(errno));
        count_error(e, strlen(e));
        st.connect_failed++;
        close(fd);
        c->state = C_CLOSED;
        return;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    pending++;
    c->epollout = true;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)c->idx};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void send_upgrade(conn_t *c)
{
    uint8_t rnd[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rng();
        memcpy(rnd + i, &r, 8);
    }
    base64(rnd, 16, c->key);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     "User-Agent: parley-loadgen\r\n\r\n",
                     opt.path, opt.host, opt.port, c->key);
    c->state = C_UPGRADING;
    conn_write(c, req, (size_t)n);
}

static void send_hello(conn_t *c)
{
    char m[128];
    int n = snprintf(m, sizeof m, "{\"type\":\"hello\",\"name\":\"lg%d\",\"client\":\"parley-loadgen\"}", c->idx);
    c->state = C_HELLO;
    send_text(c, m, (size_t)n);
}

static void send_join(conn_t *c)
{
    char m[128];
    int n = snprintf(m, sizeof m, "{\"type\":\"join\",\"room\":\"%s%d\"}", opt.room_prefix, c->room);
    c->state = C_JOINING;
    send_text(c, m, (size_t)n);
}

static char pad[70000];

static void send_message(conn_t *c, uint64_t now)
{
    if (c->wlen - c->woff > MAX_WBUF) {
        st.skipped_backlog++;
        return;
    }
    char buf[70100];
    char text[32];
    int tl = snprintf(text, sizeof text, "t=%" PRIu64 ";", now);
    int size = opt.size > tl ? opt.size : tl;
    int n = snprintf(buf, sizeof buf, "{\"type\":\"send\",\"room\":\"%s%d\",\"client_id\":\"L%" PRIu64 "-%d-%" PRIu64 "\",\"text\":\"%s%.*s\"}",
                     opt.room_prefix, c->room, now, c->idx, c->seq++, text, size - tl, pad);
    c->inflight++;
    st.sent++;
    send_text(c, buf, (size_t)n);
}

/* ------------------------------------------------------------- input side */

static inline uint64_t parse_u64(const char *p, const char *end, bool *ok)
{
    uint64_t v = 0;
    const char *s = p;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    *ok = p > s;
    return v;
}

/* first `"key":` followed by a digit */
static bool find_num(const char *p, size_t n, const char *key, size_t klen, uint64_t *out)
{
    const char *end = p + n;
    while (p < end) {
        const char *q = memmem(p, (size_t)(end - p), key, klen);
        if (!q)
            return false;
        q += klen;
        if (q < end && *q >= '0' && *q <= '9') {
            bool ok;
            *out = parse_u64(q, end, &ok);
            return ok;
        }
        p = q;
    }
    return false;
}

static bool str_field(const char *p, size_t n, const char *key, size_t klen, const char **v, size_t *vl)
{
    const char *end = p + n;
    const char *q = memmem(p, n, key, klen);
    if (!q)
        return false;
    q += klen;
    const char *e = memchr(q, '"', (size_t)(end - q));
    if (!e)
        return false;
    *v = q;
    *vl = (size_t)(e - q);
    return true;
}

static void maybe_send_more(conn_t *c, uint64_t now);

static void on_text(conn_t *c, const char *p, size_t n, uint64_t now)
{
    const char *t;
    size_t tl;
    if (n > 9 && !memcmp(p, "{\"type\":\"", 9)) {
        t = p + 9;
        const char *e = memchr(t, '"', n - 9);
        if (!e) {
            st.other_frames++;
            return;
        }
        tl = (size_t)(e - t);
    } else if (!str_field(p, n, "\"type\":\"", 8, &t, &tl)) {
        st.other_frames++;
        return;
    }
#define IS(s) (tl == sizeof(s) - 1 && !memcmp(t, s, sizeof(s) - 1))
    if (IS("message")) {
        uint64_t id;
        if (find_num(p, n, "\"id\":", 5, &id)) {
            if ((int64_t)id <= c->last_id) {
                st.duplicates++;
                return;
            }
            c->last_id = (int64_t)id;
        }
        c->received++;
        st.deliveries++;
        if (now >= t_measure_start && now < t_measure_end && t_measure_start)
            st.deliveries_window++;
        const char *q = memmem(p, n, "\"text\":\"t=", 10);
        if (q) {
            bool ok;
            uint64_t ts = parse_u64(q + 10, p + n, &ok);
            if (ok && ts <= now) {
                uint64_t us = (now - ts) / 1000;
                hist_add(&ivl_hist, us);
                if (ts >= t_measure_start && ts < t_measure_end && t_measure_start)
                    hist_add(&lat_hist, us);
            }
        } else {
            st.no_timestamp++;
        }
    } else if (IS("ack")) {
        if (c->inflight)
            c->inflight--;
        st.acked++;
        room_acked[c->room]++;
        const char *q = memmem(p, n, "\"client_id\":\"L", 14);
        if (q) {
            bool ok;
            uint64_t ts = parse_u64(q + 14, p + n, &ok);
            if (ok && ts <= now && ts >= t_measure_start && ts < t_measure_end && t_measure_start)
                hist_add(&ack_hist, (now - ts) / 1000);
        }
        maybe_send_more(c, now);
    } else if (IS("welcome")) {
        if (c->state == C_HELLO)
            send_join(c);
    } else if (IS("joined")) {
        if (c->state == C_JOINING) {
            c->state = C_READY;
            pending--;
            st.ready++;
            room_members[c->room]++;
        }
    } else if (IS("error")) {
        const char *code;
        size_t cl;
        if (str_field(p, n, "\"code\":\"", 8, &code, &cl))
            count_error(code, cl);
        else
            count_error("?", 1);
        if (c->state == C_READY && c->sender && phase != P_SETUP) {
            st.send_errors++;
            if (c->inflight)
                c->inflight--;
            maybe_send_more(c, now);
        } else if (c->state == C_HELLO || c->state == C_JOINING) {
            send_close(c, 1000);
            conn_close(c, true);
        }
    } else {
        st.other_frames++;
    }
#undef IS
}

/* returns false if the connection was closed */
static bool on_frame(conn_t *c, int fin, int op, char *p, size_t n, uint64_t now)
{
    st.frames++;
    last_frame_ns = now;
    switch (op) {
    case 0x1:
        if (fin) {
            on_text(c, p, n, now);
            return c->fd >= 0;
        }
        c->fraglen = 0;
        c->fragop = 1;
        /* fall through */
    case 0x0:
        if (c->fragop != 1)
            return true; /* continuation of something we ignore */
        if (c->fraglen + n > MAX_FRAME) {
            count_error("local:message_too_big", 21);
            conn_close(c, true);
            return false;
        }
        if (c->fraglen + n > c->fragcap) {
            size_t nc = c->fragcap ? c->fragcap : 65536;
            while (nc < c->fraglen + n)
                nc *= 2;
            c->frag = xrealloc(c->frag, nc);
            c->fragcap = (uint32_t)nc;
        }
        memcpy(c->frag + c->fraglen, p, n);
        c->fraglen += (uint32_t)n;
        if (fin) {
            c->fragop = 0;
            on_text(c, c->frag, c->fraglen, now);
            c->fraglen = 0;
        }
        return c->fd >= 0;
    case 0x2:
        count_error("local:binary_frame", 18);
        c->fragop = fin ? 0 : 2;
        return true;
    case 0x8: {
        int code = n >= 2 ? ((uint8_t)p[0] << 8 | (uint8_t)p[1]) : 1005;
        count_close(code);
        st.closed_by_server++;
        send_close(c, code == 1005 ? 1000 : code);
        conn_close(c, false);
        return false;
    }
    case 0x9: {
        uint8_t buf[160];
        if (n <= 125) {
            size_t m = ws_frame(buf, 0xA, p, n);
            conn_write(c, buf, m);
        }
        return c->fd >= 0;
    }
    default:
        return true;
    }
}

/* Parse frames in buf[0..len); returns bytes consumed, or -1 if closed. */
static ssize_t parse_frames(conn_t *c, char *buf, size_t len, uint64_t now)
{
    size_t off = 0;
    while (len - off >= 2) {
        uint8_t b0 = (uint8_t)buf[off], b1 = (uint8_t)buf[off + 1];
        size_t h = 2;
        uint64_t pl = b1 & 0x7f;
        if (pl == 126) {
            if (len - off < 4)
                break;
            pl = (uint64_t)(uint8_t)buf[off + 2] << 8 | (uint8_t)buf[off + 3];
            h = 4;
        } else if (pl == 127) {
            if (len - off < 10)
                break;
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = pl << 8 | (uint8_t)buf[off + 2 + i];
            h = 10;
        }
        if (pl > MAX_FRAME) {
            count_error("local:frame_too_big", 19);
            conn_close(c, true);
            return -1;
        }
        bool masked = b1 & 0x80;
        if (masked)
            h += 4;
        if (len - off < h + pl)
            break;
        char *payload = buf + off + h;
        if (masked) { /* servers must not mask; unmask anyway */
            uint8_t *k = (uint8_t *)buf + off + h - 4;
            for (uint64_t i = 0; i < pl; i++)
                payload[i] ^= (char)k[i & 3];
        }
        off += h + pl;
        if (!on_frame(c, b0 & 0x80, b0 & 0x0f, payload, pl, now))
            return -1;
    }
    return (ssize_t)off;
}

static bool check_upgrade(conn_t *c, char *buf, size_t hlen)
{
    int status = 0;
    if (hlen < 12 || sscanf(buf, "HTTP/1.%*c %d", &status) != 1) {
        count_error("http:bad_response", 17);
        return false;
    }
    if (status != 101) {
        char e[32];
        snprintf(e, sizeof e, "http:%d", status);
        count_error(e, strlen(e));
        if (status >= 100 && status < 600)
            st.http_status[status / 100]++;
        return false;
    }
    /* verify Sec-WebSocket-Accept */
    char want[29];
    ws_accept_key(c->key, strlen(c->key), want);
    char save = buf[hlen];
    buf[hlen] = 0;
    const char *a = strcasestr(buf, "\r\nSec-WebSocket-Accept:");
    bool ok = false;
    if (a) {
        a += 23;
        while (*a == ' ' || *a == '\t')
            a++;
        ok = !strncmp(a, want, strlen(want));
    }
    buf[hlen] = save;
    if (!ok)
        count_error("http:bad_accept", 15);
    return ok;
}

static void on_readable(conn_t *c)
{
    char *buf;
    size_t off, cap;
    bool own = false;
    if (c->rlen == 0) {
        buf = shared_rbuf;
        off = 0;
        cap = SHARED_RBUF;
    } else if (c->rlen <= SHARED_RBUF / 4) {
        memcpy(shared_rbuf, c->rbuf, c->rlen);
        buf = shared_rbuf;
        off = c->rlen;
        cap = SHARED_RBUF;
    } else {
        if (c->rcap < c->rlen + 262144) {
            c->rcap = c->rlen * 2 + 262144;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        buf = c->rbuf;
        off = c->rlen;
        cap = c->rcap;
        own = true;
    }
    ssize_t n = read(c->fd, buf + off, cap - off - 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (c->state == C_READY || c->state == C_HELLO || c->state == C_JOINING)
            st.dropped++;
        else if (c->state == C_UPGRADING)
            count_error("http:eof", 8);
        conn_close(c, true);
        return;
    }
    uint64_t now = now_ns();
    st.reads++;
    st.bytes_in += (uint64_t)n;
    size_t len = off + (size_t)n;
    size_t pos = 0;
    if (c->state == C_UPGRADING) {
        buf[len] = 0;
        char *e = memmem(buf, len, "\r\n\r\n", 4);
        if (!e) {
            if (len > 16384) {
                count_error("http:huge_header", 16);
                conn_close(c, true);
                return;
            }
            goto keep;
        }
        size_t hlen = (size_t)(e - buf) + 4;
        if (!check_upgrade(c, buf, hlen)) {
            st.upgrade_failed++;
            conn_close(c, true);
            return;
        }
        pos = hlen;
        send_hello(c);
        if (c->fd < 0)
            return;
    }
    {
        ssize_t used = parse_frames(c, buf + pos, len - pos, now);
        if (used < 0)
            return;
        pos += (size_t)used;
    }
keep:
    /* keep the unparsed tail */
    {
        size_t rest = len - pos;
        if (own) {
            if (pos)
                memmove(c->rbuf, c->rbuf + pos, rest);
            c->rlen = (uint32_t)rest;
        } else {
            if (rest > c->rcap) {
                size_t nc = c->rcap ? c->rcap : 1024;
                while (nc < rest)
                    nc *= 2;
                c->rbuf = xrealloc(c->rbuf, nc);
                c->rcap = (uint32_t)nc;
            }
            if (rest)
                memcpy(c->rbuf, buf + pos, rest);
            c->rlen = (uint32_t)rest;
        }
    }
}

static void on_event(conn_t *c, uint32_t ev)
{
    if (c->fd < 0)
        return;
    if (c->state == C_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t l = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err) {
                char e[48];
                snprintf(e, sizeof e, "local:connect:%s", strerror(err));
                count_error(e, strlen(e));
                st.connect_failed++;
                c->state = C_CLOSED; /* not counted as setup_failed */
                pending--;
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                return;
            }
            c->epollout = true;
            epoll_mod(c, false);
            send_upgrade(c);
        }
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(c);
        if (c->fd < 0)
            return;
    }
    if (ev & EPOLLOUT)
        conn_flush(c);
}

/* ------------------------------------------------------------- scheduling */

static uint64_t due_base;   /* messages sent before the current rate segment */
static uint64_t rate_start; /* when the current rate segment started */
static uint64_t issued;     /* send slots consumed in this segment */
static int rr_sender;

static void maybe_send_more(conn_t *c, uint64_t now)
{
    /* closed-loop (window) mode: refill on each ack or error */
    if (!sending || opt.rate > 0 || !c->sender || c->state != C_READY)
        return;
    while (c->inflight < (uint32_t)opt.window && c->fd >= 0 && c->wlen - c->woff <= MAX_WBUF)
        send_message(c, now);
}

static void pump_senders(uint64_t now)
{
    if (!sending || nsenders == 0)
        return;
    if (opt.rate <= 0) {
        for (int i = 0; i < nsenders; i++)
            maybe_send_more(&conns[sender_idx[i]], now);
        return;
    }
    uint64_t until = now < t_measure_end ? now : t_measure_end; /* a stalled loop must not overshoot */
    uint64_t due = until > rate_start ? (uint64_t)((double)(until - rate_start) * opt.rate / 1e9) : 0;
    while (issued < due) {
        conn_t *c = NULL;
        for (int k = 0; k < nsenders; k++) {
            conn_t *cand = &conns[sender_idx[rr_sender]];
            rr_sender = (rr_sender + 1) % nsenders;
            if (cand->state == C_READY && cand->fd >= 0) {
                c = cand;
                break;
            }
        }
        issued++;
        if (!c)
            break;
        if (opt.window > 0 && c->inflight >= (uint32_t)opt.window) {
            st.skipped_window++;
            continue;
        }
        send_message(c, now);
    }
    (void)due_base;
}

static void set_rate_segment(uint64_t now)
{
    rate_start = now;
    issued = 0;
}

static int ready_alive(void)
{
    int n = 0;
    for (int i = 0; i < opt.clients; i++)
        if (conns[i].state == C_READY)
            n++;
    return n;
}

/* expected - received over connections still open */
static void missing_now(uint64_t *expected, uint64_t *received, uint64_t *missing)
{
    uint64_t e = 0, r = 0, m = 0;
    for (int i = 0; i < opt.clients; i++) {
        conn_t *c = &conns[i];
        if (c->state != C_READY)
            continue;
        uint64_t want = room_acked[c->room];
        e += want;
        r += c->received;
        if (want > c->received)
            m += want - c->received;
    }
    *expected = e;
    *received = r;
    *missing = m;
}

static uint64_t unresolved(void)
{
    uint64_t r = 0;
    for (int i = 0; i < nsenders; i++) {
        conn_t *c = &conns[sender_idx[i]];
        if (c->state == C_READY)
            r += c->inflight;
    }
    return r;
}

/* ---------------------------------------------------------------- report */

static proc_stat_t srv_before, srv_after, srv_baseline;
static double self_before, self_after;

static void fmt_codes(char *out, size_t cap, bool json)
{
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < n_close_codes && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, json ? "%s\"%d\":%" PRIu64 : "%s%d x%" PRIu64, i ? (json ? "," : ", ") : "",
                              close_codes[i].code, close_codes[i].n);
}

static void fmt_errs(char *out, size_t cap, bool json)
{
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < n_err_codes && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, json ? "%s\"%s\":%" PRIu64 : "%s%s x%" PRIu64, i ? (json ? "," : ", ") : "",
                              err_codes[i].code, err_codes[i].n);
}

static void report_idle(uint64_t now)
{
    proc_stat_t s = read_proc(opt.server_pid);
    int alive = ready_alive();
    double per_conn = (alive > 0 && s.ok && srv_baseline.ok)
                          ? (double)(s.rss_kb - srv_baseline.rss_kb) * 1024.0 / alive
                          : 0;
    char errs[1024], closes[512];
    fmt_errs(errs, sizeof errs, opt.json);
    fmt_codes(closes, sizeof closes, opt.json);
    double setup_s = (double)(t_setup_done - t_start) / 1e9;
    if (opt.json) {
        printf("{\"mode\":\"idle\",\"label\":\"%s\",\"clients\":%d,\"rooms\":%d,\"connected\":%d,"
               "\"connect_failed\":%" PRIu64 ",\"setup_failed\":%" PRIu64 ",\"setup_s\":%.3f,"
               "\"server_rss_baseline_kb\":%ld,\"server_rss_kb\":%ld,\"rss_per_conn_bytes\":%.0f,"
               "\"errors\":{%s},\"close_codes\":{%s}}\n",
               opt.label, opt.clients, opt.rooms, alive, st.connect_failed, st.setup_failed, setup_s,
               srv_baseline.rss_kb, s.rss_kb, per_conn, errs, closes);
    } else {
        printf("idle: %d/%d connections ready in %.2f s (connect failures %" PRIu64 ", setup failures %" PRIu64 ")\n",
               alive, opt.clients, setup_s, st.connect_failed, st.setup_failed);
        if (opt.server_pid)
            printf("server RSS: baseline %.1f MiB, with connections %.1f MiB -> %.0f bytes (%.2f KiB) per connection\n",
                   srv_baseline.rss_kb / 1024.0, s.rss_kb / 1024.0, per_conn, per_conn / 1024.0);
        if (n_err_codes)
            printf("errors: %s\n", errs);
        if (n_close_codes)
            printf("close codes: %s\n", closes);
    }
    (void)now;
}

static void report_run(void)
{
    uint64_t exp, rec, miss;
    missing_now(&exp, &rec, &miss);
    double dur = (double)(t_measure_end - t_measure_start) / 1e9;
    double dps = dur > 0 ? st.deliveries_window / dur : 0;
    double srv_cpu = srv_after.ok && srv_before.ok ? srv_after.cpu_s - srv_before.cpu_s : 0;
    double self_cpu = self_after - self_before;
    double other_cpu = srv_after.all_busy_s - srv_before.all_busy_s - srv_cpu - self_cpu;
    double acks_s = 0;
    char errs[1024], closes[512];
    fmt_errs(errs, sizeof errs, opt.json);
    fmt_codes(closes, sizeof closes, opt.json);
    acks_s = dur > 0 ? (double)ack_hist.n / dur : 0;
    uint64_t unres = unresolved();
    int alive = ready_alive();
    if (opt.json) {
        printf("{\"mode\":\"run\",\"label\":\"%s\",\"clients\":%d,\"rooms\":%d,\"senders\":%d,\"rate\":%.1f,\"window\":%d,"
               "\"size\":%d,\"duration_s\":%.3f,\"connected\":%d,\"connect_failed\":%" PRIu64 ","
               "\"setup_s\":%.3f,\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"send_errors\":%" PRIu64 ","
               "\"unacked\":%" PRIu64 ",\"skipped_backlog\":%" PRIu64 ",\"skipped_window\":%" PRIu64 ","
               "\"acks_per_s\":%.1f,\"deliveries\":%" PRIu64 ",\"deliveries_per_s\":%.1f,"
               "\"expected\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"duplicates\":%" PRIu64 ","
               "\"lat_us\":{\"n\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64
               ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "},"
               "\"ack_us\":{\"n\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"max\":%" PRIu64 "},"
               "\"closed_during_run\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"errors\":{%s},\"close_codes\":{%s},"
               "\"server_rss_kb\":%ld,\"server_cpu_s\":%.3f,\"server_cpu_pct\":%.1f,\"loadgen_cpu_pct\":%.1f,"
               "\"loadgen_max_stall_ms\":%.1f,\"other_cpu_pct\":%.1f}\n",
               opt.label, opt.clients, opt.rooms, nsenders, opt.rate, opt.window, opt.size, dur, alive,
               st.connect_failed, (double)(t_setup_done - t_start) / 1e9, st.sent, st.acked, st.send_errors, unres,
               st.skipped_backlog, st.skipped_window, acks_s, st.deliveries, dps, exp, miss, st.duplicates,
               lat_hist.n, hist_pct(&lat_hist, .5), hist_pct(&lat_hist, .9), hist_pct(&lat_hist, .99),
               hist_pct(&lat_hist, .999), lat_hist.max, ack_hist.n, hist_pct(&ack_hist, .5),
               hist_pct(&ack_hist, .99), ack_hist.max, st.closed_during_run, st.dropped, errs, closes,
               srv_after.rss_kb, srv_cpu, dur > 0 ? 100 * srv_cpu / dur : 0, dur > 0 ? 100 * self_cpu / dur : 0,
               max_stall_ns / 1e6, dur > 0 ? 100 * other_cpu / dur : 0);
        return;
    }
    printf("clients %d (ready %d, connect failures %" PRIu64 ", setup %.2f s), rooms %d, senders %d, rate %s%.0f/s, window %d, size %d\n",
           opt.clients, alive, st.connect_failed, (double)(t_setup_done - t_start) / 1e9, opt.rooms, nsenders,
           opt.rate > 0 ? "" : "unlimited ", opt.rate, opt.window, opt.size);
    printf("sent %" PRIu64 ", acked %" PRIu64 ", send errors %" PRIu64 ", unacked %" PRIu64 ", skipped (local backlog) %" PRIu64
           ", skipped (window) %" PRIu64 "\n",
           st.sent, st.acked, st.send_errors, unres, st.skipped_backlog, st.skipped_window);
    printf("measured %.2f s: %.0f deliveries/s, %.0f acks/s (sent in window)\n", dur, dps, acks_s);
    printf("latency send->receipt (us): n=%" PRIu64 " p50=%" PRIu64 " p90=%" PRIu64 " p99=%" PRIu64 " p99.9=%" PRIu64
           " max=%" PRIu64 "\n",
           lat_hist.n, hist_pct(&lat_hist, .5), hist_pct(&lat_hist, .9), hist_pct(&lat_hist, .99),
           hist_pct(&lat_hist, .999), lat_hist.max);
    printf("latency send->ack (us):     n=%" PRIu64 " p50=%" PRIu64 " p99=%" PRIu64 " max=%" PRIu64 "\n", ack_hist.n,
           hist_pct(&ack_hist, .5), hist_pct(&ack_hist, .99), ack_hist.max);
    printf("deliveries %" PRIu64 ", expected %" PRIu64 " (acked x members, open connections), missing %" PRIu64
           ", duplicates %" PRIu64 "\n",
           st.deliveries, exp, miss, st.duplicates);
    printf("connections closed after joining %" PRIu64 ", dropped without close frame %" PRIu64 "\n", st.closed_during_run,
           st.dropped);
    printf("errors: %s\nclose codes: %s\n", n_err_codes ? errs : "none", n_close_codes ? closes : "none");
    if (opt.server_pid)
        printf("server: RSS %.1f MiB, CPU %.2f s over %.2f s (%.0f%%)\n", srv_after.rss_kb / 1024.0, srv_cpu, dur,
               dur > 0 ? 100 * srv_cpu / dur : 0);
    printf("other processes: %.0f%% of a CPU (everything that was neither the server nor the load generator)\n",
           dur > 0 ? 100 * other_cpu / dur : 0);
    printf("loadgen: CPU %.0f%% during measurement, longest loop stall %.1f ms, %" PRIu64 " reads, %.1f MB in, %.1f MB out\n",
           dur > 0 ? 100 * self_cpu / dur : 0, max_stall_ns / 1e6, st.reads, st.bytes_in / 1e6, st.bytes_out / 1e6);
}

/* interval line (stderr) */
static uint64_t ivl_last_t, ivl_last_deliv, ivl_last_acked, ivl_last_sent;
static double ivl_last_srv;
static void print_interval(uint64_t now)
{
    double dt = (double)(now - ivl_last_t) / 1e9;
    proc_stat_t s = read_proc(opt.server_pid);
    fprintf(stderr,
            "[%6.1fs] sent %.0f/s acked %.0f/s deliveries %.0f/s p50 %" PRIu64 "us p99 %" PRIu64 "us max %" PRIu64
            "us ready %d%s",
            (double)(now - t_start) / 1e9, (st.sent - ivl_last_sent) / dt, (st.acked - ivl_last_acked) / dt,
            (st.deliveries - ivl_last_deliv) / dt, hist_pct(&ivl_hist, .5), hist_pct(&ivl_hist, .99), ivl_hist.max,
            (int)st.ready, "");
    if (s.ok)
        fprintf(stderr, " server rss %.1fMiB cpu %.0f%%", s.rss_kb / 1024.0, 100 * (s.cpu_s - ivl_last_srv) / dt);
    fprintf(stderr, "\n");
    ivl_last_srv = s.cpu_s;
    ivl_last_t = now;
    ivl_last_deliv = st.deliveries;
    ivl_last_acked = st.acked;
    ivl_last_sent = st.sent;
    hist_reset(&ivl_hist);
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr,
            "usage: parley-loadgen [options]\n"
            "  --host ADDR         loopback server address (default 127.0.0.1)\n"
            "  --port N            server port (default 8080)\n"
            "  --path P            WebSocket path (default /ws)\n"
            "  --clients N         connections (default 100)\n"
            "  --rooms R           rooms; client i joins r<i%%R> (default 1)\n"
            "  --room-prefix S     rooms are S<i%%R> instead (letters and digits, at most 15)\n"
            "  --senders S         sending connections, spread over rooms (default 1)\n"
            "  --rate X            total messages/s in; 0 = as fast as --window allows (default 10)\n"
            "  --window W          max unacked sends per sender (default 0 = unlimited; 64 if --rate 0)\n"
            "  --size B            text size in bytes (default 100)\n"
            "  --duration S        measured seconds (default 10)\n"
            "  --warmup S          seconds of sending before measuring (default 2)\n"
            "  --drain S           max seconds to wait for acks/deliveries after sending (default 5)\n"
            "  --setup-timeout S   max seconds to connect+hello+join everyone (default 120)\n"
            "  --settle S          after setup, wait until nothing arrived for 300 ms (presence\n"
            "                      backlog), at most S seconds (default 30)\n"
            "  --server-pid PID    read the server's RSS and CPU time from /proc/PID\n"
            "  --idle              connect, hello, join, wait --idle-wait s, report server RSS/connection\n"
            "  --idle-wait S       (default 3)\n"
            "  --capacity          step the rate up by --step-factor every --step-seconds until p99 >\n"
            "                      --p99-limit-ms or missing > 0; report the best passing step\n"
            "  --step-seconds S    (default 3)  --step-factor F (default 1.25)  --max-rate X  --max-steps N (40)\n"
            "  --refine-factor F   after the first failing step, cool down and climb again from the\n"
            "                      best passing rate by this factor (e.g. 1.1; default off)\n"
            "  --p99-limit-ms MS   (default 100)\n"
            "  --src-addrs K       spread source addresses over 127.0.0.1..127.0.0.K (default 8)\n"
            "  --connect-batch N   connects per 10 ms tick (default 200)\n"
            "  --max-pending N     max connections in setup at once (default 1000)\n"
            "  --interval S        print a progress line every S seconds to stderr\n"
            "  --json              one-line JSON summary on stdout\n"
            "  --label TEXT        label copied into the JSON summary\n");
    exit(2);
}

static void on_signal(int s)
{
    (void)s;
    interrupted = 1;
}

static void resolve_host(void)
{
    const char *h = opt.host;
    if (!strcmp(h, "localhost"))
        h = "127.0.0.1";
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, h, &dst.sin_addr) != 1)
        die("--host must be an IPv4 loopback address (127.x.x.x or localhost), got '%s'", opt.host);
    uint32_t a = ntohl(dst.sin_addr.s_addr);
    if ((a >> 24) != 127)
        die("refusing to connect to non-loopback address %s", opt.host);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)opt.clients + 16 > rl.rlim_cur)
        die("--clients %d needs more file descriptors than RLIMIT_NOFILE %llu allows", opt.clients,
            (unsigned long long)rl.rlim_cur);
}

/* ---- capacity mode state */
typedef struct {
    double rate, dps, srv_cpu_pct, self_cpu_pct, other_cpu_pct;
    uint64_t p50, p99, p999, max, missing, sent, acked, errors, closed;
    bool pass;
} step_t;

static void run_capacity_step_report(const step_t *s, int i)
{
    if (!opt.json)
        printf("step %2d: rate %8.0f msg/s in -> %10.0f deliveries/s  p50 %7" PRIu64 "us p99 %8" PRIu64
               "us p99.9 %8" PRIu64 "us max %8" PRIu64 "us missing %" PRIu64 " errors %" PRIu64
               " closed %" PRIu64 " cpu: server %3.0f%% loadgen %3.0f%% others %3.0f%% %s\n",
               i, s->rate, s->dps, s->p50, s->p99, s->p999, s->max, s->missing, s->errors, s->closed,
               s->srv_cpu_pct, s->self_cpu_pct, s->other_cpu_pct, s->pass ? "ok" : "FAIL");
    else
        fprintf(stderr,
                "step %2d: rate %.0f -> %.0f deliveries/s p99 %" PRIu64 "us missing %" PRIu64 " srv %.0f%% lg %.0f%% %s\n",
                i, s->rate, s->dps, s->p99, s->missing, s->srv_cpu_pct, s->self_cpu_pct, s->pass ? "ok" : "FAIL");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'},          {"port", 1, 0, 'p'},          {"path", 1, 0, 'P'},
        {"clients", 1, 0, 'c'},       {"rooms", 1, 0, 'r'},         {"senders", 1, 0, 's'},
        {"rate", 1, 0, 'R'},          {"size", 1, 0, 'b'},          {"duration", 1, 0, 'd'},
        {"warmup", 1, 0, 'w'},        {"server-pid", 1, 0, 'S'},    {"idle", 0, 0, 'I'},
        {"json", 0, 0, 'j'},          {"src-addrs", 1, 0, 'k'},     {"window", 1, 0, 'W'},
        {"drain", 1, 0, 'D'},         {"setup-timeout", 1, 0, 'T'}, {"idle-wait", 1, 0, 'i'},
        {"interval", 1, 0, 'v'},      {"capacity", 0, 0, 'C'},      {"step-seconds", 1, 0, 1},
        {"step-factor", 1, 0, 2},     {"max-rate", 1, 0, 3},        {"p99-limit-ms", 1, 0, 4},
        {"max-steps", 1, 0, 5},       {"connect-batch", 1, 0, 6},   {"max-pending", 1, 0, 7},
        {"label", 1, 0, 8},           {"settle", 1, 0, 9},          {"refine-factor", 1, 0, 10},  {"room-prefix", 1, 0, 11},           {"help", 0, 0, '?'},          {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': snprintf(opt.host, sizeof opt.host, "%s", optarg); break;
        case 'p': opt.port = atoi(optarg); break;
        case 'P': snprintf(opt.path, sizeof opt.path, "%s", optarg); break;
        case 'c': opt.clients = atoi(optarg); break;
        case 'r': opt.rooms = atoi(optarg); break;
        case 's': opt.senders = atoi(optarg); break;
        case 'R': opt.rate = atof(optarg); break;
        case 'b': opt.size = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'S': opt.server_pid = atoi(optarg); break;
        case 'I': opt.idle = true; break;
        case 'j': opt.json = true; break;
        case 'k': opt.src_addrs = atoi(optarg); break;
        case 'W': opt.window = atoi(optarg); break;
        case 'D': opt.drain = atof(optarg); break;
        case 'T': opt.setup_timeout = atof(optarg); break;
        case 'i': opt.idle_wait = atof(optarg); break;
        case 'v': opt.interval = atof(optarg); break;
        case 'C': opt.capacity = true; break;
        case 1: opt.step_seconds = atof(optarg); break;
        case 2: opt.step_factor = atof(optarg); break;
        case 3: opt.max_rate = atof(optarg); break;
        case 4: opt.p99_limit_ms = atof(optarg); break;
        case 5: opt.max_steps = atoi(optarg); break;
        case 6: opt.connect_batch = atoi(optarg); break;
        case 7: opt.max_pending = atoi(optarg); break;
        case 8: snprintf(opt.label, sizeof opt.label, "%s", optarg); break;
        case 9: opt.settle = atof(optarg); break;
        case 10: opt.refine_factor = atof(optarg); break;
        case 11:
            if (!*optarg || strlen(optarg) >= sizeof opt.room_prefix || strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != strlen(optarg))
                usage();
            snprintf(opt.room_prefix, sizeof opt.room_prefix, "%s", optarg);
            break;
        default: usage();
        }
    }
    if (optind < argc)
        usage();
    if (opt.clients < 1 || opt.rooms < 1 || opt.rooms > MAX_ROOMS || opt.senders < 0 || opt.senders > opt.clients ||
        opt.size < 1 || opt.size > 60000 || opt.src_addrs < 1 || opt.src_addrs > 254 || opt.port < 1 ||
        opt.port > 65535 || opt.duration < 0 || opt.warmup < 0 || opt.rate < 0 || opt.connect_batch < 1 ||
        opt.max_pending < 1 || (opt.capacity && opt.rate <= 0) || opt.step_factor <= 1.0)
        usage();
    for (size_t i = 0; opt.label[i]; i++)
        if (opt.label[i] == '"' || opt.label[i] == '\\')
            opt.label[i] = '_';
    if (opt.rate <= 0 && opt.window <= 0)
        opt.window = 64;
    resolve_host();
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    memset(pad, 'x', sizeof pad);
    rng_state ^= now_ns() * 0x2545F4914F6CDD1Dull | 1;
    src_base = ntohl(dst.sin_addr.s_addr) & 0xFF000000u; /* 127.0.0.0 */
    src_base |= 1;                                      /* 127.0.0.1 .. 127.0.0.K */

    conns = calloc((size_t)opt.clients, sizeof *conns);
    room_acked = calloc((size_t)opt.rooms, sizeof *room_acked);
    room_members = calloc((size_t)opt.rooms, sizeof *room_members);
    sender_idx = calloc((size_t)opt.senders + 1, sizeof *sender_idx);
    shared_rbuf = malloc(SHARED_RBUF);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || !room_acked || !room_members || !sender_idx || !shared_rbuf || epfd < 0)
        die("setup failed");
    for (int i = 0; i < opt.clients; i++) {
        conns[i].fd = -1;
        conns[i].idx = i;
        conns[i].room = i % opt.rooms;
        conns[i].last_id = -1;
        conns[i].state = C_FREE;
    }
    /* senders: connections 0..S-1, so sender k is in room k % R (spread evenly over the rooms) */
    for (int k = 0; k < opt.senders; k++) {
        int i = k;
        conns[i].sender = true;
        sender_idx[nsenders++] = i;
    }

    srv_baseline = read_proc(opt.server_pid);
    if (opt.server_pid && !srv_baseline.ok)
        die("cannot read /proc/%d", opt.server_pid);

    t_start = now_ns();
    hard_deadline = t_start + (uint64_t)((opt.setup_timeout + opt.settle + opt.warmup + opt.duration + opt.drain + opt.idle_wait + 10) * 1e9);
    if (opt.capacity)
        hard_deadline += (uint64_t)(((opt.step_seconds + 3.0) * opt.max_steps + 15) * 1e9);
    uint64_t setup_deadline = t_start + (uint64_t)(opt.setup_timeout * 1e9);
    int next_conn = 0;
    uint64_t prev_now = 0, last_batch = 0, next_ivl = t_start + (uint64_t)(opt.interval * 1e9), drain_check = 0;
    ivl_last_t = t_start;
    struct epoll_event evs[1024];

    /* capacity state */
    int step = 0;
    uint64_t step_end = 0, step_drain_end = 0;
    bool step_draining = false;
    step_t best = {0}, cur = {0};
    bool have_best = false, have_fail = false, refining = false, cooling = false, start_step = false;
    step_t fail = {0};
    uint64_t cool_end = 0;
    double pending_rate = 0;
    int downs = 0;
    uint64_t step_sent0 = 0, step_acked0 = 0, step_err0 = 0, step_closed0 = 0, step_deliv0 = 0;
    int exit_code = 0;

    while (phase != P_DONE) {
        int timeout = sending ? 1 : 5;
        int n = epoll_wait(epfd, evs, 1024, timeout);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++)
            on_event(&conns[evs[i].data.u32], evs[i].events);
        uint64_t now = now_ns();
        if (sending && prev_now && now - prev_now > max_stall_ns && now >= t_measure_start)
            max_stall_ns = now - prev_now;
        prev_now = now;
        if (interrupted || now > hard_deadline) {
            if (!opt.json)
                fprintf(stderr, "parley-loadgen: %s, stopping\n", interrupted ? "interrupted" : "hard deadline reached");
            exit_code = 1;
            if (phase == P_RUN || phase == P_DRAIN) {
                if (!t_measure_end || t_measure_end > now)
                    t_measure_end = now;
                srv_after = read_proc(opt.server_pid);
                self_after = self_cpu_s();
            }
            break;
        }
        if (opt.interval > 0 && now >= next_ivl) {
            print_interval(now);
            next_ivl = now + (uint64_t)(opt.interval * 1e9);
        }

        switch (phase) {
        case P_SETUP: {
            if (next_conn < opt.clients && now - last_batch >= 10000000ull && pending < opt.max_pending) {
                last_batch = now;
                for (int k = 0; k < opt.connect_batch && next_conn < opt.clients && pending < opt.max_pending; k++)
                    conn_start(&conns[next_conn++]);
            }
            bool all_started = next_conn >= opt.clients;
            if ((all_started && pending <= 0) || now > setup_deadline) {
                t_setup_done = now;
                if (now > setup_deadline && !opt.json)
                    fprintf(stderr, "parley-loadgen: setup timeout, %" PRIu64 " of %d ready\n", st.ready, opt.clients);
                if (!opt.json)
                    fprintf(stderr, "parley-loadgen: %" PRIu64 "/%d ready after %.2f s\n", st.ready, opt.clients,
                            (double)(now - t_start) / 1e9);
                if (opt.idle) {
                    phase = P_IDLE_WAIT;
                    t_idle_end = now + (uint64_t)(opt.idle_wait * 1e9);
                } else if (st.ready == 0) {
                    fprintf(stderr, "parley-loadgen: no connection is ready\n");
                    exit_code = 1;
                    phase = P_DONE;
                } else {
                    phase = P_SETTLE;
                    settle_deadline = now + (uint64_t)(opt.settle * 1e9);
                }
            }
            break;
        }
        case P_SETTLE: {
            if (now - last_frame_ns > 300000000ull || now >= settle_deadline) {
                if (!opt.json)
                    fprintf(stderr, "parley-loadgen: settled after %.2f s\n", (double)(now - t_setup_done) / 1e9);
                {
                    phase = P_RUN;
                    sending = true;
                    t_send_start = now;
                    set_rate_segment(now);
                    if (opt.capacity) {
                        t_measure_start = now;
                        t_measure_end = UINT64_MAX;
                        step_end = now + (uint64_t)(opt.step_seconds * 1e9);
                        srv_before = read_proc(opt.server_pid);
                        self_before = self_cpu_s();
                        cur.rate = opt.rate;
                    } else {
                        t_measure_start = now + (uint64_t)(opt.warmup * 1e9);
                        t_measure_end = t_measure_start + (uint64_t)(opt.duration * 1e9);
                    }
                    pump_senders(now);
                }
            }
            break;
        }
        case P_IDLE_WAIT:
            if (now >= t_idle_end) {
                report_idle(now);
                phase = P_DONE;
            }
            break;
        case P_RUN:
            if (opt.capacity) {
                if (cooling || start_step) {
                    /* handled below */
                } else if (!step_draining) {
                    pump_senders(now);
                    if (now >= step_end) {
                        sending = false;
                        step_draining = true;
                        t_measure_end = now;
                        step_drain_end = now + 3000000000ull;
                        srv_after = read_proc(opt.server_pid);
                        self_after = self_cpu_s();
                    }
                } else if (now - drain_check > 10000000ull || now >= step_drain_end) {
                    drain_check = now;
                    uint64_t e, r, m;
                    missing_now(&e, &r, &m);
                    if ((m == 0 && unresolved() == 0) || now >= step_drain_end) {
                        double dur = (double)(t_measure_end - t_measure_start) / 1e9;
                        cur.dps = (double)(st.deliveries - step_deliv0) / dur; /* incl. drain */
                        cur.p50 = hist_pct(&lat_hist, .5);
                        cur.p99 = hist_pct(&lat_hist, .99);
                        cur.p999 = hist_pct(&lat_hist, .999);
                        cur.max = lat_hist.max;
                        cur.missing = m;
                        cur.sent = st.sent - step_sent0;
                        cur.acked = st.acked - step_acked0;
                        cur.errors = st.send_errors - step_err0;
                        cur.closed = st.closed_during_run - step_closed0;
                        cur.srv_cpu_pct = srv_after.ok ? 100 * (srv_after.cpu_s - srv_before.cpu_s) / dur : 0;
                        cur.self_cpu_pct = 100 * (self_after - self_before) / dur;
                        cur.other_cpu_pct = 100 * (srv_after.all_busy_s - srv_before.all_busy_s -
                                                   (srv_after.cpu_s - srv_before.cpu_s) - (self_after - self_before)) / dur;
                        cur.pass = cur.p99 < (uint64_t)(opt.p99_limit_ms * 1000) && m == 0 && cur.closed == 0 &&
                                   cur.errors == 0 && unresolved() == 0 && lat_hist.n > 0 &&
                                   st.skipped_backlog == 0;
                        run_capacity_step_report(&cur, step);
                        if (steps_json_len < sizeof steps_json - 128)
                            steps_json_len += (size_t)snprintf(steps_json + steps_json_len, sizeof steps_json - steps_json_len,
                                                               "%s[%.1f,%.0f,%" PRIu64 ",%" PRIu64 ",%.0f,%.0f,%d,%.0f]",
                                                               step ? "," : "", cur.rate, cur.dps, cur.p99, cur.missing,
                                                               cur.srv_cpu_pct, cur.self_cpu_pct, cur.pass ? 1 : 0,
                                                               cur.other_cpu_pct);
                        if (cur.pass) {
                            if (!have_best || cur.dps > best.dps)
                                best = cur;
                            have_best = true;
                        } else if (!have_fail || cur.rate < fail.rate) {
                            fail = cur;
                            have_fail = true;
                        }
                        step++;
                        double next_rate = 0;
                        bool done = false;
                        if (cur.pass) {
                            next_rate = cur.rate * (refining ? opt.refine_factor : opt.step_factor);
                            if (have_fail && next_rate >= fail.rate * 0.999) {
                                if (!refining && opt.refine_factor > 1) {
                                    refining = true;
                                    next_rate = cur.rate * opt.refine_factor;
                                }
                                done = next_rate >= fail.rate * 0.999;
                            }
                        } else if (cur.closed == 0 && !have_best && downs < 3) {
                            /* even the first rate failed: cool down and try half of it */
                            downs++;
                            next_rate = cur.rate / 2;
                            cooling = true;
                        } else if (cur.closed == 0 && have_best && opt.refine_factor > 1 && !refining) {
                            /* coarse search failed: cool down, then walk up from the best in finer steps */
                            refining = true;
                            next_rate = best.rate * opt.refine_factor;
                            cooling = true;
                            done = next_rate >= fail.rate * 0.999;
                        } else {
                            done = true;
                        }
                        if (cooling)
                            cool_end = now + 10000000000ull;
                        if (done || step >= opt.max_steps || next_rate > opt.max_rate || ready_alive() == 0) {
                            phase = P_DONE;
                            break;
                        }
                        pending_rate = next_rate;
                        step_draining = false;
                        start_step = !cooling;
                    }
                }
                if (cooling && (now - drain_check > 10000000ull || now >= cool_end)) {
                    drain_check = now;
                    uint64_t e, r, m;
                    missing_now(&e, &r, &m);
                    if (m == 0 && unresolved() == 0) {
                        cooling = false;
                        start_step = true;
                    } else if (now >= cool_end) {
                        if (!opt.json)
                            fprintf(stderr, "parley-loadgen: server did not catch up after a failed step, stopping\n");
                        phase = P_DONE;
                        break;
                    }
                }
                if (start_step) {
                        start_step = false;
                        double next_rate = pending_rate;
                        /* next step */
                        memset(&cur, 0, sizeof cur);
                        cur.rate = opt.rate = next_rate;
                        hist_reset(&lat_hist);
                        hist_reset(&ack_hist);
                        step_sent0 = st.sent;
                        step_acked0 = st.acked;
                        step_err0 = st.send_errors;
                        step_closed0 = st.closed_during_run;
                        step_deliv0 = st.deliveries;
                        step_draining = false;
                        sending = true;
                        set_rate_segment(now);
                        t_measure_start = now;
                        t_measure_end = UINT64_MAX;
                        step_end = now + (uint64_t)(opt.step_seconds * 1e9);
                        srv_before = read_proc(opt.server_pid);
                        self_before = self_cpu_s();
                }
                break;
            }
            if (!measure_started && now >= t_measure_start) {
                measure_started = true;
                srv_before = read_proc(opt.server_pid);
                self_before = self_cpu_s();
            }
            pump_senders(now);
            if (now >= t_measure_end) {
                sending = false;
                srv_after = read_proc(opt.server_pid);
                self_after = self_cpu_s();
                phase = P_DRAIN;
                t_drain_end = now + (uint64_t)(opt.drain * 1e9);
            }
            break;
        case P_DRAIN:
            if (now - drain_check > 10000000ull || now >= t_drain_end) {
                drain_check = now;
                uint64_t e, r, m;
                missing_now(&e, &r, &m);
                if ((m == 0 && unresolved() == 0) || now >= t_drain_end)
                    phase = P_DONE;
            }
            break;
        }
    }

    if (opt.capacity) {
        proc_stat_t s = read_proc(opt.server_pid);
        char errs[1024], closes[512];
        fmt_errs(errs, sizeof errs, opt.json);
        fmt_codes(closes, sizeof closes, opt.json);
        int members = opt.clients / opt.rooms;
        if (opt.json)
            printf("{\"mode\":\"capacity\",\"label\":\"%s\",\"clients\":%d,\"rooms\":%d,\"senders\":%d,\"size\":%d,"
                   "\"connected\":%" PRIu64 ",\"steps\":%d,\"found\":%s,\"best_rate\":%.1f,\"best_deliveries_per_s\":%.1f,"
                   "\"best_p50_us\":%" PRIu64 ",\"best_p99_us\":%" PRIu64 ",\"best_p999_us\":%" PRIu64 ",\"best_max_us\":%" PRIu64 ","
                   "\"best_server_cpu_pct\":%.1f,\"best_loadgen_cpu_pct\":%.1f,\"best_other_cpu_pct\":%.1f,"
                   "\"failed_rate\":%.1f,\"failed_p99_us\":%" PRIu64 ",\"failed_missing\":%" PRIu64 ","
                   "\"server_rss_kb\":%ld,\"errors\":{%s},\"close_codes\":{%s},\"loadgen_max_stall_ms\":%.1f,"
                   "\"step_fields\":[\"rate\",\"deliveries_per_s\",\"p99_us\",\"missing\",\"server_cpu_pct\",\"loadgen_cpu_pct\",\"pass\",\"other_cpu_pct\"],"
                   "\"steps_detail\":[%s]}\n",
                   opt.label, opt.clients, opt.rooms, nsenders, opt.size, st.ready, step, have_best ? "true" : "false",
                   best.rate, best.dps, best.p50, best.p99, best.p999, best.max, best.srv_cpu_pct, best.self_cpu_pct, best.other_cpu_pct,
                   have_fail ? fail.rate : 0, have_fail ? fail.p99 : 0, have_fail ? fail.missing : 0, s.rss_kb, errs, closes,
                   max_stall_ns / 1e6, steps_json);
        else if (have_best)
            printf("capacity: %.0f deliveries/s (%.0f msgs/s in x %d members), p99 %" PRIu64 " us < %.0f ms, no missing\n",
                   best.dps, best.rate, members, best.p99, opt.p99_limit_ms);
        else
            printf("capacity: no step passed (p99 < %.0f ms and no missing)\n", opt.p99_limit_ms);
    } else if (phase == P_DONE && !opt.idle && t_measure_start) {
        report_run();
    } else if (exit_code && !opt.idle && t_measure_start) {
        report_run();
    }
    fflush(stdout);
    /* polite close */
    for (int i = 0; i < opt.clients; i++)
        if (conns[i].fd >= 0) {
            if (conns[i].state >= C_HELLO && conns[i].state <= C_READY)
                send_close(&conns[i], 1000);
            close(conns[i].fd);
        }
    return exit_code;
}
