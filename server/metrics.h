/* metrics.h -- the counters behind /metrics and their Prometheus text.
 *
 * Each event loop keeps its own struct metrics, written only by its own
 * thread and summed by whichever loop serves /metrics.
 */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct buf;
struct hub;

/* Counters written only by their loop's thread and summed by whichever
 * loop serves /metrics: stored and read with relaxed atomics (the writer
 * is alone, so no locked add is needed). All uint64_t. */
struct metrics {
    uint64_t connections_total, frames_in, frames_out, bytes_out, rate_limited,
        slow_closes, upgrades_refused, http_requests;
    /* HTTP API (api.c): answers by status class (2xx, 4xx, 5xx; 401s are
     * also in api_unauthorized), and bot messages committed (not repeats). */
    uint64_t api_2xx, api_4xx, api_5xx, api_unauthorized, api_publishes;
};

#define OWN_ADD(var, n)                                                                  \
    __atomic_store_n(&(var), __atomic_load_n(&(var), __ATOMIC_RELAXED) + (n),            \
                     __ATOMIC_RELAXED)
#define METRIC_ADD(srv, field, n) OWN_ADD((srv)->m.field, (uint64_t)(n))

/* The whole /metrics body (every loop's counters summed, the database's
 * statistics, gauges), or NULL / a buf with oom set when memory ran out.
 * Any loop's thread. */
struct buf *metrics_render(struct server *srv);
/* Rooms in memory now (under the rooms lock). Any thread. */
size_t metrics_room_count(struct hub *h);

#endif
