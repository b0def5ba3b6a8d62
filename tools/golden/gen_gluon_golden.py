#!/usr/bin/env python3
"""Records what MXNet 1.9.1's Gluon computes, for kiln's Gluon API (train/gluon): layers'
outputs for given parameters, losses, and Trainer steps.

Run with /opt/mxvenv/bin/python (MXNet 1.9.1):

    /opt/mxvenv/bin/python tools/golden/gen_gluon_golden.py [--out tests/data/mxnet/gluon]

Writes into the output folder:
  layers.json, layers.npz   per case "CASE/x" (input) and "CASE/y" (the inference
                            output); CASE.params is the block's save_parameters file (a
                            single layer writes "weight", a HybridSequential "0.weight")
  losses.json, losses.npz   per case "CASE/pred", "CASE/label", "CASE/sample_weight" (when
                            given) and "CASE/loss" (per sample)
  trainer.json, trainer.npz per case the batches "CASE/data/K", "CASE/label/K", the losses
                            "CASE/loss/K" and every parameter after step K,
                            "CASE/stepK/KEY" (KEY as save_parameters writes it);
                            CASE-init.params holds the parameters before the first step,
                            trainer.json the batch sizes and the parameter settings
The *.json files list the cases with the Gluon constructors they stand for;
tests/train/gluon_test.cc builds the same blocks with kiln. Values come from MXNet's own
CPU kernels (oneDNN off, one thread, NaiveEngine) and seeded NumPy draws: the output is
deterministic.
"""

import argparse
import json
import os

os.environ["MXNET_MKLDNN_ENABLED"] = "0"
os.environ["MXNET_STORAGE_FALLBACK_LOG_VERBOSE"] = "0"
os.environ["MXNET_ENGINE_TYPE"] = "NaiveEngine"
os.environ["OMP_NUM_THREADS"] = "1"

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402
from mxnet.gluon import nn  # noqa: E402


def f32(array):
    return np.asarray(array, dtype=np.float32)


# --- layers ---------------------------------------------------------------------------

def mlp():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(8, activation="relu"), nn.BatchNorm(), nn.Dropout(0.3), nn.Dense(3))
    return net


# name, Gluon constructor (as text, evaluated), input shape, input kind
LAYERS = [
    ("dense_relu", "nn.Dense(5, activation='relu')", (3, 4), "normal"),
    ("dense_no_bias_no_flatten", "nn.Dense(4, use_bias=False, flatten=False)", (2, 3, 6), "normal"),
    ("dense_flatten_tanh", "nn.Dense(3, activation='tanh', in_units=18)", (2, 2, 3, 3), "normal"),
    ("conv_stride_pad_sigmoid", "nn.Conv2D(4, 3, strides=2, padding=1, activation='sigmoid')", (2, 3, 7, 7),
     "normal"),
    ("conv_groups_dilation", "nn.Conv2D(4, (3, 3), dilation=2, groups=2, use_bias=False)", (1, 4, 9, 9), "normal"),
    ("maxpool", "nn.MaxPool2D(pool_size=3, strides=2, padding=1)", (2, 2, 7, 7), "normal"),
    ("maxpool_ceil", "nn.MaxPool2D(ceil_mode=True)", (1, 2, 5, 5), "normal"),
    ("avgpool", "nn.AvgPool2D(3, strides=2, padding=1)", (2, 2, 6, 6), "normal"),
    ("avgpool_exclude_pad", "nn.AvgPool2D(3, strides=2, padding=1, count_include_pad=False)", (2, 2, 6, 6),
     "normal"),
    ("global_avgpool", "nn.GlobalAvgPool2D()", (2, 3, 5, 4), "normal"),
    ("batchnorm", "nn.BatchNorm()", (2, 3, 4, 4), "normal"),
    ("batchnorm_no_scale", "nn.BatchNorm(scale=False, epsilon=1e-3, momentum=0.8)", (2, 3, 4, 4), "normal"),
    ("dropout", "nn.Dropout(0.5)", (3, 4), "normal"),
    ("activation_softrelu", "nn.Activation('softrelu')", (3, 4), "normal"),
    ("leaky_relu", "nn.LeakyReLU(0.2)", (3, 4), "normal"),
    ("flatten", "nn.Flatten()", (2, 3, 4), "normal"),
    ("embedding", "nn.Embedding(10, 4)", (2, 5), "indices"),
    ("mlp", "mlp()", (4, 6), "normal"),
]


def record_layers(out, rng):
    arrays, cases = {}, []
    for name, ctor, shape, kind in LAYERS:
        block = eval(ctor)
        if kind == "indices":
            x = f32(rng.randint(0, 10, size=shape))
        else:
            x = f32(rng.normal(size=shape))
        block.initialize(mx.init.Uniform(1.0))
        block(mx.nd.array(x))  # finishes deferred initialization
        for key, param in block._collect_params_with_prefix().items():
            if key.endswith("running_var"):
                param.set_data(mx.nd.array(f32(rng.uniform(0.5, 2.0, size=param.shape))))
            elif key.endswith("running_mean"):
                param.set_data(mx.nd.array(f32(rng.normal(size=param.shape))))
        y = block(mx.nd.array(x)).asnumpy()
        block.save_parameters(os.path.join(out, name + ".params"))
        arrays[name + "/x"] = x
        arrays[name + "/y"] = y
        cases.append({"name": name, "gluon": ctor, "input_shape": list(shape)})
    np.savez_compressed(os.path.join(out, "layers.npz"), **arrays)
    return cases


# --- losses ---------------------------------------------------------------------------

def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def loss_inputs(rng, kind, pred_shape, label_shape):
    pred = rng.normal(size=pred_shape)
    if kind == "regression":
        label = rng.normal(size=label_shape)
    elif kind == "wide":  # both sides of Huber's threshold
        pred, label = 2 * pred, 2 * rng.normal(size=label_shape)
    elif kind == "classes":
        label = rng.randint(0, pred_shape[-1], size=label_shape)
    elif kind == "classes_axis1":
        label = rng.randint(0, pred_shape[1], size=label_shape)
    elif kind == "distribution":
        label = softmax(rng.normal(size=label_shape))
    elif kind == "log_distribution":
        pred = np.log(softmax(pred))
        label = softmax(rng.normal(size=label_shape))
    elif kind == "log_distribution_classes":
        pred = np.log(softmax(pred))
        label = rng.randint(0, pred_shape[-1], size=label_shape)
    elif kind == "binary":
        label = rng.randint(0, 2, size=label_shape)
    elif kind == "large_binary":  # where the stable form matters
        pred, label = 30 * pred, rng.randint(0, 2, size=label_shape)
    elif kind == "probability_binary":
        pred = rng.uniform(0.02, 0.98, size=pred_shape)
        label = rng.randint(0, 2, size=label_shape)
    else:
        raise ValueError(kind)
    return f32(pred), f32(label)


# name, Gluon constructor, pred shape, label shape, input kind, sample_weight shape
LOSSES = [
    ("l2", "gluon.loss.L2Loss()", (4, 3), (4, 3), "regression", None),
    ("l2_weight_reshape_label", "gluon.loss.L2Loss(weight=2.0)", (4, 1), (4,), "regression", None),
    ("l2_sample_weight", "gluon.loss.L2Loss()", (4, 3, 2), (4, 3, 2), "regression", (4, 1, 1)),
    ("l2_batch_axis_1", "gluon.loss.L2Loss(batch_axis=1)", (3, 5), (3, 5), "regression", None),
    ("l1", "gluon.loss.L1Loss()", (4, 5), (4, 5), "regression", None),
    ("l1_weight", "gluon.loss.L1Loss(weight=0.5)", (4, 5), (4, 5), "regression", (4, 1)),
    ("softmax_ce", "gluon.loss.SoftmaxCrossEntropyLoss()", (4, 6), (4,), "classes", None),
    ("softmax_ce_dense_label", "gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)", (4, 6), (4, 6),
     "distribution", None),
    ("softmax_ce_from_logits", "gluon.loss.SoftmaxCrossEntropyLoss(from_logits=True)", (4, 6), (4,),
     "log_distribution_classes", None),
    ("softmax_ce_axis_1", "gluon.loss.SoftmaxCrossEntropyLoss(axis=1)", (2, 5, 3), (2, 3), "classes_axis1", None),
    ("softmax_ce_weight", "gluon.loss.SoftmaxCrossEntropyLoss(weight=0.7)", (5, 4), (5,), "classes", (5, 1)),
    ("sigmoid_bce", "gluon.loss.SigmoidBinaryCrossEntropyLoss()", (4, 3), (4, 3), "binary", None),
    ("sigmoid_bce_large_logits", "gluon.loss.SigmoidBinaryCrossEntropyLoss()", (4, 3), (4, 3), "large_binary",
     None),
    ("sigmoid_bce_from_sigmoid", "gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=True)", (4, 3), (4, 3),
     "probability_binary", (4, 1)),
    ("huber", "gluon.loss.HuberLoss()", (4, 5), (4, 5), "wide", None),
    ("huber_rho", "gluon.loss.HuberLoss(rho=0.5, weight=3.0)", (4, 5), (4, 5), "wide", None),
    ("kldiv", "gluon.loss.KLDivLoss()", (3, 5), (3, 5), "log_distribution", None),
    ("kldiv_not_from_logits", "gluon.loss.KLDivLoss(from_logits=False)", (3, 5), (3, 5), "distribution", None),
]


def record_losses(rng):
    arrays, cases = {}, []
    for name, ctor, pred_shape, label_shape, kind, weight_shape in LOSSES:
        loss = eval(ctor)
        pred, label = loss_inputs(rng, kind, pred_shape, label_shape)
        args = [mx.nd.array(pred), mx.nd.array(label)]
        arrays[name + "/pred"] = pred
        arrays[name + "/label"] = label
        if weight_shape is not None:
            weight = f32(rng.uniform(0.5, 1.5, size=weight_shape))
            args.append(mx.nd.array(weight))
            arrays[name + "/sample_weight"] = weight
        arrays[name + "/loss"] = loss(*args).asnumpy()
        cases.append({"name": name, "gluon": ctor, "sample_weight": weight_shape is not None})
    return arrays, cases


# --- Trainer --------------------------------------------------------------------------

def cnn_bn():
    net = nn.HybridSequential()
    with net.name_scope():
        # No bias before BatchNorm: its gradient is zero up to rounding.
        net.add(nn.Conv2D(4, 3, padding=1, use_bias=False), nn.BatchNorm(), nn.Activation("relu"),
                nn.MaxPool2D(), nn.Flatten(), nn.Dense(3))
    return net


def mlp_huber():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(12, activation="tanh"), nn.Dense(2))
    return net


# name, net, loss, data shape, label kind, optimizer, optimizer_params, batch sizes,
# parameter settings (collect_params(select).setattr(attr, value) before the Trainer)
TRAINERS = [
    ("cnn_bn_sgd_momentum", cnn_bn, "gluon.loss.SoftmaxCrossEntropyLoss()", (8, 1, 6, 6), "classes", "sgd",
     {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.001}, [8] * 5, []),
    ("mlp_huber_adam", mlp_huber, "gluon.loss.HuberLoss()", (6, 5), "regression", "adam",
     {"learning_rate": 0.01, "wd": 0.0001}, [6] * 5, []),
    # Smaller batches between full ones (another compiled step, the momentum carried over)
    # and per-parameter settings.
    ("mlp_l2_sgd_uneven_batches", mlp_huber, "gluon.loss.L2Loss()", (6, 5), "regression", "sgd",
     {"learning_rate": 0.05, "momentum": 0.8, "wd": 0.01, "rescale_grad": 2.0}, [6, 4, 6, 4, 6],
     [[".*bias", "lr_mult", 2.0], [".*dense0_weight", "wd_mult", 0.5], [".*dense1_bias", "grad_req", "null"]]),
]


def record_trainers(out, rng):
    arrays, cases = {}, []
    for name, make, loss_ctor, data_shape, label_kind, optimizer, params, batches, settings in TRAINERS:
        net = make()
        loss = eval(loss_ctor)
        net.initialize(mx.init.Xavier(magnitude=2.0))
        net(mx.nd.zeros(data_shape))  # finishes deferred initialization
        net.save_parameters(os.path.join(out, name + "-init.params"))
        for select, attr, value in settings:
            net.collect_params(select).setattr(attr, value)
        trainer = gluon.Trainer(net.collect_params(), optimizer, params)
        for k, batch in enumerate(batches):
            data = f32(rng.uniform(-1, 1, size=(batch,) + data_shape[1:]))
            if label_kind == "classes":
                label = f32(rng.randint(0, 3, size=(batch,)))
            else:
                label = f32(rng.normal(size=(batch, 2)))
            with autograd.record():
                l = loss(net(mx.nd.array(data)), mx.nd.array(label))
            l.backward()
            trainer.step(batch)
            mx.nd.waitall()
            arrays["%s/data/%d" % (name, k)] = data
            arrays["%s/label/%d" % (name, k)] = label
            arrays["%s/loss/%d" % (name, k)] = l.asnumpy()
            for key, param in net._collect_params_with_prefix().items():
                arrays["%s/step%d/%s" % (name, k + 1, key)] = param.data().asnumpy()
        cases.append({"name": name, "net": make.__name__, "loss": loss_ctor, "data_shape": list(data_shape),
                      "optimizer": optimizer, "optimizer_params": params, "batches": batches,
                      "settings": settings})
    return arrays, cases


def write_index(out, name, cases):
    with open(os.path.join(out, name), "w") as f:
        json.dump({"mxnet": mx.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/mxnet/gluon")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    mx.random.seed(42)
    rng = np.random.RandomState(11)
    write_index(args.out, "layers.json", record_layers(args.out, rng))
    arrays, cases = record_losses(rng)
    np.savez_compressed(os.path.join(args.out, "losses.npz"), **arrays)
    write_index(args.out, "losses.json", cases)
    arrays, cases = record_trainers(args.out, rng)
    np.savez_compressed(os.path.join(args.out, "trainer.npz"), **arrays)
    write_index(args.out, "trainer.json", cases)
    print("wrote %s" % args.out)


if __name__ == "__main__":
    main()
