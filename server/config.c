/* config.c -- table-driven flag and environment parsing. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum kind { K_LONG, K_DOUBLE, K_STR, K_FLAG, K_CHOICE };

struct opt {
    const char *name;
    enum kind kind;
    size_t off;
    double min, max;     /* K_LONG, K_DOUBLE */
    const char *choices; /* K_CHOICE: "|a|b|" */
    const char *help;
};

#define O(f) offsetof(struct config, f)
static const struct opt opts[] = {
    {"port", K_LONG, O(port), 1, 65535, 0, "TCP port (8080)"},
    {"bind", K_STR, O(bind), 0, 0, 0, "address to listen on (all interfaces)"},
    {"db", K_STR, O(db), 0, 0, 0, "SQLite database file (./parley.db)"},
    {"web-root", K_STR, O(web_root), 0, 0, 0,
     "serve this directory instead of the built-in page"},
    {"jwt-secret", K_STR, O(jwt_secret), 0, 0, 0,
     "HS256 secret for tokens (none: tokens refused)"},
    {"no-guests", K_FLAG, O(no_guests), 0, 0, 0, "refuse guests; a token is required"},
    {"no-guest-dms", K_FLAG, O(no_guest_dms), 0, 0, 0,
     "direct messages between token users only"},
    {"origins", K_STR, O(origins), 0, 0, 0, "comma list of allowed Origins (any)"},
    {"max-connections", K_LONG, O(max_connections), 1, 1000000, 0,
     "WebSocket connections at most (10000)"},
    {"max-text", K_LONG, O(max_text), 1, 100000, 0,
     "characters per message at most (4000)"},
    {"rate", K_DOUBLE, O(rate), 0.001, 1e9, 0, "sends per second per connection (10)"},
    {"burst", K_DOUBLE, O(burst), 1, 1e9, 0, "sends a connection may make at once (20)"},
    {"log-level", K_CHOICE, O(log_level), 0, 0, "|error|warn|info|debug|",
     "error, warn, info or debug (info)"},
    {"log-format", K_CHOICE, O(log_format), 0, 0, "|text|json|", "text or json (text)"},
    {"send-timeout", K_LONG, O(send_timeout), 1, 3600, 0,
     "seconds a client may leave our output unread before 1013 (30)"},
    {"hello-timeout", K_LONG, O(hello_timeout), 1, 3600, 0,
     "seconds a client has to say hello (10)"},
    {"max-frame", K_LONG, O(max_frame), 1024, 16 << 20, 0,
     "bytes per client message at most (65536)"},
    {"outq-max-msgs", K_LONG, O(outq_max_msgs), 1, 1 << 20, 0,
     "frames queued per client before 1013 (4096)"},
    {"outq-max-bytes", K_LONG, O(outq_max_bytes), 1024, 1L << 30, 0,
     "bytes queued per client before 1013 (4 MiB)"},
    {"db-queue", K_LONG, O(db_queue), 1, 1 << 24, 0,
     "database requests queued at most (16384)"},
    {"db-batch", K_LONG, O(db_batch), 1, 1 << 20, 0,
     "requests per transaction at most (1024)"},
    {"db-sync", K_CHOICE, O(db_sync), 0, 0, "|full|normal|",
     "SQLite synchronous: full or normal (full)"},
    {"tls-cert", K_STR, O(tls_cert), 0, 0, 0, "PEM certificate: serve https and wss"},
    {"tls-key", K_STR, O(tls_key), 0, 0, 0, "PEM private key for --tls-cert"},
    {"retention-days", K_LONG, O(retention_days), 0, 1000000, 0,
     "delete messages older than this (0: keep)"},
    {"max-messages-per-room", K_LONG, O(max_messages_per_room), 0, 1L << 40, 0,
     "keep at most this many per room (0: all)"},
    {"max-header-bytes", K_LONG, O(max_header_bytes), 512, 65535, 0,
     "HTTP request header bytes at most (4096)"},
    {"event-loop", K_CHOICE, O(event_loop), 0, 0, "|uv|poll|",
     "uv (epoll, via libuv) or poll (uv)"},
    {"threads", K_LONG, O(threads), 0, 64, 0,
     "event loops, one thread each, sharing the port (0: one per CPU)"},
    {"prune-interval", K_LONG, O(prune_interval), 1, 86400, 0,
     "seconds between retention passes (60)"},
    {"ping-interval", K_LONG, O(ping_interval), 1, 3600, 0,
     "seconds of silence before a WebSocket ping (30)"},
    {"idle-timeout", K_LONG, O(idle_timeout), 2, 86400, 0,
     "seconds without a frame or pong before the connection is dropped (75)"},
    {"api-key", K_STR, O(api_key), 0, 0, 0,
     "enable the HTTP API (docs/api.md): Bearer keys, comma separated (off)"},
    {"guest-rooms", K_STR, O(guest_rooms), 0, 0, 0,
     "comma list of rooms guests may use; name or prefix* (any)"},
    {"max-conns-per-ip", K_LONG, O(max_conns_per_ip), 0, 1000000, 0,
     "WebSocket connections per client address (IPv6: per /64) (100; 0: no limit)"},
    {"guests-per-ip-minute", K_LONG, O(guests_per_ip_minute), 0, 1000000, 0,
     "new guest sessions per client address and minute (60; 0: no limit)"},
    {"api-auth-fails-per-ip", K_LONG, O(api_auth_fails_per_ip), 0, 1000000, 0,
     "failed HTTP API authentications per client address and minute (10; 0: no limit)"},
    {"trust-proxy", K_STR, O(trust_proxy), 0, 0, 0,
     "comma list of proxy addresses whose X-Forwarded-For is believed (none)"},
    {"redis", K_STR, O(redis), 0, 0, 0,
     "redis://HOST:PORT[/DB]: run as one node of a cluster (docs/cluster.md) (off)"},
    {"redis-timeout", K_LONG, O(redis_timeout), 50, 60000, 0,
     "ms Redis has to take a write before it is answered overloaded (1000)"},
    {"redis-log-max", K_LONG, O(redis_log_max), 0, 1L << 40, 0,
     "events the Redis log keeps at least, trimmed beyond (1000000; 0: all)"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 8080;
    c->db = "parley.db";
    c->max_connections = 10000;
    c->max_text = 4000;
    c->rate = 10;
    c->burst = 20;
    c->log_level = "info";
    c->log_format = "text";
    c->hello_timeout = 10;
    c->send_timeout = 30;
    c->max_frame = 65536;
    c->outq_max_msgs = 4096;
    c->outq_max_bytes = 4L << 20;
    c->db_queue = 16384;
    c->db_batch = 1024;
    c->db_sync = "full";
    c->prune_interval = 60;
    c->max_header_bytes = 4096;
    c->event_loop = "uv";
    c->ping_interval = 30;
    c->idle_timeout = 75;
    c->max_conns_per_ip = 100;
    c->guests_per_ip_minute = 60;
    c->api_auth_fails_per_ip = 10;
    c->redis_timeout = 1000;
    c->redis_log_max = 1000000;
}

static void usage(FILE *f)
{
    fprintf(
        f, "Usage: parley [OPTION]...\nA WebSocket chat server with SQLite history.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", opts[i].name,
                 opts[i].kind == K_FLAG ? "" : " V");
        fprintf(f, "  %-28s %s\n", flag, opts[i].help);
    }
    fprintf(f, "  %-28s %s\n  %-28s %s\n\n", "--help", "this text", "--version",
            "print the version");
    fprintf(f,
            "Every option is also read from PARLEY_<NAME> (e.g. PARLEY_JWT_SECRET);\n"
            "the command line wins. A flag variable is on when set to 1, true or yes.\n");
}

/* Stores `val` into the option's field. Returns 0, or -1 after printing. */
static int set_opt(struct config *c, const struct opt *o, const char *val,
                   const char *from)
{
    char *end;
    void *field = (char *)c + o->off;
    errno = 0;
    switch (o->kind) {
    case K_FLAG:
        *(int *)field =
            !strcasecmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes");
        if (*(int *)field || !strcasecmp(val, "0") || !strcasecmp(val, "false") ||
            !strcasecmp(val, "no"))
            return 0;
        break;
    case K_LONG: {
        long v = strtol(val, &end, 10);
        if (!errno && *val && !*end && v >= o->min && v <= o->max) {
            *(long *)field = v;
            return 0;
        }
        break;
    }
    case K_DOUBLE: {
        double v = strtod(val, &end);
        if (!errno && *val && !*end && v >= o->min && v <= o->max) {
            *(double *)field = v;
            return 0;
        }
        break;
    }
    case K_CHOICE: {
        char pat[64];
        snprintf(pat, sizeof pat, "|%s|", val);
        if (*val && !strchr(val, '|') && strstr(o->choices, pat)) {
            *(const char **)field = val;
            return 0;
        }
        break;
    }
    case K_STR:
        if (*val) {
            *(const char **)field = val;
            return 0;
        }
        break;
    }
    fprintf(stderr, "parley: invalid value '%s' for %s%s\n", val, from, o->name);
    return -1;
}

static int from_env(struct config *c)
{
    for (size_t i = 0; i < NOPTS; i++) {
        char name[64] = "PARLEY_";
        size_t n = strlen(name);
        for (const char *p = opts[i].name; *p && n < sizeof name - 1; p++)
            name[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        name[n] = 0;
        const char *v = getenv(name);
        if (v && set_opt(c, &opts[i], v, "PARLEY_ variable for --")) return -1;
    }
    return 0;
}

static const struct opt *find_opt(const char *name, size_t n)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == n && !strncmp(opts[i].name, name, n)) return &opts[i];
    return NULL;
}

static int from_argv(struct config *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), CONFIG_EXIT;
        if (!strcmp(a, "--version"))
            return printf("parley %s\n", PARLEY_VERSION), CONFIG_EXIT;
        const char *eq = strchr(a, '=');
        const struct opt *o =
            !strncmp(a, "--", 2)
                ? find_opt(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2))
                : NULL;
        if (!o) {
            fprintf(stderr, "parley: unknown option '%s' (see --help)\n", a);
            return CONFIG_ERROR;
        }
        const char *val = eq ? eq + 1 : o->kind == K_FLAG ? "1" : NULL;
        if (!val && i + 1 < argc) val = argv[++i];
        if (!val) {
            fprintf(stderr, "parley: option --%s needs a value\n", o->name);
            return CONFIG_ERROR;
        }
        if (set_opt(c, o, val, "--")) return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

/* Splits `origins` into origin_list, dropping trailing slashes. Returns 0, or
 * -1 after printing. A value that names no origin (",", " , ", "/") is an
 * error rather than an empty list: norigins == 0 means "any origin", so
 * accepting it would turn an attempt to restrict origins into allowing all. */
static int split_origins(struct config *c)
{
    if (!c->origins) return 0;
    const char *p = c->origins;
    while (*p) {
        size_t n = strcspn(p, ",");
        while (n && (p[n - 1] == '/' || p[n - 1] == ' '))
            n--;
        while (n && *p == ' ')
            p++, n--;
        if (n) {
            if (c->norigins == CONFIG_MAX_ORIGINS) {
                fprintf(stderr, "parley: more than %d origins in --origins\n",
                        CONFIG_MAX_ORIGINS);
                return -1;
            }
            c->origin_list[c->norigins++] = strndup(p, n);
        }
        p += strcspn(p, ",");
        if (*p == ',') p++;
    }
    if (!c->norigins) {
        fprintf(stderr, "parley: invalid value '%s' for --origins: it names no origin\n",
                c->origins);
        return -1;
    }
    return 0;
}

/* One --guest-rooms entry: a room name, or a name's beginning and '*'
 * ("*" alone: every room). The same characters as room names, so an entry
 * that could never match is refused rather than silently useless. */
static int guest_entry_valid(const char *e, size_t n, int *prefix)
{
    *prefix = n && e[n - 1] == '*';
    if (*prefix) n--;
    if (n > 64 || (!n && !*prefix)) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = e[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 (i > 0 && (ch == '_' || ch == '-'));
        if (!ok) return 0;
    }
    return 1;
}

/* Splits `guest_rooms` into guest_room; every entry must be valid, and an
 * empty list is an error (not "no rooms", not "every room"). */
static int split_guest_rooms(struct config *c)
{
    if (!c->guest_rooms) return 0;
    const char *p = c->guest_rooms;
    for (;;) {
        size_t n = strcspn(p, ",");
        const char *e = p;
        while (n && *e == ' ')
            e++, n--;
        while (n && e[n - 1] == ' ')
            n--;
        int prefix;
        if (!guest_entry_valid(e, n, &prefix)) {
            fprintf(stderr,
                    "parley: invalid --guest-rooms entry '%.*s' (room names or "
                    "prefix*, comma separated)\n",
                    (int)n, e);
            return -1;
        }
        if (c->nguest_rooms == CONFIG_MAX_GUEST_ROOMS) {
            fprintf(stderr, "parley: more than %d entries in --guest-rooms\n",
                    CONFIG_MAX_GUEST_ROOMS);
            return -1;
        }
        c->guest_prefix[c->nguest_rooms] = (unsigned char)prefix;
        if (!(c->guest_room[c->nguest_rooms] = strndup(e, n - (size_t)prefix))) return -1;
        c->nguest_rooms++;
        p += strcspn(p, ",");
        if (!*p) return 0;
        p++;
    }
}

/* Splits `trust_proxy` into trusted[]: every entry must be an address (a
 * name would need a lookup, and a typo must not silently trust nobody). */
static int split_trust_proxy(struct config *c)
{
    if (!c->trust_proxy) return 0;
    const char *p = c->trust_proxy;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (c->ntrusted == CONFIG_MAX_TRUSTED) {
            fprintf(stderr, "parley: more than %d addresses in --trust-proxy\n",
                    CONFIG_MAX_TRUSTED);
            return -1;
        }
        if (iplimit_addr_parse(p, n, &c->trusted[c->ntrusted])) {
            fprintf(stderr,
                    "parley: invalid --trust-proxy entry '%.*s' (IP addresses, comma "
                    "separated)\n",
                    (int)n, p);
            return -1;
        }
        c->ntrusted++;
        p += n;
        if (!*p) return 0;
        p++;
    }
}

/* Splits `api_key` into api_keys. Every key is 16 to 256 visible ASCII
 * characters (what a Bearer header can carry), so a typo like a stray
 * comma is refused at start instead of enabling a short or empty key. The
 * messages never repeat a key: stderr ends up in logs. */
static int split_api_keys(struct config *c)
{
    if (!c->api_key) return 0;
    const char *p = c->api_key;
    for (;;) {
        size_t n = strcspn(p, ",");
        int ok = n >= CONFIG_API_KEY_MIN && n <= CONFIG_API_KEY_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = p[i] > 0x20 && p[i] < 0x7f;
        if (!ok) {
            fprintf(stderr,
                    "parley: invalid --api-key entry %d (each key %d to %d visible ASCII "
                    "characters, comma separated)\n",
                    c->napi_keys + 1, CONFIG_API_KEY_MIN, CONFIG_API_KEY_MAX);
            return -1;
        }
        if (c->napi_keys == CONFIG_MAX_API_KEYS) {
            fprintf(stderr, "parley: more than %d keys in --api-key\n",
                    CONFIG_MAX_API_KEYS);
            return -1;
        }
        if (!(c->api_keys[c->napi_keys] = strndup(p, n))) return -1;
        c->api_key_len[c->napi_keys++] = n;
        p += n;
        if (!*p) return 0;
        p++;
    }
}

int config_guest_room(const struct config *c, const char *room)
{
    if (!c->guest_rooms) return 1;
    for (int i = 0; i < c->nguest_rooms; i++) {
        const char *g = c->guest_room[i];
        if (c->guest_prefix[i] ? !strncmp(room, g, strlen(g)) : !strcmp(room, g))
            return 1;
    }
    return 0;
}

int config_parse(struct config *c, int argc, char **argv)
{
    defaults(c);
    if (from_env(c)) return CONFIG_ERROR;
    int rc = from_argv(c, argc, argv);
    if (rc != CONFIG_OK) return rc;
    if (!c->tls_cert != !c->tls_key) {
        fprintf(stderr, "parley: --tls-cert and --tls-key go together\n");
        return CONFIG_ERROR;
    }
    if (c->burst < 1) {
        fprintf(stderr, "parley: --burst must be at least 1\n");
        return CONFIG_ERROR;
    }
    if (c->ping_interval >= c->idle_timeout) {
        fprintf(stderr, "parley: --ping-interval must be below --idle-timeout\n");
        return CONFIG_ERROR;
    }
    /* An empty PARLEY_GUEST_ROOMS is refused too: K_STR takes no "". */
    if (split_origins(c) || split_guest_rooms(c) || split_trust_proxy(c) ||
        split_api_keys(c)) {
        config_free(c); /* a refused start leaves nothing allocated */
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

void config_free(struct config *c)
{
    for (int i = 0; i < c->norigins; i++)
        free(c->origin_list[i]);
    c->norigins = 0;
    for (int i = 0; i < c->nguest_rooms; i++)
        free(c->guest_room[i]);
    c->nguest_rooms = 0;
    for (int i = 0; i < c->napi_keys; i++)
        free(c->api_keys[i]);
    c->napi_keys = 0;
}

int config_origin_allowed(const struct config *c, const char *origin)
{
    for (int i = 0; i < c->norigins; i++)
        if (!strcasecmp(c->origin_list[i], origin)) return 1;
    return 0;
}
