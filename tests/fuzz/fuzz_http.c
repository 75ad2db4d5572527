/* fuzz_http.c -- the server's own HTTP handling: the checks before a
 * WebSocket upgrade (path, shutdown, connection limit, Origin allow-list and
 * same-origin rule) and the plain requests (/healthz, /metrics, the built-in
 * page), with request headers from the input through fake_lws.c.
 *
 * Input: one flags byte, then NUL-separated fields: URI, Origin, Host, and
 * the --origins value. A missing field is an absent header / no allow-list.
 * Then, for the HTTP API's parsing (api_parse.h): an Authorization value
 * and a request body; flags bits 4-6 choose the endpoint the body is
 * parsed for and the piece size the chunked decoder is fed in.
 *
 * Oracle (protocol.md, "At the HTTP upgrade"): an upgrade is let through only
 * on /ws, when not stopping and below the limit, and, with an allow-list and
 * an Origin header, only when that Origin is on the list or its host and port
 * equal the Host header. A refusal carries 403, 404 or 503. /healthz is JSON.
 * API (http-api.md): a key matches only when it is exactly a configured
 * one after "Bearer "; a route only for the five exact paths; a body
 * accepted only with the protocol's rules met (room pattern, text length,
 * a user id that is not guest-shaped; a token's ttl within 30 days, and
 * its claims verify as a token for the same sub); the chunked decoder
 * never passes its bound nor consumes more than it was given; every error
 * body is the documented JSON shape.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cjson/cJSON.h>

#include "api_parse.h"
#include "config.h"
#include "db.h"
#include "fake_lws.h"
#include "http.h"
#include "hub.h"
#include "jwt.h"
#include "log.h"
#include "utf8.h"
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
    proto_init();
    return 0;
}

static char *fuzz_keys[] = {"fuzz-key-0123456789abc", "second-fuzz-key-xyz00"};
static const size_t fuzz_key_lens[] = {22, 21};

/* The documented rule, written plainly: "Bearer" in any case, spaces, one
 * of the keys exactly, trailing spaces. */
static int key_reference(const char *a)
{
    if (strncasecmp(a, "Bearer ", 7)) return 0;
    a += 7;
    while (*a == ' ')
        a++;
    size_t n = strlen(a);
    while (n && a[n - 1] == ' ')
        n--;
    for (int i = 0; i < 2; i++)
        if (n == fuzz_key_lens[i] && !memcmp(a, fuzz_keys[i], n)) return 1;
    return 0;
}

static void check_error_body(enum api_code c)
{
    struct buf *b = api_error_json(c, "m\"s\x01g");
    assert(b);
    cJSON *j = cJSON_ParseWithLength((const char *)BUF_PAYLOAD(b), b->len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert(cJSON_GetArraySize(j) == 1 && cJSON_GetArraySize(e) == 2);
    assert(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code")),
                   api_code_name(c)));
    assert(api_status(c) >= 400 && api_status(c) < 600);
    cJSON_Delete(j);
    buf_unref(b);
}

/* The endpoints, API_PUBLISH .. API_UNBAN. */
#define API_EPS ((int)API_UNBAN)

/* An accepted body meets the rules the oracle states. */
static void check_accepted(enum api_ep ep, const struct api_req *r, int max_text)
{
    if (ep == API_PUBLISH) {
        assert(proto_room_valid(r->p.room));
        assert(strncmp(r->p.room, "dm-", 3) || proto_room_is_dm(r->p.room));
        size_t n = utf8_count(r->p.text, r->p.text_len);
        assert(n >= 1 && n <= (size_t)max_text);
        assert(r->user_id[0] && strlen(r->user_id) <= PROTO_MAX_USER);
        assert(!proto_user_guest_shaped(r->user_id));
        assert(r->p.client_id[0] && strlen(r->p.client_id) <= 4 * PROTO_MAX_CLIENT_ID);
    } else if (ep == API_DELETE) {
        assert(proto_room_valid(r->p.room) && r->p.id >= 1);
    } else if (ep >= API_KICK && ep <= API_UNBAN) { /* the moderation actions */
        int room_optional = ep == API_BAN || ep == API_UNBAN,
            timed = ep == API_MUTE || ep == API_BAN;
        assert(r->p.room ? proto_room_valid(r->p.room) : room_optional);
        assert(r->p.user && r->p.user[0] && strlen(r->p.user) <= PROTO_MAX_USER);
        assert(timed ? r->p.minutes == -1 ||
                           (r->p.minutes >= 1 && r->p.minutes <= PROTO_MAX_MINUTES)
                     : r->p.minutes == -1);
        assert(!r->p.reason ||
               utf8_count(r->p.reason, strlen(r->p.reason)) <= PROTO_MAX_REASON);
    } else if (ep == API_TOKEN) {
        assert(r->ttl >= 1 && r->ttl <= API_TTL_MAX);
        assert(!proto_user_guest_shaped(r->user_id));
        char *claims = api_token_claims(r, 1000000);
        assert(claims);
        char *tok = jwt_sign_payload("k", 1, claims, strlen(claims));
        struct jwt_claims c;
        const char *why;
        assert(jwt_verify(tok, "k", 1, 1000000, &c, &why) == 0);
        assert(!strcmp(c.sub, r->user_id) && c.exp == 1000000 + r->ttl);
        jwt_claims_free(&c);
        free(tok);
        free(claims);
    }
}

/* The API's pure parsing on the input's URI, Authorization and body. */
static void fuzz_api(unsigned flags, const char *uri, const char *authz, const char *body,
                     size_t blen)
{
    static const char *const paths[] = {
        "/api/publish", "/api/delete", "/api/history", "/api/rooms", "/api/token",
        "/api/kick",    "/api/mute",   "/api/unmute",  "/api/ban",   "/api/unban"};
    if (uri) {
        enum api_ep ep = api_route(uri);
        int known = 0;
        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
            known |= !strcmp(uri, paths[i]);
        assert(known == (ep != API_UNKNOWN));
        /* The query part as decoded arguments. */
        const char *q = strchr(uri, '?');
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", q ? q + 1 : "");
        const char *args[API_MAX_QUERY_ARGS];
        int n = 0;
        for (char *save, *a = strtok_r(tmp, "&", &save); a && n < API_MAX_QUERY_ARGS;
             a = strtok_r(NULL, "&", &save)) {
            args[n++] = a;
            (void)api_query_secret(a);
        }
        struct api_req r;
        const char *msg = NULL;
        enum api_code c = api_parse_query(API_HISTORY, args, n, &r, &msg);
        if (c == API_OK) {
            assert(proto_room_valid(r.p.room));
            assert(r.p.limit >= 1 && r.p.limit <= PROTO_HISTORY_MAX);
            assert(r.p.before < 0 || r.p.after < 0);
        } else {
            assert(msg);
            check_error_body(c);
        }
        api_req_free(&r);
    }
    if (authz)
        assert(api_key_matches(authz, fuzz_keys, fuzz_key_lens, 2) ==
               key_reference(authz));
    if (!body) return;
    (void)api_content_type_json(body);
    /* The body as a chunked stream, in pieces, with a small bound. */
    struct api_chunked st = {0};
    struct buf *out = buf_new(64);
    size_t off = 0, step = ((flags >> 4) & 7) + 1;
    int rc = API_CHUNK_MORE;
    while (off < blen && rc == API_CHUNK_MORE) {
        size_t used, k = blen - off < step ? blen - off : step;
        rc = api_chunked_feed(&st, body + off, k, &out, 512, &used);
        assert(used <= k && out->len <= 512);
        off += used;
    }
    buf_unref(out);
    /* The body as each endpoint's. */
    const struct proto_limits lim = {.max_text = 1 + (int)(flags & 0x0f)};
    enum api_ep ep = (enum api_ep)(1 + ((flags >> 4) % API_EPS));
    for (int pass = 0; pass < 2; pass++, ep = API_PUBLISH + (ep % API_EPS)) {
        if (ep == API_HISTORY || ep == API_ROOMS) continue;
        struct api_req r;
        const char *msg = NULL;
        enum api_code c = api_parse_body(ep, body, blen, &lim, "api-fuzz", &r, &msg);
        if (c == API_OK)
            check_accepted(ep, &r, lim.max_text);
        else
            assert(msg), check_error_body(c);
        api_req_free(&r);
    }
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
               *origins = field(&q, qend), *authz = field(&q, qend);
    /* The rest of the input, NULs included, is the body. */
    const char *body = q < qend ? q : NULL;
    fuzz_api(flags, uri, authz, body, body ? (size_t)(qend - q) : 0);

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
    hub_free(&hub); /* hub_init made its registry of mutes and bans */
    config_free(&cfg);
    free(buf);
    return 0;
}
