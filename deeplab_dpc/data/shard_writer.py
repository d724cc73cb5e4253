"""Atomic, deterministic writing of a split into the original's sharded TFRecords.

Every shard is written under a hidden temporary name and all are renamed
only once the whole split is written, so an interrupted build never leaves a
file that looks like a finished shard. Shards of the same split with another
shard count are removed once the new set is in place, and so are the hidden
temporary files of killed builds. A kill between those two steps leaves two
sets, which readers refuse (`tfrecord.find_shards`) until the next build.
Records are serialised deterministically, so two builds of the same data are
byte-identical.
"""

import glob
import math
import os
import re

from absl import logging
import tensorflow as tf

from deeplab_dpc import fileio
from deeplab_dpc.data import tfrecord


_TEMP_SUFFIX = re.compile(r'\.tmp-(\d+)$')


def _temp_path(path):
  return os.path.join(os.path.dirname(path), f'.{os.path.basename(path)}.tmp-{os.getpid()}')


def _is_running(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Someone else's live process.
  return True


def remove_leftover_temp_files(output_dir, split):
  """Removes the hidden shard files of `split` that killed builds left behind.

  Files of a build still running on this machine are left alone.

  Returns:
    The paths removed.
  """
  pattern = f'.{glob.escape(split)}-?????-of-?????.tfrecord.tmp-*'
  removed = []
  for path in fileio.glob_in(output_dir, pattern):
    match = _TEMP_SUFFIX.search(path)
    if not match or _is_running(int(match.group(1))):
      continue
    fileio.remove(path)
    removed.append(path)
    logging.info('Removed %s, left by a killed build', path)
  return removed


def write_split(output_dir, split, items, to_example, num_shards):
  """Converts `items` and writes them as `<split>-%05d-of-%05d.tfrecord` shards.

  Shard `i` holds items [i * n, (i + 1) * n) with n = ceil(len(items) /
  num_shards), as in the original builders; trailing shards may be empty.

  Args:
    output_dir: Folder for the shards (created if missing).
    split: Split name used in the shard names.
    items: Sequence of whatever `to_example` accepts, in output order.
    to_example: Function item -> serialized `tf.train.Example` bytes.
    num_shards: Number of shards (>= 1).

  Returns:
    List of the shard paths written.

  Raises:
    ValueError: If `items` is empty or `num_shards` < 1, or whatever
      `to_example` raises for a bad item (nothing is left behind then).
  """
  if num_shards < 1:
    raise ValueError(f'--num_shards must be at least 1, got {num_shards}.')
  if not items:
    raise ValueError(f'Split {split!r} is empty: no examples to write to {output_dir}.')
  fileio.makedirs(output_dir)
  remove_leftover_temp_files(output_dir, split)
  per_shard = int(math.ceil(len(items) / num_shards))
  paths, temp_paths = [], []
  try:
    # All shards are renamed only after the last one is complete, so a
    # failed build leaves no part of a split behind.
    for shard_id in range(num_shards):
      path = os.path.join(output_dir, tfrecord.shard_name(split, shard_id, num_shards))
      temp_path = _temp_path(path)
      temp_paths.append(temp_path)
      with tf.io.TFRecordWriter(temp_path) as writer:
        for item in items[shard_id * per_shard:(shard_id + 1) * per_shard]:
          writer.write(to_example(item))
      paths.append(path)
    for temp_path, path in zip(temp_paths, paths):
      fileio.replace(temp_path, path)
      logging.info('Wrote %s', path)
  finally:
    for temp_path in temp_paths:
      if fileio.exists(temp_path):
        fileio.remove(temp_path)
  for stale in sorted(set(tfrecord.shard_paths(output_dir, split)) - set(paths)):
    fileio.remove(stale)
    logging.info('Removed stale shard %s from an earlier build', stale)
  return paths


def check_split_size(descriptor, split, num_examples):
  """Warns when a built split does not have the descriptor's size.

  Args:
    descriptor: The dataset's `DatasetDescriptor`.
    split: Canonical split name.
    num_examples: Number of examples written.

  Returns:
    The warning message, or None when the size matches.
  """
  expected = descriptor.splits_to_sizes.get(split)
  if expected is None or expected == num_examples:
    return None
  message = (f'Split {split!r} of {descriptor.name} has {num_examples} examples; the '
             f'published split has {expected}.')
  logging.warning(message)
  return message
