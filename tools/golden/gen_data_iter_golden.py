#!/usr/bin/env python3
"""Records the batches MXNet 1.9.1's mx.io.NDArrayIter and Gluon's DataLoader produce.

Run with /opt/mxvenv/bin/python (MXNet 1.9.1, numpy < 1.24):

    /opt/mxvenv/bin/python tools/golden/gen_data_iter_golden.py [--out tests/data/mxnet/data_iter_golden.json]

Sample i's data is the row [i, i, i] and its label 100 + i, so a batch is recorded as the
sample numbers of its data and label rows (and NDArrayIter's pad), for several epochs of
each last-batch mode, without shuffling (kiln's seeded order is its own).
tests/train/data_loader_test.cc replays every case on kiln's NDArrayIter and DataLoader.
"""

import argparse
import json
import os

os.environ["MXNET_ENGINE_TYPE"] = "NaiveEngine"
os.environ["OMP_NUM_THREADS"] = "1"

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import gluon  # noqa: E402

EPOCHS = 4


def arrays(n):
    data = np.repeat(np.arange(n, dtype=np.float32)[:, None], 3, axis=1)
    label = np.arange(n, dtype=np.float32) + 100
    return data, label


def samples(data_rows, label_rows):
    return [int(v) for v in data_rows[:, 0]], [int(v) - 100 for v in label_rows]


def ndarray_iter_case(n, batch_size, mode, abandon_after=None):
    """Epochs of NDArrayIter; with abandon_after, epoch 1 stops after that many batches."""
    data, label = arrays(n)
    it = mx.io.NDArrayIter(data, label, batch_size, shuffle=False, last_batch_handle=mode)
    epochs = []
    for epoch in range(EPOCHS):
        batches = []
        for batch in it:
            data_ids, label_ids = samples(batch.data[0].asnumpy(), batch.label[0].asnumpy())
            batches.append({"data": data_ids, "label": label_ids, "pad": int(batch.pad)})
            if epoch == 1 and abandon_after is not None and len(batches) == abandon_after:
                break
        epochs.append(batches)
        it.reset()
    describe = lambda descs: [{"name": d.name, "shape": list(d.shape)} for d in descs]  # noqa: E731
    return {"num_data": n, "batch_size": batch_size, "last_batch_handle": mode, "abandon_after": abandon_after,
            "provide_data": describe(it.provide_data), "provide_label": describe(it.provide_label),
            "epochs": epochs}


def data_loader_case(n, batch_size, mode, abandon_after=None):
    """Epochs of DataLoader over ArrayDataset(data, label); len() before each epoch."""
    data, label = arrays(n)
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(data, label), batch_size=batch_size, last_batch=mode)
    epochs = []
    for epoch in range(EPOCHS):
        num_batches = len(loader)
        batches = []
        for batch_data, batch_label in loader:
            data_ids, label_ids = samples(batch_data.asnumpy(), batch_label.asnumpy())
            batches.append({"data": data_ids, "label": label_ids})
            if epoch == 1 and abandon_after is not None and len(batches) == abandon_after:
                break
        epochs.append({"len": num_batches, "batches": batches})
    return {"num_data": n, "batch_size": batch_size, "last_batch": mode, "abandon_after": abandon_after,
            "epochs": epochs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/mxnet/data_iter_golden.json")
    args = parser.parse_args()

    ndarray_iter = []
    for mode in ("pad", "discard", "roll_over"):
        for n, batch_size in ((10, 3), (10, 5), (7, 3), (11, 4)):
            ndarray_iter.append(ndarray_iter_case(n, batch_size, mode))
        ndarray_iter.append(ndarray_iter_case(10, 4, mode, abandon_after=1))
    for mode in ("pad", "discard"):  # batches longer than the data (roll_over fails there)
        for n, batch_size in ((4, 10), (2, 5), (3, 3)):
            ndarray_iter.append(ndarray_iter_case(n, batch_size, mode))

    data_loader = []
    for mode in ("keep", "discard", "rollover"):
        for n, batch_size in ((10, 4), (10, 3), (9, 3), (3, 5)):
            data_loader.append(data_loader_case(n, batch_size, mode))
        data_loader.append(data_loader_case(10, 4, mode, abandon_after=1))

    doc = {"generator": "tools/golden/gen_data_iter_golden.py", "mxnet_version": mx.__version__,
           "ndarray_iter": ndarray_iter, "data_loader": data_loader}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote %d NDArrayIter and %d DataLoader cases to %s" % (len(ndarray_iter), len(data_loader), args.out))


if __name__ == "__main__":
    main()
