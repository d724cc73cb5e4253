"""The original's MomentumOptimizer update, under a changing learning rate."""

import keras
import numpy as np
import pytest

from deeplab_dpc.training import momentum


class _Halving(keras.optimizers.schedules.LearningRateSchedule):

  def __call__(self, step):
    return 0.1 * 0.5 ** keras.ops.cast(step, 'float32')


def test_update_and_slot_are_the_originals_under_a_decaying_rate():
  variable = keras.Variable(np.array([1.0, -2.0], np.float32))
  optimizer = momentum.MomentumOptimizer(learning_rate=_Halving(), momentum=0.9)
  optimizer.build([variable])
  grads = [np.array([0.5, 1.0], np.float32), np.array([-1.0, 0.25], np.float32),
           np.array([2.0, -0.5], np.float32)]
  value, slot = np.array([1.0, -2.0]), np.zeros(2)
  for step, grad in enumerate(grads):
    optimizer.apply_gradients([(grad, variable)])
    slot = 0.9 * slot + grad
    value = value - 0.1 * 0.5 ** step * slot
  np.testing.assert_allclose(variable.numpy(), value, rtol=1e-6)
  np.testing.assert_allclose(optimizer.momentums[0].numpy(), slot, rtol=1e-6)
  # Keras' SGD keeps the rate in its slot and so drifts from the original here.
  keras_variable = keras.Variable(np.array([1.0, -2.0], np.float32))
  sgd = keras.optimizers.SGD(learning_rate=_Halving(), momentum=0.9)
  for grad in grads:
    sgd.apply_gradients([(grad, keras_variable)])
  assert np.abs(keras_variable.numpy() - value).max() > 1e-3


def test_bad_momentum_is_named():
  with pytest.raises(ValueError, match='--momentum'):
    momentum.MomentumOptimizer(momentum=1.0)
