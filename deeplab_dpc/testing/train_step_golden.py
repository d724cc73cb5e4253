"""Runs our training step on a golden training-step case; writes what the original recorded.

`python -m deeplab_dpc.testing.train_step_golden CASE_DIR --output_npz=OUT`

A case folder (`testdata/golden/train_step_*`, README there) holds one training
step of the original train.py: `config.json` (the original's flags), `manifest.json`
(its variables; their values follow `recipe_checkpoint`'s weight recipe) and
`outputs.npz` (inputs, dropout keep masks, losses, gradients, updated variables).
This tool builds our model from the flags, writes the recipe weights as a TF1
checkpoint and loads it through our checkpoint import, then runs
`trainer.make_step_fn` with the original's optimizer (the step and optimizer
train.py runs) twice on the case's inputs with the
recorded dropout masks injected, and writes to OUT under the case's names: every
`grad__*` (d total loss / d variable before the gradient multipliers),
`updated__*` (after step 1, batch-norm moving statistics included),
`updated_step2__*`, `momentum__*` / `momentum_step2__*` of the variables the case
records, `logits`, and the losses of both steps (`total_loss`, `cross_entropy_loss`,
`regularization_loss` and their `_step2`).
"""

import json
import os
import sys
import tempfile

from absl import flags
import keras
import numpy as np
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc.testing import recipe_checkpoint
from deeplab_dpc.training import momentum as momentum_lib
from deeplab_dpc.training import trainer

CELLS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'cells')
LOSS_NAMES = ('total_loss', 'cross_entropy_loss', 'regularization_loss')
# The original's flag names that are not `ModelOptions` fields under the same name.
_RENAMED_FLAGS = {'train_crop_size': 'crop_size'}
_STEP_FLAGS = ('upsample_logits', 'top_k_percent_pixels', 'hard_example_mining_step',
               'last_layer_gradient_multiplier', 'last_layers_contain_logits_only')

FLAGS = flags.FLAGS


def _read_json(path: str):
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} is missing: a golden case folder holds config.json, '
                            'manifest.json and outputs.npz')
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _cell_file(value: str, case_dir: str) -> str:
  """The original's `--dense_prediction_cell_json` path, found in the case or our cells."""
  for candidate in (os.path.join(case_dir, os.path.basename(value)),
                    os.path.join(CELLS_DIR, os.path.basename(value)), value):
    if os.path.isfile(candidate):
      return candidate
  raise FileNotFoundError(f'{case_dir}/config.json: dense_prediction_cell_json {value!r} is '
                          f'neither in the case folder nor in {CELLS_DIR}')


def model_options(case_flags: dict, case_dir: str) -> options_lib.ModelOptions:
  """Our `ModelOptions` for the original's flags of a case."""
  fields = {f for f in options_lib.ModelOptions.__dataclass_fields__}
  kwargs = {}
  for name, value in case_flags.items():
    name = _RENAMED_FLAGS.get(name, name)
    if name in fields and value is not None:
      kwargs[name] = list(value) if isinstance(value, (list, tuple)) else value
  if case_flags.get('dense_prediction_cell_json'):
    kwargs['dense_prediction_cell_json'] = _cell_file(case_flags['dense_prediction_cell_json'],
                                                      case_dir)
  if 'num_classes' not in kwargs:
    raise ValueError(f'{case_dir}/config.json: flags.num_classes is missing')
  return options_lib.ModelOptions.create(**kwargs)


def train_config(case_flags: dict, options: options_lib.ModelOptions) -> trainer.TrainConfig:
  """The loss and multiplier settings of the case as train.py's `TrainConfig`."""
  step = {k: case_flags[k] for k in _STEP_FLAGS if case_flags.get(k) is not None}
  weights = case_flags.get('label_weights')
  return trainer.TrainConfig(
      dataset='', dataset_dir='', train_logdir='', model_options=options,
      train_batch_size=int(case_flags.get('train_batch_size', 1)),
      base_learning_rate=float(case_flags['learning_rate']),
      momentum=float(case_flags.get('momentum', 0.9)),
      label_weights=1.0 if weights is None else weights, **step)


def inject_keep_masks(dropout, mask_shape) -> tf.Variable:
  """Makes a built Keras `Dropout` drop as a recorded keep mask says.

  The original drops as `where(mask, x / keep_prob, 0)` with a random mask; the
  case records each step's mask. Returns the mask variable to assign before each
  step. The layer is built (Keras refuses new sublayers then), so its `call` is
  replaced on the instance, bypassing Keras' attribute tracking.
  """
  keep_prob = 1.0 - float(dropout.rate)
  mask = tf.Variable(tf.ones(mask_shape, tf.bool), trainable=False)

  def call(x, training=False):
    if not training:
      return x
    return tf.where(mask, x / keep_prob, tf.zeros_like(x))

  object.__setattr__(dropout, 'call', call)
  return mask


def _keep_masks(outputs: dict) -> dict[int, np.ndarray]:
  """{step: keep mask} of the case's head dropout (`*dropout_keep_mask_step<k>`)."""
  masks = {}
  for name, value in outputs.items():
    if 'dropout_keep_mask_step' in name:
      masks[int(name.rsplit('step', 1)[1])] = value.astype(bool)
  return masks


def _recorded_names(outputs: dict, prefix: str) -> list[str]:
  """Original variable names recorded under `prefix` (`/` written `__`)."""
  return [k[len(prefix):].replace('__', '/') for k in outputs if k.startswith(prefix)]


def run_case(case_dir: str) -> dict[str, np.ndarray]:
  """Our two training steps on a golden case; the arrays under the case's names.

  Raises:
    FileNotFoundError / ValueError: a missing file or field, named.
  """
  config = _read_json(os.path.join(case_dir, 'config.json'))
  case_flags = config.get('flags')
  if not isinstance(case_flags, dict):
    raise ValueError(f'{case_dir}/config.json has no "flags" object')
  npz = os.path.join(case_dir, 'outputs.npz')
  if not os.path.isfile(npz):
    raise FileNotFoundError(f'{npz} is missing')
  with np.load(npz) as data:
    outputs = {k: data[k] for k in data.files}
  manifest = recipe_checkpoint.load_manifest(os.path.join(case_dir, 'manifest.json'))
  batch = int(config.get('batch', case_flags.get('train_batch_size', 1)))
  images = tf.constant(outputs['input_images'][:batch].astype(np.float32))
  labels = tf.constant(outputs['input_labels'][:batch].astype(np.int32))

  keras.backend.clear_session()
  options = model_options(case_flags, case_dir)
  model = model_lib.build_model(options).build_for_crop()
  with tempfile.TemporaryDirectory() as tmp:
    prefix = recipe_checkpoint.write_tf1_checkpoint(
        recipe_checkpoint.recipe_weights(manifest), os.path.join(tmp, 'model.ckpt'))
    checkpoints.load_checkpoint(model, prefix, mode=checkpoints.STRICT, flag='CASE_DIR')
  masks = _keep_masks(outputs)
  if masks:
    if model.head is None or not hasattr(model.head, 'dropout'):
      raise ValueError(f'{npz} records dropout keep masks but the model has no head dropout')
    mask = inject_keep_masks(model.head.dropout, masks[1].shape)
  config_ = train_config(case_flags, options)
  # The original's rate is constant over the two recorded steps.
  optimizer = momentum_lib.MomentumOptimizer(learning_rate=config_.base_learning_rate,
                                             momentum=config_.momentum)
  optimizer.build(model.trainable_variables)
  step_fn = tf.function(trainer.make_step_fn(
      model, optimizer, config_, options.num_classes, int(case_flags.get('ignore_label', 255)),
      return_gradients=True))

  by_name = checkpoints.original_names(model)
  momentum_slots = {checkpoints.original_name(v.path): slot
                    for v, slot in zip(model.trainable_variables, optimizer.momentums)}
  result = {}
  for step in (1, 2):
    if masks:
      mask.assign(masks[step])
    out = step_fn({'image': images, 'label': labels})
    suffix = '' if step == 1 else '_step2'
    result[f'total_loss{suffix}'] = out['total_loss'].numpy()
    result[f'cross_entropy_loss{suffix}'] = out['segmentation_loss'].numpy()
    result[f'regularization_loss{suffix}'] = out['regularization_loss'].numpy()
    if step == 1:
      result['logits'] = out['logits'].numpy()
      for name in _recorded_names(outputs, 'grad__'):
        if name not in out['gradients']:
          raise ValueError(f'{npz}: grad__{name} names no trainable variable of our model')
        result['grad__' + name.replace('/', '__')] = out['gradients'][name].numpy()
    updated = 'updated__' if step == 1 else 'updated_step2__'
    for name in _recorded_names(outputs, updated):
      if name not in by_name:
        raise ValueError(f'{npz}: {updated}{name} names no variable of our model')
      result[updated + name.replace('/', '__')] = by_name[name].numpy()
    momentum = 'momentum__' if step == 1 else 'momentum_step2__'
    for name in _recorded_names(outputs, momentum):
      if name in momentum_slots:
        result[momentum + name.replace('/', '__')] = momentum_slots[name].numpy()
  return result


def main(argv):
  if len(argv) != 2:
    raise ValueError('usage: python -m deeplab_dpc.testing.train_step_golden CASE_DIR '
                     '--output_npz=OUT')
  if not FLAGS.output_npz:
    raise ValueError('--output_npz is required')
  result = run_case(argv[1])
  # A killed run leaves no half-written OUT.
  with fileio.atomic_output(FLAGS.output_npz) as tmp:
    with open(tmp, 'wb') as f:
      np.savez(f, **result)
  print(f'wrote {len(result)} arrays to {FLAGS.output_npz}', file=sys.stderr)


if __name__ == '__main__':
  flags.DEFINE_string('output_npz', None, 'Where to write our arrays (npz).')
  from deeplab_dpc import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)
