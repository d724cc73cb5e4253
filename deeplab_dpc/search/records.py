"""What a search leaves behind: the trial log, the best cells and TensorBoard scalars.

* `trials.jsonl`: one JSON line per finished trial (completed or failed), appended
  with write + flush + fsync (rewritten atomically on filesystems without appends,
  such as gs://). A kill can leave at most a partial last line, which the
  next start cuts off; lines are keyed by trial id, and trials that finished in
  KerasTuner's state but whose line was lost are appended on the next start
  (`TrialRecorder.reconcile`), so each finished trial appears exactly once.
* `best_cells/rank_<r>_<hash8>.json`: the top cells by proxy mIOU, in the original
  cell format (`--dense_prediction_cell_json` of train.py / export.py takes them
  unchanged), rewritten atomically after every trial, with `best_cells/index.json`
  and `best_cells/pareto.json`: the cells no other cell beats on both proxy mIOU and
  multiply-adds on the cached features (the paper chose DPC for its cost too).
* `tensorboard/`: scalars per finished trial: `proxy/miou`, `proxy/best_miou`,
  `search/trials_per_hour`, `search/failed_trials`; and the study for TensorBoard's
  HParams dashboard: one run per trial (`tensorboard/trials/<trial id>`) whose
  hyperparameters are each branch's operation and input (`branch<i>_op`,
  `branch<i>_input`) and the trial's origin, with `proxy_miou`, `madds` and
  `params` as its metrics.

Only the process holding the oracle (the embedded search or the chief) writes these.
"""

import datetime
import json
import os
import re
import time
from typing import Any

from absl import logging

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import fileio
from deeplab_dpc import search_space

TRIALS_FILE = 'trials.jsonl'
BEST_CELLS_DIR = 'best_cells'
PARETO_FILE = 'pareto.json'
TENSORBOARD_DIR = 'tensorboard'
COMPLETED, FAILED = 'COMPLETED', 'FAILED'

_EXCEPTION_PREFIX = re.compile(r'^[\w.]*(Error|Exception|Diverged)\w*: ')


def read_trials(search_dir: str) -> list[dict]:
  """The complete lines of `trials.jsonl` (a partial last line is skipped)."""
  path = os.path.join(search_dir, TRIALS_FILE)
  if not fileio.exists(path):
    return []
  out = []
  with fileio.open_file(path, encoding='utf-8') as f:
    for line in f:
      if not line.endswith('\n'):
        break  # A kill mid-append; `TrialRecorder` cuts it off.
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError:
        logging.warning('%s: skipping a corrupt line', path)
  return out


def _completed_per_cell(entries: list[dict]) -> list[dict]:
  """Each cell's completed trial at its highest rung (successive halving runs a cell
  once per rung it reaches; other searches once)."""
  best = {}
  for e in entries:
    if e.get('status') != COMPLETED or e.get('score') is None:
      continue
    kept = best.get(e['hash'])
    if kept is None or (e.get('rung') or 0) > (kept.get('rung') or 0):
      best[e['hash']] = e
  return list(best.values())


def best_trials(entries: list[dict], count: int) -> list[dict]:
  """The `count` best cells' completed trials: highest rung reached first (successive
  halving), then highest score (ties: earlier trial first)."""
  return sorted(_completed_per_cell(entries),
                key=lambda e: (-(e.get('rung') or 0), -e['score'], str(e['trial_id'])))[:count]


def pareto_front(entries: list[dict]) -> list[dict]:
  """The completed trials not dominated in (higher score, fewer multiply-adds).

  A trial is dominated when another scores at least as high with at most as many
  multiply-adds, and is strictly better on one of them; of trials equal on both the
  earliest is kept. Each cell counts with its trial at the highest rung it reached.
  Sorted by multiply-adds, cheapest first.
  """
  done = sorted((e for e in _completed_per_cell(entries) if e.get('madds') is not None),
                key=lambda e: (e['madds'], -e['score'], str(e['trial_id'])))
  front, best_score = [], float('-inf')
  for entry in done:
    # Cheapest first: a trial is on the front when it beats every cheaper one's score.
    if entry['score'] > best_score:
      front.append(entry)
      best_score = entry['score']
  return front


def failure_reason(message: str | None) -> str:
  """The last line of a traceback, without the exception's class name."""
  lines = [l for l in (message or '').strip().splitlines() if l.strip()]
  if not lines:
    return 'unknown failure'
  return _EXCEPTION_PREFIX.sub('', lines[-1].strip())


class TrialRecorder:
  """Writes the search outputs of finished trials, each exactly once.

  Args:
    search_dir: The study folder (`--search_dir`).
    num_best_cells: How many top cells to keep in `best_cells/`.
    cost_shape: (height, width, channels) of the cached features, for the MAdds and
      parameter counts of each cell; None to leave them out.
    tensorboard: Write TensorBoard scalars and the HParams study.
    max_trials: The study's trial count, for the `trial k/N` progress line.
    num_branches: B, for the HParams dashboard's columns.
  """

  def __init__(self, search_dir: str, num_best_cells: int = 5,
               cost_shape: tuple[int, int, int] | None = None, tensorboard: bool = True,
               max_trials: int | None = None, num_branches: int = 5):
    self.search_dir = search_dir
    self.num_best_cells = num_best_cells
    self.cost_shape = cost_shape
    self.path = os.path.join(search_dir, TRIALS_FILE)
    fileio.makedirs(search_dir)
    self._repair()
    self.entries = read_trials(search_dir)
    self.recorded = {str(e['trial_id']) for e in self.entries}
    self._tensorboard = tensorboard
    self._writer = None
    self._session_start = time.time()
    self._session_count = 0
    self.max_trials = max_trials
    self.num_branches = num_branches

  def _repair(self) -> None:
    """Cuts off a partial last line left by a kill mid-append."""
    if not fileio.exists(self.path):
      return
    data = fileio.read_bytes(self.path)
    if data and not data.endswith(b'\n'):
      fileio.atomic_write(self.path, data[:data.rfind(b'\n') + 1])
      logging.warning('%s: removed a partial last line (killed mid-write)', self.path)

  def entry(self, trial: Any) -> dict:
    """The JSON line of a finished KerasTuner trial."""
    values = trial.hyperparameters.values
    cell = json.loads(values['cell'])
    status = COMPLETED if trial.status == COMPLETED else FAILED

    def metric(name):
      if trial.metrics.exists(name):
        value = trial.metrics.get_last_value(name)
        return None if value is None else float(value)
      return None

    out = {
        'trial_id': str(trial.trial_id),
        'status': status,
        'cell': cell,
        'hash': values.get('cell_hash') or search_space.cell_hash(cell),
        'score': float(trial.score) if status == COMPLETED and trial.score is not None
                 else None,
        'pixel_accuracy': metric('pixel_accuracy'),
        'train_seconds': metric('train_seconds'),
        'eval_seconds': metric('eval_seconds'),
        'origin': values.get('origin'),
        'parent_hash': values.get('parent_hash') or None,
        **({'rung': int(values['rung']), 'proxy_steps': int(values['proxy_steps'])}
           if 'rung' in values else {}),
        **({'zero_cost': {'name': values['zero_cost_name'],
                          'score': float(values['zero_cost_score']),
                          'candidates': int(values['zero_cost_candidates'])}}
           if 'zero_cost_name' in values else {}),
        'reason': None,
        'finished': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }
    if status == FAILED:
      out['reason'] = values.get('failure_reason') or failure_reason(trial.message)
    if self.cost_shape is not None:
      cost = search_space.cell_cost(cell, *self.cost_shape)
      out['madds'] = int(cost['madds'])
      out['params'] = int(cost['branch_weights'])
    return out

  def record(self, trial: Any) -> bool:
    """Appends a finished trial once; updates the best cells and TensorBoard.

    Returns:
      False if the trial was already recorded.
    """
    trial_id = str(trial.trial_id)
    if trial_id in self.recorded:
      return False
    entry = self.entry(trial)
    fileio.append_line(self.path, json.dumps(entry, sort_keys=True))
    self.entries.append(entry)
    self.recorded.add(trial_id)
    self._session_count += 1
    self.write_best_cells()
    self._write_scalars(entry)
    self._write_hparams(entry)
    if entry['status'] == COMPLETED:
      logging.info('Trial %s: proxy mIOU %.4f (%s, %s); %s', trial_id, entry['score'],
                   entry['hash'][:8], entry['origin'], self.progress())
    else:
      logging.warning('Trial %s failed: %s; %s', trial_id, entry['reason'], self.progress())
    return True

  def progress(self) -> str:
    """`trial k/N, best 0.xxxx (hash), ETA ...` from this session's trial rate."""
    done = len(self.entries)
    best = best_trials(self.entries, 1)
    text = f'trial {done}/{self.max_trials}' if self.max_trials else f'trial {done}'
    if best:
      text += f', best so far {best[0]["score"]:.4f} ({best[0]["hash"][:8]})'
    if self.max_trials and self._session_count and done < self.max_trials:
      per_trial = (time.time() - self._session_start) / self._session_count
      minutes, seconds = divmod(int(per_trial * (self.max_trials - done)), 60)
      text += f', ETA {minutes}m{seconds:02d}s'
    return text

  def reconcile(self, trials: dict, end_order: list) -> int:
    """Records finished trials whose line a kill lost; returns how many."""
    added = 0
    for trial_id in end_order:
      trial = trials.get(trial_id)
      if trial is not None and trial.status in (COMPLETED, FAILED):
        added += self.record(trial)
    return added

  def write_best_cells(self) -> list[str]:
    """Rewrites `best_cells/`: rank files of the current top cells, and index.json."""
    directory = os.path.join(self.search_dir, BEST_CELLS_DIR)
    fileio.makedirs(directory)
    top = best_trials(self.entries, self.num_best_cells)
    names = []
    index = []
    for rank, entry in enumerate(top, 1):
      name = f'rank_{rank:02d}_{entry["hash"][:8]}.json'
      names.append(name)
      cell_lib.save_cell(cell_lib.parse_cell(entry['cell'], source=name),
                         os.path.join(directory, name))
      index.append({'rank': rank, 'file': name, 'hash': entry['hash'], 'score': entry['score'],
                    'trial_id': entry['trial_id'], 'madds': entry.get('madds'),
                    'params': entry.get('params')})
    for stale in fileio.glob_in(directory, 'rank_*.json'):
      if os.path.basename(stale) not in names:
        fileio.remove(stale)
    fileio.atomic_write(os.path.join(directory, 'index.json'), json.dumps(index, indent=1))
    pareto = [{'hash': e['hash'], 'score': e['score'], 'madds': e['madds'],
               'params': e.get('params'), 'trial_id': e['trial_id'], 'cell': e['cell']}
              for e in pareto_front(self.entries)]
    fileio.atomic_write(os.path.join(directory, PARETO_FILE), json.dumps(pareto, indent=1))
    return [os.path.join(directory, n) for n in names]

  def _write_scalars(self, entry: dict) -> None:
    if not self._tensorboard:
      return
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(
          os.path.join(self.search_dir, TENSORBOARD_DIR))
    step = len(self.entries)
    best = best_trials(self.entries, 1)
    hours = max(time.time() - self._session_start, 1e-6) / 3600.0
    with self._writer.as_default(step=step):
      if entry['score'] is not None:
        tf.summary.scalar('proxy/miou', entry['score'])
      if best:
        tf.summary.scalar('proxy/best_miou', best[0]['score'])
      tf.summary.scalar('search/trials_per_hour', self._session_count / hours)
      tf.summary.scalar('search/failed_trials',
                        sum(e['status'] == FAILED for e in self.entries))
    self._writer.flush()

  def _write_hparams(self, entry: dict) -> None:
    """One HParams-dashboard run for the trial: its cell as hparams, its scores as metrics."""
    if not self._tensorboard or entry['status'] != COMPLETED:
      return
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tensorboard.plugins.hparams import api as hparams_api  # pylint: disable=g-import-not-at-top
    root = os.path.join(self.search_dir, TENSORBOARD_DIR, 'trials')
    if not fileio.exists(root):
      # The dashboard's columns, written once: every branch's operation and input.
      columns = [hparams_api.HParam('origin')]
      for i in range(self.num_branches):
        columns += [hparams_api.HParam(f'branch{i}_op'), hparams_api.HParam(f'branch{i}_input')]
      metrics = [hparams_api.Metric(name, display_name=name)
                 for name in ('proxy_miou', 'madds', 'params')]
      with tf.summary.create_file_writer(root).as_default():
        hparams_api.hparams_config(hparams=columns, metrics=metrics)
    values = {'origin': str(entry.get('origin') or '')}
    for i, branch in enumerate(cell_lib.parse_cell(entry['cell'])):
      values[f'branch{i}_op'] = search_space.operation_name(branch)
      values[f'branch{i}_input'] = int(branch.input)
    writer = tf.summary.create_file_writer(os.path.join(root, str(entry['trial_id'])))
    with writer.as_default(step=0):
      hparams_api.hparams(values, trial_id=str(entry['trial_id']))
      tf.summary.scalar('proxy_miou', entry['score'])
      if entry.get('madds') is not None:
        tf.summary.scalar('madds', float(entry['madds']))
        tf.summary.scalar('params', float(entry['params']))
    writer.close()
