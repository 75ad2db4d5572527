/*
 * lws-broadcast: a plain libwebsockets chat broadcast server, for comparison
 * with Parley in benchmarks.  It speaks just enough of the Parley protocol
 * (docs: /work/shared/spec/protocol.md) for parley-loadgen:
 *
 *   hello -> welcome, join -> joined (+ presence to the room), leave -> left,
 *   send -> ack to the sender (no persistence) + message to every member,
 *   ping -> pong, anything else -> error unknown_type.
 *
 * One room per connection (a second join moves the connection).  It follows
 * the usual lws minimal-example pattern: each room has a ring of outgoing
 * messages, each connection a tail into it; a broadcast asks every member for
 * a WRITEABLE callback, and each WRITEABLE callback writes one frame and asks
 * for another if more are waiting.  Replies to the connection itself (acks
 * etc.) keep their place in line with the room's messages (FIFO per
 * connection), so a sender's acks are paced by its own fan-out.
 * A member that falls a whole ring behind is closed with 1013.
 *
 * usage: lws-broadcast [--port 8090] [--ring 4096]
 */
#include <cjson/cJSON.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_ROOMS 4096

struct qmsg { /* a reply for one connection */
    struct qmsg *next;
    uint64_t after; /* room sequence number this reply must follow (FIFO with the room's messages) */
    size_t len;
    unsigned char buf[]; /* LWS_PRE + payload */
};

struct rmsg {
    unsigned char *buf; /* LWS_PRE + payload, or NULL */
    size_t len;
};

struct pss;

struct room {
    char name[72];
    struct pss *members;
    int nmembers;
    uint64_t head; /* sequence number of the next message */
    struct rmsg *ring;
};

struct pss {
    struct lws *wsi;
    struct pss *rnext, *rprev;
    struct room *room;
    uint64_t tail;
    struct qmsg *qhead, *qtail;
    int hello;
    char id[24];
    char name_json[200]; /* name, JSON-escaped */
    unsigned char *rx;
    size_t rxlen, rxcap;
    int doomed;
};

static struct room *rooms[MAX_ROOMS];
static int nrooms;
static unsigned ring_size = 4096;
static uint64_t next_msg_id = 1, next_user = 1;
static volatile int interrupted;
static unsigned long long stat_lagged;

/* ------------------------------------------------------------ helpers */

static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = 0;
    return o;
}

/* growable string with LWS_PRE headroom */
struct sb {
    char *b;
    size_t len, cap;
};

static void sb_need(struct sb *s, size_t n)
{
    if (!s->b) {
        s->cap = 1024;
        while (s->cap < LWS_PRE + n + 1)
            s->cap *= 2;
        s->b = malloc(s->cap);
        s->len = LWS_PRE;
    }
    if (s->len + n + 1 > s->cap) {
        while (s->len + n + 1 > s->cap)
            s->cap *= 2;
        s->b = realloc(s->b, s->cap);
    }
    if (!s->b)
        abort();
}

static void sb_add(struct sb *s, const char *str, size_t n)
{
    sb_need(s, n);
    memcpy(s->b + s->len, str, n);
    s->len += n;
    s->b[s->len] = 0;
}

static void sb_str(struct sb *s, const char *str) { sb_add(s, str, strlen(str)); }

static void sb_esc(struct sb *s, const char *str)
{
    size_t n = strlen(str);
    sb_need(s, n * 6 + 1);
    s->len += json_escape(s->b + s->len, n * 6 + 1, str);
}

static void sb_fmt(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(struct sb *s, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_add(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_ref(struct sb *s, const cJSON *req)
{
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(req, "ref");
    if (cJSON_IsString(ref)) {
        sb_str(s, ",\"ref\":\"");
        sb_esc(s, ref->valuestring);
        sb_str(s, "\"");
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* queue a reply (takes ownership of the sb) */
static void reply(struct pss *p, struct sb *s)
{
    struct qmsg *m = malloc(sizeof *m + s->len);
    if (!m)
        abort();
    m->next = NULL;
    m->after = p->room ? p->room->head : 0;
    m->len = s->len - LWS_PRE;
    memcpy(m->buf, s->b, s->len);
    free(s->b);
    s->b = NULL;
    if (p->qtail)
        p->qtail->next = m;
    else
        p->qhead = m;
    p->qtail = m;
    lws_callback_on_writable(p->wsi);
}

static void reply_error(struct pss *p, const cJSON *req, const char *code, const char *msg)
{
    struct sb s = {0};
    sb_fmt(&s, "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"%s\"", code, msg);
    if (req)
        sb_ref(&s, req);
    sb_str(&s, "}");
    reply(p, &s);
}

/* append a message to the room's ring and wake every member but `except` */
static void room_broadcast(struct room *r, struct sb *s, struct pss *except)
{
    struct rmsg *slot = &r->ring[r->head % ring_size];
    free(slot->buf);
    slot->buf = (unsigned char *)s->b;
    slot->len = s->len - LWS_PRE;
    s->b = NULL;
    r->head++;
    for (struct pss *m = r->members; m; m = m->rnext) {
        if (m == except) {
            m->tail = r->head; /* skip it */
            continue;
        }
        lws_callback_on_writable(m->wsi);
    }
}

static int valid_room(const char *n)
{
    size_t l = strlen(n);
    if (l < 1 || l > 64)
        return 0;
    for (size_t i = 0; i < l; i++) {
        char c = n[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
        if (!ok)
            return 0;
    }
    return 1;
}

static struct room *room_get(const char *name)
{
    for (int i = 0; i < nrooms; i++)
        if (!strcmp(rooms[i]->name, name))
            return rooms[i];
    if (nrooms >= MAX_ROOMS)
        return NULL;
    struct room *r = calloc(1, sizeof *r);
    r->ring = calloc(ring_size, sizeof *r->ring);
    if (!r || !r->ring)
        abort();
    snprintf(r->name, sizeof r->name, "%s", name);
    rooms[nrooms++] = r;
    return r;
}

static void presence(struct pss *p, const char *event)
{
    struct sb s = {0};
    sb_fmt(&s, "{\"type\":\"presence\",\"room\":\"%s\",\"event\":\"%s\",\"user\":{\"id\":\"%s\",\"name\":\"%s\"}}",
           p->room->name, event, p->id, p->name_json);
    room_broadcast(p->room, &s, p);
}

static void queue_unpin(struct pss *p)
{
    for (struct qmsg *m = p->qhead; m; m = m->next)
        m->after = 0;
}

static void room_leave(struct pss *p)
{
    struct room *r = p->room;
    if (!r)
        return;
    if (p->rprev)
        p->rprev->rnext = p->rnext;
    else
        r->members = p->rnext;
    if (p->rnext)
        p->rnext->rprev = p->rprev;
    p->rnext = p->rprev = NULL;
    r->nmembers--;
    queue_unpin(p);
    presence(p, "leave");
    p->room = NULL;
}

static void room_join(struct pss *p, struct room *r)
{
    queue_unpin(p);
    p->rprev = NULL;
    p->rnext = r->members;
    if (r->members)
        r->members->rprev = p;
    r->members = p;
    r->nmembers++;
    p->room = r;
    p->tail = r->head;
    presence(p, "join"); /* skips p itself */
}

/* ------------------------------------------------------------ protocol */

static void handle(struct pss *p, const char *data, size_t len)
{
    cJSON *req = cJSON_ParseWithLength(data, len);
    const cJSON *type = req ? cJSON_GetObjectItemCaseSensitive(req, "type") : NULL;
    if (!cJSON_IsString(type)) {
        reply_error(p, NULL, "bad_json", "not a JSON object with a string type");
        cJSON_Delete(req);
        return;
    }
    const char *t = type->valuestring;
    if (!strcmp(t, "hello")) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
        if (p->hello) {
            reply_error(p, req, "bad_request", "already said hello");
        } else if (!cJSON_IsString(name) || !name->valuestring[0] || strlen(name->valuestring) > 128) {
            reply_error(p, req, "bad_name", "bad name");
        } else {
            p->hello = 1;
            snprintf(p->id, sizeof p->id, "g%llu", (unsigned long long)next_user++);
            json_escape(p->name_json, sizeof p->name_json, name->valuestring);
            struct sb s = {0};
            sb_fmt(&s,
                   "{\"type\":\"welcome\",\"user\":{\"id\":\"%s\",\"name\":\"%s\",\"guest\":true},"
                   "\"server\":\"lws-broadcast/1\",\"limits\":{\"max_text\":4000,\"rate_per_s\":1000000,"
                   "\"burst\":1000000,\"history_page\":200}",
                   p->id, p->name_json);
            sb_ref(&s, req);
            sb_str(&s, "}");
            reply(p, &s);
        }
    } else if (!p->hello) {
        reply_error(p, req, "need_hello", "send hello first");
    } else if (!strcmp(t, "join")) {
        const cJSON *room = cJSON_GetObjectItemCaseSensitive(req, "room");
        struct room *r;
        if (!cJSON_IsString(room) || !valid_room(room->valuestring)) {
            reply_error(p, req, "bad_room", "bad room name");
        } else if (!(r = room_get(room->valuestring))) {
            reply_error(p, req, "internal", "too many rooms");
        } else {
            if (p->room != r) {
                room_leave(p);
                room_join(p, r);
            }
            struct sb s = {0};
            sb_fmt(&s, "{\"type\":\"joined\",\"room\":\"%s\",\"members\":[", r->name);
            int first = 1;
            for (struct pss *m = r->members; m; m = m->rnext) {
                sb_fmt(&s, "%s{\"id\":\"%s\",\"name\":\"", first ? "" : ",", m->id);
                sb_str(&s, m->name_json);
                sb_str(&s, "\"}");
                first = 0;
            }
            sb_str(&s, "],\"messages\":[],\"complete\":true");
            sb_ref(&s, req);
            sb_str(&s, "}");
            reply(p, &s);
        }
    } else if (!strcmp(t, "leave")) {
        const cJSON *room = cJSON_GetObjectItemCaseSensitive(req, "room");
        if (!cJSON_IsString(room) || !valid_room(room->valuestring)) {
            reply_error(p, req, "bad_room", "bad room name");
        } else {
            if (p->room && !strcmp(p->room->name, room->valuestring))
                room_leave(p);
            struct sb s = {0};
            sb_fmt(&s, "{\"type\":\"left\",\"room\":\"%s\"", room->valuestring);
            sb_ref(&s, req);
            sb_str(&s, "}");
            reply(p, &s);
        }
    } else if (!strcmp(t, "send")) {
        const cJSON *room = cJSON_GetObjectItemCaseSensitive(req, "room");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(req, "text");
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(req, "client_id");
        if (!cJSON_IsString(room) || !cJSON_IsString(text) || !cJSON_IsString(cid) || !cid->valuestring[0] ||
            strlen(cid->valuestring) > 64) {
            reply_error(p, req, "bad_request", "room, text and client_id are required");
        } else if (!p->room || strcmp(p->room->name, room->valuestring)) {
            reply_error(p, req, "not_member", "join the room first");
        } else if (!text->valuestring[0] || strlen(text->valuestring) > 16000) {
            reply_error(p, req, "too_long", "text empty or too long");
        } else {
            uint64_t id = next_msg_id++, ts = now_ms();
            struct sb a = {0};
            sb_fmt(&a, "{\"type\":\"ack\",\"room\":\"%s\",\"client_id\":\"", p->room->name);
            sb_esc(&a, cid->valuestring);
            sb_fmt(&a, "\",\"id\":%llu,\"ts\":%llu", (unsigned long long)id, (unsigned long long)ts);
            sb_ref(&a, req);
            sb_str(&a, "}");
            reply(p, &a);
            struct sb m = {0};
            sb_fmt(&m, "{\"type\":\"message\",\"room\":\"%s\",\"id\":%llu,\"ts\":%llu,\"user\":{\"id\":\"%s\",\"name\":\"",
                   p->room->name, (unsigned long long)id, (unsigned long long)ts, p->id);
            sb_str(&m, p->name_json);
            sb_str(&m, "\"},\"text\":\"");
            sb_esc(&m, text->valuestring);
            sb_str(&m, "\",\"client_id\":\"");
            sb_esc(&m, cid->valuestring);
            sb_str(&m, "\"}");
            room_broadcast(p->room, &m, NULL);
        }
    } else if (!strcmp(t, "ping")) {
        struct sb s = {0};
        sb_str(&s, "{\"type\":\"pong\"");
        sb_ref(&s, req);
        sb_str(&s, "}");
        reply(p, &s);
    } else {
        reply_error(p, req, "unknown_type", "not supported by lws-broadcast");
    }
    cJSON_Delete(req);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(p, 0, sizeof *p);
        p->wsi = wsi;
        break;
    case LWS_CALLBACK_CLOSED:
        room_leave(p);
        while (p->qhead) {
            struct qmsg *m = p->qhead;
            p->qhead = m->next;
            free(m);
        }
        free(p->rx);
        break;
    case LWS_CALLBACK_RECEIVE:
        if (lws_frame_is_binary(wsi)) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, NULL, 0);
            return -1;
        }
        if (lws_is_first_fragment(wsi))
            p->rxlen = 0;
        if (p->rxlen + len > 65536) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
            return -1;
        }
        if (lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi)) {
            handle(p, in, len); /* common case: no copy */
            break;
        }
        if (p->rxlen + len > p->rxcap) {
            p->rxcap = 65536;
            p->rx = realloc(p->rx, p->rxcap);
            if (!p->rx)
                return -1;
        }
        memcpy(p->rx + p->rxlen, in, len);
        p->rxlen += len;
        if (lws_is_final_fragment(wsi)) {
            handle(p, (const char *)p->rx, p->rxlen);
            p->rxlen = 0;
        }
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (p->doomed)
            return -1;
        if (p->qhead && (!p->room || p->tail >= p->qhead->after)) { /* a reply, in its turn */
            struct qmsg *m = p->qhead;
            p->qhead = m->next;
            if (!p->qhead)
                p->qtail = NULL;
            int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
            free(m);
            if (n < 0)
                return -1;
        } else if (p->room && p->tail < p->room->head) {
            struct room *r = p->room;
            if (r->head - p->tail > ring_size) {
                stat_lagged++;
                p->doomed = 1;
                lws_close_reason(wsi, (enum lws_close_status)1013, NULL, 0);
                return -1;
            }
            struct rmsg *m = &r->ring[p->tail % ring_size];
            p->tail++;
            if (lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT) < 0)
                return -1;
        }
        if (p->qhead || (p->room && p->tail < p->room->head))
            lws_callback_on_writable(wsi);
        break;
    }
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static struct lws_protocols protocols[] = {
    /* first protocol: used for upgrades without a subprotocol, and for plain HTTP */
    {"parley", callback, sizeof(struct pss), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void on_sig(int s)
{
    (void)s;
    interrupted = 1;
}

int main(int argc, char **argv)
{
    int port = 8090;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ring") && i + 1 < argc)
            ring_size = (unsigned)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: lws-broadcast [--port N] [--ring MESSAGES]\n");
            return 2;
        }
    }
    if (ring_size < 16)
        ring_size = 16;
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl)) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "lws-broadcast: lws_create_context failed\n");
        return 1;
    }
    fprintf(stderr, "lws-broadcast: listening on 127.0.0.1:%d, ring %u\n", port, ring_size);
    while (!interrupted)
        if (lws_service(ctx, 0) < 0)
            break;
    lws_context_destroy(ctx);
    fprintf(stderr, "lws-broadcast: stopped (%llu connections closed for lagging)\n", stat_lagged);
    return 0;
}
