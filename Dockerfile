# syntax=docker/dockerfile:1
# SentinelStream image (README: Deployment). Three stages:
#   build  - the wheel: Cython hot path compiled, protobuf modules generated (setup.py), plus the wheels of
#            every dependency, so the runtime stage installs offline and needs no compiler;
#   probe  - grpc-health-probe, the pinned version of deploy/install-go-tools.sh (HEALTHCHECK and the
#            Kubernetes probes: it speaks TLS, which kubelet's native gRPC probes do not);
#   runtime - python slim, non-root user 10001, no build tools.
# Build: docker build -t sentinelstream:0.1.0 .   (tests/test_deploy_containers.py runs the build stage's
# wheel command and the HEALTHCHECK command here; no Docker engine runs on the CI machines.)
ARG PYTHON_VERSION=3.11
ARG GO_VERSION=1.26

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# The compiler of the build stage only, whatever bookworm ships (it never reaches the runtime image).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m pip wheel --no-cache-dir --wheel-dir /wheels /wheels/sentinelstream-*.whl

FROM golang:${GO_VERSION}-bookworm AS probe
ARG GRPC_HEALTH_PROBE_VERSION=v0.4.63
RUN CGO_ENABLED=0 GOBIN=/out go install github.com/grpc-ecosystem/grpc-health-probe@${GRPC_HEALTH_PROBE_VERSION}

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 sentinel \
    && useradd --system --uid 10001 --gid sentinel --home-dir /var/lib/sentinel --create-home sentinel
# Only the wheels built above (--no-index): the versions are those the build stage resolved.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links /wheels sentinelstream
COPY --from=probe /out/grpc-health-probe /usr/local/bin/grpc-health-probe
COPY deploy/sentinel.example.toml /etc/sentinel/sentinel.toml
# The configuration file; mount yours over it (compose, the Kubernetes ConfigMap) and the TLS files at
# /etc/sentinel/tls (server.pem, server-key.pem, and ca.pem: the CA that issued server.pem, for the probe).
ENV SENTINEL_CONFIG=/etc/sentinel/sentinel.toml \
    SENTINEL_DATA_DIR=/var/lib/sentinel \
    SENTINEL_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/sentinel
VOLUME ["/var/lib/sentinel"]
# 50051: gRPC (TLS); 9095: /metrics and the ops dashboard
EXPOSE 50051 9095
# The server's certificate must name localhost: the probe connects to 127.0.0.1 inside the container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["grpc-health-probe", "-addr=127.0.0.1:50051", "-tls", "-tls-ca-cert=/etc/sentinel/tls/ca.pem", "-tls-server-name=localhost", "-connect-timeout=2s", "-rpc-timeout=2s"]
# SIGTERM (docker stop, Kubernetes) drains: health NOT_SERVING, calls in flight finish within
# shutdown_grace_s, the ledger flushes. Give the container longer than that to stop (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["sentinel"]
CMD ["serve"]
