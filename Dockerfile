# trellis: the control plane (and the demo app) in one small image.
#   docker build -t trellis:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Only the trellis binary (the committed Cargo.lock pins the dependencies).
RUN cargo build --release --bin trellis \
    && cp target/release/trellis /usr/local/bin/trellis

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/trellis trellis \
    && install -d -o trellis -g trellis -m 0700 /var/lib/trellis
COPY --from=build /usr/local/bin/trellis /usr/local/bin/trellis
USER trellis
WORKDIR /var/lib/trellis
# ADS (gRPC) and the admin API (/metrics, /debug/*); see `trellis serve --help`.
EXPOSE 15010 15014
ENTRYPOINT ["trellis"]
CMD ["--help"]
