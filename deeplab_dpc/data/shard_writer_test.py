"""Tests of atomic sharded writing."""

import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from deeplab_dpc.data import descriptors
from deeplab_dpc.data import pipeline
from deeplab_dpc.data import shard_writer

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def _dead_pid():
  process = subprocess.Popen([sys.executable, '-c', 'pass'])
  process.wait()
  return process.pid


def test_rebuild_removes_temp_files_of_killed_builds_only(tmp_path):
  dead = tmp_path / f'.train-00000-of-00002.tfrecord.tmp-{_dead_pid()}'
  alive = tmp_path / f'.train-00001-of-00002.tfrecord.tmp-{os.getppid()}'
  other_split = tmp_path / f'.val-00000-of-00001.tfrecord.tmp-{_dead_pid()}'
  for path in (dead, alive, other_split):
    path.write_bytes(b'half a shard')
  shard_writer.write_split(str(tmp_path), 'train', [b'a', b'b'], lambda x: x, 2)
  assert not dead.exists()
  assert alive.exists() and other_split.exists()


def test_kill_before_stale_shards_are_removed_is_refused_then_repaired(tmp_path, monkeypatch):
  items = [str(i).encode() for i in range(4)]
  shard_writer.write_split(str(tmp_path), 'train', items, lambda x: x, 4)
  real_remove = os.remove

  def killed(path):
    if os.path.basename(path).startswith('train-'):
      raise KeyboardInterrupt  # The kill, right after the new shards were renamed.
    real_remove(path)

  monkeypatch.setattr(os, 'remove', killed)
  with pytest.raises(KeyboardInterrupt):
    shard_writer.write_split(str(tmp_path), 'train', items, lambda x: x, 2)
  monkeypatch.setattr(os, 'remove', real_remove)
  with pytest.raises(ValueError, match=f'{tmp_path} holds 2 shard sets'):
    pipeline.list_files(str(tmp_path), 'train')
  shard_writer.write_split(str(tmp_path), 'train', items, lambda x: x, 2)
  assert pipeline.list_files(str(tmp_path), 'train') == [
      str(tmp_path / 'train-00000-of-00002.tfrecord'),
      str(tmp_path / 'train-00001-of-00002.tfrecord')]
  assert sorted(os.listdir(tmp_path)) == ['train-00000-of-00002.tfrecord',
                                          'train-00001-of-00002.tfrecord']


def test_two_builds_in_fresh_processes_are_byte_identical(tmp_path):
  # Fresh processes with different hash seeds: protobuf map order would differ
  # between them if examples were not serialised deterministically.
  script = textwrap.dedent("""
      import sys
      from deeplab_dpc.data import demo, shard_writer
      shard_writer.write_split(sys.argv[1], 'val', [('val', i) for i in range(3)],
                               demo.to_example, 2)
      """)
  builds = []
  for seed in ('1', '2'):
    out = str(tmp_path / seed)
    subprocess.run([sys.executable, '-c', script, out], check=True, cwd=_REPO,
                   env={**os.environ, 'PYTHONHASHSEED': seed, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    builds.append({name: open(os.path.join(out, name), 'rb').read()
                   for name in sorted(os.listdir(out))})
  assert list(builds[0]) == ['val-00000-of-00002.tfrecord', 'val-00001-of-00002.tfrecord']
  assert builds[0] == builds[1]
