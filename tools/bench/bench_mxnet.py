#!/opt/mxvenv/bin/python
"""MXNet 1.9.1 anchor: median latency of a Gluon model-zoo network of the same architecture.

Usage: bench_mxnet.py --model resnet18|resnet50|mobilenet_v2 [--batch N] [--threads T]
                      [--iters K] [--engine NaiveEngine] [--backend MKLDNN|none] [--json]

Runs with /opt/mxvenv/bin/python (tools/bench/install_mxnet.sh makes it: MXNet 1.9.1,
numpy<1.24; no onnx there). The network is Gluon's model zoo's, built with
pretrained=False (no download) and initialized with Xavier weights from a fixed seed:
the same architecture as the model export_models.py writes, NOT its weights, which does
not matter for latency. The names map as follows:

  resnet18     -> resnet18_v1      (same as torchvision's resnet18)
  resnet50     -> resnet50_v1      (torchvision's resnet50 is "v1.5": the stride-2 of each
                                    first bottleneck sits on the 3x3 convolution; Gluon's v1
                                    puts it on the 1x1 one, so it does about 6% fewer
                                    multiply-adds: 7.72 against 8.18 GFLOP at batch 1;
                                    the JSON's "gflop" counts Gluon's network)
  mobilenet_v2 -> mobilenetv2_1.0  (its first bottleneck, expansion 1, keeps the 1x1
                                    expansion convolution that torchvision's leaves out:
                                    0.63 against 0.60 GFLOP; the classifier is a 1x1
                                    convolution instead of a Linear layer)

mlp, lenet, cnn_bn and transformer_block have no zoo equivalent: bench_models.py shows
"n/a" for them.

Threads and engine are set through the environment before mxnet is imported:
OMP_NUM_THREADS=T (the operators' and oneDNN's OpenMP threads; the 1.9.1 wheel is built
with oneDNN, "MKLDNN") and MXNET_ENGINE_TYPE=NaiveEngine, which runs every operator
synchronously in the calling thread: one inference stream, no engine worker threads
competing with the T compute threads for the cores, as kiln and ONNX Runtime run.
(--engine ThreadedEnginePerDevice, MXNet's default, is there for comparison; with one
stream of dependent operators it has nothing to overlap: ResNet-18 at batch 1, 1
thread took the same time with either.) The network is hybridized with static_alloc and
static_shape and backend="MKLDNN" (--backend): Gluon partitions the cached graph for
oneDNN, fusing each convolution with its BatchNorm, ReLU and residual add
(_sg_mkldnn_conv) and the dense layer (_sg_mkldnn_fully_connected); about 5% faster
than the unfused graph on ResNet-18. (MXNET_SUBGRAPH_BACKEND in the environment does not
reach a Gluon CachedOp in 1.9.1; the backend argument does.) Then it is warmed up, and
each timed run waits for its output (wait_to_read).
"""

import argparse
import collections
import json
import os
import sys
import time

from timing import measure  # tools/bench/timing.py, beside this script

# export_models.py name -> (Gluon model-zoo name, per-sample input shape)
ZOO = {
    "resnet18": ("resnet18_v1", (3, 224, 224)),
    "resnet50": ("resnet50_v1", (3, 224, 224)),
    "mobilenet_v2": ("mobilenetv2_1.0", (3, 224, 224)),
}


def count_gflop(mx, net, shape):
    """2 * multiply-adds of the Convolution and FullyConnected nodes (elementwise ops
    ignored), from the network's symbol and its inferred shapes."""
    import numpy as np

    sym = net(mx.sym.var("data"))
    internals = sym.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(data=shape)
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    shapes.update(zip(internals.list_arguments(), arg_shapes))
    nodes = json.loads(sym.tojson())["nodes"]
    macs = 0
    for node in nodes:
        if node["op"] not in ("Convolution", "FullyConnected"):
            continue
        out = shapes[node["name"] + "_output"]
        weight = shapes[nodes[node["inputs"][1][0]]["name"]]  # (out, in / groups, kh, kw) or (out, in)
        macs += int(np.prod(out)) * int(np.prod(weight[1:]))
    return 2 * macs / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="one of: " + ", ".join(ZOO))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--engine", default="NaiveEngine",
                        help="MXNET_ENGINE_TYPE (NaiveEngine, ThreadedEnginePerDevice, ...)")
    parser.add_argument("--backend", default="MKLDNN",
                        help="Gluon subgraph backend for hybridize(); 'none': the unfused graph")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.model not in ZOO:
        parser.error(f"no Gluon model-zoo equivalent for {args.model}; known: {', '.join(ZOO)}")

    # Read when libmxnet (and its OpenMP runtime) loads or when the engine starts: set
    # them before the import.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["MXNET_ENGINE_TYPE"] = args.engine
    import mxnet as mx
    import numpy as np
    from mxnet.gluon.model_zoo import vision

    zoo_name, sample_shape = ZOO[args.model]
    shape = (args.batch,) + sample_shape
    mx.random.seed(0)
    net = vision.get_model(zoo_name, pretrained=False)
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    gflop = count_gflop(mx, net, shape)
    backend = None if args.backend.lower() == "none" else args.backend
    net.hybridize(backend=backend, static_alloc=True, static_shape=True)
    x = mx.nd.array(np.random.default_rng(0).standard_normal(shape, dtype=np.float32), ctx=mx.cpu())

    def run():
        net(x).wait_to_read()

    start = time.perf_counter()
    run()  # builds (and partitions) the cached graph
    first_ms = (time.perf_counter() - start) * 1e3
    ops = collections.Counter(node["op"] for node in json.loads(net._cached_graph[1].tojson())["nodes"]
                              if node["op"] != "null")
    features = mx.runtime.Features()
    result = {
        "model": args.model, "zoo_model": zoo_name, "batch": args.batch, "threads": args.threads,
        "iters": args.iters, "gflop": gflop, "first_run_ms": first_ms,
        "versions": {"mxnet": mx.__version__, "numpy": np.__version__},
        "mkldnn": features.is_enabled("MKLDNN"),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MXNET_ENGINE_TYPE")},
        "backend": backend, "ops": dict(ops),
        "mxnet": measure(run, args.iters),
    }
    if args.json:
        print(json.dumps(result))
        return
    t = result["mxnet"]
    print(f"{args.model} ({zoo_name}, {gflop:.2f} GFLOP) batch={args.batch} threads={args.threads} "
          f"iters={args.iters} engine={args.engine} backend={backend} mkldnn={result['mkldnn']}")
    print("  ops: " + " ".join(f"{op}:{n}" for op, n in sorted(ops.items())))
    print(f"  mxnet min {t['min_ms']:8.3f} ms  median {t['median_ms']:8.3f} ms  p90 {t['p90_ms']:8.3f} ms"
          f"  (first run {first_ms:.1f} ms)")


if __name__ == "__main__":
    sys.exit(main())
