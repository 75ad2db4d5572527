# haproxy for deploy/compose.yaml: Debian 12's haproxy (2.6) in front of the
# Parley nodes; its configuration is deploy/haproxy.cfg, copied in here (and
# bind-mounted over by compose.yaml, so editing it needs no rebuild).
#
# BASE is any Debian 12 image (tests/container/compose.test.sh passes a local
# debootstrap base instead of the registry's debian:bookworm-slim).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
# Debian's package makes the user haproxy; it listens on 8080 (no privileged
# port), so it never needs root.
USER haproxy:haproxy
EXPOSE 8080
# haproxy -c checks the configuration; the stats page answers once it runs.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8404 && printf 'GET /stats HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 4 _ code _ <&3 && [ \"$code\" = 200 ]"]
# SIGTERM: stop at once (SIGUSR1 would wait for every WebSocket to close).
STOPSIGNAL SIGTERM
# -W: master-worker (reload with SIGUSR2); -db: stay in the foreground, log to stderr.
ENTRYPOINT ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
