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

# ucpu PID: its user CPU time alone, in ticks: the proxy's own code; the
# rest of cpu is the kernel's work for it (the system calls, loopback's
# TCP), the same for every proxy that makes the same calls.
ucpu() { awk '{print $14}' "/proc/$1/stat"; }

# rss PID: the process's resident memory in KiB.
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

# treesum FN PID: FN (cpu or rss) summed over the process and its
# children (nginx's worker under its master).
treesum() {
	local t=0 p
	for p in $2 $(pgrep -P "$2"); do t=$((t + $($1 "$p"))); done
	echo $t
}

# tls_confs DIR ADDR ALPN LB HAPROXY NGINX: puts TLS on the listener at
# ADDR of the three proxies' configs (lbbench conf's), with one
# self-signed P-256 certificate made in DIR; ALPN is "h2,http/1.1" or
# "http/1.1" (vigil lb offers h2 whatever it is). All three on TLS 1.3
# with AES-128-GCM, which Go's server picks on hardware with AES (HAProxy
# would pick AES-256, nginx 1.22 TLS 1.2).
tls_confs() {
	local dir=$1 addr=$2 alpn=$3 h2=
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" \
		-days 2 -subj /CN=127.0.0.1 2>/dev/null
	cat "$dir/cert.pem" "$dir/key.pem" >"$dir/both.pem"
	case $alpn in h2,*) h2=" http2" ;; esac
	sed -i "s|address: \"$addr\"}|address: \"$addr\", tls: {cert_file: $dir/cert.pem, key_file: $dir/key.pem}}|" "$4"
	sed -i "s|bind $addr\$|bind $addr ssl crt $dir/both.pem alpn $alpn ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256|" "$5"
	sed -i "s|listen $addr;|listen $addr ssl$h2; ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem; ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;|" "$6"
	grep -q "tls:" "$4" && grep -q "ssl crt" "$5" && grep -q "$addr ssl" "$6"
}
