/* server.c -- the libwebsockets context and its one callback: a thin switch
 * that hands each event to the session, HTTP or database code. */
/* uv.h first: libwebsockets.h declares its libuv helpers only after it. */
#include <uv.h>

#include "server.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alive.h"
#include "api.h"
#include "db.h"
#include "expiry.h"
#include "http.h"
#include "hub.h"
#include "listen.h"
#include "log.h"
#include "member.h"
#include "session.h"
#include "wire.h"

#define STOP_GRACE_US (3 * LWS_US_PER_SEC) /* clients get this long to go */
#define TICK_US (100 * 1000)

/* Per-connection user data (lws allocates and frees it). */
struct conn {
    struct session *s;   /* WebSocket connections */
    struct http_body hb; /* plain HTTP responses */
    struct api_conn api; /* an HTTP API request (api.h) */
};

int64_t server_now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void on_tick(struct lws_sorted_usec_list *sul);

/* Begins the shutdown: refuse upgrades, close everyone with 1001. */
static void begin_stop(struct server *srv)
{
    srv->stopping = 1;
    srv->stop_deadline_us = server_now_us() + STOP_GRACE_US;
    plog(LOG_INFO, "stopping", "loop=%d connections=%d", srv->index, srv->nsessions);
    for (struct session *s = srv->sessions; s; s = session_next(s))
        wire_close(s, 1001, "server shutting down", 0);
}

/* Every TICK_US: a stop request is noticed (the signal handler only sets
 * a flag); overdue hellos are closed; idle connections are pinged, and
 * dropped when they stay silent (alive.h); expired tokens are closed
 * (expiry.h); while stopping, the loop ends once
 * every client is gone or the grace period is over. */
static void on_tick(struct lws_sorted_usec_list *sul)
{
    struct server *srv = lws_container_of(sul, struct server, tick);
    int64_t now = server_now_us();
    if (__atomic_load_n(&srv->hub->stop_requested, __ATOMIC_RELAXED) && !srv->stopping)
        begin_stop(srv);
    if (srv->accept_resume) listen_resume(srv);
    session_sweep_hello(srv, now);
    member_sweep(srv, now);
    wire_sweep(srv, now);
    alive_sweep(srv, now);
    expiry_sweep(srv, (int64_t)time(NULL)); /* exp is wall-clock time */
    wire_flush_all(srv);
    if (srv->stopping && (srv->nsessions == 0 || now > srv->stop_deadline_us)) {
        srv->loop_done = 1;
        /* With libuv, lws_service() runs the loop until it is stopped; with
         * poll, suls run inside lws_service() before it polls again, so
         * wake that poll. Either way server_run() sees loop_done now. */
        if (srv->uv_loop)
            uv_stop(srv->uv_loop);
        else
            lws_cancel_service(srv->ctx);
        return;
    }
    lws_sul_schedule(srv->ctx, 0, &srv->tick, on_tick, TICK_US);
}

void server_on_db_done(struct db_req *r, void *srv)
{
    if (r->api)
        api_on_done(srv, r);
    else
        session_on_db_done(r, srv);
}

/* Called on the loop after lws_cancel_service(): take the inbox. */
static void on_wake(struct server *srv)
{
    hub_take(srv->hub, srv->index, server_on_db_done, srv);
}

static int dispatch(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                    void *in, size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    struct server *srv = ctx ? lws_context_user(ctx) : NULL;
    struct conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return http_confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_HTTP:
        if (api_claims(wsi)) return api_request(srv, wsi, &c->api);
        return http_request(srv, wsi, &c->hb);
    /* A body nobody reads (a refused or non-API request, or one pipelined
     * behind another) closes the connection: left to libwebsockets 4.1.6,
     * its buffered rest came back as body completions forever (a loop at
     * 100 % CPU that no longer heard SIGTERM). */
    case LWS_CALLBACK_HTTP_BODY:
        if (api_reading(&c->api)) return api_body(wsi, &c->api, in, len);
        return api_unread_body(&c->api, 0);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (api_reading(&c->api)) return api_body_done(wsi, &c->api);
        return api_unread_body(&c->api, 1);
    case LWS_CALLBACK_RAW_ADOPT:
    case LWS_CALLBACK_RAW_RX:
    case LWS_CALLBACK_RAW_WRITEABLE:
        return http_raw(wsi, reason);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (c->api.call) return api_writeable(wsi, &c->api);
        return http_writeable(wsi, &c->hb);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c) http_done(&c->hb);
        if (c) api_closed(&c->api);
        break;
    case LWS_CALLBACK_ESTABLISHED:
        c->s = session_open(srv, wsi);
        if (c->s) alive_add(c->s, server_now_us());
        return c->s ? 0 : -1;
    case LWS_CALLBACK_RECEIVE:
        alive_touch(c->s, server_now_us());
        return session_on_receive(c->s, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        alive_touch(c->s, server_now_us());
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (alive_on_writeable(c->s)) return -1;
        return wire_on_writeable(c->s);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return session_on_peer_close(c->s);
    case LWS_CALLBACK_CLOSED:
        if (c->s) alive_remove(c->s);
        if (c->s) session_on_closed(c->s);
        c->s = NULL;
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        on_wake(srv);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* Every event ends by writing the queues it filled (wire_flush_all). */
static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                    void *in, size_t len)
{
    int r = dispatch(wsi, reason, user, in, len);
    struct lws_context *ctx = lws_get_context(wsi);
    struct server *srv = ctx ? lws_context_user(ctx) : NULL;
    if (srv && srv->flush_head) wire_flush_all(srv);
    return r;
}

static const struct lws_protocols protocols[] = {
    /* tx_packet_size lets one batched write (WIRE_WRITE_MAX) go to the
     * socket in one send instead of being cut at the rx buffer size. */
    /* A 512-byte receive buffer per connection: bigger messages arrive in
     * pieces and are reassembled in the session anyway. */
    {"parley", callback, sizeof(struct conn), 512, 0, NULL, WIRE_WRITE_MAX + 64},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Mounts for --web-root: the directory at "/", the endpoints beside it. */
static struct lws_http_mount mounts[4];

static const struct lws_http_mount *make_mounts(const struct config *cfg)
{
    if (!cfg->web_root) return NULL;
    static const char *const points[] = {"/healthz", "/metrics", "/api"};
    for (int i = 0; i < 3; i++) {
        mounts[i].mount_next = &mounts[i + 1];
        mounts[i].mountpoint = points[i];
        mounts[i].mountpoint_len = (unsigned char)strlen(points[i]);
        mounts[i].origin = "parley";
        mounts[i].origin_protocol = LWSMPRO_CALLBACK;
    }
    mounts[3].mountpoint = "/";
    mounts[3].mountpoint_len = 1;
    mounts[3].origin = cfg->web_root;
    mounts[3].def = "index.html";
    mounts[3].origin_protocol = LWSMPRO_FILE;
    return mounts;
}

int server_start(struct server *srv)
{
    const struct config *cfg = srv->cfg;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    /* Several loops: each accepts on its own socket (listen.c). */
    int own_listener = srv->hub->nloops > 1;
    info.port = own_listener ? CONTEXT_PORT_NO_LISTEN_SERVER : (int)cfg->port;
    srv->listen_fd = -1;
    info.iface = cfg->bind;
    info.protocols = protocols;
    info.mounts = make_mounts(cfg);
    info.user = srv;
    /* TCP keepalive on the sockets lws accepts (listen.c does its own). */
    info.ka_time = LISTEN_KA_IDLE_S;
    info.ka_interval = LISTEN_KA_INTERVAL_S;
    info.ka_probes = LISTEN_KA_PROBES;
    /* Each connection's header table while its request is parsed (freed
     * after the upgrade: 1024 and 4096 measured the same idle RSS). */
    info.max_http_header_data = (unsigned short)cfg->max_header_bytes;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 * !!cfg->bind;
    /* libuv (epoll) rather than lws' own poll(): poll scans every socket on
     * every wake-up, which dominates with thousands of connections. */
    if (cfg->event_loop[0] == 'u') {
        /* Our own ("foreign") loop, so we can run and stop it ourselves. */
        srv->uv_loop = calloc(1, sizeof(uv_loop_t));
        if (!srv->uv_loop || uv_loop_init(srv->uv_loop)) {
            plog(LOG_ERROR, "start-failed", "reason=\"cannot create the event loop\"");
            free(srv->uv_loop); /* never initialised: nothing to close */
            srv->uv_loop = NULL;
            return -1;
        }
        srv->foreign_loops[0] = srv->uv_loop;
        info.foreign_loops = srv->foreign_loops;
        info.options |= LWS_SERVER_OPTION_LIBUV;
    }
    if (cfg->tls_cert) {
        /* Every loop: lws 4.1 also reads it as "this vhost does TLS";
         * OpenSSL's own init is idempotent. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        /* HTTP/1.1 only: over h2 a WebSocket is a stream inside the h2
         * framing, and the batched raw writes would bypass it. */
        info.alpn = "http/1.1";
    }
    lws_set_log_level(log_enabled(LOG_DEBUG) ? LLL_ERR | LLL_WARN : LLL_ERR, NULL);
    srv->outq_lim.max_msgs = (uint32_t)cfg->outq_max_msgs;
    srv->outq_lim.max_bytes = (size_t)cfg->outq_max_bytes;
    srv->plim.max_text = (int)cfg->max_text;
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        plog(LOG_ERROR, "start-failed", "port=%ld reason=\"cannot listen or load TLS\"",
             cfg->port);
        return -1;
    }
    if (own_listener && listen_start(srv)) return -1;
    lws_sul_schedule(srv->ctx, 0, &srv->tick, on_tick, TICK_US);
    hub_set_awake(srv->hub, srv->index, 1);
    if (srv->index == 0)
        plog(LOG_INFO, "listening", "port=%ld bind=%s tls=%d db=%s threads=%d", cfg->port,
             cfg->bind ? cfg->bind : "*", !!cfg->tls_cert, cfg->db, srv->hub->nloops);
    return 0;
}

void server_run(struct server *srv)
{
    if (srv->uv_loop)
        uv_run(srv->uv_loop, UV_RUN_DEFAULT); /* until on_tick's uv_stop() */
    else
        while (!srv->loop_done && lws_service(srv->ctx, 0) >= 0)
            ;
}

void server_destroy(struct server *srv)
{
    if (srv->hub) hub_set_awake(srv->hub, srv->index, 0); /* no wake-ups from now */
    listen_close(srv);
    if (srv->ctx)
        lws_context_destroy(srv->ctx); /* closes what is left: CLOSED per session */
    if (srv->uv_loop) {
        /* On a foreign loop lws closes its handles asynchronously: let the
         * loop finish them, then destroy again to free the context itself. */
        int busy = 1;
        for (int i = 0; i < 200 && (busy = uv_loop_close(srv->uv_loop) == UV_EBUSY); i++)
            if (!uv_run(srv->uv_loop, UV_RUN_NOWAIT))
                usleep(5000); /* bounded: a stuck handle costs 1 s, not a hang */
        if (srv->ctx) lws_context_destroy(srv->ctx);
        if (!busy) free(srv->uv_loop);
        srv->uv_loop = NULL;
    }
    srv->ctx = NULL;
    expiry_free(srv); /* every session is closed by now */
}
