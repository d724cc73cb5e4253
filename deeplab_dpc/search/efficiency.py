"""Search efficiency: the best proxy mIOU each search algorithm finds per proxy step spent.

`run_efficiency` runs, on the demo task with the demo's search recipe, one study per
variant (an algorithm, or random_local with a zero-cost pre-screen) and search seed,
each until its trials have spent a budget of proxy steps, and reports per variant and
seed the curve of (proxy steps spent, best full-budget proxy mIOU so far). Only
trials trained with the full proxy budget count for "best" (successive halving's
lower rungs train fewer steps, and their scores are not comparable); every trial's
steps count for the budget. Optionally each variant's best cell is trained with the
demo's final recipe, and each zero-cost score is ranked against a fidelity study's
full-training scores (Spearman's rho).

Studies live in `<work_dir>/<variant>/seed<k>/` and resume, so a killed benchmark
goes on where it stopped.
"""

import dataclasses
import json
import os
import statistics as py_statistics
from typing import Any

from absl import logging
import keras
import numpy as np
from PIL import Image
from PIL import ImageDraw

from deeplab_dpc.data import image_io
from deeplab_dpc import demo_pipeline
from deeplab_dpc import fileio
from deeplab_dpc.search import records
from deeplab_dpc.search import statistics
from deeplab_dpc.search import study
from deeplab_dpc.search import zero_cost

# The compared searches: SearchConfig fields over the demo's search.
VARIANTS = {
    'random_local': dict(algorithm=study.RANDOM_LOCAL),
    'evolution': dict(algorithm=study.EVOLUTION, population_size=8, tournament_size=3),
    'successive_halving': dict(algorithm=study.SUCCESSIVE_HALVING, eta=3, num_rungs=3),
    'random_local+synflow': dict(prescreen='synflow:0.25'),
    'random_local+grad_norm': dict(prescreen='grad_norm:0.25'),
    'random_local+jacob_cov': dict(prescreen='jacob_cov:0.25'),
}
BASELINE = 'random_local'


def budget_curve(entries: list[dict], full_steps: int) -> list[list]:
  """[[proxy steps spent, best full-budget proxy mIOU so far or None], ...] per trial."""
  spent, best, points = 0, None, []
  for entry in sorted(entries, key=lambda e: int(e['trial_id'])):
    steps = int(entry.get('proxy_steps') or full_steps)
    spent += steps
    if (entry.get('status') == records.COMPLETED and entry.get('score') is not None and
        steps == full_steps):
      best = entry['score'] if best is None else max(best, entry['score'])
    points.append([spent, best])
  return points


def best_at(curve: list[list], budget: int) -> float | None:
  """The best score a curve reached within `budget` proxy steps."""
  reached = [best for spent, best in curve if spent <= budget and best is not None]
  return reached[-1] if reached else None


def run_until_budget(config: study.SearchConfig, budget_steps: int) -> list[dict]:
  """Runs (resumes) the study until its trials have spent `budget_steps` proxy steps."""
  full_steps = int(config.proxy.training_number_of_steps)
  trials = max(1, budget_steps // full_steps)
  while True:
    summary = study.run_search(dataclasses.replace(config, max_trials=trials))
    entries = records.read_trials(config.search_dir)
    spent = budget_curve(entries, full_steps)[-1][0] if entries else 0
    if spent >= budget_steps or summary['stop_reason'] or len(entries) < trials:
      return entries
    # As many more trials as the rest of the budget pays for at full proxy steps: a
    # rung's cheap trials then take more rounds, and a study overshoots the budget by
    # at most one full proxy training (promotions spend the full steps).
    trials = len(entries) + max(1, (budget_steps - spent) // full_steps)


def _median_min_max(values: list) -> dict:
  values = [v for v in values if v is not None]
  if not values:
    return {'median': None, 'min': None, 'max': None, 'runs': 0}
  return {'median': py_statistics.median(values), 'min': min(values), 'max': max(values),
          'runs': len(values)}


def zero_cost_fidelity(fidelity_report: dict, cache_dir: str, manifest: dict,
                       proxy_config) -> dict:
  """Spearman's rho (90% bootstrap) of each zero-cost score against full training."""
  features, labels = zero_cost.minibatch(cache_dir, manifest, proxy_config.batch_size)
  out = {}
  for name in zero_cost.SCORES:
    scores = []
    for cell in fidelity_report['cells']:
      keras.backend.clear_session()
      scores.append(zero_cost.score_cell(name, cell, features, labels, manifest, proxy_config))
    full = fidelity_report['full_scores']
    rho = statistics.spearman_rho(scores, full)
    out[name] = {'scores': scores, 'spearman_rho': rho,
                 'spearman_rho_interval': list(statistics.bootstrap_interval(
                     statistics.spearman_rho, scores, full)),
                 'num_cells': len(scores)}
  return out


def run_efficiency(config: demo_pipeline.DemoConfig, work_dir: str, seeds: int,
                   budget_trials: int, variants: tuple[str, ...] = tuple(VARIANTS),
                   full_training: bool = True,
                   fidelity_report: dict | None = None) -> dict[str, Any]:
  """The search-efficiency benchmark on the demo task.

  Args:
    config: The demo sizes (`DemoConfig.create(work_dir)`): its proxy recipe and,
      for `full_training`, its final training recipe.
    work_dir: Data, caches and every study (resumable).
    seeds: Search seeds 0 .. seeds - 1 per variant.
    budget_trials: B, the budget in full proxy trainings (B * the proxy steps);
      the baseline runs to 2B, so that "reaches at B what random_local reaches at
      2B" can be read off.
    variants: Names of `VARIANTS` to run.
    full_training: Train each variant's best cell (per seed) with the final recipe.
    fidelity_report: A fidelity study's report (`benchmarks/proxy_fidelity.py`):
      each zero-cost score is ranked against its full scores.

  Returns:
    {'budget_steps', 'curves': {variant: [[[spent, best], ...] per seed]},
     'at_budget': {variant: median/min/max of the best at B},
     'baseline_at_2b', 'best_cells': {variant: [{hash, score, full_miou} per seed]},
     'zero_cost_fidelity'} (also `<work_dir>/efficiency.json`).
  """
  unknown = sorted(set(variants) - set(VARIANTS))
  if unknown:
    raise ValueError(f'--variants: unknown {", ".join(unknown)}; expected some of '
                     f'{", ".join(VARIANTS)}')
  if int(seeds) < 1 or int(budget_trials) < 1:
    raise ValueError(f'--seeds and --budget_trials must be >= 1, got {seeds}, {budget_trials}')
  data_dir = os.path.join(work_dir, 'data')
  rerank_data_dir = os.path.join(work_dir, demo_pipeline.RERANK_DATA_DIR)
  demo_pipeline.build_data(data_dir)
  demo_pipeline.build_rerank_data(rerank_data_dir, config.rerank_holdout_examples, data_dir)
  full_steps = int(config.proxy_steps)
  budget = int(budget_trials) * full_steps
  curves, best_cells = {}, {}
  for variant in variants:
    curves[variant], best_cells[variant] = [], []
    for seed in range(int(seeds)):
      seeded = dataclasses.replace(config, seed=seed)
      search = dataclasses.replace(
          demo_pipeline.search_config(seeded, rerank_data_dir,
                                      os.path.join(work_dir, variant, f'seed{seed}')),
          cache_dir=os.path.join(work_dir, f'cache_seed{seed}'), **VARIANTS[variant])
      logging.info('search efficiency: %s, seed %d, budget %d proxy steps', variant, seed,
                   2 * budget if variant == BASELINE else budget)
      entries = run_until_budget(search, 2 * budget if variant == BASELINE else budget)
      curves[variant].append(budget_curve(entries, full_steps))
      full = [e for e in records.best_trials(entries, len(entries))
              if int(e.get('proxy_steps') or full_steps) == full_steps]
      row = {'hash': full[0]['hash'], 'score': full[0]['score']} if full else {}
      if full and full_training:
        workdir = os.path.join(work_dir, variant, f'seed{seed}', 'final')
        fileio.makedirs(workdir)
        result = demo_pipeline.train_and_evaluate_cell(
            demo_pipeline.final_recipe(dataclasses.replace(seeded, output_dir=work_dir)),
            full[0]['cell'], workdir, seed)
        row['full_miou'] = float(result['miou'])
      best_cells[variant].append(row)
  report = {
      'budget_trials': int(budget_trials), 'budget_steps': budget, 'proxy_steps': full_steps,
      'seeds': int(seeds), 'variants': {v: VARIANTS[v] for v in variants}, 'curves': curves,
      'at_budget': {v: _median_min_max([best_at(c, budget) for c in curves[v]])
                    for v in variants},
      'baseline_at_2b': (_median_min_max([best_at(c, 2 * budget) for c in curves[BASELINE]])
                         if BASELINE in curves else None),
      'best_cells': best_cells,
      'full_miou': {v: _median_min_max([r.get('full_miou') for r in best_cells[v]])
                    for v in variants},
  }
  if fidelity_report is not None:
    search = dataclasses.replace(demo_pipeline.search_config(config, rerank_data_dir,
                                                             os.path.join(work_dir, 'zc')),
                                 cache_dir=os.path.join(work_dir, 'cache_seed0'))
    manifest = study.ensure_cache(search)
    report['zero_cost_fidelity'] = zero_cost_fidelity(fidelity_report, search.resolved_cache_dir,
                                                      manifest, search.proxy)
  report['plot'] = write_plot(os.path.join(work_dir, 'efficiency.png'), report)
  fileio.atomic_write(os.path.join(work_dir, 'efficiency.json'),
                      json.dumps(report, indent=1) + '\n')
  return report


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75)]


def median_curve(curves: list[list[list]], budgets: list[int]) -> list:
  """The median over seeds of the best score reached at each budget (None: none yet)."""
  out = []
  for budget in budgets:
    values = [best_at(curve, budget) for curve in curves]
    values = [v for v in values if v is not None]
    out.append(py_statistics.median(values) if values else None)
  return out


def write_plot(path: str, report: dict) -> str:
  """Median best proxy mIOU against proxy steps spent, one line per variant (a PNG)."""
  longest = max(p[0] for curves in report['curves'].values() for c in curves for p in c)
  budgets = [int(longest * k / 40) for k in range(1, 41)]
  lines = {v: median_curve(c, budgets) for v, c in report['curves'].items()}
  scores = [y for ys in lines.values() for y in ys if y is not None] or [0.0, 1.0]
  low, high = min(scores) - 0.02, max(scores) + 0.02
  size, pad = (640, 420), 50
  image = Image.new('RGB', size, 'white')
  draw = ImageDraw.Draw(image)
  plot_w, plot_h = size[0] - 2 * pad - 150, size[1] - 2 * pad
  draw.rectangle([pad, pad, pad + plot_w, pad + plot_h], outline='black')
  draw.text((pad, size[1] - pad + 18), f'proxy steps spent (0 .. {longest})', fill='black')
  draw.text((pad, 12), f'median best proxy mIOU ({low:.2f} .. {high:.2f})', fill='black')
  for k, (variant, ys) in enumerate(lines.items()):
    colour = _COLOURS[k % len(_COLOURS)]
    points = [(pad + plot_w * b / longest, pad + plot_h * (1 - (y - low) / (high - low)))
              for b, y in zip(budgets, ys) if y is not None]
    if len(points) > 1:
      draw.line(points, fill=colour, width=2)
    draw.text((pad + plot_w + 10, pad + 16 * k), variant, fill=colour)
  image_io.write_png(path, np.asarray(image))
  return path


def format_report(report: dict) -> str:
  """The table: per variant the best proxy mIOU at the budget (median, min-max)."""
  def number(value):
    return '-' if value is None else f'{value:.3f}'

  lines = [f'Search efficiency on the demo task: budget B = {report["budget_trials"]} full '
           f'proxy trainings ({report["budget_steps"]} proxy steps), {report["seeds"]} '
           'search seed(s)',
           f'  {"variant":<24} {"best proxy at B: median [min, max]":>36} '
           f'{"full mIOU of best: median":>27}']
  for variant, stats in report['at_budget'].items():
    full = report['full_miou'][variant]
    lines.append(f'  {variant:<24} {number(stats["median"]):>18} [{number(stats["min"])}, '
                 f'{number(stats["max"])}] {number(full["median"]):>27}')
  if report.get('baseline_at_2b'):
    stats = report['baseline_at_2b']
    lines.append(f'  {BASELINE + " at 2B":<24} {number(stats["median"]):>18} '
                 f'[{number(stats["min"])}, {number(stats["max"])}]')
  for name, row in (report.get('zero_cost_fidelity') or {}).items():
    low, high = row['spearman_rho_interval']
    lines.append(f'  zero-cost {name}: Spearman rho vs full training {number(row["spearman_rho"])} '
                 f'(90% [{number(low)}, {number(high)}], {row["num_cells"]} cells)')
  return '\n'.join(lines)
