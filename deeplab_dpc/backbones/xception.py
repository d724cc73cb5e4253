"""Xception-41, -65 and -71 as the original release defines them (`core/xception.py`).

Each variant is one table of blocks; one builder walks it. Variable paths are the
original checkpoint keys, e.g. `xception_65/entry_flow/block1/unit_1/
xception_module/separable_conv1_depthwise/depthwise_weights`.
"""

import dataclasses

import keras
from keras import ops

from deeplab_dpc import constants
from deeplab_dpc import layers
from deeplab_dpc.backbones import base

# tf-slim's xception arg scope initialises every conv with this stddev.
_WEIGHTS_INITIALIZER_STDDEV = 0.09


@dataclasses.dataclass(frozen=True)
class XceptionBlock:
  """One row of a variant's table: `num_units` identical Xception modules."""
  scope: str
  depth_list: tuple[int, int, int]
  skip_connection_type: str  # 'conv', 'sum' or 'none'
  num_units: int
  stride: int
  activation_fn_in_separable_conv: bool = False
  uses_multi_grid: bool = False


def _entry(index, depth, stride):
  return XceptionBlock(f'entry_flow/block{index}', (depth,) * 3, 'conv', 1, stride)


_MIDDLE = lambda units: XceptionBlock('middle_flow/block1', (728,) * 3, 'sum', units, 1)
_EXIT = (
    XceptionBlock('exit_flow/block1', (728, 1024, 1024), 'conv', 1, 2),
    XceptionBlock('exit_flow/block2', (1536, 1536, 2048), 'none', 1, 1,
                  activation_fn_in_separable_conv=True, uses_multi_grid=True),
)

XCEPTION_BLOCKS = {
    'xception_41': (_entry(1, 128, 2), _entry(2, 256, 2), _entry(3, 728, 2),
                    _MIDDLE(8)) + _EXIT,
    'xception_65': (_entry(1, 128, 2), _entry(2, 256, 2), _entry(3, 728, 2),
                    _MIDDLE(16)) + _EXIT,
    'xception_71': (_entry(1, 128, 2), _entry(2, 256, 1), _entry(3, 256, 2),
                    _entry(4, 728, 1), _entry(5, 728, 2), _MIDDLE(16)) + _EXIT,
}

# End points the DeepLabv3+ decoder reads, by decoder output stride
# (`feature_extractor.networks_to_feature_maps`).
_DECODER_65 = {
    4: 'entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise',
    8: 'entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise',
    16: 'exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise',
}
DECODER_END_POINTS = {
    'xception_41': _DECODER_65,
    'xception_65': _DECODER_65,
    'xception_71': {
        4: 'entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise',
        8: 'entry_flow/block5/unit_1/xception_module/separable_conv2_pointwise',
        16: 'exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise',
    },
}


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class XceptionModule(keras.layers.Layer):
  """Three split separable convs plus a skip connection (`xception_module`).

  Args:
    depth_list: Output channels of the three separable convs.
    skip_connection_type: 'conv' (1x1 strided `shortcut` + BN on the module
      input), 'sum' (identity) or 'none'.
    stride: Stride of the third separable conv (and of the shortcut).
    rate: Atrous rate of the unit.
    unit_rate_list: Per-conv rate multipliers (multi-grid).
    activation_fn_in_separable_conv: ReLU after each BN instead of before each
      separable conv.
    conv_kwargs: Batch-norm and regulariser arguments for every conv.
  """

  def __init__(self, depth_list, skip_connection_type, stride, rate=1,
               unit_rate_list=(1, 1, 1), activation_fn_in_separable_conv=False,
               conv_kwargs=None, **kwargs):
    super().__init__(**kwargs)
    self.depth_list = tuple(depth_list)
    self.skip_connection_type = skip_connection_type
    self.stride = stride
    self.rate = rate
    self.unit_rate_list = tuple(unit_rate_list)
    self.activation_fn_in_separable_conv = activation_fn_in_separable_conv
    self.conv_kwargs = dict(conv_kwargs or {})
    activation = 'relu' if activation_fn_in_separable_conv else None
    self.depthwise_convs, self.pointwise_convs = [], []
    for i, depth in enumerate(self.depth_list):
      conv_rate = rate * self.unit_rate_list[i]
      conv_stride = stride if i == 2 else 1
      self.depthwise_convs.append(layers.ConvBN(
          None, 3, strides=conv_stride, rate=conv_rate,
          padding='fixed' if conv_stride > 1 else 'same', activation=activation,
          kernel_stddev=_WEIGHTS_INITIALIZER_STDDEV,
          name=f'separable_conv{i + 1}_depthwise', **self.conv_kwargs))
      self.pointwise_convs.append(layers.ConvBN(
          depth, 1, activation=activation, kernel_stddev=_WEIGHTS_INITIALIZER_STDDEV,
          name=f'separable_conv{i + 1}_pointwise', **self.conv_kwargs))
    self.shortcut = None
    if skip_connection_type == 'conv':
      self.shortcut = layers.ConvBN(
          self.depth_list[-1], 1, strides=stride, activation=None,
          kernel_stddev=_WEIGHTS_INITIALIZER_STDDEV, name='shortcut', **self.conv_kwargs)
    elif skip_connection_type not in ('sum', 'none'):
      raise ValueError(f'Unsupported skip connection type {skip_connection_type!r}')

  def call(self, inputs, training=False):
    """Returns (output, {'separable_convN_pointwise': tensor}) for end points."""
    residual, end_points = inputs, {}
    for depthwise, pointwise in zip(self.depthwise_convs, self.pointwise_convs):
      if not self.activation_fn_in_separable_conv:
        residual = ops.relu(residual)  # Pre-activation of every separable conv.
      residual = depthwise(residual, training=training)
      residual = pointwise(residual, training=training)
      end_points[pointwise.name] = residual
    if self.skip_connection_type == 'conv':
      residual = residual + self.shortcut(inputs, training=training)
    elif self.skip_connection_type == 'sum':
      residual = residual + inputs
    return residual, end_points

  def get_config(self):
    config = super().get_config()
    config.update(depth_list=self.depth_list, skip_connection_type=self.skip_connection_type,
                  stride=self.stride, rate=self.rate, unit_rate_list=self.unit_rate_list,
                  activation_fn_in_separable_conv=self.activation_fn_in_separable_conv,
                  conv_kwargs=self.conv_kwargs)
    return config


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class Xception(keras.layers.Layer):
  """An Xception backbone returning its features and the requested end points.

  Args:
    model_variant: 'xception_41', 'xception_65' or 'xception_71' (also the
      layer's name, hence the variables' top scope).
    output_stride: 8, 16 or 32 (None: no atrous convolution, stride 32).
    multi_grid: Rate multipliers of exit_flow/block2's convs, default (1,1,1).
    end_points: Original end-point names (relative to the variant scope) to
      return besides the features.
    fine_tune_batch_norm, sync_batch_norm, weight_decay: see `layers.ConvBN`.

  Call returns a dict: `features` plus each requested end point.
  """

  def __init__(self, model_variant='xception_65', output_stride=16, multi_grid=None,
               end_points=(), fine_tune_batch_norm=True, sync_batch_norm=False,
               weight_decay=constants.WEIGHT_DECAY, batch_norm_decay=None, **kwargs):
    kwargs.setdefault('name', model_variant)
    super().__init__(**kwargs)
    if model_variant not in XCEPTION_BLOCKS:
      raise ValueError(f'--model_variant {model_variant!r} is not an Xception variant')
    if output_stride is not None and output_stride % 2:
      raise ValueError('The output_stride needs to be a multiple of 2.')
    self.model_variant = model_variant
    self.output_stride = output_stride
    self.multi_grid = tuple(multi_grid) if multi_grid else (1, 1, 1)
    self.end_points = tuple(end_points)
    self.fine_tune_batch_norm = fine_tune_batch_norm
    self.sync_batch_norm = sync_batch_norm
    self.weight_decay = weight_decay
    self.batch_norm_decay = batch_norm_decay
    conv_kwargs = dict(batch_norm_epsilon=constants.BACKBONE_BATCH_NORM_EPSILON,
                       batch_norm_decay=batch_norm_decay or constants.BACKBONE_BATCH_NORM_DECAY,
                       fine_tune_batch_norm=fine_tune_batch_norm,
                       sync_batch_norm=sync_batch_norm, weight_decay=weight_decay)
    # The stem has stride 2, so the blocks walk towards half the output stride.
    self.conv1_1 = layers.ConvBN(32, 3, strides=2, padding='fixed', name='conv1_1',
                                 kernel_stddev=_WEIGHTS_INITIALIZER_STDDEV, **conv_kwargs)
    self.conv1_2 = layers.ConvBN(64, 3, name='conv1_2',
                                 kernel_stddev=_WEIGHTS_INITIALIZER_STDDEV, **conv_kwargs)
    blocks = XCEPTION_BLOCKS[model_variant]
    unit_blocks = [block for block in blocks for _ in range(block.num_units)]
    walk = base.output_stride_walk(
        [block.stride for block in unit_blocks],
        None if output_stride is None else output_stride // 2)
    self.unit_scopes, self.units, unit_index = [], [], {}
    for block, (stride, rate) in zip(unit_blocks, walk):
      unit_index[block.scope] = unit_index.get(block.scope, 0) + 1
      self.unit_scopes.append(f'{block.scope}/unit_{unit_index[block.scope]}')
      self.units.append(XceptionModule(
          block.depth_list, block.skip_connection_type, stride, rate=rate,
          unit_rate_list=self.multi_grid if block.uses_multi_grid else (1, 1, 1),
          activation_fn_in_separable_conv=block.activation_fn_in_separable_conv,
          conv_kwargs=conv_kwargs, name='xception_module'))
    known = {f'{scope}/xception_module/separable_conv{i}_pointwise'
             for scope in self.unit_scopes for i in (1, 2, 3)}
    for name in self.end_points:
      if name not in known:
        raise ValueError(f'{model_variant} has no end point {name!r}')

  def call(self, images, training=False):
    x = base.preprocess_zero_mean_unit_range(images)
    with keras.name_scope('entry_flow'):
      x = self.conv1_1(x, training=training)
      x = self.conv1_2(x, training=training)
    outputs = {}
    for scope, unit in zip(self.unit_scopes, self.units):
      with base.nested_name_scope(scope):
        x, unit_end_points = unit(x, training=training)
      for conv_name, value in unit_end_points.items():
        name = f'{scope}/xception_module/{conv_name}'
        if name in self.end_points:
          outputs[name] = value
    outputs[base.FEATURES] = x
    return outputs

  def get_config(self):
    config = super().get_config()
    config.update(model_variant=self.model_variant, output_stride=self.output_stride,
                  multi_grid=self.multi_grid, end_points=self.end_points,
                  fine_tune_batch_norm=self.fine_tune_batch_norm,
                  sync_batch_norm=self.sync_batch_norm, weight_decay=self.weight_decay,
                  batch_norm_decay=self.batch_norm_decay)
    return config
