#!/opt/kiln-py/bin/python
"""Reference latencies: ONNX Runtime and PyTorch on the same model, batch and thread count.

Usage: bench_reference.py MODEL.onnx --batch N --threads T --iters K [--torch NAME] [--json]

PyTorch rebuilds the model with tools/onnx/export_models.py (same seed, so the same weights);
--torch defaults to the file's stem when that names a known model. PyTorch's sgemm goes
through libblas.so.3: the script re-execs itself with OpenBLAS preloaded (and
OPENBLAS_NUM_THREADS=T, since the pthread OpenBLAS ignores torch.set_num_threads) so the
comparison never runs on Debian's reference BLAS, whatever update-alternatives says.
"""

import argparse
import importlib.util
import json
import os
import sys

from timing import measure  # tools/bench/timing.py, beside this script

OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"
EXPORT_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "onnx",
                             "export_models.py")


def ensure_openblas(threads):
    """Re-execs with OpenBLAS preloaded unless this process already has it; must run
    before torch is imported."""
    if not os.path.exists(OPENBLAS):
        return
    preload = os.environ.get("LD_PRELOAD", "").split()
    if OPENBLAS in preload and os.environ.get("OPENBLAS_NUM_THREADS") == str(threads):
        return
    env = dict(os.environ)
    # Another libblas preloaded (say, the reference one) would shadow OpenBLAS's symbols.
    others = [p for p in preload if not os.path.basename(p).startswith("libblas.so")]
    env["LD_PRELOAD"] = " ".join([OPENBLAS] + others)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


def loaded_blas():
    """The libblas actually mapped into this process (what torch's sgemm calls)."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "/libblas.so" in line}
    return ", ".join(sorted(os.path.realpath(p) for p in paths)) or "none"


def load_export_models():
    # Loaded by path: putting tools/ on sys.path would shadow the onnx package with tools/onnx.
    spec = importlib.util.spec_from_file_location("kiln_export_models", EXPORT_MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an .onnx file written by export_models.py")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--torch", dest="torch_name",
                        help="export_models.py model name to rebuild in PyTorch")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    ensure_openblas(args.threads)

    import numpy as np
    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    export_models = load_export_models()
    torch_name = args.torch_name
    stem = os.path.splitext(os.path.basename(args.model))[0]
    if torch_name is None and stem in export_models.MODELS:
        torch_name = stem
    if torch_name is not None and torch_name not in export_models.MODELS:
        parser.error(f"--torch: unknown model {torch_name}; known: {', '.join(export_models.MODELS)}")

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    shape = [args.batch] + list(model_input.shape[1:])
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    feed = {model_input.name: x}
    result = {
        "model": args.model, "batch": args.batch, "threads": args.threads, "iters": args.iters,
        "blas": loaded_blas(),
        "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__},
        "ort": measure(lambda: session.run(None, feed), args.iters),
    }

    if torch_name is not None:
        model, sample_shape = export_models.build_model(torch_name)
        if tuple(sample_shape) != tuple(shape[1:]):
            sys.exit(f"error: --torch {torch_name} takes {list(sample_shape)} per sample, "
                     f"{args.model} takes {shape[1:]}")
        # build_model calibrates on one thread; benchmark on the requested count.
        torch.set_num_threads(args.threads)
        tx = torch.from_numpy(x)
        with torch.inference_mode():
            result["torch_model"] = torch_name
            result["torch"] = measure(lambda: model(tx), args.iters)
            result["max_abs_diff"] = float(np.max(np.abs(
                model(tx).numpy() - session.run(None, feed)[0])))

    if args.json:
        print(json.dumps(result))
        return
    print(f"{stem} batch={args.batch} threads={args.threads} iters={args.iters} blas={result['blas']}")
    for engine in ("ort", "torch"):
        if engine in result:
            t = result[engine]
            print(f"  {engine:<5} min {t['min_ms']:8.3f} ms  median {t['median_ms']:8.3f} ms"
                  f"  p90 {t['p90_ms']:8.3f} ms")
    if "max_abs_diff" in result:
        print(f"  max |torch - ort| = {result['max_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
