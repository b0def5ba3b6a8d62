#!/usr/bin/env bash
# Installs the Debian 12 packages kiln builds and tests with, where missing (as root).
# Quick when everything is there: it only asks dpkg.
set -euo pipefail

packages=(
  g++ git ca-certificates
  bazel-bootstrap          # Bazel 4.2.3, offline
  protobuf-compiler libprotobuf-dev
  catch2
  llvm-19-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev zlib1g-dev
  libcpp-httplib-dev       # kiln serve's HTTP server
  libsimdjson-dev          # kiln serve parses JSON request bodies with it
  libgrpc++-dev            # kiln serve's gRPC endpoint
  protobuf-compiler-grpc   # grpc_cpp_plugin, for serve/grpc_service.proto
  wrk                      # tools/bench/bench_serve.py's load generator
  nghttp2-client           # h2load: bench_serve.py's gRPC load generator
  libopenblas-dev          # benchmarks compare against OpenBLAS
  libonnx-dev              # onnx.proto, the schema of the ONNX importer
  libsodium-dev            # Ed25519 signatures over artifacts (runtime/signing)
  libxxhash-dev            # XXH3 checksums of artifacts (runtime/artifact, header-only)
  libzip-dev               # NumPy .npz archives (runtime/npz)
  clang libclang-rt-14-dev # clang 14 and libFuzzer for tools/fuzz.sh (--config=fuzz)
  dataset-fashion-mnist    # Fashion-MNIST's IDX files in /usr/share/datasets/fashion-mnist (train/data/idx)
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: missing packages and not root; run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# PyTorch, ONNX and ONNX Runtime for the ONNX model tests and benchmarks. Without them
# (no network for pip, say) kiln still builds; those tests say they skipped and why.
if ! "$(dirname "$0")/install_python_deps.sh"; then
  echo "warning: the Python tools (tools/install_python_deps.sh) are not installed;" \
    "the ONNX model, conformance and ONNX Runtime tests will be skipped" >&2
fi
