/* alive.h -- liveness after the upgrade: a connection silent for
 * --ping-interval seconds gets a WebSocket ping, and one that shows no sign
 * of life (any frame, a pong included) for --idle-timeout seconds is closed
 * with 1001 "idle timeout", so a peer that vanished without a FIN (a phone
 * that lost its network) gives its slot and its rooms back.
 *
 * Each loop keeps its sessions in two lists ordered by their last sign of
 * life: `quiet` (not pinged since) and `pinged`. A frame moves its session
 * to the tail of `quiet`, and the tick takes due sessions off the heads:
 * O(1) per frame, O(due sessions) per tick, nothing per idle connection.
 * (libwebsockets 4.1's own validity timer counts only a PONG, not a data
 * frame, as life, hangs up without a close frame, and keeps one sorted
 * timer per connection: an O(n) insertion at every pong.)
 * Event-loop thread only.
 */
#ifndef PARLEY_ALIVE_H
#define PARLEY_ALIVE_H

#include <stdint.h>

struct server;
struct session;

/* A new connection (ESTABLISHED): its clock starts now. */
void alive_add(struct session *s, int64_t now_us);
/* Any frame or pong from the peer: the connection is alive at now_us. */
void alive_touch(struct session *s, int64_t now_us);
/* The connection is gone (CLOSED): off the lists. */
void alive_remove(struct session *s);
/* From the tick: pings the sessions silent for --ping-interval, closes the
 * pinged ones silent for --idle-timeout. */
void alive_sweep(struct server *srv, int64_t now_us);
/* SERVER_WRITEABLE, before the queue: writes a ping that is due. Returns
 * -1 when the socket failed. */
int alive_on_writeable(struct session *s);

#endif
