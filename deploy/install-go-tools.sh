#!/usr/bin/env bash
# Install the pinned Go tools into the repository's .tools/ with `go install` (`make bench-tools`):
# ghz, the load generator `sentinel bench grpc` prefers, and grpcurl for trying the server by hand.
# Idempotent: a tool whose binary in .tools/ was built from its pinned version is left alone.
# With --tests (`make test`) it installs ghz only, and a missing go prints one line instead of failing
# (the tests that need ghz then skip).
# The versions are pinned here only; v0.121.0 is the newest ghz that builds with Go 1.26.8.
set -euo pipefail

# name, module, pinned version, package to install
GHZ="ghz github.com/bojand/ghz v0.121.0 github.com/bojand/ghz/cmd/ghz"
GRPCURL="grpcurl github.com/fullstorydev/grpcurl v1.9.1 github.com/fullstorydev/grpcurl/cmd/grpcurl"

tools=("$GHZ" "$GRPCURL")
tests=false
if [ "${1:-}" = "--tests" ]; then
  tests=true
  tools=("$GHZ")
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="$root/.tools"

if ! command -v go >/dev/null 2>&1; then
  if $tests; then
    echo "go is missing: the tests that run ghz will skip (ghz and grpcurl need Go 1.23 or newer)" >&2
    exit 0
  fi
  echo "go is missing: installing ghz and grpcurl into .tools/ needs Go 1.23 or newer" >&2
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
