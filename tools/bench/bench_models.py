#!/opt/kiln-py/bin/python
"""kiln against ONNX Runtime, PyTorch and MXNet on the exported models, side by side in one run.

Usage: bench_models.py [--models mlp,lenet,...] [--batches 1,8] [--threads 1,2]
                       [--graph-opt 0,2] [--iters N] [--kiln bazel-bin/tools/kiln]
                       [--gemm-bench bazel-bin/tools/bench/gemm_bench]
                       [--mxnet-python /opt/mxvenv/bin/python] [--out build-out/bench]
                       [--write-md PATH]

For each model, batch and thread count: compiles the ONNX file with `kiln compile` at
each graph optimization level (LLVM at -O2 throughout; timed), runs `kiln bench` on each,
then tools/bench/bench_reference.py (ONNX Runtime with all graph optimizations, PyTorch
with OpenBLAS preloaded) and, where /opt/mxvenv/bin/python exists (install_mxnet.sh),
tools/bench/bench_mxnet.py (MXNet 1.9.1 with oneDNN: Gluon model-zoo networks of the
same architecture, not the exported weights; only resnet18, resnet50 and mobilenet_v2
have one, the others show "n/a") at the same thread count, and prints Markdown tables:
median latencies with the ratio of kiln's highest level to each anchor (below 1: kiln is
faster), achieved GFLOP/s against the machine's peak, and per model the kernels before
and after fusion and the arena against its lower bound and the no-reuse total (`kiln
inspect --json`). The date (UTC), the CPU and the commit head the output; --write-md
also writes it to a file, to copy into docs/PERFORMANCE.md.

GFLOP/s: each model's FLOPs are 2 x the multiply-adds of its Conv (grouped and depthwise
ones included: a weight of M x C/group x kh x kw), Gemm and MatMul nodes, with the
shapes from onnx.shape_inference at the row's batch; elementwise operators, pooling and
normalization are not counted. The peak is measured once per run: OpenBLAS's best
GFLOP/s on a 2048^3 sgemm at each thread count (gemm_bench --sizes 2048 --json, which
also times kiln's sgemm; OpenBLAS's figure is the reference). Winograd convolutions do
fewer multiplies than counted, so kiln's figure is the direct convolution's equivalent.

Build kiln and gemm_bench optimized first:
bazel build --config=opt //tools:kiln //tools/bench:gemm_bench.
"""

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

from timing import commit, cpu_model, run_json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = ["mlp", "lenet", "cnn_bn", "resnet18", "resnet50", "mobilenet_v2", "transformer_block"]
MXNET_PYTHON = "/opt/mxvenv/bin/python"
PEAK_SIZE = 2048


def mxnet_zoo():
    """bench_mxnet.py's model map, loaded by path (it imports mxnet only inside main)."""
    spec = importlib.util.spec_from_file_location("kiln_bench_mxnet", os.path.join(HERE, "bench_mxnet.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ZOO


def count_gflop(onnx_path, batch):
    """2 * multiply-adds of the model's Conv, Gemm and MatMul nodes at this batch, in
    GFLOP; shapes from ONNX shape inference with the batch axis made concrete."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(onnx_path)
    initializers = {init.name for init in model.graph.initializer}
    for graph_input in model.graph.input:
        if graph_input.name not in initializers:
            graph_input.type.tensor_type.shape.dim[0].dim_value = batch
    graph = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]

    def shape(name, node):
        dims = shapes.get(name)
        if dims is None or None in dims:
            raise RuntimeError("%s: shape inference left %s (an operand of %s node %s) unknown: %s" % (
                onnx_path, name, node.op_type, node.name, dims))
        return dims

    macs = 0
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        outputs = int(np.prod(shape(node.output[0], node)))
        a = shape(node.input[0], node)
        if node.op_type == "Conv":
            # Weight M x C/group x kh x kw: each output takes C/group * kh * kw products,
            # grouped and depthwise convolutions included.
            macs += outputs * int(np.prod(shape(node.input[1], node)[1:]))
        elif node.op_type == "Gemm":
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            macs += outputs * (a[0] if trans_a else a[1])
        else:
            macs += outputs * a[-1]
    return 2 * macs / 1e9


def measure_peak(gemm_bench, threads):
    """{threads: OpenBLAS's best GFLOP/s on a PEAK_SIZE^3 sgemm}, from gemm_bench --json."""
    report = run_json([gemm_bench, "--sizes", str(PEAK_SIZE), "--threads", ",".join(map(str, threads)), "--json"])
    peak = {}
    for result in report["results"]:
        peak[result["threads"]] = max(peak.get(result["threads"], 0.0), result["openblas_gflops"])
    return peak, report


def fmt(value, spec):
    return "n/a" if value is None else spec % value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--graph-opt", default="0,2", help="graph pass levels to compare (kiln compile --graph-opt)")
    parser.add_argument("--iters", type=int, default=0, help="0: about 1 s of runs per measurement")
    parser.add_argument("--kiln", default=os.path.join(ROOT, "bazel-bin/tools/kiln"))
    parser.add_argument("--gemm-bench", default=os.path.join(ROOT, "bazel-bin/tools/bench/gemm_bench"),
                        help="gemm_bench binary for the measured peak (OpenBLAS sgemm %d^3)" % PEAK_SIZE)
    parser.add_argument("--mxnet-python", default=MXNET_PYTHON,
                        help="Python with MXNet 1.9.1 for bench_mxnet.py (tools/bench/install_mxnet.sh)")
    parser.add_argument("--out", default=os.path.join(ROOT, "build-out/bench"))
    parser.add_argument("--write-md", metavar="PATH", help="also write the tables to this Markdown file")
    args = parser.parse_args()

    started = datetime.datetime.now(datetime.timezone.utc)
    models_dir = os.path.join(args.out, "models")
    os.makedirs(models_dir, exist_ok=True)
    models = args.models.split(",")
    thread_counts = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    print("exporting %s" % args.models, file=sys.stderr)
    subprocess.run([sys.executable, os.path.join(ROOT, "tools/onnx/export_models.py"), models_dir,
                    "--models", args.models], check=True, capture_output=True)

    notes = []
    if os.path.exists(args.gemm_bench):
        peak_threads = sorted(set([1, 2] + thread_counts))
        print("measuring peak: %s --sizes %d --threads %s --json" % (
            args.gemm_bench, PEAK_SIZE, ",".join(map(str, peak_threads))), file=sys.stderr)
        peak, gemm_report = measure_peak(args.gemm_bench, peak_threads)
        kiln_sgemm = {r["threads"]: r["kiln_gflops"] for r in gemm_report["results"]}
        notes.append("Measured peak (this run, `gemm_bench --sizes %d`): OpenBLAS sgemm (core %s), best GFLOP/s: %s; "
                     "kiln's sgemm: %s." % (
                         PEAK_SIZE, gemm_report["openblas_core"],
                         ", ".join("%.1f on %d thread%s" % (peak[t], t, "" if t == 1 else "s") for t in sorted(peak)),
                         ", ".join("%.1f" % kiln_sgemm[t] for t in sorted(peak))))
    else:
        peak = {}
        notes.append("Peak not measured: %s not found (bazel build --config=opt //tools/bench:gemm_bench, or "
                     "--gemm-bench PATH); %% of peak is n/a." % args.gemm_bench)
        print("note: " + notes[-1], file=sys.stderr)

    zoo = mxnet_zoo()
    use_mxnet = os.path.exists(args.mxnet_python)
    if not use_mxnet:
        notes.append("MXNet skipped: %s not found (tools/bench/install_mxnet.sh installs MXNet 1.9.1 there, or pass "
                     "--mxnet-python); its columns are n/a." % args.mxnet_python)
        print("note: " + notes[-1], file=sys.stderr)

    levels = [int(level) for level in args.graph_opt.split(",")]
    rows = []
    memory = []
    mxnet_gflop = {}
    blas = versions = None
    for model in models:
        onnx_path = os.path.join(models_dir, model + ".onnx")
        for batch in batches:
            shape = np.load(os.path.join(models_dir, "%s.b1.input.npy" % model)).shape
            dims = "x".join(str(d) for d in (batch,) + shape[1:])
            gflop = count_gflop(onnx_path, batch)
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
            for threads in thread_counts:
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
                mxnet_ms = None
                if use_mxnet and model in zoo:
                    try:
                        mx = run_json([args.mxnet_python, os.path.join(HERE, "bench_mxnet.py"), "--model", model,
                                       "--batch", str(batch), "--threads", str(threads), "--iters", str(iters),
                                       "--json"])
                    except subprocess.CalledProcessError as error:
                        print("warning: bench_mxnet.py failed for %s b%d t%d:\n%s" % (
                            model, batch, threads, error.stderr[-2000:]), file=sys.stderr)
                    else:
                        mxnet_ms = mx["mxnet"]["median_ms"]
                        versions = dict(versions, mxnet=mx["versions"]["mxnet"])
                        mxnet_gflop[(model, batch)] = (mx["zoo_model"], mx["gflop"], gflop)
                rows.append((model, batch, threads, compile_s[levels[-1]], kiln, ref["ort"]["median_ms"],
                             ref["torch"]["median_ms"], mxnet_ms, gflop))
                print("%s b%d t%d: kiln %s ms, ORT %.3f ms, PyTorch %.3f ms, MXNet %s; %.3g GFLOP" % (
                    model, batch, threads, ", ".join("-O%d %.3f" % (l, kiln[l]) for l in levels),
                    ref["ort"]["median_ms"], ref["torch"]["median_ms"], fmt(mxnet_ms, "%.3f ms"), gflop),
                    file=sys.stderr)

    for (model, batch), (zoo_model, mx_gflop, onnx_gflop) in sorted(mxnet_gflop.items()):
        if batch == min(b for m, b in mxnet_gflop if m == model) and abs(mx_gflop / onnx_gflop - 1) > 0.01:
            notes.append("MXNet's %s does %.2f GFLOP at batch %d, the ONNX model %.2f: compare its milliseconds with "
                         "that in mind." % (zoo_model, mx_gflop, batch, onnx_gflop))
    notes.append("GFLOP: 2 x the multiply-adds of the Conv, Gemm and MatMul nodes at the row's batch (elementwise "
                 "operators, pooling and normalization not counted); kiln's GFLOP/s is at graph -O%d; %% of peak: "
                 "kiln's GFLOP/s over the measured peak at the row's thread count. MXNet: Gluon model-zoo networks of "
                 "the same architecture (%s; not the exported weights), n/a where the zoo has none." % (
                     levels[-1], ", ".join(zoo[m][0] for m in zoo)))

    best = levels[-1]
    out = []
    # One paragraph each (Markdown joins consecutive lines).
    for paragraph in ["Measured %s UTC on %s, commit %s; kiln `%s`." % (
                          started.strftime("%Y-%m-%d %H:%M"), cpu_model(), commit(), args.kiln),
                      "PyTorch BLAS: %s; versions: %s" % (blas, json.dumps(versions))] + notes:
        out += [paragraph, ""]
    out.append("| model | batch | threads | kiln compile s | " + " | ".join("kiln graph -O%d ms" % l for l in levels) +
               " | ONNX Runtime ms | PyTorch ms | MXNet ms | kiln / ORT | kiln / PyTorch | kiln / MXNet | GFLOP | "
               "kiln GFLOP/s | ORT GFLOP/s | % of peak |")
    out.append("|---|---:|---:|---:|" + "---:|" * len(levels) + "---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model, batch, threads, compile_seconds, kiln, o, t, m, gflop in rows:
        kiln_gflops = gflop / (kiln[best] * 1e-3)
        percent = 100 * kiln_gflops / peak[threads] if threads in peak else None
        out.append("| %s | %d | %d | %.2f | %s | %.3f | %.3f | %s | %.2f | %.2f | %s | %s | %.1f | %.1f | %s |" % (
            model, batch, threads, compile_seconds, " | ".join("%.3f" % kiln[l] for l in levels), o, t,
            fmt(m, "%.3f"), kiln[best] / o, kiln[best] / t, fmt(None if m is None else kiln[best] / m, "%.2f"),
            "%.3g" % gflop, kiln_gflops, gflop / (o * 1e-3), fmt(percent, "%.1f%%")))
    out.append("")
    out.append("| model (batch 1, graph -O%d) | kernels before fusion | kernels | arena bytes | lower bound | "
               "arena / lower bound | no-reuse bytes |" % best)
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for model, before, after, arena, bound, no_reuse in memory:
        out.append("| %s | %d | %d | %d | %d | %.3f | %d |" % (model, before, after, arena, bound,
                                                              arena / max(1, bound), no_reuse))
    text = "\n".join(out) + "\n"
    print(text, end="")
    if args.write_md:
        with open(args.write_md, "w") as md:
            md.write(text)
        print("wrote %s" % args.write_md, file=sys.stderr)


if __name__ == "__main__":
    main()
