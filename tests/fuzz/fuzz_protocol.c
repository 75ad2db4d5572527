/* fuzz_protocol.c -- proto_parse() on any frame a client can send, with the
 * validation the protocol promises checked on every accepted request, and
 * the server's writers (proto_error, proto_put_message, proto_put_ref_end)
 * round-tripped through cJSON; plus proto_check_name and proto_room_valid
 * against straightforward reference implementations.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "protocol.h"
#include "utf8.h"

/* ^[a-z0-9][a-z0-9_-]{0,63}$, written independently. */
static int ref_room_valid(const char *r)
{
    size_t n = strlen(r);
    if (n < 1 || n > 64) return 0;
    if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789", r[0])) return 0;
    for (size_t i = 1; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", r[i])) return 0;
    return 1;
}

static size_t cps(const char *s)
{
    return utf8_count(s, strlen(s));
}

/* Parses a writer's output; checks "type" is first and returns the object. */
static cJSON *parse_out(struct buf *b)
{
    assert(b && !b->oom);
    const char *p = (const char *)BUF_PAYLOAD(b);
    assert(utf8_valid(p, b->len));
    assert(b->len > 9 && !memcmp(p, "{\"type\":\"", 9));
    cJSON *j = cJSON_ParseWithLength(p, b->len);
    assert(cJSON_IsObject(j));
    assert(j->child && !strcmp(j->child->string, "type") && cJSON_IsString(j->child));
    return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert(cJSON_IsString(v));
    return v->valuestring;
}

static void check_error_writer(enum proto_err e, const char *msg, const char *ref)
{
    struct buf *b = proto_error(e, msg, ref);
    cJSON *j = parse_out(b);
    assert(!strcmp(jstr(j, "type"), "error"));
    assert(!strcmp(jstr(j, "code"), proto_err_code(e)));
    assert(!strcmp(jstr(j, "message"), msg));
    if (ref)
        assert(!strcmp(jstr(j, "ref"), ref));
    else
        assert(!cJSON_GetObjectItemCaseSensitive(j, "ref"));
    cJSON_Delete(j);
    buf_unref(b);
}

static void check_message_writer(const struct proto_req *r)
{
    struct proto_msg m = {
        .room = r->room,
        .id = 9007199254740991LL,
        .ts = 1763766000123LL,
        .user_id = r->client_id,
        .user_name = r->text, /* any valid strings */
        .text = r->text,
        .text_len = r->text_len,
        .client_id = r->client_id,
    };
    struct buf *b = buf_new(16);
    proto_put_message(&b, &m);
    cJSON *j = parse_out(b);
    assert(!strcmp(jstr(j, "type"), "message"));
    assert(!strcmp(jstr(j, "room"), r->room));
    assert(!strcmp(jstr(j, "text"), r->text)); /* byte-exact round trip */
    assert(!strcmp(jstr(j, "client_id"), r->client_id));
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    assert(cJSON_IsNumber(id) && id->valuedouble == 9007199254740991.0);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "user");
    assert(cJSON_IsObject(u) && !strcmp(jstr(u, "name"), r->text));
    cJSON_Delete(j);
    buf_unref(b);
}

static void check_name(const char *name)
{
    const char *msg = NULL;
    enum proto_err e = proto_check_name(name, &msg);
    size_t n = strlen(name), i = 0, count = 0;
    int ctrl = 0;
    while (i < n) {
        unsigned cp = utf8_next(name, n, &i);
        ctrl |= cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
        count++;
    }
    if (e == PROTO_OK) {
        assert(!ctrl && count >= 1 && count <= PROTO_MAX_NAME);
        /* Not only spaces: at least one byte that is not an ASCII space. */
        assert(strspn(name, " ") < n);
    } else {
        assert(e == E_BAD_NAME && msg);
        /* Refused for a reason the protocol gives (only-space covers the
         * other Unicode spaces too, which the reference does not list). */
        if (!ctrl && count >= 1 && count <= PROTO_MAX_NAME)
            assert(!strcmp(msg, "name is empty"));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    /* First byte: the max_text limit (the server allows 1..100000). */
    struct proto_limits lim = {.max_text = data[0] < 128 ? 4000 : 1 + data[0] % 8};
    const char *d = (const char *)data + 1;
    size_t n = size - 1;

    /* The room and name checks take any C string. */
    char *z = strndup(d, n);
    assert(proto_room_valid(z) == ref_room_valid(z));
    if (utf8_valid(z, strlen(z))) check_name(z);
    free(z);

    /* The session hands proto_parse only valid UTF-8 (else close 1007). */
    if (!utf8_valid(d, n)) return 0;
    /* An exact-size copy, so a read past the end is an ASan report. */
    char *frame = malloc(n ? n : 1);
    memcpy(frame, d, n);
    struct proto_req r;
    const char *msg = NULL;
    enum proto_err e = proto_parse(frame, n, &lim, &r, &msg);
    assert(e >= PROTO_OK && e <= E_INTERNAL);
    if (r.ref) assert(cps(r.ref) <= PROTO_MAX_REF);
    if (e != PROTO_OK) {
        assert(msg);
        assert(e == E_BAD_JSON || e == E_UNKNOWN_TYPE || e == E_BAD_REQUEST ||
               e == E_BAD_ROOM || e == E_TOO_LONG);
        check_error_writer(e, msg, r.ref);
    } else {
        switch (r.type) {
        case REQ_SEND:
            assert(r.client_id && cps(r.client_id) >= 1 &&
                   cps(r.client_id) <= PROTO_MAX_CLIENT_ID);
            assert(r.text && r.text_len == strlen(r.text));
            assert(utf8_count(r.text, r.text_len) >= 1 &&
                   utf8_count(r.text, r.text_len) <= (size_t)lim.max_text);
            /* fall through */
        case REQ_JOIN:
        case REQ_LEAVE:
        case REQ_TYPING:
            assert(r.room && ref_room_valid(r.room));
            break;
        case REQ_HISTORY:
            assert(r.room && ref_room_valid(r.room));
            assert(r.limit >= 1 && r.limit <= PROTO_HISTORY_MAX);
            assert(!(r.before >= 0 && r.after >= 0));
            assert(r.before >= -1 && r.after >= -1);
            break;
        case REQ_HELLO:
            if (r.client) assert(cps(r.client) <= PROTO_MAX_CLIENT);
            if (r.name) check_name(r.name);
            break;
        case REQ_ROOMS:
        case REQ_PING:
            break;
        }
        if (r.type == REQ_JOIN) assert(r.since >= -1 && r.since <= 9007199254740991LL);
        if (r.type == REQ_SEND) check_message_writer(&r);
        check_error_writer(E_INTERNAL, "x", r.ref);
    }
    proto_req_free(&r);
    free(frame);
    return 0;
}
