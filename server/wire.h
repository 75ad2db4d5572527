/* wire.h -- a session's write path.
 *
 * Frames for a session go on its bounded outbound queue (outq.h); a queue
 * that overflows closes the session with 1013. Everything queued during one
 * event leaves at the end of that event in one lws_write when the socket is
 * idle (wire_flush_all), otherwise on WRITEABLE. Event-loop thread only.
 */
#ifndef PARLEY_WIRE_H
#define PARLEY_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct buf;
struct server;
struct session;

/* Bytes of frames one write sends at most, in one lws_write. */
#define WIRE_WRITE_MAX 65536
/* Seconds a closing client gets to take our close frame. */
#define WIRE_CLOSE_GRACE_S 3

/* Queues b (takes a reference) for s; NULL is ignored. A queue overflow
 * closes s with 1013. Nothing is queued once s is closing. */
void wire_push(struct session *s, struct buf *b);
/* Queues a buf made for s alone and drops the maker's reference; NULL (a
 * reply lost to out of memory) closes s with 1011. */
void wire_reply(struct session *s, struct buf *b);
/* Queues an error answering s's current request (its ref). */
void wire_error(struct session *s, enum proto_err e, const char *msg);
/* The same for a request answered later (a write's completion): its ref. */
void wire_error_ref(struct session *s, enum proto_err e, const char *msg,
                    const char *ref);
/* Asks s to close with `code` and `reason` (a static string: it is kept,
 * not copied, until the connection is gone): input is ignored from now on, and our close
 * frame goes out once the queue is flushed (at once, dropping the queue,
 * when `now`); a client that does not take it is dropped after a grace
 * period. Only the first close counts. */
void wire_close(struct session *s, int code, const char *reason, int now);
/* Empties s's queue, keeping the loop's gauge of queued frames. */
void wire_drop(struct session *s);
/* LWS_CALLBACK_SERVER_WRITEABLE: writes the oldest frames, or the close
 * frame once the queue is empty and a close was asked. Returns -1 to
 * close the connection. */
int wire_on_writeable(struct session *s);
/* Closes with 1013 every session whose output has waited for the socket
 * longer than --send-timeout: a client that stopped reading. The loop's
 * tick. */
void wire_sweep(struct server *srv, int64_t now_us);
/* Takes a closed session off the loop's lists of the write path. */
void wire_forget(struct session *s);
/* Writes the queues of the sessions that got frames during this event.
 * server.c calls it after every event it hands out, on the loop thread,
 * never from inside a session's own coroutine. */
void wire_flush_all(struct server *srv);

#endif
