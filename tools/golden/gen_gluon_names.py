#!/usr/bin/env python3
"""Records the parameter names and shapes MXNet 1.9.1's Gluon gives a few networks, for
kiln's Gluon API (train/gluon).

Run with /opt/mxvenv/bin/python (MXNet 1.9.1):

    /opt/mxvenv/bin/python tools/golden/gen_gluon_names.py [--out tests/data/mxnet/gluon_names.json]

Each net is built inside a fresh mx.name.NameManager (kiln's test calls
NameManager::Reset() before each), in the order listed, and records: the top block's
prefix; collect_params() in order, each name with its shape (0: not known yet, deferred);
the keys save_parameters writes (_collect_params_with_prefix) with the name each stands
for; and, for nets given an input shape, the shapes once a forward pass has inferred them.
tests/train/gluon_names_test.cc builds the same nets with kiln and compares. The output is
deterministic.
"""

import argparse
import json
import os

os.environ["MXNET_ENGINE_TYPE"] = "NaiveEngine"
os.environ["OMP_NUM_THREADS"] = "1"

import mxnet as mx  # noqa: E402
from mxnet.gluon import nn  # noqa: E402


def mlp_scoped():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(8, activation="relu"))
        net.add(nn.Dense(4))
    return [net], (2, 5)


def mlp_unscoped():
    net = nn.Sequential()
    net.add(nn.Dense(8, activation="relu"), nn.Dense(4, in_units=8))
    return [net], (2, 5)


def cnn():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(6, 3, padding=1))
        net.add(nn.BatchNorm())
        net.add(nn.Activation("relu"))
        net.add(nn.MaxPool2D())
        net.add(nn.Conv2D(8, (3, 3), in_channels=6, use_bias=False))
        net.add(nn.AvgPool2D())
        net.add(nn.GlobalAvgPool2D())
        net.add(nn.Flatten())
        net.add(nn.Dense(10, in_units=8))
        net.add(nn.Dropout(0.5))
        net.add(nn.LeakyReLU(0.1))
        net.add(nn.BatchNorm(scale=False, center=False, in_channels=10))
    return [net], (2, 3, 8, 8)


def user_prefixes():
    fc = nn.Dense(3, prefix="fc_")
    net = nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(nn.Dense(2, prefix="out_"))
        net.add(nn.Dense(2))
        net.add(nn.Dense(2, prefix=""))
    return [fc, net], None


def counters():
    nets = [nn.HybridSequential(), nn.HybridSequential(), nn.Dense(2), nn.Dense(2), nn.Embedding(10, 4)]
    return nets, None


class MyBlock(nn.HybridBlock):
    def __init__(self, **kwargs):
        super(MyBlock, self).__init__(**kwargs)
        with self.name_scope():
            self.fc1 = nn.Dense(6)
            self.body = nn.HybridSequential()
            with self.body.name_scope():
                self.body.add(nn.Dense(5, activation="tanh"))
                self.body.add(nn.Dense(5))
            self.fc2 = nn.Dense(3)

    def hybrid_forward(self, F, x):
        return self.fc2(self.body(self.fc1(x)))


def custom_block():
    return [MyBlock()], (2, 7)


def shared_params():
    first = nn.Dense(4, in_units=3)
    second = nn.Dense(4, in_units=3, params=first.collect_params())
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(4, in_units=3))
        net.add(nn.Dense(4, in_units=3, params=net[0].collect_params()))
    return [first, second, net], None


NETS = [mlp_scoped, mlp_unscoped, cnn, user_prefixes, counters, custom_block, shared_params]


def describe(block):
    return {
        "prefix": block.prefix,
        "params": [[name, list(p.shape)] for name, p in block.collect_params().items()],
        "structured": [[key, p.name] for key, p in block._collect_params_with_prefix().items()],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/mxnet/gluon_names.json")
    args = parser.parse_args()
    cases = []
    for make in NETS:
        with mx.name.NameManager():
            blocks, input_shape = make()
            case = {"name": make.__name__, "blocks": [describe(b) for b in blocks]}
            if input_shape is not None:
                net = blocks[0]
                net.initialize()
                net(mx.nd.ones(input_shape))
                case["input_shape"] = list(input_shape)
                case["inferred"] = [[name, list(p.shape)] for name, p in net.collect_params().items()]
        cases.append(case)
    with open(args.out, "w") as f:
        json.dump({"mxnet": mx.__version__, "nets": cases}, f, indent=1)
        f.write("\n")
    print("wrote %d nets to %s" % (len(cases), args.out))


if __name__ == "__main__":
    main()
