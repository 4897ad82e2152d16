#!/usr/bin/env bash
# Make sure the binaries of the private Redis, PostgreSQL and RabbitMQ that `make run` / `make test` start
# are present. Installs them with apt-get when we are root on Debian/Ubuntu; otherwise prints one
# line naming the packages and fails.
# With --tests (`make test`) it also wants h2load (package nghttp2-client) for the h2load benchmark
# tests, promtool (prometheus) for the alert rules, nginx (nginx-light) for the proxy test and chromium
# (with a font to render the page's text) for the ops dashboard's browser tests, and wrk for `sentinel bench
# rest` and its test: installed the same way when root; otherwise one line names them and those tests skip.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

have_rabbitmq() {  # /usr/sbin is not on every user's PATH; the private broker runs this script
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
have_postgres || missing+=(postgresql)
have_rabbitmq || missing+=(rabbitmq-server)
optional=()
if [ "${1:-}" = "--tests" ]; then
  command -v h2load >/dev/null 2>&1 || optional+=(nghttp2-client)
  command -v wrk >/dev/null 2>&1 || optional+=(wrk)  # `sentinel bench rest`'s HTTP load and its test
  command -v promtool >/dev/null 2>&1 || optional+=(prometheus)  # promtool: the alert rules and config
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || optional+=(nginx-light)  # the gRPC proxy test
  [ -x /usr/bin/chromium ] || optional+=(chromium fonts-liberation)  # the ops dashboard's browser tests
  command -v mvn >/dev/null 2>&1 || optional+=(maven default-jdk-headless)  # the Java client's build and test
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
echo "${optional[*]} missing: their tests will skip (Debian/Ubuntu: sudo apt-get install ${optional[*]})" >&2
