"""Training step time of xception_65 + the released DPC on this CPU: 1 vs 2 logical devices.

Each configuration runs `train.py`'s library loop in a process of its own (logical
devices must be configured before TensorFlow starts) on the demo set, and reports the
images/s of its last logging window (tracing excluded) and its peak memory.

  python benchmarks/training_step.py [--crop_size=129] [--batch_size=2] [--steps=6]
"""

import json
import os
import resource
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_integer('crop_size', 129, 'Square training crop (k * 16 + 1).')
flags.DEFINE_integer('batch_size', 2, 'Global batch size.')
flags.DEFINE_integer('steps', 6, 'Training steps; the last half is timed.')
flags.DEFINE_integer('devices', 0, 'Internal: run one configuration on N logical CPUs.')
flags.DEFINE_string('data_dir', '', 'Internal: demo TFRecords.')


def _run_configuration():
  """One configuration, in this process; prints a JSON line."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.devices)
  from deeplab_dpc import cell  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.options import ModelOptions  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.training import trainer  # pylint: disable=g-import-not-at-top
  options = ModelOptions.create(
      num_classes=6, model_variant='xception_65', crop_size=(FLAGS.crop_size,) * 2,
      output_stride=16, dense_prediction_cell_json=cell.RELEASED_CELL_PATH)
  with tempfile.TemporaryDirectory() as logdir:
    result = trainer.train(trainer.TrainConfig(
        dataset='demo', dataset_dir=FLAGS.data_dir, train_logdir=logdir,
        model_options=options, train_batch_size=FLAGS.batch_size,
        training_number_of_steps=FLAGS.steps, log_steps=FLAGS.steps // 2,
        base_learning_rate=1e-3, distribution='mirrored', save_summaries_steps=0, seed=0))
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(json.dumps({'devices': FLAGS.devices, 'images_per_second': result['images_per_second'],
                    'peak_mb': peak_mb}))


def main(argv):
  del argv
  if FLAGS.devices:
    _run_configuration()
    return
  from deeplab_dpc.data import demo  # pylint: disable=g-import-not-at-top
  rows = []
  with tempfile.TemporaryDirectory() as data_dir:
    demo.build(data_dir, splits=('train',))
    for devices in (1, 2):
      output = subprocess.run(
          [sys.executable, os.path.abspath(__file__), f'--devices={devices}',
           f'--data_dir={data_dir}', f'--crop_size={FLAGS.crop_size}',
           f'--batch_size={FLAGS.batch_size}', f'--steps={FLAGS.steps}'],
          capture_output=True, text=True, check=True,
          env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}).stdout
      rows.append(json.loads(output.strip().splitlines()[-1]))
  print(f'xception_65 + DPC, OS16, {FLAGS.crop_size}x{FLAGS.crop_size}, global batch '
        f'{FLAGS.batch_size}, {os.cpu_count()} cores')
  print(f'{"logical devices":<16} {"step (s)":>9} {"images/s":>9} {"peak MB":>8}')
  for row in rows:
    rate = row['images_per_second']
    print(f'{row["devices"]:<16} {FLAGS.batch_size / rate:>9.2f} {rate:>9.2f} '
          f'{row["peak_mb"]:>8.0f}')


if __name__ == '__main__':
  app.run(main)
