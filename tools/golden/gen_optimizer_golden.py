#!/usr/bin/env python3
"""Records MXNet 1.9.1's fused optimizer updates for kiln's optimizer operators.

Run with /opt/mxvenv/bin/python (MXNet 1.9.1):

    /opt/mxvenv/bin/python tools/golden/gen_optimizer_golden.py [--out tests/data/mxnet/optimizer_ops]

For every case below it runs MXNet's operator (sgd_update, sgd_mom_update, nag_mom_update,
adam_update, rmsprop_update, rmspropalex_update, contrib adamw_update) once on seeded
random inputs and writes, under OUT/<case>/, the inputs as in_<name>.npy (in kiln's input
order: weight, grad, the states, lr and, for adamw_update, eta, each of shape (1,)) and
what MXNet computed as out_<name>.npy (the weight, then the states MXNet updated in
place), plus OUT/index.json listing the cases with kiln's operator, MXNet's, and the
attributes. tests/train/optimizer_ops_test.cc checks kiln's reference against these.

MXNet writes the weight to a copy of it here, not to the weight itself: kiln's operators
are functional, and nag_mom_update with out=weight (as MXNet's NAG optimizer calls it)
reads the weight it has just overwritten for its momentum's weight decay.

MXNet's attributes are float32: lr, and the attributes of the float64 cases, are chosen
exact in float32, so that kiln's float64 arithmetic sees the same values. Deterministic:
same MXNet, same files.
"""

import argparse
import json
import os
import shutil

# MXNet's own CPU kernels, one thread, synchronous engine: reproducible values.
os.environ["MXNET_MKLDNN_ENABLED"] = "0"
os.environ["MXNET_ENGINE_TYPE"] = "NaiveEngine"
os.environ["OMP_NUM_THREADS"] = "1"

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPE = (3, 5)

# kiln's operator: its states (inputs after the gradient, outputs after the weight), its
# rates (inputs of one element after the states) and its float attributes.
COMMON = ["wd", "rescale_grad", "clip_gradient"]
ADAM = ["beta1", "beta2", "epsilon"]
OPS = {
    "sgd_update": ([], ["lr"], COMMON),
    "sgd_mom_update": (["mom"], ["lr"], ["momentum"] + COMMON),
    "nag_mom_update": (["mom"], ["lr"], ["momentum"] + COMMON),
    "adam_update": (["mean", "var"], ["lr"], ADAM + COMMON),
    "adamw_update": (["mean", "var"], ["lr", "eta"], ADAM + COMMON),
    "rmsprop_update": (["n"], ["lr"], ["gamma1", "epsilon"] + COMMON + ["clip_weights"]),
    "rmspropalex_update": (["n", "g", "delta"], ["lr"], ["gamma1", "gamma2", "epsilon"] + COMMON + ["clip_weights"]),
}

# Attributes exact in float32, for the float64 cases.
EXACT = {
    "momentum": 0.875, "wd": 0.0078125, "rescale_grad": 0.75, "clip_gradient": 1.5, "beta1": 0.875,
    "beta2": 0.998046875, "epsilon": 2.0 ** -20, "gamma1": 0.9375, "gamma2": 0.875, "clip_weights": 2.0,
}


def cases():
    """(op, description, attrs, rates, dtype) for every case."""
    result = []
    for op in OPS:
        stepped = op in ("sgd_mom_update", "nag_mom_update")
        rms = op.startswith("rmsprop")
        lr = 0.1 if op.startswith(("sgd", "nag")) else 0.01
        rates = [lr, 0.7] if op == "adamw_update" else [lr]
        extra = {"momentum": 0.9} if stepped else {}
        result.append((op, "defaults", {}, rates, "float32"))
        result.append((op, "wd and rescale_grad", dict(extra, wd=0.05, rescale_grad=0.37), rates, "float32"))
        clipped = dict(extra, wd=0.1, rescale_grad=0.5, clip_gradient=1.0)
        if rms:
            clipped["clip_weights"] = 0.9
        result.append((op, "clipping", clipped, rates, "float32"))
        if op in ("adam_update", "adamw_update"):
            result.append((op, "beta1, beta2, epsilon", {"beta1": 0.8, "beta2": 0.99, "epsilon": 1e-3}, rates,
                           "float32"))
        if rms:
            tuned = {"gamma1": 0.8, "epsilon": 1e-4, "wd": 0.01}
            if op == "rmspropalex_update":
                tuned["gamma2"] = 0.5
            result.append((op, "gamma and epsilon", tuned, rates, "float32"))
        if stepped:
            result.append((op, "momentum 0.5, clip_gradient 0", {"momentum": 0.5, "clip_gradient": 0.0}, rates,
                           "float32"))
        if op == "adamw_update":
            result.append((op, "rescale_grad 0 skips the update", {"rescale_grad": 0.0}, rates, "float32"))
        exact_rates = [0.0625, 0.75] if op == "adamw_update" else [0.0625]
        result.append((op, "float64", {k: EXACT[k] for k in OPS[op][2]}, exact_rates, "float64"))
    return result


def inputs(rng, op, dtype):
    """Seeded weight, grad and states, in kiln's order; states in their valid ranges."""
    states = OPS[op][0]
    weight = rng.randn(*SHAPE)
    grad = 3 * rng.randn(*SHAPE)  # wide enough that clipping at 1 changes some elements
    values = {name: rng.randn(*SHAPE) for name in states}
    if "var" in values:
        values["var"] = np.abs(values["var"])
    if op == "rmsprop_update":
        values["n"] = np.abs(values["n"])
    if op == "rmspropalex_update":
        # n >= g^2 keeps n - g^2 + epsilon positive after the update.
        values["n"] = np.abs(values["n"]) + values["g"] ** 2
    return [a.astype(dtype) for a in [weight, grad] + [values[name] for name in states]]


def run_mxnet(op, arrays, attrs, rates, dtype):
    """MXNet's outputs: the weight (written to a copy of it, which a skipped update
    leaves as it was), then the updated states."""
    nd = [mx.nd.array(a, dtype=dtype) for a in arrays]
    out = nd[0].copy()
    if op == "adamw_update":
        kwargs = dict(attrs)
        rescale = kwargs.pop("rescale_grad", 1.0)
        mx.nd.contrib.adamw_update(*nd, rescale_grad=rescale, lr=rates[0], eta=rates[1], out=out, **kwargs)
    else:
        getattr(mx.nd, op)(*nd, lr=rates[0], out=out, **attrs)
    return [out.asnumpy()] + [a.asnumpy() for a in nd[2:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "mxnet", "optimizer_ops"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    rng = np.random.RandomState(2024)
    index = []
    counts = {}
    for op, desc, attrs, rates, dtype in cases():
        arrays = inputs(rng, op, dtype)
        outputs = run_mxnet(op, arrays, attrs, rates, dtype)
        states, rate_names, _ = OPS[op]
        input_names = ["weight", "grad"] + states + rate_names
        # MXNet rounds lr and eta to float32; the inputs hold what it used.
        arrays += [np.array([np.float32(r)], dtype=dtype) for r in rates]
        name = "%s_%d" % (op, counts.get(op, 0))
        counts[op] = counts.get(op, 0) + 1
        folder = os.path.join(args.out, name)
        os.makedirs(folder)
        for n, a in zip(input_names, arrays):
            np.save(os.path.join(folder, "in_%s.npy" % n), a)
        for n, a in zip(["weight"] + states, outputs):
            np.save(os.path.join(folder, "out_%s.npy" % n), a)
        index.append({"name": name, "op": op, "mxnet_op": "_adamw_update" if op == "adamw_update" else op,
                      "desc": desc, "dtype": dtype, "attrs": attrs, "inputs": input_names,
                      "outputs": ["weight"] + states})
    with open(os.path.join(args.out, "index.json"), "w") as f:
        # One case a line: small, and a regenerated file diffs by case.
        f.write('{"mxnet": %s, "shape": %s, "cases": [\n' % (json.dumps(mx.__version__), json.dumps(list(SHAPE))))
        f.write(",\n".join(json.dumps(case) for case in index))
        f.write("\n]}\n")
    print("wrote %d cases to %s" % (len(index), args.out))


if __name__ == "__main__":
    main()
