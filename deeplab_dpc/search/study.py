"""A study: the whole search, embedded in one process or spread over processes.

* Embedded (default): the oracle and one tuner run in this process; the study lives in
  `<search_dir>/study` (KerasTuner's project) and resumes from there.
* `num_workers=N`: this process builds the feature cache, then starts a chief (the
  oracle, serving gRPC on localhost) and N worker processes with KerasTuner's
  environment variables, and supervises them: when every worker has exited the chief
  is stopped (KerasTuner's chief otherwise waits forever for workers that died), and
  when the chief dies the workers are stopped.
* KerasTuner's own chief / worker mode: with `KERASTUNER_TUNER_ID`,
  `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` set, this process is the chief
  (tuner id containing `chief`) or a worker; that is how trials spread over machines
  (docs/search.md).

Every role refuses a study folder made with other search-defining flags
(`<search_dir>/study.json`) and a feature cache made with other flags.
"""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from absl import logging
import keras

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import fileio
from deeplab_dpc.search import feature_cache
from deeplab_dpc.search import oracle as oracle_lib
from deeplab_dpc.search import proxy_task
from deeplab_dpc.search import records
from deeplab_dpc.search import tuner as tuner_lib
from deeplab_dpc.search import zero_cost
from deeplab_dpc import search_space

STUDY_FILE = 'study.json'
CONFIG_FILE = 'search_config.json'
LOG_DIR = 'logs'
CHIEF, WORKER, EMBEDDED = 'chief', 'worker', 'embedded'

# The search algorithms (`--algorithm`): the paper's, regularised evolution, and
# asynchronous successive halving over rungs of proxy steps.
RANDOM_LOCAL, EVOLUTION, SUCCESSIVE_HALVING = 'random_local', 'evolution', 'successive_halving'
ALGORITHMS = (RANDOM_LOCAL, EVOLUTION, SUCCESSIVE_HALVING)

# Study fields that must not change when a study resumes -> the flag naming them.
_PROXY_FLAGS = {
    'training_number_of_steps': 'proxy_training_number_of_steps',
    'batch_size': 'proxy_batch_size',
    'base_learning_rate': 'proxy_base_learning_rate',
    'learning_power': 'proxy_learning_power',
    'momentum': 'proxy_momentum',
    'weight_decay': 'proxy_weight_decay',
    'batch_norm_decay': 'proxy_batch_norm_decay',
    'upsample_logits': 'proxy_upsample_logits',
    'seed': 'seed',
    'label_weights': 'label_weights',
}
# What a study recorded before a field existed meant: class weights came later,
# so a study without them was unweighted and resumes as such.
_IDENTITY_DEFAULTS = {'proxy.label_weights': 1.0, 'algorithm': 'random_local'}


@dataclasses.dataclass
class SearchConfig:
  """Everything a search process needs (search.py's flags).

  Attributes:
    search_dir: The study folder (`--search_dir`).
    cache: What the feature cache holds.
    proxy: The proxy task's hyperparameters.
    cache_dir: The feature cache folder; '' for `<search_dir>/feature_cache`.
    num_branches: B.
    max_trials: Trials of the study (larger on restart: the study goes on).
    algorithm: `random_local` (the paper's random search plus mutations of the
      top-k cells), `evolution` (regularised evolution) or `successive_halving`
      (rungs of proxy steps, the best 1/eta of each rung promoted).
    mutation_probability: Chance a candidate mutates a top-k cell (random_local).
    top_k: Mutation parents: the k best cells so far (random_local).
    population_size: Members of the evolution's population (evolution).
    tournament_size: Members drawn per candidate, the best one mutated (evolution).
    eta: Promotion ratio between rungs (successive_halving).
    num_rungs: Rungs; the last trains `proxy.training_number_of_steps`
      (successive_halving).
    prescreen: `NAME:FRACTION` (`zero_cost.SCORES`): of each drawn batch of
      ceil(1 / FRACTION) candidates only the best by that zero-cost score is
      trained; '' to train every candidate.
    seed_cells: Cell JSON files tried first.
    max_madds: Budget on the cell's multiply-adds on the cached features, or None.
    max_params: Budget on the cell's branch weights, or None.
    num_best_cells: Cells kept in `best_cells/`.
    num_workers: 0: embedded; N: chief + N local worker processes.
    seed: Seed of the search (proposals) and of the proxy task.
    max_consecutive_failed_trials: Stop after this many failures in a row.
    cache_batch_size: Images per backbone call while caching.
  """
  search_dir: str
  cache: feature_cache.CacheConfig
  proxy: proxy_task.ProxyConfig = proxy_task.ProxyConfig()
  cache_dir: str = ''
  num_branches: int = search_space.DEFAULT_NUM_BRANCHES
  max_trials: int = 100
  algorithm: str = RANDOM_LOCAL
  mutation_probability: float = 0.5
  top_k: int = 10
  population_size: int = 20
  tournament_size: int = 5
  eta: int = 3
  num_rungs: int = 3
  prescreen: str = ''
  seed_cells: tuple[str, ...] = ()
  max_madds: float | None = None
  max_params: float | None = None
  num_best_cells: int = 5
  num_workers: int = 0
  seed: int = 0
  max_consecutive_failed_trials: int = 10
  cache_batch_size: int = 8

  @property
  def resolved_cache_dir(self) -> str:
    return self.cache_dir or os.path.join(self.search_dir, 'feature_cache')

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> 'SearchConfig':
    data = json.loads(text)
    cache = dict(data.pop('cache'))
    cache['crop_size'] = tuple(cache['crop_size'])
    data['cache'] = feature_cache.CacheConfig(**cache)
    data['proxy'] = proxy_task.ProxyConfig(**data.pop('proxy'))
    data['seed_cells'] = tuple(data.get('seed_cells') or ())
    return cls(**data)

  def validate(self) -> None:
    """Checks the search flags; ValueError naming the flag."""
    if not self.search_dir:
      raise ValueError('--search_dir is required')
    try:
      search_space.space_size(self.num_branches)
    except ValueError:
      raise ValueError(f'--num_branches must be an integer >= 1, got {self.num_branches!r}') \
          from None
    if int(self.max_trials) < 1:
      raise ValueError(f'--max_trials must be >= 1, got {self.max_trials}')
    if not 0.0 <= self.mutation_probability <= 1.0:
      raise ValueError('--mutation_probability must be in [0, 1], got '
                       f'{self.mutation_probability}')
    if int(self.top_k) < 1:
      raise ValueError(f'--top_k must be >= 1, got {self.top_k}')
    if self.algorithm not in ALGORITHMS:
      raise ValueError(f'--algorithm must be one of {", ".join(ALGORITHMS)}, got '
                       f'{self.algorithm!r}')
    if self.algorithm == EVOLUTION:
      oracle_lib.check_evolution_sizes(self.population_size, self.tournament_size)
    if self.algorithm == SUCCESSIVE_HALVING:
      oracle_lib.rung_steps(self.proxy.training_number_of_steps, self.eta, self.num_rungs)
    if self.prescreen:
      zero_cost.parse_prescreen(self.prescreen)
    if int(self.num_workers) < 0:
      raise ValueError(f'--num_workers must be >= 0, got {self.num_workers}')
    if int(self.num_best_cells) < 1:
      raise ValueError(f'--num_best_cells must be >= 1, got {self.num_best_cells}')
    if int(self.max_consecutive_failed_trials) < 1:
      raise ValueError('--max_consecutive_failed_trials must be >= 1, got '
                       f'{self.max_consecutive_failed_trials}')
    search_space.CostBudget(max_madds=self.max_madds, max_params=self.max_params)
    self.cache.validate()
    self.proxy.validate()


def load_seed_cells(paths, num_branches: int) -> list[list[dict]]:
  """Reads and validates seed cell files; errors name the file, branch and field."""
  out = []
  for path in paths:
    if not fileio.isfile(path):
      raise FileNotFoundError(f'--seed_cells: no such file: {path}')
    try:
      with fileio.open_file(path, encoding='utf-8') as f:
        obj = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ValueError(f'--seed_cells: {path} is not a JSON file ({e})') from None
    out.append(cell_lib.cell_to_json(search_space.validate_seed_cell(
        obj, f'--seed_cells {path}', num_branches=num_branches)))
  return out


def role() -> str:
  """`chief` / `worker` under KerasTuner's environment variables, else `embedded`."""
  if 'KERASTUNER_ORACLE_IP' not in os.environ:
    return EMBEDDED
  for name in ('KERASTUNER_ORACLE_PORT', 'KERASTUNER_TUNER_ID'):
    if name not in os.environ:
      raise ValueError(f'KERASTUNER_ORACLE_IP is set but {name} is not; set both (or neither)')
  return CHIEF if 'chief' in os.environ['KERASTUNER_TUNER_ID'] else WORKER


def study_identity(config: SearchConfig, manifest: dict) -> dict:
  """The fields a resumed study must share with the one that started it."""
  proxy = dataclasses.asdict(config.proxy)
  identity = {
      'num_branches': int(config.num_branches),
      'seed': int(config.seed),
      'algorithm': config.algorithm,
      'proxy': {k: proxy[k] for k in _PROXY_FLAGS},
      'cache': manifest['config'],
      'checkpoint_fingerprint': manifest['checkpoint_fingerprint'],
  }
  if config.algorithm == SUCCESSIVE_HALVING:  # The rungs' meaning.
    identity['successive_halving'] = {'eta': int(config.eta),
                                      'num_rungs': int(config.num_rungs)}
  return identity


def check_study(config: SearchConfig, manifest: dict, write: bool = True) -> None:
  """Refuses to resume a study made with other search-defining flags.

  Raises:
    ValueError: naming the flag that differs.
  """
  path = os.path.join(config.search_dir, STUDY_FILE)
  identity = study_identity(config, manifest)
  if fileio.exists(path):
    with fileio.open_file(path, encoding='utf-8') as f:
      try:
        stored = json.load(f)
      except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'{path} is not valid JSON ({e}): the study folder --search_dir='
                         f'{config.search_dir} is damaged; restore the file or use another '
                         '--search_dir') from None
    flat_new = _flatten(identity)
    flat_old = _flatten(stored)
    for key in sorted(flat_new):
      if flat_old.get(key, _IDENTITY_DEFAULTS.get(key)) != flat_new[key]:
        field = key.split('.')[-1]
        if key.startswith('proxy.'):
          flag = _PROXY_FLAGS.get(field, field)
        elif key.startswith('cache.') or key == 'checkpoint_fingerprint':
          flag = feature_cache.FLAG_NAMES.get(field, field)
        else:
          flag = field
        raise ValueError(f'--{flag}: the study in {config.search_dir} was started with '
                         f'{flat_old.get(key)!r}, the flags say {flat_new[key]!r}; use another '
                         '--search_dir for a new study')
  elif write:
    fileio.atomic_write(path, json.dumps(identity, indent=1, sort_keys=True))


def _flatten(data: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in data.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f'{prefix}{key}.'))
    else:
      out[prefix + key] = value
  return out


def ensure_cache(config: SearchConfig) -> dict:
  """Builds the feature cache if needed (resuming a partial one); returns its manifest."""
  cache_dir = config.resolved_cache_dir
  feature_cache.build_feature_cache(config.cache, cache_dir, batch_size=config.cache_batch_size)
  return feature_cache.open_feature_cache(cache_dir, config.cache)


def _summary(config: SearchConfig, stop_reason: str | None = None) -> dict:
  entries = records.read_trials(config.search_dir)
  best = records.best_trials(entries, config.num_best_cells)
  return {
      'trials': len(entries),
      'completed': sum(e['status'] == records.COMPLETED for e in entries),
      'failed': sum(e['status'] == records.FAILED for e in entries),
      'best': [{'hash': e['hash'], 'score': e['score'], 'trial_id': e['trial_id']} for e in best],
      'stop_reason': stop_reason,
  }


def run_search(config: SearchConfig) -> dict:
  """Runs (or resumes) the search in this process's role; returns a summary.

  Returns:
    {'trials', 'completed', 'failed', 'best': [{'hash', 'score', 'trial_id'}],
     'stop_reason'} (a worker returns the same, read from the shared study folder
     if it can see it).
  """
  config.validate()
  current = role()
  if current == EMBEDDED and config.num_workers > 0:
    return run_supervised(config)
  seeds = load_seed_cells(config.seed_cells, config.num_branches)
  manifest = ensure_cache(config)
  check_study(config, manifest, write=current != WORKER)
  cost_shape = tuple(manifest['feature_shape'])
  recorder = None
  if current != WORKER:
    recorder = records.TrialRecorder(config.search_dir, config.num_best_cells, cost_shape,
                                     max_trials=config.max_trials,
                                     num_branches=config.num_branches)
  budget = None
  if config.max_madds is not None or config.max_params is not None:
    budget = search_space.CostBudget(max_madds=config.max_madds, max_params=config.max_params)
  if config.algorithm == EVOLUTION:
    oracle_class, sizes = oracle_lib.EvolutionOracle, dict(
        population_size=config.population_size, tournament_size=config.tournament_size)
  elif config.algorithm == SUCCESSIVE_HALVING:
    oracle_class, sizes = oracle_lib.SuccessiveHalvingOracle, dict(
        eta=config.eta, steps=oracle_lib.rung_steps(config.proxy.training_number_of_steps,
                                                    config.eta, config.num_rungs))
  else:
    oracle_class, sizes = oracle_lib.DensePredictionCellOracle, {}
  if config.prescreen and current != WORKER:  # Only the oracle's process proposes.
    sizes['prescreen'] = zero_cost.parse_prescreen(config.prescreen)
    sizes['prescreen_fn'] = _prescreen_fn(config, manifest, sizes['prescreen'][0])
  oracle = oracle_class(
      config.num_branches, config.max_trials, **sizes,
      mutation_probability=config.mutation_probability, top_k=config.top_k,
      seed_cells=seeds, budget=budget, cost_shape=cost_shape,
      rate_multiplier=16 // config.cache.output_stride, seed=config.seed,
      recorder=recorder, max_consecutive_failed_trials=config.max_consecutive_failed_trials)
  tuner = tuner_lib.ProxyTaskTuner(oracle, config.resolved_cache_dir, manifest, config.proxy,
                                   config.search_dir)
  logging.info('Search (%s) in %s: %d of %d trials started', current, config.search_dir,
               len(oracle.trials), config.max_trials)
  tuner.search()
  if recorder is not None:
    recorder.write_best_cells()
  return _summary(config, oracle.stop_reason)


def _prescreen_fn(config: SearchConfig, manifest: dict, name: str):
  """cell -> its zero-cost score `name` on the first cached training minibatch."""
  features, labels = zero_cost.minibatch(config.resolved_cache_dir, manifest,
                                         config.proxy.batch_size)

  def score(cell):
    keras.backend.clear_session()  # A model per candidate; keep memory flat.
    return zero_cost.score_cell(name, cell, features, labels, manifest, config.proxy)

  return score


# -- Local chief + workers.

def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _die_with_parent() -> None:
  """Child preexec: SIGKILL when the supervisor dies, so no orphan keeps a port or a trial."""
  try:
    import ctypes  # pylint: disable=g-import-not-at-top
    pr_set_pdeathsig = 1
    ctypes.CDLL('libc.so.6', use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
  except OSError:
    pass  # Not Linux: orphans are possible if the supervisor is SIGKILLed.


# Restarts of one local worker before the supervisor gives up on the study.
MAX_WORKER_RESTARTS = 3


def _spawn(config_path: str, tuner_id: str, port: int, log_path: str) -> subprocess.Popen:
  env = dict(os.environ, KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP='127.0.0.1',
             KERASTUNER_ORACLE_PORT=str(port))
  log = open(log_path, 'ab')  # pylint: disable=consider-using-with
  return subprocess.Popen([sys.executable, '-m', 'deeplab_dpc.search.study',
                           f'--config={config_path}'], env=env, stdout=log,
                          stderr=subprocess.STDOUT,
                          preexec_fn=_die_with_parent if sys.platform == 'linux' else None)


# How long workers may take to exit after the chief has ended the study.
WORKER_EXIT_GRACE_SECONDS = 60.0


def _wait(process: subprocess.Popen, timeout: float) -> int | None:
  """The process's exit code once it exits within `timeout` seconds, else None."""
  try:
    return process.wait(timeout)
  except subprocess.TimeoutExpired:
    return None


def _stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
  if process.poll() is None:
    process.terminate()
    try:
      process.wait(timeout)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


def run_supervised(config: SearchConfig, poll_seconds: float = 0.5,
                   max_worker_restarts: int = MAX_WORKER_RESTARTS) -> dict:
  """Chief + `config.num_workers` workers on localhost, supervised; returns the summary.

  A worker that dies (killed, out of memory) is started again under the same
  tuner id, up to `max_worker_restarts` times each: the chief hands it back the
  trial it was running, which then runs from the start.

  Raises:
    RuntimeError: the chief failed, or a worker failed more often than allowed
      (the study can be resumed by running again; logs in `<search_dir>/logs/`).
  """
  config.validate()
  load_seed_cells(config.seed_cells, config.num_branches)  # Fail here, not in N children.
  manifest = ensure_cache(config)  # Once, before the workers would race to build it.
  check_study(config, manifest)
  child_config = dataclasses.replace(config, num_workers=0)
  config_path = os.path.join(config.search_dir, CONFIG_FILE)
  fileio.atomic_write(config_path, child_config.to_json())
  log_dir = os.path.join(config.search_dir, LOG_DIR)
  if not fileio.is_local(log_dir):
    # The processes' output streams need local files.
    log_dir = tempfile.mkdtemp(prefix='deeplab-search-logs-')
  fileio.makedirs(log_dir)
  port = _free_port()
  chief = _spawn(config_path, 'chief', port, os.path.join(log_dir, 'chief.log'))

  def spawn_worker(i):
    return _spawn(config_path, f'worker{i}', port, os.path.join(log_dir, f'worker{i}.log'))

  workers = [spawn_worker(i) for i in range(config.num_workers)]
  restarts = [0] * len(workers)
  logging.info('Chief (pid %d) on port %d, %d workers (pids %s); logs in %s', chief.pid, port,
               len(workers), ', '.join(str(w.pid) for w in workers), log_dir)
  try:
    while True:
      time.sleep(poll_seconds)
      chief_code = chief.poll()
      worker_codes = [w.poll() for w in workers]
      for i, code in enumerate(worker_codes):
        if code not in (None, 0) and chief_code is None and restarts[i] < max_worker_restarts:
          restarts[i] += 1
          logging.warning('worker%d (pid %d) exited with code %d; restarting it (%d of %d); '
                          'its trial runs again', i, workers[i].pid, code, restarts[i],
                          max_worker_restarts)
          workers[i] = spawn_worker(i)
          worker_codes[i] = None
      if chief_code == 0 and any(c is None for c in worker_codes):
        # The chief exits once every trial has ended, so the study is complete;
        # workers learn it on their next call to the oracle and exit on their own,
        # which can take longer than one poll (or fail on the closed connection).
        for i, w in enumerate(workers):
          code = _wait(w, WORKER_EXIT_GRACE_SECONDS)
          if code != 0:
            logging.warning('worker%d (pid %d) %s after the study ended; see %s', i, w.pid,
                            'still ran' if code is None else f'exited with code {code}',
                            log_dir)
        worker_codes = [0] * len(workers)
        break
      if chief_code is not None and any(c is None for c in worker_codes):
        for w in workers:
          _stop(w)
        raise RuntimeError(f'the chief oracle process exited with code {chief_code} while '
                           f'workers were running; see {log_dir}/chief.log. Run again to resume.')
      if all(c is not None for c in worker_codes):
        # The chief saved its state after every trial; its own exit waits on workers
        # that may have died, so stop it.
        _stop(chief)
        break
  finally:
    for process in workers + [chief]:
      _stop(process)
  failed = {f'worker{i}': c for i, c in enumerate(worker_codes) if c != 0}
  if failed:
    raise RuntimeError(f'worker process(es) failed: {failed} (after {max_worker_restarts} '
                       f'restarts each); see {log_dir}/. Run again to resume (interrupted '
                       'trials are re-run).')
  return _summary(config)


def _main(argv) -> None:
  """Entry point of the chief / worker processes that `run_supervised` starts."""
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  with fileio.open_file(flags.FLAGS.config, encoding='utf-8') as f:
    config = SearchConfig.from_json(f.read())
  summary = run_search(config)
  logging.info('Done: %s', summary)


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('config', None, 'search_config.json written by the supervisor.')
  app.run(_main)
