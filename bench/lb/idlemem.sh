#!/usr/bin/env bash
# Memory per idle keep-alive client connection: vigil lb, HAProxy and
# nginx in turn, each with N client connections that made one request
# and then wait (lbbench idle); prints each proxy's resident memory
# before and after, and the growth per connection.
#
#   bench/lb/idlemem.sh [N]        # N defaults to 5000
#
# Needs haproxy and nginx; uses loopback ports 18280-18281. The open file
# limit must allow N connections (ulimit -n).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
n=${1:-5000}
dir=$(mktemp -d)
go build -o "$dir/lbbench" ./bench/lb
lb_yaml 127.0.0.1:18280 127.0.0.1:18281 >"$dir/lb.yaml"
cat >"$dir/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 60s
  timeout http-keep-alive 300s
  option http-keep-alive
  http-reuse always
frontend http
  bind 127.0.0.1:18280
  default_backend http
backend http
  server u1 127.0.0.1:18281
CFG
mkdir -p "$dir/n"
cat >"$dir/nginx.conf" <<CFG
worker_processes 1; daemon off; master_process off; pid $dir/n.pid; error_log $dir/nerr.log warn;
events { worker_connections 19000; }
http { access_log off; keepalive_timeout 300s; keepalive_requests 1000000;
  client_body_temp_path $dir/n; proxy_temp_path $dir/n; fastcgi_temp_path $dir/n; uwsgi_temp_path $dir/n; scgi_temp_path $dir/n;
  upstream up { server 127.0.0.1:18281; keepalive 16; }
  server { listen 127.0.0.1:18280; location / { proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://up; } } }
CFG
"$dir/lbbench" upstream -http 127.0.0.1:18281 -grpc 127.0.0.1:0 >/dev/null 2>&1 & up=$!
trap 'kill $up 2>/dev/null; rm -rf "$dir"' EXIT
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
for proxy in vigil-lb haproxy nginx; do
	case $proxy in
	vigil-lb) env GOMAXPROCS=1 "$dir/lbbench" lb -config "$dir/lb.yaml" >/dev/null 2>&1 & p=$! ;;
	haproxy) haproxy -db -f "$dir/haproxy.cfg" >/dev/null 2>&1 & p=$! ;;
	nginx) nginx -p "$dir" -e "$dir/nerr.log" -c "$dir/nginx.conf" >/dev/null 2>&1 & p=$! ;;
	esac
	sleep 1
	r0=$(rss $p)
	"$dir/lbbench" idle -addr 127.0.0.1:18280 -n "$n" >"$dir/idle.out" & cl=$!
	for _ in $(seq 1 120); do
		grep -q open "$dir/idle.out" 2>/dev/null && break
		kill -0 $cl 2>/dev/null || { echo "$proxy: the client failed" >&2; break; }
		sleep 0.5
	done
	sleep 2
	r1=$(rss $p)
	printf '%-9s %s idle connections: RSS %6d -> %7d KiB, %6d bytes per connection\n' \
		$proxy "$(awk '{print $2}' "$dir/idle.out")" "$r0" "$r1" $(((r1 - r0) * 1024 / n))
	kill $cl 2>/dev/null || true
	kill $p 2>/dev/null || true
	wait $cl $p 2>/dev/null || true
done
