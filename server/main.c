/* main.c -- start-up and shut-down order: config, database, one listener
 * per event loop, the loops on their threads; then drain clients, commit
 * the queue, exit. */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "hub.h"
#include "sanction.h"
#include "log.h"
#include "member.h"
#include "protocol.h"
#include "server.h"
#include "session.h"
#include "online.h"
#include "send.h"

static struct hub hub; /* the signal handler needs it */

static void on_signal(int sig)
{
    (void)sig;
    /* A lock-free store: async-signal-safe; each loop's tick notices it. */
    __atomic_store_n(&hub.stop_requested, 1, __ATOMIC_RELAXED);
}

/* The key that signs guests' resume tokens: this file's, made at its
 * first start. A cluster's nodes all use the first node's (cluster_shared),
 * so a guest resumes on any node; the file keeps a copy for a start while
 * Redis is unreachable. */
static int load_guest_key(struct db *db, struct cluster *cl, unsigned char key[32])
{
    char fresh[65], shared[65];
    if (crypto_random_hex(fresh, 32)) return -1;
    char *hex = db_setting(db, "guest_key", fresh);
    if (!hex || strlen(hex) != 64) {
        free(hex);
        return -1;
    }
    if (cl && !cluster_shared(cl, "guest_key", hex, shared, sizeof shared) &&
        strlen(shared) == 64 && strcmp(shared, hex)) {
        memcpy(hex, shared, 65);
        if (db_setting_set(db, "guest_key", hex))
            plog(LOG_WARN, "guest-key",
                 "reason=\"cannot store the cluster's guest key\"");
    }
    for (int i = 0; i < 32; i++)
        sscanf(hex + 2 * i, "%2hhx", &key[i]);
    free(hex);
    return 0;
}

/* Our own listeners (listen.c) bind IP addresses; lws' own takes an
 * interface name too. */
static int bind_is_literal(const struct config *cfg)
{
    unsigned char a[16];
    return !cfg->bind || inet_pton(AF_INET, cfg->bind, a) == 1 ||
           inet_pton(AF_INET6, cfg->bind, a) == 1;
}

/* --threads, or one loop per CPU. One loop only: with lws' own poll loop
 * (only a libuv loop can watch our listening sockets, listen.h), and with
 * TLS (libwebsockets 4.1 + OpenSSL 3 leave every TLS context but one
 * unfreed at exit, ~700 KB each; measured under LeakSanitizer). */
static int loop_count(const struct config *cfg)
{
    long n = cfg->threads ? cfg->threads : sysconf(_SC_NPROCESSORS_ONLN);
    const char *why = cfg->event_loop[0] == 'p' ? "--event-loop poll"
                      : cfg->tls_cert           ? "TLS"
                      : !bind_is_literal(cfg)   ? "--bind with a name (not an address)"
                                                : NULL;
    if (n > 1 && why) {
        if (cfg->threads)
            plog(LOG_WARN, "one-loop", "reason=\"%s runs on one event loop\"", why);
        n = 1;
    }
    return n < 1 ? 1 : n > HUB_MAX_LOOPS ? HUB_MAX_LOOPS : (int)n;
}

static void *loop_thread(void *arg)
{
    server_run(arg);
    return NULL;
}

/* Creates every loop's context (main thread, one after another: lws'
 * global TLS set-up happens once, with the first). Returns 0 or -1. */
static int start_loops(struct server *loops, const struct config *cfg,
                       const unsigned char key[32])
{
    for (int i = 0; i < hub.nloops; i++) {
        loops[i].cfg = cfg;
        loops[i].db = hub.db;
        loops[i].hub = &hub;
        loops[i].index = i;
        loops[i].listen_fd = -1;
        memcpy(loops[i].guest_key, key, 32);
        hub.loops[i] = &loops[i];
    }
    for (int i = 0; i < hub.nloops; i++)
        if (server_start(&loops[i])) return -1;
    return 0;
}

/* Runs loop 0 here and the others on their own threads, until all end.
 * Returns 0, or -1 when a thread could not start (the others were told to
 * stop). */
static int run_loops(struct server *loops)
{
    pthread_t th[HUB_MAX_LOOPS];
    int started = 1;
    for (; started < hub.nloops; started++)
        if (pthread_create(&th[started], NULL, loop_thread, &loops[started])) {
            plog(LOG_ERROR, "thread-failed", "loop=%d", started);
            __atomic_store_n(&hub.stop_requested, 1, __ATOMIC_RELAXED);
            break;
        }
    server_run(&loops[0]);
    for (int i = 1; i < started; i++)
        pthread_join(th[i], NULL);
    return started == hub.nloops ? 0 : -1;
}

/* db_sanctions_load's callback: into the registry the loops check. */
static void load_sanction(void *arg, const char *user, const char *room, int ban,
                          int64_t until)
{
    if (sanctions_set(arg, user, room, ban ? SANCTION_BAN : SANCTION_MUTE, until))
        plog(LOG_ERROR, "sanction-lost", "user=%s room=%s reason=\"out of memory\"", user,
             room);
}

/* The per-address table, unless every per-address limit is off (then no
 * lock is taken per connection). Main thread. Returns 0, or -1 (no memory). */
static int make_iplimit(const struct config *cfg)
{
    if (!cfg->max_conns_per_ip && !cfg->guests_per_ip_minute &&
        !cfg->api_auth_fails_per_ip)
        return 0;
    struct iplimit_config ic = {
        .max_conns = cfg->max_conns_per_ip,
        .guests_per_min = cfg->guests_per_ip_minute,
        .auth_fails_per_min = cfg->api_auth_fails_per_ip,
        /* Connected keys are at most the connections (a few more while loops
         * race at the limit); the rest are keys kept for their windows. */
        .max_keys = (size_t)cfg->max_connections + HUB_MAX_LOOPS + IPLIMIT_IDLE_KEYS,
    };
    if (!(hub.iplimit = iplimit_new(&ic))) {
        fprintf(stderr, "parley: out of memory\n");
        return -1;
    }
    return 0;
}

/* With --redis: the cluster, its hooks set in the database's options.
 * Main thread. Returns 0, or -1 after saying why on stderr. */
static int make_cluster(const struct config *cfg, struct db_options *dbo)
{
    char err[256];
    if (!cfg->redis) return 0;
    struct cluster_options co = {
        .url = cfg->redis,
        .timeout_ms = (int)cfg->redis_timeout,
        .log_max = cfg->redis_log_max,
        .deliver = hub_post_room,
        .each_member = member_each_joined,
        .hub = &hub,
    };
    if (!(hub.cluster = cluster_new(&co, err, sizeof err))) {
        fprintf(stderr, "parley: %s\n", err);
        return -1;
    }
    cluster_hooks(hub.cluster, dbo);
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    unsigned char key[32];
    struct server *loops = NULL;
    int rc = config_parse(&cfg, argc, argv);
    if (rc != CONFIG_OK) return rc == CONFIG_EXIT ? 0 : 2;
    log_init(cfg.log_level, cfg.log_format);
    proto_init(); /* before any loop parses */
    signal(SIGPIPE, SIG_IGN);
    if (crypto_init()) {
        fprintf(stderr, "parley: no entropy for random ids\n");
        return 2;
    }
    if (hub_init(&hub, loop_count(&cfg))) {
        fprintf(stderr, "parley: out of memory\n");
        return 2;
    }
    struct db_options dbo = {
        .path = cfg.db,
        .queue_max = (int)cfg.db_queue,
        .batch_max = (int)cfg.db_batch,
        .sync_full = !strcmp(cfg.db_sync, "full"),
        .busy_ms = 2000,
        .wake = hub_route, /* completions go to the loops from the worker */
        .wake_arg = &hub,
        .search_done = hub_search_done, /* searches go back from their thread */
        .search_arg = &hub,
        .no_guest_dms = cfg.no_guest_dms,
        .retention_ms = (int64_t)cfg.retention_days * 86400000,
        .max_per_room = cfg.max_messages_per_room,
        .prune_interval_ms = cfg.prune_interval * 1000,
    };
    if (make_cluster(&cfg, &dbo)) {
        hub_free(&hub);
        return 2;
    }
    hub.db = db_open(&dbo, err, sizeof err);
    if (!hub.db) {
        fprintf(stderr, "parley: cannot open database %s\n", err);
        cluster_free(hub.cluster);
        hub_free(&hub);
        return 2;
    }
    rc = 2;
    if (hub.cluster && cluster_start(hub.cluster, hub.db)) {
        fprintf(stderr, "parley: cannot start the cluster's threads\n");
        goto out;
    }
    if (load_guest_key(hub.db, hub.cluster, key)) {
        fprintf(stderr, "parley: cannot read settings from %s\n", cfg.db);
        goto out;
    }
    if (db_sanctions_load(hub.db, wall_ms(), load_sanction, hub.sanctions)) {
        fprintf(stderr, "parley: cannot read the mutes and bans from %s\n", cfg.db);
        goto out;
    }
    if (make_iplimit(&cfg)) goto out;
    if (!(loops = calloc((size_t)hub.nloops, sizeof(*loops)))) goto out;
    /* Before the first loop listens: a client may connect (and a test send
     * SIGTERM) while the other loops are still being set up. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (start_loops(loops, &cfg, key)) goto out;
    rc = run_loops(loops) ? 2 : 0;
out:
    for (int i = 0; loops && i < hub.nloops; i++)
        server_destroy(&loops[i]); /* every loop has stopped */
    db_stop(hub.db);           /* commits everything still queued; the worker routes it */
    cluster_stop(hub.cluster); /* answers the writes still waiting for Redis */
    for (int i = 0; loops && i < hub.nloops; i++)
        hub_take(&hub, i, server_on_db_done, &loops[i]);
    db_close(hub.db);
    cluster_free(hub.cluster);
    for (int i = 0; loops && i < hub.nloops; i++) {
        send_pool_free(&loops[i]);
        online_free(&loops[i]);
    }
    free(loops);
    iplimit_free(hub.iplimit); /* every connection released its count by now */
    hub_free(&hub);
    config_free(&cfg);
    plog(LOG_INFO, "stopped", "code=%d", rc);
    return rc;
}
