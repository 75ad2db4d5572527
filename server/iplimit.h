/* iplimit.h -- per-client-address abuse limits: WebSocket connections per
 * address, new guest sessions per address and minute, and failed API
 * authentications per address and minute.
 *
 * The client's address key: an IPv4 address by its full 32 bits, an IPv6
 * address by its /64 prefix (one subscriber usually holds a whole /64, so
 * counting full IPv6 addresses would give them 2^64 budgets), and an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket
 * reports) as its IPv4 address.
 *
 * One table for the whole server, shared by every event loop and guarded by
 * one mutex. It is touched only at connect, close and hello (and by the HTTP
 * API on authentication), never per message.
 *
 * Memory bound: an entry lives while its key has a counted connection or a
 * window that has not refilled (at most a minute after its last use); one
 * with neither is freed when its last connection closes, or when the
 * incremental sweep (a few buckets on every call) or a full table reaches
 * it. The table holds at most `max_keys` entries (main.c: --max-connections
 * + IPLIMIT_IDLE_KEYS + HUB_MAX_LOOPS), 40 bytes each (plus malloc's
 * overhead), and a bucket pointer per 2 to 4 entries: about 4.5 MiB with the
 * defaults, reached only when that many addresses are active at once.
 * When it is full, an entry without connections is evicted (the one whose
 * windows refill first), which forgets that key's windows: an attacker with
 * more than IPLIMIT_IDLE_KEYS addresses in a minute escapes the per-minute
 * limits, never the connection limit.
 */
#ifndef PARLEY_IPLIMIT_H
#define PARLEY_IPLIMIT_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define IPLIMIT_IDLE_KEYS 65536 /* keys kept for their windows alone, at most */
#define IPLIMIT_XFF_MAX 8192    /* X-Forwarded-For bytes read at most */

/* A full address: fam 4 (b[0..3]) or 6 (b[0..15]); 0: unknown. */
struct iplimit_addr {
    uint8_t fam;
    uint8_t b[16];
};

/* A client key: fam 4 (b[0..3], the address) or 6 (b[0..7], the /64);
 * unused bytes are zero, so keys compare with memcmp. fam 0: unknown (a
 * socket whose peer could not be read: they all share one key). */
struct iplimit_key {
    uint8_t fam;
    uint8_t b[8];
};

struct iplimit_config {
    long max_conns;          /* connections per key; 0: no limit (still counted) */
    long guests_per_min;     /* new guest sessions per key and minute; 0: none */
    long auth_fails_per_min; /* failed API authentications per key and minute */
    size_t max_keys;         /* entries at most (see the bound above) */
};

struct iplimit_stats {
    uint64_t conn_refused, guest_refused, auth_refused;
    size_t keys; /* entries now */
    long conns;  /* counted connections now */
};

/* ---- Addresses and keys: pure functions, any thread, no allocation ---- */

/* Parses the n bytes at s as one address: "1.2.3.4", "1.2.3.4:80",
 * "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:443", with spaces or
 * tabs around. An IPv4-mapped IPv6 address becomes IPv4. Returns 0, or -1
 * (not an address; *out untouched). */
int iplimit_addr_parse(const char *s, size_t n, struct iplimit_addr *out);
/* The address of an AF_INET or AF_INET6 sockaddr (mapped becomes IPv4).
 * Returns 0, or -1 for any other family. */
int iplimit_addr_from_sockaddr(const struct sockaddr *sa, struct iplimit_addr *out);
int iplimit_addr_eq(const struct iplimit_addr *a, const struct iplimit_addr *b);
/* The key of an address (IPv6: its /64). */
void iplimit_key_of(const struct iplimit_addr *a, struct iplimit_key *k);
/* "203.0.113.7", "2001:db8:1:2::/64" or "unknown", for logs (cap >= 64). */
void iplimit_key_str(const struct iplimit_key *k, char *out, size_t cap);

/* The client named by an X-Forwarded-For value (n bytes, comma separated,
 * several headers already joined with ','), as seen by a server behind the
 * `ntrusted` proxies in `trusted`: walking from the right, the first address
 * that is not a trusted proxy; when every one is, the leftmost. Returns 1
 * with *out set, or 0 when the value is empty or an element it had to read
 * is not an address (the caller keeps the peer's address). Elements left of
 * the client are never read, so garbage a client prepends cannot matter. */
int iplimit_xff_client(const char *xff, size_t n, const struct iplimit_addr *trusted,
                       int ntrusted, struct iplimit_addr *out);

/* ---- The table: any thread (it takes its mutex) ---- */

/* A table with these limits, or NULL when memory ran out. Main thread. */
struct iplimit *iplimit_new(const struct iplimit_config *c);
/* Frees it; every counted connection must have been released (asserted).
 * Main thread, after every loop stopped. NULL is a no-op. */
void iplimit_free(struct iplimit *t);

/* Every function below takes t == NULL as "no limits": nothing is counted
 * and nothing refused. now_us: CLOCK_MONOTONIC microseconds. */

/* Whether key k is at its connection limit (a new upgrade gets 429);
 * counts the refusal when it is. */
int iplimit_conn_full(struct iplimit *t, const struct iplimit_key *k);
/* Counts one connection for k. Returns 1 (counted: release it exactly once
 * with iplimit_conn_release), 0 (t is NULL: nothing counted), or -1 (at the
 * limit, another loop took the last slot since iplimit_conn_full, or no
 * memory: refused and counted as a refusal). */
int iplimit_conn_acquire(struct iplimit *t, const struct iplimit_key *k, int64_t now_us);
/* Gives back a connection that iplimit_conn_acquire counted. */
void iplimit_conn_release(struct iplimit *t, const struct iplimit_key *k, int64_t now_us);

/* Takes one new guest session from k's per-minute window. Returns 1 when
 * allowed; 0 when refused (counted), with *retry_s the whole seconds until
 * one is allowed again (at least 1). */
int iplimit_guest_take(struct iplimit *t, const struct iplimit_key *k, int64_t now_us,
                       long *retry_s);

/* Failed API authentications, wired by the HTTP API (server/api*.c): it
 * asks iplimit_auth_blocked() before checking a key, and calls
 * iplimit_auth_failed() when the check fails. Blocked (1) once k failed
 * --api-auth-fails-per-ip times within the rolling minute; each blocked
 * answer counts as a refusal (parley_api_auth_refused_total). */
void iplimit_auth_failed(struct iplimit *t, const struct iplimit_key *k, int64_t now_us);
int iplimit_auth_blocked(struct iplimit *t, const struct iplimit_key *k, int64_t now_us);

/* Counters and sizes for /metrics (all zero for NULL). */
void iplimit_stats(struct iplimit *t, struct iplimit_stats *out);
/* Walks the whole table and checks its invariants (the connection counts
 * add up, the entry count is right, no entry over max_keys). Returns 0 when
 * they hold. For tests. */
int iplimit_check(struct iplimit *t);

#endif
