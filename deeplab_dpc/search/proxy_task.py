"""The proxy task: a candidate cell trained and scored on cached backbone features.

As Chen et al. (NeurIPS 2018, Sec. 4.1): the cell plus the logits layer train on the
frozen backbone's cached output-stride-16 features for N steps (paper: 30K steps,
batch 8, learning rate 0.01 with the poly policy and momentum 0.9) and are scored by
mIOU on the cached validation features. The loss is the original's (softmax cross
entropy on logits upsampled to the label size with align_corners, the ignore label
excluded) plus the weight decay the cell's layers carry (tf-slim convention). A loss
that turns NaN or infinite ends the trial as `ProxyTaskDiverged` with the step.
"""

import dataclasses
import math
import time
from typing import Any

from absl import logging
import keras
import tensorflow as tf

from deeplab_dpc import constants
from deeplab_dpc import decoder
from deeplab_dpc.evaluation import metrics
from deeplab_dpc.heads import dense_prediction_cell
from deeplab_dpc import layers
from deeplab_dpc.search import feature_cache
from deeplab_dpc.training import schedules
from deeplab_dpc.training import step as step_lib

# Check the loss for NaN every this many steps: a host sync per step would stall the
# input pipeline on accelerators, and a diverged run stays NaN anyway.
_NAN_CHECK_EVERY = 10


class ProxyTaskDiverged(RuntimeError):
  """The proxy training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
  """Hyperparameters of the proxy task (flags `--proxy_*`).

  Attributes:
    training_number_of_steps: N (paper: 30000).
    batch_size: Cached examples per step (paper: 8).
    base_learning_rate: Poly policy start (paper: 0.01).
    learning_power: Poly power (the original's 0.9).
    momentum: SGD momentum (0.9).
    weight_decay: L2 on conv weights (the original's 4e-5).
    seed: Initialisation, dropout and data order; the same for every candidate, so
      candidates differ only by their cell.
    eval_batch_size: Validation examples per forward pass.
    shuffle_buffer_size: Cached training examples in the shuffle buffer.
    cache_in_memory_bytes: Keep a split in memory when it is smaller than this.
    batch_norm_decay: The cell's batch-norm decay (None: the original's 0.9997;
      short proxy runs need a faster one, e.g. 0.9).
    upsample_logits: Compute the loss on logits upsampled to the label size (the
      original's default); False downsamples the labels to the logits (nearest),
      the original flag's other mode, which makes a proxy step far cheaper.
    label_weights: The loss's class weights: 1.0, or one weight per class
      (`--label_weights`, `--label_weights_from`; see `class_weights`).
  """
  training_number_of_steps: int = 30000
  batch_size: int = 8
  base_learning_rate: float = 0.01
  learning_power: float = 0.9
  momentum: float = 0.9
  weight_decay: float = constants.WEIGHT_DECAY
  seed: int = 0
  eval_batch_size: int = 16
  shuffle_buffer_size: int = 1000
  cache_in_memory_bytes: int = 1 << 30
  batch_norm_decay: float | None = None
  upsample_logits: bool = True
  label_weights: Any = 1.0

  def validate(self) -> None:
    if int(self.training_number_of_steps) < 1:
      raise ValueError('--proxy_training_number_of_steps must be >= 1, got '
                       f'{self.training_number_of_steps}')
    if int(self.batch_size) < 1:
      raise ValueError(f'--proxy_batch_size must be >= 1, got {self.batch_size}')
    if not self.base_learning_rate > 0:
      raise ValueError('--proxy_base_learning_rate must be positive, got '
                       f'{self.base_learning_rate}')
    if self.weight_decay < 0:
      raise ValueError(f'--proxy_weight_decay must be >= 0, got {self.weight_decay}')


def build_proxy_model(cell: Any, num_classes: int, output_stride: int = 16,
                      weight_decay: float = constants.WEIGHT_DECAY,
                      batch_norm_decay: float | None = None):
  """The cell and the logits layer as a Keras model on cached features.

  Args:
    cell: The cell (original JSON form or `cell.Branch`es).
    num_classes: Classes of the logits.
    output_stride: Stride of the cached features (sets the conv rate multiplier).
    weight_decay: L2 scale on conv weights.
    batch_norm_decay: Moving-average decay of the cell's batch norms; None keeps
      the original's 0.9997, which short proxy runs cannot move far enough for
      the scoring (inference-mode) pass.
  """

  conv_kwargs = dict(batch_norm_epsilon=constants.HEAD_BATCH_NORM_EPSILON,
                     batch_norm_decay=batch_norm_decay or constants.HEAD_BATCH_NORM_DECAY,
                     fine_tune_batch_norm=True, weight_decay=weight_decay)

  class ProxyModel(keras.Model):
    """Cached features -> dense prediction cell -> logits (no decoder, as the paper)."""

    def __init__(self):
      super().__init__(name='proxy')
      self.cell = dense_prediction_cell.DensePredictionCell(
          cell, output_stride=output_stride, conv_kwargs=conv_kwargs)
      self.logits_layer = decoder.Logits(num_classes, weight_decay=weight_decay)

    def call(self, features, training=False):
      features = keras.ops.cast(features, 'float32')
      return self.logits_layer(self.cell(features, training=training))

  return ProxyModel()


def _dataset(cache_dir, manifest, role, batch_size, config, training):
  dataset = feature_cache.load_split(cache_dir, manifest, role)
  dtype_bytes = 2 if manifest['config']['feature_dtype'] == 'float16' else 4
  example_bytes = (math.prod(manifest['feature_shape']) * dtype_bytes +
                   math.prod(manifest['label_shape']) * 4)
  if example_bytes * manifest['splits'][role]['examples'] <= config.cache_in_memory_bytes:
    dataset = dataset.cache()
  if training:
    dataset = dataset.shuffle(config.shuffle_buffer_size, seed=config.seed,
                              reshuffle_each_iteration=True).repeat()
  dataset = dataset.batch(batch_size, drop_remainder=training)
  options = tf.data.Options()
  options.deterministic = True
  return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def run_proxy_task(cell: Any, cache_dir: str, manifest: dict, config: ProxyConfig,
                   log_every: int = 0) -> dict:
  """Trains `cell` on the cached features and scores it on the cached validation set.

  Args:
    cell: The candidate cell.
    cache_dir: The feature cache folder.
    manifest: Its manifest (`feature_cache.open_feature_cache`).
    config: Proxy hyperparameters.
    log_every: Log the loss every this many steps (0: never).

  Returns:
    {'miou', 'pixel_accuracy', 'per_class_iou', 'final_loss', 'train_seconds',
     'eval_seconds', 'steps'}.

  Raises:
    ProxyTaskDiverged: the loss became NaN or infinite (message names the step).
  """

  config.validate()
  num_classes = manifest['num_classes']
  ignore_label = manifest['ignore_label']
  keras.utils.set_random_seed(config.seed)
  model = build_proxy_model(cell, num_classes, manifest['config']['output_stride'],
                            config.weight_decay, config.batch_norm_decay)
  model(tf.zeros([1] + list(manifest['feature_shape'])), training=False)
  steps = int(config.training_number_of_steps)
  learning_rate = schedules.DeepLabLearningRate(
      'poly', base_learning_rate=config.base_learning_rate,
      training_number_of_steps=steps, learning_power=config.learning_power)
  optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.momentum)
  variables = model.trainable_variables
  optimizer.build(variables)

  train_step = _train_step(model, optimizer, num_classes, ignore_label, config.upsample_logits,
                           config.label_weights)

  @tf.function
  def predict(features, label_size):
    logits = model(features, training=False)
    logits = layers.resize_bilinear(logits, label_size)
    return tf.argmax(logits, axis=-1, output_type=tf.int32), tf.reduce_all(
        tf.math.is_finite(logits))

  train_data = iter(_dataset(cache_dir, manifest, feature_cache.TRAIN, config.batch_size,
                             config, training=True))
  start = time.perf_counter()
  loss = float('nan')
  pending = []
  for step in range(1, steps + 1):
    features, labels = next(train_data)
    pending.append(train_step(features, labels))
    if step % _NAN_CHECK_EVERY == 0 or step == steps:
      values = [float(v) for v in pending]
      pending = []
      for offset, value in enumerate(values):
        if not math.isfinite(value):
          raise ProxyTaskDiverged(
              f'proxy task diverged: loss is {value} at step '
              f'{step - len(values) + offset + 1} of {steps} '
              f'(--proxy_base_learning_rate={config.base_learning_rate})')
      loss = values[-1]
    if log_every and step % log_every == 0:
      logging.info('proxy step %d/%d loss %.4f', step, steps, loss)
  train_seconds = time.perf_counter() - start

  start = time.perf_counter()
  confusion = metrics.StreamingConfusion(num_classes, ignore_label)
  label_size = tuple(manifest['label_shape'])
  for features, labels in _dataset(cache_dir, manifest, feature_cache.EVAL,
                                   config.eval_batch_size, config, training=False):
    predictions, finite = predict(features, label_size)
    if not bool(finite):
      raise ProxyTaskDiverged('proxy task diverged: the logits on the cached validation '
                              'features are not finite')
    confusion.update(labels.numpy()[..., 0], predictions.numpy(), source='cached eval labels')
  result = confusion.result()
  return {
      'miou': float(result['miou']),
      'pixel_accuracy': float(result['pixel_accuracy']),
      'per_class_iou': result['per_class_iou'],
      'final_loss': float(loss),
      'train_seconds': train_seconds,
      'eval_seconds': time.perf_counter() - start,
      'steps': steps,
  }


def _train_step(model, optimizer, num_classes: int, ignore_label: int,
                upsample_logits: bool, label_weights=1.0):
  """The proxy's training step: train.py's (`step.make_train_step`) without gradient
  multipliers, as a tf.function returning the total loss."""
  train_step = step_lib.make_train_step(model, optimizer, step_lib.LossSettings(
      num_classes, ignore_label, label_weights, upsample_logits))
  return tf.function(lambda features, labels: train_step(features, labels)['total_loss'])


def proxy_train_step_fn(cell: Any, manifest: dict, config: ProxyConfig):
  """(step function, model) for benchmarking one proxy training step in isolation."""
  keras.utils.set_random_seed(config.seed)
  num_classes = manifest['num_classes']
  model = build_proxy_model(cell, num_classes, manifest['config']['output_stride'],
                            config.weight_decay, config.batch_norm_decay)
  model(tf.zeros([1] + list(manifest['feature_shape'])), training=False)
  optimizer = keras.optimizers.SGD(learning_rate=config.base_learning_rate,
                                   momentum=config.momentum)
  optimizer.build(model.trainable_variables)
  step = _train_step(model, optimizer, num_classes, manifest.get('ignore_label', 255),
                     config.upsample_logits, config.label_weights)
  return step, model

