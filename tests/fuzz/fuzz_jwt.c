/* fuzz_jwt.c -- jwt_verify() on hostile tokens.
 *
 * Three modes, picked by the first byte:
 *  0: the rest is the token as a client sends it (in hello or ?token=).
 *  1: the rest is "header JSON \0 payload JSON"; the harness signs it with
 *     the server's secret, so the fuzzer reaches claim validation, and then
 *     checks every accepted token's claims against the documented rules.
 *  2: like 1, then one character of the signed token is changed: a changed
 *     token must never verify (no signature bypass).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "jwt.h"
#include "protocol.h"
#include "utf8.h"

#define SECRET "fuzz-secret-0123456789"
#define NOW 1763766000

static void check_claims(const struct jwt_claims *c)
{
    const char *msg;
    assert(c->sub[0] && strlen(c->sub) <= JWT_MAX_SUB);
    assert(utf8_valid(c->sub, strlen(c->sub)));
    assert(proto_check_name(c->name, &msg) == PROTO_OK);
    assert(c->exp > NOW - 1);
    assert(c->all_rooms || (c->nrooms >= 0 && c->nrooms <= JWT_MAX_ROOMS));
    for (int i = 0; i < c->nrooms; i++) {
        assert(proto_room_valid(c->rooms[i]));
        assert(jwt_allows_room(c, c->rooms[i]));
    }
    if (c->all_rooms) assert(jwt_allows_room(c, "lobby"));
}

static char *sign(const char *hdr, size_t hn, const char *pl, size_t pn)
{
    size_t cap = (hn + pn) * 4 / 3 + 128;
    char *tok = malloc(cap);
    size_t o = crypto_b64url_encode(hdr, hn, tok);
    tok[o++] = '.';
    o += crypto_b64url_encode(pl, pn, tok + o);
    unsigned char mac[CRYPTO_HMAC_LEN];
    crypto_hmac_sha256(SECRET, strlen(SECRET), tok, o, mac);
    tok[o++] = '.';
    crypto_b64url_encode(mac, sizeof mac, tok + o);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned mode = data[0] % 3;
    const char *d = (const char *)data + 1;
    size_t n = size - 1;
    struct jwt_claims c;
    const char *why = NULL;
    char *tok;
    if (mode == 0) {
        tok = strndup(d, n); /* a C string, as the session passes it */
    } else {
        const char *nul = memchr(d, 0, n);
        size_t hn = nul ? (size_t)(nul - d) : 0;
        const char *pl = nul ? nul + 1 : d;
        size_t pn = nul ? n - hn - 1 : n;
        tok = nul ? sign(d, hn, pl, pn) : sign("{\"alg\":\"HS256\"}", 15, pl, pn);
    }
    int rc = jwt_verify(tok, SECRET, strlen(SECRET), NOW, &c, &why);
    assert(rc == 0 || rc == -1);
    if (rc == 0)
        check_claims(&c);
    else
        assert(why && c.nrooms == 0 && c.rooms == NULL);
    jwt_claims_free(&c);

    /* Without a secret, nothing verifies. */
    assert(jwt_verify(tok, NULL, 0, NOW, &c, &why) == -1);
    jwt_claims_free(&c);

    if (mode == 2 && tok[0]) {
        size_t len = strlen(tok);
        size_t at = (size_t)data[size - 1] * 131 % len;
        char was = tok[at];
        static const char alphabet[] = "AZaz09-_.=+/ \x80";
        char now = alphabet[(size + at) % (sizeof alphabet - 1)];
        if (now == was) now = was == 'A' ? 'B' : 'A';
        tok[at] = now;
        assert(jwt_verify(tok, SECRET, strlen(SECRET), NOW, &c, &why) == -1);
        jwt_claims_free(&c);
    }
    free(tok);
    return 0;
}
