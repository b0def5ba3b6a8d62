#!/opt/kiln-py/bin/python
"""Training throughput: kiln's compiled training step beside PyTorch and MXNet 1.9.1, side by side in one run.

Usage: bench_training.py [--models mlp,lenet,resnet18] [--batches mlp=64,lenet=64,resnet18=32]
                         [--threads 1,2] [--steps mlp=300,lenet=30,resnet18=3]
                         [--warmup mlp=20,lenet=3,resnet18=1]
                         [--rounds 3] [--image-size 224] [--profile 12]
                         [--train-bench bazel-out/k8-opt/bin/tools/bench/train_bench]
                         [--mxnet-python /opt/mxvenv/bin/python] [--write-md PATH]

For each model and thread count, each round runs the three frameworks one after the
other (the order turns every round), on the same model, batch and thread count, with
synthetic data (uniform inputs, labels spread over the classes):

  kiln     tools/bench/train_bench (a kiln::TrainStep: forward, backward and update in one
           compiled executor), SGD lr 0.01, momentum 0.9, wd 1e-4;
  PyTorch  the same network in torch.nn (torchvision's resnet18), CrossEntropyLoss,
           torch.optim.SGD(lr=0.01, momentum=0.9, weight_decay=1e-4),
           torch.set_num_threads(T), OpenBLAS preloaded as bench_reference.py does but
           with OPENBLAS_NUM_THREADS=1 (--torch-blas-threads: its pthreads beside
           torch's OpenMP threads oversubscribe the cores);
  MXNet    the same network in Gluon (the model zoo's resnet18_v1), hybridized with
           static_alloc and static_shape, SoftmaxCrossEntropyLoss, gluon.Trainer('sgd',
           lr 0.01, momentum 0.9, wd 1e-4), OMP_NUM_THREADS=T, MXNET_ENGINE_TYPE=
           NaiveEngine (operators run synchronously in the calling thread; --mxnet-engine).

Each framework times --steps steps after --warmup steps; its figure for the row is the
best of the rounds' samples/s (steps x batch / wall time of the timed steps). The ratio
is kiln's samples/s over the faster anchor's (above 1: kiln is faster; the goal is 1.2).
kiln's memory: the training arena as planned, without reuse (every intermediate and
scratch buffer its own), the planner's lower bound, and the parameters with their
optimizer and auxiliary states. --profile K adds kiln's K slowest kernels per model (a
profiled run at the first thread count: train_bench --profile).

Models (per sample): mlp 1x28x28 -> 256 relu -> 128 relu -> 10; lenet conv 5x5x32 pad 2,
BatchNorm, relu, max pool 2, conv 5x5x64, BatchNorm, relu, max pool 2, fc 256 relu, fc 10;
resnet18 ResNet-18 v1 on 3 x S x S (S = --image-size), 1000 classes.

The workers are this file too (--worker torch|mxnet), run by the two Pythons.
Build kiln first: bazel build --config=opt //tools/bench:train_bench.
"""

import argparse
import datetime
import json
import os
import sys
import time

from timing import commit, cpu_model, run_json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = ["mlp", "lenet", "resnet18"]
DEFAULT_BATCH = {"mlp": 64, "lenet": 64, "resnet18": 32}
DEFAULT_STEPS = {"mlp": 300, "lenet": 30, "resnet18": 3}
DEFAULT_WARMUP = {"mlp": 20, "lenet": 3, "resnet18": 1}
CLASSES = {"mlp": 10, "lenet": 10, "resnet18": 1000}
MXNET_PYTHON = "/opt/mxvenv/bin/python"
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"


def sample_shape(model, image_size):
    return (3, image_size, image_size) if model == "resnet18" else (1, 28, 28)


def timed_steps(step, warmup, steps, batch):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    return {"samples_per_s": steps * batch / seconds, "ms_per_step": seconds * 1e3 / steps}


# ----------------------------------------------------------------------------- PyTorch

def torch_worker(args):
    # OpenBLAS for torch's sgemm, as tools/bench/bench_reference.py does, but single-
    # threaded: torch's own OpenMP threads (torch.set_num_threads) run beside OpenBLAS's
    # pthreads, and with OPENBLAS_NUM_THREADS=2 on 2 cores a training step of the MLP ran
    # 4 times slower than with 1 (LeNet 2 times); --torch-blas-threads sets it.
    blas_threads = str(args.torch_blas_threads)
    if os.path.exists(OPENBLAS) and (OPENBLAS not in os.environ.get("LD_PRELOAD", "").split() or
                                     os.environ.get("OPENBLAS_NUM_THREADS") != blas_threads):
        env = dict(os.environ)
        others = [p for p in env.get("LD_PRELOAD", "").split() if not os.path.basename(p).startswith("libblas.so")]
        env["LD_PRELOAD"] = " ".join([OPENBLAS] + others)
        env["OPENBLAS_NUM_THREADS"] = blas_threads
        env["OMP_NUM_THREADS"] = str(args.threads)
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    if args.model == "mlp":
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                            nn.Linear(128, 10))
    elif args.model == "lenet":
        net = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(32, 64, 5), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(64 * 5 * 5, 256), nn.ReLU(), nn.Linear(256, 10))
    else:
        import torchvision
        net = torchvision.models.resnet18(num_classes=1000)
    net.train()
    shape = (args.batch,) + sample_shape(args.model, args.image_size)
    x = torch.rand(shape)
    y = torch.arange(args.batch) % CLASSES[args.model]
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()

    result = timed_steps(step, args.warmup, args.steps, args.batch)
    result["version"] = torch.__version__
    with open("/proc/self/maps") as maps:
        result["blas"] = ", ".join(sorted({os.path.realpath(line.split()[-1]) for line in maps
                                           if "/libblas.so" in line})) or "none"
    return result


# ----------------------------------------------------------------------------- MXNet

def mxnet_worker(args):
    # Read when libmxnet loads or its engine starts: before the import.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["MXNET_ENGINE_TYPE"] = args.mxnet_engine
    os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", "1")
    import mxnet as mx
    from mxnet import autograd, gluon
    from mxnet.gluon import nn

    mx.random.seed(0)
    if args.model == "mlp":
        net = nn.HybridSequential()
        net.add(nn.Flatten(), nn.Dense(256, activation="relu"), nn.Dense(128, activation="relu"), nn.Dense(10))
    elif args.model == "lenet":
        net = nn.HybridSequential()
        net.add(nn.Conv2D(32, 5, padding=2), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(2),
                nn.Conv2D(64, 5), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(2), nn.Flatten(),
                nn.Dense(256, activation="relu"), nn.Dense(10))
    else:
        from mxnet.gluon.model_zoo import vision
        net = vision.get_model("resnet18_v1", pretrained=False, classes=1000)
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    net.hybridize(static_alloc=True, static_shape=True)
    shape = (args.batch,) + sample_shape(args.model, args.image_size)
    x = mx.nd.random.uniform(shape=shape)
    y = mx.nd.array([i % CLASSES[args.model] for i in range(args.batch)])
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4})

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(args.batch)
        mx.nd.waitall()

    result = timed_steps(step, args.warmup, args.steps, args.batch)
    result["version"] = mx.__version__
    result["engine"] = args.mxnet_engine
    return result


# ----------------------------------------------------------------------------- driver

def per_model(text, default, cast=int):
    """'mlp=64,resnet18=32' or a single value for every model."""
    values = dict(default)
    for part in text.split(",") if text else []:
        if "=" in part:
            name, value = part.split("=", 1)
            values[name] = cast(value)
        else:
            values = {model: cast(part) for model in values}
    return values


def mb(value):
    return "%.1f" % (value / 2**20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="", help="N, or model=N,... (default %s)" % DEFAULT_BATCH)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", default="", help="timed steps: N, or model=N,... (default %s)" % DEFAULT_STEPS)
    parser.add_argument("--warmup", default="", help="untimed steps first: N, or model=N,... (default %s)" %
                        DEFAULT_WARMUP)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three; each reports its best")
    parser.add_argument("--image-size", type=int, default=224, help="resnet18's input side")
    parser.add_argument("--profile", type=int, default=12, help="kiln's slowest kernels per model (0: none)")
    parser.add_argument("--train-bench", default=os.path.join(ROOT, "bazel-out/k8-opt/bin/tools/bench/train_bench"))
    parser.add_argument("--mxnet-python", default=MXNET_PYTHON)
    parser.add_argument("--mxnet-engine", default="NaiveEngine")
    parser.add_argument("--torch-blas-threads", type=int, default=1, help="OPENBLAS_NUM_THREADS for PyTorch")
    parser.add_argument("--frameworks", default="kiln,torch,mxnet")
    parser.add_argument("--write-md", metavar="PATH")
    # Worker mode (run by the driver under each framework's Python).
    parser.add_argument("--worker", choices=["torch", "mxnet"])
    parser.add_argument("--model")
    parser.add_argument("--batch", type=int)
    args = parser.parse_args()

    if args.worker:
        args.threads = int(args.threads)
        args.steps = int(args.steps)
        args.warmup = int(args.warmup)
        result = torch_worker(args) if args.worker == "torch" else mxnet_worker(args)
        print(json.dumps(result))
        return 0

    started = datetime.datetime.now(datetime.timezone.utc)
    models = args.models.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    batches = per_model(args.batches, DEFAULT_BATCH)
    steps = per_model(args.steps, DEFAULT_STEPS)
    warmup = per_model(args.warmup, DEFAULT_WARMUP)
    frameworks = args.frameworks.split(",")
    if "mxnet" in frameworks and not os.path.exists(args.mxnet_python):
        print("note: %s not found (tools/bench/install_mxnet.sh); MXNet skipped" % args.mxnet_python, file=sys.stderr)
        frameworks.remove("mxnet")
    if not os.path.exists(args.train_bench):
        sys.exit("%s not found: bazel build --config=opt //tools/bench:train_bench" % args.train_bench)

    def command(framework, model, t):
        common = ["--batch", str(batches[model]), "--threads", str(t), "--steps", str(steps[model]),
                  "--warmup", str(warmup[model])]
        if framework == "kiln":
            return [args.train_bench, "--model", model, "--image-size", str(args.image_size)] + common
        python = sys.executable if framework == "torch" else args.mxnet_python
        return [python, os.path.abspath(__file__), "--worker", framework, "--model", model,
                "--image-size", str(args.image_size), "--mxnet-engine", args.mxnet_engine,
                "--torch-blas-threads", str(args.torch_blas_threads)] + common

    rows = []
    versions = {}
    blas = None
    for model in models:
        for t in threads:
            best = {}
            kiln = None
            for r in range(args.rounds):
                order = frameworks[r % len(frameworks):] + frameworks[:r % len(frameworks)]
                for framework in order:
                    cmd = command(framework, model, t)
                    print("%s %s threads %d round %d: %s" % (framework, model, t, r + 1, " ".join(cmd)),
                          file=sys.stderr)
                    result = run_json(cmd)
                    print("  %.1f samples/s, %.2f ms/step" % (result["samples_per_s"], result["ms_per_step"]),
                          file=sys.stderr)
                    if framework == "kiln" and (kiln is None or result["samples_per_s"] > kiln["samples_per_s"]):
                        kiln = result
                    if framework != "kiln":
                        versions[framework] = result.get("version")
                        blas = result.get("blas", blas)
                    best[framework] = max(best.get(framework, 0.0), result["samples_per_s"])
            rows.append({"model": model, "batch": batches[model], "threads": t, "steps": steps[model],
                         "best": best, "kiln": kiln})

    profiles = {}
    if args.profile > 0 and "kiln" in frameworks:
        for model in models:
            cmd = command("kiln", model, threads[0]) + ["--profile", str(args.profile)]
            print("kiln profile: " + " ".join(cmd), file=sys.stderr)
            profiles[model] = run_json(cmd)

    lines = []
    lines.append("Measured %s on %s, commit %s; kiln `%s`." % (
        started.strftime("%Y-%m-%d %H:%M UTC"), cpu_model(), commit(), os.path.relpath(args.train_bench, ROOT)))
    lines.append("")
    lines.append("Versions: %s; PyTorch BLAS: %s (OPENBLAS_NUM_THREADS=%d); MXNet engine: %s; %d rounds, each "
                 "framework's best." % (json.dumps(versions), blas, args.torch_blas_threads, args.mxnet_engine,
                                        args.rounds))
    lines.append("")
    names = {"kiln": "kiln", "torch": "PyTorch", "mxnet": "MXNet"}
    anchors = [f for f in frameworks if f != "kiln"]
    header = ["model", "batch", "threads", "steps"] + ["%s samples/s" % names[f] for f in frameworks]
    if "kiln" in frameworks and anchors:
        header.append("kiln / faster")
    header += ["kiln ms/step", "kiln compile s", "arena planned MB", "arena no reuse MB", "lower bound MB",
               "params + states MB"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---|" + "---:|" * (len(header) - 1))
    for row in rows:
        cells = [row["model"], str(row["batch"]), str(row["threads"]), str(row["steps"])]
        cells += ["%.1f" % row["best"][f] for f in frameworks]
        k = row["kiln"]
        if k is not None and anchors:
            cells.append("%.2f" % (row["best"]["kiln"] / max(row["best"][f] for f in anchors)))
        if k is not None:
            cells += ["%.2f" % k["ms_per_step"], "%.2f" % k["compile_s"], mb(k["arena_bytes"]),
                      mb(k["no_reuse_bytes"]), mb(k["lower_bound_bytes"]), mb(k["param_bytes"])]
        else:
            cells += ["n/a"] * 6
        lines.append("| " + " | ".join(cells) + " |")
    for model, profile in profiles.items():
        lines.append("")
        lines.append("kiln's slowest kernels, %s, batch %d, %d thread%s (%.1f ms/step profiled; %s):" % (
            model, profile["batch"], profile["threads"], "" if profile["threads"] == 1 else "s",
            profile["profile_ms_per_step"],
            ", ".join("%s %.1f" % (op["op"], op["ms"]) for op in profile["profile_ops"][:6])))
        lines.append("")
        lines.append("| kernel | operator | ms/step |")
        lines.append("|---|---|---:|")
        for kernel in profile["profile_kernels"]:
            lines.append("| %s | %s | %.2f |" % (kernel["node"], kernel["op"], kernel["ms"]))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write_md:
        with open(args.write_md, "w") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
