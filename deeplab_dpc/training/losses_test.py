"""The training loss against a plain numpy statement of the original's."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc.training import losses
from deeplab_dpc.testing import numpy_reference as reference


def _numpy_pixel_losses(logits, labels, num_classes, weights=None):
  logits = logits.reshape(-1, num_classes).astype(np.float64)
  labels = labels.reshape(-1)
  log_softmax = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(
      1, keepdims=True)) - logits.max(1, keepdims=True)
  valid = labels != 255
  safe = np.where(valid, labels, 0)
  pixel = -log_softmax[np.arange(labels.size), safe] * valid
  if weights is not None:
    pixel = pixel * np.asarray(weights)[safe]
  return pixel, valid


@pytest.fixture
def batch():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 5, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 9, 9, 1)).astype(np.int32)
  labels[0, :3] = 255  # Ignored pixels.
  return logits, labels


def test_mean_over_non_ignored_pixels_of_upsampled_logits(batch):
  logits, labels = batch
  ours = float(losses.softmax_cross_entropy(logits, labels, 4))
  upsampled = reference.resize_bilinear(logits, 9, 9)
  pixel, valid = _numpy_pixel_losses(upsampled, labels, 4)
  assert ours == pytest.approx(pixel.sum() / valid.sum(), rel=1e-5)


def test_label_weights(batch):
  logits, labels = batch
  weights = [1.0, 2.0, 0.5, 3.0]
  ours = float(losses.softmax_cross_entropy(logits, labels, 4, label_weights=weights))
  pixel, valid = _numpy_pixel_losses(reference.resize_bilinear(logits, 9, 9), labels, 4,
                                     weights)
  # As the original: weighted sum over the count of non-ignored pixels.
  assert ours == pytest.approx(pixel.sum() / valid.sum(), rel=1e-5)
  with pytest.raises(ValueError, match='--label_weights needs 4 values'):
    losses.softmax_cross_entropy(logits, labels, 4, label_weights=[1.0, 2.0])


def test_downsampled_labels_when_not_upsampling_logits():
  logits = np.random.default_rng(1).normal(size=(1, 3, 3, 2)).astype(np.float32)
  labels = np.zeros((1, 5, 5, 1), np.int32)
  labels[0, ::2, ::2] = 1  # Nearest (align_corners) sampling picks exactly these.
  ours = float(losses.softmax_cross_entropy(logits, labels, 2, upsample_logits=False))
  pixel, valid = _numpy_pixel_losses(logits, np.ones((1, 3, 3), np.int32), 2)
  assert ours == pytest.approx(pixel.sum() / valid.sum(), rel=1e-5)


def test_hard_example_mining_keeps_the_top_pixels(batch):
  logits, labels = batch
  pixel, _ = _numpy_pixel_losses(reference.resize_bilinear(logits, 9, 9), labels, 4)
  k = int(0.25 * pixel.size)
  top = np.sort(pixel)[::-1][:k]
  expected = top.sum() / np.count_nonzero(top)
  ours = float(losses.softmax_cross_entropy(logits, labels, 4, top_k_percent_pixels=0.25))
  assert ours == pytest.approx(expected, rel=1e-5)


def test_hard_example_mining_is_annealed(batch):
  logits, labels = batch
  pixel, _ = _numpy_pixel_losses(reference.resize_bilinear(logits, 9, 9), labels, 4)
  ordered = np.sort(pixel)[::-1]

  def expected(fraction):
    top = ordered[:int(np.float32(fraction) * np.float32(pixel.size))]
    return top.sum() / np.count_nonzero(top)

  at = lambda step: float(losses.softmax_cross_entropy(
      logits, labels, 4, top_k_percent_pixels=0.25, hard_example_mining_step=100, step=step))
  assert at(0) == pytest.approx(expected(1.0), rel=1e-5)
  assert at(50) == pytest.approx(expected(0.5 * 0.25 + 0.5), rel=1e-5)
  assert at(100) == pytest.approx(expected(0.25), rel=1e-5)
  assert at(1000) == pytest.approx(expected(0.25), rel=1e-5)


def test_all_ignored_is_zero_not_nan():
  logits = tf.zeros((1, 3, 3, 2))
  labels = np.full((1, 5, 5, 1), 255, np.int32)
  assert float(losses.softmax_cross_entropy(logits, labels, 2)) == 0.0
