#!/opt/kiln-py/bin/python
"""Process start to first result: a fresh `kiln run` against a fresh Python + ONNX Runtime.

Usage: bench_startup.py [--models lenet,resnet18,resnet50] [--runs 10] [--threads 1]
                        [--steady-iters 10] [--kiln bazel-bin/tools/kiln]
                        [--out build-out/bench]

Exports the models with tools/onnx/export_models.py into OUT/models (ResNet-50 included
when named: export_models.py leaves it out by default), compiles each at batch 1 with
`kiln compile MODEL.onnx -o OUT/startup/MODEL.kiln --input input:1x...` (the shape of the
exported MODEL.b1.input.npy; the default -O2) and then, alternating, times --runs fresh
processes of each:

- kiln: `kiln run MODEL.kiln --input input=MODEL.b1.input.npy --output-dir DIR --threads T`,
  the wall clock of the whole process (exec, loading the artifact and its code, reading
  the input, one inference, writing the output, exit). `kiln run` also prints the time
  of Executor::Load ("load X ms": mapping, checksum, code, binding, arena) and of the
  inference ("latency X ms (first run)"), which the table gives apart; their sum is
  what compares with ONNX Runtime's session creation plus first run. For scale, the script
  also times `kiln --version` (the CLI's start and exit, no model): the CLI links libLLVM
  for its compiler, which a program linking only the runtime (//runtime:executor, as
  examples/run_model does) would not load.
- ONNX Runtime: a fresh `python bench_startup.py --ort-child ...` (the same interpreter)
  that imports numpy and onnxruntime, creates an InferenceSession (all graph
  optimizations, intra_op_num_threads T, sequential), runs it once and saves the output:
  the wall clock of the whole process, and inside it time.perf_counter() around the
  imports and around session creation plus the first run; `python -c pass` for scale.

One untimed run of each comes first, so every timed run finds the files in the page
cache (warm start). Figures are medians over --runs. Steady state: `kiln bench MODEL.kiln
--threads T --iters --steady-iters --json`, its median after its default 5 warm-up runs
(its JSON has only min, median and p90, no per-run times and no load time, so the first
run and the load come from `kiln run` as above). Markdown table on stdout, progress on
stderr. Keep --runs small on a shared machine.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = ["lenet", "resnet18", "resnet50"]


def ort_child(onnx_path, input_path, output_path, threads):
    """Runs in the fresh process: imports, session, one run; prints its own timings."""
    start = time.perf_counter()
    import numpy as np
    import onnxruntime as ort
    imported = time.perf_counter()
    x = np.load(input_path)
    loaded = time.perf_counter()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    created = time.perf_counter()
    (output,) = session.run(None, {session.get_inputs()[0].name: x})
    done = time.perf_counter()
    np.save(output_path, output)
    print(json.dumps({"import_ms": (imported - start) * 1e3, "session_ms": (created - loaded) * 1e3,
                      "first_run_ms": (done - created) * 1e3, "session_first_run_ms": (done - loaded) * 1e3}))


def timed(command):
    start = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return (time.perf_counter() - start) * 1e3, out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--ort-child":
        onnx_path, input_path, output_path, threads = sys.argv[2:6]
        ort_child(onnx_path, input_path, output_path, int(threads))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runs", type=int, default=10, help="fresh processes of each, timed")
    parser.add_argument("--threads", type=int, default=1, help="kiln --threads and ORT intra_op_num_threads")
    parser.add_argument("--steady-iters", type=int, default=10, help="kiln bench --iters for the steady state")
    parser.add_argument("--kiln", default=os.path.join(ROOT, "bazel-bin/tools/kiln"))
    parser.add_argument("--out", default=os.path.join(ROOT, "build-out/bench"))
    args = parser.parse_args()

    import numpy as np

    models_dir = os.path.join(args.out, "models")
    work = os.path.join(args.out, "startup")
    os.makedirs(models_dir, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    models = args.models.split(",")
    print("exporting %s" % args.models, file=sys.stderr)
    subprocess.run([sys.executable, os.path.join(ROOT, "tools/onnx/export_models.py"), models_dir,
                    "--models", args.models], check=True, capture_output=True)

    # Process floors: the binary's start and exit with no model (kiln the CLI links
    # libLLVM, for its compiler) and the interpreter's.
    floors = {}
    for name, command in (("kiln --version", [args.kiln, "--version"]),
                          ("python -c pass", [sys.executable, "-c", "pass"])):
        times = [timed(command)[0] for _ in range(args.runs + 1)][1:]
        floors[name] = statistics.median(times)
    print("floors: " + ", ".join("%s %.1f ms" % item for item in floors.items()), file=sys.stderr)

    rows = []
    for model in models:
        onnx_path = os.path.join(models_dir, model + ".onnx")
        input_path = os.path.join(models_dir, model + ".b1.input.npy")
        dims = "x".join(str(d) for d in np.load(input_path).shape)
        artifact = os.path.join(work, model + ".kiln")
        compile_ms, _ = timed([args.kiln, "compile", onnx_path, "-o", artifact, "--input", "input:" + dims])
        kiln_out = os.path.join(work, model + ".kiln-out")
        ort_out = os.path.join(work, model + ".ort-out.npy")
        os.makedirs(kiln_out, exist_ok=True)
        kiln_command = [args.kiln, "run", artifact, "--input", "input=" + input_path, "--output-dir", kiln_out,
                        "--threads", str(args.threads)]
        ort_command = [sys.executable, os.path.abspath(__file__), "--ort-child", onnx_path, input_path, ort_out,
                       str(args.threads)]
        kiln_ms, kiln_first, kiln_load, ort_ms, ort_inside = [], [], [], [], []
        for run in range(args.runs + 1):  # run 0: untimed, warms the page cache
            wall, out = timed(kiln_command)
            first = re.search(r"latency ([0-9.eE+-]+) ms \(first run\)", out)
            load = re.search(r"^load ([0-9.eE+-]+) ms", out, re.MULTILINE)
            if first is None or load is None:
                sys.exit("error: no 'load ... ms' and 'latency ... ms (first run)' in the output of %s:\n%s" % (
                    " ".join(kiln_command), out))
            ort_wall, ort_report = timed(ort_command)
            if run > 0:
                kiln_ms.append(wall)
                kiln_first.append(float(first.group(1)))
                kiln_load.append(float(load.group(1)))
                ort_ms.append(ort_wall)
                ort_inside.append(json.loads(ort_report))
        diff = float(np.max(np.abs(np.load(os.path.join(kiln_out, "output.npy")) - np.load(ort_out))))
        steady = json.loads(subprocess.run([args.kiln, "bench", artifact, "--threads", str(args.threads), "--iters",
                                            str(args.steady_iters), "--json"],
                                           check=True, capture_output=True, text=True).stdout)["median_ms"]
        row = {
            "model": model, "input": dims, "onnx_mb": os.path.getsize(onnx_path) / 1e6,
            "artifact_mb": os.path.getsize(artifact) / 1e6, "compile_s": compile_ms / 1e3,
            "kiln_process_ms": statistics.median(kiln_ms), "kiln_first_run_ms": statistics.median(kiln_first),
            "kiln_load_ms": statistics.median(kiln_load),
            "kiln_load_first_run_ms": statistics.median(a + b for a, b in zip(kiln_load, kiln_first)),
            "kiln_steady_ms": steady, "ort_process_ms": statistics.median(ort_ms),
            "ort_import_ms": statistics.median(r["import_ms"] for r in ort_inside),
            "ort_session_ms": statistics.median(r["session_ms"] for r in ort_inside),
            "ort_session_first_run_ms": statistics.median(r["session_first_run_ms"] for r in ort_inside),
            "max_abs_diff": diff,
        }
        rows.append(row)
        print("%s: kiln process %.1f ms (load %.1f, first run %.2f, steady %.2f), ORT process %.1f ms (import %.1f, session + "
              "first run %.1f); max |kiln - ORT| %.1e" % (
                  model, row["kiln_process_ms"], row["kiln_load_ms"], row["kiln_first_run_ms"], steady, row["ort_process_ms"],
                  row["ort_import_ms"], row["ort_session_first_run_ms"], diff), file=sys.stderr)

    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                   "unknown CPU")
    print("Process start to first result, batch 1, %d thread%s, median of %d fresh processes each (warm page "
          "cache); %s, %s UTC.\n" % (args.threads, "" if args.threads == 1 else "s", args.runs, cpu,
                                     time.strftime("%Y-%m-%d %H:%M", time.gmtime())))
    print("Without a model: `kiln --version` %.1f ms (the CLI's start and exit; it links libLLVM for its compiler, "
          "which a program linking only the runtime would not load), `%s -c pass` %.1f ms.\n" % (
              floors["kiln --version"], sys.executable, floors["python -c pass"]))
    print("| model | ONNX MB | artifact MB | kiln process ms | kiln load ms | kiln first run ms | kiln steady ms | "
          "kiln load + first run ms | ORT process ms | ORT import ms | ORT session ms | ORT session + first run ms | "
          "ORT process / kiln process |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %.2f | %.2f | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |" % (
            r["model"], r["onnx_mb"], r["artifact_mb"], r["kiln_process_ms"], r["kiln_load_ms"],
            r["kiln_first_run_ms"], r["kiln_steady_ms"], r["kiln_load_first_run_ms"], r["ort_process_ms"],
            r["ort_import_ms"], r["ort_session_ms"], r["ort_session_first_run_ms"],
            r["ort_process_ms"] / r["kiln_process_ms"]))


if __name__ == "__main__":
    main()
