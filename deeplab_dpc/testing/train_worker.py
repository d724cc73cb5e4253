"""Runs one training process for the distribution tests and dumps its variables.

`python -m deeplab_dpc.testing.train_worker CONFIG_JSON OUTPUT_NPZ [LOGICAL_CPUS]`

CONFIG_JSON holds `TrainConfig` fields with `model_options` as a dict. The npz
gets every model variable's value on every local replica (`<name>@<replica>`),
and `losses` (step, loss) of the run. Logical CPU devices must be configured
before TensorFlow starts, hence a process of its own.
"""

import json
import sys

import numpy as np


def main(argv):
  config_path, output_path = argv[1], argv[2]
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if len(argv) > 3:
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * int(argv[3]))
  from deeplab_dpc import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.options import ModelOptions  # pylint: disable=g-import-not-at-top
  from deeplab_dpc.training import trainer  # pylint: disable=g-import-not-at-top
  with open(config_path, encoding='utf-8') as f:
    fields = json.load(f)
  fields['model_options'] = ModelOptions.from_dict(fields['model_options'])
  result = trainer.train(trainer.TrainConfig(**fields))
  arrays = {'losses': np.asarray(result['losses'], np.float64)}
  for name, variable in checkpoints.original_names(result['model']).items():
    # A mirrored variable holds one component per local replica.
    inner = variable.value
    replicas = getattr(inner, 'values', None) or (inner,)
    for i, value in enumerate(replicas):
      arrays[f'{name}@{i}'] = np.asarray(value)
  np.savez(output_path, **arrays)


if __name__ == '__main__':
  main(sys.argv)
