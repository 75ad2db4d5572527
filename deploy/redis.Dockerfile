# Redis for deploy/compose.yaml: Debian 12's redis-server (7.0), the one log of
# a Parley cluster (docs/cluster.md). Built from a Debian 12 image, like the
# Parley image, so no registry image is needed.
#
# BASE is any Debian 12 image (tests/container/compose.test.sh passes a local
# debootstrap base instead of the registry's debian:bookworm-slim).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
# Debian's package makes the user redis; /data is its data directory (AOF and
# RDB files), a volume.
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && mkdir -p /data \
 && chown redis:redis /data
VOLUME /data
WORKDIR /data
USER redis:redis
EXPOSE 6379
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["redis-cli", "ping"]
# The settings docs/cluster.md requires for durable acks: the append-only file
# on, fsynced before Redis answers (appendfsync always). Port 6379 on every
# address of the container: only the compose network reaches it (the compose
# file publishes no Redis port), hence protected-mode off. noeviction is the
# default and must stay so. Arguments after the image name replace these.
STOPSIGNAL SIGTERM
ENTRYPOINT ["redis-server"]
CMD ["--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no", \
     "--dir", "/data", "--appendonly", "yes", "--appendfsync", "always", \
     "--maxmemory-policy", "noeviction"]
