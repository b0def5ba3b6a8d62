"""What the benchmark scripts share: latency statistics, running a benchmark that prints
JSON, and the machine and commit a report names (standard library only: the MXNet venv
runs it too). Imported from the scripts' own folder."""

import json
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(run, iters):
    for _ in range(max(2, iters // 10)):
        run()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {
        "min_ms": times[0],
        "median_ms": statistics.median(times),
        "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
    }


def run_json(command, env=None):
    """Runs `command` and parses the JSON object its standard output ends with."""
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out[out.index("{"):])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    except OSError:
        names = []
    return "%s (%d logical CPUs)" % (names[0] if names else "unknown CPU", os.cpu_count() or 0)


def commit():
    """The short hash of HEAD, marked when tracked files have uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], check=True,
                               capture_output=True, text=True).stdout.strip()
        return head + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
