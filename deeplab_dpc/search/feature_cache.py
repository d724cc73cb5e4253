"""Cached backbone features: the input of the proxy task.

The proxy task of Chen et al. (NeurIPS 2018, Sec. 4.1) trains candidate cells on the
features of a frozen backbone, so the backbone runs once per image instead of once
per image and candidate. Augmentation has to happen before caching, so each training
image is cached in K augmented copies (random scale, crop and flip of the training
pipeline, each copy with its own seed); the evaluation split is cached once, one
crop of the crop size at scale 1 per image, so cells see features of the size they
were trained on (the pyramid-pooling kernels derive from the feature size).

Layout of a cache directory:

  manifest.json                                 what the cache holds (see below)
  train-c<k>-<shard>-of-<n>.tfrecord            copy k of the training split
  eval-c00-<shard>-of-<n>.tfrecord              the evaluation split

Each record holds `features` (raw bytes, `feature_dtype`, [h, w, c] at output stride
16 for the default flags), `label` (raw uint8 bytes, [H, W] at the crop size; the
dataset's ignore label, recorded in the manifest, marks pixels without a class) and both
shapes. Every shard is written atomically and is a pure function of
the flags, so a killed build resumes by writing only the shards that are missing. The
manifest records every flag that shapes the content, plus a fingerprint of the
checkpoint; a build or a proxy run whose flags differ is refused with a `ValueError`
naming the flag.
"""

import dataclasses
import hashlib
import json
import math
import os
from typing import Any

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc.data import demo
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import pipeline
from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib

MANIFEST = 'manifest.json'
FORMAT_VERSION = 1
TRAIN, EVAL = 'train', 'eval'
FEATURE_DTYPES = ('float16', 'float32')
RANDOM_INIT = 'random-init'
# Training images whose statistics a random backbone's batch norms get.
_CALIBRATION_IMAGES = 16

# Config field -> the search.py flag that sets it (error messages name the flag).
FLAG_NAMES = {
    'dataset': 'dataset',
    'dataset_dir': 'dataset_dir',
    'crop_size': 'train_crop_size',
    'model_variant': 'model_variant',
    'depth_multiplier': 'depth_multiplier',
    'divisible_by': 'divisible_by',
    'output_stride': 'output_stride',
    'tf_initial_checkpoint': 'tf_initial_checkpoint',
    'checkpoint_fingerprint': 'tf_initial_checkpoint',
    'feature_dtype': 'feature_dtype',
    'augmentation_copies': 'proxy_augmentation_copies',
    'train_split': 'train_split',
    'eval_split': 'eval_split',
    'min_scale_factor': 'min_scale_factor',
    'max_scale_factor': 'max_scale_factor',
    'scale_factor_step_size': 'scale_factor_step_size',
    'max_train_examples': 'proxy_max_train_examples',
    'max_eval_examples': 'proxy_max_eval_examples',
    'seed': 'seed',
    'examples_per_shard': 'cache_examples_per_shard',
    'format_version': 'cache_dir',
}


@dataclasses.dataclass(frozen=True)
class CacheConfig:
  """Everything that determines the content of a feature cache.

  Attributes:
    dataset: `--dataset` name (descriptor).
    dataset_dir: Folder of the dataset's TFRecords.
    crop_size: (height, width) of the cached crops (`--train_crop_size`).
    model_variant: Backbone (`mobilenet_v2` as the paper, or an xception).
    depth_multiplier: MobileNet-v2 width multiplier.
    divisible_by: MobileNet-v2 channel rounding.
    output_stride: Stride of the cached features (16 in the paper).
    tf_initial_checkpoint: Backbone checkpoint (original TF1 or ours); '' for a
      randomly initialised backbone (tests and demos only).
    feature_dtype: `float16` (default, half the disk) or `float32`.
    augmentation_copies: K, augmented copies of every training image.
    train_split: Split the proxy trains on.
    eval_split: Split the proxy is scored on.
    min_scale_factor, max_scale_factor, scale_factor_step_size: Training
      augmentation, as the training pipeline.
    max_train_examples: Use only the first N training images (0: all).
    max_eval_examples: Use only the first N evaluation images (0: all).
    seed: Seeds the backbone's random initialisation and the augmentation.
    examples_per_shard: Records per shard.
  """
  dataset: str
  dataset_dir: str
  crop_size: tuple[int, int]
  model_variant: str = 'mobilenet_v2'
  depth_multiplier: float = 1.0
  divisible_by: int | None = None
  output_stride: int = 16
  tf_initial_checkpoint: str = ''
  feature_dtype: str = 'float16'
  augmentation_copies: int = 1
  train_split: str = 'train'
  eval_split: str = 'val'
  min_scale_factor: float = 0.5
  max_scale_factor: float = 2.0
  scale_factor_step_size: float = 0.25
  max_train_examples: int = 0
  max_eval_examples: int = 0
  seed: int = 0
  examples_per_shard: int = 256

  def validate(self) -> None:
    """Raises ValueError naming the flag of the first bad field."""
    if len(self.crop_size) != 2 or any(int(c) < 1 for c in self.crop_size):
      raise ValueError(f'--train_crop_size must be two positive integers, got {self.crop_size}')
    if self.feature_dtype not in FEATURE_DTYPES:
      raise ValueError(f'--feature_dtype must be one of {", ".join(FEATURE_DTYPES)}, '
                       f'got {self.feature_dtype!r}')
    if int(self.augmentation_copies) < 1:
      raise ValueError('--proxy_augmentation_copies must be >= 1, got '
                       f'{self.augmentation_copies}')
    for name in ('max_train_examples', 'max_eval_examples'):
      if int(getattr(self, name)) < 0:
        raise ValueError(f'--{FLAG_NAMES[name]} must be >= 0, got {getattr(self, name)}')
    if int(self.examples_per_shard) < 1:
      raise ValueError('--cache_examples_per_shard must be >= 1, got '
                       f'{self.examples_per_shard}')
    if self.output_stride not in (8, 16, 32):
      raise ValueError(f'--output_stride must be 8, 16 or 32, got {self.output_stride}')

  def content(self) -> dict[str, Any]:
    """The fields as the manifest stores them (JSON types, absolute dataset_dir)."""
    out = dataclasses.asdict(self)
    out['crop_size'] = [int(c) for c in self.crop_size]
    out['dataset_dir'] = fileio.abspath(self.dataset_dir)
    out['tf_initial_checkpoint'] = (fileio.abspath(self.tf_initial_checkpoint)
                                    if self.tf_initial_checkpoint else '')
    out['depth_multiplier'] = float(self.depth_multiplier)
    return out


def checkpoint_fingerprint(path: str, seed: int) -> str:
  """A short fingerprint of the backbone's initial weights.

  A checkpoint's `.index` file stores the CRC32C of every tensor, so hashing it
  identifies the values without reading the data files. Without a checkpoint the
  backbone is random, determined by the seed.

  Raises:
    FileNotFoundError: naming --tf_initial_checkpoint when there is no checkpoint.
  """
  if not path:
    return f'{RANDOM_INIT}:seed={seed}:bn-calibrated'
  prefix = path
  if fileio.isdir(path):
    prefix = tf.train.latest_checkpoint(path)
    if prefix is None:
      raise FileNotFoundError(f'--tf_initial_checkpoint: no checkpoint in directory {path}')
  index = prefix + '.index'
  if not fileio.exists(index):
    raise FileNotFoundError(f'--tf_initial_checkpoint: no checkpoint at {path} '
                            '(give the prefix, e.g. model.ckpt)')
  with fileio.open_file(index, 'rb') as f:
    return 'sha1:' + hashlib.sha1(f.read()).hexdigest()


def manifest_path(cache_dir: str) -> str:
  return os.path.join(cache_dir, MANIFEST)


def read_manifest(cache_dir: str) -> dict | None:
  """The manifest of `cache_dir`, or None when there is none.

  Raises:
    ValueError: naming the file if it is not valid JSON.
  """
  path = manifest_path(cache_dir)
  if not fileio.exists(path):
    return None
  try:
    with fileio.open_file(path, encoding='utf-8') as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f'{path}: the feature cache manifest is not JSON ({e}); delete the '
                     'cache directory to rebuild it') from None


def check_manifest(manifest: dict, config: CacheConfig, fingerprint: str,
                   cache_dir: str) -> None:
  """Refuses a cache built with other flags.

  Raises:
    ValueError: naming the first differing flag, the cache's value and the flag's.
  """
  expected = dict(config.content(), checkpoint_fingerprint=fingerprint,
                  format_version=FORMAT_VERSION)
  stored = dict(manifest.get('config', {}), format_version=manifest.get('format_version'),
                checkpoint_fingerprint=manifest.get('checkpoint_fingerprint'))
  # Layout only: a different shard size still describes the same examples.
  for field in sorted(expected):
    if field == 'examples_per_shard' and manifest.get('complete'):
      continue
    if stored.get(field) != expected[field]:
      flag = FLAG_NAMES.get(field, field)
      what = ('the checkpoint contents differ' if field == 'checkpoint_fingerprint'
              else f'built with {field}={stored.get(field)!r}, the flags ask for '
              f'{expected[field]!r}')
      raise ValueError(f'--{flag}: the feature cache {cache_dir} does not match the flags '
                       f'({what}); use another --cache_dir or delete that one to rebuild')


def shard_name(role: str, copy: int, index: int, num_shards: int) -> str:
  return f'{role}-c{copy:02d}-{index:05d}-of-{num_shards:05d}.tfrecord'


def _shard_names(role: str, copies: int, examples: int, per_shard: int) -> list[str]:
  num_shards = max(1, math.ceil(examples / per_shard))
  return [shard_name(role, c, i, num_shards) for c in range(copies) for i in range(num_shards)]


def is_complete(manifest: dict | None, cache_dir: str) -> bool:
  """Whether the manifest says complete and every shard it lists is there."""
  if not manifest or not manifest.get('complete'):
    return False
  return all(fileio.exists(os.path.join(cache_dir, name))
             for role in (TRAIN, EVAL) for name in manifest['splits'][role]['shards'])


def _count_records(files) -> int:
  return int(tf.data.TFRecordDataset(files).reduce(0, lambda n, _: n + 1))


def _ensure_demo_data(config: CacheConfig) -> None:
  """The demo set is tiny and deterministic: build it when the folder has none."""
  try:
    pipeline.list_files(config.dataset_dir, config.train_split, config.dataset)
    pipeline.list_files(config.dataset_dir, config.eval_split, config.dataset)
  except FileNotFoundError:
    logging.info('No demo TFRecords in %s: building the demo set there', config.dataset_dir)
    demo.build(config.dataset_dir)


def _backbone(config: CacheConfig, num_classes: int, calibration_images=None):
  """The frozen backbone, initialised from the checkpoint (or randomly, seeded)."""
  keras.utils.set_random_seed(config.seed)
  # No head: the model is only a container giving the backbone its original names.
  opts = options_lib.ModelOptions.create(
      num_classes=num_classes, model_variant=config.model_variant,
      crop_size=list(config.crop_size), output_stride=config.output_stride,
      depth_multiplier=config.depth_multiplier, divisible_by=config.divisible_by,
      aspp_with_batch_norm=False, fine_tune_batch_norm=True)
  model = model_lib.DeepLabModel(opts)
  model.backbone(keras.ops.zeros((1,) + tuple(config.crop_size) + (3,)), training=False)
  if config.tf_initial_checkpoint:
    checkpoints.load_checkpoint(model, config.tf_initial_checkpoint, mode=checkpoints.BACKBONE,
                                flag='tf_initial_checkpoint')
  else:
    logging.warning('No --tf_initial_checkpoint: the proxy task runs on features of a '
                    'RANDOMLY INITIALISED %s backbone (fine for tests, meaningless for a '
                    'real search)', config.model_variant)
    _calibrate_batch_norm(model.backbone, calibration_images)
  return model.backbone


def _calibrate_batch_norm(backbone, images) -> None:
  """Sets every batch norm's moving statistics to those of `images`.

  A random backbone's features vanish through its blocks in inference mode (the
  original initialiser has stddev 0.09 and fresh statistics are 0 / 1): 1e-13 after
  MobileNet-v2, zero in float16. One training-mode pass with momentum 0 gives each
  batch norm the statistics of real images, so the features keep their scale.
  """
  norms = [layer for layer in backbone._flatten_layers()  # pylint: disable=protected-access
           if isinstance(layer, keras.layers.BatchNormalization)]
  saved = [layer.momentum for layer in norms]
  for layer in norms:
    layer.momentum = 0.0
  backbone(images, training=True)
  for layer, momentum in zip(norms, saved):
    layer.momentum = momentum


def _bytes_feature(value: bytes):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def serialize_example(feature, label) -> bytes:
  """One cached record: features [h, w, c] (their dtype) and a uint8 label [H, W]."""
  label = np.asarray(label, np.uint8)
  return tf.train.Example(features=tf.train.Features(feature={
      'features': _bytes_feature(np.ascontiguousarray(feature).tobytes()),
      'features/shape': _ints_feature(feature.shape),
      'label': _bytes_feature(label.tobytes()),
      'label/shape': _ints_feature(label.shape),
  })).SerializeToString()


def _write_shard(path, backbone_fn, dataset, feature_dtype, num_classes, ignore_label,
                 source) -> int:
  """Runs the backbone over `dataset` and writes one shard atomically; returns its size."""
  written = 0
  with fileio.atomic_output(path) as tmp:
    with tf.io.TFRecordWriter(tmp) as writer:
      for batch in dataset:
        features = backbone_fn(batch['image']).numpy().astype(feature_dtype)
        labels = batch['label'].numpy()[..., 0]
        bad = (labels >= num_classes) & (labels != ignore_label)
        if bad.any():
          raise ValueError(f'{source}: label {int(labels[bad][0])} outside [0, {num_classes})')
        for feature, label in zip(features, labels.astype(np.uint8)):
          writer.write(serialize_example(feature, label))
          written += 1
  return written


def build_feature_cache(config: CacheConfig, cache_dir: str, batch_size: int = 8) -> dict:
  """Builds (or resumes, or reuses) the feature cache; returns its manifest.

  Args:
    config: What to cache.
    cache_dir: Output folder.
    batch_size: Images per backbone call (does not change the content).

  Returns:
    The complete manifest.

  Raises:
    ValueError: the folder holds a cache built with other flags (naming the
      flag), a split has no examples, or labels are out of range.
    FileNotFoundError: dataset files or checkpoint missing.
  """
  config.validate()
  descriptor = descriptors.get_dataset_descriptor(config.dataset, config.dataset_dir)
  if descriptor.ignore_label > 255 or descriptor.num_classes > 255:
    raise ValueError(f'{descriptor.flag}: the feature cache stores labels as uint8, so it '
                     f'needs at most 255 classes and an ignore label <= 255 (it has '
                     f'{descriptor.num_classes} classes, ignore label {descriptor.ignore_label})')
  fingerprint = checkpoint_fingerprint(config.tf_initial_checkpoint, config.seed)
  manifest = read_manifest(cache_dir)
  if manifest is not None:
    check_manifest(manifest, config, fingerprint, cache_dir)
    if is_complete(manifest, cache_dir):
      return manifest
    logging.info('Resuming the feature cache in %s', cache_dir)

  # The augmentation's random ops depend on TensorFlow's global seed as well as on
  # their own: fix it, so every shard is the same whichever process writes it.
  keras.utils.set_random_seed(config.seed)
  if config.dataset == 'demo':
    _ensure_demo_data(config)
  counts = {}
  for role, split, limit in ((TRAIN, config.train_split, config.max_train_examples),
                             (EVAL, config.eval_split, config.max_eval_examples)):
    files = pipeline.list_files(config.dataset_dir, split, config.dataset)
    count = _count_records(files)
    counts[role] = min(count, limit) if limit else count
    if counts[role] == 0:
      what = 'validation' if role == EVAL else 'training'
      raise ValueError(f'--{role}_split={split}: the {what} split in {config.dataset_dir} has '
                       'no examples, so the feature cache would be empty')

  copies = {TRAIN: int(config.augmentation_copies), EVAL: 1}
  shards = {role: _shard_names(role, copies[role], counts[role], config.examples_per_shard)
            for role in (TRAIN, EVAL)}
  manifest = {
      'format_version': FORMAT_VERSION,
      'config': config.content(),
      'checkpoint_fingerprint': fingerprint,
      'complete': False,
      'num_classes': descriptor.num_classes,
      'ignore_label': descriptor.ignore_label,
      'splits': {role: {'split': split, 'images': counts[role], 'copies': copies[role],
                        'examples': counts[role] * copies[role], 'shards': shards[role]}
                 for role, split in ((TRAIN, config.train_split), (EVAL, config.eval_split))},
  }
  fileio.makedirs(cache_dir)
  fileio.atomic_write(manifest_path(cache_dir), json.dumps(manifest, indent=1))

  calibration = None
  if not config.tf_initial_checkpoint:
    calibration = next(iter(pipeline.build_dataset(
        config.dataset, config.dataset_dir, config.train_split,
        crop_size=tuple(config.crop_size), batch_size=_CALIBRATION_IMAGES, is_training=True,
        min_scale_factor=1.0, max_scale_factor=1.0, scale_factor_step_size=0.0,
        seed=config.seed, repeat=False, shuffle=False, drop_remainder=False)))['image']
  backbone = _backbone(config, descriptor.num_classes, calibration)
  backbone_fn = tf.function(lambda images: backbone(images, training=False)['features'])
  per_shard = config.examples_per_shard
  for role, split in ((TRAIN, config.train_split), (EVAL, config.eval_split)):
    num_shards = len(shards[role]) // copies[role]
    for copy in range(copies[role]):
      for index in range(num_shards):
        path = os.path.join(cache_dir, shards[role][copy * num_shards + index])
        if fileio.exists(path):
          continue
        # Evaluation: one crop at scale 1; training: the full augmentation. Each copy
        # has its own seed, and skipping to the shard keeps every element's seed.
        train_like = role == TRAIN
        dataset = pipeline.build_dataset(
            config.dataset, config.dataset_dir, split, crop_size=tuple(config.crop_size),
            batch_size=1, is_training=True,
            min_scale_factor=config.min_scale_factor if train_like else 1.0,
            max_scale_factor=config.max_scale_factor if train_like else 1.0,
            scale_factor_step_size=config.scale_factor_step_size if train_like else 0.0,
            seed=config.seed * 1000 + (copy if train_like else 999),
            repeat=False, shuffle=False, drop_remainder=False)
        start = index * per_shard
        size = min(per_shard, counts[role] - start)
        dataset = dataset.unbatch().skip(start).take(size).batch(batch_size)
        written = _write_shard(path, backbone_fn, dataset, config.feature_dtype,
                               descriptor.num_classes, descriptor.ignore_label,
                               f'{split} ({config.dataset_dir})')
        if written != size:
          fileio.remove(path)
          raise ValueError(f'--dataset_dir={config.dataset_dir}: split {split} ended early '
                           f'({written} of {size} examples for {os.path.basename(path)})')
        logging.info('Cached %s (%d examples)', os.path.basename(path), written)
  feature_shape = list(_first_record_shapes(os.path.join(cache_dir, shards[TRAIN][0]))[0])
  manifest['feature_shape'] = feature_shape
  manifest['label_shape'] = [int(c) for c in config.crop_size]
  manifest['complete'] = True
  fileio.atomic_write(manifest_path(cache_dir), json.dumps(manifest, indent=1))
  # Temporary files of a killed build are dead weight now.
  for stale in fileio.glob_in(cache_dir, '.tmp-*'):
    fileio.remove(stale)
  return manifest


def _first_record_shapes(path: str):
  for record in tf.data.TFRecordDataset(path).take(1):
    example = tf.train.Example.FromString(record.numpy())
    feature = example.features.feature
    return (tuple(feature['features/shape'].int64_list.value),
            tuple(feature['label/shape'].int64_list.value))
  raise ValueError(f'{path}: empty feature cache shard')


def open_feature_cache(cache_dir: str, config: CacheConfig | None = None) -> dict:
  """The manifest of a complete cache, checked against `config` when given.

  Raises:
    FileNotFoundError: naming --cache_dir when there is no cache.
    ValueError: incomplete, empty, or built with other flags (naming the flag).
  """
  manifest = read_manifest(cache_dir)
  if manifest is None:
    raise FileNotFoundError(f'--cache_dir: no feature cache in {cache_dir} (no {MANIFEST}); '
                            'build it with search.py --mode=cache')
  if config is not None:
    check_manifest(manifest, config,
                   checkpoint_fingerprint(config.tf_initial_checkpoint, config.seed), cache_dir)
  if not is_complete(manifest, cache_dir):
    raise ValueError(f'--cache_dir: the feature cache in {cache_dir} is incomplete (a killed '
                     'build?); run search.py --mode=cache with the same flags to finish it')
  for role in (TRAIN, EVAL):
    if not manifest['splits'][role]['examples']:
      raise ValueError(f'--cache_dir: the {role} split of the feature cache in {cache_dir} is '
                       'empty')
  return manifest


def load_split(cache_dir: str, manifest: dict, role: str):
  """A tf.data.Dataset of (features float [h, w, c], label int32 [H, W, 1]) for `role`."""
  files = [os.path.join(cache_dir, name) for name in manifest['splits'][role]['shards']]
  feature_shape = manifest['feature_shape']
  label_shape = manifest['label_shape']
  dtype = tf.as_dtype(manifest['config']['feature_dtype'])
  spec = {'features': tf.io.FixedLenFeature([], tf.string),
          'label': tf.io.FixedLenFeature([], tf.string)}

  def parse(record):
    parsed = tf.io.parse_single_example(record, spec)
    features = tf.reshape(tf.io.decode_raw(parsed['features'], dtype), feature_shape)
    label = tf.reshape(tf.io.decode_raw(parsed['label'], tf.uint8), label_shape + [1])
    return features, tf.cast(label, tf.int32)

  return tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                                            deterministic=True)
