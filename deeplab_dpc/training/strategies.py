"""Which tf.distribute strategy a run uses; the training code is the same for all."""

import json
import os

from absl import logging
import tensorflow as tf

DISTRIBUTIONS = ('auto', 'mirrored', 'multi_worker', 'tpu', 'one_device')


def make_strategy(distribution: str = 'auto', tpu: str = '') -> tf.distribute.Strategy:
  """Builds the strategy for `--distribution`.

  * auto: MirroredStrategy over the visible GPUs, or over the visible CPU
    devices (one, unless logical CPUs were configured) when there is none;
  * mirrored: MirroredStrategy over every visible GPU or, without GPUs, every
    logical CPU device;
  * multi_worker: MultiWorkerMirroredStrategy from TF_CONFIG;
  * tpu: TPUStrategy on `--tpu` (a name or address);
  * one_device: OneDeviceStrategy on the first GPU, else the CPU.

  Raises:
    ValueError: unknown distribution, or multi_worker without TF_CONFIG.
  """
  if distribution not in DISTRIBUTIONS:
    raise ValueError(f'--distribution must be one of {", ".join(DISTRIBUTIONS)}, '
                     f'got {distribution!r}')
  if distribution == 'multi_worker':
    if not os.environ.get('TF_CONFIG'):
      raise ValueError('--distribution=multi_worker needs the TF_CONFIG environment '
                       'variable (cluster and task of this worker)')
    try:
      json.loads(os.environ['TF_CONFIG'])
    except json.JSONDecodeError as e:
      raise ValueError(f'TF_CONFIG is not valid JSON ({e})') from None
    return tf.distribute.MultiWorkerMirroredStrategy()
  if distribution == 'tpu':
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  # Listing devices starts the runtime, which MultiWorkerMirroredStrategy must precede.
  gpus = tf.config.list_logical_devices('GPU')
  if distribution == 'one_device':
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else '/cpu:0')
  devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices('CPU')]
  logging.info('MirroredStrategy over %s', ', '.join(devices))
  return tf.distribute.MirroredStrategy(devices)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the checkpoints and summaries."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type is None or task_type == 'chief' or (
      task_type == 'worker' and task_id == 0 and
      'chief' not in resolver.cluster_spec().as_dict())


def worker_id(strategy: tf.distribute.Strategy) -> str:
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or resolver.task_type is None:
    return 'chief'
  return f'{resolver.task_type}_{resolver.task_id}'
