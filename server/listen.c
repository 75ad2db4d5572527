/* listen.c -- SO_REUSEPORT listening sockets, one per event loop, whose
 * connections are adopted into the loop's libwebsockets context. */
#define _GNU_SOURCE /* accept4 */
/* uv.h first: libwebsockets.h declares its libuv helpers only after it. */
#include <uv.h>

#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

/* Fills *sa for --bind (IPv4 or IPv6 literal) or, without it, the IPv6
 * wildcard, which also takes IPv4 (as lws binds). Returns its length, 0 if
 * the address is not a literal. */
static socklen_t bind_addr(const struct config *cfg, struct sockaddr_storage *sa)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
    memset(sa, 0, sizeof(*sa));
    if (cfg->bind && inet_pton(AF_INET, cfg->bind, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)cfg->port);
        return sizeof(*v4);
    }
    if (cfg->bind && inet_pton(AF_INET6, cfg->bind, &v6->sin6_addr) != 1) return 0;
    v6->sin6_family = AF_INET6; /* zeroed: in6addr_any without --bind */
    v6->sin6_port = htons((uint16_t)cfg->port);
    return sizeof(*v6);
}

/* Returns a listening, non-blocking socket with SO_REUSEPORT, or -1. */
static int open_socket(const struct config *cfg)
{
    struct sockaddr_storage sa;
    socklen_t len = bind_addr(cfg, &sa);
    int one = 1, fd = -1;
    if (!len) {
        plog(LOG_ERROR, "start-failed",
             "bind=%s reason=\"--threads above 1 needs an IP "
             "address for --bind\"",
             cfg->bind);
        return -1;
    }
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) goto err;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&sa, len) || listen(fd, SOMAXCONN))
        goto err;
    return fd;
err:
    plog(LOG_ERROR, "start-failed", "port=%ld reason=\"cannot listen: %s\"", cfg->port,
         strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
}

int listen_keepalive(int fd)
{
    int one = 1, idle = LISTEN_KA_IDLE_S, intvl = LISTEN_KA_INTERVAL_S,
        cnt = LISTEN_KA_PROBES;
    return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) ||
                   setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) ||
                   setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) ||
                   setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt)
               ? -1
               : 0;
}

/* Accepts everything pending and hands each socket to lws (which closes it
 * on failure). Out of descriptors, accepting pauses until the next tick. */
static void on_readable(uv_poll_t *h, int status, int events)
{
    struct server *srv = h->data;
    (void)events;
    if (status < 0) return;
    for (;;) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                plog(LOG_WARN, "accept-paused", "reason=\"%s\"", strerror(errno));
                listen_pause(srv);
                srv->accept_resume = 1;
            }
            return; /* EAGAIN: all taken; others: the client gave up */
        }
        /* What lws' own listener does to each accepted socket: frames are
         * small and written as they come, Nagle would hold them back. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* lws applies its ka_* only to sockets it accepts itself. */
        listen_keepalive(fd);
        lws_sock_file_fd_type desc = {.sockfd = fd};
        int type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP;
        if (srv->cfg->tls_cert) type |= LWS_ADOPT_ALLOW_SSL;
        if (!lws_adopt_descriptor_vhost(srv->vhost, (lws_adoption_type)type, desc, NULL,
                                        NULL))
            plog(LOG_WARN, "adopt-failed", "reason=\"lws refused the connection\"");
    }
}

int listen_start(struct server *srv)
{
    srv->listen_fd = -1;
    if (!srv->uv_loop || !(srv->vhost = lws_get_vhost_by_name(srv->ctx, "default"))) {
        plog(LOG_ERROR, "start-failed",
             "reason=\"--threads above 1 needs --event-loop uv\"");
        return -1;
    }
    if ((srv->listen_fd = open_socket(srv->cfg)) < 0) return -1;
    srv->listen_poll = calloc(1, sizeof(uv_poll_t));
    if (!srv->listen_poll ||
        uv_poll_init(srv->uv_loop, srv->listen_poll, srv->listen_fd)) {
        free(srv->listen_poll);
        srv->listen_poll = NULL;
        close(srv->listen_fd);
        srv->listen_fd = -1;
        return -1;
    }
    srv->listen_poll->data = srv;
    uv_poll_start(srv->listen_poll, UV_READABLE, on_readable);
    return 0;
}

void listen_pause(struct server *srv)
{
    if (srv->listen_poll) uv_poll_stop(srv->listen_poll);
}

void listen_resume(struct server *srv)
{
    srv->accept_resume = 0;
    if (srv->listen_poll) uv_poll_start(srv->listen_poll, UV_READABLE, on_readable);
}

/* The socket is closed only once libuv is done with its handle. */
static void on_handle_closed(uv_handle_t *h)
{
    close((int)(intptr_t)h->data);
    free(h);
}

void listen_close(struct server *srv)
{
    if (srv->listen_poll) {
        srv->listen_poll->data = (void *)(intptr_t)srv->listen_fd;
        uv_close((uv_handle_t *)srv->listen_poll, on_handle_closed);
        srv->listen_poll = NULL;
    } else if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    srv->listen_fd = -1;
}
