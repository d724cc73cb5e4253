"""Atrous spatial pyramid pooling (DeepLabv3/v3+), as the original `model._extract_features`.

Branches in concat order: image pooling, `aspp0` (1x1), `aspp1..` (3x3 atrous,
split separable or not), then `concat_projection` and dropout. The original puts
these scopes at the top level; the layer's own scope `aspp` is dropped by the
checkpoint name mapping.
"""

import keras
from keras import ops

from deeplab_dpc import constants
from deeplab_dpc import layers

ASPP_LAYER_NAME = 'aspp'


@keras.saving.register_keras_serializable(package='deeplab_dpc')
class ASPP(keras.layers.Layer):
  """The ASPP head.

  Args:
    atrous_rates: Rates of the 3x3 branches (used as given: the original does
      not scale them with the output stride), or None.
    output_stride: Stride of the input features.
    add_image_level_feature: Add the image pooling branch.
    image_pooling_crop_size: (h, w) crop the pooling kernel derives from, or
      None to pool over the whole feature map.
    image_pooling_stride: Stride of that pooling.
    aspp_with_separable_conv: Split separable 3x3 branches.
    depth: Channels of every branch and of the projection.
    conv_kwargs: Batch-norm and regulariser arguments.
  """

  def __init__(self, atrous_rates=None, output_stride=16, add_image_level_feature=True,
               image_pooling_crop_size=None, image_pooling_stride=(1, 1),
               aspp_with_separable_conv=True, depth=constants.ASPP_CONVS_FILTERS,
               conv_kwargs=None, **kwargs):
    kwargs.setdefault('name', ASPP_LAYER_NAME)
    super().__init__(**kwargs)
    self.atrous_rates = tuple(atrous_rates or ())
    self.output_stride = output_stride
    self.add_image_level_feature = add_image_level_feature
    self.image_pooling_crop_size = (tuple(image_pooling_crop_size)
                                    if image_pooling_crop_size else None)
    self.image_pooling_stride = tuple(image_pooling_stride)
    self.aspp_with_separable_conv = aspp_with_separable_conv
    self.depth = depth
    self.conv_kwargs = dict(conv_kwargs or {})
    if add_image_level_feature:
      self.image_pooling = layers.ConvBN(depth, 1, name=constants.IMAGE_POOLING_SCOPE,
                                         **self.conv_kwargs)
    self.aspp0 = layers.ConvBN(depth, 1, name=f'{constants.ASPP_SCOPE}0', **self.conv_kwargs)
    self.atrous_branches = []
    for i, rate in enumerate(self.atrous_rates, 1):
      scope = f'{constants.ASPP_SCOPE}{i}'
      if aspp_with_separable_conv:
        self.atrous_branches.append(
            layers.split_separable_conv(scope, depth, rate=rate, **self.conv_kwargs))
      else:
        self.atrous_branches.append(
            [layers.ConvBN(depth, 3, rate=rate, name=scope, **self.conv_kwargs)])
    self.concat_projection = layers.ConvBN(
        depth, 1, name=constants.CONCAT_PROJECTION_SCOPE, **self.conv_kwargs)
    self.dropout = keras.layers.Dropout(1.0 - constants.DROPOUT_KEEP_PROB,
                                        name=f'{constants.CONCAT_PROJECTION_SCOPE}_dropout')

  def _image_feature(self, features, training):
    height, width = layers.static_spatial_size(features)
    if self.image_pooling_crop_size is None:
      # scale_dimension(crop, 1/OS) is exactly the feature size: a global mean.
      pool = (height, width)
    else:
      pool = tuple(layers.scale_dimension(c, 1.0 / self.output_stride)
                   for c in self.image_pooling_crop_size)
    pooled = ops.average_pool(features, pool, strides=self.image_pooling_stride,
                              padding='valid')
    pooled = self.image_pooling(pooled, training=training)
    return layers.resize_bilinear(pooled, (height, width))

  def call(self, features, training=False):
    branches = []
    if self.add_image_level_feature:
      branches.append(self._image_feature(features, training))
    branches.append(self.aspp0(features, training=training))
    for branch in self.atrous_branches:
      branches.append(layers.apply_sequence(branch, features, training))
    x = self.concat_projection(ops.concatenate(branches, axis=-1), training=training)
    return self.dropout(x, training=training)

  def get_config(self):
    config = super().get_config()
    config.update(atrous_rates=self.atrous_rates, output_stride=self.output_stride,
                  add_image_level_feature=self.add_image_level_feature,
                  image_pooling_crop_size=self.image_pooling_crop_size,
                  image_pooling_stride=self.image_pooling_stride,
                  aspp_with_separable_conv=self.aspp_with_separable_conv,
                  depth=self.depth, conv_kwargs=self.conv_kwargs)
    return config
