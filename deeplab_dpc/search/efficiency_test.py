"""The search-efficiency benchmark's bookkeeping, and one tiny run end to end."""

import json
import os

import pytest

from deeplab_dpc import demo_pipeline
from deeplab_dpc.search import efficiency


def _entry(trial_id, score, steps=None, status='COMPLETED'):
  entry = {'trial_id': str(trial_id), 'status': status, 'score': score}
  if steps is not None:
    entry['proxy_steps'] = steps
  return entry


def test_budget_curve_counts_every_step_and_only_full_budget_scores():
  entries = [_entry(0, 0.9, steps=10), _entry(1, 0.4, steps=30), _entry(2, None, 30, 'FAILED'),
             _entry(3, 0.5, steps=30), _entry(4, 0.95, steps=10)]
  curve = efficiency.budget_curve(entries, full_steps=30)
  assert curve == [[10, None], [40, 0.4], [70, 0.4], [100, 0.5], [110, 0.5]]
  assert efficiency.best_at(curve, 5) is None
  assert efficiency.best_at(curve, 99) == 0.4
  assert efficiency.best_at(curve, 1000) == 0.5
  # Without rungs every trial has the full budget.
  assert efficiency.budget_curve([_entry(0, 0.3), _entry(1, 0.2)], 50) == [[50, 0.3], [100, 0.3]]
  assert efficiency.median_curve([curve, [[50, 0.7]]], [60, 200]) == [0.55, 0.6]


def test_a_tiny_run_writes_curves_per_variant_and_seed(tmp_path):
  config = demo_pipeline.DemoConfig.create(str(tmp_path), reduced=True, proxy_steps=9,
                                           search_trials=2)
  fidelity_report = {'cells': [efficiency_cell(k) for k in range(3)],
                     'full_scores': [0.3, 0.5, 0.4]}
  report = efficiency.run_efficiency(config, str(tmp_path), seeds=1, budget_trials=3,
                                     variants=('random_local', 'successive_halving'),
                                     full_training=False, fidelity_report=fidelity_report)
  assert set(report['curves']) == {'random_local', 'successive_halving'}
  baseline, halving = report['curves']['random_local'][0], report['curves']['successive_halving'][0]
  assert baseline[-1][0] >= 2 * report['budget_steps'] == 54  # The baseline runs to 2B.
  assert halving[-1][0] >= report['budget_steps']
  # Rung trials run in rounds the rest of the budget pays for: at most one full proxy
  # training beyond it.
  assert halving[-1][0] <= report['budget_steps'] + 9
  assert any(best is not None for _, best in halving)
  for variant in report['curves']:
    stats = report['at_budget'][variant]
    assert stats['runs'] == 1 and 0.0 <= stats['median'] <= 1.0
  assert set(report['zero_cost_fidelity']) == {'synflow', 'grad_norm', 'jacob_cov'}
  with open(tmp_path / 'efficiency.json', encoding='utf-8') as f:
    assert json.load(f)['budget_steps'] == 27
  assert os.path.getsize(report['plot']) > 0
  assert 'random_local at 2B' in efficiency.format_report(report)
  with pytest.raises(ValueError, match='--variants: unknown annealing'):
    efficiency.run_efficiency(config, str(tmp_path), 1, 1, variants=('annealing',))


def efficiency_cell(k):
  return [{'op': 'conv', 'kernel': 3, 'rate': [(1, 3, 6)[k], 1], 'input': -1},
          {'op': 'pyramid_pooling', 'grid_size': [1, 1], 'input': -1},
          {'op': 'conv', 'kernel': 1, 'input': 0},
          {'op': 'conv', 'kernel': 3, 'rate': [3, 3], 'input': -1},
          {'op': 'conv', 'kernel': 1, 'input': -1}]
