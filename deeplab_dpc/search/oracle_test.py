"""The search oracle: random + mutation mixing, dedup by canonical hash, top-k, resume."""

import json
import os

import pytest
from keras_tuner.src.engine import trial as trial_module

from deeplab_dpc import search_space
from deeplab_dpc.search import oracle as oracle_lib
from deeplab_dpc.search import testing

_STATUS = trial_module.TrialStatus


def _oracle(tmp_path, **kwargs):
  kwargs.setdefault('max_trials', 50)
  num_branches = kwargs.pop('num_branches', 3)
  oracle = oracle_lib.DensePredictionCellOracle(num_branches, **kwargs)
  oracle._set_project_dir(str(tmp_path), 'study')  # pylint: disable=protected-access
  return oracle


def _finish(oracle, trial, score=None, status=_STATUS.COMPLETED):
  if score is not None:
    oracle.update_trial(trial.trial_id, {'miou': score})
  trial.status = status
  oracle.end_trial(trial)


def _run(oracle, count, score_fn=lambda values: 0.5):
  trials = []
  for _ in range(count):
    trial = oracle.create_trial('tuner0')
    if trial.status != _STATUS.RUNNING:
      break
    _finish(oracle, trial, score_fn(trial.hyperparameters.values))
    trials.append(trial)
  return trials


def _score_by_hash(values):
  return int(values['cell_hash'][:6], 16) / 0xFFFFFF


def test_pure_random_search(tmp_path):
  trials = _run(_oracle(tmp_path, mutation_probability=0.0), 20)
  assert {t.hyperparameters.values['origin'] for t in trials} == {'random'}


def test_mutations_of_the_top_k(tmp_path):
  oracle = _oracle(tmp_path, mutation_probability=1.0, top_k=3)
  scores = {}
  for _ in range(25):
    trial = oracle.create_trial('tuner0')
    values = trial.hyperparameters.values
    if scores:  # After the first result every candidate is a mutation of a top-3 cell.
      assert values['origin'] == 'mutation'
      top3 = sorted(scores, key=lambda h: -scores[h])[:3]
      assert values['parent_hash'] in top3
      parent = json.loads(next(t.hyperparameters.values['cell'] for t in oracle.trials.values()
                               if t.hyperparameters.values['cell_hash'] == values['parent_hash']))
      child = json.loads(values['cell'])
      differences = sum(a != b for a, b in zip(parent, child))
      assert differences == 1  # One field of one branch.
    else:
      assert values['origin'] == 'random'
    scores[values['cell_hash']] = _score_by_hash(values)
    _finish(oracle, trial, scores[values['cell_hash']])


def test_mixing_ratio(tmp_path):
  trials = _run(_oracle(tmp_path, mutation_probability=0.5, max_trials=120), 120,
                _score_by_hash)
  mutations = sum(t.hyperparameters.values['origin'] == 'mutation' for t in trials[1:])
  assert 35 <= mutations <= 85


def test_no_two_trials_share_a_canonical_hash_until_the_space_is_exhausted(tmp_path):
  # B = 1: 81 cells. Mutations and random draws alike must skip the ones tried.
  oracle = _oracle(tmp_path, num_branches=1, max_trials=200, mutation_probability=0.5)
  trials = _run(oracle, 200)
  hashes = [t.hyperparameters.values['cell_hash'] for t in trials]
  assert len(hashes) == len(set(hashes)) == search_space.space_size(1)
  assert 'no untried cell' in oracle.stop_reason


def test_equivalent_cells_are_duplicates(tmp_path):
  cell = [{'op': 'conv', 'kernel': 1, 'input': -1},
          {'op': 'conv', 'kernel': 3, 'rate': [1, 6], 'input': -1},
          {'op': 'pyramid_pooling', 'grid_size': [2, 2], 'input': 0}]
  permuted = [cell[1], cell[0], dict(cell[2], input=1)]
  assert search_space.cell_hash(cell) == search_space.cell_hash(permuted)
  oracle = _oracle(tmp_path, seed_cells=[cell, permuted], mutation_probability=0.0)
  trials = _run(oracle, 3)
  assert [t.hyperparameters.values['origin'] for t in trials] == ['seed', 'random', 'random']
  assert len({t.hyperparameters.values['cell_hash'] for t in trials}) == 3


def test_budget(tmp_path):
  budget = search_space.CostBudget(max_params=200_000)
  oracle = _oracle(tmp_path, budget=budget, cost_shape=(3, 3, 80), mutation_probability=0.5)
  for trial in _run(oracle, 15):
    cost = search_space.cell_cost(json.loads(trial.hyperparameters.values['cell']), 3, 3, 80)
    assert cost['branch_weights'] <= 200_000


def test_consecutive_failures_stop_the_search(tmp_path):
  oracle = _oracle(tmp_path, max_consecutive_failed_trials=2)
  for _ in range(2):
    _finish(oracle, oracle.create_trial('tuner0'), status=_STATUS.FAILED)
  assert oracle.create_trial('tuner0').status == _STATUS.STOPPED
  assert '2 trials failed in a row' in oracle.stop_reason


def test_bad_input(tmp_path):
  with pytest.raises(ValueError, match='num_branches'):
    _oracle(tmp_path, num_branches=0)
  with pytest.raises(ValueError, match='--mutation_probability'):
    _oracle(tmp_path, mutation_probability=1.5)
  with pytest.raises(ValueError, match='seed cell 0.*branch 0.*op'):
    _oracle(tmp_path, seed_cells=[[{'op': 'max_pool', 'input': -1}] * 3])
  with pytest.raises(ValueError, match='seed cell 0'):
    _oracle(tmp_path, seed_cells=[testing.SIMPLE_CELL[:2]])  # B = 2, not 3.


def test_reload_reruns_interrupted_trials_only(tmp_path):
  oracle = _oracle(tmp_path, max_trials=10)
  done = _run(oracle, 2)
  interrupted = oracle.create_trial('tuner0')
  # Killed between writing trial.json (finished) and oracle.json (still running).
  half = oracle.create_trial('tuner1')
  oracle.update_trial(half.trial_id, {'miou': 0.3})
  oracle.trials[half.trial_id].status = _STATUS.COMPLETED
  oracle.trials[half.trial_id].score = 0.3
  oracle._save_trial(oracle.trials[half.trial_id])  # pylint: disable=protected-access

  resumed = _oracle(tmp_path, max_trials=10)
  resumed.reload()
  again = resumed.create_trial('tuner0')
  assert again.trial_id == interrupted.trial_id
  assert (again.hyperparameters.values['cell_hash'] ==
          interrupted.hyperparameters.values['cell_hash'])
  _finish(resumed, again, 0.4)
  fresh = resumed.create_trial('tuner0')
  assert fresh.trial_id not in {t.trial_id for t in done} | {half.trial_id, again.trial_id}
  assert resumed.trials[half.trial_id].status == _STATUS.COMPLETED


def test_state_files_are_written_atomically(tmp_path):
  oracle = _oracle(tmp_path)
  _run(oracle, 1)
  project = os.path.join(tmp_path, 'study')
  assert not [n for n in os.listdir(project) if n.startswith('.tmp-')]
  with open(os.path.join(project, 'oracle.json')) as f:
    assert json.load(f)['end_order'] == ['00']


def test_cells_equal_on_the_cached_features_are_tried_once(tmp_path):
  # B = 1 on 17x17 features at output stride 8 (rates doubled): rates 9..21 all read
  # only padding off the centre, so per side {1, 3, 6, >=9} differ: 1 + 4 * 4 + 16
  # pooling grids = 33 distinct cells out of the space's 81.
  oracle = _oracle(tmp_path, num_branches=1, max_trials=200, mutation_probability=0.5,
                   cost_shape=(17, 17, 16), rate_multiplier=2)
  trials = _run(oracle, 200)
  effective = [search_space.cell_hash(search_space.effective_cell(
      json.loads(t.hyperparameters.values['cell']), (17, 17), 2)) for t in trials]
  assert len(effective) == len(set(effective)) == 33
  assert 'no untried cell' in oracle.stop_reason


def _evolution(tmp_path, **kwargs):
  kwargs.setdefault('max_trials', 60)
  oracle = oracle_lib.EvolutionOracle(3, **kwargs)
  oracle._set_project_dir(str(tmp_path), 'study')  # pylint: disable=protected-access
  return oracle


def test_evolution_fills_the_population_then_mutates_tournament_winners(tmp_path):
  oracle = _evolution(tmp_path, population_size=4, tournament_size=2)
  hashes = []
  for k in range(30):
    trial = oracle.create_trial('tuner0')
    values = trial.hyperparameters.values
    if k < 4:
      assert values['origin'] == 'random'
    else:
      # The parent is alive: one of the 4 most recently completed trials.
      assert values['origin'] == 'mutation'
      assert values['parent_hash'] in hashes[-4:]
    hashes.append(values['cell_hash'])
    _finish(oracle, trial, _score_by_hash(values))
  assert len(set(hashes)) == len(hashes)


def test_evolution_ages_out_the_best_cell(tmp_path):
  # Regularised evolution: a member dies of age whatever its score.
  oracle = _evolution(tmp_path, population_size=2, tournament_size=2)
  first = oracle.create_trial('tuner0')
  _finish(oracle, first, 0.99)
  scores = iter([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
  for _ in range(7):
    trial = oracle.create_trial('tuner0')
    _finish(oracle, trial, next(scores))
  best_hash = first.hyperparameters.values['cell_hash']
  later = [t.hyperparameters.values for t in oracle.trials.values()][3:]
  assert all(v['parent_hash'] != best_hash for v in later)
  # With the whole population in each tournament, the parent is its better member.
  members = oracle.population()
  trial = oracle.create_trial('tuner0')
  best = max(members, key=lambda t: t.score)
  assert trial.hyperparameters.values['parent_hash'] == best.hyperparameters.values['cell_hash']


def test_evolution_proposes_the_same_cells_again(tmp_path):
  runs = []
  for name in ('a', 'b'):
    oracle = _evolution(tmp_path / name, population_size=3, tournament_size=2)
    runs.append([t.hyperparameters.values['cell'] for t in _run(oracle, 12, _score_by_hash)])
  assert runs[0] == runs[1]


@pytest.mark.parametrize('sizes, flag', [((1, 1), '--population_size'),
                                         ((4, 0), '--tournament_size'),
                                         ((4, 5), '--tournament_size')])
def test_evolution_sizes_are_checked(tmp_path, sizes, flag):
  with pytest.raises(ValueError, match=flag):
    _evolution(tmp_path, population_size=sizes[0], tournament_size=sizes[1])


def test_rung_steps_end_at_the_full_budget():
  assert oracle_lib.rung_steps(90, 3, 3) == [10, 30, 90]
  assert oracle_lib.rung_steps(50, 2, 2) == [25, 50]
  assert oracle_lib.rung_steps(7, 3, 1) == [7]
  with pytest.raises(ValueError, match='--eta must be >= 2'):
    oracle_lib.rung_steps(90, 1, 3)
  with pytest.raises(ValueError, match='--num_rungs must be >= 1'):
    oracle_lib.rung_steps(90, 3, 0)
  with pytest.raises(ValueError, match='--num_rungs=4.*--proxy_training_number_of_steps >= 27'):
    oracle_lib.rung_steps(20, 3, 4)


def test_successive_halving_promotes_the_best_third_of_each_rung(tmp_path):
  oracle = oracle_lib.SuccessiveHalvingOracle(3, 40, steps=[10, 30, 90], eta=3)
  oracle._set_project_dir(str(tmp_path), 'study')  # pylint: disable=protected-access
  by_rung = {}
  for _ in range(40):
    trial = oracle.create_trial('tuner0')
    values = trial.hyperparameters.values
    rung = values['rung']
    assert values['proxy_steps'] == [10, 30, 90][rung]
    if rung == 0:
      assert values['origin'] == 'random'
    else:
      # Promoted: in the best third of its rung below as it stands now, not yet promoted.
      assert values['origin'] == 'promotion' and values['parent_hash'] == values['cell_hash']
      below = sorted(by_rung[rung - 1], key=lambda h: -_score_by_hash({'cell_hash': h}))
      assert values['cell_hash'] in below[:len(below) // 3]
      assert values['cell_hash'] not in by_rung.get(rung, [])
    by_rung.setdefault(rung, []).append(values['cell_hash'])
    _finish(oracle, trial, _score_by_hash(values))
  assert len(by_rung[1]) >= 3 and by_rung.get(2)
  # Nothing is left to promote: every rung's best third went on.
  for rung in (0, 1):
    best = sorted(by_rung[rung], key=lambda h: -_score_by_hash({'cell_hash': h}))
    assert set(best[:len(best) // 3]) <= set(by_rung[rung + 1])


def test_prescreen_proposes_the_best_of_each_drawn_batch(tmp_path):
  batches = []

  def score(cell):
    value = _score_by_hash({'cell_hash': search_space.cell_hash(cell)})
    batches[-1].append((search_space.cell_hash(cell), value))
    return value

  oracle = _oracle(tmp_path / 'screened', mutation_probability=0.5, prescreen=('synflow', 0.25),
                   prescreen_fn=score)
  plain = _oracle(tmp_path / 'plain', mutation_probability=0.5)
  for _ in range(8):
    batches.append([])
    trial = oracle.create_trial('tuner0')
    values = trial.hyperparameters.values
    assert len(batches[-1]) == values['zero_cost_candidates'] == 4
    assert len({h for h, _ in batches[-1]}) == 4  # Distinct candidates.
    best_hash, best_score = max(batches[-1], key=lambda item: item[1])
    assert values['cell_hash'] == best_hash and values['zero_cost_score'] == best_score
    assert values['zero_cost_name'] == 'synflow'
    _finish(oracle, trial, 0.5)
  # The first candidate of each batch is the one the search proposes without a pre-screen.
  assert plain.create_trial('tuner0').hyperparameters.values['cell_hash'] == batches[0][0][0]
  with pytest.raises(ValueError, match='prescreen_fn'):
    _oracle(tmp_path / 'x', prescreen=('synflow', 0.5))
