"""Tests for the shared building blocks (`deeplab_dpc.layers`).

Every expected value is computed independently of the code under test: sizes
from the semantics doc, resizes from a per-pixel numpy loop, convolutions from
`tf.nn` with explicit padding, batch norm from its inference formula.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import constants
from deeplab_dpc import layers
from deeplab_dpc.testing import numpy_reference as reference

_BN_VARIABLES = ('gamma', 'beta', 'moving_mean', 'moving_variance')


def _rng(seed=0):
  return np.random.default_rng(seed)


def _randomize_batch_norm(bn, rng, variance_range=(0.5, 1.5)):
  """Moves BN away from identity so that a wrong formula or order shows."""
  channels = bn.gamma.shape[0]
  bn.gamma.assign(rng.uniform(0.5, 1.5, channels).astype(np.float32))
  bn.beta.assign(rng.normal(0, 0.5, channels).astype(np.float32))
  bn.moving_mean.assign(rng.normal(0, 0.5, channels).astype(np.float32))
  bn.moving_variance.assign(rng.uniform(*variance_range, channels).astype(np.float32))


def _np_batch_norm(x, bn, eps):
  """Inference batch norm, `gamma * (x - mean) / sqrt(var + eps) + beta`, in float64."""
  gamma, beta, mean, var = (np.asarray(getattr(bn, n), np.float64) for n in _BN_VARIABLES)
  return gamma * (np.asarray(x, np.float64) - mean) / np.sqrt(var + eps) + beta


def _paths(layer):
  return [w.path for w in layer.weights]


# --- scale_dimension ----------------------------------------------------------------


@pytest.mark.parametrize('dim, scale, expected', [
    (129, 1 / 16, 9), (161, 1 / 16, 11), (129, 1 / 4, 33), (97, 1 / 8, 13),
    (513, 1 / 16, 33), (513, 1 / 4, 129), (161, 1 / 4, 41), (129, 0.75, 97),
    (129, 1.25, 161), (33, 1 / 32, 2),
])
def test_scale_dimension_examples(dim, scale, expected):
  assert layers.scale_dimension(dim, scale) == expected
  assert isinstance(layers.scale_dimension(dim, scale), int)


def test_scale_dimension_truncates_rather_than_rounds():
  # int((130 - 1) / 16 + 1) = int(9.06) = 9; (136 - 1) / 16 + 1 = 9.44 -> 9.
  assert layers.scale_dimension(130, 1 / 16) == 9
  assert layers.scale_dimension(136, 1 / 16) == 9
  assert layers.scale_dimension(145, 1 / 16) == 10


def test_static_spatial_size_rejects_dynamic_shapes():
  assert layers.static_spatial_size(np.zeros((1, 3, 5, 2))) == (3, 5)
  with pytest.raises(ValueError, match='static'):
    layers.static_spatial_size(keras.KerasTensor((1, None, 5, 2)))


# --- resize_bilinear ----------------------------------------------------------------

_RESIZE_CASES = [((5, 7), (9, 13)), ((5, 7), (8, 11)), ((9, 11), (4, 6)),
                 ((3, 4), (33, 41)), ((6, 5), (6, 9))]


def _force_einsum_path(monkeypatch):
  """Forces the backend-neutral einsum path (taken on every non-TF backend).

  The TF kernel is made to fail so a test cannot pass through it by accident.
  """
  monkeypatch.setattr(layers.keras.backend, 'backend', lambda: 'jax')

  def _forbidden(**_):
    raise AssertionError('the TF resize kernel ran on the einsum path')

  monkeypatch.setattr(tf.raw_ops, 'ResizeBilinear', _forbidden)


@pytest.mark.parametrize('in_size, out_size', _RESIZE_CASES)
def test_resize_bilinear_matches_numpy_reference(in_size, out_size):
  x = _rng(1).normal(size=(2,) + in_size + (3,)).astype(np.float32)
  ours = np.asarray(layers.resize_bilinear(x, out_size))
  assert ours.shape == (2,) + out_size + (3,)
  np.testing.assert_allclose(ours, reference.resize_bilinear(x, *out_size), atol=2e-6)


@pytest.mark.parametrize('in_size, out_size', _RESIZE_CASES)
def test_resize_bilinear_einsum_path_matches_tf_path(in_size, out_size, monkeypatch):
  x = _rng(2).normal(size=(2,) + in_size + (3,)).astype(np.float32)
  tf_result = np.asarray(layers.resize_bilinear(x, out_size))
  _force_einsum_path(monkeypatch)
  einsum_result = np.asarray(layers.resize_bilinear(x, out_size))
  np.testing.assert_allclose(einsum_result, tf_result, atol=2e-6)
  np.testing.assert_allclose(einsum_result, reference.resize_bilinear(x, *out_size),
                             atol=2e-6)


def test_tf_path_is_legacy_align_corners_kernel():
  # The result must not be the TF2 half-pixel resize (which would shift content).
  x = _rng(3).normal(size=(1, 5, 7, 2)).astype(np.float32)
  ours = np.asarray(layers.resize_bilinear(x, (9, 13)))
  half_pixel = tf.image.resize(x, (9, 13), method='bilinear').numpy()
  assert np.abs(ours - half_pixel).max() > 1e-2


@pytest.mark.parametrize('use_einsum', [False, True])
def test_resize_bilinear_preserves_corners(use_einsum, monkeypatch):
  if use_einsum:
    _force_einsum_path(monkeypatch)
  x = _rng(4).normal(size=(1, 5, 7, 3)).astype(np.float32)
  for out_size in ((9, 13), (17, 4), (3, 3)):
    out = np.asarray(layers.resize_bilinear(x, out_size))
    for oy, ox, iy, ix in ((0, 0, 0, 0), (0, -1, 0, -1), (-1, 0, -1, 0), (-1, -1, -1, -1)):
      np.testing.assert_allclose(out[0, oy, ox], x[0, iy, ix], atol=1e-6)


@pytest.mark.parametrize('use_einsum', [False, True])
def test_resize_bilinear_same_size_is_identity(use_einsum, monkeypatch):
  if use_einsum:
    _force_einsum_path(monkeypatch)
  x = _rng(5).normal(size=(1, 9, 11, 4)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(layers.resize_bilinear(x, (9, 11))), x)


@pytest.mark.parametrize('use_einsum', [False, True])
def test_resize_bilinear_broadcasts_one_pixel_sources(use_einsum, monkeypatch):
  if use_einsum:
    _force_einsum_path(monkeypatch)
  pixel = _rng(6).normal(size=(2, 1, 1, 3)).astype(np.float32)
  out = np.asarray(layers.resize_bilinear(pixel, (9, 11)))
  np.testing.assert_allclose(out, np.broadcast_to(pixel, (2, 9, 11, 3)), atol=1e-7)
  # One row: broadcast over height, interpolated over width.
  row = _rng(7).normal(size=(1, 1, 5, 2)).astype(np.float32)
  out = np.asarray(layers.resize_bilinear(row, (4, 9)))
  np.testing.assert_allclose(out, reference.resize_bilinear(row, 4, 9), atol=2e-6)
  np.testing.assert_allclose(out[:, 0], out[:, 3], atol=1e-7)


def test_align_corners_matrix_rows_are_convex_weights():
  for out_size, in_size in ((9, 5), (5, 9), (1, 4), (4, 1), (13, 7)):
    matrix = layers._align_corners_matrix(out_size, in_size)  # pylint: disable=protected-access
    assert matrix.shape == (out_size, in_size)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-6)
    assert (matrix >= 0).all()
    assert matrix[0, 0] == 1.0
    if out_size > 1 and in_size > 1:
      assert matrix[-1, -1] == pytest.approx(1.0)
  # 5 -> 9 doubles the resolution: odd outputs are midpoints.
  matrix = layers._align_corners_matrix(9, 5)  # pylint: disable=protected-access
  np.testing.assert_allclose(matrix[1, :2], [0.5, 0.5])
  np.testing.assert_allclose(matrix[2], [0, 1, 0, 0, 0])


# --- fixed_padding ------------------------------------------------------------------


@pytest.mark.parametrize('kernel, rate, pads', [
    (3, 1, (1, 1)), (3, 2, (2, 2)), (1, 1, (0, 0)), (2, 1, (0, 1)), (5, 1, (2, 2)),
    (3, 3, (3, 3)),
])
def test_fixed_padding(kernel, rate, pads):
  x = _rng(8).uniform(1, 2, size=(1, 4, 6, 2)).astype(np.float32)
  out = np.asarray(layers.fixed_padding(x, kernel, rate))
  before, after = pads
  assert out.shape == (1, 4 + before + after, 6 + before + after, 2)
  np.testing.assert_array_equal(
      out, np.pad(x, [(0, 0), (before, after), (before, after), (0, 0)]))


# --- ConvBN: variables ------------------------------------------------------------


def test_conv_bn_variable_paths_and_shapes():
  conv = layers.ConvBN(8, 3, name='conv1_1')
  conv(np.zeros((1, 5, 5, 3), np.float32))
  assert _paths(conv) == ['conv1_1/weights'] + [f'conv1_1/BatchNorm/{n}' for n in _BN_VARIABLES]
  assert tuple(conv.kernel.shape) == (3, 3, 3, 8)
  # Moving statistics are not trainable; gamma and beta are.
  assert [w.path for w in conv.trainable_weights] == [
      'conv1_1/weights', 'conv1_1/BatchNorm/gamma', 'conv1_1/BatchNorm/beta']


def test_depthwise_conv_bn_variable_paths_and_shapes():
  conv = layers.ConvBN(None, 3, name='separable_conv1_depthwise')
  out = conv(np.zeros((1, 5, 5, 6), np.float32))
  assert out.shape == (1, 5, 5, 6)
  assert _paths(conv) == ['separable_conv1_depthwise/depthwise_weights'] + [
      f'separable_conv1_depthwise/BatchNorm/{n}' for n in _BN_VARIABLES]
  assert tuple(conv.kernel.shape) == (3, 3, 6, 1)


def test_conv_with_bias_and_no_batch_norm():
  conv = layers.ConvBN(5, 1, use_batch_norm=False, use_bias=True, activation=None,
                       name='semantic')
  x = _rng(9).normal(size=(1, 3, 4, 7)).astype(np.float32)
  out = np.asarray(conv(x))
  assert _paths(conv) == ['semantic/weights', 'semantic/biases']
  assert tuple(conv.bias.shape) == (5,)
  conv.bias.assign(np.arange(5, dtype=np.float32))
  out = np.asarray(conv(x))
  expected = np.einsum('bhwc,cd->bhwd', x, np.asarray(conv.kernel)[0, 0]) + np.arange(5)
  np.testing.assert_allclose(out, expected, atol=1e-5)


def test_weight_decay_regularises_the_kernel_only():
  conv = layers.ConvBN(4, 1, weight_decay=1e-2, name='c')
  conv(np.ones((1, 2, 2, 3), np.float32))
  assert conv.kernel.regularizer is not None
  kernel = np.asarray(conv.kernel, np.float64)
  # tf-slim's l2_regularizer(wd) is wd * tf.nn.l2_loss(w) = wd * sum(w^2) / 2.
  np.testing.assert_allclose(float(sum(conv.losses)), 1e-2 * np.sum(kernel ** 2) / 2,
                             rtol=1e-5)
  plain = layers.ConvBN(4, 1, name='d')
  plain(np.ones((1, 2, 2, 3), np.float32))
  assert not plain.losses


def test_depthwise_kernels_are_never_regularised():
  depthwise = layers.ConvBN(None, 3, weight_decay=1e-2, name='dw')
  depthwise(np.ones((1, 4, 4, 3), np.float32))
  assert not depthwise.losses and depthwise.get_config()['weight_decay'] == 0.0
  separable = layers.split_separable_conv('aspp1', 4, rate=2, weight_decay=1e-2)
  layers.apply_sequence(separable, np.ones((1, 4, 4, 3), np.float32))
  assert not separable[0].losses and len(separable[1].losses) == 1


# --- ConvBN: padding ----------------------------------------------------------------


def _raw_conv(filters, kernel_size, strides, padding, rate=1):
  return layers.ConvBN(filters, kernel_size, strides=strides, padding=padding, rate=rate,
                       use_batch_norm=False, activation=None)


def test_fixed_and_same_stride2_differ_on_even_input_and_match_tf_nn():
  x = _rng(10).normal(size=(1, 8, 10, 3)).astype(np.float32)
  fixed = _raw_conv(4, 3, 2, 'fixed')
  same = _raw_conv(4, 3, 2, 'same')
  fixed(x)
  same(x)
  same.kernel.assign(fixed.kernel)
  kernel = tf.constant(np.asarray(fixed.kernel))
  out_fixed, out_same = np.asarray(fixed(x)), np.asarray(same(x))
  assert out_fixed.shape == out_same.shape == (1, 4, 5, 4)
  # 'fixed' is the original fixed_padding: one row/column on every side, then VALID.
  padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
  np.testing.assert_allclose(
      out_fixed, tf.nn.conv2d(padded, kernel, 2, 'VALID').numpy(), atol=1e-5)
  # TF SAME on an even size pads 0 before and 1 after.
  np.testing.assert_allclose(out_same, tf.nn.conv2d(x, kernel, 2, 'SAME').numpy(), atol=1e-5)
  pad_after = tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])
  np.testing.assert_allclose(
      out_same, tf.nn.conv2d(pad_after, kernel, 2, 'VALID').numpy(), atol=1e-5)
  # The two sample different windows on even inputs.
  assert np.abs(out_fixed - out_same).max() > 1e-2


def test_fixed_and_same_agree_on_odd_input():
  # On odd sizes SAME also pads 1/1, which is why the golden cases cannot tell them apart.
  x = _rng(11).normal(size=(1, 9, 11, 3)).astype(np.float32)
  fixed, same = _raw_conv(4, 3, 2, 'fixed'), _raw_conv(4, 3, 2, 'same')
  fixed(x)
  same(x)
  same.kernel.assign(fixed.kernel)
  np.testing.assert_allclose(np.asarray(fixed(x)), np.asarray(same(x)), atol=1e-5)


def test_depthwise_fixed_stride2_matches_tf_nn():
  x = _rng(12).normal(size=(1, 8, 8, 5)).astype(np.float32)
  conv = layers.ConvBN(None, 3, strides=2, padding='fixed', use_batch_norm=False,
                       activation=None)
  out = np.asarray(conv(x))
  padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
  expected = tf.nn.depthwise_conv2d(padded, np.asarray(conv.kernel), [1, 2, 2, 1], 'VALID')
  np.testing.assert_allclose(out, expected.numpy(), atol=1e-5)
  assert out.shape == (1, 4, 4, 5)


def test_depthwise_non_square_dilation_matches_tf_nn():
  x = _rng(13).normal(size=(1, 9, 11, 4)).astype(np.float32)
  conv = layers.ConvBN(None, 3, rate=(18, 15), use_batch_norm=False, activation=None)
  out = np.asarray(conv(x))
  kernel = np.asarray(conv.kernel)
  expected = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], 'SAME', dilations=[18, 15])
  np.testing.assert_allclose(out, expected.numpy(), atol=1e-5)
  # Dilations beyond the map: every off-centre tap reads padding.
  np.testing.assert_allclose(out, x * kernel[1, 1, :, 0], atol=1e-5)


def test_regular_conv_non_square_dilation_matches_tf_nn():
  x = _rng(14).normal(size=(1, 9, 11, 3)).astype(np.float32)
  conv = _raw_conv(4, 3, 1, 'same', rate=(2, 3))
  out = np.asarray(conv(x))
  expected = tf.nn.conv2d(x, np.asarray(conv.kernel), 1, 'SAME', dilations=[2, 3])
  np.testing.assert_allclose(out, expected.numpy(), atol=1e-5)


def test_valid_padding():
  x = _rng(15).normal(size=(1, 7, 6, 2)).astype(np.float32)
  conv = _raw_conv(3, 3, 1, 'valid')
  out = np.asarray(conv(x))
  np.testing.assert_allclose(
      out, tf.nn.conv2d(x, np.asarray(conv.kernel), 1, 'VALID').numpy(), atol=1e-5)


@pytest.mark.parametrize('kwargs, in_shape, expected', [
    (dict(filters=4, kernel_size=3, strides=2, padding='same'), (1, 8, 8, 3), (1, 4, 4, 4)),
    (dict(filters=4, kernel_size=3, strides=2, padding='fixed'), (1, 9, 8, 3), (1, 5, 4, 4)),
    (dict(filters=None, kernel_size=3, strides=1, padding='valid'), (1, 7, 6, 3), (1, 5, 4, 3)),
])
def test_compute_output_shape_matches_eager_call(kwargs, in_shape, expected):
  conv = layers.ConvBN(**kwargs)
  assert tuple(conv(np.zeros(in_shape, np.float32)).shape) == expected
  assert tuple(conv.compute_output_shape(in_shape)) == expected
  assert tuple(layers.ConvBN(**kwargs)(keras.KerasTensor(in_shape)).shape) == expected


# --- ConvBN: batch norm and activation ------------------------------------------


@pytest.mark.parametrize('eps, other', [(1e-3, 1e-5), (1e-5, 1e-3)])
def test_batch_norm_uses_its_epsilon(eps, other):
  rng = _rng(16)
  x = rng.normal(size=(1, 4, 5, 3)).astype(np.float32)
  conv = layers.ConvBN(6, 1, batch_norm_epsilon=eps, activation=None)
  conv(x)
  # Tiny variances make the epsilon visible.
  _randomize_batch_norm(conv.batch_norm, rng, variance_range=(1e-4, 1e-3))
  out = np.asarray(conv(x, training=False))
  pre_bn = np.einsum('bhwc,cd->bhwd', x.astype(np.float64), np.asarray(conv.kernel)[0, 0])
  np.testing.assert_allclose(out, _np_batch_norm(pre_bn, conv.batch_norm, eps), rtol=1e-4,
                             atol=1e-4)
  assert np.abs(out - _np_batch_norm(pre_bn, conv.batch_norm, other)).max() > 1e-2


def test_epsilon_constants_and_default():
  assert constants.BACKBONE_BATCH_NORM_EPSILON == 1e-3
  assert constants.HEAD_BATCH_NORM_EPSILON == 1e-5
  assert layers.ConvBN(4).batch_norm.epsilon == 1e-5
  assert layers.ConvBN(4).batch_norm.momentum == pytest.approx(0.9997)


@pytest.mark.parametrize('activation, fn', [
    (None, lambda v: v), ('relu', lambda v: np.maximum(v, 0)),
    ('relu6', lambda v: np.clip(v, 0, 6)),
])
def test_activation_follows_batch_norm(activation, fn):
  rng = _rng(17)
  x = (rng.normal(size=(1, 4, 4, 3)) * 10).astype(np.float32)
  conv = layers.ConvBN(5, 1, activation=activation)
  conv(x)
  _randomize_batch_norm(conv.batch_norm, rng)
  # Shift the BN output so ReLU and ReLU6 clip on both sides.
  conv.batch_norm.beta.assign(np.full(5, 2.0, np.float32))
  pre_bn = np.einsum('bhwc,cd->bhwd', x.astype(np.float64), np.asarray(conv.kernel)[0, 0])
  expected = fn(_np_batch_norm(pre_bn, conv.batch_norm, 1e-5))
  np.testing.assert_allclose(np.asarray(conv(x)), expected, rtol=1e-4, atol=1e-4)
  if activation is not None:
    assert (expected == 0).any()
  if activation == 'relu6':
    assert (expected == 6).any()


def _graph_op_types(fn, x):
  graph = tf.function(fn).get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph
  return {op.type for op in graph.get_operations()}


def test_inference_batch_norm_is_the_fused_op_after_regular_convs_and_folded_in_depthwise():
  rng = _rng(20)
  x = rng.normal(size=(1, 6, 6, 4)).astype(np.float32)
  regular, depthwise = layers.ConvBN(5, 3), layers.ConvBN(None, 3, rate=2)
  for conv in (regular, depthwise):
    conv(x)
    _randomize_batch_norm(conv.batch_norm, rng)
  # Grappler fuses Conv2D + FusedBatchNormV3 (+ activation) into one kernel.
  assert 'FusedBatchNormV3' in _graph_op_types(lambda v: regular(v, training=False), x)
  assert 'FusedBatchNormV3' not in _graph_op_types(lambda v: depthwise(v, training=False), x)
  pre_bn = tf.nn.depthwise_conv2d(x, depthwise.kernel, [1, 1, 1, 1], 'SAME',
                                  dilations=[2, 2]).numpy().astype(np.float64)
  np.testing.assert_allclose(np.asarray(depthwise(x)),
                             np.maximum(_np_batch_norm(pre_bn, depthwise.batch_norm, 1e-5), 0),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('filters', [5, None])
def test_frozen_batch_norm_gradients_match_the_explicit_formula(filters):
  rng = _rng(21)
  x = tf.constant(rng.normal(size=(2, 5, 5, 3)).astype(np.float32))
  conv = layers.ConvBN(filters, 3, fine_tune_batch_norm=False, activation=None)
  conv(x)
  bn = conv.batch_norm
  _randomize_batch_norm(bn, rng)
  weights = tf.constant(rng.normal(size=(2, 5, 5, filters or 3)).astype(np.float32))
  variables = [conv.kernel, bn.gamma, bn.beta]
  with tf.GradientTape(persistent=True) as tape:
    ours = tf.reduce_sum(conv(x, training=True) * weights)
    if filters:
      pre_bn = tf.nn.conv2d(x, conv.kernel, 1, 'SAME')
    else:
      pre_bn = tf.nn.depthwise_conv2d(x, conv.kernel, [1, 1, 1, 1], 'SAME')
    normalised = (pre_bn - bn.moving_mean) * tf.math.rsqrt(bn.moving_variance + bn.epsilon)
    explicit = tf.reduce_sum((normalised * bn.gamma + bn.beta) * weights)
  np.testing.assert_allclose(ours.numpy(), explicit.numpy(), rtol=1e-4)
  for ours_grad, explicit_grad in zip(tape.gradient(ours, variables),
                                      tape.gradient(explicit, variables)):
    np.testing.assert_allclose(ours_grad.numpy(), explicit_grad.numpy(), rtol=1e-4, atol=1e-4)


def _stats(bn):
  return np.asarray(bn.moving_mean).copy(), np.asarray(bn.moving_variance).copy()


def test_frozen_batch_norm_uses_moving_statistics_when_training():
  rng = _rng(18)
  x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
  conv = layers.ConvBN(4, 3, fine_tune_batch_norm=False)
  conv(x)
  _randomize_batch_norm(conv.batch_norm, rng)
  mean, var = _stats(conv.batch_norm)
  inference = np.asarray(conv(x, training=False))
  training = np.asarray(conv(x, training=True))
  np.testing.assert_array_equal(training, inference)
  new_mean, new_var = _stats(conv.batch_norm)
  np.testing.assert_array_equal(new_mean, mean)
  np.testing.assert_array_equal(new_var, var)
  # gamma and beta still train (the original only freezes the statistics).
  assert {w.path.rsplit('/', 1)[-1] for w in conv.trainable_weights} == {
      'weights', 'gamma', 'beta'}


def test_fine_tuned_batch_norm_updates_statistics_when_training():
  rng = _rng(19)
  x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
  conv = layers.ConvBN(4, 3, fine_tune_batch_norm=True)
  conv(x)
  _randomize_batch_norm(conv.batch_norm, rng)
  mean, var = _stats(conv.batch_norm)
  inference = np.asarray(conv(x, training=False))
  training = np.asarray(conv(x, training=True))
  assert np.abs(training - inference).max() > 1e-2
  new_mean, new_var = _stats(conv.batch_norm)
  # Decay 0.9997: a small but nonzero step towards the batch statistics.
  assert np.abs(new_mean - mean).max() > 1e-6
  assert np.abs(new_var - var).max() > 1e-6
  assert np.abs(new_mean - mean).max() < 1e-2


@pytest.mark.parametrize('sync', [False, True])
def test_training_batch_norm_normalises_with_batch_statistics_and_updates_as_the_original(sync):
  rng = _rng(22)
  x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
  conv = layers.ConvBN(4, 3, fine_tune_batch_norm=True, sync_batch_norm=sync,
                       batch_norm_decay=0.9, activation=None)
  conv(x)
  bn = conv.batch_norm
  _randomize_batch_norm(bn, rng)
  mean, var = _stats(bn)
  out = np.asarray(conv(x, training=True)).astype(np.float64)
  pre_bn = tf.nn.conv2d(x, conv.kernel, 1, 'SAME').numpy().astype(np.float64)
  batch_mean, batch_var = pre_bn.mean(axis=(0, 1, 2)), pre_bn.var(axis=(0, 1, 2))
  expected = ((pre_bn - batch_mean) / np.sqrt(batch_var + 1e-5) * np.asarray(bn.gamma) +
              np.asarray(bn.beta))
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  new_mean, new_var = _stats(bn)
  np.testing.assert_allclose(new_mean, 0.9 * mean + 0.1 * batch_mean, rtol=1e-5, atol=1e-6)
  n = pre_bn.size // pre_bn.shape[-1]
  # The original's fused op averages the Bessel-corrected variance; Keras' layer
  # (needed for cross-replica statistics) the biased one.
  moving_batch_var = batch_var if sync else batch_var * n / (n - 1)
  np.testing.assert_allclose(new_var, 0.9 * var + 0.1 * moving_batch_var, rtol=1e-5, atol=1e-6)
  graph_ops = _graph_op_types(lambda v: conv(v, training=True), x)
  assert ('FusedBatchNormV3' in graph_ops) != sync


def test_batch_norm_config_round_trip_and_frozen_layer_ignores_training():
  bn = layers.BatchNorm(0.997, 1e-3, fine_tune_batch_norm=False, name='BatchNorm')
  config = bn.get_config()
  clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(bn))
  assert isinstance(clone, layers.BatchNorm) and clone.get_config() == config
  assert (clone.momentum, clone.epsilon, clone.fine_tune_batch_norm) == (0.997, 1e-3, False)
  assert not clone.uses_batch_statistics(True)
  assert layers.BatchNorm().uses_batch_statistics(True)
  assert not layers.BatchNorm().uses_batch_statistics(False)


@pytest.mark.parametrize('filters,use_bias', [(5, False), (5, True), (None, False)])
def test_fold_batch_norm_equals_conv_then_batch_norm(filters, use_bias):
  rng = _rng(23)
  x = tf.constant(rng.normal(size=(2, 6, 6, 3)).astype(np.float32))
  conv = layers.ConvBN(filters, 3, activation=None, use_bias=use_bias)
  conv(x)
  _randomize_batch_norm(conv.batch_norm, rng)
  if use_bias:
    conv.bias.assign(rng.normal(size=conv.bias.shape).astype(np.float32))
  conv_fn = ((lambda k: tf.nn.conv2d(x, k, 1, 'SAME')) if filters else
             (lambda k: tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], 'SAME')))
  pre_bn = conv_fn(conv.kernel) + (conv.bias if use_bias else 0.0)
  expected = conv.batch_norm(pre_bn, training=False)
  kernel, bias = layers.fold_batch_norm(conv.kernel, conv.bias, conv.batch_norm,
                                        depthwise=filters is None)
  np.testing.assert_allclose(conv_fn(kernel) + bias, expected, rtol=1e-4, atol=1e-4)


# --- ConvBN: config and validation ----------------------------------------------


def test_conv_bn_config_round_trip():
  conv = layers.ConvBN(6, 3, strides=2, rate=(1, 1), padding='fixed',
                       batch_norm_epsilon=1e-3, batch_norm_decay=0.99,
                       fine_tune_batch_norm=False, activation='relu6', kernel_stddev=0.09,
                       weight_decay=4e-5, name='conv1_1')
  config = conv.get_config()
  clone = layers.ConvBN.from_config(config)
  assert clone.get_config() == config
  assert clone.name == 'conv1_1'
  assert clone.batch_norm.epsilon == 1e-3
  assert (clone.padding, clone.strides, clone.activation) == ('fixed', 2, 'relu6')
  x = _rng(20).normal(size=(1, 6, 6, 3)).astype(np.float32)
  conv(x)
  clone(x)
  clone.set_weights(conv.get_weights())
  np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(conv(x)))
  # Registered for Keras serialisation.
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(conv))
  assert isinstance(restored, layers.ConvBN)
  assert restored.get_config() == config


def test_bad_padding_and_activation_raise_naming_them():
  with pytest.raises(ValueError, match='circular'):
    layers.ConvBN(4, 3, padding='circular')
  with pytest.raises(ValueError, match='swish'):
    layers.ConvBN(4, 3, activation='swish')


# --- split_separable_conv -----------------------------------------------------------


def test_split_separable_conv_names_and_rates():
  depthwise, pointwise = layers.split_separable_conv('aspp1', 8, rate=(6, 3),
                                                     weight_decay=1e-3)
  assert (depthwise.name, pointwise.name) == ('aspp1_depthwise', 'aspp1_pointwise')
  assert depthwise.depthwise and not pointwise.depthwise
  assert (depthwise.kernel_size, depthwise.rate) == ((3, 3), (6, 3))
  assert (pointwise.kernel_size, pointwise.rate, pointwise.filters) == ((1, 1), (1, 1), 8)
  layers.apply_sequence([depthwise, pointwise], np.zeros((1, 5, 5, 4), np.float32))
  assert _paths(depthwise)[0] == 'aspp1_depthwise/depthwise_weights'
  assert _paths(pointwise)[0] == 'aspp1_pointwise/weights'
  assert tuple(depthwise.kernel.shape) == (3, 3, 4, 1)
  assert tuple(pointwise.kernel.shape) == (1, 1, 4, 8)
  # The original regularises the pointwise weights only.
  assert depthwise.kernel.regularizer is None
  assert pointwise.kernel.regularizer is not None


def test_split_separable_conv_has_relu_between_depthwise_and_pointwise():
  convs = layers.split_separable_conv('branch0', 4)
  x = np.ones((1, 5, 5, 3), np.float32)
  layers.apply_sequence(convs, x)
  # Negative depthwise outputs; a negative pointwise kernel would turn them
  # positive again unless the ReLU in between zeroes them.
  convs[0].kernel.assign(np.full((3, 3, 3, 1), -0.1, np.float32))
  convs[1].kernel.assign(np.full((1, 1, 3, 4), -1.0, np.float32))
  np.testing.assert_array_equal(np.asarray(layers.apply_sequence(convs, x)), 0.0)


def test_split_separable_conv_matches_reference():
  rng = _rng(21)
  x = rng.normal(size=(1, 7, 9, 3)).astype(np.float32)
  convs = layers.split_separable_conv('decoder_conv0', 5, rate=2)
  layers.apply_sequence(convs, x)
  for conv in convs:
    _randomize_batch_norm(conv.batch_norm, rng)
  out = np.asarray(layers.apply_sequence(convs, x))
  y = tf.nn.depthwise_conv2d(x, np.asarray(convs[0].kernel), [1, 1, 1, 1], 'SAME',
                             dilations=[2, 2]).numpy()
  y = np.maximum(_np_batch_norm(y, convs[0].batch_norm, 1e-5), 0)
  y = np.einsum('bhwc,cd->bhwd', y, np.asarray(convs[1].kernel, np.float64)[0, 0])
  y = np.maximum(_np_batch_norm(y, convs[1].batch_norm, 1e-5), 0)
  np.testing.assert_allclose(out, y, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('rate,depthwise', [((9, 1), True), ((3, 12), True), ((10, 10), True),
                                            ((7, 2), False), ((20, 20), False)])
def test_atrous_taps_that_read_only_padding_are_dropped_exactly(rate, depthwise, monkeypatch):
  # 7x9 features: rates >= 7 (rows) or >= 9 (columns) leave only the centre tap inside.
  x = tf.constant(_rng(3).normal(size=(2, 7, 9, 4)), tf.float32)
  layer = layers.ConvBN(None if depthwise else 5, 3, rate=rate, use_batch_norm=False,
                        activation=None)
  layer(x)
  layer.kernel.assign(_rng(4).normal(size=layer.kernel.shape))
  kernel, used = layer._taps_inside(layer.kernel, x, 'same')
  assert kernel.shape[0] == (1 if rate[0] >= 7 else 3)
  assert kernel.shape[1] == (1 if rate[1] >= 9 else 3)
  assert used == tuple(1 if r >= n else r for r, n in zip(rate, (7, 9)))

  def run():
    with tf.GradientTape() as tape:
      y = layer(x)
      loss = tf.reduce_sum(y * y)
    return y.numpy(), tape.gradient(loss, layer.kernel).numpy()

  fast, fast_grad = run()
  monkeypatch.setattr(layers.ConvBN, '_taps_inside',
                      lambda self, kernel, x, padding: (kernel, self.rate))
  full, full_grad = run()
  np.testing.assert_allclose(fast, full, rtol=1e-5, atol=1e-5)
  # The dropped taps only ever met padding: their gradient is zero either way.
  np.testing.assert_allclose(fast_grad, full_grad, rtol=1e-5, atol=1e-5)
