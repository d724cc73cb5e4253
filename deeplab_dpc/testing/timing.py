"""Timing helpers shared by the benchmark scripts."""

import statistics
import time


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
  """Median wall time of `fn()` over `repeats` calls, after `warmup` untimed calls.

  The warm-up absorbs tracing, compilation and caches; the median resists the
  noise of a shared machine better than the mean.
  """
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)
