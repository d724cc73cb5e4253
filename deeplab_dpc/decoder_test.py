"""Tests for the DeepLabv3+ decoder and the logits layer (`deeplab_dpc.decoder`).

Head features and end points are random stand-ins at the sizes a 33x49 crop
gives (head 3x4 at OS16, end points 5x7 at stride 8 and 9x13 at stride 4); one
small DeepLab model (Xception-41) checks the names as the model builds them.
"""

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from deeplab_dpc import checkpoints
from deeplab_dpc import decoder as decoder_lib
from deeplab_dpc import layers
from deeplab_dpc import model as model_lib
from deeplab_dpc.options import ModelOptions
from deeplab_dpc.testing import numpy_reference as reference

_BN = ('gamma', 'beta', 'moving_mean', 'moving_variance')


def _random(shape, seed):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.fixture(scope='module')
def one_stage():
  head = np.abs(_random((1, 3, 4, 256), 0))
  low_level = _random((1, 9, 13, 256), 1)
  dec = decoder_lib.Decoder(num_stages=1)
  out = np.asarray(dec(head, [low_level]))
  return dec, head, low_level, out


# --- one stage, separable -------------------------------------------------------------


def test_one_stage_variable_names(one_stage):
  dec, _, _, out = one_stage
  paths = [w.path for w in dec.weights]
  expected = []
  for scope, kernel in (('feature_projection0', 'weights'),
                        ('decoder_conv0_depthwise', 'depthwise_weights'),
                        ('decoder_conv0_pointwise', 'weights'),
                        ('decoder_conv1_depthwise', 'depthwise_weights'),
                        ('decoder_conv1_pointwise', 'weights')):
    expected += [f'decoder/{scope}/{kernel}'] + [f'decoder/{scope}/BatchNorm/{n}' for n in _BN]
  assert paths == expected
  shapes = {w.path: tuple(w.shape) for w in dec.weights}
  assert shapes['decoder/feature_projection0/weights'] == (1, 1, 256, 48)
  assert shapes['decoder/decoder_conv0_depthwise/depthwise_weights'] == (3, 3, 304, 1)
  assert shapes['decoder/decoder_conv0_pointwise/weights'] == (1, 1, 304, 256)
  assert shapes['decoder/decoder_conv1_depthwise/depthwise_weights'] == (3, 3, 256, 1)
  assert shapes['decoder/decoder_conv1_pointwise/weights'] == (1, 1, 256, 256)
  # stats.json trainable_params_by_part.decoder.
  assert sum(int(np.prod(w.shape)) for w in dec.trainable_weights) == 162_928
  assert out.shape == (1, 9, 13, 256)


def test_one_stage_output_is_at_the_end_point_size():
  dec = decoder_lib.Decoder(num_stages=1, conv_kwargs=dict(batch_norm_epsilon=1e-5))
  out = dec(np.ones((1, 3, 4, 8), np.float32), [np.ones((1, 9, 13, 5), np.float32)])
  assert out.shape == (1, 9, 13, 256)


def test_concat_order_head_first(one_stage):
  dec, head, low_level, out = one_stage
  size = (9, 13)
  projected = np.asarray(dec.projections[0](low_level))
  assert projected.shape == (1, 9, 13, 48)
  head_first = ops.concatenate([layers.resize_bilinear(head, size), projected], axis=-1)
  expected = np.asarray(layers.apply_sequence(dec.stage_convs[0], head_first))
  np.testing.assert_allclose(out, expected, atol=1e-4)
  projection_first = ops.concatenate([projected, layers.resize_bilinear(head, size)], axis=-1)
  swapped = np.asarray(layers.apply_sequence(dec.stage_convs[0], projection_first))
  assert np.abs(out - swapped).max() > 1e-2


def test_decoder_against_reference(one_stage):
  dec, head, low_level, out = one_stage
  eps = 1e-5  # Fresh BNs: gamma 1, beta 0, mean 0, variance 1.
  bn_relu = lambda v: np.maximum(v / np.sqrt(1 + eps), 0)
  projected = bn_relu(np.einsum('bhwc,cd->bhwd', low_level,
                                np.asarray(dec.projections[0].kernel)[0, 0]))
  x = np.concatenate([reference.resize_bilinear(head, 9, 13), projected], axis=-1).astype(np.float32)
  for depthwise, pointwise in zip(dec.stage_convs[0][::2], dec.stage_convs[0][1::2]):
    x = bn_relu(tf.nn.depthwise_conv2d(x, depthwise.kernel, [1, 1, 1, 1], 'SAME').numpy())
    x = bn_relu(np.einsum('bhwc,cd->bhwd', x, np.asarray(pointwise.kernel)[0, 0]))
    x = x.astype(np.float32)
  np.testing.assert_allclose(out, x, atol=1e-4)


def test_wrong_number_of_end_points_raises(one_stage):
  dec, head, low_level, _ = one_stage
  with pytest.raises(ValueError, match='expects 1 end points, got 2'):
    dec(head, [low_level, low_level])


# --- two stages -------------------------------------------------------------------------


@pytest.mark.parametrize('separable', [True, False])
def test_two_stages_suffix_second_stage(separable):
  dec = decoder_lib.Decoder(num_stages=2, decoder_use_separable_conv=separable)
  stride8 = _random((1, 5, 7, 728), 2)
  stride4 = _random((1, 9, 13, 256), 3)
  out = dec(np.abs(_random((1, 3, 4, 256), 4)), [stride8, stride4])
  assert out.shape == (1, 9, 13, 256)
  shapes = {w.path: tuple(w.shape) for w in dec.weights}
  assert shapes['decoder/feature_projection0/weights'] == (1, 1, 728, 48)
  assert shapes['decoder/feature_projection0_1/weights'] == (1, 1, 256, 48)
  if separable:
    for suffix in ('', '_1'):
      assert shapes[f'decoder/decoder_conv0{suffix}_depthwise/depthwise_weights'] == (
          3, 3, 304, 1)
      assert shapes[f'decoder/decoder_conv1{suffix}_pointwise/weights'] == (1, 1, 256, 256)
  else:
    assert shapes['decoder/decoder_conv0/decoder_conv0_1/weights'] == (3, 3, 304, 256)
    assert shapes['decoder/decoder_conv0/decoder_conv0_2/weights'] == (3, 3, 256, 256)
    assert shapes['decoder/decoder_conv0_1/decoder_conv0_1_1/weights'] == (3, 3, 304, 256)
    assert shapes['decoder/decoder_conv0_1/decoder_conv0_1_2/weights'] == (3, 3, 256, 256)
  assert len(shapes) == 2 * (5 if separable else 3) * 5


# --- through the model ------------------------------------------------------------------


@pytest.fixture(scope='module')
def non_separable_model():
  options = ModelOptions.create(num_classes=5, model_variant='xception_41', crop_size=(33, 49),
                                decoder_output_stride=(4,), decoder_use_separable_conv=False,
                                weight_decay=0.0)
  model = model_lib.DeepLabModel(options)
  outputs = model.extract(np.zeros((1, 33, 49, 3), np.float32))
  return model, {k: np.asarray(v) for k, v in outputs.items()}


def test_non_separable_decoder_names_in_the_model(non_separable_model):
  model, outputs = non_separable_model
  names = {name: tuple(v.shape) for name, v in checkpoints.original_names(model).items()}
  decoder_names = sorted(n for n in names if n.startswith('decoder/'))
  assert decoder_names == sorted(
      [f'decoder/{scope}/{v}' for scope in ('feature_projection0', 'decoder_conv0/decoder_conv0_1',
                                            'decoder_conv0/decoder_conv0_2')
       for v in ('weights',) + tuple(f'BatchNorm/{n}' for n in _BN)])
  assert names['decoder/feature_projection0/weights'] == (1, 1, 256, 48)
  assert names['decoder/decoder_conv0/decoder_conv0_1/weights'] == (3, 3, 304, 256)
  assert names['decoder/decoder_conv0/decoder_conv0_2/weights'] == (3, 3, 256, 256)
  assert names['logits/semantic/weights'] == (1, 1, 256, 5)
  assert names['logits/semantic/biases'] == (5,)
  assert 'aspp0/weights' in names and 'image_pooling/weights' in names
  # Decoder and logits at stride 4; the low-level features are the stride-4 end point.
  assert outputs['decoder_low_level_features'].shape == (1, 9, 13, 256)
  assert outputs['decoder_output'].shape == (1, 9, 13, 256)
  assert outputs['logits'].shape == (1, 9, 13, 5)
  assert outputs['head_output'].shape == (1, 3, 4, 256)


def test_model_reads_the_decoder_end_point(non_separable_model):
  model, _ = non_separable_model
  assert model.decoder_end_point_names == (
      'entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise',)
  assert model.decoder.decoder_use_separable_conv is False
  assert {c.batch_norm.epsilon for c in model.decoder.projections +
          model.decoder.stage_convs[0]} == {1e-5}


# --- logits -----------------------------------------------------------------------------


def test_logits_layer_names_and_computation():
  features = _random((1, 5, 7, 16), 5)
  logits = decoder_lib.Logits(num_classes=4)
  out = np.asarray(logits(features))
  assert [w.path for w in logits.weights] == ['logits/semantic/weights',
                                              'logits/semantic/biases']
  assert tuple(logits.weights[0].shape) == (1, 1, 16, 4)
  logits.convs[0].bias.assign(np.array([0.5, -1.0, 2.0, 0.0], np.float32))
  out = np.asarray(logits(features))
  # Conv plus bias; no batch norm, no activation (logits are signed).
  expected = np.einsum('bhwc,cd->bhwd', features, np.asarray(logits.convs[0].kernel)[0, 0]) + [
      0.5, -1.0, 2.0, 0.0]
  np.testing.assert_allclose(out, expected, atol=1e-5)
  assert out.min() < 0
  assert logits.convs[0].batch_norm is None


def test_logits_sum_one_conv_per_rate_without_aspp_batch_norm():
  options = ModelOptions.create(num_classes=3, model_variant='xception_41', crop_size=(65, 97),
                                atrous_rates=(6, 12), aspp_with_batch_norm=False)
  model = model_lib.DeepLabModel(options)
  assert model.head is None
  assert model.logits_layer.rates == (6, 12)
  features = _random((1, 5, 7, 8), 6)
  logits = decoder_lib.Logits(num_classes=3, rates=(6, 12), kernel_size=3)
  out = np.asarray(logits(features))
  assert [w.path for w in logits.weights] == [
      'logits/semantic/weights', 'logits/semantic/biases',
      'logits/semantic_1/weights', 'logits/semantic_1/biases']
  for conv in logits.convs:
    conv.bias.assign(np.random.default_rng(7).normal(size=3).astype(np.float32))
  out = np.asarray(logits(features))
  expected = sum(
      tf.nn.conv2d(features, conv.kernel, 1, 'SAME', dilations=[rate, rate]).numpy() +
      np.asarray(conv.bias) for conv, rate in zip(logits.convs, (6, 12)))
  np.testing.assert_allclose(out, expected, atol=1e-5)


def test_logits_with_aspp_batch_norm_use_one_conv():
  options = ModelOptions.create(num_classes=3, model_variant='xception_41', crop_size=(65, 97),
                                atrous_rates=(6, 12, 18))
  assert model_lib.DeepLabModel(options).logits_layer.rates == (1,)


def test_config_round_trips():
  dec = decoder_lib.Decoder(num_stages=2, decoder_use_separable_conv=False,
                            conv_kwargs=dict(batch_norm_epsilon=1e-5, weight_decay=4e-5))
  config = dec.get_config()
  clone = decoder_lib.Decoder.from_config(config)
  assert clone.get_config() == config
  assert clone.name == 'decoder'
  logits = decoder_lib.Logits(num_classes=7, rates=(6, 12), kernel_size=3, weight_decay=1e-4)
  config = logits.get_config()
  clone = decoder_lib.Logits.from_config(config)
  assert clone.get_config() == config
  assert [c.name for c in clone.convs] == ['semantic', 'semantic_1']
