"""The newcomer path: the whole mission end to end on the synthetic demo set.

`run(DemoConfig(...))` chains the library's pieces the way a real project would:

  1. build the demo TFRecords (skipped when present and complete), and split the
     demo training images into a fit part and a held-out part for the search;
  2. check the pretrained backbone (`demo_backbone.PRETRAINED_CHECKPOINT`, shipped:
     MobileNet-v2 x0.5 trained at output stride 8 on a separate set of demo scenes,
     the role the paper's COCO-pretrained MobileNet-v2 plays);
  3. cache its frozen output-stride-8 features of the fit and held-out images;
  4. search dense prediction cells on the cached features (random + local search),
     each scored on the held-out images;
  5. re-rank the best few proxy cells by full-model trainings on the fit images,
     scored on the held-out images (`rerank.train_and_evaluate`: the one full
     training recipe);
  6. score the re-ranked winner's training on the demo val split, and train it
     again with further training seeds (their spread is the seed noise of one
     training);
  7. train uniformly random cells with exactly the same recipe, data, seed and
     initialisation, and score them on the demo val split, which nothing before
     stage 6 has seen;
  8. export the winner as a SavedModel;
  9. segment a demo val image with it and write a coloured PNG.

Every stage logs a `[k/9]` banner and its time; training, caching and the search log
their own progress. Re-running with the same output folder reuses what is done:
training resumes from its checkpoints, the cache and the search resume, finished
trainings' results are read back.

`reduced=True` is the CI size (every stage tiny). Layout of `output_dir`:

  data/                         demo TFRecords
  rerank_data/                  the demo training images again, split for the search:
                                train (fit) and val (the last N, held out)
  search/                       the study: trials.jsonl, best_cells/, tensorboard/,
                                feature_cache/, rerank/, rerank.json, rerank_winner.json
  winner/                       cell.json, seed<S>/ (eval/ metrics of the re-ranking's
                                training), seed<S+1>/... (train/ checkpoints, eval/)
  random/<k>_<hash8>/           cell.json, train/, eval/ of each random cell
  saved_model/                  the winner, serving_default
  pictures/                     input image, ground truth, coloured prediction
  summary.json                  every path and number below
"""

import dataclasses
import json
import os
import time
from typing import Any, Callable

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import checkpoints
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import demo
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import image_io
from deeplab_dpc.data import pipeline
from deeplab_dpc.data import shard_writer
from deeplab_dpc.data import tfrecord
from deeplab_dpc import demo_backbone
from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc.search import feature_cache
from deeplab_dpc.search import fidelity
from deeplab_dpc.search import proxy_task
from deeplab_dpc.search import records
from deeplab_dpc.search import rerank
from deeplab_dpc.search import statistics
from deeplab_dpc.search import study
from deeplab_dpc import search_space
from deeplab_dpc import segment
from deeplab_dpc import serving

DATASET = 'demo'
NUM_STAGES = 9
SUMMARY_FILE = 'summary.json'
RESULT_FILE = 'result.json'
# The search's data: the demo training images split into fit / held-out parts.
RERANK_DATA_DIR = 'rerank_data'
# The demo val split, always answering "background": IoU ~0.77 for one class of six.
CHANCE_MIOU = 0.128
# Every model of the demo: the pretrained backbone's MobileNet-v2 at half width,
# output stride 8, with a decoder at stride 4 for the demo's small shapes.
MODEL_VARIANT = demo_backbone.MODEL_VARIANT
DEPTH_MULTIPLIER = demo_backbone.DEPTH_MULTIPLIER
TRAIN_OUTPUT_STRIDE = demo_backbone.OUTPUT_STRIDE
DECODER_OUTPUT_STRIDE = (4,)
# The proxy task reads the features at the stride the backbone was pretrained at:
# 17x17 on whole demo images, where the space's rates and pooling grids differ.
SEARCH_OUTPUT_STRIDE = demo_backbone.OUTPUT_STRIDE
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
    seed: Seeds training, the search, the random cells and the proxy task (`--seed`).
    backbone_checkpoint: The pretrained backbone (`--backbone_checkpoint`; '' = the
      shipped one).
    train_crop_size: Crop of every full-model training (k * 8 + 1 on each side).
    train_batch_size: Batch of every full-model training.
    base_learning_rate: Poly learning rate of every full-model training.
    min_scale_factor, max_scale_factor: Training augmentation scales.
    full_steps: Steps of every full-model training (re-ranking, winner, random
      cells, the fidelity benchmark): one recipe.
    cache_crop_size: Crop of the feature cache (k * 8 + 1; 129 = whole images).
    cache_augmentation_copies: K augmented copies of each cached training image.
    cache_max_train_examples: Cache only the first N fit images (0: all).
    cache_max_eval_examples: Cache only the first N held-out images (0: all).
    search_trials: Trials of the search.
    search_top_k: Mutation parents of the local search: the k best cells so far.
    num_branches: B, branches of a cell.
    proxy_steps: Proxy training steps per trial.
    proxy_batch_size: Proxy batch.
    proxy_learning_rate: Proxy poly learning rate.
    proxy_upsample_logits: The proxy loss on logits upsampled to the label size
      (the original's default) or, False, on labels downsampled to the logits.
    rerank_top_k: Proxy cells trained as full models in stage 5.
    rerank_holdout_examples: The last N demo training images are held out: the
      proxy task and re-ranking score cells on these, never on the val split
      that the final comparison reports.
    num_random_cells: Uniformly random cells trained alike for comparison.
    noise_seeds: Training seeds of the winner (seed, seed + 1, ...): their spread
      is the seed noise the comparison is read against.
    log_steps: Steps between training console lines.
  """
  output_dir: str
  reduced: bool = False
  seed: int = 0
  backbone_checkpoint: str = ''
  # Whole images: the demo task's context is half the scene or more, which crops would cut.
  train_crop_size: tuple[int, int] = (129, 129)
  train_batch_size: int = 8
  # Low enough that the pretrained backbone keeps its features for the cell to combine.
  base_learning_rate: float = 0.02
  min_scale_factor: float = 0.75
  max_scale_factor: float = 1.25
  full_steps: int = 140
  cache_crop_size: tuple[int, int] = (129, 129)
  cache_augmentation_copies: int = 2
  cache_max_train_examples: int = 0
  cache_max_eval_examples: int = 0
  search_trials: int = 24
  # Few parents: with 24 trials the default 10 would be nearly every cell tried,
  # and the local search would not stay near the best ones.
  search_top_k: int = 3
  num_branches: int = search_space.DEFAULT_NUM_BRANCHES
  # Short: coarse context (pooling) is learnt within tens of steps, local detail
  # later, so a short proxy separates the cells the demo task rewards most.
  proxy_steps: int = 50
  proxy_batch_size: int = 8
  proxy_learning_rate: float = 0.1
  proxy_upsample_logits: bool = False
  rerank_top_k: int = 3
  rerank_holdout_examples: int = 64
  num_random_cells: int = 3
  noise_seeds: int = 2
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

  @property
  def resolved_backbone_checkpoint(self) -> str:
    return self.backbone_checkpoint or demo_backbone.PRETRAINED_CHECKPOINT

  def validate(self) -> None:
    """Raises ValueError naming the first bad field (flag names for the CLI's)."""
    if not self.output_dir:
      raise ValueError('--output_dir is required')
    if self.seed < 0:
      raise ValueError(f'--seed must be >= 0, got {self.seed}')
    for name in ('search_trials', 'search_top_k', 'proxy_steps', 'rerank_top_k', 'full_steps',
                 'train_batch_size', 'proxy_batch_size', 'cache_augmentation_copies',
                 'num_branches', 'log_steps', 'rerank_holdout_examples', 'num_random_cells'):
      if int(getattr(self, name)) < 1:
        raise ValueError(f'DemoConfig.{name} must be >= 1, got {getattr(self, name)}')
    if int(self.noise_seeds) < 2:
      raise ValueError(f'DemoConfig.noise_seeds must be >= 2 (a spread needs two runs), got '
                       f'{self.noise_seeds}')
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


# The CI size: every stage runs, each a few seconds; the pretrained backbone lets
# even these short trainings beat "always background".
_REDUCED_SIZES = dict(
    train_crop_size=(65, 65), cache_crop_size=(65, 65), cache_augmentation_copies=1, cache_max_train_examples=64,
    cache_max_eval_examples=32, search_trials=3, proxy_steps=20, rerank_top_k=1,
    full_steps=40, num_random_cells=1, noise_seeds=2, log_steps=20)


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

def _demo_split_complete(data_dir: str, sizes: dict, first_items: dict) -> bool:
  """Whether `data_dir` holds every split of `sizes` whole and of today's scenes.

  A split counts as complete when it has `sizes[split]` records and its first
  record holds the pixels `demo.render(*first_items[split])` draws now, so a
  folder built by an older version of the scene generator is rebuilt, not reused.
  """
  for split, size in sizes.items():
    try:
      files = pipeline.list_files(data_dir, split, DATASET)
    except FileNotFoundError:
      return False
    try:
      count = int(tf.data.TFRecordDataset(files).reduce(0, lambda n, _: n + 1))
      first = next(tfrecord.read_examples(files[0]))
    except (tf.errors.OpError, ValueError, StopIteration):
      return False  # A truncated or foreign file: rebuild.
    if count != size:
      return False
    image, label = demo.render(*first_items[split])
    if not (np.array_equal(first['image'], image) and
            np.array_equal(first['label'][..., 0], label)):
      logging.info('%s holds demo scenes of another version: rebuilding them', data_dir)
      return False
  return True


def build_data(data_dir: str) -> dict:
  """Builds the demo TFRecords unless they are there already; returns the split sizes."""
  sizes = {split: descriptors.DEMO.splits_to_sizes[split] for split in ('train', 'val')}
  if _demo_split_complete(data_dir, sizes, {split: (split, 0) for split in sizes}):
    logging.info('Demo TFRecords already complete in %s: skipped', data_dir)
  else:
    demo.build(data_dir)
  return sizes


def rerank_split_sizes(holdout: int) -> dict:
  """Sizes of the re-ranking data: demo training images minus `holdout`, and those."""
  return {'train': descriptors.DEMO.splits_to_sizes['train'] - holdout, 'val': holdout}


def _train_records(data_dir: str) -> list[bytes]:
  """The serialized examples of the demo train split in `data_dir`, in index order."""
  by_name = {}
  for record in tf.data.TFRecordDataset(pipeline.list_files(data_dir, 'train', DATASET)):
    example = tf.train.Example.FromString(record.numpy())
    name = example.features.feature['image/filename'].bytes_list.value[0].decode()
    by_name[name] = record.numpy()
  size = descriptors.DEMO.splits_to_sizes['train']
  return [by_name[demo.image_name('train', i)] for i in range(size)]


def build_rerank_data(rerank_data_dir: str, holdout: int, data_dir: str) -> dict:
  """The re-ranking's data: the demo *training* images of `data_dir` split in two.

  Its `train` split holds the first training images and its `val` split the last
  `holdout` ones, so re-ranking selects the winner on images that no final model is
  evaluated on; the demo val split stays untouched until the final comparison, where
  the winner and the random cell meet it alike. The records are copied from
  `data_dir` (built first). Skipped when present and complete.
  """
  sizes = rerank_split_sizes(holdout)
  if _demo_split_complete(rerank_data_dir, sizes,
                          {'train': ('train', 0), 'val': ('train', sizes['train'])}):
    logging.info('Re-ranking TFRecords already complete in %s: skipped', rerank_data_dir)
    return sizes
  records = _train_records(data_dir)
  fit = sizes['train']
  shard_writer.write_split(rerank_data_dir, 'train', records[:fit], lambda record: record,
                           demo.DEFAULT_NUM_SHARDS)
  shard_writer.write_split(rerank_data_dir, 'val', records[fit:], lambda record: record, 1)
  return sizes


# -- Full-model training and evaluation (stages 5, 6, 7).

def model_options(config: DemoConfig, cell=None, crop_size=None):
  """The demo's model: MobileNet-v2 (x0.5), OS 8, decoder; a DPC head when `cell` is given.

  At evaluation (`crop_size` = the whole image) the cell's pooling kernels keep the
  training crop's size, as the original's `image_pooling_crop_size`.
  """
  kwargs = dict(num_classes=descriptors.DEMO.num_classes, model_variant=MODEL_VARIANT,
                depth_multiplier=DEPTH_MULTIPLIER, output_stride=TRAIN_OUTPUT_STRIDE,
                decoder_output_stride=DECODER_OUTPUT_STRIDE, batch_norm_decay=BATCH_NORM_DECAY,
                crop_size=list(crop_size or config.train_crop_size))
  if crop_size is not None:
    kwargs['image_pooling_crop_size'] = list(config.train_crop_size)
  if cell is not None:
    kwargs['dense_prediction_cell_config'] = cell_lib.cell_to_json(cell_lib.parse_cell(cell))
  return options_lib.ModelOptions.create(**kwargs)


def full_recipe(config: DemoConfig, data_dir: str, search_dir: str = '',
                eval_data_dir: str = ''):
  """The demo's one full training recipe, as a `rerank.RerankConfig`.

  Re-ranking, the winner and the random cells (all on the fit images of the
  re-ranking data) and the fidelity benchmark (on demo train) train cells with it:
  the same steps, batch, learning rate, batch-norm decay, augmentation and backbone
  initialisation, so cells differ only by their cell (and the seed, where it is
  varied on purpose). Models are scored on the val split of `eval_data_dir`
  ('': of `data_dir`).
  """
  return rerank.RerankConfig(
      search_dir=search_dir, dataset=DATASET, dataset_dir=data_dir, model_variant=MODEL_VARIANT,
      depth_multiplier=DEPTH_MULTIPLIER, output_stride=TRAIN_OUTPUT_STRIDE,
      train_crop_size=tuple(config.train_crop_size),
      tf_initial_checkpoint=config.resolved_backbone_checkpoint, top_k=config.rerank_top_k,
      training_number_of_steps=config.full_steps, train_batch_size=config.train_batch_size,
      base_learning_rate=config.base_learning_rate, eval_crop_size=EVAL_CROP_SIZE,
      decoder_output_stride=DECODER_OUTPUT_STRIDE, seed=config.seed,
      batch_norm_decay=BATCH_NORM_DECAY, min_scale_factor=config.min_scale_factor,
      max_scale_factor=config.max_scale_factor, log_steps=config.log_steps,
      eval_dataset_dir=eval_data_dir)


def final_recipe(config: DemoConfig):
  """The recipe of the final models: trained as in re-ranking, scored on demo val.

  The winner's re-ranking training is therefore its first final model, and the
  random cells train on exactly the images the winner trained on.
  """
  return full_recipe(config, os.path.join(config.output_dir, RERANK_DATA_DIR),
                     eval_data_dir=os.path.join(config.output_dir, 'data'))


def write_backbone_checkpoint(model, prefix: str) -> str:
  """Writes the backbone's variables alone, in our checkpoint format.

  A checkpoint without `logits/` is what the trainer loads in mode `backbone`
  (the role an ImageNet checkpoint plays for a real dataset); a full checkpoint
  would be loaded strictly and fail on a DPC model's other head.
  """
  scope = model.backbone.name + '/'
  variables = {name: v for name, v in checkpoints.original_names(model).items()
               if name.startswith(scope)}
  tf.train.Checkpoint(**{checkpoints.CHECKPOINT_MODEL_KEY: tf.train.Checkpoint(**variables)}
                      ).write(prefix)
  return prefix


def _read_json(path: str) -> dict | None:
  if not fileio.exists(path):
    return None
  with fileio.open_file(path, encoding='utf-8') as f:
    return json.load(f)


def train_and_evaluate_cell(recipe, cell, workdir: str, seed: int) -> dict:
  """`rerank.train_and_evaluate` with training seed `seed`; reuses a finished result.

  Training reads the recipe's data train split and evaluation its val split: the
  demo's for the final models, the re-ranking data for re-ranking.
  """
  result_path = os.path.join(workdir, RESULT_FILE)
  previous = _read_json(result_path)
  if previous and previous.get('global_step') == recipe.training_number_of_steps:
    logging.info('%s: trained and evaluated before (step %d), mIOU %.4f', workdir,
                 previous['global_step'], previous['miou'])
    return previous
  result = rerank.train_and_evaluate(dataclasses.replace(recipe, seed=seed), cell, workdir)
  fileio.atomic_write(result_path, json.dumps(result, indent=1))
  return result


# -- The stages.

def _stage_backbone(config: DemoConfig) -> dict:
  """Stage 2: the pretrained backbone loads into the demo model; its provenance."""
  path = demo_backbone.check_backbone_checkpoint(config.resolved_backbone_checkpoint,
                                                 'backbone_checkpoint')
  provenance = _read_json(os.path.join(os.path.dirname(path), demo_backbone.PROVENANCE_FILE))
  if provenance:
    logging.info('Pretrained backbone %s: %d steps on %d demo pretraining scenes, its own '
                 'model scores %.4f mIOU on held-out pretraining scenes', path,
                 provenance['global_step'], provenance['data']['examples'],
                 provenance['pretrain_val_miou'])
  return {'backbone_checkpoint': path,
          'miou': provenance['pretrain_val_miou'] if provenance else None}


def cache_config(config: DemoConfig, data_dir: str):
  """The feature cache of the search: the frozen pretrained backbone at output stride 8.

  `data_dir` is the re-ranking data: the proxy trains on the fit images and is
  scored on the held-out ones, never on demo val.
  """
  return feature_cache.CacheConfig(
      dataset=DATASET, dataset_dir=data_dir, crop_size=tuple(config.cache_crop_size),
      model_variant=MODEL_VARIANT, depth_multiplier=DEPTH_MULTIPLIER,
      output_stride=SEARCH_OUTPUT_STRIDE,
      tf_initial_checkpoint=config.resolved_backbone_checkpoint,
      augmentation_copies=config.cache_augmentation_copies,
      min_scale_factor=config.min_scale_factor, max_scale_factor=config.max_scale_factor,
      max_train_examples=config.cache_max_train_examples,
      max_eval_examples=config.cache_max_eval_examples, seed=config.seed)


def search_config(config: DemoConfig, data_dir: str, search_dir: str | None = None):
  """The search: embedded (one process uses both cores best), short proxy trainings."""
  return study.SearchConfig(
      search_dir=search_dir or os.path.join(config.output_dir, 'search'),
      cache=cache_config(config, data_dir),
      proxy=proxy_task.ProxyConfig(
          training_number_of_steps=config.proxy_steps, batch_size=config.proxy_batch_size,
          base_learning_rate=config.proxy_learning_rate, batch_norm_decay=BATCH_NORM_DECAY,
          upsample_logits=config.proxy_upsample_logits, seed=config.seed),
      num_branches=config.num_branches, max_trials=config.search_trials,
      top_k=config.search_top_k, num_best_cells=max(5, config.rerank_top_k), seed=config.seed)


def _stage_cache(config: DemoConfig, data_dir: str) -> dict:
  search = search_config(config, data_dir)
  manifest = feature_cache.build_feature_cache(search.cache, search.resolved_cache_dir,
                                               batch_size=search.cache_batch_size)
  logging.info('Feature cache %s: %d training examples (%d copies), %d held out, features %s',
               search.resolved_cache_dir, manifest['splits']['train']['examples'],
               config.cache_augmentation_copies, manifest['splits']['eval']['examples'],
               'x'.join(map(str, manifest['feature_shape'])))
  return {'cache_dir': search.resolved_cache_dir, 'feature_shape': manifest['feature_shape']}


def _stage_search(config: DemoConfig, data_dir: str) -> dict:
  search = search_config(config, data_dir)
  summary = study.run_search(search)
  if not summary['completed']:
    raise RuntimeError(f'the search in {search.search_dir} completed no trial '
                       f'({summary["failed"]} failed; see {records.TRIALS_FILE} there)')
  for rank, best in enumerate(summary['best'], 1):
    logging.info('best proxy cell %d: %s, proxy mIOU %.4f', rank, best['hash'][:8],
                 best['score'])
  return summary


def _stage_rerank(config: DemoConfig, rerank_data_dir: str) -> dict:
  """Stage 5: the top proxy cells trained on the re-ranking data, scored on its held-out part."""
  recipe = full_recipe(config, rerank_data_dir, os.path.join(config.output_dir, 'search'))
  report = rerank.run_rerank(recipe)
  for row in report['cells']:
    logging.info('re-ranked %s: proxy rank %d (%.4f) -> full rank %d (mIOU %.4f)',
                 row['hash'][:8], row['proxy_rank'], row['proxy_score'], row['full_rank'],
                 row['full_miou'])
  return report


def random_cells(config: DemoConfig, exclude: str) -> list[tuple]:
  """`num_random_cells` distinct uniformly drawn cells (seeded), none the winner's."""
  return fidelity.draw_cells(config.num_random_cells, config.seed, config.num_branches,
                             exclude=(exclude,))


def _final_result(result: dict, workdir: str, seed: int, cell) -> dict:
  return {'checkpoint': result['checkpoint'],
          'train_logdir': os.path.dirname(result['checkpoint']),
          'eval_logdir': os.path.join(workdir, 'eval'), 'miou': float(result['miou']),
          'per_class_iou': result['per_class_iou'], 'class_names': result['class_names'],
          'pixel_accuracy': float(result['pixel_accuracy']), 'seed': seed,
          'hash': search_space.cell_hash(cell)}


def _final_run(config: DemoConfig, workdir: str, cell, seed: int) -> dict:
  """One final-recipe training of `cell` (the fit images) scored on demo val."""
  fileio.makedirs(workdir)
  result = train_and_evaluate_cell(final_recipe(config), cell, workdir, seed)
  return _final_result(result, workdir, seed, cell)


def _final_from_rerank(config: DemoConfig, workdir: str, cell, rerank_row: dict) -> dict:
  """The winner's re-ranking training (final recipe, the demo's seed) scored on demo val."""
  result_path = os.path.join(workdir, RESULT_FILE)
  previous = _read_json(result_path)
  if not (previous and previous.get('checkpoint') == rerank_row['checkpoint']):
    fileio.makedirs(workdir)
    metrics = rerank.evaluate_cell(final_recipe(config), cell, rerank_row['checkpoint'],
                                   os.path.join(workdir, 'eval'))
    previous = dict(metrics, checkpoint=rerank_row['checkpoint'],
                    global_step=config.full_steps)
    fileio.atomic_write(result_path, json.dumps(previous, indent=1))
  return _final_result(previous, workdir, config.seed, cell)


def _stage_winner(config: DemoConfig, reranked: dict) -> dict:
  """Stage 6: the winner on demo val, from its re-ranking training and further seeds."""
  row = next(r for r in reranked['cells'] if r['hash'] == reranked['winner']['hash'])
  cell = row['cell']
  workdir = os.path.join(config.output_dir, 'winner')
  cell_path = os.path.join(workdir, 'cell.json')
  fileio.makedirs(workdir)
  cell_lib.save_cell(cell_lib.parse_cell(cell), cell_path)
  runs = [_final_from_rerank(config, os.path.join(workdir, f'seed{config.seed}'), cell, row)]
  runs += [_final_run(config, os.path.join(workdir, f'seed{seed}'), cell, seed)
           for seed in range(config.seed + 1, config.seed + config.noise_seeds)]
  noise = statistics.spread([r['miou'] for r in runs])['std']
  logging.info('winner over %d training seeds: mIOU %s (std %.4f)', len(runs),
               ', '.join(f'{r["miou"]:.4f}' for r in runs), noise)
  return dict(runs[0], cell_file=cell_path, seeds=runs, seed_noise_std=noise)


def _stage_random(config: DemoConfig, winner_hash: str) -> list[dict]:
  """Stage 7: uniformly random cells with the final recipe and the demo's seed."""
  runs = []
  for k, cell in enumerate(random_cells(config, winner_hash)):
    workdir = os.path.join(config.output_dir, 'random',
                           f'{k}_{search_space.cell_hash(cell)[:8]}')
    fileio.makedirs(workdir)
    cell_path = os.path.join(workdir, 'cell.json')
    cell_lib.save_cell(cell_lib.parse_cell(cell), cell_path)
    run = _final_run(config, workdir, cell, config.seed)
    run['cell_file'] = cell_path
    run['cell'] = cell_lib.cell_to_json(cell_lib.parse_cell(cell))
    logging.info('random cell %d (%s): mIOU %.4f', k, run['hash'][:8], run['miou'])
    runs.append(run)
  return runs


def _stage_export(config: DemoConfig, data_dir: str, winner: dict) -> str:
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
    `miou` (backbone, re-ranked cells, winner and its seeds, `random_cells`, their
    mean `random`), `seed_noise_std`, `searched_beats_random`, `per_class_iou`,
    `seconds` per stage, and the search and re-rank outcomes.

  Raises:
    ValueError / FileNotFoundError: a bad configuration or files, naming them.
    RuntimeError: the search completed no trial.
  """
  config.validate()
  # Before any work; stage 2 checks the rest (variant, shapes).
  demo_backbone.require_checkpoint_files(config.resolved_backbone_checkpoint,
                                         'backbone_checkpoint')
  out = config.output_dir
  fileio.makedirs(out)
  data_dir = os.path.join(out, 'data')
  rerank_data_dir = os.path.join(out, RERANK_DATA_DIR)
  stages = _Stages()
  logging.info('Demo pipeline (%s size) into %s', 'reduced' if config.reduced else 'full', out)

  stages.run(1, 'data', f'Building the demo TFRecords in {data_dir} and {rerank_data_dir}',
             lambda: (build_data(data_dir),
                      build_rerank_data(rerank_data_dir, config.rerank_holdout_examples,
                                        data_dir)))
  backbone = stages.run(
      2, 'backbone', f'Checking the pretrained backbone ({MODEL_VARIANT} x{DEPTH_MULTIPLIER}, '
      f'output stride {TRAIN_OUTPUT_STRIDE})', lambda: _stage_backbone(config))
  backbone_ckpt = backbone['backbone_checkpoint']
  cache = stages.run(3, 'cache', 'Caching backbone features (output stride '
                     f'{SEARCH_OUTPUT_STRIDE}) of the fit and held-out training images',
                     lambda: _stage_cache(config, rerank_data_dir))
  search = stages.run(4, 'search', f'Searching DPC cells ({config.search_trials} trials, '
                      f'{config.proxy_steps} proxy steps each)',
                      lambda: _stage_search(config, rerank_data_dir))
  reranked = stages.run(5, 'rerank', f'Re-ranking the best {config.rerank_top_k} cells '
                        f'({config.full_steps} training steps each, scored on '
                        f'{config.rerank_holdout_examples} held-out training images)',
                        lambda: _stage_rerank(config, rerank_data_dir))
  winner = stages.run(6, 'winner', f'Scoring the winner {reranked["winner"]["hash"][:8]} on '
                      f'demo val and training it with {config.noise_seeds - 1} more seed(s)',
                      lambda: _stage_winner(config, reranked))
  randoms = stages.run(7, 'random', f'Training {config.num_random_cells} uniformly random '
                       f'cells with the same recipe (seed {config.seed}) for comparison',
                       lambda: _stage_random(config, winner['hash']))
  saved_model = stages.run(8, 'export', 'Exporting the winner as a SavedModel',
                           lambda: _stage_export(config, data_dir, winner))
  pictures = stages.run(9, 'segment', 'Segmenting a demo val image',
                        lambda: _stage_segment(config, saved_model))

  search_dir = os.path.join(out, 'search')
  best_dir = os.path.join(search_dir, 'best_cells')
  random_mean = statistics.spread([r['miou'] for r in randoms])['mean']
  noise = winner['seed_noise_std']
  margin = winner['miou'] - random_mean
  summary = {
      'output_dir': fileio.abspath(out),
      'reduced': config.reduced,
      'seed': config.seed,
      'config': dataclasses.asdict(config),
      'paths': {
          'data': data_dir,
          'rerank_data': rerank_data_dir,
          'backbone_checkpoint': backbone_ckpt,
          'feature_cache': cache['cache_dir'],
          'search_dir': search_dir,
          'trials': os.path.join(search_dir, 'trials.jsonl'),
          'best_cells': sorted(os.path.join(best_dir, f) for f in fileio.listdir(best_dir)
                               if f.startswith('rank_') and f.endswith('.json')),
          'rerank_report': os.path.join(search_dir, 'rerank.json'),
          'winner_cell': winner['cell_file'],
          'winner_checkpoint': winner['checkpoint'],
          'winner_metrics': os.path.join(winner['eval_logdir'], 'metrics.json'),
          'random_cells': [r['cell_file'] for r in randoms],
          'random_checkpoints': [r['checkpoint'] for r in randoms],
          'random_metrics': [os.path.join(r['eval_logdir'], 'metrics.json') for r in randoms],
          'tensorboard_logdir': out,
          'saved_model': saved_model,
          'pictures': pictures,
      },
      'miou': {
          'chance': CHANCE_MIOU,
          'backbone': backbone['miou'],
          'reranked': {row['hash'][:8]: row['full_miou'] for row in reranked['cells']},
          'winner': winner['miou'],
          'winner_seeds': [{'seed': r['seed'], 'miou': r['miou']} for r in winner['seeds']],
          'random_cells': [{'cell': r['cell'], 'hash': r['hash'], 'miou': r['miou']}
                           for r in randoms],
          'random': random_mean,
      },
      'seed_noise_std': noise,
      'margin': margin,
      'margin_over_noise': margin / noise if noise else None,
      'searched_beats_random': bool(noise and margin >= 2 * noise),
      'class_names': winner['class_names'],
      'per_class_iou': {'winner': winner['per_class_iou'],
                        'random_cells': [r['per_class_iou'] for r in randoms]},
      'search': {k: search[k] for k in ('trials', 'completed', 'failed', 'best')},
      'rerank': {k: reranked[k] for k in ('spearman_rho', 'spearman_rho_interval', 'num_cells',
                                          'winner')},
      'cells': {'winner': winner['hash'], 'random': [r['hash'] for r in randoms]},
      'seconds': dict(stages.seconds, total=round(stages.total, 1)),
  }
  fileio.atomic_write(os.path.join(out, SUMMARY_FILE), json.dumps(summary, indent=1) + '\n')
  print(format_summary(summary), flush=True)
  return summary


def format_summary(summary: dict) -> str:
  """The closing text: the mIOU table, the verdict with its noise, where everything is."""
  paths = summary['paths']
  miou = summary['miou']
  names = summary['class_names']
  randoms = miou['random_cells']
  width = max(len(n) for n in names + ['pixel accuracy', 'mIOU'])
  headers = ['searched'] + [f'random {k + 1}' for k in range(len(randoms))]
  lines = ['', '=' * 72, f'Demo finished in {_duration(summary["seconds"]["total"])} '
           f'({"reduced" if summary["reduced"] else "full"} size).', '',
           'IoU on demo val (whole 129x129 images), same recipe, seed and initialisation:',
           f'  {"class":<{width}}  ' + '  '.join(f'{h:>9}' for h in headers)]

  def cell(value):
    return f'{value:9.4f}' if value is not None else f'{"-":>9}'

  columns = [summary['per_class_iou']['winner']] + summary['per_class_iou']['random_cells']
  for i, name in enumerate(names):
    lines.append(f'  {name:<{width}}  ' + '  '.join(cell(c[i]) for c in columns))
  lines.append(f'  {"mIOU":<{width}}  ' + '  '.join(
      cell(v) for v in [miou['winner']] + [r['miou'] for r in randoms]))
  noise = summary['seed_noise_std']
  seeds = ', '.join(f'{r["miou"]:.4f}' for r in miou['winner_seeds'])
  lines.append(f'  searched cell over {len(miou["winner_seeds"])} training seeds: {seeds} '
               f'(seed noise std {noise:.4f})')
  ratio = summary['margin_over_noise']
  verdict = (f'the searched cell beats the mean of the random cells ({miou["random"]:.4f}) by '
             f'{summary["margin"]:+.4f} = {ratio:.1f}x the seed noise'
             if ratio is not None else 'no seed noise measured')
  if not summary['searched_beats_random']:
    verdict = ('WARNING: ' + verdict + ', less than 2x: in this run the search did not win '
               'by more than noise (docs/search.md, "The demo\'s search")')
  rho = summary['rerank']['spearman_rho']
  lines += [f'  {verdict}.',
            f'  (re-ranking: Spearman rho {"-" if rho is None else f"{rho:.2f}"} over '
            f'{summary["rerank"]["num_cells"]} cells; always-background {miou["chance"]:.2f}' +
            (f'; the pretrained backbone\'s own model on held-out pretraining scenes '
             f'{miou["backbone"]:.4f}' if miou['backbone']
             is not None else '') + ')', '',
            'Artefacts:',
            f'  cells          {paths["winner_cell"]} (winner)',
            *[f'                 {p}' for p in paths['random_cells']],
            f'                 {os.path.dirname(paths["best_cells"][0]) if paths["best_cells"] else "-"}/'
            f' ({len(paths["best_cells"])} best proxy cells), {paths["rerank_report"]}',
            f'  study          {paths["search_dir"]}/ (trials: {paths["trials"]})',
            f'  checkpoints    {paths["winner_checkpoint"]}',
            f'                 {paths["backbone_checkpoint"]} (pretrained backbone)',
            f'  TensorBoard    {paths["tensorboard_logdir"]}',
            f'  SavedModel     {paths["saved_model"]}',
            f'  pictures       {paths["pictures"]["prediction"]}',
            f'                 (input {os.path.basename(paths["pictures"]["image"])}, '
            f'ground truth {os.path.basename(paths["pictures"]["ground_truth"])})',
            f'  summary        {os.path.join(summary["output_dir"], SUMMARY_FILE)}', '',
            f'Open TensorBoard:  tensorboard --logdir={paths["tensorboard_logdir"]}',
            '=' * 72]
  return '\n'.join(lines)


def run_fidelity(config: DemoConfig, work_dir: str, num_cells: int, cell_seed: int,
                 noise_cells: int = 2, noise_seeds: int = 3) -> dict:
  """A proxy-fidelity study on the demo task, with the demo's own recipes.

  The proxy scores come from the demo search's cache and proxy task (fit images ->
  held-out training images); the full scores from the demo's one full training
  recipe (fit images -> demo val), as the final models are trained and scored.

  Args:
    config: The demo sizes (`DemoConfig.create(work_dir)` for the full demo's).
    work_dir: Demo data, the cache and every result go here (resumable).
    num_cells, cell_seed: N cells drawn uniformly with this seed (N >= 3).
    noise_cells, noise_seeds: Cells trained with several seeds for the seed noise.

  Returns:
    The `fidelity.run_fidelity` report (also `<work_dir>/fidelity/fidelity.json`).
  """
  study = fidelity.FidelityConfig(
      work_dir=os.path.join(work_dir, 'fidelity'), num_cells=num_cells, cell_seed=cell_seed,
      num_branches=config.num_branches, noise_cells=noise_cells, noise_seeds=noise_seeds,
      seed=config.seed)
  study.validate()
  demo_backbone.check_backbone_checkpoint(config.resolved_backbone_checkpoint,
                                          'backbone_checkpoint')
  data_dir = os.path.join(work_dir, 'data')
  rerank_data_dir = os.path.join(work_dir, RERANK_DATA_DIR)
  build_data(data_dir)
  build_rerank_data(rerank_data_dir, config.rerank_holdout_examples, data_dir)
  return fidelity.run_search_fidelity(
      search_config(config, rerank_data_dir, os.path.join(work_dir, 'search')),
      final_recipe(dataclasses.replace(config, output_dir=work_dir)), study)
