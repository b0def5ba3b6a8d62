#!/opt/mxvenv/bin/python
"""Records MXNet 1.9.1 training traces for kiln's suite: a model, its initial parameters,
the batches, and every parameter and auxiliary state after each step of mx.mod.Module's
forward / backward / update.

    /opt/mxvenv/bin/python tools/mxnet/gen_train_traces.py [--out tests/data/mxnet/train_traces]

Writes, per case, CASE-symbol.json (the network, MXNet's JSON) and CASE.npz with
"init/NAME" (initial arguments and auxiliary states), "data/K" and "label/K" (batch K)
and "stepK/NAME" (after step K, from 1), and an index, traces.json, with each case's
optimizer in kiln's spelling (`kiln train --optimizer NAME --opt OPTIONS`). Module gives
no weight decay to parameters whose names end neither in _weight nor in _gamma, as
kiln's ModuleWdMults does.
"""

import argparse
import json
import os

import mxnet as mx
import numpy as np


def mlp():
    x = mx.sym.Variable("data")
    x = mx.sym.FullyConnected(x, num_hidden=32, name="fc1")
    x = mx.sym.Activation(x, act_type="relu", name="relu1")
    x = mx.sym.FullyConnected(x, num_hidden=10, name="fc2")
    return mx.sym.SoftmaxOutput(x, name="softmax")


def cnn_bn():
    x = mx.sym.Variable("data")
    # No bias before BatchNorm: its gradient is zero up to rounding, which would leave
    # nothing but both frameworks' rounding noise to compare.
    x = mx.sym.Convolution(x, kernel=(3, 3), num_filter=6, pad=(1, 1), no_bias=True, name="conv1")
    x = mx.sym.BatchNorm(x, fix_gamma=False, momentum=0.9, name="bn1")
    x = mx.sym.Activation(x, act_type="relu", name="relu1")
    x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool1")
    x = mx.sym.Flatten(x, name="flatten")
    x = mx.sym.FullyConnected(x, num_hidden=10, name="fc1")
    return mx.sym.SoftmaxOutput(x, name="softmax")


# name, network, data shape, optimizer, MXNet's optimizer_params, kiln's options, steps
CASES = [
    ("mlp_sgd_momentum", mlp, (16, 20), "sgd",
     {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.001, "rescale_grad": 1.0 / 16}, 12),
    ("mlp_adam", mlp, (16, 20), "adam",
     {"learning_rate": 0.01, "wd": 0.0001, "rescale_grad": 1.0 / 16}, 12),
    # No wd for NAG: MXNet's Python NAG updates in place (out=weight) and its kernel reads
    # the weight for the decay term after writing it, which kiln does not reproduce.
    ("mlp_nag_clip", mlp, (16, 20), "nag",
     {"learning_rate": 0.1, "momentum": 0.9, "rescale_grad": 1.0 / 16, "clip_gradient": 0.02}, 10),
    ("mlp_rmsprop", mlp, (16, 20), "rmsprop",
     {"learning_rate": 0.002, "rescale_grad": 1.0 / 16}, 10),
    ("cnn_bn_sgd", cnn_bn, (8, 1, 12, 12), "sgd",
     {"learning_rate": 0.05, "momentum": 0.9, "wd": 0.0005, "rescale_grad": 1.0 / 8}, 10),
]

KILN_KEYS = {"learning_rate": "lr"}


def kiln_options(params):
    return ",".join("%s=%r" % (KILN_KEYS.get(k, k), v) for k, v in sorted(params.items()))


def record(name, network, data_shape, optimizer, params, steps, out_dir, rng):
    symbol = network()
    batch = data_shape[0]
    module = mx.mod.Module(symbol, data_names=["data"], label_names=["softmax_label"], context=mx.cpu())
    module.bind(data_shapes=[("data", data_shape)], label_shapes=[("softmax_label", (batch,))], for_training=True)
    module.init_params(mx.init.Xavier(magnitude=2.0))
    module.init_optimizer(optimizer=optimizer, optimizer_params=params)
    arrays = {}
    arg, aux = module.get_params()
    for key, value in list(arg.items()) + list(aux.items()):
        arrays["init/" + key] = value.asnumpy()
    for k in range(steps):
        data = rng.uniform(-1, 1, size=data_shape).astype(np.float32)
        label = rng.randint(0, 10, size=(batch,)).astype(np.float32)
        arrays["data/%d" % k] = data
        arrays["label/%d" % k] = label
        module.forward(mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(label)]), is_train=True)
        module.backward()
        module.update()
        # BatchNorm writes its moving statistics in backward without telling the engine
        # (they are not declared outputs there): wait, or the copy races with the write.
        mx.nd.waitall()
        arg, aux = module.get_params()
        for key, value in list(arg.items()) + list(aux.items()):
            arrays["step%d/%s" % (k + 1, key)] = value.asnumpy()
    symbol.save(os.path.join(out_dir, name + "-symbol.json"))
    np.savez_compressed(os.path.join(out_dir, name + ".npz"), **arrays)
    return {"name": name, "optimizer": optimizer, "options": kiln_options(params), "steps": steps,
            "data_shape": list(data_shape)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/mxnet/train_traces")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    mx.random.seed(42)
    np.random.seed(42)
    rng = np.random.RandomState(7)
    index = [record(*case, args.out, rng) for case in CASES]
    with open(os.path.join(args.out, "traces.json"), "w") as f:
        json.dump({"mxnet": mx.__version__, "cases": index}, f, indent=1)
        f.write("\n")
    print("wrote %d traces to %s" % (len(index), args.out))


if __name__ == "__main__":
    main()
