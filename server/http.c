/* http.c -- static files from the binary, health and metrics endpoints,
 * and the Origin / connection-limit checks at the upgrade. */
#include "http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "assets.h"
#include "buf.h"
#include "db.h"
#include "hub.h"
#include "log.h"
#include "server.h"
#include "session.h"

#define HTTP_CHUNK 16384

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
    /* Every loop's connections count; loops accepting at the same instant
     * may each let one more in. */
    if (__atomic_load_n(&srv->hub->sessions, __ATOMIC_RELAXED) >=
        srv->cfg->max_connections)
        return refuse(srv, wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "connection limit");
    if (!origin_ok(srv, wsi))
        return refuse(srv, wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
    return 0;
}

static size_t room_count(struct hub *h)
{
    hub_lock_rooms(h);
    size_t n = h->rooms.count;
    hub_unlock_rooms(h);
    return n;
}

static struct buf *healthz(struct server *srv)
{
    struct db_stats st;
    char tmp[160];
    db_stats(srv->db, &st);
    snprintf(tmp, sizeof tmp,
             "{\"status\":\"%s\",\"connections\":%d,\"rooms\":%zu,\"db_queue\":%d}\n",
             srv->stopping ? "stopping" : "ok",
             __atomic_load_n(&srv->hub->sessions, __ATOMIC_RELAXED), room_count(srv->hub),
             st.queue_depth);
    struct buf *b = buf_new(strlen(tmp));
    buf_puts(&b, tmp);
    return b;
}

static void metric(struct buf **b, const char *name, const char *type, const char *help,
                   double v)
{
    char tmp[400];
    snprintf(tmp, sizeof tmp,
             "# HELP parley_%s %s\n# TYPE parley_%s %s\nparley_%s %.17g\n", name, help,
             name, type, name, v);
    buf_puts(b, tmp);
}

static void histogram(struct buf **b, const char *name, const char *help,
                      const uint64_t *counts, const char *const *les, int n, double sum)
{
    char tmp[400];
    uint64_t cum = 0;
    snprintf(tmp, sizeof tmp, "# HELP parley_%s %s\n# TYPE parley_%s histogram\n", name,
             help, name);
    buf_puts(b, tmp);
    for (int i = 0; i < n; i++) {
        cum += counts[i];
        snprintf(tmp, sizeof tmp, "parley_%s_bucket{le=\"%s\"} %llu\n", name, les[i],
                 (unsigned long long)cum);
        buf_puts(b, tmp);
    }
    snprintf(tmp, sizeof tmp, "parley_%s_sum %.17g\nparley_%s_count %llu\n", name, sum,
             name, (unsigned long long)cum);
    buf_puts(b, tmp);
}

/* Adds up every loop's counters (each written only by its own loop). */
static void metrics_sum(struct hub *h, struct metrics *sum, uint64_t *queued)
{
    enum { N = sizeof(struct metrics) / sizeof(uint64_t) };
    uint64_t *out = (uint64_t *)sum;
    memset(sum, 0, sizeof(*sum));
    for (int l = 0; l < h->nloops; l++) {
        uint64_t *in = (uint64_t *)&h->loops[l]->m;
        for (int i = 0; i < N; i++)
            out[i] += __atomic_load_n(&in[i], __ATOMIC_RELAXED);
        *queued += __atomic_load_n(&h->loops[l]->queued, __ATOMIC_RELAXED);
    }
}

static struct buf *metrics(struct server *srv)
{
    static const char *const sizes[] = {"1", "4", "16", "64", "256", "1024", "+Inf"};
    static const char *const lat[] = {"0.0001", "0.001", "0.005", "0.01",
                                      "0.05",   "0.1",   "1",     "+Inf"};
    struct db_stats st;
    struct metrics sum, *m = &sum;
    uint64_t queued = 0;
    metrics_sum(srv->hub, &sum, &queued);
    db_stats(srv->db, &st);
    struct buf *b = buf_new(4096);
    metric(&b, "connections", "gauge", "Open WebSocket connections.",
           __atomic_load_n(&srv->hub->sessions, __ATOMIC_RELAXED));
    metric(&b, "rooms", "gauge", "Rooms known since start.",
           (double)room_count(srv->hub));
    buf_puts(&b,
             "# HELP parley_loop_connections Open WebSocket connections per event loop.\n"
             "# TYPE parley_loop_connections gauge\n");
    for (int l = 0; l < srv->hub->nloops; l++) {
        char tmp[80];
        snprintf(tmp, sizeof tmp, "parley_loop_connections{loop=\"%d\"} %d\n", l,
                 __atomic_load_n(&srv->hub->loops[l]->nsessions, __ATOMIC_RELAXED));
        buf_puts(&b, tmp);
    }
    metric(&b, "connections_total", "counter", "WebSocket connections accepted.",
           (double)m->connections_total);
    metric(&b, "frames_in_total", "counter", "Client messages received.",
           (double)m->frames_in);
    metric(&b, "frames_out_total", "counter", "Frames sent to clients.",
           (double)m->frames_out);
    metric(&b, "bytes_out_total", "counter", "Payload bytes sent to clients.",
           (double)m->bytes_out);
    metric(&b, "messages_stored_total", "counter", "Messages committed.",
           (double)st.stored);
    metric(&b, "messages_duplicate_total", "counter",
           "Sends answered from an earlier commit.", (double)st.duplicates);
    metric(&b, "messages_pruned_total", "counter", "Messages deleted by retention.",
           (double)st.pruned);
    metric(&b, "db_failures_total", "counter", "Database requests that failed.",
           (double)st.failures);
    metric(&b, "rate_limited_total", "counter", "Requests refused as rate_limited.",
           (double)m->rate_limited);
    metric(&b, "slow_consumer_closes_total", "counter", "Connections closed with 1013.",
           (double)m->slow_closes);
    metric(&b, "upgrades_refused_total", "counter", "WebSocket upgrades refused.",
           (double)m->upgrades_refused);
    metric(&b, "db_queue_depth", "gauge", "Database requests waiting.", st.queue_depth);
    metric(&b, "outq_depth", "gauge", "Frames queued to clients, all connections.",
           (double)queued);
    histogram(&b, "db_batch_size", "Requests per database transaction.", st.batch_hist,
              sizes, 7, (double)st.batch_sum);
    histogram(&b, "db_commit_seconds", "Time to run and commit a writing batch.",
              st.commit_hist, lat, 8, st.commit_sum_us / 1e6);
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
                       const char *mime)
{
    if (!b || b->oom) {
        buf_unref(b);
        return lws_return_http_status(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, NULL), -1;
    }
    hb->owned = b;
    hb->data = BUF_PAYLOAD(b);
    hb->len = b->len;
    return respond(wsi, hb, HTTP_STATUS_OK, mime, "no-store");
}

int http_request(struct server *srv, struct lws *wsi, struct http_body *hb)
{
    char uri[256];
    METRIC_ADD(srv, http_requests, 1);
    memset(hb, 0, sizeof(*hb));
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0) {
        lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    if (!strcmp(uri, "/healthz"))
        return respond_buf(wsi, hb, healthz(srv), "application/json");
    if (!strcmp(uri, "/metrics"))
        return respond_buf(wsi, hb, metrics(srv), "text/plain; version=0.0.4");
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
    http_done(hb);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void http_done(struct http_body *hb)
{
    buf_unref(hb->owned);
    memset(hb, 0, sizeof(*hb));
}
