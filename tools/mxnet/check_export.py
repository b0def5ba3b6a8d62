#!/opt/mxvenv/bin/python
"""Loads MXNet model files kiln wrote (`kiln export MODEL --mxnet -o PREFIX`) in real
MXNet 1.9.1 and compares its output with an expected one.

    /opt/mxvenv/bin/python tools/mxnet/check_export.py PREFIX INPUT.npy EXPECTED.npy [--data NAME] [--tol 1e-4]

Loads PREFIX-symbol.json with mx.sym.load and PREFIX-0000.params with mx.nd.load
(arg:/aux: prefixes), binds them as Module.load does, runs one inference and prints the
largest difference; exits 1 when it exceeds --tol.
"""

import argparse
import sys

import mxnet as mx
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix")
    parser.add_argument("input")
    parser.add_argument("expected")
    parser.add_argument("--data", default=None, help="the data input's name (default: the first argument)")
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()
    symbol = mx.sym.load(args.prefix + "-symbol.json")
    saved = mx.nd.load(args.prefix + "-0000.params")
    arg_params = {k[4:]: v for k, v in saved.items() if k.startswith("arg:")}
    aux_params = {k[4:]: v for k, v in saved.items() if k.startswith("aux:")}
    x = np.load(args.input)
    data = args.data or next(n for n in symbol.list_arguments() if n not in arg_params)
    label_names = [n for n in symbol.list_arguments() if n.endswith("label")]
    module = mx.mod.Module(symbol, data_names=[data], label_names=label_names or None, context=mx.cpu())
    module.bind(data_shapes=[(data, x.shape)], for_training=False)
    module.set_params(arg_params, aux_params)
    module.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)
    out = module.get_outputs()[0].asnumpy()
    expected = np.load(args.expected)
    diff = float(np.max(np.abs(out - expected))) if out.shape == expected.shape else float("inf")
    print("%s: MXNet %s loaded kiln's files; output %s, max |MXNet - expected| %.3g" % (
        args.prefix, mx.__version__, out.shape, diff))
    sys.exit(0 if diff <= args.tol else 1)


if __name__ == "__main__":
    main()
