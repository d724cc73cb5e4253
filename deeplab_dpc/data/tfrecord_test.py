"""Tests of the TFRecord example format."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc.data import image_io
from deeplab_dpc.data import tfrecord


def _example(height=5, width=6, label_shape=None):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
  label = rng.integers(0, 3, label_shape or (height, width), dtype=np.uint8)
  serialized = tfrecord.encode_example(image_io.encode_png(image), image_io.encode_png(label),
                                       'img_0', height, width)
  return serialized, image, label


def test_round_trip_and_original_keys():
  serialized, image, label = _example()
  parsed = tf.train.Example.FromString(serialized).features.feature
  assert set(parsed) == {
      'image/encoded', 'image/filename', 'image/format', 'image/height', 'image/width',
      'image/channels', 'image/segmentation/class/encoded',
      'image/segmentation/class/format'}
  assert parsed['image/format'].bytes_list.value == [b'png']
  assert parsed['image/channels'].int64_list.value == [3]
  decoded = tfrecord.decode_example(serialized)
  np.testing.assert_array_equal(decoded['image'], image)
  np.testing.assert_array_equal(decoded['label'][..., 0], label)
  assert decoded['label'].shape == (5, 6, 1)
  assert (decoded['image_name'], decoded['height'], decoded['width']) == ('img_0', 5, 6)


def test_jpeg_format_name():
  serialized = tfrecord.encode_example(b'x', b'y', 'n', 1, 1, image_format='jpg')
  assert tf.train.Example.FromString(serialized).features.feature[
      'image/format'].bytes_list.value == [b'jpeg']


def test_missing_key_names_record_and_key():
  example = tf.train.Example()
  example.features.feature['image/height'].int64_list.value.append(3)
  with pytest.raises(ValueError, match='rec 7.*image/encoded'):
    tfrecord.decode_example(example.SerializeToString(), 'rec 7')


def test_corrupt_image_bytes_name_the_record():
  serialized = tfrecord.encode_example(b'not an image', image_io.encode_png(
      np.zeros((2, 2), np.uint8)), 'n', 2, 2)
  with pytest.raises(ValueError, match='bad.tfrecord record 0.*corrupt image/encoded'):
    tfrecord.decode_example(serialized, 'bad.tfrecord record 0')


def test_label_size_mismatch_names_the_record():
  serialized, _, _ = _example(label_shape=(4, 6))
  with pytest.raises(ValueError, match='r1.*label of size 4x6 but an image of size 5x6'):
    tfrecord.decode_example(serialized, 'r1')


def test_read_examples_names_file_and_index(tmp_path):
  path = str(tmp_path / 'x.tfrecord')
  good, _, _ = _example()
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(good)
    writer.write(tf.train.Example().SerializeToString())
  iterator = tfrecord.read_examples(path)
  assert next(iterator)['image_name'] == 'img_0'
  with pytest.raises(ValueError, match='x.tfrecord record 1'):
    next(iterator)
  with pytest.raises(FileNotFoundError, match='nope.tfrecord'):
    list(tfrecord.read_examples(str(tmp_path / 'nope.tfrecord')))


def test_shard_name():
  assert tfrecord.shard_name('train', 3, 10) == 'train-00003-of-00010.tfrecord'
