"""Tests for the Dense Prediction Cell layer (`deeplab_dpc.heads.dense_prediction_cell`).

The released cell is checked for its size (the paper's 0.81M conv parameters),
names, rates and wiring; a cell with the other two operations (1x1 conv and
pyramid pooling) for what the original's `build_cell` computes.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import layers
from deeplab_dpc import sizes
from deeplab_dpc.heads import dense_prediction_cell as dpc_lib
from deeplab_dpc.testing import numpy_reference as reference

_BN = ('gamma', 'beta', 'moving_mean', 'moving_variance')
_RELEASED_RATES = [(1, 6), (18, 15), (6, 3), (1, 1), (6, 21)]


def _released_cell():
  with open(cell_lib.RELEASED_CELL_PATH, encoding='utf-8') as f:
    return json.load(f)


def _features(shape, seed=0):
  return np.random.default_rng(seed).uniform(0, 2, size=shape).astype(np.float32)


@pytest.fixture(scope='module')
def released():
  """The released cell on Xception-size features (9x11x2048: crop 129x161, OS16)."""
  cell = dpc_lib.DensePredictionCell(_released_cell(), output_stride=16)
  features = _features((1, 9, 11, 2048))
  out = cell(features)
  return cell, features, np.asarray(out)


# --- the released cell --------------------------------------------------------------


def test_released_cell_conv_weight_count(released):
  cell, _, out = released
  assert out.shape == (1, 9, 11, 256)
  branch_weights = [w for w in cell.weights
                    if w.path.startswith('meta_architecture/branch')
                    and w.path.endswith('weights')]
  # Paper, Table 1: 0.81M parameters in the cell's convs (BN excluded).
  assert sum(int(np.prod(w.shape)) for w in branch_weights) == 814_080
  assert len(branch_weights) == 10
  # stats.json trainable_params_by_part.head (convs, projection, BN gamma/beta).
  assert sum(int(np.prod(w.shape)) for w in cell.trainable_weights) == 1_150_976
  # stats.json num_variables_by_part.head.
  assert len(cell.weights) == 55


def test_released_cell_variable_names(released):
  cell, _, _ = released
  paths = [w.path for w in cell.weights]
  shapes = {w.path: tuple(w.shape) for w in cell.weights}
  expected = []
  for i in range(5):
    for part, kernel in (('depthwise', 'depthwise_weights'), ('pointwise', 'weights')):
      scope = f'meta_architecture/branch{i}_{part}'
      expected += [f'{scope}/{kernel}'] + [f'{scope}/BatchNorm/{n}' for n in _BN]
  expected += ['meta_architecture/concat_projection/weights'] + [
      f'meta_architecture/concat_projection/BatchNorm/{n}' for n in _BN]
  assert paths == expected
  assert shapes['meta_architecture/branch0_depthwise/depthwise_weights'] == (3, 3, 2048, 1)
  assert shapes['meta_architecture/branch0_pointwise/weights'] == (1, 1, 2048, 256)
  for i in range(1, 5):
    assert shapes[f'meta_architecture/branch{i}_depthwise/depthwise_weights'] == (3, 3, 256, 1)
    assert shapes[f'meta_architecture/branch{i}_pointwise/weights'] == (1, 1, 256, 256)
  assert shapes['meta_architecture/concat_projection/weights'] == (1, 1, 1280, 256)


def test_head_batch_norm_epsilon(released):
  cell, _, _ = released
  convs = [c for branch in cell.branch_layers for c in branch] + [cell.concat_projection]
  assert {c.batch_norm.epsilon for c in convs} == {1e-5}


@pytest.mark.parametrize('output_stride, multiplier', [(16, 1), (8, 2)])
def test_conv_rate_multiplier(output_stride, multiplier):
  cell = dpc_lib.DensePredictionCell(_released_cell(), output_stride=output_stride)
  assert cell.conv_rate_multiplier == multiplier
  assert [b[0].rate for b in cell.branch_layers] == [
      (h * multiplier, w * multiplier) for h, w in _RELEASED_RATES]
  # Only the depthwise conv is atrous.
  assert {b[1].rate for b in cell.branch_layers} == {(1, 1)}


def test_output_stride_8_rates_explicitly():
  cell = dpc_lib.DensePredictionCell(_released_cell(), output_stride=8)
  assert [b[0].rate for b in cell.branch_layers] == [
      (2, 12), (36, 30), (12, 6), (2, 2), (12, 42)]


def test_output_stride_32_raises():
  with pytest.raises(ValueError, match='conv_rate_multiplier'):
    dpc_lib.DensePredictionCell(_released_cell(), output_stride=32)


def test_branch_inputs_follow_the_json(released):
  cell, features, _ = released
  outputs = [np.asarray(o) for o in cell.branch_outputs(features)]
  assert all(o.shape == (1, 9, 11, 256) for o in outputs)
  inputs = [b['input'] for b in _released_cell()]
  assert inputs == [-1, 0, 1, 0, 0]
  for i, source in enumerate(inputs):
    x = features if source < 0 else outputs[source]
    np.testing.assert_allclose(
        np.asarray(layers.apply_sequence(cell.branch_layers[i], x)), outputs[i], atol=1e-4)


def _perturbed_branches(cell, features, branch):
  """Branch outputs after shifting branch `branch`'s output (pointwise BN beta)."""
  before = [np.asarray(o) for o in cell.branch_outputs(features)]
  beta = cell.branch_layers[branch][-1].batch_norm.beta
  saved = beta.numpy()
  try:
    beta.assign(saved + 1.0)
    after = [np.asarray(o) for o in cell.branch_outputs(features)]
  finally:
    beta.assign(saved)
  return [bool(np.abs(a - b).max() > 1e-4) for a, b in zip(after, before)]


def test_perturbing_a_branch_changes_exactly_its_consumers(released):
  cell, features, _ = released
  # Branch 1 reads 0, 2 reads 1, 3 and 4 read 0.
  assert _perturbed_branches(cell, features, 1) == [False, True, True, False, False]
  assert _perturbed_branches(cell, features, 0) == [True, True, True, True, True]
  assert _perturbed_branches(cell, features, 3) == [False, False, False, True, False]


def test_concat_then_projection(released):
  cell, features, out = released
  branches = ops.concatenate(cell.branch_outputs(features), axis=-1)
  # Dropout (before the projection in DPC) is identity at inference.
  np.testing.assert_allclose(np.asarray(cell.concat_projection(branches)), out, atol=1e-4)
  assert cell.dropout.rate == pytest.approx(0.1)


def test_dropout_sits_before_the_projection():
  keras.utils.set_random_seed(0)
  features = _features((1, 5, 7, 8), seed=9)
  cell = dpc_lib.DensePredictionCell(
      [{'op': 'conv', 'kernel': 1, 'input': -1}], conv_kwargs=dict(fine_tune_batch_norm=False))
  cell(features)
  # A positive averaging projection with identity BN: each output sums 256
  # non-negative branch channels, so dropping some inputs (before the
  # projection) never zeroes an output, while dropout after it would zero ~10%.
  cell.concat_projection.kernel.assign(np.full((1, 1, 256, 256), 1 / 256, np.float32))
  bn = cell.concat_projection.batch_norm
  bn.moving_variance.assign(np.full(256, 1 - bn.epsilon, np.float32))
  inference = np.asarray(cell(features, training=False))
  assert (inference > 0).all()
  out = np.asarray(cell(features, training=True))
  assert (out > 0).all()
  assert np.abs(out - inference).max() > 1e-4  # Dropout did act.


# --- 1x1 conv and pyramid pooling branches --------------------------------------


_MIXED_CELL = [
    {'op': 'conv', 'kernel': 1, 'input': -1},
    {'op': 'pyramid_pooling', 'grid_size': [2, 2], 'input': -1},
    {'op': 'conv', 'kernel': 3, 'rate': [1, 3], 'input': 1},
]


def _record_average_pool(monkeypatch):
  calls = []
  original = ops.average_pool

  def spy(inputs, pool_size, *args, **kwargs):
    out = original(inputs, pool_size, *args, **kwargs)
    calls.append((tuple(pool_size), tuple(out.shape)))
    return out

  monkeypatch.setattr(ops, 'average_pool', spy)
  return calls


def test_one_by_one_and_pyramid_pooling_variables():
  cell = dpc_lib.DensePredictionCell(_MIXED_CELL, output_stride=16)
  cell(_features((1, 9, 11, 32)))
  shapes = {w.path: tuple(w.shape) for w in cell.weights}
  assert shapes['meta_architecture/branch0/weights'] == (1, 1, 32, 256)
  assert shapes['meta_architecture/branch1/weights'] == (1, 1, 32, 256)
  assert shapes['meta_architecture/branch2_depthwise/depthwise_weights'] == (3, 3, 256, 1)
  assert shapes['meta_architecture/concat_projection/weights'] == (1, 1, 768, 256)
  assert not any(p.startswith('meta_architecture/branch0_') for p in shapes)
  # Neither a 1x1 conv nor the pooling's conv gets an atrous rate.
  assert cell.branch_layers[0][0].rate == (1, 1)


def test_pyramid_pooling_branch(monkeypatch):
  features = _features((1, 9, 11, 6), seed=3)
  cell = dpc_lib.DensePredictionCell(_MIXED_CELL, output_stride=16)
  cell(features)
  calls = _record_average_pool(monkeypatch)
  outputs = [np.asarray(o) for o in cell.branch_outputs(features)]
  # grid 2x2 on 9x11: kernel (ceil(9/2), ceil(11/2)) = (5, 6), stride 1, VALID -> 5x6.
  assert calls == [((5, 6), (1, 5, 6, 6))]
  pooled = reference.avg_pool_valid(features.astype(np.float64), 5, 6)
  branch = np.asarray(cell.branch_layers[1][0](pooled.astype(np.float32)), np.float64)
  assert outputs[1].shape == (1, 9, 11, 256)
  np.testing.assert_allclose(outputs[1], reference.resize_bilinear(branch, 9, 11), atol=1e-4)
  # 1x1 conv branch: conv + BN (identity when fresh) + ReLU.
  conv = np.einsum('bhwc,cd->bhwd', features, np.asarray(cell.branch_layers[0][0].kernel)[0, 0])
  np.testing.assert_allclose(outputs[0], np.maximum(conv / np.sqrt(1 + 1e-5), 0), atol=1e-4)


def test_pyramid_pooling_with_image_pooling_crop(monkeypatch):
  features = _features((1, 9, 11, 6), seed=4)
  # Crop 129x161 -> 9x11 at OS16; pooling crop 97x129, grid 2:
  # kernel scale_dimension(97, 1/32) = 4, scale_dimension(129, 1/32) = 5.
  assert sizes.pyramid_pooling_kernel(9, 2, image_pooling_crop_size=97, output_stride=16) == 4
  assert sizes.pyramid_pooling_kernel(11, 2, image_pooling_crop_size=129, output_stride=16) == 5
  cell = dpc_lib.DensePredictionCell(_MIXED_CELL, output_stride=16,
                                     image_pooling_crop_size=(97, 129))
  cell(features)
  calls = _record_average_pool(monkeypatch)
  outputs = [np.asarray(o) for o in cell.branch_outputs(features)]
  assert calls == [((4, 5), (1, 6, 7, 6))]
  pooled = reference.avg_pool_valid(features.astype(np.float64), 4, 5)
  branch = np.asarray(cell.branch_layers[1][0](pooled.astype(np.float32)), np.float64)
  np.testing.assert_allclose(outputs[1], reference.resize_bilinear(branch, 9, 11), atol=1e-4)


def test_global_pyramid_pooling_is_constant():
  features = _features((1, 9, 11, 6), seed=5)
  cell = dpc_lib.DensePredictionCell(
      [{'op': 'pyramid_pooling', 'grid_size': [1, 1], 'input': -1}])
  cell(features)
  out = np.asarray(cell.branch_outputs(features)[0])
  np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1], out.shape), atol=1e-6)


# --- config and validation ----------------------------------------------------------


def test_config_round_trip():
  cell = dpc_lib.DensePredictionCell(_MIXED_CELL, output_stride=8,
                                     image_pooling_crop_size=(97, 129),
                                     conv_kwargs=dict(batch_norm_epsilon=1e-5))
  config = cell.get_config()
  assert config['cell'] == _MIXED_CELL
  clone = dpc_lib.DensePredictionCell.from_config(config)
  assert clone.get_config() == config
  assert clone.branches == cell.branches
  assert clone.name == 'meta_architecture'
  assert [b[0].rate for b in clone.branch_layers] == [(1, 1), (1, 1), (2, 6)]


def test_accepts_parsed_branches():
  cell = dpc_lib.DensePredictionCell(cell_lib.load_cell(cell_lib.RELEASED_CELL_PATH))
  assert [b[0].rate for b in cell.branch_layers] == _RELEASED_RATES


@pytest.mark.parametrize('bad, message', [
    ([{'op': 'conv', 'kernel': 3, 'rate': [1, 1], 'input': 0}], 'input'),
    ([{'op': 'dilated', 'kernel': 3, 'input': -1}], 'op'),
    ([{'op': 'conv', 'kernel': 5, 'input': -1}], 'kernel'),
    ([{'op': 'pyramid_pooling', 'input': -1}], 'grid_size'),
    ([], 'empty'),
])
def test_bad_cell_raises(bad, message):
  with pytest.raises(ValueError, match=message):
    dpc_lib.DensePredictionCell(bad)


def test_depthwise_dilation_larger_than_map_reads_padding(released):
  cell, features, _ = released
  # Branch 1 (rate 18x15 on 9x11): only the centre tap sees data.
  x = np.asarray(cell.branch_outputs(features)[0])
  depthwise = cell.branch_layers[1][0]
  full = tf.nn.depthwise_conv2d(x, depthwise.kernel, [1, 1, 1, 1], 'SAME',
                                dilations=[18, 15]).numpy()
  centre = x * np.asarray(depthwise.kernel)[1, 1, :, 0]
  np.testing.assert_allclose(full, centre, atol=1e-4)
  np.testing.assert_allclose(np.asarray(depthwise(x)),
                             np.maximum(centre / np.sqrt(1 + 1e-5), 0), atol=1e-4)
