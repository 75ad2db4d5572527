/* jwt.c -- HS256 JWT verification and signing. */
#include "jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "crypto.h"
#include "json.h"
#include "protocol.h"
#include "utf8.h"

void jwt_claims_free(struct jwt_claims *c)
{
    for (int i = 0; i < c->nrooms; i++)
        free(c->rooms[i]);
    free(c->rooms);
    c->rooms = NULL;
    c->nrooms = 0;
}

int jwt_allows_room(const struct jwt_claims *c, const char *room)
{
    if (c->all_rooms) return 1;
    for (int i = 0; i < c->nrooms; i++)
        if (!strcmp(c->rooms[i], room)) return 1;
    return 0;
}

/* Decodes one base64url segment as a JSON object; NULL on failure, with
 * *oom set when cJSON ran out of memory. */
static cJSON *decode_json(const char *seg, size_t n, int *oom)
{
    char tmp[JWT_MAX_LEN];
    long len = crypto_b64url_decode(seg, n, tmp, sizeof tmp);
    if (len < 0 || !utf8_valid(tmp, (size_t)len)) return NULL;
    (void)proto_json_oom();
    cJSON *j = json_parse(tmp, (size_t)len); /* not cJSON_Parse*: see json.h */
    if (!j && proto_json_oom()) *oom = 1;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static int header_ok(const char *seg, size_t n, int *oom)
{
    cJSON *h = decode_json(seg, n, oom);
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    int ok = cJSON_IsString(alg) && !strcmp(alg->valuestring, "HS256");
    cJSON_Delete(h);
    return ok;
}

/* A role other than "mod" or "admin" (or not a string) counts as none. */
static int read_role(const cJSON *role)
{
    if (!cJSON_IsString(role)) return JWT_ROLE_NONE;
    if (!strcmp(role->valuestring, "mod")) return JWT_ROLE_MOD;
    if (!strcmp(role->valuestring, "admin")) return JWT_ROLE_ADMIN;
    return JWT_ROLE_NONE;
}
static int read_rooms(const cJSON *rooms, struct jwt_claims *c)
{
    if (!rooms || (cJSON_IsString(rooms) && !strcmp(rooms->valuestring, "*"))) {
        c->all_rooms = 1;
        return 0;
    }
    if (!cJSON_IsArray(rooms)) return -1;
    int n = cJSON_GetArraySize(rooms);
    if (n > JWT_MAX_ROOMS) return -1;
    c->rooms = calloc((size_t)n + 1, sizeof(char *));
    if (!c->rooms) return -2;
    const cJSON *r;
    cJSON_ArrayForEach(r, rooms)
    {
        if (!cJSON_IsString(r) || !proto_room_valid(r->valuestring)) return -1;
        if (!(c->rooms[c->nrooms] = strdup(r->valuestring))) return -2;
        c->nrooms++;
    }
    return 0;
}

static int read_claims(const cJSON *p, int64_t now, struct jwt_claims *c,
                       const char **why)
{
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(p, "sub");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "name");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(p, "exp");
    const char *m;
    if (!cJSON_IsNumber(exp) || exp->valuedouble <= (double)now ||
        exp->valuedouble > 9007199254740991.0) { /* and no overflowing cast */
        *why = "token expired or without exp";
        return -1;
    }
    c->exp = (int64_t)exp->valuedouble;
    if (!cJSON_IsString(sub) || !sub->valuestring[0] ||
        strlen(sub->valuestring) > JWT_MAX_SUB) {
        *why = "token sub missing or too long";
        return -1;
    }
    if (!strcmp(sub->valuestring, PROTO_API_ACTOR)) {
        *why = "token sub \"" PROTO_API_ACTOR "\" is reserved for the HTTP API";
        return -1;
    }
    if (!cJSON_IsString(name) || proto_check_name(name->valuestring, &m)) {
        *why = "token name missing or invalid";
        return -1;
    }
    strcpy(c->sub, sub->valuestring);
    strcpy(c->name, name->valuestring); /* <= 32 code points fits */
    c->no_dm = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "dm"));
    c->role = read_role(cJSON_GetObjectItemCaseSensitive(p, "role"));
    int rc = read_rooms(cJSON_GetObjectItemCaseSensitive(p, "rooms"), c);
    if (rc) {
        *why = rc == -2 ? "out of memory" : "token rooms claim invalid";
        return rc;
    }
    return 0;
}

int jwt_verify(const char *tok, const void *secret, size_t slen, int64_t now,
               struct jwt_claims *c, const char **why)
{
    memset(c, 0, sizeof(*c));
    size_t n = strlen(tok);
    const char *d1 = memchr(tok, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
    *why = "malformed token";
    if (!secret || !slen) {
        *why = "tokens are not enabled on this server";
        return -1;
    }
    if (n > JWT_MAX_LEN || !d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok)))
        return -1;
    int oom = 0;
    if (!header_ok(tok, (size_t)(d1 - tok), &oom)) {
        *why = oom ? "out of memory" : "token alg must be HS256";
        return oom ? -2 : -1;
    }
    unsigned char mac[CRYPTO_HMAC_LEN], got[CRYPTO_HMAC_LEN + 4];
    crypto_hmac_sha256(secret, slen, tok, (size_t)(d2 - tok), mac);
    long glen = crypto_b64url_decode(d2 + 1, n - (size_t)(d2 + 1 - tok), got, sizeof got);
    if (glen != CRYPTO_HMAC_LEN || !crypto_equal(mac, got, CRYPTO_HMAC_LEN)) {
        *why = "bad token signature";
        return -1;
    }
    cJSON *p = decode_json(d1 + 1, (size_t)(d2 - d1 - 1), &oom);
    int rc = p ? read_claims(p, now, c, why) : oom ? -2 : -1;
    if (!p && oom) *why = "out of memory";
    cJSON_Delete(p);
    if (rc) {
        jwt_claims_free(c);
        memset(c, 0, sizeof(*c)); /* a refused token leaves no claims behind */
    }
    return rc;
}

char *jwt_sign(const void *secret, size_t slen, const char *sub, const char *name,
               int64_t exp, const char *rooms_json)
{
    char *out = NULL, *payload = NULL;
    cJSON *p = cJSON_CreateObject();
    cJSON *rooms = rooms_json ? json_parse(rooms_json, strlen(rooms_json)) : NULL;
    if (!p || (rooms_json && !rooms)) goto err;
    cJSON_AddStringToObject(p, "sub", sub);
    cJSON_AddStringToObject(p, "name", name);
    cJSON_AddNumberToObject(p, "exp", (double)exp);
    if (rooms) cJSON_AddItemToObject(p, "rooms", rooms), rooms = NULL;
    if (!(payload = cJSON_PrintUnformatted(p))) goto err;
    out = jwt_sign_payload(secret, slen, payload, strlen(payload));
err:
    cJSON_Delete(p);
    cJSON_Delete(rooms);
    cJSON_free(payload);
    return out;
}

char *jwt_sign_payload(const void *secret, size_t slen, const char *payload, size_t plen)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t cap = (sizeof hdr + plen) * 4 / 3 + 64;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t o = crypto_b64url_encode(hdr, sizeof hdr - 1, out);
    out[o++] = '.';
    o += crypto_b64url_encode(payload, plen, out + o);
    unsigned char mac[CRYPTO_HMAC_LEN];
    crypto_hmac_sha256(secret, slen, out, o, mac);
    out[o++] = '.';
    crypto_b64url_encode(mac, sizeof mac, out + o);
    return out;
}

int jwt_moderates(const struct jwt_claims *c, const char *room)
{
    if (!c || c->role == JWT_ROLE_NONE) return 0;
    if (c->role == JWT_ROLE_ADMIN) return 1;
    return !proto_room_is_dm(room) && jwt_allows_room(c, room);
}

const char *jwt_role_name(int role)
{
    return role == JWT_ROLE_ADMIN ? "admin" : role == JWT_ROLE_MOD ? "mod" : NULL;
}
