"""Studies end to end: failed trials, local workers, kill and resume, refusals."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from deeplab_dpc.search import proxy_task
from deeplab_dpc.search import records
from deeplab_dpc.search import study
from deeplab_dpc.search import testing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return testing.write_demo_subset(str(tmp_path_factory.mktemp('demo')), num_train=8, num_val=4)


@pytest.fixture(scope='module')
def cache_dir(data_dir, tmp_path_factory):
  cache_dir = str(tmp_path_factory.mktemp('cache'))
  config = testing.tiny_cache_config(data_dir)
  from deeplab_dpc.search import feature_cache
  feature_cache.build_feature_cache(config, cache_dir)
  return cache_dir


def _config(search_dir, data_dir, cache_dir, **kwargs):
  proxy = proxy_task.ProxyConfig(training_number_of_steps=kwargs.pop('steps', 3),
                                 batch_size=4, eval_batch_size=4)
  return study.SearchConfig(search_dir=search_dir, cache=testing.tiny_cache_config(data_dir),
                            cache_dir=cache_dir, proxy=proxy, num_branches=3, **kwargs)


def test_failed_trial_is_recorded_and_the_search_goes_on(data_dir, cache_dir, tmp_path,
                                                          monkeypatch):
  real = proxy_task.run_proxy_task
  calls = []

  def second_diverges(cell, *args, **kwargs):
    calls.append(cell)
    if len(calls) == 2:
      raise proxy_task.ProxyTaskDiverged('proxy task diverged: loss is nan at step 7 of 10')
    return real(cell, *args, **kwargs)

  monkeypatch.setattr(proxy_task, 'run_proxy_task', second_diverges)
  summary = study.run_search(_config(str(tmp_path), data_dir, cache_dir, max_trials=4))
  entries = records.read_trials(str(tmp_path))
  assert [e['status'] for e in entries] == ['COMPLETED', 'FAILED', 'COMPLETED', 'COMPLETED']
  assert entries[1]['reason'] == 'proxy task diverged: loss is nan at step 7 of 10'
  assert entries[1]['score'] is None
  assert summary['completed'] == 3 and summary['failed'] == 1
  for entry in entries:
    assert len(entry['hash']) == 40 and entry['madds'] > 0
  assert os.listdir(tmp_path / 'tensorboard')


def test_resume_with_other_search_flags_is_refused(data_dir, cache_dir, tmp_path):
  study.run_search(_config(str(tmp_path), data_dir, cache_dir, max_trials=1))
  with pytest.raises(ValueError, match='--num_branches'):
    study.run_search(dataclasses.replace(
        _config(str(tmp_path), data_dir, cache_dir, max_trials=2), num_branches=4))
  config = _config(str(tmp_path), data_dir, cache_dir, max_trials=2, steps=4)
  with pytest.raises(ValueError, match='--proxy_training_number_of_steps'):
    study.run_search(config)


def test_evolution_runs_resumes_and_keeps_its_algorithm(data_dir, cache_dir, tmp_path):
  config = _config(str(tmp_path), data_dir, cache_dir, max_trials=3, algorithm='evolution',
                   population_size=2, tournament_size=1)
  study.run_search(config)
  summary = study.run_search(dataclasses.replace(config, max_trials=4))
  entries = records.read_trials(str(tmp_path))
  assert [e['trial_id'] for e in entries] == ['0', '1', '2', '3'] and summary['completed'] == 4
  assert [e['origin'] for e in entries] == ['random', 'random', 'mutation', 'mutation']
  with pytest.raises(ValueError, match='--algorithm: the study .* started with \'evolution\''):
    study.run_search(dataclasses.replace(config, max_trials=5, algorithm='random_local'))
  # A study recorded before `algorithm` existed was the paper's search.
  path = tmp_path / study.STUDY_FILE
  stored = json.loads(path.read_text())
  del stored['algorithm']
  path.write_text(json.dumps(stored))
  with pytest.raises(ValueError, match='--algorithm'):
    study.run_search(dataclasses.replace(config, max_trials=5))


def test_successive_halving_trains_each_rung_its_steps_and_ranks_by_rung(
    data_dir, cache_dir, tmp_path):
  config = _config(str(tmp_path), data_dir, cache_dir, max_trials=5, steps=4,
                   algorithm='successive_halving', eta=2, num_rungs=2)
  study.run_search(config)
  entries = records.read_trials(str(tmp_path))
  assert [(e['rung'], e['proxy_steps'], e['origin']) for e in entries] == [
      (0, 2, 'random'), (0, 2, 'random'), (1, 4, 'promotion'), (0, 2, 'random'),
      (0, 2, 'random')]
  rung0 = [e for e in entries if e['rung'] == 0][:2]
  assert entries[2]['hash'] == max(rung0, key=lambda e: e['score'])['hash']
  # The cell that reached the full budget ranks first, whatever the shorter runs scored.
  with open(tmp_path / 'best_cells' / 'index.json', encoding='utf-8') as f:
    assert json.load(f)[0]['hash'] == entries[2]['hash']
  with pytest.raises(ValueError, match='--eta: the study .* started with 2'):
    study.run_search(dataclasses.replace(config, max_trials=6, eta=3))


def test_prescreen_records_each_trials_zero_cost_score(data_dir, cache_dir, tmp_path):
  study.run_search(_config(str(tmp_path), data_dir, cache_dir, max_trials=2,
                           prescreen='grad_norm:0.5'))
  entries = records.read_trials(str(tmp_path))
  assert len(entries) == 2
  for entry in entries:
    assert entry['zero_cost']['name'] == 'grad_norm' and entry['zero_cost']['candidates'] == 2
    assert entry['zero_cost']['score'] > 0


@pytest.mark.parametrize('fields, flag', [
    (dict(algorithm='annealing'),
     '--algorithm must be one of random_local, evolution, successive_halving'),
    (dict(algorithm='successive_halving', eta=1), '--eta must be >= 2'),
    (dict(algorithm='successive_halving', num_rungs=3), '--num_rungs=3'),
    (dict(prescreen='snip:0.5'), '--prescreen: unknown zero-cost score'),
    (dict(prescreen='synflow:2'), r'--prescreen=synflow:2: FRACTION'),
    (dict(algorithm='evolution', population_size=1), '--population_size'),
    (dict(algorithm='evolution', population_size=4, tournament_size=9), '--tournament_size'),
])
def test_bad_algorithm_settings_name_the_flag(data_dir, cache_dir, tmp_path, fields, flag):
  with pytest.raises(ValueError, match=flag):
    _config(str(tmp_path), data_dir, cache_dir, **fields).validate()


def test_a_corrupt_study_file_names_the_file_and_keeps_the_trials(data_dir, cache_dir,
                                                                tmp_path):
  config = _config(str(tmp_path), data_dir, cache_dir, max_trials=1)
  study.run_search(config)
  trials = (tmp_path / records.TRIALS_FILE).read_bytes()
  (tmp_path / study.STUDY_FILE).write_text('{"num_branches": 3, "se')  # Cut off.
  with pytest.raises(ValueError, match=r'study\.json is not valid JSON.*--search_dir'):
    study.run_search(dataclasses.replace(config, max_trials=2))
  assert (tmp_path / records.TRIALS_FILE).read_bytes() == trials


def test_two_local_workers_run_every_trial_exactly_once(data_dir, cache_dir, tmp_path):
  summary = study.run_search(_config(str(tmp_path), data_dir, cache_dir, max_trials=5,
                                     num_workers=2))
  entries = records.read_trials(str(tmp_path))
  assert sorted(e['trial_id'] for e in entries) == ['0', '1', '2', '3', '4']
  assert len({e['hash'] for e in entries}) == 5
  assert all(e['status'] == 'COMPLETED' and 0.0 <= e['score'] <= 1.0 for e in entries)
  assert summary['completed'] == 5
  # Each trial ran in exactly one worker, and both workers took part.
  ran = {}
  for worker in ('worker0', 'worker1'):
    with open(tmp_path / 'logs' / f'{worker}.log', encoding='utf-8') as f:
      for line in f:
        if '] Trial ' in line and 'proxy steps' in line:
          trial_id = line.split('] Trial ')[1].split()[0]
          ran.setdefault(trial_id, []).append(worker)
  assert sorted(ran) == ['0', '1', '2', '3', '4']
  assert all(len(workers) == 1 for workers in ran.values())
  assert {w for workers in ran.values() for w in workers} == {'worker0', 'worker1'}


def _local_worker_pid(search_dir, tuner_id):
  """Pid of the local search process started for `tuner_id` of `search_dir`, or None."""
  for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
      with open(f'/proc/{pid}/environ', 'rb') as f:
        environ = f.read().split(b'\0')
      with open(f'/proc/{pid}/cmdline', 'rb') as f:
        cmdline = f.read()
    except OSError:
      continue
    if (f'KERASTUNER_TUNER_ID={tuner_id}'.encode() in environ and
        search_dir.encode() in cmdline):
      return int(pid)
  return None


@pytest.mark.skipif(sys.platform != 'linux', reason='finds the worker through /proc')
def test_killed_local_worker_is_restarted_and_the_study_completes(data_dir, cache_dir,
                                                                  tmp_path, caplog):
  search_dir = str(tmp_path)
  killed = []

  def kill_worker0_once_a_trial_runs():
    deadline = time.time() + 240
    while time.time() < deadline:
      state = _trial_state(search_dir, 0)
      pid = _local_worker_pid(search_dir, 'worker0')
      if state is not None and state['status'] == 'RUNNING' and pid is not None:
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        return
      time.sleep(0.1)

  killer = threading.Thread(target=kill_worker0_once_a_trial_runs, daemon=True)
  killer.start()
  with caplog.at_level('WARNING'):
    summary = study.run_supervised(_config(search_dir, data_dir, cache_dir, max_trials=4,
                                           num_workers=2, steps=150))
  killer.join()
  assert killed, 'no trial started'
  entries = records.read_trials(search_dir)
  assert sorted(e['trial_id'] for e in entries) == ['0', '1', '2', '3']
  assert all(e['status'] == 'COMPLETED' for e in entries)
  assert summary['completed'] == 4
  assert f'worker0 (pid {killed[0]}) exited with code -9; restarting it (1 of 3)' in caplog.text


def test_a_worker_that_keeps_dying_fails_the_study_after_its_restarts(data_dir, cache_dir,
                                                                      tmp_path, monkeypatch):
  spawned = []
  real_spawn = study._spawn

  def spawn(config_path, tuner_id, port, log_path):
    if tuner_id == 'worker0':  # A worker that cannot even start.
      process = subprocess.Popen([sys.executable, '-c', 'import sys; sys.exit(3)'])
      spawned.append(process)
      return process
    return real_spawn(config_path, tuner_id, port, log_path)

  monkeypatch.setattr(study, '_spawn', spawn)
  with pytest.raises(RuntimeError, match=r"worker0': 3\} \(after 2 restarts each\)"):
    study.run_supervised(_config(str(tmp_path), data_dir, cache_dir, max_trials=2,
                                 num_workers=1), max_worker_restarts=2)
  assert len(spawned) == 3


def _search_command(data_dir, search_dir, cache_dir, max_trials, steps):
  return [sys.executable, os.path.join(ROOT, 'search.py'), '--dataset=demo',
          f'--dataset_dir={data_dir}', f'--search_dir={search_dir}', f'--cache_dir={cache_dir}',
          '--model_variant=mobilenet_v2', '--depth_multiplier=0.25', '--train_crop_size=33,33',
          '--cache_examples_per_shard=8', '--num_branches=3', '--proxy_batch_size=4',
          f'--proxy_training_number_of_steps={steps}', f'--max_trials={max_trials}']


def _trial_state(search_dir, trial_id):
  path = os.path.join(search_dir, 'study', f'trial_{trial_id}', 'trial.json')
  if not os.path.exists(path):
    return None
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def test_killed_search_resumes_rerunning_the_interrupted_trial(data_dir, cache_dir, tmp_path):
  search_dir = str(tmp_path / 'search')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  command = _search_command(data_dir, search_dir, cache_dir, 3, 400)
  process = subprocess.Popen(command, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  interrupted = None
  try:
    while time.time() < deadline and process.poll() is None:
      state = _trial_state(search_dir, 1)
      if state is not None and state['status'] == 'RUNNING':
        interrupted = state
        time.sleep(1.0)  # Well inside trial 1's training.
        break
      time.sleep(0.2)
  finally:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
  assert interrupted is not None, 'the search never reached trial 1'
  before = records.read_trials(search_dir)
  assert [e['trial_id'] for e in before] == ['0']

  result = subprocess.run(_search_command(data_dir, search_dir, cache_dir, 3, 400), env=env,
                          capture_output=True, text=True, timeout=400, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  after = records.read_trials(search_dir)
  assert [e['trial_id'] for e in after] == ['0', '1', '2']
  assert after[0] == before[0]  # Completed trials are kept, not repeated.
  assert after[1]['hash'] == interrupted['hyperparameters']['values']['cell_hash']
  assert 'Trial 0 (' not in result.stderr  # Trial 0 did not run again...
  assert 'Trial 1 (' in result.stderr     # ...the interrupted one did.
