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


def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
    """The seed's hand-written batch normalization."""
    if not autograd.is_training():
        X_hat = (X - moving_mean) / nd.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            mean = X.mean(axis=0)
            var = ((X - mean) ** 2).mean(axis=0)
        else:
            mean = X.mean(axis=(0, 2, 3), keepdims=True)
            var = ((X - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)
        X_hat = (X - mean) / nd.sqrt(var + eps)
        moving_mean = momentum * moving_mean + (1.0 - momentum) * mean
        moving_var = momentum * moving_var + (1.0 - momentum) * var
    Y = gamma * X_hat + beta
    return Y, moving_mean, moving_var


def sgd(params, lr, batch_size):
    """The seed's SGD step."""
    for param in params:
        param[:] = param - lr * param.grad / batch_size


def batch_norm_case(shape, stat_shape):
    """The seed's batch_norm on fixed data: training (with gradients of sum(Y * X)
    wrt gamma and beta) then test mode with the updated moving statistics."""
    n = int(np.prod(shape))
    X = nd.array(np.sin(np.arange(n) * 0.7).reshape(shape) * 2 + 0.5)
    gamma = nd.array(np.linspace(0.5, 1.5, int(np.prod(stat_shape))).reshape(stat_shape))
    beta = nd.array(np.linspace(-0.2, 0.3, int(np.prod(stat_shape))).reshape(stat_shape))
    moving_mean = nd.zeros(stat_shape)
    moving_var = nd.ones(stat_shape)
    case = {"x": entry(X), "gamma": entry(gamma), "beta": entry(beta)}
    gamma.attach_grad()
    beta.attach_grad()
    with autograd.record():
        Y, moving_mean, moving_var = batch_norm(X, gamma, beta, moving_mean, moving_var, 1e-5, 0.9)
        loss = (Y * X).sum()
    loss.backward()
    case.update({"train_y": entry(Y), "moving_mean": entry(moving_mean), "moving_var": entry(moving_var),
                 "gamma_grad": entry(gamma.grad), "beta_grad": entry(beta.grad)})
    Y, _, _ = batch_norm(X, gamma, beta, moving_mean, moving_var, 1e-5, 0.9)
    case["test_y"] = entry(Y)
    return case


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
    # MXNet's own BatchNorm in training mode updates its moving statistics in place.
    bx = nd.array(np.cos(np.arange(32) * 0.3).reshape((2, 4, 2, 2)) * 3)
    bgamma = nd.array([0.5, 1.0, 1.5, 2.0])
    bbeta = nd.array([0.1, 0.2, 0.3, 0.4])
    bmean = nd.array([0.1, -0.1, 0.2, 0.0])
    bvar = nd.array([1.0, 2.0, 0.5, 1.5])
    bcase = {"x": entry(bx), "gamma": entry(bgamma), "beta": entry(bbeta),
             "moving_mean_in": entry(bmean), "moving_var_in": entry(bvar)}
    with autograd.record():
        bout = nd.BatchNorm(bx, bgamma, bbeta, bmean, bvar, fix_gamma=False, eps=1e-5, momentum=0.9)
    # MXNet 1.9.1's imperative BatchNorm leaves the arrays it was given unchanged (its
    # moving statistics live in the operator's copies): kiln updates them in place, as its
    # compiled training does, to the moving average of the batch's mean and (biased)
    # variance computed here with MXNet's operators.
    batch_mean = bx.mean(axis=(0, 2, 3))
    batch_var = ((bx - batch_mean.reshape((1, 4, 1, 1))) ** 2).mean(axis=(0, 2, 3))
    bcase.update({"out": entry(bout), "mxnet_moving_mean": entry(bmean), "mxnet_moving_var": entry(bvar),
                  "moving_mean": entry(0.9 * bmean + 0.1 * batch_mean),
                  "moving_var": entry(0.9 * bvar + 0.1 * batch_var)})
    cases["batchnorm_op"] = bcase

    cases["batch_norm_4d"] = batch_norm_case((2, 3, 2, 2), (1, 3, 1, 1))
    cases["batch_norm_2d"] = batch_norm_case((4, 3), (3,))

    # The seed's sgd loop on a linear model, batches in order (no shuffling).
    rows = np.arange(40, dtype=np.float64)
    features = np.stack([np.sin(rows), np.cos(rows * 0.5)], axis=1)
    labels = features @ np.array([2.0, -3.4]) + 4.2
    sx, sy = nd.array(features), nd.array(labels.reshape((-1, 1)))
    sw = nd.array([[0.1], [-0.1]])
    sb = nd.zeros((1,))
    case = {"features": entry(sx), "labels": entry(sy), "w0": entry(sw), "b0": entry(sb), "losses": []}
    sw.attach_grad()
    sb.attach_grad()
    for epoch in range(3):
        for i in range(0, 40, 10):
            Xb, yb = sx[i:i + 10], sy[i:i + 10]
            with autograd.record():
                l = (nd.dot(Xb, sw) + sb - yb.reshape((-1, 1))) ** 2 / 2
            l.backward()
            sgd([sw, sb], 0.1, 10)
        case["losses"].append(float(((nd.dot(sx, sw) + sb - sy) ** 2 / 2).mean().asscalar()))
    case.update({"w": entry(sw), "b": entry(sb)})
    cases["sgd"] = case

    cases["mxnet"] = mx.__version__
    with open(OUT, "w") as f:
        json.dump(cases, f, indent=1)


if __name__ == "__main__":
    main()
