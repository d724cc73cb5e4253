"""Tests of the tf.data input pipeline on the demo set and hand-made records."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc.data import demo
from deeplab_dpc.data import image_io
from deeplab_dpc.data import pipeline
from deeplab_dpc.data import tfrecord

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('demo'))
  demo.build(path)
  return path


def _names(dataset):
  return [n.decode() for batch in dataset for n in batch['image_name'].numpy()]


def test_training_batches(demo_dir):
  dataset = pipeline.build_dataset('demo', demo_dir, 'train', crop_size=65, batch_size=4,
                                   is_training=True, seed=3)
  batch = next(iter(dataset))
  assert batch['image'].shape == (4, 65, 65, 3) and batch['image'].dtype == tf.float32
  assert batch['label'].shape == (4, 65, 65, 1) and batch['label'].dtype == tf.int32
  assert batch['height'].numpy().tolist() == [129] * 4
  image = batch['image'].numpy()
  assert image.min() >= 0 and image.max() <= 255
  labels = set(np.unique(batch['label'].numpy()).tolist())
  assert labels <= set(range(6)) | {255}


def test_eval_reads_every_example_once(demo_dir):
  dataset = pipeline.build_dataset('demo', demo_dir, 'val', crop_size=[129, 145],
                                   batch_size=16, is_training=False)
  names, batches = [], list(dataset)
  for batch in batches:
    names += [n.decode() for n in batch['image_name'].numpy()]
    assert batch['image'].shape[1:] == (129, 145, 3)
    assert (batch['label'].numpy()[:, :, 129:] == 255).all()
  assert sorted(names) == [demo.image_name('val', i) for i in range(80)]
  # Unshuffled evaluation keeps the file order, and pixels are untouched.
  first = batches[0]
  image, label = demo.render('val', int(names[0].split('_')[1]))
  np.testing.assert_array_equal(first['image'].numpy()[0, :, :129], image)
  np.testing.assert_array_equal(first['label'].numpy()[0, :, :129, 0], label)


def test_seed_makes_the_pipeline_deterministic(demo_dir):
  def first_batches(seed):
    dataset = pipeline.build_dataset('demo', demo_dir, 'train', crop_size=33, batch_size=2,
                                     is_training=True, seed=seed)
    return [(b['image'].numpy(), b['image_name'].numpy()) for b in dataset.take(3)]
  a, b, c = first_batches(5), first_batches(5), first_batches(6)
  for (image_a, names_a), (image_b, names_b) in zip(a, b):
    np.testing.assert_array_equal(image_a, image_b)
    np.testing.assert_array_equal(names_a, names_b)
  assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_file_sharding_across_workers(demo_dir):
  shards = []
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=4)
    dataset = pipeline.build_dataset('demo', demo_dir, 'val', crop_size=129, batch_size=8,
                                     is_training=False, input_context=context)
    assert next(iter(dataset))['image'].shape[0] == 2  # 8 over 4 replicas.
    shards.append(set(_names(dataset)))
  assert not shards[0] & shards[1]
  assert len(shards[0] | shards[1]) == 80
  too_many = tf.distribute.InputContext(num_input_pipelines=5, input_pipeline_id=0)
  with pytest.raises(ValueError, match='5 input pipelines'):
    pipeline.build_dataset('demo', demo_dir, 'val', crop_size=129, batch_size=5,
                           is_training=False, input_context=too_many)


def test_missing_split_names_the_pattern(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'train_fine-\?\?\?\?\?-of-\?\?\?\?\?\.tfrecord'):
    pipeline.build_dataset('cityscapes', str(tmp_path), 'train', crop_size=33, batch_size=1,
                           is_training=True)
  with pytest.raises(ValueError, match='--dataset'):
    pipeline.build_dataset('nope', str(tmp_path), 'train', crop_size=33, batch_size=1,
                           is_training=True)


def test_alias_files_are_found(tmp_path):
  open(tmp_path / 'train-00000-of-00001.tfrecord', 'wb').close()
  assert pipeline.list_files(str(tmp_path), 'train_fine', 'cityscapes') == [
      str(tmp_path / 'train-00000-of-00001.tfrecord')]


def _write(path, records):
  with tf.io.TFRecordWriter(path) as writer:
    for record in records:
      writer.write(record)


def _record(label_value=1, name='ok'):
  return tfrecord.encode_example(
      image_io.encode_png(np.zeros((6, 6, 3), np.uint8)),
      image_io.encode_png(np.full((6, 6), label_value, np.uint8)), name, 6, 6)


def test_bad_records_are_named(tmp_path):
  _write(str(tmp_path / 'val-00000-of-00001.tfrecord'),
         [_record(), _record(label_value=9, name='bad')])
  dataset = pipeline.build_dataset('demo', str(tmp_path), 'val', crop_size=9, batch_size=1,
                                   is_training=False)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'val-00000-of-00001.tfrecord record 1 has label values outside'):
    list(dataset)
  _write(str(tmp_path / 'train-00000-of-00001.tfrecord'), [tf.train.Example().SerializeToString()])
  dataset = pipeline.build_dataset('demo', str(tmp_path), 'train', crop_size=9, batch_size=1,
                                   is_training=True)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'train-00000-of-00001.tfrecord record 0 has no image/encoded'):
    next(iter(dataset))


def test_mirrored_strategy_per_replica_batches(demo_dir):
  # Logical devices must be configured before TF initialises: use a fresh process.
  script = textwrap.dedent(f"""
      import tensorflow as tf
      cpu = tf.config.list_physical_devices('CPU')[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from deeplab_dpc.data import pipeline
      strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
      dataset = strategy.distribute_datasets_from_function(
          lambda ctx: pipeline.build_dataset('demo', {demo_dir!r}, 'train', crop_size=33,
                                    batch_size=6, is_training=True, seed=1,
                                    input_context=ctx))
      batch = next(iter(dataset))
      shapes = [tuple(t.shape) for t in strategy.experimental_local_results(batch['image'])]
      labels = [tuple(t.shape) for t in strategy.experimental_local_results(batch['label'])]
      print('SHAPES', shapes, labels)
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=_REPO)
  result = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert ('SHAPES [(3, 33, 33, 3), (3, 33, 33, 3)] [(3, 33, 33, 1), (3, 33, 33, 1)]'
          in result.stdout)


def _shard(directory, name, records=(b'x',)):
  path = os.path.join(str(directory), name)
  _write(path, list(records))
  return path


def test_only_shard_names_are_read(tmp_path):
  shard = _shard(tmp_path, 'val-00000-of-00001.tfrecord', [_record()])
  (tmp_path / 'val-notes.txt').write_text('where the images came from')
  (tmp_path / 'val-00000-of-00001.tfrecord.bak').write_bytes(b'old')
  (tmp_path / '.val-00000-of-00001.tfrecord.tmp-123').write_bytes(b'half')
  assert pipeline.list_files(str(tmp_path), 'val') == [shard]
  dataset = pipeline.build_dataset('demo', str(tmp_path), 'val', crop_size=9, batch_size=1,
                                   is_training=False)
  assert _names(dataset) == ['ok']


def test_two_shard_sets_are_refused_naming_the_folder(tmp_path):
  for i in range(4):
    _shard(tmp_path, f'train-{i:05d}-of-00004.tfrecord')
  for i in range(2):
    _shard(tmp_path, f'train-{i:05d}-of-00002.tfrecord')
  with pytest.raises(ValueError, match=f'{tmp_path} holds 2 shard sets of split \'train\', '
                     r'of 2 \(2 files\) and 4 \(4 files\) shards'):
    pipeline.list_files(str(tmp_path), 'train')
  with pytest.raises(ValueError, match='holds 2 shard sets'):
    pipeline.build_dataset('demo', str(tmp_path), 'train', crop_size=9, batch_size=1,
                           is_training=True)


def test_incomplete_shard_set_is_refused(tmp_path):
  _shard(tmp_path, 'val-00000-of-00003.tfrecord')
  _shard(tmp_path, 'val-00002-of-00003.tfrecord')
  with pytest.raises(ValueError, match=f"{tmp_path}: split 'val' is incomplete: its set of 3 "
                     'shards lacks val-00001-of-00003.tfrecord; rebuild the split'):
    pipeline.list_files(str(tmp_path), 'val')
  _shard(tmp_path, 'val-00001-of-00003.tfrecord')
  _shard(tmp_path, 'val-00003-of-00003.tfrecord')
  with pytest.raises(ValueError, match='shard numbers beyond the count'):
    pipeline.list_files(str(tmp_path), 'val')


def test_truncated_shard_is_named_before_reading(tmp_path):
  path = _shard(tmp_path, 'val-00000-of-00001.tfrecord', [_record(), _record(name='two')])
  data = open(path, 'rb').read()
  with open(path, 'wb') as f:
    f.write(data[:-20])
  with pytest.raises(ValueError, match=f'{path}: truncated TFRecord file: record 1 at byte'):
    pipeline.build_dataset('demo', str(tmp_path), 'val', crop_size=9, batch_size=1,
                           is_training=False)
  with open(path, 'wb') as f:
    f.write(data + b'\x01\x02')
  with pytest.raises(ValueError, match=f'{path}: truncated TFRecord file: 2 stray bytes'):
    pipeline.build_dataset('demo', str(tmp_path), 'val', crop_size=9, batch_size=1,
                           is_training=False)


def test_corrupt_record_is_named_by_read_error(tmp_path):
  good = _shard(tmp_path, 'val-00000-of-00002.tfrecord', [_record()])
  bad = _shard(tmp_path, 'val-00001-of-00002.tfrecord', [_record(), _record(name='two')])
  data = bytearray(open(bad, 'rb').read())
  data[-40] ^= 0xFF  # Inside the second record's data: its CRC no longer matches.
  with open(bad, 'wb') as f:
    f.write(bytes(data))
  dataset = pipeline.build_dataset('demo', str(tmp_path), 'val', crop_size=9, batch_size=1,
                                   is_training=False)
  with pytest.raises(tf.errors.DataLossError) as raised:
    list(dataset)
  error = pipeline.read_error(raised.value, lambda: [good, bad])
  assert str(error).startswith(f'{bad} record 1: truncated or corrupt TFRecord file '
                               '(corrupted record at ')
  assert 'function_node' not in str(error) and 'Op:' not in str(error)
  assert '\n' not in str(error)


def test_garbage_image_bytes_are_named_by_read_error(tmp_path):
  garbage = tfrecord.encode_example(
      b'\x89PNG\r\n\x1a\n' + b'garbage' * 4,
      image_io.encode_png(np.zeros((6, 6), np.uint8)), 'garbage', 6, 6)
  shard = _shard(tmp_path, 'val-00000-of-00001.tfrecord', [_record(), garbage])
  dataset = pipeline.build_dataset('demo', str(tmp_path), 'val', crop_size=9, batch_size=1,
                                   is_training=False)
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    list(dataset)
  assert str(pipeline.read_error(raised.value, lambda: [shard])) == (
      f'{shard} record 1: not a valid DeepLab example: Invalid PNG. Failed to initialize '
      'decoder.')
