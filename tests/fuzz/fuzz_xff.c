/* fuzz_xff.c -- the client address parser and the X-Forwarded-For walk
 * (server/iplimit.c), on any bytes.
 *
 * Input: the --trust-proxy list (comma separated, each entry that parses
 * is trusted), a NUL, then the X-Forwarded-For value (any bytes, NULs
 * included). No NUL: all of it is the header, nobody is trusted.
 *
 * Oracle: the walk agrees with a plain restatement of the rule (split the
 * value at every comma; from the right, an element that is not an address
 * means "use the peer"; the first address that is not trusted is the
 * client; when all are trusted, the leftmost), it never reads outside the
 * value (ASan), and every address found gives a key that prints. Each
 * element alone also parses the same way twice, and a parsed IPv4 address
 * printed and parsed again is itself.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iplimit.h"

#define MAX_TRUSTED 8
#define MAX_ELEMS 4096

static int trusted_has(const struct iplimit_addr *t, int n, const struct iplimit_addr *a)
{
    for (int i = 0; i < n; i++)
        if (iplimit_addr_eq(&t[i], a)) return 1;
    return 0;
}

/* The rule, restated forward: element boundaries first, then the walk. */
static int expected(const char *v, size_t n, const struct iplimit_addr *t, int nt,
                    struct iplimit_addr *out)
{
    static size_t start[MAX_ELEMS], len[MAX_ELEMS];
    int ne = 0;
    size_t s = 0;
    for (size_t i = 0; i <= n; i++)
        if (i == n || v[i] == ',') {
            if (ne == MAX_ELEMS) return -1; /* too many to restate: skip */
            start[ne] = s, len[ne] = i - s, ne++;
            s = i + 1;
        }
    struct iplimit_addr a;
    for (int e = ne - 1; e >= 0; e--) {
        if (iplimit_addr_parse(v + start[e], len[e], &a)) return 0;
        *out = a;
        if (!trusted_has(t, nt, &a)) return 1;
    }
    return 1; /* all trusted: *out is the leftmost */
}

static void check_addr(const struct iplimit_addr *a)
{
    assert(a->fam == 4 || a->fam == 6);
    struct iplimit_key k;
    char s[64];
    iplimit_key_of(a, &k);
    iplimit_key_str(&k, s, sizeof s);
    assert(strcmp(s, "unknown"));
    if (a->fam == 4) {
        struct iplimit_addr b;
        assert(!iplimit_addr_parse(s, strlen(s), &b) && iplimit_addr_eq(a, &b));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nul = memchr(in, 0, size);
    struct iplimit_addr trusted[MAX_TRUSTED];
    int nt = 0;
    const char *v = in;
    size_t n = size;
    if (nul) {
        for (const char *p = in; p < nul && nt < MAX_TRUSTED;) {
            const char *c = memchr(p, ',', (size_t)(nul - p));
            size_t len = c ? (size_t)(c - p) : (size_t)(nul - p);
            if (!iplimit_addr_parse(p, len, &trusted[nt])) check_addr(&trusted[nt++]);
            p += len + 1;
        }
        v = nul + 1;
        n = size - (size_t)(v - in);
    }
    /* An exact-size copy: ASan sees any read past the value. */
    char *copy = malloc(n ? n : 1);
    memcpy(copy, v, n);
    struct iplimit_addr got, want;
    memset(&got, 0, sizeof got);
    int rc = iplimit_xff_client(copy, n, trusted, nt, &got);
    int ex = expected(copy, n, trusted, nt, &want);
    if (ex >= 0) {
        assert(rc == ex);
        if (rc) assert(iplimit_addr_eq(&got, &want));
    }
    if (rc) check_addr(&got);
    struct iplimit_addr a, b;
    if (!iplimit_addr_parse(copy, n, &a)) {
        check_addr(&a);
        assert(!iplimit_addr_parse(copy, n, &b) && iplimit_addr_eq(&a, &b));
    }
    free(copy);
    return 0;
}
