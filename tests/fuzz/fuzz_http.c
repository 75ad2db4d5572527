/* fuzz_http.c -- the server's own HTTP handling: the checks before a
 * WebSocket upgrade (path, shutdown, connection limit, Origin allow-list and
 * same-origin rule) and the plain requests (/healthz, /metrics, the built-in
 * page), with request headers from the input through fake_lws.c.
 *
 * Input: one flags byte, then NUL-separated fields: URI, Origin, Host, and
 * the --origins value. A missing field is an absent header / no allow-list.
 *
 * Oracle (protocol.md, "At the HTTP upgrade"): an upgrade is let through only
 * on /ws, when not stopping and below the limit, and, with an allow-list and
 * an Origin header, only when that Origin is on the list or its host and port
 * equal the Host header. A refusal carries 403, 404 or 503. /healthz is JSON.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "db.h"
#include "fake_lws.h"
#include "http.h"
#include "hub.h"
#include "log.h"
#include "loop.h"
#include "session.h"

/* Stand-ins for the database module: http.c reads its statistics, and
 * hub.c's router (linked in, never run here) takes its completions. */
void db_take_done(struct db *db, void (*fn)(struct db_req *r, void *arg), void *arg)
{
    (void)db, (void)fn, (void)arg;
}

void db_stats(struct db *db, struct db_stats *out)
{
    (void)db;
    memset(out, 0, sizeof(*out));
    out->batch_hist[2] = 3;
    out->commit_sum_us = 1234.5;
}

/* The documented same-origin comparison: scheme and a default port do not
 * count, nor a trailing slash. */
static void hostport(const char *s, char *out, size_t cap)
{
    const char *p = strstr(s, "://");
    snprintf(out, cap, "%s", p ? p + 3 : s);
    size_t n = strlen(out);
    if (n && out[n - 1] == '/') out[--n] = 0;
    if (n > 3 && !strcmp(out + n - 3, ":80"))
        out[n - 3] = 0;
    else if (n > 4 && !strcmp(out + n - 4, ":443"))
        out[n - 4] = 0;
}

static int listed(const struct config *c, const char *origin)
{
    for (int i = 0; i < c->norigins; i++)
        if (!strcasecmp(c->origin_list[i], origin)) return 1;
    return 0;
}

static const char *field(const char **p, const char *end)
{
    if (*p >= end) return NULL;
    const char *f = *p;
    const char *nul = memchr(f, 0, (size_t)(end - f));
    *p = nul ? nul + 1 : end;
    return f;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init("error", "text");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    unsigned flags = data[0];
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    /* Fields are copied to C strings (lws stores headers NUL-terminated). */
    char *buf = malloc(size + 1);
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = 0;
    const char *q = buf, *qend = buf + (end - p);
    const char *uri = field(&q, qend), *origin = field(&q, qend), *host = field(&q, qend),
               *origins = field(&q, qend);

    struct config cfg;
    char *argv[] = {"parley", "--origins", (char *)(origins ? origins : ""), NULL};
    int argc = origins && origins[0] && (flags & 1) ? 3 : 1;
    int rc = config_parse(&cfg, argc, argv);
    if (rc != CONFIG_OK) {
        config_free(&cfg);
        free(buf);
        return 0;
    }
    struct server srv;
    static struct hub hub;
    memset(&srv, 0, sizeof srv);
    hub_init(&hub, 1);
    hub.loops[0] = &srv;
    srv.hub = &hub;
    srv.cfg = &cfg;
    srv.db = (struct db *)&srv;
    srv.stopping = (flags >> 1) & 1;
    hub.sessions = (flags >> 2) & 1 ? (int)cfg.max_connections : (int)(flags >> 3);

    struct lws *w = calloc(1, sizeof(*w));
    fake_wsi_init(w, 1);
    if (uri) fake_wsi_set_hdr(w, WSI_TOKEN_GET_URI, uri, strlen(uri));
    if (origin) fake_wsi_set_hdr(w, WSI_TOKEN_ORIGIN, origin, strlen(origin));
    if (host) fake_wsi_set_hdr(w, WSI_TOKEN_HOST, host, strlen(host));

    int refused = http_confirm_upgrade(&srv, w);
    assert(refused == 0 || refused == 1);
    const char *o = w->hdr[WSI_TOKEN_ORIGIN], *h = w->hdr[WSI_TOKEN_HOST];
    if (!refused) {
        assert(w->hdr[WSI_TOKEN_GET_URI] && !strcmp(w->hdr[WSI_TOKEN_GET_URI], "/ws"));
        assert(!srv.stopping && hub.sessions < cfg.max_connections);
        if (cfg.norigins && o && o[0] && !listed(&cfg, o)) {
            /* Let through only as same-origin. */
            char a[FAKE_MAX_HDR + 8], b[FAKE_MAX_HDR + 8];
            assert(h && h[0]);
            hostport(o, a, sizeof a);
            hostport(h, b, sizeof b);
            if (strcasecmp(a, b)) {
                fprintf(stderr,
                        "upgrade let through: Origin '%s' (%zu bytes) is not on the "
                        "allow-list and not the Host '%s'\n",
                        o, strlen(o), h);
                abort();
            }
        }
    } else {
        assert(w->http_status == 403 || w->http_status == 404 || w->http_status == 503);
    }

    /* The same request as plain HTTP. */
    struct lws *w2 = calloc(1, sizeof(*w2));
    fake_wsi_init(w2, 2);
    if (uri) fake_wsi_set_hdr(w2, WSI_TOKEN_GET_URI, uri, strlen(uri));
    struct http_body hb;
    if (http_request(&srv, w2, &hb) == 0) {
        if (hb.owned && uri && !strcmp(uri, "/healthz")) {
            cJSON *j =
                cJSON_ParseWithLength((const char *)BUF_PAYLOAD(hb.owned), hb.owned->len);
            assert(cJSON_IsObject(j));
            cJSON_Delete(j);
        }
        for (int i = 0; i < 100000 && hb.data; i++)
            if (http_writeable(w2, &hb)) break;
    }
    http_done(&hb);

    fake_wsi_free(w);
    fake_wsi_free(w2);
    free(w);
    free(w2);
    config_free(&cfg);
    free(buf);
    return 0;
}
