#!/usr/bin/env bash
# Install the pinned Go tools into the repository's .tools/ with `go install` (`make bench-tools`):
# ghz, the load generator `sentinel bench grpc` prefers, grpcurl for trying the server by hand,
# protoc-gen-go and protoc-gen-go-grpc, which generate clients/go (clients/generate.py go), and
# grpc-health-probe (.tools/grpc-health-probe), the probe command of the Kubernetes manifests, and
# protoc-gen-grpc-gateway and protoc-gen-openapiv2 for the REST gateway (--gateway: only its four plugins).
# Idempotent: a tool whose binary in .tools/ was built from its pinned version is left alone.
# With --tests (`make test`) it installs ghz, the two protoc plugins and grpc-health-probe (the image's
# HEALTHCHECK, run by tests/test_deploy_containers.py) only, and a missing go prints one
# line instead of failing (the tests that need them then skip).
# The versions are pinned here only; v0.121.0 is the newest ghz that builds with Go 1.26.8.
set -euo pipefail

# name, module, pinned version, package to install
GHZ="ghz github.com/bojand/ghz v0.121.0 github.com/bojand/ghz/cmd/ghz"
GRPCURL="grpcurl github.com/fullstorydev/grpcurl v1.9.1 github.com/fullstorydev/grpcurl/cmd/grpcurl"
PROTOC_GEN_GO="protoc-gen-go google.golang.org/protobuf v1.36.12 google.golang.org/protobuf/cmd/protoc-gen-go"
PROTOC_GEN_GO_GRPC="protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 \
google.golang.org/grpc/cmd/protoc-gen-go-grpc"
HEALTH_PROBE="grpc-health-probe github.com/grpc-ecosystem/grpc-health-probe v0.4.63 \
github.com/grpc-ecosystem/grpc-health-probe"
# The REST gateway's generators (deploy/build-gateway.sh; the same version as gateway/go.mod's runtime).
GATEWAY_GEN="protoc-gen-grpc-gateway github.com/grpc-ecosystem/grpc-gateway/v2 v2.34.0 \
github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway"
OPENAPI_GEN="protoc-gen-openapiv2 github.com/grpc-ecosystem/grpc-gateway/v2 v2.34.0 \
github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2"

tools=("$GHZ" "$GRPCURL" "$PROTOC_GEN_GO" "$PROTOC_GEN_GO_GRPC" "$HEALTH_PROBE" "$GATEWAY_GEN" "$OPENAPI_GEN")
tests=false
if [ "${1:-}" = "--tests" ]; then
  tests=true
  tools=("$GHZ" "$PROTOC_GEN_GO" "$PROTOC_GEN_GO_GRPC" "$HEALTH_PROBE")
elif [ "${1:-}" = "--gateway" ]; then  # the four protoc plugins the REST gateway is generated with
  tools=("$PROTOC_GEN_GO" "$PROTOC_GEN_GO_GRPC" "$GATEWAY_GEN" "$OPENAPI_GEN")
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="$root/.tools"

if ! command -v go >/dev/null 2>&1; then
  if $tests; then
    echo "go is missing: the tests that run ghz or the Go client will skip (they need Go 1.23 or newer)" >&2
    exit 0
  fi
  echo "go is missing: installing the Go tools into .tools/ needs Go 1.23 or newer" >&2
  exit 1
fi

# The module version a Go binary was built from (nothing when it is missing or not that module's).
built_version() {
  [ -x "$1" ] || return 0
  go version -m "$1" 2>/dev/null | awk -v module="$2" '$1 == "mod" && $2 == module { print $3 }'
}

mkdir -p "$bin_dir"
for tool in "${tools[@]}"; do
  read -r name module version package <<<"$tool"
  [ "$(built_version "$bin_dir/$name" "$module")" = "$version" ] && continue
  echo "installing $name $version into .tools/ with go install" >&2
  GOBIN="$bin_dir" go install "$package@$version"
done
