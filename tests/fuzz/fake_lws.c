/* fake_lws.c -- the libwebsockets calls the server makes, faked for the
 * fuzzers (see fake_lws.h). Semantics follow libwebsockets 4.1.6, the version
 * the server is built against: lws_hdr_copy() returns 0 for an absent header
 * and -1 when it does not fit; lws_get_urlarg_by_name() copies the whole
 * "name=value" fragment into buf and returns a pointer just past "name=". */
#include "fake_lws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "utf8.h"

void fake_wsi_init(struct lws *w, int id)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->final = 1;
    w->rx_enabled = 1;
}

void fake_wsi_free(struct lws *w)
{
    for (int i = 0; i < WSI_TOKEN_COUNT; i++)
        free(w->hdr[i]);
    free(w->urlargs);
    memset(w->hdr, 0, sizeof w->hdr);
    w->urlargs = NULL;
}

void fake_wsi_set_hdr(struct lws *w, enum lws_token_indexes h, const char *v, size_t n)
{
    free(w->hdr[h]);
    w->hdr[h] = NULL;
    if (!v) return;
    if (n > FAKE_MAX_HDR) n = FAKE_MAX_HDR;
    w->hdr[h] = strndup(v, n);
}

static void die(const char *what, const unsigned char *p, size_t n)
{
    fprintf(stderr, "fake_lws: contract violation: %s\nframe (%zu bytes): %.*s\n", what,
            n, (int)(n > 2000 ? 2000 : n), (const char *)p);
    abort();
}

void (*fake_alloc_pause)(int pause);
void (*fake_on_write)(struct lws *wsi, const unsigned char *p, size_t n);

void fake_check_frame(const unsigned char *p, size_t n)
{
    static const char head[] = "{\"type\":\"";
    if (fake_alloc_pause) fake_alloc_pause(1);
    if (!utf8_valid((const char *)p, n)) die("frame is not valid UTF-8", p, n);
    if (n < sizeof head - 1 || memcmp(p, head, sizeof head - 1))
        die("frame does not start with {\"type\":\"", p, n);
    cJSON *j = cJSON_ParseWithLength((const char *)p, n);
    if (!cJSON_IsObject(j)) die("frame is not a JSON object", p, n);
    const cJSON *t = j->child;
    if (!t || strcmp(t->string, "type") || !cJSON_IsString(t))
        die("first member is not a string \"type\"", p, n);
    cJSON_Delete(j);
    if (fake_alloc_pause) fake_alloc_pause(0);
}

/* ---- WebSocket side ---- */

int fake_raw_is_websocket;

static int close_code_ok(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || c == 1013 ||
           (c >= 3000 && c <= 4999);
}

/* A raw write on a WebSocket must be whole, unmasked server frames: text
 * frames holding one protocol message each, or a close frame. */
static void check_raw_frames(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i < 2) die("partial frame header in a raw write", p, n);
        unsigned b0 = p[i], b1 = p[i + 1], op = b0 & 15;
        size_t len = b1 & 127, hdr = 2;
        if (b0 != 0x81 && b0 != 0x88)
            die("raw frame is not a final text or close frame", p, n);
        if (b1 & 128) die("server frame is masked", p, n);
        if (len == 126) {
            if (n - i < 4) die("partial frame header in a raw write", p, n);
            len = (size_t)p[i + 2] << 8 | p[i + 3];
            hdr = 4;
            if (len < 126) die("frame length not minimally encoded", p, n);
        } else if (len == 127) {
            if (n - i < 10) die("partial frame header in a raw write", p, n);
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | p[i + 2 + k];
            hdr = 10;
            if (len < 65536 || len >> 63) die("frame length not minimally encoded", p, n);
        }
        if (len > n - i - hdr) die("partial frame in a raw write", p, n);
        const unsigned char *pl = p + i + hdr;
        if (op == 1)
            fake_check_frame(pl, len);
        else {
            if (len < 2 || len > 125 || !close_code_ok((unsigned)pl[0] << 8 | pl[1]) ||
                !utf8_valid((const char *)pl + 2, len - 2))
                die("bad close frame", p, n);
        }
        i += hdr + len;
    }
}

int lws_write(struct lws *wsi, unsigned char *buf, size_t len, enum lws_write_protocol wp)
{
    /* The headroom must be there: lws writes the frame header into it. */
    volatile unsigned char pre = buf[-(int)LWS_PRE];
    (void)pre;
    if (wp == LWS_WRITE_TEXT)
        fake_check_frame(buf, len);
    else if (wp == LWS_WRITE_RAW && fake_raw_is_websocket)
        check_raw_frames(buf, len);
    if (wsi->fail_writes) return -1;
    if (fake_on_write) fake_on_write(wsi, buf, len);
    wsi->frames_out++;
    wsi->bytes_out += len;
    return (int)len;
}

int lws_callback_on_writable(struct lws *wsi)
{
    wsi->want_writable = 1;
    return 1;
}

void lws_set_timeout(struct lws *wsi, enum pending_timeout reason, int secs)
{
    /* LWS_TO_KILL_ASYNC: closed on lws' next turn, like an expired timeout. */
    wsi->timeout_secs = secs > 0 ? secs : secs == LWS_TO_KILL_ASYNC ? 1 : 0;
}

void lws_cancel_service(struct lws_context *context)
{
    (void)context; /* the harness runs the one loop itself */
}

int lws_partial_buffered(struct lws *wsi)
{
    return wsi->partial;
}

void lws_set_timer_usecs(struct lws *wsi, lws_usec_t usecs)
{
    wsi->timer_us = usecs < 0 ? 0 : usecs;
}

int lws_rx_flow_control(struct lws *wsi, int enable)
{
    wsi->rx_enabled = !!enable;
    return 0;
}

void lws_close_reason(struct lws *wsi, enum lws_close_status status, unsigned char *buf,
                      size_t len)
{
    /* lws copies at most 123 bytes of reason; read them all to check. */
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < len; i++)
        sink ^= buf[i];
    (void)sink;
    wsi->close_code = (int)status;
}

int lws_frame_is_binary(struct lws *wsi)
{
    return wsi->binary;
}

int lws_is_final_fragment(struct lws *wsi)
{
    return wsi->final;
}

/* ---- HTTP side ---- */

/* No socket: the peer's address is unknown (peer.c gives the "unknown"
 * key), as for a socket whose getpeername() fails. */
lws_sockfd_type lws_get_socket_fd(struct lws *wsi)
{
    return -1;
}

int lws_hdr_copy(struct lws *wsi, char *dst, int len, enum lws_token_indexes h)
{
    const char *v = wsi->hdr[h];
    int toklen = v ? (int)strlen(v) : 0;
    *dst = 0;
    if (!toklen) return 0;
    if (toklen >= len) return -1;
    memcpy(dst, v, (size_t)toklen + 1);
    return toklen;
}

const char *lws_get_urlarg_by_name(struct lws *wsi, const char *name, char *buf, int len)
{
    size_t sl = strlen(name);
    const char *p = wsi->urlargs;
    while (p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if ((int)n >= len) /* lws_hdr_copy_fragment: -2, the loop ends */
            return NULL;
        memcpy(buf, p, n);
        buf[n] = 0;
        if (!strncmp(buf, name, sl)) return buf + sl;
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

int lws_return_http_status(struct lws *wsi, unsigned int code, const char *html_body)
{
    if (html_body) (void)strlen(html_body);
    wsi->http_status = code;
    return 0;
}

int lws_http_transaction_completed(struct lws *wsi)
{
    return 0;
}

static int put(unsigned char **p, unsigned char *end, const void *s, size_t n)
{
    if (n > (size_t)(end - *p)) return 1;
    memcpy(*p, s, n);
    *p += n;
    return 0;
}

int lws_add_http_common_headers(struct lws *wsi, unsigned int code,
                                const char *content_type, lws_filepos_t content_len,
                                unsigned char **p, unsigned char *end)
{
    char tmp[256];
    int n = snprintf(tmp, sizeof tmp,
                     "HTTP/1.1 %u\r\ncontent-type: %s\r\ncontent-length: %llu\r\n", code,
                     content_type, (unsigned long long)content_len);
    wsi->http_status = code;
    return put(p, end, tmp, (size_t)n);
}

int lws_add_http_header_by_name(struct lws *wsi, const unsigned char *name,
                                const unsigned char *value, int length, unsigned char **p,
                                unsigned char *end)
{
    return put(p, end, name, strlen((const char *)name)) || put(p, end, ": ", 2) ||
           put(p, end, value, (size_t)length) || put(p, end, "\r\n", 2);
}

int lws_finalize_write_http_header(struct lws *wsi, unsigned char *start,
                                   unsigned char **p, unsigned char *end)
{
    if (put(p, end, "\r\n", 2)) return 1;
    /* the headers go out in one write; touch them all */
    volatile unsigned char sink = 0;
    for (unsigned char *q = start; q < *p; q++)
        sink ^= *q;
    (void)sink;
    return 0;
}
