/* main.c -- start-up and shut-down order: config, database, listener, loop;
 * then drain clients, commit the queue, exit. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "server.h"
#include "session.h"

static struct server srv; /* the signal handler needs it */

static void on_signal(int sig)
{
    (void)sig;
    server_request_stop(&srv);
}

static int load_guest_key(struct db *db, unsigned char key[32])
{
    char fresh[65];
    if (crypto_random_hex(fresh, 32)) return -1;
    char *hex = db_setting(db, "guest_key", fresh);
    if (!hex || strlen(hex) != 64) {
        free(hex);
        return -1;
    }
    for (int i = 0; i < 32; i++)
        sscanf(hex + 2 * i, "%2hhx", &key[i]);
    free(hex);
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    int rc = config_parse(&cfg, argc, argv);
    if (rc != CONFIG_OK) return rc == CONFIG_EXIT ? 0 : 2;
    log_init(cfg.log_level, cfg.log_format);
    signal(SIGPIPE, SIG_IGN);
    if (crypto_init()) {
        fprintf(stderr, "parley: no entropy for random ids\n");
        return 2;
    }
    struct db_options dbo = {
        .path = cfg.db,
        .queue_max = (int)cfg.db_queue,
        .batch_max = (int)cfg.db_batch,
        .sync_full = !strcmp(cfg.db_sync, "full"),
        .busy_ms = 2000,
        .wake = server_wake,
        .wake_arg = &srv,
        .retention_ms = (int64_t)cfg.retention_days * 86400000,
        .max_per_room = cfg.max_messages_per_room,
        .prune_interval_ms = cfg.prune_interval * 1000,
    };
    srv.cfg = &cfg;
    srv.db = db_open(&dbo, err, sizeof err);
    if (!srv.db) {
        fprintf(stderr, "parley: cannot open database %s\n", err);
        return 2;
    }
    if (load_guest_key(srv.db, srv.guest_key)) {
        fprintf(stderr, "parley: cannot read settings from %s\n", cfg.db);
        rc = 2;
        goto out;
    }
    if (server_start(&srv)) {
        rc = 2;
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    server_run(&srv);
    rc = 0;
out:
    server_destroy(&srv);
    db_stop(srv.db); /* commits everything still queued */
    db_take_done(srv.db, session_on_db_done, &srv);
    db_close(srv.db);
    session_pool_free();
    rooms_free(&srv.rooms);
    config_free(&cfg);
    plog(LOG_INFO, "stopped", "code=%d", rc);
    return rc;
}
