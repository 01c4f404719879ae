#!/usr/bin/env bash
# Fetches the ONNX Runtime CPU shared library from the npm registry package
# onnxruntime-node and unpacks it into .cache/onnxruntime/ (git-ignored).
#
# Why npm: the library must come from a package registry at build time, never
# from the repository; onnxruntime-node ships the plain C library
# (libonnxruntime.so.1, links only libc/libstdc++), and its version 1.27.0 is
# ORT 1.27.0, the C API version github.com/yalue/onnxruntime_go v1.27.0 expects.
#
# Idempotent: does nothing when the library with the expected version is present.
# Usage: deploy/onnxruntime.sh [dest-dir]   (default: <repo root>/.cache/onnxruntime)
set -euo pipefail

ORT_VERSION="${ORT_VERSION:-1.27.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.cache/onnxruntime}"
LIB="$DEST/libonnxruntime.so.1"
STAMP="$DEST/VERSION"

if [[ -f "$LIB" && -f "$STAMP" && "$(cat "$STAMP")" == "$ORT_VERSION" ]]; then
  exit 0
fi

command -v npm >/dev/null || { echo "onnxruntime.sh: npm is required to fetch onnxruntime-node@$ORT_VERSION" >&2; exit 1; }

mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# npm pack only downloads the tarball: no install scripts run (the package's
# postinstall would try to reach NuGet).
(cd "$WORK" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
TARBALL="$(ls "$WORK"/onnxruntime-node-*.tgz)"
tar -xzf "$TARBALL" -C "$WORK" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
install -m 0644 "$WORK/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$LIB.tmp"
mv -f "$LIB.tmp" "$LIB"
echo "$ORT_VERSION" > "$STAMP"
echo "onnxruntime.sh: installed ONNX Runtime $ORT_VERSION at $LIB" >&2
