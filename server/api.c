/* api.c -- the HTTP API on the event loop (api.h): key check, body
 * reading, database requests, answers. Parsing is api_parse.c's. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_parse.h"
#include "api_rooms.h"
#include "buf.h"
#include "cluster.h"
#include "clock.h"
#include "crypto.h"
#include "db.h"
#include "fanout.h"
#include "jwt.h"
#include "log.h"
#include "hub.h"
#include "peer.h"
#include "iplimit.h"
#include "loop.h"
#include "metrics.h"
#include "moderate.h"

/* Seconds a client has to send its whole body, and then for the answer
 * (the database's commit): a slow or stalled client holds a connection
 * and at most 64 KiB for this long. Between two pieces of a body,
 * libwebsockets' own timeout (5 s, reset on every piece it reads) applies
 * as well; the whole-body deadline stops a client that drips a byte every
 * few seconds. */
#define API_BODY_TIMEOUT_S 10
#define API_WAIT_TIMEOUT_S 30
#define API_WRITE_CHUNK 16384
#define API_BOT_ID PROTO_API_ACTOR /* `by` of an API delete */
#define API_BOT_NAME "API"

enum api_stage {
    API_READING, /* a POST's body is arriving */
    API_WAITING, /* the database has call->r (db.h ownership) */
    API_ANSWER,  /* the answer is being written */
};

struct api_call {
    struct db_req r; /* first: a completion comes back as &call->r */
    struct lws *wsi; /* NULL once orphaned (api.h) */
    struct server *srv;
    enum api_stage stage;
    enum api_ep ep;
    struct buf *body;   /* a POST's body so far (at most API_MAX_BODY) */
    struct api_req req; /* parsed: owns the strings r points to */
    struct buf *out;    /* the answer's body */
    size_t off;         /* bytes of out written */
    unsigned status;
    int close_after; /* the request was not read to its end: close */
    int chunked;     /* Transfer-Encoding: chunked (decoded by dechunk) */
    struct api_chunked dechunk;
    int64_t deadline_us; /* the whole body by then (server_now_us) */
    char client_id[40];  /* a publish's, when it brought none */
};

/* ---- the call's life ---- */

static struct api_call *call_new(struct server *srv, struct lws *wsi, enum api_ep ep)
{
    struct api_call *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->srv = srv;
    c->wsi = wsi;
    c->ep = ep;
    return c;
}

/* Frees c and what it owns. Never while the database has c->r. */
static void call_free(struct api_call *c)
{
    if (!c) return;
    buf_unref(c->body);
    buf_unref(c->out);
    buf_unref(c->r.frame);
    buf_unref(c->r.pair);
    buf_unref(c->r.peer);
    buf_unref(c->r.rows);
    buf_unref(c->r.updates);
    api_req_free(&c->req);
    free(c);
}

void api_closed(struct api_conn *ac)
{
    struct api_call *c = ac->call;
    ac->call = NULL;
    if (!c) return;
    if (c->stage == API_WAITING)
        c->wsi = NULL; /* the completion frees it (api.h) */
    else
        call_free(c);
}

/* ---- answers ---- */

static void count_answer(struct server *srv, unsigned status)
{
    if (status < 300)
        METRIC_ADD(srv, api_2xx, 1);
    else if (status < 500)
        METRIC_ADD(srv, api_4xx, 1);
    else
        METRIC_ADD(srv, api_5xx, 1);
}

static int add_header(struct lws *wsi, const char *name, const char *value,
                      unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value),
                                       p, end);
}

/* Writes the rest of c's answer body (at most API_WRITE_CHUNK) at once.
 * Returns -1: close. */
static int write_rest_and_close(struct api_call *c)
{
    unsigned char tmp[LWS_PRE + API_WRITE_CHUNK];
    size_t n = c->out->len - c->off;
    memcpy(tmp + LWS_PRE, BUF_PAYLOAD(c->out) + c->off, n);
    lws_write(c->wsi, tmp + LWS_PRE, n, LWS_WRITE_HTTP_FINAL);
    c->off = c->out->len;
    return -1;
}

/* Sends the headers of c's answer (c->status, c->out); the body follows in
 * api_writeable. Returns 0, or -1 to close. */
static int send_headers(struct api_call *c)
{
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
                                       *end = hdr + sizeof hdr - 1;
    struct lws *wsi = c->wsi;
    c->stage = API_ANSWER;
    count_answer(c->srv, c->status);
    if (lws_add_http_common_headers(wsi, c->status, "application/json", c->out->len, &p,
                                    end) ||
        add_header(wsi, "cache-control:", "no-store", &p, end) ||
        add_header(wsi, "x-content-type-options:", "nosniff", &p, end))
        return -1;
    if (c->status == 405 && add_header(wsi, "allow:", api_method(c->ep), &p, end))
        return -1;
    if (c->status == 401 && add_header(wsi, "www-authenticate:", "Bearer", &p, end))
        return -1;
    if (c->close_after && add_header(wsi, "connection:", "close", &p, end)) return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
    /* Closing after it: a short answer goes out now, before libwebsockets
     * reads on and meets bytes past a body whose length it misread (a
     * bad Content-Length), which would drop the connection unanswered. */
    if (c->close_after && c->out->len <= API_WRITE_CHUNK) return write_rest_and_close(c);
    /* A client that stops reading its answer is closed, re-armed per piece. */
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, API_WAIT_TIMEOUT_S);
    lws_callback_on_writable(wsi);
    return 0;
}

/* Answers c with status and body b (taken over; NULL: out of memory, a
 * 500 without a body is impossible, so the connection closes). */
static int answer(struct api_call *c, unsigned status, struct buf *b)
{
    if (!b) return -1;
    buf_unref(c->out);
    c->out = b;
    c->status = status;
    c->off = 0;
    return send_headers(c);
}

static int answer_error(struct api_call *c, enum api_code code, const char *msg)
{
    return answer(c, api_status(code), api_error_json(code, msg));
}

int api_writeable(struct lws *wsi, struct api_conn *ac)
{
    struct api_call *c = ac->call;
    if (!c || c->stage != API_ANSWER || !c->out) return 0;
    unsigned char tmp[LWS_PRE + API_WRITE_CHUNK];
    size_t n = c->out->len - c->off;
    if (n > API_WRITE_CHUNK) n = API_WRITE_CHUNK;
    int last = c->off + n == c->out->len;
    memcpy(tmp + LWS_PRE, BUF_PAYLOAD(c->out) + c->off, n);
    if (lws_write(wsi, tmp + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
        (int)n)
        return -1;
    c->off += n;
    if (!last) {
        lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, API_WAIT_TIMEOUT_S);
        lws_callback_on_writable(wsi);
        return 0;
    }
    int close = c->close_after;
    ac->call = NULL;
    call_free(c);
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    if (close) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- authentication ---- */

/* Called on every refused key: a missing, wrong or other-scheme
 * Authorization, or a credential in the URL. The per-IP limiter of failed
 * attempts is wired here. Logs the peer, never what it sent. */
static void api_auth_failed_hook(struct server *srv, struct lws *wsi)
{
    char ip[64] = "";
    lws_get_peer_simple(wsi, ip, sizeof ip);
    METRIC_ADD(srv, api_unauthorized, 1);
    plog(LOG_INFO, "api-unauthorized", "peer=%s", ip);
}

/* An address past --api-auth-fails-per-ip refused keys in the last
 * minute: every request from it is answered 429, before its key is
 * looked at, so a guesser learns nothing more until the minute passes
 * (a right key included: it cannot tell a hit). */
static int auth_blocked(struct server *srv, struct lws *wsi)
{
    struct iplimit *t = srv->hub->iplimit;
    if (!t) return 0;
    struct iplimit_key k;
    peer_client_key(srv, wsi, &k);
    return iplimit_auth_blocked(t, &k, server_now_us());
}

/* Counts a refused key against its address. */
static void auth_failed(struct server *srv, struct lws *wsi)
{
    struct iplimit *t = srv->hub->iplimit;
    if (!t) return;
    struct iplimit_key k;
    peer_client_key(srv, wsi, &k);
    iplimit_auth_failed(t, &k, server_now_us());
}

/* The request's path and method, whatever the method. Returns the method
 * name, or NULL when the path is absent or too long. */
static const char *path_and_method(struct lws *wsi, char *path, size_t cap)
{
    static const struct {
        enum lws_token_indexes tok;
        const char *name;
    } methods[] = {
        {WSI_TOKEN_GET_URI, "GET"},     {WSI_TOKEN_POST_URI, "POST"},
        {WSI_TOKEN_PUT_URI, "PUT"},     {WSI_TOKEN_DELETE_URI, "DELETE"},
        {WSI_TOKEN_PATCH_URI, "PATCH"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
        {WSI_TOKEN_HEAD_URI, "HEAD"},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (lws_hdr_total_length(wsi, methods[i].tok))
            return lws_hdr_copy(wsi, path, (int)cap, methods[i].tok) > 0 ? methods[i].name
                                                                         : NULL;
    return NULL;
}

int api_claims(struct lws *wsi)
{
    char path[256];
    if (!path_and_method(wsi, path, sizeof path)) return 0;
    return !strcmp(path, "/api") || !strncmp(path, "/api/", 5);
}

/* The decoded query arguments ("name=value"), at most API_MAX_QUERY_ARGS
 * in `store`. Returns how many, or -1 when there are more or one is too
 * long. */
static int query_args(struct lws *wsi, char store[][256], const char **args)
{
    int n = 0;
    for (;; n++) {
        char tmp[256];
        int len = lws_hdr_copy_fragment(wsi, tmp, sizeof tmp, WSI_TOKEN_HTTP_URI_ARGS, n);
        if (len < 0) {
            /* -1: no such fragment (the end), or one too long for tmp */
            if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, n) > 0) return -1;
            return n;
        }
        if (n == API_MAX_QUERY_ARGS) return -1;
        memcpy(store[n], tmp, (size_t)len + 1);
        args[n] = store[n];
    }
}

/* Whether query argument i, too long for the caller's buffer (flen bytes),
 * names a credential: copied whole to look at its name. Out of memory:
 * refused, as a credential. */
static int long_secret(struct lws *wsi, int i, int flen)
{
    char *tmp = malloc((size_t)flen + 1);
    int secret =
        !tmp ||
        lws_hdr_copy_fragment(wsi, tmp, flen + 1, WSI_TOKEN_HTTP_URI_ARGS, i) < 0 ||
        api_query_secret(tmp);
    free(tmp);
    return secret;
}

/* 1 when some query argument names a credential (api_query_secret). An
 * argument too long for query_args is looked at too, by its name only: a
 * right key with a long argument is a bad request (query_args), not a
 * failed authentication counted against the address. */
static int secret_in_url(struct lws *wsi)
{
    char tmp[256];
    for (int i = 0;; i++) {
        int len = lws_hdr_copy_fragment(wsi, tmp, sizeof tmp, WSI_TOKEN_HTTP_URI_ARGS, i);
        int flen = len < 0 ? lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) : 0;
        if (len < 0 && flen <= 0) return 0;
        if (len < 0 ? long_secret(wsi, i, flen) : api_query_secret(tmp)) return 1;
    }
}

static int key_ok(struct server *srv, struct lws *wsi)
{
    char authz[CONFIG_API_KEY_MAX + 64];
    const struct config *cfg = srv->cfg;
    if (lws_hdr_copy(wsi, authz, sizeof authz, WSI_TOKEN_HTTP_AUTHORIZATION) <= 0)
        return 0;
    int ok = api_key_matches(authz, cfg->api_keys, cfg->api_key_len, cfg->napi_keys);
    explicit_bzero(authz, sizeof authz); /* no copy of a key outlives the check */
    return ok;
}

/* ---- the endpoints ---- */

/* Submits c->r (filled by the caller) and waits for the completion.
 * Answers overloaded when the queue is full. */
static int submit(struct api_call *c)
{
    c->r.api = 1;
    c->r.owner = c;
    c->r.loop = c->srv->index;
    if (db_submit(c->srv->db, &c->r))
        return answer_error(c, API_OVERLOADED, "the server is busy; retry later");
    c->stage = API_WAITING;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, API_WAIT_TIMEOUT_S);
    return 0;
}

static int do_publish(struct api_call *c)
{
    const struct proto_req *q = &c->req.p;
    if (proto_room_is_dm(q->room))
        return answer_error(c, API_FORBIDDEN, "bots do not write into direct messages");
    struct db_req *r = &c->r;
    r->op = DB_SEND;
    r->room = q->room;
    r->user_id = c->req.user_id;
    r->user_name = c->req.user_name;
    r->client_id = q->client_id;
    r->text = q->text;
    r->text_len = q->text_len;
    return submit(c);
}

static int do_delete(struct api_call *c)
{
    struct db_req *r = &c->r;
    r->op = DB_DELETE;
    r->room = c->req.p.room;
    r->msg_id = c->req.p.id;
    r->user_id = API_BOT_ID;
    r->user_name = API_BOT_NAME;
    r->any_author = 1;
    return submit(c);
}

static int do_history(struct api_call *c)
{
    const struct proto_req *q = &c->req.p;
    struct db_req *r = &c->r;
    r->op = DB_READ;
    r->room = q->room;
    r->user_id = API_BOT_ID; /* a DM room's read is allowed (db.h: api) */
    r->before = q->before;
    r->after = q->after;
    r->since = -1;
    r->limit = q->limit;
    return submit(c);
}

static int do_rooms(struct api_call *c)
{
    struct db_req *r = &c->r;
    r->op = DB_READ;
    r->all_rooms = 1;
    r->user_id = API_BOT_ID;
    r->since = r->before = r->after = -1;
    return submit(c);
}

static int do_token(struct api_call *c)
{
    const char *secret = c->srv->cfg->jwt_secret;
    if (!secret)
        return answer_error(c, API_CONFLICT,
                            "the server has no --jwt-secret: it accepts no tokens");
    char *claims = api_token_claims(&c->req, (int64_t)time(NULL));
    char *tok =
        claims ? jwt_sign_payload(secret, strlen(secret), claims, strlen(claims)) : NULL;
    free(claims);
    if (!tok) return answer_error(c, API_INTERNAL, "out of memory");
    struct buf *b = buf_new(strlen(tok) + 16);
    buf_puts(&b, "{\"token\":");
    buf_put_jstrz(&b, tok);
    buf_puts(&b, "}\n");
    free(tok);
    if (b && b->oom) buf_unref(b), b = NULL;
    return b ? answer(c, 200, b) : answer_error(c, API_INTERNAL, "out of memory");
}

/* kick, mute, unmute, ban, unban: as a moderator's, by the actor "api"
 * (moderate.h), which may act in every room and server-wide. */
static int do_moderate(struct api_call *c)
{
    static const enum db_mod_action actions[] = {
        [API_KICK] = DB_MOD_KICK,     [API_MUTE] = DB_MOD_MUTE,
        [API_UNMUTE] = DB_MOD_UNMUTE, [API_BAN] = DB_MOD_BAN,
        [API_UNBAN] = DB_MOD_UNBAN,
    };
    const struct proto_req *q = &c->req.p;
    if (q->room && proto_room_is_dm(q->room))
        return answer_error(c, API_BAD_REQUEST,
                            "kick, mute and room bans do not apply to direct messages");
    struct db_req *r = &c->r;
    r->op = DB_MOD;
    r->mod_action = actions[c->ep];
    r->room = q->room;
    r->user_id = API_BOT_ID;
    r->user_name = API_BOT_NAME;
    r->peer_id = q->user;
    r->text = q->reason;
    r->msg_id = q->minutes > 0 ? wall_ms() + q->minutes * 60000 : 0;
    return submit(c);
}

static int dispatch(struct api_call *c)
{
    /* A node catching up, or behind the log's start, has not the whole
     * history: it serves no reads, as it takes no WebSocket (http.c). */
    if ((c->ep == API_HISTORY || c->ep == API_ROOMS) &&
        !cluster_serving(c->srv->hub->cluster))
        return answer_error(c, API_OVERLOADED, "catching up with the log; retry later");
    switch (c->ep) {
    case API_KICK:
    case API_MUTE:
    case API_UNMUTE:
    case API_BAN:
    case API_UNBAN:
        return do_moderate(c);
    case API_PUBLISH:
        return do_publish(c);
    case API_DELETE:
        return do_delete(c);
    case API_HISTORY:
        return do_history(c);
    case API_ROOMS:
        return do_rooms(c);
    case API_TOKEN:
        return do_token(c);
    default:
        return answer_error(c, API_NOT_FOUND, "no such API endpoint");
    }
}

/* ---- requests ---- */

/* The checks every API request passes, in the spec's order: the API
 * enabled (else 404), no credential in the URL and the right key (else
 * 401, unknown paths included), a known path (404), its method (405).
 * Returns API_OK, or the refusal with *msg. */
static enum api_code gate(struct server *srv, struct lws *wsi, struct api_call *c,
                          const char *path, const char *method, const char **msg)
{
    if (!srv->cfg->napi_keys) return *msg = "the HTTP API is not enabled", API_NOT_FOUND;
    if (auth_blocked(srv, wsi))
        return *msg = "too many failed authentications from this address; retry in a "
                      "minute",
               API_RATE_LIMITED;
    if (secret_in_url(wsi) || !key_ok(srv, wsi)) {
        auth_failed(srv, wsi);
        api_auth_failed_hook(srv, wsi);
        *msg = "an API key is required: Authorization: Bearer KEY (never in the URL)";
        return API_UNAUTHORIZED;
    }
    if ((c->ep = api_route(path)) == API_UNKNOWN)
        return *msg = "no such API endpoint", API_NOT_FOUND;
    if (strcmp(method, api_method(c->ep)))
        return *msg = "method not allowed (see the Allow header)", API_METHOD_NOT_ALLOWED;
    return API_OK;
}

/* Whether the request has header h, empty or not: lws_hdr_total_length is
 * 0 for both an empty one and none, lws_hdr_copy_fragment -1 for none only
 * (or for one too long for the buffer, which has a length). */
static int has_header(struct lws *wsi, enum lws_token_indexes h)
{
    char tmp[8];
    return lws_hdr_copy_fragment(wsi, tmp, sizeof tmp, h, 0) >= 0 ||
           lws_hdr_total_length(wsi, h) > 0;
}

/* Reads the request's Content-Length (there: has_header) into *n. Returns
 * 0, or -1 when it is not a plain number (empty, too long for cl, signed,
 * hex, words). */
static int content_length(struct lws *wsi, unsigned long long *n)
{
    char cl[32];
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) return -1;
    return api_content_length(cl, n);
}

/* A POST's headers: JSON, and a declared length within the bound. Sets
 * *empty when no body follows (Content-Length 0), and c->chunked for a
 * chunked body. A POST with neither a length nor chunks is refused:
 * libwebsockets then reads no body and never completes one, and the
 * connection would wait for nothing. */
static enum api_code post_headers(struct lws *wsi, struct api_call *c, int *empty,
                                  const char **msg)
{
    char ct[128], te[64];
    if (lws_hdr_copy(wsi, ct, sizeof ct, WSI_TOKEN_HTTP_CONTENT_TYPE) <= 0 ||
        !api_content_type_json(ct))
        return *msg = "Content-Type must be application/json", API_BAD_REQUEST;
    c->chunked = lws_hdr_copy(wsi, te, sizeof te, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0 &&
                 api_chunked_te(te);
    *empty = 0;
    unsigned long long n;
    if (!has_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH)) {
        if (c->chunked) return API_OK;
        return *msg = "a POST needs Content-Length or Transfer-Encoding: chunked",
               API_BAD_REQUEST;
    }
    if (content_length(wsi, &n))
        return *msg = "Content-Length must be a whole number of bytes", API_BAD_REQUEST;
    if (n > API_MAX_BODY) return *msg = "the body is over 64 KiB", API_TOO_LARGE;
    *empty = !c->chunked && n == 0;
    return API_OK;
}

/* A request of a method that takes no body (every one but POST): any
 * Content-Length or Transfer-Encoding marks its connection to close after
 * the answer, whatever the answer (libwebsockets would read a body, or a
 * misread one, as the next request); a body, or a length that is not a
 * plain number (an empty one included), is refused. Returns API_OK or the
 * refusal with *msg. */
static enum api_code no_body(struct lws *wsi, struct api_call *c, const char **msg)
{
    unsigned long long n = 0;
    int has_cl = has_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    int has_te = has_header(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING);
    if (!has_cl && !has_te) return API_OK;
    c->close_after = 1;
    if (has_cl && content_length(wsi, &n))
        return *msg = "Content-Length must be a whole number of bytes", API_BAD_REQUEST;
    if (has_te || n > 0) return *msg = "this method takes no body", API_BAD_REQUEST;
    return API_OK;
}

/* Parses the complete body (or a GET's query) and answers it. */
static int run(struct api_call *c, struct lws *wsi)
{
    const char *msg = "bad request";
    enum api_code code;
    if (api_method(c->ep)[0] == 'G') {
        char store[API_MAX_QUERY_ARGS][256];
        const char *args[API_MAX_QUERY_ARGS];
        int n = query_args(wsi, store, args);
        code = n < 0 ? (msg = "too many or too long query arguments", API_BAD_REQUEST)
                     : api_parse_query(c->ep, args, n, &c->req, &msg);
    } else {
        char cid[40] = "api-";
        if (c->ep == API_PUBLISH && crypto_random_hex(cid + 4, 16))
            return answer_error(c, API_INTERNAL, "no randomness");
        memcpy(c->client_id, cid, sizeof cid);
        const char *data = c->body ? (const char *)BUF_PAYLOAD(c->body) : "";
        size_t len = c->body ? c->body->len : 0;
        code =
            api_parse_body(c->ep, data, len, &c->srv->plim, c->client_id, &c->req, &msg);
    }
    return code ? answer_error(c, code, msg) : dispatch(c);
}

int api_request(struct server *srv, struct lws *wsi, struct api_conn *ac)
{
    char path[256];
    const char *msg, *method = path_and_method(wsi, path, sizeof path);
    METRIC_ADD(srv, http_requests, 1);
    struct api_call *c = call_new(srv, wsi, API_UNKNOWN);
    if (!c || !method) {
        free(c);
        return -1;
    }
    ac->call = c;
    /* A POST's body is not read when the request is refused early: the
     * connection closes after the answer rather than parse it as the next
     * request. */
    int post = !strcmp(method, "POST");
    c->close_after = post;
    int empty = 0;
    const char *body_msg = NULL; /* no_body's close holds whatever the answer */
    enum api_code body = post ? API_OK : no_body(wsi, c, &body_msg);
    enum api_code code = gate(srv, wsi, c, path, method, &msg);
    if (!code && body) code = body, msg = body_msg;
    if (!code && post) code = post_headers(wsi, c, &empty, &msg);
    if (code) return answer_error(c, code, msg);
    if (!post) return run(c, wsi);
    if (empty) {
        c->close_after = 0;
        return run(c, wsi);
    }
    c->stage = API_READING;
    c->deadline_us = server_now_us() + API_BODY_TIMEOUT_S * 1000000LL;
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, API_BODY_TIMEOUT_S);
    return 0;
}

int api_body(struct lws *wsi, struct api_conn *ac, const void *in, size_t len)
{
    struct api_call *c = ac->call;
    if (!c || c->stage != API_READING) return 0; /* refused already: ignored */
    if (server_now_us() > c->deadline_us) {
        plog(LOG_INFO, "api-body-timeout", "after=%ds", API_BODY_TIMEOUT_S);
        return -1; /* too slow: closed without an answer, as lws' own timeout does */
    }
    size_t have = c->body ? c->body->len : 0, used;
    if (!c->chunked && have + len > API_MAX_BODY)
        return answer_error(c, API_TOO_LARGE, "the body is over 64 KiB");
    if (!c->body && !(c->body = buf_new(len > 1024 && len < API_MAX_BODY ? len : 1024)))
        return -1;
    if (c->chunked) {
        /* The trailer after the last chunk is not read: close_after stays. */
        switch (api_chunked_feed(&c->dechunk, in, len, &c->body, API_MAX_BODY, &used)) {
        case API_CHUNK_DONE:
            lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
            return run(c, wsi);
        case API_CHUNK_TOO_LARGE:
            return answer_error(c, API_TOO_LARGE, "the body is over 64 KiB");
        case API_CHUNK_BAD:
            return answer_error(c, API_BAD_REQUEST, "malformed chunked body");
        default:
            break;
        }
    } else {
        buf_put(&c->body, in, len);
    }
    if (c->body->oom) return -1;
    return 0;
}

int api_reading(const struct api_conn *ac)
{
    return ac->call && ac->call->stage == API_READING;
}

int api_unread_body(struct api_conn *ac, int completion)
{
    struct api_call *c = ac->call;
    if (!c) return -1;         /* no API request: nobody takes a body */
    if (!completion) return 0; /* a refused request's body: dropped */
    /* Bytes pipelined behind a body come back as body completions until
     * the connection closes (libwebsockets 4.1.6): they are not served,
     * and the connection closes once this answer is out. While the
     * database works, the answer carries connection: close and goes out
     * whole (send_headers). Once its headers are out, the rest of a short
     * answer goes out now: waiting for writeable would spin on these
     * completions (and forever on a client that does not read). */
    c->close_after = 1;
    if (c->stage != API_ANSWER || !c->out) return 0;
    if (c->out->len - c->off <= API_WRITE_CHUNK) return write_rest_and_close(c);
    return 0;
}

int api_body_done(struct lws *wsi, struct api_conn *ac)
{
    struct api_call *c = ac->call;
    if (!c || c->stage != API_READING) return 0;
    if (c->chunked) /* lws saw its own end of the stream first: truncated */
        return answer_error(c, API_BAD_REQUEST, "malformed chunked body");
    c->close_after = 0; /* read to its end: the connection may be kept */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    return run(c, wsi);
}

/* ---- completions ---- */

/* The answer to a completed request. */
static struct buf *answer_body(struct api_call *c, enum api_code *code, const char **msg)
{
    struct db_req *r = &c->r;
    struct buf *b = NULL;
    *code = API_OK;
    if (r->status == DB_NOT_FOUND) {
        *msg = "no such message in this room (or it was deleted)";
        return *code = API_NOT_FOUND, NULL;
    }
    if (r->status == DB_FORBIDDEN) {
        /* The API passes every DM room's pair check (db.h: api), so this
         * is a DM room that does not exist, or one --no-guest-dms closed. */
        *msg = "no such direct-message room (or --no-guest-dms closed it)";
        return *code = API_NOT_FOUND, NULL;
    }
    if (r->status != DB_OK) {
        *msg =
            r->status == DB_BUSY ? "the server is busy; retry later" : "database error";
        return *code = r->status == DB_BUSY ? API_OVERLOADED : API_INTERNAL, NULL;
    }
    if (r->op == DB_MOD) { /* applied by api_on_done */
        b = buf_new(8);
        buf_puts(&b, "{}\n");
    } else if (r->op == DB_SEND) {
        b = buf_new(64);
        buf_puts(&b, "{\"id\":");
        buf_put_i64(&b, r->id);
        buf_puts(&b, ",\"ts\":");
        buf_put_i64(&b, r->ts);
        buf_puts(&b, "}\n");
    } else if (r->op == DB_DELETE) {
        b = buf_new(32);
        buf_puts(&b, "{\"rev\":");
        buf_put_i64(&b, r->id);
        buf_puts(&b, "}\n");
    } else if (r->all_rooms) {
        b = api_rooms_json(c->srv->hub, r->rows);
    } else {
        b = buf_new(64 + (r->rows ? r->rows->len : 0));
        buf_puts(&b, "{\"messages\":[");
        if (r->rows) buf_put(&b, BUF_PAYLOAD(r->rows), r->rows->len);
        buf_puts(&b, r->more ? "],\"has_more\":true}\n" : "],\"has_more\":false}\n");
    }
    if (b && b->oom) buf_unref(b), b = NULL;
    if (!b) *code = API_INTERNAL, *msg = "out of memory";
    return b;
}

void api_on_done(struct server *srv, struct db_req *r)
{
    struct api_call *c = (struct api_call *)r; /* r is its first member */
    int change = r->op == DB_SEND || r->op == DB_DELETE;
    /* Committed: this loop's members get it whether or not anyone waits
     * for the answer (the router posted it to the other loops). */
    if (change && r->status == DB_OK) fanout_stored(srv, r, NULL);
    /* A mute or ban holds, and a kick removes, whether or not anyone
     * waits for the answer. */
    if (r->op == DB_MOD && r->status == DB_OK) moderate_commit(srv, r);
    if (r->op == DB_SEND && r->status == DB_OK && !r->duplicate)
        METRIC_ADD(srv, api_publishes, 1);
    /* Orphaned: the connection closed meanwhile (api.h). After the loop's
     * context is gone (main's last take, at exit) every connection is. */
    if (!c->wsi || !srv->ctx) {
        call_free(c);
        return;
    }
    enum api_code code;
    const char *msg = NULL;
    struct buf *b = answer_body(c, &code, &msg);
    int rc = b ? answer(c, 200, b) : answer_error(c, code, msg);
    if (rc) lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, LWS_TO_KILL_ASYNC);
}
