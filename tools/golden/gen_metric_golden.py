#!/usr/bin/env python3
"""Records what MXNet 1.9.1's evaluation metrics (mx.metric) report, for kiln's metrics.

Run with /opt/mxvenv/bin/python (MXNet 1.9.1, numpy < 1.24):

    /opt/mxvenv/bin/python tools/golden/gen_metric_golden.py [--out tests/data/mxnet/metric_golden.json]

Each case creates a metric with mx.metric.create(name, **kwargs), feeds it a sequence of
updates (lists of seeded label and prediction arrays; some preceded by a reset) and
records get_name_value() after each. tests/train/metric_test.cc replays the updates on
kiln's metric of the same name and arguments. The output is deterministic.
"""

import argparse
import json
import os

os.environ["MXNET_ENGINE_TYPE"] = "NaiveEngine"
os.environ["OMP_NUM_THREADS"] = "1"

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402


def tensor(name, array):
    array = np.asarray(array, dtype=np.float32)
    return {"name": name, "shape": list(array.shape), "dtype": "float32",
            "data": [float(v) for v in array.ravel()]}


def softmax_rows(rng, n, k):
    logits = rng.normal(size=(n, k))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def classes(rng, n, k):
    return rng.randint(0, k, size=n).astype(np.float32)


class Case:
    def __init__(self, desc, metric, kwargs=None):
        self.desc = desc
        self.metric = metric
        self.kwargs = kwargs or {}
        self.steps = []  # (reset_before, labels, preds)

    def update(self, pairs, reset_before=False):
        """One update with these (label, prediction) pairs."""
        self.update_lists([l for l, _ in pairs], [p for _, p in pairs], reset_before)

    def update_lists(self, labels, preds, reset_before=False):
        self.steps.append((reset_before, labels, preds))


def declare_cases(rng):
    cases = []

    c = Case("acc: probabilities (N, 5), batches of 8, 5 and 3", "acc")
    for n in (8, 5, 3):
        c.update([(classes(rng, n, 5), softmax_rows(rng, n, 5))])
    cases.append(c)

    c = Case("accuracy: class-index predictions of the label's shape (truncated)", "accuracy")
    c.update([(np.array([0, 1, 2, 3, 1, 2]), np.array([0.0, 1.9, 1.2, 3.0, 2.0, 2.7]))])
    c.update([(np.array([[1], [0], [2]]), np.array([[1.0], [0.2], [0.0]]))])
    cases.append(c)

    c = Case("acc: two pairs per update, then a reset", "acc")
    c.update([(classes(rng, 6, 3), softmax_rows(rng, 6, 3)), (classes(rng, 4, 4), softmax_rows(rng, 4, 4))])
    c.update([(classes(rng, 5, 3), softmax_rows(rng, 5, 3))], reset_before=True)
    cases.append(c)

    c = Case("acc: axis 1 of (N, classes, T) predictions, labels (N, T)", "acc", {"axis": 1})
    c.update([(rng.randint(0, 4, size=(3, 5)).astype(np.float32), rng.uniform(size=(3, 4, 5)))])
    cases.append(c)

    c = Case("acc: axis -1 of (N, T, classes) predictions", "acc", {"axis": -1})
    c.update([(rng.randint(0, 3, size=(2, 4)).astype(np.float32), rng.uniform(size=(2, 4, 3)))])
    cases.append(c)

    for k in (2, 3):
        c = Case("top_k_accuracy k=%d: (N, 6) scores" % k, "top_k_accuracy", {"top_k": k})
        for n in (10, 7):
            c.update([(classes(rng, n, 6), rng.uniform(size=(n, 6)))])
        cases.append(c)

    c = Case("top_k_accuracy k=3 over 3 classes: every sample counts", "top_k_acc", {"top_k": 3})
    c.update([(classes(rng, 4, 3), rng.uniform(size=(4, 3)))])
    cases.append(c)

    # Updates MXNet refuses: the step records the error, and kiln must throw too.
    c = Case("top_k_accuracy k=4 over 3 classes is refused", "top_k_accuracy", {"top_k": 4})
    c.update([(classes(rng, 4, 3), rng.uniform(size=(4, 3)))])
    cases.append(c)
    c = Case("acc: fewer predictions than labels is refused", "acc")
    c.update_lists([classes(rng, 4, 3), classes(rng, 4, 3)], [softmax_rows(rng, 4, 3)])
    cases.append(c)
    c = Case("f1: three distinct labels are refused", "f1")
    c.update([(np.array([0, 1, 2]), rng.uniform(size=(3, 2)))])
    cases.append(c)

    for name in ("mae", "mse", "rmse"):
        c = Case("%s: batches of unequal size are averaged per batch" % name, name)
        c.update([(rng.normal(size=8), rng.normal(size=8))])
        c.update([(rng.normal(size=2), rng.normal(size=2))])
        c.update([(rng.normal(size=(3, 4)), rng.normal(size=(3, 4)))])
        c.update([(rng.normal(size=5), rng.normal(size=(5, 1)))])
        cases.append(c)

        c = Case("%s: two pairs in one update, a (N,) label against (N, 3) predictions" % name, name)
        c.update([(rng.normal(size=4), rng.normal(size=(4, 3))), (rng.normal(size=(2, 2)), rng.normal(size=(2, 2)))])
        c.update([(rng.normal(size=3), rng.normal(size=3))], reset_before=True)
        cases.append(c)

    c = Case("ce: probabilities (N, 4) with a zero probability", "ce")
    probs = softmax_rows(rng, 6, 4)
    labels = classes(rng, 6, 4)
    probs[0, int(labels[0])] = 0.0
    c.update([(labels, probs)])
    c.update([(classes(rng, 3, 4), softmax_rows(rng, 3, 4))])
    cases.append(c)

    c = Case("ce: eps 1e-3", "ce", {"eps": 1e-3})
    c.update([(classes(rng, 5, 3), softmax_rows(rng, 5, 3))])
    cases.append(c)

    for average in ("macro", "micro"):
        c = Case("f1 %s: three batches, one without a predicted positive" % average, "f1", {"average": average})
        c.update([(classes(rng, 12, 2), rng.uniform(size=(12, 2)))])
        c.update([(np.array([1, 0, 1, 0]), np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]]))])
        c.update([(classes(rng, 9, 2), rng.uniform(size=(9, 2))), (classes(rng, 5, 2), rng.uniform(size=(5, 2)))])
        cases.append(c)
    c = Case("f1 default (macro): labels 0 and 2 (2 is negative)", "f1")
    c.update([(np.array([0, 2, 2, 0]), np.array([[0.2, 0.8], [0.7, 0.3], [0.1, 0.9], [0.6, 0.4]]))])
    cases.append(c)

    c = Case("composite of acc, ce and f1", ["acc", "ce", "f1"])
    c.update([(classes(rng, 8, 2), softmax_rows(rng, 8, 2))])
    c.update([(classes(rng, 4, 2), softmax_rows(rng, 4, 2))])
    cases.append(c)

    return cases


def run(case):
    metric = mx.metric.create(case.metric, **case.kwargs)
    steps = []
    for index, (reset_before, label_arrays, pred_arrays) in enumerate(case.steps):
        if reset_before:
            metric.reset()
        step = {
            "reset_before": reset_before,
            "labels": [tensor("label%d_%d" % (index, i), l) for i, l in enumerate(label_arrays)],
            "preds": [tensor("pred%d_%d" % (index, i), p) for i, p in enumerate(pred_arrays)],
        }
        try:
            metric.update([mx.nd.array(np.asarray(l, dtype=np.float32)) for l in label_arrays],
                          [mx.nd.array(np.asarray(p, dtype=np.float32)) for p in pred_arrays])
        except (ValueError, AssertionError, IndexError) as e:
            step["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
            steps.append(step)
            break
        step["expected"] = [[name, float(value)] for name, value in metric.get_name_value()]
        steps.append(step)
    return {"desc": case.desc, "metric": case.metric, "kwargs": case.kwargs, "steps": steps}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/mxnet/metric_golden.json")
    args = parser.parse_args()
    rng = np.random.RandomState(20240611)
    doc = {
        "generator": "tools/golden/gen_metric_golden.py",
        "mxnet_version": mx.__version__,
        "cases": [run(case) for case in declare_cases(rng)],
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote %d cases to %s" % (len(doc["cases"]), args.out))


if __name__ == "__main__":
    main()
