/* api_parse.c -- the HTTP API's routes, key check, bodies and queries
 * (api_parse.h). */
#include "api_parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "crypto.h"
#include "json.h"
#include "utf8.h"

#define KEY_CMP (CONFIG_API_KEY_MAX + 1) /* bytes every key comparison reads */

static const struct {
    const char *path;
    enum api_ep ep;
} routes[] = {
    {"/api/publish", API_PUBLISH}, {"/api/delete", API_DELETE},
    {"/api/history", API_HISTORY}, {"/api/rooms", API_ROOMS},
    {"/api/token", API_TOKEN},     {"/api/kick", API_KICK},
    {"/api/mute", API_MUTE},       {"/api/unmute", API_UNMUTE},
    {"/api/ban", API_BAN},         {"/api/unban", API_UNBAN},
};

/* The wire request whose fields an endpoint's body has. */
static enum proto_type body_type(enum api_ep ep)
{
    switch (ep) {
    case API_PUBLISH:
        return REQ_SEND;
    case API_KICK:
        return REQ_KICK;
    case API_MUTE:
        return REQ_MUTE;
    case API_UNMUTE:
        return REQ_UNMUTE;
    case API_BAN:
        return REQ_BAN;
    case API_UNBAN:
        return REQ_UNBAN;
    default:
        return REQ_DELETE;
    }
}

enum api_ep api_route(const char *path)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(path, routes[i].path)) return routes[i].ep;
    return API_UNKNOWN;
}

const char *api_method(enum api_ep ep)
{
    return ep == API_HISTORY || ep == API_ROOMS ? "GET" : "POST";
}

int api_key_matches(const char *authz, char *const *keys, const size_t *lens, int nkeys)
{
    /* Both sides are copied into zero-padded buffers of the longest key's
     * size plus one, so every comparison reads the same number of bytes
     * and a presented key longer than any configured one still differs. */
    unsigned char got[KEY_CMP], want[KEY_CMP];
    if (!authz || strncasecmp(authz, "Bearer ", 7)) return 0;
    const char *k = authz + 7;
    while (*k == ' ')
        k++;
    size_t n = strlen(k);
    while (n && k[n - 1] == ' ')
        n--;
    if (!n || n >= sizeof got) return 0;
    memset(got, 0, sizeof got);
    memcpy(got, k, n);
    int ok = 0;
    for (int i = 0; i < nkeys; i++) {
        memset(want, 0, sizeof want);
        if (lens[i] < sizeof want) memcpy(want, keys[i], lens[i]);
        ok |= crypto_equal(got, want, sizeof got) & (lens[i] == n);
    }
    return ok;
}

int api_query_secret(const char *arg)
{
    static const char *const names[] = {"key",           "api_key",  "apikey", "api-key",
                                        "access_token",  "token",    "auth",   "bearer",
                                        "authorization", "password", "secret"};
    size_t n = strcspn(arg, "=");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && !strncasecmp(arg, names[i], n)) return 1;
    return 0;
}

int api_content_type_json(const char *ct)
{
    static const char want[] = "application/json";
    if (!ct || strncasecmp(ct, want, sizeof want - 1)) return 0;
    const char *rest = ct + sizeof want - 1;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    return !*rest || *rest == ';';
}

int api_content_length(const char *cl, unsigned long long *n)
{
    size_t len = strspn(cl, "0123456789");
    if (!len || cl[len] || len > 19) return -1; /* 19 digits never overflow */
    *n = strtoull(cl, NULL, 10);
    return 0;
}

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF };

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int api_chunked_feed(struct api_chunked *st, const char *in, size_t len, struct buf **out,
                     size_t max, size_t *used)
{
    size_t i = 0;
    int rc = API_CHUNK_MORE;
    while (i < len && rc == API_CHUNK_MORE) {
        char c = in[i];
        switch (st->state) {
        case CH_SIZE:
            if (hexval(c) >= 0 && st->digits < 8) {
                st->size = st->size * 16 + (uint32_t)hexval(c);
                st->digits++;
            } else if (st->digits && (c == ';' || c == ' ' || c == '\t'))
                st->state = CH_EXT;
            else if (st->digits && c == '\r')
                st->state = CH_SIZE_LF;
            else
                rc = API_CHUNK_BAD;
            i++;
            break;
        case CH_EXT: /* extensions mean nothing here; skipped to the CR */
            if (c == '\r') st->state = CH_SIZE_LF;
            i++;
            break;
        case CH_SIZE_LF:
            i++;
            if (c != '\n')
                rc = API_CHUNK_BAD;
            else if (!st->size)
                rc = API_CHUNK_DONE;
            else if ((*out ? (*out)->len : 0) + st->size > max)
                rc = API_CHUNK_TOO_LARGE;
            else
                st->left = st->size, st->state = CH_DATA;
            break;
        case CH_DATA: {
            size_t n = len - i < st->left ? len - i : st->left;
            buf_put(out, in + i, n);
            if (!*out || (*out)->oom) return *used = i, API_CHUNK_BAD;
            i += n;
            if (!(st->left -= (uint32_t)n)) st->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
        case CH_DATA_LF:
            if (c != (st->state == CH_DATA_CR ? '\r' : '\n')) rc = API_CHUNK_BAD;
            if (st->state == CH_DATA_LF) st->size = 0, st->digits = 0;
            st->state = st->state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE;
            i++;
            break;
        }
    }
    *used = i;
    return rc;
}

static const struct {
    unsigned status;
    const char *name;
} codes[] = {
    [API_OK] = {200, "ok"},
    [API_BAD_JSON] = {400, "bad_json"},
    [API_BAD_REQUEST] = {400, "bad_request"},
    [API_BAD_ROOM] = {400, "bad_room"},
    [API_TOO_LONG] = {400, "too_long"},
    [API_UNAUTHORIZED] = {401, "unauthorized"},
    [API_FORBIDDEN] = {403, "forbidden"},
    [API_NOT_FOUND] = {404, "not_found"},
    [API_METHOD_NOT_ALLOWED] = {405, "method_not_allowed"},
    [API_CONFLICT] = {409, "conflict"},
    [API_TOO_LARGE] = {413, "too_large"},
    [API_RATE_LIMITED] = {429, "rate_limited"},
    [API_OVERLOADED] = {503, "overloaded"},
    [API_INTERNAL] = {500, "internal"},
};

unsigned api_status(enum api_code c)
{
    return codes[c].status;
}

const char *api_code_name(enum api_code c)
{
    return codes[c].name;
}

struct buf *api_error_json(enum api_code c, const char *msg)
{
    struct buf *b = buf_new(64 + strlen(msg));
    buf_puts(&b, "{\"error\":{\"code\":\"");
    buf_puts(&b, codes[c].name);
    buf_puts(&b, "\",\"message\":");
    buf_put_jstrz(&b, msg);
    buf_puts(&b, "}}\n");
    if (b && b->oom) buf_unref(b), b = NULL;
    return b;
}

static enum api_code from_proto(enum proto_err e)
{
    switch (e) {
    case PROTO_OK:
        return API_OK;
    case E_BAD_JSON:
        return API_BAD_JSON;
    case E_BAD_ROOM:
        return API_BAD_ROOM;
    case E_TOO_LONG:
        return API_TOO_LONG;
    case E_INTERNAL:
        return API_INTERNAL;
    default:
        return API_BAD_REQUEST;
    }
}

/* A user id: 1 to PROTO_MAX_USER bytes, no control characters, not
 * guest-shaped, not the API's own (protocol.h). */
static int user_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (!n || n > PROTO_MAX_USER || proto_user_guest_shaped(id)) return 0;
    if (!strcmp(id, PROTO_API_ACTOR)) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) return 0;
    return 1;
}

/* publish: `user` {"id","name"}, then the fields of a `send`. */
static enum api_code publish_user(struct api_req *r, const char **msg)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(r->p.json, "user");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(u, "id");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(u, "name");
    const char *why;
    if (!cJSON_IsObject(u) || !cJSON_IsString(id) || !cJSON_IsString(name)) {
        *msg = "user must be an object with string id and name";
        return API_BAD_REQUEST;
    }
    if (!user_id_ok(id->valuestring)) {
        *msg = "user.id must be 1 to 128 bytes without control characters, not "
               "shaped like a guest id (g_ and 16 hex), and not \"" PROTO_API_ACTOR "\"";
        return API_BAD_REQUEST;
    }
    if (proto_check_name(name->valuestring, &why)) {
        *msg = "user.name must be 1 to 32 characters, not only spaces, without control "
               "characters";
        return API_BAD_REQUEST;
    }
    r->user_id = id->valuestring;
    r->user_name = name->valuestring;
    return API_OK;
}

/* token: ttl, whole seconds from 1 to 30 days (3600 when absent). */
static enum api_code token_ttl(struct api_req *r, const char **msg)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->p.json, "ttl");
    r->ttl = API_TTL_DEFAULT;
    if (!t) return API_OK;
    if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) ||
        t->valuedouble < 1 || t->valuedouble > API_TTL_MAX) {
        *msg = "ttl must be whole seconds from 1 to 2592000 (30 days)";
        return API_BAD_REQUEST;
    }
    r->ttl = (int64_t)t->valuedouble;
    return API_OK;
}

/* token: rooms ("*" or up to 256 room names), role ("mod"/"admin"), dm. */
static enum api_code token_extras(struct api_req *r, const char **msg)
{
    const cJSON *j = r->p.json, *rooms = cJSON_GetObjectItemCaseSensitive(j, "rooms"),
                *role = cJSON_GetObjectItemCaseSensitive(j, "role"),
                *dm = cJSON_GetObjectItemCaseSensitive(j, "dm"), *e;
    if (rooms && !(cJSON_IsString(rooms) && !strcmp(rooms->valuestring, "*"))) {
        int ok = cJSON_IsArray(rooms) && cJSON_GetArraySize(rooms) <= 256;
        for (e = ok ? rooms->child : NULL; e; e = e->next)
            ok &= cJSON_IsString(e) && proto_room_valid(e->valuestring);
        if (!ok) {
            *msg = "rooms must be \"*\" or an array of at most 256 room names";
            return API_BAD_REQUEST;
        }
    }
    if (role && !(cJSON_IsString(role) && (!strcmp(role->valuestring, "mod") ||
                                           !strcmp(role->valuestring, "admin")))) {
        *msg = "role must be \"mod\" or \"admin\"";
        return API_BAD_REQUEST;
    }
    if (dm && !cJSON_IsBool(dm)) {
        *msg = "dm must be true or false";
        return API_BAD_REQUEST;
    }
    r->rooms = rooms;
    r->role = role ? role->valuestring : NULL;
    r->dm = dm ? cJSON_IsTrue(dm) : -1;
    return API_OK;
}

/* token: sub (a user id, not guest-shaped) and name (a display name). */
static enum api_code parse_token(struct api_req *r, const char **msg)
{
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(r->p.json, "sub"),
                *name = cJSON_GetObjectItemCaseSensitive(r->p.json, "name");
    const char *why;
    if (!cJSON_IsObject(r->p.json)) {
        *msg = "the body must be a JSON object";
        return API_BAD_JSON;
    }
    if (!cJSON_IsString(sub) || !user_id_ok(sub->valuestring)) {
        *msg = "sub must be 1 to 128 bytes without control characters, not shaped "
               "like a guest id (g_ and 16 hex), and not \"" PROTO_API_ACTOR "\"";
        return API_BAD_REQUEST;
    }
    if (!cJSON_IsString(name) || proto_check_name(name->valuestring, &why)) {
        *msg = "name must be 1 to 32 characters, not only spaces, without control "
               "characters";
        return API_BAD_REQUEST;
    }
    r->user_id = sub->valuestring;
    r->user_name = name->valuestring;
    enum api_code c = token_ttl(r, msg);
    return c ? c : token_extras(r, msg);
}

enum api_code api_parse_body(enum api_ep ep, const char *body, size_t len,
                             const struct proto_limits *lim, const char *fresh_client_id,
                             struct api_req *out, const char **msg)
{
    memset(out, 0, sizeof(*out));
    out->ep = ep;
    out->dm = -1;
    if (memchr(body, 0, len) || !utf8_valid(body, len)) {
        *msg = "the body is not UTF-8 JSON";
        return API_BAD_JSON;
    }
    (void)proto_json_oom();
    cJSON *j = json_parse_all(body, len);
    if (!j) {
        int oom = proto_json_oom();
        *msg = oom ? "out of memory" : "the body is not JSON";
        return oom ? API_INTERNAL : API_BAD_JSON;
    }
    if (ep == API_TOKEN) {
        out->p.json = j;
        if (proto_has_nul_escape(body, len)) {
            *msg = "strings must not contain NUL characters";
            return API_BAD_REQUEST;
        }
        return parse_token(out, msg);
    }
    /* Without client_id a publish gets one, so every MESSAGE has one. */
    if (ep == API_PUBLISH && cJSON_IsObject(j) &&
        !cJSON_GetObjectItemCaseSensitive(j, "client_id") &&
        !cJSON_AddStringToObject(j, "client_id", fresh_client_id)) {
        cJSON_Delete(j);
        *msg = "out of memory";
        return API_INTERNAL;
    }
    enum proto_err e = proto_parse_fields(j, body, len, body_type(ep), lim, &out->p, msg);
    if (e) return from_proto(e);
    return ep == API_PUBLISH ? publish_user(out, msg) : API_OK;
}

/* A query value as a JSON number: decimal digits only, at most 16 (ids
 * stop at 2^53). Returns 0, or -1. */
static int query_number(const char *v, double *out)
{
    size_t n = strlen(v);
    if (!n || n > 16 || strspn(v, "0123456789") != n) return -1;
    *out = strtod(v, NULL);
    return 0;
}

enum api_code api_parse_query(enum api_ep ep, const char *const *args, int nargs,
                              struct api_req *out, const char **msg)
{
    static const char *const names[] = {"room", "before", "after", "limit"};
    memset(out, 0, sizeof(*out));
    out->ep = ep;
    out->dm = -1;
    cJSON *j = cJSON_CreateObject();
    if (!j) return *msg = "out of memory", API_INTERNAL;
    out->p.json = j;
    for (int i = 0; i < nargs; i++) {
        const char *a = args[i], *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a), k;
        for (k = 0; k < (ep == API_HISTORY ? 4u : 0u); k++)
            if (strlen(names[k]) == n && !strncmp(a, names[k], n)) break;
        if (k == (ep == API_HISTORY ? 4u : 0u) || !eq) {
            *msg = ep == API_HISTORY ? "query arguments are room, before, after and limit"
                                     : "this endpoint takes no query arguments";
            return API_BAD_REQUEST;
        }
        if (cJSON_GetObjectItemCaseSensitive(j, names[k])) {
            *msg = "a query argument is repeated";
            return API_BAD_REQUEST;
        }
        double d;
        cJSON *v = k == 0                     ? cJSON_CreateString(eq + 1)
                   : query_number(eq + 1, &d) ? NULL
                                              : cJSON_CreateNumber(d);
        if (!v) {
            *msg = "before, after and limit must be whole numbers";
            return API_BAD_REQUEST;
        }
        cJSON_AddItemToObject(j, names[k], v);
    }
    if (ep != API_HISTORY) return API_OK;
    out->p.json = NULL; /* proto_parse_fields takes it over */
    return from_proto(proto_parse_fields(j, "", 0, REQ_HISTORY, NULL, &out->p, msg));
}

void api_req_free(struct api_req *r)
{
    proto_req_free(&r->p);
}

char *api_token_claims(const struct api_req *r, int64_t now_s)
{
    char *out = NULL;
    cJSON *c = cJSON_CreateObject(), *rooms = NULL;
    if (!c) return NULL;
    if (!cJSON_AddStringToObject(c, "sub", r->user_id) ||
        !cJSON_AddStringToObject(c, "name", r->user_name) ||
        !cJSON_AddNumberToObject(c, "exp", (double)(now_s + r->ttl)))
        goto err;
    if (r->rooms) {
        if (!(rooms = cJSON_Duplicate(r->rooms, 1))) goto err;
        cJSON_AddItemToObject(c, "rooms", rooms);
    }
    if (r->role && !cJSON_AddStringToObject(c, "role", r->role)) goto err;
    if (r->dm >= 0 && !cJSON_AddBoolToObject(c, "dm", r->dm)) goto err;
    out = cJSON_PrintUnformatted(c);
err:
    cJSON_Delete(c);
    return out;
}
