"""Tests of the preprocessing, against the original's behaviour."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import constants
from deeplab_dpc.data import preprocess


def _blocks(height, width):
  """A label of 4 asymmetric blocks and an image whose value encodes it."""
  label = np.zeros((height, width, 1), np.int32)
  label[:height // 3, :width // 4] = 1
  label[:height // 3, width // 4:] = 2
  label[height // 3:, :width * 2 // 3] = 3
  image = np.repeat(label * 40.0, 3, axis=2).astype(np.float32)
  return image, label


@pytest.mark.parametrize('seed', [0, 1, 2, 3, 4, 5])
def test_training_moves_image_and_label_together(seed):
  image, label = _blocks(40, 60)
  _, out_image, out_label = preprocess.preprocess_image_and_label(
      image, label, 33, 33, min_scale_factor=0.5, max_scale_factor=2.0,
      scale_factor_step_size=0.25, is_training=True, seed=tf.constant([seed, 7]))
  out_image, out_label = out_image.numpy(), out_label.numpy()
  assert out_image.shape == (33, 33, 3) and out_label.shape == (33, 33, 1)
  assert out_image.dtype == np.float32 and out_label.dtype == np.int32
  padded = out_label[..., 0] == constants.IGNORE_LABEL
  np.testing.assert_array_equal(out_image[padded], constants.MEAN_PIXEL)
  inside = ~padded
  agree = np.abs(out_image[..., 0] - 40.0 * out_label[..., 0]) < 1e-3
  # Only pixels on block boundaries may blend (bilinear image vs nearest label).
  assert agree[inside].mean() > 0.85


def test_flip_is_applied_to_both():
  image, label = _blocks(20, 30)
  flipped_any = False
  for seed in range(8):
    _, out_image, out_label = preprocess.preprocess_image_and_label(
        image, label, 20, 30, is_training=True, seed=tf.constant([seed, 0]))
    np.testing.assert_array_equal(out_image.numpy()[..., 0], 40.0 * out_label.numpy()[..., 0])
    flipped_any |= out_label.numpy()[0, 0, 0] == 2
  assert flipped_any


def test_eval_pads_bottom_right_only():
  image, label = _blocks(10, 12)
  original, out_image, out_label = preprocess.preprocess_image_and_label(
      image, label, 17, 21, is_training=False)
  out_image, out_label = out_image.numpy(), out_label.numpy()
  np.testing.assert_array_equal(out_image[:10, :12], image)
  np.testing.assert_array_equal(out_label[:10, :12], label)
  assert (out_image[10:] == 127.5).all() and (out_image[:, 12:] == 127.5).all()
  assert (out_label[10:] == 255).all() and (out_label[:, 12:] == 255).all()
  np.testing.assert_array_equal(np.asarray(original), image)


def test_eval_image_larger_than_crop_is_an_error():
  image, label = _blocks(10, 40)
  with pytest.raises(tf.errors.InvalidArgumentError, match='larger than the eval crop size'):
    preprocess.preprocess_image_and_label(image, label, 17, 21, is_training=False)


def test_training_needs_label():
  with pytest.raises(ValueError, match='label must be provided'):
    preprocess.preprocess_image_and_label(np.zeros((4, 4, 3)), None, 4, 4)


def test_random_scale_picks_the_discrete_steps():
  values = {float(preprocess.get_random_scale(0.5, 2.0, 0.25, tf.constant([s, 1])))
            for s in range(200)}
  assert values == {0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0}
  assert float(preprocess.get_random_scale(1.5, 1.5, 0.25)) == 1.5
  with pytest.raises(ValueError, match='min_scale_factor'):
    preprocess.get_random_scale(2.0, 1.0, 0)


def test_scaled_size_truncates_like_the_original():
  image, label = _blocks(41, 31)
  out_image, out_label = preprocess.randomly_scale_image_and_label(
      tf.constant(image), tf.constant(label), tf.constant(0.75))
  assert out_image.shape == (30, 23, 3) and out_label.shape == (30, 23, 1)


def test_resize_to_range():
  image = tf.zeros((100, 200, 3))
  label = tf.zeros((100, 200, 1), tf.int32)
  resized, resized_label = preprocess.resize_to_range(image, label, min_size=50)
  assert resized.shape == (50, 100, 3) and resized_label.shape == (50, 100, 1)
  assert preprocess.resize_to_range(image, None, 50, 80)[0].shape == (40, 80, 3)
  # max 80 becomes 65 (a multiple of 16 plus one), then sides are adjusted to 16k+1.
  assert preprocess.resize_to_range(image, None, 50, 80, 16)[0].shape == (33, 65, 3)
  with pytest.raises(ValueError, match='min_resize_value'):
    preprocess.resize_to_range(image, None, None, 80)


def test_resize_keeps_label_values():
  _, label = _blocks(30, 30)
  _, resized = preprocess.resize_to_range(tf.zeros((30, 30, 3)), tf.constant(label), 47)
  assert set(np.unique(resized.numpy())) == {0, 1, 2, 3}


def test_seeded_augmentation_is_reproducible():
  image, label = _blocks(40, 60)
  def run(seed):
    return preprocess.preprocess_image_and_label(
        image, label, 25, 25, min_scale_factor=0.5, max_scale_factor=2.0,
        scale_factor_step_size=0.25, seed=tf.constant(seed))[1].numpy()
  np.testing.assert_array_equal(run([3, 4]), run([3, 4]))
  assert any(not np.array_equal(run([3, 4]), run([s, 4])) for s in range(5, 9))
