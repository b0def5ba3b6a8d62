#!/usr/bin/env python3
"""Records MXNet 1.9.1's learning-rate schedules for kiln's train/lr_scheduler.

Run with /opt/mxvenv/bin/python (MXNet 1.9.1):

    /opt/mxvenv/bin/python tools/golden/gen_lr_schedule_golden.py [--out tests/data/mxnet/lr_schedules.json]

For every kiln spec below it builds the MXNet scheduler the spec stands for (the same
keys as constructor arguments, base_lr as given), calls it with num_update = 1 .. UPDATES
in order, as MXNet's optimizer does, and writes the rates (shortest round-trip floats)
with the spec and the constructor call. tests/train/lr_scheduler_test.cc checks kiln's
schedules against them. Deterministic: same MXNet, same file.
"""

import argparse
import json
import os

import mxnet as mx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UPDATES = 60

# (kiln spec, base_lr): every kind, with and without warm-up, linear and constant.
SCHEDULES = [
    ("factor:step=10,factor=0.5", 0.1),
    ("factor:step=7,factor=0.9,stop_factor_lr=0.05", 0.1),
    ("factor:step=10,factor=0.5,warmup_steps=5", 0.1),
    ("factor:step=3,factor=0.8,warmup_steps=8,warmup_begin_lr=0.01,warmup_mode=constant", 0.1),
    ("multifactor:step=5;12;30,factor=0.3", 0.5),
    ("multifactor:step=10;20,factor=0.5,warmup_steps=4,warmup_begin_lr=0.1", 1.0),
    ("poly:max_update=50", 0.1),
    ("poly:max_update=40,pwr=1.5,final_lr=0.001,warmup_steps=10,warmup_begin_lr=0.001", 0.05),
    ("poly:max_update=30,pwr=3,warmup_steps=5,warmup_begin_lr=0.02,warmup_mode=constant", 0.1),
    ("cosine:max_update=50", 0.1),
    ("cosine:max_update=45,final_lr=0.001,warmup_steps=10", 0.1),
    ("cosine:max_update=40,final_lr=0.01,warmup_steps=6,warmup_begin_lr=0.005,warmup_mode=constant", 0.2),
]

CLASSES = {
    "factor": mx.lr_scheduler.FactorScheduler,
    "multifactor": mx.lr_scheduler.MultiFactorScheduler,
    "poly": mx.lr_scheduler.PolyScheduler,
    "cosine": mx.lr_scheduler.CosineScheduler,
}
INTEGERS = {"step", "max_update", "warmup_steps"}


def arguments(spec, base_lr):
    """The scheduler class and constructor arguments a kiln spec stands for."""
    kind, _, body = spec.partition(":")
    kwargs = {"base_lr": base_lr}
    for item in body.split(","):
        key, value = item.split("=")
        if kind == "multifactor" and key == "step":
            kwargs[key] = [int(v) for v in value.split(";")]
        elif key == "warmup_mode":
            kwargs[key] = value
        else:
            kwargs[key] = int(value) if key in INTEGERS else float(value)
    return CLASSES[kind], kwargs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "mxnet", "lr_schedules.json"))
    args = parser.parse_args()
    records = []
    for spec, base_lr in SCHEDULES:
        cls, kwargs = arguments(spec, base_lr)
        scheduler = cls(**kwargs)
        call = "%s(%s)" % (cls.__name__, ", ".join("%s=%r" % item for item in kwargs.items()))
        rates = [scheduler(n) for n in range(1, UPDATES + 1)]
        records.append({"spec": spec, "base_lr": base_lr, "mxnet": call, "lr": rates})
    with open(args.out, "w") as f:
        # One schedule a line: small, and a regenerated file diffs by schedule.
        f.write('{"mxnet": %s, "updates": %d, "schedules": [\n' % (json.dumps(mx.__version__), UPDATES))
        f.write(",\n".join(json.dumps(record) for record in records))
        f.write("\n]}\n")
    print("wrote %d schedules to %s" % (len(records), args.out))


if __name__ == "__main__":
    main()
