#!/opt/mxvenv/bin/python
"""Writes NDArray-list files with real MXNet 1.9.1 for kiln's tests (tests/data/mxnet/).

Each FILE.params comes with FILE/<index>.npy, the same arrays written by NumPy, and
FILE.json, the names MXNet wrote in order (null for a list saved without names); the
checkpoint's arrays also as checkpoint.npz and checkpoint_compressed.npz (np.savez and
np.savez_compressed), so
the test checks kiln's reader against MXNet's writer, and kiln's writer against MXNet's
bytes. Deterministic (seeded); small (a few KB).

    /opt/mxvenv/bin/python tools/mxnet/gen_params_testdata.py [OUT_DIR]

(tools/bench/install_mxnet.sh makes /opt/mxvenv.)
"""

import json
import os
import shutil
import sys

import mxnet as mx
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(out, name, arrays, names, save):
    """arrays: numpy arrays; names: list of str or None; save(path) writes the .params."""
    save(os.path.join(out, name + ".params"))
    folder = os.path.join(out, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for i, a in enumerate(arrays):
        np.save(os.path.join(folder, "%d.npy" % i), a)
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump({"names": names, "mxnet": mx.__version__}, f, indent=1)
        f.write("\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "mxnet")
    # Other generators write beside these files (models/, optimizer_ops/, ...): replace
    # only this script's own.
    os.makedirs(out, exist_ok=True)
    rng = np.random.RandomState(7)

    # A checkpoint's dict with Module's prefixes, every dtype kiln reads.
    named = [
        ("arg:conv0_weight", rng.randn(4, 3, 3, 3).astype(np.float32)),
        ("arg:fc_bias", rng.randn(5).astype(np.float64)),
        ("aux:bn_moving_mean", rng.randn(2, 3).astype(np.float16)),
        ("arg:u8", rng.randint(0, 255, size=(3, 2)).astype(np.uint8)),
        ("arg:i8", rng.randint(-128, 127, size=(7,)).astype(np.int8)),
        ("arg:i32", rng.randint(-2**31, 2**31 - 1, size=(2, 2), dtype=np.int64).astype(np.int32)),
        ("arg:i64", np.array([-2**62, 3, 2**40], dtype=np.int64)),
        ("arg:flag", np.array([True, False, True]), ),
        ("arg:empty_dim", np.zeros((0, 6), dtype=np.float32)),
    ]
    write(out, "checkpoint", [a for _, a in named], [n for n, _ in named],
          lambda path: mx.nd.save(path, {n: mx.nd.array(a, dtype=a.dtype) for n, a in named}))
    # The same arrays as NumPy archives, stored and deflated, for kiln's .npz reader.
    np.savez(os.path.join(out, "checkpoint.npz"), **dict(named))
    np.savez_compressed(os.path.join(out, "checkpoint_compressed.npz"), **dict(named))

    # A list, without names.
    listed = [rng.randn(2, 3).astype(np.float32), np.arange(5, dtype=np.int32)]
    write(out, "list", listed, None, lambda path: mx.nd.save(path, [mx.nd.array(a, dtype=a.dtype) for a in listed]))

    # NumPy shape semantics (V3): a scalar and a zero-size array.
    numpy_arrays = [("scalar", np.array(2.5, dtype=np.float32)), ("vector", np.arange(3, dtype=np.float32)),
                    ("none_rows", np.zeros((0, 3), dtype=np.float32))]

    def save_np(path):
        mx.npx.set_np()
        try:
            mx.npx.save(path, {n: mx.np.array(a, dtype=a.dtype) for n, a in numpy_arrays})
        finally:
            mx.npx.reset_np()
    write(out, "numpy_shape", [a for _, a in numpy_arrays], [n for n, _ in numpy_arrays], save_np)

    # Sparse arrays, which kiln refuses.
    csr = mx.nd.array([[0, 1, 0], [2, 0, 0]]).tostype("csr")
    mx.nd.save(os.path.join(out, "sparse.params"), {"csr": csr})
    print("wrote", out)


if __name__ == "__main__":
    main()
