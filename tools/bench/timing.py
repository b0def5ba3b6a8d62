"""Latency statistics shared by the benchmark scripts (standard library only: the MXNet
venv runs it too). Imported from the scripts' own folder."""

import statistics
import time


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
