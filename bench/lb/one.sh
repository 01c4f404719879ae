#!/usr/bin/env bash
# Single-proxy run of lbbench builds on the HTTP/1.1 -c64 scenario: for
# each build in turn, one vigil lb on CPU 1 (GOMAXPROCS=1) under wrk -c64
# on CPU 0, against one upstream; prints req/s, the proxy's CPU µs per
# request and wrk's p99. Unlike ab.sh (two proxies sharing CPU 1, so the
# core is saturated), the proxy here has idle moments, as in run.sh:
# effects of idling (poller sleeps, sysmon) show. Alternate builds and
# repeat: run-to-run noise on a VM is ±5 %.
#
#   bench/lb/one.sh /tmp/lb-old /tmp/lb-new /tmp/lb-old /tmp/lb-new
#
# CONNS sets wrk's connections (64; 1 for unloaded latency), SECS the
# measured seconds (6). A build may be a wrapper script that sets the
# environment, e.g. VIGIL_LB_ANSWER_POLLER=off exec /tmp/lb-old "$@".
#
# Needs wrk and taskset; uses loopback ports 18080-18082.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
d=${SECS:-6} conns=${CONNS:-64}
dir=$(mktemp -d)
lb_yaml 127.0.0.1:18080 127.0.0.1:18081 >"$dir/lb.yaml"
for B in "$@"; do
	taskset -c 0 "$B" upstream -http 127.0.0.1:18081 -grpc 127.0.0.1:18082 >/dev/null 2>&1 & up=$!
	taskset -c 1 env GOMAXPROCS=1 "$B" lb -config "$dir/lb.yaml" >/dev/null 2>&1 & pa=$!
	sleep 1
	taskset -c 0 wrk -t1 -c"$conns" -d1s http://127.0.0.1:18080/ >/dev/null
	a0=$(cpu $pa)
	taskset -c 0 wrk -t1 -c"$conns" -d"${d}s" --latency http://127.0.0.1:18080/ >"$dir/w"
	a1=$(cpu $pa)
	kill -INT $pa 2>/dev/null || true; kill $up 2>/dev/null || true; wait $pa $up 2>/dev/null || true
	r=$(awk '/requests in/{print $1}' "$dir/w")
	printf '%-24s %9s req/s  %5.1f CPU us/req  p50 %s  p99 %s\n' "$B" "$(awk '/Requests\/sec/{print $2}' "$dir/w")" \
		"$(echo "($a1-$a0)*10000/$r" | bc -l)" "$(awk '/ 50%/{print $2}' "$dir/w")" "$(awk '/ 99%/{print $2}' "$dir/w")"
done
rm -rf "$dir"
