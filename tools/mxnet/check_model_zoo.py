#!/opt/mxvenv/bin/python
"""Gluon model-zoo networks, exported by HybridBlock.export, compiled by kiln and checked
against MXNet 1.9.1's own output (pretrained=False: seeded random weights, no downloads).

    /opt/mxvenv/bin/python tools/mxnet/check_model_zoo.py [--kiln bazel-bin/tools/kiln]
        [--models resnet18_v1,...] [--out build-out/mxnet_zoo] [--tol 1e-4]

For each network: initialize (Xavier, seeded), give BatchNorm's moving statistics values
away from 0 and 1, hybridize, run one batch in MXNet, export PREFIX-symbol.json and
PREFIX-0000.params, `kiln compile` them, `kiln run` the artifact on the same input and
compare (largest absolute difference relative to the output's largest magnitude). The
files are large (ResNet-50: 100 MB), so they stay in --out, out of git. Prints one line
per network and a Markdown table; exits 1 when any network fails or exceeds --tol.
"""

import argparse
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
from mxnet.gluon.model_zoo import vision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_models import set_moving_statistics  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = ["resnet18_v1", "resnet50_v1", "resnet18_v2", "mobilenet1.0", "mobilenetv2_1.0", "vgg11", "vgg11_bn",
          "squeezenet1.0", "squeezenet1.1", "densenet121", "alexnet", "inceptionv3"]


def export(name, out, rng):
    net = vision.get_model(name, pretrained=False)
    net.initialize(mx.init.Xavier(magnitude=2))
    size = 299 if name.startswith("inception") else 224
    x = rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    net(mx.nd.array(x))
    set_moving_statistics(net, rng, 0.2)
    net.hybridize()
    y = net(mx.nd.array(x)).asnumpy()
    prefix = os.path.join(out, name)
    net.export(prefix, epoch=0)
    np.save(prefix + ".input.npy", x)
    np.save(prefix + ".output.npy", y)
    return prefix, x, y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln", default=os.path.join(ROOT, "bazel-bin/tools/kiln"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", default=os.path.join(ROOT, "build-out", "mxnet_zoo"))
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    mx.random.seed(5)
    rng = np.random.RandomState(5)
    rows, failed = [], False
    for name in args.models.split(","):
        prefix, x, y = export(name, args.out, rng)
        artifact = prefix + ".kiln"
        shape = "x".join(str(d) for d in x.shape)
        compiled = subprocess.run([args.kiln, "compile", prefix + "-symbol.json", "--params", prefix + "-0000.params",
                                   "-o", artifact, "--input", "data:" + shape], capture_output=True, text=True)
        if compiled.returncode != 0:
            rows.append((name, "compile failed", compiled.stderr.strip().splitlines()[-1][:200]))
            failed = True
            print("%s: compile failed: %s" % (name, compiled.stderr.strip()[:300]), file=sys.stderr)
            continue
        run_dir = prefix + ".kiln-out"
        ran = subprocess.run([args.kiln, "run", artifact, "--input", "data=" + prefix + ".input.npy", "--output-dir",
                              run_dir], capture_output=True, text=True)
        if ran.returncode != 0:
            rows.append((name, "run failed", ran.stderr.strip()[:200]))
            failed = True
            continue
        out = np.load(os.path.join(run_dir, sorted(os.listdir(run_dir))[0]))
        diff = float(np.max(np.abs(out - y))) / max(float(np.max(np.abs(y))), 1e-30)
        ok = diff <= args.tol
        failed = failed or not ok
        rows.append((name, "ok" if ok else "MISMATCH", "%.2e" % diff))
        print("%s: %s, max |kiln - MXNet| / max |MXNet| = %.2e" % (name, "ok" if ok else "MISMATCH", diff),
              file=sys.stderr)
    print("| network | result | largest difference (relative) |")
    print("|---|---|---|")
    for row in rows:
        print("| %s | %s | %s |" % row)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
