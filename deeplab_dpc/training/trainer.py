"""The training loop: the original recipe on any tf.distribute strategy, resumable.

One custom loop (`strategy.run` over `distribute_datasets_from_function`) serves one
CPU, many GPUs, many machines and TPUs; Keras `fit` is avoided because it fails
under MultiWorkerMirroredStrategy with TF 2.21 / Keras 3.15.

A checkpoint (`<train_logdir>/ckpt-<step>`) holds the model's variables by
original name (so eval/export read it like any checkpoint), the optimizer's slots,
the global step and the input iterator's position; a restarted run continues
where the last save left it.
"""

import dataclasses
import json
import math
import os
import re
import signal
import time
from typing import Any

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import fileio
from deeplab_dpc import layers
from deeplab_dpc import model as model_lib
from deeplab_dpc.data import colormaps
from deeplab_dpc.data import descriptors
from deeplab_dpc.data import pipeline
from deeplab_dpc.data import tfds_source
from deeplab_dpc.data import tfrecord
from deeplab_dpc.options import ModelOptions
from deeplab_dpc.training import momentum as momentum_lib
from deeplab_dpc.training import schedules
from deeplab_dpc.training import step as step_lib
from deeplab_dpc.training import strategies

OPTIONS_FILE = 'model_options.json'
# Scopes of the layers after the backbone (`model.get_extra_layer_scopes`).
_EXTRA_LAYER_SCOPES = ('logits', 'image_pooling', 'aspp', 'concat_projection', 'decoder',
                       'meta_architecture')


class TrainingDivergedError(ValueError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass
class TrainConfig:
  """Everything a training run needs. Field names are the original train.py flags.

  `model_options.crop_size` is the training crop (`train_crop_size`).
  """
  dataset: str
  dataset_dir: str
  train_logdir: str
  model_options: ModelOptions
  train_split: str = 'train'
  train_batch_size: int = 12
  training_number_of_steps: int = 30000
  learning_policy: str = 'poly'
  base_learning_rate: float = 1e-4
  learning_power: float = 0.9
  learning_rate_decay_step: int = 2000
  learning_rate_decay_factor: float = 0.1
  decay_steps: int = 0
  end_learning_rate: float = 0.0
  slow_start_step: int = 0
  slow_start_learning_rate: float = 1e-4
  momentum: float = 0.9
  upsample_logits: bool = True
  top_k_percent_pixels: float = 1.0
  hard_example_mining_step: int = 0
  label_weights: Any = 1.0
  last_layer_gradient_multiplier: float = 1.0
  last_layers_contain_logits_only: bool = False
  tf_initial_checkpoint: str | None = None
  initialize_last_layer: bool = True
  min_resize_value: int | None = None
  max_resize_value: int | None = None
  resize_factor: int | None = None
  min_scale_factor: float = 0.5
  max_scale_factor: float = 2.0
  scale_factor_step_size: float = 0.25
  log_steps: int = 10
  save_interval_secs: float = 1200
  save_interval_steps: int = 0
  save_summaries_steps: int = 100
  save_summaries_images: bool = False
  max_to_keep: int = 5
  seed: int | None = None
  deterministic: bool = False
  mixed_precision: str = ''
  jit_compile: bool = False
  distribution: str = 'auto'
  tpu: str = ''

  def validate(self, num_replicas: int = 1) -> None:
    """Checks the training flags; ValueError naming the flag at fault."""
    options = self.model_options
    for size in options.crop_size:
      if (size - 1) % options.output_stride:
        raise ValueError(
            f'--train_crop_size={",".join(map(str, options.crop_size))} does not suit '
            f'--output_stride={options.output_stride}: each side must be a multiple of the '
            f'output stride plus one (e.g. {options.output_stride * 4 + 1}) so that every '
            'align-corners resize is exact')
    if self.train_batch_size < 1:
      raise ValueError(f'--train_batch_size must be >= 1, got {self.train_batch_size}')
    if self.train_batch_size % num_replicas:
      raise ValueError(f'--train_batch_size={self.train_batch_size} is not divisible by the '
                       f'{num_replicas} replicas of this run')
    if self.training_number_of_steps < 1:
      raise ValueError('--training_number_of_steps must be >= 1')
    if not 0.0 < self.top_k_percent_pixels <= 1.0:
      raise ValueError(f'--top_k_percent_pixels must be in (0, 1], got '
                       f'{self.top_k_percent_pixels}')
    if self.mixed_precision not in ('', 'float16', 'bfloat16'):
      raise ValueError(f'--mixed_precision must be float16 or bfloat16, got '
                       f'{self.mixed_precision!r}')
    if self.save_interval_steps < 0 or self.save_summaries_steps < 0 or self.log_steps < 1:
      raise ValueError('--save_interval_steps, --save_summaries_steps must be >= 0 and '
                       '--log_steps >= 1')
    for flag in ('base_learning_rate', 'learning_power', 'learning_rate_decay_factor',
                 'end_learning_rate', 'slow_start_learning_rate', 'momentum',
                 'last_layer_gradient_multiplier', 'min_scale_factor', 'max_scale_factor',
                 'scale_factor_step_size', 'save_interval_secs'):
      value = getattr(self, flag)
      if not math.isfinite(value):
        raise ValueError(f'--{flag} must be a finite number, got {value}')
    if self.base_learning_rate <= 0:
      raise ValueError(f'--base_learning_rate must be positive, got {self.base_learning_rate}')
    self._check_label_weights()
    if fileio.exists(self.train_logdir) and not fileio.isdir(self.train_logdir):
      raise ValueError(f'--train_logdir={self.train_logdir} is a file, not a folder')

  def _check_label_weights(self) -> None:
    weights = self.label_weights
    if isinstance(weights, (int, float)):
      weights = [weights]
    else:
      weights = list(weights)
      num_classes = self.model_options.num_classes
      if len(weights) != num_classes:
        raise ValueError(f'--label_weights has {len(weights)} values but --dataset='
                         f'{self.dataset} has {num_classes} classes: give one weight per class '
                         'or a single weight')
    bad = [w for w in weights if not (math.isfinite(w) and w >= 0)]
    if bad:
      raise ValueError(f'--label_weights must be finite and >= 0, got {bad[0]}')


def gradient_multipliers(variable_names, last_layers, last_layer_gradient_multiplier):
  """The original `get_model_gradient_multipliers`: {name: multiplier}.

  Biases learn twice as fast; variables of the last layers learn
  `last_layer_gradient_multiplier` times as fast (twice that for their biases).
  """
  multipliers = {}
  for name in variable_names:
    if 'biases' in name:
      multipliers[name] = 2.0
    for layer in last_layers:
      if layer in name:
        multipliers[name] = last_layer_gradient_multiplier * (2.0 if 'biases' in name else 1.0)
        break
  return {name: m for name, m in multipliers.items() if m != 1.0}


def _initial_checkpoint_mode(path: str, initialize_last_layer: bool) -> str:
  """Backbone-only checkpoints (ImageNet) have no `logits/`; full ones do."""
  full = any(n.startswith('logits/') for n in checkpoints.variable_names(path))
  if not full:
    return checkpoints.BACKBONE
  return checkpoints.STRICT if initialize_last_layer else checkpoints.EXCLUDE_LOGITS


class _Stop:
  """Turns SIGTERM / SIGINT into a request to save and stop after the current step."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def __enter__(self):
    try:
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    except ValueError:  # Not the main thread: signals stay as they were.
      pass
    return self

  def _handle(self, signum, frame):
    del frame
    logging.warning('Signal %d: saving a checkpoint and stopping.', signum)
    self.requested = True

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def train(config: TrainConfig) -> dict:
  """Runs (or resumes) a training run.

  Returns:
    {'global_step', 'checkpoint', 'loss' (last), 'losses' ([(step, total loss)] of
    this run), 'images_per_second', 'model' (the trained `DeepLabModel`)}.

  Raises:
    ValueError / FileNotFoundError: bad flags, data or checkpoints, naming them.
    TrainingDivergedError: the loss became NaN or infinite.
  """
  previous_policy = keras.mixed_precision.global_policy()
  try:
    return _train(config)
  finally:
    # --mixed_precision sets Keras' global policy; the caller's comes back (the
    # returned model keeps the policy it was built with).
    keras.mixed_precision.set_global_policy(previous_policy)


def _train(config: TrainConfig) -> dict:
  # First: MultiWorkerMirroredStrategy must configure collectives before any op runs.
  strategy = strategies.make_strategy(config.distribution, config.tpu)
  if config.seed is not None:
    keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  if config.mixed_precision:
    keras.mixed_precision.set_global_policy(f'mixed_{config.mixed_precision}')
  num_replicas = strategy.num_replicas_in_sync
  config.validate(num_replicas)
  descriptor = descriptors.get_dataset_descriptor(config.dataset, config.dataset_dir)
  options = config.model_options
  if options.num_classes != descriptor.num_classes:
    raise ValueError(f'{descriptor.flag} has {descriptor.num_classes} classes but '
                     f'the model options say {options.num_classes}')
  # Batch statistics are shared across replicas whenever they are trained.
  options = options.replace(sync_batch_norm=options.fine_tune_batch_norm and num_replicas > 1)
  if not tfds_source.is_tfds_source(config.dataset_dir):
    pipeline.list_files(config.dataset_dir, config.train_split, config.dataset)  # Fail early.
  check_resume_options(config, options)
  check_initial_checkpoint_classes(config, descriptor)
  chief = strategies.is_chief(strategy)

  with strategy.scope():
    model = model_lib.build_model(options)
    optimizer = make_optimizer(config)
    if config.mixed_precision == 'float16':
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)

  def input_fn(context):
    return pipeline.build_dataset(
        config.dataset, config.dataset_dir, config.train_split,
        crop_size=options.crop_size, batch_size=config.train_batch_size, is_training=True,
        min_resize_value=config.min_resize_value, max_resize_value=config.max_resize_value,
        resize_factor=config.resize_factor, min_scale_factor=config.min_scale_factor,
        max_scale_factor=config.max_scale_factor,
        scale_factor_step_size=config.scale_factor_step_size, seed=config.seed,
        input_context=context)

  inputs = _ReplicaInputs(strategy, input_fn)
  global_step = optimizer.iterations
  checkpoint = tf.train.Checkpoint(
      model=checkpoints.checkpointable(model),
      optimizer=tf.train.Checkpoint(**optimizer_state(model, optimizer)),
      random_state=tf.train.Checkpoint(**random_state(model)),
      global_step=global_step)
  # Every worker must take part in a save; only the chief's copy is kept.
  worker = strategies.worker_id(strategy)
  directory = (config.train_logdir if chief else
               os.path.join(config.train_logdir, '.workers', worker))
  manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=config.max_to_keep,
                                       checkpoint_name='ckpt')
  # The input position is each worker's own: saved beside, by the same step.
  input_manager = tf.train.CheckpointManager(
      inputs.checkpoint, os.path.join(config.train_logdir, 'input_state', worker),
      max_to_keep=config.max_to_keep, checkpoint_name='ckpt')
  remove_interrupted_saves(directory)
  remove_interrupted_saves(input_manager.directory)
  manager = _initialise(model, checkpoint, manager, config)
  inputs.restore(input_manager, int(global_step.numpy()))
  if chief:
    fileio.atomic_write(os.path.join(config.train_logdir, OPTIONS_FILE), options.to_json())

  step_fn = make_step_fn(model, optimizer, config, options.num_classes,
                         descriptor.ignore_label, num_replicas)

  # XLA compiles each replica's step on the numeric inputs only (a batch also
  # carries image names, strings XLA cannot take).
  replica_step = tf.function(step_fn, jit_compile=True) if config.jit_compile else step_fn

  @tf.function
  def train_step(batch):
    batch = {'image': batch['image'], 'label': batch['label']}
    per_replica = strategy.run(replica_step, args=(batch,))
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items() if k != 'logits'}

  writer = tf.summary.create_file_writer(config.train_logdir) if chief else \
      tf.summary.create_noop_writer()
  start_step = int(global_step.numpy())
  if start_step >= config.training_number_of_steps:
    logging.info('Already at step %d of %d: nothing to train.', start_step,
                 config.training_number_of_steps)
    return {'global_step': start_step, 'checkpoint': manager.latest_checkpoint,
            'loss': None, 'losses': [], 'images_per_second': None, 'model': model}
  last_save_time, last_log = time.time(), (time.time(), start_step)
  result = {'loss': None, 'losses': [], 'images_per_second': None, 'model': model}
  step = start_step
  with _Stop() as stop, writer.as_default():
    while step < config.training_number_of_steps and not stop.requested:
      try:
        batch = inputs.next()
      except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
        # A bad record (label values, image bytes) or a corrupt shard: the
        # user's data, named, not a crash.
        raise pipeline.read_error(e, lambda: pipeline.split_files(
            config.dataset_dir, config.train_split, config.dataset)) from None
      metrics = {k: float(v) for k, v in train_step(batch).items()}
      step = int(global_step.numpy())
      if not np.isfinite(metrics['total_loss']):
        raise TrainingDivergedError(
            f'the loss became {metrics["total_loss"]} at step {step}; training stopped and '
            f'the last good checkpoint is kept: {manager.latest_checkpoint or "none"} '
            '(try a lower --base_learning_rate)')
      result['loss'] = metrics['total_loss']
      result['losses'].append((step, metrics['total_loss']))
      if step % config.log_steps == 0 or step == config.training_number_of_steps:
        now = time.time()
        rate = (step - last_log[1]) * config.train_batch_size / max(now - last_log[0], 1e-9)
        seconds_per_step = (now - last_log[0]) / max(step - last_log[1], 1)
        eta = seconds_per_step * (config.training_number_of_steps - step)
        logging.info('step %d/%d  loss %.4f  lr %.3g  %.1f images/s  ETA %s', step,
                     config.training_number_of_steps, metrics['total_loss'],
                     float(optimizer.learning_rate), rate, _format_seconds(eta))
        result['images_per_second'] = rate
        last_log = (now, step)
        tf.summary.scalar('throughput/images_per_second', rate, step=step)
      if config.save_summaries_steps and step % config.save_summaries_steps == 0:
        _write_scalars(metrics, float(optimizer.learning_rate), step)
        if config.save_summaries_images:
          _write_images(model, strategy.experimental_local_results(batch)[0],
                        descriptor.colormap(), step)
      due = ((config.save_interval_steps and step % config.save_interval_steps == 0) or
             (config.save_interval_secs and time.time() - last_save_time >=
              config.save_interval_secs))
      if due:
        _save(manager, input_manager, step)
        last_save_time = time.time()
    # At the end, or when asked to stop.
    if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(f'-{step}'):
      _save(manager, input_manager, step)
  writer.flush()
  if not chief:
    fileio.rmtree(directory, ignore_errors=True)
  result.update(global_step=step, checkpoint=manager.latest_checkpoint)
  return result


def learning_rate_schedule(config: TrainConfig) -> schedules.DeepLabLearningRate:
  """The original's learning-rate policy (`--learning_policy` and its flags)."""
  return schedules.DeepLabLearningRate(
      config.learning_policy, config.base_learning_rate, config.training_number_of_steps,
      config.learning_power, config.learning_rate_decay_step,
      config.learning_rate_decay_factor, config.slow_start_step,
      config.slow_start_learning_rate, config.decay_steps, config.end_learning_rate)


def make_optimizer(config: TrainConfig) -> momentum_lib.MomentumOptimizer:
  """The original's `MomentumOptimizer` on its learning-rate policy, as train.py builds it."""
  return momentum_lib.MomentumOptimizer(learning_rate=learning_rate_schedule(config),
                                        momentum=config.momentum)


def make_step_fn(model, optimizer, config: TrainConfig, num_classes: int, ignore_label: int,
                 num_replicas: int = 1, return_gradients: bool = False):
  """train.py's training step on one replica, with the original's gradient multipliers.

  `step.make_train_step` with the multipliers of `gradient_multipliers` (biases
  x2, last layers), plus the step's pixel counts for the logged accuracy.

  The one step every training runs (train.py, re-ranking, the golden step tool).

  Args:
    model: A built `DeepLabModel`.
    optimizer: Its Keras optimizer, built on `model.trainable_variables`.
    config: The loss and multiplier settings (`label_weights`, `upsample_logits`,
      `top_k_percent_pixels`, `hard_example_mining_step`, `last_layers_contain_logits_only`,
      `last_layer_gradient_multiplier`).
    num_classes, ignore_label: The dataset's.
    num_replicas: Replicas in sync (see `step.make_train_step`).
    return_gradients: Also return `gradients` (see `step.make_train_step`).

  Returns:
    `step_fn(batch) -> dict` of `total_loss`, `segmentation_loss`,
    `regularization_loss`, `correct`, `valid` (pixel counts) and `logits`.
  """
  names = [checkpoints.original_name(v.path) for v in model.trainable_variables]
  last_layers = ('logits',) if config.last_layers_contain_logits_only else _EXTRA_LAYER_SCOPES
  loss = step_lib.LossSettings(
      num_classes, ignore_label, config.label_weights, config.upsample_logits,
      config.top_k_percent_pixels, config.hard_example_mining_step)
  train_step = step_lib.make_train_step(
      model, optimizer, loss,
      gradient_multipliers(names, last_layers, config.last_layer_gradient_multiplier),
      num_replicas, return_gradients)

  def step_fn(batch):
    labels = batch['label']
    out = train_step(batch['image'], labels)
    upsampled = layers.resize_bilinear(tf.cast(out['logits'], tf.float32), labels.shape[1:3])
    predictions = tf.argmax(upsampled, axis=-1, output_type=tf.int32)[..., None]
    valid = tf.not_equal(labels, ignore_label)
    out['correct'] = tf.reduce_sum(tf.cast(
        tf.logical_and(valid, tf.equal(predictions, labels)), tf.float32))
    out['valid'] = tf.reduce_sum(tf.cast(valid, tf.float32))
    return out

  return step_fn


def optimizer_state(model, optimizer) -> dict:
  """The optimizer's variables under stable names, for checkpoints.

  Keras names slots after the optimizer instance (`sgd_2/...`), which changes
  from process to process; here a momentum slot is `<original name>/Momentum`,
  as in the original's checkpoints, and the rest keep their own names.
  """
  inner = getattr(optimizer, 'inner_optimizer', optimizer)
  state = {f'{checkpoints.original_name(v.path)}/Momentum': slot
           for v, slot in zip(model.trainable_variables, getattr(inner, 'momentums', []))}
  named = {id(v) for v in state.values()} | {id(optimizer.iterations)}
  for variable in optimizer.variables:
    if id(variable) not in named:
      state[variable.name] = variable
  return state


def random_state(model) -> dict:
  """The model's random-generator states (dropout), so a resumed run draws as if never stopped."""
  weights = {id(v) for v in model.weights}
  extra = [v for v in model.variables if id(v) not in weights]
  # Keras numbers generators per process (seed_generator_2...): key them by position.
  return {f'seed_generator_{i}': v for i, v in enumerate(extra)}


class _ReplicaInputs:
  """One tf.data iterator per local replica, fed to the strategy batch by batch.

  Distributed iterators cannot be checkpointed, plain tf.data iterators can: so
  each replica reads its own pipeline (its own file shard and per-replica batch,
  as `distribute_datasets_from_function` would give it) and the iterators' state
  is saved with the run.
  """

  def __init__(self, strategy, input_fn):
    self._strategy = strategy
    num_local = len(strategy.extended.worker_devices)
    resolver = getattr(strategy, 'cluster_resolver', None)
    num_workers, worker_index = 1, 0
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver:
      cluster = resolver.cluster_spec().as_dict()
      tasks = [(t, i) for t in ('chief', 'worker') for i in range(len(cluster.get(t, [])))]
      num_workers = len(tasks)
      worker_index = tasks.index((resolver.task_type, resolver.task_id))
    self._first_replica = worker_index * num_local
    self._iterators = [
        iter(input_fn(tf.distribute.InputContext(
            num_input_pipelines=num_workers * num_local,
            input_pipeline_id=self._first_replica + i,
            num_replicas_in_sync=strategy.num_replicas_in_sync)))
        for i in range(num_local)]
    self.checkpoint = tf.train.Checkpoint(
        **{f'replica_{self._first_replica + i}': it for i, it in enumerate(self._iterators)})

  def next(self):
    values = [next(it) for it in self._iterators]
    return self._strategy.experimental_distribute_values_from_function(
        lambda context: values[context.replica_id_in_sync_group - self._first_replica])

  def restore(self, manager, step: int) -> None:
    """Restores the position saved with the model checkpoint of `step`, if any."""
    if step == 0:
      return
    path = os.path.join(manager.directory, f'ckpt-{step}')
    if fileio.exists(path + '.index'):
      self.checkpoint.restore(path).assert_consumed()
      logging.info('Input position restored from %s', path)
    else:
      logging.warning('No input position saved for step %d: the input pipeline starts '
                      'its stream again.', step)


def _save(manager, input_manager, step: int) -> None:
  """Saves the input position, then the model; a full disk is one line naming the file.

  TensorFlow writes a checkpoint under a temporary name and renames it, so a
  failed save keeps the previous checkpoint.
  """
  try:
    # Input state first: a model checkpoint is only ever newer than its input state.
    input_manager.save(checkpoint_number=step)
    manager.save(checkpoint_number=step)
  except (OSError, tf.errors.OpError) as e:
    disk_full = fileio.as_disk_full(e, manager.directory)
    if disk_full is None:
      raise
    raise disk_full from None


def _initialise(model, checkpoint, manager, config: TrainConfig):
  """Resumes from the run's own checkpoint, else starts from `tf_initial_checkpoint`.

  An unreadable checkpoint (flipped bytes, a missing shard) is moved to
  `unreadable/` with a warning naming it, and the next newest is tried.

  Returns:
    The checkpoint manager to save with (a new one when checkpoints moved).
  """
  if manager.latest_checkpoint:
    restored, unreadable = None, []
    for path in reversed(manager.checkpoints):
      try:
        checkpoint.restore(path).assert_existing_objects_matched()
      except (tf.errors.DataLossError, tf.errors.NotFoundError,
              tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as e:
        reason = tfrecord.error_message(e)
        logging.warning('Checkpoint %s is unreadable (%s); trying the one before it.',
                        path, reason)
        unreadable.append((path, reason))
        continue
      restored = path
      break
    if unreadable:
      manager = _set_aside(manager, checkpoint, [p for p, _ in unreadable], restored,
                           config.max_to_keep)
    if restored is None:
      names = '; '.join(f'{os.path.basename(p)} ({r})' for p, r in unreadable)
      raise ValueError(f'--train_logdir={config.train_logdir}: no readable checkpoint '
                       f'({names}); they were moved to '
                       f'{os.path.join(manager.directory, UNREADABLE_DIR)}: start afresh or '
                       'restore them from a backup')
    logging.info('Resuming from %s', restored)
    return manager
  if not config.tf_initial_checkpoint:
    logging.warning('No --tf_initial_checkpoint: the model starts from random weights.')
    return manager
  path = config.tf_initial_checkpoint
  if fileio.isdir(path):
    path = tf.train.latest_checkpoint(path) or path
  if not fileio.exists(path + '.index'):
    checkpoints.load_checkpoint(model, path)  # Raises the clear missing-file error.
  mode = _initial_checkpoint_mode(path, config.initialize_last_layer)
  result = checkpoints.load_checkpoint(model, path, mode=mode)
  logging.info('Initialised %d variables from %s (mode %s)', result['loaded'], path, mode)
  return manager


UNREADABLE_DIR = 'unreadable'


def _set_aside(manager, checkpoint, bad_paths, restored, max_to_keep):
  """Moves unreadable checkpoints' files to `unreadable/`; a manager without them.

  Kept, not deleted: they may be repairable, and they are the user's data.
  """
  aside = os.path.join(manager.directory, UNREADABLE_DIR)
  fileio.makedirs(aside)
  for path in bad_paths:
    for name in fileio.listdir(manager.directory):
      if name == os.path.basename(path) + '.index' or name.startswith(
          os.path.basename(path) + '.data-'):
        fileio.replace(os.path.join(manager.directory, name), os.path.join(aside, name))
  remaining = [p for p in manager.checkpoints if p not in bad_paths]
  if restored is not None:
    tf.compat.v1.train.update_checkpoint_state(manager.directory, restored,
                                               all_model_checkpoint_paths=remaining)
  else:
    fileio.remove(os.path.join(manager.directory, 'checkpoint'))
  return tf.train.CheckpointManager(checkpoint, manager.directory, max_to_keep=max_to_keep,
                                    checkpoint_name='ckpt')


# A save killed midway leaves `ckpt-<N>_temp/` (TensorFlow's sharded save).
_INTERRUPTED_SAVE = re.compile(r'^ckpt-\d+_temp(_[0-9a-f]+)?$')


def remove_interrupted_saves(directory: str) -> list[str]:
  """Removes the `ckpt-<N>_temp/` folders of saves a kill interrupted.

  Called at start, before this run saves anything, so no live save is touched.

  Returns:
    The folders removed.
  """
  if not fileio.isdir(directory):
    return []
  removed = []
  for name in fileio.listdir(directory):
    path = os.path.join(directory, name)
    if _INTERRUPTED_SAVE.match(name) and fileio.isdir(path):
      fileio.rmtree(path)
      removed.append(path)
      logging.warning('Removed %s, left by a save that was interrupted.', path)
  return removed


# Model options that shape the variables, what they were trained to compute, or
# the restored input position (its buffers hold crops of the recorded size): a
# resumed run must keep them. The others (batch-norm training and decay, weight
# decay) may change between runs of a logdir.
_RESUME_FLAGS = {
    'num_classes': '--dataset (its number of classes)',
    'crop_size': '--train_crop_size',
    'model_variant': '--model_variant',
    'depth_multiplier': '--depth_multiplier',
    'divisible_by': '--divisible_by',
    'output_stride': '--output_stride',
    'atrous_rates': '--atrous_rates',
    'multi_grid': '--multi_grid',
    'decoder_output_stride': '--decoder_output_stride',
    'decoder_use_separable_conv': '--decoder_use_separable_conv',
    'dense_prediction_cell_config': '--dense_prediction_cell_json (the cell)',
    'add_image_level_feature': '--add_image_level_feature',
    'aspp_with_batch_norm': '--aspp_with_batch_norm',
    'aspp_with_separable_conv': '--aspp_with_separable_conv',
    'logits_kernel_size': '--logits_kernel_size',
}


def check_resume_options(config: TrainConfig, options: ModelOptions) -> None:
  """Refuses to resume a logdir's checkpoints with other model flags.

  `model_options.json` is written at the first start; when the logdir holds a
  checkpoint, the flags that shape the model must match it.

  Raises:
    ValueError: Naming each differing flag (recorded and given) and the logdir.
  """
  path = os.path.join(config.train_logdir, OPTIONS_FILE)
  if not (fileio.isfile(path) and tf.train.latest_checkpoint(config.train_logdir)):
    return
  try:
    with fileio.open_file(path, encoding='utf-8') as f:
      recorded = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'--train_logdir: {path} is not readable JSON ({e}); restore it or '
                     'remove it to resume with the current flags') from None
  current = options.to_dict()
  differing = [f'{flag}: {recorded.get(field)!r} in the logdir, {current[field]!r} now'
               for field, flag in _RESUME_FLAGS.items()
               if field in recorded and recorded[field] != current[field]]
  for index, line in enumerate(differing):
    if line.startswith('--dense_prediction_cell_json'):
      differing[index] = '--dense_prediction_cell_json: another cell than the logdir\'s'
  if differing:
    raise ValueError(f'--train_logdir={config.train_logdir} holds checkpoints of another '
                     f'model: {"; ".join(differing)}. Resume with the logdir\'s flags or '
                     'train in a new --train_logdir')


def check_initial_checkpoint_classes(config: TrainConfig, descriptor) -> None:
  """Refuses, before any training, an initial checkpoint of another class count.

  Only when its logits would be loaded (`--initialize_last_layer`, a new logdir):
  fine-tuning to a new class count with `--initialize_last_layer=false` is the
  original's way and stays allowed; a missing checkpoint is `_initialise`'s error.

  Raises:
    ValueError: Naming both class counts, `--tf_initial_checkpoint` and the dataset.
  """
  if (not config.tf_initial_checkpoint or not config.initialize_last_layer or
      tf.train.latest_checkpoint(config.train_logdir)):
    return
  try:
    checkpoints.check_num_classes(
        config.tf_initial_checkpoint, descriptor.num_classes, 'tf_initial_checkpoint',
        descriptor.flag, hint='pass --initialize_last_layer=false to train new logits '
        'for this dataset')
  except FileNotFoundError:
    return


def _write_scalars(metrics: dict, learning_rate: float, step: int) -> None:
  for name in ('total_loss', 'segmentation_loss', 'regularization_loss'):
    tf.summary.scalar(f'losses/{name}', metrics[name], step=step)
  tf.summary.scalar('learning_rate', learning_rate, step=step)
  if metrics['valid']:
    tf.summary.scalar('pixel_accuracy', metrics['correct'] / metrics['valid'], step=step)


def _write_images(model, batch, colormap_name, step: int) -> None:
  """Image, coloured label and coloured prediction of the first replica's batch.

  `colormap_name` is a colormap name or a [N, 3] colour table (`colorize`).
  """
  images = batch['image'][:3]
  predictions = model_lib.predict(model, images)['semantic_predictions'].numpy()
  labels = batch['label'][:3, ..., 0].numpy()
  tf.summary.image('samples/image', tf.cast(images, tf.uint8), step=step, max_outputs=3)
  tf.summary.image('samples/label', np.stack([colormaps.colorize(
      l.astype(np.uint8), colormap_name) for l in labels]), step=step, max_outputs=3)
  tf.summary.image('samples/prediction', np.stack([colormaps.colorize(
      p.astype(np.uint8), colormap_name) for p in predictions]), step=step, max_outputs=3)


def _format_seconds(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def read_options(train_logdir: str) -> ModelOptions:
  """The model options a run in `train_logdir` was trained with."""
  path = os.path.join(train_logdir, OPTIONS_FILE)
  if not fileio.isfile(path):
    raise FileNotFoundError(f'no {OPTIONS_FILE} in {train_logdir} (not a train.py logdir?)')
  with fileio.open_file(path, encoding='utf-8') as f:
    return ModelOptions.from_dict(json.load(f))


