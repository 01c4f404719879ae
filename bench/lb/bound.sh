#!/usr/bin/env bash
# Proxy-bound single-proxy runs: each target in turn on CPU 1 in front of
# an nginx origin that answers by itself on CPU 0, under wrk -c64 on
# CPU 0, so that the proxy's core is the bottleneck (the proxy-bound
# scenario of run.sh, one proxy at a time). Targets are lbbench builds or
# the words haproxy and nginx, configured to do the same work as vigil lb
# (run.go's -headers same). Prints req/s, the proxy's CPU µs per request
# and wrk's latency percentiles up to p99.99.
#
#   bench/lb/bound.sh /tmp/lb-old /tmp/lb-new haproxy nginx /tmp/lb-old /tmp/lb-new
#
# Alternate the targets and repeat: rounds on a VM move by ±5-10 %.
# EXTRAENV adds environment variables to the lb builds (GOGC=800…); SECS
# sets the measured seconds (6). Needs wrk, nginx, haproxy and taskset;
# uses loopback ports 18090-18091.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
d=${SECS:-6}
dir=$(mktemp -d)
cat >"$dir/pct.lua" <<'LUA'
done = function(summary, latency, requests)
  local s = ""
  for _, p in ipairs({50, 75, 90, 95, 98, 99, 99.9, 99.99}) do
    s = s .. string.format("p%s %.0f  ", p, latency:percentile(p))
  end
  io.write("latency µs: " .. s .. "\n")
end
LUA
cat >"$dir/origin.conf" <<CFG
worker_processes 1; daemon off; master_process off; pid $dir/o.pid; error_log $dir/oerr.log warn;
events { worker_connections 20000; }
http { access_log off; client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  keepalive_requests 1000000000;
  server { listen 127.0.0.1:18091; location / { default_type text/plain; return 200 "hello from the origin\n"; } } }
CFG
lb_yaml 127.0.0.1:18090 127.0.0.1:18091 >"$dir/lb.yaml"
cat >"$dir/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  option forwardfor
  unique-id-format %{+X}o%ci%cp%fi%fp%Ts%rt%pid
  unique-id-header X-Request-Id
frontend http
  bind 127.0.0.1:18090
  default_backend origin
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-response set-header X-Request-Id %[unique-id]
backend origin
  http-reuse always
  server s1 127.0.0.1:18091
CFG
mkdir -p "$dir/n"
cat >"$dir/nginx.conf" <<CFG
worker_processes 1; daemon off; master_process on; pid $dir/n.pid; error_log $dir/nerr.log warn;
events { worker_connections 20000; }
http { access_log off; client_body_temp_path $dir/n; proxy_temp_path $dir/n; fastcgi_temp_path $dir/n; uwsgi_temp_path $dir/n; scgi_temp_path $dir/n;
  upstream origin_up { server 127.0.0.1:18091; keepalive 256; }
  server { listen 127.0.0.1:18090;
    proxy_http_version 1.1; proxy_set_header Connection "";
    proxy_set_header Host \$http_host;
    proxy_set_header X-Request-Id \$request_id;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Forwarded-Host \$http_host;
    add_header X-Request-Id \$request_id;
    location / { proxy_pass http://origin_up; } } }
CFG
taskset -c 0 nginx -p "$dir" -e "$dir/oerr.log" -c "$dir/origin.conf" & origin=$!
trap 'kill $origin 2>/dev/null; wait $origin 2>/dev/null; rm -rf "$dir"' EXIT
# treecpu PID: CPU ticks of the process and its children (nginx's worker).
treecpu() {
	local t=0 p
	for p in $1 $(pgrep -P "$1"); do t=$((t + $(cpu "$p"))); done
	echo $t
}
for target in "$@"; do
	case $target in
	haproxy) taskset -c 1 haproxy -db -f "$dir/haproxy.cfg" >/dev/null 2>&1 & p=$! ;;
	nginx) taskset -c 1 nginx -p "$dir" -e "$dir/nerr.log" -c "$dir/nginx.conf" >/dev/null 2>&1 & p=$! ;;
	*) taskset -c 1 env GOMAXPROCS=1 ${EXTRAENV:-} "$target" lb -config "$dir/lb.yaml" >/dev/null 2>&1 & p=$! ;;
	esac
	sleep 1
	taskset -c 0 wrk -t1 -c64 -d1s http://127.0.0.1:18090/ >/dev/null
	a0=$(treecpu $p)
	taskset -c 0 wrk -t1 -c64 -d"${d}s" -s "$dir/pct.lua" http://127.0.0.1:18090/ >"$dir/w"
	a1=$(treecpu $p)
	kill -TERM $p 2>/dev/null || true
	wait $p 2>/dev/null || true
	r=$(awk '/requests in/{print $1}' "$dir/w")
	printf '%-16s %9s req/s  %5.1f CPU µs/req  %s\n' "$(basename "$target")" "$(awk '/Requests\/sec/{print $2}' "$dir/w")" \
		"$(echo "($a1-$a0)*10000/$r" | bc -l)" "$(grep '^latency' "$dir/w")"
	sleep 0.5
done
