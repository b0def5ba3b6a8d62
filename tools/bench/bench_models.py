#!/opt/kiln-py/bin/python
"""kiln against ONNX Runtime and PyTorch on the exported models, side by side in one run.

Usage: bench_models.py [--models mlp,lenet,...] [--batches 1,8] [--threads 1,2]
                       [--iters N] [--kiln bazel-bin/tools/kiln] [--out build-out/bench]

For each model, batch and thread count: compiles the ONNX file with `kiln compile`
(timed), runs `kiln bench`, then tools/bench/bench_reference.py (ONNX Runtime with all
graph optimizations, PyTorch with OpenBLAS preloaded) at the same thread count, and
prints a Markdown table of median latencies with kiln's ratio to each (below 1: kiln is
faster). Build kiln optimized first: bazel build --config=opt //tools:kiln.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = ["mlp", "lenet", "cnn_bn", "resnet18", "mobilenet_v2", "transformer_block"]


def run_json(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--iters", type=int, default=0, help="0: about 1 s of runs per measurement")
    parser.add_argument("--kiln", default=os.path.join(ROOT, "bazel-bin/tools/kiln"))
    parser.add_argument("--out", default=os.path.join(ROOT, "build-out/bench"))
    args = parser.parse_args()

    models_dir = os.path.join(args.out, "models")
    os.makedirs(models_dir, exist_ok=True)
    models = args.models.split(",")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools/onnx/export_models.py"), models_dir,
                    "--models", args.models], check=True, capture_output=True)

    rows = []
    blas = versions = None
    for model in models:
        onnx_path = os.path.join(models_dir, model + ".onnx")
        for batch in map(int, args.batches.split(",")):
            shape = np.load(os.path.join(models_dir, "%s.b1.input.npy" % model)).shape
            dims = "x".join(str(d) for d in (batch,) + shape[1:])
            artifact = os.path.join(args.out, "%s.b%d.kiln" % (model, batch))
            start = time.perf_counter()
            subprocess.run([args.kiln, "compile", onnx_path, "-o", artifact, "--input", "input:" + dims],
                           check=True, capture_output=True)
            compile_s = time.perf_counter() - start
            for threads in map(int, args.threads.split(",")):
                kiln = run_json([args.kiln, "bench", artifact, "--threads", str(threads), "--iters", "5", "--json"])
                iters = args.iters or max(10, min(2000, int(1000 / max(kiln["median_ms"], 1e-3))))
                kiln = run_json([args.kiln, "bench", artifact, "--threads", str(threads), "--iters", str(iters),
                                 "--json"])
                ref = run_json([sys.executable, os.path.join(HERE, "bench_reference.py"), onnx_path, "--batch",
                                str(batch), "--threads", str(threads), "--iters", str(iters), "--json"])
                blas, versions = ref["blas"], ref["versions"]
                rows.append((model, batch, threads, compile_s, kiln["median_ms"], ref["ort"]["median_ms"],
                             ref["torch"]["median_ms"]))
                print("%s b%d t%d: kiln %.3f ms, ORT %.3f ms, PyTorch %.3f ms" % (
                    model, batch, threads, kiln["median_ms"], ref["ort"]["median_ms"], ref["torch"]["median_ms"]),
                    file=sys.stderr)

    print("PyTorch BLAS: %s; versions: %s\n" % (blas, json.dumps(versions)))
    print("| model | batch | threads | kiln compile s | kiln ms | ONNX Runtime ms | PyTorch ms "
          "| kiln / ORT | kiln / PyTorch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model, batch, threads, compile_s, k, o, t in rows:
        print("| %s | %d | %d | %.2f | %.3f | %.3f | %.3f | %.2f | %.2f |" % (
            model, batch, threads, compile_s, k, o, t, k / o, k / t))


if __name__ == "__main__":
    main()
