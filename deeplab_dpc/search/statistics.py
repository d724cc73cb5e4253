"""Rank statistics of a search: how well one score orders cells as another does.

Spearman's rho (the paper's measure of proxy fidelity, Chen et al. 2018, Sec. 4.1),
Kendall's tau-b, a percentile-bootstrap interval for either, and the pooled
seed-to-seed standard deviation that says how much of a score difference is noise.
Pure Python: these run on a few dozen numbers.
"""

import math
import random
from typing import Callable, Sequence


def average_ranks(values: Sequence[float]) -> list[float]:
  """1-based ranks of `values`, ties sharing the average of their ranks."""
  order = sorted(range(len(values)), key=lambda i: values[i])
  ranks = [0.0] * len(values)
  i = 0
  while i < len(order):
    j = i
    while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
      j += 1
    for k in range(i, j + 1):
      ranks[order[k]] = (i + j) / 2.0 + 1.0
    i = j + 1
  return ranks


def _check_pairs(x: Sequence[float], y: Sequence[float], name: str) -> None:
  if len(x) != len(y):
    raise ValueError(f'{name}: {len(x)} vs {len(y)} values')


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
  """Spearman's rank correlation (Pearson's r of average ranks, so ties are handled).

  Returns:
    rho in [-1, 1]; NaN with fewer than 2 pairs or when either side is constant.

  Raises:
    ValueError: if x and y differ in length.
  """
  _check_pairs(x, y, 'spearman_rho')
  if len(x) < 2:
    return math.nan
  rx, ry = average_ranks(x), average_ranks(y)
  mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
  cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
  vx = sum((a - mx) ** 2 for a in rx)
  vy = sum((b - my) ** 2 for b in ry)
  if vx == 0 or vy == 0:
    return math.nan
  return cov / math.sqrt(vx * vy)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
  """Kendall's tau-b: (concordant - discordant) pairs, corrected for ties on each side.

  Returns:
    tau in [-1, 1]; NaN with fewer than 2 pairs or when either side is constant.

  Raises:
    ValueError: if x and y differ in length.
  """
  _check_pairs(x, y, 'kendall_tau')
  concordant = discordant = ties_x = ties_y = 0
  for i in range(len(x)):
    for j in range(i + 1, len(x)):
      dx = (x[i] > x[j]) - (x[i] < x[j])
      dy = (y[i] > y[j]) - (y[i] < y[j])
      if dx == 0 and dy == 0:
        continue  # Tied on both sides: counted in neither correction.
      if dx == 0:
        ties_x += 1
      elif dy == 0:
        ties_y += 1
      elif dx == dy:
        concordant += 1
      else:
        discordant += 1
  denominator = math.sqrt((concordant + discordant + ties_x) *
                          (concordant + discordant + ties_y))
  if denominator == 0:
    return math.nan
  return (concordant - discordant) / denominator


def bootstrap_interval(statistic: Callable[[Sequence[float], Sequence[float]], float],
                       x: Sequence[float], y: Sequence[float], confidence: float = 0.9,
                       resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
  """Percentile-bootstrap interval of `statistic(x, y)` over resampled pairs.

  Pairs are drawn with replacement; a resample on which the statistic is undefined
  (NaN: e.g. all pairs the same cell) is drawn again, up to `10 * resamples` draws.

  Returns:
    (low, high), the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles;
    (NaN, NaN) with fewer than 3 pairs or no defined resample.

  Raises:
    ValueError: lengths differ, or confidence outside (0, 1).
  """
  _check_pairs(x, y, 'bootstrap_interval')
  if not 0.0 < confidence < 1.0:
    raise ValueError(f'bootstrap_interval: confidence must be in (0, 1), got {confidence}')
  n = len(x)
  if n < 3:
    return math.nan, math.nan
  rng = random.Random(seed)
  values = []
  for _ in range(10 * resamples):
    if len(values) == resamples:
      break
    picks = [rng.randrange(n) for _ in range(n)]
    value = statistic([x[i] for i in picks], [y[i] for i in picks])
    if not math.isnan(value):
      values.append(value)
  if not values:
    return math.nan, math.nan
  values.sort()
  return (_quantile(values, (1.0 - confidence) / 2.0),
          _quantile(values, (1.0 + confidence) / 2.0))


def _quantile(sorted_values: Sequence[float], q: float) -> float:
  """Linear-interpolated quantile of already sorted values."""
  position = q * (len(sorted_values) - 1)
  low = math.floor(position)
  high = min(low + 1, len(sorted_values) - 1)
  return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def pooled_std(groups: Sequence[Sequence[float]]) -> float:
  """The pooled sample standard deviation of groups of repeated measurements.

  Each group holds one cell's scores over training seeds; the pooled value is
  sqrt(sum_i (n_i - 1) s_i^2 / sum_i (n_i - 1)), the seed noise of one training.

  Returns:
    The std; NaN when no group has two or more values.
  """
  squares = 0.0
  dof = 0
  for group in groups:
    if len(group) < 2:
      continue
    mean = sum(group) / len(group)
    squares += sum((v - mean) ** 2 for v in group)
    dof += len(group) - 1
  return math.sqrt(squares / dof) if dof else math.nan


def spread(values: Sequence[float]) -> dict:
  """min, max, max - min, mean and sample std of `values` (NaN std for one value)."""
  if not values:
    raise ValueError('spread: no values')
  mean = sum(values) / len(values)
  std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
         if len(values) > 1 else math.nan)
  return {'min': min(values), 'max': max(values), 'range': max(values) - min(values),
          'mean': mean, 'std': std}
