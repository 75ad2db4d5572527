/* peer.c -- who the client of a connection is: the TCP peer, or the
 * client a trusted proxy names in X-Forwarded-For. */
#include "peer.h"

#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "iplimit.h"
#include "log.h"
#include "loop.h"

/* The TCP peer's address; fam 0 when it cannot be read. */
static void peer_addr(struct lws *wsi, struct iplimit_addr *a)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = (int)lws_get_socket_fd(wsi);
    memset(a, 0, sizeof(*a));
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) ||
        iplimit_addr_from_sockaddr((struct sockaddr *)&ss, a))
        memset(a, 0, sizeof(*a));
}

void peer_client_key(struct server *srv, struct lws *wsi, struct iplimit_key *k)
{
    const struct config *c = srv->cfg;
    struct iplimit_addr peer, client;
    peer_addr(wsi, &peer);
    client = peer;
    int trusted = 0;
    for (int i = 0; i < c->ntrusted && !trusted; i++)
        trusted = iplimit_addr_eq(&c->trusted[i], &peer);
    if (trusted) {
        /* Several X-Forwarded-For headers arrive joined with ','. One over
         * IPLIMIT_XFF_MAX (only with --max-header-bytes above it) does not
         * fit: the peer counts, as for a malformed one. */
        char xff[IPLIMIT_XFF_MAX];
        int n = lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR);
        if (n > 0 &&
            !iplimit_xff_client(xff, (size_t)n, c->trusted, c->ntrusted, &client))
            plog(LOG_DEBUG, "xff-ignored", "reason=\"not an address list\"");
    }
    iplimit_key_of(&client, k);
}
