#!/usr/bin/env bash
# Quick start, first command: installs what is missing, builds kiln, and runs its main
# job on the bundled example (LeNet-5 built with the Symbol API, run on a digit).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh
bazel build //tools:kiln //examples:build_lenet

mkdir -p build-out
kiln=bazel-bin/tools/kiln
echo "== build the example model with the Symbol API"
bazel-bin/examples/build_lenet build-out/lenet.kiln-graph
echo "== inspect it (shapes inferred from the data shape)"
"$kiln" inspect build-out/lenet.kiln-graph --input data:1x1x28x28
echo "== run it with the reference interpreter"
"$kiln" interpret build-out/lenet.kiln-graph --input data=examples/data/digit7.npy --output-dir build-out
echo "== picture: build-out/lenet.dot"
"$kiln" viz build-out/lenet.kiln-graph --input data:1x1x28x28 -o build-out/lenet.dot
