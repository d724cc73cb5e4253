"""Re-ranking: the top cells of the proxy task trained as full models.

The proxy task only ranks cells roughly (the paper reports a Spearman rank correlation
of about 0.4 to 0.47 between proxy and full scores), so the top-k cells are trained
as full DeepLab models with train.py's library code (`training.trainer.train`),
evaluated with eval.py's (`evaluation.evaluator.Evaluator`), and re-ranked by the
full score. Each cell's result is kept in `<search_dir>/rerank/<hash8>/result.json`,
so a killed re-ranking resumes (the trainer itself resumes from its checkpoints);
the report is `<search_dir>/rerank.json` and the winner's cell
`<search_dir>/rerank_winner.json`.
"""

import dataclasses
import json
import math
import os
from typing import Any

from absl import logging
import keras

from deeplab_dpc import cell as cell_lib
from deeplab_dpc.data import descriptors
from deeplab_dpc.evaluation import evaluator
from deeplab_dpc import fileio
from deeplab_dpc import options as options_lib
from deeplab_dpc.search import records
from deeplab_dpc.search import statistics
from deeplab_dpc.training import trainer

REPORT_FILE = 'rerank.json'
WINNER_FILE = 'rerank_winner.json'
RERANK_DIR = 'rerank'
RESULT_FILE = 'result.json'

# Evaluation crops that hold a whole image of each dataset (`--rerank_eval_crop_size`).
_DEFAULT_EVAL_CROP = {'cityscapes': (1025, 2049), 'pascal_voc_seg': (513, 513),
                      'pascal_person_part': (513, 513), 'demo': (129, 129)}


@dataclasses.dataclass(frozen=True)
class RerankConfig:
  """Flags of `search.py --mode=rerank`.

  Attributes:
    search_dir: The study folder.
    dataset, dataset_dir: The data of the full training and evaluation.
    model_variant, depth_multiplier, divisible_by, output_stride: The full model.
    train_crop_size: Training crop.
    tf_initial_checkpoint: Full-model initialisation (the backbone checkpoint).
    top_k: How many of the best proxy cells to train.
    training_number_of_steps: Full training steps per cell.
    train_batch_size: Full training batch.
    base_learning_rate: Full training learning rate (poly).
    train_split, eval_split: Splits.
    eval_dataset_dir: The folder of the evaluation split ('': `dataset_dir`), for
      models trained on one set and scored on another's split.
    eval_crop_size: Evaluation crop ('' / None: the dataset's whole image).
    decoder_output_stride: Decoder strides of the full model, or None.
    seed: Training seed.
    batch_norm_decay: Batch-norm decay of the full models (None: the original's;
      short re-rank runs need a faster one).
    min_scale_factor, max_scale_factor, scale_factor_step_size: Training
      augmentation (the original's flags).
    log_steps: Steps between training console lines (and summaries).
    label_weights: The loss's class weights: 1.0 or one per class
      (`--label_weights`, `--label_weights_from`).
  """
  search_dir: str
  dataset: str
  dataset_dir: str
  model_variant: str = 'mobilenet_v2'
  depth_multiplier: float = 1.0
  divisible_by: int | None = None
  output_stride: int = 16
  train_crop_size: tuple[int, int] = (769, 769)
  tf_initial_checkpoint: str = ''
  top_k: int = 3
  training_number_of_steps: int = 30000
  train_batch_size: int = 8
  base_learning_rate: float = 0.01
  train_split: str = 'train'
  eval_split: str = 'val'
  eval_dataset_dir: str = ''
  eval_crop_size: tuple[int, int] | None = None
  decoder_output_stride: tuple[int, ...] | None = None
  seed: int = 0
  batch_norm_decay: float | None = None
  min_scale_factor: float = 0.5
  max_scale_factor: float = 2.0
  scale_factor_step_size: float = 0.25
  log_steps: int = 100
  label_weights: Any = 1.0


def _eval_crop(config: RerankConfig) -> tuple[int, int]:
  """The evaluation crop, or a ValueError naming the flag when the dataset has no default."""
  eval_crop = config.eval_crop_size or _DEFAULT_EVAL_CROP.get(config.dataset)
  if not eval_crop:
    descriptor = descriptors.get_dataset_descriptor(config.dataset, config.dataset_dir)
    raise ValueError(f'--rerank_eval_crop_size is required for {descriptor.flag} (a crop '
                     'holding its largest image, e.g. 513,513)')
  return tuple(eval_crop)


def _model_options(config: RerankConfig, cell, crop_size, **kwargs):
  descriptor = descriptors.get_dataset_descriptor(config.dataset, config.dataset_dir)
  return options_lib.ModelOptions.create(
      num_classes=descriptor.num_classes, model_variant=config.model_variant,
      output_stride=config.output_stride, depth_multiplier=config.depth_multiplier,
      divisible_by=config.divisible_by, decoder_output_stride=config.decoder_output_stride,
      batch_norm_decay=config.batch_norm_decay,
      dense_prediction_cell_config=cell_lib.cell_to_json(cell_lib.parse_cell(cell)),
      crop_size=list(crop_size), **kwargs)


def train_cell(config: RerankConfig, cell, workdir: str) -> dict:
  """Trains one cell as a full model in `workdir/train` (resuming); no evaluation.

  Returns:
    {'checkpoint', 'global_step'}.
  """
  keras.backend.clear_session()  # Each cell is a new model; keep memory flat.
  train_config = trainer.TrainConfig(
      dataset=config.dataset, dataset_dir=config.dataset_dir,
      train_logdir=os.path.join(workdir, 'train'),
      model_options=_model_options(config, cell, config.train_crop_size),
      train_split=config.train_split, train_batch_size=config.train_batch_size,
      training_number_of_steps=config.training_number_of_steps,
      base_learning_rate=config.base_learning_rate,
      min_scale_factor=config.min_scale_factor, max_scale_factor=config.max_scale_factor,
      scale_factor_step_size=config.scale_factor_step_size,
      tf_initial_checkpoint=config.tf_initial_checkpoint or None, seed=config.seed,
      label_weights=config.label_weights,
      log_steps=min(config.log_steps, config.training_number_of_steps),
      save_summaries_steps=min(config.log_steps, config.training_number_of_steps),
      save_interval_secs=600)
  trained = trainer.train(train_config)
  return {'checkpoint': trained['checkpoint'], 'global_step': int(trained['global_step'])}


def evaluate_cell(config: RerankConfig, cell, checkpoint: str, eval_logdir: str) -> dict:
  """Scores a full model of `cell` from `checkpoint` on the recipe's evaluation split.

  Whole images at the recipe's evaluation crop; the cell's pooling kernels keep the
  training crop's size, as the original's `image_pooling_crop_size`. Writes
  `eval_logdir/metrics.json`.

  Returns:
    {'miou', 'pixel_accuracy', 'per_class_iou', 'class_names'}.
  """
  eval_dir = config.eval_dataset_dir or config.dataset_dir
  descriptor = descriptors.get_dataset_descriptor(config.dataset, eval_dir)
  eval_options = _model_options(config, cell, _eval_crop(config),
                                image_pooling_crop_size=list(config.train_crop_size))
  result = evaluator.Evaluator(
      eval_options, evaluator.EvalConfig(dataset=config.dataset, dataset_dir=eval_dir,
                                         split=config.eval_split),
      eval_logdir=eval_logdir, show_progress=False,
  ).evaluate_checkpoint(checkpoint)
  return {'miou': float(result['miou']), 'pixel_accuracy': float(result['pixel_accuracy']),
          'per_class_iou': result['per_class_iou'], 'class_names': list(descriptor.class_names)}


def train_and_evaluate(config: RerankConfig, cell, workdir: str) -> dict:
  """Trains one cell as a full model in `workdir` and evaluates it; returns the metrics.

  The one "train a cell, then evaluate" path: re-ranking, the fidelity study and
  the demo's final models all train cells through it. Training resumes from
  `workdir/train`; evaluation writes `workdir/eval/metrics.json`.

  Returns:
    {'miou', 'pixel_accuracy', 'per_class_iou', 'class_names', 'checkpoint',
     'global_step'}.
  """
  _eval_crop(config)  # A missing crop is an error before, not after, training.
  trained = train_cell(config, cell, workdir)
  metrics = evaluate_cell(config, cell, trained['checkpoint'], os.path.join(workdir, 'eval'))
  return dict(metrics, **trained)


def run_rerank(config: RerankConfig, train_fn=None) -> dict:
  """Trains and evaluates the top-k proxy cells; writes and returns the report.

  Args:
    config: The flags.
    train_fn: `(config, cell, workdir) -> {'miou', ...}`; defaults to
      `train_and_evaluate` (tests pass a stand-in).

  Returns:
    {'cells': [...], 'num_cells', 'spearman_rho', 'spearman_rho_interval' (90%
     bootstrap over the re-ranked cells; with 3 cells rho can only be +-0.5 or +-1),
     'winner', 'proxy_winner'}.

  Raises:
    ValueError: no completed trials or a bad --rerank_top_k.
  """
  if int(config.top_k) < 1:
    raise ValueError(f'--rerank_top_k must be >= 1, got {config.top_k}')
  train_fn = train_fn or train_and_evaluate
  entries = records.read_trials(config.search_dir)
  top = records.best_trials(entries, config.top_k)
  if not top:
    raise ValueError(f'--search_dir={config.search_dir}: no completed trials to re-rank '
                     f'(run --mode=search first)')
  rows = []
  for rank, entry in enumerate(top, 1):
    workdir = os.path.join(config.search_dir, RERANK_DIR, entry['hash'][:8])
    result_path = os.path.join(workdir, RESULT_FILE)
    if fileio.exists(result_path):
      with fileio.open_file(result_path, encoding='utf-8') as f:
        full = json.load(f)
      logging.info('Re-rank %d/%d (%s): done before, mIOU %.4f', rank, len(top),
                   entry['hash'][:8], full['miou'])
    else:
      logging.info('Re-rank %d/%d (%s): training the full model', rank, len(top),
                   entry['hash'][:8])
      full = train_fn(config, entry['cell'], workdir)
      fileio.atomic_write(result_path, json.dumps(full, indent=1))
    rows.append({'hash': entry['hash'], 'trial_id': entry['trial_id'], 'cell': entry['cell'],
                 'proxy_rank': rank, 'proxy_score': entry['score'],
                 'full_miou': float(full['miou']), 'workdir': workdir,
                 'checkpoint': full.get('checkpoint')})
  by_full = sorted(rows, key=lambda r: (-r['full_miou'], r['proxy_rank']))
  for full_rank, row in enumerate(by_full, 1):
    row['full_rank'] = full_rank
  proxy_scores = [r['proxy_score'] for r in rows]
  full_scores = [r['full_miou'] for r in rows]
  rho = statistics.spearman_rho(proxy_scores, full_scores)
  interval = statistics.bootstrap_interval(statistics.spearman_rho, proxy_scores, full_scores)
  winner = by_full[0]
  report = {
      'cells': rows,
      'num_cells': len(rows),
      'spearman_rho': None if math.isnan(rho) else rho,
      'spearman_rho_interval': [None if math.isnan(v) else v for v in interval],
      'winner': {k: winner[k] for k in ('hash', 'proxy_score', 'full_miou', 'proxy_rank')},
      'proxy_winner': {k: rows[0][k] for k in ('hash', 'proxy_score', 'full_miou')},
      'winner_cell_file': os.path.join(config.search_dir, WINNER_FILE),
  }
  cell_lib.save_cell(cell_lib.parse_cell(winner['cell']),
                     os.path.join(config.search_dir, WINNER_FILE))
  fileio.atomic_write(os.path.join(config.search_dir, REPORT_FILE),
                      json.dumps(report, indent=1))
  return report
