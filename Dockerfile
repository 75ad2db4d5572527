# Parley container image: a WebSocket chat server with its history in SQLite.
#
#   docker build -t parley .                      (or: podman build --format docker -t parley .)
#   docker run -d -p 8080:8080 -v parley-data:/data parley
#
# Every server option is an environment variable PARLEY_<NAME> (see
# `docker run --rm parley --help`), e.g. -e PARLEY_JWT_SECRET=... -e PARLEY_NO_GUESTS=1.
# Arguments after the image name are passed to parley and win over the variables.
#
# BASE is any Debian 12 image; tests/container/container.test.sh builds with a
# local debootstrap root filesystem instead of the registry's debian:bookworm-slim.
ARG BASE=debian:bookworm-slim

# --- build stage -------------------------------------------------------------
FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# gcc, libc6-dev and make rather than build-essential: Parley is C only, and
# build-essential's g++ and dpkg-dev are 16 more packages (116 MB) to install.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc libc6-dev make cmake pkg-config \
      libwebsockets-dev libmbedtls-dev libcjson-dev libsqlite3-dev libuv1-dev libhiredis-dev
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPARLEY_TESTS=OFF \
 && cmake --build build -j2 --target parley \
 && strip build/parley \
 && build/parley --version

# --- runtime stage -----------------------------------------------------------
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
# Only the shared libraries build/parley links to (the check below fails the
# build if one is missing), libwebsockets' libuv event-loop plugin (loaded with
# dlopen for the default --event-loop uv, so ldd doesn't list it), and the
# sqlite3 shell for looking into /data.
# The HEALTHCHECK needs nothing more: it speaks HTTP with bash, which every
# Debian image has (curl would add 15 packages, about 6 MB, for one request).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libwebsockets17 libwebsockets-evlib-uv libuv1 libmbedcrypto7 libcjson1 \
      libsqlite3-0 libhiredis0.14 sqlite3 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 10001 parley \
 && useradd --uid 10001 --gid parley --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin parley \
 && mkdir -p /data \
 && chown parley:parley /data
COPY --from=build /src/build/parley /usr/local/bin/parley
RUN if ldd /usr/local/bin/parley | grep 'not found'; then exit 1; fi

ENV PARLEY_DB=/data/parley.db \
    PARLEY_BIND=0.0.0.0 \
    PARLEY_PORT=8080
VOLUME /data
WORKDIR /data
USER parley:parley
EXPOSE 8080
# GET /healthz over bash's /dev/tcp; healthy when the status line says 200.
# (podman keeps HEALTHCHECK only in docker-format images: build with --format docker.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PARLEY_PORT:-8080} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 4 _ code _ <&3 && [ \"$code\" = 200 ]"]
# parley is PID 1 and handles SIGTERM itself: it closes clients with 1001,
# commits what it accepted and exits 0 within 5 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/parley"]
