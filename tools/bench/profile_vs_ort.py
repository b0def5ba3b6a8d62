#!/opt/kiln-py/bin/python
"""Where kiln loses or wins against ONNX Runtime, layer by layer, on one model.

Usage: profile_vs_ort.py MODEL.onnx ARTIFACT.kiln [--threads 1] [--iters 30] [--input INPUT.npy]

Runs `kiln bench ARTIFACT --profile` (time per fused kernel) and ONNX Runtime with its
own profiler (SessionOptions.enable_profiling; all graph optimizations, sequential, the
same thread count), then sums both by the block their node names start with (ResNet's
`layer2/layer2.0`, a stem's `relu`, ...: ONNX names survive into kiln's fused kernels and
ORT's NCHWc nodes) and prints the blocks with kiln's excess first. Both profilers add
their own overhead: compare the blocks, not the totals with `kiln bench` medians.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def block(name):
    """The first two parts of a node name: /layer2/layer2.0/conv1/Conv -> layer2/0. A fused
    kernel is named by its last member, the node whose output it writes, as ONNX Runtime
    names its fused nodes by their output (a stem's Conv+Relu is "relu" in both)."""
    parts = [p for p in name.split("+")[-1].split("/") if p]
    if len(parts) >= 2 and parts[0].startswith("layer"):
        return parts[0] + "/" + parts[1].split(".")[-1]
    return parts[0] if parts else name


def kiln_profile(kiln, artifact, threads, iters):
    out = subprocess.run([kiln, "bench", artifact, "--threads", str(threads), "--iters", str(iters), "--profile"],
                         check=True, capture_output=True, text=True).stdout
    times = {}
    for line in out.splitlines():
        match = re.match(r"\s+([0-9.]+) ms\s+[0-9.]+%\s+(\S+)", line)
        if match:
            times[match.group(2)] = float(match.group(1))
    return times


def ort_profile(model, x, threads, iters):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as work:
        options.profile_file_prefix = os.path.join(work, "ort")
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        for _ in range(iters):
            session.run(None, feed)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    per_node = collections.defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_node[event["name"][: -len("_kernel_time")]].append(event["dur"] / 1e3)
    return {name: float(np.median(durations)) for name, durations in per_node.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("artifact")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--input", help="default: MODEL.b1.input.npy beside the model")
    parser.add_argument("--kiln", default=os.path.join(ROOT, "bazel-bin/tools/kiln"))
    args = parser.parse_args()
    x = np.load(args.input or args.model.replace(".onnx", ".b1.input.npy"))
    kiln = kiln_profile(args.kiln, args.artifact, args.threads, args.iters)
    ort = ort_profile(args.model, x, args.threads, args.iters)
    kiln_blocks, ort_blocks = collections.defaultdict(float), collections.defaultdict(float)
    for name, ms in kiln.items():
        kiln_blocks[block(name)] += ms
    for name, ms in ort.items():
        ort_blocks[block(name)] += ms
    print("per-node sums, %d thread%s: kiln %.2f ms, ONNX Runtime %.2f ms" % (
        args.threads, "" if args.threads == 1 else "s", sum(kiln.values()), sum(ort.values())))
    print("%-24s %9s %9s %9s" % ("block", "kiln ms", "ORT ms", "kiln-ORT"))
    for name in sorted(set(kiln_blocks) | set(ort_blocks), key=lambda b: ort_blocks[b] - kiln_blocks[b]):
        print("%-24s %9.3f %9.3f %+9.3f" % (name, kiln_blocks[name], ort_blocks[name],
                                             kiln_blocks[name] - ort_blocks[name]))


if __name__ == "__main__":
    main()
