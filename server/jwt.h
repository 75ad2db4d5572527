/* jwt.h -- HS256 JSON Web Tokens: verification for hello, signing for tools
 * and tests. Thread-safe; no globals.
 */
#ifndef PARLEY_JWT_H
#define PARLEY_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_LEN 8192
#define JWT_MAX_SUB 128 /* bytes */
#define JWT_MAX_ROOMS 256

/* A token's `role` claim. Guests have none: they have no token. */
enum { JWT_ROLE_NONE, JWT_ROLE_MOD, JWT_ROLE_ADMIN };

struct jwt_claims {
    char sub[JWT_MAX_SUB + 1];
    char name[32 * 4 + 1]; /* 32 code points of UTF-8 */
    int64_t exp;           /* Unix seconds */
    int all_rooms;         /* no `rooms` claim, or "*" */
    int no_dm;             /* "dm": false: this user may not start DMs */
    int role;              /* JWT_ROLE_*: "role": "mod" or "admin"; else none */
    int nrooms;
    char **rooms; /* owned; freed by jwt_claims_free() */
};

/* Verifies `token` with `secret` at time `now` (Unix seconds). Returns 0 and
 * fills *c (free it with jwt_claims_free), or -1 with *why set to a static
 * reason and *c empty; -2 when memory ran out (the token may be good). Refused: any alg
 * but HS256, a bad signature, a past or missing exp, a missing or oversized sub, a
 * missing or invalid name, a rooms claim that is neither "*" nor an array of valid room
 * names. */
int jwt_verify(const char *token, const void *secret, size_t slen, int64_t now,
               struct jwt_claims *c, const char **why);
void jwt_claims_free(struct jwt_claims *c);
/* Returns 1 when the claims allow joining `room`. */
int jwt_allows_room(const struct jwt_claims *c, const char *room);
/* Returns 1 when c may moderate `room`: an admin anywhere, a moderator in
 * the rooms the token allows except DM rooms (protocol 1.1). c may be NULL
 * (a guest). */
int jwt_moderates(const struct jwt_claims *c, const char *room);
/* "mod", "admin", or NULL for none. */
const char *jwt_role_name(int role);

/* Signs a token. `rooms_json` is the JSON of the rooms claim ("\"*\"" or an
 * array), or NULL for none. Returns a malloc'd string, or NULL. */
char *jwt_sign(const void *secret, size_t slen, const char *sub, const char *name,
               int64_t exp, const char *rooms_json);
/* Signs the claims `payload` (a JSON object, plen bytes) as an HS256 token.
 * Returns a malloc'd string, or NULL. */
char *jwt_sign_payload(const void *secret, size_t slen, const char *payload, size_t plen);

#endif
