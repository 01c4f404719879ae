#!/usr/bin/env bash
# Builds lbbench and runs the vigil lb / HAProxy / nginx comparison.
# Needs: wrk, haproxy, nginx (Debian: apt-get install wrk haproxy nginx;
# they are run as plain processes on free loopback ports, never as services),
# taskset (util-linux). Extra flags go to `lbbench run` (see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(mktemp -d)/lbbench"
go build -o "$bin" ./bench/lb
exec "$bin" run "$@"
