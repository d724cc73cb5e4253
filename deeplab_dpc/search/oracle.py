"""The search algorithm of the paper as a KerasTuner Oracle.

Chen et al. (NeurIPS 2018, Sec. 4.2) search with random search plus local search:
each new candidate is, with probability `mutation_probability`, a mutation of one of
the `top_k` best cells seen so far (one branch changes its operation or its input,
`search_space.mutate_cell`), and otherwise a cell sampled uniformly from the space.
User-supplied seed cells run first. `EvolutionOracle` (regularised evolution) and
`SuccessiveHalvingOracle` (rungs of proxy steps) are the same oracle with another
way of choosing the next candidate (`search.py --algorithm`). Candidates are keyed
by the canonical hash of their cell as it acts on the cached features (`search_space.cell_hash` of
`search_space.effective_cell`), so a cell equivalent to one already tried (the same
branches in another order, or rates that differ only where they read nothing but
padding, common on small feature maps) is never trained twice, and cells over the
cost budget are never proposed.

A trial's hyperparameters hold the cell as a JSON string (`cell`) with its `cell_hash`,
its `origin` (seed / random / mutation) and `parent_hash`; they travel unchanged over
KerasTuner's gRPC between chief and workers.

On top of KerasTuner's own persistence this oracle writes its state files
atomically, repairs the two windows where a kill leaves `oracle.json` and a
`trial.json` disagreeing, and hands each finished trial to a `TrialRecorder`.
"""

import json
import math
import os
import random
from typing import Any, Sequence

import keras_tuner
from absl import logging
from keras_tuner.src.engine import trial as trial_module

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import fileio
from deeplab_dpc import search_space

OBJECTIVE = 'miou'
SEED, RANDOM, MUTATION, PROMOTION = 'seed', 'random', 'mutation', 'promotion'
_STATUS = trial_module.TrialStatus
# Draws before concluding that no new cell is left (in the budget, or at all).
_MAX_DRAWS = 2000


def _scored(trial) -> bool:
  """A trial that completed with a score (a candidate's possible parent)."""
  return trial.status == _STATUS.COMPLETED and trial.score is not None


class DensePredictionCellOracle(keras_tuner.Oracle):
  """Random search plus mutations of the top-k cells, deduplicated by canonical hash.

  Args:
    num_branches: B, branches per cell.
    max_trials: Trials of the study (a larger value on restart extends it).
    mutation_probability: Chance that a candidate mutates a top-k cell (once at
      least one trial has completed); 0 is pure random search.
    top_k: How many of the best cells are mutation parents.
    seed_cells: Cells (JSON form) to try first, in order.
    budget: A `search_space.CostBudget`, or None.
    cost_shape: (height, width, channels) of the cached features: the budget is
      evaluated on them (needed with a budget), and cells equal on them are one.
    seed: Random seed of the search; every draw derives from it and the trial id,
      so a resumed study proposes what an uninterrupted one would.
    rate_multiplier: The factor the cell applies to its rates on the cached
      features (`16 // output_stride`), for the equivalence of rates.
    recorder: A `records.TrialRecorder` told about every finished trial, or None.
    max_consecutive_failed_trials: Stop the search after this many failures in a
      row (something is wrong beyond one cell, e.g. the learning rate).
    prescreen: (zero-cost score name, fraction) or None: each proposal draws
      ceil(1 / fraction) candidates and keeps the best by `prescreen_fn`.
    prescreen_fn: cell -> zero-cost score (higher is better), with `prescreen`.
  """

  def __init__(self, num_branches: int, max_trials: int, *,
               mutation_probability: float = 0.5, top_k: int = 10,
               seed_cells: Sequence[Any] = (), budget=None,
               cost_shape: tuple[int, int, int] | None = None, rate_multiplier: int = 1,
               seed: int = 0, recorder=None, max_consecutive_failed_trials: int = 10,
               prescreen: tuple[str, float] | None = None, prescreen_fn=None):
    search_space.space_size(num_branches)  # ValueError naming num_branches.
    if not 0.0 <= mutation_probability <= 1.0:
      raise ValueError('--mutation_probability must be in [0, 1], got '
                       f'{mutation_probability}')
    if int(top_k) < 1:
      raise ValueError(f'--top_k must be >= 1, got {top_k}')
    if int(max_trials) < 1:
      raise ValueError(f'--max_trials must be >= 1, got {max_trials}')
    if budget is not None and cost_shape is None:
      raise ValueError('a cost budget needs the feature shape (cost_shape)')
    if prescreen is not None and prescreen_fn is None:
      raise ValueError('a pre-screen needs its scoring function (prescreen_fn)')
    super().__init__(objective=keras_tuner.Objective(OBJECTIVE, 'max'),
                     max_trials=int(max_trials), seed=int(seed) + 1,
                     max_retries_per_trial=0,
                     # Checked in `populate_space` instead, which can stop cleanly.
                     max_consecutive_failed_trials=10 ** 9)
    self.search_seed = int(seed)
    self.num_branches = int(num_branches)
    self.mutation_probability = float(mutation_probability)
    self.top_k = int(top_k)
    self.seed_cells = [cell_lib.cell_to_json(
        search_space.validate_seed_cell(c, f'seed cell {i}', num_branches=self.num_branches))
        for i, c in enumerate(seed_cells)]
    self.budget = budget
    self.cost_shape = cost_shape
    self.rate_multiplier = int(rate_multiplier)
    self.recorder = recorder
    self.stop_after_failures = int(max_consecutive_failed_trials)
    self.stop_reason = None
    self.verbose = 0
    self.prescreen = prescreen
    self.prescreen_fn = prescreen_fn

  # -- Proposing cells.

  def _key(self, cell) -> str:
    """Equal for cells that compute the same function on the cached features."""
    if self.cost_shape is None:
      return search_space.cell_hash(cell)
    return search_space.cell_hash(search_space.effective_cell(
        cell, tuple(self.cost_shape[:2]), self.rate_multiplier))

  def _seen_hashes(self) -> set[str]:
    return {self._key(json.loads(t.hyperparameters.values['cell']))
            for t in self.trials.values() if 'cell' in t.hyperparameters.values}

  def _admits(self, cell) -> bool:
    if self.budget is None:
      return True
    return self.budget.admits(search_space.cell_cost(cell, *self.cost_shape))

  def _ranked_completed(self) -> list:
    return sorted(filter(_scored, self.trials.values()), key=lambda t: (-t.score, t.trial_id))

  def _failure_streak(self) -> int:
    streak = 0
    for trial_id in reversed(self.end_order):
      if self.trials[trial_id].status != _STATUS.FAILED:
        break
      streak += 1
    return streak

  def propose(self, trial_id: str) -> dict | None:
    """The next candidate's values (cell JSON, hash, origin, parent), or None if none left.

    With a pre-screen, `zero_cost_count(fraction)` candidates are drawn and the one
    with the best zero-cost score is proposed, its score in the values (a score that
    is not a number counts as the worst).
    """
    seed = self._seed_proposal()
    if seed is not None:
      return seed
    seen = self._seen_hashes()
    first = self._candidate(trial_id, 0, seen)
    if first is None or self.prescreen is None:
      return first
    name, fraction = self.prescreen
    drawn = [first]
    for draw in range(1, zero_cost_count(fraction)):
      seen.add(self._key(json.loads(drawn[-1]['cell'])))
      candidate = self._candidate(trial_id, draw, seen)
      if candidate is None:
        break
      drawn.append(candidate)
    scores = [float(self.prescreen_fn(json.loads(v['cell']))) for v in drawn]
    scores = [score if not math.isnan(score) else float('-inf') for score in scores]
    best = max(range(len(drawn)), key=lambda i: (scores[i], -i))
    logging.info('Trial %s: pre-screened %d candidates by %s, kept %s (%.4g)', trial_id,
                 len(drawn), name, drawn[best]['cell_hash'][:8], scores[best])
    return dict(drawn[best], zero_cost_name=name, zero_cost_score=scores[best],
                zero_cost_candidates=len(drawn))

  def _candidate(self, trial_id: str, draw: int, seen: set) -> dict | None:
    """One candidate of the algorithm (a mutation or a uniform sample), not in `seen`."""
    rng = self._rng(trial_id, draw)
    pick_parent = self._parent_picker(rng)
    if pick_parent is not None:
      child = self._mutation_proposal(pick_parent, rng, seen)
      if child is not None:
        return child
      logging.info('Trial %s: no new cell within one mutation of its parents; sampling '
                   'uniformly', trial_id)
    return self._random_proposal(rng, seen)

  def _parent_picker(self, rng: random.Random):
    """A function drawing this candidate's mutation parent, or None to sample uniformly."""
    parents = self._ranked_completed()[:self.top_k]
    if parents and rng.random() < self.mutation_probability:
      return lambda: rng.choice(parents)
    return None

  def _rng(self, trial_id: str, draw: int = 0) -> random.Random:
    key = f'{self.search_seed}:{int(trial_id)}'
    return random.Random(key if not draw else f'{key}:{draw}')

  def _seed_proposal(self) -> dict | None:
    # Seed cells are the user's: each runs unless that very cell already has.
    tried = {t.hyperparameters.values.get('cell_hash') for t in self.trials.values()}
    for cell in self.seed_cells:
      if search_space.cell_hash(cell) not in tried:
        return self._values(cell, SEED)
    return None

  def _mutation_proposal(self, pick_parent, rng: random.Random, seen: set) -> dict | None:
    """A new, admitted mutation of a parent from `pick_parent()`, or None."""
    for _ in range(_MAX_DRAWS // 10):
      parent = pick_parent()
      parent_cell = json.loads(parent.hyperparameters.values['cell'])
      child = search_space.mutate_cell(parent_cell, rng, require_new_hash=True)
      if self._key(child) not in seen and self._admits(child):
        return self._values(child, MUTATION, parent.hyperparameters.values['cell_hash'])
    return None

  def _random_proposal(self, rng: random.Random, seen: set) -> dict | None:
    for _ in range(_MAX_DRAWS):
      cell = search_space.sample_cell(rng, self.num_branches)
      if self._key(cell) not in seen and self._admits(cell):
        return self._values(cell, RANDOM)
    return None

  @staticmethod
  def _values(cell, origin: str, parent_hash: str = '') -> dict:
    cell_json = cell_lib.cell_to_json(cell_lib.parse_cell(cell))
    return {'cell': json.dumps(cell_json, sort_keys=True),
            'cell_hash': search_space.cell_hash(cell_json),
            'origin': origin, 'parent_hash': parent_hash}

  def populate_space(self, trial_id):
    streak = self._failure_streak()
    if streak >= self.stop_after_failures:
      self.stop_reason = (f'{streak} trials failed in a row (--max_consecutive_failed_trials); '
                          'see the reasons in trials.jsonl')
      logging.error('Stopping the search: %s', self.stop_reason)
      return {'status': _STATUS.STOPPED}
    values = self.propose(trial_id)
    if values is None:
      self.stop_reason = (f'no untried cell with {self.num_branches} branches is left within '
                          'the budget')
      logging.warning('Stopping the search: %s', self.stop_reason)
      return {'status': _STATUS.STOPPED}
    return {'status': _STATUS.RUNNING, 'values': values}

  # -- Recording.

  @keras_tuner.synchronized
  def end_trial(self, trial):
    super().end_trial(trial)
    ended = self.trials[trial.trial_id]
    if self.recorder is not None and ended.status in (_STATUS.COMPLETED, _STATUS.FAILED):
      self.recorder.record(ended)

  def _check_consecutive_failures(self):
    pass  # See `populate_space`.

  # -- Persistence: atomic, and consistent after a kill at any point.

  def save(self):
    fileio.atomic_write(self._get_oracle_fname(), json.dumps(self.get_state()))

  def _save_trial(self, trial):
    path = os.path.join(self._get_trial_dir(trial.trial_id), 'trial.json')
    fileio.atomic_write(path, json.dumps(trial.get_state()))

  def reload(self):
    super().reload()  # Interrupted (ongoing) trials go to the retry queue.
    ended = (_STATUS.COMPLETED, _STATUS.FAILED)
    # Killed between writing trial.json (finished) and oracle.json (still running):
    # the trial is done, so it must not be re-run.
    for trial_id in list(self._retry_queue):
      if self.trials[trial_id].status in ended:
        self._retry_queue.remove(trial_id)
        if trial_id not in self.end_order:
          self.end_order.append(trial_id)
    # Killed between creating trial.json and oracle.json: the trial started, so it
    # counts, and it runs again.
    for trial_id, trial in sorted(self.trials.items()):
      if trial.status not in ended and trial_id not in self._retry_queue:
        self._retry_queue.append(trial_id)
        if trial_id not in self.start_order:
          self.start_order.append(trial_id)
    # KerasTuner pops retries from the end; re-run interrupted trials oldest first.
    self._retry_queue.sort(key=int, reverse=True)
    if self._retry_queue:
      logging.info('Resuming: re-running interrupted trial(s) %s', sorted(self._retry_queue))
    if self.recorder is not None:
      added = self.recorder.reconcile(self.trials, self.end_order)
      if added:
        logging.info('Recorded %d finished trial(s) whose log line a kill had lost', added)
    self.save()

  def finished_trials(self) -> int:
    return sum(t.status in (_STATUS.COMPLETED, _STATUS.FAILED) for t in self.trials.values())


class EvolutionOracle(DensePredictionCellOracle):
  """Regularised (aging) evolution (Real et al., AAAI 2019) over the same space.

  The population is the `population_size` most recently completed trials, so the
  oldest member dies as each new one completes, whatever its score. Until the
  population is full candidates are sampled uniformly (after any seed cells); then
  each candidate mutates the best of `tournament_size` members drawn at random
  (`search_space.mutate_cell`). Everything else (deduplication, the cost budget,
  persistence, workers) is the base oracle's; every draw still derives from the
  seed and the trial id, so a resumed study proposes what an uninterrupted one would.

  Args:
    population_size: Members of the population (>= 2).
    tournament_size: Members drawn per candidate, the best of which is the parent
      (1 <= tournament_size <= population_size).
    **kwargs: As `DensePredictionCellOracle` (its `mutation_probability` and
      `top_k` are unused).
  """

  def __init__(self, num_branches: int, max_trials: int, *, population_size: int = 20,
               tournament_size: int = 5, **kwargs):
    check_evolution_sizes(population_size, tournament_size)
    super().__init__(num_branches, max_trials, **kwargs)
    self.population_size = int(population_size)
    self.tournament_size = int(tournament_size)

  def population(self) -> list:
    """The living members: the most recently completed trials, oldest first."""
    completed = [self.trials[t] for t in self.end_order if _scored(self.trials[t])]
    return completed[-self.population_size:]

  def _parent_picker(self, rng: random.Random):
    population = self.population()
    if len(population) < self.population_size:
      return None

    def tournament_winner():
      sample = rng.sample(population, self.tournament_size)
      return min(sample, key=lambda t: (-t.score, t.trial_id))

    return tournament_winner


def check_evolution_sizes(population_size: int, tournament_size: int) -> None:
  """Raises ValueError naming the flag when the evolution's sizes are unusable."""
  if int(population_size) < 2:
    raise ValueError(f'--population_size must be >= 2, got {population_size}')
  if not 1 <= int(tournament_size) <= int(population_size):
    raise ValueError(f'--tournament_size must be in [1, --population_size={population_size}], '
                     f'got {tournament_size}')


def zero_cost_count(fraction: float) -> int:
  """Candidates drawn per proposal so that the best `fraction` of them is one."""
  return max(1, int(math.ceil(1.0 / fraction - 1e-9)))


def _check_eta(eta: int) -> None:
  if int(eta) < 2:
    raise ValueError(f'--eta must be >= 2, got {eta}')


def rung_steps(total_steps: int, eta: int, num_rungs: int) -> list[int]:
  """Proxy steps of each rung of successive halving, lowest first.

  The last rung trains the full proxy budget (`--proxy_training_number_of_steps`),
  each earlier one 1/eta of the next, rounded.

  Raises:
    ValueError: naming the flag, for eta < 2, fewer than 1 rung, or a schedule whose
      first rung would have no step.
  """
  _check_eta(eta)
  if int(num_rungs) < 1:
    raise ValueError(f'--num_rungs must be >= 1, got {num_rungs}')
  if int(total_steps) < int(eta) ** (int(num_rungs) - 1):
    raise ValueError(f'--num_rungs={num_rungs}: with --eta={eta} the first rung would train '
                     f'{total_steps} / {eta}^{int(num_rungs) - 1} < 1 proxy steps; use fewer '
                     f'rungs or --proxy_training_number_of_steps >= '
                     f'{int(eta) ** (int(num_rungs) - 1)}')
  return [max(1, int(round(total_steps / eta ** (num_rungs - 1 - r))))
          for r in range(num_rungs)]


class SuccessiveHalvingOracle(DensePredictionCellOracle):
  """Asynchronous successive halving (Li et al., MLSys 2020) over the same space.

  Every new cell (the seed cells, then cells sampled uniformly) starts at rung 0 with
  the fewest proxy steps; whenever a cell is in the best 1/eta of the completed
  trials of its rung and has not been promoted yet, the next candidate is that cell
  again at the next rung, with eta times the steps (higher rungs first). So most
  cells get a short proxy run and only the promising ones the full one. Each trial
  carries its `rung` and `proxy_steps`; every rung trains from scratch.

  Args:
    steps: The proxy steps of each rung (`rung_steps`).
    eta: The promotion ratio (>= 2).
    **kwargs: As `DensePredictionCellOracle` (`mutation_probability` and `top_k`
      are unused).
  """

  def __init__(self, num_branches: int, max_trials: int, *, steps: Sequence[int],
               eta: int = 3, **kwargs):
    _check_eta(eta)
    super().__init__(num_branches, max_trials, **kwargs)
    self.steps = [int(s) for s in steps]
    self.eta = int(eta)

  @staticmethod
  def rung(trial) -> int:
    return int(trial.hyperparameters.values.get('rung', 0))

  def propose(self, trial_id: str) -> dict | None:
    values = self._promotion() or super().propose(trial_id)
    if values is not None and 'rung' not in values:
      values.update(rung=0, proxy_steps=self.steps[0])
    return values

  def _parent_picker(self, rng: random.Random):
    return None  # New cells are sampled uniformly; the rungs do the selecting.

  def _promotion(self) -> dict | None:
    """The best unpromoted cell of the highest rung that has one, at the next rung."""
    by_rung = {}
    for trial in self.trials.values():
      by_rung.setdefault(self.rung(trial), []).append(trial)
    for rung in reversed(range(len(self.steps) - 1)):
      done = sorted(filter(_scored, by_rung.get(rung, [])),
                    key=lambda t: (-t.score, t.trial_id))
      promoted = {t.hyperparameters.values['cell_hash'] for t in by_rung.get(rung + 1, [])}
      for trial in done[:len(done) // self.eta]:
        values = trial.hyperparameters.values
        if values['cell_hash'] not in promoted:
          out = self._values(json.loads(values['cell']), PROMOTION, values['cell_hash'])
          out.update(rung=rung + 1, proxy_steps=self.steps[rung + 1])
          return out
    return None
