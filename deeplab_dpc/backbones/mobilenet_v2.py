"""MobileNet-v2 as DeepLab builds it (`feature_extractor._mobilenet_v2`).

The original is tf-slim's `mobilenet_v2.mobilenet_base` with `V2_DEF`, cut at end
point `layer_18`, under `mobilenet_v2.training_scope(is_training=False)`. One table
(`V2_DEF`) lists the stem and the 17 inverted-residual blocks; one builder
(`layer_specs`) resolves channel counts, strides and rates; `MobileNetV2` builds
the layers. Variable paths are the original checkpoint keys, e.g.
`MobilenetV2/expanded_conv_3/expand/weights`,
`MobilenetV2/expanded_conv_3/depthwise/depthwise_weights`,
`MobilenetV2/Conv/BatchNorm/gamma`.
"""

import dataclasses

import keras

from deeplab_dpc import constants
from deeplab_dpc import layers
from deeplab_dpc.backbones import base

# Name of the layer, hence the variables' top scope (the original variable scope).
SCOPE = 'MobilenetV2'
# DeepLab stops before `Conv_1` (layer_19, the 1x1 1280-channel conv).
FINAL_END_POINT = 'layer_18'
# `mobilenet.training_scope` initialises every conv with this stddev.
_WEIGHTS_INITIALIZER_STDDEV = 0.09
# `expand_input_by_factor` rounds expansion sizes to this divisor whatever the
# depth multiplier is (the V2_DEF default of every block but the first).
_EXPANSION_DIVISOR = 8

# End points the DeepLabv3+ decoder reads, by decoder output stride
# (`feature_extractor.networks_to_feature_maps['mobilenet_v2']`).
DECODER_END_POINTS = {
    4: 'layer_4/depthwise_output',
    8: 'layer_7/depthwise_output',
    16: 'layer_14/depthwise_output',
}

# Tensors of a block the original exposes as `layer_N/<name>`: every identity op
# of the block scope whose name ends in `output`.
_BLOCK_END_POINTS = ('expansion_output', 'depthwise_output', 'output')


@dataclasses.dataclass(frozen=True)
class LayerDef:
  """One row of `V2_DEF`.

  Attributes:
    scope: Original variable scope (`Conv`, `expanded_conv`, `expanded_conv_N`).
    num_outputs: Output channels at depth multiplier 1.0.
    stride: Nominal stride (of the stem conv, or of the block's depthwise conv).
    expansion_factor: Expansion of an inverted-residual block; None for the
      stem (a plain 3x3 conv).
  """
  scope: str
  num_outputs: int
  stride: int
  expansion_factor: int | None = None

  @property
  def is_block(self) -> bool:
    return self.expansion_factor is not None


def _block(index: int, expansion_factor: int, stride: int, num_outputs: int) -> LayerDef:
  # tf-slim numbers repeated scopes `expanded_conv`, `expanded_conv_1`, ...
  scope = 'expanded_conv' if index == 0 else f'expanded_conv_{index}'
  return LayerDef(scope, num_outputs, stride, expansion_factor)


# (expansion factor, stride, output channels) per block, as the original V2_DEF.
_BLOCK_TABLE = (
    (1, 1, 16),
    (6, 2, 24), (6, 1, 24),
    (6, 2, 32), (6, 1, 32), (6, 1, 32),
    (6, 2, 64), (6, 1, 64), (6, 1, 64), (6, 1, 64),
    (6, 1, 96), (6, 1, 96), (6, 1, 96),
    (6, 2, 160), (6, 1, 160), (6, 1, 160),
    (6, 1, 320),
)
# End point `layer_{i + 1}` is row i.
V2_DEF = (LayerDef('Conv', 32, 2),) + tuple(
    _block(i, *row) for i, row in enumerate(_BLOCK_TABLE))


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
  """The original `_make_divisible`: nearest multiple of `divisor`, at least `min_value`.

  Rounds half up, but never drops more than 10% below `value`.
  """
  if min_value is None:
    min_value = divisor
  new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if new_value < 0.9 * value:
    new_value += divisor
  return int(new_value)


def channel_rounding(depth_multiplier: float, divisible_by: int | None) -> tuple[int, int]:
  """(divisor, min_depth) DeepLab passes to `mobilenet_base`.

  Both default to 8 at depth multiplier 1.0 and to 1 otherwise (so a reduced
  width is not pushed back up to multiples of 8); an explicit `divisible_by`
  only replaces the divisor.
  """
  exact = depth_multiplier == 1.0
  divisor = divisible_by if divisible_by is not None else (8 if exact else 1)
  return int(divisor), 8 if exact else 1


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """A `V2_DEF` row resolved for one depth multiplier and output stride.

  Attributes:
    scope: Original scope.
    end_point: `layer_N`.
    input_channels: Channels entering the layer.
    expansion_channels: Channels of the expand conv and of the depthwise conv
      (the input channels when there is no expand conv); None for the stem.
    num_outputs: Output channels.
    stride: Effective stride after the output-stride walk.
    rate: Atrous rate of the 3x3 kernel (the depthwise conv of a block).
  """
  scope: str
  end_point: str
  input_channels: int
  expansion_channels: int | None
  num_outputs: int
  stride: int
  rate: int

  @property
  def has_expand(self) -> bool:
    """The original expands only when the expansion exceeds the input."""
    return self.expansion_channels is not None and self.expansion_channels > self.input_channels


def layer_specs(depth_multiplier: float = 1.0, divisible_by: int | None = None,
                output_stride: int | None = None) -> list[LayerSpec]:
  """Every layer up to `layer_18`, with channels, stride and rate resolved.

  Args:
    depth_multiplier: Width multiplier of the output channels.
    divisible_by: Channel divisor, None for DeepLab's default (`channel_rounding`).
    output_stride: Target stride (None: no atrous convolution, stride 32).

  Returns:
    One `LayerSpec` per `V2_DEF` row.

  Raises:
    ValueError: for a non-positive depth multiplier or divisor, or an output
      stride the walk cannot reach.
  """
  if not depth_multiplier > 0:
    raise ValueError(f'depth_multiplier must be positive, got {depth_multiplier}')
  if divisible_by is not None and (int(divisible_by) != divisible_by or divisible_by < 1):
    raise ValueError(f'divisible_by must be None or a positive integer, got {divisible_by!r}')
  if output_stride is not None and (output_stride < 1 or
                                    (output_stride > 1 and output_stride % 2)):
    raise ValueError(f'output_stride must be None, 1 or a multiple of 2, got {output_stride}')
  divisor, min_depth = channel_rounding(depth_multiplier, divisible_by)
  walk = base.output_stride_walk([row.stride for row in V2_DEF], output_stride)
  specs, channels = [], 3
  for i, (row, (stride, rate)) in enumerate(zip(V2_DEF, walk)):
    num_outputs = make_divisible(row.num_outputs * depth_multiplier, divisor, min_depth)
    expansion = None
    if row.is_block:
      # Factor 1 keeps the input width (divisor 1); the others use divisor 8.
      expansion = make_divisible(channels * row.expansion_factor,
                                 1 if row.expansion_factor == 1 else _EXPANSION_DIVISOR)
    specs.append(LayerSpec(row.scope, f'layer_{i + 1}', channels, expansion,
                           num_outputs, stride, rate))
    channels = num_outputs
  return specs


def end_point_names(specs) -> tuple[str, ...]:
  """Every end point the original `mobilenet_base` returns for these layers."""
  names = []
  for spec in specs:
    names.append(spec.end_point)
    if spec.expansion_channels is None:
      continue  # The stem scope has no `*output` ops.
    for suffix in _BLOCK_END_POINTS:
      if suffix != 'expansion_output' or spec.has_expand:
        names.append(f'{spec.end_point}/{suffix}')
  return tuple(names)


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class ExpandedConv(keras.layers.Layer):
  """An inverted-residual block (`conv_blocks.expanded_conv`), named after its scope.

  expand 1x1 -> BN -> ReLU6 (only when `expansion_channels > input_channels`),
  depthwise 3x3 (stride, rate) -> BN -> ReLU6, project 1x1 -> BN (linear
  bottleneck: no activation), `+ input` when the stride is 1 and the channel
  counts are equal. Nothing follows the sum.

  Args:
    input_channels: Channels the block is built for.
    expansion_channels: Channels of the expand and depthwise convs.
    num_outputs: Channels of the projection.
    stride: Stride of the depthwise conv.
    rate: Atrous rate of the depthwise conv.
    conv_kwargs: Batch-norm and regulariser arguments for every conv.
  """

  def __init__(self, input_channels, expansion_channels, num_outputs, stride=1, rate=1,
               conv_kwargs=None, **kwargs):
    super().__init__(**kwargs)
    self.input_channels = int(input_channels)
    self.expansion_channels = int(expansion_channels)
    self.num_outputs = int(num_outputs)
    self.stride = int(stride)
    self.rate = int(rate)
    self.conv_kwargs = dict(conv_kwargs or {})
    # `+ input` needs stride 1 after the output-stride walk and equal widths.
    self.use_residual = self.stride == 1 and self.input_channels == self.num_outputs
    common = dict(padding='same', kernel_stddev=_WEIGHTS_INITIALIZER_STDDEV)
    self.expand = None
    if self.expansion_channels > self.input_channels:
      self.expand = layers.ConvBN(self.expansion_channels, 1, activation='relu6',
                                  name='expand', **common, **self.conv_kwargs)
    self.depthwise = layers.ConvBN(None, 3, strides=self.stride, rate=self.rate,
                                   activation='relu6', name='depthwise', **common,
                                   **self.conv_kwargs)
    self.project = layers.ConvBN(self.num_outputs, 1, activation=None, name='project',
                                 **common, **self.conv_kwargs)

  def build(self, input_shape):
    if int(input_shape[-1]) != self.input_channels:
      raise ValueError(f'{self.name} was built for {self.input_channels} input channels, '
                       f'got shape {tuple(input_shape)}')
    super().build(input_shape)

  def call(self, inputs, training=False):
    """Returns (output, {'expansion_output', 'depthwise_output', 'output'})."""
    end_points = {}
    x = inputs
    if self.expand is not None:
      x = end_points['expansion_output'] = self.expand(x, training=training)
    x = end_points['depthwise_output'] = self.depthwise(x, training=training)
    x = self.project(x, training=training)
    if self.use_residual:
      x = x + inputs
    end_points['output'] = x
    return x, end_points

  def get_config(self):
    config = super().get_config()
    config.update(input_channels=self.input_channels,
                  expansion_channels=self.expansion_channels,
                  num_outputs=self.num_outputs, stride=self.stride, rate=self.rate,
                  conv_kwargs=self.conv_kwargs)
    return config


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class MobileNetV2(keras.layers.Layer):
  """MobileNet-v2 up to `layer_18`, returning its features and requested end points.

  Args:
    depth_multiplier: Width multiplier (> 0).
    divisible_by: Channel divisor; None for DeepLab's default (8 at depth
      multiplier 1.0, else 1).
    output_stride: 8, 16 or 32 (None: no atrous convolution, stride 32).
    end_points: Original end-point names (`layer_N`, `layer_N/depthwise_output`,
      `layer_N/expansion_output`, `layer_N/output`) to return besides the
      features.
    fine_tune_batch_norm, sync_batch_norm, weight_decay: see `layers.ConvBN`.

  Call maps float32 pixels in [0, 255] (NHWC) to a dict: `features` (end point
  `layer_18`, a linear BN output) plus each requested end point.

  Raises:
    ValueError: for a non-positive depth multiplier, an unreachable output
      stride or an unknown end point.
  """

  def __init__(self, depth_multiplier=1.0, divisible_by=None, output_stride=16,
               end_points=(), fine_tune_batch_norm=True, sync_batch_norm=False,
               weight_decay=constants.WEIGHT_DECAY, batch_norm_decay=None, **kwargs):
    kwargs.setdefault('name', SCOPE)
    super().__init__(**kwargs)
    # Validates the arguments before they are normalised.
    self.specs = layer_specs(depth_multiplier, divisible_by, output_stride)
    self.depth_multiplier = float(depth_multiplier)
    self.divisible_by = None if divisible_by is None else int(divisible_by)
    self.output_stride = output_stride
    self.end_points = tuple(end_points)
    self.fine_tune_batch_norm = fine_tune_batch_norm
    self.sync_batch_norm = sync_batch_norm
    self.weight_decay = weight_decay
    self.batch_norm_decay = batch_norm_decay
    known = end_point_names(self.specs)
    for name in self.end_points:
      if name not in known:
        raise ValueError(f'MobileNet-v2 has no end point {name!r} (known: layer_1.. '
                         f'{FINAL_END_POINT}, layer_N/depthwise_output, '
                         'layer_N/expansion_output, layer_N/output)')
    conv_kwargs = dict(batch_norm_epsilon=constants.BACKBONE_BATCH_NORM_EPSILON,
                       batch_norm_decay=batch_norm_decay or constants.MOBILENET_BATCH_NORM_DECAY,
                       fine_tune_batch_norm=fine_tune_batch_norm,
                       sync_batch_norm=sync_batch_norm, weight_decay=weight_decay)
    stem, *blocks = self.specs
    # DeepLab builds MobileNet-v2 without explicit padding: TF SAME everywhere.
    self.stem = layers.ConvBN(stem.num_outputs, 3, strides=stem.stride, rate=stem.rate,
                              padding='same', activation='relu6', name=stem.scope,
                              kernel_stddev=_WEIGHTS_INITIALIZER_STDDEV, **conv_kwargs)
    self.blocks = [
        ExpandedConv(spec.input_channels, spec.expansion_channels, spec.num_outputs,
                     stride=spec.stride, rate=spec.rate, conv_kwargs=conv_kwargs,
                     name=spec.scope)
        for spec in blocks]

  def call(self, images, training=False):
    x = base.preprocess_zero_mean_unit_range(images)
    x = self.stem(x, training=training)
    available = {self.specs[0].end_point: x}
    for spec, block in zip(self.specs[1:], self.blocks):
      x, block_end_points = block(x, training=training)
      available[spec.end_point] = x
      for suffix, value in block_end_points.items():
        available[f'{spec.end_point}/{suffix}'] = value
    outputs = {name: available[name] for name in self.end_points}
    outputs[base.FEATURES] = x
    return outputs

  def get_config(self):
    config = super().get_config()
    config.update(depth_multiplier=self.depth_multiplier, divisible_by=self.divisible_by,
                  output_stride=self.output_stride, end_points=self.end_points,
                  fine_tune_batch_norm=self.fine_tune_batch_norm,
                  sync_batch_norm=self.sync_batch_norm, weight_decay=self.weight_decay,
                  batch_norm_decay=self.batch_norm_decay)
    return config
