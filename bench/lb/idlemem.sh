#!/usr/bin/env bash
# Memory per idle keep-alive client connection: vigil lb, HAProxy and
# nginx in turn, each with N client connections that made one request
# and then wait (lbbench idle); prints each proxy's resident memory
# before and after, and the growth per connection.
#
#   bench/lb/idlemem.sh [N]        # N defaults to 5000
#
# Memory is read SETTLE seconds (10) after the last connection opened:
# vigil lb parks a connection idle 2 s (idleParkAfter), and its
# goroutine's stack then goes back to the runtime, which frees it at its
# next collection (at most 2 min later on an idle proxy) and returns it
# to the system. For vigil lb a second reading follows a collection it is
# asked for (SIGUSR1 to lbbench lb: debug.FreeOSMemory).
#
# H2=1 makes them HTTP/2 connections over TLS, as browsers hold (the
# proxies' listener with TLS 1.3 and ALPN h2, lbbench idle -h2).
#
# Needs haproxy and nginx (and openssl for H2); uses loopback ports 18280-18283. The open file
# limit must allow N connections (ulimit -n).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
n=${1:-5000}
dir=$(mktemp -d)
(cd "$(dirname "$0")/../.." && go build -o "$dir/lbbench" ./bench/lb)
# run.go's configs (lbbench conf), every HTTP pool to the Go upstream.
conf() { "$dir/lbbench" conf -http 127.0.0.1:18280 -grpc 127.0.0.1:18282 -up-http 127.0.0.1:18281 -up-grpc 127.0.0.1:18283 "$@"; }
mkdir -p "$dir/n"
lb_conf=$(conf -proxy vigil-lb -dir "$dir")
haproxy_conf=$(conf -proxy haproxy -dir "$dir")
nginx_conf=$(conf -proxy nginx -dir "$dir/n")
idle_args=()
if [ -n "${H2:-}" ]; then
	tls_confs "$dir" 127.0.0.1:18280 h2,http/1.1 "$lb_conf" "$haproxy_conf" "$nginx_conf"
	idle_args=(-h2)
fi
"$dir/lbbench" upstream -http 127.0.0.1:18281 -grpc 127.0.0.1:18283 >/dev/null 2>&1 & up=$!
trap 'kill $up 2>/dev/null; rm -rf "$dir"' EXIT
for proxy in vigil-lb haproxy nginx; do
	case $proxy in
	vigil-lb) env GOMAXPROCS=1 "$dir/lbbench" lb -config "$lb_conf" >/dev/null 2>&1 & p=$! ;;
	haproxy) haproxy -db -f "$haproxy_conf" >/dev/null 2>&1 & p=$! ;;
	nginx) nginx -p "$dir/n" -e "$dir/n/error.log" -c "$nginx_conf" >/dev/null 2>&1 & p=$! ;;
	esac
	sleep 1
	r0=$(treesum rss $p)
	"$dir/lbbench" idle -addr 127.0.0.1:18280 -n "$n" "${idle_args[@]}" >"$dir/idle.out" & cl=$!
	for _ in $(seq 1 120); do
		grep -q open "$dir/idle.out" 2>/dev/null && break
		kill -0 $cl 2>/dev/null || { echo "$proxy: the client failed" >&2; break; }
		sleep 0.5
	done
	sleep "${SETTLE:-10}"
	r1=$(treesum rss $p)
	printf '%-9s %s idle connections: RSS %6d -> %7d KiB, %6d bytes per connection\n' \
		$proxy "$(awk '{print $2}' "$dir/idle.out")" "$r0" "$r1" $(((r1 - r0) * 1024 / n))
	if [ $proxy = vigil-lb ]; then
		kill -USR1 $p # collect and return freed memory now (lbproc.go)
		sleep 1
		r2=$(treesum rss $p)
		printf '%-9s after a collection:            RSS %6d -> %7d KiB, %6d bytes per connection\n' \
			$proxy "$r0" "$r2" $(((r2 - r0) * 1024 / n))
	fi
	kill $cl 2>/dev/null || true
	kill $p 2>/dev/null || true
	wait $cl $p 2>/dev/null || true
done
