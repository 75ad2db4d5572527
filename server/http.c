/* http.c -- static files from the binary, the health and metrics endpoints,
 * and the Origin / connection-limit checks at the upgrade. */
#include "http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "assets.h"
#include "buf.h"
#include "cluster.h"
#include "db.h"
#include "hub.h"
#include "iplimit.h"
#include "log.h"
#include "peer.h"
#include "loop.h"
#include "metrics.h"

#define HTTP_CHUNK 16384
#define HTTP_TOO_MANY_REQUESTS 429 /* lws 4.1 names no constant for it */

static int refuse(struct server *srv, struct lws *wsi, unsigned code, const char *why)
{
    METRIC_ADD(srv, upgrades_refused, 1);
    plog(LOG_INFO, "upgrade-refused", "status=%u reason=\"%s\"", code, why);
    lws_return_http_status(wsi, code, why);
    return 1;
}

/* Strips "scheme://" and a default port, so an Origin compares to a Host. */
static void origin_hostport(const char *origin, char *out, size_t cap)
{
    const char *p = strstr(origin, "://");
    snprintf(out, cap, "%s", p ? p + 3 : origin);
    size_t n = strlen(out);
    if (n && out[n - 1] == '/') out[--n] = 0;
    if (n > 3 && !strcmp(out + n - 3, ":80"))
        out[n - 3] = 0;
    else if (n > 4 && !strcmp(out + n - 4, ":443"))
        out[n - 4] = 0;
}

/* With an allow-list, an Origin passes when listed or same-origin (its
 * host and port are the request's Host). No Origin (not a browser) passes.
 * lws_hdr_copy() says 0 for an absent header and -1 for one too long for
 * the buffer: too long is refused, never mistaken for absent. */
static int origin_ok(struct server *srv, struct lws *wsi)
{
    char origin[256], host[256], a[256], b[256];
    int n = srv->cfg->norigins
                ? lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN)
                : 0;
    if (n == 0) return 1;
    if (n < 0) return 0;
    if (config_origin_allowed(srv->cfg, origin)) return 1;
    if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0) return 0;
    origin_hostport(origin, a, sizeof a);
    origin_hostport(host, b, sizeof b);
    return !strcasecmp(a, b);
}

int http_confirm_upgrade(struct server *srv, struct lws *wsi)
{
    char uri[128];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws"))
        return refuse(srv, wsi, HTTP_STATUS_NOT_FOUND, "WebSocket is at /ws");
    if (srv->stopping)
        return refuse(srv, wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down");
    if (!cluster_serving(srv->hub->cluster)) /* its history is not complete yet */
        return refuse(srv, wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
                      "catching up with the log");
    /* Every loop's connections count; loops accepting at the same instant
     * may each let one more in. */
    if (__atomic_load_n(&srv->hub->sessions, __ATOMIC_RELAXED) >=
        srv->cfg->max_connections)
        return refuse(srv, wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "connection limit");
    if (!origin_ok(srv, wsi))
        return refuse(srv, wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
    /* Checked here for the 429; counted at ESTABLISHED (session.c), where a
     * race with another loop at the last slot is caught. */
    struct iplimit_key k;
    if (srv->hub->iplimit) {
        peer_client_key(srv, wsi, &k);
        if (iplimit_conn_full(srv->hub->iplimit, &k)) {
            char ks[64];
            iplimit_key_str(&k, ks, sizeof ks);
            plog(LOG_INFO, "ip-conn-limit", "client=%s", ks);
            return refuse(srv, wsi, HTTP_TOO_MANY_REQUESTS,
                          "too many connections from your address");
        }
    }
    return 0;
}

/* The cluster's part of /healthz (a single node has none), and whether the
 * node serves: 503 while it catches up with the log or is behind it. */
static int healthz_cluster(struct server *srv, char *out, size_t n)
{
    struct cluster_status cs;
    *out = 0;
    if (!srv->hub->cluster) return 1;
    cluster_status(srv->hub->cluster, &cs);
    snprintf(out, n, ",\"redis\":\"%s\",\"log_position\":%lld,\"log_lag\":%lld%s%s%s",
             cs.redis_up ? "up" : "down", (long long)cs.position,
             (long long)(cs.head > cs.position ? cs.head - cs.position : 0),
             cs.behind ? ",\"reason\":\"" : "", cs.behind ? cs.reason : "",
             cs.behind ? "\"" : "");
    return cs.ready && !cs.behind;
}

static struct buf *healthz(struct server *srv, unsigned *code)
{
    struct db_stats st;
    char tmp[640], cl[400];
    db_stats(srv->db, &st);
    int serving = healthz_cluster(srv, cl, sizeof cl);
    const char *status = srv->stopping              ? "stopping"
                         : serving                  ? "ok"
                         : strstr(cl, "\"reason\"") ? "behind_log"
                                                    : "catching_up";
    *code = serving ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE;
    snprintf(tmp, sizeof tmp,
             "{\"status\":\"%s\",\"connections\":%d,\"rooms\":%zu,\"db_queue\":%d%s}\n",
             status, __atomic_load_n(&srv->hub->sessions, __ATOMIC_RELAXED),
             metrics_room_count(srv->hub), st.queue_depth, cl);
    struct buf *b = buf_new(strlen(tmp));
    buf_puts(&b, tmp);
    return b;
}

/* Sends the headers; the body follows in HTTP_WRITEABLE. */
static int respond(struct lws *wsi, struct http_body *hb, unsigned code, const char *mime,
                   const char *cache)
{
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
                                       *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, code, mime, hb->len, &p, end)) return -1;
    if (lws_add_http_header_by_name(
            wsi, (const unsigned char *)"cache-control:", (const unsigned char *)cache,
            (int)strlen(cache), &p, end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
                                    (const unsigned char *)"nosniff", 7, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int respond_buf(struct lws *wsi, struct http_body *hb, struct buf *b,
                       const char *mime, unsigned code)
{
    if (!b || b->oom) {
        buf_unref(b);
        return lws_return_http_status(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, NULL), -1;
    }
    hb->owned = b;
    hb->data = BUF_PAYLOAD(b);
    hb->len = b->len;
    return respond(wsi, hb, code, mime, "no-store");
}

static const char method_body[] = "{\"error\":{\"code\":\"method_not_allowed\","
                                  "\"message\":\"only GET outside /api/\"}}\n";

/* Any method but GET outside /api/ (the API answers its own): 405 with
 * Allow, then the connection closes, since a body may follow unread. */
static int method_not_allowed(struct lws *wsi, struct http_body *hb)
{
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
                                      *end = hdr + sizeof hdr - 1;
    hb->data = (const unsigned char *)method_body;
    hb->len = sizeof method_body - 1;
    hb->close_after = 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED,
                                    "application/json", hb->len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                    (const unsigned char *)"GET", 3, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                    (const unsigned char *)"close", 5, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

int http_raw(struct lws *wsi, int reason)
{
    static const char body[] = "{\"error\":{\"code\":\"method_not_allowed\","
                               "\"message\":\"CONNECT is not served\"}}\n";
    unsigned char tmp[LWS_PRE + 256];
    char *out = (char *)tmp + LWS_PRE;
    switch (reason) {
    case LWS_CALLBACK_RAW_ADOPT: /* a client that never reads is dropped */
        lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, 5);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE: {
        int n = snprintf(out, 256,
                         "HTTP/1.1 405 Method Not Allowed\r\nallow: GET, POST\r\n"
                         "content-type: application/json\r\ncontent-length: %zu\r\n"
                         "connection: close\r\n\r\n%s",
                         sizeof body - 1, body);
        lws_write(wsi, tmp + LWS_PRE, (size_t)n, LWS_WRITE_RAW);
        return -1;
    }
    default: /* what the client sends meanwhile is dropped */
        return 0;
    }
}

int http_request(struct server *srv, struct lws *wsi, struct http_body *hb)
{
    char uri[256];
    METRIC_ADD(srv, http_requests, 1);
    memset(hb, 0, sizeof(*hb));
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
        return method_not_allowed(wsi, hb);
    if (!strcmp(uri, "/healthz")) {
        unsigned code;
        struct buf *b = healthz(srv, &code);
        return respond_buf(wsi, hb, b, "application/json", code);
    }
    if (!strcmp(uri, "/metrics"))
        return respond_buf(wsi, hb, metrics_render(srv), "text/plain; version=0.0.4",
                           HTTP_STATUS_OK);
    const struct asset *a = assets_find(uri);
    if (!a) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    hb->data = a->data;
    hb->len = a->size;
    return respond(wsi, hb, HTTP_STATUS_OK, a->mime, "no-cache");
}

int http_writeable(struct lws *wsi, struct http_body *hb)
{
    if (!hb->data) return 0;
    unsigned char tmp[LWS_PRE + HTTP_CHUNK];
    size_t n = hb->len - hb->off;
    if (n > HTTP_CHUNK) n = HTTP_CHUNK;
    int last = hb->off + n == hb->len;
    memcpy(tmp + LWS_PRE, hb->data + hb->off, n);
    if (lws_write(wsi, tmp + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
        (int)n)
        return -1;
    hb->off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    int close = hb->close_after;
    http_done(hb);
    if (close) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void http_done(struct http_body *hb)
{
    buf_unref(hb->owned);
    memset(hb, 0, sizeof(*hb));
}
