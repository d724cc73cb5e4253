"""The training loop: recipe details, resuming, initialisation, summaries and faults."""

import errno
import glob

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import constants
from deeplab_dpc import fileio
from deeplab_dpc import model as model_lib
from deeplab_dpc.data import demo
from deeplab_dpc.options import ModelOptions
from deeplab_dpc.testing import recipe_checkpoint
from deeplab_dpc.training import trainer


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('demo'))
  demo.build(directory, splits=('train',))
  return directory


def _options(**changes):
  fields = dict(num_classes=6, model_variant='mobilenet_v2', crop_size=(33, 33),
                output_stride=16, depth_multiplier=0.5)
  fields.update(changes)
  return ModelOptions.create(**fields)


def _config(demo_dir, logdir, **changes):
  fields = dict(dataset='demo', dataset_dir=demo_dir, train_logdir=str(logdir),
                model_options=_options(), train_batch_size=2, training_number_of_steps=3,
                base_learning_rate=0.01, seed=7, deterministic=True, log_steps=1,
                save_summaries_steps=1)
  fields.update(changes)
  return trainer.TrainConfig(**fields)


def _variables(path):
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name.startswith(('model/', 'optimizer/', 'global_step'))}


def test_gradient_multipliers_as_the_original():
  names = ['xception_65/entry_flow/conv1_1/weights', 'aspp0/weights', 'logits/semantic/weights',
           'logits/semantic/biases', 'decoder/feature_projection0/weights']
  assert trainer.gradient_multipliers(names, ('logits',), 1.0) == {'logits/semantic/biases': 2.0}
  assert trainer.gradient_multipliers(names, trainer._EXTRA_LAYER_SCOPES, 10.0) == {  # pylint: disable=protected-access
      'aspp0/weights': 10.0, 'logits/semantic/weights': 10.0,
      'logits/semantic/biases': 20.0, 'decoder/feature_projection0/weights': 10.0}


@pytest.mark.parametrize('changes, message', [
    (dict(model_options=_options(crop_size=(32, 33))),
     r'--train_crop_size=32,33 does not suit --output_stride=16'),
    (dict(train_batch_size=3), r'--train_batch_size=3 is not divisible by the 2 replicas'),
    (dict(top_k_percent_pixels=0.0), '--top_k_percent_pixels'),
    (dict(mixed_precision='float8'), '--mixed_precision'),
    (dict(base_learning_rate=float('nan')), '--base_learning_rate must be a finite number'),
    (dict(base_learning_rate=-0.1), '--base_learning_rate must be positive'),
    (dict(momentum=float('inf')), '--momentum must be a finite number'),
    (dict(label_weights=[1.0, 2.0]),
     '--label_weights has 2 values but --dataset=demo has 6 classes'),
    (dict(label_weights=[1.0] * 5 + [float('nan')]), '--label_weights must be finite and >= 0'),
])
def test_bad_flags(changes, message, tmp_path):
  config = _config('unused', tmp_path, **changes)
  with pytest.raises(ValueError, match=message):
    config.validate(num_replicas=2)


def test_missing_split_and_dataset_mismatch(demo_dir, tmp_path):
  with pytest.raises(ValueError, match="Unknown split 'nope'"):
    trainer.train(_config(demo_dir, tmp_path / 'a', train_split='nope'))
  with pytest.raises(ValueError, match='--dataset=demo has 6 classes'):
    trainer.train(_config(demo_dir, tmp_path / 'b', model_options=_options(num_classes=4)))


def test_trains_saves_summarises_and_resumes_exactly(demo_dir, tmp_path):
  straight = trainer.train(_config(demo_dir, tmp_path / 'straight', learning_policy='step',
                                   learning_rate_decay_step=100, training_number_of_steps=4,
                                   save_summaries_images=True))
  assert straight['checkpoint'].endswith('ckpt-4')
  assert [s for s, _ in straight['losses']] == [1, 2, 3, 4]
  assert tf.train.latest_checkpoint(str(tmp_path / 'straight')).endswith('ckpt-4')
  assert trainer.read_options(str(tmp_path / 'straight')).model_variant == 'mobilenet_v2'

  tags = set()
  for path in glob.glob(str(tmp_path / 'straight' / 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(v.tag for v in event.summary.value)
  assert {'losses/total_loss', 'losses/segmentation_loss', 'losses/regularization_loss',
          'learning_rate', 'pixel_accuracy', 'throughput/images_per_second',
          'samples/image', 'samples/label', 'samples/prediction'} <= tags

  # Two steps, then two more in a new run: the same as four in one go. (The step
  # policy keeps the rate independent of training_number_of_steps, unlike poly.)
  constant = dict(learning_policy='step', learning_rate_decay_step=100)
  trainer.train(_config(demo_dir, tmp_path / 'resumed', training_number_of_steps=2, **constant))
  resumed = trainer.train(_config(demo_dir, tmp_path / 'resumed', training_number_of_steps=4,
                                  **constant))
  assert [s for s, _ in resumed['losses']] == [3, 4]
  expected, actual = _variables(straight['checkpoint']), _variables(resumed['checkpoint'])
  assert expected.keys() == actual.keys() and len(expected) > 100
  for name, value in expected.items():
    np.testing.assert_array_equal(actual[name], value, err_msg=name)

  # Nothing left to do.
  again = trainer.train(_config(demo_dir, tmp_path / 'resumed', training_number_of_steps=4))
  assert again['global_step'] == 4 and again['losses'] == []


@pytest.mark.parametrize('precision', ['bfloat16', 'float16'])
def test_mixed_precision_trains_in_16_bits_and_keeps_float32_weights(precision, demo_dir,
                                                                     tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  result = trainer.train(_config(
      demo_dir, tmp_path, mixed_precision=precision, training_number_of_steps=2,
      model_options=_options(dense_prediction_cell_config=[
          {'op': 'conv', 'kernel': 3, 'rate': [1, 3], 'input': -1},
          {'op': 'pyramid_pooling', 'kernel': 1, 'grid_size': [2, 2], 'input': 0}],
          decoder_output_stride=(4,))))
  assert keras.mixed_precision.global_policy().name == 'float32'  # Restored.
  assert all(np.isfinite(loss) for _, loss in result['losses'])
  model = result['model']
  assert model.dtype_policy.compute_dtype == precision
  assert model(tf.zeros([1, 33, 33, 3]), training=False).dtype == precision
  weights = _variables(result['checkpoint'])
  assert weights and all(v.dtype == np.float32 for n, v in weights.items()
                         if n.startswith('model/'))
  # The 16-bit gradients reached the float32 weights: momentum slots are nonzero.
  slots = [v for n, v in weights.items() if n.startswith('optimizer/') and np.ndim(v)]
  assert slots and all(v.dtype == np.float32 for v in slots)
  assert all(np.isfinite(v).all() for v in slots)
  assert sum(float(np.abs(v).sum()) > 0 for v in slots) > len(slots) // 2


def test_jit_compile_trains_like_the_plain_step(demo_dir, tmp_path, monkeypatch):
  # XLA draws other dropout masks than the plain step; without dropout the two
  # steps compute the same function, up to the order of float sums.
  monkeypatch.setattr(constants, 'DROPOUT_KEEP_PROB', 1.0)
  plain = trainer.train(_config(demo_dir, tmp_path / 'plain', training_number_of_steps=2))
  xla = trainer.train(_config(demo_dir, tmp_path / 'xla', training_number_of_steps=2,
                              jit_compile=True))
  assert [s for s, _ in xla['losses']] == [1, 2]
  (_, plain_first), (_, plain_second) = plain['losses']
  (_, xla_first), (_, xla_second) = xla['losses']
  np.testing.assert_allclose(xla_first, plain_first, rtol=1e-4)
  # The first update moves the loss alike (the sums' order parts them slightly).
  np.testing.assert_allclose(xla_second - xla_first, plain_second - plain_first, rtol=0.05)
  assert plain_second != plain_first


def test_divergence_stops_and_keeps_the_last_good_checkpoint(demo_dir, tmp_path):
  trainer.train(_config(demo_dir, tmp_path, training_number_of_steps=2))
  with pytest.raises(trainer.TrainingDivergedError, match=r'ckpt-2 .*--base_learning_rate'):
    trainer.train(_config(demo_dir, tmp_path, training_number_of_steps=6,
                          base_learning_rate=1e30))
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith('ckpt-2')


def test_initial_checkpoint_modes(demo_dir, tmp_path):
  other = model_lib.build_model(_options(num_classes=19))
  prefix = checkpoints.save_checkpoint(other, str(tmp_path / 'other' / 'ckpt'))
  with pytest.raises(ValueError, match=r'19 classes .* has 6: pass --initialize_last_layer=false'):
    trainer.train(_config(demo_dir, tmp_path / 'a', tf_initial_checkpoint=prefix,
                          training_number_of_steps=1))
  # A tiny learning rate and frozen statistics: the loaded values stay put.
  frozen = _options(fine_tune_batch_norm=False)
  result = trainer.train(_config(demo_dir, tmp_path / 'b', tf_initial_checkpoint=prefix,
                                 initialize_last_layer=False, training_number_of_steps=1,
                                 base_learning_rate=1e-12, model_options=frozen))
  ours = checkpoints.original_names(result['model'])
  source = checkpoints.original_names(other)
  name = 'MobilenetV2/Conv/BatchNorm/moving_mean'
  np.testing.assert_allclose(np.asarray(ours[name]), np.asarray(source[name]))

  # An ImageNet-style checkpoint (backbone only, original names) loads the backbone.
  backbone = {n: recipe_checkpoint.recipe_value(n, v.shape) for n, v in source.items()
              if n.startswith('MobilenetV2/')}
  imagenet = recipe_checkpoint.write_tf1_checkpoint(backbone, str(tmp_path / 'imagenet.ckpt'))
  result = trainer.train(_config(demo_dir, tmp_path / 'c', tf_initial_checkpoint=imagenet,
                                 training_number_of_steps=1, base_learning_rate=1e-12,
                                 model_options=frozen))
  ours = checkpoints.original_names(result['model'])
  np.testing.assert_allclose(np.asarray(ours[name]), backbone[name])


def test_train_logdir_that_is_a_file_is_refused(tmp_path):
  path = tmp_path / 'log'
  path.write_text('precious')
  with pytest.raises(ValueError, match=f'--train_logdir={path} is a file, not a folder'):
    _config('unused', path).validate()
  assert path.read_text() == 'precious'


def _flip_a_byte(prefix):
  data_file = glob.glob(prefix + '.data-*')[0]
  with open(data_file, 'rb') as f:
    data = bytearray(f.read())
  data[len(data) // 2] ^= 0xFF
  with open(data_file, 'wb') as f:
    f.write(bytes(data))


def test_unreadable_latest_checkpoint_falls_back_to_the_one_before(demo_dir, tmp_path, caplog):
  recipe = dict(learning_policy='step', learning_rate_decay_step=100, save_interval_steps=2,
                save_summaries_steps=0)
  straight = trainer.train(_config(demo_dir, tmp_path / 'straight', training_number_of_steps=6,
                                   **recipe))
  logdir = tmp_path / 'faulty'
  first = trainer.train(_config(demo_dir, logdir, training_number_of_steps=4, **recipe))
  _flip_a_byte(first['checkpoint'])
  # A save killed midway leaves its temporary folder behind.
  (logdir / 'ckpt-5_temp').mkdir()
  (logdir / 'ckpt-5_temp' / 'part-00000-of-00001.data-00000-of-00001').write_bytes(b'half')
  with caplog.at_level('WARNING'):
    resumed = trainer.train(_config(demo_dir, logdir, training_number_of_steps=6, **recipe))
  assert any(f'{first["checkpoint"]} is unreadable' in r.getMessage() for r in caplog.records)
  assert [s for s, _ in resumed['losses']] == [3, 4, 5, 6]  # From ckpt-2.
  expected, actual = _variables(straight['checkpoint']), _variables(resumed['checkpoint'])
  for name, value in expected.items():
    np.testing.assert_array_equal(actual[name], value, err_msg=name)
  # The unreadable checkpoint is kept aside, not deleted; the interrupted save is gone.
  assert sorted(p.name for p in (logdir / 'unreadable').iterdir()) == [
      'ckpt-4.data-00000-of-00001', 'ckpt-4.index']
  assert not (logdir / 'ckpt-5_temp').exists()
  assert tf.train.latest_checkpoint(str(logdir)).endswith('ckpt-6')


def test_no_readable_checkpoint_is_an_error_naming_them(demo_dir, tmp_path):
  logdir = tmp_path / 'log'
  result = trainer.train(_config(demo_dir, logdir, training_number_of_steps=1,
                                 save_summaries_steps=0))
  _flip_a_byte(result['checkpoint'])
  with pytest.raises(ValueError, match=f'--train_logdir={logdir}: no readable checkpoint '
                     r'\(ckpt-1 \(.*Checksum does not match'):
    trainer.train(_config(demo_dir, logdir, training_number_of_steps=2))
  assert (logdir / 'unreadable' / 'ckpt-1.index').exists()


def test_resuming_with_other_model_flags_names_each_one(demo_dir, tmp_path):
  logdir = tmp_path / 'log'
  trainer.train(_config(demo_dir, logdir, training_number_of_steps=1, save_summaries_steps=0))
  other = _options(depth_multiplier=0.25, atrous_rates=(6,), crop_size=(49, 49))
  with pytest.raises(ValueError, match=(
      f'--train_logdir={logdir} holds checkpoints of another model: --train_crop_size: '
      r'\[33, 33\] in the logdir, \[49, 49\] now; --depth_multiplier: 0.5 in the logdir, 0.25 '
      r'now; --atrous_rates: None in the logdir, \[6\] now\. Resume with')):
    trainer.train(_config(demo_dir, logdir, training_number_of_steps=2, model_options=other))
  # Flags that do not shape the model may change.
  resumed = trainer.train(_config(demo_dir, logdir, training_number_of_steps=2,
                                  model_options=_options(weight_decay=1e-3)))
  assert resumed['global_step'] == 2


class _FullDisk:
  directory = '/runs/log'

  def save(self, checkpoint_number):
    raise tf.errors.ResourceExhaustedError(
        None, None, f'/runs/log/ckpt-{checkpoint_number}_temp/part-00000-of-00001.data-00000-'
        'of-00001; No space left on device')


class _Saved:
  def __init__(self):
    self.steps = []

  def save(self, checkpoint_number):
    self.steps.append(checkpoint_number)


def test_disk_full_during_a_save_is_one_line_naming_the_file():
  inputs = _Saved()
  with pytest.raises(fileio.DiskFullError) as raised:
    trainer._save(_FullDisk(), inputs, 7)  # pylint: disable=protected-access
  assert str(raised.value) == ('no space left on /runs/log/ckpt-7_temp/part-00000-of-00001.'
                               'data-00000-of-00001')
  assert raised.value.errno == errno.ENOSPC and inputs.steps == [7]
