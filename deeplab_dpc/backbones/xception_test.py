"""Tests for the Xception backbones (`deeplab_dpc.backbones.xception`).

Structure (units, scopes, strides, rates) is checked against the original
`core/xception.py` as `docs/original_semantics.md` describes it; the module's
arithmetic against a `tf.nn` reference. Big networks are built once per module
at a small non-square crop (33x49) to keep the file fast.
"""

import functools
import re

import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import layers
from deeplab_dpc.backbones import base
from deeplab_dpc.backbones import xception

CROP = (33, 49)
_ENTRY_END_POINT_65 = 'entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise'
_ENTRY_END_POINT_71 = 'entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise'
_BN = ('gamma', 'beta', 'moving_mean', 'moving_variance')
_UNIT_RE = re.compile(r'^xception_\d+/((?:entry|middle|exit)_flow/block\d+/unit_\d+)/')


def _images(seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(0, 255, size=(1,) + CROP + (3,)).astype(np.float32)


def _build(variant, output_stride=16, end_points=(), multi_grid=None):
  backbone = xception.Xception(variant, output_stride=output_stride, end_points=end_points,
                               multi_grid=multi_grid)
  outputs = backbone(_images(), training=False)
  return backbone, {k: np.asarray(v) for k, v in outputs.items()}


@pytest.fixture(scope='module')
def x65():
  return _build('xception_65', end_points=(_ENTRY_END_POINT_65,))


@pytest.fixture(scope='module')
def x71():
  return _build('xception_71', end_points=(_ENTRY_END_POINT_71,))


@pytest.fixture(scope='module')
def x41_by_stride():
  # OS16 is covered by the xception_65 / xception_71 builds.
  return {os_: _build('xception_41', output_stride=os_) for os_ in (8, 32)}


@functools.lru_cache(maxsize=None)
def _unbuilt(variant, output_stride=16, multi_grid=None):
  """A constructed (not built) backbone: enough to inspect strides and rates."""
  return xception.Xception(variant, output_stride=output_stride, multi_grid=multi_grid)


def _unit_scopes_of_weights(backbone):
  scopes = []
  for w in backbone.weights:
    match = _UNIT_RE.match(w.path)
    if match and match.group(1) not in scopes:
      scopes.append(match.group(1))
  return scopes


def _expected_unit_scopes(entry_blocks, middle_units):
  return ([f'entry_flow/block{i}/unit_1' for i in range(1, entry_blocks + 1)] +
          [f'middle_flow/block1/unit_{i}' for i in range(1, middle_units + 1)] +
          ['exit_flow/block1/unit_1', 'exit_flow/block2/unit_1'])


_STRUCTURE = {'xception_41': (3, 8), 'xception_65': (3, 16), 'xception_71': (5, 16)}


# --- structure ------------------------------------------------------------------


@pytest.mark.parametrize('variant', sorted(_STRUCTURE))
def test_units_per_flow(variant):
  backbone = _unbuilt(variant)
  assert backbone.unit_scopes == _expected_unit_scopes(*_STRUCTURE[variant])
  assert backbone.name == variant


def test_block_tables_depths_and_skips():
  blocks = {b.scope: b for b in xception.XCEPTION_BLOCKS['xception_71']}
  assert [blocks[f'entry_flow/block{i}'].depth_list[0] for i in range(1, 6)] == [
      128, 256, 256, 728, 728]
  assert [blocks[f'entry_flow/block{i}'].stride for i in range(1, 6)] == [2, 1, 2, 1, 2]
  for variant in _STRUCTURE:
    by_scope = {b.scope: b for b in xception.XCEPTION_BLOCKS[variant]}
    assert by_scope['exit_flow/block1'].depth_list == (728, 1024, 1024)
    assert by_scope['exit_flow/block2'].depth_list == (1536, 1536, 2048)
    assert by_scope['middle_flow/block1'].skip_connection_type == 'sum'
    assert by_scope['exit_flow/block2'].skip_connection_type == 'none'
    assert by_scope['exit_flow/block2'].activation_fn_in_separable_conv
    assert [b.scope for b in xception.XCEPTION_BLOCKS[variant]
            if b.activation_fn_in_separable_conv] == ['exit_flow/block2']


def _check_variable_paths(backbone, variant, entry_blocks, middle_units):
  paths = [w.path for w in backbone.weights]
  assert len(paths) == len(set(paths))
  stem = [f'{variant}/entry_flow/conv1_{i}/{v}' for i in (1, 2)
          for v in ('weights',) + tuple(f'BatchNorm/{n}' for n in _BN)]
  assert paths[:10] == stem
  scopes = _expected_unit_scopes(entry_blocks, middle_units)
  assert _unit_scopes_of_weights(backbone) == scopes
  rest = paths[10:]
  for scope in scopes:
    prefix = f'{variant}/{scope}/xception_module/'
    expected = []
    for i in (1, 2, 3):
      expected += [f'{prefix}separable_conv{i}_depthwise/depthwise_weights'] + [
          f'{prefix}separable_conv{i}_depthwise/BatchNorm/{n}' for n in _BN]
      expected += [f'{prefix}separable_conv{i}_pointwise/weights'] + [
          f'{prefix}separable_conv{i}_pointwise/BatchNorm/{n}' for n in _BN]
    # Only the entry flow and exit_flow/block1 have a `conv` shortcut, after conv3.
    if scope.startswith('entry_flow') or scope.startswith('exit_flow/block1'):
      expected += [f'{prefix}shortcut/weights'] + [f'{prefix}shortcut/BatchNorm/{n}'
                                                   for n in _BN]
    assert rest[:len(expected)] == expected, scope
    rest = rest[len(expected):]
  assert not rest


def test_xception_65_variable_paths(x65):
  backbone, _ = x65
  _check_variable_paths(backbone, 'xception_65', 3, 16)
  # stats.json: 660 backbone variables.
  assert len(backbone.weights) == 660
  shapes = {w.path: tuple(w.shape) for w in backbone.weights}
  assert shapes['xception_65/entry_flow/conv1_1/weights'] == (3, 3, 3, 32)
  assert shapes['xception_65/entry_flow/conv1_2/weights'] == (3, 3, 32, 64)
  unit = 'xception_65/entry_flow/block1/unit_1/xception_module/'
  assert shapes[unit + 'separable_conv1_depthwise/depthwise_weights'] == (3, 3, 64, 1)
  assert shapes[unit + 'separable_conv1_pointwise/weights'] == (1, 1, 64, 128)
  assert shapes[unit + 'shortcut/weights'] == (1, 1, 64, 128)
  exit2 = 'xception_65/exit_flow/block2/unit_1/xception_module/'
  assert shapes[exit2 + 'separable_conv3_pointwise/weights'] == (1, 1, 1536, 2048)
  assert not any('/biases' in p for p in shapes)


def test_xception_71_variable_paths(x71):
  backbone, _ = x71
  _check_variable_paths(backbone, 'xception_71', 5, 16)
  paths = {w.path for w in backbone.weights}
  assert 'xception_71/entry_flow/block5/unit_1/xception_module/shortcut/weights' in paths
  assert 'xception_71/middle_flow/block1/unit_16/xception_module/separable_conv3_pointwise/' \
         'weights' in paths
  assert not any('middle_flow/block1/unit_17' in p for p in paths)
  assert not any('shortcut' in p for p in paths
                 if '/middle_flow/' in p or '/exit_flow/block2/' in p)


def test_xception_41_variable_paths(x41_by_stride):
  backbone, _ = x41_by_stride[8]
  _check_variable_paths(backbone, 'xception_41', 3, 8)


def test_xception_65_parameter_count(x65):
  backbone, _ = x65
  count = lambda ws: sum(int(np.prod(w.shape)) for w in ws)
  # stats.json trainable_params_by_part.backbone: weights + BN gamma/beta.
  assert count(backbone.trainable_weights) == 37_867_312
  assert all(w.path.endswith(('moving_mean', 'moving_variance'))
             for w in backbone.non_trainable_weights)
  assert len(backbone.non_trainable_weights) == 2 * sum(
      w.path.endswith('/gamma') for w in backbone.weights)


def test_backbone_batch_norm_epsilon():
  backbone = _unbuilt('xception_41')
  convs = [backbone.conv1_1, backbone.conv1_2] + [
      c for unit in backbone.units for c in unit.depthwise_convs + unit.pointwise_convs +
      ([unit.shortcut] if unit.shortcut else [])]
  assert {c.batch_norm.epsilon for c in convs} == {1e-3}
  assert all(c.batch_norm.momentum == pytest.approx(0.9997) for c in convs)


def test_stem():
  backbone = _unbuilt('xception_65')
  c1, c2 = backbone.conv1_1, backbone.conv1_2
  assert (c1.filters, c1.kernel_size, c1.strides, c1.padding, c1.activation) == (
      32, (3, 3), 2, 'fixed', 'relu')
  assert (c2.filters, c2.kernel_size, c2.strides, c2.padding, c2.activation) == (
      64, (3, 3), 1, 'same', 'relu')
  assert not c1.use_bias and not c2.use_bias


def test_input_scaling():
  out = np.asarray(base.preprocess_zero_mean_unit_range(np.array([0., 127.5, 255.])))
  np.testing.assert_allclose(out, [-1.0, 0.0, 1.0], atol=1e-6)


# --- output stride and rates ----------------------------------------------------


@pytest.mark.parametrize('output_stride', [8, 16, 32])
def test_feature_size_follows_output_stride(x41_by_stride, x65, output_stride):
  _, outputs = x65 if output_stride == 16 else x41_by_stride[output_stride]
  expected = tuple(layers.scale_dimension(c, 1.0 / output_stride) for c in CROP)
  assert outputs[base.FEATURES].shape == (1,) + expected + (2048,)


def _schedule(backbone):
  """{unit scope: (module stride, module rate, [depthwise rates], [depthwise strides])}."""
  return {scope: (u.stride, u.rate, [c.rate for c in u.depthwise_convs],
                  [c.strides for c in u.depthwise_convs])
          for scope, u in zip(backbone.unit_scopes, backbone.units)}


def test_output_stride_16_rates():
  sched = _schedule(_unbuilt('xception_65', 16))
  for i in (1, 2, 3):
    assert sched[f'entry_flow/block{i}/unit_1'][:2] == (2, 1)
  assert sched['middle_flow/block1/unit_16'][:2] == (1, 1)
  assert sched['exit_flow/block1/unit_1'] == (1, 1, [(1, 1)] * 3, [1, 1, 1])
  assert sched['exit_flow/block2/unit_1'] == (1, 2, [(2, 2)] * 3, [1, 1, 1])


def test_output_stride_8_rates():
  sched = _schedule(_unbuilt('xception_65', 8))
  assert sched['entry_flow/block2/unit_1'][:2] == (2, 1)
  assert sched['entry_flow/block3/unit_1'] == (1, 1, [(1, 1)] * 3, [1, 1, 1])
  for i in range(1, 17):
    assert sched[f'middle_flow/block1/unit_{i}'] == (1, 2, [(2, 2)] * 3, [1, 1, 1])
  assert sched['exit_flow/block1/unit_1'] == (1, 2, [(2, 2)] * 3, [1, 1, 1])
  assert sched['exit_flow/block2/unit_1'] == (1, 4, [(4, 4)] * 3, [1, 1, 1])


def test_output_stride_32_rates():
  sched = _schedule(_unbuilt('xception_65', 32))
  assert sched['exit_flow/block1/unit_1'] == (2, 1, [(1, 1)] * 3, [1, 1, 2])
  assert sched['exit_flow/block2/unit_1'][:2] == (1, 1)


def test_strided_units_stride_only_their_third_conv_with_fixed_padding():
  unit = _unbuilt('xception_65', 16).units[0]
  assert [c.strides for c in unit.depthwise_convs] == [1, 1, 2]
  assert [c.padding for c in unit.depthwise_convs] == ['same', 'same', 'fixed']
  assert unit.shortcut.strides == 2 and unit.shortcut.padding == 'same'
  assert all(c.strides == 1 for c in unit.pointwise_convs)


def test_multi_grid_multiplies_exit_block2_rates_only():
  sched = _schedule(_unbuilt('xception_65', 16, (1, 2, 4)))
  assert sched['exit_flow/block2/unit_1'][2] == [(2, 2), (4, 4), (8, 8)]
  assert sched['exit_flow/block1/unit_1'][2] == [(1, 1)] * 3
  assert sched['middle_flow/block1/unit_1'][2] == [(1, 1)] * 3
  sched8 = _schedule(_unbuilt('xception_65', 8, (1, 2, 4)))
  assert sched8['exit_flow/block2/unit_1'][2] == [(4, 4), (8, 8), (16, 16)]
  assert sched8['middle_flow/block1/unit_1'][2] == [(2, 2)] * 3
  default = _schedule(_unbuilt('xception_65', 16, None))
  assert default['exit_flow/block2/unit_1'][2] == [(2, 2)] * 3


@pytest.mark.parametrize('variant, output_stride', [('xception_65', 64),
                                                    ('xception_71', 128)])
def test_unreachable_output_stride_raises(variant, output_stride):
  with pytest.raises(ValueError, match='cannot be reached'):
    xception.Xception(variant, output_stride=output_stride)


def test_odd_output_stride_raises():
  with pytest.raises(ValueError, match='multiple of 2'):
    xception.Xception('xception_65', output_stride=15)


def test_output_stride_walk():
  # Stem excluded: the walk of xception_65's units towards 8 (OS16).
  strides = [2, 2, 2] + [1] * 16 + [2, 1]
  walk = base.output_stride_walk(strides, 8)
  assert walk[:3] == [(2, 1)] * 3
  assert walk[-2:] == [(1, 1), (1, 2)]
  assert base.output_stride_walk(strides, None) == [(s, 1) for s in strides]


# --- end points -----------------------------------------------------------------


def test_decoder_end_point_table():
  xception_65 = {
      4: 'entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise',
      8: 'entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise',
      16: 'exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise',
  }
  assert xception.DECODER_END_POINTS['xception_65'] == xception_65
  assert xception.DECODER_END_POINTS['xception_41'] == xception_65
  assert xception.DECODER_END_POINTS['xception_71'] == {
      4: 'entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise',
      8: 'entry_flow/block5/unit_1/xception_module/separable_conv2_pointwise',
      16: 'exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise',
  }
  # Every entry is a real end point of its variant.
  for variant, table in xception.DECODER_END_POINTS.items():
    xception.Xception(variant, end_points=tuple(table.values()))


def test_xception_65_stride_4_end_point(x65):
  _, outputs = x65
  assert set(outputs) == {base.FEATURES, _ENTRY_END_POINT_65}
  expected = tuple(layers.scale_dimension(c, 1 / 4) for c in CROP)
  assert outputs[_ENTRY_END_POINT_65].shape == (1,) + expected + (256,)
  assert outputs[base.FEATURES].shape == (1, 3, 4, 2048)


def test_xception_71_decoder_end_point_is_stride_4(x71):
  _, outputs = x71
  expected = tuple(layers.scale_dimension(c, 1 / 4) for c in CROP)
  assert outputs[_ENTRY_END_POINT_71].shape == (1,) + expected + (256,)
  assert outputs[base.FEATURES].shape == (1, 3, 4, 2048)


def test_unknown_end_point_raises_naming_it():
  name = 'entry_flow/block4/unit_1/xception_module/separable_conv2_pointwise'
  with pytest.raises(ValueError, match='block4/unit_1'):
    xception.Xception('xception_65', end_points=(name,))
  with pytest.raises(ValueError, match='separable_conv2_depthwise'):
    xception.Xception('xception_65', end_points=(_ENTRY_END_POINT_65.replace(
        'pointwise', 'depthwise'),))


def test_unknown_variant_raises():
  with pytest.raises(ValueError, match='xception_99'):
    xception.Xception('xception_99')


# --- activations: what the original computes -------------------------------------


def test_entry_end_point_is_signed_and_features_are_relu(x65):
  _, outputs = x65
  # The end point is a BN output with no ReLU (pre-activation modules).
  assert outputs[_ENTRY_END_POINT_65].min() < 0
  # exit_flow/block2 ReLUs after its BNs and has no skip: non-negative features.
  assert outputs[base.FEATURES].min() >= 0
  assert outputs[base.FEATURES].max() > 0


def test_end_point_independent_of_downstream(x65):
  backbone, outputs = x65
  # The end point of block2 does not depend on block3 onwards.
  saved = backbone.units[2].pointwise_convs[0].kernel.numpy()
  try:
    backbone.units[2].pointwise_convs[0].kernel.assign(np.zeros_like(saved))
    again = backbone(_images(), training=False)
  finally:
    backbone.units[2].pointwise_convs[0].kernel.assign(saved)
  np.testing.assert_allclose(np.asarray(again[_ENTRY_END_POINT_65]),
                             outputs[_ENTRY_END_POINT_65], atol=1e-5)
  # (Features are small with the default initialisation: compare relatively.)
  change = np.abs(np.asarray(again[base.FEATURES]) - outputs[base.FEATURES]).max()
  assert change > 1e-3 * np.abs(outputs[base.FEATURES]).max()


def test_stem_and_first_module_against_reference(x65):
  backbone, _ = x65
  images = _images()
  x = (2.0 / 255.0) * images - 1.0
  y = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
  y = tf.nn.conv2d(y, backbone.conv1_1.kernel, 2, 'VALID').numpy()
  y = np.maximum(_np_bn(y, backbone.conv1_1.batch_norm, 1e-3), 0)
  y = tf.nn.conv2d(y.astype(np.float32), backbone.conv1_2.kernel, 1, 'SAME').numpy()
  y = np.maximum(_np_bn(y, backbone.conv1_2.batch_norm, 1e-3), 0).astype(np.float32)
  assert y.shape == (1, 17, 25, 64)  # 33 -> 17, 49 -> 25 (fixed padding, stride 2).
  module_out, _ = backbone.units[0](y)
  np.testing.assert_allclose(np.asarray(module_out), _reference_module(y, backbone.units[0]),
                             rtol=1e-4, atol=1e-4)


def _np_bn(x, bn, eps):
  gamma, beta, mean, var = (np.asarray(getattr(bn, n), np.float64) for n in _BN)
  return gamma * (np.asarray(x, np.float64) - mean) / np.sqrt(var + eps) + beta


def _reference_module(x, module):
  """The original xception_module, written with tf.nn and numpy."""
  eps = 1e-3
  act_in_conv = module.activation_fn_in_separable_conv
  r = np.asarray(x, np.float32)
  for dw, pw in zip(module.depthwise_convs, module.pointwise_convs):
    if not act_in_conv:
      r = np.maximum(r, 0)
    kernel = np.asarray(dw.kernel)
    if dw.strides > 1:
      r = tf.nn.depthwise_conv2d(tf.pad(r, [[0, 0], [1, 1], [1, 1], [0, 0]]), kernel,
                                 [1, 2, 2, 1], 'VALID').numpy()
    else:
      r = tf.nn.depthwise_conv2d(r, kernel, [1, 1, 1, 1], 'SAME',
                                 dilations=list(dw.rate)).numpy()
    r = _np_bn(r, dw.batch_norm, eps)
    if act_in_conv:
      r = np.maximum(r, 0)
    r = np.einsum('bhwc,cd->bhwd', r, np.asarray(pw.kernel, np.float64)[0, 0])
    r = _np_bn(r, pw.batch_norm, eps)
    if act_in_conv:
      r = np.maximum(r, 0)
    r = r.astype(np.float32)
  if module.skip_connection_type == 'conv':
    s = module.stride
    # 1x1 SAME with stride s takes positions 0, s, 2s, ... of the raw input.
    shortcut = np.einsum('bhwc,cd->bhwd', np.asarray(x, np.float64)[:, ::s, ::s],
                         np.asarray(module.shortcut.kernel, np.float64)[0, 0])
    r = r + _np_bn(shortcut, module.shortcut.batch_norm, eps)
  elif module.skip_connection_type == 'sum':
    r = r + x
  return r


def _randomized_module(seed, in_channels, **kwargs):
  module = xception.XceptionModule(conv_kwargs=dict(batch_norm_epsilon=1e-3), **kwargs)
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(1, 8, 10, in_channels)).astype(np.float32)
  module(x)
  convs = module.depthwise_convs + module.pointwise_convs + (
      [module.shortcut] if module.shortcut else [])
  for conv in convs:
    # Unit-gain kernels keep the signal alive through the three convs.
    shape = tuple(conv.kernel.shape)
    fan_in = shape[0] * shape[1] * (1 if conv.depthwise else shape[2])
    conv.kernel.assign((rng.normal(size=shape) / np.sqrt(fan_in)).astype(np.float32))
    bn = conv.batch_norm
    n = bn.gamma.shape[0]
    bn.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
    bn.beta.assign(rng.normal(0, 0.5, n).astype(np.float32))
    bn.moving_mean.assign(rng.normal(0, 0.5, n).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
  return module, x


@pytest.mark.parametrize('kwargs', [
    # Entry-flow module: pre-activation, strided (fixed padding on an even input).
    dict(depth_list=(6, 6, 8), skip_connection_type='conv', stride=2),
    # Middle-flow module: identity skip, atrous.
    dict(depth_list=(4, 4, 4), skip_connection_type='sum', stride=1, rate=2),
    # exit_flow/block2: ReLU after every BN, no skip, multi-grid.
    dict(depth_list=(6, 6, 8), skip_connection_type='none', stride=1, rate=2,
         unit_rate_list=(1, 2, 4), activation_fn_in_separable_conv=True),
])
def test_module_matches_reference(kwargs):
  module, x = _randomized_module(1, 4, **kwargs)
  out, end_points = module(x)
  expected = _reference_module(x, module)
  assert out.shape == expected.shape
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4, atol=1e-4)
  assert set(end_points) == {f'separable_conv{i}_pointwise' for i in (1, 2, 3)}
  if not kwargs.get('activation_fn_in_separable_conv'):
    assert np.asarray(out).min() < 0  # No ReLU after the sum.
  else:
    assert np.asarray(out).min() >= 0


def test_module_strided_output_size_on_odd_and_even_inputs():
  module = xception.XceptionModule((4, 4, 4), 'conv', 2)
  for size, expected in ((8, 4), (9, 5), (17, 9)):
    out, _ = module(np.zeros((1, size, size, 3), np.float32))
    assert out.shape == (1, expected, expected, 4)


def test_shortcut_reads_the_input_before_relu():
  module, x = _randomized_module(2, 4, depth_list=(4, 4, 6), skip_connection_type='conv',
                                 stride=2)
  # With the last pointwise kernel zero the residual is a per-channel constant,
  # so the output minus that constant is the shortcut alone.
  module.pointwise_convs[2].kernel.assign(np.zeros((1, 1, 4, 6), np.float32))
  residual = _np_bn(np.zeros(6), module.pointwise_convs[2].batch_norm, 1e-3)
  shortcut = np.asarray(module(x)[0]) - residual
  kernel = np.asarray(module.shortcut.kernel, np.float64)[0, 0]
  bn = module.shortcut.batch_norm
  raw = _np_bn(np.einsum('bhwc,cd->bhwd', x[:, ::2, ::2], kernel), bn, 1e-3)
  relud = _np_bn(np.einsum('bhwc,cd->bhwd', np.maximum(x, 0)[:, ::2, ::2], kernel), bn, 1e-3)
  np.testing.assert_allclose(shortcut, raw, rtol=1e-4, atol=1e-4)
  assert np.abs(shortcut - relud).max() > 1e-2


def test_pre_activation_relu_on_module_input():
  module, x = _randomized_module(3, 4, depth_list=(4, 4, 4), skip_connection_type='none',
                                 stride=1)
  # Pre-activation: the residual path sees relu(x), so negating the negative
  # part of x changes nothing on that path.
  out_a, _ = module(x)
  out_b, _ = module(np.maximum(x, 0))
  np.testing.assert_allclose(np.asarray(out_a), np.asarray(out_b), atol=1e-6)
  module_post, x = _randomized_module(3, 4, depth_list=(4, 4, 4), skip_connection_type='none',
                                      stride=1, activation_fn_in_separable_conv=True)
  out_a, _ = module_post(x)
  out_b, _ = module_post(np.maximum(x, 0))
  assert np.abs(np.asarray(out_a) - np.asarray(out_b)).max() > 1e-3


def test_bad_skip_connection_type_raises():
  with pytest.raises(ValueError, match='concat'):
    xception.XceptionModule((4, 4, 4), 'concat', 1)


# --- config -----------------------------------------------------------------------


def test_xception_config_round_trip():
  backbone = xception.Xception('xception_71', output_stride=8, multi_grid=(1, 2, 4),
                               end_points=(_ENTRY_END_POINT_71,), fine_tune_batch_norm=False,
                               weight_decay=1e-4)
  config = backbone.get_config()
  clone = xception.Xception.from_config(config)
  assert clone.get_config() == config
  assert clone.name == 'xception_71'
  assert _schedule(clone) == _schedule(backbone)
  assert clone.units[0].pointwise_convs[0].fine_tune_batch_norm is False


def test_xception_module_config_round_trip():
  module = xception.XceptionModule((4, 6, 8), 'conv', 2, rate=1, unit_rate_list=(1, 2, 4),
                                   conv_kwargs=dict(batch_norm_epsilon=1e-3),
                                   name='xception_module')
  config = module.get_config()
  clone = xception.XceptionModule.from_config(config)
  assert clone.get_config() == config
  assert [c.rate for c in clone.depthwise_convs] == [(1, 1), (2, 2), (4, 4)]
