/* fake_lws.h -- a stand-in for the few libwebsockets calls that
 * server/session.c and server/http.c make, so the fuzzers drive the
 * server's own request handling without sockets or an event loop.
 *
 * The harness owns every `struct lws`; the fakes record what the server asked
 * for (writeable callbacks, timeouts, timers, close reasons, HTTP statuses)
 * and check every frame the server writes: valid UTF-8, a JSON object whose
 * first member is a string "type" (the wire contract), written with the
 * LWS_PRE headroom in front. A violation aborts, so libFuzzer reports it.
 */
#ifndef PARLEY_FAKE_LWS_H
#define PARLEY_FAKE_LWS_H

#include <stddef.h>
#include <stdint.h>
#include <libwebsockets.h>

#define FAKE_MAX_HDR 8192

struct lws {
    int id;
    /* Frame being delivered (session_on_receive). */
    int binary, final;
    /* What the server asked for. */
    int want_writable;
    int timeout_secs;     /* PENDING_TIMEOUT_USER_OK set; 0: none */
    int64_t timer_us;     /* armed timer, 0: none */
    int rx_enabled;
    int close_code;       /* from lws_close_reason, 0: none */
    unsigned http_status; /* from lws_return_http_status */
    int fail_writes;      /* lws_write fails while set */
    int partial;          /* lws_partial_buffered() says so while set */
    size_t frames_out, bytes_out;
    /* Request: header values (NUL-terminated copies, NULL when absent) and
     * the URL arguments, '&'-separated as lws stores them. */
    char *hdr[WSI_TOKEN_COUNT];
    char *urlargs;
};

void fake_wsi_init(struct lws *w, int id);
void fake_wsi_free(struct lws *w);
/* Sets header h to the n bytes at v (copied; NUL ends it early, as in lws). */
void fake_wsi_set_hdr(struct lws *w, enum lws_token_indexes h, const char *v, size_t n);

/* Set by a harness whose raw writes are WebSocket frames (LWS_WRITE_RAW is
 * also LWS_WRITE_HTTP, the HTTP body writes): then each raw write must be
 * whole server frames, each checked like a text frame, or a close frame. */
extern int fake_raw_is_websocket;

/* Checks one server->client text payload; aborts on a contract violation. */
void fake_check_frame(const unsigned char *p, size_t n);

/* Set by a harness that counts the server's allocations (tests/unit/
 * test_oom.c): called with 1 before and 0 after the fakes' own allocations
 * (the frame check parses with cJSON), so they are neither counted nor
 * failed. NULL: nothing is called. */
extern void (*fake_alloc_pause)(int pause);
/* Set by a harness that reads what its clients receive: called with every
 * write that lws_write() takes (after the checks). NULL: nothing. */
extern void (*fake_on_write)(struct lws *wsi, const unsigned char *p, size_t n);

#endif
