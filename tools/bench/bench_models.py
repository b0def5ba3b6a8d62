#!/opt/kiln-py/bin/python
"""kiln against ONNX Runtime and PyTorch on the exported models, side by side in one run.

Usage: bench_models.py [--models mlp,lenet,...] [--batches 1,8] [--threads 1,2]
                       [--graph-opt 0,2] [--iters N] [--kiln bazel-bin/tools/kiln]
                       [--out build-out/bench]

For each model, batch and thread count: compiles the ONNX file with `kiln compile` at
each graph optimization level (LLVM at -O2 throughout; timed), runs `kiln bench` on each,
then tools/bench/bench_reference.py (ONNX Runtime with all graph optimizations, PyTorch
with OpenBLAS preloaded) at the same thread count, and prints Markdown tables: median
latencies with the ratio of kiln's highest level to each anchor (below 1: kiln is
faster), and per model the kernels before and after fusion and the arena against its
lower bound and the no-reuse total (`kiln inspect --json`). Build kiln optimized first:
bazel build --config=opt //tools:kiln.
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
    parser.add_argument("--graph-opt", default="0,2", help="graph pass levels to compare (kiln compile --graph-opt)")
    parser.add_argument("--iters", type=int, default=0, help="0: about 1 s of runs per measurement")
    parser.add_argument("--kiln", default=os.path.join(ROOT, "bazel-bin/tools/kiln"))
    parser.add_argument("--out", default=os.path.join(ROOT, "build-out/bench"))
    args = parser.parse_args()

    models_dir = os.path.join(args.out, "models")
    os.makedirs(models_dir, exist_ok=True)
    models = args.models.split(",")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools/onnx/export_models.py"), models_dir,
                    "--models", args.models], check=True, capture_output=True)

    levels = [int(level) for level in args.graph_opt.split(",")]
    rows = []
    memory = []
    blas = versions = None
    for model in models:
        onnx_path = os.path.join(models_dir, model + ".onnx")
        for batch in map(int, args.batches.split(",")):
            shape = np.load(os.path.join(models_dir, "%s.b1.input.npy" % model)).shape
            dims = "x".join(str(d) for d in (batch,) + shape[1:])
            artifacts = {}
            compile_s = {}
            for level in levels:
                artifact = os.path.join(args.out, "%s.b%d.g%d.kiln" % (model, batch, level))
                start = time.perf_counter()
                subprocess.run([args.kiln, "compile", onnx_path, "-o", artifact, "--input", "input:" + dims,
                                "--graph-opt", str(level)], check=True, capture_output=True)
                compile_s[level] = time.perf_counter() - start
                artifacts[level] = artifact
            if batch == 1:
                report = run_json([args.kiln, "inspect", artifacts[levels[-1]], "--json"])
                memory.append((model, report["kernels_before_fusion"], report["kernels"], report["arena_bytes"],
                               report["arena_lower_bound_bytes"], report["no_reuse_bytes"]))
            for threads in map(int, args.threads.split(",")):
                probe = run_json([args.kiln, "bench", artifacts[levels[-1]], "--threads", str(threads), "--iters", "5",
                                  "--json"])
                iters = args.iters or max(10, min(2000, int(1000 / max(probe["median_ms"], 1e-3))))
                kiln = {}
                for level in levels:
                    kiln[level] = run_json([args.kiln, "bench", artifacts[level], "--threads", str(threads), "--iters",
                                            str(iters), "--json"])["median_ms"]
                ref = run_json([sys.executable, os.path.join(HERE, "bench_reference.py"), onnx_path, "--batch",
                                str(batch), "--threads", str(threads), "--iters", str(iters), "--json"])
                blas, versions = ref["blas"], ref["versions"]
                rows.append((model, batch, threads, compile_s[levels[-1]], kiln, ref["ort"]["median_ms"],
                             ref["torch"]["median_ms"]))
                print("%s b%d t%d: kiln %s ms, ORT %.3f ms, PyTorch %.3f ms" % (
                    model, batch, threads, ", ".join("-O%d %.3f" % (l, kiln[l]) for l in levels),
                    ref["ort"]["median_ms"], ref["torch"]["median_ms"]), file=sys.stderr)

    best = levels[-1]
    print("PyTorch BLAS: %s; versions: %s\n" % (blas, json.dumps(versions)))
    print("| model | batch | threads | kiln compile s | " + " | ".join("kiln graph -O%d ms" % l for l in levels) +
          " | ONNX Runtime ms | PyTorch ms | kiln / ORT | kiln / PyTorch |")
    print("|---|---:|---:|---:|" + "---:|" * len(levels) + "---:|---:|---:|---:|")
    for model, batch, threads, compile_seconds, kiln, o, t in rows:
        print("| %s | %d | %d | %.2f | %s | %.3f | %.3f | %.2f | %.2f |" % (
            model, batch, threads, compile_seconds, " | ".join("%.3f" % kiln[l] for l in levels), o, t,
            kiln[best] / o, kiln[best] / t))
    print("\n| model (batch 1, graph -O%d) | kernels before fusion | kernels | arena bytes | lower bound | "
          "arena / lower bound | no-reuse bytes |" % best)
    print("|---|---:|---:|---:|---:|---:|---:|")
    for model, before, after, arena, bound, no_reuse in memory:
        print("| %s | %d | %d | %d | %d | %.3f | %d |" % (model, before, after, arena, bound,
                                                         arena / max(1, bound), no_reuse))

if __name__ == "__main__":
    main()
