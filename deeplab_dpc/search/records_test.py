"""Trial log, best cells: each finished trial once, partial lines repaired."""

import json
import os

from keras_tuner.src.engine import hyperparameters as hp_module
from keras_tuner.src.engine import trial as trial_module

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import search_space
from deeplab_dpc.search import records
from deeplab_dpc.search import testing


def _trial(trial_id, score=None, status='COMPLETED', reason=None):
  hps = hp_module.HyperParameters()
  cell = testing.SIMPLE_CELL if score is None else [
      dict(testing.SIMPLE_CELL[0]), {'op': 'conv', 'kernel': 3, 'rate': [1, int(trial_id) % 8 * 3
                                                                         or 1], 'input': -1}]
  hps.values = {'cell': json.dumps(cell), 'cell_hash': search_space.cell_hash(cell),
                'origin': 'random', 'parent_hash': ''}
  if reason:
    hps.values['failure_reason'] = reason
  trial = trial_module.Trial(hps, trial_id=trial_id, status=status)
  if score is not None:
    trial.metrics.register('miou', 'max')
    trial.metrics.update('miou', score)
    trial.score = score
  return trial


def test_records_once_and_writes_best_cells(tmp_path):
  recorder = records.TrialRecorder(str(tmp_path), num_best_cells=2, cost_shape=(3, 3, 80),
                                   tensorboard=False)
  assert recorder.record(_trial('0', 0.2))
  assert recorder.record(_trial('1', 0.6))
  assert recorder.record(_trial('2', status='FAILED', reason='proxy task diverged: loss is nan'))
  assert recorder.record(_trial('3', 0.4))
  assert not recorder.record(_trial('1', 0.6))
  entries = records.read_trials(str(tmp_path))
  assert [e['trial_id'] for e in entries] == ['0', '1', '2', '3']
  assert entries[2]['status'] == 'FAILED' and entries[2]['score'] is None
  assert entries[2]['reason'] == 'proxy task diverged: loss is nan'
  assert entries[0]['madds'] > 0 and entries[0]['params'] > 0
  best = sorted(os.listdir(tmp_path / 'best_cells'))
  assert best == ['index.json', f'rank_01_{entries[1]["hash"][:8]}.json',
                  f'rank_02_{entries[3]["hash"][:8]}.json']
  loaded = cell_lib.load_cell(str(tmp_path / 'best_cells' / best[1]))
  assert search_space.cell_hash(loaded) == entries[1]['hash']


def test_partial_last_line_is_cut_and_lost_lines_reconciled(tmp_path):
  recorder = records.TrialRecorder(str(tmp_path), tensorboard=False)
  recorder.record(_trial('0', 0.2))
  with open(tmp_path / records.TRIALS_FILE, 'a') as f:
    f.write('{"trial_id": "1", "sta')  # Killed mid-append.
  assert len(records.read_trials(str(tmp_path))) == 1
  again = records.TrialRecorder(str(tmp_path), tensorboard=False)
  trials = {'0': _trial('0', 0.2), '1': _trial('1', 0.5), '2': _trial('2', status='RUNNING')}
  assert again.reconcile(trials, ['0', '1']) == 1
  entries = records.read_trials(str(tmp_path))
  assert [e['trial_id'] for e in entries] == ['0', '1']


def test_failure_reason():
  message = 'Traceback (most recent call last):\n  ...\nkeras_tuner.src.errors.FailedTrialError: boom\n'
  assert records.failure_reason(message) == 'boom'
  assert records.failure_reason(None) == 'unknown failure'
