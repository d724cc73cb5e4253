"""export.py: the SavedModel contract, golden parity through it, and user mistakes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import cell
from deeplab_dpc import checkpoints
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc.testing import golden

ROOT = os.path.dirname(os.path.abspath(__file__))
CASE = 'xception65_dpc_os16'
GOLDEN_FLAGS = ['--model_variant=xception_65', '--output_stride=16', '--crop_size=129,161',
                '--num_classes=19', '--decoder_output_stride=4',
                f'--dense_prediction_cell_json={cell.RELEASED_CELL_PATH}']


def _export(*flags):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'export.py'), *flags],
                        capture_output=True, text=True, cwd=ROOT, check=False,
                        env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})


@pytest.fixture(scope='module')
def golden_checkpoint(tmp_path_factory):
  return golden.write_checkpoint(CASE, str(tmp_path_factory.mktemp('ckpt')))


@pytest.fixture(scope='module')
def golden_export(golden_checkpoint, tmp_path_factory):
  path = str(tmp_path_factory.mktemp('export') / 'saved_model')
  result = _export(f'--checkpoint_path={golden_checkpoint}', f'--export_path={path}',
                   *GOLDEN_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  return tf.saved_model.load(path).signatures['serving_default'], path


def test_signature_and_golden_parity(golden_export):
  serve, path = golden_export
  ref = golden.outputs(CASE)
  out = serve(image=tf.constant(ref['input_images']))
  assert out['semantic_predictions'].dtype == tf.int32
  assert out['semantic_predictions'].shape == (1, 129, 161)
  assert out['logits'].dtype == tf.float32 and out['logits'].shape == (1, 129, 161, 19)
  assert out['semantic_probabilities'].shape == (1, 129, 161, 19)
  golden.check_logits('logits_upsampled', out['logits'].numpy(), ref['logits_upsampled'])
  golden.check_predictions(out['semantic_predictions'].numpy(), ref['predictions'],
                           ref['logits_upsampled'])
  assert os.path.isfile(os.path.join(path, 'assets', 'deeplab_options.json'))


def test_smaller_images_are_padded_with_the_mean_and_cropped_back(golden_export,
                                                                  golden_checkpoint):
  serve, _ = golden_export
  image = golden.outputs(CASE)['input_images'][:, :100, :120]
  out = serve(image=tf.constant(image))
  assert out['semantic_predictions'].shape == (1, 100, 120)
  # The original pads bottom/right with the mean pixel 127.5 (not a uint8 value).
  padded = np.full((1, 129, 161, 3), 127.5, np.float32)
  padded[:, :100, :120] = image
  model = model_lib.build_model(golden.model_options(CASE))
  checkpoints.load_tf1_checkpoint(model, golden_checkpoint)
  expected = model_lib.predict(model, padded)
  np.testing.assert_allclose(out['logits'].numpy(),
                             np.asarray(expected['logits'])[:, :100, :120], atol=1e-4)


def test_image_larger_than_crop_is_an_error(golden_export):
  serve, _ = golden_export
  with pytest.raises(tf.errors.InvalidArgumentError, match='exceeds the crop height 129'):
    serve(image=tf.zeros([1, 130, 161, 3], tf.uint8))
  with pytest.raises(tf.errors.InvalidArgumentError, match='exceeds the crop width 161'):
    serve(image=tf.zeros([1, 129, 170, 3], tf.uint8))


def test_wrong_dtype_or_rank_is_an_error(golden_export):
  serve, _ = golden_export
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError), match='uint8'):
    serve(image=tf.zeros([1, 129, 161, 3], tf.float32))
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                     match=r'tensor image \[129,161,3\] is not compatible with '
                     r'expected shape \[\?,\?,\?,3\]'):
    serve(image=tf.zeros([129, 161, 3], tf.uint8))


def test_multi_scale_export_equals_in_process_prediction(tmp_path):
  options = options_lib.ModelOptions.create(
      num_classes=3, model_variant='xception_41', crop_size=(33, 49), output_stride=16,
      atrous_rates=(6,))
  model = model_lib.build_model(options)
  prefix = checkpoints.save_checkpoint(model, str(tmp_path / 'ckpt' / 'ours'))
  path = str(tmp_path / 'saved_model')
  result = _export(f'--checkpoint_path={prefix}', f'--export_path={path}',
                   '--model_variant=xception_41', '--output_stride=16', '--crop_size=33',
                   '--crop_size=49', '--num_classes=3', '--atrous_rates=6',
                   '--inference_scales=0.75,1.0,1.25', '--add_flipped_images')
  assert result.returncode == 0, result.stderr[-3000:]
  images = np.random.default_rng(1).integers(0, 256, (2, 33, 49, 3)).astype(np.uint8)
  out = tf.saved_model.load(path).signatures['serving_default'](image=tf.constant(images))
  expected = model_lib.predict(model, images.astype(np.float32), (0.75, 1.0, 1.25), True)
  np.testing.assert_allclose(out['semantic_probabilities'].numpy(),
                             np.asarray(expected['semantic_probabilities']), atol=1e-5)
  np.testing.assert_array_equal(out['semantic_predictions'].numpy(),
                                np.asarray(expected['semantic_predictions']))


@pytest.mark.parametrize('flags, message', [
    ([], '--checkpoint_path is required'),
    (['--checkpoint_path=/nonexistent/model.ckpt'], '--checkpoint_path: no checkpoint at'),
    (['--output_stride=12'], '--output_stride must be 8, 16 or 32'),
    (['--crop_size=129,x'], '--crop_size must be integers'),
    (['--num_classes=0'], '--num_classes must be an integer >= 1'),
    (['--dense_prediction_cell_json=/nonexistent.json'], 'dense_prediction_cell_json: no such'),
])
def test_user_mistakes_exit_2_with_one_line(flags, message, golden_checkpoint, tmp_path):
  base = {f.split('=')[0]: f for f in [f'--checkpoint_path={golden_checkpoint}',
                                        f'--export_path={tmp_path}/out', *GOLDEN_FLAGS]}
  if not flags:
    base.pop('--checkpoint_path')
  for flag in flags:
    base[flag.split('=')[0]] = flag
  result = _export(*base.values())
  assert result.returncode == 2, result.stderr[-2000:]
  assert message in result.stderr
  assert 'Traceback' not in result.stderr


def test_checkpoint_of_another_variant(golden_checkpoint, tmp_path):
  flags = [f for f in GOLDEN_FLAGS if not f.startswith('--model_variant')]
  result = _export(f'--checkpoint_path={golden_checkpoint}', f'--export_path={tmp_path}/o',
                   '--model_variant=xception_71', *flags)
  assert result.returncode == 2
  assert 'holds backbone xception_65: check --model_variant' in result.stderr
  assert not os.path.exists(tmp_path / 'o')
