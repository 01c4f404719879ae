#!/usr/bin/env bash
# bench/backend: person create and search throughput over REST through the gateway.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go run ./bench/backend "$@"
