"""Model assembly and prediction: single scale, image pyramid, flipping, config."""

import keras
import numpy as np
import pytest

from deeplab_dpc import cell
from deeplab_dpc import layers
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib

CROP = (33, 49)


@pytest.fixture(scope='module')
def model():
  keras.utils.set_random_seed(0)
  options = options_lib.ModelOptions.create(
      num_classes=4, model_variant='xception_41', crop_size=CROP, output_stride=16,
      decoder_output_stride=(4,), dense_prediction_cell_json=cell.RELEASED_CELL_PATH)
  return model_lib.build_model(options)


@pytest.fixture(scope='module')
def images():
  return np.random.default_rng(0).uniform(0, 255, (2,) + CROP + (3,)).astype(np.float32)


def test_logits_at_decoder_stride(model, images):
  logits = np.asarray(model(images))
  assert logits.shape == (2, layers.scale_dimension(CROP[0], 1 / 4),
                          layers.scale_dimension(CROP[1], 1 / 4), 4)


def test_single_scale_upsamples_then_argmax(model, images):
  out = model_lib.predict(model, images)
  expected = np.asarray(layers.resize_bilinear(model(images), CROP))
  np.testing.assert_allclose(np.asarray(out['logits']), expected, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(out['semantic_predictions']),
                                expected.argmax(-1))
  assert out['semantic_predictions'].dtype == 'int32'


def test_pass_logits_follow_the_original_sizes(model, images):
  # scale_dimension(crop, max(1, s) / 4): 0.75 and 1.0 -> 9x13, 1.25 -> 11x16.
  for scale, size in ((0.75, (9, 13)), (1.0, (9, 13)), (1.25, (11, 16))):
    logits = model_lib._logits_for_scale(model, images, scale, scale, False)  # pylint: disable=protected-access
    assert tuple(logits.shape[1:3]) == size


def test_multi_scale_averages_probabilities(model, images):
  scales = (0.75, 1.0, 1.25)
  out = model_lib.predict(model, images, scales, add_flipped_images=True)
  probabilities = np.asarray(out['semantic_probabilities'])
  np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(out['semantic_predictions']),
                                probabilities.argmax(-1))
  single = [np.asarray(model_lib.predict(model, images, (s,))['semantic_probabilities'])
            for s in scales]
  unflipped = np.asarray(model_lib.predict(model, images, scales)['semantic_probabilities'])
  np.testing.assert_allclose(unflipped, np.mean(single, axis=0), atol=1e-6)
  # Averaging over the image and its mirror is mirror-symmetric.
  mirrored = model_lib.predict(model, images[:, :, ::-1], scales, add_flipped_images=True)
  np.testing.assert_allclose(np.asarray(mirrored['semantic_probabilities'])[:, :, ::-1],
                             probabilities, atol=1e-5)


def test_flip_alone_is_honoured(model, images):
  plain = np.asarray(model_lib.predict(model, images)['semantic_probabilities'])
  flipped = np.asarray(model_lib.predict(model, images, add_flipped_images=True)
                       ['semantic_probabilities'])
  mirror = np.asarray(model_lib.predict(model, images[:, :, ::-1])['semantic_probabilities'])
  np.testing.assert_allclose(flipped, (plain + mirror[:, :, ::-1]) / 2, atol=1e-6)


def test_prediction_without_upsampled_logits(images):
  options = options_lib.ModelOptions.create(
      num_classes=3, model_variant='xception_41', crop_size=CROP,
      prediction_with_upsampled_logits=False)
  model = model_lib.build_model(options)
  out = model_lib.predict(model, images)
  low = np.asarray(model(images)).argmax(-1)  # 3x4 at output stride 16.
  predictions = np.asarray(out['semantic_predictions'])
  assert predictions.shape == (2,) + CROP
  # Nearest neighbour with align_corners keeps the corners' labels.
  np.testing.assert_array_equal(predictions[:, 0, 0], low[:, 0, 0])
  np.testing.assert_array_equal(predictions[:, -1, -1], low[:, -1, -1])
  assert set(np.unique(predictions)) <= set(np.unique(low))


def test_bad_scales(model, images):
  with pytest.raises(ValueError, match='eval_scales'):
    model_lib.predict(model, images, ())


def test_dynamic_spatial_size_is_refused(model):
  with pytest.raises(ValueError, match='static'):
    model(keras.KerasTensor((1, None, None, 3)))


def test_config_round_trip_and_keras_saving(model, images, tmp_path):
  clone = model_lib.DeepLabModel.from_config(model.get_config())
  assert clone.options == model.options
  path = str(tmp_path / 'model.keras')
  model.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)),
                             rtol=1e-5, atol=1e-5)
