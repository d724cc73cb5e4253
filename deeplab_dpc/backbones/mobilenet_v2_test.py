"""Tests for the MobileNet-v2 backbone (`deeplab_dpc.backbones.mobilenet_v2`).

The golden case `testdata/golden/mobilenetv2_dpc_os16` was produced by the
original TF1 code; it is imported here through a name-based TF1 checkpoint, the
path users take with the released checkpoints.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_dpc import cell
from deeplab_dpc import checkpoints
from deeplab_dpc import constants
from deeplab_dpc import layers
from deeplab_dpc import model as model_lib
from deeplab_dpc import options as options_lib
from deeplab_dpc.backbones import base
from deeplab_dpc.backbones import mobilenet_v2
from deeplab_dpc.testing import recipe_checkpoint

_GOLDEN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'testdata', 'golden',
                           'mobilenetv2_dpc_os16')
_CROP = (129, 161)
_FEATURE_ARRAYS = ('backbone_features', 'dpc_branch0', 'dpc_branch1', 'dpc_branch2',
                   'dpc_branch3', 'dpc_branch4', 'head_output')
# Blocks with `+ input` (semantics doc, MobileNet-v2 item 2).
_RESIDUAL_BLOCKS = {'expanded_conv_2', 'expanded_conv_4', 'expanded_conv_5',
                    'expanded_conv_7', 'expanded_conv_8', 'expanded_conv_9',
                    'expanded_conv_11', 'expanded_conv_12', 'expanded_conv_14',
                    'expanded_conv_15'}


def _images(height, width, seed=0):
  return np.random.default_rng(seed).uniform(0, 255, (1, height, width, 3)).astype(np.float32)


def _param_count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


def _build(height=33, width=33, **kwargs):
  keras.utils.set_random_seed(0)
  backbone = mobilenet_v2.MobileNetV2(**kwargs)
  return backbone, backbone(_images(height, width), training=False)


# --- golden parity -----------------------------------------------------------


@pytest.fixture(scope='module')
def golden(tmp_path_factory):
  """The golden case: reference arrays, manifest, and our model's outputs."""
  reference = dict(np.load(os.path.join(_GOLDEN_DIR, 'outputs.npz')))
  manifest = recipe_checkpoint.load_manifest(os.path.join(_GOLDEN_DIR, 'manifest.json'))
  options = options_lib.ModelOptions.create(
      num_classes=19, model_variant='mobilenet_v2', crop_size=list(_CROP),
      output_stride=16, dense_prediction_cell_json=cell.RELEASED_CELL_PATH)
  model = model_lib.build_model(options)
  prefix = str(tmp_path_factory.mktemp('golden') / 'model.ckpt')
  recipe_checkpoint.write_tf1_checkpoint(recipe_checkpoint.recipe_weights(manifest), prefix)
  result = checkpoints.load_tf1_checkpoint(model, prefix)  # strict
  images = reference['input_images'].astype(np.float32)
  ours = {k: np.asarray(v) for k, v in model.extract(images).items()}
  predicted = model_lib.predict(model, images)
  ours['merged_logits'] = ours['logits']  # A same-size align_corners resize.
  ours['logits_upsampled'] = np.asarray(predicted['logits'])
  ours['predictions'] = np.asarray(predicted['semantic_predictions'])
  return dict(reference=reference, manifest=manifest, model=model, ours=ours,
              load_result=result)


def test_golden_checkpoint_loads_strictly(golden):
  assert golden['load_result']['loaded'] == len(golden['manifest']) == 312
  assert golden['load_result']['skipped'] == []
  assert golden['load_result']['ignored'] == []


@pytest.mark.parametrize('name', _FEATURE_ARRAYS)
def test_golden_features(golden, name):
  ref, ours = golden['reference'][name], golden['ours'][name]
  assert ours.shape == ref.shape
  scale = max(1.0, float(np.abs(ref).max()))
  assert np.abs(ours - ref).max() <= 1e-3 * scale


@pytest.mark.parametrize('name', ['logits', 'merged_logits', 'logits_upsampled'])
def test_golden_logits(golden, name):
  ref, ours = golden['reference'][name], golden['ours'][name]
  assert ours.shape == ref.shape
  scale = max(1.0, float(np.abs(ref).max()))
  diff = np.abs(ours - ref)
  assert diff.max() <= 1e-3 * scale
  assert diff.mean() <= 1e-4 * scale


def test_golden_merged_logits_equal_logits(golden):
  ref = golden['reference']
  np.testing.assert_array_equal(ref['merged_logits'], ref['logits'])


def test_golden_predictions(golden):
  ref, ours = golden['reference'], golden['ours']['predictions']
  assert ours.shape == ref['predictions'].shape
  disagree = ours != ref['predictions']
  assert 1.0 - disagree.mean() >= 0.999
  upsampled = ref['logits_upsampled']
  scale = max(1.0, float(np.abs(upsampled).max()))
  top2 = np.sort(upsampled, axis=-1)[..., -2:]
  gap = top2[..., 1] - top2[..., 0]
  assert np.all(gap[disagree] < 1e-3 * scale)


def test_golden_features_are_signed_linear_bottleneck(golden):
  features = golden['ours']['backbone_features']
  assert features.shape == (1, 9, 11, 320)
  assert features.min() < 0  # No activation after the last projection.


def test_variable_names_follow_manifest(golden):
  """Every name of the manifest, with the backbone in the manifest's exact order."""
  ours = [checkpoints.original_name(v.path) for v in golden['model'].weights]
  theirs = [v['name'] for v in golden['manifest']]
  assert set(ours) == set(theirs)
  assert len(ours) == len(theirs)
  backbone = [n for n in ours if n.startswith('MobilenetV2/')]
  assert backbone == [n for n in theirs if n.startswith('MobilenetV2/')]
  assert len(backbone) == 255  # 51 convs x (kernel + 4 batch-norm variables).

  def scope_order(names):
    scopes = []
    for n in names:
      scope = n.rsplit('/', 1)[0].replace('/BatchNorm', '')
      if not scopes or scopes[-1] != scope:
        scopes.append(scope)
    return scopes

  assert scope_order(ours) == scope_order(theirs)
  shapes = {v['name']: tuple(v['shape']) for v in golden['manifest']}
  for variable in golden['model'].backbone.weights:
    assert tuple(variable.shape) == shapes[checkpoints.original_name(variable.path)]


# --- architecture --------------------------------------------------------------


def test_table_has_stem_and_17_blocks():
  assert len(mobilenet_v2.V2_DEF) == 18
  assert mobilenet_v2.V2_DEF[0].scope == 'Conv' and not mobilenet_v2.V2_DEF[0].is_block
  assert [row.scope for row in mobilenet_v2.V2_DEF[1:]] == (
      ['expanded_conv'] + [f'expanded_conv_{i}' for i in range(1, 17)])


def test_make_divisible():
  assert mobilenet_v2.make_divisible(32, 8) == 32
  assert mobilenet_v2.make_divisible(12, 8) == 16  # Half rounds up.
  assert mobilenet_v2.make_divisible(8.8, 8) == 8  # Rounds down, 9% below.
  assert mobilenet_v2.make_divisible(11.9, 8) == 16  # 8 would be 33% below.
  assert mobilenet_v2.make_divisible(3, 8) == 8  # min_value defaults to the divisor.
  # A min_value below the divisor: 0 -> 1 (min) -> 1 + 8 (10% rule), as the original.
  assert mobilenet_v2.make_divisible(3, 8, 1) == 9
  assert mobilenet_v2.make_divisible(3.2, 1, 1) == 3
  assert mobilenet_v2.make_divisible(0.2, 1, 1) == 1
  # Never more than 10% below the value: 90 -> 96 (nearest), 23 -> 16 -> 32.
  assert mobilenet_v2.make_divisible(90, 16) == 96
  assert mobilenet_v2.make_divisible(23, 16) == 32


def test_channel_rounding():
  assert mobilenet_v2.channel_rounding(1.0, None) == (8, 8)
  assert mobilenet_v2.channel_rounding(0.5, None) == (1, 1)
  assert mobilenet_v2.channel_rounding(0.75, 8) == (8, 1)
  assert mobilenet_v2.channel_rounding(1.0, 4) == (4, 8)


@pytest.mark.parametrize('depth_multiplier,outputs,expansions', [
    (1.0, [32, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320],
     [None, 32, 96, 144, 144, 192, 192, 192, 384, 384, 384, 384, 576, 576, 576,
      960, 960, 960]),
    (0.5, [16, 8, 12, 12, 16, 16, 16, 32, 32, 32, 32, 48, 48, 48, 80, 80, 80, 160],
     [None, 16, 48, 72, 72, 96, 96, 96, 192, 192, 192, 192, 288, 288, 288,
      480, 480, 480]),
])
def test_channels(depth_multiplier, outputs, expansions):
  specs = mobilenet_v2.layer_specs(depth_multiplier)
  assert [s.num_outputs for s in specs] == outputs
  assert [s.expansion_channels for s in specs] == expansions
  assert [s.end_point for s in specs] == [f'layer_{i}' for i in range(1, 19)]
  # Only the first block (factor 1) has no expand conv.
  assert [s.scope for s in specs if s.expansion_channels and not s.has_expand] == [
      'expanded_conv']


def test_channels_rounding_at_other_multipliers():
  specs = mobilenet_v2.layer_specs(0.35)
  # Divisor 1, min depth 1: int(32 * 0.35 + 0.5) = 11; the expansion still uses 8.
  assert specs[0].num_outputs == 11
  assert specs[2].expansion_channels == mobilenet_v2.make_divisible(6 * 6, 8) == 40
  assert [s.num_outputs for s in mobilenet_v2.layer_specs(0.35, divisible_by=8)][:3] == (
      [16, 8, 8])


@pytest.mark.parametrize('depth_multiplier,count', [(1.0, 1_811_712), (0.5, 477_088)])
def test_trainable_parameter_count(depth_multiplier, count):
  backbone, outputs = _build(depth_multiplier=depth_multiplier)
  assert _param_count(backbone.trainable_weights) == count
  assert outputs[base.FEATURES].shape[-1] == (320 if depth_multiplier == 1.0 else 160)
  assert len(backbone.weights) == 255
  # The stem and the first block keep their (scaled) widths in the variables.
  assert tuple(backbone.stem.kernel.shape) == (3, 3, 3, int(32 * depth_multiplier))


def test_residuals_and_block_structure():
  backbone, _ = _build()
  residual = {block.name for block in backbone.blocks if block.use_residual}
  assert residual == _RESIDUAL_BLOCKS
  assert backbone.blocks[0].expand is None
  for block in backbone.blocks:
    assert block.expand is None or block.expand.activation == 'relu6'
    assert block.depthwise.depthwise and block.depthwise.activation == 'relu6'
    assert block.project.activation is None  # Linear bottleneck.
  assert backbone.stem.activation == 'relu6'


def test_batch_norm_initializer_and_regularizers():
  backbone, _ = _build(weight_decay=1e-4, fine_tune_batch_norm=False)
  convs = [backbone.stem] + [c for b in backbone.blocks
                             for c in (b.expand, b.depthwise, b.project) if c is not None]
  assert len(convs) == 51
  for conv in convs:
    assert conv.batch_norm.epsilon == constants.BACKBONE_BATCH_NORM_EPSILON == 1e-3
    assert conv.batch_norm.momentum == constants.MOBILENET_BATCH_NORM_DECAY
    assert conv.batch_norm.center and conv.batch_norm.scale
    assert conv.padding == 'same'
    assert conv.kernel_stddev == 0.09
    assert conv.fine_tune_batch_norm is False
    assert not conv.use_bias
    # Depthwise weights are not regularised (training_scope), the others are.
    assert conv.weight_decay == (0.0 if conv.depthwise else 1e-4)
  assert len(backbone.losses) == 51 - 17


@pytest.mark.parametrize('output_stride', [8, 16, 32])
def test_output_stride(output_stride):
  backbone, outputs = _build(*_CROP, output_stride=output_stride)
  expected = (layers.scale_dimension(_CROP[0], 1 / output_stride),
              layers.scale_dimension(_CROP[1], 1 / output_stride))
  assert tuple(outputs[base.FEATURES].shape) == (1,) + expected + (320,)
  rates = {b.name: (b.depthwise.strides, b.depthwise.rate[0]) for b in backbone.blocks}
  nominal = {row.scope: row.stride for row in mobilenet_v2.V2_DEF}
  if output_stride == 32:
    assert all(rate == 1 and stride == nominal[n] for n, (stride, rate) in rates.items())
  if output_stride == 16:
    assert rates['expanded_conv_12'] == (1, 1)
    assert rates['expanded_conv_13'] == (1, 1)  # Lost its stride.
    for i in (14, 15, 16):
      assert rates[f'expanded_conv_{i}'] == (1, 2)
  if output_stride == 8:
    assert rates['expanded_conv_5'] == (1, 1)
    assert rates['expanded_conv_6'] == (1, 1)  # Lost its stride.
    for i in range(7, 13):
      assert rates[f'expanded_conv_{i}'] == (1, 2)
    assert rates['expanded_conv_13'] == (1, 2)  # Lost its stride, at rate 2.
    for i in (14, 15, 16):
      assert rates[f'expanded_conv_{i}'] == (1, 4)
  # Rates only reach the 3x3 kernels.
  for block in backbone.blocks:
    for conv in (block.expand, block.project):
      assert conv is None or conv.rate == (1, 1)
  assert backbone.stem.rate == (1, 1)
  # A block that lost its stride never gains a residual.
  assert {b.name for b in backbone.blocks if b.use_residual} == _RESIDUAL_BLOCKS


def test_output_stride_none_is_stride_32():
  specs = mobilenet_v2.layer_specs(output_stride=None)
  assert [s.stride for s in specs] == [row.stride for row in mobilenet_v2.V2_DEF]
  assert all(s.rate == 1 for s in specs)


def _bn_relu6(y, conv):
  """The layer's inference batch norm and ReLU6, written out."""
  bn = conv.batch_norm
  y = (y - bn.moving_mean) / tf.sqrt(bn.moving_variance + bn.epsilon) * bn.gamma + bn.beta
  return tf.clip_by_value(y, 0.0, 6.0).numpy()


def _manual_same_conv(x, conv):
  """`conv` (stride 2) as tf.nn with padding='SAME', then BN and ReLU6."""
  if conv.depthwise:
    y = tf.nn.depthwise_conv2d(x, conv.kernel, [1, 2, 2, 1], 'SAME')
  else:
    y = tf.nn.conv2d(x, conv.kernel, 2, 'SAME')
  return _bn_relu6(y, conv)


def _randomise_batch_norm(backbone, seed=1):
  rng = np.random.default_rng(seed)
  for variable in backbone.weights:
    name = variable.path.rsplit('/', 1)[-1]
    if name in ('gamma', 'moving_variance'):
      variable.assign(rng.uniform(0.8, 1.2, variable.shape).astype(np.float32))
    elif name in ('beta', 'moving_mean'):
      variable.assign(rng.normal(0, 0.1, variable.shape).astype(np.float32))


def test_even_input_uses_same_padding():
  """Stride 2 on even sizes pads 0 before, 1 after (TF SAME), not symmetrically."""
  end_points = ('layer_1', 'layer_2', 'layer_3/expansion_output', 'layer_3/depthwise_output')
  backbone, _ = _build(64, 64, end_points=end_points)
  _randomise_batch_norm(backbone)
  images = _images(64, 64, seed=3)
  out = backbone(images, training=False)
  x = base.preprocess_zero_mean_unit_range(images)
  stem = _manual_same_conv(x, backbone.stem)
  assert out['layer_1'].shape == (1, 32, 32, 32)
  np.testing.assert_allclose(out['layer_1'], stem, atol=1e-5)
  # Fixed (symmetric) padding samples a shifted grid: the test tells them apart.
  fixed = _bn_relu6(tf.nn.conv2d(layers.fixed_padding(x, 3), backbone.stem.kernel, 2,
                                 'VALID'), backbone.stem)
  assert fixed.shape == stem.shape
  assert np.abs(fixed - stem).max() > 0.1
  # The stride-2 depthwise conv of expanded_conv_1 on the even 32x32 map.
  depthwise = backbone.blocks[1].depthwise
  manual = _manual_same_conv(out['layer_3/expansion_output'], depthwise)
  assert out['layer_3/depthwise_output'].shape == (1, 16, 16, 96)
  np.testing.assert_allclose(out['layer_3/depthwise_output'], manual, atol=1e-5)


def test_end_points():
  names = ('layer_1', 'layer_3/expansion_output', 'layer_4/depthwise_output',
           'layer_5', 'layer_5/output', 'layer_7/depthwise_output',
           'layer_14/depthwise_output', 'layer_18')
  backbone, out = _build(*_CROP, output_stride=16, end_points=names)
  assert set(out) == set(names) | {base.FEATURES}

  def size(stride):
    return tuple(layers.scale_dimension(d, 1 / stride) for d in _CROP)

  assert tuple(out['layer_1'].shape) == (1,) + size(2) + (32,)
  assert tuple(out['layer_3/expansion_output'].shape) == (1,) + size(2) + (96,)
  assert tuple(out['layer_4/depthwise_output'].shape) == (1,) + size(4) + (144,)
  assert tuple(out['layer_7/depthwise_output'].shape) == (1,) + size(8) + (192,)
  assert tuple(out['layer_14/depthwise_output'].shape) == (1,) + size(16) + (576,)
  np.testing.assert_array_equal(out['layer_5'], out['layer_5/output'])
  np.testing.assert_array_equal(out['layer_18'], out[base.FEATURES])
  for name in ('layer_4/depthwise_output', 'layer_14/depthwise_output'):
    value = np.asarray(out[name])
    assert value.min() >= 0.0 and value.max() <= 6.0  # ReLU6 outputs.
  assert mobilenet_v2.DECODER_END_POINTS == {
      4: 'layer_4/depthwise_output', 8: 'layer_7/depthwise_output',
      16: 'layer_14/depthwise_output'}
  known = mobilenet_v2.end_point_names(backbone.specs)
  assert 'layer_19' not in known and 'layer_2/expansion_output' not in known
  assert 'layer_1/output' not in known


def test_decoder_with_mobilenet_v2():
  keras.utils.set_random_seed(0)
  options = options_lib.ModelOptions.create(
      num_classes=5, model_variant='mobilenet_v2', crop_size=[65, 81], output_stride=16,
      decoder_output_stride=[4])
  model = model_lib.build_model(options)
  names = checkpoints.original_names(model)
  assert tuple(names['decoder/feature_projection0/weights'].shape) == (1, 1, 144, 48)
  assert model.backbone.end_points == ('layer_4/depthwise_output',)
  out = model.extract(_images(65, 81))
  assert tuple(out['decoder_low_level_features'].shape) == (1, 17, 21, 144)
  assert tuple(out['logits'].shape) == (1, 17, 21, 5)
  assert np.all(np.isfinite(np.asarray(out['logits'])))


def test_get_config_round_trip():
  backbone = mobilenet_v2.MobileNetV2(
      depth_multiplier=0.5, divisible_by=None, output_stride=8,
      end_points=('layer_4/depthwise_output',), fine_tune_batch_norm=False,
      weight_decay=1e-4)
  config = backbone.get_config()
  clone = mobilenet_v2.MobileNetV2.from_config(config)
  assert clone.get_config() == config
  assert clone.name == 'MobilenetV2'
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(backbone))
  assert isinstance(restored, mobilenet_v2.MobileNetV2)
  assert restored.get_config() == config
  images = _images(33, 33)
  backbone(images)
  restored(images)
  assert [v.path for v in restored.weights] == [v.path for v in backbone.weights]
  block = backbone.blocks[3]
  block_clone = mobilenet_v2.ExpandedConv.from_config(block.get_config())
  assert block_clone.get_config() == block.get_config()


# --- errors --------------------------------------------------------------------


def test_unknown_end_point():
  with pytest.raises(ValueError, match=r"no end point 'layer_19/depthwise_output'"):
    mobilenet_v2.MobileNetV2(end_points=('layer_19/depthwise_output',))
  with pytest.raises(ValueError, match=r"no end point 'layer_2/expansion_output'"):
    mobilenet_v2.MobileNetV2(end_points=('layer_2/expansion_output',))


@pytest.mark.parametrize('depth_multiplier', [0, -0.5])
def test_bad_depth_multiplier(depth_multiplier):
  with pytest.raises(ValueError, match='depth_multiplier must be positive'):
    mobilenet_v2.MobileNetV2(depth_multiplier=depth_multiplier)


@pytest.mark.parametrize('divisible_by', [0, -8, 2.5])
def test_bad_divisible_by(divisible_by):
  with pytest.raises(ValueError, match='divisible_by'):
    mobilenet_v2.layer_specs(1.0, divisible_by)
  with pytest.raises(ValueError, match='divisible_by must be None or a positive integer'):
    mobilenet_v2.MobileNetV2(divisible_by=divisible_by)


def test_bad_output_stride():
  with pytest.raises(ValueError, match='multiple of 2'):
    mobilenet_v2.MobileNetV2(output_stride=7)
  with pytest.raises(ValueError, match='cannot be reached'):
    mobilenet_v2.MobileNetV2(output_stride=64)


def test_block_rejects_wrong_input_channels():
  block = mobilenet_v2.ExpandedConv(24, 144, 24, name='expanded_conv_2')
  with pytest.raises(ValueError, match='built for 24 input channels'):
    block(np.zeros((1, 5, 5, 32), np.float32))
