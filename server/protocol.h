/* protocol.h -- the wire protocol: parsing and validating client requests,
 * and writing the server's messages (../shared/spec/protocol.md).
 *
 * Nothing here touches sockets, sessions or the database, so it is unit-tested
 * and fuzzed on its own. Thread-safe: no globals.
 */
#ifndef PARLEY_PROTOCOL_H
#define PARLEY_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "buf.h"

#define PROTO_MAX_REF 64
#define PROTO_MAX_ROOM 64
#define PROTO_MAX_CLIENT_ID 64
#define PROTO_MAX_NAME 32   /* code points */
#define PROTO_MAX_CLIENT 64 /* hello's free-text `client` */
#define PROTO_HISTORY_DEFAULT 50
#define PROTO_HISTORY_MAX 200
#define PROTO_SINCE_MAX 1000 /* messages a join with `since` returns at most */
#define PROTO_MAX_USER 128   /* bytes of a user id (a token's sub at most) */
#define PROTO_SEARCH_DEFAULT 20
#define PROTO_SEARCH_MAX 50
#define PROTO_MAX_QUERY 256      /* code points of a search's q */
#define PROTO_MAX_REASON 200     /* code points of a moderation reason */
#define PROTO_MAX_MINUTES 525600 /* a year: a mute's or ban's longest */
/* A DM room's name: "dm-" and 32 lowercase hex digits (server/dm.c). */
#define PROTO_DM_PREFIX "dm-"
#define PROTO_DM_ROOM_LEN 35

enum proto_type {
    REQ_HELLO,
    REQ_JOIN,
    REQ_LEAVE,
    REQ_SEND,
    REQ_HISTORY,
    REQ_TYPING,
    REQ_ROOMS,
    REQ_PING,
    REQ_EDIT,   /* 1.1 */
    REQ_DELETE, /* 1.1 */
    REQ_DM,     /* 1.1 */
    REQ_READ,   /* 1.1 */
    REQ_SEARCH, /* 1.1 */
    REQ_KICK,   /* 1.1 moderation */
    REQ_MUTE,
    REQ_BAN,
    REQ_UNMUTE,
    REQ_UNBAN,
};

enum proto_err {
    PROTO_OK = 0,
    E_BAD_JSON,
    E_UNKNOWN_TYPE,
    E_BAD_REQUEST,
    E_NEED_HELLO,
    E_BAD_NAME,
    E_UNAUTHORIZED,
    E_FORBIDDEN,
    E_BAD_ROOM,
    E_NOT_MEMBER,
    E_TOO_LONG,
    E_RATE_LIMITED,
    E_OVERLOADED,
    E_INTERNAL,
    E_NOT_FOUND, /* 1.1 */
};

/* One parsed request. Every string points into `json`, which the request
 * owns until proto_req_free(). Absent optional fields are NULL or -1. */
struct proto_req {
    enum proto_type type;
    int limit; /* history; default filled in */
    cJSON *json;
    const char *ref;
    const char *room;
    const char *name, *token, *client, *resume; /* hello */
    const char *text;                           /* send, edit */
    size_t text_len;
    int64_t id; /* edit, delete: the message; read: the marker */
    const char *client_id;
    const char *user;             /* dm: the peer's id */
    const char *q;                /* search: the query (room optional) */
    const char *reason;           /* moderation: optional, shown to the target */
    int64_t minutes;              /* mute, ban: how long (-1: until lifted) */
    int64_t since, before, after; /* join, history; search: before */
};

struct proto_limits {
    int max_text; /* code points */
};

/* Routes cJSON's allocations through a hook that notes a failure, so
 * proto_parse() can tell out of memory from bad JSON. Call once, before
 * any thread parses (cJSON's hooks are global). Without it, out of memory
 * reads as E_BAD_JSON. */
void proto_init(void);
/* 1 when a cJSON allocation failed on this thread since the last call
 * (always 0 without proto_init); clears the flag. */
int proto_json_oom(void);

/* Parses and validates one client frame of `len` bytes of valid UTF-8.
 * Returns PROTO_OK with *req filled, or an error code with *msg set to a
 * static human-readable reason (E_INTERNAL: the JSON could not be held in
 * memory, so not even its ref is known). In both cases req->ref is set when the frame
 * carried a valid ref, and the caller must call proto_req_free(req). Room
 * names, lengths and ranges are checked here; membership, rate and auth are
 * the session's business. Bad names are reported for hello as E_BAD_NAME
 * only for guests, so the caller checks them with proto_check_name(). */
enum proto_err proto_parse(const char *data, size_t len, const struct proto_limits *lim,
                           struct proto_req *req, const char **msg);
void proto_req_free(struct proto_req *req);
/* 1 when JSON text d[0..n) holds the escape \u0000, which cJSON's C strings
 * would cut short: refused (bad_request) rather than stored altered. */
int proto_has_nul_escape(const char *d, size_t n);
/* For the HTTP API (api_parse.h): checks `json`, a body parsed from
 * data[0..len) (valid UTF-8), as the fields of a request of `type`, exactly
 * as proto_parse() checks a frame's (a "type" or "ref" in it means nothing).
 * req takes json over whatever the outcome (proto_req_free it). Returns
 * PROTO_OK, or E_BAD_JSON when json is not an object, or the field's error
 * with *msg set. */
enum proto_err proto_parse_fields(cJSON *json, const char *data, size_t len,
                                  enum proto_type type, const struct proto_limits *lim,
                                  struct proto_req *req, const char **msg);

/* Returns 1 when `room` matches ^[a-z0-9][a-z0-9_-]{0,63}$. */
int proto_room_valid(const char *room);
/* Returns 1 when `room` is a DM room's name: "dm-" and 32 lowercase hex
 * digits. Other names starting with "dm-" are refused (bad_room). */
int proto_room_is_dm(const char *room);
/* Whether user id `id` has the shape of a guest id ("g_" and 16 hex
 * digits): a token's sub and an API bot's id may not, or a site's user or
 * a bot could take over a guest's DMs and history (guests and everyone
 * else share one id space). */
int proto_user_guest_shaped(const char *id);
/* The HTTP API's user id: `by` of its deletes, the actor of its mod_log
 * rows. No token's sub and no bot may take it, so mod_log's actor "api"
 * is always the API and never a user or bot of the same id. */
#define PROTO_API_ACTOR "api"
/* Returns PROTO_OK or E_BAD_NAME (with *msg) for a display name. */
enum proto_err proto_check_name(const char *name, const char **msg);

/* The protocol's string for an error code ("bad_json", ...). */
const char *proto_err_code(enum proto_err e);

/* Message writers. Each returns a new buf (refs == 1) or NULL on OOM. */
struct buf *proto_error(enum proto_err e, const char *msg, const char *ref);

struct proto_msg {
    const char *room;
    int64_t id, ts;
    const char *user_id, *user_name;
    const char *text;
    size_t text_len;
    const char *client_id;
    /* 1.1: the latest change's id (0: none, rev = id), when it was an edit,
     * and whether it was a delete (a tombstone: text, client_id and
     * edited_ts are not written). */
    int64_t rev, edited_ts;
    int deleted;
    int bot; /* posted through the HTTP API: "bot": true in `user` */
};
/* Appends one MESSAGE object to *bp (used for broadcast and history rows). */
void proto_put_message(struct buf **bp, const struct proto_msg *m);
/* `edited`: a message's new text (1.1). With `ref` for the requester's copy
 * (NULL for everyone else's). NULL when memory ran out. */
struct buf *proto_edited(const char *room, int64_t id, int64_t rev, const char *text,
                         size_t text_len, int64_t edited_ts, const char *ref);
/* `read`: the user's marker in room, as stored (1.1). */
struct buf *proto_read(const char *room, int64_t id, const char *ref);
/* {"type":"ok","ref":…}: a moderation action done. */
struct buf *proto_ok(const char *ref);
/* {"type":"removed","room":…,"reason":…}: kicked or banned from room
 * (reason omitted when NULL). */
struct buf *proto_removed(const char *room, const char *reason);
/* A `forbidden` that a mute or ban answers: "sanction" ("mute" or "ban",
 * Parley's extension, so a client need not read the message) and, when
 * the sanction ends at a known time, "until" (Unix ms; 0: omitted). */
struct buf *proto_error_sanction(const char *msg, const char *sanction, int64_t until,
                                 const char *ref);
/* 1 for the moderation requests (kick, mute, ban, unmute, unban). */
int proto_is_moderation(enum proto_type t);
/* `deleted`: a message made a tombstone by user (by_id, by_name) (1.1). */
struct buf *proto_deleted(const char *room, int64_t id, int64_t rev, const char *by_id,
                          const char *by_name, const char *ref);
/* Appends `,"ref":"…"` when ref is set, then the closing brace. */
void proto_put_ref_end(struct buf **bp, const char *ref);
/* Returns a new buf holding `{"type":"<type>","room":"<room>"` with room
 * for cap bytes, or NULL when memory ran out (the buf writers accept NULL,
 * so a message can be written on and checked once, by proto_msg_end). */
struct buf *proto_msg_start(const char *type, const char *room, size_t cap);
/* Finishes b with the ref and the closing brace and returns it; NULL when
 * b is NULL or a write ran out of memory (b is then freed). */
struct buf *proto_msg_end(struct buf *b, const char *ref);

#endif
