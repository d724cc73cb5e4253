"""The Dense Prediction Cell layer, built from a cell in the original JSON format.

As the original `core/dense_prediction_cell.py`: each branch (256 channels) reads
the backbone features or an earlier branch; the concatenation of all branches goes
through dropout and then the 1x1 `concat_projection`. Variables live under
`meta_architecture/branch{i}[_depthwise|_pointwise]` and
`meta_architecture/concat_projection`.
"""

import keras
from keras import ops

from deeplab_dpc import cell as cell_lib
from deeplab_dpc import constants
from deeplab_dpc import layers
from deeplab_dpc import sizes

# `dense_prediction_cell_hparams()` of the original.
REDUCTION_SIZE = 256
CONCAT_CHANNELS = 256


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class DensePredictionCell(keras.layers.Layer):
  """A dense prediction cell.

  Args:
    cell: The cell, original JSON form (list of dicts) or `cell.Branch`es.
    output_stride: Stride of the input features; conv rates are multiplied by
      `16 // output_stride` (`conv_rate_multiplier`), as the original model does.
    image_pooling_crop_size: (h, w) crop the pyramid-pooling kernels derive
      from, or None for the crop the model runs at.
    conv_kwargs: Batch-norm and regulariser arguments.
  """

  def __init__(self, cell, output_stride=16, image_pooling_crop_size=None,
               conv_kwargs=None, **kwargs):
    kwargs.setdefault('name', constants.META_ARCHITECTURE_SCOPE)
    super().__init__(**kwargs)
    self.branches = cell_lib.parse_cell(cell, source='dense_prediction_cell')
    self.output_stride = output_stride
    self.conv_rate_multiplier = 16 // output_stride
    if self.conv_rate_multiplier < 1:
      raise ValueError('conv_rate_multiplier cannot have value < 1 '
                       f'(output_stride {output_stride})')
    self.image_pooling_crop_size = (tuple(image_pooling_crop_size)
                                    if image_pooling_crop_size else None)
    self.conv_kwargs = dict(conv_kwargs or {})
    self.branch_layers = []
    for i, branch in enumerate(self.branches):
      scope = f'branch{i}'
      if branch.op == cell_lib.CONV and branch.kernel == 3:
        rate = tuple(r * self.conv_rate_multiplier for r in branch.rate)
        self.branch_layers.append(layers.split_separable_conv(
            scope, REDUCTION_SIZE, rate=rate, **self.conv_kwargs))
      else:  # 1x1 conv, or the 1x1 conv after pyramid pooling.
        self.branch_layers.append(
            [layers.ConvBN(REDUCTION_SIZE, 1, name=scope, **self.conv_kwargs)])
    self.dropout = keras.layers.Dropout(1.0 - constants.DROPOUT_KEEP_PROB,
                                        name=f'{constants.CONCAT_PROJECTION_SCOPE}_dropout')
    self.concat_projection = layers.ConvBN(
        CONCAT_CHANNELS, 1, name=constants.CONCAT_PROJECTION_SCOPE, **self.conv_kwargs)

  def _pyramid_pooling(self, branch, layer_list, x, training):
    height, width = layers.static_spatial_size(x)
    crop = self.image_pooling_crop_size or (None, None)
    kernel = tuple(
        sizes.pyramid_pooling_kernel(size, grid, image_pooling_crop_size=crop_size,
                                     output_stride=self.output_stride)
        for size, grid, crop_size in zip((height, width), branch.grid_size, crop))
    pooled = ops.average_pool(x, kernel, strides=1, padding='valid')
    pooled = layers.apply_sequence(layer_list, pooled, training)
    return layers.resize_bilinear(pooled, (height, width))

  def branch_outputs(self, features, training=False):
    """The output of every branch, in order (before the concat)."""
    outputs = []
    for branch, layer_list in zip(self.branches, self.branch_layers):
      x = features if branch.input == cell_lib.BACKBONE_INPUT else outputs[branch.input]
      if branch.op == cell_lib.PYRAMID_POOLING:
        outputs.append(self._pyramid_pooling(branch, layer_list, x, training))
      else:
        outputs.append(layers.apply_sequence(layer_list, x, training))
    return outputs

  def call(self, features, training=False):
    x = ops.concatenate(self.branch_outputs(features, training), axis=-1)
    x = self.dropout(x, training=training)
    return self.concat_projection(x, training=training)

  def get_config(self):
    config = super().get_config()
    config.update(cell=cell_lib.cell_to_json(self.branches),
                  output_stride=self.output_stride,
                  image_pooling_crop_size=self.image_pooling_crop_size,
                  conv_kwargs=self.conv_kwargs)
    return config
