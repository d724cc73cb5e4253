"""Learning-rate policies of the original `train_utils.get_model_learning_rate`."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class DeepLabLearningRate(keras.optimizers.schedules.LearningRateSchedule):
  """`poly` or `step` policy with an optional slow start, as the original.

  With `s = max(step - slow_start_step, 0)`:

  * poly: `(base - end) * (1 - min(s, decay_steps) / decay_steps) ** learning_power
    + end` (`tf.train.polynomial_decay`); `decay_steps` 0 means
    `training_number_of_steps - slow_start_step`;
  * step: `base * learning_rate_decay_factor ** floor(s / learning_rate_decay_step)`;
  * before `slow_start_step`: `slow_start_learning_rate`.

  Args:
    learning_policy: 'poly' or 'step'.
    base_learning_rate: Rate after the slow start.
    training_number_of_steps: Steps of the whole run.
    learning_power: Poly power (0.9).
    learning_rate_decay_step, learning_rate_decay_factor: Step policy.
    slow_start_step, slow_start_learning_rate: Warm-up.
    decay_steps, end_learning_rate: Poly policy.
  """

  def __init__(self, learning_policy='poly', base_learning_rate=1e-4,
               training_number_of_steps=30000, learning_power=0.9,
               learning_rate_decay_step=2000, learning_rate_decay_factor=0.1,
               slow_start_step=0, slow_start_learning_rate=1e-4, decay_steps=0,
               end_learning_rate=0.0):
    if learning_policy not in ('poly', 'step'):
      raise ValueError(f'--learning_policy must be poly or step, got {learning_policy!r}')
    if training_number_of_steps < 1:
      raise ValueError('--training_number_of_steps must be >= 1, got '
                       f'{training_number_of_steps}')
    if base_learning_rate <= 0:
      raise ValueError(f'--base_learning_rate must be positive, got {base_learning_rate}')
    self.learning_policy = learning_policy
    self.base_learning_rate = float(base_learning_rate)
    self.training_number_of_steps = int(training_number_of_steps)
    self.learning_power = float(learning_power)
    self.learning_rate_decay_step = int(learning_rate_decay_step)
    self.learning_rate_decay_factor = float(learning_rate_decay_factor)
    self.slow_start_step = int(slow_start_step)
    self.slow_start_learning_rate = float(slow_start_learning_rate)
    self.decay_steps = int(decay_steps) or self.training_number_of_steps - self.slow_start_step
    if self.decay_steps < 1:
      raise ValueError('--slow_start_step must be below --training_number_of_steps')
    self.end_learning_rate = float(end_learning_rate)

  def __call__(self, step):
    step = ops.cast(step, 'float32')
    adjusted = ops.maximum(step - self.slow_start_step, 0.0)
    if self.learning_policy == 'poly':
      progress = ops.minimum(adjusted, self.decay_steps) / self.decay_steps
      rate = ((self.base_learning_rate - self.end_learning_rate) *
              ops.power(1.0 - progress, self.learning_power) + self.end_learning_rate)
    else:
      rate = self.base_learning_rate * ops.power(
          self.learning_rate_decay_factor, ops.floor(adjusted / self.learning_rate_decay_step))
    return ops.where(step < self.slow_start_step, self.slow_start_learning_rate, rate)

  def get_config(self):
    return dict(learning_policy=self.learning_policy,
                base_learning_rate=self.base_learning_rate,
                training_number_of_steps=self.training_number_of_steps,
                learning_power=self.learning_power,
                learning_rate_decay_step=self.learning_rate_decay_step,
                learning_rate_decay_factor=self.learning_rate_decay_factor,
                slow_start_step=self.slow_start_step,
                slow_start_learning_rate=self.slow_start_learning_rate,
                decay_steps=self.decay_steps, end_learning_rate=self.end_learning_rate)
