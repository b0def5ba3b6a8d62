#!/usr/bin/env bash
# Quick start, first command: installs what is missing, builds kiln, and runs its main
# job on the bundled example: LeNet-5 built with the Symbol API is compiled ahead of
# time into an artifact, which the runtime runs on a digit, with its latency; then the
# seed tutorial's linear regression is trained (a compiled training step), compiled and
# run.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh
bazel build //tools:kiln //examples:build_lenet //examples:run_model //examples:linear_regression

mkdir -p build-out
kiln=bazel-bin/tools/kiln
echo "== build the example model with the Symbol API"
bazel-bin/examples/build_lenet build-out/lenet.kiln-graph
echo "== inspect it (shapes inferred from the data shape)"
"$kiln" inspect build-out/lenet.kiln-graph --input data:1x1x28x28
echo "== compile it ahead of time for this CPU"
"$kiln" compile build-out/lenet.kiln-graph -o build-out/lenet.kiln --input data:1x1x28x28
echo "== run the artifact on a digit (outputs in build-out/)"
"$kiln" run build-out/lenet.kiln --input data=examples/data/digit7.npy --output-dir build-out
echo "== the same with the reference interpreter, for comparison"
"$kiln" interpret build-out/lenet.kiln-graph --input data=examples/data/digit7.npy --output-dir build-out/interpreter
echo "== latency"
"$kiln" bench build-out/lenet.kiln --iters 500
echo "== your own program: examples/run_model.cc links only the runtime"
bazel-bin/examples/run_model build-out/lenet.kiln examples/data/digit7.npy
echo "== picture: build-out/lenet.dot"
"$kiln" viz build-out/lenet.kiln-graph --input data:1x1x28x28 -o build-out/lenet.dot
echo "== train: linear regression on 1000 samples (true w = [2, -3.4], b = 4.2), SGD with wd"
bazel-bin/examples/linear_regression -o build-out/linreg.kiln-graph --write-sample build-out/linreg_x.npy
echo "== compile the trained model and run it on x = (1, 1): expect 2 - 3.4 + 4.2 = 2.8"
"$kiln" compile build-out/linreg.kiln-graph -o build-out/linreg.kiln --input data:1x2
"$kiln" run build-out/linreg.kiln --input data=build-out/linreg_x.npy --output-dir build-out
