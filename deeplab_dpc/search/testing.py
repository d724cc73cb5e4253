"""Small fixtures for the search tests and the benchmark: tiny data, tiny caches."""

import json
import os

import numpy as np

from deeplab_dpc import fileio
from deeplab_dpc.search import feature_cache

# A backbone small enough for tests: MobileNet-v2 at width 0.25 on 33x33 crops gives
# 3x3x80 features at output stride 16.
TINY_CROP = (33, 33)
TINY_DEPTH_MULTIPLIER = 0.25


def write_demo_subset(output_dir: str, num_train: int = 16, num_val: int = 8,
                      num_shards: int = 2) -> str:
  """The first images of the demo splits as TFRecords (the real demo set has 320 / 80)."""
  from deeplab_dpc.data import demo  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.data import shard_writer  # pylint: disable=g-import-not-at-top
  for split, count in (('train', num_train), ('val', num_val)):
    shard_writer.write_split(output_dir, split, [(split, i) for i in range(count)],
                             demo.to_example, num_shards)
  return output_dir


def tiny_cache_config(dataset_dir: str, **overrides) -> feature_cache.CacheConfig:
  """A `CacheConfig` for the tiny backbone on the demo data."""
  kwargs = dict(dataset='demo', dataset_dir=dataset_dir, crop_size=TINY_CROP,
                depth_multiplier=TINY_DEPTH_MULTIPLIER, examples_per_shard=8)
  kwargs.update(overrides)
  return feature_cache.CacheConfig(**kwargs)


def write_synthetic_cache(cache_dir: str, num_train: int = 64, num_eval: int = 16,
                          num_classes: int = 3, feature_shape=(3, 3, 8),
                          label_shape=(33, 33), noise: float = 0.1, seed: int = 0) -> dict:
  """A trivially learnable feature cache; returns its manifest.

  Each example shows one class over the whole crop, and its features hold a one-hot
  code of that class plus noise, so a cell that passes the features on learns it.
  """
  rng = np.random.default_rng(seed)
  shards = {}
  counts = {}
  for role, count in ((feature_cache.TRAIN, num_train), (feature_cache.EVAL, num_eval)):
    name = feature_cache.shard_name(role, 0, 0, 1)
    path = os.path.join(cache_dir, name)
    os.makedirs(cache_dir, exist_ok=True)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with tf.io.TFRecordWriter(path) as writer:
      for i in range(count):
        label = i % num_classes
        feature = rng.normal(0.0, noise, feature_shape).astype(np.float16)
        feature[..., label] += 1.0
        writer.write(feature_cache.serialize_example(
            feature, np.full(label_shape, label, np.uint8)))
    shards[role] = [name]
    counts[role] = count
  manifest = {
      'format_version': feature_cache.FORMAT_VERSION,
      'config': {'output_stride': 16, 'feature_dtype': 'float16', 'synthetic': True},
      'checkpoint_fingerprint': 'synthetic',
      'complete': True,
      'num_classes': num_classes,
      'ignore_label': 255,
      'feature_shape': list(feature_shape),
      'label_shape': list(label_shape),
      'splits': {role: {'split': role, 'images': counts[role], 'copies': 1,
                        'examples': counts[role], 'shards': shards[role]}
                 for role in shards},
  }
  fileio.atomic_write(feature_cache.manifest_path(cache_dir), json.dumps(manifest))
  return manifest


# A three-branch cell that keeps the features' information (1x1 conv on the input).
SIMPLE_CELL = [
    {'op': 'conv', 'kernel': 1, 'input': -1},
    {'op': 'conv', 'kernel': 3, 'rate': [1, 1], 'input': -1},
    {'op': 'pyramid_pooling', 'grid_size': [1, 1], 'input': 0},
]
