"""The original's optimizer: TF1 `tf.train.MomentumOptimizer` as a Keras 3 optimizer.

The original train.py steps with `MomentumOptimizer(learning_rate, momentum)`:

  accumulation = momentum * accumulation + gradient
  variable -= learning_rate * accumulation

Keras' SGD keeps the learning rate inside its slot instead
(`m = momentum * m - learning_rate * gradient; variable += m`). The two agree
only while the rate is constant: under the original's poly schedule the Keras
update weighs past gradients by the rates of their own steps, the original by
today's. Its slot also holds `-learning_rate` times the original's, so
`<variable>/Momentum` in checkpoints would not mean what it means in the
original's. This optimizer keeps the original's update and slot exactly.
"""

import keras


class MomentumOptimizer(keras.optimizers.Optimizer):
  """TF1 `MomentumOptimizer` (no Nesterov): slot `momentums`, one per variable.

  Args:
    learning_rate: A float or a `LearningRateSchedule`.
    momentum: The accumulation's decay (0.9 in the original).
    name: The optimizer's name.
    **kwargs: `keras.optimizers.Optimizer` arguments (e.g. `global_clipnorm`).
  """

  def __init__(self, learning_rate=0.01, momentum=0.9, name='momentum', **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    if not 0.0 <= momentum < 1.0:
      raise ValueError(f'--momentum must be in [0, 1), got {momentum}')
    self.momentum = float(momentum)

  def build(self, variables):
    if self.built:
      return
    super().build(variables)
    self.momentums = [self.add_variable_from_reference(v, 'momentum') for v in variables]

  def update_step(self, gradient, variable, learning_rate):
    learning_rate = keras.ops.cast(learning_rate, variable.dtype)
    gradient = keras.ops.cast(gradient, variable.dtype)
    accumulation = self.momentums[self._get_variable_index(variable)]
    self.assign(accumulation, keras.ops.add(keras.ops.multiply(accumulation, self.momentum),
                                            gradient))
    self.assign_sub(variable, keras.ops.multiply(learning_rate, accumulation))

  def get_config(self):
    return dict(super().get_config(), momentum=self.momentum)
