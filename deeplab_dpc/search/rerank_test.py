"""Re-ranking: the report, resume, the real trainer."""

import json
import os

import pytest

from deeplab_dpc import cell as cell_lib
from deeplab_dpc.search import records
from deeplab_dpc.search import rerank
from deeplab_dpc.search import statistics
from deeplab_dpc.search import testing
from deeplab_dpc.training import trainer


def _hash(i):
  return f'{i + 1:08x}' + '0' * 32


def _write_trials(search_dir, scores):
  with open(os.path.join(search_dir, records.TRIALS_FILE), 'w') as f:
    for i, score in enumerate(scores):
      cell = [dict(testing.SIMPLE_CELL[0]),
              {'op': 'conv', 'kernel': 3, 'rate': [1, [1, 3, 6, 9][i]], 'input': -1}]
      f.write(json.dumps({'trial_id': str(i), 'status': 'COMPLETED', 'cell': cell,
                          'hash': _hash(i), 'score': score}) + '\n')


def test_report_winner_and_resume(tmp_path):
  _write_trials(str(tmp_path), [0.5, 0.7, 0.6, 0.1])
  full = {_hash(i)[:8]: m for i, m in enumerate([0.30, 0.20, 0.40, 0.9])}
  calls = []

  def fake_train(config, cell, workdir):
    calls.append(workdir)
    return {'miou': full[os.path.basename(workdir)]}

  config = rerank.RerankConfig(search_dir=str(tmp_path), dataset='demo', dataset_dir='x',
                               top_k=3)
  report = rerank.run_rerank(config, fake_train)
  assert [r['proxy_score'] for r in report['cells']] == [0.7, 0.6, 0.5]
  assert report['winner']['hash'] == _hash(2) and report['winner']['full_miou'] == 0.4
  assert report['spearman_rho'] == pytest.approx(
      statistics.spearman_rho([0.7, 0.6, 0.5], [0.2, 0.4, 0.3]))
  assert cell_lib.load_cell(str(tmp_path / rerank.WINNER_FILE))
  with open(tmp_path / rerank.REPORT_FILE) as f:
    assert json.load(f)['winner']['hash'] == _hash(2)
  rerank.run_rerank(config, fake_train)  # Resumes: nothing trained twice.
  assert len(calls) == 3


def test_no_trials(tmp_path):
  with pytest.raises(ValueError, match='no completed trials'):
    rerank.run_rerank(rerank.RerankConfig(search_dir=str(tmp_path), dataset='demo',
                                          dataset_dir='x'))


def test_with_the_trainer_and_evaluator(tmp_path):
  data_dir = testing.write_demo_subset(str(tmp_path / 'demo'), num_train=4, num_val=2,
                                       num_shards=1)
  search_dir = str(tmp_path / 'search')
  os.makedirs(search_dir)
  _write_trials(search_dir, [0.5, 0.7])
  config = rerank.RerankConfig(search_dir=search_dir, dataset='demo', dataset_dir=data_dir,
                               depth_multiplier=0.25, train_crop_size=(33, 33), top_k=2,
                               training_number_of_steps=2, train_batch_size=2,
                               batch_norm_decay=0.9, min_scale_factor=1.0,
                               max_scale_factor=1.0)
  report = rerank.run_rerank(config)
  assert len(report['cells']) == 2
  for row in report['cells']:
    assert 0.0 <= row['full_miou'] <= 1.0
    assert os.path.exists(row['checkpoint'] + '.index')
    # The full models are trained with the configured recipe.
    options = trainer.read_options(os.path.dirname(row['checkpoint']))
    assert options.batch_norm_decay == 0.9
