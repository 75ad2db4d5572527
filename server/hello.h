/* hello.h -- a session's hello: token or guest authentication, then the
 * welcome. Event-loop thread only. */
#ifndef PARLEY_HELLO_H
#define PARLEY_HELLO_H

struct session;

/* Answers s's current request, which arrived before any welcome: a hello
 * gets `welcome` (s->welcomed set), or an error (and, for unauthorized, a
 * close with 1008); anything else gets need_hello. */
void hello_handle(struct session *s);

#endif
