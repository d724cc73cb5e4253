"""The newcomer path: the whole mission end to end on the synthetic demo set.

`run(DemoConfig(...))` chains the library's pieces the way a real project would:

  1. build the demo TFRecords (skipped when present and complete);
  2. train the backbone: a short DeepLab run of MobileNet-v2 (ASPP-lite head, decoder)
     so that the cached features mean something; its backbone variables are written
     as a backbone-only checkpoint that initialises everything after it;
  3. cache the frozen backbone's output-stride-16 features (the proxy task's input);
  4. search dense prediction cells on the cached features (random + local search);
  5. re-rank the best few proxy cells by short full-model trainings;
  6. train the re-ranked winner as a full model (longer than the re-rank runs);
  7. train a uniformly random cell with exactly the same recipe, and evaluate both
     on the demo val split (the comparison the issue asks for);
  8. export the winner as a SavedModel;
  9. segment a demo val image with it and write a coloured PNG.

Every stage logs a `[k/9]` banner and its time; training, caching and the search log
their own progress. Re-running with the same output folder reuses what is done:
training resumes from its checkpoints, the cache and the search resume, finished
re-rank and evaluation results are read back.

The full size fits in 15 minutes on 2 CPU cores; `reduced=True` is the CI size
(every stage tiny). Layout of `output_dir`:

  data/                         demo TFRecords
  rerank_data/                  the demo training images again, split for re-ranking:
                                train (fit) and val (the last N, held out)
  backbone/train/               stage 2's logdir (checkpoints, TensorBoard)
  backbone/backbone.ckpt*       its backbone variables alone (mode backbone)
  search/                       the study: trials.jsonl, best_cells/, tensorboard/,
                                feature_cache/, rerank/, rerank.json, rerank_winner.json
  winner/ random/               cell.json, train/ (checkpoints), eval/ (metrics.json)
  saved_model/                  the winner, serving_default
  pictures/                     input image, ground truth, coloured prediction
  summary.json                  every path and number below
"""

import dataclasses
import json
import os
import random
import time
from typing import Any, Callable

from absl import logging

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import fileio
from deeplab_dpc import search_space
from deeplab_dpc.data import descriptors

DATASET = 'demo'
NUM_STAGES = 9
SUMMARY_FILE = 'summary.json'
# Re-ranking's data: the demo training images split into fit / held-out parts.
RERANK_DATA_DIR = 'rerank_data'
BACKBONE_CHECKPOINT = 'backbone.ckpt'
# The demo val split, always answering "background": IoU ~0.85 for one class of six.
CHANCE_MIOU = 0.142
# Every model of the demo: MobileNet-v2 at half width. Output stride 8 with a
# decoder at stride 4 learns the demo's small shapes best (training/learning_test.py).
MODEL_VARIANT = 'mobilenet_v2'
DEPTH_MULTIPLIER = 0.5
TRAIN_OUTPUT_STRIDE = 8
DECODER_OUTPUT_STRIDE = (4,)
# The proxy task runs on features at the paper's output stride.
SEARCH_OUTPUT_STRIDE = 16
# The original's batch-norm decays (0.9997) leave the moving statistics near their
# initial values after a few hundred steps; evaluation uses them, so short runs
# need a fast decay.
BATCH_NORM_DECAY = 0.9
# Whole demo images are 129x129; evaluation and serving see them whole.
EVAL_CROP_SIZE = (129, 129)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
  """Sizes of every stage. `DemoConfig.create` fills them for the full or CI size.

  Attributes:
    output_dir: Where every artefact goes (`--output_dir`).
    reduced: The CI size (`--reduced`): every stage tiny.
    seed: Seeds training, the search, the random cell and the proxy task (`--seed`).
    backbone_steps: Training steps of stage 2.
    train_crop_size: Crop of every full-model training (k * 8 + 1 on each side).
    train_batch_size: Batch of every full-model training.
    base_learning_rate: Poly learning rate of every full-model training.
    min_scale_factor, max_scale_factor: Training augmentation scales.
    cache_crop_size: Crop of the feature cache (k * 16 + 1; 129 = whole images).
    cache_augmentation_copies: K augmented copies of each cached training image.
    cache_max_train_examples: Cache only the first N training images (0: all).
    cache_max_eval_examples: Cache only the first N val images (0: all).
    search_trials: Trials of the search.
    num_branches: B, branches of a cell.
    proxy_steps: Proxy training steps per trial.
    proxy_batch_size: Proxy batch.
    proxy_learning_rate: Proxy poly learning rate.
    proxy_upsample_logits: The proxy loss on logits upsampled to the label size
      (the original's default) or, False, on labels downsampled to the logits.
    rerank_top_k: Proxy cells trained as full models in stage 5.
    rerank_steps: Full training steps per re-ranked cell.
    rerank_holdout_examples: The last N demo training images are held out: the
      re-ranked cells train on the others and are scored on these, never on the
      val split that the final comparison reports.
    final_steps: Training steps of the winner and of the random cell (stage 6, 7).
    log_steps: Steps between training console lines.
  """
  output_dir: str
  reduced: bool = False
  seed: int = 0
  backbone_steps: int = 400
  train_crop_size: tuple[int, int] = (65, 65)
  train_batch_size: int = 8
  base_learning_rate: float = 0.05
  min_scale_factor: float = 0.75
  max_scale_factor: float = 1.25
  cache_crop_size: tuple[int, int] = (129, 129)
  cache_augmentation_copies: int = 2
  cache_max_train_examples: int = 0
  cache_max_eval_examples: int = 0
  search_trials: int = 30
  num_branches: int = search_space.DEFAULT_NUM_BRANCHES
  proxy_steps: int = 150
  proxy_batch_size: int = 8
  proxy_learning_rate: float = 0.1
  proxy_upsample_logits: bool = False
  rerank_top_k: int = 3
  rerank_steps: int = 400
  rerank_holdout_examples: int = 64
  final_steps: int = 700
  log_steps: int = 50

  @classmethod
  def create(cls, output_dir: str, reduced: bool = False, seed: int = 0,
             **overrides) -> 'DemoConfig':
    """The full-size or CI-size configuration, with optional per-field overrides.

    Raises:
      ValueError: an unknown field or a bad value, naming it.
    """
    sizes = dict(_REDUCED_SIZES) if reduced else {}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
      raise ValueError(f'DemoConfig: unknown field(s) {", ".join(unknown)}')
    sizes.update(overrides)
    config = cls(output_dir=output_dir, reduced=reduced, seed=seed, **sizes)
    config.validate()
    return config

  def validate(self) -> None:
    """Raises ValueError naming the first bad field (flag names for the CLI's three)."""
    if not self.output_dir:
      raise ValueError('--output_dir is required')
    if self.seed < 0:
      raise ValueError(f'--seed must be >= 0, got {self.seed}')
    for name in ('backbone_steps', 'search_trials', 'proxy_steps', 'rerank_top_k',
                 'rerank_steps', 'final_steps', 'train_batch_size', 'proxy_batch_size',
                 'cache_augmentation_copies', 'num_branches', 'log_steps',
                 'rerank_holdout_examples'):
      if int(getattr(self, name)) < 1:
        raise ValueError(f'DemoConfig.{name} must be >= 1, got {getattr(self, name)}')
    for name, stride in (('train_crop_size', TRAIN_OUTPUT_STRIDE),
                         ('cache_crop_size', SEARCH_OUTPUT_STRIDE)):
      size = getattr(self, name)
      if len(size) != 2 or any((s - 1) % stride or s < stride + 1 for s in size):
        raise ValueError(f'DemoConfig.{name} must be two sizes k * {stride} + 1, got {size}')
    train_images = descriptors.DEMO.splits_to_sizes['train']
    if self.rerank_holdout_examples >= train_images:
      raise ValueError(f'DemoConfig.rerank_holdout_examples must be < {train_images} (the '
                       f'demo training images), got {self.rerank_holdout_examples}')
    if any(s > e for s, e in zip(self.train_crop_size, EVAL_CROP_SIZE)):
      raise ValueError(f'DemoConfig.train_crop_size {self.train_crop_size} exceeds the demo '
                       f'images {EVAL_CROP_SIZE}')


# The CI size: every stage runs, each a few seconds. The backbone still needs a
# couple of hundred steps for the winner to beat "always background" reliably.
_REDUCED_SIZES = dict(
    backbone_steps=150, cache_crop_size=(65, 65), cache_augmentation_copies=1,
    cache_max_train_examples=64, cache_max_eval_examples=32, search_trials=3,
    proxy_steps=20, rerank_top_k=1, rerank_steps=20, final_steps=60, log_steps=20)


class _Stages:
  """Prints the `[k/9]` banners and keeps each stage's wall time."""

  def __init__(self):
    self.seconds = {}
    self._start = time.perf_counter()

  def run(self, index: int, key: str, title: str, fn: Callable[[], Any]) -> Any:
    _banner(f'[{index}/{NUM_STAGES}] {title}')
    start = time.perf_counter()
    result = fn()
    self.seconds[key] = round(time.perf_counter() - start, 1)
    _banner(f'[{index}/{NUM_STAGES}] done in {_duration(self.seconds[key])} '
            f'(total {_duration(self.total)})')
    return result

  @property
  def total(self) -> float:
    return time.perf_counter() - self._start


def _banner(text: str) -> None:
  # stdout, set apart from the libraries' absl lines (stderr) that stream below it.
  print(f'\n=== {text}', flush=True)


def _duration(seconds: float) -> str:
  minutes, secs = divmod(int(round(seconds)), 60)
  return f'{minutes}m{secs:02d}s' if minutes else f'{secs}s'


# -- Stage 1: data.

def _demo_split_complete(data_dir: str, sizes: dict | None = None) -> bool:
  """Whether `data_dir` holds both demo splits with every example (or `sizes`)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.data import pipeline  # pylint: disable=g-import-not-at-top
  for split, size in (sizes or descriptors.DEMO.splits_to_sizes).items():
    try:
      files = pipeline.list_files(data_dir, split, DATASET)
    except FileNotFoundError:
      return False
    try:
      count = int(tf.data.TFRecordDataset(files).reduce(0, lambda n, _: n + 1))
    except tf.errors.OpError:
      return False  # A truncated or foreign file: rebuild.
    if count != size:
      return False
  return True


def build_data(data_dir: str) -> dict:
  """Builds the demo TFRecords unless they are there already; returns the split sizes."""
  from deeplab_dpc.data import demo  # pylint: disable=g-import-not-at-top
  if _demo_split_complete(data_dir):
    logging.info('Demo TFRecords already complete in %s: skipped', data_dir)
  else:
    demo.build(data_dir)
  return dict(descriptors.DEMO.splits_to_sizes)


def rerank_split_sizes(holdout: int) -> dict:
  """Sizes of the re-ranking data: demo training images minus `holdout`, and those."""
  return {'train': descriptors.DEMO.splits_to_sizes['train'] - holdout, 'val': holdout}


def build_rerank_data(rerank_data_dir: str, holdout: int) -> dict:
  """The re-ranking's data: the demo *training* images split in two.

  Its `train` split holds the first training images and its `val` split the last
  `holdout` ones, so re-ranking selects the winner on images that no final model is
  evaluated on; the demo val split stays untouched until the final comparison, where
  the winner and the random cell meet it alike. Skipped when present and complete.
  """
  from deeplab_dpc.data import demo  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.data import shard_writer  # pylint: disable=g-import-not-at-top
  sizes = rerank_split_sizes(holdout)
  if _demo_split_complete(rerank_data_dir, sizes):
    logging.info('Re-ranking TFRecords already complete in %s: skipped', rerank_data_dir)
    return sizes
  fit = sizes['train']
  shard_writer.write_split(rerank_data_dir, 'train', [('train', i) for i in range(fit)],
                           demo.to_example, demo.DEFAULT_NUM_SHARDS)
  shard_writer.write_split(rerank_data_dir, 'val',
                           [('train', fit + i) for i in range(holdout)], demo.to_example, 1)
  return sizes


# -- Full-model training and evaluation (stages 2, 5, 6, 7).

def model_options(config: DemoConfig, cell=None, crop_size=None):
  """The demo's model: MobileNet-v2 (x0.5), OS 8, decoder; a DPC head when `cell` is given.

  At evaluation (`crop_size` = the whole image) the cell's pooling kernels keep the
  training crop's size, as the original's `image_pooling_crop_size`.
  """
  from deeplab_dpc import options as options_lib  # pylint: disable=g-import-not-at-top
  kwargs = dict(num_classes=descriptors.DEMO.num_classes, model_variant=MODEL_VARIANT,
                depth_multiplier=DEPTH_MULTIPLIER, output_stride=TRAIN_OUTPUT_STRIDE,
                decoder_output_stride=DECODER_OUTPUT_STRIDE, batch_norm_decay=BATCH_NORM_DECAY,
                crop_size=list(crop_size or config.train_crop_size))
  if crop_size is not None:
    kwargs['image_pooling_crop_size'] = list(config.train_crop_size)
  if cell is not None:
    kwargs['dense_prediction_cell_config'] = cell_lib.cell_to_json(cell_lib.parse_cell(cell))
  return options_lib.ModelOptions.create(**kwargs)


def train_model(config: DemoConfig, data_dir: str, train_logdir: str, steps: int, cell=None,
                initial_checkpoint: str | None = None) -> dict:
  """One full-model training with the demo recipe (resumes from `train_logdir`).

  Every cell (re-ranked, winner, random) gets exactly this recipe, the same seed
  and the same backbone initialisation, so they differ only by their cell.
  """
  from deeplab_dpc.training import trainer  # pylint: disable=g-import-not-at-top
  return trainer.train(trainer.TrainConfig(
      dataset=DATASET, dataset_dir=data_dir, train_logdir=train_logdir,
      model_options=model_options(config, cell), train_batch_size=config.train_batch_size,
      training_number_of_steps=steps, base_learning_rate=config.base_learning_rate,
      min_scale_factor=config.min_scale_factor, max_scale_factor=config.max_scale_factor,
      tf_initial_checkpoint=initial_checkpoint, seed=config.seed,
      log_steps=min(config.log_steps, steps), save_summaries_steps=min(config.log_steps, steps),
      save_interval_secs=300))


def evaluate_model(config: DemoConfig, data_dir: str, checkpoint: str, eval_logdir: str,
                   cell=None) -> tuple[dict, Any]:
  """Evaluates a checkpoint on whole demo val images; returns (metrics, the model)."""
  from deeplab_dpc.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  runner = evaluator.Evaluator(
      model_options(config, cell, crop_size=EVAL_CROP_SIZE),
      evaluator.EvalConfig(dataset=DATASET, dataset_dir=data_dir, split='val'),
      eval_logdir=eval_logdir)
  try:
    result = runner.evaluate_checkpoint(checkpoint)
  finally:
    runner.close()
  return result, runner.model


def write_backbone_checkpoint(model, prefix: str) -> str:
  """Writes the backbone's variables alone, in our checkpoint format.

  A checkpoint without `logits/` is what the trainer loads in mode `backbone`
  (the role an ImageNet checkpoint plays for a real dataset); the full stage-2
  checkpoint would be loaded strictly and fail on the DPC model's other head.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_dpc import checkpoints  # pylint: disable=g-import-not-at-top
  scope = model.backbone.name + '/'
  variables = {name: v for name, v in checkpoints.original_names(model).items()
               if name.startswith(scope)}
  tf.train.Checkpoint(**{checkpoints.CHECKPOINT_MODEL_KEY: tf.train.Checkpoint(**variables)}
                      ).write(prefix)
  return prefix


def _read_json(path: str) -> dict | None:
  if not os.path.exists(path):
    return None
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _train_and_evaluate_cell(config: DemoConfig, data_dir: str, backbone: str, workdir: str,
                             steps: int, cell) -> dict:
  """Trains `cell` in `workdir/train`, evaluates in `workdir/eval`; reuses a finished run.

  Training reads `data_dir`'s train split and evaluation its val split: the demo's
  for the final models, the re-ranking data (`build_rerank_data`) for re-ranking.
  """
  import keras  # pylint: disable=g-import-not-at-top
  keras.backend.clear_session()  # Each model is new; keep memory flat over the stages.
  metrics_path = os.path.join(workdir, 'eval', 'metrics.json')
  previous = _read_json(metrics_path)
  if previous and previous.get('global_step') == steps:
    logging.info('%s: trained and evaluated before (step %d), mIOU %.4f', workdir, steps,
                 previous['miou'])
    return previous
  trained = train_model(config, data_dir, os.path.join(workdir, 'train'), steps, cell, backbone)
  result, _ = evaluate_model(config, data_dir, trained['checkpoint'],
                             os.path.join(workdir, 'eval'), cell)
  return result


# -- The stages.

def _stage_backbone(config: DemoConfig, data_dir: str) -> dict:
  """Stage 2: trains the backbone, writes its backbone-only checkpoint, evaluates it."""
  workdir = os.path.join(config.output_dir, 'backbone')
  prefix = os.path.join(workdir, BACKBONE_CHECKPOINT)
  trained = train_model(config, data_dir, os.path.join(workdir, 'train'), config.backbone_steps)
  # Rewriting an existing file would change the feature cache's fingerprint check only
  # if the values changed; skipping it keeps a resumed demo's cache and study valid.
  if not os.path.exists(prefix + '.index') or trained['losses']:
    write_backbone_checkpoint(trained['model'], prefix)
  metrics_path = os.path.join(workdir, 'eval', 'metrics.json')
  result = _read_json(metrics_path)
  if not result or result.get('global_step') != trained['global_step']:
    result, _ = evaluate_model(config, data_dir, trained['checkpoint'],
                               os.path.join(workdir, 'eval'))
  return {'checkpoint': trained['checkpoint'], 'backbone_checkpoint': prefix,
          'train_logdir': os.path.join(workdir, 'train'), 'miou': float(result['miou'])}


def cache_config(config: DemoConfig, data_dir: str, backbone: str):
  """The feature cache of the search: the frozen stage-2 backbone at output stride 16."""
  from deeplab_dpc.search import feature_cache  # pylint: disable=g-import-not-at-top
  return feature_cache.CacheConfig(
      dataset=DATASET, dataset_dir=data_dir, crop_size=tuple(config.cache_crop_size),
      model_variant=MODEL_VARIANT, depth_multiplier=DEPTH_MULTIPLIER,
      output_stride=SEARCH_OUTPUT_STRIDE, tf_initial_checkpoint=backbone,
      augmentation_copies=config.cache_augmentation_copies,
      min_scale_factor=config.min_scale_factor, max_scale_factor=config.max_scale_factor,
      max_train_examples=config.cache_max_train_examples,
      max_eval_examples=config.cache_max_eval_examples, seed=config.seed)


def search_config(config: DemoConfig, data_dir: str, backbone: str):
  """The search: embedded (one process uses both cores best), short proxy trainings."""
  from deeplab_dpc.search import proxy_task  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.search import study  # pylint: disable=g-import-not-at-top
  return study.SearchConfig(
      search_dir=os.path.join(config.output_dir, 'search'),
      cache=cache_config(config, data_dir, backbone),
      proxy=proxy_task.ProxyConfig(
          training_number_of_steps=config.proxy_steps, batch_size=config.proxy_batch_size,
          base_learning_rate=config.proxy_learning_rate, batch_norm_decay=BATCH_NORM_DECAY,
          upsample_logits=config.proxy_upsample_logits, seed=config.seed),
      num_branches=config.num_branches, max_trials=config.search_trials,
      num_best_cells=max(5, config.rerank_top_k), seed=config.seed)


def _stage_cache(config: DemoConfig, data_dir: str, backbone: str) -> dict:
  from deeplab_dpc.search import feature_cache  # pylint: disable=g-import-not-at-top
  search = search_config(config, data_dir, backbone)
  manifest = feature_cache.build_feature_cache(search.cache, search.resolved_cache_dir,
                                               batch_size=search.cache_batch_size)
  logging.info('Feature cache %s: %d training examples (%d copies), %d val, features %s',
               search.resolved_cache_dir, manifest['splits']['train']['examples'],
               config.cache_augmentation_copies, manifest['splits']['eval']['examples'],
               'x'.join(map(str, manifest['feature_shape'])))
  return {'cache_dir': search.resolved_cache_dir, 'feature_shape': manifest['feature_shape']}


def _stage_search(config: DemoConfig, data_dir: str, backbone: str) -> dict:
  from deeplab_dpc.search import records  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.search import study  # pylint: disable=g-import-not-at-top
  search = search_config(config, data_dir, backbone)
  summary = study.run_search(search)
  if not summary['completed']:
    raise RuntimeError(f'the search in {search.search_dir} completed no trial '
                       f'({summary["failed"]} failed; see {records.TRIALS_FILE} there)')
  for rank, best in enumerate(summary['best'], 1):
    logging.info('best proxy cell %d: %s, proxy mIOU %.4f', rank, best['hash'][:8],
                 best['score'])
  return summary


def _stage_rerank(config: DemoConfig, rerank_data_dir: str, backbone: str) -> dict:
  """Stage 5: the top proxy cells trained on the re-ranking data, scored on its held-out part."""
  from deeplab_dpc.search import rerank  # pylint: disable=g-import-not-at-top
  rerank_config = rerank.RerankConfig(
      search_dir=os.path.join(config.output_dir, 'search'), dataset=DATASET,
      dataset_dir=rerank_data_dir, model_variant=MODEL_VARIANT, depth_multiplier=DEPTH_MULTIPLIER,
      output_stride=TRAIN_OUTPUT_STRIDE, train_crop_size=tuple(config.train_crop_size),
      tf_initial_checkpoint=backbone, top_k=config.rerank_top_k,
      training_number_of_steps=config.rerank_steps, train_batch_size=config.train_batch_size,
      base_learning_rate=config.base_learning_rate, eval_crop_size=EVAL_CROP_SIZE,
      decoder_output_stride=DECODER_OUTPUT_STRIDE, seed=config.seed)

  # The library's default trainer keeps the original's batch-norm decay and scale
  # range, too slow for runs this short; this one is the demo recipe used everywhere.
  def train_fn(rerank_cfg, cell, workdir):
    result = _train_and_evaluate_cell(config, rerank_data_dir, backbone, workdir,
                                      rerank_cfg.training_number_of_steps, cell)
    return {'miou': float(result['miou']), 'pixel_accuracy': float(result['pixel_accuracy']),
            'checkpoint': result['checkpoint'], 'global_step': int(result['global_step'])}

  report = rerank.run_rerank(rerank_config, train_fn=train_fn)
  for row in report['cells']:
    logging.info('re-ranked %s: proxy rank %d (%.4f) -> full rank %d (mIOU %.4f)',
                 row['hash'][:8], row['proxy_rank'], row['proxy_score'], row['full_rank'],
                 row['full_miou'])
  return report


def _stage_final(config: DemoConfig, data_dir: str, backbone: str, name: str, cell) -> dict:
  """Trains and evaluates one cell (`winner` or `random`) with the final recipe."""
  workdir = os.path.join(config.output_dir, name)
  cell_path = os.path.join(workdir, 'cell.json')
  cell_lib.save_cell(cell_lib.parse_cell(cell), cell_path)
  result = _train_and_evaluate_cell(config, data_dir, backbone, workdir, config.final_steps,
                                    cell)
  return {'cell_file': cell_path, 'checkpoint': result['checkpoint'],
          'train_logdir': os.path.join(workdir, 'train'),
          'eval_logdir': os.path.join(workdir, 'eval'), 'miou': float(result['miou']),
          'per_class_iou': result['per_class_iou'], 'class_names': result['class_names'],
          'pixel_accuracy': float(result['pixel_accuracy']), 'hash':
          search_space.cell_hash(cell)}


def _stage_export(config: DemoConfig, data_dir: str, winner: dict) -> str:
  import keras  # pylint: disable=g-import-not-at-top
  from deeplab_dpc import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_dpc import model as model_lib  # pylint: disable=g-import-not-at-top
  from deeplab_dpc import serving  # pylint: disable=g-import-not-at-top
  del data_dir
  keras.backend.clear_session()
  model = model_lib.build_model(model_options(config, cell_lib.load_cell(winner['cell_file']),
                                              crop_size=EVAL_CROP_SIZE))
  checkpoints.load_checkpoint(model, winner['checkpoint'], mode=checkpoints.STRICT,
                              flag='checkpoint_path')
  # Resizing inside the graph lets the SavedModel take pictures of any size; demo
  # images (129x129) pass through unchanged.
  size = EVAL_CROP_SIZE[0]
  return serving.export_saved_model(model, os.path.join(config.output_dir, 'saved_model'),
                                    min_resize_value=size, max_resize_value=size)


def _stage_segment(config: DemoConfig, saved_model_dir: str, index: int = 0) -> dict:
  from deeplab_dpc import segment  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.data import colormaps  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.data import image_io  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.data import demo  # pylint: disable=g-import-not-at-top
  pictures = os.path.join(config.output_dir, 'pictures')
  image, label = demo.render('val', index)
  stem = demo.image_name('val', index)
  image_path = os.path.join(pictures, f'{stem}.png')
  truth_path = os.path.join(pictures, f'{stem}_ground_truth.png')
  image_io.write_png(image_path, image)
  image_io.write_png(truth_path, colormaps.colorize(label, descriptors.DEMO.colormap_name))
  prediction = segment.segment_images(saved_model_dir, [image_path], pictures,
                                      colormap=descriptors.DEMO.colormap_name)[0]
  return {'dir': pictures, 'image': image_path, 'ground_truth': truth_path,
          'prediction': prediction,
          'labels': os.path.join(pictures, f'{stem}_labels.png')}


def run(config: DemoConfig) -> dict:
  """Runs (or resumes) the nine stages; prints the summary; writes `summary.json`.

  Args:
    config: `DemoConfig.create(output_dir, reduced=..., seed=...)`.

  Returns:
    The summary (also `<output_dir>/summary.json`): `paths` (every artefact),
    `miou` (backbone, re-ranked cells, winner, random), `searched_beats_random`,
    `per_class_iou`, `seconds` per stage, and the search and re-rank outcomes.

  Raises:
    ValueError / FileNotFoundError: a bad configuration or files, naming them.
    RuntimeError: the search completed no trial.
  """
  config.validate()
  out = config.output_dir
  os.makedirs(out, exist_ok=True)
  data_dir = os.path.join(out, 'data')
  rerank_data_dir = os.path.join(out, RERANK_DATA_DIR)
  stages = _Stages()
  logging.info('Demo pipeline (%s size) into %s', 'reduced' if config.reduced else 'full', out)

  stages.run(1, 'data', f'Building the demo TFRecords in {data_dir} and {rerank_data_dir}',
             lambda: (build_data(data_dir),
                      build_rerank_data(rerank_data_dir, config.rerank_holdout_examples)))
  backbone = stages.run(
      2, 'backbone', f'Training the backbone ({MODEL_VARIANT} x{DEPTH_MULTIPLIER}, '
      f'{config.backbone_steps} steps)', lambda: _stage_backbone(config, data_dir))
  backbone_ckpt = backbone['backbone_checkpoint']
  cache = stages.run(3, 'cache', 'Caching backbone features (output stride '
                     f'{SEARCH_OUTPUT_STRIDE})',
                     lambda: _stage_cache(config, data_dir, backbone_ckpt))
  search = stages.run(4, 'search', f'Searching DPC cells ({config.search_trials} trials, '
                      f'{config.proxy_steps} proxy steps each)',
                      lambda: _stage_search(config, data_dir, backbone_ckpt))
  reranked = stages.run(5, 'rerank', f'Re-ranking the best {config.rerank_top_k} cells '
                        f'({config.rerank_steps} training steps each, scored on '
                        f'{config.rerank_holdout_examples} held-out training images)',
                        lambda: _stage_rerank(config, rerank_data_dir, backbone_ckpt))
  winner_cell = cell_lib.load_cell(reranked['winner_cell_file'])
  winner = stages.run(6, 'winner', f'Training the winner {reranked["winner"]["hash"][:8]} '
                      f'({config.final_steps} steps)',
                      lambda: _stage_final(config, data_dir, backbone_ckpt, 'winner',
                                           winner_cell))
  random_cell = search_space.sample_cell(random.Random(config.seed), config.num_branches)
  random_run = stages.run(7, 'random', f'Training a random cell with the same recipe '
                          f'(seed {config.seed}) for comparison',
                          lambda: _stage_final(config, data_dir, backbone_ckpt, 'random',
                                               random_cell))
  saved_model = stages.run(8, 'export', 'Exporting the winner as a SavedModel',
                           lambda: _stage_export(config, data_dir, winner))
  pictures = stages.run(9, 'segment', 'Segmenting a demo val image',
                        lambda: _stage_segment(config, saved_model))

  search_dir = os.path.join(out, 'search')
  best_dir = os.path.join(search_dir, 'best_cells')
  summary = {
      'output_dir': os.path.abspath(out),
      'reduced': config.reduced,
      'seed': config.seed,
      'config': dataclasses.asdict(config),
      'paths': {
          'data': data_dir,
          'rerank_data': rerank_data_dir,
          'backbone_checkpoint': backbone_ckpt,
          'backbone_train_logdir': backbone['train_logdir'],
          'feature_cache': cache['cache_dir'],
          'search_dir': search_dir,
          'trials': os.path.join(search_dir, 'trials.jsonl'),
          'best_cells': sorted(os.path.join(best_dir, f) for f in os.listdir(best_dir)
                               if f.startswith('rank_') and f.endswith('.json')),
          'rerank_report': os.path.join(search_dir, 'rerank.json'),
          'winner_cell': winner['cell_file'],
          'random_cell': random_run['cell_file'],
          'winner_checkpoint': winner['checkpoint'],
          'random_checkpoint': random_run['checkpoint'],
          'winner_metrics': os.path.join(winner['eval_logdir'], 'metrics.json'),
          'random_metrics': os.path.join(random_run['eval_logdir'], 'metrics.json'),
          'tensorboard_logdir': out,
          'saved_model': saved_model,
          'pictures': pictures,
      },
      'miou': {
          'chance': CHANCE_MIOU,
          'backbone': backbone['miou'],
          'reranked': {row['hash'][:8]: row['full_miou'] for row in reranked['cells']},
          'winner': winner['miou'],
          'random': random_run['miou'],
      },
      'searched_beats_random': winner['miou'] > random_run['miou'],
      'class_names': winner['class_names'],
      'per_class_iou': {'winner': winner['per_class_iou'],
                        'random': random_run['per_class_iou']},
      'search': {k: search[k] for k in ('trials', 'completed', 'failed', 'best')},
      'rerank': {'spearman_rho': reranked['spearman_rho'], 'winner': reranked['winner']},
      'cells': {'winner': winner['hash'], 'random': random_run['hash']},
      'seconds': dict(stages.seconds, total=round(stages.total, 1)),
  }
  fileio.atomic_write(os.path.join(out, SUMMARY_FILE), json.dumps(summary, indent=1) + '\n')
  print(format_summary(summary), flush=True)
  return summary


def format_summary(summary: dict) -> str:
  """The closing text: where everything is, the mIOU table, the TensorBoard command."""
  paths = summary['paths']
  miou = summary['miou']
  names = summary['class_names']
  width = max(len(n) for n in names + ['pixel accuracy', 'mIOU'])
  lines = ['', '=' * 72, f'Demo finished in {_duration(summary["seconds"]["total"])} '
           f'({"reduced" if summary["reduced"] else "full"} size).', '',
           'mIOU on demo val (whole 129x129 images), same recipe and initialisation:',
           f'  {"class":<{width}}  {"searched":>8}  {"random":>8}']

  def cell(value):
    return f'{value:8.4f}' if value is not None else f'{"-":>8}'

  for i, name in enumerate(names):
    lines.append(f'  {name:<{width}}  {cell(summary["per_class_iou"]["winner"][i])}  '
                 f'{cell(summary["per_class_iou"]["random"][i])}')
  lines.append(f'  {"mIOU":<{width}}  {cell(miou["winner"])}  {cell(miou["random"])}')
  verdict = ('the searched cell beats the random one' if summary['searched_beats_random']
             else 'WARNING: the searched cell does NOT beat the random one in this run: at '
             'the demo\'s size cells differ by less than the run-to-run noise of one training '
             '(docs/search.md, "The demo\'s search")')
  lines += [f'  ({verdict}; backbone model {miou["backbone"]:.4f}, always-background '
            f'{miou["chance"]:.2f})', '',
            'Artefacts:',
            f'  cells          {paths["winner_cell"]} (winner), {paths["random_cell"]} (random)',
            f'                 {os.path.dirname(paths["best_cells"][0]) if paths["best_cells"] else "-"}/'
            f' ({len(paths["best_cells"])} best proxy cells), {paths["rerank_report"]}',
            f'  study          {paths["search_dir"]}/ (trials: {paths["trials"]})',
            f'  checkpoints    {paths["winner_checkpoint"]}',
            f'                 {paths["random_checkpoint"]}',
            f'                 {paths["backbone_checkpoint"]} (backbone only)',
            f'  TensorBoard    {paths["tensorboard_logdir"]}',
            f'  SavedModel     {paths["saved_model"]}',
            f'  pictures       {paths["pictures"]["prediction"]}',
            f'                 (input {os.path.basename(paths["pictures"]["image"])}, '
            f'ground truth {os.path.basename(paths["pictures"]["ground_truth"])})',
            f'  summary        {os.path.join(summary["output_dir"], SUMMARY_FILE)}', '',
            f'Open TensorBoard:  tensorboard --logdir={paths["tensorboard_logdir"]}',
            '=' * 72]
  return '\n'.join(lines)
