/* api_parse.h -- the HTTP API's pure part (shared/spec/http-api.md,
 * docs/api.md): which endpoint a path is, the Bearer key check, the URL
 * query checks, request bodies and query strings validated into requests,
 * the error codes with their statuses, and the JSON written back.
 *
 * No sockets, no libwebsockets, no database: unit-tested (tests/unit/
 * test_api.c) and fuzzed (tests/fuzz/fuzz_http.c) on its own. Fields are
 * validated by the wire protocol's own code (proto_parse_fields), so a
 * publish is held to exactly what a WebSocket `send` is. Thread-safe: no
 * globals; nothing here allocates but what a function says it returns.
 */
#ifndef PARLEY_API_PARSE_H
#define PARLEY_API_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "protocol.h"

#define API_MAX_BODY (64 * 1024)     /* bytes of a request body (then 413) */
#define API_TTL_DEFAULT 3600         /* POST /api/token without ttl */
#define API_TTL_MAX (30 * 24 * 3600) /* 30 days */
#define API_MAX_QUERY_ARGS 8         /* query arguments looked at, at most */

enum api_ep {
    API_UNKNOWN = 0,
    API_PUBLISH,
    API_DELETE,
    API_HISTORY,
    API_ROOMS,
    API_TOKEN,
    API_KICK, /* the moderation actions: the wire protocol's fields */
    API_MUTE,
    API_UNMUTE,
    API_BAN,
    API_UNBAN
};

/* The spec's codes (http-api.md: Conventions) and `forbidden`, which the
 * spec's list leaves out and Parley adds for what the protocol's rules
 * refuse (a bot's message into a DM room). */
enum api_code {
    API_OK = 0,
    API_BAD_JSON,
    API_BAD_REQUEST,
    API_BAD_ROOM,
    API_TOO_LONG,
    API_UNAUTHORIZED,
    API_FORBIDDEN,
    API_NOT_FOUND,
    API_METHOD_NOT_ALLOWED,
    API_CONFLICT,
    API_TOO_LARGE,
    API_RATE_LIMITED,
    API_OVERLOADED,
    API_INTERNAL,
};

/* A request parsed and checked. Every string points into p.json, which it
 * owns until api_req_free(). */
struct api_req {
    enum api_ep ep;
    struct proto_req p; /* room, text, client_id, id, before/after/limit, json */
    const char *user_id, *user_name; /* publish: the bot; token: sub and name */
    /* token */
    int64_t ttl;        /* seconds */
    const char *role;   /* "mod", "admin" or NULL */
    int dm;             /* -1: absent; else the `dm` claim */
    const cJSON *rooms; /* the rooms claim ("*" or an array), or NULL */
};

/* The endpoint at `path` (without the query), or API_UNKNOWN. */
enum api_ep api_route(const char *path);
/* The one method an endpoint answers: "GET" or "POST". */
const char *api_method(enum api_ep ep);

/* Returns 1 when `authz` (the Authorization header's value, NUL-terminated)
 * is "Bearer KEY" (the scheme in any case, then spaces) and KEY is one of
 * keys[0..nkeys) (lens: their lengths). Every key is compared, over the
 * same number of bytes whatever the key, so the time taken tells nothing
 * about which key or how much of one matched. */
int api_key_matches(const char *authz, char *const *keys, const size_t *lens, int nkeys);
/* Returns 1 when a query argument ("name=value" or "name", decoded) names
 * a credential (key, api_key, apikey, access_token, token, auth, bearer,
 * authorization, password, secret; any case): such a URL is refused with
 * 401, since URLs end up in proxies' and browsers' logs. */
int api_query_secret(const char *arg);
/* Returns 1 when a Content-Type value is application/json (any case,
 * parameters such as charset allowed). */
int api_content_type_json(const char *ct);
/* Reads a Content-Length value: one to 19 decimal digits and nothing else
 * (no sign, space, or hex), into *n. Returns 0, or -1 when it is not such a
 * number: the request is 400, not 413, since its size is unknown. */
int api_content_length(const char *cl, unsigned long long *n);

/* A chunked request body (Transfer-Encoding: chunked), decoded as it
 * arrives: libwebsockets hands such a body over still encoded. Zero it to
 * start. */
struct api_chunked {
    int state;     /* where in the encoding the next byte is */
    uint32_t size; /* the current chunk's size, as read so far */
    uint32_t left; /* bytes of the current chunk still to come */
    int digits;    /* hex digits of the size line */
};
enum {
    API_CHUNK_MORE = 0,
    API_CHUNK_DONE = 1,
    API_CHUNK_BAD = -1,
    API_CHUNK_TOO_LARGE = -2
};
/* Decodes in[0..len) onto *out (a buf: buf_put), never letting it pass `max` bytes.
 * Returns API_CHUNK_DONE at the last (zero-size) chunk, whose trailer is not read (the
 * caller closes the connection after answering), API_CHUNK_MORE when more is needed,
 * API_CHUNK_BAD for a malformed encoding, API_CHUNK_TOO_LARGE as soon as
 * the decoded body would pass max. *used is set to the bytes consumed. */
int api_chunked_feed(struct api_chunked *st, const char *in, size_t len, struct buf **out,
                     size_t max, size_t *used);

/* The HTTP status of a code, and its name in the error body. */
unsigned api_status(enum api_code c);
const char *api_code_name(enum api_code c);
/* `{"error":{"code":…,"message":…}}`, or NULL when memory ran out. */
struct buf *api_error_json(enum api_code c, const char *msg);

/* Parses a POST body of endpoint ep (valid or not: checked here, UTF-8
 * included) into *out. `fresh_client_id` is the client_id a publish gets
 * when it has none (the caller makes it random). Returns API_OK, or the
 * code with *msg set to a static reason. *out must be api_req_free()d in
 * both cases. */
enum api_code api_parse_body(enum api_ep ep, const char *body, size_t len,
                             const struct proto_limits *lim, const char *fresh_client_id,
                             struct api_req *out, const char **msg);
/* Parses a GET's decoded query arguments ("name=value") into *out, as
 * api_parse_body does a body. An unknown or repeated argument is
 * bad_request. */
enum api_code api_parse_query(enum api_ep ep, const char *const *args, int nargs,
                              struct api_req *out, const char **msg);
void api_req_free(struct api_req *r);

/* The claims of a token request (API_TOKEN, parsed) issued at now_s (Unix
 * seconds), as JSON for jwt_sign_payload(). malloc'd, or NULL. */
char *api_token_claims(const struct api_req *r, int64_t now_s);

#endif
