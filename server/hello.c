/* hello.c -- the first request: authentication (token or guest name),
 * guest ids and their resume tokens, and the welcome. */
#include "hello.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "db.h"
#include "expiry.h"
#include "hub.h"
#include "iplimit.h"
#include "jwt.h"
#include "log.h"
#include "moderate.h"
#include "online.h"
#include "session_impl.h"
#include "wire.h"

/* Writes the resume token for guest id `id` into out (>= 100 bytes). */
static void resume_token(struct session *s, const char *id, char *out)
{
    unsigned char mac[CRYPTO_HMAC_LEN];
    crypto_hmac_sha256(s->srv->guest_key, sizeof s->srv->guest_key, id, strlen(id), mac);
    size_t n = strlen(id);
    memcpy(out, id, n);
    out[n] = '.';
    crypto_b64url_encode(mac, 16, out + n + 1); /* 128 bits are plenty */
}

/* Writes into id (>= 19 bytes) the guest id inside `resume` and returns 1
 * when it is a valid resume token; returns 0 otherwise. */
static int resumed_id(struct session *s, const char *resume, char *id)
{
    char want[128];
    const char *dot = resume ? strchr(resume, '.') : NULL;
    if (dot && dot - resume == 18 && !strncmp(resume, "g_", 2) && strlen(resume) < 64) {
        memcpy(id, resume, 18);
        id[18] = 0;
        resume_token(s, id, want);
        if (strlen(want) == strlen(resume) && crypto_equal(want, resume, strlen(want)))
            return 1;
    }
    return 0;
}

/* A new guest identity from the client's address (--guests-per-ip-minute).
 * Returns 0, or -1 after answering rate_limited (the connection stays
 * open, as for every rate_limited: the hello may be sent again later,
 * within the hello deadline). */
static int guest_allowed(struct session *s)
{
    long retry_s = 1;
    if (iplimit_guest_take(s->srv->hub->iplimit, &s->ipkey, server_now_us(), &retry_s))
        return 0;
    char msg[96], ks[64];
    snprintf(msg, sizeof msg, "too many new guests from your address; retry in %ld s",
             retry_s);
    iplimit_key_str(&s->ipkey, ks, sizeof ks);
    plog(LOG_INFO, "guest-rate-limited", "client=%s retry_s=%ld", ks, retry_s);
    wire_error(s, E_RATE_LIMITED, msg);
    return -1;
}

/* Writes into id (>= 19 bytes) the guest id inside a valid resume token,
 * or a fresh one. A resume is not a new guest: it takes nothing from the
 * per-address window. Returns 0, or -1 after answering an error. */
static int guest_id(struct session *s, const char *resume, char *id)
{
    if (resumed_id(s, resume, id)) return 0;
    if (guest_allowed(s)) return -1;
    strcpy(id, "g_");
    if (crypto_random_hex(id + 2, 8))
        return wire_error(s, E_INTERNAL, "cannot make an id"), -1;
    return 0;
}

/* Sets the user's id and name, copied into one block that fits them.
 * Returns 0, or -1 (out of memory; nothing changed). */
static int set_user(struct session *s, const char *id, const char *name)
{
    size_t a = strlen(id) + 1, b = strlen(name) + 1;
    char *m = malloc(a + b);
    if (!m) return -1;
    memcpy(m, id, a);
    memcpy(m + a, name, b);
    free(s->user_id);
    s->user_id = m;
    s->user_name = m + a;
    return 0;
}

static void unauthorized(struct session *s, const char *why)
{
    wire_error(s, E_UNAUTHORIZED, why);
    plog(LOG_INFO, "unauthorized", "reason=\"%s\"", why);
    wire_close(s, 1008, "unauthorized", 0);
}

/* Authenticates a hello. Returns 0 when the user is set, -1 after replying
 * an error (and closing, for unauthorized). */
static int hello_auth(struct session *s)
{
    const char *token = s->req.token ? s->req.token : s->url_token, *why;
    /* A hello after a refused one (bad name, out of memory) starts over:
     * the earlier one's claims would leak, and its guest flag would let a
     * token user past the token's rooms. */
    expiry_remove(s); /* keyed by the claims freed next */
    if (s->claims) jwt_claims_free(s->claims);
    free(s->claims);
    s->claims = NULL;
    s->guest = 0;
    if (token) {
        const char *secret = cfg(s)->jwt_secret;
        struct jwt_claims c;
        memset(&c, 0, sizeof c);
        int rc = jwt_verify(token, secret, secret ? strlen(secret) : 0,
                            (int64_t)time(NULL), &c, &why);
        if (rc) {
            jwt_claims_free(&c);
            if (rc == -2) /* not the token's fault: the client may retry */
                return wire_error(s, E_INTERNAL, "out of memory"), -1;
            return unauthorized(s, why), -1;
        }
        if (proto_user_guest_shaped(c.sub)) {
            jwt_claims_free(&c);
            return unauthorized(s, "token sub is shaped like a guest id (g_ and 16 hex)"),
                   -1;
        }
        if (!(s->claims = malloc(sizeof(c)))) {
            jwt_claims_free(&c);
            return wire_error(s, E_INTERNAL, "out of memory"), -1;
        }
        *s->claims = c; /* the rooms list moves with it */
        if (set_user(s, c.sub, c.name) || expiry_set(s))
            return wire_error(s, E_INTERNAL, "out of memory"), -1;
        return 0;
    }
    if (!s->req.name)
        return wire_error(s, E_BAD_REQUEST, "hello needs a name or a token"), -1;
    if (cfg(s)->no_guests)
        return unauthorized(s, "guests are not allowed on this server"), -1;
    enum proto_err e = proto_check_name(s->req.name, &why);
    if (e) return wire_error(s, e, why), -1;
    char id[32];
    if (guest_id(s, s->req.resume, id)) return -1;
    if (set_user(s, id, s->req.name))
        return wire_error(s, E_INTERNAL, "out of memory"), -1;
    s->guest = 1;
    return 0;
}

/* Records the welcomed user (the users table: what `dm` checks ids
 * against, what operators query). Nobody waits for it: the request and its
 * strings are one block, freed by its completion (session.c). A full queue
 * or no memory skips this record; the next welcome writes it again. */
static void record_user(struct session *s)
{
    size_t a = strlen(s->user_id) + 1, b = strlen(s->user_name) + 1;
    struct db_req *r = calloc(1, sizeof(*r) + a + b);
    if (!r) return;
    char *id = (char *)(r + 1), *name = id + a;
    memcpy(id, s->user_id, a);
    memcpy(name, s->user_name, b);
    r->op = DB_USER;
    r->loop = s->srv->index;
    r->user_id = id;
    r->user_name = name;
    r->guest = s->guest;
    r->role = s->claims ? s->claims->role : JWT_ROLE_NONE; /* for the hierarchy */
    if (db_submit(s->srv->db, r)) free(r);
}

void hello_handle(struct session *s)
{
    if (s->req.type != REQ_HELLO) return wire_error(s, E_NEED_HELLO, "say hello first");
    if (hello_auth(s)) return;
    int64_t until;
    if (moderate_banned(s->srv, s->user_id, &until)) {
        wire_error(s, E_UNAUTHORIZED, "banned from this server");
        return wire_close(s, 1008, "banned", 0);
    }
    struct buf *u = buf_new(96), *b;
    buf_puts(&u, "{\"id\":");
    buf_put_jstrz(&u, s->user_id);
    buf_puts(&u, ",\"name\":");
    buf_put_jstrz(&u, s->user_name);
    buf_put(&u, "}", 1);
    if (!u || u->oom) { /* the writers drop writes to a failed buf_new() */
        buf_unref(u);
        return wire_error(s, E_INTERNAL, "out of memory");
    }
    b = buf_new(320);
    buf_puts(&b, "{\"type\":\"welcome\",\"user\":");
    buf_put(&b, BUF_PAYLOAD(u), u->len - 1); /* without its closing brace */
    const char *role = s->claims ? jwt_role_name(s->claims->role) : NULL;
    if (role) {
        buf_puts(&b, ",\"role\":");
        buf_put_jstrz(&b, role);
    }
    buf_puts(&b, s->guest ? ",\"guest\":true}" : ",\"guest\":false}");
    char limits[200], tok[128];
    snprintf(limits, sizeof limits,
             ",\"server\":\"parley/%s\",\"limits\":{\"max_text\":%ld,\"rate_per_s\":%g,"
             "\"burst\":%g,\"history_page\":%d}",
             PARLEY_VERSION, cfg(s)->max_text, cfg(s)->rate, cfg(s)->burst,
             PROTO_HISTORY_MAX);
    buf_puts(&b, limits);
    if (s->guest) {
        resume_token(s, s->user_id, tok);
        buf_puts(&b, ",\"resume\":");
        buf_put_jstrz(&b, tok);
    }
    /* Finished before the session counts as welcomed: a welcome lost to
     * out of memory leaves the client free to say hello again. */
    if (!(b = proto_msg_end(b, s->req.ref))) {
        buf_unref(u);
        return wire_error(s, E_INTERNAL, "out of memory");
    }
    if (online_add(s)) { /* a DM could not reach this connection */
        buf_unref(u);
        buf_unref(b);
        return wire_error(s, E_INTERNAL, "out of memory");
    }
    s->user_json = u;
    s->welcomed = 1;
    free(s->url_token); /* only hello reads it: not kept for the connection's life */
    s->url_token = NULL;
    wire_reply(s, b);
    record_user(s);
    plog(LOG_INFO, "hello", "user=%s guest=%d", s->user_id, s->guest);
}

int hello_is_auth(const struct proto_req *req)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req->json, "type");
    return cJSON_IsString(t) && !strcmp(t->valuestring, "auth");
}

/* Returns the name of a room s is in that claims c do not allow, or NULL:
 * a refresh may widen a token's rooms, never leave the connection in a
 * room its token no longer allows. */
static const char *joined_outside(struct session *s, const struct jwt_claims *c)
{
    for (uint32_t i = 0; i < s->nmem; i++)
        if (s->mem[i].joined && !proto_room_is_dm(s->mem[i].room->name) &&
            !jwt_allows_room(c, s->mem[i].room->name))
            return s->mem[i].room->name;
    return NULL;
}

void hello_refresh(struct session *s)
{
    if (!s->welcomed) return wire_error(s, E_NEED_HELLO, "say hello first");
    if (s->guest || !s->claims)
        return wire_error(s, E_BAD_REQUEST, "a guest has no token to refresh");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s->req.json, "token");
    if (!cJSON_IsString(t) || !t->valuestring)
        return wire_error(s, E_BAD_REQUEST, "token must be a string");
    const char *secret = cfg(s)->jwt_secret, *why;
    struct jwt_claims c;
    if (jwt_verify(t->valuestring, secret, secret ? strlen(secret) : 0,
                   (int64_t)time(NULL), &c, &why))
        return unauthorized(s, why);
    if (strcmp(c.sub, s->claims->sub))
        why = "the new token is for another user";
    else if (joined_outside(s, &c))
        why = "the new token does not allow a room this connection is in: leave it first";
    else
        why = NULL;
    if (why) {
        jwt_claims_free(&c);
        return wire_error(s, E_BAD_REQUEST, why);
    }
    /* The display name stays the hello's: members lists already carry it. */
    jwt_claims_free(s->claims);
    *s->claims = c;
    expiry_set(s); /* s is in the heap already: a move, no allocation */
    struct buf *b = buf_new(64);
    buf_puts(&b, "{\"type\":\"authed\",\"exp\":");
    buf_put_i64(&b, c.exp);
    wire_reply(s, proto_msg_end(b, s->req.ref));
    plog(LOG_INFO, "token-refreshed", "user=%s exp=%lld", s->user_id, (long long)c.exp);
}
