/* peer.h -- the client's address key of a connection (iplimit.h): the TCP
 * peer's address, or, when the peer is a --trust-proxy address, the client
 * its X-Forwarded-For names (walking from the right). A client that is not
 * behind a trusted proxy cannot choose its key. */
#ifndef PARLEY_PEER_H
#define PARLEY_PEER_H

#include <libwebsockets.h>

struct server;
struct iplimit_key;

/* Sets *k for the connection wsi. While the request's headers are held
 * (HTTP, CONFIRM_UPGRADE, ESTABLISHED). The loop's thread; no allocation.
 * A peer whose address cannot be read gets the "unknown" key (fam 0). */
void peer_client_key(struct server *srv, struct lws *wsi, struct iplimit_key *k);

#endif
