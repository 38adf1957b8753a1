# gitgrant in a container, for GitLab CI and other CI systems:
#
#   docker build --build-arg GITGRANT_BUILD_COMMIT="$(git rev-parse HEAD)" -t gitgrant .
#   docker run --rm -v "$PWD:/repo" -w /repo gitgrant check --all
#
# Stage 1 builds a static musl binary (Alpine's Rust targets musl); stage 2 is a
# small Alpine image with git (reconcile pushes the ledger branch with it) and CA
# certificates, running as an unprivileged user.

FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev gcc g++ perl make cmake
WORKDIR /src
COPY . .
# The commit `gitgrant --version` reports (.git is not copied into the image).
ARG GITGRANT_BUILD_COMMIT=unknown
ENV GITGRANT_BUILD_COMMIT=${GITGRANT_BUILD_COMMIT}
RUN cargo build --locked --release --bin gitgrant \
    && cp target/release/gitgrant /usr/local/bin/gitgrant \
    && /usr/local/bin/gitgrant --version

FROM alpine:3.22
RUN apk add --no-cache git ca-certificates \
    && addgroup -S -g 10001 gitgrant \
    && adduser -S -D -H -u 10001 -G gitgrant -h /home/gitgrant gitgrant \
    && mkdir -p /home/gitgrant && chown gitgrant:gitgrant /home/gitgrant
COPY --from=build /usr/local/bin/gitgrant /usr/local/bin/gitgrant
USER 10001:10001
ENV HOME=/home/gitgrant
# A mounted checkout belongs to another user: let git read it.
RUN git config --global --add safe.directory '*'
WORKDIR /repo
ENTRYPOINT ["gitgrant"]
CMD ["--help"]
