#!/usr/bin/env bash
# Make sure the binaries of the private Redis and PostgreSQL that `make run` / `make test` start
# are present. Installs them with apt-get when we are root on Debian/Ubuntu; otherwise prints one
# line naming the packages and fails.
# With --tests (`make test`) it also wants h2load (package nghttp2-client) for the h2load benchmark
# tests: installed the same way when root; otherwise one line names it and those tests skip.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
have_postgres || missing+=(postgresql)
optional=()
if [ "${1:-}" = "--tests" ]; then
  command -v h2load >/dev/null 2>&1 || optional+=(nghttp2-client)
fi
[ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} ${optional[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" "${optional[@]}" >/dev/null
  exit 0
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "SentinelStream needs these system packages: ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "h2load is missing: its tests will skip (Debian/Ubuntu: sudo apt-get install nghttp2-client)" >&2
