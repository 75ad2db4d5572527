/* listen.h -- each event loop's own listening socket, when there are
 * several loops.
 *
 * libwebsockets 4.1 cannot share a port between contexts (it never sets
 * SO_REUSEPORT), so with --threads above 1 every loop opens its own socket
 * on the port with SO_REUSEPORT, the kernel spreads new connections over
 * them, and each accepted socket is adopted into the loop's lws context as
 * if lws had accepted it (HTTP, then maybe TLS and the WebSocket upgrade).
 * With one loop lws listens itself, as before. libuv loops only.
 */
#ifndef PARLEY_LISTEN_H
#define PARLEY_LISTEN_H

struct server;

/* TCP keepalive on every accepted socket, ours and lws' (server.c passes
 * the same to lws): probes after 60 s of silence, every 10 s, 3 of them.
 * A backstop under the WebSocket pings (alive.h), which cover only
 * upgraded connections: this also reaps a peer that vanished mid-request
 * or before its upgrade, and keeps NAT entries warm. */
#define LISTEN_KA_IDLE_S 60
#define LISTEN_KA_INTERVAL_S 10
#define LISTEN_KA_PROBES 3

/* Turns TCP keepalive on for fd with the values above. Returns 0 or -1. */
int listen_keepalive(int fd);

/* Opens the socket and starts accepting on srv's loop, into srv->ctx.
 * Loop set-up, main thread. Returns 0, or -1 after logging why. */
int listen_start(struct server *srv);
/* Stops accepting (shutdown begins). The loop's thread. Idempotent. */
void listen_pause(struct server *srv);
/* Resumes after listen_pause() for lack of descriptors. The loop's thread. */
void listen_resume(struct server *srv);
/* Closes the socket; its libuv handle closes on the loop's next turn.
 * The loop's thread, before the loop is closed. Idempotent. */
void listen_close(struct server *srv);

#endif
