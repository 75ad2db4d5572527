/* protocol.c -- request parsing/validation and message writers. */
#include "protocol.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

static const char *const err_codes[] = {
    [PROTO_OK] = "ok",
    [E_BAD_JSON] = "bad_json",
    [E_UNKNOWN_TYPE] = "unknown_type",
    [E_BAD_REQUEST] = "bad_request",
    [E_NEED_HELLO] = "need_hello",
    [E_BAD_NAME] = "bad_name",
    [E_UNAUTHORIZED] = "unauthorized",
    [E_FORBIDDEN] = "forbidden",
    [E_BAD_ROOM] = "bad_room",
    [E_NOT_MEMBER] = "not_member",
    [E_TOO_LONG] = "too_long",
    [E_RATE_LIMITED] = "rate_limited",
    [E_OVERLOADED] = "overloaded",
    [E_INTERNAL] = "internal",
    [E_NOT_FOUND] = "not_found",
};

const char *proto_err_code(enum proto_err e)
{
    return err_codes[e];
}

static const struct {
    const char *name;
    enum proto_type type;
} types[] = {
    {"hello", REQ_HELLO},   {"join", REQ_JOIN},       {"leave", REQ_LEAVE},
    {"send", REQ_SEND},     {"history", REQ_HISTORY}, {"typing", REQ_TYPING},
    {"rooms", REQ_ROOMS},   {"ping", REQ_PING},       {"edit", REQ_EDIT},
    {"delete", REQ_DELETE}, {"dm", REQ_DM},           {"read", REQ_READ},
    {"search", REQ_SEARCH}, {"kick", REQ_KICK},       {"mute", REQ_MUTE},
    {"ban", REQ_BAN},       {"unmute", REQ_UNMUTE},   {"unban", REQ_UNBAN},
};

/* cJSON answers NULL both for bad JSON and for its own allocation failure;
 * this hook tells them apart, per thread (every loop parses). */
static __thread int json_oom;

static void *json_malloc(size_t n)
{
    void *p = malloc(n);
    if (!p) json_oom = 1;
    return p;
}

void proto_init(void)
{
    cJSON_Hooks h = {json_malloc, free};
    cJSON_InitHooks(&h);
}

int proto_json_oom(void)
{
    int oom = json_oom;
    json_oom = 0;
    return oom;
}

int proto_room_valid(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > PROTO_MAX_ROOM) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 (i > 0 && (c == '_' || c == '-'));
        if (!ok) return 0;
    }
    return 1;
}

/* Whitespace that would make a name look empty. */
static int is_space(unsigned cp)
{
    return cp == ' ' || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
           cp == 0xFEFF;
}

enum proto_err proto_check_name(const char *name, const char **msg)
{
    size_t n = strlen(name), i = 0, count = 0;
    int all_space = 1;
    while (i < n) {
        unsigned cp = utf8_next(name, n, &i);
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            *msg = "name contains control characters";
            return E_BAD_NAME;
        }
        all_space &= is_space(cp);
        count++;
    }
    if (count == 0 || all_space) {
        *msg = "name is empty";
        return E_BAD_NAME;
    }
    if (count > PROTO_MAX_NAME) {
        *msg = "name is over 32 characters";
        return E_BAD_NAME;
    }
    return PROTO_OK;
}

/* Reads optional string member `key`: 0 when absent or a string of at most
 * `max` code points (max 0: any), -1 otherwise. */
static int get_str(const cJSON *o, const char *key, size_t max, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v) return 0;
    if (!cJSON_IsString(v) || !v->valuestring) return -1;
    if (max && utf8_count(v->valuestring, strlen(v->valuestring)) > max) return -1;
    *out = v->valuestring;
    return 0;
}

/* Reads optional integer member `key` in [lo, hi] into *out (-1 when
 * absent); returns -1 when present but not such an integer. */
static int get_int(const cJSON *o, const char *key, double lo, double hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = -1;
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi || d != floor(d)) return -1;
    *out = (int64_t)d;
    return 0;
}

int proto_user_guest_shaped(const char *id)
{
    if (strncmp(id, "g_", 2) || strlen(id) != 18) return 0;
    for (const char *c = id + 2; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
    return 1;
}

int proto_room_is_dm(const char *r)
{
    if (strncmp(r, PROTO_DM_PREFIX, 3) || strlen(r) != PROTO_DM_ROOM_LEN) return 0;
    for (const char *c = r + 3; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
    return 1;
}

#define MAX_ID 9007199254740991.0 /* 2^53 - 1: exact in JSON numbers */

static enum proto_err need_room(struct proto_req *r, const char **msg)
{
    if (get_str(r->json, "room", 0, &r->room) || !r->room) {
        *msg = "room must be a string";
        return E_BAD_REQUEST;
    }
    if (!proto_room_valid(r->room)) {
        *msg = "room must match ^[a-z0-9][a-z0-9_-]{0,63}$";
        return E_BAD_ROOM;
    }
    if (!strncmp(r->room, PROTO_DM_PREFIX, 3) && !proto_room_is_dm(r->room)) {
        *msg = "room names starting with dm- are direct messages' (use dm)";
        return E_BAD_ROOM;
    }
    return PROTO_OK;
}

/* read: a room and the id read up to (0 and above). */
static enum proto_err parse_read(struct proto_req *r, const char **msg)
{
    enum proto_err e = need_room(r, msg);
    if (e) return e;
    if (get_int(r->json, "id", 0, MAX_ID, &r->id) || r->id < 0) {
        *msg = "id must be a message id (0 or more)";
        return E_BAD_REQUEST;
    }
    return PROTO_OK;
}

/* search: q of 1 to 256 code points; optional room, before and limit. */
static enum proto_err parse_search(struct proto_req *r, const char **msg)
{
    int64_t limit;
    if (get_str(r->json, "q", PROTO_MAX_QUERY, &r->q) || !r->q || !r->q[0]) {
        *msg = "q must be a string of 1 to 256 characters";
        return E_BAD_REQUEST;
    }
    if (cJSON_GetObjectItemCaseSensitive(r->json, "room")) {
        enum proto_err e = need_room(r, msg);
        if (e) return e;
    }
    if (get_int(r->json, "before", 0, MAX_ID, &r->before)) {
        *msg = "before must be a message id";
        return E_BAD_REQUEST;
    }
    if (get_int(r->json, "limit", 1, PROTO_SEARCH_MAX, &limit)) {
        *msg = "limit must be an integer from 1 to 50";
        return E_BAD_REQUEST;
    }
    r->limit = limit < 0 ? PROTO_SEARCH_DEFAULT : (int)limit;
    return PROTO_OK;
}

/* dm: the peer's user id, 1 to PROTO_MAX_USER bytes. */
static enum proto_err parse_dm(struct proto_req *r, const char **msg)
{
    if (get_str(r->json, "user", 0, &r->user) || !r->user || !r->user[0] ||
        strlen(r->user) > PROTO_MAX_USER) {
        *msg = "user must be a user id (a string of 1 to 128 bytes)";
        return E_BAD_REQUEST;
    }
    return PROTO_OK;
}

int proto_is_moderation(enum proto_type t)
{
    return t == REQ_KICK || t == REQ_MUTE || t == REQ_BAN || t == REQ_UNMUTE ||
           t == REQ_UNBAN;
}

/* kick, mute, unmute: room and user; ban, unban: user, room optional
 * (none: server-wide). mute and ban take minutes (1 to a year); all take
 * an optional reason. */
static enum proto_err parse_moderation(struct proto_req *r, const char **msg)
{
    int room_optional = r->type == REQ_BAN || r->type == REQ_UNBAN;
    int timed = r->type == REQ_MUTE || r->type == REQ_BAN;
    enum proto_err e = PROTO_OK;
    if (!(room_optional && !cJSON_GetObjectItemCaseSensitive(r->json, "room")) &&
        (e = need_room(r, msg)))
        return e;
    if ((e = parse_dm(r, msg))) return e;
    if (get_int(r->json, "minutes", 1, PROTO_MAX_MINUTES, &r->minutes) ||
        (!timed && r->minutes != -1)) {
        *msg = timed ? "minutes must be a whole number from 1 to 525600"
                     : "minutes is only for mute and ban";
        return E_BAD_REQUEST;
    }
    if (get_str(r->json, "reason", PROTO_MAX_REASON, &r->reason)) {
        *msg = "reason must be a string of at most 200 characters";
        return E_BAD_REQUEST;
    }
    return PROTO_OK;
}

static enum proto_err parse_hello(struct proto_req *r, const char **msg)
{
    if (get_str(r->json, "name", 0, &r->name) ||
        get_str(r->json, "token", 0, &r->token) ||
        get_str(r->json, "resume", 0, &r->resume)) {
        *msg = "name, token and resume must be strings";
        return E_BAD_REQUEST;
    }
    if (get_str(r->json, "client", PROTO_MAX_CLIENT, &r->client)) {
        *msg = "client must be a string of at most 64 characters";
        return E_BAD_REQUEST;
    }
    return PROTO_OK; /* name vs token is the session's call (URL token) */
}

static enum proto_err parse_join(struct proto_req *r, const char **msg)
{
    enum proto_err e = need_room(r, msg);
    if (e) return e;
    if (get_int(r->json, "since", 0, MAX_ID, &r->since)) {
        *msg = "since must be a message id";
        return E_BAD_REQUEST;
    }
    return PROTO_OK;
}

/* A send's or an edit's text: 1 to max_text code points. */
static enum proto_err need_text(struct proto_req *r, const struct proto_limits *lim,
                                const char **msg)
{
    if (get_str(r->json, "text", 0, &r->text) || !r->text) {
        *msg = "text must be a string";
        return E_BAD_REQUEST;
    }
    r->text_len = strlen(r->text);
    size_t count = utf8_count(r->text, r->text_len);
    if (count == 0 || count > (size_t)lim->max_text) {
        *msg = count ? "text is over the limit" : "text is empty";
        return E_TOO_LONG;
    }
    return PROTO_OK;
}

static enum proto_err parse_send(struct proto_req *r, const struct proto_limits *lim,
                                 const char **msg)
{
    enum proto_err e = need_room(r, msg);
    if (e) return e;
    if (get_str(r->json, "client_id", PROTO_MAX_CLIENT_ID, &r->client_id) ||
        !r->client_id || !r->client_id[0]) {
        *msg = "client_id must be a string of 1 to 64 characters";
        return E_BAD_REQUEST;
    }
    return need_text(r, lim, msg);
}

/* edit (with text) and delete: a room and a message id. */
static enum proto_err parse_change(struct proto_req *r, const struct proto_limits *lim,
                                   const char **msg)
{
    enum proto_err e = need_room(r, msg);
    if (e) return e;
    if (get_int(r->json, "id", 1, MAX_ID, &r->id) || r->id < 0) {
        *msg = "id must be a message id";
        return E_BAD_REQUEST;
    }
    return r->type == REQ_EDIT ? need_text(r, lim, msg) : PROTO_OK;
}

static enum proto_err parse_history(struct proto_req *r, const char **msg)
{
    enum proto_err e = need_room(r, msg);
    if (e) return e;
    int64_t limit;
    if (get_int(r->json, "before", 0, MAX_ID, &r->before) ||
        get_int(r->json, "after", 0, MAX_ID, &r->after)) {
        *msg = "before and after must be message ids";
        return E_BAD_REQUEST;
    }
    if (r->before >= 0 && r->after >= 0) {
        *msg = "before and after cannot both be given";
        return E_BAD_REQUEST;
    }
    if (get_int(r->json, "limit", 1, PROTO_HISTORY_MAX, &limit)) {
        *msg = "limit must be an integer from 1 to 200";
        return E_BAD_REQUEST;
    }
    r->limit = limit < 0 ? PROTO_HISTORY_DEFAULT : (int)limit;
    return PROTO_OK;
}

/* JSON's \u0000 would be cut short by cJSON's C strings; refuse it rather
 * than silently store a different text. */
int proto_has_nul_escape(const char *d, size_t n)
{
    for (size_t i = 0; i + 6 <= n; i++)
        if (d[i] == '\\') {
            if (d[i + 1] == 'u' && !memcmp(d + i + 2, "0000", 4)) return 1;
            i++; /* skip the escaped char, so "\\u0000" is not a match */
        }
    return 0;
}

static enum proto_err parse_fields(struct proto_req *r, const struct proto_limits *lim,
                                   const char **msg);

enum proto_err proto_parse(const char *data, size_t len, const struct proto_limits *lim,
                           struct proto_req *r, const char **msg)
{
    memset(r, 0, sizeof(*r));
    r->since = r->before = r->after = r->id = -1;
    if (memchr(data, 0, len)) {
        *msg = "frame contains a NUL byte";
        return E_BAD_JSON;
    }
    (void)proto_json_oom();
    r->json = json_parse(data, len); /* not cJSON_Parse*: see json.h */
    if (!r->json && proto_json_oom()) {
        *msg = "out of memory";
        return E_INTERNAL;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->json, "type");
    if (!cJSON_IsObject(r->json) || !cJSON_IsString(t) || !t->valuestring) {
        *msg = "expected a JSON object with a string \"type\"";
        return E_BAD_JSON;
    }
    if (get_str(r->json, "ref", PROTO_MAX_REF, &r->ref)) {
        *msg = "ref must be a string of at most 64 characters";
        return E_BAD_REQUEST;
    }
    size_t i;
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (!strcmp(types[i].name, t->valuestring)) break;
    if (i == sizeof(types) / sizeof(types[0])) {
        *msg = "unknown message type";
        return E_UNKNOWN_TYPE;
    }
    r->type = types[i].type;
    if (proto_has_nul_escape(data, len)) {
        *msg = "strings must not contain NUL characters";
        return E_BAD_REQUEST;
    }
    return parse_fields(r, lim, msg);
}

enum proto_err proto_parse_fields(cJSON *json, const char *data, size_t len,
                                  enum proto_type type, const struct proto_limits *lim,
                                  struct proto_req *r, const char **msg)
{
    memset(r, 0, sizeof(*r));
    r->since = r->before = r->after = r->id = -1;
    r->json = json;
    r->type = type;
    if (!cJSON_IsObject(json)) {
        *msg = "the body must be a JSON object";
        return E_BAD_JSON;
    }
    if (proto_has_nul_escape(data, len)) {
        *msg = "strings must not contain NUL characters";
        return E_BAD_REQUEST;
    }
    return parse_fields(r, lim, msg);
}

/* The fields of a request whose type is known. */
static enum proto_err parse_fields(struct proto_req *r, const struct proto_limits *lim,
                                   const char **msg)
{
    switch (r->type) {
    case REQ_HELLO:
        return parse_hello(r, msg);
    case REQ_JOIN:
        return parse_join(r, msg);
    case REQ_SEND:
        return parse_send(r, lim, msg);
    case REQ_HISTORY:
        return parse_history(r, msg);
    case REQ_LEAVE:
    case REQ_TYPING:
        return need_room(r, msg);
    case REQ_EDIT:
    case REQ_DELETE:
        return parse_change(r, lim, msg);
    case REQ_DM:
        return parse_dm(r, msg);
    case REQ_READ:
        return parse_read(r, msg);
    case REQ_SEARCH:
        return parse_search(r, msg);
    case REQ_KICK:
    case REQ_MUTE:
    case REQ_BAN:
    case REQ_UNMUTE:
    case REQ_UNBAN:
        return parse_moderation(r, msg);
    case REQ_ROOMS:
    case REQ_PING:
        return PROTO_OK;
    }
    return PROTO_OK;
}

void proto_req_free(struct proto_req *r)
{
    cJSON_Delete(r->json);
    r->json = NULL;
}

void proto_put_ref_end(struct buf **bp, const char *ref)
{
    if (ref) {
        buf_puts(bp, ",\"ref\":");
        buf_put_jstrz(bp, ref);
    }
    buf_put(bp, "}", 1);
}

struct buf *proto_error(enum proto_err e, const char *msg, const char *ref)
{
    struct buf *b = buf_new(128);
    if (!b) return NULL;
    buf_puts(&b, "{\"type\":\"error\",\"code\":\"");
    buf_puts(&b, err_codes[e]);
    buf_puts(&b, "\",\"message\":");
    buf_put_jstrz(&b, msg);
    return proto_msg_end(b, ref); /* NULL when a write ran out of memory */
}

void proto_put_message(struct buf **bp, const struct proto_msg *m)
{
    buf_puts(bp, "{\"type\":\"message\",\"room\":\"");
    buf_puts(bp, m->room); /* validated: [a-z0-9_-] only */
    buf_puts(bp, "\",\"id\":");
    buf_put_i64(bp, m->id);
    buf_puts(bp, ",\"ts\":");
    buf_put_i64(bp, m->ts);
    buf_puts(bp, ",\"user\":{\"id\":");
    buf_put_jstrz(bp, m->user_id);
    buf_puts(bp, ",\"name\":");
    buf_put_jstrz(bp, m->user_name);
    if (m->bot) buf_puts(bp, ",\"bot\":true");
    buf_puts(bp, "},\"rev\":");
    buf_put_i64(bp, m->rev ? m->rev : m->id);
    if (m->deleted) { /* a tombstone: who and when stay, nothing else */
        buf_puts(bp, ",\"text\":\"\",\"deleted\":true}");
        return;
    }
    buf_puts(bp, ",\"text\":");
    buf_put_jstr(bp, m->text, m->text_len);
    buf_puts(bp, ",\"client_id\":");
    buf_put_jstrz(bp, m->client_id);
    if (m->edited_ts) {
        buf_puts(bp, ",\"edited_ts\":");
        buf_put_i64(bp, m->edited_ts);
    }
    buf_put(bp, "}", 1);
}

struct buf *proto_msg_start(const char *type, const char *room, size_t cap)
{
    struct buf *b = buf_new(cap);
    if (!b) return NULL;
    buf_puts(&b, "{\"type\":\"");
    buf_puts(&b, type);
    buf_puts(&b, "\",\"room\":\"");
    buf_puts(&b, room);
    buf_put(&b, "\"", 1);
    return b;
}

struct buf *proto_msg_end(struct buf *b, const char *ref)
{
    if (!b) return NULL;
    proto_put_ref_end(&b, ref);
    if (b->oom) {
        buf_unref(b);
        return NULL;
    }
    return b;
}

/* Starts `{"type":"<type>","room":…,"id":…,"rev":…`. */
static struct buf *change_start(const char *type, const char *room, int64_t id,
                                int64_t rev, size_t cap)
{
    struct buf *b = proto_msg_start(type, room, cap);
    buf_puts(&b, ",\"id\":");
    buf_put_i64(&b, id);
    buf_puts(&b, ",\"rev\":");
    buf_put_i64(&b, rev);
    return b;
}

struct buf *proto_edited(const char *room, int64_t id, int64_t rev, const char *text,
                         size_t text_len, int64_t edited_ts, const char *ref)
{
    struct buf *b = change_start("edited", room, id, rev, 128 + text_len);
    buf_puts(&b, ",\"text\":");
    buf_put_jstr(&b, text, text_len);
    buf_puts(&b, ",\"edited_ts\":");
    buf_put_i64(&b, edited_ts);
    return proto_msg_end(b, ref);
}

struct buf *proto_read(const char *room, int64_t id, const char *ref)
{
    struct buf *b = proto_msg_start("read", room, 96);
    buf_puts(&b, ",\"id\":");
    buf_put_i64(&b, id);
    return proto_msg_end(b, ref);
}

struct buf *proto_deleted(const char *room, int64_t id, int64_t rev, const char *by_id,
                          const char *by_name, const char *ref)
{
    struct buf *b = change_start("deleted", room, id, rev, 256);
    buf_puts(&b, ",\"by\":{\"id\":");
    buf_put_jstrz(&b, by_id);
    buf_puts(&b, ",\"name\":");
    buf_put_jstrz(&b, by_name);
    buf_put(&b, "}", 1);
    return proto_msg_end(b, ref);
}

struct buf *proto_ok(const char *ref)
{
    struct buf *b = buf_new(64);
    buf_puts(&b, "{\"type\":\"ok\"");
    return proto_msg_end(b, ref);
}

struct buf *proto_removed(const char *room, const char *reason)
{
    struct buf *b = buf_new(96 + (reason ? strlen(reason) * 6 : 0));
    buf_puts(&b, "{\"type\":\"removed\",\"room\":\"");
    buf_puts(&b, room); /* validated: [a-z0-9_-] only */
    buf_puts(&b, "\"");
    if (reason) {
        buf_puts(&b, ",\"reason\":");
        buf_put_jstrz(&b, reason);
    }
    return proto_msg_end(b, NULL);
}

struct buf *proto_error_sanction(const char *msg, const char *sanction, int64_t until,
                                 const char *ref)
{
    struct buf *b = buf_new(192);
    buf_puts(&b, "{\"type\":\"error\",\"code\":\"");
    buf_puts(&b, err_codes[E_FORBIDDEN]);
    buf_puts(&b, "\",\"message\":");
    buf_put_jstrz(&b, msg);
    buf_puts(&b, ",\"sanction\":");
    buf_put_jstrz(&b, sanction);
    if (until) {
        buf_puts(&b, ",\"until\":");
        buf_put_i64(&b, until);
    }
    return proto_msg_end(b, ref);
}
