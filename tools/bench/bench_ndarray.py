#!/usr/bin/env python3
"""The NDArray API beside MXNet 1.9.1's mx.nd and PyTorch's eager tensors, in one run.

  bazel build --config=opt //tools/bench:ndarray_bench
  /opt/kiln-py/bin/python tools/bench/bench_ndarray.py [--rounds 3] [--write-md PATH]

Measures, for each framework (each in its own process, rounds alternating, best kept):
  - dispatch: --calls calls of add, relu and dot on 8x8 and 256x256 float32 arrays
    (dot on 256x256: a tenth as many), after a warm-up call; MXNet waits for the last
    result (its engine is asynchronous), so every call is computed;
  - the seed's hand-written MLP training loop: 784 -> 256 (relu) -> 10, batch 64,
    log-softmax cross-entropy with one-hot labels, recorded forward, backward, then
    p[:] = p - lr * grad for W1, b1, W2, b2 (PyTorch: p -= lr * p.grad under no_grad,
    grads zeroed); ms per step over --mlp-steps steps after one warm-up step;
  - kiln's first-call compile time of add, relu and dot (a new shape, empty caches).
kiln runs the MLP in lazy mode (the default) and eagerly (KILN_EAGER=1's behaviour).
One thread everywhere: KILN_NUM_THREADS, OMP_NUM_THREADS, torch.set_num_threads.
"""
import argparse
import json
import os
import sys
import time

from timing import run_json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = "/opt/mxvenv/bin/python"
TORCH_PYTHON = "/opt/kiln-py/bin/python"
OPS = ["add", "relu", "dot"]
SIZES = [8, 256]


def calls_for(op, size, calls):
    return calls // 10 if op == "dot" and size == 256 else calls


def mxnet_worker(calls, steps):
    import mxnet as mx
    from mxnet import autograd, nd
    result = {"dispatch": []}
    for op in OPS:
        for size in SIZES:
            a = nd.random.uniform(-1, 1, shape=(size, size))
            b = nd.random.uniform(-1, 1, shape=(size, size))
            fn = {"add": lambda: nd.elemwise_add(a, b), "relu": lambda: nd.relu(a), "dot": lambda: nd.dot(a, b)}[op]
            fn().wait_to_read()
            n = calls_for(op, size, calls)
            start = time.perf_counter()
            for _ in range(n):
                out = fn()
            out.wait_to_read()
            result["dispatch"].append({"op": op, "size": size, "us_per_call": (time.perf_counter() - start) * 1e6 / n})
    batch, features, hidden, classes = 64, 784, 256, 10
    x = nd.random.uniform(0, 1, shape=(batch, features))
    y = nd.one_hot(nd.array([i % classes for i in range(batch)]), classes)
    params = [nd.random.normal(0, 0.01, shape=(features, hidden)), nd.zeros(hidden),
              nd.random.normal(0, 0.01, shape=(hidden, classes)), nd.zeros(classes)]
    for p in params:
        p.attach_grad()

    def step():
        with autograd.record():
            h = nd.relu(nd.broadcast_add(nd.dot(x, params[0]), params[1]))
            out = nd.broadcast_add(nd.dot(h, params[2]), params[3])
            loss = nd.sum(nd.log_softmax(out) * y) * (-1.0 / batch)
        loss.backward()
        for p in params:
            p[:] = p - p.grad * 0.1
        return loss

    first = step().asscalar()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    last = loss.asscalar()
    result["mlp"] = {"ms_per_step": (time.perf_counter() - start) * 1e3 / steps, "first_loss": float(first),
                     "last_loss": float(last)}
    result["version"] = mx.__version__
    return result


def torch_worker(calls, steps):
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    result = {"dispatch": []}
    for op in OPS:
        for size in SIZES:
            a = torch.rand(size, size) * 2 - 1
            b = torch.rand(size, size) * 2 - 1
            fn = {"add": lambda: torch.add(a, b), "relu": lambda: torch.relu(a), "dot": lambda: torch.mm(a, b)}[op]
            fn()
            n = calls_for(op, size, calls)
            start = time.perf_counter()
            for _ in range(n):
                fn()
            result["dispatch"].append({"op": op, "size": size, "us_per_call": (time.perf_counter() - start) * 1e6 / n})
    batch, features, hidden, classes = 64, 784, 256, 10
    x = torch.rand(batch, features)
    y = torch.nn.functional.one_hot(torch.arange(batch) % classes, classes).float()
    params = [torch.randn(features, hidden) * 0.01, torch.zeros(hidden), torch.randn(hidden, classes) * 0.01,
              torch.zeros(classes)]
    for p in params:
        p.requires_grad_(True)

    def step():
        h = torch.relu(x @ params[0] + params[1])
        out = h @ params[2] + params[3]
        loss = (torch.log_softmax(out, dim=1) * y).sum() * (-1.0 / batch)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= p.grad * 0.1
                p.grad.zero_()
        return loss

    first = step().item()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    last = loss.item()
    result["mlp"] = {"ms_per_step": (time.perf_counter() - start) * 1e3 / steps, "first_loss": first,
                     "last_loss": last}
    result["version"] = torch.__version__
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--mlp-steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ndarray-bench", default=os.path.join(ROOT, "bazel-out/k8-opt/bin/tools/bench/ndarray_bench"))
    parser.add_argument("--write-md", metavar="PATH")
    parser.add_argument("--worker", choices=["mxnet", "torch"])
    args = parser.parse_args()
    if args.worker:
        worker = mxnet_worker if args.worker == "mxnet" else torch_worker
        print(json.dumps(worker(args.calls, args.mlp_steps)))
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", KILN_NUM_THREADS="1",
               MXNET_ENGINE_TYPE="NaiveEngine")
    me = os.path.abspath(__file__)
    commands = {
        "kiln lazy": [args.ndarray_bench, "--calls", str(args.calls), "--mlp-steps", str(args.mlp_steps), "--mode",
                      "lazy"],
        "kiln eager": [args.ndarray_bench, "--calls", str(args.calls), "--mlp-steps", str(args.mlp_steps), "--mode",
                       "eager"],
        "MXNet": [MXNET_PYTHON, me, "--worker", "mxnet", "--calls", str(args.calls), "--mlp-steps",
                  str(args.mlp_steps)],
        "PyTorch": [TORCH_PYTHON, me, "--worker", "torch", "--calls", str(args.calls), "--mlp-steps",
                    str(args.mlp_steps)],
    }
    best = {}
    for round_index in range(args.rounds):
        for name, command in commands.items():
            result = run_json(command, env)
            print("round %d %s: mlp %.3f ms/step" % (round_index + 1, name, result["mlp"]["ms_per_step"]),
                  file=sys.stderr)
            if name not in best:
                best[name] = result
                continue
            for entry, kept in zip(result["dispatch"], best[name]["dispatch"]):
                kept["us_per_call"] = min(kept["us_per_call"], entry["us_per_call"])
            if result["mlp"]["ms_per_step"] < best[name]["mlp"]["ms_per_step"]:
                best[name]["mlp"] = result["mlp"]
    lines = ["| call | kiln us | MXNet us | PyTorch us | kiln / MXNet | kiln / PyTorch |", "|---|---:|---:|---:|---:|---:|"]
    for i, entry in enumerate(best["kiln eager"]["dispatch"]):
        kiln = min(entry["us_per_call"], best["kiln lazy"]["dispatch"][i]["us_per_call"])
        mx = best["MXNet"]["dispatch"][i]["us_per_call"]
        pt = best["PyTorch"]["dispatch"][i]["us_per_call"]
        lines.append("| %s %dx%d | %.2f | %.2f | %.2f | %.2f | %.2f |" %
                     (entry["op"], entry["size"], entry["size"], kiln, mx, pt, kiln / mx, kiln / pt))
    lines += ["", "| MLP training loop (batch 64) | ms/step | first loss | last loss | MXNet / this |",
              "|---|---:|---:|---:|---:|"]
    mx_ms = best["MXNet"]["mlp"]["ms_per_step"]
    for name in ["kiln lazy", "kiln eager", "MXNet", "PyTorch"]:
        mlp = best[name]["mlp"]
        lines.append("| %s | %.3f | %.4f | %.4f | %.2f |" %
                     (name, mlp["ms_per_step"], mlp["first_loss"], mlp["last_loss"], mx_ms / mlp["ms_per_step"]))
    first = best["kiln eager"]["first_call_ms"]
    lines += ["", "kiln's first call (compile, new shape, empty caches): " +
              ", ".join("%s %.1f ms" % (op, first[op]) for op in OPS) + ".",
              "Kernel cache in kiln's MLP loop (lazy): %(hits)d hits, %(compiles)d compiles." %
              best["kiln lazy"]["mlp"]["kernel_cache"],
              "Versions: MXNet %s, PyTorch %s; best of %d rounds, 1 thread." %
              (best["MXNet"]["version"], best["PyTorch"]["version"], args.rounds)]
    text = "\n".join(lines)
    print(text)
    if args.write_md:
        with open(args.write_md, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
