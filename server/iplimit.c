/* iplimit.c -- client address keys, X-Forwarded-For, and the shared table
 * of per-key connection counts and per-minute windows (iplimit.h). */
#include "iplimit.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

#define MINUTE_US 60000000LL
#define SWEEP_STEP 4 /* buckets looked at per call: every entry within a few calls */

/* ---- Addresses ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes the IPv4 address. */
static void set_v6(struct iplimit_addr *out, const uint8_t *b16)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out, 0, sizeof(*out));
    if (!memcmp(b16, mapped, 12)) {
        out->fam = 4;
        memcpy(out->b, b16 + 12, 4);
        return;
    }
    out->fam = 6;
    memcpy(out->b, b16, 16);
}

/* Whether the n bytes at p are a port: 1 to 5 digits. */
static int is_port(const char *p, size_t n)
{
    if (n < 1 || n > 5) return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return 1;
}

int iplimit_addr_parse(const char *s, size_t n, struct iplimit_addr *out)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    uint8_t b[16];
    while (n && is_space(*s))
        s++, n--;
    while (n && is_space(s[n - 1]))
        n--;
    if (n && *s == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(s, ']', n);
        if (!close) return -1;
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest && !(close[1] == ':' && is_port(close + 2, rest - 1))) return -1;
        s++;
        n = (size_t)(close - s);
        if (!memchr(s, ':', n)) return -1; /* brackets hold IPv6 only */
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - s))) {
            /* One colon: IPv4 and a port. */
            if (!is_port(colon + 1, n - (size_t)(colon + 1 - s))) return -1;
            n = (size_t)(colon - s);
        }
    }
    if (n == 0 || n >= sizeof tmp || memchr(s, 0, n)) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (inet_pton(AF_INET, tmp, b) == 1) {
        memset(out, 0, sizeof(*out));
        out->fam = 4;
        memcpy(out->b, b, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, b) == 1) {
        set_v6(out, b);
        return 0;
    }
    return -1;
}

int iplimit_addr_from_sockaddr(const struct sockaddr *sa, struct iplimit_addr *out)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memset(out, 0, sizeof(*out));
        out->fam = 4;
        memcpy(out->b, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        set_v6(out, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
        return 0;
    }
    return -1;
}

int iplimit_addr_eq(const struct iplimit_addr *a, const struct iplimit_addr *b)
{
    return a->fam == b->fam && !memcmp(a->b, b->b, a->fam == 4 ? 4 : 16);
}

void iplimit_key_of(const struct iplimit_addr *a, struct iplimit_key *k)
{
    memset(k, 0, sizeof(*k));
    k->fam = a->fam == 4 || a->fam == 6 ? a->fam : 0;
    if (k->fam) memcpy(k->b, a->b, k->fam == 4 ? 4 : 8);
}

void iplimit_key_str(const struct iplimit_key *k, char *out, size_t cap)
{
    uint8_t b[16] = {0};
    char tmp[INET6_ADDRSTRLEN];
    if (k->fam == 4 && inet_ntop(AF_INET, k->b, tmp, sizeof tmp)) {
        snprintf(out, cap, "%s", tmp);
        return;
    }
    memcpy(b, k->b, 8);
    if (k->fam == 6 && inet_ntop(AF_INET6, b, tmp, sizeof tmp)) {
        snprintf(out, cap, "%s/64", tmp);
        return;
    }
    snprintf(out, cap, "unknown");
}

static int trusted_has(const struct iplimit_addr *trusted, int ntrusted,
                       const struct iplimit_addr *a)
{
    for (int i = 0; i < ntrusted; i++)
        if (iplimit_addr_eq(&trusted[i], a)) return 1;
    return 0;
}

int iplimit_xff_client(const char *xff, size_t n, const struct iplimit_addr *trusted,
                       int ntrusted, struct iplimit_addr *out)
{
    struct iplimit_addr a, last;
    int have = 0;
    size_t end = n;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        if (iplimit_addr_parse(xff + start, end - start, &a)) return 0;
        if (!trusted_has(trusted, ntrusted, &a)) {
            *out = a;
            return 1;
        }
        last = a, have = 1;
        if (start == 0) break;
        end = start - 1; /* before the comma */
    }
    if (have) *out = last; /* every hop is ours: the leftmost sent it */
    return have;
}

/* ---- The table ---- */

struct ipent {
    struct ipent *next; /* bucket chain */
    struct iplimit_key key;
    uint32_t conns;    /* counted connections */
    int64_t guest_tat; /* guest window: when it is full again (GCRA) */
    int64_t auth_tat;  /* failed-authentication window, likewise */
};

struct iplimit {
    struct iplimit_config cfg;
    pthread_mutex_t lock; /* guards everything below */
    struct ipent **bucket;
    size_t nbuckets; /* a power of two */
    size_t count;    /* entries */
    size_t sweep;    /* next bucket the incremental sweep looks at */
    long conns;      /* sum of every entry's conns */
    uint64_t seed;
    uint64_t conn_refused, guest_refused, auth_refused;
};

static size_t hash(const struct iplimit *t, const struct iplimit_key *k)
{
    uint64_t h = t->seed ^ 0xcbf29ce484222325ULL;
    const uint8_t *p = (const uint8_t *)k;
    for (size_t i = 0; i < sizeof(*k); i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    h ^= h >> 33; /* FNV's low bits are weak: mix before masking */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (size_t)h & (t->nbuckets - 1);
}

/* An entry with no connection and both windows full again is forgettable:
 * recreating it later gives the same answers. */
static int idle(const struct ipent *e, int64_t now_us)
{
    return !e->conns && e->guest_tat <= now_us && e->auth_tat <= now_us;
}

/* Frees the idle entries of bucket i. Lock held. */
static void sweep_bucket(struct iplimit *t, size_t i, int64_t now_us)
{
    for (struct ipent **pp = &t->bucket[i]; *pp;) {
        struct ipent *e = *pp;
        if (idle(e, now_us)) {
            *pp = e->next;
            free(e);
            t->count--;
        } else {
            pp = &e->next;
        }
    }
}

/* A few buckets per call, so stale entries go without a timer. Lock held. */
static void sweep_some(struct iplimit *t, int64_t now_us)
{
    for (int i = 0; i < SWEEP_STEP; i++) {
        sweep_bucket(t, t->sweep, now_us);
        t->sweep = (t->sweep + 1) & (t->nbuckets - 1);
    }
}

/* The table is full: free every idle entry, and if none was, evict the
 * entry without connections whose windows refill first. Lock held. */
static void make_room(struct iplimit *t, int64_t now_us)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        sweep_bucket(t, i, now_us);
    if (t->count < t->cfg.max_keys) return;
    struct ipent **victim = NULL;
    int64_t best = 0;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct ipent **pp = &t->bucket[i]; *pp; pp = &(*pp)->next) {
            const struct ipent *e = *pp;
            int64_t until = e->guest_tat > e->auth_tat ? e->guest_tat : e->auth_tat;
            if (!e->conns && (!victim || until < best)) victim = pp, best = until;
        }
    if (!victim) return; /* every entry holds a connection */
    struct ipent *e = *victim;
    *victim = e->next;
    free(e);
    t->count--;
}

/* Returns k's entry, creating it when `create`; NULL when absent (and
 * !create), or when the table is full of connected keys or memory ran
 * out. Lock held. */
static struct ipent *lookup(struct iplimit *t, const struct iplimit_key *k,
                            int64_t now_us, int create)
{
    sweep_some(t, now_us);
    size_t h = hash(t, k);
    for (struct ipent *e = t->bucket[h]; e; e = e->next)
        if (!memcmp(&e->key, k, sizeof(*k))) return e;
    if (!create) return NULL;
    if (t->count >= t->cfg.max_keys) make_room(t, now_us);
    if (t->count >= t->cfg.max_keys) return NULL;
    struct ipent *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->key = *k;
    e->guest_tat = e->auth_tat = now_us;
    e->next = t->bucket[h];
    t->bucket[h] = e;
    t->count++;
    return e;
}

struct iplimit *iplimit_new(const struct iplimit_config *c)
{
    struct iplimit *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->cfg = *c;
    if (t->cfg.max_keys < 1) t->cfg.max_keys = 1;
    t->nbuckets = 64;
    while (t->nbuckets < t->cfg.max_keys / 4 && t->nbuckets < ((size_t)1 << 24))
        t->nbuckets *= 2;
    if (!(t->bucket = calloc(t->nbuckets, sizeof(*t->bucket)))) goto err;
    /* Unpredictable bucket order: nobody picks addresses that collide. */
    t->seed = (uint64_t)(uintptr_t)t * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)&t;
    pthread_mutex_init(&t->lock, NULL);
    return t;
err:
    free(t);
    return NULL;
}

void iplimit_free(struct iplimit *t)
{
    if (!t) return;
    /* Every close released what its connect counted (session.c). */
    if (t->conns) plog(LOG_ERROR, "iplimit-leak", "connections=%ld", t->conns);
    assert(t->conns == 0);
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct ipent *e = t->bucket[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(t->bucket);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int iplimit_conn_full(struct iplimit *t, const struct iplimit_key *k)
{
    if (!t || !t->cfg.max_conns) return 0;
    pthread_mutex_lock(&t->lock);
    struct ipent *e = NULL;
    size_t h = hash(t, k);
    for (e = t->bucket[h]; e; e = e->next)
        if (!memcmp(&e->key, k, sizeof(*k))) break;
    int full = e && e->conns >= (uint32_t)t->cfg.max_conns;
    if (full) t->conn_refused++;
    pthread_mutex_unlock(&t->lock);
    return full;
}

int iplimit_conn_acquire(struct iplimit *t, const struct iplimit_key *k, int64_t now_us)
{
    if (!t) return 0;
    pthread_mutex_lock(&t->lock);
    struct ipent *e = lookup(t, k, now_us, 1);
    int rc = -1;
    if (e && (!t->cfg.max_conns || e->conns < (uint32_t)t->cfg.max_conns)) {
        e->conns++;
        t->conns++;
        rc = 1;
    } else {
        t->conn_refused++;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void iplimit_conn_release(struct iplimit *t, const struct iplimit_key *k, int64_t now_us)
{
    if (!t) return;
    pthread_mutex_lock(&t->lock);
    struct ipent *e = lookup(t, k, now_us, 0);
    /* An entry with connections is never swept or evicted. */
    assert(e && e->conns > 0 && t->conns > 0);
    if (e && e->conns) {
        e->conns--;
        t->conns--;
        if (idle(e, now_us)) sweep_bucket(t, hash(t, k), now_us);
    } else {
        plog(LOG_ERROR, "iplimit-release", "reason=\"a connection not counted\"");
    }
    pthread_mutex_unlock(&t->lock);
}

/* GCRA, a token bucket in one number: `per_min` events per rolling minute,
 * all of them at once after a quiet minute. *tat is when the window is full
 * again. Returns 0 and advances it, or the microseconds until allowed. */
static int64_t window_take(int64_t *tat, long per_min, int64_t now_us)
{
    int64_t step = MINUTE_US / per_min, tau = step * (per_min - 1);
    int64_t t0 = *tat > now_us ? *tat : now_us;
    if (t0 - now_us > tau) return t0 - tau - now_us;
    *tat = t0 + step;
    return 0;
}

int iplimit_guest_take(struct iplimit *t, const struct iplimit_key *k, int64_t now_us,
                       long *retry_s)
{
    if (!t || !t->cfg.guests_per_min) return 1;
    pthread_mutex_lock(&t->lock);
    struct ipent *e = lookup(t, k, now_us, 1);
    int64_t wait =
        e ? window_take(&e->guest_tat, t->cfg.guests_per_min, now_us) : 1000000;
    if (wait) t->guest_refused++;
    pthread_mutex_unlock(&t->lock);
    if (wait && retry_s) *retry_s = (long)((wait + 999999) / 1000000);
    return !wait;
}

void iplimit_auth_failed(struct iplimit *t, const struct iplimit_key *k, int64_t now_us)
{
    if (!t || !t->cfg.auth_fails_per_min) return;
    pthread_mutex_lock(&t->lock);
    struct ipent *e = lookup(t, k, now_us, 1);
    /* A failure always counts: the window may run past full, so a client
     * that keeps failing stays blocked longer. */
    if (e) {
        int64_t step = MINUTE_US / t->cfg.auth_fails_per_min;
        e->auth_tat = (e->auth_tat > now_us ? e->auth_tat : now_us) + step;
        if (e->auth_tat > now_us + 2 * MINUTE_US) e->auth_tat = now_us + 2 * MINUTE_US;
    }
    pthread_mutex_unlock(&t->lock);
}

int iplimit_auth_blocked(struct iplimit *t, const struct iplimit_key *k, int64_t now_us)
{
    if (!t || !t->cfg.auth_fails_per_min) return 0;
    pthread_mutex_lock(&t->lock);
    struct ipent *e = lookup(t, k, now_us, 0);
    long n = t->cfg.auth_fails_per_min;
    int64_t step = MINUTE_US / n;
    /* Blocked when one more failure would not fit: n failed in the window. */
    int blocked = e && e->auth_tat - now_us > step * (n - 1);
    if (blocked) t->auth_refused++;
    pthread_mutex_unlock(&t->lock);
    return blocked;
}

void iplimit_stats(struct iplimit *t, struct iplimit_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!t) return;
    pthread_mutex_lock(&t->lock);
    out->conn_refused = t->conn_refused;
    out->guest_refused = t->guest_refused;
    out->auth_refused = t->auth_refused;
    out->keys = t->count;
    out->conns = t->conns;
    pthread_mutex_unlock(&t->lock);
}

int iplimit_check(struct iplimit *t)
{
    if (!t) return 0;
    pthread_mutex_lock(&t->lock);
    size_t n = 0;
    long conns = 0;
    int bad = 0;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct ipent *e = t->bucket[i]; e; e = e->next) {
            n++;
            conns += e->conns;
            if (hash(t, &e->key) != i) bad = 1;
            if (t->cfg.max_conns && e->conns > (uint32_t)t->cfg.max_conns) bad = 1;
        }
    if (n != t->count || conns != t->conns || n > t->cfg.max_keys) bad = 1;
    pthread_mutex_unlock(&t->lock);
    return bad ? -1 : 0;
}
