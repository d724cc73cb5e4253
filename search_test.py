"""search.py: the command-line contract, resume, and bad input."""

import json
import os
import subprocess
import sys

import pytest

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import search_space
from deeplab_dpc.search import records
from deeplab_dpc.search import testing

ROOT = os.path.dirname(os.path.abspath(__file__))


def _run(*flags, timeout=600):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, os.path.join(ROOT, 'search.py'), *flags], env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return testing.write_demo_subset(str(tmp_path_factory.mktemp('demo')), num_train=24,
                                   num_val=8)


def _contract(data_dir, search_dir, max_trials):
  return _run('--dataset=demo', f'--dataset_dir={data_dir}', f'--search_dir={search_dir}',
              '--model_variant=mobilenet_v2', '--train_crop_size=65,65',
              '--proxy_training_number_of_steps=10', f'--max_trials={max_trials}')


def test_contract_run_then_resume(data_dir, tmp_path):
  search_dir = str(tmp_path / 'S')
  first = _contract(data_dir, search_dir, 3)
  assert first.returncode == 0, first.stderr[-3000:]
  assert 'RANDOMLY INITIALISED' in first.stderr  # No checkpoint: a warning, not an error.
  assert len(records.read_trials(search_dir)) == 3
  second = _contract(data_dir, search_dir, 5)
  assert second.returncode == 0, second.stderr[-3000:]
  with open(os.path.join(search_dir, 'trials.jsonl'), encoding='utf-8') as f:
    lines = [json.loads(line) for line in f]
  assert len(lines) == 5
  assert len({l['trial_id'] for l in lines}) == 5 and len({l['hash'] for l in lines}) == 5
  for line in lines:
    assert line['status'] == 'COMPLETED' and 0.0 <= line['score'] <= 1.0
    assert line['hash'] == search_space.cell_hash(line['cell'])
    assert line['train_seconds'] > 0 and line['madds'] > 0
  best = sorted(n for n in os.listdir(os.path.join(search_dir, 'best_cells'))
                if n.startswith('rank_'))
  assert len(best) == 5
  for name in best:  # The original cell format, as train.py / export.py read it.
    cell = cell_lib.load_cell(os.path.join(search_dir, 'best_cells', name))
    assert len(cell) == 5 and search_space.cell_hash(cell)[:8] in name
  # The cells no other beats on both proxy mIOU and multiply-adds.
  with open(os.path.join(search_dir, 'best_cells', 'pareto.json'), encoding='utf-8') as f:
    pareto = json.load(f)
  assert pareto and {e['hash'] for e in pareto} <= {line['hash'] for line in lines}
  for a in pareto:
    assert 0.0 <= a['score'] <= 1.0 and a['madds'] > 0
    for b in pareto:
      assert a is b or not (b['score'] >= a['score'] and b['madds'] <= a['madds'])
  # The feature cache was built on first use and reused.
  with open(os.path.join(search_dir, 'feature_cache', 'manifest.json'), encoding='utf-8') as f:
    manifest = json.load(f)
  assert manifest['config']['crop_size'] == [65, 65] and manifest['feature_shape'] == [5, 5, 320]

  # A cache that does not match the flags is refused, naming the flag.
  mismatch = _run('--dataset=demo', f'--dataset_dir={data_dir}', f'--search_dir={search_dir}',
                  '--train_crop_size=33,33', '--max_trials=6')
  assert mismatch.returncode == 2
  assert '--train_crop_size' in mismatch.stderr and 'does not match' in mismatch.stderr


def test_evolution_runs_resumes_and_refuses_another_algorithm(data_dir, tmp_path):
  search_dir = str(tmp_path / 'S')
  flags = ('--dataset=demo', f'--dataset_dir={data_dir}', f'--search_dir={search_dir}',
           '--model_variant=mobilenet_v2', '--train_crop_size=33,33',
           '--proxy_training_number_of_steps=3', '--algorithm=evolution',
           '--population_size=2', '--tournament_size=2')
  first = _run(*flags, '--max_trials=2')
  assert first.returncode == 0, first.stderr[-3000:]
  second = _run(*flags, '--max_trials=4')
  assert second.returncode == 0, second.stderr[-3000:]
  lines = records.read_trials(search_dir)
  assert [line['origin'] for line in lines] == ['random', 'random', 'mutation', 'mutation']
  assert os.path.exists(os.path.join(search_dir, 'best_cells', 'pareto.json'))
  other = _run(*flags[:-3], '--algorithm=random_local', '--max_trials=5')
  assert other.returncode == 2 and '--algorithm' in other.stderr
  bad = _run(*flags[:-3], '--algorithm=annealing')
  assert bad.returncode == 2 and '--algorithm must be one of' in bad.stderr


def test_successive_halving_runs_and_resumes(data_dir, tmp_path):
  search_dir = str(tmp_path / 'S')
  flags = ('--dataset=demo', f'--dataset_dir={data_dir}', f'--search_dir={search_dir}',
           '--model_variant=mobilenet_v2', '--train_crop_size=33,33',
           '--proxy_training_number_of_steps=4', '--algorithm=successive_halving', '--eta=2',
           '--num_rungs=2')
  first = _run(*flags, '--max_trials=2')
  assert first.returncode == 0, first.stderr[-3000:]
  second = _run(*flags, '--max_trials=3')
  assert second.returncode == 0, second.stderr[-3000:]
  lines = records.read_trials(search_dir)
  assert [(line['rung'], line['proxy_steps']) for line in lines] == [(0, 2), (0, 2), (1, 4)]
  bad = _run(*flags[:-2], '--eta=1', '--num_rungs=2', '--max_trials=4')
  assert bad.returncode == 2 and '--eta must be >= 2' in bad.stderr


def test_bad_number_of_branches(data_dir, tmp_path):
  result = _run('--dataset=demo', f'--dataset_dir={data_dir}', f'--search_dir={tmp_path}',
                '--num_branches=0')
  assert result.returncode == 2 and '--num_branches' in result.stderr


def test_seed_cell_with_an_unknown_operation(data_dir, tmp_path):
  seed = tmp_path / 'seed.json'
  seed.write_text(json.dumps([{'op': 'max_pool', 'input': -1}] * 5))
  result = _run('--dataset=demo', f'--dataset_dir={data_dir}', f'--search_dir={tmp_path / "S"}',
                f'--seed_cells={seed}')
  assert result.returncode == 2
  assert 'seed.json' in result.stderr and 'max_pool' in result.stderr


def test_missing_dataset(tmp_path):
  result = _run('--dataset=cityscapes', f'--dataset_dir={tmp_path}', f'--search_dir={tmp_path}',
                '--mode=cache')
  assert result.returncode == 2 and 'No TFRecord files' in result.stderr


def _fidelity(data_dir, search_dir, *extra):
  return _run('--mode=fidelity', '--dataset=demo', f'--dataset_dir={data_dir}',
              f'--search_dir={search_dir}', '--model_variant=mobilenet_v2',
              '--depth_multiplier=0.5', '--train_crop_size=33,33',
              '--proxy_training_number_of_steps=5', '--proxy_batch_norm_decay=0.9',
              '--rerank_training_number_of_steps=3', '--rerank_train_batch_size=2',
              '--fidelity_num_cells=3', '--fidelity_noise_cells=0', *extra)


def test_fidelity_mode_reports_and_resumes_without_retraining(data_dir, tmp_path):
  search_dir = tmp_path / 'S'
  first = _fidelity(data_dir, search_dir)
  assert first.returncode == 0, first.stderr[-3000:]
  assert 'Spearman rho' in first.stdout and 'fidelity 6/6' in first.stderr
  work = search_dir / 'fidelity'
  with open(work / 'fidelity.json', encoding='utf-8') as f:
    report = json.load(f)
  assert len(report['proxy_scores']) == len(report['full_scores']) == len(report['cells']) == 3
  assert all(0.0 <= s <= 1.0 for s in report['proxy_scores'] + report['full_scores'])
  for cell in report['cells']:
    search_space.check_in_search_space(cell)
  # Seed noise is measured in fidelity_test.py; three real trainings keep this short.
  assert report['seed_noise_std'] is None and report['seed_noise'] == {}
  assert 0.0 <= report['chance_score'] <= 1.0
  assert os.path.isfile(work / 'fidelity.png')
  # Every result is on disk: a second run trains nothing.
  second = _fidelity(data_dir, search_dir)
  assert second.returncode == 0, second.stderr[-3000:]
  assert second.stderr.count('done before') == 6
  with open(work / 'fidelity.json', encoding='utf-8') as f:
    assert json.load(f)['full_scores'] == report['full_scores']
  # Another cell draw in the same folder is refused, naming the flag.
  other = _fidelity(data_dir, search_dir, '--fidelity_cell_seed=3')
  assert other.returncode == 2 and '--fidelity_cell_seed' in other.stderr


def test_fidelity_needs_three_cells(data_dir, tmp_path):
  result = _fidelity(data_dir, tmp_path / 'S', '--fidelity_num_cells=2')
  assert result.returncode == 2 and '--fidelity_num_cells must be >= 3' in result.stderr
  assert not os.path.exists(tmp_path / 'S' / 'feature_cache')  # Refused before any work.
