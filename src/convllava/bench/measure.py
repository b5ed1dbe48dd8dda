"""measure.py

Timing, memory and FLOP counting shared by the benchmarks: `time_fn` (warm-up, then latency percentiles, with
a per-configuration time budget that trims the iteration count for slow configurations), `PeakMemory` (CUDA
allocator peak, or sampled process RSS growth on CPU) and `count_flops` (`torch.utils.flop_counter`).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], Any], device: str = "cpu", warmup: int = 1, iters: int = 5,
            budget_s: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Latencies of `fn()` in ms: p50 / p90 / mean / min over `iters` runs after `warmup` runs. With `budget_s`,
    fewer runs are made when one run is so slow that all of them would exceed the budget (at least one)."""
    first = None
    for _ in range(max(warmup, 0)):
        start = time.perf_counter()
        fn()
        _sync(device)
        first = time.perf_counter() - start
    if budget_s is not None and first:
        iters = max(1, min(iters, int(budget_s // first)))
    runs = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        _sync(device)
        runs.append(time.perf_counter() - start)
    runs_ms = sorted(r * 1000 for r in runs)
    pick = lambda q: runs_ms[min(len(runs_ms) - 1, int(q * len(runs_ms)))]  # noqa: E731
    return {"p50_ms": statistics.median(runs_ms), "p90_ms": pick(0.9), "mean_ms": statistics.fmean(runs_ms),
            "min_ms": runs_ms[0], "runs": len(runs_ms)}  # fmt: skip


class PeakMemory:
    """Peak memory of a block in MB: the CUDA allocator's peak, or on CPU the highest resident set size seen by
    a 5 ms sampler minus the size at entry (what the block allocated and still held at its peak)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device, self.peak_mb = device, 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        import psutil

        process = psutil.Process()
        self._base = process.memory_info().rss
        self._high = self._base

        def sample() -> None:
            while not self._stop.is_set():
                self._high = max(self._high, process.memory_info().rss)
                time.sleep(0.005)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.startswith("cuda"):
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self.peak_mb = (self._high - self._base) / 2**20


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs (2 x multiply-adds of matmuls and convolutions) of one call of `fn`."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())
