"""Tests of atomic sharded writing."""

import os

import pytest
import tensorflow as tf

from deeplab_dpc.data import descriptors
from deeplab_dpc.data import shard_writer


def _records(path):
  return [r.numpy() for r in tf.data.TFRecordDataset(path)]


def test_sharding_like_the_original(tmp_path):
  items = [str(i).encode() for i in range(5)]
  paths = shard_writer.write_split(str(tmp_path), 'train', items, lambda x: x, 3)
  assert [os.path.basename(p) for p in paths] == [
      'train-00000-of-00003.tfrecord', 'train-00001-of-00003.tfrecord',
      'train-00002-of-00003.tfrecord']
  # ceil(5 / 3) = 2 per shard.
  assert [_records(p) for p in paths] == [[b'0', b'1'], [b'2', b'3'], [b'4']]


def test_failure_leaves_no_shard(tmp_path):
  def to_example(item):
    if item == b'3':
      raise ValueError('bad item 3')
    return item
  items = [str(i).encode() for i in range(5)]
  with pytest.raises(ValueError, match='bad item 3'):
    shard_writer.write_split(str(tmp_path), 'train', items, to_example, 3)
  assert os.listdir(tmp_path) == []


def test_rebuild_replaces_stale_shards_and_is_deterministic(tmp_path):
  items = [str(i).encode() for i in range(4)]
  shard_writer.write_split(str(tmp_path), 'val', items, lambda x: x, 4)
  shard_writer.write_split(str(tmp_path), 'train', items, lambda x: x, 2)
  first = {p: open(os.path.join(tmp_path, p), 'rb').read() for p in os.listdir(tmp_path)}
  shard_writer.write_split(str(tmp_path), 'val', items, lambda x: x, 2)
  names = sorted(os.listdir(tmp_path))
  assert names == ['train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord',
                   'val-00000-of-00002.tfrecord', 'val-00001-of-00002.tfrecord']
  shard_writer.write_split(str(tmp_path), 'train', items, lambda x: x, 2)
  for name in ('train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord'):
    assert open(os.path.join(tmp_path, name), 'rb').read() == first[name]


def test_empty_split_and_bad_shard_count(tmp_path):
  with pytest.raises(ValueError, match="Split 'train' is empty"):
    shard_writer.write_split(str(tmp_path), 'train', [], lambda x: x, 2)
  with pytest.raises(ValueError, match='--num_shards'):
    shard_writer.write_split(str(tmp_path), 'train', [b'x'], lambda x: x, 0)


def test_split_size_check():
  assert shard_writer.check_split_size(descriptors.PASCAL_VOC_SEG, 'val', 1449) is None
  message = shard_writer.check_split_size(descriptors.PASCAL_VOC_SEG, 'val', 3)
  assert "'val' of pascal_voc_seg has 3 examples; the published split has 1449" in message
