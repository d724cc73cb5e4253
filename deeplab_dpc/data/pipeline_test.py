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
  with pytest.raises(FileNotFoundError, match=r'train_fine-\*'):
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
