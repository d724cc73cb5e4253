"""Proxy fidelity: does the proxy task rank cells as full training does?

The paper's case for the proxy task (Chen et al., NeurIPS 2018, Sec. 4.1) is a
measurement: on 31 architectures, the proxy score and the full-training score have
a Spearman rank correlation of about 0.46. `run_fidelity` makes that measurement on
any task: it draws `num_cells` cells uniformly from the search space (seeded),
scores each with the proxy task and with the full training recipe, trains the first
`noise_cells` cells with `noise_seeds` training seeds to measure how much one
training's score moves with its seed, and reports

* the spread of the proxy scores and of the full scores,
* the seed noise (pooled std over the repeated cells),
* Spearman's rho and Kendall's tau-b between proxy and full scores, each with a
  percentile-bootstrap interval over the cells,
* whether the proxy's top 3 contain the best cell by full training,

as `<work_dir>/fidelity.json`, with a scatter plot `<work_dir>/fidelity.png`.

Each result is kept as soon as it exists (`<work_dir>/cells/<index>_<hash8>/proxy.json`
and `full_seed<seed>.json`), so a killed study resumes without redoing finished
work; `<work_dir>/fidelity_config.json` holds what defines the study, and resuming
with anything else is refused naming the setting.
"""

import dataclasses
import json
import math
import os
import random
import time
from typing import Any, Callable

from absl import logging
import keras
import numpy as np
from PIL import Image
from PIL import ImageDraw

from deeplab_dpc import cell as cell_lib
from deeplab_dpc.data import image_io
from deeplab_dpc.evaluation import metrics
from deeplab_dpc import fileio
from deeplab_dpc.search import feature_cache
from deeplab_dpc.search import proxy_task
from deeplab_dpc.search import rerank
from deeplab_dpc.search import statistics
from deeplab_dpc.search import study
from deeplab_dpc import search_space

REPORT_FILE = 'fidelity.json'
PLOT_FILE = 'fidelity.png'
CONFIG_FILE = 'fidelity_config.json'
CELLS_DIR = 'cells'
PROXY_FILE = 'proxy.json'

# Config field -> the search.py flag that sets it (errors name the flag).
FLAG_NAMES = {
    'num_cells': 'fidelity_num_cells',
    'cell_seed': 'fidelity_cell_seed',
    'num_branches': 'num_branches',
    'noise_cells': 'fidelity_noise_cells',
    'noise_seeds': 'fidelity_noise_seeds',
    'seed': 'seed',
}


@dataclasses.dataclass(frozen=True)
class FidelityConfig:
  """What a fidelity study measures.

  Attributes:
    work_dir: Where results, the report and the plot go.
    num_cells: N, cells drawn uniformly (>= 3: rho needs them).
    cell_seed: Seed of the draw; any value gives another N cells.
    num_branches: B, branches of each cell.
    noise_cells: The first this many cells are trained with several seeds.
    noise_seeds: Training seeds of each of those cells (>= 2), counting `seed`.
    seed: The training seed of every cell's full training (the noise cells add
      seed + 1, seed + 2, ...).
    confidence: Of the bootstrap intervals.
    bootstrap_resamples: Resamples of the bootstrap.
    chance_score: The always-background score of the proxy's evaluation set, if
      known: proxy scores within 0.005 of it count as collapsed.
  """
  work_dir: str
  num_cells: int = 16
  cell_seed: int = 0
  num_branches: int = search_space.DEFAULT_NUM_BRANCHES
  noise_cells: int = 2
  noise_seeds: int = 3
  seed: int = 0
  confidence: float = 0.9
  bootstrap_resamples: int = 2000
  chance_score: float | None = None

  def validate(self) -> None:
    """Raises ValueError naming the flag of the first bad field."""
    if not self.work_dir:
      raise ValueError('fidelity: a work folder is required (--search_dir)')
    if int(self.num_cells) < 3:
      raise ValueError(f'--{FLAG_NAMES["num_cells"]} must be >= 3 (a rank correlation needs '
                       f'at least 3 cells), got {self.num_cells}')
    if int(self.cell_seed) < 0:
      raise ValueError(f'--{FLAG_NAMES["cell_seed"]} must be >= 0, got {self.cell_seed}')
    search_space.space_size(self.num_branches)
    if not 0 <= int(self.noise_cells) <= int(self.num_cells):
      raise ValueError(f'--{FLAG_NAMES["noise_cells"]} must be in [0, '
                       f'--{FLAG_NAMES["num_cells"]}={self.num_cells}], got {self.noise_cells}')
    if int(self.noise_cells) and int(self.noise_seeds) < 2:
      raise ValueError(f'--{FLAG_NAMES["noise_seeds"]} must be >= 2 to measure seed noise, '
                       f'got {self.noise_seeds}')
    if not 0.0 < self.confidence < 1.0:
      raise ValueError(f'fidelity: confidence must be in (0, 1), got {self.confidence}')


def draw_cells(num_cells: int, cell_seed: int,
               num_branches: int = search_space.DEFAULT_NUM_BRANCHES,
               exclude: tuple[str, ...] = ()) -> list[tuple]:
  """The first `num_cells` cells of the uniform draw seeded by `cell_seed`.

  Cells are distinct (by canonical hash) and none has a hash in `exclude`: such a
  draw is drawn again, so a larger N extends the same sequence.
  """
  rng = random.Random(cell_seed)
  cells, seen = [], set(exclude)
  while len(cells) < num_cells:
    cell = search_space.sample_cell(rng, num_branches)
    key = search_space.cell_hash(cell)
    if key not in seen:
      seen.add(key)
      cells.append(cell)
  return cells


def _check_identity(config: FidelityConfig, recipe: dict) -> None:
  """Refuses a work folder started with another study definition (names the setting)."""
  path = os.path.join(config.work_dir, CONFIG_FILE)
  identity = {'cell_seed': int(config.cell_seed), 'num_branches': int(config.num_branches),
              'seed': int(config.seed), 'recipe': recipe}
  if fileio.exists(path):
    with fileio.open_file(path, encoding='utf-8') as f:
      try:
        stored = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f'{path} is not valid JSON ({e}); delete it to start the fidelity '
                         'study again') from None
    for key, value in identity.items():
      if key == 'recipe':
        for name in sorted(set(value) | set(stored.get('recipe', {}))):
          if stored.get('recipe', {}).get(name) != value.get(name):
            raise ValueError(
                f'{name}: the fidelity study in {config.work_dir} was made with '
                f'{stored.get("recipe", {}).get(name)!r}, now {value.get(name)!r}; use another '
                'folder for another study')
      elif stored.get(key) != value:
        raise ValueError(f'--{FLAG_NAMES[key]}: the fidelity study in {config.work_dir} was '
                         f'made with {stored.get(key)!r}, now {value!r}; use another folder '
                         'for another study')
  else:
    fileio.atomic_write(path, json.dumps(identity, indent=1, sort_keys=True))


def _read(path: str) -> dict | None:
  if not fileio.exists(path):
    return None
  with fileio.open_file(path, encoding='utf-8') as f:
    return json.load(f)


class _Progress:
  """`k/N` lines with an ETA from the mean time of each kind of job (proxy, full)."""

  def __init__(self, totals: dict):
    self.remaining = dict(totals)
    self.total = sum(totals.values())
    self.done = 0
    self.seconds = {kind: [] for kind in totals}

  def step(self, kind: str, what: str, seconds: float | None) -> None:
    self.done += 1
    self.remaining[kind] -= 1
    if seconds is not None:
      self.seconds[kind].append(seconds)
    eta = 0.0
    for name, left in self.remaining.items():
      if left and not self.seconds[name]:
        eta = None  # No job of this kind timed yet.
        break
      if left:
        eta += left * sum(self.seconds[name]) / len(self.seconds[name])
    suffix = f', ETA {_duration(eta)}' if eta else ''
    logging.info('fidelity %d/%d: %s%s', self.done, self.total, what, suffix)


def _duration(seconds: float) -> str:
  minutes, secs = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}h{minutes:02d}m' if hours else f'{minutes}m{secs:02d}s'


def run_fidelity(config: FidelityConfig,
                 proxy_fn: Callable[[Any], dict],
                 full_fn: Callable[[Any, str, int], dict],
                 recipe: dict | None = None) -> dict:
  """Runs (or resumes) a fidelity study; writes and returns the report.

  Args:
    config: What to measure.
    proxy_fn: `cell -> {'miou', ...}`: the proxy task.
    full_fn: `(cell, workdir, seed) -> {'miou', ...}`: the full training recipe,
      trained in `workdir` (it may resume there) with training seed `seed`.
    recipe: JSON-able description of both recipes; a resumed study must match it.

  Returns:
    The report (also `<work_dir>/fidelity.json`): `cells` (original JSON form),
    `hashes`, `proxy_scores`, `full_scores` (same order), `spearman_rho`,
    `spearman_rho_interval`, `kendall_tau`, `kendall_tau_interval`, `confidence`,
    `seed_noise_std`, `seed_noise` (per repeated cell), `proxy_spread`,
    `full_spread`, `full_range_over_noise`, `full_std_over_noise`,
    `proxy_collapsed`, `proxy_top3_contains_full_best`, `seconds`, `plot`.

  Raises:
    ValueError: a bad config, or a work folder made with another study.
  """
  config.validate()
  fileio.makedirs(config.work_dir)
  _check_identity(config, recipe or {})
  cells = draw_cells(config.num_cells, config.cell_seed, config.num_branches)
  hashes = [search_space.cell_hash(c) for c in cells]
  noise_seeds = [config.seed + k for k in range(1, int(config.noise_seeds))]
  jobs = 2 * len(cells) + int(config.noise_cells) * len(noise_seeds)
  progress = _Progress({'proxy': len(cells), 'full': jobs - len(cells)})
  logging.info('Fidelity study in %s: %d cells (cell seed %d), %d of them with %d training '
               'seeds: %d jobs', config.work_dir, len(cells), config.cell_seed,
               config.noise_cells, config.noise_seeds, jobs)
  seconds = {'proxy': 0.0, 'full': 0.0}

  def cached(path, fn, kind, label):
    result = _read(path)
    if result is not None:
      progress.step(kind, f'{label}: done before, mIOU {result["miou"]:.4f}', None)
      return result
    start = time.perf_counter()
    result = dict(fn())
    result['seconds'] = time.perf_counter() - start
    seconds[kind] += result['seconds']
    fileio.atomic_write(path, json.dumps(result, indent=1, sort_keys=True))
    progress.step(kind, f'{label}: mIOU {result["miou"]:.4f} in '
                  f'{_duration(result["seconds"])}', result['seconds'])
    return result

  proxy_scores, full_scores = [], []
  workdirs = [os.path.join(config.work_dir, CELLS_DIR, f'{i:03d}_{h[:8]}')
              for i, h in enumerate(hashes)]
  # Proxy scores first: they are cheap, and their spread is visible early.
  for i, cell in enumerate(cells):
    result = cached(os.path.join(workdirs[i], PROXY_FILE), lambda c=cell: proxy_fn(c), 'proxy',
                    f'cell {i} ({hashes[i][:8]}) proxy')
    proxy_scores.append(float(result['miou']))
  for i, cell in enumerate(cells):
    result = cached(os.path.join(workdirs[i], f'full_seed{config.seed}.json'),
                    lambda c=cell, i=i: full_fn(c, os.path.join(workdirs[i],
                                                                 f'seed{config.seed}'),
                                                config.seed),
                    'full', f'cell {i} ({hashes[i][:8]}) full training')
    full_scores.append(float(result['miou']))
  seed_noise = {}
  for i in range(int(config.noise_cells)):
    scores = [full_scores[i]]
    for seed in noise_seeds:
      result = cached(os.path.join(workdirs[i], f'full_seed{seed}.json'),
                      lambda c=cells[i], i=i, s=seed: full_fn(
                          c, os.path.join(workdirs[i], f'seed{s}'), s),
                      'full', f'cell {i} ({hashes[i][:8]}) full training, seed {seed}')
      scores.append(float(result['miou']))
    seed_noise[hashes[i]] = scores
  report = summarize(config, cells, proxy_scores, full_scores, seed_noise)
  report['seconds'] = seconds
  report['plot'] = write_plot(os.path.join(config.work_dir, PLOT_FILE), proxy_scores,
                              full_scores, report)
  fileio.atomic_write(os.path.join(config.work_dir, REPORT_FILE),
                      json.dumps(report, indent=1) + '\n')
  logging.info('%s', format_report(report))
  return report


def _finite(value: float) -> float | None:
  return None if value is None or math.isnan(value) else float(value)


def summarize(config: FidelityConfig, cells, proxy_scores, full_scores,
              seed_noise: dict) -> dict:
  """The report's numbers from the scores (see `run_fidelity`)."""
  rho = statistics.spearman_rho(proxy_scores, full_scores)
  tau = statistics.kendall_tau(proxy_scores, full_scores)
  interval = dict(confidence=config.confidence, resamples=config.bootstrap_resamples,
                  seed=config.cell_seed)
  rho_interval = statistics.bootstrap_interval(statistics.spearman_rho, proxy_scores,
                                               full_scores, **interval)
  tau_interval = statistics.bootstrap_interval(statistics.kendall_tau, proxy_scores,
                                               full_scores, **interval)
  noise = statistics.pooled_std(list(seed_noise.values()))
  full_spread = statistics.spread(full_scores)
  proxy_top3 = sorted(range(len(cells)), key=lambda i: -proxy_scores[i])[:3]
  full_best = max(range(len(cells)), key=lambda i: full_scores[i])
  collapsed = (None if config.chance_score is None else
               sum(abs(s - config.chance_score) <= 0.005 for s in proxy_scores))
  return {
      'num_cells': len(cells),
      'cell_seed': int(config.cell_seed),
      'cells': [cell_lib.cell_to_json(cell_lib.parse_cell(c)) for c in cells],
      'hashes': [search_space.cell_hash(c) for c in cells],
      'proxy_scores': [float(s) for s in proxy_scores],
      'full_scores': [float(s) for s in full_scores],
      'spearman_rho': _finite(rho),
      'spearman_rho_interval': [_finite(v) for v in rho_interval],
      'kendall_tau': _finite(tau),
      'kendall_tau_interval': [_finite(v) for v in tau_interval],
      'confidence': config.confidence,
      'seed_noise_std': _finite(noise),
      'seed_noise': seed_noise,
      'proxy_spread': statistics.spread(proxy_scores),
      'full_spread': full_spread,
      'full_range_over_noise': _finite(full_spread['range'] / noise) if noise else None,
      'full_std_over_noise': _finite(full_spread['std'] / noise) if noise else None,
      'chance_score': config.chance_score,
      'proxy_collapsed': collapsed,
      'proxy_top3': [int(i) for i in proxy_top3],
      'full_best': int(full_best),
      'proxy_top3_contains_full_best': full_best in proxy_top3,
  }


def format_report(report: dict) -> str:
  """A few lines for the console: the spreads, the noise and the correlations."""

  def number(value, digits=3):
    return '-' if value is None else f'{value:.{digits}f}'

  def interval(values):
    return f'[{number(values[0], 2)}, {number(values[1], 2)}]'

  p, f = report['proxy_spread'], report['full_spread']
  pct = int(round(100 * report['confidence']))
  lines = [
      f'Proxy fidelity over {report["num_cells"]} uniformly drawn cells '
      f'(cell seed {report["cell_seed"]}):',
      f'  proxy mIOU  {number(p["min"])} .. {number(p["max"])} (range {number(p["range"])}, '
      f'std {number(p["std"])})' + (
          f', {report["proxy_collapsed"]} at the always-background score '
          f'{number(report["chance_score"])}' if report['proxy_collapsed'] is not None else ''),
      f'  full mIOU   {number(f["min"])} .. {number(f["max"])} (range {number(f["range"])}, '
      f'std {number(f["std"])})',
      f'  seed noise  std {number(report["seed_noise_std"])} of one full training '
      f'({len(report["seed_noise"])} cells x several seeds); full range / noise '
      f'{number(report["full_range_over_noise"], 1)}, std / noise '
      f'{number(report["full_std_over_noise"], 1)}',
      f'  Spearman rho {number(report["spearman_rho"], 2)} ({pct}% bootstrap '
      f'{interval(report["spearman_rho_interval"])}), Kendall tau '
      f'{number(report["kendall_tau"], 2)} ({interval(report["kendall_tau_interval"])})',
      f'  proxy top 3 contain the best full cell: '
      f'{"yes" if report["proxy_top3_contains_full_best"] else "no"}',
  ]
  return '\n'.join(lines)


def write_plot(path: str, proxy_scores, full_scores, report: dict) -> str:
  """A scatter plot of full vs proxy mIOU as a PNG (Pillow; no plotting library)."""
  width, height, margin = 520, 440, 60
  image = Image.new('RGB', (width, height), 'white')
  draw = ImageDraw.Draw(image)

  def axis_range(values):
    low, high = min(values), max(values)
    pad = max(0.01, 0.08 * (high - low))
    return low - pad, high + pad

  (x0, x1), (y0, y1) = axis_range(proxy_scores), axis_range(full_scores)

  def to_pixel(x, y):
    px = margin + (x - x0) / (x1 - x0) * (width - 1.5 * margin)
    py = height - margin - (y - y0) / (y1 - y0) * (height - 1.5 * margin)
    return px, py

  left, bottom = margin, height - margin
  draw.line([(left, margin / 2), (left, bottom), (width - margin / 2, bottom)], fill='black')
  for k in range(5):
    x = x0 + (x1 - x0) * k / 4
    y = y0 + (y1 - y0) * k / 4
    px, _ = to_pixel(x, y0)
    _, py = to_pixel(x0, y)
    draw.line([(px, bottom), (px, bottom + 4)], fill='black')
    draw.text((px - 14, bottom + 8), f'{x:.3f}', fill='black')
    draw.line([(left - 4, py), (left, py)], fill='black')
    draw.text((4, py - 6), f'{y:.3f}', fill='black')
  draw.text((width / 2 - 60, height - 22), 'proxy mIOU (cached features)', fill='black')
  draw.text((8, 8), 'full-training mIOU', fill='black')
  rho = report.get('spearman_rho')
  draw.text((width - 230, 8), f'N={len(proxy_scores)}  rho=' +
            ('-' if rho is None else f'{rho:.2f}') + f'  tau={report.get("kendall_tau") or 0:.2f}',
            fill='black')
  for x, y in zip(proxy_scores, full_scores):
    px, py = to_pixel(x, y)
    draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=(31, 119, 180), outline='black')
  image_io.write_png(path, np.asarray(image))
  return path


def always_background_score(cache_dir: str, manifest: dict) -> float:
  """mIOU of predicting class 0 everywhere on the cache's evaluation labels."""
  confusion = metrics.StreamingConfusion(manifest['num_classes'], manifest['ignore_label'])
  for _, label in feature_cache.load_split(cache_dir, manifest, feature_cache.EVAL).batch(64):
    labels = label.numpy()[..., 0]
    confusion.update(labels, np.zeros_like(labels, dtype=np.int32), source='cached eval labels')
  return float(confusion.result()['miou'])


def run_search_fidelity(search, full, config: FidelityConfig) -> dict:
  """A fidelity study of a search's proxy task against its re-ranking recipe.

  Args:
    search: The `study.SearchConfig`: its feature cache (built if needed) and proxy
      task score the cells.
    full: The `rerank.RerankConfig` whose full training (`rerank.train_and_evaluate`)
      gives each cell's full score; its seed is replaced by each training seed.
    config: The study; `chance_score` is filled from the cache when unset.

  Returns:
    The report of `run_fidelity`.
  """
  config.validate()
  manifest = study.ensure_cache(search)
  cache_dir = search.resolved_cache_dir
  if config.chance_score is None:
    config = dataclasses.replace(config, chance_score=always_background_score(cache_dir,
                                                                              manifest))

  def proxy_fn(cell):
    keras.backend.clear_session()
    result = proxy_task.run_proxy_task(cell, cache_dir, manifest, search.proxy)
    return {k: result[k] for k in ('miou', 'pixel_accuracy', 'per_class_iou', 'final_loss')}

  def full_fn(cell, workdir, seed):
    result = rerank.train_and_evaluate(dataclasses.replace(full, seed=seed), cell, workdir)
    return {k: result[k] for k in ('miou', 'pixel_accuracy', 'global_step')}

  full_recipe = dataclasses.asdict(full)
  for key in ('search_dir', 'top_k', 'seed'):
    full_recipe.pop(key)
  recipe = {'proxy': json.dumps(dataclasses.asdict(search.proxy), sort_keys=True),
            'cache': json.dumps(manifest['config'], sort_keys=True),
            'checkpoint_fingerprint': manifest['checkpoint_fingerprint'],
            'full': json.dumps(full_recipe, sort_keys=True)}
  return run_fidelity(config, proxy_fn, full_fn, recipe=recipe)
