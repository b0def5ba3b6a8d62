#!/opt/mxvenv/bin/python
"""Small MXNet models with seeded random weights, saved as MXNet saves them, for kiln's
import tests (tests/data/mxnet/models/): NAME-symbol.json, NAME-0000.params, and
NAME.input.npy / NAME.output.npy, MXNet 1.9.1's own output at inference (predict mode).

- mlp, lenet, cnn: Symbol-API networks saved by Module.save_checkpoint (SoftmaxOutput
  heads, BatchNorm and Dropout in the CNN);
- gluon_convnet: a Gluon HybridBlock (conv, BatchNorm, relu, pooling, dense) saved by
  HybridBlock.export.

No downloads; deterministic (seeded).

    /opt/mxvenv/bin/python tools/mxnet/gen_models.py [OUT_DIR]
"""

import os
import shutil
import sys

import mxnet as mx
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mlp():
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=32, name="fc1")
    net = mx.sym.Activation(net, act_type="relu", name="relu1")
    net = mx.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax"), (2, 20)


def lenet():
    data = mx.sym.var("data")
    net = mx.sym.Convolution(data, kernel=(5, 5), num_filter=6, name="conv1")
    net = mx.sym.Activation(net, act_type="tanh", name="tanh1")
    net = mx.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2), name="pool1")
    net = mx.sym.Convolution(net, kernel=(5, 5), num_filter=16, name="conv2")
    net = mx.sym.Activation(net, act_type="tanh", name="tanh2")
    net = mx.sym.Pooling(net, pool_type="avg", kernel=(2, 2), stride=(2, 2), name="pool2")
    net = mx.sym.Flatten(net, name="flatten")
    net = mx.sym.FullyConnected(net, num_hidden=32, name="fc1")
    net = mx.sym.Activation(net, act_type="tanh", name="tanh3")
    net = mx.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax"), (2, 1, 28, 28)


def cnn():
    data = mx.sym.var("data")
    net = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=8, no_bias=True, name="conv1")
    net = mx.sym.BatchNorm(net, fix_gamma=False, name="bn1")
    net = mx.sym.Activation(net, act_type="relu", name="relu1")
    net = mx.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2), name="pool1")
    net = mx.sym.Dropout(net, p=0.3, name="drop1")
    net = mx.sym.Convolution(net, kernel=(3, 3), pad=(1, 1), num_filter=16, name="conv2")
    net = mx.sym.BatchNorm(net, name="bn2")
    net = mx.sym.Activation(net, act_type="relu", name="relu2")
    net = mx.sym.Pooling(net, global_pool=True, pool_type="avg", kernel=(1, 1), name="gap")
    net = mx.sym.Flatten(net, name="flatten")
    net = mx.sym.FullyConnected(net, num_hidden=5, name="fc")
    return mx.sym.SoftmaxOutput(net, name="softmax"), (2, 3, 16, 16)


def set_moving_statistics(net, rng, mean_range):
    """BatchNorm's moving statistics of a Gluon network away from 0 and 1 (variances in
    [0.5, 1.5], means in [-mean_range, mean_range]), so that inference BatchNorm is
    tested. Shared with check_model_zoo.py."""
    for name, param in net.collect_params().items():
        if name.endswith("running_var"):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape).astype(np.float32)))
        elif name.endswith("running_mean"):
            param.set_data(mx.nd.array(rng.uniform(-mean_range, mean_range, param.shape).astype(np.float32)))


def save_module(out, name, symbol, shape, rng):
    module = mx.mod.Module(symbol, data_names=["data"], label_names=["softmax_label"], context=mx.cpu())
    module.bind(data_shapes=[("data", shape)], label_shapes=[("softmax_label", (shape[0],))], for_training=False)
    module.init_params(mx.init.Xavier(rnd_type="gaussian", magnitude=2))
    # Moving statistics away from 0 and 1, so that inference BatchNorm is tested.
    args, auxs = module.get_params()
    for key in auxs:
        values = rng.uniform(0.5, 1.5, auxs[key].shape) if "var" in key else rng.uniform(-0.5, 0.5, auxs[key].shape)
        auxs[key] = mx.nd.array(values.astype(np.float32))
    module.set_params(args, auxs)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    module.forward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.zeros((shape[0],))]), is_train=False)
    y = module.get_outputs()[0].asnumpy()
    module.save_checkpoint(os.path.join(out, name), 0)
    np.save(os.path.join(out, name + ".input.npy"), x)
    np.save(os.path.join(out, name + ".output.npy"), y)


def gluon_convnet(out, rng):
    from mxnet.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(2),
            nn.Conv2D(16, 3, strides=2), nn.Activation("relu"), nn.GlobalAvgPool2D(), nn.Dense(4))
    net.initialize(mx.init.Xavier())
    shape = (2, 3, 12, 12)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    net(mx.nd.array(x))  # shapes known
    set_moving_statistics(net, rng, 0.5)
    net.hybridize()
    y = net(mx.nd.array(x)).asnumpy()
    net.export(os.path.join(out, "gluon_convnet"), epoch=0)
    np.save(os.path.join(out, "gluon_convnet.input.npy"), x)
    np.save(os.path.join(out, "gluon_convnet.output.npy"), y)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "mxnet", "models")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    mx.random.seed(3)
    rng = np.random.RandomState(3)
    for name, build in (("mlp", mlp), ("lenet", lenet), ("cnn", cnn)):
        symbol, shape = build()
        save_module(out, name, symbol, shape, rng)
    gluon_convnet(out, rng)
    print("wrote", out)


if __name__ == "__main__":
    main()
