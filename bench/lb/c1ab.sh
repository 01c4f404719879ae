#!/usr/bin/env bash
# Unloaded latency (wrk -c1) through two or more lbbench builds and HAProxy,
# one at a time, alternating twice, with the proxy's CPU per request. The
# builds' `lb` subcommand is used, as bench/lb/ab.sh does; the first
# build's `conf` writes HAProxy's config (so it must have that command).
#
#   bench/lb/c1ab.sh /tmp/lb-old /tmp/lb-new
#
# Needs wrk, haproxy and taskset; uses loopback ports 18180-18184.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
dir=$(mktemp -d)
lb_yaml 127.0.0.1:18180 127.0.0.1:18182 >"$dir/lb.yaml"
# HAProxy with run.go's config (lbbench conf, -headers same).
haproxy_conf=$("$1" conf -proxy haproxy -http 127.0.0.1:18181 -grpc 127.0.0.1:18184 -up-http 127.0.0.1:18182 -up-grpc 127.0.0.1:18183 -dir "$dir")
taskset -c 0 "$1" upstream -http 127.0.0.1:18182 -grpc 127.0.0.1:18183 >/dev/null 2>&1 & up=$!
trap 'kill $up 2>/dev/null; rm -rf "$dir"' EXIT
sleep 0.5
for round in 1 2; do
	for b in "$@" haproxy; do
		if [ "$b" = haproxy ]; then
			taskset -c 1 haproxy -f "$haproxy_conf" & p=$! url=http://127.0.0.1:18181/
		else
			taskset -c 1 env GOMAXPROCS=1 "$b" lb -config "$dir/lb.yaml" 2>/dev/null & p=$! url=http://127.0.0.1:18180/
		fi
		sleep 0.5
		taskset -c 0 wrk -t1 -c1 -d1s "$url" >/dev/null
		c0=$(cpu "$p")
		out=$(taskset -c 0 wrk -t1 -c1 -d5s --latency "$url")
		c1=$(cpu "$p")
		n=$(echo "$out" | awk '/requests in/{print $1}')
		printf '%s: %s req/s, p50 %s, p99 %s, %.1f CPU us/req\n' "$b" \
			"$(echo "$out" | awk '/Requests\/sec/{print $2}')" "$(echo "$out" | awk '$1=="50%"{print $2}')" \
			"$(echo "$out" | awk '$1=="99%"{print $2}')" "$(echo "($c1-$c0)*10000/$n" | bc -l)"
		kill $p; wait $p 2>/dev/null || true
	done
done
