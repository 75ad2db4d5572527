/* hello.h -- a session's hello: token or guest authentication, then the
 * welcome. Event-loop thread only. */
#ifndef PARLEY_HELLO_H
#define PARLEY_HELLO_H

struct proto_req;
struct session;

/* Answers s's current request, which arrived before any welcome: a hello
 * gets `welcome` (s->welcomed set), or an error (and, for unauthorized, a
 * close with 1008); anything else gets need_hello. */
void hello_handle(struct session *s);

/* Returns 1 when req (which proto_parse called an unknown type) is the
 * `auth` extension: {"type":"auth","token":"…"}. */
int hello_is_auth(const struct proto_req *req);
/* Answers s's `auth`: a valid token for the same sub replaces the
 * connection's token (its exp and rooms claim) and gets
 * {"type":"authed","exp":N}; an invalid one gets unauthorized and 1008, as
 * at hello; another sub, a guest, or a token that no longer allows a room
 * the connection is in gets bad_request and changes nothing. */
void hello_refresh(struct session *s);

#endif
