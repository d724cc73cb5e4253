"""Tests for the ASPP head (`deeplab_dpc.heads.aspp`).

Features are small random maps standing in for backbone output at OS16
(5x7 = the features of a 65x97 crop).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import checkpoints
from deeplab_dpc import layers
from deeplab_dpc import model as model_lib
from deeplab_dpc.heads import aspp as aspp_lib
from deeplab_dpc.options import ModelOptions
from deeplab_dpc.testing import numpy_reference as reference

_BN = ('gamma', 'beta', 'moving_mean', 'moving_variance')


def _features(seed=0, shape=(1, 5, 7, 16)):
  # Non-negative, as Xception's ReLU'd features are.
  return np.random.default_rng(seed).uniform(0, 2, size=shape).astype(np.float32)


def _all_conv_bns(head):
  convs = [head.aspp0, head.concat_projection] + [c for b in head.atrous_branches for c in b]
  if head.add_image_level_feature:
    convs.append(head.image_pooling)
  return convs


# --- variables ----------------------------------------------------------------------


def test_variables_with_three_separable_rates():
  head = aspp_lib.ASPP(atrous_rates=(6, 12, 18), output_stride=16)
  out = head(_features())
  assert out.shape == (1, 5, 7, 256)
  paths = [w.path for w in head.weights]
  scopes = []
  for p in paths:
    assert p.startswith('aspp/'), p
    scope = p.split('/')[1]
    if scope not in scopes:
      scopes.append(scope)
  # Concat order = variable order (as the original's tf.global_variables()).
  assert scopes == ['image_pooling', 'aspp0', 'aspp1_depthwise', 'aspp1_pointwise',
                    'aspp2_depthwise', 'aspp2_pointwise', 'aspp3_depthwise',
                    'aspp3_pointwise', 'concat_projection']
  shapes = {p: tuple(w.shape) for p, w in zip(paths, head.weights)}
  assert shapes['aspp/image_pooling/weights'] == (1, 1, 16, 256)
  assert shapes['aspp/aspp0/weights'] == (1, 1, 16, 256)
  for i in (1, 2, 3):
    assert shapes[f'aspp/aspp{i}_depthwise/depthwise_weights'] == (3, 3, 16, 1)
    assert shapes[f'aspp/aspp{i}_pointwise/weights'] == (1, 1, 16, 256)
  assert shapes['aspp/concat_projection/weights'] == (1, 1, 1280, 256)
  # Every conv is bias-free with a full batch norm.
  for scope in scopes:
    assert [p.split('/', 2)[2] for p in paths if p.split('/')[1] == scope][1:] == [
        f'BatchNorm/{n}' for n in _BN]
  assert len(paths) == 9 * 5
  assert [b[0].rate for b in head.atrous_branches] == [(6, 6), (12, 12), (18, 18)]


def test_original_checkpoint_names_drop_the_aspp_scope():
  assert checkpoints.original_name('deeplab/aspp/aspp1_depthwise/depthwise_weights') == (
      'aspp1_depthwise/depthwise_weights')
  assert checkpoints.original_name('deeplab/aspp/image_pooling/BatchNorm/gamma') == (
      'image_pooling/BatchNorm/gamma')
  assert checkpoints.original_name('deeplab/aspp/concat_projection/weights') == (
      'concat_projection/weights')
  # Only the leading model and ASPP scopes go.
  assert checkpoints.original_name('deeplab/xception_65/entry_flow/conv1_1/weights') == (
      'xception_65/entry_flow/conv1_1/weights')
  assert checkpoints.original_name('deeplab/logits/semantic/biases') == (
      'logits/semantic/biases')


def test_rates_are_used_as_given_at_output_stride_8():
  # The original passes 12/24/36 explicitly at OS8: no multiplier.
  head = aspp_lib.ASPP(atrous_rates=(12, 24, 36), output_stride=8)
  assert [b[0].rate for b in head.atrous_branches] == [(12, 12), (24, 24), (36, 36)]


def test_non_separable_branches():
  head = aspp_lib.ASPP(atrous_rates=(6, 12), aspp_with_separable_conv=False)
  head(_features())
  shapes = {w.path: tuple(w.shape) for w in head.weights}
  assert shapes['aspp/aspp1/weights'] == (3, 3, 16, 256)
  assert shapes['aspp/aspp2/weights'] == (3, 3, 16, 256)
  assert not any('_depthwise' in p or '_pointwise' in p for p in shapes)
  assert [b[0].rate for b in head.atrous_branches] == [(6, 6), (12, 12)]
  assert shapes['aspp/concat_projection/weights'] == (1, 1, 1024, 256)


def test_without_image_level_feature():
  head = aspp_lib.ASPP(atrous_rates=(6,), add_image_level_feature=False)
  head(_features())
  paths = [w.path for w in head.weights]
  assert not any('image_pooling' in p for p in paths)
  assert tuple(head.concat_projection.kernel.shape) == (1, 1, 512, 256)


def test_head_batch_norm_epsilon():
  head = aspp_lib.ASPP(atrous_rates=(6, 12, 18))
  assert {c.batch_norm.epsilon for c in _all_conv_bns(head)} == {1e-5}
  # As the model builds it (with conv_kwargs), next to a 1e-3 backbone.
  options = ModelOptions.create(num_classes=3, model_variant='xception_41',
                                crop_size=(65, 97), atrous_rates=(6, 12, 18))
  model = model_lib.DeepLabModel(options)
  assert {c.batch_norm.epsilon for c in _all_conv_bns(model.head)} == {1e-5}
  assert model.backbone.conv1_1.batch_norm.epsilon == 1e-3
  assert all(c.batch_norm.momentum == pytest.approx(0.9997) for c in _all_conv_bns(model.head))


# --- computation -------------------------------------------------------------------


def _identity_projection(head, branch_index):
  """Projection that copies one branch's channels and drops the others."""
  depth = head.depth
  n_in = head.concat_projection.kernel.shape[2]
  kernel = np.zeros((1, 1, n_in, depth), np.float32)
  kernel[0, 0, branch_index * depth:(branch_index + 1) * depth] = np.eye(depth)
  head.concat_projection.kernel.assign(kernel)
  bn = head.concat_projection.batch_norm
  bn.gamma.assign(np.ones(depth, np.float32))
  bn.beta.assign(np.zeros(depth, np.float32))
  bn.moving_mean.assign(np.zeros(depth, np.float32))
  bn.moving_variance.assign(np.full(depth, 1.0 - bn.epsilon, np.float32))


def test_concat_order_is_image_pooling_aspp0_then_atrous():
  features = _features(1)
  head = aspp_lib.ASPP(atrous_rates=(1, 2, 3), depth=8)
  head(features)
  pooled = features.mean(axis=(1, 2), keepdims=True)
  expected = [
      np.broadcast_to(np.asarray(head.image_pooling(pooled)), (1, 5, 7, 8)),
      np.asarray(head.aspp0(features)),
  ] + [np.asarray(layers.apply_sequence(b, features)) for b in head.atrous_branches]
  for i in range(5):
    for j in range(i):
      assert np.abs(expected[i] - expected[j]).max() > 1e-3
  for index in range(5):
    _identity_projection(head, index)
    out = np.asarray(head(features, training=False))
    matches = [k for k in range(5) if np.allclose(out, expected[k], atol=1e-5)]
    assert matches == [index]


def test_image_pooling_is_global_mean_without_pooling_crop():
  features = _features(2)
  head = aspp_lib.ASPP(atrous_rates=(6,), depth=8)
  head(features)
  _identity_projection(head, 0)
  out = np.asarray(head(features))
  # Constant over space, equal to the branch on the global mean.
  np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1], out.shape), atol=1e-6)
  pooled = features.mean(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(out[:, :1, :1], np.asarray(head.image_pooling(pooled)),
                             atol=1e-5)


def test_image_pooling_with_smaller_pooling_crop():
  features = _features(3)
  # Crop 65x97 at OS16 -> 5x7 features; pooling crop 33x49 -> kernel 3x4.
  head = aspp_lib.ASPP(atrous_rates=(6,), output_stride=16, image_pooling_crop_size=(33, 49),
                       depth=8)
  head(features)
  _identity_projection(head, 0)
  out = np.asarray(head(features))
  assert np.abs(out - out[:, :1, :1]).max() > 1e-3  # Not constant over space.
  kernel = (layers.scale_dimension(33, 1 / 16), layers.scale_dimension(49, 1 / 16))
  assert kernel == (3, 4)
  pooled = reference.avg_pool_valid(features.astype(np.float64), *kernel)
  assert pooled.shape == (1, 3, 4, 16)
  branch = np.asarray(head.image_pooling(pooled.astype(np.float32)), np.float64)
  np.testing.assert_allclose(out, reference.resize_bilinear(branch, 5, 7), atol=1e-5)


def test_image_pooling_crop_equal_to_crop_is_global():
  features = _features(4)
  head = aspp_lib.ASPP(atrous_rates=(6,), image_pooling_crop_size=(65, 97), depth=8)
  reference = aspp_lib.ASPP(atrous_rates=(6,), depth=8)
  head(features)
  reference(features)
  reference.set_weights(head.get_weights())
  np.testing.assert_allclose(np.asarray(head(features)), np.asarray(reference(features)),
                             atol=1e-6)


def test_dropout_is_identity_at_inference_only():
  keras.utils.set_random_seed(0)
  features = _features(5)
  head = aspp_lib.ASPP(atrous_rates=(6,), depth=16,
                       conv_kwargs=dict(fine_tune_batch_norm=False))
  head(features)
  assert head.dropout.rate == pytest.approx(0.1)  # keep_prob 0.9.
  inference = np.asarray(head(features, training=False))
  np.testing.assert_array_equal(np.asarray(head(features, training=False)), inference)
  # BN frozen, so training only adds dropout after the projection.
  training = np.asarray(head(features, training=True))
  kept = training != 0
  assert (~kept & (inference > 0)).any()
  np.testing.assert_allclose(training[kept], inference[kept] / 0.9, rtol=1e-5)


def test_atrous_separable_branch_matches_reference():
  features = _features(6)
  head = aspp_lib.ASPP(atrous_rates=(2,), depth=8)
  head(features)
  depthwise, pointwise = head.atrous_branches[0]
  y = tf.nn.depthwise_conv2d(features, depthwise.kernel, [1, 1, 1, 1], 'SAME',
                             dilations=[2, 2]).numpy()
  y = np.maximum(y / np.sqrt(1 + 1e-5), 0)  # Fresh BN: identity up to epsilon.
  y = np.maximum(np.einsum('bhwc,cd->bhwd', y, np.asarray(pointwise.kernel)[0, 0]) /
                 np.sqrt(1 + 1e-5), 0)
  _identity_projection(head, 2)
  np.testing.assert_allclose(np.asarray(head(features)), y, atol=1e-5)


def test_config_round_trip():
  head = aspp_lib.ASPP(atrous_rates=(6, 12, 18), output_stride=8,
                       image_pooling_crop_size=(33, 49), aspp_with_separable_conv=False,
                       conv_kwargs=dict(batch_norm_epsilon=1e-5, weight_decay=4e-5))
  config = head.get_config()
  clone = aspp_lib.ASPP.from_config(config)
  assert clone.get_config() == config
  assert clone.name == 'aspp'
  assert clone.image_pooling_crop_size == (33, 49)
