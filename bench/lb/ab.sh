#!/usr/bin/env bash
# Paired A/B of two lbbench builds on the HTTP/1.1 -c64 scenario: both
# proxies run at the same time on CPU 1, each under its own wrk -c64 on
# CPU 0, against one upstream. On a shared machine they then suffer the
# same interference, so their CPU µs per request compare fairly even when
# run-to-run noise is ±15 %. Swap A and B and repeat to cancel slot bias.
#
#   go build -o /tmp/lb-old ./bench/lb   # at the old commit
#   go build -o /tmp/lb-new ./bench/lb   # at the new commit
#   bench/lb/ab.sh /tmp/lb-old /tmp/lb-new 8
#
# Needs wrk and taskset; uses loopback ports 18080, 18090 and 18081-18082.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
A=$1 B=$2 d=${3:-8}
dir=$(mktemp -d)
for p in 18080 18090; do
	lb_yaml "127.0.0.1:$p" 127.0.0.1:18081 >"$dir/lb$p.yaml"
done
taskset -c 0 "$A" upstream -http 127.0.0.1:18081 -grpc 127.0.0.1:18082 >/dev/null 2>&1 & up=$!
taskset -c 1 env GOMAXPROCS=1 "$A" lb -config "$dir/lb18080.yaml" >/dev/null 2>&1 & pa=$!
taskset -c 1 env GOMAXPROCS=1 "$B" lb -config "$dir/lb18090.yaml" >/dev/null 2>&1 & pb=$!
trap 'kill -INT $pa $pb 2>/dev/null; kill $up 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1
taskset -c 0 wrk -t1 -c64 -d1s http://127.0.0.1:18080/ >/dev/null & w1=$!
taskset -c 0 wrk -t1 -c64 -d1s http://127.0.0.1:18090/ >/dev/null & w2=$!
wait $w1 $w2
a0=$(cpu $pa) b0=$(cpu $pb)
taskset -c 0 wrk -t1 -c64 -d"${d}s" http://127.0.0.1:18080/ >"$dir/wa" & w1=$!
taskset -c 0 wrk -t1 -c64 -d"${d}s" http://127.0.0.1:18090/ >"$dir/wb" & w2=$!
wait $w1 $w2
a1=$(cpu $pa) b1=$(cpu $pb)
ra=$(awk '/requests in/{print $1}' "$dir/wa") rb=$(awk '/requests in/{print $1}' "$dir/wb")
printf 'A %s: %d requests, %.1f CPU us/req | B %s: %d requests, %.1f CPU us/req | load %s\n' \
	"$A" "$ra" "$(echo "($a1-$a0)*10000/$ra" | bc -l)" "$B" "$rb" "$(echo "($b1-$b0)*10000/$rb" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
