"""Proxy fidelity: the report, resume without retraining, refused inputs."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from deeplab_dpc import search_space
from deeplab_dpc.search import fidelity
from deeplab_dpc.search import statistics


def _score(cell, offset=0.0):
  """A deterministic stand-in score in [0.2, 0.7] from the cell's hash."""
  return 0.2 + 0.5 * (int(search_space.cell_hash(cell)[:6], 16) / 0xFFFFFF) + offset


class _Recorder:
  """Stand-in proxy and full recipes that count their calls (and can fail once)."""

  def __init__(self, fail_after=None):
    self.proxy_calls = 0
    self.full_calls = []
    self.fail_after = fail_after

  def proxy(self, cell):
    self.proxy_calls += 1
    return {'miou': _score(cell)}

  def full(self, cell, workdir, seed):
    if self.fail_after is not None and len(self.full_calls) >= self.fail_after:
      raise KeyboardInterrupt('killed')
    self.full_calls.append((search_space.cell_hash(cell), workdir, seed))
    return {'miou': _score(cell, offset=0.01 * seed)}


def test_draw_cells_is_seeded_distinct_and_extends():
  first = fidelity.draw_cells(6, cell_seed=4)
  assert first == fidelity.draw_cells(6, cell_seed=4)
  assert fidelity.draw_cells(9, cell_seed=4)[:6] == first
  assert len({search_space.cell_hash(c) for c in first}) == 6
  assert fidelity.draw_cells(6, cell_seed=5) != first
  for cell in first:
    search_space.check_in_search_space(cell)
  # Excluding a hash skips that cell and draws on.
  skipped = fidelity.draw_cells(5, cell_seed=4, exclude=(search_space.cell_hash(first[1]),))
  assert skipped == [first[0]] + first[2:6]


def test_report_numbers_and_files(tmp_path):
  recorder = _Recorder()
  config = fidelity.FidelityConfig(work_dir=str(tmp_path), num_cells=6, cell_seed=2,
                                   noise_cells=2, noise_seeds=3, chance_score=0.2)
  report = fidelity.run_fidelity(config, recorder.proxy, recorder.full, recipe={'steps': 5})
  assert recorder.proxy_calls == 6
  assert len(recorder.full_calls) == 6 + 2 * 2
  assert sorted(s for h, _, s in recorder.full_calls if h == report['hashes'][0]) == [0, 1, 2]
  # Proxy and full scores are the same function of the cell at seed 0: perfect ranks.
  assert report['spearman_rho'] == pytest.approx(1.0)
  assert report['kendall_tau'] == pytest.approx(1.0)
  assert report['proxy_top3_contains_full_best']
  assert len(report['proxy_scores']) == len(report['full_scores']) == len(report['cells']) == 6
  cells = fidelity.draw_cells(6, 2)
  assert report['cells'][0] == json.loads(json.dumps(report['cells'][0]))
  assert report['proxy_scores'] == pytest.approx([_score(c) for c in cells])
  # Seed s adds 0.01 * s: each repeated cell's scores are m, m + .01, m + .02 (std .01).
  assert report['seed_noise_std'] == pytest.approx(0.01)
  assert report['full_range_over_noise'] == pytest.approx(
      report['full_spread']['range'] / 0.01)
  assert report['proxy_collapsed'] == 0
  on_disk = json.loads((tmp_path / fidelity.REPORT_FILE).read_text())
  assert on_disk['spearman_rho'] == pytest.approx(report['spearman_rho'])
  plot = np.asarray(Image.open(report['plot']))
  assert plot.shape[2] == 3 and (plot != 255).any()
  assert 'Spearman rho 1.00' in fidelity.format_report(report)


def test_a_killed_study_resumes_without_retraining(tmp_path):
  config = fidelity.FidelityConfig(work_dir=str(tmp_path), num_cells=4, noise_cells=1,
                                   noise_seeds=2)
  killed = _Recorder(fail_after=2)
  with pytest.raises(KeyboardInterrupt):
    fidelity.run_fidelity(config, killed.proxy, killed.full)
  assert killed.proxy_calls == 4 and len(killed.full_calls) == 2
  resumed = _Recorder()
  report = fidelity.run_fidelity(config, resumed.proxy, resumed.full)
  assert resumed.proxy_calls == 0  # Every proxy score was kept.
  assert len(resumed.full_calls) == 4 + 1 - 2  # Only the full trainings not finished.
  assert {(h, s) for h, _, s in resumed.full_calls}.isdisjoint(
      {(h, s) for h, _, s in killed.full_calls})
  again = _Recorder()
  assert fidelity.run_fidelity(config, again.proxy, again.full)['full_scores'] == \
      report['full_scores']
  assert again.proxy_calls == 0 and not again.full_calls


def test_uncorrelated_scores_give_an_interval_around_zero(tmp_path):
  rng = np.random.default_rng(0)
  table = {}

  def proxy(cell):
    return {'miou': float(rng.uniform(0.3, 0.4))}

  def full(cell, workdir, seed):
    key = (search_space.cell_hash(cell), seed)
    table.setdefault(key, float(rng.uniform(0.5, 0.6)))
    return {'miou': table[key]}

  config = fidelity.FidelityConfig(work_dir=str(tmp_path), num_cells=12, noise_cells=0)
  report = fidelity.run_fidelity(config, proxy, full)
  low, high = report['spearman_rho_interval']
  assert low < report['spearman_rho'] < high and low < 0.2
  assert report['seed_noise_std'] is None and report['full_range_over_noise'] is None
  assert report['spearman_rho'] == pytest.approx(
      statistics.spearman_rho(report['proxy_scores'], report['full_scores']))


def test_bad_input_names_the_flag(tmp_path):
  recorder = _Recorder()
  with pytest.raises(ValueError, match='--fidelity_num_cells must be >= 3'):
    fidelity.run_fidelity(fidelity.FidelityConfig(work_dir=str(tmp_path), num_cells=2),
                          recorder.proxy, recorder.full)
  with pytest.raises(ValueError, match='--fidelity_noise_seeds'):
    fidelity.FidelityConfig(work_dir=str(tmp_path), noise_seeds=1).validate()
  with pytest.raises(ValueError, match='--fidelity_noise_cells'):
    fidelity.FidelityConfig(work_dir=str(tmp_path), num_cells=3, noise_cells=4).validate()
  config = fidelity.FidelityConfig(work_dir=str(tmp_path), num_cells=3, noise_cells=0)
  fidelity.run_fidelity(config, recorder.proxy, recorder.full, recipe={'steps': 5})
  with pytest.raises(ValueError, match='--fidelity_cell_seed'):
    fidelity.run_fidelity(fidelity.FidelityConfig(work_dir=str(tmp_path), num_cells=3,
                                                  noise_cells=0, cell_seed=1),
                          recorder.proxy, recorder.full, recipe={'steps': 5})
  with pytest.raises(ValueError, match='steps'):
    fidelity.run_fidelity(config, recorder.proxy, recorder.full, recipe={'steps': 6})
  (tmp_path / fidelity.CONFIG_FILE).write_text('{not json')
  with pytest.raises(ValueError, match=fidelity.CONFIG_FILE):
    fidelity.run_fidelity(config, recorder.proxy, recorder.full, recipe={'steps': 5})
  assert os.path.exists(tmp_path / fidelity.CONFIG_FILE)
