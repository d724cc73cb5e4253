"""TFLite export: the interface, parity with the SavedModel, quantization, the client."""

import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import model as model_lib
from deeplab_dpc import serving
from deeplab_dpc import tflite
from deeplab_dpc.testing import golden

# MobileNet-v2 + DPC with the golden recipe weights: real-scale logits (random
# initial weights give logits near 1e-10, useless for judging quantization) and
# a conversion of a few seconds.
CASE = 'mobilenetv2_dpc_os16'


def _calibration_images(image):
  """A few variants of the golden image (its flips, shifts and contrasts)."""
  image = image.astype(np.float32)
  variants = [image, image[:, ::-1], image[::-1], np.roll(image, 40, axis=1),
              np.clip(image * 1.3 - 30, 0, 255), np.clip(image * 0.7 + 40, 0, 255)]
  return [v[None] for v in variants]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp('tflite')
  model = model_lib.build_model(golden.model_options(CASE))
  checkpoints.load_tf1_checkpoint(model, golden.write_checkpoint(CASE, str(root)))
  image = golden.outputs(CASE)['input_images'][0]
  saved_model = serving.export_saved_model(model, str(root / 'saved_model'))
  serve = tf.saved_model.load(saved_model).signatures['serving_default']
  reference = serve(image=tf.constant(image[None]))
  paths = {}
  converted = tflite.convert_all(model, tflite.QUANTIZATIONS, _calibration_images(image),
                                 with_logits=True)
  for quantization, content in converted.items():
    paths[quantization] = str(root / f'{quantization or "float"}.tflite')
    with open(paths[quantization], 'wb') as f:
      f.write(content)
  return {'model': model, 'image': image, 'serve': serve, 'paths': paths,
          'reference': {k: v.numpy() for k, v in reference.items()}}


def _run(path, image):
  return tflite.interpreter(path).get_signature_runner('serving_default')(
      image=tflite.pad_image(image, (129, 161)))


def test_interface(setup):
  runner = tflite.interpreter(setup['paths'][None]).get_signature_runner('serving_default')
  inputs = runner.get_input_details()
  outputs = runner.get_output_details()
  assert list(inputs) == ['image']
  assert inputs['image']['dtype'] == np.float32
  assert list(inputs['image']['shape']) == [1, 129, 161, 3]
  assert outputs['semantic_predictions']['dtype'] == np.int32
  assert list(outputs['semantic_predictions']['shape']) == [1, 129, 161]
  assert list(outputs['logits']['shape']) == [1, 129, 161, 19]
  # (export_test.py checks a file without logits.)


def test_float_tflite_equals_the_saved_model(setup):
  out = _run(setup['paths'][None], setup['image'])
  ref = setup['reference']
  # The NaN trap (a module not tracking the Keras variables) would fail here.
  assert np.isfinite(out['logits']).all()
  golden.check_logits('tflite logits', out['logits'], ref['logits'])
  golden.check_predictions(out['semantic_predictions'], ref['semantic_predictions'],
                           ref['logits'])


@pytest.mark.parametrize('quantization, min_agreement', [('dynamic_range', 0.95),
                                                        ('full_integer', 0.9)])
def test_quantized_tflite_agrees_with_float(setup, quantization, min_agreement):
  path = setup['paths'][quantization]
  assert os.path.getsize(path) < 0.4 * os.path.getsize(setup['paths'][None])
  out = _run(path, setup['image'])
  agreement = np.mean(out['semantic_predictions'] == setup['reference']['semantic_predictions'])
  assert agreement >= min_agreement, agreement
  if quantization == 'full_integer':
    types = {d['dtype'] for d in tflite.interpreter(path).get_tensor_details()}
    assert np.int8 in types


def test_segmenter_pads_and_crops_back_like_the_saved_model(setup):
  image = setup['image'][:100, :120]
  labels = tflite.TFLiteSegmenter(setup['paths'][None])(image)
  expected = setup['serve'](image=tf.constant(image[None]))['semantic_predictions'][0]
  assert labels.shape == (100, 120) and labels.dtype == np.int32
  assert np.mean(labels == expected.numpy()) > 0.999


def test_segmenter_resizes_larger_images(setup):
  image = np.concatenate([setup['image']] * 2, axis=0)  # 258x161: larger than the crop.
  with pytest.raises(ValueError, match='larger than the model\'s input 129x161'):
    tflite.TFLiteSegmenter(setup['paths'][None])(image)
  segmenter = tflite.TFLiteSegmenter(setup['paths'][None], min_resize_value=129,
                                     max_resize_value=129)
  labels = segmenter(image)
  assert labels.shape == (258, 161)
  assert labels.min() >= 0 and labels.max() < 19


def test_user_mistakes(setup, tmp_path):
  model = setup['model']
  with pytest.raises(ValueError, match='--quantization must be one of'):
    tflite.convert(model, 'int4')
  with pytest.raises(ValueError, match='--quantization must be one of'):
    tflite.export_tflite(model, str(tmp_path / 'x.tflite'), 'float16')
  with pytest.raises(ValueError, match='full_integer needs representative images'):
    tflite.convert(model, 'full_integer')
  with pytest.raises(ValueError, match=r'expected images of shape \[129, 161, 3\]'):
    tflite.convert(model, 'full_integer', [np.zeros((65, 65, 3), np.float32)])
  with pytest.raises(FileNotFoundError, match='no such file'):
    tflite.interpreter(str(tmp_path / 'missing.tflite'))
  with pytest.raises(ValueError, match=r'must be \[height, width, 3\]'):
    tflite.pad_image(np.zeros((1, 10, 10, 3), np.uint8), (129, 161))
