#!/usr/bin/env bash
# Proxy-bound single-proxy runs: each target in turn on CPU 1 in front of
# an nginx origin that answers by itself on CPU 0, under wrk -c64 on
# CPU 0, so that the proxy's core is the bottleneck (the proxy-bound
# scenario of run.sh, one proxy at a time). Targets are lbbench builds or
# the words haproxy and nginx, with run.go's configs (lbbench conf: the
# same work as vigil lb, -headers same). Prints req/s, the proxy's CPU µs per request
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
# WRKBODY=N makes the measured requests POSTs with an N-byte body; TLS=1
# puts TLS on the proxies' listener (wrk speaks HTTPS); H2=1 too, and
# loads it with HTTP/2 (h2load, 16 connections × 8 streams) instead.
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
url=http://127.0.0.1:18090/
if [ -n "${H2:-}" ]; then
	TLS=1
fi
if [ -n "${TLS:-}" ]; then
	# The proxies' HTTP listener with TLS (one self-signed P-256
	# certificate; HTTP/1.1), as in front of real clients. The origin
	# stays plain.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" \
		-days 2 -subj /CN=127.0.0.1 2>/dev/null
	cat "$dir/cert.pem" "$dir/key.pem" >"$dir/both.pem"
	sed -i "s|address: \"127.0.0.1:18090\"}|address: \"127.0.0.1:18090\", tls: {cert_file: $dir/cert.pem, key_file: $dir/key.pem}}|" "$lb_conf"
	# All three on TLS 1.3 with AES-128-GCM, which Go's server picks on
	# hardware with AES (HAProxy would pick AES-256, nginx 1.22 TLS 1.2).
	sed -i "s|bind 127.0.0.1:18090\$|bind 127.0.0.1:18090 ssl crt $dir/both.pem alpn http/1.1 ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256|" "$haproxy_conf"
	sed -i "s|listen 127.0.0.1:18090;|listen 127.0.0.1:18090 ssl; ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem; ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;|" "$nginx_conf"
	grep -q "tls:" "$lb_conf" && grep -q "ssl crt" "$haproxy_conf" && grep -q "18090 ssl" "$nginx_conf"
	url=https://127.0.0.1:18090/
	if [ -n "${H2:-}" ]; then
		# HTTP/2 by ALPN, as browsers speak (vigil lb offers it already).
		sed -i "s|alpn http/1.1|alpn h2,http/1.1|" "$haproxy_conf"
		sed -i "s|listen 127.0.0.1:18090 ssl;|listen 127.0.0.1:18090 ssl http2;|" "$nginx_conf"
	fi
fi
taskset -c 0 nginx -p "$dir/o" -e "$dir/o/error.log" -c "$origin_conf" & origin=$!
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
		taskset -c 0 h2load -c16 -m8 -D1 "$url" >/dev/null 2>&1
		a0=$(treesum cpu $p)
		taskset -c 0 h2load -c16 -m8 -D"$d" "$url" >"$dir/w" 2>&1
		a1=$(treesum cpu $p)
		kill -TERM $p 2>/dev/null || true
		wait $p 2>/dev/null || true
		grep -q "Application protocol: h2" "$dir/w"
		r=$(awk '/^requests:/{print $8}' "$dir/w")
		printf '%-16s %9s req/s  %5.1f CPU µs/req  %s\n' "$(basename "$target")" "$(awk '/^finished in/{print $4}' "$dir/w")" \
			"$(echo "($a1-$a0)*10000/$r" | bc -l)" "$(grep -m1 'time for request' "$dir/w" | tr -s ' ')"
		sleep 0.5
		continue
	fi
	taskset -c 0 wrk -t1 -c64 -d1s "${hdrs[@]}" "$url" >/dev/null
	a0=$(treesum cpu $p)
	taskset -c 0 wrk -t1 -c64 -d"${d}s" "${hdrs[@]}" -s "$dir/pct.lua" "$url" >"$dir/w"
	a1=$(treesum cpu $p)
	kill -TERM $p 2>/dev/null || true
	wait $p 2>/dev/null || true
	r=$(awk '/requests in/{print $1}' "$dir/w")
	printf '%-16s %9s req/s  %5.1f CPU µs/req  %s\n' "$(basename "$target")" "$(awk '/Requests\/sec/{print $2}' "$dir/w")" \
		"$(echo "($a1-$a0)*10000/$r" | bc -l)" "$(grep '^latency' "$dir/w")"
	sleep 0.5
done
