# Shared by the lb A/B scripts (ab.sh, c1ab.sh, one.sh); sourced, not run.

# lb_yaml LISTEN UPSTREAM: a vigil lb config with one plain HTTP/1.1
# listener, access log off, and one route to one upstream.
lb_yaml() {
	cat <<YAML
access_log: false
listeners:
  - {name: http, address: "$1"}
routes:
  - {name: http, pool: http, try_timeout: 60s}
pools:
  - {name: http, protocol: http1, upstreams: ["$2"]}
YAML
}

# cpu PID: the process's user+system CPU time in ticks (1/100 s).
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }

# rss PID: the process's resident memory in KiB.
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

# treesum FN PID: FN (cpu or rss) summed over the process and its
# children (nginx's worker under its master).
treesum() {
	local t=0 p
	for p in $2 $(pgrep -P "$2"); do t=$((t + $($1 "$p"))); done
	echo $t
}
