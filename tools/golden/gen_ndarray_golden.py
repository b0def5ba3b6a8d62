"""Writes MXNet 1.9.1's values for the NDArray API tests (tests/ndarray/ndarray_test.cc).

Run with the project's MXNet venv:
  /opt/mxvenv/bin/python tools/golden/gen_ndarray_golden.py
It writes tests/data/mxnet/ndarray/golden.json: each case's inputs and outputs, flat
float lists with their shapes, so the C++ test needs no NumPy reader.
"""
import json
import os

import mxnet as mx
import numpy as np
from mxnet import autograd, nd

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "mxnet", "ndarray", "golden.json")


def entry(array):
    value = array.asnumpy() if isinstance(array, nd.NDArray) else np.asarray(array)
    return {"shape": list(value.shape), "values": [float(v) for v in value.astype(np.float64).ravel()]}


def main():
    cases = {}

    # The seed's first autograd example: 2 * dot(x.T, x) and its gradient 4x.
    x = nd.arange(4).reshape((4, 1))
    x.attach_grad()
    with autograd.record():
        y = 2 * nd.dot(x.T, x)
    y.backward()
    cases["dot_grad"] = {"x": entry(x), "y": entry(y), "grad": entry(x.grad)}

    # The seed's convolution: 1x1x3x3 data, a 2x2 kernel, bias 1, stride 2, pad 1.
    data = nd.arange(9).reshape((1, 1, 3, 3))
    weight = nd.arange(4).reshape((1, 1, 2, 2))
    bias = nd.array([1])
    conv = nd.Convolution(data, weight, bias, kernel=(2, 2), num_filter=1, stride=(2, 2), pad=(1, 1))
    cases["convolution"] = {"data": entry(data), "weight": entry(weight), "bias": entry(bias), "out": entry(conv)}

    # The seed's pooling: arange(18) as (1, 2, 3, 3), kernel 2, stride 1.
    pool_data = nd.arange(18).reshape((1, 2, 3, 3))
    cases["pooling"] = {
        "data": entry(pool_data),
        "max": entry(nd.Pooling(pool_data, pool_type="max", kernel=(2, 2), stride=(1, 1))),
        "avg": entry(nd.Pooling(pool_data, pool_type="avg", kernel=(2, 2), stride=(1, 1))),
    }

    # A dense layer by hand, relu(dot(x, w) + b), with gradients of the sum.
    dx = nd.arange(6).reshape((2, 3)) / 10
    w = nd.arange(12).reshape((3, 4)) / 10 - 0.5
    b = nd.array([0.1, -0.2, 0.3, -0.4])
    w.attach_grad()
    b.attach_grad()
    with autograd.record():
        out = nd.relu(nd.dot(dx, w) + b)
        loss = nd.sum(out)
    loss.backward()
    cases["dense"] = {
        "x": entry(dx), "w": entry(w), "b": entry(b), "out": entry(out),
        "w_grad": entry(w.grad), "b_grad": entry(b.grad),
    }

    # grad_req "add": two backward calls accumulate.
    ax = nd.array([1, 2, 3])
    ax.attach_grad(grad_req="add")
    for _ in range(2):
        with autograd.record():
            ay = nd.sum(ax * ax)
        ay.backward()
    cases["grad_add"] = {"x": entry(ax), "grad": entry(ax.grad)}

    # Broadcasting arithmetic and comparisons.
    a = nd.arange(6).reshape((2, 3))
    c = nd.arange(3).reshape((1, 3)) + 1
    cases["broadcast"] = {
        "a": entry(a), "b": entry(c),
        "add": entry(a + c), "sub": entry(a - c), "mul": entry(a * c), "div": entry(a / c),
        "scalar": entry(2 - a * 3 + 1 / (a + 1)), "neg": entry(-a),
        "gt": entry(a > c), "eq": entry(a == c), "le": entry(a <= c), "ne": entry(a != c),
    }
    cases["mxnet"] = mx.__version__
    with open(OUT, "w") as f:
        json.dump(cases, f, indent=1)


if __name__ == "__main__":
    main()
