/* metrics.c -- the /metrics body: every loop's counters summed, the
 * database's statistics and histograms, in Prometheus' text format. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cluster.h"
#include "db.h"
#include "hub.h"
#include "iplimit.h"
#include "loop.h"

size_t metrics_room_count(struct hub *h)
{
    hub_lock_rooms(h);
    size_t n = h->rooms.count;
    hub_unlock_rooms(h);
    return n;
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
/* The HTTP API's counters: one family, labelled by status class. */
static void api_metrics(struct buf **b, const struct metrics *m)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp,
             "# HELP parley_api_requests_total HTTP API answers by status class.\n"
             "# TYPE parley_api_requests_total counter\n"
             "parley_api_requests_total{class=\"2xx\"} %llu\n"
             "parley_api_requests_total{class=\"4xx\"} %llu\n"
             "parley_api_requests_total{class=\"5xx\"} %llu\n",
             (unsigned long long)m->api_2xx, (unsigned long long)m->api_4xx,
             (unsigned long long)m->api_5xx);
    buf_puts(b, tmp);
    metric(b, "api_unauthorized_total", "counter",
           "HTTP API requests refused for a missing or wrong key.",
           (double)m->api_unauthorized);
    metric(b, "api_publishes_total", "counter",
           "Bot messages committed through POST /api/publish (repeats not counted).",
           (double)m->api_publishes);
}

/* The cluster's gauges (none for a single node). */
static void cluster_metrics(struct buf **b, struct cluster *c)
{
    struct cluster_status cs;
    if (!c) return;
    cluster_status(c, &cs);
    metric(b, "cluster_log_position", "gauge",
           "The last event of the cluster's log applied and committed here.",
           (double)cs.position);
    metric(b, "cluster_log_lag", "gauge",
           "Events the cluster's log holds that this node has not applied yet.",
           (double)(cs.head > cs.position ? cs.head - cs.position : 0));
    metric(b, "cluster_redis_up", "gauge", "1 when the last call to Redis was answered.",
           (double)cs.redis_up);
}

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

struct buf *metrics_render(struct server *srv)
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
           (double)metrics_room_count(srv->hub));
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
    metric(&b, "db_batches_aborted_total", "counter",
           "Batches SQLite rolled back mid-way (disk full, I/O error): all failed.",
           (double)st.aborted);
    metric(&b, "rate_limited_total", "counter", "Requests refused as rate_limited.",
           (double)m->rate_limited);
    metric(&b, "slow_consumer_closes_total", "counter", "Connections closed with 1013.",
           (double)m->slow_closes);
    metric(&b, "upgrades_refused_total", "counter", "WebSocket upgrades refused.",
           (double)m->upgrades_refused);
    struct iplimit_stats ip;
    iplimit_stats(srv->hub->iplimit, &ip);
    metric(&b, "ip_conn_refused_total", "counter",
           "WebSocket upgrades refused (429) or dropped: too many connections from one "
           "client address.",
           (double)ip.conn_refused);
    metric(&b, "guest_rate_refused_total", "counter",
           "Guest hellos refused as rate_limited: too many new guests from one client "
           "address in a minute.",
           (double)ip.guest_refused);
    metric(&b, "api_auth_refused_total", "counter",
           "HTTP API requests refused: too many failed authentications from one client "
           "address.",
           (double)ip.auth_refused);
    metric(&b, "ip_keys", "gauge",
           "Client address keys tracked for the per-address limits.", (double)ip.keys);
    api_metrics(&b, m);
    metric(&b, "db_queue_depth", "gauge", "Database requests waiting.", st.queue_depth);
    metric(&b, "search_index_lag", "gauge",
           "Ids committed but not yet in the search index.", (double)st.index_lag);
    cluster_metrics(&b, srv->hub->cluster);
    metric(&b, "outq_depth", "gauge", "Frames queued to clients, all connections.",
           (double)queued);
    histogram(&b, "db_batch_size", "Requests per database transaction.", st.batch_hist,
              sizes, 7, (double)st.batch_sum);
    histogram(&b, "db_commit_seconds", "Time to run and commit a writing batch.",
              st.commit_hist, lat, 8, st.commit_sum_us / 1e6);
    return b;
}
