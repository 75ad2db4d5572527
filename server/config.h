/* config.h -- command-line flags and PARLEY_* environment variables.
 * Parsed once on the main thread at start; read-only afterwards. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stddef.h>

#include "iplimit.h"

#define CONFIG_MAX_ORIGINS 32
#define CONFIG_MAX_GUEST_ROOMS 64
#define CONFIG_MAX_TRUSTED 32
#define CONFIG_MAX_API_KEYS 16
#define CONFIG_API_KEY_MIN 16 /* bytes: a shorter key is refused at start */
#define CONFIG_API_KEY_MAX 256

struct config {
    long port;
    const char *bind; /* NULL: every interface */
    const char *db;
    const char *web_root;
    const char *jwt_secret;
    int no_guests;
    int no_guest_dms;    /* DMs only between token users */
    const char *origins; /* comma list; NULL: any origin */
    long max_connections;
    long max_text;
    double rate, burst;
    const char *log_level;
    const char *log_format;
    long hello_timeout; /* seconds */
    long send_timeout;  /* seconds output may wait for the socket (wire.c) */
    long max_frame;     /* bytes */
    long outq_max_msgs;
    long outq_max_bytes;
    long db_queue;
    long db_batch;
    const char *db_sync; /* "full" or "normal" */
    const char *tls_cert, *tls_key;
    long retention_days;
    long max_messages_per_room;
    long prune_interval; /* seconds */
    long max_header_bytes;
    const char *event_loop;     /* "uv" or "poll" */
    long threads;               /* event loops; 0: one per online CPU */
    long ping_interval;         /* seconds of silence before we ping */
    long idle_timeout;          /* seconds of silence before we hang up */
    const char *guest_rooms;    /* comma list; NULL: guests may use any room */
    long max_conns_per_ip;      /* WebSockets per client key; 0: no limit */
    long guests_per_ip_minute;  /* new guest sessions per key and minute; 0: none */
    long api_auth_fails_per_ip; /* failed API authentications per key and minute */
    const char *trust_proxy;    /* comma list of addresses; NULL: trust no XFF */
    const char *api_key;        /* comma list; NULL: the HTTP API is off (404) */
    const char *redis;          /* redis://host:port[/db]; NULL: one node, no cluster */
    long redis_timeout;         /* ms a write may wait for Redis (cluster.h) */
    long redis_log_max;         /* the log stream's MAXLEN ~; 0: never trimmed */

    int norigins; /* parsed from `origins` */
    char *origin_list[CONFIG_MAX_ORIGINS];
    /* Parsed from `guest_rooms`: a name, or a prefix when `guest_prefix`
     * (the entry ended in '*'; "" then matches every room). */
    int nguest_rooms;
    char *guest_room[CONFIG_MAX_GUEST_ROOMS];
    unsigned char guest_prefix[CONFIG_MAX_GUEST_ROOMS];
    /* Parsed from `trust_proxy`: the peers whose X-Forwarded-For counts. */
    int ntrusted;
    struct iplimit_addr trusted[CONFIG_MAX_TRUSTED];
    /* Parsed from `api_key`: each key and its length (api_parse.h compares
     * a request's key against all of them in constant time). */
    int napi_keys;
    char *api_keys[CONFIG_MAX_API_KEYS];
    size_t api_key_len[CONFIG_MAX_API_KEYS];
};

enum { CONFIG_OK = 0, CONFIG_EXIT = 1, CONFIG_ERROR = 2 };

/* Fills *c from defaults, then PARLEY_<NAME> variables, then argv (which
 * wins). Returns CONFIG_OK; CONFIG_EXIT after printing --help or --version;
 * or CONFIG_ERROR after printing one line to stderr (exit code 2). */
int config_parse(struct config *c, int argc, char **argv);
void config_free(struct config *c);
/* Returns 1 when `origin` (scheme://host[:port]) is on the allow-list. */
int config_origin_allowed(const struct config *c, const char *origin);
/* Returns 1 when --guest-rooms lets guests use `room` (always without it). */
int config_guest_room(const struct config *c, const char *room);

#endif
