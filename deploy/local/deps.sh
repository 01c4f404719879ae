#!/usr/bin/env bash
# Installs, idempotently and only from the package registries, what building and testing
# Vigil needs on Debian 12 as root: a Go toolchain new enough for go.mod, PostgreSQL,
# Redis, Node.js/npm (for fetching ONNX Runtime from its npm package).
set -euo pipefail
need_go=1.26
missing=()
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v curl >/dev/null 2>&1 || missing+=(curl)
go_ok() { command -v go >/dev/null 2>&1 && [ "$(printf '%s\n' "$need_go" "$(go env GOVERSION | sed 's/^go//')" | sort -V | head -1)" = "$need_go" ]; }
go_ok || missing+=(golang-go)
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]} from Debian's packages"
  if [ "$(id -u)" != 0 ]; then echo "deps: run as root (or install ${missing[*]} yourself)" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! go_ok; then
  # Debian's Go is older than go.mod needs. The Go module proxy serves every Go release as
  # the module golang.org/toolchain; fetch it with the old go and install it to /usr/local/go.
  v=go1.26.8
  tmp=$(mktemp -d)
  echo "deps: fetching the $v toolchain from the Go module proxy"
  (cd "$tmp" && GOFLAGS= GOPATH="$tmp/gopath" go mod download -json "golang.org/toolchain@v0.0.1-$v.linux-amd64" >/dev/null)
  src=$(ls -d "$tmp"/gopath/pkg/mod/golang.org/toolchain@v0.0.1-$v.linux-amd64)
  rm -rf /usr/local/go && cp -r "$src" /usr/local/go && chmod -R u+w /usr/local/go && chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/*
  chmod -R u+w "$tmp" && rm -rf "$tmp"
  echo "deps: installed $(/usr/local/go/bin/go version); put /usr/local/go/bin first in PATH"
fi
