# Shared by the lb A/B scripts (ab.sh, c1ab.sh, one.sh); sourced, not run.

# lb_yaml LISTEN UPSTREAM: a vigil lb config with one plain HTTP/1.1
# listener, access log off, and one route to one upstream.
lb_yaml() {
	cat <<YAML
access_log: false
listeners:
  - {name: http, address: "$1"}
routes:
  - {name: http, pool: http}
pools:
  - {name: http, protocol: http1, upstreams: ["$2"]}
YAML
}

# cpu PID: the process's user+system CPU time in ticks (1/100 s).
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
