#!/usr/bin/env bash
# Builds lbbench and runs the vigil lb / HAProxy / nginx comparison.
# Needs: wrk, haproxy, nginx, h2load (Debian: apt-get install wrk haproxy
# nginx-core nghttp2-client;
# they are run as plain processes on free loopback ports, never as services),
# taskset (util-linux). Extra flags go to `lbbench run` (see README.md).
set -euo pipefail
# The peers and load generators, from Debian's packages when missing.
missing=()
for t in wrk:wrk haproxy:haproxy nginx:nginx-core h2load:nghttp2-client; do
	command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		apt-get install -y "${missing[@]}" >/dev/null
	else
		echo "bench/lb/run.sh needs: ${missing[*]} (apt-get install ${missing[*]})" >&2
		exit 1
	fi
fi
cd "$(dirname "$0")/../.."
bin="$(mktemp -d)/lbbench"
go build -o "$bin" ./bench/lb
exec "$bin" run "$@"
