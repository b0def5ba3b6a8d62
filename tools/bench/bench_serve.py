#!/opt/kiln-py/bin/python
"""kiln serve under load: wrk against the server on loopback, beside the same artifact run
in-process (kiln bench), at batch 1.

Usage: bench_serve.py [--models lenet,resnet18] [--concurrency 1,8,64] [--seconds 20]
                      [--threads 2] [--batch-sizes 1,2,4,8,16,32,64] [--batching off,on]
                      [--encodings json,binary,grpc] [--kiln bazel-out/k8-opt/bin/tools/kiln]
                      [--kiln-serve bazel-out/k8-opt/bin/serve/kiln-serve] [--write-md PATH]

For each model (tools/onnx/export_models.py's seeded PyTorch models, exported to ONNX and
compiled by kiln with --batch-sizes; requests carry one image) and each --batching
setting (off: kiln-serve --max-batch-size 0, which runs the batch-1 code per request;
on: dynamic batching up to the largest batch size, --max-queue-delay-us 0) it starts kiln-serve (--threads T, --intra-op-threads 1) on
a free loopback port and runs wrk (one Lua script: POST the infer request, count non-2xx
answers) for --seconds at each concurrency with JSON tensors and with binary tensor data
(Inference-Header-Content-Length, binary output), and h2load (nghttp2) for --seconds
posting the gRPC ModelInfer call (raw input bytes, as Triton's clients send). It reports requests/s, p50 and p99
latency, errors (connect/read/timeout and non-2xx), and the server's RSS before and
after; then `kiln bench --threads 1` of the same artifact gives the in-process median,
and "overhead" is the server's p50 at concurrency 1 minus that median: what HTTP,
parsing and the response cost per request.

Build first: bazel build --config=opt //tools:kiln //serve:kiln-serve
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from timing import commit, cpu_model  # noqa: E402

LUA = r"""
wrk.method = "POST"
local f = io.open(os.getenv("KILN_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
local header = os.getenv("KILN_HEADER_LENGTH")
if header ~= nil and header ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = header
  wrk.headers["Content-Type"] = "application/octet-stream"
else
  wrk.headers["Content-Type"] = "application/json"
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "KILN {\"requests\": %d, \"duration_us\": %d, \"socket_errors\": %d, \"non2xx\": %d, " ..
    "\"connect\": %d, \"read\": %d, \"write\": %d, \"timeout\": %d, " ..
    "\"p50_us\": %d, \"p99_us\": %d}\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request_bodies(work, data, input_name, model):
    shape = list(data.shape)
    body = {"inputs": [{"name": input_name, "shape": shape, "datatype": "FP32",
                        "data": data.reshape(-1).astype(float).tolist()}]}
    json_path = os.path.join(work, "request.json")
    with open(json_path, "w") as f:
        json.dump(body, f)
    header = json.dumps({"inputs": [{"name": input_name, "shape": shape, "datatype": "FP32",
                                     "parameters": {"binary_data_size": data.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    binary_path = os.path.join(work, "request.bin")
    with open(binary_path, "wb") as f:
        f.write(header + data.astype(np.float32).tobytes())
    bodies = {"json": (json_path, ""), "binary": (binary_path, str(len(header)))}
    # gRPC: one length-prefixed ModelInferRequest message, raw input bytes (as Triton's
    # clients send), for h2load to post.
    try:
        from tritonclient.grpc import service_pb2
    except ImportError:
        return bodies
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=input_name, datatype="FP32", shape=shape)
    del tensor
    request.raw_input_contents.append(data.astype(np.float32).tobytes())
    message = request.SerializeToString()
    grpc_path = os.path.join(work, "request.grpc")
    with open(grpc_path, "wb") as f:
        f.write(b"\x00" + struct.pack(">I", len(message)) + message)
    bodies["grpc"] = (grpc_path, "")
    return bodies


def run_h2load(url, body, concurrency, seconds, work):
    """h2load (nghttp2) posting a gRPC call over HTTP/2: requests/s, p50 and p99 from its
    per-request log. It sees HTTP statuses only (gRPC's status travels in trailers): the
    call is checked once with Triton's client before the run."""
    log = os.path.join(work, "h2load.log")
    if os.path.exists(log):
        os.remove(log)  # h2load appends to its log
    threads = max(1, min(2, concurrency))
    out = subprocess.run(["h2load", "-D", str(seconds), "-c", str(concurrency), "-t", str(threads), "-m", "1",
                          "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body,
                          "--log-file", log, url], capture_output=True, text=True, check=True).stdout
    finished = re.search(r"finished in ([0-9.]+)s, ([0-9.]+) req/s", out)
    counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout", out)
    if not finished or not counts:
        raise RuntimeError("h2load printed no summary:\n" + out)
    latencies = []
    with open(log) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                latencies.append(int(fields[2]))
    latencies.sort()
    pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]) if latencies else (lambda q: 0)
    done = int(counts.group(2))
    return {"requests": done, "rps": float(finished.group(2)), "p50_us": pick(0.5), "p99_us": pick(0.99),
            "socket_errors": int(counts.group(4)) + int(counts.group(5)) + int(counts.group(6)),
            "non2xx": done - int(counts.group(3))}


def tree_rss_kb(pid):
    """RSS of a process and its descendants (MLServer's inference workers)."""
    total = rss_kb(pid)
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                total += sum(tree_rss_kb(int(child)) for child in f.read().split())
    except OSError:
        pass
    return total


MLSERVER = "/opt/mlserver-venv/bin/mlserver"


def start_mlserver(work, model, port, grpc_port, workers):
    """MLServer (tools/bench/install_mlserver.sh) serving MODEL.onnx through ONNX Runtime
    (tools/bench/mlserver/onnx_runtime.py) with `workers` inference processes."""
    if not os.path.exists(MLSERVER):
        sys.exit("MLServer is missing: run tools/bench/install_mlserver.sh")
    root = os.path.join(work, "mlserver")
    os.makedirs(os.path.join(root, model), exist_ok=True)
    with open(os.path.join(root, "settings.json"), "w") as f:
        json.dump({"http_port": port, "grpc_port": grpc_port, "metrics_port": free_port(),
                   "parallel_workers": workers, "debug": False}, f)
    with open(os.path.join(root, model, "model-settings.json"), "w") as f:
        json.dump({"name": model, "implementation": "onnx_runtime.OnnxRuntimeModel",
                   "parameters": {"uri": os.path.join(work, model + ".onnx")}}, f)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tools/bench/mlserver"))
    server = subprocess.Popen([MLSERVER, "start", root], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(work, "mlserver.log"), "w"))
    url = "http://127.0.0.1:%d/v2/models/%s/ready" % (port, model)
    for _ in range(240):
        time.sleep(0.25)
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return server
        except OSError:
            pass
    server.kill()
    sys.exit("MLServer did not become ready; see " + os.path.join(work, "mlserver.log"))


def ort_median_us(onnx_path, data):
    """ONNX Runtime's in-process median for one request (CPU provider, all optimizations,
    one thread): what MLServer's rows' overhead is measured against."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: data.astype(np.float32)}
    times = []
    for i in range(220):
        start = time.perf_counter()
        session.run(None, feeds)
        if i >= 20:
            times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def check_grpc_call(port, model, data, input_name):
    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(url="127.0.0.1:%d" % port)
    tensor = grpcclient.InferInput(input_name, list(data.shape), "FP32")
    tensor.set_data_from_numpy(data.astype(np.float32))
    client.infer(model, [tensor])
    client.close()


def run_wrk(url, body, header_length, concurrency, seconds, lua):
    env = dict(os.environ, KILN_BODY=body, KILN_HEADER_LENGTH=header_length)
    threads = max(1, min(2, concurrency))
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % concurrency, "-d%ds" % seconds, "--timeout", "30s",
                          "--latency",
                          "-s", lua, url], env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"KILN (\{.*\})", out)
    if not match:
        raise RuntimeError("wrk printed no summary:\n" + out)
    result = json.loads(match.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="lenet,resnet18")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kiln", default=os.path.join(ROOT, "bazel-out/k8-opt/bin/tools/kiln"))
    parser.add_argument("--kiln-serve", default=os.path.join(ROOT, "bazel-out/k8-opt/bin/serve/kiln-serve"))
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--batching", default="off,on")
    parser.add_argument("--encodings", default="json,binary,grpc")
    parser.add_argument("--servers", default="kiln", help="kiln,mlserver: also MLServer + ONNX Runtime "
                        "(tools/bench/install_mlserver.sh)")
    parser.add_argument("--write-md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing (apt install wrk; tools/install_deps.sh installs it)")
    models = args.models.split(",")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    work = tempfile.mkdtemp(prefix="kiln_bench_serve_")
    lua = os.path.join(work, "post.lua")
    with open(lua, "w") as f:
        f.write(LUA)
    subprocess.run([sys.executable, os.path.join(ROOT, "tools/onnx/export_models.py"), work, "--models",
                    ",".join(models)], check=True, stdout=subprocess.DEVNULL)
    rows = []
    for model in models:
        repo = os.path.join(work, "repo")
        artifact = os.path.join(repo, model, "1", "model.kiln")
        os.makedirs(os.path.dirname(artifact), exist_ok=True)
        data = np.load(os.path.join(work, model + ".b1.input.npy"))
        shape = "x".join(str(d) for d in data.shape)
        subprocess.run([args.kiln, "compile", os.path.join(work, model + ".onnx"), "-o", artifact, "--input",
                        "input:" + shape, "--batch-sizes", args.batch_sizes], check=True, stdout=subprocess.DEVNULL)
        bench = json.loads(subprocess.run([args.kiln, "bench", artifact, "--threads", "1", "--iters", "200",
                                           "--json"], check=True, capture_output=True, text=True).stdout)
        in_process_us = bench["median_ms"] * 1000
        bodies = request_bodies(work, data, "input", model)
        bodies = {k: v for k, v in bodies.items() if k in args.encodings.split(",")}
        servers = [("kiln", batching) for batching in args.batching.split(",") if "kiln" in args.servers]
        if "mlserver" in args.servers.split(","):
            servers.append(("mlserver", "-"))
        for kind, batching in servers:
            port, grpc_port = free_port(), free_port()
            if kind == "kiln":
                server = subprocess.Popen([args.kiln_serve, "--model-repository", repo, "--http-port", str(port),
                                           "--grpc-port", str(grpc_port), "--threads", str(args.threads),
                                           "--max-queue", "256", "--log-level", "warning",
                                           "--max-batch-size", "0" if batching == "off" else "-1"],
                                          stderr=subprocess.PIPE, text=True)
                for line in server.stderr:
                    if "listening on grpc" in line:
                        break
                process_us = in_process_us
            else:
                server = start_mlserver(work, model, port, grpc_port, args.threads)
                process_us = ort_median_us(os.path.join(work, model + ".onnx"), data)
            try:
                url = "http://127.0.0.1:%d/v2/models/%s/infer" % (port, model)
                rss_before = tree_rss_kb(server.pid)
                first = len(rows)
                for encoding, (body, header_length) in bodies.items():
                    if kind == "mlserver" and encoding == "binary":
                        continue  # MLServer 1.7 answers 422: no binary tensor data extension
                    for concurrency in concurrencies:
                        if encoding == "grpc":
                            check_grpc_call(grpc_port, model, data, "input")
                            r = run_h2load("http://127.0.0.1:%d/inference.GRPCInferenceService/ModelInfer" % grpc_port,
                                           body, concurrency, args.seconds, work)
                        else:
                            r = run_wrk(url, body, header_length, concurrency, args.seconds, lua)
                        row = dict(server=kind, model=model, batching=batching, encoding=encoding,
                                   concurrency=concurrency, in_process_us=process_us, **r)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                rss_after = tree_rss_kb(server.pid)
                for row in rows[first:]:
                    row["rss_before_mb"], row["rss_after_mb"] = rss_before / 1024, rss_after / 1024
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=60)
                except subprocess.TimeoutExpired:  # MLServer, still draining its queue
                    server.kill()
                    server.wait()
    lines = ["Measured %s UTC on %s, commit %s; wrk %ds per row, kiln-serve --threads %d "
             "(--intra-op-threads 1), one image per request, artifacts compiled with --batch-sizes %s." % (
                 datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), cpu_model(), commit(), args.seconds,
                 args.threads, args.batch_sizes), "",
             "| server | model | batching | encoding | concurrency | requests/s | p50 ms | p99 ms | errors | in-process median ms | "
             "overhead at c=1 ms | server RSS MB before / after |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        overhead = (r["p50_us"] - r["in_process_us"]) / 1000 if r["concurrency"] == 1 else None
        lines.append("| %s | %s | %s | %s | %d | %.0f | %.3f | %.3f | %d | %.3f | %s | %.0f / %.0f |" % (
            r["server"], r["model"], r["batching"], r["encoding"], r["concurrency"], r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000,
            r["socket_errors"] + r["non2xx"], r["in_process_us"] / 1000,
            "%.3f" % overhead if overhead is not None else "", r["rss_before_mb"], r["rss_after_mb"]))
    # The gain of batching: requests/s with it over without, per model, encoding and concurrency.
    gains = []
    for r in rows:
        if r["batching"] != "on":
            continue
        for o in rows:
            if (o["server"], o["batching"], o["model"], o["encoding"], o["concurrency"]) == (
                    "kiln", "off", r["model"], r["encoding"], r["concurrency"]) and o["rps"] > 0:
                gains.append("%s %s c=%d: %.2fx" % (r["model"], r["encoding"], r["concurrency"], r["rps"] / o["rps"]))
    if gains:
        lines += ["", "Dynamic batching, requests/s on over off: " + "; ".join(gains) + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write_md:
        with open(args.write_md, "w") as f:
            f.write(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
