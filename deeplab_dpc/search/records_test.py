"""Trial log, best cells: each finished trial once, partial lines repaired."""

import json
import os

import pytest

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
  assert best == ['index.json', 'pareto.json', f'rank_01_{entries[1]["hash"][:8]}.json',
                  f'rank_02_{entries[3]["hash"][:8]}.json']
  with open(tmp_path / 'best_cells' / 'pareto.json', encoding='utf-8') as f:
    pareto = json.load(f)
  assert pareto and {e['hash'] for e in pareto} <= {e['hash'] for e in entries}
  assert all(set(e) >= {'hash', 'score', 'madds', 'cell'} for e in pareto)
  loaded = cell_lib.load_cell(str(tmp_path / 'best_cells' / best[2]))
  assert search_space.cell_hash(loaded) == entries[1]['hash']


def test_pareto_front_keeps_the_cells_nothing_beats_on_score_and_cost():
  def entry(trial_id, score, madds, status='COMPLETED'):
    return {'trial_id': trial_id, 'status': status, 'score': score, 'madds': madds,
            'hash': f'h{trial_id}'}
  entries = [entry('0', 0.5, 100), entry('1', 0.6, 300), entry('2', 0.55, 300),
             entry('3', 0.4, 50), entry('4', 0.6, 300), entry('5', 0.7, 900),
             entry('6', 0.9, 10, status='FAILED'), entry('7', 0.3, 200),
             entry('8', 0.5, 100)]
  front = records.pareto_front(entries)
  assert [e['trial_id'] for e in front] == ['3', '0', '1', '5']
  for a in front:
    for b in front:
      assert a is b or not (b['score'] >= a['score'] and b['madds'] <= a['madds'])
  assert records.pareto_front([]) == []


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


def _events(directory):
  import glob as glob_lib
  import tensorflow as tf
  out = []
  for path in glob_lib.glob(os.path.join(directory, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      out.extend(event.summary.value)
  return out


def test_hparams_dashboard_holds_each_trial_cell_and_scores(tmp_path):
  import tensorflow as tf
  from tensorboard.plugins.hparams import metadata
  from tensorboard.plugins.hparams import plugin_data_pb2
  recorder = records.TrialRecorder(str(tmp_path), cost_shape=(3, 3, 80), max_trials=4,
                                   num_branches=2)
  recorder.record(_trial('0', 0.2))
  recorder.record(_trial('1', 0.6))
  recorder.record(_trial('2', status='FAILED', reason='boom'))
  root = tmp_path / records.TENSORBOARD_DIR / 'trials'
  experiment = [v for v in _events(str(root)) if v.tag == metadata.EXPERIMENT_TAG]
  assert len(experiment) == 1
  data = plugin_data_pb2.HParamsPluginData.FromString(experiment[0].metadata.plugin_data.content)
  assert [h.name for h in data.experiment.hparam_infos] == [
      'origin', 'branch0_op', 'branch0_input', 'branch1_op', 'branch1_input']
  assert {m.name.tag for m in data.experiment.metric_infos} == {'proxy_miou', 'madds', 'params'}
  # One run per completed trial; the failed one has none.
  assert sorted(p for p in os.listdir(root) if not p.startswith('events')) == ['0', '1']
  values = _events(str(root / '1'))
  start = [v for v in values if v.tag == metadata.SESSION_START_INFO_TAG][0]
  info = plugin_data_pb2.HParamsPluginData.FromString(start.metadata.plugin_data.content)
  hparams = {k: v.string_value or v.number_value for k, v in info.session_start_info.hparams.items()}
  entry = records.read_trials(str(tmp_path))[1]
  assert hparams['branch1_op'] == search_space.operation_name(
      cell_lib.parse_cell(entry['cell'])[1])
  assert hparams['branch1_input'] == -1 and hparams['origin'] == 'random'
  scalars = {v.tag: float(tf.make_ndarray(v.tensor)) for v in values if v.tag in (
      'proxy_miou', 'madds')}
  assert abs(scalars['proxy_miou'] - 0.6) < 1e-6
  assert scalars['madds'] == pytest.approx(entry['madds'], rel=1e-6)


def test_progress_line_counts_trials_and_names_the_best(tmp_path):
  recorder = records.TrialRecorder(str(tmp_path), tensorboard=False, max_trials=5)
  recorder.record(_trial('0', 0.2))
  recorder.record(_trial('1', 0.6))
  line = recorder.progress()
  best = records.read_trials(str(tmp_path))[1]
  assert line.startswith('trial 2/5, best so far 0.6000 (' + best['hash'][:8] + ')')
  assert 'ETA' in line
