#!/usr/bin/env bash
# Build SentinelStream's REST/JSON gateway (gateway/, grpc-gateway v2) into .tools/sentinel-gateway.
#
# The Go code of sentinel.v1 and its REST handlers are generated from proto/ into gateway/gen/ (not
# committed) by protoc (the grpcio-tools of the Python build: $PYTHON, else .venv/bin/python, else
# python3) with the pinned plugins of deploy/install-go-tools.sh --gateway; then `go build`. Idempotent
# and quick when nothing changed: the binary is rebuilt only when the hash of its inputs (the .proto
# files, gateway/'s sources, these scripts) differs from the one recorded beside it.
#
#   deploy/build-gateway.sh               build (fails when go is missing)
#   deploy/build-gateway.sh --tests       the same, but a missing go prints one line and exits 0
#   deploy/build-gateway.sh --openapi DIR only write the OpenAPI document generated from proto/ to
#                                         DIR/openapi.json (`--openapi gateway` refreshes the committed one)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
binary="$tools/sentinel-gateway"
mode="${1:-build}"
if [ "$mode" = "--openapi" ]; then
  out="$(cd "${2:?--openapi needs a directory}" && pwd)"
fi

if ! command -v go >/dev/null 2>&1; then
  if [ "$mode" = "--tests" ]; then
    echo "go is missing: the REST gateway tests will skip (building gateway/ needs Go 1.26 or newer)" >&2
    exit 0
  fi
  echo "go is missing: building the REST gateway (gateway/ into .tools/sentinel-gateway) needs Go 1.26 or newer" >&2
  exit 1
fi
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3

mkdir -p "$tools"
exec 9>"$tools/.gateway-build.lock"  # dev serve and a test session may build at the same time
flock 9
bash "$root/deploy/install-go-tools.sh" --gateway

well_known="$("$python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
cd "$root/proto"
protos=(sentinel/v1/*.proto)
protoc() {
  "$python" -m grpc_tools.protoc -I. -I"$well_known" "$@" "${protos[@]}"
}

if [ "$mode" = "--openapi" ]; then
  protoc --plugin=protoc-gen-openapiv2="$tools/protoc-gen-openapiv2" --openapiv2_out="$out" \
    --openapiv2_opt=allow_merge=true,merge_file_name=openapi,output_format=json \
    --openapiv2_opt=openapi_configuration="$root/gateway/openapi.yaml"
  mv "$out/openapi.swagger.json" "$out/openapi.json"
  exit 0
fi

inputs="$(cat "${protos[@]}" google/api/*.proto "$root"/gateway/*.go "$root"/gateway/go.mod "$root"/gateway/go.sum \
  "$root/gateway/openapi.json" "$root/gateway/openapi.yaml" "$root/deploy/build-gateway.sh" "$root/deploy/install-go-tools.sh" | sha256sum)"
if [ -x "$binary" ] && [ "$(cat "$binary.inputs" 2>/dev/null)" = "$inputs" ]; then
  exit 0
fi
echo "building the REST gateway into .tools/sentinel-gateway" >&2
gen="$root/gateway/gen"
rm -rf "$gen" && mkdir -p "$gen"
protoc --plugin=protoc-gen-go="$tools/protoc-gen-go" --go_out="$gen" --go_opt=paths=source_relative \
  --plugin=protoc-gen-go-grpc="$tools/protoc-gen-go-grpc" --go-grpc_out="$gen" --go-grpc_opt=paths=source_relative \
  --plugin=protoc-gen-grpc-gateway="$tools/protoc-gen-grpc-gateway" --grpc-gateway_out="$gen" \
  --grpc-gateway_opt=paths=source_relative
cd "$root/gateway"
go build -trimpath -o "$binary.new" .
mv "$binary.new" "$binary"
echo "$inputs" >"$binary.inputs"
