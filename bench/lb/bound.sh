#!/usr/bin/env bash
# Proxy-bound single-proxy runs: each target in turn on CPU 1 in front of
# an nginx origin that answers by itself on CPU 0, under wrk -c64 on
# CPU 0, so that the proxy's core is the bottleneck (the proxy-bound
# scenario of run.sh, one proxy at a time). Targets are lbbench builds or
# the words haproxy and nginx, with run.go's configs (lbbench conf: the
# same work as vigil lb, -headers same). Prints req/s, the proxy's CPU µs per request (and of them
# its own code's, user time, the rest being the kernel's)
# and wrk's latency percentiles up to p99.99.
#
#   bench/lb/bound.sh /tmp/lb-old /tmp/lb-new haproxy nginx /tmp/lb-old /tmp/lb-new
#
# Alternate the targets and repeat: rounds on a VM move by ±5-10 %.
# EXTRAENV adds environment variables to the lb builds (GOGC=800…),
# LBFLAGS flags (-metrics 127.0.0.1:18199), LBLOG names a file for their
# standard error (discarded otherwise); SECS
# sets the measured seconds (6); WRKHEADERS=browser sends a browser's
# request fields (run.go's browserFields) besides wrk's bare Host;
# WRKBODY=N makes the measured requests POSTs with an N-byte body (an
# upload; with ORIGIN=go, which reads it before it answers: the nginx
# origin answers first, and nginx as a proxy then closes the client's
# connection); DOWNLOAD=N makes them GETs of an
# N-byte file the origin serves; TLS=1
# puts TLS on the proxies' listener (wrk speaks HTTPS); H2=1 too, and
# loads it with HTTP/2 (h2load, 16 connections × 8 streams) instead;
# ORIGIN=go puts run.go's Go upstream behind the proxies instead of the
# nginx origin (run.sh's first scenario, where CPU 0 is the bottleneck);
# PERF=1 prints the origin's and the proxy's system calls and context
# switches per request of the load generator, the origin and the proxy
# (perf stat); PERFEV=ev,ev… counts those perf events instead (e.g.
# syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_sendto
# for the system calls by type).
# Needs wrk, nginx, haproxy, taskset, openssl for TLS, h2load
# (nghttp2-client) for H2;
# uses loopback ports 18090-18093.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
d=${SECS:-6}
dir=$(mktemp -d)
if [ -n "${WRKBODY:-}" ]; then
	# POSTs with a body of WRKBODY bytes, as an API client sends.
	cat >"$dir/pct.lua" <<LUA
wrk.method = "POST"
wrk.body = string.rep("x", ${WRKBODY})
wrk.headers["Content-Type"] = "application/json"
LUA
fi
cat >>"$dir/pct.lua" <<'LUA'
done = function(summary, latency, requests)
  local s = ""
  for _, p in ipairs({50, 75, 90, 95, 98, 99, 99.9, 99.99}) do
    s = s .. string.format("p%s %.0f  ", p, latency:percentile(p))
  end
  io.write("latency µs: " .. s .. "\n")
end
LUA
(cd "$(dirname "$0")/../.." && go build -o "$dir/lbbench" ./bench/lb)
# A browser's fields (run.go's browserFields), when WRKHEADERS=browser.
hdrs=()
if [ "${WRKHEADERS:-}" = browser ]; then
	mapfile -t hdrs < <("$dir/lbbench" wrkheaders)
fi
# run.go's configs; both of a proxy's HTTP pools go to the origin.
conf() { "$dir/lbbench" conf -http 127.0.0.1:18090 -grpc 127.0.0.1:18092 -up-http 127.0.0.1:18091 -up-grpc 127.0.0.1:18093 "$@"; }
mkdir -p "$dir/o" "$dir/n"
origin_conf=$("$dir/lbbench" conf -proxy origin -http 127.0.0.1:18091 -dir "$dir/o")
lb_conf=$(conf -proxy vigil-lb -dir "$dir")
haproxy_conf=$(conf -proxy haproxy -dir "$dir")
nginx_conf=$(conf -proxy nginx -dir "$dir/n")
path=/
if [ -n "${DOWNLOAD:-}" ]; then
	mkdir -p "$dir/o/origin/static"
	head -c "$DOWNLOAD" /dev/urandom >"$dir/o/origin/static/blob"
	path=/origin/static/blob
fi
url=http://127.0.0.1:18090$path
if [ -n "${H2:-}" ]; then
	TLS=1
fi
if [ -n "${TLS:-}" ]; then
	# The proxies' HTTP listener with TLS (one self-signed P-256
	# certificate; HTTP/1.1), as in front of real clients. The origin
	# stays plain.
	tls_confs "$dir" 127.0.0.1:18090 "${H2:+h2,}http/1.1" "$lb_conf" "$haproxy_conf" "$nginx_conf"
	url=https://127.0.0.1:18090$path
fi
if [ "${ORIGIN:-}" = go ]; then
	# run.go's Go upstream instead of the nginx origin: CPU 0 (wrk and the
	# upstream) is then the bottleneck, as in run.sh's first scenario.
	taskset -c 0 "$dir/lbbench" upstream -http 127.0.0.1:18091 -grpc 127.0.0.1:18093 >/dev/null 2>&1 & origin=$!
else
	taskset -c 0 nginx -p "$dir/o" -e "$dir/o/error.log" -c "$origin_conf" & origin=$!
fi
trap 'kill $origin 2>/dev/null; wait $origin 2>/dev/null; rm -rf "$dir"' EXIT
for target in "$@"; do
	case $target in
	haproxy) taskset -c 1 haproxy -db -f "$haproxy_conf" >/dev/null 2>&1 & p=$! ;;
	nginx) taskset -c 1 nginx -p "$dir/n" -e "$dir/n/error.log" -c "$nginx_conf" >/dev/null 2>&1 & p=$! ;;
	*) taskset -c 1 env GOMAXPROCS=1 ${EXTRAENV:-} "$target" lb -config "$lb_conf" ${LBFLAGS:-} >/dev/null 2>>${LBLOG:-/dev/null} & p=$! ;;
	esac
	sleep 1
	if [ -n "${TLS:-}" ]; then
		echo "  $(basename "$target") negotiates: $(echo | openssl s_client -connect 127.0.0.1:18090 -alpn "${H2:+h2,}http/1.1" 2>/dev/null |
			awk '/^New,/{print $2, $5} /^ALPN protocol/{print "ALPN", $3}' | tr '\n' ' ')"
	fi
	if [ -n "${H2:-}" ]; then
		# 16 connections with 8 streams each: the 64 connections' load
		# as a browser's multiplexed requests. h2load has no percentiles.
		load=(h2load -c16 -m8 -D)
	else
		load=(wrk -t1 -c64 "${hdrs[@]}" -d)
	fi
	taskset -c 0 "${load[@]}" 1 "$url" >/dev/null 2>&1
	a0=$(treesum cpu $p) u0=$(treesum ucpu $p)
	if [ -n "${H2:-}" ]; then
		taskset -c 0 "${load[@]}" "$d" "$url" >"$dir/w" 2>&1 &
	else
		taskset -c 0 "${load[@]}" "${d}s" -s "$dir/pct.lua" "$url" >"$dir/w" &
	fi
	w=$!
	if [ -n "${PERF:-}" ]; then
		# System calls and context switches of the load generator, the
		# origin and the proxy (with nginx's worker), counted for d-1 s.
		sleep 0.2
		perfs=()
		for who in load:$w origin:$origin proxy:$(pgrep -d, -P "$p" | sed 's/.$/&,/')$p; do
			perf stat -x, -e ${PERFEV:-raw_syscalls:sys_enter,context-switches} -p "${who#*:}" -o "$dir/perf.${who%%:*}" -- sleep "$((d - 1))" &
			perfs+=($!)
		done
	fi
	wait $w
	a1=$(treesum cpu $p) u1=$(treesum ucpu $p)
	kill -TERM $p 2>/dev/null || true
	wait $p 2>/dev/null || true
	if [ -n "${H2:-}" ]; then
		grep -q "Application protocol: h2" "$dir/w"
		r=$(awk '/^requests:/{print $8}' "$dir/w")
		rps=$(awk '/^finished in/{print $4}' "$dir/w")
		lat=$(grep -m1 'time for request' "$dir/w" | tr -s ' ')
	else
		r=$(awk '/requests in/{print $1}' "$dir/w")
		rps=$(awk '/Requests\/sec/{print $2}' "$dir/w")
		lat=$(grep '^latency' "$dir/w")
	fi
	if [ -n "${PERF:-}" ]; then
		wait "${perfs[@]}"
		for who in load origin proxy; do
			awk -F, -v n="$r" -v d="$d" -v who="$who" '$3 ~ /sys_enter|context|syscalls/ {printf "    %-6s %-26s %5.2f per request\n", who, $3, $1/(n*(d-1)/d)}' "$dir/perf.$who"
		done
	fi
	printf '%-16s %9s req/s  %5.1f CPU µs/req (%4.1f user)  %s\n' "$(basename "$target")" "$rps" \
		"$(echo "($a1-$a0)*10000/$r" | bc -l)" "$(echo "($u1-$u0)*10000/$r" | bc -l)" "$lat"
	sleep 0.5
done
