# syntax=docker/dockerfile:1
# Multi-stage build: the release binary, ONNX Runtime's library (from the `onnxruntime` wheel on
# PyPI, fetched by the same scripts/setup.sh the README uses), the built web app, models and
# migrations, in a slim Debian image that serves on :8080 with the README's defaults (SQLite in
# /data, demo catalog, the web app at /).

# Without a registry, scripts/container-bases.sh makes local stand-ins for both bases (README).
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts scripts
COPY web web
RUN rm -rf web/node_modules web/dist && scripts/setup.sh
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY models models
COPY loadtests loadtests
COPY tests tests
RUN cargo build --release --locked --bin chorus

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /data chorus
COPY --from=build /src/target/release/chorus /usr/local/bin/chorus
COPY --from=build /src/.local/onnxruntime-*/ /opt/onnxruntime/
COPY --from=build /src/models /opt/chorus/models
COPY --from=build /src/web/dist /opt/chorus/web
ENV CHORUS_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/chorus.db \
    CHORUS_MODELS_DIR=/opt/chorus/models \
    CHORUS_WEB_DIR=/opt/chorus/web \
    ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so \
    CHORUS_LOG_FORMAT=json
USER chorus
WORKDIR /data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["chorus"]
CMD ["serve"]
