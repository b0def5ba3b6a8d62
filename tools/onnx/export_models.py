#!/opt/kiln-py/bin/python
"""Exports seeded PyTorch models to ONNX (opset 17) with reference inputs/outputs.

Usage: export_models.py OUTDIR [--models mlp,lenet,...]

For each model NAME it writes OUTDIR/NAME.onnx (input "input", output "output", batch axis
"batch") and, for batch 1 and 8, NAME.b{B}.input.npy and NAME.b{B}.torch.npy so C++ tests
can compare against PyTorch without Python. Each file is checked with onnx.checker and run
in ONNX Runtime against PyTorch. Without --models it exports DEFAULT_MODELS, the six that
tests/onnx/onnx_models_test.cc checks; resnet50 (torchvision's ResNet-50, 98 MB of
weights) only when named (--models resnet50, as tools/bench/bench_models.py and
bench_startup.py do), to keep the test fast. No downloads: all weights come from
torch.manual_seed. bench_reference.py imports build_model() from here, so both see
identical models.
"""

import argparse
import collections
import math
import os
import sys
import time
import warnings
import zlib

import numpy as np
import torch
from torch import nn

OPSET = 17
BATCHES = (1, 8)
TOLERANCE = 1e-4


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.layers(x)


class LeNet5(nn.Module):
    """LeCun et al. 1998: the 28x28 digit is padded to 32x32 by the first convolution."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
            nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class CnnBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(32 * 8 * 8, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class PrimitiveLayerNorm(nn.Module):
    """LayerNorm spelled out so the exporter emits ReduceMean/Sub/Pow/Sqrt/Div, not LayerNormalization."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(dim))
        self.bias = nn.Parameter(0.1 * torch.randn(dim))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        centered = x - mean
        var = centered.pow(2).mean(-1, keepdim=True)
        return centered / torch.sqrt(var + self.eps) * self.weight + self.bias


def erf_gelu(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class TransformerBlock(nn.Module):
    """Pre-LN encoder block; attention written with MatMul/Softmax/Transpose/Reshape."""

    def __init__(self, seq=16, d_model=64, heads=4, d_ff=256):
        super().__init__()
        self.seq, self.heads, self.d_head = seq, heads, d_model // heads
        self.ln1 = PrimitiveLayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = PrimitiveLayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)

    def split_heads(self, x):
        # -1 keeps the batch dynamic while the Reshape target stays a constant.
        return x.reshape(-1, self.seq, self.heads, self.d_head).transpose(1, 2)

    def attention(self, x):
        q, k, v = self.split_heads(self.q(x)), self.split_heads(self.k(x)), self.split_heads(self.v(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_head)
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.proj(context.transpose(1, 2).reshape(-1, self.seq, self.heads * self.d_head))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.ff2(erf_gelu(self.ff1(self.ln2(x))))


def _torchvision(name):
    import torchvision
    return getattr(torchvision.models, name)(weights=None)


# name -> (constructor, per-sample input shape)
MODELS = {
    "mlp": (MLP, (784,)),
    "lenet": (LeNet5, (1, 28, 28)),
    "cnn_bn": (CnnBn, (3, 32, 32)),
    "resnet18": (lambda: _torchvision("resnet18"), (3, 224, 224)),
    "mobilenet_v2": (lambda: _torchvision("mobilenet_v2"), (3, 224, 224)),
    "transformer_block": (TransformerBlock, (16, 64)),
    "resnet50": (lambda: _torchvision("resnet50"), (3, 224, 224)),
}
# What runs without --models: the test suite's models. ResNet-50 is left out to keep the
# test fast (exporting and checking it takes seconds and writes about 100 MB).
DEFAULT_MODELS = [name for name in MODELS if name != "resnet50"]


def _calibrate_batchnorm(model, sample_shape, batches=3, batch_size=4):
    """Gives BatchNorm non-trivial affine parameters and running statistics taken from
    random batches in train mode, so that eval-mode BN is not the identity."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
    # A cumulative average makes the stats those of the batches seen, not a blend with
    # the (0, 1) initial values; one thread keeps the reductions' order fixed.
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch_size, *sample_shape))
    torch.set_num_threads(threads)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum


def build_model(name):
    """Returns (eval-mode model, per-sample input shape); identical on every call."""
    constructor, sample_shape = MODELS[name]
    torch.manual_seed(0)
    model = constructor()
    _calibrate_batchnorm(model, sample_shape)
    return model.eval(), sample_shape


def reference_input(name, batch):
    rng = np.random.default_rng([zlib.crc32(name.encode()), batch])
    return rng.standard_normal((batch, *MODELS[name][1]), dtype=np.float32)


def export(model, sample_shape, path):
    # torch warns about PRESERVE plus constant folding even for an eval-mode model, where
    # folding is safe.
    warnings.filterwarnings("ignore", message="It is recommended that constant folding be turned off")
    kwargs = {}
    if "dynamo" in torch.onnx.export.__code__.co_varnames:
        kwargs["dynamo"] = False
    torch.onnx.export(
        model, torch.zeros(1, *sample_shape), path,
        opset_version=OPSET, do_constant_folding=True,
        # PRESERVE with an eval-mode model exports inference semantics but skips the
        # eval peephole that folds BatchNormalization into Conv, so BN reaches the importer.
        training=torch.onnx.TrainingMode.PRESERVE,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        **kwargs)


def export_one(name, outdir):
    import onnx
    import onnxruntime as ort

    start = time.perf_counter()
    model, sample_shape = build_model(name)
    path = os.path.join(outdir, name + ".onnx")
    export(model, sample_shape, path)
    onnx.checker.check_model(path, full_check=True)
    graph = onnx.load(path)
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    ops = collections.Counter(node.op_type for node in graph.graph.node)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    diffs = {}
    for batch in BATCHES:
        x = reference_input(name, batch)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        np.save(os.path.join(outdir, f"{name}.b{batch}.input.npy"), x)
        np.save(os.path.join(outdir, f"{name}.b{batch}.torch.npy"), expected)
        actual = session.run(["output"], {"input": x})[0]
        if actual.shape != expected.shape:
            raise RuntimeError(f"{name} b{batch}: ORT shape {actual.shape} != torch {expected.shape}")
        diffs[batch] = float(np.max(np.abs(actual - expected)))
    return {
        "name": name, "opset": opset, "ir": graph.ir_version, "bytes": os.path.getsize(path),
        "ops": ops, "diffs": diffs, "seconds": time.perf_counter() - start,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated subset of: " + ", ".join(MODELS)
                        + " (default: all but resnet50)")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error("unknown model(s): " + ", ".join(unknown))
    os.makedirs(args.outdir, exist_ok=True)
    # One thread: the reference outputs are then bit-for-bit reproducible.
    torch.set_num_threads(1)

    results, failed = [], []
    for name in names:
        result = export_one(name, args.outdir)
        results.append(result)
        if max(result["diffs"].values()) > TOLERANCE:
            failed.append(name)

    print(f"{'model':<18} {'opset':>5} {'IR':>3} {'size':>9} {'nodes':>5} "
          + " ".join(f"{'diff b%d' % b:>9}" for b in BATCHES) + f" {'time':>6}  ops")
    for r in results:
        size = f"{r['bytes'] / 1e6:.2f} MB" if r["bytes"] >= 1e5 else f"{r['bytes'] / 1e3:.1f} kB"
        ops = " ".join(f"{op}:{count}" for op, count in sorted(r["ops"].items()))
        print(f"{r['name']:<18} {r['opset']:>5} {r['ir']:>3} {size:>9} {sum(r['ops'].values()):>5} "
              + " ".join(f"{r['diffs'][b]:>9.2e}" for b in BATCHES)
              + f" {r['seconds']:>5.1f}s  {ops}")
    if failed:
        print(f"error: ONNX Runtime differs from PyTorch by more than {TOLERANCE}: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
