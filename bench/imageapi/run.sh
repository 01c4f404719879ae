#!/usr/bin/env bash
# bench/imageapi: the Image API pipeline against bare onnxruntime_go Run on the same tensors.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go run ./bench/imageapi -iters 20 "$@"
