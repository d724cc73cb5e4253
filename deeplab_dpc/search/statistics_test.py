"""Rank statistics: ties, degenerate inputs, bootstrap intervals, pooled noise."""

import math
import random

import numpy as np
import pytest

from deeplab_dpc.search import statistics


def test_average_ranks():
  assert statistics.average_ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]


def test_spearman_rho():
  assert statistics.spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
  assert statistics.spearman_rho([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
  # Ties: Pearson's r of average ranks.
  x, y = [1, 2, 2, 3, 5], [2, 1, 4, 4, 6]
  expected = np.corrcoef(statistics.average_ranks(x), statistics.average_ranks(y))[0, 1]
  assert statistics.spearman_rho(x, y) == pytest.approx(expected)
  assert math.isnan(statistics.spearman_rho([1], [2]))
  assert math.isnan(statistics.spearman_rho([1, 1], [2, 3]))
  with pytest.raises(ValueError):
    statistics.spearman_rho([1, 2], [1])


def _kendall_tau_b_reference(x, y):
  """Tau-b from its textbook definition with numpy sign matrices."""
  x, y = np.asarray(x, float), np.asarray(y, float)
  sx = np.sign(x[:, None] - x[None, :])
  sy = np.sign(y[:, None] - y[None, :])
  upper = np.triu_indices(len(x), 1)
  sx, sy = sx[upper], sy[upper]
  return float((sx * sy).sum() / math.sqrt((sx != 0).sum() * (sy != 0).sum()))


def test_kendall_tau_matches_its_definition_with_ties():
  assert statistics.kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
  assert statistics.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
  # One swapped pair of six: (5 - 1) / 6.
  assert statistics.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
  rng = random.Random(3)
  for _ in range(20):
    x = [rng.randint(0, 4) for _ in range(9)]
    y = [rng.randint(0, 4) for _ in range(9)]
    if len(set(x)) > 1 and len(set(y)) > 1:
      assert statistics.kendall_tau(x, y) == pytest.approx(_kendall_tau_b_reference(x, y))
  assert math.isnan(statistics.kendall_tau([1, 1, 1], [1, 2, 3]))
  with pytest.raises(ValueError):
    statistics.kendall_tau([1], [1, 2])


def test_bootstrap_interval_brackets_the_statistic_and_is_seeded():
  rng = random.Random(0)
  x = [rng.gauss(0, 1) for _ in range(30)]
  y = [a + rng.gauss(0, 1) for a in x]
  rho = statistics.spearman_rho(x, y)
  low, high = statistics.bootstrap_interval(statistics.spearman_rho, x, y, seed=1)
  assert low < rho < high
  assert 0.0 < low and high < 1.0
  assert (low, high) == statistics.bootstrap_interval(statistics.spearman_rho, x, y, seed=1)
  wider = statistics.bootstrap_interval(statistics.spearman_rho, x, y, confidence=0.99, seed=1)
  assert wider[0] <= low and wider[1] >= high
  # Perfectly ordered pairs: every defined resample has rho = 1.
  assert statistics.bootstrap_interval(statistics.spearman_rho, [1, 2, 3, 4], [5, 6, 7, 8]) == (
      pytest.approx(1.0), pytest.approx(1.0))
  assert all(math.isnan(v) for v in statistics.bootstrap_interval(
      statistics.spearman_rho, [1, 2], [1, 2]))
  with pytest.raises(ValueError, match='confidence'):
    statistics.bootstrap_interval(statistics.spearman_rho, x, y, confidence=1.5)


def test_pooled_std_and_spread():
  # Two groups, each with sample variance 1 (values m-1, m, m+1): pooled std 1.
  assert statistics.pooled_std([[0, 1, 2], [10, 11, 12]]) == pytest.approx(1.0)
  # Degrees of freedom weight the groups: variances 2 (n=2) and 0.5 (n=3).
  expected = math.sqrt((1 * 2.0 + 2 * 0.25) / 3)
  assert statistics.pooled_std([[0, 2], [1, 1.5, 0.5]]) == pytest.approx(
      math.sqrt((2.0 + 0.5) / 3)) == pytest.approx(expected)
  assert math.isnan(statistics.pooled_std([[1.0], []]))
  s = statistics.spread([0.2, 0.4, 0.3])
  assert s['min'] == 0.2 and s['max'] == 0.4 and s['range'] == pytest.approx(0.2)
  assert s['mean'] == pytest.approx(0.3) and s['std'] == pytest.approx(0.1)
  with pytest.raises(ValueError):
    statistics.spread([])
