"""The shared training step: loss, L2, multipliers, replica scaling, one update."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc.training import losses
from deeplab_dpc.training import momentum
from deeplab_dpc.training import step

NUM_CLASSES = 3


class _Logits(keras.Model):
  """A 1x1 conv with L2 on its kernel: logits from 4-channel features."""

  def __init__(self):
    super().__init__(name='toy')
    self.conv = keras.layers.Conv2D(NUM_CLASSES, 1, name='logits',
                                    kernel_regularizer=keras.regularizers.L2(0.01))

  def call(self, x, training=False):
    del training
    return self.conv(x)


def _setup(seed=0):
  keras.utils.set_random_seed(seed)
  model = _Logits()
  features = tf.random.normal([2, 3, 3, 4], seed=seed)
  model(features)
  labels = tf.constant(np.random.default_rng(seed).integers(0, NUM_CLASSES, [2, 5, 5, 1]),
                       tf.int32)
  optimizer = momentum.MomentumOptimizer(learning_rate=0.1, momentum=0.9)
  optimizer.build(model.trainable_variables)
  return model, optimizer, features, labels


def test_loss_is_cross_entropy_plus_l2_and_gradients_are_of_that_total():
  model, optimizer, features, labels = _setup()
  kernel = model.conv.kernel.numpy()
  with tf.GradientTape() as tape:
    logits = model(features)
    expected_ce = losses.softmax_cross_entropy(logits, labels, NUM_CLASSES)
    expected_total = expected_ce + tf.add_n(model.losses)
  expected_grad = tape.gradient(expected_total, model.conv.kernel).numpy()
  train_step = step.make_train_step(model, optimizer, step.LossSettings(NUM_CLASSES),
                                    return_gradients=True)
  out = train_step(features, labels)
  assert float(out['segmentation_loss']) == pytest.approx(float(expected_ce), rel=1e-6)
  assert float(out['regularization_loss']) == pytest.approx(
      0.01 * float(np.sum(kernel ** 2)), rel=1e-5)
  assert float(out['total_loss']) == pytest.approx(float(expected_total), rel=1e-6)
  np.testing.assert_allclose(out['gradients']['toy/logits/kernel'], expected_grad, rtol=1e-5)
  # First momentum step: variable -= rate * gradient.
  np.testing.assert_allclose(model.conv.kernel.numpy(), kernel - 0.1 * expected_grad,
                             rtol=1e-5, atol=1e-7)


def test_multipliers_scale_only_their_variables_and_replicas_divide_the_loss():
  plain_model, plain_opt, features, labels = _setup()
  before = {v.path: v.numpy() for v in plain_model.trainable_variables}
  step.make_train_step(plain_model, plain_opt, step.LossSettings(NUM_CLASSES))(features, labels)
  plain_delta = {v.path: v.numpy() - before[v.path] for v in plain_model.trainable_variables}

  model, optimizer, _, _ = _setup()
  out = step.make_train_step(model, optimizer, step.LossSettings(NUM_CLASSES),
                             multipliers={'toy/logits/bias': 2.0},
                             num_replicas=4)(features, labels)
  for v in model.trainable_variables:
    scale = (2.0 if v.path == 'toy/logits/bias' else 1.0) / 4
    np.testing.assert_allclose(v.numpy() - before[v.path], plain_delta[v.path] * scale,
                               rtol=1e-4, atol=1e-8)
  assert 'gradients' not in out and out['logits'].shape == (2, 3, 3, NUM_CLASSES)


def test_ignore_label_and_label_weights_reach_the_loss():
  model, optimizer, features, labels = _setup()
  ignored = tf.where(tf.range(5)[None, :, None, None] < 2, 255, labels)
  settings = step.LossSettings(NUM_CLASSES, ignore_label=255, label_weights=[0.0, 1.0, 1.0])
  out = step.make_train_step(model, optimizer, settings)(features, ignored)
  expected = losses.softmax_cross_entropy(out['logits'], ignored, NUM_CLASSES, 255,
                                          [0.0, 1.0, 1.0])
  # The logits returned are those of the forward pass, before the update.
  assert float(out['segmentation_loss']) == pytest.approx(float(expected), rel=1e-6)
