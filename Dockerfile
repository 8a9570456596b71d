# onhold in a container: a builder stage compiles one statically linked `onhold`, and the image
# holds that file alone (FROM scratch), run as a non-root user.
#
#   docker build --build-arg ONHOLD_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t onhold .
#   docker run --rm --network host -v /srv/moh:/music:ro -e ONHOLD_MUSIC=/music onhold
#
# or `docker compose up` with compose.yaml beside this file (it explains --network host).
# Podman takes the same file and flags.
#
# Static linking: the binary is built for x86_64-unknown-linux-musl. musl links everything in,
# and its getaddrinfo (used to look up host names in Record-Route and Contact) reads
# /etc/hosts and /etc/resolv.conf itself, which a container runtime provides. glibc with
# `-C target-feature=+crt-static` also links and also reads /etc/hosts without any library
# (tried with glibc 2.36), but it links with a warning that getaddrinfo needs the shared NSS
# modules of the same glibc version at run time: the same binary copied onto a host whose
# nsswitch.conf names other modules (mdns, sss, ldap) would load that host's, of another glibc.
# musl never loads anything. Its allocator is the usual worry; here the cost does not show:
# 100 calls of 10 s took 1.2-1.4 s of CPU in the musl build and 1.2-1.6 s in the glibc one.
#
# A binary built elsewhere (`cargo build --release -p onhold --target
# x86_64-unknown-linux-musl`) can be packaged without the builder stage by standing in for it:
#   mkdir -p ctx/out && cp target/x86_64-unknown-linux-musl/release/onhold ctx/out/
#   docker build --build-context builder=ctx -t onhold .
# (a named build context replaces the stage of the same name; the end-to-end test
# `packaging::container_image_answers_a_call` builds the image this way).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# .dockerignore keeps .git out of the context, so `--version` takes its commit from here.
ARG ONHOLD_GIT_COMMIT=unknown
ENV ONHOLD_GIT_COMMIT=${ONHOLD_GIT_COMMIT}
RUN cargo build --release --locked -p onhold --target x86_64-unknown-linux-musl \
 && mkdir /out \
 && cp target/x86_64-unknown-linux-musl/release/onhold /out/onhold

FROM scratch AS runtime
COPY --from=builder /out/onhold /usr/local/bin/onhold
# No /etc/passwd in the image: a numeric user, not root, owning nothing in it.
USER 10001:10001
# SIP (UDP, and TCP when `listen` has a tcp: address) and the default rtp_ports range. With
# --network host, as compose.yaml runs it, these are documentation only.
EXPOSE 5060/udp 5060/tcp 10000-20000/udp
# Music files, read-only is enough: set ONHOLD_MUSIC=/music (or `music = "/music"` in a config
# file) to play them; without it the built-in music plays.
VOLUME ["/music"]
# SIGTERM refuses new calls, BYEs every call and waits up to shutdown_grace (5 s) for the
# answers: give `docker stop` more than that (compose.yaml: stop_grace_period). SIGHUP
# (`docker kill -s HUP`) reloads the configuration and the music.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/onhold"]
